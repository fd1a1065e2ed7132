//! Resuming a compress run from the partial output an interrupted run left behind.
//!
//! A compress run appends chunks in order to `<dir>/.<name>.partial` and flushes each one,
//! so a run killed at any point leaves a prefix of the final file: the header, complete
//! chunks, perhaps a torn chunk. `--resume` keeps that prefix when it provably belongs to
//! the same output:
//!
//! - the header bytes are identical: same input name, size and mtime (in the metadata),
//!   same shape and dtype, same codec and parameters, same rows per chunk, same vectro;
//! - every kept chunk passes its framing and crc32c checks ([`scan_chunks`]);
//! - the first and the last kept chunk are re-encoded from the input and compared byte for
//!   byte, which catches an input rewritten in place with its mtime preserved.
//!
//! Anything after the last good chunk is truncated, and compression continues from the
//! next row. Encoding is deterministic, so the result is byte-identical to an uninterrupted
//! run.

use std::io::{Seek, SeekFrom};

use memmap2::Mmap;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::format::{ChunkEntry, Header, scan_chunks};
use crate::output::AtomicOutput;

/// Where the writer starts: after these chunks, at this byte offset.
#[derive(Debug, Default)]
pub(crate) struct Start {
    /// Chunks already in the file, in order.
    pub chunks: Vec<ChunkEntry>,
    /// Bytes of the kept prefix (header and chunks).
    pub offset: u64,
    /// Why an existing partial output was not reused, if one was found.
    pub discarded: Option<String>,
}

impl Start {
    /// Rows already in the file.
    pub fn rows(&self) -> u64 {
        self.chunks.iter().map(|c| c.rows).sum()
    }
}

/// Positions `out` for writing: empties it, or with `resume`, keeps what an earlier run
/// of the same compression left in it.
///
/// # Errors
/// [`Error::Io`] naming the partial file; a bad input found while re-encoding.
/// `reencode(i)` encodes chunk `i` of this output afresh from the input (payload stage
/// included), so that kept chunks can be checked against the input.
pub(crate) fn prepare(
    out: &AtomicOutput,
    header: &Header,
    codec: &dyn Codec,
    resume: bool,
    reencode: &dyn Fn(u64) -> Result<Vec<u8>>,
) -> Result<Start> {
    let start = if resume {
        reusable_prefix(out, header, codec, reencode)?
    } else {
        Start::default()
    };
    out.truncate(start.offset)?;
    let mut f = out.file();
    f.seek(SeekFrom::Start(start.offset))
        .map_err(|e| Error::io(out.tmp_path(), "seeking in", e))?;
    Ok(start)
}

fn reusable_prefix(
    out: &AtomicOutput,
    header: &Header,
    codec: &dyn Codec,
    reencode: &dyn Fn(u64) -> Result<Vec<u8>>,
) -> Result<Start> {
    let path = out.tmp_path();
    let len = out
        .file()
        .metadata()
        .map_err(|e| Error::io(path, "reading metadata of", e))?
        .len();
    if len == 0 {
        return Ok(Start::default());
    }
    // SAFETY: read-only view of a file we hold the exclusive vectro lock on; the map is
    // dropped before the file is truncated or written.
    let map = unsafe { Mmap::map(out.file()) }.map_err(|e| Error::io(path, "mapping", e))?;
    let want = header.encode();
    if want.starts_with(&map) {
        return Ok(Start::default()); // killed while writing the header: nothing to keep
    }
    if map.get(..want.len()) != Some(&want[..]) {
        return Ok(discard(why_headers_differ(path, &map, header)));
    }
    let (chunks, end) = scan_chunks(&map, header, want.len(), codec);
    for &i in [0, chunks.len().saturating_sub(1)]
        .iter()
        .take(chunks.len().min(2))
    {
        let fresh = reencode(i as u64)?;
        if map.get(chunks[i].payload_range()) != Some(&fresh[..]) {
            return Ok(discard(format!(
                "chunk {i} differs from the input re-encoded (the input or its ids changed since)"
            )));
        }
    }
    Ok(Start {
        offset: if chunks.is_empty() { 0 } else { end },
        chunks,
        discarded: None,
    })
}

fn discard(reason: String) -> Start {
    Start {
        discarded: Some(reason),
        ..Start::default()
    }
}

/// Says which setting differs between the partial's header and the one this run writes.
fn why_headers_differ(path: &std::path::Path, map: &[u8], want: &Header) -> String {
    let Ok((old, _)) = Header::decode(path, map) else {
        return "its header is incomplete or unreadable".into();
    };
    let meta = |h: &Header, k: &str| h.metadata.get(k).cloned().unwrap_or_default();
    if meta(&old, "source") != meta(want, "source") {
        return format!(
            "it was written from {}, not {}",
            meta(&old, "source"),
            meta(want, "source")
        );
    }
    if ["source_bytes", "source_mtime"]
        .iter()
        .any(|k| meta(&old, k) != meta(want, k))
    {
        return format!(
            "the input changed since it was written ({} bytes, mtime {} then; {} bytes, mtime {} now)",
            meta(&old, "source_bytes"),
            meta(&old, "source_mtime"),
            meta(want, "source_bytes"),
            meta(want, "source_mtime")
        );
    }
    if old.codec != want.codec {
        return "it was written with another codec or codec parameters".into();
    }
    if old.chunk_rows != want.chunk_rows {
        return format!(
            "it was written with --chunk-rows {} (now {})",
            old.chunk_rows, want.chunk_rows
        );
    }
    "its header differs (another vectro version or settings)".into()
}
