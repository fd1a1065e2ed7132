//! aarch64 NEON int4 kernel: the quantize-and-pack of one row's codes. `fmul` by `1/s` as
//! the reference, clamped to ±7, then `fcvtns` (`vcvtnq_s32_f32`) rounds to nearest, ties
//! to even, as the reference's magic-number rounding does. The `fit` search's kernels
//! have no NEON path yet; they run the scalar references on aarch64.

// The value intrinsics are safe to call inside a NEON `#[target_feature]` function on
// recent toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the
// file builds on both, and this keeps the newer toolchains from calling the blocks unused.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;

/// The int4 codes of `row` at scale `s` (with `1/s` finite), packed into `out`
/// (`ceil(row.len() / 2)` bytes), 16 values into 8 bytes per step.
#[target_feature(enable = "neon")]
pub(super) fn quantize_pack(row: &[f32], s: f32, out: &mut [u8]) {
    let src = row.chunks_exact(16);
    let (body, tail) = out.split_at_mut(row.len() / 16 * 8);
    let rest = src.remainder();
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let vinv = vdupq_n_f32(1.0 / s);
        let (lo, hi) = (vdupq_n_f32(-7.0), vdupq_n_f32(7.0));
        let low = vdupq_n_u8(0x0f);
        for (x, o) in src.zip(body.chunks_exact_mut(8)) {
            let mut q = [vdupq_n_s32(0); 4];
            for (k, q) in q.iter_mut().enumerate() {
                // SAFETY: `x` has 16 floats, so 4 from offset 4k are in bounds.
                let v = unsafe { vld1q_f32(x.as_ptr().add(4 * k)) };
                *q = vcvtnq_s32_f32(vminq_f32(vmaxq_f32(vmulq_f32(v, vinv), lo), hi));
            }
            // Within ±7, so the narrowing never saturates.
            let a = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
            let b = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
            let codes = vandq_u8(
                vreinterpretq_u8_s8(vcombine_s8(vqmovn_s16(a), vqmovn_s16(b))),
                low,
            );
            // Each u16 lane holds an even code in its low byte and the next odd code in
            // its high byte; `w | w >> 4` brings the odd one into bits 4..8 of the low byte.
            let w = vreinterpretq_u16_u8(codes);
            let packed = vmovn_u16(vorrq_u16(w, vshrq_n_u16::<4>(w)));
            // SAFETY: `o` has exactly 8 bytes.
            unsafe { vst1_u8(o.as_mut_ptr(), packed) };
        }
    }
    super::quantize_pack_scalar(rest, s, tail);
}
