//! The reader stage: a memory-mapped `.npy` cut into chunks of rows.
//!
//! [`Input`] generalises it to what `--in` accepts: one file, many files read as one
//! matrix ([`Dataset`](super::dataset::Dataset)), or a stream without mmap
//! ([`StreamSource`](super::stream::StreamSource), `--in -`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Advice, UncheckedAdvice};

use crate::error::{Error, Result};
use crate::format::Container;
use crate::mapping::Map;
use crate::npy::{self, NpyHeader};

/// A `.npy` input, memory-mapped read-only.
#[derive(Debug, Clone)]
pub struct NpySource {
    /// How errors name it: the file, or `file:member` for a member or tensor.
    path: PathBuf,
    /// The file mapped.
    file_path: PathBuf,
    /// For scattered reads, which bypass the mapping ([`NpySource::read_rows_at`]).
    file: Arc<File>,
    map: Arc<Map>,
    header: NpyHeader,
    file_len: u64,
    mtime: u64,
}

/// One chunk of rows to encode, borrowing the mapping.
#[derive(Debug)]
pub struct ChunkJob {
    /// Chunk number, from 0.
    pub index: u64,
    /// First row of the chunk.
    pub first_row: u64,
    /// Rows in the chunk.
    pub rows: u64,
    data: JobData,
}

/// A chunk's bytes: a window of one mapping, or a copy (a chunk spanning two files, or read
/// from a stream).
#[derive(Debug)]
enum JobData {
    Mapped {
        map: Arc<Map>,
        start: usize,
        len: usize,
    },
    Owned(Vec<u8>),
    /// A window of bytes held in memory ([`super::memory::MemorySource`]).
    Shared {
        data: super::memory::SharedBytes,
        start: usize,
        len: usize,
    },
}

impl ChunkJob {
    /// The raw source bytes of the chunk.
    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            JobData::Mapped { map, start, len } => &map[*start..*start + *len],
            JobData::Owned(v) => v,
            JobData::Shared { data, start, len } => &data.bytes()[*start..*start + *len],
        }
    }

    /// Fails if the chunk's bytes came from a mapped file that was cut short while they
    /// were read (they are then zeros, not the file's): call it after using
    /// [`ChunkJob::bytes`] and before keeping anything derived from them.
    ///
    /// # Errors
    /// [`Error::Truncated`] naming the file.
    pub fn check_unchanged(&self) -> Result<()> {
        match &self.data {
            JobData::Mapped { map, .. } => map.check(),
            JobData::Owned(_) | JobData::Shared { .. } => Ok(()),
        }
    }

    pub(crate) fn owned(index: u64, first_row: u64, rows: u64, bytes: Vec<u8>) -> ChunkJob {
        ChunkJob {
            index,
            first_row,
            rows,
            data: JobData::Owned(bytes),
        }
    }

    pub(crate) fn shared(
        index: u64,
        first_row: u64,
        rows: u64,
        data: super::memory::SharedBytes,
        start: usize,
        len: usize,
    ) -> ChunkJob {
        ChunkJob {
            index,
            first_row,
            rows,
            data: JobData::Shared { data, start, len },
        }
    }
}

impl NpySource {
    /// Maps `path` and parses its header.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be opened; [`Error::BadNpy`] if it is not a usable matrix.
    pub fn open(path: &Path) -> Result<NpySource> {
        NpySource::open_mapped(path, path, |map, len| npy::parse_header(path, map, len))
    }

