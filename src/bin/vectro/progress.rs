//! The library's Progress trait drawn as an indicatif bar on stderr.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vectro::Progress;

/// A progress bar over rows, showing MB/s and ETA; hidden off a terminal or with --quiet.
pub struct Bar {
    bar: ProgressBar,
    what: String,
    bytes: AtomicU64,
    start: Instant,
}

impl Bar {
    pub fn new(quiet: bool, what: &str) -> Bar {
        let bar = ProgressBar::hidden();
        if !quiet && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {human_pos}/{human_len} rows  {msg}  ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        Bar {
            bar,
            what: what.to_string(),
            bytes: AtomicU64::new(0),
            start: Instant::now(),
        }
    }
}

impl Progress for Bar {
    fn begin(&self, rows: u64, _bytes: u64) {
        self.bar.set_length(rows);
    }

    fn advance(&self, rows: u64, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let secs = self.start.elapsed().as_secs_f64().max(1e-6);
        self.bar
            .set_message(format!("{:.0} MB/s", total as f64 / 1e6 / secs));
        self.bar.inc(rows);
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn note(&self, msg: &str) {
        self.bar.suspend(|| errln!("{}: {msg}", self.what));
    }
}
