//! PQ 4-bit fast-scan: lookup tables of 8-bit integers held in registers, 32 rows per
//! shuffle, the approach of faiss's `IndexPQFastScan`.
//!
//! A row of `nbits = 4` PQ codes has `m` sub-quantizer codes of 4 bits, two per byte
//! (sub-quantizer `2p` in the low nibble of byte `p`, `2p + 1` in the high one). Each
//! query's table of a sub-quantizer has 16 entries: quantized to `u8`, it fills half a
//! 256-bit register, so one byte shuffle (`vpshufb`) looks up 32 codes at once. For that
//! the codes are repacked ([`pack_blocks`]) into blocks of [`BLOCK_ROWS`] rows:
//!
//! - block `b`, pair `p` (sub-quantizers `2p` and `2p + 1`) is 32 bytes: byte `i < 16`
//!   holds sub-quantizer `2p`'s codes of rows `32b + i` (low nibble) and `32b + 16 + i`
//!   (high nibble); byte `16 + i` the same for sub-quantizer `2p + 1`;
//! - a query's tables are laid out alike ([`BLOCK_BYTES_PER_PAIR`] bytes a pair: the 16
//!   entries of `2p`, then the 16 of `2p + 1`), so the register of pair `p` serves both
//!   halves of a 256-bit shuffle.
//!
//! [`block_scores`] then sums, per query and row, the `2 × pairs` table bytes its codes
//! select, in `u16` with wrapping adds. Integer arithmetic: every level gives the bits of
//! [`block_scores_scalar`]. The caller keeps the tables' sums below 65,536 (`m` entries
//! of at most `⌊65535 / m⌋`) when it wants true sums rather than sums modulo 2¹⁶; the
//! kernels are exact modulo 2¹⁶ either way. The AVX2 kernel accumulates the shuffled
//! bytes as `u16` words (a word holds two rows' bytes) and a copy shifted right by 8
//! (the odd rows'), and takes the even rows' sums as the difference at the end; the NEON
//! kernel looks up 16 codes per `vqtbl1q_u8` and widens each row's two bytes to `u16`.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// Rows per block: one 256-bit shuffle looks up a sub-quantizer pair's codes of 32 rows
/// (16 per 128-bit half, low and high nibbles).
pub const BLOCK_ROWS: usize = 32;

/// Bytes of one sub-quantizer pair in a block of codes, and in a query's tables.
pub const BLOCK_BYTES_PER_PAIR: usize = 32;

/// Repacks `codes` (rows of `pairs` bytes, as the pq codec writes 4-bit codes) into
/// blocks of [`BLOCK_ROWS`] rows in `out`; rows past the last (to fill the last block)
/// have all codes 0. `out` must hold `⌈rows / 32⌉ × pairs × 32` bytes.
///
/// # Panics
/// If `codes` is not a whole number of rows or `out` has the wrong length.
pub fn pack_blocks(codes: &[u8], pairs: usize, out: &mut [u8]) {
    if pairs == 0 {
        assert!(out.is_empty(), "pack_blocks: wrong output length");
        return;
    }
    assert!(
        codes.len().is_multiple_of(pairs),
        "pack_blocks: ragged codes"
    );
    let rows = codes.len() / pairs;
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    assert_eq!(
        out.len(),
        rows.div_ceil(BLOCK_ROWS) * bb,
        "pack_blocks: wrong output length"
    );
    let zero = vec![0u8; pairs];
    let row = |r: usize| codes.get(r * pairs..(r + 1) * pairs).unwrap_or(&zero);
    for (b, block) in out.chunks_exact_mut(bb).enumerate() {
        for i in 0..16 {
            let (lo, hi) = (row(b * BLOCK_ROWS + i), row(b * BLOCK_ROWS + 16 + i));
            for (p, pair) in block.chunks_exact_mut(BLOCK_BYTES_PER_PAIR).enumerate() {
                let (a, c) = (lo[p], hi[p]);
                pair[i] = (a & 0x0f) | (c << 4);
                pair[16 + i] = (a >> 4) | (c & 0xf0);
            }
        }
    }
}

/// `out[q × R + r] = Σ_p luts[q][p][code_{2p}(r)] + luts[q][p][16 + code_{2p+1}(r)]`
/// (wrapping `u16` adds) for every query `q` of `luts` (`pairs × 32` bytes each) and
/// every row `r` of the packed `blocks` (`R = blocks × 32` rows). At the detected level.
///
/// # Panics
/// If `luts` or `blocks` is not a whole number of `pairs × 32` bytes, or `out` does not
/// hold `queries × R` entries.
pub fn block_scores(luts: &[u8], pairs: usize, blocks: &[u8], out: &mut [u16]) {
    block_scores_at(Level::detect(), luts, pairs, blocks, out)
}

