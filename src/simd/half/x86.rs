//! x86-64 float32 → f16 / bf16 kernels (see [`super`]). Each returns the index of the
//! first value whose 16-bit form is not finite; tails run the scalar reference.

use std::arch::x86_64::*;

use super::{bf16_scalar, f16_scalar};

/// The lowest set lane of a non-zero mask, offset by `base`.
fn first(mask: u32, base: usize) -> usize {
    base + mask.trailing_zeros() as usize
}

/// f16 with `vcvtps2ph`, 16 lanes: an f16 exponent of all ones is NaN or ±Inf, whether the
/// input was one or overflowed.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn f16_avx512(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    let exp = _mm256_set1_epi16(0x7c00);
    let mut s = src.chunks_exact(16);
    let mut d = dst.chunks_exact_mut(32);
    for (i, (x, o)) in (&mut s).zip(&mut d).enumerate() {
        // SAFETY: `x` has exactly 16 floats.
        let v = unsafe { _mm512_loadu_ps(x.as_ptr()) };
        let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
        let bad = _mm256_cmpeq_epi16_mask(_mm256_and_si256(h, exp), exp);
        if bad != 0 {
            return Some(first(u32::from(bad), 16 * i));
        }
        // SAFETY: `o` has exactly 32 bytes; storeu needs no alignment.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), h) };
    }
    let base = src.len() - s.remainder().len();
    f16_scalar(s.remainder(), d.into_remainder()).map(|i| base + i)
}

/// f16 with F16C, 8 lanes.
#[target_feature(enable = "avx2,f16c")]
pub(super) fn f16_avx2(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    let exp = _mm_set1_epi16(0x7c00);
    let mut s = src.chunks_exact(8);
    let mut d = dst.chunks_exact_mut(16);
    for (i, (x, o)) in (&mut s).zip(&mut d).enumerate() {
        // SAFETY: `x` has exactly 8 floats.
        let v = unsafe { _mm256_loadu_ps(x.as_ptr()) };
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
        let eq = _mm_cmpeq_epi16(_mm_and_si128(h, exp), exp);
        let bad = _mm_movemask_epi8(eq) as u32;
        if bad != 0 {
            // Two mask bits per 16-bit lane.
            return Some(8 * i + bad.trailing_zeros() as usize / 2);
        }
        // SAFETY: `o` has exactly 16 bytes.
        unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), h) };
    }
    let base = src.len() - s.remainder().len();
    f16_scalar(s.remainder(), d.into_remainder()).map(|i| base + i)
}

/// bf16 by integer rounding, 16 lanes: bad if the input's exponent is all ones (NaN, Inf;
/// a NaN can round to anything) or the rounded one is (overflow).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn bf16_avx512(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    let (exp, bexp) = (_mm512_set1_epi32(0x7f80_0000), _mm512_set1_epi32(0x7f80));
    let (half, one) = (_mm512_set1_epi32(0x7fff), _mm512_set1_epi32(1));
    let mut s = src.chunks_exact(16);
    let mut d = dst.chunks_exact_mut(32);
    for (i, (x, o)) in (&mut s).zip(&mut d).enumerate() {
        // SAFETY: `x` has exactly 16 floats.
        let v = unsafe { _mm512_loadu_si512(x.as_ptr().cast()) };
        let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(v), one);
        let h = _mm512_srli_epi32::<16>(_mm512_add_epi32(_mm512_add_epi32(v, half), lsb));
        let bad = _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, exp), exp)
            | _mm512_cmpeq_epi32_mask(_mm512_and_si512(h, bexp), bexp);
        if bad != 0 {
            return Some(first(u32::from(bad), 16 * i));
        }
        // SAFETY: `o` has exactly 32 bytes.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), _mm512_cvtepi32_epi16(h)) };
    }
    let base = src.len() - s.remainder().len();
    bf16_scalar(s.remainder(), d.into_remainder()).map(|i| base + i)
}

/// bf16 by integer rounding, 2 × 8 lanes packed to 16 halves.
#[target_feature(enable = "avx2")]
pub(super) fn bf16_avx2(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    let (exp, bexp) = (_mm256_set1_epi32(0x7f80_0000), _mm256_set1_epi32(0x7f80));
    let (half, one) = (_mm256_set1_epi32(0x7fff), _mm256_set1_epi32(1));
    let round = |v: __m256i| -> (__m256i, __m256i) {
        let lsb = _mm256_and_si256(_mm256_srli_epi32::<16>(v), one);
        let h = _mm256_srli_epi32::<16>(_mm256_add_epi32(_mm256_add_epi32(v, half), lsb));
        let bad = _mm256_or_si256(
            _mm256_cmpeq_epi32(_mm256_and_si256(v, exp), exp),
            _mm256_cmpeq_epi32(_mm256_and_si256(h, bexp), bexp),
        );
        (h, bad)
    };
    let mut s = src.chunks_exact(16);
    let mut d = dst.chunks_exact_mut(32);
    for (i, (x, o)) in (&mut s).zip(&mut d).enumerate() {
        // SAFETY: `x` has 16 floats: 8 at offset 0 and 8 at offset 8.
        let (a, b) = unsafe {
            (
                _mm256_loadu_si256(x.as_ptr().cast()),
                _mm256_loadu_si256(x.as_ptr().add(8).cast()),
            )
        };
        let ((ha, ba), (hb, bb)) = (round(a), round(b));
        let bad = _mm256_movemask_ps(_mm256_castsi256_ps(ba)) as u32
            | (_mm256_movemask_ps(_mm256_castsi256_ps(bb)) as u32) << 8;
        if bad != 0 {
            return Some(first(bad, 16 * i));
        }
        // Values are below 2^16, so unsigned saturation never clips; the permute undoes
        // the pack's lane interleaving.
        let h = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(ha, hb));
        // SAFETY: `o` has exactly 32 bytes.
        unsafe { _mm256_storeu_si256(o.as_mut_ptr().cast(), h) };
    }
    let base = src.len() - s.remainder().len();
    bf16_scalar(s.remainder(), d.into_remainder()).map(|i| base + i)
}
