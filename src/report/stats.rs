//! What the report measures beside eval, chunk by chunk: log-spaced histograms of each
//! row's `1 − cosine` and error norm, the error per dimension, and a fixed sample of rows
//! for the PCA scatter. A chunk's part is bounded by the chunk (the histograms are a few
//! hundred counters, the per-dimension sums `2 × dims`), the total by the sample size.

use serde::Serialize;

/// A histogram of non-negative values on a log scale: bin 0 holds `v ≤ low`, then
/// `per_decade` bins per decade up to `low × 10^decades` (larger values land in the last).
#[derive(Debug, Clone, PartialEq)]
pub struct LogHist {
    low: f64,
    per_decade: usize,
    counts: Vec<u64>,
}

/// One bar of a histogram as shown: values in `[lo, hi)` (`lo = 0` for the bar of zeros).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bar {
    /// Lower edge.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Rows in the bar.
    pub count: u64,
}

impl LogHist {
    /// An empty histogram.
    pub fn new(low: f64, per_decade: usize, decades: usize) -> LogHist {
        LogHist {
            low,
            per_decade,
            counts: vec![0; 1 + per_decade * decades],
        }
    }

    /// The bin of `v`.
    fn bin(&self, v: f64) -> usize {
        if v.is_nan() || v <= self.low {
            return 0;
        }
        let b = ((v / self.low).log10() * self.per_decade as f64).floor() as usize + 1;
        b.min(self.counts.len() - 1)
    }

    /// Counts `v`.
    pub fn add(&mut self, v: f64) {
        let b = self.bin(v);
        self.counts[b] += 1;
    }

    /// Adds another histogram of the same bins.
    pub fn merge(&mut self, other: &LogHist) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Values counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn lower_edge(&self, b: usize) -> f64 {
        if b == 0 {
            0.0
        } else {
            self.low * 10f64.powf((b - 1) as f64 / self.per_decade as f64)
        }
    }

    /// At most `max_bars` bars over the occupied bins, each of the same number of bins
    /// (the bar of zeros, bin 0, only with other bins when they are few); empty bars in
    /// between are kept, so the bars tile the range. Their counts sum to [`Self::total`].
    pub fn bars(&self, max_bars: usize) -> Vec<Bar> {
        let Some(first) = self.counts.iter().position(|&c| c > 0) else {
            return Vec::new();
        };
        let last = self.counts.iter().rposition(|&c| c > 0).unwrap_or(first);
        let width = (last - first + 1).div_ceil(max_bars.max(1));
        (first..=last)
            .step_by(width)
            .map(|b| {
                let end = (b + width).min(last + 1);
                Bar {
                    lo: self.lower_edge(b),
                    hi: self.lower_edge(end),
                    count: self.counts[b..end].iter().sum(),
                }
            })
            .collect()
    }
}

/// The histogram of `1 − cosine`: from 1e-12 (a reconstruction within rounding) to 2.
pub fn cosine_hist() -> LogHist {
    LogHist::new(1e-12, 20, 13)
}

/// The histogram of the error norm `‖original − reconstruction‖`, from 1e-20 to 1e20.
pub fn norm_hist() -> LogHist {
    LogHist::new(1e-20, 20, 40)
}

/// What one chunk, or all chunks so far, measured.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Dimensions per row.
    pub dims: usize,
    /// Rows seen.
    pub rows: u64,
    /// Each row's `1 − cosine`.
    pub cos: LogHist,
    /// Each row's error norm.
    pub norm: LogHist,
    /// Sum of the error norms.
    pub norm_sum: f64,
    /// Largest error norm.
    pub norm_max: f64,
    /// Per dimension, the sum of |error|.
    pub abs_sum: Vec<f64>,
    /// Per dimension, the sum of squared errors.
    pub sq_sum: Vec<f64>,
    /// The sampled rows seen: (row, original, reconstruction).
    pub sample: Vec<(u64, Vec<f32>, Vec<f32>)>,
}

impl Stats {
    /// Nothing seen yet.
    pub fn new(dims: usize) -> Stats {
        Stats {
            dims,
            rows: 0,
            cos: cosine_hist(),
            norm: norm_hist(),
            norm_sum: 0.0,
            norm_max: 0.0,
            abs_sum: vec![0.0; dims],
            sq_sum: vec![0.0; dims],
            sample: Vec::new(),
        }
    }

