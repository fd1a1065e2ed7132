//! Nearest-centroid kernels of k-means, PQ and OPQ: the scores `‖c‖² − 2·x·c` of every
//! centroid against one row, and the first minimum of a slice.
//!
//! The scalar references are [`scores_scalar`] and [`argmin_scalar`]. The scores perform
//! the same operations in the same order at every level (Rust never fuses a multiply and
//! an add on its own), and the argmin keeps the first minimum by index, so every level
//! agrees with them bit for bit.

#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// `out[j] = norms[j] − 2·Σₜ x[t]·ct[t·k + j]` for the `k = out.len()` centroids of the
/// transposed (`d × k`) table `ct`, at the widest level this CPU has.
#[inline]
pub fn scores(x: &[f32], ct: &[f32], norms: &[f32], out: &mut [f32]) {
    // SAFETY: `Level::detect` only returns levels this CPU runs.
    unsafe { scores_on(Level::detect(), x, ct, norms, out) }
}

/// [`scores`] at a given level; a level this CPU lacks runs the scalar reference.
#[inline]
pub fn scores_at(level: Level, x: &[f32], ct: &[f32], norms: &[f32], out: &mut [f32]) {
    let level = if level.runs_here() {
        level
    } else {
        Level::Scalar
    };
    // SAFETY: `runs_here` checked at run time that the CPU has `level`'s features.
    unsafe { scores_on(level, x, ct, norms, out) }
}

/// [`scores`] at `level`, which this CPU must run.
///
/// # Safety
/// This CPU has `level`'s features ([`Level::runs_here`]).
#[inline(always)]
unsafe fn scores_on(level: Level, x: &[f32], ct: &[f32], norms: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    match level {
        // SAFETY: the caller guarantees the CPU has AVX-512 F/BW/VL.
        Level::Avx512 => return unsafe { x86::scores_avx512(x, ct, norms, out) },
        // SAFETY: the caller guarantees the CPU has AVX2.
        Level::Avx2 => return unsafe { x86::scores_avx2(x, ct, norms, out) },
        _ => {}
    }
    let _ = level;
    scores_scalar(x, ct, norms, out)
}

/// Index and value of the smallest element, the lowest index on ties (all NaN: index 0,
/// value infinity), at the widest level this CPU has; every level returns what
/// [`argmin_scalar`] returns.
#[inline]
pub fn argmin(v: &[f32]) -> (usize, f32) {
    // SAFETY: `Level::detect` only returns levels this CPU runs.
    unsafe { argmin_on(Level::detect(), v) }
}

/// [`argmin`] at a given level; a level this CPU lacks runs the scalar reference.
#[inline]
pub fn argmin_at(level: Level, v: &[f32]) -> (usize, f32) {
    let level = if level.runs_here() {
        level
    } else {
        Level::Scalar
    };
    // SAFETY: `runs_here` checked at run time that the CPU has `level`'s features.
    unsafe { argmin_on(level, v) }
}

/// [`argmin`] at `level`, which this CPU must run.
///
/// # Safety
/// This CPU has `level`'s features ([`Level::runs_here`]).
#[inline(always)]
unsafe fn argmin_on(level: Level, v: &[f32]) -> (usize, f32) {
    #[cfg(target_arch = "x86_64")]
    match level {
        // SAFETY: the caller guarantees the CPU has AVX-512 F/BW/VL.
        Level::Avx512 => return unsafe { x86::argmin_avx512(v) },
        // SAFETY: the caller guarantees the CPU has AVX2.
        Level::Avx2 => return unsafe { x86::argmin_avx2(v) },
        _ => {}
    }
    let _ = level;
    argmin_scalar(v)
}

