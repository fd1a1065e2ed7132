//! x86-64 kernels of the anisotropic step (AVX2, AVX-512).

use std::arch::x86_64::*;

use super::{Terms, scan_from, step_scalar};
use crate::simd::x86_common::{MinLanes8, MinLanes16};

#[target_feature(enable = "avx512f")]
pub(super) fn step_avx512(t: Terms, rest: f32, w: f32) -> (usize, f32) {
    let n = t.s.len().min(t.norms.len()) / 16 * 16;
    let (vr, vw, vx) = (
        _mm512_set1_ps(rest),
        _mm512_set1_ps(w),
        _mm512_set1_ps(t.xj2),
    );
    let half = _mm512_set1_ps(0.5);
    let mut lanes = MinLanes16::new();
    for i in (0..n).step_by(16) {
        // SAFETY: `i + 16 <= n`, within both slices.
        let (sv, nv) = unsafe {
            (
                _mm512_loadu_ps(t.s.as_ptr().add(i)),
                _mm512_loadu_ps(t.norms.as_ptr().add(i)),
            )
        };
        let e = _mm512_add_ps(vx, sv);
        let p = _mm512_add_ps(vx, _mm512_mul_ps(half, _mm512_sub_ps(sv, nv)));
        let a = _mm512_add_ps(vr, p);
        lanes.push(_mm512_add_ps(e, _mm512_mul_ps(vw, _mm512_mul_ps(a, a))));
    }
    with_tail(lanes.first_min(), t, rest, w, n)
}

#[target_feature(enable = "avx2")]
pub(super) fn step_avx2(t: Terms, rest: f32, w: f32) -> (usize, f32) {
    let n = t.s.len().min(t.norms.len()) / 8 * 8;
    let (vr, vw, vx) = (
        _mm256_set1_ps(rest),
        _mm256_set1_ps(w),
        _mm256_set1_ps(t.xj2),
    );
    let half = _mm256_set1_ps(0.5);
    let mut lanes = MinLanes8::new();
    for i in (0..n).step_by(8) {
        // SAFETY: `i + 8 <= n`, within both slices.
        let (sv, nv) = unsafe {
            (
                _mm256_loadu_ps(t.s.as_ptr().add(i)),
                _mm256_loadu_ps(t.norms.as_ptr().add(i)),
            )
        };
        let e = _mm256_add_ps(vx, sv);
        let p = _mm256_add_ps(vx, _mm256_mul_ps(half, _mm256_sub_ps(sv, nv)));
        let a = _mm256_add_ps(vr, p);
        lanes.push(_mm256_add_ps(e, _mm256_mul_ps(vw, _mm256_mul_ps(a, a))));
    }
    with_tail(lanes.first_min(), t, rest, w, n)
}

/// The lanes' first minimum against the centroids from `n` on, which no lane covered;
/// all-infinite (or NaN) lanes go to the reference, which settles them.
fn with_tail(lanes: (usize, f32), t: Terms, rest: f32, w: f32, n: usize) -> (usize, f32) {
    if lanes.1 == f32::INFINITY {
        return step_scalar(t, rest, w);
    }
    scan_from(lanes, t, rest, w, n)
}
