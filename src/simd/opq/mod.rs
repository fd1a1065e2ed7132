//! OPQ's rotation `out = x · r` of a block of rows by a square matrix.
//!
//! The scalar reference is [`rotate_scalar`]. Each level tiles the product differently,
//! but every output element adds its `d` products in the same order, so every level
//! agrees with it bit for bit.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// `out = x · r` for row-major `x` (`n × d`) and `r` (`d × d`). Each output element is
/// accumulated over `t = 0..d` in order, whatever the tiling, so one row and a block give
/// identical bits.
#[inline]
pub fn rotate(x: &[f32], d: usize, r: &[f32], out: &mut [f32]) {
    rotate_at(Level::detect(), x, d, r, out)
}

/// [`rotate`] at a given level; a level this CPU lacks runs the scalar reference.
#[inline]
pub fn rotate_at(level: Level, x: &[f32], d: usize, r: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::rotate_avx512(x, d, r, out) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::rotate_avx2(x, d, r, out) },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has NEON.
        return unsafe { neon::rotate(x, d, r, out) };
    }
    let _ = level;
    rotate_scalar(x, d, r, out)
}

/// The scalar reference of [`rotate`]: a register-tiled loop the compiler vectorises.
pub fn rotate_scalar(x: &[f32], d: usize, r: &[f32], out: &mut [f32]) {
    rotate_tiled::<2, 16>(x, d, r, out)
}

/// `out = x · r` in tiles of `TR` rows × `TC` columns held in registers. Tiles change
/// which products are in flight together, never the order in which one output element
/// adds its `d` products, so every tiling gives the same bits.
#[inline(always)]
fn rotate_tiled<const TR: usize, const TC: usize>(x: &[f32], d: usize, r: &[f32], out: &mut [f32]) {
    let n = x.len() / d;
    let full_rows = n / TR * TR;
    let full_cols = d / TC * TC;
    for i0 in (0..full_rows).step_by(TR) {
        for j0 in (0..full_cols).step_by(TC) {
            let mut acc = [[0f32; TC]; TR];
            for t in 0..d {
                let rr = &r[t * d + j0..t * d + j0 + TC];
                for (ri, a) in acc.iter_mut().enumerate() {
                    let xv = x[(i0 + ri) * d + t];
                    for (o, &c) in a.iter_mut().zip(rr) {
                        *o += xv * c;
                    }
                }
            }
            for (ri, a) in acc.iter().enumerate() {
                out[(i0 + ri) * d + j0..(i0 + ri) * d + j0 + TC].copy_from_slice(a);
            }
        }
        rotate_edge(x, d, r, out, i0..i0 + TR, full_cols);
    }
    rotate_edge(x, d, r, out, full_rows..n, 0);
}

/// Rows `rows`, columns `first_col..d`, one element at a time in the same order.
fn rotate_edge(
    x: &[f32],
    d: usize,
    r: &[f32],
    out: &mut [f32],
    rows: std::ops::Range<usize>,
    first_col: usize,
) {
    for i in rows {
        for j in first_col..d {
            let mut acc = 0f32;
            for t in 0..d {
                acc += x[i * d + t] * r[t * d + j];
            }
            out[i * d + j] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    #[test]
    fn rotate_matches_a_plain_loop_at_every_level_and_tiling() {
        // Shapes with and without partial tiles of every level's rows (8, 6, 4, 2) and
        // columns (32, 16).
        for (n, d) in [(9, 70), (4, 32), (1, 5), (13, 48), (16, 64), (7, 33)] {
            let (x, r) = (random(n * d, 1), random(d * d, 2));
            let mut slow = vec![0f32; n * d];
            rotate_edge(&x, d, &r, &mut slow, 0..n, 0);
            let same = |got: &[f32], what: &str| {
                assert!(
                    got.iter()
                        .zip(&slow)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{what} {n}x{d}"
                );
            };
            let mut out = vec![0f32; n * d];
            rotate(&x, d, &r, &mut out);
            same(&out, "dispatch");
            rotate_scalar(&x, d, &r, &mut out);
            same(&out, "scalar");
            rotate_tiled::<3, 8>(&x, d, &r, &mut out);
            same(&out, "3x8");
            for l in Level::available() {
                out.fill(0.0);
                rotate_at(l, &x, d, &r, &mut out);
                same(&out, l.name());
            }
            // One row alone gives the bits it gets inside a block.
            if n > 1 {
                let mut one = vec![0f32; d];
                rotate(&x[d..2 * d], d, &r, &mut one);
                assert_eq!(one, slow[d..2 * d], "row 1 alone {n}x{d}");
            }
        }
    }
}
