//! binary kernel: one row's sign bits and its scale `mean|v|`.
//!
//! The scalar references are [`crate::codec::binary::sign_bits`] and
//! [`crate::codec::binary::row_scale`]. The wide levels take the sign bits from a compare
//! mask (`v >= 0`, so both zeros give 1, as in the reference) and compile the reference's
//! fixed-order f64 sum with wider instructions, so every level gives the reference's bits.

use super::Level;
use crate::codec::binary as reference;

/// Writes `row`'s (finite) sign bits to `bits` (`ceil(row.len() / 8)` bytes) and returns
/// its scale.
pub fn encode_row(row: &[f32], bits: &mut [u8]) -> f32 {
    encode_row_at(Level::detect(), row, bits)
}

/// [`encode_row`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// If `bits` is shorter than `ceil(row.len() / 8)`.
pub fn encode_row_at(level: Level, row: &[f32], bits: &mut [u8]) -> f32 {
    let bits = &mut bits[..row.len().div_ceil(8)];
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::encode_row_avx512(row, bits) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::encode_row_avx2(row, bits) },
            _ => {}
        }
    }
    let _ = level;
    reference::sign_bits(row, bits);
    reference::row_scale(row)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::codec::binary::{row_scale_body, sign_bits};

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
        sign_bits(rest, tail);
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
        sign_bits(rest, tail);
        row_scale_body(row)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_matches_the_scalar_reference() {
        let mut rng = crate::test_rng::Rng(0x2545_f491_4f6c_dd1d);
        let mut next = move || rng.next();
        for case in 0..2000usize {
            let len = 1 + case % 97 + (case % 3) * 128;
            let row: Vec<f32> = (0..len)
                .map(|_| match next() % 5 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f32::from_bits(next() as u32 & 0x807f_ffff),
                    _ => f32::from_bits(next() as u32 & 0xbfff_ffff),
                })
                .collect();
            let mut want = vec![0u8; len.div_ceil(8)];
            reference::sign_bits(&row, &mut want);
            let scale = reference::row_scale(&row);
            for l in Level::available() {
                let mut got = vec![0xa5u8; len.div_ceil(8)];
                let s = encode_row_at(l, &row, &mut got);
                assert_eq!(got, want, "{} len {len}: {row:?}", l.name());
                assert_eq!(s.to_bits(), scale.to_bits(), "{} len {len}", l.name());
            }
        }
    }
}
