//! Reading a container: validate the two ends and the index on open, then read chunks on
//! demand, checking each chunk's crc32c the first time it is touched.

use std::borrow::Cow;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::MmapMut;

use crate::mapping::Map;

use super::ids::{self, IdColumn, IdKind};
pub use super::layout::ChunkEntry;
use super::layout::{
    check_chunk_header, chunk_crc_ok, codec_for, read_index, split_ids, split_payload, unstage,
};
use super::{CHUNK_HEADER_LEN, Header, Metadata};
use crate::codec::{Codec, CodecSpec, PayloadStage, Tiered};
use crate::error::{Error, Result};

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
    map: Arc<Map>,
    header: Header,
    header_len: usize,
    index: Vec<ChunkEntry>,
    codec: Box<dyn Codec>,
    /// Per chunk, whether its crc32c passed (a tier view's: its tier's crc32c). Shared
    /// with the views [`Container::tier`] makes, so each chunk is hashed once per open.
    verified: Verified,
    /// A tiered file's per-tier flags, which each tier's views share (empty without tiers).
    tier_verified: Arc<[Verified]>,
    /// The map is of a file (not a copy in anonymous memory), so its pages can be dropped
    /// and refaulted from the file.
    file_backed: bool,
    /// A tiered file's tiers (format 1.6), coarsest first; `None` without tiers.
    tiered: Option<Tiered>,
    /// What [`Container::tier`] made this: a view of one tier of a tiered file.
    view: Option<Box<TierView>>,
}

/// One flag per chunk, shared by a container and the views of it.
type Verified = Arc<[AtomicBool]>;

fn unverified(chunks: usize) -> Verified {
    (0..chunks).map(|_| AtomicBool::new(false)).collect()
}

