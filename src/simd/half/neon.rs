//! aarch64 NEON float32 → f16 / bf16 kernels (see [`super`]), 8 values per step. Each
//! returns the index of the first value whose 16-bit form is not finite; tails run the
//! scalar reference.
//!
//! f16 uses `fcvtn`/`fcvtn2`, part of baseline AdvSIMD: it rounds by the FPCR mode (round
//! to nearest even unless a program changed it), keeps subnormal results unless flush to
//! zero is set (it is not, on Linux), and gives ±Inf on overflow, as `half` does. Its
//! intrinsic needs Rust's unstable `f16` type, so it is two `asm!` instructions. bf16
//! rounds with integer adds, as the x86 kernels do.

// The value intrinsics are safe to call inside a NEON `#[target_feature]` function on
// recent toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the
// file builds on both, and this keeps the newer toolchains from calling the blocks unused.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;
use std::arch::asm;

use super::{bf16_scalar, f16_scalar};

/// The first lane of `mask` (each u16 lane all ones or all zeros) that is set, if any.
#[inline]
#[target_feature(enable = "neon")]
fn first_set(mask: uint16x8_t) -> Option<usize> {
    // SAFETY: NEON is enabled for this function; these intrinsics only touch registers.
    // Narrowing `lane >> 4` to 8 bits leaves 0xff or 0 per lane, 8 bits each in a u64.
    let bits = unsafe { vget_lane_u64::<0>(vreinterpret_u64_u8(vshrn_n_u16::<4>(mask))) };
    (bits != 0).then(|| bits.trailing_zeros() as usize / 8)
}

/// f16 with `fcvtn`: an f16 exponent of all ones is NaN or ±Inf, whether the input was one
/// or overflowed.
#[target_feature(enable = "neon")]
pub(super) fn f16(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    let mut s = src.chunks_exact(8);
    let mut d = dst.chunks_exact_mut(16);
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let exp = vdupq_n_u16(0x7c00);
        for (i, (x, o)) in (&mut s).zip(&mut d).enumerate() {
            // SAFETY: `x` has 8 floats: 4 at offset 0 and 4 at offset 4.
            let (a, b) = unsafe { (vld1q_f32(x.as_ptr()), vld1q_f32(x.as_ptr().add(4))) };
            let h: uint16x8_t;
            // SAFETY: baseline AdvSIMD instructions that read and write only these
            // registers; `h` is an `out` (not `lateout`) operand, so it is not given the
            // register of `b`, which the first instruction would overwrite before the
            // second reads it.
            unsafe {
                asm!(
                    "fcvtn {h:v}.4h, {a:v}.4s",
                    "fcvtn2 {h:v}.8h, {b:v}.4s",
                    h = out(vreg) h,
                    a = in(vreg) a,
                    b = in(vreg) b,
                    options(pure, nomem, nostack, preserves_flags),
                );
            }
            if let Some(lane) = first_set(vceqq_u16(vandq_u16(h, exp), exp)) {
                return Some(8 * i + lane);
            }
            // SAFETY: `o` has exactly 16 bytes; aarch64 is little-endian, so these are
            // the halves' LE bytes.
            unsafe { vst1q_u8(o.as_mut_ptr(), vreinterpretq_u8_u16(h)) };
        }
    }
    let base = src.len() - s.remainder().len();
    f16_scalar(s.remainder(), d.into_remainder()).map(|i| base + i)
}

/// bf16 by integer rounding, `(x + 0x7fff + lsb) >> 16`: bad if the input's exponent is
/// all ones (NaN, Inf; a NaN can round to anything) or the rounded one is (overflow).
#[target_feature(enable = "neon")]
pub(super) fn bf16(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    let mut s = src.chunks_exact(8);
    let mut d = dst.chunks_exact_mut(16);
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let (exp, bexp) = (vdupq_n_u32(0x7f80_0000), vdupq_n_u32(0x7f80));
        let (half, one) = (vdupq_n_u32(0x7fff), vdupq_n_u32(1));
        let round = |v: uint32x4_t| -> (uint32x4_t, uint32x4_t) {
            let lsb = vandq_u32(vshrq_n_u32::<16>(v), one);
            let h = vshrq_n_u32::<16>(vaddq_u32(vaddq_u32(v, half), lsb));
            let bad = vorrq_u32(
                vceqq_u32(vandq_u32(v, exp), exp),
                vceqq_u32(vandq_u32(h, bexp), bexp),
            );
            (h, bad)
        };
        for (i, (x, o)) in (&mut s).zip(&mut d).enumerate() {
            // SAFETY: `x` has 8 floats: 4 at offset 0 and 4 at offset 4.
            let (a, b) = unsafe {
                (
                    vld1q_u32(x.as_ptr().cast()),
                    vld1q_u32(x.as_ptr().add(4).cast()),
                )
            };
            let ((ha, ba), (hb, bb)) = (round(a), round(b));
            let bad = vcombine_u16(vmovn_u32(ba), vmovn_u32(bb));
            if let Some(lane) = first_set(bad) {
                return Some(8 * i + lane);
            }
            // The rounded values are below 2^16, so narrowing keeps them whole.
            let h = vcombine_u16(vmovn_u32(ha), vmovn_u32(hb));
            // SAFETY: `o` has exactly 16 bytes (little-endian halves, as above).
            unsafe { vst1q_u8(o.as_mut_ptr(), vreinterpretq_u8_u16(h)) };
        }
    }
    let base = src.len() - s.remainder().len();
    bf16_scalar(s.remainder(), d.into_remainder()).map(|i| base + i)
}
