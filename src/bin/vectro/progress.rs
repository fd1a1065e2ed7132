//! The library's Progress trait drawn as an indicatif bar on stderr.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vectro::Progress;

/// The bar over rows: MB/s and ETA.
const ROWS: &str = "{prefix} [{bar:30}] {human_pos}/{human_len} rows  {msg}  ETA {eta}";
/// The bar over the steps of a stage (training iterations), named by `{msg}`.
const STEPS: &str = "{prefix} [{bar:30}] {human_pos}/{human_len} {msg}  ETA {eta}";

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}

/// A progress bar over rows, showing MB/s and ETA; hidden off a terminal or with --quiet.
/// A stage before the rows (training) is drawn over its own steps, and the rate and ETA
/// of the rows count from their start only.
pub struct Bar {
    bar: ProgressBar,
    what: String,
    bytes: AtomicU64,
    /// When the rows started: MB/s counts from here, not from a training before them.
    start: Mutex<Instant>,
}

impl Bar {
    pub fn new(quiet: bool, what: &str) -> Bar {
        let bar = ProgressBar::hidden();
        if !quiet && std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_style(style(ROWS));
        bar.set_prefix(what.to_string());
        Bar {
            bar,
            what: what.to_string(),
            bytes: AtomicU64::new(0),
            start: Mutex::new(Instant::now()),
        }
    }
}

impl Progress for Bar {
    fn begin(&self, rows: u64, _bytes: u64) {
        // Whatever came before (a training stage) is not encode time: the ETA and the
        // rate start again here.
        // Reset first: the bar never draws the old position against the new length.
        self.bar.reset();
        self.bar.set_style(style(ROWS));
        self.bar.set_message("");
        self.bar.set_length(rows);
        self.bytes.store(0, Ordering::Relaxed);
        if let Ok(mut s) = self.start.lock() {
            *s = Instant::now();
        }
    }

    fn advance(&self, rows: u64, bytes: u64) {
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let start = self.start.lock().map_or_else(|_| Instant::now(), |s| *s);
        let secs = start.elapsed().as_secs_f64().max(1e-6);
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

    fn stage(&self, what: &str, steps: u64) {
        self.bar.reset();
        self.bar.set_style(style(STEPS));
        self.bar.set_message(what.to_string());
        self.bar.set_length(steps);
    }

    fn step(&self, n: u64) {
        self.bar.inc(n);
    }
}
