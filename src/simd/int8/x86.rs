//! x86-64 int8 kernels (AVX2, AVX-512). Callers check the CPU features first and pass slices
//! of equal length; tails shorter than one vector run the scalar reference, which gives
//! the same bits by construction.
//!
//! Rounding: `cvtps2dq` rounds by MXCSR, which Rust keeps at round-to-nearest-even, the
//! reference's `rint`. Values are clamped to ±127 before converting, so packing to i8 never
//! saturates and the result equals the reference's clamp-then-round.

use std::arch::x86_64::*;

use super::{dequantize_scalar, max_abs_bits_scalar, quantize_scalar, reduce16};

/// `max(bits(x) & 0x7fff_ffff)` over `row`, as an integer (see
/// [`super::max_abs_bits_scalar`]). Integer max needs no finiteness: one pass both
/// finds the scale and detects NaN/±Inf.
#[target_feature(enable = "avx2")]
pub(super) fn max_abs_bits_avx2(row: &[f32]) -> u32 {
    let mask = _mm256_set1_epi32(0x7fff_ffff);
    let mut acc = [_mm256_setzero_si256(); 4];
    let mut blocks = row.chunks_exact(32);
    for b in &mut blocks {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `b` has 32 floats, so 8 from offset 8k are in bounds; loadu needs no
            // alignment.
            let x = unsafe { _mm256_loadu_si256(b.as_ptr().add(8 * k).cast()) };
            // Masked values are non-negative as i32, so the signed max orders them as u32.
            *a = _mm256_max_epi32(*a, _mm256_and_si256(x, mask));
        }
    }
    let m = _mm256_max_epi32(
        _mm256_max_epi32(acc[0], acc[1]),
        _mm256_max_epi32(acc[2], acc[3]),
    );
    let m = _mm_max_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256::<1>(m));
    let m = _mm_max_epi32(m, _mm_shuffle_epi32::<0b01_00_11_10>(m));
    let m = _mm_max_epi32(m, _mm_shuffle_epi32::<0b10_11_00_01>(m));
    (_mm_cvtsi128_si32(m) as u32).max(max_abs_bits_scalar(blocks.remainder()))
}

/// [`max_abs_bits_avx2`] on 512-bit vectors.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn max_abs_bits_avx512(row: &[f32]) -> u32 {
    let mask = _mm512_set1_epi32(0x7fff_ffff);
    let mut acc = [_mm512_setzero_si512(); 4];
    let mut blocks = row.chunks_exact(64);
    for b in &mut blocks {
        for (k, a) in acc.iter_mut().enumerate() {
            // SAFETY: `b` has 64 floats, so 16 from offset 16k are in bounds.
            let x = unsafe { _mm512_loadu_si512(b.as_ptr().add(16 * k).cast()) };
            *a = _mm512_max_epi32(*a, _mm512_and_si512(x, mask));
        }
    }
    let m = _mm512_max_epi32(
        _mm512_max_epi32(acc[0], acc[1]),
        _mm512_max_epi32(acc[2], acc[3]),
    );
    (_mm512_reduce_max_epi32(m) as u32).max(max_abs_bits_avx2(blocks.remainder()))
}

/// Quantizes `row` (finite) with `scale` (finite, non-zero) into `out` (same length).
#[target_feature(enable = "avx2")]
pub(super) fn quantize_avx2(row: &[f32], scale: f32, out: &mut [i8]) {
    let s = _mm256_set1_ps(scale);
    let (lo, hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    // Undoes the lane interleaving of the two pack instructions below.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let mut src = row.chunks_exact(32);
    let mut dst = out.chunks_exact_mut(32);
    for (x, o) in (&mut src).zip(&mut dst) {
        let mut q = [_mm256_setzero_si256(); 4];
        for (k, q) in q.iter_mut().enumerate() {
            // SAFETY: `x` has 32 floats, so 8 from offset 8k are in bounds.
            let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * k)) };
            let y = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(v, s), lo), hi);
            *q = _mm256_cvtps_epi32(y);
        }
        let w = _mm256_packs_epi32(q[0], q[1]);
        let z = _mm256_packs_epi32(q[2], q[3]);
        let b = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(w, z), order);
        // SAFETY: `o` has exactly 32 bytes; storeu needs no alignment.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), b) };
    }
    quantize_scalar(src.remainder(), scale, dst.into_remainder());
}

