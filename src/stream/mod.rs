//! Streaming to and from any [`Read`](std::io::Read) and [`Write`], for
//! embedding Vectro in a service: no file paths, no seeking, bounded memory.
//!
//! - [`Compressor`] turns a `.npy` stream (or a float slice) into a container written to any
//!   writer.
//! - [`Decompressor`] reads a container front to back from any reader (a pipe, a socket, an
//!   HTTP body), checks every checksum, and hands out decoded chunks or writes a `.npy`.
//! - [`export_jsonl`] writes `{"id": N, "vector": [...]}` lines for vector-database batch
//!   upserts, formatting floats on all workers.
//!
//! All three run on [`run_ordered`](crate::par::run_ordered): at most
//! `3 × threads + 1` chunks are in flight, whatever the input size.
//!
//! ```
//! use vectro::stream::{Compressor, Decompressor};
//!
//! let data: Vec<f32> = (0..1000 * 16).map(|i| (i as f32 * 0.01).cos()).collect();
//! let mut container = Vec::new();
//! Compressor::new().codec("int8").compress_f32(&data, 16, &mut container)?;
//!
//! let mut npy = Vec::new();
//! let s = Decompressor::new().decompress_npy(container.as_slice(), &mut npy)?;
//! assert_eq!((s.rows, s.dims), (1000, 16));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod compressor;
mod decompressor;
mod jsonl;
mod parquet;

use std::io::{self, Write};

use serde::Serialize;

pub use compressor::Compressor;
pub use decompressor::Decompressor;
pub use jsonl::{
    ExportSummary, JsonlOptions, export_jsonl, push_f32, push_jsonl_row, push_jsonl_row_id,
    push_payload_fields,
};
pub use parquet::{ParquetOptions, export_parquet, parquet_schema};

/// What a streaming compress or decompress did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamSummary {
    /// The codec's name.
    pub codec: String,
    /// Rows processed.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// Chunks processed.
    pub chunks: u64,
    /// Bytes read from the input.
    pub bytes_in: u64,
    /// Bytes written to the output.
    pub bytes_out: u64,
}

/// Counts the bytes that pass through a writer.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
