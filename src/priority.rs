//! Scheduling preference for the threads beside the query path.
//!
//! Reloads, downloads and the hit-log writer share cores with the query workers (on a small VM,
//! or in a pinned benchmark, the very same core). The scheduler should always prefer answering
//! queries: a late hit record or a slower reload costs nothing a client notices, a late answer
//! does. Failing to set a preference only loses the preference.

/// Raises this thread's nice value (reload and download threads: they should still finish
/// promptly under load).
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take plain integers and only change this thread's
    // scheduling weight.
    #[allow(unsafe_code)]
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 15);
    }
}

/// Puts this thread in `SCHED_IDLE`: it runs when a core would otherwise idle, and never
/// preempts a query worker. For the hit-log writer: under sustained overload it falls behind,
/// its bounded queue fills and hits are dropped and counted, while queries keep their latency.
pub fn idle_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: sched_setscheduler with pid 0 changes only the calling thread's policy; the
    // parameter struct is fully initialised (priority 0, as SCHED_IDLE requires).
    #[allow(unsafe_code)]
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            lower_priority();
        }
    }
}
