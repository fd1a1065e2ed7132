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
use std::sync::atomic::AtomicBool;

use super::reader::{ChunkJob, Input};
use super::{CompressOptions, CompressSummary, Progress};
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

/// Compresses the rows of `source` into a new container at `output`: [`compress`](super::compress)
/// for rows in memory. Every option applies, `resume` and `shard` included (the input is
/// then the same rows again).
///
/// # Errors
/// As [`compress`](super::compress).
pub fn compress_memory(
    source: MemorySource,
    output: &Path,
    opts: &CompressOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<CompressSummary> {
    let name = source.name.clone();
    super::compress::compress_source(Input::Memory(source), &name, output, opts, progress, cancel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Container;
    use crate::output::Durability;
    use crate::pipeline::NoProgress;

    fn opts(codec: &str) -> CompressOptions {
        CompressOptions {
            codec: codec.into(),
            chunk_rows: Some(37),
            threads: 2,
            durability: Durability::None,
            ..Default::default()
        }
    }

    /// The same rows from memory and from a `.npy` give the same container, chunk by
    /// chunk, for each codec and source dtype; only the source metadata differ.
    #[test]
    fn memory_input_gives_the_chunks_a_npy_file_gives() {
        let dir = tempfile::tempdir().unwrap();
        let (rows, dims) = (300u64, 24u64);
        let mut rng = crate::test_rng::Rng(0x5eed_1234_abcd_0001);
        let values: Vec<f32> = (0..rows * dims)
            .map(|_| (rng.next() as i32) as f32 / 1e9)
            .collect();
        let cases: [(Dtype, Vec<u8>); 3] = [
            (
                Dtype::F32Le,
                values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
            (
                Dtype::F64Le,
                values
                    .iter()
                    .flat_map(|&x| f64::from(x).to_le_bytes())
                    .collect(),
            ),
            (
                Dtype::F16Le,
                values
                    .iter()
                    .flat_map(|&x| half::f16::from_f32(x).to_le_bytes())
                    .collect(),
            ),
        ];
        for (dtype, bytes) in cases {
            let npy = dir.path().join("x.npy");
            let mut file = crate::npy::write_header(rows, dims);
            // write_header writes <f4; patch the descr for the other dtypes (same length).
            let at = file.windows(3).position(|w| w == b"<f4").unwrap();
            file[at..at + 3].copy_from_slice(dtype.descr().as_bytes());
            file.extend_from_slice(&bytes);
            std::fs::write(&npy, &file).unwrap();
            for codec in ["int8", "f16", "int4", "binary", "pq:m=4,nbits=4"] {
                let a = dir.path().join("a.vectro");
                let b = dir.path().join("b.vectro");
                let o = CompressOptions {
                    overwrite: true,
                    ..opts(codec)
                };
                let stop = AtomicBool::new(false);
                super::super::compress(&npy, &a, &o, &NoProgress, &stop).unwrap();
                let src =
                    MemorySource::new("mem", Arc::new(bytes.clone()), dtype, rows, dims).unwrap();
                let s = compress_memory(src, &b, &o, &NoProgress, &stop).unwrap();
                assert_eq!((s.rows, s.dims), (rows, dims));
                let (ca, cb) = (Container::open(&a).unwrap(), Container::open(&b).unwrap());
                assert_eq!(ca.header().codec, cb.header().codec, "{codec} {dtype:?}");
                assert_eq!(ca.chunks().len(), cb.chunks().len());
                for i in 0..ca.chunks().len() {
                    assert_eq!(
                        ca.chunk_payload(i).unwrap(),
                        cb.chunk_payload(i).unwrap(),
                        "{codec} {dtype:?} chunk {i}"
                    );
                }
                assert_eq!(cb.metadata().get("source").map(String::as_str), Some("mem"));
            }
        }
    }

    #[test]
    fn memory_input_refuses_a_wrong_length_and_names_non_finite_rows() {
        let err = MemorySource::new("arr", Arc::new(vec![0u8; 10]), Dtype::F32Le, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("arr: shape (2, 2) of <f4 needs 16 bytes"),
            "{err}"
        );
        let mut v = [1f32; 4 * 3];
        v[7] = f32::NAN;
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        let src = MemorySource::new("arr", Arc::new(bytes), Dtype::F32Le, 4, 3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = compress_memory(
            src,
            &dir.path().join("x.vectro"),
            &opts("int8"),
            &NoProgress,
            &AtomicBool::new(false),
        )
        .unwrap_err();
        match err {
            Error::NonFinite { path, row, col, .. } => {
                assert_eq!((path.as_path(), row, col), (Path::new("arr"), 2, 1));
            }
            e => panic!("{e}"),
        }
    }
}