    /// Maps the file at `file_path` and takes the matrix that `parse` finds in its bytes
    /// (given the file's length): a `.npy`, or an array at an offset of another format
    /// (a safetensors tensor, a `.fbin`, a stored `.npz` member). `name` names it in
    /// errors.
    ///
    /// # Errors
    /// As [`NpySource::open`], and what `parse` returns.
    pub(crate) fn open_mapped(
        file_path: &Path,
        name: &Path,
        parse: impl FnOnce(&[u8], u64) -> Result<NpyHeader>,
    ) -> Result<NpySource> {
        let path = file_path;
        let file = crate::input::open_input(path)?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(path, "reading metadata of", e))?;
        if meta.is_dir() {
            return Err(Error::bad_npy(path, "is a directory, not a .npy file"));
        }
        let file_len = meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        if file_len == 0 {
            return Err(Error::bad_npy(path, "empty file: not a .npy file"));
        }
        // A file cut short while we read it is an error, not a SIGBUS (see `crate::mapping`).
        // All offsets below are checked against the file length.
        let map = Map::new(&file, path)?;
        // Only a hint: failure just means the kernel reads ahead less eagerly.
        let _ = map.mmap().advise(Advice::Sequential);
        let header = parse(&map, file_len)?;
        let end = header
            .data_len()
            .and_then(|n| n.checked_add(header.data_offset));
        if end.is_none_or(|end| end > file_len) {
            return Err(Error::bad_npy(
                name,
                "the array runs past the end of the file: it is cut short or corrupt",
            ));
        }
        Ok(NpySource {
            path: name.to_path_buf(),
            file_path: path.to_path_buf(),
            file: Arc::new(file),
            map: Arc::new(map),
            header,
            file_len,
            mtime,
        })
    }

    /// The input path (`file:member` for a member of a file).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file mapped: [`NpySource::path`] without a member.
    pub fn file_path(&self) -> &Path {
        &self.file_path
    }

    /// The parsed header.
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// Total file size.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Modification time, seconds since the epoch.
    pub fn mtime(&self) -> u64 {
        self.mtime
    }

    /// Fails if the file was cut short under the map since it was opened: bytes read
    /// through [`NpySource::row_bytes`] since then may be zeros. Call it after using them.
    ///
    /// # Errors
    /// [`Error::Truncated`] naming the file.
    pub fn check_unchanged(&self) -> Result<()> {
        self.map.check()
    }

    /// The raw bytes of rows `first..first + rows`.
    pub fn row_bytes(&self, first: u64, rows: u64) -> &[u8] {
        let rb = self.header.row_bytes();
        let start = self.header.data_offset as usize + first as usize * rb;
        &self.map[start..start + rows as usize * rb]
    }

    /// Copies the raw bytes of rows `first..first + rows` into `out` with `pread`, not
    /// through the mapping: for scattered rows (the re-ranked candidates of `eval`, say).
    /// A fault on the mapping maps a whole fault-around window or page-cache folio, up to
    /// megabytes for one row, and those pages stay in the resident set until released:
    /// a few thousand scattered rows read through the map put the whole file in it (a
    /// 2 GiB input's eval peaked at 2 GiB RSS).
    ///
    /// # Errors
    /// [`Error::Io`] naming the file, if it cannot be read (or was cut short).
    pub fn read_rows_at(&self, first: u64, rows: u64, out: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let rb = self.header.row_bytes() as u64;
        debug_assert_eq!(out.len() as u64, rows * rb);
        self.file
            .read_exact_at(out, self.header.data_offset + first * rb)
            .map_err(|e| Error::io(&self.path, "reading", e))
    }

    /// Row `row` as float32 in `out` (`dims` values), read with
    /// [`NpySource::read_rows_at`]; `raw` is scratch for its bytes.
    ///
    /// # Errors
    /// As [`NpySource::read_rows_at`]; [`Error::NonFinite`] naming a NaN or ±Inf.
    pub fn read_row_f32(&self, row: u64, raw: &mut Vec<u8>, out: &mut [f32]) -> Result<()> {
        raw.resize(self.header.row_bytes(), 0);
        self.read_rows_at(row, 1, raw)?;
        self.header.dtype.to_f32(raw, out);
        super::check_finite(out, out.len().max(1), row, &self.path)
            .map_err(|e| crate::npy::f64_overflow(e, raw, self.header.dtype, row, out.len().max(1)))
    }

    /// The chunks of `chunk_rows` rows, in order.
    pub fn chunks(
        &self,
        chunk_rows: u64,
    ) -> impl Iterator<Item = Result<ChunkJob>> + Send + 'static {
        let map = Arc::clone(&self.map);
        let rows = self.header.rows;
        let rb = self.header.row_bytes();
        let data = self.header.data_offset as usize;
        (0..rows.div_ceil(chunk_rows)).map(move |index| {
            let first_row = index * chunk_rows;
            let n = chunk_rows.min(rows - first_row);
            Ok(ChunkJob {
                index,
                first_row,
                rows: n,
                data: JobData::Mapped {
                    map: Arc::clone(&map),
                    start: data + first_row as usize * rb,
                    len: n as usize * rb,
                },
            })
        })
    }

    /// A job for rows `first..first + rows` of this file, numbered `index` with global
    /// first row `global_first`: a window of the mapping, no copy.
    pub(crate) fn job(&self, index: u64, global_first: u64, first: u64, rows: u64) -> ChunkJob {
        let rb = self.header.row_bytes();
        ChunkJob {
            index,
            first_row: global_first,
            rows,
            data: JobData::Mapped {
                map: Arc::clone(&self.map),
                start: self.header.data_offset as usize + first as usize * rb,
                len: rows as usize * rb,
            },
        }
    }

    /// Drops the mapped pages of rows `first..end` from this process's memory. The data
    /// stays in the page cache; only our resident set shrinks, so a file larger than RAM
    /// can stream through without pinning it.
    pub fn release_rows(&self, first: u64, end: u64) {
        const PAGE: usize = 4096;
        let at = |row: u64| {
            (self.header.data_offset as usize + row as usize * self.header.row_bytes()) / PAGE
                * PAGE
        };
        let (a, b) = (at(first), at(end));
        if b > a {
            // SAFETY: DONTNEED on a read-only file mapping only discards our view of the
            // pages; a later access refaults them from the file, so no byte ever changes.
            let _ = unsafe {
                self.map
                    .mmap()
                    .unchecked_advise_range(UncheckedAdvice::DontNeed, a, b - a)
            };
        }
    }
}

