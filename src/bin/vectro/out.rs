//! Printing that never panics.
//!
//! `outln!` panics when stdout cannot be written (`> /dev/full`, a closed pipe), and
//! `errln!` when stderr cannot. Here a failed stdout write is remembered, later output is
//! dropped, and [`finish`] hands the first error to `main`, which reports it and picks the
//! exit code (a broken pipe is a reader that has seen enough: exit 0). Errors writing to
//! stderr are ignored: there is nowhere left to report them.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// The first error writing to stdout, if any.
static FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

/// Writes one line to stdout, unless an earlier write failed.
pub fn line(args: fmt::Arguments<'_>) {
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

/// `errln!` that never panics.
macro_rules! errln {
    () => { $crate::out::err_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::err_line(format_args!($($arg)*)) };
}
