//! aarch64 NEON sign-bit kernels: XOR + `cnt` (`vcntq_u8`) on 16 bytes at a time, the
//! per-byte counts added pairwise into u16 lanes (`vpadalq_u8`) and summed across the
//! vector once per row. Tails shorter than 16 bytes run the scalar body; integer counts
//! are exact, so the result is the reference's.
//!
//! The blocked scan ([`scan_blocks_neon`]): per block of 32 rows and byte position, four
//! 16-byte loads of the block's nibbles (rows 0–15 low and high, rows 16–31 low and high)
//! serve [`super::SCAN_QUERIES`] queries, each with two table registers for the position
//! (low-nibble and high-nibble counts) and four 16-entry lookups (`vqtbl1q_u8`), a row's
//! two nibble counts added into one byte. A byte gains at most 8 a position, so after a
//! run of at most 31 positions the bytes are widened into `u16` distances (`vaddw_u8`).
//! The distances are compared with each query's bound in registers and only a mask of
//! the rows below it leaves the kernel. Integer arithmetic throughout: the distances are
//! the scalar reference's.

// The value intrinsics are safe to call inside a NEON `#[target_feature]` function on
// recent toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the
// file builds on both, and this keeps the newer toolchains from calling the blocks unused.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;

use super::{DistSink, SCAN_BLOCK_BYTES, SCAN_QUERIES, SCAN_ROWS, SCAN_TABLE_BYTES, hamming_body};

/// 16-byte blocks added into one u16 accumulator before it is summed: each block adds at
/// most 16 to a lane (two bytes of 8 bits), so 2048 blocks stay below 2^15 (4096 would
/// reach 2^16 and wrap).
const FLUSH: usize = 2048;

/// [`super::hamming_rows_scalar`] with NEON. `q` is `row_bytes` long and `out` has an entry
/// for every row of `codes` (the dispatcher checked both).
#[target_feature(enable = "neon")]
pub(super) fn hamming_rows(q: &[u8], codes: &[u8], row_bytes: usize, out: &mut [u32]) {
    if row_bytes == 0 {
        return;
    }
    for (row, o) in codes.chunks_exact(row_bytes).zip(out.iter_mut()) {
        *o = hamming(q, row);
    }
}

/// `popcount(a XOR b)` over two slices of the same length.
#[target_feature(enable = "neon")]
fn hamming(a: &[u8], b: &[u8]) -> u32 {
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let tail = hamming_body(ca.remainder(), cb.remainder());
        let mut total = 0u32;
        let mut acc = vdupq_n_u16(0);
        for (k, (x, y)) in ca.zip(cb).enumerate() {
            // SAFETY: `x` and `y` have exactly 16 bytes each.
            let (vx, vy) = unsafe { (vld1q_u8(x.as_ptr()), vld1q_u8(y.as_ptr())) };
            acc = vpadalq_u8(acc, vcntq_u8(veorq_u8(vx, vy)));
            if k % FLUSH == FLUSH - 1 {
                total += vaddlvq_u16(acc);
                acc = vdupq_n_u16(0);
            }
        }
        total + vaddlvq_u16(acc) + tail
    }
}

/// Byte positions of the blocked scan counted in `u8` lanes before they are widened: each
/// adds at most 8 (two nibbles' counts), and 31 × 8 = 248 fits a byte.
const RUN: usize = 31;

/// [`super::scan_blocks_scalar`] with NEON.
///
/// # Safety
/// The CPU must have NEON; `0 < row_bytes ≤ 4095`, `tables` and `blocks` whole multiples
/// of `row_bytes × 32` and `row_bytes × 64` bytes, `rows` within the last block (as
/// `super::check_scan` checks).
#[target_feature(enable = "neon")]
pub(super) unsafe fn scan_blocks_neon<S: DistSink>(
    tables: &[u8],
    row_bytes: usize,
    blocks: &[u8],
    rows: usize,
    sink: &mut S,
) {
    let tb = row_bytes * SCAN_TABLE_BYTES;
    let nq = tables.len() / tb;
    let mut q = 0;
    while q + SCAN_QUERIES <= nq {
        let t = &tables[q * tb..][..SCAN_QUERIES * tb];
        // SAFETY: NEON is present (our precondition); `t` has `SCAN_QUERIES` queries.
        unsafe { group::<SCAN_QUERIES, S>(t, q, row_bytes, blocks, rows, sink) };
        q += SCAN_QUERIES;
    }
    let t = &tables[q * tb..];
    // SAFETY: as above, with the remaining queries (fewer than `SCAN_QUERIES`).
    unsafe {
        match nq - q {
            3 => group::<3, S>(t, q, row_bytes, blocks, rows, sink),
            2 => group::<2, S>(t, q, row_bytes, blocks, rows, sink),
            1 => group::<1, S>(t, q, row_bytes, blocks, rows, sink),
            _ => {}
        }
    }
}

/// Bit `i` of each 8-row quarter's mask byte.
const ROW_BITS: [u8; 8] = [1, 2, 4, 8, 16, 32, 64, 128];

