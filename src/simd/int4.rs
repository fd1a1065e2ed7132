//! int4 kernels: the `fit` search's integer levels and candidate scores, the pass that
//! sums `<v, q>` and `<q, q>` of one scale's codes, the quantize-and-pack of the chosen
//! codes (alone or fused with those sums), the max pass and the `gauss` rule.
//!
//! The scalar references live in [`crate::codec::int4`]. Every faster path gives their
//! bits: float partial sums keep the reference's [`crate::codec::int4::LANES`] lanes, lane
//! sets and order, with a fused multiply-add wherever the reference has one; rounding is
//! half to even after clamping; the candidate scores are exact integers.

use super::Level;
use crate::codec::int4 as reference;

/// `<v, q>` and `<q, q>` of `row` (finite) and its int4 codes at each scale `1 / invs[k]`
/// (finite and positive), into `out[k]`; `out` is as long as `invs`.
pub fn fit_dots(row: &[f32], invs: &[f32], out: &mut [(f64, f64)]) {
    fit_dots_at(Level::detect(), row, invs, out)
}

/// Packs the int4 codes of `row` (finite) at scale `s` (positive) into `out`, which has
/// `ceil(row.len() / 2)` bytes.
pub fn quantize_pack(row: &[f32], s: f32, out: &mut [u8]) {
    quantize_pack_at(Level::detect(), row, s, out)
}

/// Codes (into `q`, as long as `row`) and scale of `row` (finite) under the `gauss` rule.
pub fn encode_row_gauss(row: &[f32], q: &mut [i8]) -> f32 {
    encode_row_gauss_at(Level::detect(), row, q)
}

/// [`encode_row_gauss`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn encode_row_gauss_at(level: Level, row: &[f32], q: &mut [i8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { super::x86_int4::gauss_avx512(row, q) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { super::x86_int4::gauss_avx2(row, q) },
            _ => {}
        }
    }
    let _ = level;
    reference::encode_row_gauss(row, q)
}

/// `max_abs_bits(row)` (see [`crate::codec::int8::max_abs_bits`]) and `Σ v²` in the `fit`
/// search's lane order, in one pass: the reference is
/// [`crate::codec::int4::max_abs_sumsq`].
pub fn max_abs_sumsq(row: &[f32]) -> (u32, f64) {
    max_abs_sumsq_at(Level::detect(), row)
}

/// [`max_abs_sumsq`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn max_abs_sumsq_at(level: Level, row: &[f32]) -> (u32, f64) {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { super::x86_int4::max_abs_sumsq_avx512(row) },
            Level::Avx2 if std::arch::is_x86_feature_detected!("fma") => {
                // SAFETY: `runs_here` checked AVX2 at run time, and FMA is checked here.
                return unsafe { super::x86_int4::max_abs_sumsq_avx2(row) };
            }
            _ => {}
        }
    }
    let _ = level;
    reference::max_abs_sumsq(row)
}

/// [`fit_dots`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// If `out` is shorter than `invs`.
pub fn fit_dots_at(level: Level, row: &[f32], invs: &[f32], out: &mut [(f64, f64)]) {
    let out = &mut out[..invs.len()];
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { super::x86_int4::fit_dots_avx512(row, invs, out) },
            Level::Avx2 if std::arch::is_x86_feature_detected!("fma") => {
                // SAFETY: `runs_here` checked AVX2 at run time, and FMA is checked here.
                return unsafe { super::x86_int4::fit_dots_avx2(row, invs, out) };
            }
            _ => {}
        }
    }
    let _ = level;
    for (o, &inv) in out.iter_mut().zip(invs) {
        *o = reference::fit_dots(row, inv);
    }
}

/// [`quantize_pack`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// If `out` is shorter than `ceil(row.len() / 2)`.
pub fn quantize_pack_at(level: Level, row: &[f32], s: f32, out: &mut [u8]) {
    let out = &mut out[..row.len().div_ceil(2)];
    let inv = 1.0 / s;
    #[cfg(target_arch = "x86_64")]
    if inv.is_finite() && level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL;
            // `out` has `ceil(row.len() / 2)` bytes.
            Level::Avx512 => return unsafe { super::x86_int4::quantize_pack_avx512(row, s, out) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2; `out` has
            // `ceil(row.len() / 2)` bytes.
            Level::Avx2 => return unsafe { super::x86_int4::quantize_pack_avx2(row, s, out) },
            _ => {}
        }
    }
    let _ = (level, inv);
    reference::quantize_pack(row, s, out)
}

