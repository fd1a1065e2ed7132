//! ADC table sums for a block of [`BLOCK`] queries at once.
//!
//! The lookup tables of a block of queries are laid out `T[s][j]`: one [`Lanes`] vector
//! holding every query's value for centroid `j` of subspace `s`. A row's code byte for
//! subspace `s` then selects one contiguous, aligned vector, and the row's scores for all
//! `BLOCK` queries are `m` vector adds, where a table per query would take `BLOCK × m`
//! dependent scalar lookups.
//!
//! Lane `l` of a row's sums is `0 + T[0][c₀][l] + T[1][c₁][l] + …`, added in subspace
//! order (over one range of subspaces at a time if the caller wants: the table of a few
//! subspaces stays in cache while many rows are summed). Vector adds are lane-wise IEEE
//! adds (no FMA, no reassociation), so every level gives the bits of [`block_sums_scalar`],
//! whatever the lane width or rows in flight.
//! [`block_table`] builds those tables, 16 queries side by side.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::ops::Range;

use super::Level;

/// Queries per block: one AVX-512 vector of `f32`.
pub const BLOCK: usize = 16;

/// One value per query of a block, aligned to a cache line so that a vector load of it
/// touches one line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[repr(C, align(64))]
pub struct Lanes(pub [f32; BLOCK]);

/// Bytes per row of `m` codes of `nbits` each: `m` for 8 bits, `⌈m/2⌉` for 4 (subspace
/// `2i` in the low nibble of byte `i`, `2i + 1` in the high nibble).
pub fn code_bytes(m: usize, nbits: u8) -> usize {
    if nbits == 8 { m } else { m.div_ceil(2) }
}

/// `out[r] += Σ_{s ∈ subspaces} tables[s × 2^nbits + code_s(r)]`, lane by lane in
/// subspace order, for each row `r` of `codes` (`out.len()` rows of
/// [`code_bytes`]`(m, nbits)` bytes). Starting from zeros and running over consecutive
/// ranges of subspaces gives the same bits as one call over `0..m`: the partial sums
/// are stored as the `f32` they are.
///
/// # Panics
/// If `nbits` is not 4 or 8, `tables` does not hold `m × 2^nbits` vectors, `subspaces`
/// is not within `0..m`, or `codes` does not hold `out.len()` rows.
pub fn block_sums(
    tables: &[Lanes],
    codes: &[u8],
    m: usize,
    nbits: u8,
    subspaces: Range<usize>,
    out: &mut [Lanes],
) {
    block_sums_at(Level::detect(), tables, codes, m, nbits, subspaces, out)
}

