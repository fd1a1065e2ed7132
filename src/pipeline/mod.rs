//! The streaming engine: reader → parallel workers → ordered writer.
//!
//! Memory in flight is bounded by the channel depths (see [`ordered`]), never by the input
//! size: at most `3 × threads + 1` chunks are between the reader and the writer.

mod choose;
mod compress;
mod decompress;
pub mod memory;
mod options;
mod resume;
pub mod train;

pub use crate::npy::f32_le_bytes;
pub use crate::progress::{NoProgress, Progress};
pub use compress::{CompressOptions, CompressSummary, compress};
pub use decompress::{DecompressSummary, OutDtype, decompress, decompress_as};
pub use memory::{MemorySource, compress_memory};

// The modules and functions that moved to the layers below, at their old paths.
pub use crate::encode::default_chunk_rows;
pub use crate::encode::writer;
pub use crate::format::shard;
pub use crate::output::dest;
pub use crate::par::ordered;
pub use crate::par::{default_threads, peak_rss_bytes};
pub use crate::source::{dataset, reader, stream};
