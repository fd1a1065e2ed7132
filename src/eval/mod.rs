//! `eval`: what compression cost, streamed over both files chunk by chunk.
//!
//! Reconstruction quality (cosine, MSE, normalised MSE, max error) is accumulated in f64.
//! Retrieval quality is recall@k of exact search over the reconstruction against exact
//! search over the originals, for sampled queries (the query row itself excluded).

mod topk;
pub mod adc;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::Container;
use crate::pipeline::ordered::run_ordered;
use crate::pipeline::reader::NpySource;
use crate::pipeline::{Progress, default_threads};
use topk::TopK;

/// Settings of an eval run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The k of recall@k.
    pub k: Vec<usize>,
    /// How many rows of the original to use as queries.
    pub sample_queries: usize,
    /// Seed of the query sample.
    pub seed: u64,
    /// Worker threads; 0 means the available cores.
    pub threads: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            k: vec![1, 10, 100],
            sample_queries: 100,
            seed: 42,
            threads: 0,
        }
    }
}

/// Recall at one k.
#[derive(Debug, Clone, Serialize)]
pub struct Recall {
    /// The k.
    pub k: usize,
    /// Mean over queries of |true top-k ∩ found top-k| / k.
    pub recall: f64,
}

/// Everything eval measures.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Rows compared.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// Size of the original file.
    pub original_bytes: u64,
    /// Size of the container.
    pub compressed_bytes: u64,
    /// `original_bytes / compressed_bytes`.
    pub ratio: f64,
    /// Container bits per dimension, all overheads included.
    pub bits_per_dim: f64,
    /// Mean cosine between each row and its reconstruction.
    pub cosine_mean: f64,
    /// Smallest such cosine.
    pub cosine_min: f64,
    /// Mean squared error per element.
    pub mse: f64,
    /// Sum of squared errors over sum of squares.
    pub nmse: f64,
    /// Largest absolute error of any element.
    pub max_abs_error: f64,
    /// Queries used for recall.
    pub queries: usize,
    /// Recall at each k.
    pub recall: Vec<Recall>,
}

#[derive(Default)]
struct Partial {
    rows: u64,
    cos_sum: f64,
    cos_min: f64,
    sq_err: f64,
    sq_sum: f64,
    max_err: f64,
    truth: Vec<TopK>,
    found: Vec<TopK>,
}

