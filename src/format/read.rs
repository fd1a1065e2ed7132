//! Reading a container: validate the two ends and the index on open, then read chunks on
//! demand, checking each chunk's crc32c the first time it is touched.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use byteorder::{ByteOrder, LittleEndian as LE};
use memmap2::{Mmap, MmapMut};

use super::write::trailer_crc;
use super::{
    CHUNK_HEADER_LEN, CHUNK_MAGIC, CHUNK_OVERHEAD, Header, INDEX_ENTRY_LEN, INDEX_HEADER_LEN,
    INDEX_MAGIC, MAGIC, MAJOR, MAX_CHUNK_VALUES, Metadata, TRAILER_LEN, crc,
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
    /// Byte range of the payload.
    pub fn payload_range(&self) -> Range<usize> {
        let start = self.offset as usize + CHUNK_HEADER_LEN;
        start..(self.offset + self.len) as usize - 4
    }
}

/// An open, validated container, memory-mapped.
///
/// Opening is cheap: it checks the header, the trailer and the index, and reads no chunk.
/// Rows are decoded on demand with [`Container::get`], [`Container::get_range`] and
/// [`Container::get_many`]; a chunk's crc32c is checked the first time it is touched and
/// the result remembered.
///
/// `Container` is `Send + Sync`: share one `&Container` (or an `Arc`) between threads and
/// read from all of them at once.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("x.vectro");
/// # let data: Vec<f32> = (0..100 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
/// # let file = std::fs::File::create(&path)?;
/// # vectro::stream::Compressor::new().chunk_rows(16).compress_f32(&data, 8, file)?;
/// let c = vectro::Container::open(&path)?;
/// println!("{} rows x {} dims, codec {}", c.rows(), c.dims(), c.codec().name());
/// std::thread::scope(|s| {
///     for t in 0..4u64 {
///         let c = &c;
///         s.spawn(move || {
///             let mut row = vec![0f32; c.dims()];
///             c.get(t * 10, &mut row).unwrap();
///         });
///     }
/// });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Container {
    path: PathBuf,
    map: Mmap,
    header: Header,
    header_len: usize,
    index: Vec<ChunkEntry>,
    codec: Box<dyn Codec>,
    verified: Vec<AtomicBool>,
    /// The map is of a file (not a copy in anonymous memory), so its pages can be dropped
    /// and refaulted from the file.
    file_backed: bool,
}

impl Container {
    /// Opens `path`: checks the header, the trailer and the index. No chunk is read.
    ///
    /// # Errors
    /// [`Error::Io`] if the file cannot be read; [`Error::Corrupt`] naming what is wrong
    /// (truncated, incomplete, checksum mismatch, newer version) otherwise.
    pub fn open(path: impl AsRef<Path>) -> Result<Container> {
        let path = path.as_ref();
        let file = crate::input::open_input(path)?;
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
        let mut c = Self::from_map(path, map)?;
        c.file_backed = true;
        Ok(c)
    }

