//! The container's byte layout, parsed: the one place that checks a header, a chunk
//! header, a chunk's crc, the index and the trailer. Every check works on a byte slice, so
//! the memory-mapped reader ([`Container`](super::Container)), [`verify`](super::verify)
//! (streaming the file in blocks) and the `Read`-based
//! `stream::Decompressor` all judge a file the same way.

use std::borrow::Cow;
use std::ops::Range;
use std::path::Path;

use byteorder::{ByteOrder, LittleEndian as LE};

use super::ids::{self, IdKind};
use super::write::trailer_crc;
use super::{
    CHUNK_HEADER_LEN, CHUNK_MAGIC, CHUNK_OVERHEAD, Header, INDEX_ENTRY_LEN, INDEX_HEADER_LEN,
    INDEX_MAGIC, MAGIC, MAJOR, MAX_CHUNK_VALUES, TRAILER_LEN, crc,
};
use crate::codec::{self, Codec, PayloadStage};
use crate::error::{Error, Result};

/// Where one chunk lives in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Byte offset of the chunk header.
    pub offset: u64,
    /// Bytes of the whole chunk: header, payload and crc.
    pub len: u64,
    /// The first row it holds.
    pub first_row: u64,
    /// How many rows it holds.
    pub rows: u64,
}

impl ChunkEntry {
    /// Byte range of the stored payload: what the payload stage made of the codec's
    /// payload, then the rows' ids in a container that has them.
    pub fn payload_range(&self) -> Range<usize> {
        let start = self.offset as usize + CHUNK_HEADER_LEN;
        start..(self.offset + self.len) as usize - 4
    }
}

/// Builds the codec the header names, refusing chunks too large to decode safely.
pub(crate) fn codec_for(path: &Path, header: &Header) -> Result<Box<dyn Codec>> {
    let values = header
        .rows_in_chunk(0)
        .checked_mul(header.dims as u64)
        .filter(|&v| v <= MAX_CHUNK_VALUES);
    if values.is_none() {
        return Err(Error::corrupt(
            path,
            format!(
                "header: chunks of {} rows × {} dims exceed the {MAX_CHUNK_VALUES}-value limit; the header is corrupt",
                header.rows_in_chunk(0),
                header.dims
            ),
        ));
    }
    codec::tiers::from_specs(&header.tiers, &header.codec, header.dims as usize)
        .map_err(|e| Error::corrupt(path, format!("header: {e}")))
}

/// Where the trailer says the index is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexLocation {
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

/// Checks the trailer and the index of the whole container `map` (its header already
/// parsed) and returns the index; a file without a trailer is named as incomplete, with
/// the chunks a recovery scan finds intact.
pub(crate) fn read_index(
    path: &Path,
    map: &[u8],
    header: &Header,
    header_len: usize,
    codec: &dyn Codec,
) -> Result<Vec<ChunkEntry>> {
    let len = map.len();
    if len < header_len + TRAILER_LEN || map[len - 4..] != MAGIC {
        let (found, _) = scan_chunks(map, header, header_len, codec);
        let rows: u64 = found.iter().map(|c| c.rows).sum();
        return Err(Error::corrupt(
            path,
            format!(
                "incomplete container: no trailer at the end (the writer was probably killed or the file is truncated); \
                 {} complete chunks holding rows 0..{rows} of {} are intact; if this is an interrupted compress's .partial file, \
                 rerun that compress with --resume to finish it; a finished container cut short later (a partial copy or \
                 download) must be copied again",
                found.len(),
                header.rows
            ),
        ));
    }
    let t: &[u8; TRAILER_LEN] = map[len - TRAILER_LEN..].try_into().expect("length");
    let at = check_trailer(path, t, len as u64, header, header_len)?;
    let raw = &map[at.offset as usize..(at.offset + at.len) as usize];
    parse_index(path, raw, at, header, header_len, codec)
}

/// Checks the trailer (the last [`TRAILER_LEN`] bytes of a `file_len`-byte file) and that
/// the index it points to fits between the header and the trailer.
pub(crate) fn check_trailer(
    path: &Path,
    t: &[u8; TRAILER_LEN],
    file_len: u64,
    header: &Header,
    header_len: usize,
) -> Result<IndexLocation> {
    let corrupt = |msg: String| Error::corrupt(path, msg);
    let start = file_len - TRAILER_LEN as u64;
    if t[36..40] != MAGIC {
        return Err(corrupt(format!(
            "no trailer magic at byte {}: the file is incomplete or truncated",
            file_len - 4
        )));
    }
    if trailer_crc(t) != LE::read_u32(&t[28..32]) {
        return Err(corrupt(format!(
            "trailer checksum mismatch (bytes {start}..{file_len}); the trailer is corrupt"
        )));
    }
    let major = LE::read_u16(&t[32..34]);
    if major != MAJOR {
        return Err(corrupt(format!(
            "trailer format version {major} does not match the header's {MAJOR}; the file is corrupt or mixed"
        )));
    }
    let offset = LE::read_u64(&t[0..8]);
    let len = LE::read_u64(&t[8..16]);
    let rows = LE::read_u64(&t[16..24]);
    if rows != header.rows {
        return Err(corrupt(format!(
            "trailer says {rows} rows, header says {}",
            header.rows
        )));
    }
    let count = header.chunk_count();
    let want_len = count
        .checked_mul(INDEX_ENTRY_LEN as u64)
        .and_then(|n| n.checked_add(INDEX_HEADER_LEN as u64));
    if want_len != Some(len) || offset < header_len as u64 || offset.checked_add(len) != Some(start)
    {
        return Err(corrupt(format!(
            "index at bytes {offset}+{len} does not fit the file ({file_len} bytes, {count} chunks expected)"
        )));
    }
    Ok(IndexLocation {
        offset,
        len,
        crc: LE::read_u32(&t[24..28]),
    })
}

