//! aarch64 NEON fast-scan (`vqtbl1q_u8`). The caller checked the CPU features and the
//! shapes (see [`super::block_scores_at`]).
//!
//! Per block of 32 rows and per pair of sub-quantizers: one load of the block's 32 code
//! bytes (16 for sub-quantizer `2p`, 16 for `2p + 1`), their low nibbles (rows `i`) and
//! high nibbles (rows `16 + i`), and per query four 16-entry table lookups. The two
//! sub-quantizers' bytes of a row are added widened to `u16` (`vaddl_u8`) into four
//! accumulators of eight rows each, with wrapping adds: the scalar reference's sums
//! modulo 2¹⁶, bit for bit.

// The value intrinsics are safe inside a NEON `#[target_feature]` function on recent
// toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the file
// builds on both.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;

use super::{BLOCK_BYTES_PER_PAIR, BLOCK_ROWS};

/// Queries sharing each load of a block's codes (16 accumulators of the 32 registers).
const GROUP: usize = 4;

/// [`super::block_scores_scalar`] with NEON.
///
/// # Safety
/// The CPU must have NEON; `pairs > 0`, `luts` and `blocks` whole multiples of
/// `pairs × 32` bytes, `out` of `queries × blocks × 32` entries.
#[target_feature(enable = "neon")]
pub(super) unsafe fn block_scores_neon(luts: &[u8], pairs: usize, blocks: &[u8], out: &mut [u16]) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let rows = blocks.len() / bb * BLOCK_ROWS;
    let nq = luts.len() / bb;
    let mut q = 0;
    while q < nq {
        let g = (nq - q).min(GROUP);
        let (l, o) = (&luts[q * bb..][..g * bb], &mut out[q * rows..][..g * rows]);
        // SAFETY: NEON is present (our precondition); the slices hold `g` queries.
        unsafe {
            match g {
                4 => group::<4>(l, pairs, blocks, o),
                3 => group::<3>(l, pairs, blocks, o),
                2 => group::<2>(l, pairs, blocks, o),
                _ => group::<1>(l, pairs, blocks, o),
            }
        }
        q += g;
    }
}

/// The scores of `G` queries (`luts`: `G × pairs × 32` bytes) over every block, into
/// `out` (`G × rows`).
///
/// # Safety
/// NEON; shapes as [`block_scores_neon`] with exactly `G` queries.
#[target_feature(enable = "neon")]
unsafe fn group<const G: usize>(luts: &[u8], pairs: usize, blocks: &[u8], out: &mut [u16]) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let rows = blocks.len() / bb * BLOCK_ROWS;
    debug_assert!(luts.len() == G * bb && out.len() == G * rows);
    // SAFETY: NEON is present; every pointer below stays within its slice, as noted.
    unsafe {
        let nibble = vdupq_n_u8(0x0f);
        for (b, block) in blocks.chunks_exact(bb).enumerate() {
            // Per query: rows 0..8, 8..16 (low nibbles), 16..24, 24..32 (high nibbles).
            let mut acc = [[vdupq_n_u16(0); 4]; G];
            for p in 0..pairs {
                // `block` has `pairs × 32` bytes: the 32 from `32p` are in bounds.
                let c0 = vld1q_u8(block.as_ptr().add(32 * p));
                let c1 = vld1q_u8(block.as_ptr().add(32 * p + 16));
                let (lo0, hi0) = (vandq_u8(c0, nibble), vshrq_n_u8::<4>(c0));
                let (lo1, hi1) = (vandq_u8(c1, nibble), vshrq_n_u8::<4>(c1));
                for (g, a) in acc.iter_mut().enumerate() {
                    // `luts` has `G × pairs × 32` bytes; query `g`'s pair `p` is the 32
                    // from `g × bb + 32p`.
                    let t = luts.as_ptr().add(g * bb + 32 * p);
                    let (t0, t1) = (vld1q_u8(t), vld1q_u8(t.add(16)));
                    let lo = (vqtbl1q_u8(t0, lo0), vqtbl1q_u8(t1, lo1));
                    let hi = (vqtbl1q_u8(t0, hi0), vqtbl1q_u8(t1, hi1));
                    a[0] = vaddq_u16(a[0], vaddl_u8(vget_low_u8(lo.0), vget_low_u8(lo.1)));
                    a[1] = vaddq_u16(a[1], vaddl_high_u8(lo.0, lo.1));
                    a[2] = vaddq_u16(a[2], vaddl_u8(vget_low_u8(hi.0), vget_low_u8(hi.1)));
                    a[3] = vaddq_u16(a[3], vaddl_high_u8(hi.0, hi.1));
                }
            }
            for (g, a) in acc.iter().enumerate() {
                // `out` has `G × rows` entries; this block's 32 of query `g` start at
                // `g × rows + 32b`.
                let dst = out.as_mut_ptr().add(g * rows + b * BLOCK_ROWS);
                for (j, v) in a.iter().enumerate() {
                    vst1q_u16(dst.add(8 * j), *v);
                }
            }
        }
    }
}
