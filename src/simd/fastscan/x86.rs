//! x86-64 fast-scan (AVX2 `vpshufb`). The caller checked the CPU features and the shapes
//! (see [`super::block_scores_at`]).
//!
//! Per block of 32 rows and per pair of sub-quantizers: one load of the block's 32 code
//! bytes, two masks for the low and high nibbles (rows `i` and `16 + i`), and per query
//! two shuffles of the pair's table register. The shuffled bytes are added as `u16` words
//! (`acc_full`: even row + 256 × odd row) and shifted right by 8 (`acc_odd`: the odd
//! row); at the end the even rows' sums are `acc_full − (acc_odd << 8)` modulo 2¹⁶, and
//! the two 128-bit halves (sub-quantizers `2p` and `2p + 1`) are added. All of it is
//! wrapping integer arithmetic, so it equals the scalar reference's wrapping sums.
//!
//! The AVX-512 (F + BW) threshold scan does the same with 512-bit shuffles, two pairs a
//! shuffle (`vpshufb` looks up within each 128-bit lane, and a 64-byte load of the codes
//! or of a query's tables holds two pairs' lanes in the same order), and adds the two
//! 256-bit halves of each accumulator before the AVX2 kernel's last step.

use std::arch::x86_64::*;

use super::{BLOCK_BYTES_PER_PAIR, BLOCK_ROWS, BlockSink};

/// Queries sharing each load of a block's codes: two keep their 8 accumulators, the
/// codes and the nibble masks within the 16 vector registers.
const GROUP: usize = 2;

/// [`super::block_scores_scalar`] with AVX2.
///
/// # Safety
/// The CPU must have AVX2; `pairs > 0`, `luts` and `blocks` whole multiples of
/// `pairs × 32` bytes, `out` of `queries × blocks × 32` entries.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn block_scores_avx2(luts: &[u8], pairs: usize, blocks: &[u8], out: &mut [u16]) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let rows = blocks.len() / bb * BLOCK_ROWS;
    let nq = luts.len() / bb;
    let mut q = 0;
    while q + GROUP <= nq {
        let (l, o) = (
            &luts[q * bb..][..GROUP * bb],
            &mut out[q * rows..][..GROUP * rows],
        );
        // SAFETY: AVX2 is present (our precondition); the slices have `GROUP` queries.
        unsafe { group::<GROUP>(l, pairs, blocks, o) };
        q += GROUP;
    }
    if q < nq {
        let (l, o) = (&luts[q * bb..][..bb], &mut out[q * rows..][..rows]);
        // SAFETY: as above, with one query.
        unsafe { group::<1>(l, pairs, blocks, o) };
    }
}

/// The scores of `G` queries (`luts`: `G × pairs × 32` bytes) over every block, into
/// `out` (`G × rows`).
///
/// # Safety
/// AVX2; shapes as [`block_scores_avx2`] with exactly `G` queries.
#[target_feature(enable = "avx2")]
unsafe fn group<const G: usize>(luts: &[u8], pairs: usize, blocks: &[u8], out: &mut [u16]) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let rows = blocks.len() / bb * BLOCK_ROWS;
    debug_assert!(luts.len() == G * bb && out.len() == G * rows);
    for (b, block) in blocks.chunks_exact(bb).enumerate() {
        // SAFETY: AVX2 (our precondition); `luts` has `G` queries of `pairs × 32` bytes
        // and `block` `pairs × 32` bytes.
        let acc = unsafe { accumulate::<G>(luts, pairs, block) };
        for (g, a) in acc.iter().enumerate() {
            let at = g * rows + b * BLOCK_ROWS;
            let dst = &mut out[at..at + BLOCK_ROWS];
            for (j, v) in rows_of(a).into_iter().enumerate() {
                // SAFETY: `dst` has 32 entries, and 8 from `8j` are in bounds; storeu
                // needs no alignment.
                unsafe { _mm_storeu_si128(dst.as_mut_ptr().add(8 * j).cast(), v) };
            }
        }
    }
}

