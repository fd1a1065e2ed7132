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
