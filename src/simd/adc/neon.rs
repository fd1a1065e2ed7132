//! aarch64 NEON kernel of [`super::block_sums`]: a row's [`Lanes`] are four 128-bit
//! vectors, and rows go two at a time (eight dependent-add chains in flight); each lane
//! still adds its subspaces in order from the row's stored sum with a plain IEEE add
//! (`vaddq_f32`, never fused), so the bits are the scalar reference's.
//!
//! The caller checks the CPU features and the shapes: `tables` holds `m × 2^NB` vectors,
//! `subspaces` lies within `0..m`, `codes` holds `out.len()` rows of `cb` bytes.

// The value intrinsics are safe inside a NEON `#[target_feature]` function on recent
// toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the file
// builds on both.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;
use std::ops::Range;

use super::Lanes;

/// Rows summed side by side.
const ROWS: usize = 2;

/// The code of subspace `s` of the row at `code`.
///
/// # Safety
/// `code` points at a row of `cb` bytes and `s < m`.
#[inline(always)]
unsafe fn code_at<const NB: u8>(code: *const u8, s: usize) -> usize {
    if NB == 8 {
        // SAFETY: `s < m = cb` bytes into the row.
        unsafe { *code.add(s) as usize }
    } else {
        // SAFETY: `s / 2 < ⌈m/2⌉ = cb` bytes into the row.
        let b = unsafe { *code.add(s / 2) };
        ((b >> (4 * (s % 2))) & 0xf) as usize
    }
}

/// # Safety
/// The CPU has NEON; shapes as the module says.
#[target_feature(enable = "neon")]
pub(super) unsafe fn sums<const NB: u8>(
    tables: &[Lanes],
    codes: &[u8],
    subspaces: Range<usize>,
    cb: usize,
    out: &mut [Lanes],
) {
    let mut groups = out.chunks_exact_mut(ROWS);
    let mut row = 0;
    for g in &mut groups {
        // SAFETY: rows `row..row + ROWS` exist in `codes` and `out`.
        unsafe { rows::<NB, ROWS>(tables, codes, row, subspaces.clone(), cb, g) };
        row += ROWS;
    }
    for o in groups.into_remainder().chunks_exact_mut(1) {
        // SAFETY: as above, one row.
        unsafe { rows::<NB, 1>(tables, codes, row, subspaces.clone(), cb, o) };
        row += 1;
    }
}

/// Rows `first..first + R` into `out` (`R` vectors of 16 lanes, four quarters each).
///
/// # Safety
/// As [`sums`], and those rows exist.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn rows<const NB: u8, const R: usize>(
    tables: &[Lanes],
    codes: &[u8],
    first: usize,
    subspaces: Range<usize>,
    cb: usize,
    out: &mut [Lanes],
) {
    let ksub = 1usize << NB;
    let t = tables.as_ptr();
    // SAFETY: row `first` starts inside `codes` (rows `first..first + R` exist).
    let c = unsafe { codes.as_ptr().add(first * cb) };
    let mut acc: [[float32x4_t; 4]; R] = std::array::from_fn(|r| {
        let p = out[r].0.as_ptr();
        // SAFETY: `out` holds `R` vectors of 16 floats: 4 at offsets 0, 4, 8 and 12.
        unsafe { std::array::from_fn(|h| vld1q_f32(p.add(4 * h))) }
    });
    for s in subspaces {
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: `s < m` and row `first + r` exists, so the code is below `ksub` and
            // entry `s × ksub + code` is one of the `m × ksub` vectors of 16 floats.
            let p: *const f32 = unsafe {
                let j = code_at::<NB>(c.add(r * cb), s);
                t.add(s * ksub + j).cast()
            };
            for (h, v) in a.iter_mut().enumerate() {
                // SAFETY: `p` points at 16 floats; 4 from offset 4h are in bounds.
                *v = unsafe { vaddq_f32(*v, vld1q_f32(p.add(4 * h))) };
            }
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        let p = o.0.as_mut_ptr();
        for (h, v) in a.into_iter().enumerate() {
            // SAFETY: `o` holds 16 floats; 4 from offset 4h are in bounds.
            unsafe { vst1q_f32(p.add(4 * h), v) };
        }
    }
}
