//! Integer dot products for searching int8 and int4 codes: a query quantized to int8
//! against rows of int8 codes, exact in i32 (so every level gives the same sums), and the
//! unpacking of int4 nibbles to int8.
//!
//! Codes are at most 127 in magnitude (both codecs clamp to ±127 or ±7), and the query is
//! quantized the same way, so no sum of a pair overflows the i16 lanes of `pmaddubsw`
//! (`2 × 127 × 127 = 32258`), and a row of up to 133,000 dimensions cannot overflow i32.
//! The scalar references are [`dot_rows_scalar`] and [`unpack_i4_scalar`].
//!
//! The AVX2 path multiplies `|q|` (unsigned) by `sign(q) · x` (`pmaddubsw`), then adds
//! pairs of i16 into i32 (`pmaddwd`): 32 dimensions per step. AVX-512 VNNI (`vpdpbusd`)
//! would fuse the two, but the CPUs this was written and tested on lack it, so it is not
//! here (an untested kernel is not shipped).
//!
//! The NEON path multiplies byte pairs into i16 (`smull`/`smlal2`) and adds those pairs
//! into i32 (`sadalp`), 16 dimensions per step; where the CPU has the `dotprod` extension
//! (detected at run time) `sdot` does both in one instruction.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// `out[r] = Σ_j q[j] · codes[r][j]` for each row `r` of `codes` (`q.len()` codes per
/// row), at the detected level. Every value must be in `[-127, 127]`.
pub fn dot_rows(q: &[i8], codes: &[i8], out: &mut [i32]) {
    dot_rows_at(Level::detect(), q, codes, out)
}

/// [`dot_rows`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// If `out` has fewer entries than `codes` has rows.
pub fn dot_rows_at(level: Level, q: &[i8], codes: &[i8], out: &mut [i32]) {
    let d = q.len();
    if d == 0 {
        out.fill(0);
        return;
    }
    assert!(out.len() >= codes.len() / d, "dot_rows: short out");
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        for (row, o) in codes.chunks_exact(d).zip(out.iter_mut()) {
            // SAFETY: AVX2 was detected at run time (`runs_here`); `row` and `q` have the
            // same length.
            *o = unsafe { x86::dot_avx2(q, row) };
        }
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time (`runs_here`); `q` is not empty and `out`
        // was checked above.
        unsafe { neon::dot_rows(q, codes, out) };
        return;
    }
    let _ = level;
    dot_rows_scalar(q, codes, out)
}

/// The scalar reference of [`dot_rows`].
pub fn dot_rows_scalar(q: &[i8], codes: &[i8], out: &mut [i32]) {
    let d = q.len();
    if d == 0 {
        out.fill(0);
        return;
    }
    for (row, o) in codes.chunks_exact(d).zip(out.iter_mut()) {
        *o = dot_scalar(q, row);
    }
}

/// `Σ a[j] · b[j]` in i32.
#[inline]
pub fn dot_scalar(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum()
}

/// Unpacks `dims` int4 codes (low nibble first, 4-bit two's complement, as the `int4`
/// codec packs them) from `packed` into `out`, at the detected level.
pub fn unpack_i4(packed: &[u8], out: &mut [i8]) {
    unpack_i4_at(Level::detect(), packed, out)
}

/// [`unpack_i4`] at a given level.
///
/// # Panics
/// If `packed` holds fewer than `out.len()` nibbles.
pub fn unpack_i4_at(level: Level, packed: &[u8], out: &mut [i8]) {
    assert!(packed.len() * 2 >= out.len(), "unpack_i4: short input");
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: AVX2 was detected at run time; the lengths were checked above.
        unsafe { x86::unpack_i4_avx2(packed, out) };
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time; the lengths were checked above.
        unsafe { neon::unpack_i4(packed, out) };
        return;
    }
    let _ = level;
    unpack_i4_scalar(packed, out)
}

/// The scalar reference of [`unpack_i4`].
pub fn unpack_i4_scalar(packed: &[u8], out: &mut [i8]) {
    for (j, o) in out.iter_mut().enumerate() {
        let b = packed[j / 2] >> (4 * (j % 2));
        // Sign-extend the low nibble.
        *o = ((b << 4) as i8) >> 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn codes(rng: &mut Rng, n: usize, lim: u64) -> Vec<i8> {
        (0..n)
            .map(|_| (rng.below(2 * lim + 1) as i64 - lim as i64) as i8)
            .collect()
    }

    #[test]
    fn every_level_gives_the_reference_sums() {
        let mut rng = Rng(0x1d07);
        for d in [1usize, 7, 31, 32, 33, 63, 64, 100, 384, 1000] {
            let rows = 1 + rng.below(9) as usize;
            let q = codes(&mut rng, d, 127);
            let mut x = codes(&mut rng, rows * d, 127);
            // The extremes too: every pair at ±127.
            if d > 3 {
                x[..d]
                    .iter_mut()
                    .zip(&q)
                    .for_each(|(v, &a)| *v = if a < 0 { -127 } else { 127 });
            }
            let mut want = vec![0i32; rows];
            dot_rows_scalar(&q, &x, &mut want);
            let plain: Vec<i32> = x
                .chunks_exact(d)
                .map(|r| r.iter().zip(&q).map(|(&a, &b)| a as i32 * b as i32).sum())
                .collect();
            assert_eq!(want, plain);
            for level in Level::available() {
                let mut got = vec![i32::MIN; rows];
                dot_rows_at(level, &q, &x, &mut got);
                assert_eq!(got, want, "{level:?} at {d} dims");
            }
        }
    }

    #[test]
    fn every_level_unpacks_as_the_reference() {
        let mut rng = Rng(0x4b17);
        for d in [1usize, 2, 3, 31, 63, 64, 65, 129, 384] {
            let packed: Vec<u8> = (0..d.div_ceil(2)).map(|_| rng.below(256) as u8).collect();
            let mut want = vec![0i8; d];
            unpack_i4_scalar(&packed, &mut want);
            for (j, &w) in want.iter().enumerate() {
                let nib = (packed[j / 2] >> (4 * (j % 2))) & 15;
                assert_eq!(w, if nib >= 8 { nib as i8 - 16 } else { nib as i8 });
            }
            for level in Level::available() {
                let mut got = vec![99i8; d];
                unpack_i4_at(level, &packed, &mut got);
                assert_eq!(got, want, "{level:?} at {d} dims");
            }
        }
    }
}
