//! x86-64 sign-bit kernels: `popcnt` on 8-byte words, and the AVX2 blocked scan.
//!
//! AVX-512 VPOPCNTDQ would count 64 bytes per instruction, but a 384-d row is 48 bytes
//! (six words), and the CPUs this was written on lack it, so it is not here.
//!
//! The blocked scan ([`scan_blocks_avx2`]): per block of 32 rows and byte position, two
//! loads of the block's nibbles (rows 0–15 and 16–31, low nibbles in the low 128-bit lane
//! and high nibbles in the high one) serve [`super::SCAN_QUERIES`] queries, each with two
//! shuffles of its table register for the position (`vpshufb`: 32 nibble counts at once)
//! added as bytes. A byte gains at most 4 a position, so after a run of at most 63
//! positions the bytes are widened to `u16` and the two lanes (a row's low and high
//! nibbles) added. The sums are compared with each query's bound in registers and only
//! a mask of the rows below it leaves the kernel. Integer arithmetic throughout: the
//! distances are the scalar reference's.

use std::arch::x86_64::*;

use super::{DistSink, SCAN_BLOCK_BYTES, SCAN_QUERIES, SCAN_ROWS, SCAN_TABLE_BYTES, hamming_body};

/// [`super::hamming_rows_scalar`] compiled with `popcnt`.
#[target_feature(enable = "popcnt")]
pub(super) fn hamming_rows_popcnt(q: &[u8], codes: &[u8], row_bytes: usize, out: &mut [u32]) {
    if row_bytes == 0 {
        return;
    }
    for (row, o) in codes.chunks_exact(row_bytes).zip(out.iter_mut()) {
        *o = hamming_body(q, row);
    }
}

/// Byte positions counted in `u8` lanes before they are widened: each adds at most 4.
const RUN: usize = 63;

/// [`super::scan_blocks_scalar`] with AVX2.
///
/// # Safety
/// The CPU must have AVX2; `0 < row_bytes ≤ 4095`, `tables` and `blocks` whole multiples
/// of `row_bytes × 32` and `row_bytes × 64` bytes, `rows` within the last block (as
/// `super::check_scan` checks).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn scan_blocks_avx2<S: DistSink>(
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
        // SAFETY: AVX2 is present (our precondition); `t` has `SCAN_QUERIES` queries.
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

/// [`scan_blocks_avx2`] for the `G` queries from `q0` (`tables`: theirs).
///
/// # Safety
/// AVX2; shapes as [`scan_blocks_avx2`] with exactly `G` queries.
#[target_feature(enable = "avx2")]
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
    for (b, block) in blocks.chunks_exact(bb).enumerate() {
        // Per query, the `u16` distances of rows 0–15 and 16–31.
        let mut tot = [[_mm256_setzero_si256(); 2]; G];
        let mut p0 = 0;
        while p0 < row_bytes {
            let p1 = (p0 + RUN).min(row_bytes);
            let mut acc = [[_mm256_setzero_si256(); 2]; G];
            for p in p0..p1 {
                // SAFETY: `block` has `row_bytes × 64` bytes, so the 64 from `64p` are in
                // bounds; loadu needs no alignment.
                let (c0, c1) = unsafe {
                    let at = block.as_ptr().add(p * SCAN_BLOCK_BYTES);
                    (
                        _mm256_loadu_si256(at.cast()),
                        _mm256_loadu_si256(at.add(32).cast()),
                    )
                };
                for (g, a) in acc.iter_mut().enumerate() {
                    // SAFETY: `tables` has `G × row_bytes × 32` bytes; query `g`'s
                    // position `p` is the 32 from `g × tb + 32p`.
                    let t = unsafe {
                        _mm256_loadu_si256(
                            tables.as_ptr().add(g * tb + p * SCAN_TABLE_BYTES).cast(),
                        )
                    };
                    a[0] = _mm256_add_epi8(a[0], _mm256_shuffle_epi8(t, c0));
                    a[1] = _mm256_add_epi8(a[1], _mm256_shuffle_epi8(t, c1));
                }
            }
            for (t, a) in tot.iter_mut().zip(&acc) {
                for (t, &a) in t.iter_mut().zip(a) {
                    // A row's low-nibble counts (low lane) plus its high-nibble ones.
                    let lo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(a));
                    let hi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(a));
                    *t = _mm256_add_epi16(*t, _mm256_add_epi16(lo, hi));
                }
            }
            p0 = p1;
        }
        let valid = super::valid_rows(b, rows);
        for (g, t) in tot.iter().enumerate() {
            // Distances are at most 8 × 4095 < 2¹⁵ − 1, so a bound clamped to that and a
            // signed compare are the unsigned compare.
            let bound = sink.bound(q0 + g, b).min(i16::MAX as u16);
            let bound = _mm256_set1_epi16(bound as i16);
            let below = _mm256_packs_epi16(
                _mm256_cmpgt_epi16(bound, t[0]),
                _mm256_cmpgt_epi16(bound, t[1]),
            );
            // The pack interleaves the 8-row quarters (0–7, 16–23, 8–15, 24–31).
            let below = _mm256_permute4x64_epi64::<0b11_01_10_00>(below);
            let mask = _mm256_movemask_epi8(below) as u32 & valid;
            if mask != 0 {
                // SAFETY: `dists` has 32 entries, 16 from 0 and from 16 in bounds; storeu
                // needs no alignment.
                unsafe {
                    _mm256_storeu_si256(dists.as_mut_ptr().cast(), t[0]);
                    _mm256_storeu_si256(dists.as_mut_ptr().add(16).cast(), t[1]);
                }
                sink.hits(q0 + g, b, mask, &dists);
            }
        }
    }
}
