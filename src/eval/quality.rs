//! Reconstruction quality of a block of rows, accumulated in f64.

use super::hist::{self, CosHist};

/// Sums over some rows; blocks merge in any order.
#[derive(Debug, Clone)]
pub struct Quality {
    /// Rows seen.
    pub rows: u64,
    /// Sum of per-row cosines.
    pub cos_sum: f64,
    /// Smallest per-row cosine.
    pub cos_min: f64,
    /// Largest per-row cosine.
    pub cos_max: f64,
    /// Sum of squared errors.
    pub sq_err: f64,
    /// Sum of squared original values.
    pub sq_sum: f64,
    /// Largest absolute error.
    pub max_err: f64,
    /// Histogram bin of each row's cosine (see [`hist`]), until merged into a histogram.
    pub bins: Vec<u16>,
}

impl Default for Quality {
    fn default() -> Self {
        Quality {
            rows: 0,
            cos_sum: 0.0,
            cos_min: f64::INFINITY,
            cos_max: f64::NEG_INFINITY,
            sq_err: 0.0,
            sq_sum: 0.0,
            max_err: 0.0,
            bins: Vec::new(),
        }
    }
}

/// Per-row f64 sums: a·b, a·a, b·b, (a−b)², max |a−b|.
///
/// Eight independent lanes let the compiler vectorise without reassociating a single
/// running sum; the result differs from a sequential sum only by f64 rounding (~1e-16
/// relative).
fn row_sums(a: &[f32], b: &[f32]) -> [f64; 5] {
    const L: usize = 8;
    let (mut ab, mut aa, mut bb, mut ee, mut mx) =
        ([0f64; L], [0f64; L], [0f64; L], [0f64; L], [0f64; L]);
    let mut lanes = |x: &[f32], y: &[f32]| {
        for t in 0..x.len() {
            let (p, q) = (x[t] as f64, y[t] as f64);
            let e = p - q;
            ab[t] += p * q;
            aa[t] += p * p;
            bb[t] += q * q;
            ee[t] += e * e;
            mx[t] = mx[t].max(e.abs());
        }
    };
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        lanes(x, y);
    }
    lanes(ra, rb);
    let s = |v: [f64; L]| v.iter().sum::<f64>();
    [
        s(ab),
        s(aa),
        s(bb),
        s(ee),
        mx.iter().fold(0f64, |m, &v| m.max(v)),
    ]
}

/// Cosine from a dot product and squared norms: two zero vectors are identical (1), a
/// zero vector against a non-zero one is orthogonal (0).
pub fn cosine(dot: f64, aa: f64, bb: f64) -> f64 {
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        dot / (aa.sqrt() * bb.sqrt())
    }
}

impl Quality {
    /// Measures `recon` against `orig`, both `rows × d`.
    pub fn of_block(orig: &[f32], recon: &[f32], d: usize) -> Quality {
        let mut q = Quality {
            bins: Vec::with_capacity(orig.len() / d.max(1)),
            ..Quality::default()
        };
        for (o, r) in orig.chunks_exact(d).zip(recon.chunks_exact(d)) {
            let [ab, aa, bb, ee, mx] = row_sums(o, r);
            let c = cosine(ab, aa, bb);
            q.rows += 1;
            q.cos_sum += c;
            q.cos_min = q.cos_min.min(c);
            q.cos_max = q.cos_max.max(c);
            q.sq_err += ee;
            q.sq_sum += aa;
            q.max_err = q.max_err.max(mx);
            q.bins.push(hist::bin(c));
        }
        q
    }

    /// Adds `other` in, moving its bins into `hist`.
    pub fn merge(&mut self, other: Quality, hist: &mut CosHist) {
        self.rows += other.rows;
        self.cos_sum += other.cos_sum;
        self.cos_min = self.cos_min.min(other.cos_min);
        self.cos_max = self.cos_max.max(other.cos_max);
        self.sq_err += other.sq_err;
        self.sq_sum += other.sq_sum;
        self.max_err = self.max_err.max(other.max_err);
        hist.add(&other.bins);
    }
}
