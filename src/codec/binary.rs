//! Binary: one sign bit per dimension plus one f32 scale per row.
//!
//! Payload of a block of `n` rows: `n × ceil(dims/8)` bytes of sign bits (row-major; bit
//! `j` of byte `i`, least significant first, is dimension `8i + j`; 1 means `v >= 0`,
//! so both zeros count as non-negative; unused high bits of the last byte are 0), then `n`
//! f32 scales. The reconstruction is `+scale` or `−scale`.
//!
//! Why `scale = mean|v|`: for fixed signs `s`, the squared error `||v − c·s||²` is a
//! parabola in `c` with its minimum at `c = <v, s> / dims = Σ|v| / dims`. It is computed
//! in f64 and stored as f32, so the reconstruction is exactly `sign × float32(mean|v|)`.

use super::{Codec, CodecId, CodecSpec, EncodeFault, read_f32};

/// The sign-bit codec.
#[derive(Debug, Clone)]
pub struct Binary {
    dims: usize,
}

impl Binary {
    /// A binary codec for `dims`-dimensional vectors.
    pub fn new(dims: usize) -> Self {
        Binary { dims }
    }

    fn row_bytes(&self) -> usize {
        self.dims.div_ceil(8)
    }
}

/// The scale of one row: `mean|v|`, rounded once to f32.
pub fn row_scale(row: &[f32]) -> f32 {
    crate::simd::binary::row_scale_scalar(row)
}

impl Codec for Binary {
    fn name(&self) -> String {
        "binary".into()
    }

    fn spec(&self) -> CodecSpec {
        CodecSpec {
            id: CodecId::Binary,
            params: Vec::new(),
        }
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn encoded_len(&self, rows: usize) -> usize {
        rows * (self.row_bytes() + 4)
    }

    fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault> {
        let (d, rb) = (self.dims, self.row_bytes());
        let rows = input.len() / d;
        let (bits, scales) = out.split_at_mut(rows * rb);
        for (r, (row, b)) in input
            .chunks_exact(d)
            .zip(bits.chunks_exact_mut(rb))
            .enumerate()
        {
            let scale = crate::simd::binary::encode_row(row, b);
            scales[r * 4..r * 4 + 4].copy_from_slice(&scale.to_le_bytes());
        }
        Ok(())
    }

    fn decode_row(&self, payload: &[u8], rows: usize, row: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        let bits = &payload[row * rb..(row + 1) * rb];
        let scale = read_f32(payload, rows * rb + row * 4);
        for (eight, &byte) in out.chunks_mut(8).zip(bits) {
            for (j, o) in eight.iter_mut().enumerate() {
                *o = if (byte >> j) & 1 == 1 { scale } else { -scale };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::harness::round_trip;

    #[test]
    fn reconstruction_is_sign_times_mean_abs() {
        let row = [1.0f32, -3.0, 0.0, -0.0, 2.0, -1.0, 5.0, 0.5, -0.5];
        let codec = Binary::new(9);
        let mut payload = vec![0u8; codec.encoded_len(1)];
        codec.encode(&row, &mut payload).unwrap();
        assert_eq!(payload[..2], [0b1101_1101, 0b0000_0000]);
        let m = (13.0f64 / 9.0) as f32;
        let out = round_trip(&codec, &row);
        let want: Vec<f32> = row.iter().map(|&x| if x >= 0.0 { m } else { -m }).collect();
        assert_eq!(out, want);
    }

    #[test]
    fn mean_abs_minimises_squared_error() {
        let row = [0.3f32, -1.2, 2.5, 0.01, -0.7];
        let m = row_scale(&row);
        let err = |c: f32| -> f32 { row.iter().map(|&x| (x.abs() - c).powi(2)).sum() };
        assert!(err(m) <= err(m * 1.01) && err(m) <= err(m * 0.99));
    }
}
