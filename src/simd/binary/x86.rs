//! x86-64 binary kernels (AVX2, AVX-512): the sign bits from a compare mask, the scale from
//! the reference's body compiled with wider instructions.

use std::arch::x86_64::*;

use super::{row_scale_body, sign_bits_scalar};

#[target_feature(enable = "avx2")]
pub(super) fn encode_row_avx2(row: &[f32], bits: &mut [u8]) -> f32 {
    let zero = _mm256_setzero_ps();
    let src = row.chunks_exact(8);
    let (body, tail) = bits.split_at_mut(row.len() / 8);
    let rest = src.remainder();
    for (x, b) in src.zip(body) {
        // SAFETY: `x` has exactly 8 floats.
        let v = unsafe { _mm256_loadu_ps(x.as_ptr()) };
        // Bit j of the mask is lane j: dimension 8i + j, as the format orders them.
        *b = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(v, zero)) as u8;
    }
    sign_bits_scalar(rest, tail);
    row_scale_body(row)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn encode_row_avx512(row: &[f32], bits: &mut [u8]) -> f32 {
    let zero = _mm512_setzero_ps();
    let src = row.chunks_exact(16);
    let (body, tail) = bits.split_at_mut(row.len() / 16 * 2);
    let rest = src.remainder();
    for (x, b) in src.zip(body.chunks_exact_mut(2)) {
        // SAFETY: `x` has exactly 16 floats.
        let v = unsafe { _mm512_loadu_ps(x.as_ptr()) };
        let m = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, zero);
        b.copy_from_slice(&m.to_le_bytes());
    }
    sign_bits_scalar(rest, tail);
    row_scale_body(row)
}
