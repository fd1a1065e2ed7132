//! [`compress_memory`]: [`compress`](super::compress) of rows already in RAM (a
//! [`MemorySource`]).

use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::{CompressOptions, CompressSummary, Progress};
use crate::error::Result;
pub use crate::source::memory::{MemorySource, SharedBytes};
use crate::source::reader::Input;

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
    let name = source.name().to_path_buf();
    super::compress::compress_source(Input::Memory(source), &name, output, opts, progress, cancel)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::Error;
    use crate::format::Container;
    use crate::npy::Dtype;
    use crate::output::Durability;
    use crate::pipeline::NoProgress;

    fn opts(codec: &str) -> CompressOptions {
        CompressOptions {
            codec: Some(codec.parse().unwrap()),
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