/// The four accumulators of each of `G` queries (`luts`: `G × pairs × 32` bytes) over
/// one `block` (`pairs × 32` bytes): per query, low-nibble rows (full, odd) and
/// high-nibble rows (full, odd), as [`rows_of`] takes them.
///
/// # Safety
/// AVX2; `pairs > 0`, `luts` of `G × pairs × 32` bytes, `block` of `pairs × 32`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn accumulate<const G: usize>(luts: &[u8], pairs: usize, block: &[u8]) -> [[__m256i; 4]; G] {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    debug_assert!(luts.len() == G * bb && block.len() == bb);
    let nibble = _mm256_set1_epi8(0x0f);
    let mut acc = [[_mm256_setzero_si256(); 4]; G];
    for p in 0..pairs {
        // SAFETY: `block` has `pairs × 32` bytes, so 32 from `32p` are in bounds; loadu
        // needs no alignment.
        let c = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * p).cast()) };
        let lo = _mm256_and_si256(c, nibble);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(c), nibble);
        for (g, a) in acc.iter_mut().enumerate() {
            // SAFETY: `luts` has `G × pairs × 32` bytes; query `g`'s pair `p` is the 32
            // from `g × bb + 32p`.
            let t = unsafe { _mm256_loadu_si256(luts.as_ptr().add(g * bb + 32 * p).cast()) };
            let r0 = _mm256_shuffle_epi8(t, lo);
            let r1 = _mm256_shuffle_epi8(t, hi);
            a[0] = _mm256_add_epi16(a[0], r0);
            a[1] = _mm256_add_epi16(a[1], _mm256_srli_epi16::<8>(r0));
            a[2] = _mm256_add_epi16(a[2], r1);
            a[3] = _mm256_add_epi16(a[3], _mm256_srli_epi16::<8>(r1));
        }
    }
    acc
}

/// [`accumulate`] for `G` queries in two passes over the block's pairs, the low nibbles'
/// rows (0..16) and then the high nibbles' (16..32): each pass keeps two accumulators a
/// query, so four queries share each load of the codes with their 8 accumulators, the
/// codes and the nibble mask within the 16 vector registers (the codes are read twice,
/// from L1). The same wrapping sums as [`accumulate`], in the same layout.
///
/// # Safety
/// AVX2; `pairs > 0`, `luts` of `G × pairs × 32` bytes, `block` of `pairs × 32`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn accumulate_halves<const G: usize>(
    luts: &[u8],
    pairs: usize,
    block: &[u8],
) -> [[__m256i; 4]; G] {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    debug_assert!(luts.len() == G * bb && block.len() == bb);
    let nibble = _mm256_set1_epi8(0x0f);
    let mut acc = [[_mm256_setzero_si256(); 4]; G];
    for half in 0..2 {
        let mut a = [[_mm256_setzero_si256(); 2]; G];
        for p in 0..pairs {
            // SAFETY: `block` has `pairs × 32` bytes, so 32 from `32p` are in bounds;
            // loadu needs no alignment.
            let c = unsafe { _mm256_loadu_si256(block.as_ptr().add(32 * p).cast()) };
            let idx = if half == 0 {
                _mm256_and_si256(c, nibble)
            } else {
                _mm256_and_si256(_mm256_srli_epi16::<4>(c), nibble)
            };
            for (g, a) in a.iter_mut().enumerate() {
                // SAFETY: `luts` has `G × pairs × 32` bytes; query `g`'s pair `p` is
                // the 32 from `g × bb + 32p`.
                let t = unsafe { _mm256_loadu_si256(luts.as_ptr().add(g * bb + 32 * p).cast()) };
                let r = _mm256_shuffle_epi8(t, idx);
                a[0] = _mm256_add_epi16(a[0], r);
                a[1] = _mm256_add_epi16(a[1], _mm256_srli_epi16::<8>(r));
            }
        }
        for (dst, a) in acc.iter_mut().zip(a) {
            dst[2 * half] = a[0];
            dst[2 * half + 1] = a[1];
        }
    }
    acc
}

/// A query's 32 sums of a block from its four accumulators, rows `8j..8j + 8` in the
/// `j`-th vector.
#[target_feature(enable = "avx2")]
#[inline]
fn rows_of(a: &[__m256i; 4]) -> [__m128i; 4] {
    let mut out = [_mm_setzero_si128(); 4];
    for (half, (full, odd)) in [(a[0], a[1]), (a[2], a[3])].into_iter().enumerate() {
        let even = _mm256_sub_epi16(full, _mm256_slli_epi16::<8>(odd));
        // Sub-quantizer 2p's half plus 2p + 1's.
        let e = _mm_add_epi16(
            _mm256_castsi256_si128(even),
            _mm256_extracti128_si256::<1>(even),
        );
        let o = _mm_add_epi16(
            _mm256_castsi256_si128(odd),
            _mm256_extracti128_si256::<1>(odd),
        );
        // Words w of `e` and `o` are rows 2w and 2w + 1 of this half.
        out[2 * half] = _mm_unpacklo_epi16(e, o);
        out[2 * half + 1] = _mm_unpackhi_epi16(e, o);
    }
    out
}

/// Queries sharing each load of a block's codes in the threshold scan, which takes the
/// low and high nibbles' rows in two passes ([`accumulate_halves`]).
const SCAN_GROUP: usize = 4;

