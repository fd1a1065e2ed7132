//! Reading a container: validate the two ends and the index on open, then read chunks on
//! demand, checking each chunk's crc32c the first time it is touched.

use std::borrow::Cow;
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use byteorder::{ByteOrder, LittleEndian as LE};
use memmap2::Mmap;

use super::write::trailer_crc;
use super::{
    CHUNK_HEADER_LEN, CHUNK_MAGIC, CHUNK_OVERHEAD, Header, INDEX_ENTRY_LEN, INDEX_HEADER_LEN,
    INDEX_MAGIC, MAGIC, MAJOR, Metadata, TRAILER_LEN, crc,
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
        if len == 0 {
            return Err(Error::corrupt(path, "empty file: not a vectro container"));
        }
        // SAFETY: the map is read-only. Another process truncating or rewriting the file
        // while we read is outside what we can guard against (as for any mmap reader);
        // every length we derive from the bytes is checked against the map's size.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, "mapping", e))?;
        Self::from_map(path, map)
    }

    fn from_map(path: &Path, map: Mmap) -> Result<Container> {
        let (header, header_len) = Header::decode(path, &map)?;
        let codec = codec::from_spec(header.codec.id, &header.codec.params, header.dims as usize)
            .map_err(|e| Error::corrupt(path, format!("header: {e}")))?;
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
        let e = self.index[i];
        let whole = &self.map[e.offset as usize..(e.offset + e.len) as usize];
        if !self.verified[i].load(Ordering::Acquire) {
            let (body, tail) = whole.split_at(whole.len() - 4);
            if crc(body) != LE::read_u32(tail) {
                return Err(Error::corrupt(
                    &self.path,
                    format!(
                        "chunk {i} (bytes {}..{}, rows {}..{}) fails its crc32c check; the file is corrupt",
                        e.offset,
                        e.offset + e.len,
                        e.first_row,
                        e.first_row + e.rows
                    ),
                ));
            }
            self.verified[i].store(true, Ordering::Release);
        }
        Ok(&self.map[e.payload_range()])
    }

    /// The codec payload of chunk `i`: [`Container::chunk_payload`] with the payload stage
    /// undone (zstd decompressed; borrowed as is for plain chunks).
    ///
    /// # Errors
    /// As [`Container::chunk_payload`], and [`Error::Corrupt`] when a compressed payload
    /// does not decompress to exactly the codec's size.
    pub fn chunk_data(&self, i: usize) -> Result<Cow<'_, [u8]>> {
        let stored = self.chunk_payload(i)?;
        let e = self.index[i];
        let plain = self.codec.encoded_len(e.rows as usize);
        self.header.stage.unstage(stored, plain).map_err(|msg| {
            Error::corrupt(
                &self.path,
                format!(
                    "chunk {i} (bytes {}..{}, rows {}..{}): {msg}; the file is corrupt",
                    e.offset,
                    e.offset + e.len,
                    e.first_row,
                    e.first_row + e.rows
                ),
            )
        })
    }

    /// Decodes chunk `i` into `out` (`rows × dims`).
    ///
    /// # Errors
    /// As [`Container::chunk_data`].
    pub fn decode_chunk(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let payload = self.chunk_data(i)?;
        self.codec.decode(&payload, self.index[i].rows as usize, out);
        Ok(())
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
        if out.len() != rows * self.dims() {
            return Err(Error::Config(format!(
                "output buffer holds {} floats, {} rows × {} dims need {}",
                out.len(),
                rows,
                self.dims(),
                rows * self.dims()
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
            let payload = self.chunk_data(ci)?;
            let o = (row - range.start) as usize * d;
            if row == e.first_row && end == e.first_row + e.rows {
                let n = e.rows as usize * d;
                self.codec.decode(&payload, e.rows as usize, &mut out[o..o + n]);
            } else {
                for (k, r) in (row..end).enumerate() {
                    let at = o + k * d;
                    self.codec.decode_row(
                        &payload,
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
        // Visit the ids chunk by chunk, so that a compressed chunk is decompressed once
        // however many of its rows are asked for.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&k| ids[k] / cr);
        let mut current: Option<(usize, Cow<'_, [u8]>)> = None;
        for k in order {
            let id = ids[k];
            let ci = (id / cr) as usize;
            let e = self.index[ci];
            if current.as_ref().is_none_or(|(c, _)| *c != ci) {
                current = Some((ci, self.chunk_data(ci)?));
            }
            let payload = &current.as_ref().expect("set above").1;
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

fn read_index(
    path: &Path,
    map: &[u8],
    header: &Header,
    header_len: usize,
    codec: &dyn Codec,
) -> Result<Vec<ChunkEntry>> {
    let corrupt = |msg: String| Error::corrupt(path, msg);
    let len = map.len();
    if len < header_len + TRAILER_LEN || map[len - 4..] != MAGIC {
        let (found, _) = scan_chunks(map, header, header_len, codec);
        let rows: u64 = found.iter().map(|c| c.rows).sum();
        return Err(corrupt(format!(
            "incomplete container: no trailer at the end (the writer was probably killed or the file is truncated); \
             {} complete chunks holding rows 0..{rows} of {} are intact; rerun the compress with --resume to finish it",
            found.len(),
            header.rows
        )));
    }
    let t: &[u8; TRAILER_LEN] = map[len - TRAILER_LEN..].try_into().expect("length");
    if trailer_crc(t) != LE::read_u32(&t[28..32]) {
        return Err(corrupt(format!(
            "trailer checksum mismatch (bytes {}..{len}); the trailer is corrupt",
            len - TRAILER_LEN
        )));
    }
    let major = LE::read_u16(&t[32..34]);
    if major != MAJOR {
        return Err(corrupt(format!(
            "trailer format version {major} does not match the header's {MAJOR}; the file is corrupt or mixed"
        )));
    }
    let index_offset = LE::read_u64(&t[0..8]);
    let index_len = LE::read_u64(&t[8..16]);
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
    let index_end = index_offset.checked_add(index_len);
    if want_len != Some(index_len)
        || index_offset < header_len as u64
        || index_end != Some((len - TRAILER_LEN) as u64)
    {
        return Err(corrupt(format!(
            "index at bytes {index_offset}+{index_len} does not fit the file ({len} bytes, {count} chunks expected)"
        )));
    }
    let raw = &map[index_offset as usize..(index_offset + index_len) as usize];
    if crc(raw) != LE::read_u32(&t[24..28]) {
        return Err(corrupt(format!(
            "index checksum mismatch (bytes {index_offset}..{}); the index is corrupt",
            index_offset + index_len
        )));
    }
    if raw[0..4] != INDEX_MAGIC || LE::read_u64(&raw[8..16]) != count {
        return Err(corrupt("index header is malformed".into()));
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
        let plain = codec.encoded_len(rows as usize);
        let len_ok = e
            .len
            .checked_sub(CHUNK_OVERHEAD as u64)
            .is_some_and(|p| header.stage.payload_len_ok(p, plain));
        if e.offset != next
            || e.first_row != i * header.chunk_rows as u64
            || e.rows != rows
            || !len_ok
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
    if next != index_offset {
        return Err(corrupt(format!(
            "chunks end at byte {next} but the index starts at {index_offset}"
        )));
    }
    Ok(out)
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
        let Some(h) = map.get(at..at + CHUNK_HEADER_LEN) else {
            break;
        };
        if h[0..4] != CHUNK_MAGIC || crc(&h[..32]) != LE::read_u32(&h[32..36]) {
            break;
        }
        let rows = LE::read_u32(&h[4..8]) as u64;
        let payload_len = LE::read_u64(&h[24..32]);
        let first_row = LE::read_u64(&h[16..24]);
        if LE::read_u64(&h[8..16]) != i
            || first_row != i * header.chunk_rows as u64
            || rows != header.rows_in_chunk(i)
            || !header
                .stage
                .payload_len_ok(payload_len, codec.encoded_len(rows as usize))
        {
            break;
        }
        let len = CHUNK_OVERHEAD + payload_len as usize;
        let Some(whole) = map.get(at..at + len) else {
            break;
        };
        let (body, tail) = whole.split_at(len - 4);
        if crc(body) != LE::read_u32(tail) {
            break;
        }
        out.push(ChunkEntry {
            offset: at as u64,
            len: len as u64,
            first_row,
            rows,
        });
        at += len;
    }
    (out, at as u64)
}
