//! Sign-bit search kernels: the Hamming distance (XOR + popcount) of a binary query to
//! rows of sign bits, and the asymmetric score of a float query against sign bits.
//!
//! Rows are the `binary` codec's layout: `row_bytes` bytes of sign bits per row, bit `j` of
//! byte `i` (least significant first) for dimension `8i + j`.
//!
//! - [`hamming_rows`]: `popcount(q XOR row)` per row; the scalar reference is
//!   [`hamming_rows_scalar`]. Integer arithmetic, so every level gives the same counts.
//!   x86-64 with `popcnt` runs one instruction per 8 bytes (the generic x86-64 build
//!   otherwise compiles `count_ones` to a dozen bit operations). aarch64 NEON counts 16
//!   bytes per `cnt` and sums the counts once per row.
//! - [`set_sums`]: `Σ_{bit i set} q_i` per row through per-byte tables ([`byte_tables`]:
//!   for each byte of the row, the 256 sums of `q` over the subsets of its 8 dimensions),
//!   so a 384-bit row costs 48 lookups, not 384 multiply-adds. The sum runs in a fixed
//!   order (four partial sums by byte position mod 4, then `(s0 + s1) + (s2 + s3)`), so
//!   its bits do not depend on the chunking or the thread count. It is bound by the
//!   table loads; there is no wider path (an AVX2 gather is no faster on x86-64 cores).
//!   `search` runs the 8-bit nibble-table fast-scan (`simd::fastscan`) over the rows first
//!   and sums in float only the rows its bound cannot rule out.
//! - [`scan_blocks`]: the Hamming distances of several queries to blocks of
//!   [`SCAN_ROWS`] rows at once, each compared with a bound per query and block inside
//!   the kernel; only the rows below it reach the caller (a [`DistSink`]). The rows are
//!   repacked once per chunk by nibble ([`pack_nibble_blocks`]) and each query's sign bits
//!   become tables of `popcount(nibble XOR x)` ([`nibble_tables`]), so one byte shuffle
//!   counts 32 rows' differing bits in a nibble, and the loads of a block's codes serve
//!   [`SCAN_QUERIES`] queries. x86-64 AVX2 shuffles 32 bytes at once (`vpshufb`: rows
//!   0–15 or 16–31, low nibbles in one lane and high ones in the other), and its byte
//!   counts hold 63 row bytes before they are widened to `u16`; aarch64 NEON looks up 16
//!   nibbles at a time (`vqtbl1q_u8`: four lookups a byte position, a row's two nibble
//!   counts added into one byte), which holds 31 row bytes. Other levels run the scalar
//!   reference, [`scan_blocks_scalar`] ([`scan_blocks_is_fast`] says which); the
//!   distances are [`hamming_rows`]'s at every level.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// `out[r] = popcount(q XOR codes[r])` for each row `r` of `codes` (`row_bytes` bytes per
/// row; `q` is one row). At the detected level.
pub fn hamming_rows(q: &[u8], codes: &[u8], row_bytes: usize, out: &mut [u32]) {
    hamming_rows_at(Level::detect(), q, codes, row_bytes, out)
}