/// Checks the index bytes `raw` found `at` and returns its entries, which are known to be
/// contiguous from the header to the index and to agree with the header's shape.
pub(crate) fn parse_index(
    path: &Path,
    raw: &[u8],
    at: IndexLocation,
    header: &Header,
    header_len: usize,
    codec: &dyn Codec,
) -> Result<Vec<ChunkEntry>> {
    let corrupt = |msg: String| Error::corrupt(path, msg);
    if crc(raw) != at.crc {
        return Err(corrupt(format!(
            "index checksum mismatch (bytes {}..{}); the index is corrupt",
            at.offset,
            at.offset + at.len
        )));
    }
    let head = raw
        .get(..INDEX_HEADER_LEN)
        .filter(|&h| index_header_ok(h.try_into().expect("length"), header));
    if head.is_none() {
        return Err(corrupt(format!(
            "index header at byte {} is malformed",
            at.offset
        )));
    }
    let mut out = Vec::with_capacity(header.chunk_count() as usize);
    let mut next = header_len as u64;
    for (i, b) in raw[INDEX_HEADER_LEN..]
        .chunks_exact(INDEX_ENTRY_LEN)
        .enumerate()
    {
        let e = check_index_entry(b.try_into().expect("length"), i as u64, next, header, codec)
            .map_err(corrupt)?;
        next += e.len;
        out.push(e);
    }
    if next != at.offset {
        return Err(corrupt(format!(
            "chunks end at byte {next} but the index starts at {}",
            at.offset
        )));
    }
    Ok(out)
}

/// Whether `head` is a sound index header for the chunks `header` implies.
pub(crate) fn index_header_ok(head: &[u8; INDEX_HEADER_LEN], header: &Header) -> bool {
    head[0..4] == INDEX_MAGIC && LE::read_u64(&head[8..16]) == header.chunk_count()
}

/// Checks index entry `i` (its 32 bytes `b`), which must start at byte `next` (where the
/// previous chunk ended) and agree with the header's shape; returns it.
///
/// # Errors
/// What is wrong, naming the entry, for the caller to place.
pub(crate) fn check_index_entry(
    b: &[u8; INDEX_ENTRY_LEN],
    i: u64,
    next: u64,
    header: &Header,
    codec: &dyn Codec,
) -> std::result::Result<ChunkEntry, String> {
    let e = ChunkEntry {
        offset: LE::read_u64(&b[0..8]),
        len: LE::read_u64(&b[8..16]),
        first_row: LE::read_u64(&b[16..24]),
        rows: LE::read_u64(&b[24..32]),
    };
    let rows = header.rows_in_chunk(i);
    let plain = codec.encoded_len(rows as usize);
    let len_ok = e
        .len
        .checked_sub(CHUNK_OVERHEAD as u64)
        .is_some_and(|p| stored_len_ok(header, p, rows, plain));
    if e.offset != next || e.first_row != i * header.chunk_rows as u64 || e.rows != rows || !len_ok
    {
        return Err(format!(
            "index entry {i} is inconsistent (offset {}, len {}, rows {}..{})",
            e.offset,
            e.len,
            e.first_row,
            e.first_row.saturating_add(e.rows)
        ));
    }
    Ok(e)
}

/// Whether a whole chunk (header, payload, crc) passes its crc32c check.
pub(crate) fn chunk_crc_ok(whole: &[u8]) -> bool {
    let (body, tail) = whole.split_at(whole.len() - 4);
    crc(body) == LE::read_u32(tail)
}

/// The codec payload of a chunk of `rows` rows whose stored payload is `stored`: the
/// header's payload stage undone (zstd decompressed; borrowed as is for plain chunks).
///
/// # Errors
/// What is wrong, for the caller to place.
pub(crate) fn unstage<'a>(
    stored: &'a [u8],
    rows: u64,
    header: &Header,
    codec: &dyn Codec,
) -> std::result::Result<Cow<'a, [u8]>, String> {
    let (staged, _) = split_ids(stored, rows, header)?;
    let plain = codec.encoded_len(rows as usize);
    if header.stage == PayloadStage::Plain && staged.len() != plain {
        return Err(format!(
            "its payload holds {} bytes before its ids, the codec needs {plain}",
            staged.len()
        ));
    }
    header.stage.unstage(staged, plain)
}

