//! The reader stage: a memory-mapped `.npy` cut into chunks of rows.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{Advice, Mmap, UncheckedAdvice};

use crate::error::{Error, Result};
use crate::npy::{self, NpyHeader};

/// A `.npy` input, memory-mapped read-only.
#[derive(Debug, Clone)]
pub struct NpySource {
    path: PathBuf,
    map: Arc<Mmap>,
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
    map: Arc<Mmap>,
    start: usize,
    len: usize,
}

impl ChunkJob {
    /// The raw source bytes of the chunk.
    pub fn bytes(&self) -> &[u8] {
        &self.map[self.start..self.start + self.len]
    }
}

impl NpySource {
    /// Maps `path` and parses its header.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be opened; [`Error::BadNpy`] if it is not a usable matrix.
    pub fn open(path: &Path) -> Result<NpySource> {
        let file = File::open(path).map_err(|e| Error::io(path, "opening", e))?;
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
        // SAFETY: read-only mapping. If another process truncates the file while we read,
        // the kernel raises SIGBUS; like every mmap reader we document that inputs must not
        // change during a run. All offsets below are checked against the file length.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, "mapping", e))?;
        // Only a hint: failure just means the kernel reads ahead less eagerly.
        let _ = map.advise(Advice::Sequential);
        let header = npy::parse_header(path, &map, file_len)?;
        Ok(NpySource {
            path: path.to_path_buf(),
            map: Arc::new(map),
            header,
            file_len,
            mtime,
        })
    }

    /// The input path.
    pub fn path(&self) -> &Path {
        &self.path
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

    /// The raw bytes of rows `first..first + rows`.
    pub fn row_bytes(&self, first: u64, rows: u64) -> &[u8] {
        let rb = self.header.row_bytes();
        let start = self.header.data_offset as usize + first as usize * rb;
        &self.map[start..start + rows as usize * rb]
    }

    /// The chunks of `chunk_rows` rows, in order.
    pub fn chunks(&self, chunk_rows: u64) -> impl Iterator<Item = Result<ChunkJob>> + Send + 'static {
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
                map: Arc::clone(&map),
                start: data + first_row as usize * rb,
                len: n as usize * rb,
            })
        })
    }

    /// Drops the mapped pages of rows `first..end` from this process's memory. The data
    /// stays in the page cache; only our resident set shrinks, so a file larger than RAM
    /// can stream through without pinning it.
    pub fn release_rows(&self, first: u64, end: u64) {
        const PAGE: usize = 4096;
        let at = |row: u64| {
            (self.header.data_offset as usize + row as usize * self.header.row_bytes()) / PAGE * PAGE
        };
        let (a, b) = (at(first), at(end));
        if b > a {
            // SAFETY: DONTNEED on a read-only file mapping only discards our view of the
            // pages; a later access refaults them from the file, so no byte ever changes.
            let _ = unsafe { self.map.unchecked_advise_range(UncheckedAdvice::DontNeed, a, b - a) };
        }
    }
}
