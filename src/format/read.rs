//! Reading a container: validate the two ends and the index on open, then read chunks on
//! demand, checking each chunk's crc32c the first time it is touched.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use byteorder::{ByteOrder, LittleEndian as LE};
use memmap2::Mmap;

use super::write::trailer_crc;
use super::{
    CHUNK_HEADER_LEN, CHUNK_MAGIC, CHUNK_OVERHEAD, Header, INDEX_ENTRY_LEN, INDEX_HEADER_LEN,
    INDEX_MAGIC, MAGIC, MAJOR, MAX_CHUNK_VALUES, Metadata, TRAILER_LEN, crc,
};
use crate::codec::{self, Codec};
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
    /// Byte range of the payload.
    pub fn payload_range(&self) -> Range<usize> {
        let start = self.offset as usize + CHUNK_HEADER_LEN;
        start..(self.offset + self.len) as usize - 4
    }
}

/// An open, validated container, memory-mapped. `&Container` is `Sync`: many threads may
/// read rows at once.
#[derive(Debug)]
pub struct Container {
    path: PathBuf,
    map: Mmap,
    header: Header,
    header_len: usize,
    index: Vec<ChunkEntry>,
    codec: Box<dyn Codec>,
    verified: Vec<AtomicBool>,
}

impl Container {
    /// Opens `path`: checks the header, the trailer and the index. No chunk is read.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::Corrupt`] naming what is wrong
    /// (truncated, incomplete, checksum mismatch, newer version) otherwise.
    pub fn open(path: impl AsRef<Path>) -> Result<Container> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, "opening", e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(path, "reading metadata of", e))?
            .len();
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(Error::corrupt(
                path,
                "is a directory, not a vectro container",
            ));
        }
        if len == 0 {
            return Err(Error::corrupt(path, "empty file: not a vectro container"));
        }
        // SAFETY: the map is read-only. Another process truncating or rewriting the file
        // while we read is outside what we can guard against (as for any mmap reader);
        // every length we derive from the bytes is checked against the map's size.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, "mapping", e))?;
        Self::from_map(path, map)
    }

    /// Opens a container held in memory (tests, fuzzing, bytes received over a network);
    /// `label` names it in errors. The bytes are copied.
    ///
    /// # Errors
    /// As [`Container::open`].
    pub fn from_bytes(label: impl AsRef<Path>, bytes: &[u8]) -> Result<Container> {
        let path = label.as_ref();
        if bytes.is_empty() {
            return Err(Error::corrupt(path, "empty file: not a vectro container"));
        }
        let mut map = memmap2::MmapMut::map_anon(bytes.len())
            .map_err(|e| Error::io(path, "allocating memory for", e))?;
        map.copy_from_slice(bytes);
        let map = map
            .make_read_only()
            .map_err(|e| Error::io(path, "allocating memory for", e))?;
        Self::from_map(path, map)
    }

    fn from_map(path: &Path, map: Mmap) -> Result<Container> {
        let (header, header_len) = Header::decode(path, &map)?;
        let codec = codec_for(path, &header)?;
        let index = read_index(path, &map, &header, header_len, codec.as_ref())?;
        let verified = (0..index.len()).map(|_| AtomicBool::new(false)).collect();
        Ok(Container {
            path: path.to_path_buf(),
            map,
            header,
            header_len,
            index,
            codec,
            verified,
        })
    }

    /// The file this container was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes of the header.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Total rows.
    pub fn rows(&self) -> u64 {
        self.header.rows
    }

    /// Dimensions per row.
    pub fn dims(&self) -> usize {
        self.header.dims as usize
    }

    /// The codec that decodes this file.
    pub fn codec(&self) -> &dyn Codec {
        self.codec.as_ref()
    }

    /// The metadata map.
    pub fn metadata(&self) -> &Metadata {
        &self.header.metadata
    }

    /// The chunk index.
    pub fn chunks(&self) -> &[ChunkEntry] {
        &self.index
    }

    /// Total file size in bytes.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// The raw bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The payload of chunk `i`, its crc checked (once; the result is remembered).
    ///
    /// # Errors
    /// [`Error::Corrupt`] with the chunk's byte offset and row range on a crc mismatch.
    pub fn chunk_payload(&self, i: usize) -> Result<&[u8]> {
        let e = self.entry(i)?;
        let whole = &self.map[e.offset as usize..(e.offset + e.len) as usize];
        if !self.verified[i].load(Ordering::Acquire) {
            let (body, tail) = whole.split_at(whole.len() - 4);
            let bad = |what: String| {
                Error::corrupt(
                    &self.path,
                    format!(
                        "chunk {i} (bytes {}..{}, rows {}..{}) {what}; the file is corrupt",
                        e.offset,
                        e.offset + e.len,
                        e.first_row,
                        e.first_row + e.rows
                    ),
                )
            };
            if crc(body) != LE::read_u32(tail) {
                return Err(bad("fails its crc32c check".into()));
            }
            // The index vouches for where the chunk is; its own header must agree, or a
            // recovery scan would read the file differently from us.
            let head: &[u8; CHUNK_HEADER_LEN] =
                body[..CHUNK_HEADER_LEN].try_into().expect("length");
            check_chunk_header(head, i as u64, &self.header, self.codec.as_ref())
                .map_err(|m| bad(format!("has a bad header: {m}")))?;
            self.verified[i].store(true, Ordering::Release);
        }
        Ok(&self.map[e.payload_range()])
    }

    /// Decodes chunk `i` into `out` (`rows × dims`).
    ///
    /// # Errors
    /// As [`Container::chunk_payload`].
    pub fn decode_chunk(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let payload = self.chunk_payload(i)?;
        self.check_out(self.index[i].rows as usize, out)?;
        self.codec.decode(payload, self.index[i].rows as usize, out);
        Ok(())
    }

    fn entry(&self, i: usize) -> Result<ChunkEntry> {
        self.index.get(i).copied().ok_or_else(|| {
            Error::Config(format!(
                "chunk {i} is out of range: {} has {} chunks",
                self.path.display(),
                self.index.len()
            ))
        })
    }

    fn check_row(&self, row: u64) -> Result<()> {
        if row >= self.header.rows {
            return Err(Error::Config(format!(
                "row {row} is out of range: {} has {} rows",
                self.path.display(),
                self.header.rows
            )));
        }
        Ok(())
    }

    fn check_out(&self, rows: usize, out: &[f32]) -> Result<()> {
        if Some(out.len()) != rows.checked_mul(self.dims()) {
            return Err(Error::Config(format!(
                "output buffer holds {} floats, {} rows × {} dims need {}",
                out.len(),
                rows,
                self.dims(),
                rows.saturating_mul(self.dims())
            )));
        }
        Ok(())
    }

    /// Decodes one row into `out` (`dims` floats).
    ///
    /// # Errors
    /// An out-of-range row or a wrong buffer size is [`Error::Config`]; a corrupt chunk is
    /// [`Error::Corrupt`].
    pub fn get(&self, row: u64, out: &mut [f32]) -> Result<()> {
        self.get_many(&[row], out)
    }

    /// Decodes rows `range` into `out` (`range.len() × dims` floats).
    ///
    /// # Errors
    /// As [`Container::get`].
    pub fn get_range(&self, range: Range<u64>, out: &mut [f32]) -> Result<()> {
        if range.start > range.end {
            return Err(Error::Config(format!("empty or reversed range {range:?}")));
        }
        if range.end > self.header.rows {
            self.check_row(range.end - 1)?;
        }
        self.check_out((range.end - range.start) as usize, out)?;
        let d = self.dims();
        let cr = self.header.chunk_rows as u64;
        let mut row = range.start;
        while row < range.end {
            let ci = (row / cr) as usize;
            let e = self.index[ci];
            let end = range.end.min(e.first_row + e.rows);
            let payload = self.chunk_payload(ci)?;
            let o = (row - range.start) as usize * d;
            if row == e.first_row && end == e.first_row + e.rows {
                let n = e.rows as usize * d;
                self.codec.decode(payload, e.rows as usize, &mut out[o..o + n]);
            } else {
                for (k, r) in (row..end).enumerate() {
                    let at = o + k * d;
                    self.codec.decode_row(
                        payload,
                        e.rows as usize,
                        (r - e.first_row) as usize,
                        &mut out[at..at + d],
                    );
                }
            }
            row = end;
        }
        Ok(())
    }

    /// Decodes the rows `ids` (any order, repeats allowed) into `out`, row `k` of the
    /// output being `ids[k]`. Each touched chunk's checksum is checked once.
    ///
    /// # Errors
    /// As [`Container::get`].
    pub fn get_many(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
        self.check_out(ids.len(), out)?;
        for &id in ids {
            self.check_row(id)?;
        }
        let d = self.dims();
        let cr = self.header.chunk_rows as u64;
        for (k, &id) in ids.iter().enumerate() {
            let ci = (id / cr) as usize;
            let e = self.index[ci];
            let payload = self.chunk_payload(ci)?;
            self.codec.decode_row(
                payload,
                e.rows as usize,
                (id - e.first_row) as usize,
                &mut out[k * d..(k + 1) * d],
            );
        }
        Ok(())
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
    codec::from_spec(header.codec.id, &header.codec.params, header.dims as usize)
        .map_err(|e| Error::corrupt(path, format!("header: {e}")))
}

