//! aarch64 NEON kernel of the finiteness check. Callers check for NEON first; tails
//! shorter than one block run the scalar reference.

// The value intrinsics are safe to call inside a NEON `#[target_feature]` function on
// recent toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the
// file builds on both, and this keeps the newer toolchains from calling the blocks unused.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;

/// Whether any value is NaN or ±Inf: an exponent field of all ones.
#[target_feature(enable = "neon")]
pub(super) fn any_non_finite(data: &[f32]) -> bool {
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let exp = vdupq_n_u32(0x7f80_0000);
        let mut acc = [vdupq_n_u32(0); 2];
        let mut blocks = data.chunks_exact(8);
        for b in &mut blocks {
            for (k, a) in acc.iter_mut().enumerate() {
                // SAFETY: `b` has 8 floats, so 4 from offset 4k are in bounds.
                let x = unsafe { vld1q_u32(b.as_ptr().add(4 * k).cast()) };
                *a = vorrq_u32(*a, vceqq_u32(vandq_u32(x, exp), exp));
            }
        }
        vmaxvq_u32(vorrq_u32(acc[0], acc[1])) != 0
            || super::any_non_finite_scalar(blocks.remainder())
    }
}
