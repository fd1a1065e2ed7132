//! x86-64 kernels of [`super`]. The caller checks the CPU features and the shapes:
//! `tables` holds `m × 2^NB` vectors, `subspaces` lies within `0..m`, `codes` holds
//! `out.len()` rows of `cb` bytes (`m`, or `⌈m/2⌉` for 4-bit codes).
//!
//! One row's sum is a chain of `m` dependent adds, so rows go in groups, their chains
//! interleaved, to keep the adders busy (8 chains in flight: two adders of 4-cycle
//! latency); each chain still adds its subspaces in order from zero.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{BLOCK, Lanes, Term, table_loop};

/// Rows summed side by side: one 512-bit accumulator each.
const ROWS_512: usize = 8;
/// Rows summed side by side: two 256-bit accumulators each.
const ROWS_256: usize = 4;

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
/// The CPU has AVX-512F; shapes as the module says.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sums_avx512<const NB: u8>(
    tables: &[Lanes],
    codes: &[u8],
    subspaces: Range<usize>,
    cb: usize,
    out: &mut [Lanes],
) {
    let mut groups = out.chunks_exact_mut(ROWS_512);
    let mut row = 0;
    for g in &mut groups {
        // SAFETY: rows `row..row + ROWS_512` exist in `codes` and `out`.
        unsafe { rows_avx512::<NB, ROWS_512>(tables, codes, row, subspaces.clone(), cb, g) };
        row += ROWS_512;
    }
    for o in groups.into_remainder().chunks_exact_mut(1) {
        // SAFETY: as above, one row.
        unsafe { rows_avx512::<NB, 1>(tables, codes, row, subspaces.clone(), cb, o) };
        row += 1;
    }
}

/// Rows `first..first + R` into `out` (`R` vectors).
///
/// # Safety
/// As [`sums_avx512`], and those rows exist.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn rows_avx512<const NB: u8, const R: usize>(
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
    let mut acc: [__m512; R] = std::array::from_fn(|r| {
        // SAFETY: `out` holds `R` aligned vectors of 16 floats.
        unsafe { _mm512_load_ps(out[r].0.as_ptr()) }
    });
    for s in subspaces {
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: row `first + r` exists, `s < m`, and a code is below `ksub`, so the
            // vector `s × ksub + j` is inside `tables` (`m × ksub` of them); `Lanes` is
            // 64-byte aligned, as the aligned load needs.
            let v = unsafe {
                let j = code_at::<NB>(c.add(r * cb), s);
                _mm512_load_ps(t.add(s * ksub + j).cast())
            };
            *a = _mm512_add_ps(*a, v);
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is one aligned `Lanes` of 16 floats.
        unsafe { _mm512_store_ps(o.0.as_mut_ptr(), a) };
    }
}

/// # Safety
/// The CPU has AVX2; shapes as the module says.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn sums_avx2<const NB: u8>(
    tables: &[Lanes],
    codes: &[u8],
    subspaces: Range<usize>,
    cb: usize,
    out: &mut [Lanes],
) {
    let mut groups = out.chunks_exact_mut(ROWS_256);
    let mut row = 0;
    for g in &mut groups {
        // SAFETY: rows `row..row + ROWS_256` exist in `codes` and `out`.
        unsafe { rows_avx2::<NB, ROWS_256>(tables, codes, row, subspaces.clone(), cb, g) };
        row += ROWS_256;
    }
    for o in groups.into_remainder().chunks_exact_mut(1) {
        // SAFETY: as above, one row.
        unsafe { rows_avx2::<NB, 1>(tables, codes, row, subspaces.clone(), cb, o) };
        row += 1;
    }
}

/// Rows `first..first + R` into `out` (`R` vectors), each as two halves of 8 lanes.
///
/// # Safety
/// As [`sums_avx2`], and those rows exist.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn rows_avx2<const NB: u8, const R: usize>(
    tables: &[Lanes],
    codes: &[u8],
    first: usize,
    subspaces: Range<usize>,
    cb: usize,
    out: &mut [Lanes],
) {
    const HALF: usize = BLOCK / 2;
    let ksub = 1usize << NB;
    let t = tables.as_ptr();
    // SAFETY: row `first` starts inside `codes` (rows `first..first + R` exist).
    let c = unsafe { codes.as_ptr().add(first * cb) };
    let mut acc: [[__m256; 2]; R] = std::array::from_fn(|r| {
        let p = out[r].0.as_ptr();
        // SAFETY: `out` holds `R` aligned vectors of 16 floats.
        unsafe { [_mm256_load_ps(p), _mm256_load_ps(p.add(HALF))] }
    });
    for s in subspaces {
        for (r, a) in acc.iter_mut().enumerate() {
            // SAFETY: as in `rows_avx512`: the vector is inside `tables`, 64-byte aligned,
            // and its second half starts 32 bytes in.
            let (lo, hi) = unsafe {
                let j = code_at::<NB>(c.add(r * cb), s);
                let p: *const f32 = t.add(s * ksub + j).cast();
                (_mm256_load_ps(p), _mm256_load_ps(p.add(HALF)))
            };
            a[0] = _mm256_add_ps(a[0], lo);
            a[1] = _mm256_add_ps(a[1], hi);
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY: `o` is one aligned `Lanes` of 16 floats.
        unsafe {
            _mm256_store_ps(o.0.as_mut_ptr(), a[0]);
            _mm256_store_ps(o.0.as_mut_ptr().add(HALF), a[1]);
        }
    }
}

/// [`super::block_table`]'s loop compiled for AVX-512: one vector per entry.
#[target_feature(enable = "avx512f")]
pub(super) fn table_avx512(
    by_dim: &[[f32; BLOCK]],
    centroids: &[f32],
    dsub: usize,
    ksub: usize,
    term: Term,
    out: &mut [Lanes],
) {
    table_loop(by_dim, centroids, dsub, ksub, term, out)
}

/// [`super::block_table`]'s loop compiled for AVX2: two vectors per entry.
#[target_feature(enable = "avx2")]
pub(super) fn table_avx2(
    by_dim: &[[f32; BLOCK]],
    centroids: &[f32],
    dsub: usize,
    ksub: usize,
    term: Term,
    out: &mut [Lanes],
) {
    table_loop(by_dim, centroids, dsub, ksub, term, out)
}