/// Quantizes `row` (finite) with `scale` (finite, non-zero) into `out` (same length).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn quantize_avx512(row: &[f32], scale: f32, out: &mut [i8]) {
    let s = _mm512_set1_ps(scale);
    let (lo, hi) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
    let mut src = row.chunks_exact(16);
    let mut dst = out.chunks_exact_mut(16);
    for (x, o) in (&mut src).zip(&mut dst) {
        // SAFETY: `x` has exactly 16 floats.
        let v = unsafe { _mm512_loadu_ps(x.as_ptr()) };
        let y = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(v, s), lo), hi);
        let q = _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y);
        // SAFETY: `o` has exactly 16 bytes.
        unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(q)) };
    }
    quantize_avx2(src.remainder(), scale, dst.into_remainder());
}

/// `out[j] = f32(codes[j]) * scale`, slices of the same length.
#[target_feature(enable = "avx2")]
pub(super) fn dequantize_avx2(codes: &[i8], scale: f32, out: &mut [f32]) {
    let s = _mm256_set1_ps(scale);
    let mut src = codes.chunks_exact(8);
    let mut dst = out.chunks_exact_mut(8);
    for (c, o) in (&mut src).zip(&mut dst) {
        // SAFETY: `c` has exactly 8 bytes, the width of loadl_epi64.
        let q = unsafe { _mm_loadl_epi64(c.as_ptr().cast()) };
        let v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), s);
        // SAFETY: `o` has exactly 8 floats.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), v) };
    }
    dequantize_scalar(src.remainder(), scale, dst.into_remainder());
}

/// `out[j] = f32(codes[j]) * scale`, slices of the same length.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn dequantize_avx512(codes: &[i8], scale: f32, out: &mut [f32]) {
    let s = _mm512_set1_ps(scale);
    let mut src = codes.chunks_exact(16);
    let mut dst = out.chunks_exact_mut(16);
    for (c, o) in (&mut src).zip(&mut dst) {
        // SAFETY: `c` has exactly 16 bytes.
        let q = unsafe { _mm_loadu_si128(c.as_ptr().cast()) };
        let v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)), s);
        // SAFETY: `o` has exactly 16 floats.
        unsafe { _mm512_storeu_ps(o.as_mut_ptr(), v) };
    }
    dequantize_avx2(src.remainder(), scale, dst.into_remainder());
}

/// `(Σ q_j · c_j, Σ c_j²)` on AVX2 (see [`super::dot_codes_scalar`], whose bits it gives):
/// 16 codes a step, widened to i32 and converted to float, multiplied then added (no FMA,
/// which would round once instead of twice) into two 8-lane sums, lanes `j mod 16`; the
/// squares through `pmaddwd` on the codes widened to i16.
#[target_feature(enable = "avx2")]
pub(super) fn dot_codes_avx2(q: &[f32], codes: &[i8]) -> (f32, i32) {
    let n = q.len().min(codes.len());
    let body = n / 16 * 16;
    let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    let mut sq = _mm256_setzero_si256();
    for j in (0..body).step_by(16) {
        // SAFETY: `j + 16 <= body <= n`, the length of both slices: 16 codes and 16 floats
        // from `j` are in bounds; loadu needs no alignment.
        let (x, q0, q1) = unsafe {
            (
                _mm_loadu_si128(codes.as_ptr().add(j).cast()),
                _mm256_loadu_ps(q.as_ptr().add(j)),
                _mm256_loadu_ps(q.as_ptr().add(j + 8)),
            )
        };
        let lo = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(x));
        let hi = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128::<8>(x)));
        a0 = _mm256_add_ps(a0, _mm256_mul_ps(q0, lo));
        a1 = _mm256_add_ps(a1, _mm256_mul_ps(q1, hi));
        let w = _mm256_cvtepi8_epi16(x);
        sq = _mm256_add_epi32(sq, _mm256_madd_epi16(w, w));
    }
    let mut lanes = [0f32; 16];
    // SAFETY: `lanes` holds 16 floats: 8 at offset 0 and 8 at offset 8.
    unsafe {
        _mm256_storeu_ps(lanes.as_mut_ptr(), a0);
        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), a1);
    }
    let mut s = reduce16(&lanes);
    let mut sqs = [0i32; 8];
    // SAFETY: `sqs` holds 8 i32.
    unsafe { _mm256_storeu_si256(sqs.as_mut_ptr().cast(), sq) };
    let mut total: i32 = sqs.iter().sum();
    for j in body..n {
        s += q[j] * f32::from(codes[j]);
        total += i32::from(codes[j]) * i32::from(codes[j]);
    }
    (s, total)
}
