//! x86-64 kernels of the finiteness check (AVX2, AVX-512). Callers check the CPU features
//! first; tails shorter than one vector run the scalar reference.

use std::arch::x86_64::*;

/// Whether any value is NaN or ±Inf: an exponent field of all ones.
#[target_feature(enable = "avx2")]
pub(super) fn any_non_finite_avx2(data: &[f32]) -> bool {
    let exp = _mm256_set1_epi32(0x7f80_0000);
    let mut acc = _mm256_setzero_si256();
    let mut blocks = data.chunks_exact(8);
    for b in &mut blocks {
        // SAFETY: `b` has exactly 8 floats.
        let x = unsafe { _mm256_loadu_si256(b.as_ptr().cast()) };
        let e = _mm256_and_si256(x, exp);
        acc = _mm256_or_si256(acc, _mm256_cmpeq_epi32(e, exp));
    }
    _mm256_testz_si256(acc, acc) == 0 || super::any_non_finite_scalar(blocks.remainder())
}

/// Whether any value is NaN or ±Inf.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn any_non_finite_avx512(data: &[f32]) -> bool {
    let exp = _mm512_set1_epi32(0x7f80_0000);
    let mut acc: __mmask16 = 0;
    let mut blocks = data.chunks_exact(16);
    for b in &mut blocks {
        // SAFETY: `b` has exactly 16 floats.
        let x = unsafe { _mm512_loadu_si512(b.as_ptr().cast()) };
        acc |= _mm512_cmpeq_epi32_mask(_mm512_and_si512(x, exp), exp);
    }
    acc != 0 || any_non_finite_avx2(blocks.remainder())
}