/// [`scan_blocks_neon`] for the `G` queries from `q0` (`tables`: theirs).
///
/// # Safety
/// NEON; shapes as [`scan_blocks_neon`] with exactly `G` queries.
#[target_feature(enable = "neon")]
unsafe fn group<const G: usize, S: DistSink>(
    tables: &[u8],
    q0: usize,
    row_bytes: usize,
    blocks: &[u8],
    rows: usize,
    sink: &mut S,
) {
    let (tb, bb) = (row_bytes * SCAN_TABLE_BYTES, row_bytes * SCAN_BLOCK_BYTES);
    debug_assert!(tables.len() == G * tb && blocks.len().is_multiple_of(bb));
    let mut dists = [0u16; SCAN_ROWS];
    // SAFETY: NEON is present (our precondition); every pointer below stays within its
    // slice, as noted at each access.
    unsafe {
        // SAFETY: `ROW_BITS` has 8 bytes.
        let row_bits = vld1_u8(ROW_BITS.as_ptr());
        for (b, block) in blocks.chunks_exact(bb).enumerate() {
            // Per query, the `u16` distances of rows 0–7, 8–15, 16–23 and 24–31.
            let mut tot = [[vdupq_n_u16(0); 4]; G];
            let mut p0 = 0;
            while p0 < row_bytes {
                let p1 = (p0 + RUN).min(row_bytes);
                // Per query, the byte counts of rows 0–15 and 16–31 over this run.
                let mut acc = [[vdupq_n_u8(0); 2]; G];
                for p in p0..p1 {
                    // SAFETY: `block` has `row_bytes × 64` bytes, so the 64 from `64p` are
                    // in bounds; `vld1q_u8` needs no alignment.
                    let at = block.as_ptr().add(p * SCAN_BLOCK_BYTES);
                    let (lo0, hi0) = (vld1q_u8(at), vld1q_u8(at.add(16)));
                    let (lo1, hi1) = (vld1q_u8(at.add(32)), vld1q_u8(at.add(48)));
                    for (g, a) in acc.iter_mut().enumerate() {
                        // SAFETY: `tables` has `G × row_bytes × 32` bytes; query `g`'s
                        // position `p` is the 32 from `g × tb + 32p`.
                        let t = tables.as_ptr().add(g * tb + p * SCAN_TABLE_BYTES);
                        let (tlo, thi) = (vld1q_u8(t), vld1q_u8(t.add(16)));
                        // Nibbles are below 16, so every lookup hits the table.
                        let r0 = vaddq_u8(vqtbl1q_u8(tlo, lo0), vqtbl1q_u8(thi, hi0));
                        let r1 = vaddq_u8(vqtbl1q_u8(tlo, lo1), vqtbl1q_u8(thi, hi1));
                        a[0] = vaddq_u8(a[0], r0);
                        a[1] = vaddq_u8(a[1], r1);
                    }
                }
                for (t, a) in tot.iter_mut().zip(&acc) {
                    t[0] = vaddw_u8(t[0], vget_low_u8(a[0]));
                    t[1] = vaddw_high_u8(t[1], a[0]);
                    t[2] = vaddw_u8(t[2], vget_low_u8(a[1]));
                    t[3] = vaddw_high_u8(t[3], a[1]);
                }
                p0 = p1;
            }
            let valid = super::valid_rows(b, rows);
            for (g, t) in tot.iter().enumerate() {
                let bound = sink.bound(q0 + g, b);
                if bound == 0 {
                    continue;
                }
                // Distances are at most 8 × 4095, so the unsigned compare is exact; each
                // quarter's lanes (all ones or zero) narrowed to bytes and masked with the
                // row bits add up to that quarter's mask byte.
                let bound = vdupq_n_u16(bound);
                let mut mask = 0u32;
                for (j, &v) in t.iter().enumerate() {
                    let below = vmovn_u16(vcltq_u16(v, bound));
                    mask |= u32::from(vaddv_u8(vand_u8(below, row_bits))) << (8 * j);
                }
                let mask = mask & valid;
                if mask != 0 {
                    for (j, &v) in t.iter().enumerate() {
                        // SAFETY: `dists` has 32 entries, the 8 from `8j` (j < 4) in
                        // bounds; `vst1q_u16` needs no alignment.
                        vst1q_u16(dists.as_mut_ptr().add(8 * j), v);
                    }
                    sink.hits(q0 + g, b, mask, &dists);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Level, hamming_rows_at};

    /// Rows long enough that one u16 accumulator would wrap (every bit differs, so each
    /// lane gains 16 per 16-byte block and reaches 2^16 after 4096 blocks), and rows at the
    /// flush boundary: the count must still be `8 × row_bytes`.
    #[test]
    fn long_rows_count_past_the_u16_lanes() {
        let f = 16 * super::FLUSH;
        for row_bytes in [f - 1, f, f + 17, 2 * f, 16 * 4096, 16 * 4096 + 3, 150_001] {
            let q = vec![0xffu8; row_bytes];
            let codes = vec![0u8; 2 * row_bytes];
            let mut got = [0u32; 2];
            hamming_rows_at(Level::Neon, &q, &codes, row_bytes, &mut got);
            assert_eq!(got, [8 * row_bytes as u32; 2], "{row_bytes} bytes");
        }
    }
}