/// The scalar reference of [`scores`]; written so that it also auto-vectorises.
///
/// Centroids are taken `SCORE_TILE` (64) at a time, so that the tile's accumulators stay in
/// registers while the short loop over the `d` coordinates runs; each score is still
/// `norm`, then `+ (−2·x[t])·c[t]` for `t = 0, 1, …` in order, whatever the tile.
#[inline(always)]
pub fn scores_scalar(x: &[f32], ct: &[f32], norms: &[f32], out: &mut [f32]) {
    let k = out.len();
    let mut j0 = 0;
    while j0 < k {
        let w = SCORE_TILE.min(k - j0);
        if w == SCORE_TILE {
            let mut acc = [0f32; SCORE_TILE];
            acc.copy_from_slice(&norms[j0..j0 + SCORE_TILE]);
            for (t, &xt) in x.iter().enumerate() {
                let a = -2.0 * xt;
                let col = &ct[t * k + j0..t * k + j0 + SCORE_TILE];
                for (o, &c) in acc.iter_mut().zip(col) {
                    *o += a * c;
                }
            }
            out[j0..j0 + SCORE_TILE].copy_from_slice(&acc);
        } else {
            let o = &mut out[j0..k];
            o.copy_from_slice(&norms[j0..k]);
            for (t, &xt) in x.iter().enumerate() {
                let a = -2.0 * xt;
                for (v, &c) in o.iter_mut().zip(&ct[t * k + j0..t * k + k]) {
                    *v += a * c;
                }
            }
        }
        j0 += w;
    }
}

/// Centroids per register tile of [`scores_scalar`]: four AVX-512 registers.
const SCORE_TILE: usize = 64;

/// The scalar reference of [`argmin`]. The minimum is taken lane-wise over 16 accumulators
/// (which vectorises), then its first position is found.
pub fn argmin_scalar(v: &[f32]) -> (usize, f32) {
    let mut lanes = [f32::INFINITY; 16];
    let chunks = v.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = if x < *l { x } else { *l };
        }
    }
    let mut m = rest
        .iter()
        .fold(f32::INFINITY, |a, &x| if x < a { x } else { a });
    for &l in &lanes {
        if l < m {
            m = l;
        }
    }
    let i = v.iter().position(|&x| x == m).unwrap_or(0);
    (i, m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn scores_match_the_scalar_reference_on_every_level() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for (k, d) in [(256, 8), (16, 4), (37, 3), (64, 1), (130, 5)] {
            let ct: Vec<f32> = (0..k * d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let norms: Vec<f32> = (0..k).map(|_| rng.random_range(0.0..1.0)).collect();
            let x: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
            let mut want = vec![0f32; k];
            scores_scalar(&x, &ct, &norms, &mut want);
            for l in Level::available() {
                let mut got = vec![0f32; k];
                scores_at(l, &x, &ct, &norms, &mut got);
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(p, q)| p.to_bits() == q.to_bits()),
                    "{} k {k} d {d}",
                    l.name()
                );
            }
            let mut a = vec![0f32; k];
            scores(&x, &ct, &norms, &mut a);
            assert!(a.iter().zip(&want).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
    }

    #[test]
    fn argmin_matches_the_scalar_reference_on_every_level() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        for len in [0, 1, 5, 16, 17, 31, 256, 300] {
            for case in 0..6 {
                let mut v: Vec<f32> = (0..len).map(|_| rng.random_range(-4.0f32..4.0)).collect();
                match case {
                    // Ties at the minimum, in different lanes and in the tail; 9 and 17
                    // sit in lower lanes than 3 (8 or 16 lanes), so merging the lanes in
                    // lane order instead of by index would pick them.
                    1 if len > 20 => {
                        for i in [3, 9, 17, 19, len - 1] {
                            v[i] = -9.0;
                        }
                    }
                    2 => v.iter_mut().for_each(|x| *x = x.round()),
                    3 => v.iter_mut().step_by(2).for_each(|x| *x = f32::NAN),
                    4 => v.iter_mut().for_each(|x| *x = f32::NAN),
                    5 => v.iter_mut().for_each(|x| *x = f32::INFINITY),
                    _ => {}
                }
                let (a, b) = (argmin(&v), argmin_scalar(&v));
                assert_eq!(
                    (a.0, a.1.to_bits()),
                    (b.0, b.1.to_bits()),
                    "len {len} case {case}"
                );
                for l in Level::available() {
                    let a = argmin_at(l, &v);
                    assert_eq!(
                        (a.0, a.1.to_bits()),
                        (b.0, b.1.to_bits()),
                        "{} {len} {case}",
                        l.name()
                    );
                }
            }
        }
    }

    #[test]
    fn argmin_takes_the_first_minimum() {
        let mut v: Vec<f32> = (0..40).map(|i| (i % 7) as f32 + 1.0).collect();
        v[33] = -1.0;
        v[21] = -1.0;
        assert_eq!(argmin(&v), (21, -1.0));
        assert_eq!(argmin(&[3.0, 2.0, 2.0]), (1, 2.0));
    }
}
