//! The `vectro` command: parses flags, calls the library, prints, and picks the exit code.

#[macro_use]
mod out;
mod cli;
mod commands;
mod exit_codes;
mod progress;

use std::io::IsTerminal;
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
    // SIGPIPE stays ignored (Rust's default): a closed pipe (`vectro get ... | head`) is a
    // write error that `is_broken_pipe` turns into exit 0, as ripgrep does, not a death by
    // signal (141) that fails `set -o pipefail` scripts.
    let mut cli = parse();
    out::set_mode(cli.command.quiet(), cli.command.json());
    install_ctrl_c();
    install_sigterm();
    let result = if let Err(e) = cli.command.resolve() {
        Err(e.into())
    } else if cli.command.writes_data_to_stdout() && stdout_is_closed() {
        // Rust's stdout treats a closed descriptor as a sink that swallows everything:
        // the rows would be lost with exit 0.
        Err(anyhow::anyhow!(
            "stdout is closed (>&-), so the output would be lost; redirect it to a file, or give --out FILE"
        ))
    } else if let Some(what) = cli
        .command
        .writes_binary_to_stdout()
        .filter(|_| std::io::stdout().is_terminal())
    {
        Err(vectro::Error::Config(format!(
            "--out - writes {what}, and stdout is a terminal: redirect it (> FILE, | ...), or give --out FILE"
        ))
        .into())
    } else {
        run(cli.command)
    };
    let mut code = match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => exit_codes::OK,
        Err(err) => report(&err),
    };
    // What was printed with outln! (summaries, tables) and never reached stdout.
    match out::finish() {
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Some(e) if code == exit_codes::OK => {
            let err = anyhow::Error::new(e).context("writing to stdout");
            code = report(&err);
        }
        _ => {}
    }
    if code == exit_codes::INTERRUPTED && TERMINATED.load(Ordering::SeqCst) {
        code = exit_codes::TERMINATED;
    }
    std::process::exit(code);
}

/// The command line, parsed. A usage error exits 2 here, printed with the prefix every
/// error has (`vectro: error:`), or as one JSON object with `--json`.
fn parse() -> Cli {
    let err = match Cli::try_parse() {
        Ok(cli) => return cli,
        Err(e) => e,
    };
    use clap::error::ErrorKind as K;
    if matches!(
        err.kind(),
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit();
    }
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    let text = err.render().to_string();
    let text = text.trim_end();
    if json {
        // The first line, without clap's own "error: " prefix.
        let msg = text.lines().next().unwrap_or_default();
        let msg = msg.strip_prefix("error: ").unwrap_or(msg);
        print_json_error(msg, exit_codes::USAGE);
    } else {
        errln!("vectro: {}", text.strip_prefix("vectro: ").unwrap_or(text));
    }
    std::process::exit(exit_codes::USAGE);
}

/// An error as the one JSON object `--json` prints on stderr (docs/cli.md).
pub(crate) fn print_json_error(message: &str, code: i32) {
    let v = serde_json::json!({
        "schema": out::SCHEMA,
        "error": {
            "message": message,
            "kind": exit_codes::kind_name(code),
            "exit_code": code,
        }
    });
    errln!("{v}");
}

/// Runs one subcommand.
fn run(command: Command) -> anyhow::Result<i32> {
    match command {
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
        Command::Search(a) => commands::search::run(a, &CANCEL),
        Command::Report(a) => commands::report::run(a, &CANCEL),
        Command::Serve(a) => commands::serve::run(a, &CANCEL),
        Command::Completions(a) => commands::shell::completions(a),
        Command::Man => commands::shell::man(),
    }
}

/// Prints an error and its causes on stderr (one JSON object with `--json`) and returns
/// its exit code.
fn report(err: &anyhow::Error) -> i32 {
    let code = exit_codes::for_error(err);
    if out::json() {
        let mut msg = err.to_string();
        for cause in err.chain().skip(1) {
            let cause = cause.to_string();
            if !msg.contains(&cause) {
                msg = format!("{msg}: {cause}");
            }
        }
        print_json_error(&msg, code);
        return code;
    }
    let top = escape_controls(&err.to_string());
    errln!("vectro: error: {top}");
    // Most of our errors already end with their source's text ("x: reading:
    // Permission denied"): print a cause only when it adds something.
    for cause in err.chain().skip(1) {
        let cause = escape_controls(&cause.to_string());
        if !top.contains(&cause) {
            errln!("  caused by: {cause}");
        }
    }
    code
}

/// `msg` with its control characters (a NUL, a tab, an escape sequence in a file name the
/// user gave) written as escapes, so that an error message cannot hide text or drive the
/// terminal. Line breaks stay: some messages have several lines.
pub(crate) fn escape_controls(msg: &str) -> String {
    if !msg.chars().any(|c| c.is_control() && c != '\n') {
        return msg.to_string();
    }
    msg.chars()
        .map(|c| match c {
            '\n' => "\n".to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Whether stdout was closed when vectro started (`>&-`).
///
/// Rust's runtime reopens a closed descriptor 0, 1 or 2 on `/dev/null` (read-write) before
/// `main`, so a closed stdout shows up as `/dev/null` opened read-write, which no shell
/// redirection (`> /dev/null` opens it write-only) produces.
fn stdout_is_closed() -> bool {
    // SAFETY: fcntl and fstat on descriptor 1 only read the descriptor table, into a zeroed
    // stat that lives across the call.
    unsafe {
        let flags = libc::fcntl(1, libc::F_GETFL);
        if flags == -1 {
            return true;
        }
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(1, &mut st) != 0 {
            return true;
        }
        let dev_null = (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
            && libc::major(st.st_rdev) == 1
            && libc::minor(st.st_rdev) == 3;
        dev_null && (flags & libc::O_ACCMODE) == libc::O_RDWR
    }
}

/// A first Ctrl-C asks for a clean stop at a chunk boundary; a second exits at once.
fn install_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if HITS.fetch_add(1, Ordering::SeqCst) == 0 {
            CANCEL.store(true, Ordering::SeqCst);
            errln!(
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
