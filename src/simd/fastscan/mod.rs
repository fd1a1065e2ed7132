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
//!
//! [`block_scan`] computes the same sums and compares each block's 32 with a threshold per
//! query that a [`BlockSink`] gives before the block (in registers on AVX2 and AVX-512,
//! the latter two pairs per 512-bit shuffle), reporting only
//! the rows at or above it: a search's top-k floor keeps almost every row in the kernel.

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

/// What a threshold scan ([`block_scan`]) does with each query's rows that reach the
/// query's threshold: the scan asks for a threshold before each block and reports the
/// block's rows at or above it, so that almost no row leaves the kernel.
///
/// For each query the calls come in block order, `threshold(q, b)` before the
/// `hits(q, b, …)` of the same block (if any row reaches it); calls of different queries
/// may interleave. A threshold may depend on the hits reported before it.
pub trait BlockSink {
    /// The least sum of query `q` whose rows of block `b` are reported (0: all of them).
    fn threshold(&mut self, q: usize, b: usize) -> u16;
    /// Rows of block `b` whose sums for query `q` reach its threshold: bit `i` of `mask`
    /// is row `32b + i`, and `sums[i]` its sum (all 32 of the block's sums, as
    /// [`block_scores`] gives them).
    fn hits(&mut self, q: usize, b: usize, mask: u32, sums: &[u16; BLOCK_ROWS]);
}

/// [`block_scores`] with a threshold per query and block from `sink`, reporting to it
/// only the rows whose sums reach it (see [`BlockSink`]), at the detected level. The
/// sums are [`block_scores`]'s, bit for bit.
///
/// # Panics
/// If `luts` or `blocks` is not a whole number of `pairs × 32` bytes.
pub fn block_scan<S: BlockSink>(luts: &[u8], pairs: usize, blocks: &[u8], sink: &mut S) {
    block_scan_at(Level::detect(), luts, pairs, blocks, sink)
}

