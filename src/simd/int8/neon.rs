//! aarch64 NEON int8 kernels. Callers check for NEON first and pass slices of equal length;
//! tails run the scalar reference. `vcvtnq_s32_f32` rounds to nearest, ties to even, as
//! the reference's `rint`; values are clamped to ±127 first, so narrowing never saturates.
//!
//! The agreement tests in `simd::int8` run it under qemu-user (`scripts/test_aarch64.sh`).

// The value intrinsics are safe to call inside a NEON `#[target_feature]` function on
// recent toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the
// file builds on both, and this keeps the newer toolchains from calling the blocks unused.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;

use super::{dequantize_scalar, max_abs_bits_scalar, quantize_scalar, reduce16};

/// `max(bits(x) & 0x7fff_ffff)` over `row`, as an integer (see
/// [`super::max_abs_bits_scalar`]).
#[target_feature(enable = "neon")]
pub(super) fn max_abs_bits(row: &[f32]) -> u32 {
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let mask = vdupq_n_u32(0x7fff_ffff);
        let mut acc = [vdupq_n_u32(0); 4];
        let mut blocks = row.chunks_exact(16);
        for b in &mut blocks {
            for (k, a) in acc.iter_mut().enumerate() {
                // SAFETY: `b` has 16 floats, so 4 from offset 4k are in bounds.
                let x = unsafe { vld1q_u32(b.as_ptr().add(4 * k).cast()) };
                *a = vmaxq_u32(*a, vandq_u32(x, mask));
            }
        }
        let m = vmaxq_u32(vmaxq_u32(acc[0], acc[1]), vmaxq_u32(acc[2], acc[3]));
        vmaxvq_u32(m).max(max_abs_bits_scalar(blocks.remainder()))
    }
}

/// Quantizes `row` (finite) with `scale` (finite, non-zero) into `out` (same length).
#[target_feature(enable = "neon")]
pub(super) fn quantize(row: &[f32], scale: f32, out: &mut [i8]) {
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let s = vdupq_n_f32(scale);
        let (lo, hi) = (vdupq_n_f32(-127.0), vdupq_n_f32(127.0));
        let mut src = row.chunks_exact(16);
        let mut dst = out.chunks_exact_mut(16);
        for (x, o) in (&mut src).zip(&mut dst) {
            let mut q = [vdupq_n_s32(0); 4];
            for (k, q) in q.iter_mut().enumerate() {
                // SAFETY: `x` has 16 floats, so 4 from offset 4k are in bounds.
                let v = unsafe { vld1q_f32(x.as_ptr().add(4 * k)) };
                *q = vcvtnq_s32_f32(vminq_f32(vmaxq_f32(vdivq_f32(v, s), lo), hi));
            }
            let a = vcombine_s16(vqmovn_s32(q[0]), vqmovn_s32(q[1]));
            let b = vcombine_s16(vqmovn_s32(q[2]), vqmovn_s32(q[3]));
            let bytes = vcombine_s8(vqmovn_s16(a), vqmovn_s16(b));
            // SAFETY: `o` has exactly 16 bytes.
            unsafe { vst1q_s8(o.as_mut_ptr(), bytes) };
        }
        quantize_scalar(src.remainder(), scale, dst.into_remainder());
    }
}

/// `out[j] = f32(codes[j]) * scale`, slices of the same length.
#[target_feature(enable = "neon")]
pub(super) fn dequantize(codes: &[i8], scale: f32, out: &mut [f32]) {
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let mut src = codes.chunks_exact(8);
        let mut dst = out.chunks_exact_mut(8);
        for (c, o) in (&mut src).zip(&mut dst) {
            // SAFETY: `c` has exactly 8 bytes.
            let w = vmovl_s8(unsafe { vld1_s8(c.as_ptr()) });
            let a = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w))), scale);
            let b = vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(w)), scale);
            // SAFETY: `o` has exactly 8 floats.
            unsafe {
                vst1q_f32(o.as_mut_ptr(), a);
                vst1q_f32(o.as_mut_ptr().add(4), b);
            }
        }
        dequantize_scalar(src.remainder(), scale, dst.into_remainder());
    }
}

/// `(Σ q_j · c_j, Σ c_j²)` with NEON (see [`super::dot_codes_scalar`], whose bits it
/// gives): 16 codes a step, widened to i32 and converted to float, multiplied then added
/// (`vmulq` then `vaddq`, never a fused multiply-add) into four 4-lane sums, lanes
/// `j mod 16`, folded by the reference's `reduce16`; the squares by widening multiplies
/// (`vmull_s8`, exact in i16: at most 128²) added pairwise into i32 lanes (`vpadalq_s16`).
/// `q` and `codes` have the same length.
#[target_feature(enable = "neon")]
pub(super) fn dot_codes(q: &[f32], codes: &[i8]) -> (f32, i32) {
    let n = q.len().min(codes.len());
    let body = n / 16 * 16;
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        let mut sq = vdupq_n_s32(0);
        for (qb, cb) in q[..body]
            .chunks_exact(16)
            .zip(codes[..body].chunks_exact(16))
        {
            // SAFETY: `cb` has exactly 16 codes.
            let x = unsafe { vld1q_s8(cb.as_ptr()) };
            let (lo, hi) = (vmovl_s8(vget_low_s8(x)), vmovl_high_s8(x));
            let c = [
                vmovl_s16(vget_low_s16(lo)),
                vmovl_high_s16(lo),
                vmovl_s16(vget_low_s16(hi)),
                vmovl_high_s16(hi),
            ];
            for (k, (a, c)) in acc.iter_mut().zip(c).enumerate() {
                // SAFETY: `qb` has 16 floats, so 4 from offset 4k are in bounds.
                let qv = unsafe { vld1q_f32(qb.as_ptr().add(4 * k)) };
                *a = vaddq_f32(*a, vmulq_f32(qv, vcvtq_f32_s32(c)));
            }
            sq = vpadalq_s16(sq, vmull_s8(vget_low_s8(x), vget_low_s8(x)));
            sq = vpadalq_s16(sq, vmull_high_s8(x, x));
        }
        let mut lanes = [0f32; 16];
        for (k, a) in acc.iter().enumerate() {
            // SAFETY: `lanes` has 16 floats, so 4 from offset 4k are in bounds.
            unsafe { vst1q_f32(lanes.as_mut_ptr().add(4 * k), *a) };
        }
        let mut s = reduce16(&lanes);
        let mut total = vaddvq_s32(sq);
        for j in body..n {
            s += q[j] * f32::from(codes[j]);
            total += i32::from(codes[j]) * i32::from(codes[j]);
        }
        (s, total)
    }
}
