//! Printing that never panics.
//!
//! `outln!` panics when stdout cannot be written (`> /dev/full`, a closed pipe), and
//! `errln!` when stderr cannot. Here a failed stdout write is remembered, later output is
//! dropped, and [`finish`] hands the first error to `main`, which reports it and picks the
//! exit code (a broken pipe is a reader that has seen enough: exit 0). Errors writing to
//! stderr are ignored: there is nowhere left to report them.
//!
//! `-q` (no output but errors) is applied here, once for every command: `outln!` and
//! `noteln!` print nothing, `errln!` (errors) still prints.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The first error writing to stdout, if any.
static FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

/// `-q`: summaries, JSON and notes are dropped; errors and the data asked for still go out.
static QUIET: AtomicBool = AtomicBool::new(false);
/// `--json`: an error goes to stderr as one JSON object.
static JSON: AtomicBool = AtomicBool::new(false);

/// The version of every `--json` object's keys (docs/cli.md), printed as `"schema"`.
pub const SCHEMA: u32 = 1;

/// Sets `-q` and `--json` for the whole run.
pub fn set_mode(quiet: bool, json: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
    JSON.store(json, Ordering::Relaxed);
}

/// Whether `-q` was given.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether `--json` was given.
pub fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// A summary line or a note on stderr (a summary goes there when stdout carries data):
/// dropped with `-q`.
pub fn note_line(args: fmt::Arguments<'_>) {
    if !quiet() {
        err_line(args);
    }
}

/// Writes one line to stdout, unless an earlier write failed.
pub fn line(args: fmt::Arguments<'_>) {
    if quiet() {
        return;
    }
    let mut failed = FAILED.lock().unwrap_or_else(|p| p.into_inner());
    if failed.is_some() {
        return;
    }
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(format_args!("{args}\n")) {
        *failed = Some(e);
    }
}

/// Writes one line to stderr; a failure is ignored.
pub fn err_line(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(format_args!("{args}\n"));
}

/// Flushes stdout and returns the first error met writing to it.
pub fn finish() -> Option<io::Error> {
    let flushed = io::stdout().lock().flush();
    let mut failed = FAILED.lock().unwrap_or_else(|p| p.into_inner());
    match failed.take() {
        Some(e) => Some(e),
        None => flushed.err(),
    }
}

/// `outln!` that never panics: see the module doc.
macro_rules! outln {
    () => { $crate::out::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}

/// A note or a summary on stderr, dropped with `-q`; never panics.
macro_rules! noteln {
    ($($arg:tt)*) => { $crate::out::note_line(format_args!($($arg)*)) };
}

/// `errln!` that never panics: for errors, which `-q` keeps.
macro_rules! errln {
    () => { $crate::out::err_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::err_line(format_args!($($arg)*)) };
}
