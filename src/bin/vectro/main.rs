//! The `vectro` command: parses flags, calls the library, prints, and picks the exit code.

mod cli;
mod commands;
mod exit_codes;
mod progress;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::Parser;

use cli::{Cli, Command};

/// Set by the first Ctrl-C or SIGTERM; the library stops at the next chunk boundary or
/// training step.
static CANCEL: AtomicBool = AtomicBool::new(false);
/// Ctrl-Cs and SIGTERMs received: the first stops cleanly, the next exits at once.
static HITS: AtomicUsize = AtomicUsize::new(0);
/// A SIGTERM was received, so a cancelled run exits 143 (128 + SIGTERM), not 130.
static TERMINATED: AtomicBool = AtomicBool::new(false);

fn main() {
    // Die quietly of SIGPIPE like other Unix tools (`vectro get ... | head`), instead of
    // panicking in println! on a closed pipe.
    // SAFETY: restoring the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    install_ctrl_c();
    install_sigterm();
    let result = match cli.command {
        Command::Compress(a) => commands::compress::run(a, &CANCEL),
        Command::Decompress(a) => commands::decompress::run(a, &CANCEL),
        Command::Info(a) => commands::info::run(a),
        Command::Eval(a) => commands::eval::run(a, &CANCEL),
        Command::Generate(a) => commands::generate::run(a, &CANCEL),
        Command::Demo(a) => commands::demo::run(a, &CANCEL),
        Command::Merge(a) => commands::merge::run(a, &CANCEL),
        Command::Get(a) => commands::get::run(a),
        Command::Export(a) => commands::export::run(a, &CANCEL),
        Command::ImportNpz(a) => commands::import_npz::run(a, &CANCEL),
        Command::Bench(a) => commands::bench::run(a, &CANCEL),
        Command::Verify(a) => commands::verify::run(a),
        Command::Train(a) => commands::train::run(a, &CANCEL),
    };
    let mut code = match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => exit_codes::OK,
        Err(err) => {
            let top = err.to_string();
            eprintln!("vectro: error: {top}");
            // Most of our errors already end with their source's text ("x: reading:
            // Permission denied"): print a cause only when it adds something.
            for cause in err.chain().skip(1) {
                let cause = cause.to_string();
                if !top.contains(&cause) {
                    eprintln!("  caused by: {cause}");
                }
            }
            exit_codes::for_error(&err)
        }
    };
    if code == exit_codes::INTERRUPTED && TERMINATED.load(Ordering::SeqCst) {
        code = exit_codes::TERMINATED;
    }
    std::process::exit(code);
}

/// A first Ctrl-C asks for a clean stop at a chunk boundary; a second exits at once.
fn install_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if HITS.fetch_add(1, Ordering::SeqCst) == 0 {
            CANCEL.store(true, Ordering::SeqCst);
            eprintln!(
                "\nvectro: stopping at the next chunk boundary or training step (Ctrl-C again to abort)"
            );
        } else {
            std::process::exit(exit_codes::INTERRUPTED);
        }
    });
}

/// SIGTERM (what Kubernetes, Slurm and `timeout` send) stops like the first Ctrl-C: at a
/// chunk boundary, keeping a resumable partial. A second signal exits at once.
///
/// Not ctrlc's "termination" feature: it also takes SIGHUP, and gives up every handler,
/// SIGINT's too, when one is ignored (as `nohup` does to SIGHUP).
fn install_sigterm() {
    extern "C" fn on_sigterm(_: libc::c_int) {
        // Only async-signal-safe calls here: atomics, write(2) and _exit(2).
        TERMINATED.store(true, Ordering::SeqCst);
        if HITS.fetch_add(1, Ordering::SeqCst) == 0 {
            CANCEL.store(true, Ordering::SeqCst);
            let msg =
                b"\nvectro: SIGTERM: stopping at the next chunk boundary (signal again to abort)\n";
            // SAFETY: writes a static buffer to stderr; the result does not matter.
            unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        } else {
            // SAFETY: ends the process at once, as a second signal asks.
            unsafe { libc::_exit(exit_codes::TERMINATED) };
        }
    }
    // SAFETY: sigaction is given zeroed (valid) structs that live across the calls, and a
    // handler that only makes async-signal-safe calls. A SIGTERM that the parent set to be
    // ignored stays ignored.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGTERM, std::ptr::null(), &mut old) != 0
            || old.sa_sigaction != libc::SIG_DFL
        {
            return;
        }
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = on_sigterm as extern "C" fn(libc::c_int) as libc::sighandler_t;
        new.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut new.sa_mask);
        libc::sigaction(libc::SIGTERM, &new, std::ptr::null_mut());
    }
}

/// Output piped into `head` closes early; that is not an error worth reporting.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
