//! Asks Linux to back the big matcher arrays with 2 MiB pages.
//!
//! A policy's tables and filter are 80–150 MB read at random: with 4 KiB pages nearly every
//! lookup also misses the TLB, which costs as much as the cache miss itself. Transparent huge
//! pages are usually in `madvise` mode, so the arrays must ask for them, before their pages
//! are first touched. Failure (another OS, THP disabled) only loses the speed-up.

/// Regions smaller than this gain nothing from huge pages.
const MIN_BYTES: usize = 4 << 20;
const HUGE_PAGE: usize = 2 << 20;

/// Advises the kernel that `[ptr, ptr + len)` should use huge pages. Call it right after
/// allocating and before writing.
pub fn advise<T>(slice_start: *const T, len_bytes: usize) {
    if len_bytes < MIN_BYTES {
        return;
    }
    let start = slice_start as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let end = (start + len_bytes) / HUGE_PAGE * HUGE_PAGE;
    if end <= aligned {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: madvise only changes how the kernel backs pages of a range this process owns
    // (inside one live allocation); it never changes the contents or validity of the memory.
    #[allow(unsafe_code)]
    unsafe {
        libc::madvise(
            aligned as *mut libc::c_void,
            end - aligned,
            libc::MADV_HUGEPAGE,
        );
    }
}