/// The `fit` search's levels of `row` (finite) at `c = 127 / max|v|` (finite), into `u`
/// (as long as `row`): see [`crate::codec::int4::fit_levels`].
pub fn fit_levels(row: &[f32], c: f32, u: &mut [u8]) {
    fit_levels_at(Level::detect(), row, c, u)
}

/// [`fit_levels`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn fit_levels_at(level: Level, row: &[f32], c: f32, u: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { super::x86_int4::fit_levels_avx512(row, c, u) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { super::x86_int4::fit_levels_avx2(row, c, u) },
            _ => {}
        }
    }
    let _ = level;
    reference::fit_levels(row, c, u)
}

/// `out[k]` = `(Σ u·q, Σ q²)` of levels `u` (each at most 127) and their codes at factor
/// `FIT_FACTORS[k]`, for each `k` in `ks`: see [`crate::codec::int4::fit_scores`]. Where
/// [`fit_scores_all_at`] is true, every `out[k]` is set, whatever `ks` holds.
pub fn fit_scores(u: &[u8], ks: &[usize], out: &mut [(u64, u64); 9]) {
    fit_scores_at(Level::detect(), u, ks, out)
}

/// Whether [`fit_scores_at`] scores all nine factors in one pass at `level`: AVX-512 with
/// VBMI (a 128-entry byte lookup) and VNNI (byte dot products) on this CPU.
pub fn fit_scores_all_at(level: Level) -> bool {
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512 && level.runs_here() {
        return std::arch::is_x86_feature_detected!("avx512vbmi")
            && std::arch::is_x86_feature_detected!("avx512vnni");
    }
    let _ = level;
    false
}