/// [`block_sums`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// As [`block_sums`].
pub fn block_sums_at(
    level: Level,
    tables: &[Lanes],
    codes: &[u8],
    m: usize,
    nbits: u8,
    subspaces: Range<usize>,
    out: &mut [Lanes],
) {
    check(tables, codes, m, nbits, &subspaces, out);
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() && !subspaces.is_empty() {
        use x86 as k;
        let cb = code_bytes(m, nbits);
        let s = subspaces.clone();
        // SAFETY: `runs_here` checked at run time that the CPU has the level's features,
        // and `check` proved the shapes the kernels rely on: `m × 2^nbits` tables,
        // subspaces below `m`, and `out.len()` rows of `cb` bytes of codes.
        unsafe {
            match (level, nbits) {
                (Level::Avx512, 8) => return k::sums_avx512::<8>(tables, codes, s, cb, out),
                (Level::Avx512, _) => return k::sums_avx512::<4>(tables, codes, s, cb, out),
                (Level::Avx2, 8) => return k::sums_avx2::<8>(tables, codes, s, cb, out),
                (Level::Avx2, _) => return k::sums_avx2::<4>(tables, codes, s, cb, out),
                _ => {}
            }
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() && !subspaces.is_empty() {
        let cb = code_bytes(m, nbits);
        let s = subspaces.clone();
        // SAFETY: `runs_here` checked at run time that the CPU has NEON, and `check`
        // proved the shapes the kernel relies on (as for x86 above).
        unsafe {
            match nbits {
                8 => return neon::sums::<8>(tables, codes, s, cb, out),
                _ => return neon::sums::<4>(tables, codes, s, cb, out),
            }
        }
    }
    let _ = level;
    block_sums_scalar(tables, codes, m, nbits, subspaces, out)
}

/// The scalar reference of [`block_sums`].
///
/// # Panics
/// As [`block_sums`].
pub fn block_sums_scalar(
    tables: &[Lanes],
    codes: &[u8],
    m: usize,
    nbits: u8,
    subspaces: Range<usize>,
    out: &mut [Lanes],
) {
    check(tables, codes, m, nbits, &subspaces, out);
    let (ksub, cb) = (1usize << nbits, code_bytes(m, nbits));
    if subspaces.is_empty() {
        return;
    }
    for (o, code) in out.iter_mut().zip(codes.chunks_exact(cb)) {
        for s in subspaces.clone() {
            let t = &tables[s * ksub + code_at(code, s, nbits)].0;
            for (a, v) in o.0.iter_mut().zip(t) {
                *a += v;
            }
        }
    }
}

/// Which table entries [`block_table`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Term {
    /// `Σ_t (q_t − c_t)²`: squared distances.
    SquaredDistance,
    /// `Σ_t q_t · c_t`: inner products.
    Product,
}

/// The interleaved tables of one block of queries: `out[i][l] = Σ_t term(q[s·dsub + t][l],
/// c_i[t])` for each centroid `c_i` (`centroids` holds them back to back, `dsub` floats
/// each, `ksub` per subspace, so `s = i / ksub`), summed in order of `t` from −0 (where
/// `Iterator::sum` starts). `by_dim[t][l]` is coordinate `t` of the block's query `l`.
///
/// # Panics
/// If `dsub` or `ksub` is 0, `centroids` does not hold `out.len()` centroids, or `by_dim`
/// has fewer than `m × dsub` coordinates (`m = out.len() / ksub`).
pub fn block_table(
    by_dim: &[[f32; BLOCK]],
    centroids: &[f32],
    dsub: usize,
    ksub: usize,
    term: Term,
    out: &mut [Lanes],
) {
    block_table_at(Level::detect(), by_dim, centroids, dsub, ksub, term, out)
}

/// [`block_table`] at a given level; a level this CPU lacks runs the plain loop. The same
/// loop runs at every level, compiled for the level's instructions: Rust neither fuses a
/// multiply and an add nor reorders float adds, so every level gives the same bits.
///
/// # Panics
/// As [`block_table`].
pub fn block_table_at(
    level: Level,
    by_dim: &[[f32; BLOCK]],
    centroids: &[f32],
    dsub: usize,
    ksub: usize,
    term: Term,
    out: &mut [Lanes],
) {
    assert!(
        dsub > 0 && ksub > 0,
        "ADC tables need dsub and ksub of at least 1"
    );
    assert_eq!(
        centroids.len(),
        out.len() * dsub,
        "one centroid per table entry"
    );
    assert!(
        by_dim.len() >= out.len().div_ceil(ksub) * dsub,
        "queries too short"
    );
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        use x86 as k;
        // SAFETY: `runs_here` checked at run time that the CPU has the level's features.
        unsafe {
            match level {
                Level::Avx512 => return k::table_avx512(by_dim, centroids, dsub, ksub, term, out),
                Level::Avx2 => return k::table_avx2(by_dim, centroids, dsub, ksub, term, out),
                _ => {}
            }
        }
    }
    let _ = level;
    table_loop(by_dim, centroids, dsub, ksub, term, out)
}

/// The loop of [`block_table`], inlined into each level's compiled copy.
#[inline(always)]
pub(super) fn table_loop(
    by_dim: &[[f32; BLOCK]],
    centroids: &[f32],
    dsub: usize,
    ksub: usize,
    term: Term,
    out: &mut [Lanes],
) {
    for (i, (o, c)) in out.iter_mut().zip(centroids.chunks_exact(dsub)).enumerate() {
        let q = &by_dim[(i / ksub) * dsub..][..dsub];
        let mut acc = [-0.0f32; BLOCK];
        match term {
            Term::SquaredDistance => {
                for (qt, &cv) in q.iter().zip(c) {
                    for (a, &v) in acc.iter_mut().zip(qt) {
                        *a += (v - cv) * (v - cv);
                    }
                }
            }
            Term::Product => {
                for (qt, &cv) in q.iter().zip(c) {
                    for (a, &v) in acc.iter_mut().zip(qt) {
                        *a += v * cv;
                    }
                }
            }
        }
        o.0 = acc;
    }
}

/// The code of subspace `s` in a row's `code` bytes.
#[inline(always)]
fn code_at(code: &[u8], s: usize, nbits: u8) -> usize {
    if nbits == 8 {
        code[s] as usize
    } else {
        ((code[s / 2] >> (4 * (s % 2))) & 0xf) as usize
    }
}