    /// Opens a container held in memory (received over the network, say), copying it
    /// into an anonymous mapping. `name` stands for the file in error messages.
    ///
    /// ```
    /// # let data: Vec<f32> = (0..50 * 4).map(|i| i as f32).collect();
    /// let mut bytes = Vec::new();
    /// vectro::stream::Compressor::new().compress_f32(&data, 4, &mut bytes)?;
    /// let c = vectro::Container::from_bytes("upload", &bytes)?;
    /// assert_eq!((c.rows(), c.dims()), (50, 4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Container::open`].
    pub fn from_bytes(name: impl AsRef<Path>, bytes: &[u8]) -> Result<Container> {
        let path = name.as_ref();
        if bytes.is_empty() {
            return Err(Error::corrupt(path, "empty file: not a vectro container"));
        }
        let mut anon = MmapMut::map_anon(bytes.len())
            .map_err(|e| Error::io(path, "allocating a map for", e))?;
        anon.copy_from_slice(bytes);
        let map = anon
            .make_read_only()
            .map_err(|e| Error::io(path, "mapping", e))?;
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
            file_backed: false,
        })
    }

    /// Drops the mapped pages of chunks `chunks` from this process's memory, for a
    /// streaming pass (eval, decompress) over a file bigger than RAM: the data stays in the
    /// page cache and a later read refaults it. Does nothing for [`Container::from_bytes`].
    pub fn release_chunks(&self, chunks: std::ops::Range<usize>) {
        const PAGE: usize = 4096;
        let (Some(first), Some(last)) = (
            self.index.get(chunks.start),
            chunks.end.checked_sub(1).and_then(|i| self.index.get(i)),
        ) else {
            return;
        };
        if !self.file_backed {
            return;
        }
        let a = (first.offset as usize).div_ceil(PAGE) * PAGE;
        let b = (last.offset + last.len) as usize / PAGE * PAGE;
        if b > a {
            // SAFETY: DONTNEED on a read-only file mapping only discards our view of the
            // pages; the next access refaults them from the file, so no byte ever changes.
            // (An anonymous map would lose its contents, hence the file_backed check.)
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a)
            };
        }
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

    /// The payload of chunk `i`, its crc checked (once; the result is remembered, so a hot
    /// chunk is hashed only the first time it is touched).
    ///
    /// # Errors
    /// [`Error::Config`] if there is no chunk `i`; [`Error::Corrupt`] with the chunk's byte
    /// offset and row range on a crc mismatch.
    pub fn chunk_payload(&self, i: usize) -> Result<&[u8]> {
        let e = self.entry(i)?;
        let whole = &self.map[e.offset as usize..(e.offset + e.len) as usize];
        // Two threads touching a fresh chunk at once may both hash it; that is harmless
        // and cheaper than a lock on the hot path.
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
            let head = body
                .first_chunk::<CHUNK_HEADER_LEN>()
                .ok_or_else(|| bad("is shorter than a chunk header".into()))?;
            check_chunk_header(head, i as u64, &self.header, self.codec.as_ref())
                .map_err(|m| bad(format!("has a bad header: {m}")))?;
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
    /// As [`Container::chunk_data`], and [`Error::Config`] if `out` has the wrong size.
    pub fn decode_chunk(&self, i: usize, out: &mut [f32]) -> Result<()> {
        let rows = self.entry(i)?.rows as usize;
        self.check_out(rows, out)?;
        let payload = self.chunk_data(i)?;
        self.codec.decode(&payload, rows, out);
        Ok(())
    }

    /// The chunk holding `row` (which must be in range).
    fn chunk_of(&self, row: u64) -> usize {
        (row / self.header.chunk_rows as u64) as usize
    }

    /// The checked payload of the chunk holding `row` (in range), its row count, and the
    /// row's index within it.
    fn locate(&self, row: u64) -> Result<(&[u8], usize, usize)> {
        let ci = self.chunk_of(row);
        let e = self.index[ci];
        Ok((
            self.chunk_payload(ci)?,
            e.rows as usize,
            (row - e.first_row) as usize,
        ))
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
                "row {row} is out of range: {} has {} rows (numbered 0..{})",
                self.path.display(),
                self.header.rows,
                self.header.rows
            )));
        }
        Ok(())
    }

    fn check_out(&self, rows: usize, out: &[f32]) -> Result<()> {
        let need = rows.checked_mul(self.dims());
        if need != Some(out.len()) {
            return Err(Error::Config(format!(
                "output buffer holds {} floats, {} rows × {} dims need {}",
                out.len(),
                rows,
                self.dims(),
                need.map_or_else(|| "more than fits in memory".into(), |n| n.to_string())
            )));
        }
        Ok(())
    }

    /// Decodes rows `rows` (numbered within chunk `ci`) into `out`, row by row when the
    /// codec allows it, else by decoding the whole chunk once into a scratch buffer.
    fn decode_rows_of_chunk(&self, ci: usize, rows: Range<usize>, out: &mut [f32]) -> Result<()> {
        let payload = self.chunk_data(ci)?;
        let payload = &payload[..];
        let n = self.index[ci].rows as usize;
        let d = self.dims();
        if rows == (0..n) {
            self.codec.decode(payload, n, out);
        } else if self.codec.row_access() {
            for (r, o) in rows.zip(out.chunks_exact_mut(d)) {
                self.codec.decode_row(payload, n, r, o);
            }
        } else {
            with_scratch(n * d, |all| {
                self.codec.decode(payload, n, all);
                out.copy_from_slice(&all[rows.start * d..rows.end * d]);
            });
        }
        Ok(())
    }

    /// Decodes one row into `out` (`dims` floats).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("x.vectro");
    /// # let data: Vec<f32> = (0..100 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
    /// # let file = std::fs::File::create(&path)?;
    /// # vectro::stream::Compressor::new().chunk_rows(16).compress_f32(&data, 8, file)?;
    /// let c = vectro::Container::open(&path)?;
    /// let mut row = vec![0f32; c.dims()];
    /// c.get(42, &mut row)?;
    /// assert!(c.get(c.rows(), &mut row).is_err()); // out of range: an error, not a panic
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// An out-of-range row or a wrong buffer size is [`Error::Config`]; a corrupt chunk is
    /// [`Error::Corrupt`].
    pub fn get(&self, row: u64, out: &mut [f32]) -> Result<()> {
        self.get_many(&[row], out)
    }

    /// Decodes rows `range` into `out` (`range.len() × dims` floats). Chunks wholly inside
    /// the range are decoded whole; the partial ones at either end row by row.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("x.vectro");
    /// # let data: Vec<f32> = (0..100 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
    /// # let file = std::fs::File::create(&path)?;
    /// # vectro::stream::Compressor::new().chunk_rows(16).compress_f32(&data, 8, file)?;
    /// let c = vectro::Container::open(&path)?;
    /// let mut rows = vec![0f32; 30 * c.dims()];
    /// c.get_range(10..40, &mut rows)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Container::get`]; a reversed range is [`Error::Config`].
    pub fn get_range(&self, range: Range<u64>, out: &mut [f32]) -> Result<()> {
        if range.start > range.end {
            return Err(Error::Config(format!(
                "reversed row range {}..{}",
                range.start, range.end
            )));
        }
        if range.end > self.header.rows {
            self.check_row(range.end - 1)?;
        }
        self.check_out((range.end - range.start) as usize, out)?;
        let d = self.dims();
        let mut row = range.start;
        while row < range.end {
            let ci = self.chunk_of(row);
            let e = self.index[ci];
            let end = range.end.min(e.first_row + e.rows);
            let o = (row - range.start) as usize * d;
            let local = (row - e.first_row) as usize..(end - e.first_row) as usize;
            let n = local.len() * d;
            self.decode_rows_of_chunk(ci, local, &mut out[o..o + n])?;
            row = end;
        }
        Ok(())
    }

    /// Decodes the rows `ids` (any order, repeats allowed) into `out`, row `k` of the
    /// output being `ids[k]`. Every id is checked before anything is decoded. Each touched
    /// chunk's checksum is checked once (and remembered); per-row codecs decode only the
    /// touched rows, others decode each touched chunk once.
    ///
    /// This is the call for query-time rescoring: fetch the candidates an index found.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("x.vectro");
    /// # let data: Vec<f32> = (0..100 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
    /// # let file = std::fs::File::create(&path)?;
    /// # vectro::stream::Compressor::new().chunk_rows(16).compress_f32(&data, 8, file)?;
    /// let c = vectro::Container::open(&path)?;
    /// let candidates = [93, 5, 17, 5];
    /// let mut rows = vec![0f32; candidates.len() * c.dims()];
    /// c.get_many(&candidates, &mut rows)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Container::get`]; the message names the first out-of-range id.
    pub fn get_many(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
        self.check_out(ids.len(), out)?;
        for &id in ids {
            self.check_row(id)?;
        }
        let d = self.dims();
        if self.codec.row_access() && self.header.stage == PayloadStage::Plain {
            for (ids, out) in ids
                .chunks(PREFETCH_ROWS)
                .zip(out.chunks_mut(PREFETCH_ROWS * d))
            {
                // Start every row's loads first, so that the cache misses of a batch
                // overlap; the decode loop then finds its rows in cache.
                for &id in ids {
                    let (payload, rows, row) = self.locate(id)?;
                    self.codec.prefetch_row(payload, rows, row);
                }
                for (&id, o) in ids.iter().zip(out.chunks_exact_mut(d)) {
                    let (payload, rows, row) = self.locate(id)?;
                    self.codec.decode_row(payload, rows, row, o);
                }
            }
            return Ok(());
        }
        // Group by chunk so that each touched chunk is decompressed (and, for codecs
        // without row access, decoded) once.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_unstable_by_key(|&k| ids[k]);
        for group in order.chunk_by(|&a, &b| self.chunk_of(ids[a]) == self.chunk_of(ids[b])) {
            let ci = self.chunk_of(ids[group[0]]);
            let e = self.index[ci];
            let payload = self.chunk_data(ci)?;
            let n = e.rows as usize;
            if self.codec.row_access() {
                for &k in group {
                    let r = (ids[k] - e.first_row) as usize;
                    self.codec
                        .decode_row(&payload, n, r, &mut out[k * d..(k + 1) * d]);
                }
                continue;
            }
            with_scratch(n * d, |all| {
                self.codec.decode(&payload, n, all);
                for &k in group {
                    let r = (ids[k] - e.first_row) as usize;
                    out[k * d..(k + 1) * d].copy_from_slice(&all[r * d..(r + 1) * d]);
                }
            });
        }
        Ok(())
    }
}

