//! The streaming engine: reader → parallel workers → ordered writer.
//!
//! Memory in flight is bounded by the channel depths (see [`ordered`]), never by the input
//! size: at most `3 × threads + 1` chunks are between the reader and the writer.

mod compress;
pub mod dataset;
mod decompress;
pub mod dest;
pub mod memory;
pub mod ordered;
pub mod reader;
mod resume;
pub mod shard;
pub mod stream;
pub mod train;
pub mod writer;

pub use crate::progress::{NoProgress, Progress};
pub use compress::{CompressOptions, CompressSummary, compress, default_chunk_rows};
pub(crate) use compress::{check_finite, encode_block};
pub use decompress::{DecompressSummary, decompress, f32_le_bytes};
pub use memory::{MemorySource, compress_memory};

/// The number of worker threads to use when none is given: the available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// This process's peak resident set size in bytes, from `getrusage`.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage only writes into the struct we pass; zeroed is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc == 0 {
        ru.ru_maxrss as u64 * 1024
    } else {
        0
    }
}
