//! Progress reporting: the library calls this trait; the binary draws a bar with it.

/// Receives progress from long-running operations. All methods have empty defaults.
pub trait Progress: Sync {
    /// The work is about to start: `rows` rows, `bytes` bytes of input in all.
    fn begin(&self, _rows: u64, _bytes: u64) {}
    /// `rows` more rows (`bytes` input bytes) are done.
    fn advance(&self, _rows: u64, _bytes: u64) {}
    /// The work is over, successfully or not.
    fn finish(&self) {}
    /// A message worth showing the user (a warning or a decision).
    fn note(&self, _msg: &str) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
