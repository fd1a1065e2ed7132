//! The ground of every parallel pass: how many threads, the ordered runner that keeps
//! memory bounded, and the peak memory a run reports.

pub mod ordered;

pub use ordered::run_ordered;

use crate::error::{Error, Result};

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

/// A rayon pool for the passes that run on rayon (training, the recall pass): `threads`
/// workers (0: the available cores), but no more than the available cores, since these
/// passes only compute and rayon's work stealing slows down sharply with far more threads
/// than cores (a 1024-thread pool on 2 cores took minutes where 2 threads take
/// milliseconds). Their results do not depend on the pool's size.
///
/// # Errors
/// [`Error::Threads`] if the system refuses a thread (a process or thread limit), the
/// same error [`run_ordered`] gives, so every command fails the same way.
pub fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    let threads = resolve_threads(threads);
    let workers = threads.min(default_threads());
    #[cfg(test)]
    if spawn_fault::take(threads - 1) {
        return Err(refused(threads, threads - 1, &spawn_fault::error()));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("vectro-pool-{i}"))
        .build()
        .map_err(|e| Error::Threads {
            threads,
            reason: e.to_string(),
        })
}

/// Starts a scoped thread, or returns the system's refusal as [`Error::Threads`]
/// (`threads` is the count asked for, `index` the one refused) instead of the panic
/// `Scope::spawn` gives.
pub(crate) fn spawn_scoped<'scope, 'env, T, F>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    threads: usize,
    index: usize,
    f: F,
) -> Result<std::thread::ScopedJoinHandle<'scope, T>>
where
    F: FnOnce() -> T + Send + 'scope,
    T: Send + 'scope,
{
    #[cfg(test)]
    if spawn_fault::take(index) {
        return Err(refused(threads, index, &spawn_fault::error()));
    }
    std::thread::Builder::new()
        .name(format!("vectro-{index}"))
        .spawn_scoped(scope, f)
        .map_err(|e| refused(threads, index, &e))
}

fn refused(threads: usize, index: usize, e: &std::io::Error) -> Error {
    Error::Threads {
        threads,
        reason: format!("the system refused thread {} ({e})", index + 1),
    }
}

/// A test's way to make the system refuse a thread: `fail_from(n)` makes the calling
/// thread's spawns fail from the `n`-th (counted from 0) of each run on, as
/// `RLIMIT_NPROC` does.
#[cfg(test)]
pub(crate) mod spawn_fault {
    use std::cell::Cell;

    thread_local! {
        static FROM: Cell<Option<usize>> = const { Cell::new(None) };
    }

    /// Spawns number `n` and later fail on this thread until [`clear`].
    pub fn fail_from(n: usize) {
        FROM.with(|f| f.set(Some(n)));
    }

    /// Spawns succeed again.
    pub fn clear() {
        FROM.with(|f| f.set(None));
    }

    /// Whether spawn number `index` is to fail.
    pub fn take(index: usize) -> bool {
        FROM.with(|f| f.get().is_some_and(|n| index >= n))
    }

    /// The error `RLIMIT_NPROC` gives.
    pub fn error() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::EAGAIN)
    }
}

/// This process's peak resident set size in bytes: `VmHWM` of `/proc/self/status` on
/// Linux, else from `getrusage`.
///
/// Not `getrusage` on Linux: its `ru_maxrss` carries over `exec` the peak of the process
/// that spawned us (a test harness holding a large buffer, a Python process), so a small
/// run reported the parent's peak as its own. `VmHWM` starts afresh at `exec`.
pub fn peak_rss_bytes() -> u64 {
    if let Some(b) = vm_hwm_bytes() {
        return b;
    }
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

/// `VmHWM` of `/proc/self/status`, in bytes, where there is one.
fn vm_hwm_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
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

    #[test]
    fn peak_rss_counts_what_this_process_touched() {
        let before = peak_rss_bytes();
        assert!(before > 0);
        let v = vec![1u8; 64 << 20];
        std::hint::black_box(&v);
        assert!(peak_rss_bytes() >= before.max(64 << 20), "{before}");
    }

    #[test]
    fn a_refused_pool_is_the_runners_error() {
        spawn_fault::fail_from(0);
        let r = pool(3);
        spawn_fault::clear();
        let e = r.expect_err("refused");
        assert!(matches!(e, Error::Threads { threads: 3, .. }), "{e}");
        assert_eq!(e.kind(), crate::error::ErrorKind::Io);
        assert_eq!(
            pool(2).unwrap().current_num_threads(),
            2.min(default_threads())
        );
        assert_eq!(pool(1024).unwrap().current_num_threads(), default_threads());
    }
}