/// [`fit_scores`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// The integer sums are exact on every level for rows under 2.4 million dimensions (the
/// SIMD lanes are 32-bit).
pub fn fit_scores_at(level: Level, u: &[u8], ks: &[usize], out: &mut [(u64, u64); 9]) {
    #[cfg(target_arch = "x86_64")]
    if fit_scores_all_at(level) {
        // SAFETY: `fit_scores_all_at` checked at run time that the CPU has AVX-512
        // F/BW/VL, VBMI and VNNI.
        return unsafe { super::x86_int4::fit_scores_vbmi(u, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(level, Level::Avx2 | Level::Avx512) && level.runs_here() {
        for &k in ks {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            out[k] = unsafe { super::x86_int4::fit_scores_avx2(u, k) };
        }
        return;
    }
    let _ = level;
    for &k in ks {
        out[k] = reference::fit_scores(u, k);
    }
}

/// [`quantize_pack_at`] at scale `s` (with `1 / s` finite), and the [`fit_dots_at`] of
/// those codes (at `1 / s`), in one pass where the level has one.
///
/// # Panics
/// If `out` is shorter than `ceil(row.len() / 2)`.
pub fn quantize_pack_dots_at(level: Level, row: &[f32], s: f32, out: &mut [u8]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512 && level.runs_here() {
        let out = &mut out[..row.len().div_ceil(2)];
        // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL; `out`
        // has `ceil(row.len() / 2)` bytes.
        return unsafe { super::x86_int4::quantize_pack_dots_avx512(row, s, out) };
    }
    quantize_pack_at(level, row, s, out);
    let mut got = [(0f64, 0f64)];
    fit_dots_at(level, row, &[1.0 / s], &mut got);
    got[0]
}

#[cfg(test)]
mod tests {
    //! Every level this CPU runs must give the scalar references' bits, on rows of every
    //! length up to a few blocks (so each kernel's tail is hit) and on the values that break
    //! naive kernels: exact .5 ties, values at the ±7 clamp, ±0, subnormals, huge magnitudes.
    use super::*;
    use crate::test_rng::Rng;

    /// A row of `len` values of one of several kinds, chosen by `kind`.
    fn row(rng: &mut Rng, len: usize, kind: u64) -> Vec<f32> {
        let e = rng.below(250) as i32 - 140;
        (0..len)
            .map(|_| match kind {
                // Uniform in ±2^e, e from deep subnormal to near f32::MAX.
                0 => (rng.next() as i64 as f32 / i64::MAX as f32) * 2f32.powi(e.min(126)),
                // Halves and quarters up to ±9: exact ties at scale 1, codes past the clamp.
                1 => rng.sign() * rng.below(37) as f32 * 0.25,
                // Subnormals and zeros of both signs.
                2 => {
                    let bits = rng.below(0x0080_0000) as u32 * (rng.below(3) as u32 % 2);
                    f32::from_bits(bits | (rng.below(2) as u32) << 31)
                }
                // Embedding-like: small noise and a few large dimensions.
                _ => {
                    let u = rng.next() as i64 as f32 / i64::MAX as f32;
                    u * if rng.below(50) == 0 { 8.0 } else { 0.3 }
                }
            })
            .collect()
    }

    /// A row length for test case `case`: short ones, 384, or a few blocks plus a tail.
    fn case_len(rng: &mut Rng, case: u64) -> usize {
        match case % 3 {
            0 => rng.below(100) as usize,
            1 => 384,
            _ => 1 + rng.below(4) as usize * 64 + rng.below(3) as usize,
        }
    }

    #[test]
    fn every_level_matches_the_scalar_reference() {
        let levels = Level::available();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000u64 {
            let len = case_len(&mut rng, case);
            let data = row(&mut rng, len, case % 4);
            let max = crate::codec::int8::max_abs(&data);
            let mut scales = vec![1.0f32, 0.5, 3.7e-3, f32::MIN_POSITIVE];
            if max / 7.0 > 0.0 {
                scales.extend(reference::FIT_FACTORS.iter().map(|f| max / 7.0 * f));
            }
            for s in scales {
                let inv = 1.0 / s;
                let dots = reference::fit_dots(&data, inv);
                let mut want = vec![0u8; len.div_ceil(2)];
                reference::quantize_pack(&data, s, &mut want);
                for &l in &levels {
                    let ctx = format!("{} case {case} len {len} scale {s}", l.name());
                    if inv.is_finite() {
                        // One scale alone and as the last of four: both code paths.
                        let mut got = [(0f64, 0f64); 5];
                        fit_dots_at(l, &data, &[inv], &mut got);
                        fit_dots_at(l, &data, &[1.0, 0.5, 2.0, inv], &mut got[1..]);
                        for g in [got[0], got[4]] {
                            assert_eq!(g.0.to_bits(), dots.0.to_bits(), "vq {ctx}");
                            assert_eq!(g.1.to_bits(), dots.1.to_bits(), "qq {ctx}");
                        }
                    }
                    let mut got = vec![0xaau8; len.div_ceil(2)];
                    quantize_pack_at(l, &data, s, &mut got);
                    assert_eq!(got, want, "quantize_pack {ctx}: {data:?}");
                }
            }
        }
    }

    #[test]
    fn fit_levels_scores_and_fused_pack_match_the_scalar_reference_on_every_level() {
        let mut rng = Rng(0x3c6e_f372_fe94_f82b);
        for case in 0..3000u64 {
            let len = case_len(&mut rng, case);
            let data = row(&mut rng, len, case % 4);
            let max = crate::codec::int8::max_abs(&data);
            let c = f32::from(reference::FIT_U) / max;
            if !c.is_finite() {
                continue;
            }
            let mut want_u = vec![0u8; len];
            reference::fit_levels(&data, c, &mut want_u);
            assert!(want_u.iter().all(|&x| x <= 127), "case {case}");
            // The levels as stored, and levels of every value (each count and tail).
            let mut all_u: Vec<u8> = (0..len).map(|i| (i * 37 % 128) as u8).collect();
            all_u.extend(0..128u8);
            let ks = [0usize, 1, 2, 3, 4, 5, 6, 7, 8];
            for l in Level::available() {
                let ctx = format!("{} case {case} len {len}", l.name());
                let mut u = vec![0xffu8; len];
                fit_levels_at(l, &data, c, &mut u);
                assert_eq!(u, want_u, "levels {ctx}: {data:?}");
                for levels in [&want_u, &all_u] {
                    let mut got = [(0u64, 0u64); 9];
                    fit_scores_at(l, levels, &ks, &mut got);
                    for k in ks {
                        assert_eq!(got[k], reference::fit_scores(levels, k), "scores {k} {ctx}");
                    }
                }
                for f in reference::FIT_FACTORS {
                    let s = max / 7.0 * f;
                    if !(1.0 / s).is_finite() {
                        continue;
                    }
                    let mut want = vec![0u8; len.div_ceil(2)];
                    reference::quantize_pack(&data, s, &mut want);
                    let dots = reference::fit_dots(&data, 1.0 / s);
                    let mut got = vec![0xaau8; len.div_ceil(2)];
                    let d = quantize_pack_dots_at(l, &data, s, &mut got);
                    assert_eq!(got, want, "fused pack {ctx}");
                    assert_eq!(d.0.to_bits(), dots.0.to_bits(), "fused vq {ctx}");
                    assert_eq!(d.1.to_bits(), dots.1.to_bits(), "fused qq {ctx}");
                }
            }
        }
    }

    #[test]
    fn fit_tables_agree_and_code_the_scaled_level() {
        let (codes, thresholds) = (reference::fit_codes(), reference::fit_thresholds());
        for (k, &f) in reference::FIT_FACTORS.iter().enumerate() {
            assert_eq!(codes[k][0], 0);
            assert_eq!(codes[k][127], 7, "max|v| codes to 7 at every factor");
            for (u, &code) in codes[k].iter().enumerate() {
                let by_count = thresholds[k]
                    .iter()
                    .filter(|&&t| u >= usize::from(t))
                    .count();
                assert_eq!(usize::from(code), by_count, "factor {k} level {u}");
                // The code of the level's value u/127 × max|v| at scale max|v|/7 × f.
                let y = u as f64 / 127.0 * 7.0 / f64::from(f);
                assert!((f64::from(code) - y.min(7.0)).abs() <= 0.5 + 1e-9);
            }
        }
    }

    #[test]
    fn max_abs_sumsq_matches_the_scalar_reference_on_every_level() {
        let mut rng = Rng(0x6a09_e667_f3bc_c908);
        for case in 0..3000u64 {
            let len = case_len(&mut rng, case);
            let mut data = row(&mut rng, len, case % 4);
            if case % 50 == 7 && len > 0 {
                data[rng.below(len as u64) as usize] = [f32::NAN, f32::INFINITY][case as usize % 2];
            }
            let (bits, ss) = reference::max_abs_sumsq(&data);
            assert_eq!(bits, crate::codec::int8::max_abs_bits(&data));
            for l in Level::available() {
                let (b, s) = max_abs_sumsq_at(l, &data);
                let ctx = format!("{} case {case} len {len}", l.name());
                assert_eq!(b, bits, "max {ctx}");
                if bits < crate::codec::int8::INF_BITS {
                    assert_eq!(s.to_bits(), ss.to_bits(), "sum {ctx}: {data:?}");
                }
            }
        }
    }

    #[test]
    fn gauss_rule_matches_the_scalar_reference_on_every_level() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..2000u64 {
            let len = 1 + match case % 3 {
                0 => rng.below(100) as usize,
                1 => 383,
                _ => rng.below(4) as usize * 64 + rng.below(3) as usize,
            };
            let data = row(&mut rng, len, case % 4);
            let mut want = vec![0i8; len];
            let scale = reference::encode_row_gauss(&data, &mut want);
            for l in Level::available() {
                let mut got = vec![9i8; len];
                let s = encode_row_gauss_at(l, &data, &mut got);
                let ctx = format!("{} case {case} len {len}", l.name());
                assert_eq!(s.to_bits(), scale.to_bits(), "scale {ctx}");
                assert_eq!(got, want, "codes {ctx}: {data:?}");
            }
        }
    }

    #[test]
    fn codes_round_half_to_even_and_clamp_on_every_level() {
        // scale 1: the codes are rint of the values, clamped to ±7.
        let mut data = vec![0f32; 40];
        let cases = [
            0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 6.5, -6.5, 7.5, -9.0, -0.0, 3.49,
        ];
        data[..cases.len()].copy_from_slice(&cases);
        let want: [i8; 12] = [0, 2, 2, 0, -2, -2, 6, -6, 7, -7, 0, 3];
        let magnitudes: f64 = want.iter().map(|&q| f64::from(q).powi(2)).sum();
        let vq: f64 = cases
            .iter()
            .zip(want)
            .map(|(&x, q)| f64::from(x) * f64::from(q))
            .sum();
        for l in Level::available() {
            let mut got = vec![0u8; 20];
            quantize_pack_at(l, &data, 1.0, &mut got);
            let codes: Vec<i8> = (0..cases.len())
                .map(|i| ((got[i / 2] >> (4 * (i % 2))) << 4) as i8 >> 4)
                .collect();
            assert_eq!(codes, want, "{}", l.name());
            assert!(
                got[cases.len() / 2..].iter().all(|&b| b == 0),
                "{}",
                l.name()
            );
            let mut got = [(0f64, 0f64)];
            fit_dots_at(l, &data, &[1.0], &mut got);
            let [(v, q)] = got;
            assert_eq!(q, magnitudes, "{}", l.name());
            assert!((v - vq).abs() <= 1e-6 * vq, "{}: {v} vs {vq}", l.name());
        }
    }

    #[test]
    fn odd_rows_leave_the_last_high_nibble_zero() {
        for len in [1usize, 15, 17, 33, 383] {
            let data = vec![-7.0f32; len];
            for l in Level::available() {
                let mut got = vec![0xffu8; len.div_ceil(2)];
                quantize_pack_at(l, &data, 1.0, &mut got);
                assert_eq!(got[len / 2], 0x09, "{} len {len}", l.name());
                assert!(got[..len / 2].iter().all(|&b| b == 0x99), "{}", l.name());
            }
        }
    }
}