/// Whether a chunk of `rows` rows whose stored payload (chunk header field `L`) is
/// `stored` bytes can hold a codec payload of `plain` bytes (before the payload stage)
/// and, after it, the rows' ids. Exact without ids or with u64 ids and a plain stage.
pub(crate) fn stored_len_ok(header: &Header, stored: u64, rows: u64, plain: usize) -> bool {
    let (mut least, mut most) = ids::block_len_bounds(header.ids, rows);
    if header.payload {
        // The block's length field, and at most the largest block after it.
        least += 8;
        most += 8 + super::payload::MAX_BLOCK_BYTES;
    }
    match header.stage {
        _ if least == most => stored
            .checked_sub(least)
            .is_some_and(|s| header.stage.payload_len_ok(s, plain)),
        PayloadStage::Plain => (plain as u64 + least..=plain as u64 + most).contains(&stored),
        PayloadStage::Zstd => {
            // Between the smallest frame with the fewest id bytes and zstd's bound with
            // the most.
            let bound = zstd::zstd_safe::compress_bound(plain) as u64;
            stored >= least + 9 && stored <= bound + most
        }
    }
}

/// A chunk's stored payload of `rows` rows cut into what the payload stage made and the
/// id block after it (empty for a container without ids); the payload columns' block, if
/// any, is left out.
///
/// # Errors
/// What is wrong, for the caller to place.
pub(crate) fn split_ids<'a>(
    stored: &'a [u8],
    rows: u64,
    header: &Header,
) -> std::result::Result<(&'a [u8], &'a [u8]), String> {
    let (stored, _) = split_payload(stored, header)?;
    let n = ids::block_len(header.ids, stored, rows)?;
    Ok(stored.split_at(stored.len() - n))
}

/// A chunk's stored payload cut into what precedes the payload columns' block and the
/// block's Arrow IPC stream (empty for a container without payload columns).
///
/// # Errors
/// What is wrong, for the caller to place.
pub(crate) fn split_payload<'a>(
    stored: &'a [u8],
    header: &Header,
) -> std::result::Result<(&'a [u8], &'a [u8]), String> {
    match header.payload {
        false => Ok((stored, &[])),
        true => super::payload::split(stored),
    }
}

/// Checks the 36-byte header `h` of what must be chunk `i`, trusting only its own crc and
/// the container header; returns the chunk's rows and payload length.
///
/// # Errors
/// What is wrong, for the caller to place (it knows the byte offset).
pub(crate) fn check_chunk_header(
    h: &[u8; CHUNK_HEADER_LEN],
    i: u64,
    header: &Header,
    codec: &dyn Codec,
) -> std::result::Result<(u64, u64), String> {
    if h[0..4] != CHUNK_MAGIC {
        return Err("no chunk magic (VCHK)".into());
    }
    if crc(&h[..32]) != LE::read_u32(&h[32..36]) {
        return Err("chunk header checksum mismatch".into());
    }
    let rows = LE::read_u32(&h[4..8]) as u64;
    let index = LE::read_u64(&h[8..16]);
    let first_row = LE::read_u64(&h[16..24]);
    let payload_len = LE::read_u64(&h[24..32]);
    let want_rows = header.rows_in_chunk(i);
    if index != i || first_row != i * header.chunk_rows as u64 || rows != want_rows {
        return Err(format!(
            "chunk header says chunk {index}, rows {first_row}+{rows}; expected chunk {i}, rows {}+{want_rows}",
            i * header.chunk_rows as u64
        ));
    }
    let plain = codec.encoded_len(rows as usize);
    if !stored_len_ok(header, payload_len, rows, plain) {
        return Err(format!(
            "chunk payload length {payload_len} does not fit the codec's {plain} bytes{}",
            match (header.ids, header.payload) {
                (IdKind::None, false) => "",
                (_, false) => " and the rows' ids",
                _ => " and the rows' ids and payload columns",
            }
        ));
    }
    Ok((rows, payload_len))
}

/// Walks the chunks after the header, trusting nothing but their own framing, and returns
/// every complete, checksum-valid chunk in order, plus the byte offset just after the last.
///
/// This is how a file whose index was never written is recovered.
pub fn scan_chunks(
    map: &[u8],
    header: &Header,
    header_len: usize,
    codec: &dyn Codec,
) -> (Vec<ChunkEntry>, u64) {
    let mut out = Vec::new();
    let mut at = header_len;
    for i in 0..header.chunk_count() {
        let Some(h) = map
            .get(at..)
            .and_then(|m| m.first_chunk::<CHUNK_HEADER_LEN>())
        else {
            break;
        };
        let Ok((rows, payload_len)) = check_chunk_header(h, i, header, codec) else {
            break;
        };
        let Some(len) = usize::try_from(payload_len)
            .ok()
            .and_then(|p| p.checked_add(CHUNK_OVERHEAD))
        else {
            break;
        };
        let Some(whole) = at.checked_add(len).and_then(|end| map.get(at..end)) else {
            break;
        };
        if !chunk_crc_ok(whole) {
            break;
        }
        out.push(ChunkEntry {
            offset: at as u64,
            len: len as u64,
            first_row: i * header.chunk_rows as u64,
            rows,
        });
        at += len;
    }
    (out, at as u64)
}
