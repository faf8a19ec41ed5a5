//! Keeps a damaged hit-log file from killing the resolver.
//!
//! SQLite maps the WAL index (`hits.sqlite-shm`) into memory. When someone truncates that file,
//! or the file system refuses to back a page (an immutable folder, a full or vanished disk),
//! the next access to the mapping raises SIGBUS, whose default action killed the whole
//! server, DNS included, with no log line. The hit log is beside the query path and must never
//! take it down.
//!
//! [`install`] registers the hit log's path. A SIGBUS handler then looks up the faulting
//! address in `/proc/self/maps` (with `open`/`read` only, which are async-signal-safe, and no
//! allocation): when it falls in a mapping of a file whose path starts with the hit log's, the
//! handler maps private zeroed memory over that whole mapping, counts the damage and returns,
//! so the faulting access reads zeros instead. SQLite sees a broken WAL index and fails the
//! transaction; the writer notices [`damage_count`] changed, drops its connection and reopens
//! the file, which rebuilds the index. Any other SIGBUS goes on to the handler that was there
//! before (Rust's own, then the default action): real bugs still crash.

#![allow(unsafe_code)]

use std::sync::Once;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Longest guarded path prefix.
const MAX_PATH: usize = 1024;

/// The guarded prefix, written once before the handler is installed, then only read.
static mut PREFIX: [u8; MAX_PATH] = [0; MAX_PATH];
static PREFIX_LEN: AtomicUsize = AtomicUsize::new(0);
/// Mappings replaced by zeroed memory since start.
static DAMAGE: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();
static mut PREVIOUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::uninit();

/// Mappings of the hit log replaced after a SIGBUS since start.
pub fn damage_count() -> u64 {
    DAMAGE.load(Ordering::Acquire)
}

/// Guards mappings of files whose path starts with `path` (the hit log, its `-wal` and
/// `-shm`). The first call installs the handler and fixes the prefix; later calls are ignored
/// (one hit log per process).
pub fn install(path: &std::path::Path) {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    // /proc/self/maps shows the path with symbolic links in the folder resolved.
    let resolved = absolute
        .parent()
        .and_then(|dir| std::fs::canonicalize(dir).ok())
        .zip(absolute.file_name())
        .map_or(absolute.clone(), |(dir, name)| dir.join(name));
    let bytes = resolved.as_os_str().as_encoded_bytes();
    if bytes.is_empty() || bytes.len() > MAX_PATH {
        return;
    }
    INSTALL.call_once(|| {
        // SAFETY: written once, before the handler that reads it exists.
        unsafe {
            let prefix = &raw mut PREFIX;
            (&mut *prefix)[..bytes.len()].copy_from_slice(bytes);
        }
        PREFIX_LEN.store(bytes.len(), Ordering::Release);
        // SAFETY: a plain sigaction install; PREVIOUS is written here only, before any
        // SIGBUS can reach `on_sigbus`.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            let previous = &raw mut PREVIOUS;
            if libc::sigaction(libc::SIGBUS, &action, (*previous).as_mut_ptr()) != 0 {
                PREFIX_LEN.store(0, Ordering::Release);
            }
        }
    });
}

extern "C" fn on_sigbus(
    _signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let address = unsafe { (*info).si_addr() } as usize;
    if let Some((start, end)) = guarded_mapping(address) {
        // SAFETY: replaces exactly one mapping of the hit log's files with private zeroed
        // pages at the same place; SQLite keeps using the pointer, reading zeros.
        let replaced = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                end - start,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if replaced != libc::MAP_FAILED {
            DAMAGE.fetch_add(1, Ordering::AcqRel);
            return;
        }
    }
    // Not ours: put the previous handler back and return; the access faults again and that
    // handler (or the default action) deals with it.
    // SAFETY: PREVIOUS was filled by the successful sigaction in `install`.
    unsafe {
        let previous = &raw const PREVIOUS;
        libc::sigaction(libc::SIGBUS, (*previous).as_ptr(), std::ptr::null_mut());
    }
}

/// The `[start, end)` of the mapping holding `address`, if it maps a guarded file. Reads
/// `/proc/self/maps` with raw system calls into stack buffers: no allocation, no locks.
fn guarded_mapping(address: usize) -> Option<(usize, usize)> {
    let prefix_len = PREFIX_LEN.load(Ordering::Acquire);
    if prefix_len == 0 {
        return None;
    }
    // SAFETY: PREFIX is only written before PREFIX_LEN is set.
    let prefix: &[u8] = unsafe {
        let prefix = &raw const PREFIX;
        &(&*prefix)[..prefix_len]
    };
    // SAFETY: a NUL-terminated path and plain file-descriptor calls.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    let mut chunk = [0u8; 4096];
    let mut line = [0u8; 2048];
    let mut line_len = 0usize;
    let mut found = None;
    'read: loop {
        // SAFETY: reads into a buffer of the given length.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), chunk.len()) };
        if n <= 0 {
            break;
        }
        for &byte in &chunk[..n as usize] {
            if byte == b'\n' {
                if let Some(range) = match_line(&line[..line_len], address, prefix) {
                    found = Some(range);
                    break 'read;
                }
                line_len = 0;
            } else if line_len < line.len() {
                line[line_len] = byte;
                line_len += 1;
            }
        }
    }
    // SAFETY: closes the descriptor opened above.
    unsafe { libc::close(fd) };
    found
}

/// For one `/proc/self/maps` line (`start-end perms offset dev inode path`): its range, if it
/// holds `address` and its path starts with `prefix`.
fn match_line(line: &[u8], address: usize, prefix: &[u8]) -> Option<(usize, usize)> {
    let dash = line.iter().position(|&b| b == b'-')?;
    let space = line.iter().position(|&b| b == b' ')?;
    let start = parse_hex(&line[..dash])?;
    let end = parse_hex(line.get(dash + 1..space)?)?;
    if address < start || address >= end {
        return None;
    }
    let path_at = line.iter().position(|&b| b == b'/')?;
    line[path_at..].starts_with(prefix).then_some((start, end))
}

fn parse_hex(digits: &[u8]) -> Option<usize> {
    let mut value = 0usize;
    for &d in digits {
        let digit = (d as char).to_digit(16)? as usize;
        value = value.checked_mul(16)?.checked_add(digit)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_lines_match_by_range_and_path_prefix() {
        let line = b"7f0000001000-7f0000009000 rw-s 00000000 fd:01 1234   /var/lib/schooldns/hits.sqlite-shm";
        let prefix = b"/var/lib/schooldns/hits.sqlite";
        assert_eq!(
            match_line(line, 0x7f0000001000, prefix),
            Some((0x7f0000001000, 0x7f0000009000))
        );
        assert_eq!(match_line(line, 0x7f0000009000, prefix), None);
        assert_eq!(match_line(line, 0x7f0000002000, b"/other"), None);
        let anonymous = b"7f0000001000-7f0000009000 rw-p 00000000 00:00 0";
        assert_eq!(match_line(anonymous, 0x7f0000002000, prefix), None);
    }
}