    /// Measures a block of rows from `first_row`; `sample` is the sorted list of rows to
    /// keep for the PCA.
    pub fn of_block(
        dims: usize,
        first_row: u64,
        orig: &[f32],
        recon: &[f32],
        sample: &[u64],
    ) -> Stats {
        let mut s = Stats::new(dims);
        if dims == 0 {
            return s;
        }
        for (o, r) in orig.chunks_exact(dims).zip(recon.chunks_exact(dims)) {
            let (mut ab, mut aa, mut bb, mut ee) = (0f64, 0f64, 0f64, 0f64);
            for (j, (&x, &y)) in o.iter().zip(r).enumerate() {
                let (x, y) = (x as f64, y as f64);
                let e = x - y;
                ab += x * y;
                aa += x * x;
                bb += y * y;
                ee += e * e;
                s.abs_sum[j] += e.abs();
                s.sq_sum[j] += e * e;
            }
            let norm = ee.sqrt();
            s.rows += 1;
            s.cos.add(1.0 - crate::eval::cosine(ab, aa, bb));
            s.norm.add(norm);
            s.norm_sum += norm;
            s.norm_max = s.norm_max.max(norm);
        }
        let rows = (orig.len() / dims) as u64;
        let from = sample.partition_point(|&r| r < first_row);
        let to = sample.partition_point(|&r| r < first_row + rows);
        for &row in &sample[from..to] {
            let at = (row - first_row) as usize * dims;
            s.sample.push((
                row,
                orig[at..at + dims].to_vec(),
                recon[at..at + dims].to_vec(),
            ));
        }
        s
    }

    /// Adds another part in.
    pub fn merge(&mut self, o: Stats) {
        self.rows += o.rows;
        self.cos.merge(&o.cos);
        self.norm.merge(&o.norm);
        self.norm_sum += o.norm_sum;
        self.norm_max = self.norm_max.max(o.norm_max);
        for (a, b) in self.abs_sum.iter_mut().zip(&o.abs_sum) {
            *a += b;
        }
        for (a, b) in self.sq_sum.iter_mut().zip(&o.sq_sum) {
            *a += b;
        }
        self.sample.extend(o.sample);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_tile_the_occupied_range_and_keep_every_count() {
        let mut h = cosine_hist();
        let vals = [0.0, 1e-13, 2e-6, 3e-6, 5e-4, 0.02, 0.5, 1.9, 7.0];
        for v in vals {
            h.add(v);
        }
        for max in [1, 3, 10, 40, 1000] {
            let bars = h.bars(max);
            assert!(bars.len() <= max, "{max}: {}", bars.len());
            assert_eq!(bars.iter().map(|b| b.count).sum::<u64>(), vals.len() as u64);
            assert_eq!(bars[0].lo, 0.0);
            for w in bars.windows(2) {
                assert_eq!(w[0].hi, w[1].lo);
            }
        }
        // Each value lies in its bar.
        let bars = h.bars(1000);
        for v in [2e-6, 5e-4, 0.5] {
            let b = bars.iter().find(|b| b.lo <= v && v < b.hi).unwrap();
            assert!(b.count >= 1);
        }
        assert!(LogHist::new(1.0, 1, 1).bars(5).is_empty());
    }

    #[test]
    fn a_block_measures_rows_dimensions_and_keeps_its_sampled_rows() {
        let orig = [1.0f32, 0.0, 0.0, 2.0, 3.0, 4.0];
        let recon = [1.0f32, 0.0, 0.0, 2.0, 3.0, 1.0];
        let mut s = Stats::of_block(2, 10, &orig, &recon, &[3, 11, 12, 40]);
        assert_eq!(s.rows, 3);
        assert_eq!(s.abs_sum, vec![0.0, 3.0]);
        assert_eq!(s.sq_sum, vec![0.0, 9.0]);
        assert_eq!(s.norm_max, 3.0);
        assert_eq!(s.cos.total(), 3);
        let kept: Vec<u64> = s.sample.iter().map(|x| x.0).collect();
        assert_eq!(kept, vec![11, 12]);
        assert_eq!(s.sample[0].1, vec![0.0, 2.0]);
        assert_eq!(s.sample[1].2, vec![3.0, 1.0]);
        s.merge(Stats::of_block(2, 13, &orig[..2], &recon[..2], &[]));
        assert_eq!(s.rows, 4);
        assert_eq!(s.norm.total(), 4);
    }
}
