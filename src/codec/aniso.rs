//! Anisotropic encoding of PQ and OPQ codes: the score-aware loss of ScaNN (Guo et al.,
//! "Accelerating Large-Scale Inference with Anisotropic Vector Quantization", ICML 2020),
//! applied to a frozen codebook at encode time.
//!
//! Plain PQ picks in each subspace the centroid nearest the row, which minimises `‖r‖²`
//! for the error `r = x − x̂`. Search does not see all of `r` alike. The part of `r` along
//! the row, `r∥ = ⟨r, x⟩ / ‖x‖`, changes the row's length and so moves its score against
//! every query the same way, while the part across the row is spread over the other
//! directions and partly cancels from query to query. With weight `η` (`aniso=η`),
//! encoding minimises
//!
//! ```text
//! ‖r‖² + (η − 1)·⟨r, x⟩² / ‖x‖²      ( = η·‖r∥‖² + ‖r⊥‖² )
//! ```
//!
//! by coordinate descent over the subspaces, starting from the nearest centroids. `⟨r, x⟩`
//! couples the subspaces, so a sweep visits each subspace in turn with the others fixed;
//! every step keeps the old centroid unless another one lowers the loss, so the loss falls
//! monotonically; the sweeps stop when one changes nothing, or after [`MAX_SWEEPS`].
//! `η = 1` is plain PQ, and decoding is unchanged: only which centroid a row gets differs.
//!
//! Both terms come from the scores the nearest-centroid search computes anyway,
//! `s = ‖c‖² − 2·x·c` per centroid of a subspace: `‖x_j − c‖² = ‖x_j‖² + s` and
//! `⟨x_j − c, x_j⟩ = ‖x_j‖² + (s − ‖c‖²) / 2`.

use super::kmeans::{CentroidTable, argmin};
use crate::simd::aniso::{Terms, step};

/// The default weight, `aniso=2`. On the shared MiniLM sample, raw and normalised, PQ and
/// OPQ at 48 and 96 bytes, it raised recall@10 under L2 and inner product in 14 of 16
/// cases and lost at most 0.005 in the other two (docs/pq-opq.md, "Anisotropic encoding").
pub const DEFAULT: f32 = 2.0;
/// The largest weight accepted; beyond it the error across the row is all but ignored.
pub const MAX: f32 = 64.0;
/// Sweeps over the subspaces. One is enough at the default weight: on the shared MiniLM
/// sample a second or a fourth sweep moved recall@10 by under 0.001 at `aniso=2` (0.007 at
/// `aniso=4`) and each sweep costs about a quarter of the encode time.
pub const MAX_SWEEPS: usize = 1;

/// Per-thread buffers of [`encode_row`], reused from row to row.
#[derive(Default)]
pub(crate) struct Scratch {
    /// The scores `s = ‖c‖² − 2·x_j·c` of every centroid of every subspace (`m × k`).
    scores: Vec<f32>,
    /// `‖x_j‖²` of each subspace.
    xj2: Vec<f32>,
}

