//! An in-memory input: rows already in RAM (a numpy array handed over by the Python
//! package, a `Vec` a program built), compressed without a copy and without a file.
//!
//! The bytes are shared with the chunk jobs through an [`Arc`], so the encoder reads them in
//! place, exactly as it reads a window of a mapped `.npy`; the output is the one compressing
//! the same rows from a file gives, up to the container's source metadata (name, size).
//!
//! ```
//! use std::sync::{Arc, atomic::AtomicBool};
//! use vectro::{CompressOptions, Container, MemorySource, NoProgress, compress_memory};
//! use vectro::npy::Dtype;
//!
//! let dir = tempfile::tempdir()?;
//! let out = dir.path().join("x.vectro");
//! let rows: Vec<f32> = (0..100 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
//! let bytes: Vec<u8> = rows.iter().flat_map(|x| x.to_le_bytes()).collect();
//! let source = MemorySource::new("rows", Arc::new(bytes), Dtype::F32Le, 100, 8)?;
//! compress_memory(source, &out, &CompressOptions::default(), &NoProgress, &AtomicBool::new(false))?;
//! assert_eq!(Container::open(&out)?.rows(), 100);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::reader::ChunkJob;
use crate::error::{Error, Result};
use crate::npy::{Dtype, NpyHeader};

/// Bytes that live as long as a chunk job needs them: anything that derefs to `[u8]`.
#[derive(Clone)]
pub struct SharedBytes(pub Arc<dyn AsRef<[u8]> + Send + Sync>);

impl SharedBytes {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedBytes({} bytes)", self.bytes().len())
    }
}

/// Rows of a row-major matrix held in memory, little-endian, of one [`Dtype`].
#[derive(Debug, Clone)]
pub struct MemorySource {
    name: PathBuf,
    data: SharedBytes,
    header: NpyHeader,
}

impl MemorySource {
    /// `rows × dims` values of `dtype`, row-major, in `data`. `name` stands for the input in
    /// error messages and in the container's metadata (`source`).
    ///
    /// # Errors
    /// [`Error::BadNpy`] for an empty shape, too many dims, or a length that is not
    /// `rows × dims × dtype size`.
    pub fn new(
        name: impl AsRef<Path>,
        data: Arc<dyn AsRef<[u8]> + Send + Sync>,
        dtype: Dtype,
        rows: u64,
        dims: u64,
    ) -> Result<MemorySource> {
        let name = name.as_ref();
        let bad = |msg: String| Error::bad_npy(name, msg);
        if rows == 0 || dims == 0 {
            return Err(bad(format!(
                "shape ({rows}, {dims}) is empty; there is nothing to compress"
            )));
        }
        if dims > u32::MAX as u64 {
            return Err(bad(format!("{dims} dims is more than Vectro supports")));
        }
        let data = SharedBytes(data);
        let header = NpyHeader {
            dtype,
            rows,
            dims,
            data_offset: 0,
        };
        let need = header
            .data_len()
            .ok_or_else(|| bad("shape is too large to address".into()))?;
        if data.bytes().len() as u64 != need {
            return Err(bad(format!(
                "shape ({rows}, {dims}) of {} needs {need} bytes, the buffer has {}",
                dtype.descr(),
                data.bytes().len()
            )));
        }
        Ok(MemorySource {
            name: name.to_path_buf(),
            data,
            header,
        })
    }

    /// The name errors and metadata give the input.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// The shape and dtype (`data_offset` is 0).
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// Bytes of data.
    pub fn len_bytes(&self) -> u64 {
        self.data.bytes().len() as u64
    }

    /// Chunks `range` (chunk numbers) of `chunk_rows` rows each, in order: windows of the
    /// shared bytes, no copy.
    pub fn chunks(
        &self,
        chunk_rows: u64,
        range: std::ops::Range<u64>,
    ) -> impl Iterator<Item = Result<ChunkJob>> + Send + 'static {
        let data = self.data.clone();
        let rows = self.header.rows;
        let rb = self.header.row_bytes();
        range.map(move |index| {
            let first_row = index * chunk_rows;
            let n = chunk_rows.min(rows - first_row);
            Ok(ChunkJob::shared(
                index,
                first_row,
                n,
                data.clone(),
                first_row as usize * rb,
                n as usize * rb,
            ))
        })
    }

    /// A job of rows `first..first + rows`, numbered `index`: a window, no copy.
    pub(crate) fn window(&self, index: u64, first: u64, rows: u64) -> ChunkJob {
        let rb = self.header.row_bytes();
        ChunkJob::shared(
            index,
            first,
            rows,
            self.data.clone(),
            first as usize * rb,
            rows as usize * rb,
        )
    }

    /// Reads rows `ids` as float32 into `out` (`ids.len() × dims`), checking that they are
    /// finite.
    ///
    /// # Errors
    /// [`Error::NonFinite`] naming the row; [`Error::Config`] for an id past the end.
    pub fn read_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
        let (rb, dims) = (self.header.row_bytes(), self.header.dims as usize);
        for (&id, row) in ids.iter().zip(out.chunks_exact_mut(dims)) {
            if id >= self.header.rows {
                return Err(Error::Config(format!(
                    "{}: row {id} is past the last row ({} rows)",
                    self.name.display(),
                    self.header.rows
                )));
            }
            let at = id as usize * rb;
            self.header
                .dtype
                .to_f32(&self.data.bytes()[at..at + rb], row);
            super::check_finite(row, dims, id, &self.name)?;
        }
        Ok(())
    }
}
