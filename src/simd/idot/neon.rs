//! aarch64 NEON integer dot kernels. Tails shorter than one vector run the scalar
//! reference; integer sums are exact, so every path gives the reference's result.
//!
//! - Baseline NEON: `smull`/`smlal2` multiply 16 byte pairs into eight i16 sums of two
//!   products (at most `2 × 127 × 127 = 32258`, so no i16 wraps for values within ±127),
//!   and `sadalp` (`vpadalq_s16`) adds adjacent i16 pairs into the i32 accumulator.
//! - With the `dotprod` extension (Armv8.2+, detected at run time): `sdot` adds four byte
//!   products straight into each i32 lane. Its intrinsic is not stable Rust yet, so it is
//!   one `asm!` instruction.

// The value intrinsics are safe to call inside a NEON `#[target_feature]` function on
// recent toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the
// file builds on both, and this keeps the newer toolchains from calling the blocks unused.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;
use std::arch::asm;

use super::{dot_scalar, unpack_i4_scalar};

/// Whether this CPU has the `dotprod` extension (`sdot`); std caches the answer.
pub(super) fn has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

/// [`super::dot_rows_scalar`] with NEON: `sdot` where the CPU has it, else the baseline.
/// `q` is not empty and `out` has an entry for every row (the dispatcher checked both).
#[target_feature(enable = "neon")]
pub(super) fn dot_rows(q: &[i8], codes: &[i8], out: &mut [i32]) {
    let rows = codes.chunks_exact(q.len()).zip(out.iter_mut());
    if has_dotprod() {
        for (row, o) in rows {
            // SAFETY: `dotprod` was detected at run time just above; NEON by the caller.
            *o = unsafe { dot_sdot(q, row) };
        }
    } else {
        for (row, o) in rows {
            *o = dot_neon(q, row);
        }
    }
}

/// `Σ q[j] · x[j]` over equal-length slices of values in `[-127, 127]`, baseline NEON.
#[target_feature(enable = "neon")]
pub(super) fn dot_neon(q: &[i8], x: &[i8]) -> i32 {
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let mut acc = [vdupq_n_s32(0); 2];
        let (qb, xb) = (q.chunks_exact(32), x.chunks_exact(32));
        let (qr, xr) = (qb.remainder(), xb.remainder());
        for (a, b) in qb.zip(xb) {
            for (h, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `a` and `b` have 32 bytes, so 16 from offset 16h are in bounds.
                let (va, vb) = unsafe {
                    (
                        vld1q_s8(a.as_ptr().add(16 * h)),
                        vld1q_s8(b.as_ptr().add(16 * h)),
                    )
                };
                *acc = pair_dot(*acc, va, vb);
            }
        }
        let (q16, x16) = (qr.chunks_exact(16), xr.chunks_exact(16));
        let (qt, xt) = (q16.remainder(), x16.remainder());
        for (a, b) in q16.zip(x16) {
            // SAFETY: 16 bytes each.
            let (va, vb) = unsafe { (vld1q_s8(a.as_ptr()), vld1q_s8(b.as_ptr())) };
            acc[0] = pair_dot(acc[0], va, vb);
        }
        vaddvq_s32(vaddq_s32(acc[0], acc[1])) + dot_scalar(qt, xt)
    }
}

/// `acc` plus the 16 products `a · b`, added in adjacent pairs twice (i16, then i32).
#[inline]
#[target_feature(enable = "neon")]
fn pair_dot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    // SAFETY: NEON is enabled for this function; these intrinsics only touch registers.
    unsafe {
        let p = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let p = vmlal_high_s8(p, a, b);
        vpadalq_s16(acc, p)
    }
}

