//! IEEE half precision: 2 bytes per dimension, round-to-nearest-even (the `half` crate,
//! which uses the F16C instructions when the CPU has them).
//!
//! Payload of a block of `n` rows: `n × dims` u16 LE bit patterns, row-major. A value whose
//! magnitude rounds past 65504 would become ±Inf: that is an error naming the row, not a
//! silent Inf. Bound: `|v − v'| <= max(|v| × 2⁻¹¹, 2⁻²⁵)` (half an ulp; the second term
//! is half the subnormal spacing).

use std::cell::RefCell;

use half::slice::HalfFloatSliceExt;

use super::{Codec, CodecId, CodecSpec, EncodeFault};

/// A 16-bit float format from the `half` crate.
pub trait HalfKind: Copy + Default + Send + Sync + std::fmt::Debug + 'static {
    /// Registry id.
    const ID: CodecId;
    /// `--codec` name.
    const NAME: &'static str;
    /// The largest finite magnitude, for error messages.
    const MAX: f32;
    /// Widens a row exactly.
    fn to_f32_slice(src: &[Self], dst: &mut [f32]);
    /// Converts a row into LE payload bytes; the index of the first value that is not a
    /// finite 16-bit float, if any (then `dst` is unspecified).
    fn encode_le(src: &[f32], dst: &mut [u8]) -> Option<usize>;
}

impl HalfKind for half::f16 {
    const ID: CodecId = CodecId::F16;
    const NAME: &'static str = "f16";
    const MAX: f32 = 65504.0;
    fn to_f32_slice(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst);
    }
    fn encode_le(src: &[f32], dst: &mut [u8]) -> Option<usize> {
        crate::simd::half::f32_to_f16_le(src, dst)
    }
}

/// A 2-byte float codec; see [`F16`] and [`super::Bf16`].
#[derive(Debug, Clone)]
pub struct Half<H> {
    dims: usize,
    _kind: std::marker::PhantomData<H>,
}

/// The IEEE half-precision codec.
pub type F16 = Half<half::f16>;

impl<H: HalfKind> Half<H> {
    /// A codec for `dims`-dimensional vectors.
    pub fn new(dims: usize) -> Self {
        Half {
            dims,
            _kind: std::marker::PhantomData,
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

impl<H: HalfKind> Codec for Half<H> {
    fn name(&self) -> String {
        H::NAME.into()
    }

    fn spec(&self) -> CodecSpec {
        CodecSpec {
            id: H::ID,
            params: Vec::new(),
        }
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn encoded_len(&self, rows: usize) -> usize {
        rows * self.dims * 2
    }

    fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault> {
        let d = self.dims;
        for (r, (row, o)) in input
            .chunks_exact(d)
            .zip(out.chunks_exact_mut(2 * d))
            .enumerate()
        {
            // NaN and ±Inf stay what they are, and too large a value becomes ±Inf: the
            // kernel finds all three as it converts (the caller names NaN/Inf as such).
            if let Some(col) = H::encode_le(row, o) {
                return Err(EncodeFault {
                    row: r,
                    col,
                    msg: format!(
                        "{} does not fit {} (largest finite magnitude {}); use {} or int8",
                        row[col],
                        H::NAME,
                        H::MAX,
                        if H::NAME == "f16" {
                            "bf16"
                        } else {
                            "a float32 store"
                        }
                    ),
                });
            }
        }
        Ok(())
    }

    fn rejects_non_finite(&self) -> bool {
        true
    }

    fn row_major(&self) -> bool {
        true
    }

    fn decode_row(&self, payload: &[u8], _rows: usize, row: usize, out: &mut [f32]) {
        let d = self.dims;
        let bytes = &payload[row * 2 * d..(row + 1) * 2 * d];
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.clear();
            s.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]])),
            );
            // The payload may sit at any byte offset of the file, so the bits are copied
            // out (aligned) before the widening kernel reads them.
            let halves = bits_as::<H>(&s);
            H::to_f32_slice(halves, out);
        });
    }
}

/// Views u16 bit patterns as a 16-bit float type.
fn bits_as<H: HalfKind>(bits: &[u16]) -> &[H] {
    const { assert!(std::mem::size_of::<H>() == 2 && std::mem::align_of::<H>() == 2) };
    // SAFETY: H is f16 or bf16, both `repr(transparent)` over u16 (size and alignment
    // checked above), and every u16 is a valid bit pattern of either.
    unsafe { std::slice::from_raw_parts(bits.as_ptr().cast::<H>(), bits.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::harness::round_trip;

    #[test]
    fn rounds_half_to_even() {
        // 1 + 2⁻¹¹ is halfway between 1 and 1 + 2⁻¹⁰: ties go to the even mantissa (1.0);
        // 1 + 3·2⁻¹¹ is halfway between 1 + 2⁻¹⁰ and 1 + 2⁻⁹: ties go to 1 + 2⁻⁹.
        let row = [
            1.0 + 2f32.powi(-11),
            1.0 + 3.0 * 2f32.powi(-11),
            65504.0,
            1e-8,
        ];
        let out = round_trip(&F16::new(4), &row);
        assert_eq!(out, [1.0, 1.0 + 2f32.powi(-9), 65504.0, 0.0]);
    }

    #[test]
    fn overflow_names_the_row() {
        let codec = F16::new(2);
        let mut payload = vec![0u8; codec.encoded_len(2)];
        let f = codec
            .encode(&[1.0, 2.0, 3.0, 65520.0], &mut payload)
            .unwrap_err();
        assert_eq!((f.row, f.col), (1, 1));
        assert!(f.msg.contains("65504"), "{}", f.msg);
        // 65519 still rounds down to 65504.
        codec
            .encode(&[1.0, 2.0, 3.0, 65519.0], &mut payload)
            .unwrap();
    }
}
