//! Scheduling: the query workers' cores, and the preference for them over the threads beside
//! the query path.
//!
//! Reloads, downloads and the hit-log writer share cores with the query workers (on a small VM,
//! the very same core). The scheduler should always prefer answering queries: a late hit record
//! or a slower reload costs nothing a client notices, a late answer does. Failing to set a
//! preference only loses the preference.
//!
//! `serve --cpus` pins each query worker to one core (as Knot's `cpu-affinity` or NSD's
//! `cpu-affinity` do), so a worker keeps its caches warm and the threads beside it run on the
//! other cores; those threads are never pinned.

/// The CPUs `serve --cpus` gave the query workers, once set.
static WORKER_CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();

/// Records the query workers' CPUs (before the workers start), so threads beside the query path
/// keep off them where other cores exist.
pub fn reserve_for_workers(cpus: Vec<usize>) {
    let _ = WORKER_CPUS.set(cpus);
}

/// Moves this thread off the query workers' CPUs, if `--cpus` reserved some and the process
/// may run on others: a writer or compiler sharing a worker's core evicts its caches between
/// packets and, worse, can hold the core for a scheduler slice while the worker waits.
fn avoid_worker_cpus() {
    let Some(reserved) = WORKER_CPUS.get() else {
        return;
    };
    #[cfg(target_os = "linux")]
    // SAFETY: the set is a plain bitmask filled by sched_getaffinity for this thread (pid 0)
    // and only narrowed before being handed back to sched_setaffinity.
    #[allow(unsafe_code)]
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut set) != 0 {
            return;
        }
        for &cpu in reserved {
            libc::CPU_CLR(cpu, &mut set);
        }
        if libc::CPU_COUNT(&set) > 0 {
            libc::sched_setaffinity(0, size, &set);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reserved;
}

/// Raises this thread's nice value (reload and download threads: they should still finish
/// promptly under load).
pub fn lower_priority() {
    avoid_worker_cpus();
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority take plain integers and only change this thread's
    // scheduling weight.
    #[allow(unsafe_code)]
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 15);
    }
}

/// Puts this thread in `SCHED_IDLE` (off the workers' reserved CPUs, if any): it runs when a
/// core would otherwise idle, and does not preempt a query worker. For the hit-log writer: under sustained overload it falls behind,
/// its bounded queue fills and hits are dropped and counted, while queries keep their latency.
pub fn idle_priority() {
    avoid_worker_cpus();
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

/// Steps of a loop between two [`yield_now_and_then`] yields: tens of microseconds of work.
pub const STEPS_PER_YIELD: usize = 32;

/// For a long loop in a `SCHED_IDLE` thread: gives the core away every [`STEPS_PER_YIELD`]
/// steps (`step` counts from 0). `SCHED_IDLE` alone is not enough: the kernel's fair scheduler
/// (EEVDF) may pick an idle-policy thread over a query worker that was preempted and then let
/// it run a whole slice, milliseconds, while the worker waits (measured: 3.8 ms). A yield lets
/// a waiting worker in at once and costs a microsecond when nobody waits.
pub fn yield_now_and_then(step: usize) {
    if step % STEPS_PER_YIELD == STEPS_PER_YIELD - 1 {
        std::thread::yield_now();
    }
}

/// CPU numbers, in the order workers take them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

impl std::str::FromStr for CpuList {
    type Err = String;

    fn from_str(text: &str) -> Result<CpuList, String> {
        parse_cpu_list(text).map(CpuList)
    }
}

/// A set of CPU numbers as an admin writes it: `0`, `0,2`, `0-3`, `0-1,4`.
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{s}` in `{text}` is not a CPU number"))
        };
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (number(first)?, number(last)?);
                if first > last {
                    return Err(format!("`{part}`: the range runs backwards"));
                }
                cpus.extend(first..=last);
            }
            None => cpus.push(number(part)?),
        }
    }
    if let Some(&too_big) = cpus.iter().find(|&&c| c >= MAX_CPUS) {
        return Err(format!(
            "CPU {too_big} is beyond the {MAX_CPUS} this build can pin"
        ));
    }
    cpus.dedup();
    Ok(cpus)
}

/// Highest CPU number plus one that [`pin_to_cpu`] accepts (the size of `cpu_set_t`).
pub const MAX_CPUS: usize = 1024;

/// Pins the calling thread to one CPU. Fails if the CPU does not exist or is not allowed to
/// this process (a container's cpuset, `taskset`).
pub fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    // SAFETY: the set is a plain bitmask initialised by CPU_ZERO; sched_setaffinity with pid 0
    // reads it and changes only the calling thread's affinity.
    #[allow(unsafe_code)]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_taskset_writes_them() {
        assert_eq!(parse_cpu_list("0"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("0,2"), Ok(vec![0, 2]));
        assert_eq!(parse_cpu_list("0-3"), Ok(vec![0, 1, 2, 3]));
        assert_eq!(parse_cpu_list("0-1, 4"), Ok(vec![0, 1, 4]));
        assert!(parse_cpu_list("3-1").unwrap_err().contains("backwards"));
        assert!(
            parse_cpu_list("a")
                .unwrap_err()
                .contains("not a CPU number")
        );
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("5000").unwrap_err().contains("beyond"));
    }
}
