//! Seeded, deterministic k-means: k-means++ initialisation, then Lloyd iterations with
//! early stopping on the relative improvement of the distortion.
//!
//! Determinism for any thread count: every per-row result (nearest centroid, distance) is
//! computed independently, and every sum is reduced over fixed blocks of `BLOCK` (1024) rows in
//! block order, so the rayon schedule never changes a bit of the result.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::codebook::Watch;
use crate::error::Result;
pub use crate::simd::kmeans::{argmin, scores};

/// Rows per reduction block. Fixed, so that sums do not depend on the thread count.
const BLOCK: usize = 1024;

/// What k-means is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct KMeansParams {
    /// Number of centroids.
    pub k: usize,
    /// Most Lloyd iterations.
    pub max_iter: usize,
    /// Stop once an iteration improves the distortion by less than this fraction.
    pub tol: f64,
    /// Seed of the initialisation.
    pub seed: u64,
}

/// A trained set of centroids.
#[derive(Debug, Clone)]
pub struct KMeans {
    /// `k × d` centroids, row-major.
    pub centroids: Vec<f32>,
    /// Lloyd iterations run.
    pub iterations: usize,
    /// Mean squared distance of a row to its centroid, after the last update.
    pub distortion: f64,
    /// The nearest of `centroids` to each row (the assignment `distortion` was measured on).
    pub labels: Vec<u32>,
}

/// Centroids laid out for the nearest-centroid kernel: transposed (`d × k`) so that the
/// inner loop runs over centroids with unit stride, plus their squared norms.
#[derive(Debug, Clone)]
pub struct CentroidTable {
    k: usize,
    d: usize,
    transposed: Vec<f32>,
    norms: Vec<f32>,
}

impl CentroidTable {
    /// Builds the table of `k × d` row-major `centroids`.
    pub fn new(centroids: &[f32], k: usize, d: usize) -> CentroidTable {
        let mut transposed = vec![0f32; k * d];
        for j in 0..k {
            for t in 0..d {
                transposed[t * k + j] = centroids[j * d + t];
            }
        }
        let norms = centroids
            .chunks_exact(d)
            .map(|c| c.iter().map(|v| v * v).sum())
            .collect();
        CentroidTable {
            k,
            d,
            transposed,
            norms,
        }
    }

    /// Centroids in the table.
    pub fn k(&self) -> usize {
        self.k
    }

    /// `‖c‖²` of each centroid.
    pub fn norms(&self) -> &[f32] {
        &self.norms
    }

    /// `‖c‖² − 2·x·c` for every centroid `c`, into `out` (`k` floats); the scores
    /// [`CentroidTable::nearest`] takes the smallest of.
    pub fn all_scores(&self, x: &[f32], out: &mut [f32]) {
        debug_assert_eq!(x.len(), self.d);
        scores(x, &self.transposed, &self.norms, &mut out[..self.k]);
    }

    /// Centroid `j`, gathered from the transposed layout.
    #[cfg(test)]
    pub(crate) fn centroid(&self, j: usize) -> Vec<f32> {
        (0..self.d)
            .map(|t| self.transposed[t * self.k + j])
            .collect()
    }

    /// The nearest centroid of `x` (lowest index on ties) and `||c||² − 2·x·c` for it;
    /// add `||x||²` for the squared distance. `scratch` holds `k` floats.
    pub fn nearest(&self, x: &[f32], scratch: &mut [f32]) -> (usize, f32) {
        debug_assert_eq!(x.len(), self.d);
        scores(x, &self.transposed, &self.norms, &mut scratch[..self.k]);
        argmin(&scratch[..self.k])
    }
}

/// Assigns every row of `data` (`n × d`) to its nearest centroid; returns the squared
/// distances. Parallel; each row's result is independent of the schedule.
pub fn assign(data: &[f32], d: usize, table: &CentroidTable, labels: &mut [u32]) -> Vec<f32> {
    let mut dist = vec![0f32; labels.len()];
    data.par_chunks(BLOCK * d)
        .zip(labels.par_chunks_mut(BLOCK))
        .zip(dist.par_chunks_mut(BLOCK))
        .for_each(|((rows, lab), dst)| {
            let mut scratch = vec![0f32; table.k];
            for ((x, l), o) in rows.chunks_exact(d).zip(lab).zip(dst) {
                let (j, s) = table.nearest(x, &mut scratch);
                *l = j as u32;
                *o = (s + x.iter().map(|v| v * v).sum::<f32>()).max(0.0);
            }
        });
    dist
}

