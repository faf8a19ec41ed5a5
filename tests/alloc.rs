// A global allocator needs unsafe code; it only counts and defers to the system allocator.
#![allow(unsafe_code)]

//! The query path allocates nothing: a counting allocator for this test binary, and a test that
//! decides listed, unlisted, allowed, rewritten and refused names without one allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;

use schooldns::name::QueryName;

use crate::common::District;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only counts calls on the current thread.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn decide_never_allocates() {
    let d = District::new();
    d.write("block.txt", "blocked.example\n*.below.example\n");
    d.write("allow.txt", "ok.blocked.example\n");
    d.config(
        r#"
[categories.bad]
lists = ["@/block.txt"]
[categories.good]
lists = ["@/allow.txt"]
[profiles.p]
block = ["bad"]
allow = ["good"]
[[schools]]
id = "s"
name = "S"
networks = ["10.0.0.0/8", "2001:db8::/32"]
profile = "p"
"#,
    );
    let policy = d.compile();
    let names: Vec<QueryName> = [
        "www.blocked.example",
        "a.below.example",
        "ok.blocked.example",
        "unlisted.example.org",
        "www.google.com",
        "use-application-dns.net",
    ]
    .iter()
    .map(|n| QueryName::parse(n).unwrap())
    .collect();
    let clients: Vec<IpAddr> = ["10.1.2.3", "2001:db8::1", "192.0.2.1"]
        .iter()
        .map(|c| c.parse().unwrap())
        .collect();
    // Warm lazily initialised statics (hash seed, safe-search table) first.
    for q in &names {
        policy.decide(clients[0], q);
    }
    let before = allocations();
    let mut verdicts = Vec::with_capacity(names.len() * clients.len());
    let reserved = allocations();
    for q in &names {
        for &c in &clients {
            let _ = QueryName::parse(q.as_str()).unwrap();
            verdicts.push(policy.decide(c, q).verdict.as_str());
        }
    }
    assert_eq!(allocations(), reserved, "decide allocated");
    assert_eq!(reserved - before, 1);
    assert_eq!(
        &verdicts[..6],
        ["block", "block", "refuse", "block", "block", "refuse"]
    );
}