/// Where the trailer says the index is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexLocation {
    pub offset: u64,
    pub len: u64,
    pub crc: u32,
}

fn read_index(
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
                 {} complete chunks holding rows 0..{rows} of {} are intact; rerun the compress with --resume to finish it",
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
    let count = header.chunk_count();
    if crc(raw) != at.crc {
        return Err(corrupt(format!(
            "index checksum mismatch (bytes {}..{}); the index is corrupt",
            at.offset,
            at.offset + at.len
        )));
    }
    if raw.len() < INDEX_HEADER_LEN
        || raw[0..4] != INDEX_MAGIC
        || LE::read_u64(&raw[8..16]) != count
    {
        return Err(corrupt(format!(
            "index header at byte {} is malformed",
            at.offset
        )));
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut next = header_len as u64;
    for (i, b) in raw[INDEX_HEADER_LEN..]
        .chunks_exact(INDEX_ENTRY_LEN)
        .enumerate()
    {
        let e = ChunkEntry {
            offset: LE::read_u64(&b[0..8]),
            len: LE::read_u64(&b[8..16]),
            first_row: LE::read_u64(&b[16..24]),
            rows: LE::read_u64(&b[24..32]),
        };
        let i = i as u64;
        let rows = header.rows_in_chunk(i);
        let want = codec.encoded_len(rows as usize) as u64 + CHUNK_OVERHEAD as u64;
        if e.offset != next
            || e.first_row != i * header.chunk_rows as u64
            || e.rows != rows
            || e.len != want
        {
            return Err(corrupt(format!(
                "index entry {i} is inconsistent (offset {}, len {}, rows {}..{})",
                e.offset,
                e.len,
                e.first_row,
                e.first_row.saturating_add(e.rows)
            )));
        }
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
    let want_len = codec.encoded_len(rows as usize) as u64;
    if payload_len != want_len {
        return Err(format!(
            "chunk payload length {payload_len} is not the codec's {want_len}"
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
        let Some(h) = at
            .checked_add(CHUNK_HEADER_LEN)
            .and_then(|end| map.get(at..end))
        else {
            break;
        };
        let Ok((rows, payload_len)) =
            check_chunk_header(h.try_into().expect("length"), i, header, codec)
        else {
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
        let (body, tail) = whole.split_at(len - 4);
        if crc(body) != LE::read_u32(tail) {
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
