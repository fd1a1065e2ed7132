//! binary kernel: one row's sign bits and its scale `mean|v|`.
//!
//! The scalar references are [`sign_bits_scalar`] and [`row_scale_scalar`]. The wide levels
//! take the sign bits from a compare mask (`v >= 0`, so both zeros give 1, as in the
//! reference) and compile the reference's fixed-order f64 sum with wider instructions, so
//! every level gives the reference's bits.

#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;
use super::int4::{LANES, lane_sum};

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
    sign_bits_scalar(row, bits);
    row_scale_scalar(row)
}

/// The row's scale, `mean|v|` rounded once to f32: the scalar reference of the scale
/// [`encode_row`] returns.
pub fn row_scale_scalar(row: &[f32]) -> f32 {
    row_scale_body(row)
}

/// [`row_scale_scalar`]'s body, inlined into each SIMD level's kernel. The f64 sum runs in
/// [`LANES`] partial sums added in a fixed order, so it vectorises and every level gets the
/// same bits.
#[inline(always)]
pub(crate) fn row_scale_body(row: &[f32]) -> f32 {
    let mut l = [0f64; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            l[i] += f64::from(c[i].abs());
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(0f64, |t, &x| t + f64::from(x.abs()));
    (lane_sum(&l, tail) / row.len() as f64) as f32
}

/// One row's sign bits into `out` (`ceil(row.len() / 8)` bytes): the scalar reference of
/// the bits [`encode_row`] writes.
pub fn sign_bits_scalar(row: &[f32], out: &mut [u8]) {
    for (byte, eight) in out.iter_mut().zip(row.chunks(8)) {
        *byte = eight
            .iter()
            .enumerate()
            .fold(0u8, |acc, (j, &x)| acc | (u8::from(x >= 0.0) << j));
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
            sign_bits_scalar(&row, &mut want);
            let scale = row_scale_scalar(&row);
            for l in Level::available() {
                let mut got = vec![0xa5u8; len.div_ceil(8)];
                let s = encode_row_at(l, &row, &mut got);
                assert_eq!(got, want, "{} len {len}: {row:?}", l.name());
                assert_eq!(s.to_bits(), scale.to_bits(), "{} len {len}", l.name());
            }
        }
    }
}
