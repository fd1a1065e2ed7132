//! Vectro compresses embedding vectors: streaming, out of core, checksummed.
//!
//! A `.npy` of float32 rows is memory-mapped, cut into chunks, encoded by parallel workers
//! and written in order into a chunked container with an index, so that a dataset bigger
//! than RAM can be compressed, verified, evaluated, decompressed and read by row.
//!
//! ```
//! use std::sync::atomic::AtomicBool;
//! use vectro::{CompressOptions, Container, NoProgress, compress, generate, GenerateOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let npy = dir.path().join("x.npy");
//! let out = dir.path().join("x.vectro");
//! let stop = AtomicBool::new(false);
//! generate::generate(&npy, &GenerateOptions { rows: 1000, dims: 64, ..Default::default() },
//!     false, &NoProgress, &stop)?;
//! compress(&npy, &out, &CompressOptions::default(), &NoProgress, &stop)?;
//!
//! let c = Container::open(&out)?;
//! let mut row = vec![0f32; c.dims()];
//! c.get(17, &mut row)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod checksum;
pub mod codec;
mod encode;
mod error;
pub mod eval;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
mod input;
#[cfg(test)]
mod layers;
pub mod mapping;
pub mod merge;
pub mod npy;
pub mod npz;
pub mod output;
pub mod par;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod search;
pub mod serve;
pub mod simd;
pub mod source;
pub mod stream;
#[cfg(test)]
mod test_rng;

pub use codec::{Codec, CodecId, CodecSpec};
pub use error::{Error, ErrorKind, Result};
pub use format::Container;
pub use generate::GenerateOptions;
pub use merge::{MergeSummary, merge};
pub use pipeline::{
    CompressOptions, CompressSummary, DecompressSummary, MemorySource, OutDtype, compress,
    compress_memory, decompress, decompress_as,
};
pub use progress::{NoProgress, Progress};