fn check(
    tables: &[Lanes],
    codes: &[u8],
    m: usize,
    nbits: u8,
    subspaces: &Range<usize>,
    out: &[Lanes],
) {
    assert!(nbits == 4 || nbits == 8, "ADC codes have 4 or 8 bits");
    assert_eq!(
        tables.len(),
        m << nbits,
        "ADC tables must hold m × 2^nbits vectors"
    );
    assert!(subspaces.end <= m, "subspaces {subspaces:?} beyond m = {m}");
    assert_eq!(
        codes.len(),
        out.len() * code_bytes(m, nbits),
        "ADC codes must hold one row per output"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every level gives the scalar reference's bits, for odd and even `m`, both code
    /// widths, row counts around the kernels' groups of rows, and values whose sums round
    /// differently in another order (mixed magnitudes and signs, signed zeros).
    #[test]
    fn every_level_agrees_with_the_reference_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (m, nbits) in [(1, 8), (5, 8), (48, 8), (1, 4), (7, 4), (96, 4), (0, 8)] {
            let tables: Vec<Lanes> = (0..m << nbits)
                .map(|_| {
                    Lanes(std::array::from_fn(|_| match rng.random_range(0..8) {
                        0 => -0.0,
                        1 => 0.0,
                        2 => rng.random_range(-1e7f32..1e7),
                        _ => rng.random_range(-1f32..1.0),
                    }))
                })
                .collect();
            for rows in [0, 1, 3, 4, 7, 8, 9, 17, 64] {
                let codes: Vec<u8> = (0..rows * code_bytes(m, nbits))
                    .map(|_| rng.random())
                    .collect();
                let mut want = vec![Lanes::default(); rows];
                block_sums_scalar(&tables, &codes, m, nbits, 0..m, &mut want);
                let bits = |x: &[Lanes]| -> Vec<[u32; BLOCK]> {
                    x.iter().map(|v| v.0.map(f32::to_bits)).collect()
                };
                for level in Level::available() {
                    // In one call, and over subspace ranges one after the other.
                    for split in [m, m / 2, m.min(1)] {
                        let mut got = vec![Lanes::default(); rows];
                        block_sums_at(level, &tables, &codes, m, nbits, 0..split, &mut got);
                        block_sums_at(level, &tables, &codes, m, nbits, split..m, &mut got);
                        assert_eq!(
                            bits(&got),
                            bits(&want),
                            "{} m={m} nbits={nbits} rows {rows} split {split}",
                            level.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_level_builds_the_same_tables() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for (dsub, ksub, m) in [(1, 16, 3), (3, 16, 2), (8, 256, 2), (12, 16, 1)] {
            let by_dim: Vec<[f32; BLOCK]> = (0..m * dsub)
                .map(|_| std::array::from_fn(|_| rng.random_range(-3f32..3.0)))
                .collect();
            let centroids: Vec<f32> = (0..m * ksub * dsub)
                .map(|i| match i % 7 {
                    0 => -0.0,
                    1 => rng.random_range(-1e4f32..1e4),
                    _ => rng.random_range(-1f32..1.0),
                })
                .collect();
            for term in [Term::SquaredDistance, Term::Product] {
                let mut want = vec![Lanes::default(); m * ksub];
                table_loop(&by_dim, &centroids, dsub, ksub, term, &mut want);
                // Spot check the loop itself against the formula.
                let (i, l) = (ksub * (m - 1) + 1, 5);
                let q = |t: usize| by_dim[(m - 1) * dsub + t][l];
                let c = |t: usize| centroids[i * dsub + t];
                let direct: f32 = (0..dsub)
                    .map(|t| match term {
                        Term::SquaredDistance => (q(t) - c(t)) * (q(t) - c(t)),
                        Term::Product => q(t) * c(t),
                    })
                    .sum();
                assert_eq!(want[i].0[l].to_bits(), direct.to_bits());
                for level in Level::available() {
                    let mut got = vec![Lanes([f32::NAN; BLOCK]); m * ksub];
                    block_table_at(level, &by_dim, &centroids, dsub, ksub, term, &mut got);
                    let bits = |v: &[Lanes]| -> Vec<u32> {
                        v.iter().flat_map(|x| x.0.map(f32::to_bits)).collect()
                    };
                    assert_eq!(
                        bits(&got),
                        bits(&want),
                        "{} {term:?} dsub {dsub}",
                        level.name()
                    );
                }
            }
        }
    }

    #[test]
    fn the_reference_sums_the_selected_entries_in_order() {
        // m = 3 subspaces of 4-bit codes: row codes (2, 15, 1) packed as 0xf2, 0x01.
        let tables: Vec<Lanes> = (0..3 * 16)
            .map(|i| Lanes(std::array::from_fn(|l| (i * 100 + l) as f32)))
            .collect();
        let mut out = [Lanes::default()];
        block_sums_scalar(&tables, &[0xf2, 0x01], 3, 4, 0..3, &mut out);
        let want: [f32; BLOCK] =
            std::array::from_fn(|l| (2 * 100 + (16 + 15) * 100 + (32 + 1) * 100 + 3 * l) as f32);
        assert_eq!(out[0].0, want);
    }

    #[test]
    #[should_panic(expected = "one row per output")]
    fn ragged_codes_panic() {
        let tables = vec![Lanes::default(); 2 * 256];
        block_sums(&tables, &[1, 2, 3], 2, 8, 0..2, &mut [Lanes::default(); 2]);
    }
}
