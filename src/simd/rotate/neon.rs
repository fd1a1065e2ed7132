//! aarch64 NEON rotation: the two shortest Walsh–Hadamard stages inside one 128-bit
//! register, then the later stages and the normalisation as [`fwht_from`] runs them (their
//! contiguous pairs vectorise as they are; NEON is part of the aarch64 baseline).
//!
//! In a register `[x₀, x₁, x₂, x₃]`: stage 1 adds and subtracts the register and its
//! pairwise swap (`vrev64q_f32`) and keeps lanes 0 and 2 of each (`vtrn1q_f32`): `[x₀+x₁,
//! x₀−x₁, x₂+x₃, x₂−x₃]`; stage 2 does the same with the halves swapped (`vextq_f32`) and
//! keeps the low halves: `[a+c, b+d, a−c, b−d]`. Each output is the reference's add or
//! subtract of the same two values (`x₁+x₀` is `x₀+x₁`: IEEE addition commutes), so the
//! bits are [`super::fwht`]'s.

// The value intrinsics are safe inside a NEON `#[target_feature]` function on recent
// toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the file
// builds on both.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;

use super::{forward_with, fwht, fwht_from, inverse_with};

#[target_feature(enable = "neon")]
pub(super) fn forward(signs: &[f32], window: usize, row: &mut [f32]) {
    forward_with(signs, window, row, |x| fwht_neon(x))
}

#[target_feature(enable = "neon")]
pub(super) fn inverse(signs: &[f32], window: usize, row: &mut [f32]) {
    inverse_with(signs, window, row, |x| fwht_neon(x))
}

/// [`fwht`] with its first two stages in registers.
#[target_feature(enable = "neon")]
fn fwht_neon(x: &mut [f32]) {
    if x.len() < 4 {
        return fwht(x);
    }
    for q in x.chunks_exact_mut(4) {
        // SAFETY: `q` holds 4 floats, one 128-bit load and store.
        unsafe {
            let v = vld1q_f32(q.as_ptr());
            let p = vrev64q_f32(v);
            let r = vtrn1q_f32(vaddq_f32(v, p), vsubq_f32(v, p));
            let s = vextq_f32::<2>(r, r);
            let out = vcombine_f32(vget_low_f32(vaddq_f32(r, s)), vget_low_f32(vsubq_f32(r, s)));
            vst1q_f32(q.as_mut_ptr(), out);
        }
    }
    fwht_from(x, 4);
}