/// [`hamming_rows`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// If `q` is not `row_bytes` long, or `out` has fewer entries than `codes` has rows.
pub fn hamming_rows_at(level: Level, q: &[u8], codes: &[u8], row_bytes: usize, out: &mut [u32]) {
    assert_eq!(
        q.len(),
        row_bytes,
        "hamming_rows: query of the wrong length"
    );
    assert!(
        out.len() >= codes.len() / row_bytes.max(1),
        "hamming_rows: short out"
    );
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() && std::arch::is_x86_feature_detected!("popcnt") {
        // SAFETY: the CPU has popcnt (checked just above); lengths were checked above.
        unsafe { x86::hamming_rows_popcnt(q, codes, row_bytes, out) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time (`runs_here`); lengths were checked above.
        unsafe { neon::hamming_rows(q, codes, row_bytes, out) };
        return;
    }
    let _ = level;
    hamming_rows_scalar(q, codes, row_bytes, out)
}

/// The scalar reference of [`hamming_rows`].
pub fn hamming_rows_scalar(q: &[u8], codes: &[u8], row_bytes: usize, out: &mut [u32]) {
    if row_bytes == 0 {
        return;
    }
    for (row, o) in codes.chunks_exact(row_bytes).zip(out.iter_mut()) {
        *o = hamming_body(q, row);
    }
}

/// `popcount(a XOR b)`, 8 bytes at a time: the body every level compiles.
#[inline(always)]
pub(crate) fn hamming_body(a: &[u8], b: &[u8]) -> u32 {
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: u32 = wa
        .remainder()
        .iter()
        .zip(wb.remainder())
        .map(|(x, y)| (x ^ y).count_ones())
        .sum();
    let mut n = tail;
    for (x, y) in wa.zip(wb) {
        let x = u64::from_le_bytes(x.try_into().expect("8 bytes"));
        let y = u64::from_le_bytes(y.try_into().expect("8 bytes"));
        n += (x ^ y).count_ones();
    }
    n
}

/// The sign bits of `q` (bit set for `q_i >= 0`, as the `binary` codec encodes a row) into
/// `out` (`ceil(q.len() / 8)` bytes).
pub fn sign_bits(q: &[f32], out: &mut [u8]) {
    out.fill(0);
    for (i, &v) in q.iter().enumerate() {
        if v >= 0.0 {
            out[i / 8] |= 1 << (i % 8);
        }
    }
}

/// Entries per byte table.
pub const TABLE: usize = 256;

/// The per-byte tables of query `q` into `out` (`ceil(q.len() / 8) × 256`): entry `[i][b]`
/// is the sum of `q[8i + j]` over the bits `j` set in `b`, added in increasing `j`.
///
/// # Panics
/// If `out` has the wrong length.
pub fn byte_tables(q: &[f32], out: &mut [f32]) {
    let bytes = q.len().div_ceil(8);
    assert_eq!(out.len(), bytes * TABLE, "byte_tables: wrong output length");
    for (i, t) in out.chunks_exact_mut(TABLE).enumerate() {
        let dims = &q[8 * i..(8 * i + 8).min(q.len())];
        t[0] = 0.0;
        // Entry `b` is built from the entry without its top bit, which adds the same terms
        // in increasing `j`: the same bits as the plain loop over `j`. The entries with
        // top bit `j` are `[2^j, 2^(j+1))`, each the one `2^j` below plus `q[8i + j]`: a
        // slice add that vectorizes.
        for top in 0..8 {
            let v = dims.get(top).copied().unwrap_or(0.0);
            let (done, next) = t.split_at_mut(1 << top);
            for (d, &s) in next[..1 << top].iter_mut().zip(done.iter()) {
                *d = s + v;
            }
        }
    }
}

/// `out[r] = Σ_i tables[i][codes[r][i]]` for each row `r` (`row_bytes` bytes) of `codes`:
/// the sum of the query over each row's set bits, in the fixed order described above.
///
/// # Panics
/// If `tables` is not `row_bytes × 256` long, or `out` is short.
pub fn set_sums(tables: &[f32], codes: &[u8], row_bytes: usize, out: &mut [f32]) {
    assert_eq!(tables.len(), row_bytes * TABLE, "set_sums: wrong tables");
    if row_bytes == 0 {
        out.fill(0.0);
        return;
    }
    assert!(out.len() >= codes.len() / row_bytes, "set_sums: short out");
    for (row, o) in codes.chunks_exact(row_bytes).zip(out.iter_mut()) {
        let mut s = [0f32; 4];
        let quads = row.chunks_exact(4);
        let rest = quads.remainder();
        let mut i = 0;
        for quad in quads {
            for (l, &b) in quad.iter().enumerate() {
                s[l] += tables[(i + l) * TABLE + b as usize];
            }
            i += 4;
        }
        for (l, &b) in rest.iter().enumerate() {
            s[l] += tables[(i + l) * TABLE + b as usize];
        }
        *o = (s[0] + s[1]) + (s[2] + s[3]);
    }
}

/// Rows per packed block of [`scan_blocks`].
pub const SCAN_ROWS: usize = 32;

/// Bytes of one row byte position in a packed block: the 64 nibbles of its 32 rows, one a
/// byte (see [`pack_nibble_blocks`]).
pub const SCAN_BLOCK_BYTES: usize = 64;

/// Bytes of one row byte position in a query's nibble tables (see [`nibble_tables`]).
pub const SCAN_TABLE_BYTES: usize = 32;

/// Queries whose distances the kernels of [`scan_blocks`] (AVX2, NEON) count per load of
/// a block's codes: callers that hold per-query state while it runs can pass this many
/// queries a call and hold that state for this many only.
pub const SCAN_QUERIES: usize = 4;

/// The longest rows [`scan_blocks`] takes: distances up to `8 × 4095` fit an `i16`.
pub const SCAN_MAX_ROW_BYTES: usize = 4095;

/// Repacks `codes` (rows of `row_bytes` bytes) into blocks of [`SCAN_ROWS`] rows, one
/// nibble a byte, in `out` (`⌈rows / 32⌉ × row_bytes × 64` bytes). Byte position `p` of
/// block `b` is 64 bytes: for `i < 16`, byte `i` holds the low nibble of row `32b + i`'s
/// byte `p` and byte `16 + i` its high nibble; bytes `32 + i` and `48 + i` the same for
/// row `32b + 16 + i`. Rows past the last (filling the last block) are zero.
///
/// # Panics
/// If `row_bytes` is 0, `codes` is not a whole number of rows or `out` has the wrong length.
pub fn pack_nibble_blocks(codes: &[u8], row_bytes: usize, out: &mut [u8]) {
    assert!(row_bytes > 0, "pack_nibble_blocks: rows of no bytes");
    assert!(
        codes.len().is_multiple_of(row_bytes),
        "pack_nibble_blocks: ragged rows"
    );
    let rows = codes.len() / row_bytes;
    let bb = row_bytes * SCAN_BLOCK_BYTES;
    assert_eq!(
        out.len(),
        rows.div_ceil(SCAN_ROWS) * bb,
        "pack_nibble_blocks: wrong output length"
    );
    out.fill(0);
    for (block, rows) in out
        .chunks_exact_mut(bb)
        .zip(codes.chunks(SCAN_ROWS * row_bytes))
    {
        for (i, row) in rows.chunks_exact(row_bytes).enumerate() {
            let at = (i / 16) * 32 + i % 16;
            for (pos, &byte) in block.chunks_exact_mut(SCAN_BLOCK_BYTES).zip(row) {
                let pos: &mut [u8; SCAN_BLOCK_BYTES] = pos.try_into().expect("64 bytes");
                pos[at] = byte & 0x0f;
                pos[at + 16] = byte >> 4;
            }
        }
    }
}

/// The nibble tables of a query's sign bits `q` (one row, `row_bytes` bytes) into `out`
/// (`row_bytes × 32` bytes): for byte position `p`, entry `x < 16` is
/// `popcount((q[p] & 15) XOR x)` and entry `16 + x` is `popcount((q[p] >> 4) XOR x)`, so
/// a row's distance is the sum of the entries its nibbles select.
///
/// # Panics
/// If `out` is not `q.len() × 32` bytes.
pub fn nibble_tables(q: &[u8], out: &mut [u8]) {
    assert_eq!(
        out.len(),
        q.len() * SCAN_TABLE_BYTES,
        "nibble_tables: wrong output length"
    );
    for (t, &byte) in out.chunks_exact_mut(SCAN_TABLE_BYTES).zip(q) {
        for x in 0..16u8 {
            t[usize::from(x)] = ((byte & 0x0f) ^ x).count_ones() as u8;
            t[16 + usize::from(x)] = ((byte >> 4) ^ x).count_ones() as u8;
        }
    }
}

/// What [`scan_blocks`] does with each query's rows: it asks for a bound before
/// reporting a block's rows, and reports only the rows whose distance is below it.
///
/// For each query the calls come in block order, `bound(q, b)` before the `hits(q, b, …)`
/// of the same block (if any row is below it); calls of different queries may
/// interleave. A bound may depend on the hits reported before it.
pub trait DistSink {
    /// Rows of block `b` whose distance to query `q` is below this are reported (0: none).
    fn bound(&mut self, q: usize, b: usize) -> u16;
    /// Rows of block `b` whose distances to query `q` are below its bound: bit `i` of
    /// `mask` is row `32b + i` (never a row past the last), and `dists[i]` its distance
    /// (all 32 of the block's, those past the last row meaningless).
    fn hits(&mut self, q: usize, b: usize, mask: u32, dists: &[u16; SCAN_ROWS]);
}

/// The Hamming distances of every query of `tables` ([`nibble_tables`], `row_bytes × 32`
/// bytes each) to the first `rows` rows of `blocks` ([`pack_nibble_blocks`]), each
/// block's compared with the query's bound from `sink` and only those below it reported.
/// At the detected level.
///
/// # Panics
/// If `row_bytes` is 0 or above [`SCAN_MAX_ROW_BYTES`], `tables` or `blocks` is not a
/// whole number of `row_bytes × 32` or `× 64` bytes, or `rows` is more than the blocks hold
/// or fewer than all but the last block hold.
pub fn scan_blocks<S: DistSink>(
    tables: &[u8],
    row_bytes: usize,
    blocks: &[u8],
    rows: usize,
    sink: &mut S,
) {
    scan_blocks_at(Level::detect(), tables, row_bytes, blocks, rows, sink)
}

/// Whether [`scan_blocks`] has a kernel of its own at `level` on this CPU (else it runs
/// the scalar reference, slower than [`hamming_rows`] a query at a time).
pub fn scan_blocks_is_fast(level: Level) -> bool {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        return true;
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        return true;
    }
    let _ = level;
    false
}