/// `Σ q[j] · x[j]` over equal-length slices, with `sdot`.
#[target_feature(enable = "neon,dotprod")]
pub(super) fn dot_sdot(q: &[i8], x: &[i8]) -> i32 {
    // SAFETY: NEON and dotprod are enabled for this function; every pointer access is
    // bounds-checked by the slice it comes from, as noted at each one.
    unsafe {
        let mut acc = [vdupq_n_s32(0); 4];
        let (qb, xb) = (q.chunks_exact(64), x.chunks_exact(64));
        let (qr, xr) = (qb.remainder(), xb.remainder());
        for (a, b) in qb.zip(xb) {
            for (k, acc) in acc.iter_mut().enumerate() {
                // SAFETY: `a` and `b` have 64 bytes, so 16 from offset 16k are in bounds.
                let (va, vb) = unsafe {
                    (
                        vld1q_s8(a.as_ptr().add(16 * k)),
                        vld1q_s8(b.as_ptr().add(16 * k)),
                    )
                };
                *acc = sdot(*acc, va, vb);
            }
        }
        let (q16, x16) = (qr.chunks_exact(16), xr.chunks_exact(16));
        let (qt, xt) = (q16.remainder(), x16.remainder());
        for (a, b) in q16.zip(x16) {
            // SAFETY: 16 bytes each.
            let (va, vb) = unsafe { (vld1q_s8(a.as_ptr()), vld1q_s8(b.as_ptr())) };
            acc[0] = sdot(acc[0], va, vb);
        }
        let s = vaddq_s32(vaddq_s32(acc[0], acc[1]), vaddq_s32(acc[2], acc[3]));
        vaddvq_s32(s) + dot_scalar(qt, xt)
    }
}

/// `acc[i] + Σ_{k<4} a[4i+k] · b[4i+k]`: one `sdot`.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: the CPU has dotprod (this function's target feature, checked by every
    // caller's caller at run time); the instruction reads and writes only these registers.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// Unpacks `out.len()` nibbles of `packed` to sign-extended bytes, 32 at a time: the low
/// nibbles shifted up and arithmetically back down, the high ones shifted down, then
/// stored interleaved (`st2`), which puts them back in dimension order.
#[target_feature(enable = "neon")]
pub(super) fn unpack_i4(packed: &[u8], out: &mut [i8]) {
    let n = out.len() / 32;
    // SAFETY: NEON is enabled for this function; the bounds of each access are noted.
    unsafe {
        for i in 0..n {
            // SAFETY: 16 bytes from 16i hold nibbles 32i..32i+32 <= out.len() <=
            // 2·packed.len() (checked by the dispatcher).
            let v = unsafe { vld1q_s8(packed.as_ptr().add(16 * i).cast()) };
            let lo = vshrq_n_s8::<4>(vshlq_n_s8::<4>(v));
            let hi = vshrq_n_s8::<4>(v);
            // SAFETY: 32 bytes from 32i are within `out` (i < out.len() / 32).
            unsafe { vst2q_s8(out.as_mut_ptr().add(32 * i), int8x16x2_t(lo, hi)) };
        }
    }
    unpack_i4_scalar(&packed[16 * n..], &mut out[32 * n..]);
}

#[cfg(test)]
mod tests {
    //! The dispatcher runs one of the two dot paths; this runs both against the reference.
    use super::super::dot_scalar;
    use super::*;
    use crate::test_rng::Rng;

    #[test]
    fn both_dot_paths_give_the_reference_sums() {
        // The test stage runs under an emulated CPU with dotprod and sets this, so the sdot
        // path cannot go untested there by a failed detection.
        if std::env::var_os("VECTRO_EXPECT_DOTPROD").is_some() {
            assert!(
                has_dotprod(),
                "VECTRO_EXPECT_DOTPROD is set but dotprod is not detected"
            );
        }
        let mut rng = Rng(0xd07_9e0);
        for d in [
            1usize, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100, 384, 1000, 4099,
        ] {
            let q: Vec<i8> = (0..d)
                .map(|_| (rng.below(255) as i64 - 127) as i8)
                .collect();
            let x: Vec<i8> = (0..d)
                .map(|_| (rng.below(255) as i64 - 127) as i8)
                .collect();
            // Every product at +127² or every one at −127²: the i16 pair sums at their limits.
            let top: Vec<i8> = q.iter().map(|&a| if a < 0 { -127 } else { 127 }).collect();
            let neg: Vec<i8> = top.iter().map(|&a| -a).collect();
            for (a, b) in [(&q, &x), (&top, &top), (&top, &neg)] {
                let want = dot_scalar(a, b);
                // SAFETY: NEON is part of every aarch64 target Rust builds for.
                assert_eq!(unsafe { dot_neon(a, b) }, want, "neon, {d} dims");
                if has_dotprod() {
                    // SAFETY: dotprod was detected just above.
                    assert_eq!(unsafe { dot_sdot(a, b) }, want, "sdot, {d} dims");
                }
            }
        }
    }
}
