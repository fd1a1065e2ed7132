//! Progress reporting: the library calls this trait; the binary draws a bar with it.

/// Receives progress from long-running operations. All methods have empty defaults.
pub trait Progress: Sync {
    /// The work is about to start: `rows` rows, `bytes` bytes of input in all. A stage
    /// before it ([`Progress::stage`]) is over: rates and ETA count from here.
    fn begin(&self, _rows: u64, _bytes: u64) {}
    /// `rows` more rows (`bytes` input bytes) are done.
    fn advance(&self, _rows: u64, _bytes: u64) {}
    /// The work is over, successfully or not.
    fn finish(&self) {}
    /// A message worth showing the user (a warning or a decision).
    fn note(&self, _msg: &str) {}
    /// A preparatory stage not counted in rows is about to start (training a codec: reading
    /// its sample, then its iterations): `what` names it and its unit (`"k-means
    /// iterations"`), `steps` is how many are planned. [`Progress::step`] reports them.
    fn stage(&self, _what: &str, _steps: u64) {}
    /// `n` more steps of the current [`Progress::stage`] are done.
    fn step(&self, _n: u64) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