/// [`block_scores`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// As [`block_scores`].
pub fn block_scores_at(level: Level, luts: &[u8], pairs: usize, blocks: &[u8], out: &mut [u16]) {
    check(luts, pairs, blocks, out);
    if pairs == 0 {
        out.fill(0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (every x86 level
        // at or above Avx2 includes it), and `check` proved the shapes the kernel relies
        // on: whole queries and blocks of `pairs × 32` bytes, `out` of queries × rows.
        unsafe { x86::block_scores_avx2(luts, pairs, blocks, out) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has NEON, and `check`
        // proved the shapes the kernel relies on (as for x86 above).
        unsafe { neon::block_scores_neon(luts, pairs, blocks, out) };
        return;
    }
    let _ = level;
    block_scores_scalar(luts, pairs, blocks, out)
}

fn check(luts: &[u8], pairs: usize, blocks: &[u8], out: &[u16]) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    if bb == 0 {
        assert!(
            luts.is_empty() && blocks.is_empty(),
            "block_scores: no pairs"
        );
        return;
    }
    assert!(
        luts.len().is_multiple_of(bb) && blocks.len().is_multiple_of(bb),
        "block_scores: ragged tables or blocks"
    );
    let rows = blocks.len() / bb * BLOCK_ROWS;
    assert_eq!(
        out.len(),
        luts.len() / bb * rows,
        "block_scores: wrong output length"
    );
}

/// The scalar reference of [`block_scores`].
///
/// # Panics
/// As [`block_scores`].
pub fn block_scores_scalar(luts: &[u8], pairs: usize, blocks: &[u8], out: &mut [u16]) {
    check(luts, pairs, blocks, out);
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    if bb == 0 {
        out.fill(0);
        return;
    }
    let rows = blocks.len() / bb * BLOCK_ROWS;
    for (lut, out) in luts.chunks_exact(bb).zip(out.chunks_exact_mut(rows.max(1))) {
        for (b, block) in blocks.chunks_exact(bb).enumerate() {
            for i in 0..BLOCK_ROWS {
                let shift = if i < 16 { 0 } else { 4 };
                let mut sum = 0u16;
                for (t, c) in lut
                    .chunks_exact(BLOCK_BYTES_PER_PAIR)
                    .zip(block.chunks_exact(BLOCK_BYTES_PER_PAIR))
                {
                    let ca = (c[i % 16] >> shift) & 0x0f;
                    let cb = (c[16 + i % 16] >> shift) & 0x0f;
                    sum = sum
                        .wrapping_add(u16::from(t[usize::from(ca)]))
                        .wrapping_add(u16::from(t[16 + usize::from(cb)]));
                }
                out[b * BLOCK_ROWS + i] = sum;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// 4-bit code `s` of row `r` of row-major `codes` (`pairs` bytes a row).
    fn code(codes: &[u8], pairs: usize, r: usize, s: usize) -> usize {
        usize::from((codes[r * pairs + s / 2] >> (4 * (s % 2))) & 0x0f)
    }

    /// Every level agrees with the reference bit for bit, and the reference is the sum of
    /// each row's table entries taken straight from the row-major codes, for table bytes
    /// up to 255 (sums wrap modulo 2¹⁶ alike), odd row counts (a padded last block) and
    /// any number of queries and pairs.
    #[test]
    fn every_level_sums_as_the_reference_and_the_row_major_codes() {
        let mut rng = Rng(0xfa57_5ca2);
        for (pairs, rows, nq, max) in [
            (1usize, 1usize, 1usize, 256u64),
            (3, 31, 2, 256),
            (5, 33, 3, 256),
            (48, 100, 5, 256),
            (48, 64, 4, 5),
            (200, 70, 3, 256),
            (7, 2730, 2, 256),
        ] {
            let codes: Vec<u8> = (0..rows * pairs).map(|_| rng.below(256) as u8).collect();
            let luts: Vec<u8> = (0..nq * pairs * 32).map(|_| rng.below(max) as u8).collect();
            let nb = rows.div_ceil(BLOCK_ROWS);
            let mut blocks = vec![0u8; nb * pairs * 32];
            pack_blocks(&codes, pairs, &mut blocks);
            let padded = nb * BLOCK_ROWS;
            let mut want = vec![0u16; nq * padded];
            for q in 0..nq {
                let lut = &luts[q * pairs * 32..(q + 1) * pairs * 32];
                for r in 0..padded {
                    let mut sum = 0u16;
                    for s in 0..2 * pairs {
                        // Padding rows have code 0.
                        let c = if r < rows {
                            code(&codes, pairs, r, s)
                        } else {
                            0
                        };
                        let entry = lut[(s / 2) * 32 + (s % 2) * 16 + c];
                        sum = sum.wrapping_add(u16::from(entry));
                    }
                    want[q * padded + r] = sum;
                }
            }
            for level in Level::available() {
                let mut got = vec![u16::MAX; nq * padded];
                block_scores_at(level, &luts, pairs, &blocks, &mut got);
                assert_eq!(
                    got, want,
                    "{level:?}: {pairs} pairs, {rows} rows, {nq} queries"
                );
            }
        }
    }

    #[test]
    fn packing_puts_row_i_low_and_row_16_plus_i_high() {
        // Two pairs, 20 rows: row r's byte p is (r, p) packed into nibbles.
        let pairs = 2;
        let codes: Vec<u8> = (0..20u8)
            .flat_map(|r| [(r % 16) | (((r + 1) % 16) << 4), 0xff - r])
            .collect();
        let mut out = vec![0u8; pairs * 32];
        pack_blocks(&codes, pairs, &mut out);
        // Pair 0, sub-quantizer 0: row 3 low, row 19 high.
        assert_eq!(out[3], 3 | (3 << 4));
        // Pair 0, sub-quantizer 1: row 3's high nibble (4), row 19's (20 % 16 = 4).
        assert_eq!(out[16 + 3], 4 | (4 << 4));
        // Rows 20.. are padding: row 5 in the low nibble, zero in the high one.
        assert_eq!(out[32 + 5], (0xff - 5) & 0x0f);
        assert_eq!(out[32 + 16 + 5], (0xff - 5) >> 4);
    }
}
