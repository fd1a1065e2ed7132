//! `verify`: checks every checksum of a container in one sequential pass, and everything a
//! reader checks.
//!
//! The file is read in order, a chunk at a time, so memory stays bounded (one chunk and its
//! decoded rows, the header, and 32 bytes of index a chunk). Every byte of a valid file is
//! covered by the header's, a chunk's, the index's or the trailer's crc32c, so any flipped
//! byte is reported; each chunk whose checksum passes is then unstaged and decoded as a
//! reader would, so a file a faulty writer made (a zstd frame of the wrong size, a NaN
//! scale, with checksums that match) fails too.
//!
//! Order: header, trailer, index, then the chunks from first to last. A chunk whose own
//! header is damaged is skipped using the index when the index is sound; without an index
//! (an incomplete file) the walk stops there.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use byteorder::{ByteOrder, LittleEndian as LE};
use serde::Serialize;

use super::ids::{self, IdKind};
use super::layout::{check_chunk_header, check_trailer, codec_for, parse_index};
use super::{CHUNK_HEADER_LEN, CHUNK_OVERHEAD, ChunkEntry, Header, MAX_HEADER_LEN, TRAILER_LEN};
use crate::codec::{Codec, PayloadStage, Tiered};
use crate::error::{Error, Result};

/// Bytes read at a time.
const BLOCK: usize = 1 << 20;
/// Problems listed in a report; more are only counted.
const MAX_LISTED: usize = 100;

/// One thing wrong with a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Which part: `header`, `chunk`, `index`, `trailer` or `file`.
    pub part: &'static str,
    /// The chunk number, for a chunk.
    pub chunk: Option<u64>,
    /// Byte range of the damaged part (as far as it is known).
    pub bytes: [u64; 2],
    /// Row range the damaged chunk holds, for a chunk.
    pub rows: Option<[u64; 2]>,
    /// What is wrong.
    pub message: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The file checked.
    pub path: PathBuf,
    /// True when every check passed.
    pub ok: bool,
    /// File size.
    pub file_bytes: u64,
    /// Codec name, once the header is read.
    pub codec: Option<String>,
    /// Rows the header declares.
    pub rows: Option<u64>,
    /// Dimensions per row.
    pub dims: Option<u32>,
    /// Chunks the header implies.
    pub chunks: u64,
    /// Chunks whose framing and crc32c passed.
    pub chunks_ok: u64,
    /// Rows in those chunks.
    pub rows_ok: u64,
    /// Problems found, in file order (at most 100 listed).
    pub problems: Vec<Problem>,
    /// Problems found in all.
    pub problem_count: u64,
    /// The first damaged chunk, if any: the first thing to look at.
    pub first_bad_chunk: Option<Problem>,
}

impl VerifyReport {
    fn new(path: &Path, file_bytes: u64) -> Self {
        VerifyReport {
            path: path.to_path_buf(),
            ok: false,
            file_bytes,
            codec: None,
            rows: None,
            dims: None,
            chunks: 0,
            chunks_ok: 0,
            rows_ok: 0,
            problems: Vec::new(),
            problem_count: 0,
            first_bad_chunk: None,
        }
    }

    fn add(&mut self, p: Problem) {
        if p.part == "chunk" && self.first_bad_chunk.is_none() {
            self.first_bad_chunk = Some(p.clone());
        }
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(p);
        }
    }

    fn whole(&mut self, part: &'static str, bytes: [u64; 2], err: Error) {
        let message = match err {
            Error::Corrupt { msg, .. } => msg,
            e => e.to_string(),
        };
        self.add(Problem {
            part,
            chunk: None,
            bytes,
            rows: None,
            message,
        });
    }
}

/// Verifies the container at `path`.
///
/// # Errors
/// [`Error::Io`] if the file cannot be opened or read. A damaged file is not an error: it
/// is a report with `ok == false`.
pub fn verify(path: &Path) -> Result<VerifyReport> {
    verify_with(path, &crate::progress::NoProgress)
}

/// [`verify`], reporting the chunks read to `progress` (rows and bytes, a chunk at a time).
///
/// # Errors
/// As [`verify`].
pub fn verify_with(path: &Path, progress: &dyn crate::progress::Progress) -> Result<VerifyReport> {
    let file = crate::input::open_input(path)?;
    let meta = file
        .metadata()
        .map_err(|e| Error::io(path, "reading metadata of", e))?;
    if meta.is_dir() {
        return Err(Error::corrupt(
            path,
            "is a directory, not a vectro container",
        ));
    }
    let r = BufReader::with_capacity(BLOCK, file);
    let rep = verify_reader_with(path, r, meta.len(), progress);
    progress.finish();
    rep.map_err(|e| Error::io(path, "reading", e))
}

