//! The ground of every parallel pass: how many threads, the ordered runner that keeps
//! memory bounded, and the peak memory a run reports.

pub mod ordered;

pub use ordered::run_ordered;

/// The number of worker threads to use when none is given: the available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The thread count a `threads` setting means: 0 is [`default_threads`], any other
/// number itself.
pub fn resolve_threads(threads: usize) -> usize {
    match threads {
        0 => default_threads(),
        n => n,
    }
}

/// This process's peak resident set size in bytes, from `getrusage`.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage only writes into the struct we pass; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc == 0 {
        ru.ru_maxrss as u64 * 1024
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_means_the_available_cores() {
        assert_eq!(resolve_threads(0), default_threads());
        assert!(default_threads() >= 1);
        assert_eq!(resolve_threads(3), 3);
    }
}