/// How much consumed input an in-order stage lets pile up before releasing it.
///
/// Each `madvise(DONTNEED)` on a process whose threads run on several cores ends in a TLB
/// shootdown: an interrupt to every other core. Released per 4 MiB chunk, that was 5% of
/// the CPU time of a 4 GiB int8 compress in `perf`; per 16 MiB it is a quarter of that,
/// and the resident set grows by at most these 16 MiB, whatever the input's size.
pub(crate) const RELEASE_STEP_BYTES: u64 = 16 << 20;

/// Batches the release of input behind a stage that consumes it in order (rows or chunks).
#[derive(Debug)]
pub(crate) struct ReleaseBehind {
    from: Option<u64>,
    step: u64,
}

impl ReleaseBehind {
    /// Releases in steps of `step` units (at least 1).
    pub fn new(step: u64) -> Self {
        Self {
            from: None,
            step: step.max(1),
        }
    }

    /// Steps of [`RELEASE_STEP_BYTES`] for units of `unit_bytes` each.
    pub fn by_bytes(unit_bytes: u64) -> Self {
        Self::new(RELEASE_STEP_BYTES / unit_bytes.max(1))
    }

    /// Steps of [`RELEASE_STEP_BYTES`] of `c`'s chunks (each taken as its first's size).
    pub fn for_chunks(c: &Container) -> Self {
        Self::by_bytes(c.chunks().first().map_or(1, |e| e.len))
    }

    /// Records chunks `first..end` of `c` as consumed, and releases their pages a step at
    /// a time ([`Container::release_chunks`]).
    pub fn release_chunks(&mut self, c: &Container, first: usize, end: usize) {
        if let Some(r) = self.consumed(first as u64, end as u64) {
            c.release_chunks(r.start as usize..r.end as usize);
        }
    }

    /// Records that units `first..end` are consumed. Returns the range to release now,
    /// once at least a step has piled up since the last release (or since the first
    /// range recorded).
    pub fn consumed(&mut self, first: u64, end: u64) -> Option<std::ops::Range<u64>> {
        let from = *self.from.get_or_insert(first);
        if end >= from + self.step {
            self.from = Some(end);
            Some(from..end)
        } else {
            None
        }
    }
}

/// Whatever `--in` names: files (one, a directory, or a glob) or a stream (`-`).
#[derive(Debug)]
pub enum Input {
    /// One or more memory-mapped files read as one matrix.
    Files(super::dataset::Dataset),
    /// A `.npy` on standard input (or any reader), read once, in order.
    Stream(super::stream::StreamSource),
    /// Rows held in memory ([`super::memory::MemorySource`]).
    Memory(super::memory::MemorySource),
    /// Rows decoded from files that cannot be mapped as a matrix: Parquet, Arrow,
    /// `.fvecs`, ... ([`super::table::Table`]).
    Table(super::table::Table),
}

