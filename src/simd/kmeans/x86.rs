//! x86-64 nearest-centroid kernels (AVX2, AVX-512).

use std::arch::x86_64::*;

use super::{argmin_scalar, scores_scalar};
use crate::simd::x86_common::{MinLanes8, MinLanes16};

#[target_feature(enable = "avx512f")]
pub(super) fn scores_avx512(x: &[f32], ct: &[f32], norms: &[f32], out: &mut [f32]) {
    scores_scalar(x, ct, norms, out)
}

#[target_feature(enable = "avx2")]
pub(super) fn scores_avx2(x: &[f32], ct: &[f32], norms: &[f32], out: &mut [f32]) {
    scores_scalar(x, ct, norms, out)
}

/// [`argmin_avx512`] with 8 lanes.
#[target_feature(enable = "avx2")]
pub(super) fn argmin_avx2(v: &[f32]) -> (usize, f32) {
    let n = v.len() / 8 * 8;
    let mut lanes = MinLanes8::new();
    for i in (0..n).step_by(8) {
        // SAFETY: `i + 8 <= n <= v.len()`.
        lanes.push(unsafe { _mm256_loadu_ps(v.as_ptr().add(i)) });
    }
    first_min_or_reference(v, lanes.first_min(), n)
}

/// One pass, 16 lanes each keeping the first minimum of its positions, then the lanes
/// merged by value and then index.
#[target_feature(enable = "avx512f")]
pub(super) fn argmin_avx512(v: &[f32]) -> (usize, f32) {
    let n = v.len() / 16 * 16;
    let mut lanes = MinLanes16::new();
    for i in (0..n).step_by(16) {
        // SAFETY: `i + 16 <= n <= v.len()`.
        lanes.push(unsafe { _mm512_loadu_ps(v.as_ptr().add(i)) });
    }
    first_min_or_reference(v, lanes.first_min(), n)
}

/// The lanes' first minimum `best`, then the positions from `n` on, which no lane
/// covered. Anything but a finite non-zero minimum (all NaN or infinite, or a zero whose
/// sign the reference might pick differently) goes to [`argmin_scalar`], which settles
/// those cases.
fn first_min_or_reference(v: &[f32], mut best: (usize, f32), n: usize) -> (usize, f32) {
    for (i, &x) in v.iter().enumerate().skip(n) {
        if x < best.1 {
            best = (i, x);
        }
    }
    if best.1 == f32::INFINITY || best.1 == 0.0 {
        return argmin_scalar(v);
    }
    best
}