/// [`scan_blocks`] at a given level; a level this CPU lacks, or one without a kernel of
/// its own ([`scan_blocks_is_fast`]), runs the scalar reference.
///
/// # Panics
/// As [`scan_blocks`].
pub fn scan_blocks_at<S: DistSink>(
    level: Level,
    tables: &[u8],
    row_bytes: usize,
    blocks: &[u8],
    rows: usize,
    sink: &mut S,
) {
    check_scan(tables, row_bytes, blocks, rows);
    #[cfg(target_arch = "x86_64")]
    if scan_blocks_is_fast(level) {
        // SAFETY: `scan_blocks_is_fast` checked at run time that the CPU has AVX2, and
        // `check_scan` the shapes the kernel relies on: `0 < row_bytes ≤ 4095`, whole
        // queries and blocks, `rows` within the last block.
        unsafe { x86::scan_blocks_avx2(tables, row_bytes, blocks, rows, sink) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if scan_blocks_is_fast(level) {
        // SAFETY: `scan_blocks_is_fast` checked at run time that the CPU has NEON, and
        // `check_scan` the shapes the kernel relies on: `0 < row_bytes ≤ 4095`, whole
        // queries and blocks, `rows` within the last block.
        unsafe { neon::scan_blocks_neon(tables, row_bytes, blocks, rows, sink) };
        return;
    }
    let _ = level;
    scan_blocks_scalar(tables, row_bytes, blocks, rows, sink)
}

fn check_scan(tables: &[u8], row_bytes: usize, blocks: &[u8], rows: usize) {
    assert!(
        (1..=SCAN_MAX_ROW_BYTES).contains(&row_bytes),
        "scan_blocks: rows of {row_bytes} bytes"
    );
    let (tb, bb) = (row_bytes * SCAN_TABLE_BYTES, row_bytes * SCAN_BLOCK_BYTES);
    assert!(
        tables.len().is_multiple_of(tb) && blocks.len().is_multiple_of(bb),
        "scan_blocks: ragged tables or blocks"
    );
    assert_eq!(
        rows.div_ceil(SCAN_ROWS),
        blocks.len() / bb,
        "scan_blocks: {rows} rows in {} blocks",
        blocks.len() / bb
    );
}

/// The rows of block `b` that exist when there are `rows` in all, as a mask.
#[inline]
pub(crate) fn valid_rows(b: usize, rows: usize) -> u32 {
    match rows - b * SCAN_ROWS {
        n if n >= SCAN_ROWS => u32::MAX,
        n => (1u32 << n) - 1,
    }
}

/// The scalar reference of [`scan_blocks`]: each query's distances to a block's rows
/// summed from the table entries their nibbles select, a query at a time, block by block.
///
/// # Panics
/// As [`scan_blocks`].
pub fn scan_blocks_scalar<S: DistSink>(
    tables: &[u8],
    row_bytes: usize,
    blocks: &[u8],
    rows: usize,
    sink: &mut S,
) {
    check_scan(tables, row_bytes, blocks, rows);
    let (tb, bb) = (row_bytes * SCAN_TABLE_BYTES, row_bytes * SCAN_BLOCK_BYTES);
    let mut dists = [0u16; SCAN_ROWS];
    for (q, t) in tables.chunks_exact(tb).enumerate() {
        for (b, block) in blocks.chunks_exact(bb).enumerate() {
            dists.fill(0);
            for (tp, cp) in t
                .chunks_exact(SCAN_TABLE_BYTES)
                .zip(block.chunks_exact(SCAN_BLOCK_BYTES))
            {
                for (i, d) in dists.iter_mut().enumerate() {
                    let at = (i / 16) * 32 + i % 16;
                    *d += u16::from(tp[usize::from(cp[at])]);
                    *d += u16::from(tp[16 + usize::from(cp[at + 16])]);
                }
            }
            let bound = sink.bound(q, b);
            let mask = dists
                .iter()
                .enumerate()
                .fold(0u32, |m, (i, &d)| m | (u32::from(d < bound) << i))
                & valid_rows(b, rows);
            if mask != 0 {
                sink.hits(q, b, mask, &dists);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    #[test]
    fn every_level_counts_as_the_reference_and_as_bit_by_bit() {
        let mut rng = Rng(0x5eed_0b17);
        for row_bytes in [1usize, 3, 7, 8, 9, 16, 48, 50, 129] {
            let rows = 1 + rng.below(20) as usize;
            let codes: Vec<u8> = (0..rows * row_bytes)
                .map(|_| rng.below(256) as u8)
                .collect();
            let q: Vec<u8> = (0..row_bytes).map(|_| rng.below(256) as u8).collect();
            let mut want = vec![0u32; rows];
            for (r, w) in want.iter_mut().enumerate() {
                for i in 0..row_bytes * 8 {
                    let a = (q[i / 8] >> (i % 8)) & 1;
                    let b = (codes[r * row_bytes + i / 8] >> (i % 8)) & 1;
                    *w += u32::from(a != b);
                }
            }
            for level in Level::available() {
                let mut got = vec![u32::MAX; rows];
                hamming_rows_at(level, &q, &codes, row_bytes, &mut got);
                assert_eq!(got, want, "{level:?}, {row_bytes} bytes");
            }
        }
    }

    /// Records each query's reports; its bound falls with the reports (the smallest
    /// distance seen so far plus a margin), or is fixed.
    struct Record {
        fixed: Option<u16>,
        seen: Vec<Vec<(usize, u32, Vec<u16>)>>,
        least: Vec<u16>,
    }

    impl Record {
        fn new(nq: usize, fixed: Option<u16>) -> Record {
            Record {
                fixed,
                seen: vec![Vec::new(); nq],
                least: vec![u16::MAX; nq],
            }
        }
    }

    impl DistSink for Record {
        fn bound(&mut self, q: usize, _b: usize) -> u16 {
            self.fixed
                .unwrap_or_else(|| self.least[q].saturating_add(3))
        }
        fn hits(&mut self, q: usize, b: usize, mask: u32, dists: &[u16; SCAN_ROWS]) {
            let got: Vec<u16> = (0..SCAN_ROWS)
                .filter(|i| mask >> i & 1 == 1)
                .map(|i| dists[i])
                .collect();
            self.least[q] = got.iter().copied().fold(self.least[q], u16::min);
            self.seen[q].push((b, mask, got));
        }
    }

    /// The packed scan reports, at every level, each row whose distance (counted bit by
    /// bit) is below the bound, with that distance, and no other: row lengths around the
    /// 63-byte runs, row counts around the 32-row blocks, 1 to 9 queries (partial query
    /// groups), fixed bounds (none, some and every row) and bounds that fall with the
    /// reports.
    #[test]
    fn packed_scan_reports_the_rows_below_the_bound_at_every_level() {
        let mut rng = Rng(0x5ca7_b10c);
        for row_bytes in [1usize, 3, 8, 48, 63, 64, 130] {
            for rows in [1usize, 31, 32, 33, 100] {
                let nq = 1 + rng.below(9) as usize;
                let codes: Vec<u8> = (0..rows * row_bytes)
                    .map(|_| rng.below(256) as u8)
                    .collect();
                let qs: Vec<u8> = (0..nq * row_bytes).map(|_| rng.below(256) as u8).collect();
                let mut blocks = vec![0xa5u8; rows.div_ceil(SCAN_ROWS) * row_bytes * 64];
                pack_nibble_blocks(&codes, row_bytes, &mut blocks);
                let mut tables = vec![0u8; nq * row_bytes * SCAN_TABLE_BYTES];
                for (t, q) in tables
                    .chunks_exact_mut(row_bytes * SCAN_TABLE_BYTES)
                    .zip(qs.chunks_exact(row_bytes))
                {
                    nibble_tables(q, t);
                }
                let top = 8 * row_bytes as u16;
                for fixed in [Some(0u16), Some(top / 2), Some(top + 1), None] {
                    // The reports wanted: from the bit-by-bit distances.
                    let mut want = Record::new(nq, fixed);
                    let mut dist = vec![0u32; rows];
                    for (q, qb) in qs.chunks_exact(row_bytes).enumerate() {
                        for (r, d) in dist.iter_mut().enumerate() {
                            *d = (0..8 * row_bytes)
                                .filter(|&i| {
                                    (qb[i / 8] ^ codes[r * row_bytes + i / 8]) >> (i % 8) & 1 == 1
                                })
                                .count() as u32;
                        }
                        for (b, ds) in dist.chunks(SCAN_ROWS).enumerate() {
                            let bound = want.bound(q, b);
                            let mut all = [0u16; SCAN_ROWS];
                            let mut mask = 0u32;
                            for (i, &d) in ds.iter().enumerate() {
                                all[i] = d as u16;
                                mask |= u32::from((d as u16) < bound) << i;
                            }
                            if mask != 0 {
                                want.hits(q, b, mask, &all);
                            }
                        }
                    }
                    if fixed == Some(top + 1) {
                        assert!(
                            want.seen
                                .iter()
                                .all(|s| s.len() == rows.div_ceil(SCAN_ROWS))
                        );
                    }
                    for level in Level::available() {
                        let mut got = Record::new(nq, fixed);
                        scan_blocks_at(level, &tables, row_bytes, &blocks, rows, &mut got);
                        assert_eq!(
                            got.seen, want.seen,
                            "{level:?}: {row_bytes} bytes, {rows} rows, {nq} queries, bound {fixed:?}"
                        );
                    }
                }
            }
        }
    }

    /// Every level's kernel reports what the scalar reference reports, on random tables
    /// (entries up to 4, as a nibble's count is) and random nibble blocks with junk in the
    /// rows past the last: row lengths around both kernels' byte runs (31 and 63
    /// positions) and odd ones, ragged last blocks, partial query groups, bounds that pass
    /// no row, some, every one (`u16::MAX` too) and bounds that fall with the reports. The
    /// levels with a kernel of their own must be the ones `scan_blocks_is_fast` names, so
    /// that the kernel, not the fallback, is what agrees.
    #[test]
    fn packed_scan_kernels_agree_with_the_scalar_reference() {
        #[cfg(target_arch = "aarch64")]
        assert!(scan_blocks_is_fast(Level::Neon), "aarch64 always has NEON");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            scan_blocks_is_fast(Level::Avx2),
            std::arch::is_x86_feature_detected!("avx2")
        );
        assert!(!scan_blocks_is_fast(Level::Scalar));
        let mut rng = Rng(0xa9_4ee5);
        for row_bytes in [1usize, 5, 30, 31, 32, 33, 48, 61, 62, 63, 64, 95, 127] {
            for rows in [1usize, 17, 32, 63, 64, 65] {
                let nq = 1 + rng.below(11) as usize;
                let tables: Vec<u8> = (0..nq * row_bytes * SCAN_TABLE_BYTES)
                    .map(|_| rng.below(5) as u8)
                    .collect();
                let blocks: Vec<u8> = (0..rows.div_ceil(SCAN_ROWS) * row_bytes * SCAN_BLOCK_BYTES)
                    .map(|_| rng.below(16) as u8)
                    .collect();
                let top = 8 * row_bytes as u16;
                let some = 1 + rng.below(u64::from(top)) as u16;
                for fixed in [Some(0u16), Some(some), Some(top + 1), Some(u16::MAX), None] {
                    let mut want = Record::new(nq, fixed);
                    scan_blocks_scalar(&tables, row_bytes, &blocks, rows, &mut want);
                    let what = format!("{row_bytes} bytes, {rows} rows, {nq} queries, {fixed:?}");
                    if fixed == Some(0) {
                        assert!(want.seen.iter().all(|s| s.is_empty()), "{what}");
                    }
                    if fixed == Some(top + 1) {
                        let all = valid_rows(rows.div_ceil(SCAN_ROWS) - 1, rows);
                        assert!(
                            want.seen.iter().all(|s| s.len() == rows.div_ceil(SCAN_ROWS)
                                && s.last().is_some_and(|h| h.1 == all)),
                            "{what}"
                        );
                    }
                    for level in Level::available() {
                        let mut got = Record::new(nq, fixed);
                        scan_blocks_at(level, &tables, row_bytes, &blocks, rows, &mut got);
                        assert_eq!(got.seen, want.seen, "{level:?}: {what}");
                    }
                }
            }
        }
    }

    /// The longest rows with every entry at its largest: each distance is `8 × 4095`, the
    /// most the `u16` lanes (and the byte runs before them) must hold.
    #[test]
    fn packed_scan_counts_the_longest_rows_at_every_level() {
        let row_bytes = SCAN_MAX_ROW_BYTES;
        let (nq, rows) = (SCAN_QUERIES + 1, 40usize);
        let tables = vec![4u8; nq * row_bytes * SCAN_TABLE_BYTES];
        let blocks = vec![9u8; rows.div_ceil(SCAN_ROWS) * row_bytes * SCAN_BLOCK_BYTES];
        let top = 8 * row_bytes as u16;
        for level in Level::available() {
            for (bound, hit) in [(top, false), (top + 1, true)] {
                let mut got = Record::new(nq, Some(bound));
                scan_blocks_at(level, &tables, row_bytes, &blocks, rows, &mut got);
                for s in &got.seen {
                    let want: Vec<(usize, u32, Vec<u16>)> = if hit {
                        vec![(0, u32::MAX, vec![top; 32]), (1, 0xff, vec![top; 8])]
                    } else {
                        Vec::new()
                    };
                    assert_eq!(*s, want, "{level:?}, bound {bound}");
                }
            }
        }
    }

    #[test]
    fn valid_rows_mask_the_last_block() {
        assert_eq!(valid_rows(0, 1), 1);
        assert_eq!(valid_rows(0, 32), u32::MAX);
        assert_eq!(valid_rows(1, 33), 1);
        assert_eq!(valid_rows(2, 95), (1 << 31) - 1);
    }

    /// Each entry has the bits of the plain loop over its set bits in increasing order
    /// (which `set_sum`-style callers reproduce), a short last byte included.
    #[test]
    fn byte_table_entries_add_in_increasing_bit_order() {
        let mut rng = Rng(0x7ab1e5);
        for dims in [3usize, 8, 21] {
            let q: Vec<f32> = (0..dims)
                .map(|_| rng.below(2001) as f32 / 997.0 - 1.0)
                .collect();
            let rb = dims.div_ceil(8);
            let mut t = vec![f32::NAN; rb * TABLE];
            byte_tables(&q, &mut t);
            for i in 0..rb {
                for b in 0..TABLE {
                    let mut e = 0f32;
                    for j in 0..8 {
                        if b >> j & 1 == 1 {
                            e += q.get(8 * i + j).copied().unwrap_or(0.0);
                        }
                    }
                    assert_eq!(t[i * TABLE + b].to_bits(), e.to_bits(), "{dims} {i} {b}");
                }
            }
        }
    }

    #[test]
    fn set_sums_equal_the_sum_over_set_bits() {
        let mut rng = Rng(0xb175);
        for dims in [1usize, 5, 8, 13, 64, 100, 384] {
            let q: Vec<f32> = (0..dims)
                .map(|_| rng.below(2001) as f32 / 1000.0 - 1.0)
                .collect();
            let rb = dims.div_ceil(8);
            let mut t = vec![0f32; rb * TABLE];
            byte_tables(&q, &mut t);
            let rows = 17;
            let mut codes: Vec<u8> = (0..rows * rb).map(|_| rng.below(256) as u8).collect();
            // Unused high bits of the last byte are 0, as the codec writes them.
            if dims % 8 != 0 {
                for r in 0..rows {
                    codes[r * rb + rb - 1] &= (1u8 << (dims % 8)) - 1;
                }
            }
            let mut got = vec![0f32; rows];
            set_sums(&t, &codes, rb, &mut got);
            for r in 0..rows {
                let want: f64 = (0..dims)
                    .filter(|&i| (codes[r * rb + i / 8] >> (i % 8)) & 1 == 1)
                    .map(|i| f64::from(q[i]))
                    .sum();
                assert!(
                    (f64::from(got[r]) - want).abs() < 1e-4,
                    "{dims}: {} vs {want}",
                    got[r]
                );
            }
        }
    }

    #[test]
    fn sign_bits_match_the_binary_codec() {
        let q = [0.5f32, -0.0, 0.0, -1.0, 2.0, -3.0, 0.1, 0.2, -0.1];
        let mut b = [0u8; 2];
        sign_bits(&q, &mut b);
        assert_eq!(b, [0b1101_0111, 0]);
    }
}