/// Writes into `codes` the centroid of each subspace that minimises the anisotropic loss
/// for weight `eta` over the row `x`; with `eta = 1`, or for a zero row, these are the
/// nearest centroids, bit for bit as [`CentroidTable::nearest`] picks them.
pub(crate) fn encode_row(
    tables: &[CentroidTable],
    x: &[f32],
    eta: f32,
    scratch: &mut Scratch,
    codes: &mut [usize],
) {
    let m = tables.len();
    let (k, dsub) = (tables[0].k(), x.len() / m);
    let Scratch { scores, xj2 } = scratch;
    scores.resize(m * k, 0.0);
    xj2.clear();
    for (j, t) in tables.iter().enumerate() {
        let xj = &x[j * dsub..(j + 1) * dsub];
        let s = &mut scores[j * k..(j + 1) * k];
        t.all_scores(xj, s);
        codes[j] = argmin(s).0;
        xj2.push(xj.iter().map(|v| v * v).sum());
    }
    let nx2: f32 = x.iter().map(|v| v * v).sum();
    let w = (eta - 1.0) / nx2;
    if eta == 1.0 || !(w.is_finite() && w > 0.0) {
        return;
    }
    let terms = |j: usize| Terms {
        s: &scores[j * k..(j + 1) * k],
        norms: tables[j].norms(),
        xj2: xj2[j],
    };
    for _ in 0..MAX_SWEEPS {
        // Summed afresh each sweep, so that rounding does not build up over the updates.
        let mut along: f32 = (0..m).map(|j| terms(j).p(codes[j])).sum();
        let mut moved = false;
        for (j, code) in codes.iter_mut().enumerate().take(m) {
            let t = terms(j);
            let now = *code;
            let rest = along - t.p(now);
            let (best, low) = step(t, rest, w);
            if low < t.loss(now, rest, w) {
                *code = best;
                along = rest + t.p(best);
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// `m` subspaces of `dsub` dims with `k` random centroids each.
    fn tables(m: usize, k: usize, dsub: usize, rng: &mut Rng) -> Vec<CentroidTable> {
        (0..m)
            .map(|_| {
                let c: Vec<f32> = (0..k * dsub).map(|_| rng.centred()).collect();
                CentroidTable::new(&c, k, dsub)
            })
            .collect()
    }

    /// The loss of `codes` for row `x`, computed directly from the reconstruction in f64.
    fn loss_of(tables: &[CentroidTable], x: &[f32], codes: &[usize], eta: f64) -> f64 {
        let dsub = x.len() / tables.len();
        let (mut rr, mut rx, mut xx) = (0f64, 0f64, 0f64);
        for (j, t) in tables.iter().enumerate() {
            let c = t.centroid(codes[j]);
            for (i, &v) in x[j * dsub..(j + 1) * dsub].iter().enumerate() {
                let r = f64::from(v) - f64::from(c[i]);
                rr += r * r;
                rx += r * f64::from(v);
                xx += f64::from(v) * f64::from(v);
            }
        }
        rr + (eta - 1.0) * rx * rx / xx
    }

    #[test]
    fn weight_one_keeps_the_nearest_centroids() {
        let mut rng = Rng(3);
        let t = tables(6, 16, 4, &mut rng);
        let mut scratch = Scratch::default();
        let mut near = vec![0f32; 16];
        for _ in 0..200 {
            let x: Vec<f32> = (0..24).map(|_| rng.centred()).collect();
            let mut codes = vec![0; 6];
            encode_row(&t, &x, 1.0, &mut scratch, &mut codes);
            for (j, tab) in t.iter().enumerate() {
                assert_eq!(codes[j], tab.nearest(&x[j * 4..(j + 1) * 4], &mut near).0);
            }
        }
    }

    #[test]
    fn the_loss_never_rises_above_plain_pq_and_usually_falls() {
        let mut rng = Rng(5);
        let t = tables(8, 32, 4, &mut rng);
        let mut scratch = Scratch::default();
        let (mut lower, mut shorter) = (0, 0);
        for _ in 0..300 {
            let x: Vec<f32> = (0..32).map(|_| rng.centred() + 0.5).collect();
            let (mut plain, mut aniso) = (vec![0; 8], vec![0; 8]);
            encode_row(&t, &x, 1.0, &mut scratch, &mut plain);
            encode_row(&t, &x, 4.0, &mut scratch, &mut aniso);
            let (lp, la) = (loss_of(&t, &x, &plain, 4.0), loss_of(&t, &x, &aniso, 4.0));
            assert!(la <= lp * (1.0 + 1e-5), "{la} > {lp}");
            lower += usize::from(la < lp * (1.0 - 1e-4));
            // The error along the row is what shrinks.
            let along = |c: &[usize]| loss_of(&t, &x, c, 2.0) - loss_of(&t, &x, c, 1.0);
            shorter += usize::from(along(&aniso) < along(&plain));
        }
        assert!(lower > 150, "the loss fell on only {lower} of 300 rows");
        assert!(
            shorter > 150,
            "the error along the row shrank on only {shorter} rows"
        );
    }

    #[test]
    fn a_zero_row_gets_the_nearest_centroids() {
        let mut rng = Rng(8);
        let t = tables(4, 16, 2, &mut rng);
        let (mut a, mut b) = (vec![9; 4], vec![9; 4]);
        encode_row(&t, &[0.0; 8], 1.0, &mut Scratch::default(), &mut a);
        encode_row(&t, &[0.0; 8], 4.0, &mut Scratch::default(), &mut b);
        assert_eq!(a, b);
    }

    /// The same descent written plainly, the losses of a subspace spelt out and passed to
    /// `argmin`: the reference the fused, dispatched steps must match.
    fn encode_row_full(t: &[CentroidTable], x: &[f32], eta: f32, codes: &mut [usize]) {
        let (m, k, dsub) = (t.len(), t[0].k(), x.len() / t.len());
        let (mut e, mut p) = (vec![0f32; m * k], vec![0f32; m * k]);
        for j in 0..m {
            let xj = &x[j * dsub..(j + 1) * dsub];
            t[j].all_scores(xj, &mut e[j * k..(j + 1) * k]);
            codes[j] = argmin(&e[j * k..(j + 1) * k]).0;
            let xj2: f32 = xj.iter().map(|v| v * v).sum();
            for c in 0..k {
                p[j * k + c] = xj2 + 0.5 * (e[j * k + c] - t[j].norms()[c]);
                e[j * k + c] += xj2;
            }
        }
        let w = (eta - 1.0) / x.iter().map(|v| v * v).sum::<f32>();
        for _ in 0..MAX_SWEEPS {
            let mut along: f32 = (0..m).map(|j| p[j * k + codes[j]]).sum();
            let mut moved = false;
            for j in 0..m {
                let rest = along - p[j * k + codes[j]];
                let loss: Vec<f32> = (0..k)
                    .map(|c| e[j * k + c] + w * ((rest + p[j * k + c]) * (rest + p[j * k + c])))
                    .collect();
                let (best, low) = argmin(&loss);
                if low < loss[codes[j]] {
                    codes[j] = best;
                    along = rest + p[j * k + best];
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    #[test]
    fn sweeps_give_the_codes_of_a_plain_argmin_descent() {
        let mut rng = Rng(11);
        let mut scratch = Scratch::default();
        for (m, k, dsub) in [(8, 256, 4), (12, 16, 2), (4, 256, 8)] {
            let t = tables(m, k, dsub, &mut rng);
            for eta in [1.5, 2.0, 4.0, 16.0] {
                for _ in 0..100 {
                    let x: Vec<f32> = (0..m * dsub).map(|_| rng.centred() + 0.3).collect();
                    let (mut a, mut b) = (vec![0; m], vec![0; m]);
                    encode_row(&t, &x, eta, &mut scratch, &mut a);
                    encode_row_full(&t, &x, eta, &mut b);
                    assert_eq!(a, b, "m={m} k={k} eta={eta}");
                }
            }
        }
    }
}