/// Sums `v` in fixed blocks, in order, in f64.
fn ordered_sum(v: &[f32]) -> f64 {
    let parts: Vec<f64> = v
        .par_chunks(BLOCK)
        .map(|c| c.iter().map(|&x| f64::from(x)).sum())
        .collect();
    parts.iter().sum()
}

/// Trains `p.k` centroids on `data` (`n × d`, row-major). `n` must be at least `k`.
///
/// # Errors
/// [`Error::Cancelled`](crate::Error::Cancelled) once `stop` is set; it is polled between
/// Lloyd iterations and between the picks of the seeding.
///
/// # Panics
/// If `data` holds fewer than `k` rows or is not a whole number of rows.
pub fn train(data: &[f32], d: usize, p: &KMeansParams, stop: &dyn Watch) -> Result<KMeans> {
    let n = data.len() / d;
    assert!(
        n >= p.k && data.len() == n * d,
        "k-means needs at least k rows"
    );
    let init = init_plus_plus(data, d, p.k, p.seed, stop)?;
    refine(data, d, p, init, stop)
}

/// Like [`train`], but seeded with `k` distinct rows drawn uniformly (faiss's start), so
/// centroids follow the density of the data rather than its spread.
///
/// # Errors
/// As [`train`].
///
/// # Panics
/// As [`train`].
pub fn train_random_init(
    data: &[f32],
    d: usize,
    p: &KMeansParams,
    stop: &dyn Watch,
) -> Result<KMeans> {
    let n = data.len() / d;
    assert!(
        n >= p.k && data.len() == n * d,
        "k-means needs at least k rows"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let mut ids = rand::seq::index::sample(&mut rng, n, p.k).into_vec();
    ids.sort_unstable();
    let init = ids
        .iter()
        .flat_map(|&i| &data[i * d..(i + 1) * d])
        .copied()
        .collect();
    refine(data, d, p, init, stop)
}

/// Lloyd iterations from the given `k × d` centroids (a warm start); `p.seed` is unused.
///
/// # Errors
/// As [`train`].
///
/// # Panics
/// If `centroids` is not `p.k × d` floats.
pub fn refine(
    data: &[f32],
    d: usize,
    p: &KMeansParams,
    mut centroids: Vec<f32>,
    stop: &dyn Watch,
) -> Result<KMeans> {
    assert_eq!(
        centroids.len(),
        p.k * d,
        "k-means warm start of the wrong shape"
    );
    let n = data.len() / d;
    let mut labels = vec![0u32; n];
    let mut prev = f64::INFINITY;
    let mut iterations = 0;
    loop {
        stop.check()?;
        let table = CentroidTable::new(&centroids, p.k, d);
        let dist = assign(data, d, &table, &mut labels);
        let cur = ordered_sum(&dist) / n as f64;
        // `cur` is the distortion of the centroids we hold: stop here if it is time.
        if iterations == p.max_iter || (iterations > 0 && prev - cur <= p.tol * prev) {
            prev = cur;
            break;
        }
        prev = cur;
        centroids = update(data, d, p.k, &labels, &centroids);
        iterations += 1;
        stop.steps(1);
    }
    // Planned iterations that convergence made unnecessary count as done.
    stop.steps(p.max_iter.saturating_sub(iterations) as u64);
    let distortion = prev;
    Ok(KMeans {
        centroids,
        iterations,
        distortion,
        labels,
    })
}

/// One Lloyd update: each centroid becomes the mean of its rows. Empty clusters take half
/// of the largest cluster (its centroid nudged apart), as faiss does, but deterministically.
fn update(data: &[f32], d: usize, k: usize, labels: &[u32], old: &[f32]) -> Vec<f32> {
    let parts: Vec<(Vec<f64>, Vec<u64>)> = data
        .par_chunks(BLOCK * d)
        .zip(labels.par_chunks(BLOCK))
        .map(|(rows, lab)| {
            let mut sums = vec![0f64; k * d];
            let mut counts = vec![0u64; k];
            for (x, &l) in rows.chunks_exact(d).zip(lab) {
                let l = l as usize;
                counts[l] += 1;
                for (s, &v) in sums[l * d..(l + 1) * d].iter_mut().zip(x) {
                    *s += f64::from(v);
                }
            }
            (sums, counts)
        })
        .collect();
    let mut sums = vec![0f64; k * d];
    let mut counts = vec![0u64; k];
    for (s, c) in &parts {
        sums.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        counts.iter_mut().zip(c).for_each(|(a, b)| *a += b);
    }
    let mut out = old.to_vec();
    for j in 0..k {
        if counts[j] > 0 {
            for t in 0..d {
                out[j * d + t] = (sums[j * d + t] / counts[j] as f64) as f32;
            }
        }
    }
    for j in 0..k {
        if counts[j] == 0 {
            let big = (0..k)
                .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
                .unwrap_or(0);
            const EPS: f32 = 1.0 / 1024.0;
            for t in 0..d {
                let c = out[big * d + t];
                let (a, b) = if t % 2 == 0 {
                    (1.0 + EPS, 1.0 - EPS)
                } else {
                    (1.0 - EPS, 1.0 + EPS)
                };
                out[j * d + t] = c * a;
                out[big * d + t] = c * b;
            }
            counts[j] = counts[big] / 2;
            counts[big] -= counts[j];
        }
    }
    out
}

/// Greedy k-means++ seeding (as scikit-learn does it): at each step, `2 + ln k`
/// candidate rows are drawn with probability proportional to their squared distance to the
/// nearest centroid chosen so far, and the one that lowers the total distance most is kept.
/// It costs a few Lloyd iterations and starts from a lower distortion than plain k-means++.
fn init_plus_plus(
    data: &[f32],
    d: usize,
    k: usize,
    seed: u64,
    stop: &dyn Watch,
) -> Result<Vec<f32>> {
    let n = data.len() / d;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let trials = 2 + (k as f64).ln() as usize;
    let mut centroids = Vec::with_capacity(k * d);
    let first = rng.random_range(0..n);
    centroids.extend_from_slice(&data[first * d..(first + 1) * d]);
    let mut best = vec![f32::INFINITY; n];
    lower_to(&mut best, data, d, &data[first * d..(first + 1) * d]);
    for _ in 1..k {
        stop.check()?;
        let block_sums = block_sums(&best);
        let total: f64 = block_sums.iter().sum();
        let picks: Vec<usize> = (0..trials)
            .map(|_| {
                if total > 0.0 {
                    pick_weighted(&best, &block_sums, rng.random::<f64>() * total)
                } else {
                    // Fewer distinct rows than k: any row will do; duplicates are split later.
                    rng.random_range(0..n)
                }
            })
            .collect();
        let mut chosen: Option<(f64, usize, Vec<f32>)> = None;
        for &p in &picks {
            let mut trial = best.clone();
            lower_to(&mut trial, data, d, &data[p * d..(p + 1) * d]);
            let pot: f64 = block_sums_total(&trial);
            if chosen.as_ref().is_none_or(|c| pot < c.0) {
                chosen = Some((pot, p, trial));
            }
        }
        let (_, pick, trial) = chosen.expect("at least two trials");
        best = trial;
        centroids.extend_from_slice(&data[pick * d..(pick + 1) * d]);
    }
    Ok(centroids)
}

/// Lowers each `best[i]` to the squared distance from row `i` to `c`.
fn lower_to(best: &mut [f32], data: &[f32], d: usize, c: &[f32]) {
    best.par_chunks_mut(BLOCK)
        .zip(data.par_chunks(BLOCK * d))
        .for_each(|(b, rows)| {
            for (bi, x) in b.iter_mut().zip(rows.chunks_exact(d)) {
                let dd: f32 = x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum();
                if dd < *bi {
                    *bi = dd;
                }
            }
        });
}

/// Sums of `w` over the fixed blocks, in f64.
fn block_sums(w: &[f32]) -> Vec<f64> {
    w.par_chunks(BLOCK)
        .map(|c| c.iter().map(|&x| f64::from(x)).sum())
        .collect()
}

/// The sum of `w`, block by block in order.
fn block_sums_total(w: &[f32]) -> f64 {
    block_sums(w).iter().sum()
}

/// The row where the running sum of `w` first exceeds `target`, skipping whole blocks.
fn pick_weighted(w: &[f32], block_sums: &[f64], mut target: f64) -> usize {
    for (b, &s) in block_sums.iter().enumerate() {
        if target < s {
            for (i, &x) in w[b * BLOCK..].iter().take(BLOCK).enumerate() {
                target -= f64::from(x);
                if target < 0.0 && x > 0.0 {
                    return b * BLOCK + i;
                }
            }
        }
        target -= s;
    }
    // Rounding left a sliver: the last row with any weight.
    w.iter().rposition(|&x| x > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    fn blobs(k: usize, per: usize, d: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<f32> = (0..k * d)
            .map(|_| rng.random_range(-100.0..100.0))
            .collect();
        let mut data = Vec::new();
        let mut truth = Vec::new();
        for i in 0..k * per {
            let c = i % k;
            truth.push(c);
            for t in 0..d {
                data.push(centres[c * d + t] + rng.random_range(-1.0f32..1.0));
            }
        }
        (data, truth)
    }

    #[test]
    fn recovers_separable_clusters() {
        let (k, d) = (8, 4);
        let (data, truth) = blobs(k, 50, d, 3);
        let p = KMeansParams {
            k,
            max_iter: 25,
            tol: 1e-4,
            seed: 1,
        };
        let km = train(&data, d, &p, &AtomicBool::new(false)).unwrap();
        let mut labels = vec![0u32; truth.len()];
        assign(
            &data,
            d,
            &CentroidTable::new(&km.centroids, k, d),
            &mut labels,
        );
        // Same partition: rows with the same true cluster share a label, and vice versa.
        for i in 0..truth.len() {
            for j in 0..truth.len() {
                assert_eq!(
                    truth[i] == truth[j],
                    labels[i] == labels[j],
                    "rows {i}, {j}"
                );
            }
        }
        // Noise is uniform in ±1 per coordinate: variance 1/3 each.
        assert!(km.distortion < d as f64 / 3.0 * 1.2, "{}", km.distortion);
    }

    #[test]
    fn same_result_for_any_thread_count() {
        let (data, _) = blobs(20, 300, 6, 9);
        let p = KMeansParams {
            k: 32,
            max_iter: 10,
            tol: 0.0,
            seed: 7,
        };
        let run = |t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| train(&data, 6, &p, &AtomicBool::new(false)).unwrap())
        };
        let (a, b) = (run(1), run(3));
        assert_eq!(a.iterations, b.iterations);
        assert_eq!(a.distortion.to_bits(), b.distortion.to_bits());
        assert!(
            a.centroids
                .iter()
                .zip(&b.centroids)
                .all(|(x, y)| x.to_bits() == y.to_bits())
        );
    }

    #[test]
    fn early_stopping_stops_before_the_cap() {
        let (data, _) = blobs(4, 100, 3, 5);
        let p = KMeansParams {
            k: 4,
            max_iter: 100,
            tol: 1e-3,
            seed: 2,
        };
        assert!(
            train(&data, 3, &p, &AtomicBool::new(false))
                .unwrap()
                .iterations
                < 100
        );
    }

    #[test]
    fn duplicate_rows_fill_every_centroid() {
        let data = vec![1.0f32; 3 * 10];
        let p = KMeansParams {
            k: 4,
            max_iter: 5,
            tol: 0.0,
            seed: 0,
        };
        let km = train(&data, 3, &p, &AtomicBool::new(false)).unwrap();
        assert!(km.centroids.iter().all(|v| v.is_finite()));
        assert!(km.distortion < 1e-3);
    }
}
