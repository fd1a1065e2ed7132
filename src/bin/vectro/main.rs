//! The `vectro` command: parses flags, calls the library, prints, and picks the exit code.

mod cli;
mod commands;
mod exit_codes;
mod progress;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::Parser;

use cli::{Cli, Command};

/// Set by the first Ctrl-C; the library stops at the next chunk boundary or training step.
static CANCEL: AtomicBool = AtomicBool::new(false);

fn main() {
    // Die quietly of SIGPIPE like other Unix tools (`vectro get ... | head`), instead of
    // panicking in println! on a closed pipe.
    // SAFETY: restoring the default disposition of one signal, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    install_ctrl_c();
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
    let code = match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => exit_codes::OK,
        Err(err) => {
            eprintln!("vectro: error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            exit_codes::for_error(&err)
        }
    };
    std::process::exit(code);
}

/// A first Ctrl-C asks for a clean stop at a chunk boundary; a second exits at once.
fn install_ctrl_c() {
    static HITS: AtomicUsize = AtomicUsize::new(0);
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

/// Output piped into `head` closes early; that is not an error worth reporting.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