/// A view of one tier of a tiered file: its header and codec are the tier's, its chunk
/// data the tier's codes, checked by the tier's own crc32c alone.
#[derive(Debug)]
struct TierView {
    /// The file's own header and codec, which the chunks' framing is checked against.
    file_header: Header,
    file_codec: Tiered,
    /// Which tier, from 0 (the coarsest).
    tier: usize,
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
        // Another process cutting the file short while we read it is an error, not a SIGBUS
        // (see `crate::mapping`); every length we derive from the bytes is checked against
        // the map's size, and every checksum against the bytes.
        let map = Map::new(&file, path)?;
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
        Self::from_map(path, Map::unguarded(map, path))
    }

    fn from_map(path: &Path, map: Map) -> Result<Container> {
        let (header, header_len) = Header::decode(path, &map)?;
        let codec = codec_for(path, &header)?;
        let index = read_index(path, &map, &header, header_len, codec.as_ref())?;
        let verified = unverified(index.len());
        let tier_verified = (0..header.tiers.len() + 1)
            .filter(|_| !header.tiers.is_empty())
            .map(|_| unverified(index.len()))
            .collect();
        let tiered = match header.tiers.is_empty() {
            true => None,
            false => Some(
                crate::codec::tiers::tiered_from_specs(
                    &header.tiers,
                    &header.codec,
                    header.dims as usize,
                )
                .map_err(|e| Error::corrupt(path, format!("header: {e}")))?,
            ),
        };
        Ok(Container {
            path: path.to_path_buf(),
            map: Arc::new(map),
            header,
            header_len,
            index,
            codec,
            verified,
            tier_verified,
            file_backed: false,
            tiered,
            view: None,
        })
    }

    /// The codecs of the file's tiers, coarsest first: for a file without tiers, its one
    /// codec; for a tiered file (format 1.6), its search tiers and then the finest, which
    /// rows decode from.
    pub fn tier_specs(&self) -> Vec<CodecSpec> {
        let h = self.file_header();
        h.tiers.iter().chain([&h.codec]).cloned().collect()
    }

    /// The names of the file's tiers, coarsest first (one name for a file without tiers).
    pub fn tier_names(&self) -> Vec<String> {
        match self.file_tiers() {
            Some(t) => t.tiers().iter().map(|c| c.name()).collect(),
            None => vec![self.codec.name()],
        }
    }

    /// How many tiers the file stores: 1 without tiers.
    pub fn tier_count(&self) -> usize {
        self.file_header().tiers.len() + 1
    }

    /// Whether this is a view of one tier made by [`Container::tier`].
    pub fn is_tier_view(&self) -> bool {
        self.view.is_some()
    }

    /// The container as tier `t` alone sees it (0 the coarsest; `tier_count() − 1` the
    /// finest): its header names the tier's codec and lists no tiers, its chunk data is
    /// the tier's codes, and each chunk is checked by the tier's own crc32c, so scanning a
    /// coarse tier never reads the finer ones. It shares this container's map, and its
    /// record of which chunks passed their check: a chunk is hashed once per opened
    /// container, through whichever view touches it first. For a file without tiers,
    /// tier 0 is the container itself.
    ///
    /// # Errors
    /// [`Error::Config`] for a tier the file does not have.
    pub fn tier(&self, t: usize) -> Result<Container> {
        let n = self.tier_count();
        if t >= n {
            return Err(Error::Config(format!(
                "tier {t} is out of range: {} has {n} tier{}",
                self.path.display(),
                if n == 1 { "" } else { "s" }
            )));
        }
        let file_header = self.file_header().clone();
        let (codec, view): (Box<dyn Codec>, _) = match self.file_tiers() {
            None => (codec_for(&self.path, &file_header)?, None),
            Some(tiered) => {
                let spec = &self.tier_specs()[t];
                let codec = crate::codec::from_spec(spec.id, &spec.params, self.dims())
                    .map_err(|e| Error::corrupt(&self.path, format!("header: {e}")))?;
                (
                    codec,
                    Some(Box::new(TierView {
                        file_header: file_header.clone(),
                        file_codec: tiered.clone(),
                        tier: t,
                    })),
                )
            }
        };
        let mut header = file_header;
        if view.is_some() {
            header.codec = self.tier_specs()[t].clone();
            header.tiers.clear();
        }
        Ok(Container {
            path: self.path.clone(),
            map: self.map.clone(),
            header,
            header_len: self.header_len,
            index: self.index.clone(),
            codec,
            // A tier view shares its tier's flags; a file without tiers is its own tier 0.
            verified: match self.tier_verified.get(t) {
                Some(v) => v.clone(),
                None => self.verified.clone(),
            },
            tier_verified: self.tier_verified.clone(),
            file_backed: self.file_backed,
            tiered: self.file_tiers().cloned(),
            view,
        })
    }

    /// The file's own header (a tier view's header is its tier's).
    fn file_header(&self) -> &Header {
        match &self.view {
            Some(v) => &v.file_header,
            None => &self.header,
        }
    }

    fn file_tiers(&self) -> Option<&Tiered> {
        self.tiered.as_ref()
    }

    /// The header and codec the chunks' framing is checked against: the file's.
    fn layout(&self) -> (&Header, &dyn Codec) {
        match &self.view {
            Some(v) => (&v.file_header, &v.file_codec),
            None => (&self.header, self.codec.as_ref()),
        }
    }

    /// A tier view's codes of chunk `i`, checked by the tier's own crc32c (once).
    fn tier_codes(&self, v: &TierView, i: usize) -> Result<&[u8]> {
        let e = self.entry(i)?;
        let payload = &self.map[e.payload_range()];
        let r = v.file_codec.range(v.tier, e.rows as usize);
        if !self.verified[i].load(Ordering::Acquire) {
            if !crate::codec::tiers::tier_crc_ok(payload, r.clone()) {
                self.map.check()?;
                return Err(self.bad_chunk(
                    i,
                    format!(
                        "tier {} ({}) fails its crc32c check",
                        v.tier,
                        v.file_codec.tiers()[v.tier].name()
                    ),
                ));
            }
            self.verified[i].store(true, Ordering::Release);
        }
        Ok(&payload[r])
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
                    .mmap()
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, a, b - a)
            };
        }
    }

    /// Fails if the file was cut short under the map since it was opened (another process
    /// truncated or rewrote it): bytes read from it since may be zeros. The decoding calls
    /// check it themselves; a caller that reads [`Container::chunk_payload`] or
    /// [`Container::bytes`] directly calls it after using them.
    ///
    /// # Errors
    /// [`Error::Truncated`] naming the file.
    pub fn check_unchanged(&self) -> Result<()> {
        self.map.check()
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

    /// The stored payload of chunk `i` (chunk header field `L`: the staged codec payload,
    /// then the rows' ids if the container has them), its crc checked (once; the result
    /// is remembered, so a hot chunk is hashed only the first time it is touched). This is
    /// what `merge` copies.
    ///
    /// # Errors
    /// [`Error::Config`] if there is no chunk `i`; [`Error::Corrupt`] with the chunk's byte
    /// offset and row range on a crc mismatch.
    pub fn chunk_stored(&self, i: usize) -> Result<&[u8]> {
        let e = self.entry(i)?;
        let whole = &self.map[e.offset as usize..(e.offset + e.len) as usize];
        // Two threads touching a fresh chunk at once may both hash it; that is harmless
        // and cheaper than a lock on the hot path.
        let (header, codec) = self.layout();
        if self.view.is_some() || !self.verified[i].load(Ordering::Acquire) {
            if !chunk_crc_ok(whole) {
                // Zeros where the file was cut short fail the crc too: say which it was.
                self.map.check()?;
                let tier = self.file_tiers().and_then(|t| {
                    let bad = t.first_bad_tier(&self.map[e.payload_range()], e.rows as usize)?;
                    Some(format!(
                        " (tier {bad}, {}, fails its own)",
                        t.tiers()[bad].name()
                    ))
                });
                return Err(self.bad_chunk(
                    i,
                    format!("fails its crc32c check{}", tier.unwrap_or_default()),
                ));
            }
            // The index vouches for where the chunk is; its own header must agree, or a
            // recovery scan would read the file differently from us.
            let head = whole
                .first_chunk::<CHUNK_HEADER_LEN>()
                .ok_or_else(|| self.bad_chunk(i, "is shorter than a chunk header".into()))?;
            check_chunk_header(head, i as u64, header, codec)
                .map_err(|m| self.bad_chunk(i, format!("has a bad header: {m}")))?;
            let (staged, _) = split_ids(&self.map[e.payload_range()], e.rows, header)
                .map_err(|m| self.bad_chunk(i, m))?;
            let plain = codec.encoded_len(e.rows as usize);
            if header.stage == PayloadStage::Plain && staged.len() != plain {
                return Err(self.bad_chunk(
                    i,
                    format!(
                        "holds {} payload bytes before its ids, the codec needs {plain}",
                        staged.len()
                    ),
                ));
            }
            if self.view.is_none() {
                self.verified[i].store(true, Ordering::Release);
            }
        }
        Ok(&self.map[e.payload_range()])
    }

    /// The payload of chunk `i` as the payload stage stored it (a zstd frame, or the
    /// codec's payload), without the rows' ids; its crc checked as by
    /// [`Container::chunk_stored`].
    ///
    /// # Errors
    /// As [`Container::chunk_stored`].
    pub fn chunk_payload(&self, i: usize) -> Result<&[u8]> {
        if let Some(v) = &self.view {
            return self.tier_codes(v, i);
        }
        let stored = self.chunk_stored(i)?;
        let (staged, _) = split_ids(stored, self.index[i].rows, &self.header)
            .map_err(|m| self.bad_chunk(i, m))?;
        Ok(staged)
    }

    /// The codec's payload of chunk `i` borrowed from the file when it is stored as is (a
    /// tier, or a plain payload stage), its crc checked as by [`Container::chunk_stored`];
    /// `None` when the chunk must be decompressed first ([`Container::chunk_data`]).
    ///
    /// # Errors
    /// As [`Container::chunk_stored`].
    pub fn chunk_codes(&self, i: usize) -> Result<Option<&[u8]>> {
        if let Some(v) = &self.view {
            return self.tier_codes(v, i).map(Some);
        }
        if self.header.stage != PayloadStage::Plain {
            return Ok(None);
        }
        self.chunk_payload(i).map(Some)
    }

    /// The id block of chunk `i` (empty without ids), its crc checked.
    fn chunk_id_block(&self, i: usize) -> Result<&[u8]> {
        let stored = self.chunk_stored(i)?;
        let (_, block) = split_ids(stored, self.index[i].rows, &self.header)
            .map_err(|m| self.bad_chunk(i, m))?;
        Ok(block)
    }

    fn bad_chunk(&self, i: usize, what: String) -> Error {
        let e = self.index[i];
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
    }

    /// The kind of ids the rows carry ([`IdKind::None`] for a container without ids).
    pub fn id_kind(&self) -> IdKind {
        self.header.ids
    }

    /// The number of this file's row 0 in the whole input: a shard's first row
    /// (metadata `shard_first_row`), else 0. A container without ids reports its rows by
    /// these global numbers (`vectro get`, `export`), so the shards of one run never
    /// reuse each other's numbers.
    pub fn first_row(&self) -> u64 {
        self.header
            .metadata
            .get(super::shard::KEY_FIRST_ROW)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Checks every id of chunk `i` (offsets, UTF-8, lengths); `verify` calls it for every
    /// chunk. Nothing to check without ids.
    ///
    /// # Errors
    /// As [`Container::chunk_stored`], and [`Error::Corrupt`] naming the first bad id.
    pub fn check_chunk_ids(&self, i: usize) -> Result<()> {
        if self.header.ids == IdKind::None {
            return Ok(());
        }
        let block = self.chunk_id_block(i)?;
        ids::check_block(self.header.ids, block, self.index[i].rows as usize)
            .map_err(|m| self.bad_chunk(i, m))
    }

    /// The ids of rows `range` (numbered in this file from 0): the stored ids, or for a
    /// container without ids the rows' global numbers ([`Container::first_row`] onward),
    /// as [`IdColumn::U64`].
    ///
    /// ```
    /// # let data: Vec<f32> = (0..50 * 4).map(|i| i as f32).collect();
    /// # let mut bytes = Vec::new();
    /// # vectro::stream::Compressor::new().compress_f32(&data, 4, &mut bytes)?;
    /// let c = vectro::Container::from_bytes("x", &bytes)?;
    /// assert_eq!(c.ids(3..5)?, vectro::format::IdColumn::U64(vec![3, 4]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// An out-of-range or reversed range is [`Error::Config`]; a corrupt chunk or a bad id
    /// is [`Error::Corrupt`].
    pub fn ids(&self, range: Range<u64>) -> Result<IdColumn> {
        if range.start > range.end {
            return Err(Error::Config(format!(
                "reversed row range {}..{}",
                range.start, range.end
            )));
        }
        if range.end > self.header.rows {
            self.check_row(range.end - 1)?;
        }
        if self.header.ids == IdKind::None {
            let base = self.first_row();
            return Ok(IdColumn::U64(
                (range.start + base..range.end + base).collect(),
            ));
        }
        let mut out = match self.header.ids {
            IdKind::Str => IdColumn::Str(Vec::new()),
            _ => IdColumn::U64(Vec::new()),
        };
        let mut row = range.start;
        while row < range.end {
            let ci = self.chunk_of(row);
            let e = self.index[ci];
            let end = range.end.min(e.first_row + e.rows);
            let block = self.chunk_id_block(ci)?;
            let part = ids::decode_block(
                self.header.ids,
                block,
                e.rows as usize,
                (row - e.first_row) as usize..(end - e.first_row) as usize,
            )
            .map_err(|m| self.bad_chunk(ci, m))?;
            match (&mut out, part) {
                (IdColumn::U64(a), IdColumn::U64(b)) => a.extend(b),
                (IdColumn::Str(a), IdColumn::Str(b)) => a.extend(b),
                _ => unreachable!("one kind per container"),
            }
            row = end;
        }
        self.map.check()?;
        Ok(out)
    }

    /// Whether the rows carry payload columns (format 1.5; `compress --payload-columns`).
    pub fn has_payload(&self) -> bool {
        self.header.payload
    }

    /// The payload columns of chunk `i`, decoded and checked (one record batch of the
    /// chunk's rows); `None` for a container without payload columns.
    ///
    /// # Errors
    /// As [`Container::chunk_stored`], and [`Error::Corrupt`] for a block that does not
    /// decode.
    pub fn chunk_payload_columns(&self, i: usize) -> Result<Option<arrow_array::RecordBatch>> {
        if !self.header.payload {
            return Ok(None);
        }
        let stored = self.chunk_stored(i)?;
        let (_, block) = split_payload(stored, &self.header).map_err(|m| self.bad_chunk(i, m))?;
        let batch = super::payload::decode_block(block, self.index[i].rows as usize)
            .map_err(|m| self.bad_chunk(i, m))?;
        self.map.check()?;
        Ok(Some(batch))
    }

    /// The schema of the payload columns (that of chunk 0), or `None` without them.
    ///
    /// # Errors
    /// As [`Container::chunk_payload_columns`].
    pub fn payload_schema(&self) -> Result<Option<arrow_schema::SchemaRef>> {
        Ok(self.chunk_payload_columns(0)?.map(|b| b.schema()))
    }

    /// The payload columns of rows `range` (numbered in this file from 0), as one record
    /// batch; `None` for a container without payload columns.
    ///
    /// # Errors
    /// An out-of-range or reversed range is [`Error::Config`]; a corrupt chunk, or chunks
    /// whose columns disagree, is [`Error::Corrupt`].
    pub fn payload(&self, range: Range<u64>) -> Result<Option<arrow_array::RecordBatch>> {
        if range.start > range.end {
            return Err(Error::Config(format!(
                "reversed row range {}..{}",
                range.start, range.end
            )));
        }
        if range.end > self.header.rows {
            self.check_row(range.end - 1)?;
        }
        if !self.header.payload {
            return Ok(None);
        }
        // The schema of the first chunk read (chunk 0's for an empty range); every chunk
        // read must agree with it.
        let mut schema = None;
        let mut parts = Vec::new();
        let mut row = range.start;
        while row < range.end {
            let ci = self.chunk_of(row);
            let e = self.index[ci];
            let end = range.end.min(e.first_row + e.rows);
            let Some(b) = self.chunk_payload_columns(ci)? else {
                return Ok(None);
            };
            let first = schema.get_or_insert_with(|| b.schema());
            if b.schema() != *first {
                return Err(self.bad_chunk(
                    ci,
                    "holds payload columns other than the chunks before it".to_string(),
                ));
            }
            parts.push(b.slice((row - e.first_row) as usize, (end - row) as usize));
            row = end;
        }
        let schema = match schema {
            Some(s) => s,
            None => match self.payload_schema()? {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        let batch = arrow_select::concat::concat_batches(&schema, &parts)
            .map_err(|e| Error::corrupt(&self.path, format!("payload columns: {e}")))?;
        Ok(Some(batch))
    }

    /// The codec payload of chunk `i`: [`Container::chunk_payload`] with the payload stage
    /// undone (zstd decompressed; borrowed as is for plain chunks).
    ///
    /// # Errors
    /// As [`Container::chunk_payload`], and [`Error::Corrupt`] when a compressed payload
    /// does not decompress to exactly the codec's size.
    pub fn chunk_data(&self, i: usize) -> Result<Cow<'_, [u8]>> {
        if let Some(v) = &self.view {
            return self.tier_codes(v, i).map(Cow::Borrowed);
        }
        let stored = self.chunk_stored(i)?;
        let e = self.index[i];
        unstage(stored, e.rows, &self.header, self.codec.as_ref()).map_err(|msg| {
            // Zeros where the file was cut short do not decompress either.
            if let Err(cut) = self.map.check() {
                return cut;
            }
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
        self.map.check()?;
        self.check_decoded(out, self.index[i].first_row)
    }

    /// [`super::decoded::check`] for rows of this container, the first being `first_row`.
    fn check_decoded(&self, rows: &[f32], first_row: u64) -> Result<()> {
        super::decoded::check(&self.path, rows, self.dims(), first_row)
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
            for (r, o) in rows.clone().zip(out.chunks_exact_mut(d)) {
                self.codec.decode_row(payload, n, r, o);
            }
        } else {
            with_scratch(n * d, |all| {
                self.codec.decode(payload, n, all);
                out.copy_from_slice(&all[rows.start * d..rows.end * d]);
            });
        }
        self.map.check()?;
        self.check_decoded(out, self.index[ci].first_row + rows.start as u64)
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
        self.decode_many(ids, out)?;
        let d = self.dims();
        for (&id, row) in ids.iter().zip(out.chunks_exact(d)) {
            self.check_decoded(row, id)?;
        }
        Ok(())
    }

    /// [`Container::get_many`] but for the check of the decoded rows.
    fn decode_many(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::Container;
    use crate::codec::{Codec, CodecSpec, EncodeFault, PayloadStage};
    use crate::format::{ContainerWriter, Header};

    /// `data` (`dims` floats a row) as an int8 container of `chunk_rows`-row chunks.
    fn int8_container(data: &[f32], dims: usize, chunk_rows: usize) -> Vec<u8> {
        let codec = crate::codec::parse("int8", dims).unwrap();
        let header = Header {
            codec: codec.spec(),
            rows: (data.len() / dims) as u64,
            dims: dims as u32,
            chunk_rows: chunk_rows as u32,
            source_dtype: crate::npy::Dtype::F32Le,
            metadata: Default::default(),
            stage: PayloadStage::Plain,
            ids: Default::default(),
            payload: false,
            tiers: Vec::new(),
        };
        let mut w = ContainerWriter::new(Vec::new(), header).unwrap();
        for rows in data.chunks(chunk_rows * dims) {
            let n = rows.len() / dims;
            let mut payload = vec![0u8; codec.encoded_len(n)];
            codec.encode(rows, &mut payload).unwrap();
            w.write_chunk(n as u64, &payload).unwrap();
        }
        w.finish().unwrap()
    }

    /// Every view of one tier shares that tier's record of verified chunks (and a file
    /// without tiers is its own tier 0), so a search of a tiered file, which makes fresh
    /// views each call, hashes each chunk once per open; other tiers keep their own.
    #[test]
    fn tier_views_share_the_chunks_verified_once_per_open() {
        use std::sync::Arc;
        use std::sync::atomic::Ordering;
        let (dims, chunk_rows) = (12, 5);
        let data: Vec<f32> = (0..23 * dims).map(|i| (i as f32 * 0.61).sin()).collect();
        let coarse = crate::codec::parse("binary", dims).unwrap().spec();
        let rows = crate::codec::parse("int8", dims).unwrap().spec();
        let codec =
            crate::codec::tiers::from_specs(std::slice::from_ref(&coarse), &rows, dims).unwrap();
        let header = Header {
            codec: rows,
            rows: 23,
            dims: dims as u32,
            chunk_rows: chunk_rows as u32,
            source_dtype: crate::npy::Dtype::F32Le,
            metadata: Default::default(),
            stage: PayloadStage::Plain,
            ids: Default::default(),
            payload: false,
            tiers: vec![coarse],
        };
        let mut w = ContainerWriter::new(Vec::new(), header).unwrap();
        for block in data.chunks(chunk_rows * dims) {
            let n = block.len() / dims;
            let mut payload = vec![0u8; codec.encoded_len(n)];
            codec.encode(block, &mut payload).unwrap();
            w.write_chunk(n as u64, &payload).unwrap();
        }
        let c = Container::from_bytes("t", &w.finish().unwrap()).unwrap();
        let flags = |v: &Container| -> Vec<bool> {
            v.verified
                .iter()
                .map(|f| f.load(Ordering::Acquire))
                .collect()
        };
        let (a, b, fine) = (c.tier(0).unwrap(), c.tier(0).unwrap(), c.tier(1).unwrap());
        assert!(Arc::ptr_eq(&a.verified, &b.verified));
        assert!(!Arc::ptr_eq(&a.verified, &fine.verified));
        assert!(!Arc::ptr_eq(&a.verified, &c.verified));
        assert_eq!(flags(&b), vec![false; 5]);
        a.chunk_codes(1).unwrap();
        a.chunk_codes(3).unwrap();
        drop(a);
        let want = vec![false, true, false, true, false];
        assert_eq!(flags(&b), want);
        assert_eq!(flags(&c.tier(0).unwrap().tier(0).unwrap()), want);
        assert_eq!(flags(&fine), vec![false; 5]);
        assert_eq!(flags(&c), vec![false; 5]);
        // A file without tiers: tier 0 is the container, flags and all.
        let plain = Container::from_bytes("p", &int8_container(&data, dims, chunk_rows)).unwrap();
        assert!(Arc::ptr_eq(
            &plain.tier(0).unwrap().verified,
            &plain.verified
        ));
    }

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
        let bytes = int8_container(&data, d, 10);
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
