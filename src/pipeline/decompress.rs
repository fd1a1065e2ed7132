//! `decompress`: a container back into a `.npy`, of the dtype its input had or the one
//! asked for.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use super::Progress;
use crate::codec::{Bf16, Codec, F16};
use crate::error::{Error, Result};
use crate::format::Container;
use crate::npy::{self, Dtype, f32_le_bytes};
use crate::output::Durability;
use crate::output::dest::Dest;
use crate::par::{peak_rss_bytes, run_ordered};
use crate::source::reader::ReleaseBehind;

/// The element type of a decompressed `.npy` (`decompress --dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutDtype {
    /// float32, `<f4`: every decoded value exactly.
    F32,
    /// IEEE half precision, `<f2`: each decoded value rounded to nearest, ties to even.
    F16,
    /// bfloat16, rounded to nearest, ties to even. numpy has no bfloat16 dtype, so the
    /// `.npy` holds the bit patterns as `<u2`: `np.load(p).view(ml_dtypes.bfloat16)`, or
    /// `(a.astype(np.uint32) << 16).view(np.float32)` without ml_dtypes.
    Bf16,
}

impl OutDtype {
    /// What a container decompresses to by default: float16 for a float16 input, else
    /// float32. A float64 input comes back as float32, since every codec decodes to
    /// float32 values and wider floats would double the file without adding a digit; a
    /// big-endian float32 input comes back little-endian (the same values).
    pub fn for_source(source: Dtype) -> OutDtype {
        match source {
            Dtype::F16Le => OutDtype::F16,
            Dtype::F32Le | Dtype::F32Be | Dtype::F64Le => OutDtype::F32,
        }
    }

    /// The `descr` of the `.npy` written.
    pub fn descr(self) -> &'static str {
        match self {
            OutDtype::F32 => "<f4",
            OutDtype::F16 => "<f2",
            OutDtype::Bf16 => "<u2",
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            OutDtype::F32 => 4,
            OutDtype::F16 | OutDtype::Bf16 => 2,
        }
    }

    /// The name `--dtype` takes.
    pub fn name(self) -> &'static str {
        match self {
            OutDtype::F32 => "f32",
            OutDtype::F16 => "f16",
            OutDtype::Bf16 => "bf16",
        }
    }

    /// Converts decoded rows (`dims` values each) to the output's bytes, little-endian;
    /// `first_row` and `path` name a value that does not fit.
    ///
    /// # Errors
    /// [`Error::OutOfRange`] for a value that would round to ±Inf in float16 or bfloat16.
    pub fn convert(
        self,
        rows: &[f32],
        dims: usize,
        first_row: u64,
        path: &Path,
    ) -> Result<Vec<u8>> {
        let codec: Box<dyn Codec> = match self {
            OutDtype::F32 => return Ok(f32_le_bytes(rows).into_owned()),
            OutDtype::F16 => Box::new(F16::new(dims)),
            OutDtype::Bf16 => Box::new(Bf16::new(dims)),
        };
        // The f16 and bf16 codecs' payloads are exactly the rows' 16-bit patterns,
        // little-endian, row-major: the `.npy` data.
        let mut out = vec![0u8; codec.encoded_len(rows.len() / dims)];
        codec
            .encode(rows, &mut out)
            .map_err(|f| Error::OutOfRange {
                path: path.to_path_buf(),
                row: first_row + f.row as u64,
                col: f.col as u64,
                msg: format!(
                    "decodes to {}, beyond the range of {}; decompress with --dtype f32",
                    rows[f.row * dims + f.col],
                    self.name()
                ),
            })?;
        Ok(out)
    }
}

impl FromStr for OutDtype {
    type Err = Error;

    fn from_str(s: &str) -> Result<OutDtype> {
        match s {
            "f32" | "float32" => Ok(OutDtype::F32),
            "f16" | "float16" => Ok(OutDtype::F16),
            "bf16" | "bfloat16" => Ok(OutDtype::Bf16),
            _ => Err(Error::Config(format!(
                "unknown dtype '{s}'; use f32, f16 or bf16"
            ))),
        }
    }
}

/// What a decompress run did.
#[derive(Debug, Clone, Serialize)]
pub struct DecompressSummary {
    /// The container read.
    pub input: PathBuf,
    /// The `.npy` written.
    pub output: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// The element type written.
    pub dtype: OutDtype,
    /// Bytes of `.npy` written.
    pub output_bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
}