impl Input {
    /// Opens `spec` in any format `--in` reads, with the default options: see
    /// [`Input::open_with`].
    ///
    /// # Errors
    /// As [`Input::open_with`].
    pub fn open(spec: &Path) -> Result<Input> {
        Input::open_with(spec, &super::open::InputOptions::default())
    }

    /// The files read (not members or tensors): what an output must not overwrite.
    pub fn files(&self) -> Vec<&Path> {
        match self {
            Input::Files(d) => d.files().iter().map(|f| f.file_path()).collect(),
            Input::Table(t) => t.parts().iter().map(|p| p.file()).collect(),
            Input::Stream(_) | Input::Memory(_) => Vec::new(),
        }
    }

    /// The shape of the whole logical matrix (`data_offset` is meaningless for many files).
    pub fn header(&self) -> NpyHeader {
        match self {
            Input::Files(d) => d.header(),
            Input::Stream(s) => *s.header(),
            Input::Memory(m) => *m.header(),
            Input::Table(t) => t.header(),
        }
    }

    /// How errors name the input.
    pub fn path(&self) -> &Path {
        match self {
            Input::Files(d) if !d.is_multi() => d.files()[0].path(),
            Input::Files(d) => d.spec(),
            Input::Stream(s) => s.name(),
            Input::Memory(m) => m.name(),
            Input::Table(t) if !t.is_multi() => t.parts()[0].name(),
            Input::Table(t) => t.spec(),
        }
    }

    /// Bytes of input: the files' sizes, or header plus data for a stream.
    pub fn input_bytes(&self) -> u64 {
        match self {
            Input::Files(d) => d.total_bytes(),
            Input::Stream(s) => s.header().data_offset + s.header().data_len().unwrap_or(0),
            Input::Memory(m) => m.len_bytes(),
            Input::Table(t) => t.total_bytes(),
        }
    }

