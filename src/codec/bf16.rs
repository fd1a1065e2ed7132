//! bfloat16: the top 16 bits of a float32 (8-bit exponent, 7-bit mantissa), rounded to
//! nearest even (the `half` crate's rounding, which `simd::half` reproduces bit for bit). Same range as float32, so only values within half an
//! ulp of `f32::MAX` overflow (an error naming the row); less precise than f16.
//!
//! Payload: `n × dims` u16 LE bit patterns. Bound: `|v − v'| <= |v| × 2⁻⁸` for normal
//! values, and `<= 2⁻¹³⁴` in the subnormal range.

use half::slice::HalfFloatSliceExt;

use super::CodecId;
use super::f16::{Half, HalfKind};

/// The bfloat16 codec.
pub type Bf16 = Half<half::bf16>;

impl HalfKind for half::bf16 {
    const ID: CodecId = CodecId::Bf16;
    const NAME: &'static str = "bf16";
    const MAX: f32 = 3.389_531_4e38;
    fn to_f32_slice(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    fn encode_le(src: &[f32], dst: &mut [u8]) -> Option<usize> {
        crate::simd::half::f32_to_bf16_le(src, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::codec::harness::round_trip;

    #[test]
    fn rounds_half_to_even() {
        // 1 + 2⁻⁸ is halfway between 1 and 1 + 2⁻⁷: ties to even (1.0); 1 + 3·2⁻⁸ goes to
        // 1 + 2⁻⁶; 1 + 2⁻⁸ + 2⁻²⁰ is past halfway and rounds up.
        let row = [
            1.0 + 2f32.powi(-8),
            1.0 + 3.0 * 2f32.powi(-8),
            1.0 + 2f32.powi(-8) + 2f32.powi(-20),
            1e30,
        ];
        let out = round_trip(&Bf16::new(4), &row);
        assert_eq!(out[..3], [1.0, 1.0 + 2f32.powi(-6), 1.0 + 2f32.powi(-7)]);
        assert!((out[3] - 1e30).abs() <= 1e30 * 2f32.powi(-8));
    }

    #[test]
    fn overflow_near_f32_max_names_the_row() {
        let codec = Bf16::new(1);
        let mut payload = vec![0u8; codec.encoded_len(3)];
        let f = codec
            .encode(&[1.0, -2.0, -f32::MAX], &mut payload)
            .unwrap_err();
        assert_eq!((f.row, f.col), (2, 0));
    }
}