/// [`super::block_scan_scalar`] with AVX2: the sums of [`block_scores_avx2`], four queries
/// per load of a block's codes (then two, then one for the rest), compared with each
/// query's threshold in registers.
///
/// # Safety
/// The CPU must have AVX2; `pairs > 0`, `luts` and `blocks` whole multiples of
/// `pairs × 32` bytes.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn block_scan_avx2<S: BlockSink>(
    luts: &[u8],
    pairs: usize,
    blocks: &[u8],
    sink: &mut S,
) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let nq = luts.len() / bb;
    let mut q = 0;
    while q + SCAN_GROUP <= nq {
        let l = &luts[q * bb..][..SCAN_GROUP * bb];
        // SAFETY: AVX2 is present (our precondition); the slice has `SCAN_GROUP` queries.
        unsafe { scan_group::<SCAN_GROUP, S>(l, q, pairs, blocks, sink) };
        q += SCAN_GROUP;
    }
    if q + GROUP <= nq {
        // SAFETY: as above, with `GROUP` queries.
        unsafe { scan_group::<GROUP, S>(&luts[q * bb..][..GROUP * bb], q, pairs, blocks, sink) };
        q += GROUP;
    }
    if q < nq {
        // SAFETY: as above, with one query.
        unsafe { scan_group::<1, S>(&luts[q * bb..][..bb], q, pairs, blocks, sink) };
    }
}

/// [`block_scan_avx2`] for the `G` queries from `q0` (`luts`: theirs).
///
/// # Safety
/// AVX2; shapes as [`block_scan_avx2`] with exactly `G` queries.
#[target_feature(enable = "avx2")]
unsafe fn scan_group<const G: usize, S: BlockSink>(
    luts: &[u8],
    q0: usize,
    pairs: usize,
    blocks: &[u8],
    sink: &mut S,
) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let mut sums = [0u16; BLOCK_ROWS];
    for (b, block) in blocks.chunks_exact(bb).enumerate() {
        // SAFETY: AVX2 (our precondition); `luts` has `G` queries of `pairs × 32` bytes
        // and `block` `pairs × 32` bytes.
        let acc = unsafe {
            if G > GROUP {
                accumulate_halves::<G>(luts, pairs, block)
            } else {
                accumulate::<G>(luts, pairs, block)
            }
        };
        offer(&acc, q0, b, sink, &mut sums);
    }
}

/// Compares block `b`'s sums of the queries from `q0` (their accumulators `acc`, as
/// [`rows_of`] takes them) with each query's threshold from `sink`, and reports the rows
/// that reach it (`sums`: scratch).
#[target_feature(enable = "avx2")]
#[inline]
fn offer<S: BlockSink>(
    acc: &[[__m256i; 4]],
    q0: usize,
    b: usize,
    sink: &mut S,
    sums: &mut [u16; BLOCK_ROWS],
) {
    for (g, a) in acc.iter().enumerate() {
        let v = rows_of(a);
        let t = _mm_set1_epi16(sink.threshold(q0 + g, b) as i16);
        // `v ≥ t` as unsigned words: `max(v, t) = v`; all-ones words pack to 0xff.
        let ge = v.map(|x| _mm_cmpeq_epi16(_mm_max_epu16(x, t), x));
        let low = _mm_movemask_epi8(_mm_packs_epi16(ge[0], ge[1])) as u32;
        let high = _mm_movemask_epi8(_mm_packs_epi16(ge[2], ge[3])) as u32;
        let mask = low | (high << 16);
        if mask != 0 {
            for (j, x) in v.into_iter().enumerate() {
                // SAFETY: `sums` has 32 entries, 8 from `8j` in bounds; storeu needs no
                // alignment.
                unsafe { _mm_storeu_si128(sums.as_mut_ptr().add(8 * j).cast(), x) };
            }
            sink.hits(q0 + g, b, mask, sums);
        }
    }
}

/// Queries sharing each load of a block's codes in the AVX-512 threshold scan: their 16
/// accumulators, the codes' two index vectors and the nibble mask fit the 32 registers.
const SCAN_GROUP_512: usize = 4;