    /// Chunks `range` (chunk numbers) of `chunk_rows` rows each, in order.
    ///
    /// # Errors
    /// [`Error::Config`] for a stream, unless `range` starts at chunk 0 and the stream has
    /// not been read yet: a stream cannot skip rows or be read twice.
    pub fn chunks(
        &self,
        chunk_rows: u64,
        range: std::ops::Range<u64>,
    ) -> Result<Box<dyn Iterator<Item = Result<ChunkJob>> + Send + 'static>> {
        match self {
            Input::Files(d) => Ok(Box::new(d.chunks(chunk_rows, range))),
            Input::Memory(m) => Ok(Box::new(m.chunks(chunk_rows, range))),
            Input::Table(t) => Ok(Box::new(t.chunks(chunk_rows, range))),
            Input::Stream(s) => {
                let all = s.header().rows.div_ceil(chunk_rows);
                if range != (0..all) {
                    return Err(Error::Config(
                        "a stream (input -) cannot be sharded: give the shards files to read"
                            .into(),
                    ));
                }
                Ok(Box::new(s.chunks(chunk_rows)?))
            }
        }
    }

    /// The first `rows` rows (all, if fewer) as float32, checked finite: what `bench`
    /// holds in memory.
    ///
    /// # Errors
    /// As [`Input::chunks`]; [`Error::NonFinite`] naming the file and its own row.
    pub fn read_head(&self, rows: u64) -> Result<Vec<f32>> {
        let h = self.header();
        let rows = rows.min(h.rows);
        let dims = h.dims as usize;
        let mut out = vec![0f32; rows as usize * dims];
        if rows == 0 {
            return Ok(out);
        }
        let whole = std::iter::once(0..rows).collect();
        for job in self.ranges(whole)? {
            let job = job?;
            let o = &mut out[..];
            h.dtype.to_f32(job.bytes(), o);
            job.check_unchanged()?;
            if let Err(e) = super::check_finite(o, dims, 0, self.path()) {
                // A float64 past float32's range is named as compress names it.
                let e = crate::npy::f64_overflow(e, job.bytes(), h.dtype, 0, dims);
                return Err(match e {
                    Error::NonFinite {
                        row, col, value, ..
                    } => {
                        let (path, row) = self.locate(row);
                        Error::NonFinite {
                            path,
                            row,
                            col,
                            value,
                        }
                    }
                    e => e,
                });
            }
        }
        Ok(out)
    }

    /// Jobs of the global rows of each of `ranges`, in order (numbered from 0): windows of
    /// a mapping where they can be, decoded rows otherwise. For reading an input beside
    /// a container whose chunks are laid out otherwise (`eval`).
    ///
    /// # Errors
    /// [`Error::Config`] for a stream, or a range past the end.
    pub fn ranges(
        &self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> Result<Box<dyn Iterator<Item = Result<ChunkJob>> + Send + 'static>> {
        let total = self.header().rows;
        if let Some(r) = ranges.iter().find(|r| r.end > total || r.start > r.end) {
            return Err(Error::Config(format!(
                "{}: rows {}..{} are not rows of its {total}",
                self.path().display(),
                r.start,
                r.end
            )));
        }
        match self {
            Input::Files(d) => {
                let d = d.clone();
                Ok(Box::new(ranges.into_iter().enumerate().map(move |(i, r)| {
                    d.job(i as u64, r.start, r.end - r.start)
                })))
            }
            Input::Table(t) => Ok(Box::new(t.ranges(ranges))),
            Input::Memory(m) => {
                let m = m.clone();
                Ok(Box::new(ranges.into_iter().enumerate().map(move |(i, r)| {
                    Ok(m.window(i as u64, r.start, r.end - r.start))
                })))
            }
            Input::Stream(_) => Err(Error::Config(
                "this command reads its input beside another file, which a stream (input -) cannot offer: \
                 save the stream to a file first"
                    .into(),
            )),
        }
    }

    /// Releases the input pages of global rows `first..end` (files only).
    pub fn release_rows(&self, first: u64, end: u64) {
        if let Input::Files(d) = self {
            d.release_rows(first, end);
        }
    }

    /// Reads global rows `ids` as float32 into `out` (`ids.len() × dims`), checking that
    /// they are finite: the random access that sampling (`--codec auto`, training) needs.
    ///
    /// # Errors
    /// [`Error::Config`] for a stream, which cannot be sampled before it is read;
    /// [`Error::NonFinite`] naming the file and its own row.
    pub fn read_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
        if let Input::Memory(m) = self {
            return m.read_rows(ids, out);
        }
        if let Input::Table(t) = self {
            return t.read_rows(ids, out);
        }
        let Input::Files(d) = self else {
            return Err(Error::Config(
                "this codec samples rows before encoding, which a stream (input -) cannot offer: \
                 save the stream to a file first, or pass a trained --codebook"
                    .into(),
            ));
        };
        let h = d.header();
        let dims = h.dims as usize;
        let mut raw = Vec::new();
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(dims)) {
            let (f, local) = d.locate(id);
            // Not through the mapping: see `NpySource::read_rows_at`.
            f.read_row_f32(local, &mut raw, row)?;
        }
        Ok(())
    }

    /// The file and the row within it that hold global `row`, for messages.
    pub fn locate(&self, row: u64) -> (PathBuf, u64) {
        match self {
            Input::Files(d) => {
                let (f, local) = d.locate(row);
                (f.path().to_path_buf(), local)
            }
            Input::Stream(s) => (s.name().to_path_buf(), row),
            Input::Memory(m) => (m.name().to_path_buf(), row),
            Input::Table(t) => {
                let (p, local) = t.locate(row);
                (t.parts()[p].name().to_path_buf(), local)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ReleaseBehind;

    #[test]
    fn release_behind_covers_consumed_units_in_whole_steps() {
        // Uneven chunks, starting mid-input (a resumed run starts at its first new row).
        let mut behind = ReleaseBehind::new(10);
        let mut released = Vec::new();
        let mut first = 7;
        for n in [3, 4, 6, 1, 9, 2, 2, 8, 5] {
            released.extend(behind.consumed(first, first + n));
            first += n;
        }
        assert_eq!(released, [7..20, 20..30, 30..42]);
        // Releases are contiguous, each holds at least a step, and nothing past what was
        // consumed (47) is released: the tail, 42..47, waits for a full step.
        assert!(released.windows(2).all(|w| w[0].end == w[1].start));
        assert!(released.iter().all(|r| r.end - r.start >= 10));
        assert_eq!(first, 47);
        assert_eq!(ReleaseBehind::by_bytes(1 << 30).step, 1);
    }
}