/// Compares the original `.npy` with its container.
///
/// # Errors
/// [`Error::Mismatch`] when the shapes differ; errors of opening either file.
pub fn evaluate(
    orig: &Path,
    comp: &Path,
    opts: &EvalOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<EvalReport> {
    let src = NpySource::open(orig)?;
    let c = Container::open(comp)?;
    let h = *src.header();
    if h.rows != c.rows() || h.dims != c.dims() as u64 {
        return Err(Error::Mismatch(format!(
            "{} is ({}, {}) but {} holds ({}, {}): they are not the same dataset",
            orig.display(),
            h.rows,
            h.dims,
            comp.display(),
            c.rows(),
            c.dims()
        )));
    }
    let d = h.dims as usize;
    let kmax = opts.k.iter().copied().max().unwrap_or(10).max(1);
    let nq = opts.sample_queries.min(h.rows as usize);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut qids: Vec<u64> = sample(&mut rng, h.rows as usize, nq)
        .into_iter()
        .map(|i| i as u64)
        .collect();
    qids.sort_unstable();
    let mut queries = vec![0f32; nq * d];
    for (q, &id) in queries.chunks_exact_mut(d).zip(&qids) {
        h.dtype.to_f32(src.row_bytes(id, 1), q);
        normalize(q);
    }
    let threads = if opts.threads == 0 { default_threads() } else { opts.threads };
    let mut total = Partial {
        cos_min: f64::INFINITY,
        truth: vec![TopK::new(kmax); nq],
        found: vec![TopK::new(kmax); nq],
        ..Partial::default()
    };
    progress.begin(h.rows, h.rows * h.row_bytes() as u64);
    let result = run_ordered(
        threads,
        (0..c.chunks().len()).map(Ok),
        |i| {
            let e = c.chunks()[i];
            let mut recon = vec![0f32; e.rows as usize * d];
            c.decode_chunk(i, &mut recon)?;
            let mut original = vec![0f32; recon.len()];
            h.dtype.to_f32(src.row_bytes(e.first_row, e.rows), &mut original);
            Ok(chunk_partial(&original, &recon, e.first_row, d, &queries, &qids, kmax))
        },
        |p| {
            progress.advance(p.rows, p.rows * h.row_bytes() as u64);
            total.merge(p);
            Ok(())
        },
        cancel,
    );
    progress.finish();
    result?;
    let n = (h.rows * h.dims) as f64;
    let recall = opts
        .k
        .iter()
        .map(|&k| Recall {
            k,
            recall: mean_recall(&total.truth, &total.found, k),
        })
        .collect();
    Ok(EvalReport {
        rows: h.rows,
        dims: h.dims,
        original_bytes: src.file_len(),
        compressed_bytes: c.file_len(),
        ratio: src.file_len() as f64 / c.file_len() as f64,
        bits_per_dim: c.file_len() as f64 * 8.0 / n,
        cosine_mean: total.cos_sum / h.rows as f64,
        cosine_min: total.cos_min,
        mse: total.sq_err / n,
        nmse: if total.sq_sum > 0.0 { total.sq_err / total.sq_sum } else { 0.0 },
        max_abs_error: total.max_err,
        queries: nq,
        recall,
    })
}

impl Partial {
    fn merge(&mut self, p: Partial) {
        self.rows += p.rows;
        self.cos_sum += p.cos_sum;
        self.cos_min = self.cos_min.min(p.cos_min);
        self.sq_err += p.sq_err;
        self.sq_sum += p.sq_sum;
        self.max_err = self.max_err.max(p.max_err);
        for (a, b) in self.truth.iter_mut().zip(p.truth) {
            a.merge(b);
        }
        for (a, b) in self.found.iter_mut().zip(p.found) {
            a.merge(b);
        }
    }
}

fn chunk_partial(
    original: &[f32],
    recon: &[f32],
    first_row: u64,
    d: usize,
    queries: &[f32],
    qids: &[u64],
    kmax: usize,
) -> Partial {
    let mut p = Partial {
        rows: (original.len() / d) as u64,
        cos_min: f64::INFINITY,
        ..Partial::default()
    };
    let mut onorm = Vec::with_capacity(original.len() / d);
    let mut rnorm = Vec::with_capacity(original.len() / d);
    for (o, r) in original.chunks_exact(d).zip(recon.chunks_exact(d)) {
        let (mut dot, mut oo, mut rr, mut ee) = (0f64, 0f64, 0f64, 0f64);
        for (&a, &b) in o.iter().zip(r) {
            let (a, b) = (a as f64, b as f64);
            dot += a * b;
            oo += a * a;
            rr += b * b;
            ee += (a - b) * (a - b);
            p.max_err = p.max_err.max((a - b).abs());
        }
        let cos = cosine(dot, oo, rr);
        p.cos_sum += cos;
        p.cos_min = p.cos_min.min(cos);
        p.sq_err += ee;
        p.sq_sum += oo;
        onorm.push(oo.sqrt() as f32);
        rnorm.push(rr.sqrt() as f32);
    }
    for (q, &qid) in queries.chunks_exact(d).zip(qids) {
        let mut truth = TopK::new(kmax);
        let mut found = TopK::new(kmax);
        for (i, (o, r)) in original.chunks_exact(d).zip(recon.chunks_exact(d)).enumerate() {
            let id = first_row + i as u64;
            if id == qid {
                continue;
            }
            truth.push(dot(q, o) / onorm[i].max(f32::MIN_POSITIVE), id);
            found.push(dot(q, r) / rnorm[i].max(f32::MIN_POSITIVE), id);
        }
        p.truth.push(truth);
        p.found.push(found);
    }
    p
}

/// Cosine of two vectors from their dot product and squared norms; two zero vectors are
/// identical (1), one zero vector against a non-zero one is orthogonal (0).
fn cosine(dot: f64, aa: f64, bb: f64) -> f64 {
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        dot / (aa.sqrt() * bb.sqrt())
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

fn mean_recall(truth: &[TopK], found: &[TopK], k: usize) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    let sum: f64 = truth
        .iter()
        .zip(found)
        .map(|(t, f)| {
            let t = t.ids(k);
            let f = f.ids(k);
            let hits = f.iter().filter(|id| t.contains(id)).count();
            hits as f64 / t.len().max(1) as f64
        })
        .sum();
    sum / truth.len() as f64
}