/// [`block_scan_avx2`] with AVX-512 F + BW: the same calls, the same sums (see the module
/// documentation), four queries per load of two pairs of a block's codes.
///
/// # Safety
/// The CPU must have AVX-512 F and BW; `pairs > 0`, `luts` and `blocks` whole multiples
/// of `pairs × 32` bytes.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn block_scan_avx512<S: BlockSink>(
    luts: &[u8],
    pairs: usize,
    blocks: &[u8],
    sink: &mut S,
) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let nq = luts.len() / bb;
    let mut q = 0;
    while q + SCAN_GROUP_512 <= nq {
        let l = &luts[q * bb..][..SCAN_GROUP_512 * bb];
        // SAFETY: AVX-512 F + BW are present (our precondition); the slice has
        // `SCAN_GROUP_512` queries.
        unsafe { scan_group_512::<SCAN_GROUP_512, S>(l, q, pairs, blocks, sink) };
        q += SCAN_GROUP_512;
    }
    if q + 2 <= nq {
        // SAFETY: as above, with two queries.
        unsafe { scan_group_512::<2, S>(&luts[q * bb..][..2 * bb], q, pairs, blocks, sink) };
        q += 2;
    }
    if q < nq {
        // SAFETY: as above, with one query.
        unsafe { scan_group_512::<1, S>(&luts[q * bb..][..bb], q, pairs, blocks, sink) };
    }
}

/// [`block_scan_avx512`] for the `G` queries from `q0` (`luts`: theirs).
///
/// # Safety
/// AVX-512 F + BW; shapes as [`block_scan_avx512`] with exactly `G` queries.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn scan_group_512<const G: usize, S: BlockSink>(
    luts: &[u8],
    q0: usize,
    pairs: usize,
    blocks: &[u8],
    sink: &mut S,
) {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let mut sums = [0u16; BLOCK_ROWS];
    for (b, block) in blocks.chunks_exact(bb).enumerate() {
        // SAFETY: AVX-512 F + BW (our precondition); `luts` has `G` queries of
        // `pairs × 32` bytes and `block` `pairs × 32` bytes.
        let acc = unsafe { accumulate_512::<G>(luts, pairs, block) };
        offer(&acc, q0, b, sink, &mut sums);
    }
}

/// [`accumulate`] with 512-bit shuffles, two pairs each (the last pair alone, its upper
/// half loaded as zeros, when `pairs` is odd); each accumulator's two 256-bit halves
/// added at the end. The same wrapping sums, in the same layout.
///
/// # Safety
/// AVX-512 F + BW; `pairs > 0`, `luts` of `G × pairs × 32` bytes, `block` of
/// `pairs × 32`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn accumulate_512<const G: usize>(
    luts: &[u8],
    pairs: usize,
    block: &[u8],
) -> [[__m256i; 4]; G] {
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    debug_assert!(luts.len() == G * bb && block.len() == bb);
    let nibble = _mm512_set1_epi8(0x0f);
    let mut acc = [[_mm512_setzero_si512(); 4]; G];
    let mut step = |c: __m512i, t: [__m512i; G]| {
        let lo = _mm512_and_si512(c, nibble);
        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(c), nibble);
        for (a, t) in acc.iter_mut().zip(t) {
            let r0 = _mm512_shuffle_epi8(t, lo);
            let r1 = _mm512_shuffle_epi8(t, hi);
            a[0] = _mm512_add_epi16(a[0], r0);
            a[1] = _mm512_add_epi16(a[1], _mm512_srli_epi16::<8>(r0));
            a[2] = _mm512_add_epi16(a[2], r1);
            a[3] = _mm512_add_epi16(a[3], _mm512_srli_epi16::<8>(r1));
        }
    };
    let two = pairs / 2;
    for h in 0..two {
        // SAFETY: `block` has `pairs × 32` bytes and `luts` `G × pairs × 32`; the 64
        // from `64h` (pairs `2h` and `2h + 1 < pairs`) are in bounds of `block` and of
        // each query's tables; loadu needs no alignment.
        let c = unsafe { _mm512_loadu_si512(block.as_ptr().add(64 * h).cast()) };
        let t = std::array::from_fn(|g| {
            // SAFETY: as above, query `g`'s 64 table bytes from `g × bb + 64h`.
            unsafe { _mm512_loadu_si512(luts.as_ptr().add(g * bb + 64 * h).cast()) }
        });
        step(c, t);
    }
    if pairs % 2 == 1 {
        // The last pair's 32 bytes; the masked-off upper 32 load as zeros (and a zero
        // table adds nothing) without being read.
        let m = 0xffff_ffffu64;
        // SAFETY: the 32 bytes from `32(pairs − 1)` are in bounds of `block` and of each
        // query's tables; masked-off bytes are not accessed.
        let c = unsafe { _mm512_maskz_loadu_epi8(m, block.as_ptr().add(64 * two).cast()) };
        let t = std::array::from_fn(|g| {
            // SAFETY: as above, query `g`'s last 32 table bytes; masked-off bytes are not
            // accessed.
            unsafe { _mm512_maskz_loadu_epi8(m, luts.as_ptr().add(g * bb + 64 * two).cast()) }
        });
        step(c, t);
    }
    acc.map(|a| {
        a.map(|v| _mm256_add_epi16(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v)))
    })
}
