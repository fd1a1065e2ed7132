//! Exit codes: one per category, so cron jobs and retry logic can tell them apart.

use vectro::{Error, ErrorKind};

/// Success.
pub const OK: i32 = 0;
/// A quality gate was not met (eval --min-*).
pub const QUALITY_GATE: i32 = 1;
/// The command line is wrong (clap also uses 2).
pub const USAGE: i32 = 2;
/// The input (a .npy or a container) is bad; rerunning will not help.
pub const BAD_INPUT: i32 = 3;
/// An I/O error (disk full, permission denied); a retry may help.
pub const IO: i32 = 4;
/// A bug in vectro.
pub const INTERNAL: i32 = 70;
/// Interrupted by Ctrl-C (128 + SIGINT).
pub const INTERRUPTED: i32 = 130;
/// Stopped by SIGTERM (128 + SIGTERM).
pub const TERMINATED: i32 = 143;

/// The `kind` of an error in `--json` (docs/cli.md), from its exit code: one name a row of
/// the README's table.
pub fn kind_name(code: i32) -> &'static str {
    match code {
        QUALITY_GATE => "quality_gate",
        USAGE => "usage",
        BAD_INPUT => "bad_input",
        IO => "io",
        INTERRUPTED => "interrupted",
        TERMINATED => "terminated",
        _ => "internal",
    }
}

/// The exit code for an error anywhere in the chain.
pub fn for_error(err: &anyhow::Error) -> i32 {
    match err.downcast_ref::<Error>().map(Error::kind) {
        Some(ErrorKind::BadInput) => BAD_INPUT,
        Some(ErrorKind::Io) => IO,
        Some(ErrorKind::Usage) => USAGE,
        Some(ErrorKind::Cancelled) => INTERRUPTED,
        Some(ErrorKind::Internal) => INTERNAL,
        Some(_) => INTERNAL,
        None => IO,
    }
}