/// Rows whose loads `get_many` starts before decoding them: enough to keep the memory
/// system busy, few enough that the first are still cached when their turn comes.
const PREFETCH_ROWS: usize = 128;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on a thread-local buffer of `len` floats, so that codecs without row access do
/// not allocate a chunk on every call.
fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        s.resize(len, 0.0);
        f(&mut s[..len])
    })
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
    let plain = codec.encoded_len(rows as usize);
    if !header.stage.payload_len_ok(payload_len, plain) {
        return Err(format!(
            "chunk payload length {payload_len} does not fit the codec's {plain} bytes"
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

#[cfg(test)]
mod tests {
    use super::Container;
    use crate::codec::{Codec, CodecSpec, EncodeFault};
    use crate::stream::Compressor;

    /// A codec that claims no row access and panics if asked for one row, so that the
    /// readers' whole-chunk path is the only one that can pass.
    #[derive(Debug)]
    struct BlockOnly(Box<dyn Codec>);

    impl Codec for BlockOnly {
        fn name(&self) -> String {
            self.0.name()
        }
        fn spec(&self) -> CodecSpec {
            self.0.spec()
        }
        fn dims(&self) -> usize {
            self.0.dims()
        }
        fn encoded_len(&self, rows: usize) -> usize {
            self.0.encoded_len(rows)
        }
        fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault> {
            self.0.encode(input, out)
        }
        fn decode(&self, payload: &[u8], rows: usize, out: &mut [f32]) {
            self.0.decode(payload, rows, out)
        }
        fn decode_row(&self, _: &[u8], _: usize, _: usize, _: &mut [f32]) {
            panic!("decode_row called on a codec without row access");
        }
        fn row_access(&self) -> bool {
            false
        }
    }

    #[test]
    fn codecs_without_row_access_decode_whole_chunks() {
        let d = 5;
        let data: Vec<f32> = (0..97 * d).map(|i| (i as f32 * 0.731).sin()).collect();
        let mut bytes = Vec::new();
        Compressor::new()
            .chunk_rows(10)
            .compress_f32(&data, d, &mut bytes)
            .unwrap();
        let per_row = Container::from_bytes("x", &bytes).unwrap();
        let mut block = Container::from_bytes("x", &bytes).unwrap();
        block.codec = Box::new(BlockOnly(crate::codec::parse("int8", d).unwrap()));
        let ids = [96u64, 3, 15, 14, 3, 50, 0, 59, 60];
        let (mut a, mut b) = (vec![0f32; ids.len() * d], vec![0f32; ids.len() * d]);
        per_row.get_many(&ids, &mut a).unwrap();
        block.get_many(&ids, &mut b).unwrap();
        assert_eq!(a, b);
        let (mut a, mut b) = (vec![0f32; 43 * d], vec![0f32; 43 * d]);
        per_row.get_range(7..50, &mut a).unwrap();
        block.get_range(7..50, &mut b).unwrap();
        assert_eq!(a, b);
    }

    /// Many threads read one container at once; this stops compiling if a field ever
    /// makes that unsound.
    #[test]
    fn container_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Container>();
        assert_send_sync::<&Container>();
        assert_send_sync::<std::sync::Arc<Container>>();
    }
}
