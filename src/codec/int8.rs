//! Per-vector int8: the reference codec, bit-exact with `shared/reference/int8_reference.py`.
//!
//! For each row `v`:
//! - `scale = max|v| / 127` in float32; an all-zero row gets `scale = 1.0`;
//! - `q = round_half_to_even(v / scale)` with a float32 division, stored as int8;
//! - the reconstruction is `float32(q) * scale`.
//!
//! Payload of a block of `n` rows: `n × dims` codes (i8, row-major), then `n` scales (f32 LE).
//! The error bound is `|v - v'| <= scale / 2` per element, up to float rounding (at most a
//! relative `3.1·10⁻⁵` of that: see the tests).

use super::{Codec, CodecId, CodecSpec, EncodeFault};
use crate::simd::Level;
use crate::simd::int8 as simd;

/// The per-vector int8 codec.
#[derive(Debug, Clone)]
pub struct Int8 {
    dims: usize,
}

impl Int8 {
    /// An int8 codec for `dims`-dimensional vectors.
    pub fn new(dims: usize) -> Self {
        Int8 { dims }
    }
}

/// The scale of one row, exactly as the reference computes it.
pub fn row_scale(row: &[f32]) -> f32 {
    scale_of_max(max_abs(row))
}

/// `max_j |row[j]|` of a finite row.
pub fn max_abs(row: &[f32]) -> f32 {
    row.iter().fold(0f32, |m, &x| m.max(x.abs()))
}

pub use crate::simd::int8::INF_BITS;

/// The scale of a row whose largest magnitude is `max_abs`.
pub fn scale_of_max(max_abs: f32) -> f32 {
    if max_abs == 0.0 { 1.0 } else { max_abs / 127.0 }
}

impl Codec for Int8 {
    fn name(&self) -> String {
        "int8".into()
    }

    fn spec(&self) -> CodecSpec {
        CodecSpec {
            id: CodecId::Int8,
            params: Vec::new(),
        }
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn encoded_len(&self, rows: usize) -> usize {
        rows * (self.dims + 4)
    }

    fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault> {
        let d = self.dims;
        let rows = input.len() / d;
        let (codes, scales) = out.split_at_mut(rows * d);
        let level = Level::detect();
        for (r, (row, code)) in input
            .chunks_exact(d)
            .zip(codes.chunks_exact_mut(d))
            .enumerate()
        {
            let max = simd::max_abs_bits_at(level, row);
            if max >= INF_BITS {
                let col = row.iter().position(|x| !x.is_finite()).unwrap_or(0);
                return Err(EncodeFault {
                    row: r,
                    col,
                    msg: format!("{} is not a finite number", row[col]),
                });
            }
            let scale = scale_of_max(f32::from_bits(max));
            simd::quantize_at(level, row, scale, bytemuck_i8_mut(code));
            scales[r * 4..r * 4 + 4].copy_from_slice(&scale.to_le_bytes());
        }
        Ok(())
    }

    fn rejects_non_finite(&self) -> bool {
        true
    }

    fn decode_row(&self, payload: &[u8], rows: usize, row: usize, out: &mut [f32]) {
        let d = self.dims;
        let codes = &payload[row * d..(row + 1) * d];
        let s = rows * d + row * 4;
        let scale =
            f32::from_le_bytes([payload[s], payload[s + 1], payload[s + 2], payload[s + 3]]);
        simd::dequantize(bytemuck_i8(codes), scale, out);
    }

    fn first_non_finite_row(
        &self,
        payload: &[u8],
        rows: usize,
        _scratch: &mut Vec<f32>,
    ) -> Option<usize> {
        // A row decodes to code × scale with |code| ≤ 128: finite exactly when its scale is
        // finite and at most f32::MAX / 128. The scales alone answer, without decoding.
        const MAX_SCALE: f32 = f32::MAX / 128.0;
        payload[rows * self.dims..rows * self.dims + rows * 4]
            .chunks_exact(4)
            .position(|b| {
                let s = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                s.is_nan() || s.abs() > MAX_SCALE
            })
    }

    fn prefetch_row(&self, payload: &[u8], rows: usize, row: usize) {
        let d = self.dims;
        // The codes (one line, or more for wide rows) and the scale, far away at the end.
        for at in (row * d..(row + 1) * d).step_by(64) {
            super::prefetch(payload, at);
        }
        super::prefetch(payload, rows * d + row * 4);
    }
}

fn bytemuck_i8(b: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size, alignment and validity (every bit pattern).
    unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<i8>(), b.len()) }
}

