//! Ordered parallel map with bounded memory, in the style of gzp.
//!
//! A feeder thread walks the jobs in input order. For each job it makes a one-shot channel,
//! sends the job and the sender to the workers, and the receiver to the sink, both over
//! `bounded(2 * threads)` channels. Workers finish out of order; the sink takes results in
//! input order by waiting on each receiver in turn. At most `2 * threads` jobs wait for a
//! worker, `threads` are being worked on, and `2 * threads + 1` results wait for the sink,
//! whatever the number of jobs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::error::{Error, Result};

type Oneshot<R> = Sender<Result<R>>;

/// Runs `work` on every job from `jobs` on `threads` workers and hands the results to
/// `sink` in input order.
///
/// Stops at the first error (from a job, a worker panic, or the sink) and returns it; stops
/// with [`Error::Cancelled`] at a job boundary once `cancel` is set. No thread is left
/// running when this returns.
///
/// # Errors
/// The first error in input order.
pub fn run_ordered<J, R, I, W, S>(
    threads: usize,
    jobs: I,
    work: W,
    mut sink: S,
    cancel: &AtomicBool,
) -> Result<()>
where
    I: Iterator<Item = Result<J>> + Send,
    J: Send,
    R: Send,
    W: Fn(J) -> Result<R> + Sync,
    S: FnMut(R) -> Result<()>,
{
    let threads = threads.max(1);
    let (job_tx, job_rx) = bounded::<(J, Oneshot<R>)>(2 * threads);
    let (order_tx, order_rx) = bounded::<Receiver<Result<R>>>(2 * threads);
    std::thread::scope(|s| {
        // The workers first: if the system refuses one (a process or thread limit), the
        // error is returned before any job is read, and dropping the channels ends the
        // workers already started.
        for i in 0..threads {
            let job_rx = job_rx.clone();
            let work = &work;
            super::spawn_scoped(s, threads, i, move || {
                for (job, done) in job_rx {
                    let r = catch_unwind(AssertUnwindSafe(|| work(job)))
                        .unwrap_or_else(|p| Err(Error::WorkerPanic(panic_message(&p))));
                    // The sink may have stopped early; then nobody wants this result.
                    let _ = done.send(r);
                }
            })?;
        }
        drop(job_rx);
        super::spawn_scoped(s, threads, threads, move || {
            feed(jobs, job_tx, order_tx, cancel)
        })?;
        drain(order_rx, &mut sink, cancel)
    })
}

fn feed<J, R, I>(
    jobs: I,
    job_tx: Sender<(J, Oneshot<R>)>,
    order_tx: Sender<Receiver<Result<R>>>,
    cancel: &AtomicBool,
) where
    I: Iterator<Item = Result<J>>,
{
    for job in jobs {
        let (tx, rx) = bounded(1);
        if cancel.load(Ordering::Relaxed) {
            let _ = tx.send(Err(Error::Cancelled));
            let _ = order_tx.send(rx);
            return;
        }
        match job {
            Ok(job) => {
                // Queue the receiver first, so the sink sees results in input order.
                if order_tx.send(rx).is_err() || job_tx.send((job, tx)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                let _ = order_tx.send(rx);
                return;
            }
        }
    }
}

fn drain<R, S>(
    order_rx: Receiver<Receiver<Result<R>>>,
    sink: &mut S,
    cancel: &AtomicBool,
) -> Result<()>
where
    S: FnMut(R) -> Result<()>,
{
    for rx in order_rx {
        let r = rx
            .recv()
            .map_err(|_| Error::WorkerPanic("a worker exited without a result".into()))??;
        sink(r)?;
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
    }
    Ok(())
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(
        threads: usize,
        n: u64,
        fail_at: Option<u64>,
        panic_at: Option<u64>,
    ) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        let jobs = (0..n).map(Ok);
        run_ordered(
            threads,
            jobs,
            |j| {
                if Some(j) == panic_at {
                    panic!("boom at {j}");
                }
                if Some(j) == fail_at {
                    return Err(Error::Config(format!("fail at {j}")));
                }
                // Uneven work so that results finish out of order.
                std::thread::sleep(std::time::Duration::from_micros((j * 7919) % 300));
                Ok(j * 2)
            },
            |r| {
                out.push(r);
                Ok(())
            },
            &AtomicBool::new(false),
        )?;
        Ok(out)
    }

    #[test]
    fn keeps_input_order_for_any_thread_count() {
        for t in [1, 2, 4, 8] {
            let got = collect(t, 200, None, None).unwrap();
            assert_eq!(got, (0..200).map(|j| j * 2).collect::<Vec<_>>());
        }
    }

    #[test]
    fn errors_and_panics_reach_the_caller() {
        let e = collect(4, 100, Some(37), None).unwrap_err().to_string();
        assert!(e.contains("fail at 37"), "{e}");
        let e = collect(4, 100, None, Some(5)).unwrap_err().to_string();
        assert!(e.contains("boom at 5"), "{e}");
    }

    #[test]
    fn a_refused_thread_is_an_error_not_a_panic() {
        use crate::par::spawn_fault;
        // Refused at the first worker, a later one, and the feeder (the last spawn): one
        // error naming the thread count, no job run, and nothing left running.
        for from in [0, 2, 4] {
            spawn_fault::fail_from(from);
            let ran = std::sync::atomic::AtomicUsize::new(0);
            let r = run_ordered(
                4,
                (0..100u64).map(Ok),
                |j| {
                    ran.fetch_add(1, Ordering::Relaxed);
                    Ok(j)
                },
                |_| Ok(()),
                &AtomicBool::new(false),
            );
            spawn_fault::clear();
            let e = r.unwrap_err();
            assert_eq!(e.kind(), crate::error::ErrorKind::Io, "{e}");
            let m = e.to_string();
            assert!(m.contains("could not start 4 worker thread(s)"), "{m}");
            assert!(m.contains(&format!("refused thread {}", from + 1)), "{m}");
            assert!(m.contains("--threads"), "{m}");
            assert_eq!(ran.load(Ordering::Relaxed), 0, "no job ran");
        }
        // And the runner works again afterwards.
        assert_eq!(collect(4, 10, None, None).unwrap().len(), 10);
    }

    #[test]
    fn sink_error_stops_everything() {
        let mut n = 0;
        let r = run_ordered(
            2,
            (0..10_000u64).map(Ok),
            Ok,
            |_| {
                n += 1;
                if n == 3 {
                    Err(Error::Cancelled)
                } else {
                    Ok(())
                }
            },
            &AtomicBool::new(false),
        );
        assert!(matches!(r, Err(Error::Cancelled)));
        assert_eq!(n, 3);
    }

    #[test]
    fn cancel_stops_at_a_job_boundary() {
        let cancel = AtomicBool::new(false);
        let mut seen = 0;
        let r = run_ordered(
            2,
            (0..10_000u64).map(Ok),
            Ok,
            |_| {
                seen += 1;
                if seen == 10 {
                    cancel.store(true, Ordering::Relaxed);
                }
                Ok(())
            },
            &cancel,
        );
        assert!(matches!(r, Err(Error::Cancelled)));
        assert_eq!(seen, 10);
    }
}
