//! x86-64 integer dot kernels (AVX2). Tails shorter than one vector run the scalar
//! reference; integer sums are exact, so the result is the reference's.

use std::arch::x86_64::*;

use super::{dot_scalar, unpack_i4_scalar};

/// `Σ q[j] · x[j]` over equal-length slices of values in `[-127, 127]`.
#[target_feature(enable = "avx2")]
pub(super) fn dot_avx2(q: &[i8], x: &[i8]) -> i32 {
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_si256(); 2];
    let (qb, xb) = (q.chunks_exact(64), x.chunks_exact(64));
    let (qr, xr) = (qb.remainder(), xb.remainder());
    for (a, b) in qb.zip(xb) {
        for (h, acc) in acc.iter_mut().enumerate() {
            // SAFETY: `a` and `b` are 64 bytes, so 32 from offset 32h are in bounds;
            // loadu needs no alignment.
            let (va, vb) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr().add(32 * h).cast()),
                    _mm256_loadu_si256(b.as_ptr().add(32 * h).cast()),
                )
            };
            *acc = _mm256_add_epi32(*acc, pair_dot(va, vb, ones));
        }
    }
    let (qr32, xr32) = (qr.chunks_exact(32), xr.chunks_exact(32));
    let (qt, xt) = (qr32.remainder(), xr32.remainder());
    for (a, b) in qr32.zip(xr32) {
        // SAFETY: 32 bytes each.
        let (va, vb) = unsafe {
            (
                _mm256_loadu_si256(a.as_ptr().cast()),
                _mm256_loadu_si256(b.as_ptr().cast()),
            )
        };
        acc[0] = _mm256_add_epi32(acc[0], pair_dot(va, vb, ones));
    }
    let s = _mm256_add_epi32(acc[0], acc[1]);
    let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s) + dot_scalar(qt, xt)
}

/// Eight i32 partial sums of `a · b` over 32 signed bytes: `|a|` times `b` with `a`'s
/// sign (unsigned × signed byte products, adjacent pairs added into i16, which cannot
/// saturate for values within ±127), then adjacent i16 pairs into i32.
#[inline]
#[target_feature(enable = "avx2")]
fn pair_dot(a: __m256i, b: __m256i, ones: __m256i) -> __m256i {
    let p = _mm256_maddubs_epi16(_mm256_abs_epi8(a), _mm256_sign_epi8(b, a));
    _mm256_madd_epi16(p, ones)
}

/// Unpacks `out.len()` nibbles of `packed` to sign-extended bytes, 64 at a time.
#[target_feature(enable = "avx2")]
pub(super) fn unpack_i4_avx2(packed: &[u8], out: &mut [i8]) {
    let low = _mm256_set1_epi8(0x0f);
    let eight = _mm256_set1_epi8(8);
    let n = out.len() / 64;
    for i in 0..n {
        // SAFETY: 32 bytes from 32i hold nibbles 64i..64i+64 < out.len() <= 2·packed.len().
        let v = unsafe { _mm256_loadu_si256(packed.as_ptr().add(32 * i).cast()) };
        let lo = _mm256_and_si256(v, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
        // Sign-extend 4 bits: (x ^ 8) − 8.
        let lo = _mm256_sub_epi8(_mm256_xor_si256(lo, eight), eight);
        let hi = _mm256_sub_epi8(_mm256_xor_si256(hi, eight), eight);
        // Interleave low and high nibbles back into dimension order; the unpacks work
        // within 128-bit halves, so fix the halves' order after.
        let a = _mm256_unpacklo_epi8(lo, hi);
        let b = _mm256_unpackhi_epi8(lo, hi);
        let first = _mm256_permute2x128_si256::<0x20>(a, b);
        let second = _mm256_permute2x128_si256::<0x31>(a, b);
        // SAFETY: 64 bytes from 64i are within `out` (i < out.len() / 64).
        unsafe {
            _mm256_storeu_si256(out.as_mut_ptr().add(64 * i).cast(), first);
            _mm256_storeu_si256(out.as_mut_ptr().add(64 * i + 32).cast(), second);
        }
    }
    unpack_i4_scalar(&packed[32 * n..], &mut out[64 * n..]);
}