fn bytemuck_i8_mut(b: &mut [u8]) -> &mut [i8] {
    // SAFETY: as above; the borrow is unique for the returned lifetime.
    unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr().cast::<i8>(), b.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::harness::round_trip;
    use proptest::prelude::*;

    /// The reference rounding, written the slow obvious way.
    fn rint(x: f32) -> f32 {
        let r = x.round();
        if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
            r - x.signum()
        } else {
            r
        }
    }

    #[test]
    fn ties_round_half_to_even() {
        // max 127 gives scale 1.0 exactly, so v/scale == v and ties are exact.
        let row = [127.0f32, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5];
        let mut q = [0i8; 8];
        crate::simd::int8::quantize_scalar(&row, row_scale(&row), &mut q);
        assert_eq!(q, [127, 0, 2, 2, 0, -2, -2, 126]);
    }

    #[test]
    fn zero_row_has_unit_scale() {
        let codec = Int8::new(3);
        let out = round_trip(&codec, &[0.0, -0.0, 0.0]);
        assert_eq!(out, [0.0, 0.0, 0.0]);
        assert_eq!(row_scale(&[0.0, -0.0, 0.0]), 1.0);
    }

    #[test]
    fn subnormal_row_whose_scale_underflows_decodes_to_zero() {
        let tiny = f32::from_bits(1);
        let row = [tiny, -tiny];
        assert_eq!(row_scale(&row), 0.0);
        let out = round_trip(&Int8::new(2), &row);
        assert_eq!(out, [0.0, 0.0]);
    }

    /// `|v − v'| <= scale/2 × (1 + 254·ε)`, ε = 2⁻²³: half a step, plus float rounding.
    /// With `u = ε/2`: `fl(v/scale)` is off by at most `127u` steps before rounding, and
    /// `fl(q × scale)` by at most `127u × scale`, so the slack is `254u × scale`, a relative
    /// `3.03·10⁻⁵` of the half step (a tolerance of `10⁻⁶` failed on a random row).
    fn within_bound(v: f32, back: f32, scale: f32) -> bool {
        let err = (f64::from(v) - f64::from(back)).abs();
        err <= f64::from(scale) / 2.0 * (1.0 + 254.0 * f64::from(f32::EPSILON))
    }

    #[test]
    fn error_bound_allows_for_rounding_of_the_product() {
        // Found by proptest: 0.32598728 lands 3.5e-6 of a half step beyond scale/2.
        let row = [
            3.287003e-1f32,
            2.4993616e-1,
            1.6271979e-1,
            3.25431e-1,
            4.8994535e-1,
            -3.4191495e-1,
            4.3939322e-1,
            -4.180081e-1,
            3.2598728e-1,
        ];
        let out = round_trip(&Int8::new(row.len()), &row);
        let scale = row_scale(&row);
        assert!(
            (row[8] - out[8]).abs() > scale / 2.0,
            "no longer the edge case"
        );
        for (&v, &b) in row.iter().zip(&out) {
            assert!(within_bound(v, b, scale), "{v} -> {b}");
        }
    }

    proptest! {
        #[test]
        fn matches_slow_reference_and_error_bound(
            dims in 1usize..40,
            rows in 1usize..6,
            mag in -30i32..30,
            seed in any::<u64>(),
        ) {
            let mut rng = crate::test_rng::Rng(seed | 1);
            let data: Vec<f32> = (0..dims * rows).map(|_| rng.centred() * 2f32.powi(mag)).collect();
            let codec = Int8::new(dims);
            let out = round_trip(&codec, &data);
            for (r, row) in data.chunks(dims).enumerate() {
                let scale = row_scale(row);
                for (c, &v) in row.iter().enumerate() {
                    // Through i8, as numpy's astype(int8): a code of -0.0 decodes to +0.0.
                    let q = rint(v / scale).clamp(-127.0, 127.0) as i8;
                    let want = f32::from(q) * scale;
                    prop_assert_eq!(out[r * dims + c].to_bits(), want.to_bits());
                    prop_assert!(within_bound(v, out[r * dims + c], scale));
                }
            }
        }
    }
}