/// [`block_scan`] at a given level; a level this CPU lacks runs the scalar reference.
/// Levels without a threshold kernel of their own (NEON) run their [`block_scores`]
/// kernel one block and query at a time.
///
/// # Panics
/// As [`block_scan`].
pub fn block_scan_at<S: BlockSink>(
    level: Level,
    luts: &[u8],
    pairs: usize,
    blocks: &[u8],
    sink: &mut S,
) {
    check_scan(luts, pairs, blocks);
    if pairs == 0 {
        return block_scan_scalar(luts, pairs, blocks, sink);
    }
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F + BW (the
        // Avx512 level), and `check_scan` proved the shapes the kernel relies on:
        // `pairs > 0`, whole queries and blocks of `pairs × 32` bytes.
        unsafe { x86::block_scan_avx512(luts, pairs, blocks, sink) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (every x86 level
        // at or above Avx2 includes it), and `check_scan` proved the shapes the kernel
        // relies on: `pairs > 0`, whole queries and blocks of `pairs × 32` bytes.
        unsafe { x86::block_scan_avx2(luts, pairs, blocks, sink) };
        return;
    }
    if level == Level::Scalar || !level.runs_here() {
        return block_scan_scalar(luts, pairs, blocks, sink);
    }
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let mut sums = [0u16; BLOCK_ROWS];
    for (q, lut) in luts.chunks_exact(bb).enumerate() {
        for (b, block) in blocks.chunks_exact(bb).enumerate() {
            block_scores_at(level, lut, pairs, block, &mut sums);
            report(q, b, &sums, sink);
        }
    }
}

/// Asks `sink` for query `q`'s threshold of block `b` and reports the rows of `sums`
/// that reach it.
#[inline(always)]
fn report<S: BlockSink>(q: usize, b: usize, sums: &[u16; BLOCK_ROWS], sink: &mut S) {
    let t = sink.threshold(q, b);
    let mask = sums
        .iter()
        .enumerate()
        .fold(0u32, |m, (i, &v)| m | (u32::from(v >= t) << i));
    if mask != 0 {
        sink.hits(q, b, mask, sums);
    }
}

/// The scalar reference of [`block_scan`]: [`block_scores_scalar`]'s sums, a query at a
/// time, block by block.
///
/// # Panics
/// As [`block_scan`].
pub fn block_scan_scalar<S: BlockSink>(luts: &[u8], pairs: usize, blocks: &[u8], sink: &mut S) {
    check_scan(luts, pairs, blocks);
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    if bb == 0 {
        return;
    }
    let mut sums = [0u16; BLOCK_ROWS];
    for (q, lut) in luts.chunks_exact(bb).enumerate() {
        for (b, block) in blocks.chunks_exact(bb).enumerate() {
            block_scores_scalar(lut, pairs, block, &mut sums);
            report(q, b, &sums, sink);
        }
    }
}

fn check_scan(luts: &[u8], pairs: usize, blocks: &[u8]) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    if bb == 0 {
        assert!(luts.is_empty() && blocks.is_empty(), "block_scan: no pairs");
        return;
    }
    assert!(
        luts.len().is_multiple_of(bb) && blocks.len().is_multiple_of(bb),
        "block_scan: ragged tables or blocks"
    );
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

    /// One recorded block of a query: block, threshold, mask, sums (zero without hits).
    type Call = (usize, u16, u32, [u16; BLOCK_ROWS]);

    /// A sink whose threshold rises with what it was told (each query's best sum so far
    /// less a margin, 0 and 65535 now and then), and that records every call by query.
    struct Recorder {
        best: Vec<u16>,
        margin: u16,
        calls: Vec<Vec<Call>>,
        pending: Vec<Option<(usize, u16)>>,
    }

    impl BlockSink for Recorder {
        fn threshold(&mut self, q: usize, b: usize) -> u16 {
            let t = match b % 7 {
                3 => 0,
                5 => u16::MAX,
                _ => self.best[q].saturating_sub(self.margin),
            };
            // A block without hits is recorded with an empty mask.
            if let Some((pb, pt)) = self.pending[q].replace((b, t)) {
                self.calls[q].push((pb, pt, 0, [0; BLOCK_ROWS]));
            }
            t
        }

        fn hits(&mut self, q: usize, b: usize, mask: u32, sums: &[u16; BLOCK_ROWS]) {
            let (pb, t) = self.pending[q].take().expect("hits without a threshold");
            assert_eq!(pb, b, "hits of another block than the threshold's");
            self.calls[q].push((b, t, mask, *sums));
            for (i, &v) in sums.iter().enumerate() {
                if mask >> i & 1 == 1 {
                    self.best[q] = self.best[q].max(v);
                }
            }
        }
    }

    /// Every level's threshold scan makes the scalar reference's calls, query by query
    /// (the thresholds depending on the hits before them), and the reference reports
    /// exactly the rows whose [`block_scores_scalar`] sums reach the threshold.
    #[test]
    fn every_level_scans_as_the_reference_and_the_sums() {
        let mut rng = Rng(0x5ca7_7e5d);
        for (pairs, rows, nq, max, margin) in [
            (1usize, 1usize, 1usize, 256u64, 0u16),
            (3, 31, 3, 256, 40),
            (48, 300, 5, 256, 300),
            (48, 1000, 4, 6, 3),
            (7, 2730, 2, 256, 100),
            (48, 700, 7, 256, 300),
            (2, 65, 11, 256, 20),
            (200, 70, 3, 256, 65535),
        ] {
            let codes: Vec<u8> = (0..rows * pairs).map(|_| rng.below(256) as u8).collect();
            let luts: Vec<u8> = (0..nq * pairs * 32).map(|_| rng.below(max) as u8).collect();
            let nb = rows.div_ceil(BLOCK_ROWS);
            let mut blocks = vec![0u8; nb * pairs * 32];
            pack_blocks(&codes, pairs, &mut blocks);
            let mut sums = vec![0u16; nq * nb * BLOCK_ROWS];
            block_scores_scalar(&luts, pairs, &blocks, &mut sums);
            let run = |level: Option<Level>| {
                let mut r = Recorder {
                    best: vec![0; nq],
                    margin,
                    calls: vec![Vec::new(); nq],
                    pending: vec![None; nq],
                };
                match level {
                    Some(l) => block_scan_at(l, &luts, pairs, &blocks, &mut r),
                    None => block_scan_scalar(&luts, pairs, &blocks, &mut r),
                }
                for q in 0..nq {
                    if let Some((b, t)) = r.pending[q].take() {
                        r.calls[q].push((b, t, 0, [0; BLOCK_ROWS]));
                    }
                }
                r.calls
            };
            let want = run(None);
            for (q, calls) in want.iter().enumerate() {
                assert_eq!(calls.len(), nb, "one threshold per block");
                for (b, &(cb, t, mask, got)) in calls.iter().enumerate() {
                    assert_eq!(cb, b);
                    let row = &sums[(q * nb + b) * BLOCK_ROWS..][..BLOCK_ROWS];
                    let m = (0..BLOCK_ROWS).fold(0u32, |m, i| m | (u32::from(row[i] >= t) << i));
                    assert_eq!(mask, m, "{pairs} pairs, query {q}, block {b}");
                    if mask != 0 {
                        assert_eq!(&got[..], row);
                    }
                }
            }
            for level in Level::available() {
                assert_eq!(
                    run(Some(level)),
                    want,
                    "{level:?}: {pairs} pairs, {rows} rows"
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