/// Verifies a container read from `r`, which holds `len` bytes; `path` names it.
///
/// # Errors
/// Only the reader's errors.
pub fn verify_reader<R: BufRead + Seek>(
    path: &Path,
    r: R,
    len: u64,
) -> std::io::Result<VerifyReport> {
    verify_reader_with(path, r, len, &crate::progress::NoProgress)
}

/// [`verify_reader`], reporting each chunk walked to `progress`.
///
/// # Errors
/// Only the reader's errors.
pub fn verify_reader_with<R: BufRead + Seek>(
    path: &Path,
    mut r: R,
    len: u64,
    progress: &dyn crate::progress::Progress,
) -> std::io::Result<VerifyReport> {
    let mut rep = VerifyReport::new(path, len);
    let Some((header, header_len)) = read_header(path, &mut r, len, &mut rep)? else {
        return Ok(rep);
    };
    rep.rows = Some(header.rows);
    rep.dims = Some(header.dims);
    rep.chunks = header.chunk_count();
    let codec = match codec_for(path, &header) {
        Ok(c) => c,
        Err(e) => {
            rep.whole("header", [0, header_len as u64], e);
            return Ok(rep);
        }
    };
    rep.codec = Some(codec.name());
    let index = read_tail(
        path,
        &mut r,
        len,
        &header,
        header_len,
        codec.as_ref(),
        &mut rep,
    )?;
    progress.begin(header.rows, len);
    let end = walk_chunks(
        &mut r,
        len,
        (&header, header_len),
        codec.as_ref(),
        index.as_deref(),
        &mut rep,
        progress,
    )?;
    if let Some(idx) = &index {
        let index_start = idx.last().map_or(header_len as u64, |e| e.offset + e.len);
        if end != index_start && rep.problem_count == 0 {
            rep.whole(
                "file",
                [end, index_start],
                Error::corrupt(path, "chunks do not end where the index starts"),
            );
        }
    }
    if rep.problem_count == 0 && rep.rows_ok != header.rows {
        let msg = format!(
            "chunks hold {} rows, the header says {}",
            rep.rows_ok, header.rows
        );
        rep.whole("file", [0, len], Error::corrupt(path, msg));
    }
    rep.ok = rep.problem_count == 0;
    rep.problems.sort_by_key(|p| p.bytes[0]);
    Ok(rep)
}

fn read_header<R: Read + Seek>(
    path: &Path,
    r: &mut R,
    len: u64,
    rep: &mut VerifyReport,
) -> std::io::Result<Option<(Header, usize)>> {
    let mut prefix = vec![0u8; len.min(12) as usize];
    r.read_exact(&mut prefix)?;
    // The claimed length is only trusted as far as the file and the format's limit allow;
    // Header::decode then names what is wrong.
    let claimed = if prefix.len() == 12 {
        LE::read_u32(&prefix[8..12]) as u64
    } else {
        0
    };
    let take = claimed.clamp(12, MAX_HEADER_LEN as u64).min(len) as usize;
    let mut bytes = prefix;
    bytes.resize(take.max(bytes.len()), 0);
    let have = bytes.len().min(12);
    r.read_exact(&mut bytes[have..])?;
    match Header::decode(path, &bytes) {
        Ok(h) => Ok(Some(h)),
        Err(e) => {
            rep.whole("header", [0, bytes.len() as u64], e);
            Ok(None)
        }
    }
}

/// Checks the trailer and the index; returns the index if both are sound.
fn read_tail<R: Read + Seek>(
    path: &Path,
    r: &mut R,
    len: u64,
    header: &Header,
    header_len: usize,
    codec: &dyn Codec,
    rep: &mut VerifyReport,
) -> std::io::Result<Option<Vec<ChunkEntry>>> {
    if len < (header_len + TRAILER_LEN) as u64 {
        let msg = "no trailer: the file ends too early (incomplete or truncated; an interrupted compress can be finished with --resume)";
        rep.whole(
            "trailer",
            [header_len as u64, len],
            Error::corrupt(path, msg),
        );
        return Ok(None);
    }
    let mut t = [0u8; TRAILER_LEN];
    r.seek(SeekFrom::Start(len - TRAILER_LEN as u64))?;
    r.read_exact(&mut t)?;
    let at = match check_trailer(path, &t, len, header, header_len) {
        Ok(at) => at,
        Err(e) => {
            rep.whole("trailer", [len - TRAILER_LEN as u64, len], e);
            return Ok(None);
        }
    };
    // check_trailer bounded the index by the file size, so this allocation is too.
    let mut raw = vec![0u8; at.len as usize];
    r.seek(SeekFrom::Start(at.offset))?;
    r.read_exact(&mut raw)?;
    match parse_index(path, &raw, at, header, header_len, codec) {
        Ok(idx) => Ok(Some(idx)),
        Err(e) => {
            rep.whole("index", [at.offset, at.offset + at.len], e);
            Ok(None)
        }
    }
}

