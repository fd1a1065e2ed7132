//! Synthetic embedding-like data, streamed to a `.npy` of any size.
//!
//! i.i.d. noise flatters every codec, so the model mimics what real sentence embeddings
//! look like:
//! - **clustered:** each row belongs to one of `clusters` topics (centres);
//! - **anisotropic:** per-dimension spread follows a power law `σ_j ∝ (j+1)^-0.5`, shuffled
//!   over the dimensions;
//! - **offset with outlier dimensions:** a shared mean vector, with ~1% of dimensions
//!   carrying a large constant offset, as transformer embeddings do;
//! - **varied norms:** each row is scaled by a log-normal factor (σ = 0.25).
//!
//! Chunk `i` is drawn from its own ChaCha8 stream, so output is identical for any thread
//! count, and rows are generated and written chunk by chunk, in bounded memory.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, StandardNormal};

use crate::error::{Error, Result};
use crate::npy;
use crate::npy::f32_le_bytes;
use crate::output::{AtomicOutput, Durability};
use crate::par::run_ordered;
use crate::progress::Progress;

/// Rows per generated chunk.
const CHUNK_ROWS: u64 = 4096;

/// The generator's parameters.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Rows to write.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// Number of clusters (topics).
    pub clusters: usize,
    /// Seed of every random draw.
    pub seed: u64,
    /// Worker threads; 0 means the available cores.
    pub threads: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            rows: 10_000,
            dims: 384,
            clusters: 100,
            seed: 42,
            threads: 0,
        }
    }
}

struct Model {
    mean: Vec<f32>,
    sigma: Vec<f32>,
    centres: Vec<Vec<f32>>,
}

impl Model {
    fn new(o: &GenerateOptions) -> Model {
        let d = o.dims as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(o.seed);
        let mut sigma: Vec<f32> = (0..d).map(|j| 0.1 / ((j + 1) as f32).sqrt()).collect();
        // Shuffle so that the big dimensions are not all at the front.
        for j in (1..d).rev() {
            let k = rng.random_range(0..=j);
            sigma.swap(j, k);
        }
        let mean: Vec<f32> = (0..d)
            .map(|_| {
                let outlier = rng.random_bool(0.01);
                let base: f32 = StandardNormal.sample(&mut rng);
                base * 0.02 + if outlier { 0.3 } else { 0.0 }
            })
            .collect();
        let centres = (0..o.clusters.max(1))
            .map(|_| {
                (0..d)
                    .map(|j| {
                        let z: f32 = StandardNormal.sample(&mut rng);
                        z * sigma[j] * 1.5
                    })
                    .collect()
            })
            .collect();
        Model {
            mean,
            sigma,
            centres,
        }
    }

    fn chunk(&self, seed: u64, index: u64, rows: usize) -> Vec<f32> {
        let d = self.mean.len();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index + 1);
        let norm = LogNormal::new(0.0f32, 0.25).expect("valid parameters");
        let mut out = vec![0f32; rows * d];
        for row in out.chunks_exact_mut(d) {
            let c = &self.centres[rng.random_range(0..self.centres.len())];
            let s = norm.sample(&mut rng);
            for (j, x) in row.iter_mut().enumerate() {
                let noise: f32 = StandardNormal.sample(&mut rng);
                *x = (self.mean[j] + c[j] + noise * self.sigma[j]) * s;
            }
        }
        out
    }
}

/// The most dimensions [`generate`] writes: far beyond any embedding model, and small
/// enough that a chunk of rows and the cluster centres fit in memory.
pub const MAX_DIMS: u64 = 1 << 16;
/// The most clusters [`generate`] draws (each is a row of centres held in memory).
pub const MAX_CLUSTERS: usize = 1 << 16;
/// The largest file [`generate`] writes: 1 PiB of float32 rows.
pub const MAX_BYTES: u64 = 1 << 50;

/// Refuses a shape that is empty or that no disk could hold, before anything is written.
fn check_shape(opts: &GenerateOptions) -> Result<()> {
    if opts.rows == 0 || opts.dims == 0 {
        return Err(Error::Config("--rows and --dims must be at least 1".into()));
    }
    if opts.dims > MAX_DIMS {
        return Err(Error::Config(format!(
            "--dims {} is more than {MAX_DIMS}, the most generate writes",
            opts.dims
        )));
    }
    if opts.clusters > MAX_CLUSTERS {
        return Err(Error::Config(format!(
            "--clusters {} is more than {MAX_CLUSTERS}, the most generate draws",
            opts.clusters
        )));
    }
    let bytes = opts
        .rows
        .checked_mul(opts.dims)
        .and_then(|n| n.checked_mul(4));
    if bytes.is_none_or(|b| b > MAX_BYTES) {
        return Err(Error::Config(format!(
            "--rows {} x --dims {} is more than {} TiB of float32; ask for fewer rows",
            opts.rows,
            opts.dims,
            MAX_BYTES >> 40
        )));
    }
    Ok(())
}

/// Writes `opts.rows × opts.dims` synthetic float32 rows to a new `.npy` at `out`.
///
/// # Errors
/// [`Error::Config`] for an empty or impossibly large shape (see [`MAX_DIMS`],
/// [`MAX_CLUSTERS`], [`MAX_BYTES`]) or an existing output; [`Error::Io`] for I/O errors.
pub fn generate(
    out: &Path,
    opts: &GenerateOptions,
    overwrite: bool,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<()> {
    check_shape(opts)?;
    let model = Model::new(opts);
    let target = AtomicOutput::create(out, overwrite, Durability::Fsync)?;
    let tmp = target.tmp_path().to_path_buf();
    let io = |e| Error::io(&tmp, "writing", e);
    let mut w = target.writer();
    w.write_all(&npy::write_header(opts.rows, opts.dims))
        .map_err(io)?;
    let threads = crate::par::resolve_threads(opts.threads);
    let row_bytes = opts.dims * 4;
    progress.begin(opts.rows, opts.rows * row_bytes);
    let rows = opts.rows;
    let result = run_ordered(
        threads,
        (0..rows.div_ceil(CHUNK_ROWS)).map(Ok),
        |i| {
            let n = CHUNK_ROWS.min(rows - i * CHUNK_ROWS) as usize;
            Ok(model.chunk(opts.seed, i, n))
        },
        |chunk| {
            w.write_all(&f32_le_bytes(&chunk)).map_err(io)?;
            let n = chunk.len() as u64 / opts.dims;
            progress.advance(n, n * row_bytes);
            Ok(())
        },
        cancel,
    );
    progress.finish();
    result?;
    w.flush().map_err(io)?;
    drop(w);
    target.commit()
}
