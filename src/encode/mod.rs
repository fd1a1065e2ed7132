//! The encode core, shared by `compress()` and
//! `stream::Compressor`: the worker stage ([`worker`]: a
//! chunk of source rows into a chunk payload, zstd stage included) and the ordered writer
//! stage ([`writer`]: finished chunks appended in order, buffers handed back).

pub mod ids;
pub(crate) mod worker;
pub mod writer;

/// Input bytes a default chunk aims for: a few MiB keeps workers busy and memory small.
const TARGET_CHUNK_BYTES: u64 = 4 << 20;

/// The default rows per chunk for `dims`-dimensional float32 rows.
pub fn default_chunk_rows(dims: u64) -> u32 {
    (TARGET_CHUNK_BYTES / (dims * 4)).clamp(1, u32::MAX as u64) as u32
}