/// Walks the chunks in order, streaming each through its crc; returns where the last
/// chunk walked ends.
fn walk_chunks<R: BufRead + Seek>(
    r: &mut R,
    len: u64,
    (header, header_len): (&Header, usize),
    codec: &dyn Codec,
    index: Option<&[ChunkEntry]>,
    rep: &mut VerifyReport,
    progress: &dyn crate::progress::Progress,
) -> std::io::Result<u64> {
    // A tiered file's tiers, each of which has its own crc (format 1.6); the header's
    // codec was built from the same specs, so this cannot fail where that did not.
    let tiers = match header.tiers.is_empty() {
        true => None,
        false => crate::codec::tiers::tiered_from_specs(
            &header.tiers,
            &header.codec,
            header.dims as usize,
        )
        .ok(),
    };
    let tiers = tiers.as_ref();
    let limit = index
        .and_then(|i| i.last())
        .map_or(len, |e| e.offset + e.len);
    let mut at = header_len as u64;
    r.seek(SeekFrom::Start(at))?;
    let (mut buf, mut floats) = (Vec::new(), Vec::new());
    for i in 0..header.chunk_count() {
        let first = i * header.chunk_rows as u64;
        let rows = [first, first + header.rows_in_chunk(i)];
        let bad = |rep: &mut VerifyReport, end: u64, message: String| {
            rep.add(Problem {
                part: "chunk",
                chunk: Some(i),
                bytes: [at, end],
                rows: Some(rows),
                message,
            })
        };
        if at + CHUNK_HEADER_LEN as u64 > limit {
            bad(
                rep,
                limit,
                "missing: the file ends before this chunk".into(),
            );
            return Ok(at);
        }
        let mut h = [0u8; CHUNK_HEADER_LEN];
        r.read_exact(&mut h)?;
        let framed = check_chunk_header(&h, i, header, codec);
        let payload_len = match framed {
            Ok((_, p)) if at.saturating_add(CHUNK_OVERHEAD as u64).saturating_add(p) <= limit => p,
            Ok(_) => {
                bad(
                    rep,
                    limit,
                    "truncated: the file ends inside this chunk".into(),
                );
                return Ok(at);
            }
            Err(msg) => {
                let Some(e) = index.map(|idx| idx[i as usize]) else {
                    bad(rep, at + CHUNK_HEADER_LEN as u64, msg);
                    return Ok(at);
                };
                bad(rep, e.offset + e.len, msg);
                at = e.offset + e.len;
                r.seek(SeekFrom::Start(at))?;
                continue;
            }
        };
        // The payload is held (a chunk at most) to decode it once its checksum passes.
        buf.resize(payload_len as usize, 0);
        r.read_exact(&mut buf)?;
        let c = super::crc_append(super::crc(&h), &buf);
        let mut stored = [0u8; 4];
        r.read_exact(&mut stored)?;
        let end = at + CHUNK_OVERHEAD as u64 + payload_len;
        let tier = bad_tier(&buf, rows[1] - rows[0], header, tiers);
        if c != u32::from_le_bytes(stored) {
            bad(
                rep,
                end,
                format!(
                    "chunk checksum mismatch: the payload is corrupt{}",
                    tier.map(|t| format!(" ({t})")).unwrap_or_default()
                ),
            );
        } else if let Some(t) = tier {
            bad(rep, end, format!("{t}: the payload is corrupt"));
        } else if let Some(msg) = check_ids(r, at, payload_len, rows[1] - rows[0], header, codec)? {
            bad(rep, end, msg);
            r.seek(SeekFrom::Start(end))?;
        } else if let Some(msg) = check_decoded(&buf, rows, header, codec, &mut floats) {
            bad(rep, end, msg);
        } else {
            rep.chunks_ok += 1;
            rep.rows_ok += rows[1] - rows[0];
        }
        progress.advance(rows[1] - rows[0], end - at);
        at = end;
    }
    Ok(at)
}

/// In a tiered file (format 1.6), the first tier of the chunk payload `stored` (of `n`
/// rows) whose own crc32c does not match it, named; `None` when every tier checks or the
/// file has no tiers.
fn bad_tier(stored: &[u8], n: u64, header: &Header, tiers: Option<&Tiered>) -> Option<String> {
    let t = tiers?;
    let (staged, _) = super::layout::split_ids(stored, n, header).ok()?;
    let bad = t.first_bad_tier(staged, n as usize)?;
    Some(format!(
        "tier {bad} ({}) fails its own crc32c",
        t.tiers()[bad].name()
    ))
}