/// Decodes the container at `input` into a float32 `.npy` at `output`, or to standard
/// output for `-`. [`decompress_as`] writes other dtypes.
///
/// # Errors
/// A corrupt container ([`Error::Corrupt`]), an existing output, I/O errors, or
/// [`Error::Cancelled`].
pub fn decompress(
    input: &Path,
    output: &Path,
    threads: usize,
    overwrite: bool,
    durability: Durability,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<DecompressSummary> {
    let opts = (threads, overwrite, durability);
    decompress_as(input, output, Some(OutDtype::F32), opts, progress, cancel)
}

/// Decodes the container at `input` into a `.npy` of `dtype` at `output` (or standard
/// output for `-`); `None` is the dtype the container's input had
/// ([`OutDtype::for_source`]). `(threads, overwrite, durability)` are as for
/// [`decompress`].
///
/// # Errors
/// As [`decompress`]; [`Error::OutOfRange`] naming the row and column of a value that
/// does not fit float16 or bfloat16 (nothing is left at `output`).
pub fn decompress_as(
    input: &Path,
    output: &Path,
    dtype: Option<OutDtype>,
    (threads, overwrite, durability): (usize, bool, Durability),
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<DecompressSummary> {
    let start = Instant::now();
    let c = Container::open(input)?;
    crate::output::check_not_input(output, [input])?;
    let dtype = dtype.unwrap_or_else(|| OutDtype::for_source(c.header().source_dtype));
    let mut out = Dest::create(output, overwrite, durability)?;
    let header = npy::write_header_descr(c.rows(), c.dims() as u64, dtype.descr());
    let output_bytes = header.len() as u64 + c.rows() * (c.dims() * dtype.size()) as u64;
    out.preallocate(output_bytes);
    let tmp = out.error_path().to_path_buf();
    let io = |e| Error::io(&tmp, "writing", e);
    let mut w = out.writer();
    w.write_all(&header).map_err(io)?;
    let threads = crate::par::resolve_threads(threads);
    let row_bytes = (c.dims() * dtype.size()) as u64;
    progress.begin(c.rows(), c.rows() * row_bytes);
    // Written buffers go back to the workers: a fresh multi-MiB Vec per chunk would
    // page-fault its way through every chunk again.
    let (recycle, pool) = crossbeam_channel::bounded::<Vec<f32>>(2 * threads + 2);
    let mut behind = ReleaseBehind::for_chunks(&c);
    let result = run_ordered(
        threads,
        (0..c.chunks().len()).map(Ok),
        |i| {
            let mut rows = pool.try_recv().unwrap_or_default();
            rows.resize(c.chunks()[i].rows as usize * c.dims(), 0.0);
            c.decode_chunk(i, &mut rows)?;
            // float32 is written straight from the decoded rows; 16-bit outputs are
            // converted here, on the workers.
            let narrow = match dtype {
                OutDtype::F32 => None,
                _ => Some(dtype.convert(&rows, c.dims(), c.chunks()[i].first_row, input)?),
            };
            Ok((i, rows, narrow))
        },
        |(i, rows, narrow)| {
            match &narrow {
                None => w.write_all(&f32_le_bytes(&rows)),
                Some(b) => w.write_all(b),
            }
            .map_err(io)?;
            behind.release_chunks(&c, i, i + 1);
            let n = (rows.len() / c.dims()) as u64;
            progress.advance(n, n * row_bytes);
            let _ = recycle.try_send(rows);
            Ok(())
        },
        cancel,
    );
    progress.finish();
    result?;
    w.flush().map_err(io)?;
    drop(w);
    out.commit()?;
    Ok(DecompressSummary {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        rows: c.rows(),
        dims: c.dims() as u64,
        dtype,
        output_bytes,
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dtype_converts_as_its_codec_and_names_a_value_out_of_range() {
        let rows = [1.0f32, -0.5, 65504.0, 3.0e-8, 1.0e30, 2.5];
        let p = Path::new("x.vectro");
        assert_eq!(
            OutDtype::F32.convert(&rows, 3, 0, p).unwrap(),
            f32_le_bytes(&rows).to_vec()
        );
        let bf = OutDtype::Bf16.convert(&rows, 3, 0, p).unwrap();
        let back: Vec<f32> = bf
            .chunks_exact(2)
            .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
            .collect();
        for (a, b) in rows.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() / 256.0, "{a} vs {b}");
        }
        let e = OutDtype::F16.convert(&rows, 3, 10, p).unwrap_err();
        assert!(
            matches!(
                e,
                Error::OutOfRange {
                    row: 11,
                    col: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("--dtype f32"), "{e}");
        let ok = OutDtype::F16.convert(&rows[..3], 3, 0, p).unwrap();
        assert_eq!(&ok[4..6], &half_bits(65504.0), "the largest float16 stays");
    }

    fn half_bits(v: f32) -> [u8; 2] {
        half::f16::from_f32(v).to_bits().to_le_bytes()
    }

    #[test]
    fn the_default_is_the_input_dtype_or_float32() {
        assert_eq!(OutDtype::for_source(Dtype::F16Le), OutDtype::F16);
        for d in [Dtype::F32Le, Dtype::F32Be, Dtype::F64Le] {
            assert_eq!(OutDtype::for_source(d), OutDtype::F32);
        }
        for (s, d) in [
            ("f32", OutDtype::F32),
            ("float16", OutDtype::F16),
            ("bf16", OutDtype::Bf16),
        ] {
            assert_eq!(s.parse::<OutDtype>().unwrap(), d);
        }
        assert!("f64".parse::<OutDtype>().is_err());
    }
}
