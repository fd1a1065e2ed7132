//! Resuming a compress run from the partial output an interrupted run left behind.
//!
//! A compress run appends chunks in order to `<dir>/.<name>.partial` and flushes each one,
//! so a run killed at any point leaves a prefix of the final file: the header, complete
//! chunks, perhaps a torn chunk. `--resume` keeps that prefix when it provably belongs to
//! the same output:
//!
//! - the header bytes are identical: same input name, size and mtime (in the metadata),
//!   same shape and dtype, same codec and parameters, same rows per chunk, same vectro;
//! - every kept chunk passes its framing and crc32c checks (those of
//!   [`scan_chunks`](crate::format::scan_chunks), read a chunk at a time so that memory
//!   does not grow with the partial);
//! - the first and the last kept chunk are re-encoded from the input and compared byte for
//!   byte, which catches an input rewritten in place with its mtime preserved.
//!
//! Anything after the last good chunk is truncated, and compression continues from the
//! next row. Encoding is deterministic, so the result is byte-identical to an uninterrupted
//! run.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::format::layout::{check_chunk_header, chunk_crc_ok};
use crate::format::{CHUNK_HEADER_LEN, CHUNK_OVERHEAD, ChunkEntry, Header};
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
    let file = out.file();
    let len = file
        .metadata()
        .map_err(|e| Error::io(path, "reading metadata of", e))?
        .len();
    if len == 0 {
        return Ok(Start::default());
    }
    // The partial is read a chunk at a time into buffers reused for every chunk, not
    // mapped: pages of a map count toward the resident set, and a scan of a map of the
    // whole partial held all of it (885 MiB resuming a 0.9 GB partial).
    let read = |buf: &mut [u8], at: u64| {
        file.read_exact_at(buf, at)
            .map_err(|e| Error::io(path, "reading", e))
    };
    let want = header.encode();
    let head_len = want.len() as u64;
    if len <= head_len {
        let mut head = vec![0; len as usize];
        read(&mut head, 0)?;
        if want.starts_with(&head) {
            return Ok(Start::default()); // killed while writing the header: nothing to keep
        }
    }
    let mut head = vec![0; head_len.min(len) as usize];
    read(&mut head, 0)?;
    if head != want {
        return Ok(discard(why_headers_differ(path, file, len, header)?));
    }
    // The walk of `scan_chunks` (the layout's own checks of each chunk's framing and
    // crc), on one chunk at a time; the first and the last kept chunk stay in `first`
    // and `last` to be compared with the input.
    let (mut first, mut last, mut next) = (Vec::new(), Vec::new(), Vec::new());
    let mut chunks = Vec::new();
    let mut at = head_len;
    for i in 0..header.chunk_count() {
        let mut h = [0u8; CHUNK_HEADER_LEN];
        if at + CHUNK_HEADER_LEN as u64 > len {
            break;
        }
        read(&mut h, at)?;
        let Ok((rows, payload_len)) = check_chunk_header(&h, i, header, codec) else {
            break;
        };
        let Some(chunk_len) = payload_len
            .checked_add(CHUNK_OVERHEAD as u64)
            .filter(|l| at.checked_add(*l).is_some_and(|end| end <= len))
        else {
            break;
        };
        next.resize(chunk_len as usize, 0);
        read(&mut next, at)?;
        if !chunk_crc_ok(&next) {
            break;
        }
        chunks.push(ChunkEntry {
            offset: at,
            len: chunk_len,
            first_row: i * header.chunk_rows as u64,
            rows,
        });
        if i == 0 {
            first.clone_from(&next);
        }
        std::mem::swap(&mut last, &mut next);
        at += chunk_len;
    }
    let payload = |whole: &[u8]| whole[CHUNK_HEADER_LEN..whole.len() - 4].to_vec();
    if let Some(n) = chunks.len().checked_sub(1) {
        for (i, whole) in [(0, &first), (n, &last)]
            .into_iter()
            .take(chunks.len().min(2))
        {
            if reencode(i as u64)? != payload(whole) {
                return Ok(discard(format!(
                    "chunk {i} differs from the input re-encoded (the input or its ids changed since)"
                )));
            }
        }
    }
    Ok(Start {
        offset: if chunks.is_empty() { 0 } else { at },
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

/// Says which setting differs between the header of the partial `file` (`len` bytes) and
/// the one this run writes.
fn why_headers_differ(path: &Path, file: &File, len: u64, want: &Header) -> Result<String> {
    // The header's length is at bytes 8..12; a header of other settings is about as long
    // as this run's, and one claiming far more is read only as far as a bound.
    let mut at8 = [0u8; 12];
    let claimed = match file.read_exact_at(&mut at8, 0) {
        Ok(()) => u64::from(u32::from_le_bytes([at8[8], at8[9], at8[10], at8[11]])),
        Err(_) => 0,
    };
    let bound = (want.encode().len() as u64).max(MAX_OLD_HEADER);
    let mut head = vec![0; claimed.min(bound).min(len) as usize];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| Error::io(path, "reading", e))?;
    Ok(describe_difference(path, &head, want))
}

/// The most bytes of a differing header read to describe it.
const MAX_OLD_HEADER: u64 = 64 << 20;

fn describe_difference(path: &Path, head: &[u8], want: &Header) -> String {
    let Ok((old, _)) = Header::decode(path, head) else {
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