/// What a reader would refuse in a chunk whose checksum and ids passed: a payload that does
/// not unstage (a zstd frame that does not decompress to the codec's size) or rows that
/// decode to NaN or infinity. `None` when it decodes cleanly; `floats` is scratch.
fn check_decoded(
    stored: &[u8],
    rows: [u64; 2],
    header: &Header,
    codec: &dyn Codec,
    floats: &mut Vec<f32>,
) -> Option<String> {
    let n = rows[1] - rows[0];
    let payload = match super::layout::unstage(stored, n, header, codec) {
        Ok(p) => p,
        Err(msg) => return Some(format!("{msg}; the file is corrupt")),
    };
    let row = codec.first_non_finite_row(&payload, n as usize, floats)?;
    Some(format!(
        "row {} decodes to NaN or infinity, though its checksum matches: the file was written \
         wrongly (by a faulty tool, or edited with its checksums recomputed); its rows cannot \
         be trusted, compress again from the source",
        rows[0] + row as u64
    ))
}

/// Checks the ids and payload columns at the end of the chunk at byte `at` (whose crc
/// matched), reading back only their blocks (bounded by the format's per-chunk limits);
/// the reader is left where it was, at the chunk's end. `None` when they are sound, or the
/// container has neither.
fn check_ids<R: Read + Seek>(
    r: &mut R,
    at: u64,
    payload_len: u64,
    rows: u64,
    header: &Header,
    codec: &dyn Codec,
) -> std::io::Result<Option<String>> {
    if header.ids == IdKind::None && !header.payload {
        return Ok(None);
    }
    let end = r.stream_position()?;
    let mut payload_end = at + CHUNK_HEADER_LEN as u64 + payload_len;
    let mut payload_len = payload_len;
    if header.payload {
        let msg = match check_payload(r, payload_end, payload_len, rows)? {
            Ok(n) => {
                payload_end -= n;
                payload_len -= n;
                None
            }
            Err(m) => Some(m),
        };
        if msg.is_some() || header.ids == IdKind::None {
            r.seek(SeekFrom::Start(end))?;
            return Ok(msg);
        }
    }
    let mut last = [0u8; 4];
    let tail = payload_len.min(4);
    r.seek(SeekFrom::Start(payload_end - tail))?;
    r.read_exact(&mut last[4 - tail as usize..])?;
    // The block's length is read from its end (see `ids`): the last u32 of string ids.
    let n = match header.ids {
        IdKind::Str => u64::from(LE::read_u32(&last)) + 4 * rows,
        _ => 8 * rows,
    };
    let result = if n > payload_len || n - 4 * rows > ids::MAX_CHUNK_ID_BYTES {
        Err(format!(
            "its ids take {n} bytes, more than its {payload_len}-byte payload or the format's limit"
        ))
    } else {
        Ok(n)
    };
    let msg = match result {
        Err(m) => Some(m),
        Ok(n) => {
            let staged = payload_len - n;
            let plain = codec.encoded_len(rows as usize) as u64;
            if header.stage == PayloadStage::Plain && staged != plain {
                Some(format!(
                    "holds {staged} payload bytes before its ids, the codec needs {plain}"
                ))
            } else {
                let mut block = vec![0u8; n as usize];
                r.seek(SeekFrom::Start(payload_end - n))?;
                r.read_exact(&mut block)?;
                ids::check_block(header.ids, &block, rows as usize).err()
            }
        }
    };
    r.seek(SeekFrom::Start(end))?;
    Ok(msg.map(|m| format!("bad ids: {m}")))
}

/// Reads back and decodes the payload columns' block that ends the stored payload at
/// `payload_end`; its bytes (block and length field), or what is wrong with it.
fn check_payload<R: Read + Seek>(
    r: &mut R,
    payload_end: u64,
    payload_len: u64,
    rows: u64,
) -> std::io::Result<std::result::Result<u64, String>> {
    if payload_len < 8 {
        return Ok(Err(
            "bad payload columns: the payload is too short for them".into(),
        ));
    }
    let mut len = [0u8; 8];
    r.seek(SeekFrom::Start(payload_end - 8))?;
    r.read_exact(&mut len)?;
    let p = u64::from_le_bytes(len);
    if p > super::payload::MAX_BLOCK_BYTES || p > payload_len - 8 {
        return Ok(Err(format!(
            "bad payload columns: they claim {p} bytes, more than the payload or the format's limit"
        )));
    }
    let mut block = vec![0u8; p as usize];
    r.seek(SeekFrom::Start(payload_end - 8 - p))?;
    r.read_exact(&mut block)?;
    Ok(super::payload::decode_block(&block, rows as usize)
        .map(|_| p + 8)
        .map_err(|m| format!("bad payload columns: {m}")))
}
