//! int8 kernels: the max-abs reduction, quantization and dequantization of one row, and
//! the dot product of a float query with one row of codes (search's rescoring).
//!
//! The scalar references are [`max_abs_bits_scalar`], [`quantize_scalar`],
//! [`dequantize_scalar`] and [`dot_codes_scalar`]. Every faster path must agree with them bit for bit on finite
//! input, which the codec contract guarantees: `v / scale` stays a true float32 division
//! (a reciprocal multiply can differ by one ulp), rounding is half to even, and values are
//! clamped to ±127 first.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// The bits of +Inf: [`max_abs_bits`] is at least this exactly when a value is NaN or ±Inf.
pub const INF_BITS: u32 = 0x7f80_0000;

/// Adding then subtracting 1.5·2²³ rounds a float32 in (-2²², 2²²) to an integer, half to
/// even, in the default rounding mode; afterwards the low mantissa bits hold that integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `max_j (bits(row[j]) & 0x7fff_ffff)`, 0 for an empty row: the bits of `max_j |row[j]|`
/// when the row is finite, and at least [`INF_BITS`] when it is not.
pub fn max_abs_bits(row: &[f32]) -> u32 {
    max_abs_bits_at(Level::detect(), row)
}

/// Quantizes `row` with `scale` into `out` (over the shorter of the two lengths).
/// `row` must be finite and `scale` its int8 scale, `max|row| / 127` (or 1 for a zero row).
pub fn quantize(row: &[f32], scale: f32, out: &mut [i8]) {
    quantize_at(Level::detect(), row, scale, out)
}

/// `out[j] = f32(codes[j]) * scale` (over the shorter of the two lengths).
pub fn dequantize(codes: &[i8], scale: f32, out: &mut [f32]) {
    dequantize_at(Level::detect(), codes, scale, out)
}

/// `(Σ q_j · codes_j, Σ codes_j²)` over the shorter of the two lengths: a float query
/// against one row of int8 codes without decoding it (the row's scale is applied by the
/// caller: `q·x̂ = s · dot`, `‖x̂‖² = s² · sumsq`). The float sum runs in the fixed order of
/// [`dot_codes_scalar`], so every level gives the same bits.
pub fn dot_codes(q: &[f32], codes: &[i8]) -> (f32, i32) {
    dot_codes_at(Level::detect(), q, codes)
}

/// [`dot_codes`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn dot_codes_at(level: Level, q: &[f32], codes: &[i8]) -> (f32, i32) {
    let n = q.len().min(codes.len());
    let (q, codes) = (&q[..n], &codes[..n]);
    #[cfg(target_arch = "x86_64")]
    if matches!(level, Level::Avx2 | Level::Avx512) && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 CPUs have
        // it too); the lengths are equal.
        return unsafe { x86::dot_codes_avx2(q, codes) };
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has NEON; the lengths are
        // equal.
        return unsafe { neon::dot_codes(q, codes) };
    }
    let _ = level;
    dot_codes_scalar(q, codes)
}

/// The scalar reference of [`dot_codes`]: products `q_j · f32(c_j)` (rounded, then added,
/// never fused) summed into 16 partial sums by `j mod 16` over the whole blocks of 16,
/// which `reduce16` adds in a fixed tree, then the tail added in order. The sum of
/// squares is exact in i32 (at most `127² · 133,000` for any row under 2³¹).
pub fn dot_codes_scalar(q: &[f32], codes: &[i8]) -> (f32, i32) {
    let n = q.len().min(codes.len());
    let body = n / 16 * 16;
    let mut acc = [0f32; 16];
    for (qb, cb) in q[..body]
        .chunks_exact(16)
        .zip(codes[..body].chunks_exact(16))
    {
        for t in 0..16 {
            acc[t] += qb[t] * f32::from(cb[t]);
        }
    }
    let mut s = reduce16(&acc);
    for j in body..n {
        s += q[j] * f32::from(codes[j]);
    }
    let sq = codes[..n]
        .iter()
        .map(|&c| i32::from(c) * i32::from(c))
        .sum();
    (s, sq)
}

/// `((a₀+a₈ + a₄+a₁₂) + (a₂+a₁₀ + a₆+a₁₄)) + ((a₁+a₉ + a₅+a₁₃) + (a₃+a₁₁ + a₇+a₁₅))`:
/// the order a 2 × 8-lane accumulator folds in (the two vectors, then the halves, then
/// pairs).
#[inline]
pub(crate) fn reduce16(a: &[f32; 16]) -> f32 {
    let v: [f32; 8] = std::array::from_fn(|t| a[t] + a[t + 8]);
    let w = [v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]];
    let x = [w[0] + w[2], w[1] + w[3]];
    x[0] + x[1]
}

/// [`max_abs_bits`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn max_abs_bits_at(level: Level, row: &[f32]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::max_abs_bits_avx512(row) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::max_abs_bits_avx2(row) },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time.
        return unsafe { neon::max_abs_bits(row) };
    }
    let _ = level;
    max_abs_bits_scalar(row)
}

/// [`quantize`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn quantize_at(level: Level, row: &[f32], scale: f32, out: &mut [i8]) {
    let n = row.len().min(out.len());
    let (row, out) = (&row[..n], &mut out[..n]);
    if scale == 0.0 {
        // The kernels would turn 0/0 into a clamped ±127; the reference defines 0.
        return quantize_scalar(row, scale, out);
    }
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::quantize_avx512(row, scale, out) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::quantize_avx2(row, scale, out) },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time.
        return unsafe { neon::quantize(row, scale, out) };
    }
    let _ = level;
    quantize_scalar(row, scale, out)
}

/// [`dequantize`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn dequantize_at(level: Level, codes: &[i8], scale: f32, out: &mut [f32]) {
    let n = codes.len().min(out.len());
    let (codes, out) = (&codes[..n], &mut out[..n]);
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::dequantize_avx512(codes, scale, out) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::dequantize_avx2(codes, scale, out) },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time.
        return unsafe { neon::dequantize(codes, scale, out) };
    }
    let _ = level;
    dequantize_scalar(codes, scale, out)
}

/// `max_j (bits(row[j]) & 0x7fff_ffff)`: the scalar reference of [`max_abs_bits`].
///
/// Clearing the sign bit leaves `|x|`'s bits, and non-negative floats order as their bits
/// do, so for a finite row this is the bits of `max_j |row[j]|`; NaN and ±Inf have the
/// largest exponent, so the same pass that finds the scale also rejects them.
pub fn max_abs_bits_scalar(row: &[f32]) -> u32 {
    row.iter().fold(0, |m, &x| m.max(x.to_bits() & 0x7fff_ffff))
}

/// Quantizes one row given its scale: the scalar reference of [`quantize`].
///
/// Clamping before the magic-number rounding keeps the result in i8 range without a
/// saturating cast, which would stop the loop from vectorising; it never changes a result,
/// because `|v / scale| <= 127` up to one ulp.
pub fn quantize_scalar(row: &[f32], scale: f32, out: &mut [i8]) {
    if scale == 0.0 {
        // max|v| is so small that max|v|/127 underflows to zero. numpy then divides by zero
        // and casts the resulting ±inf/nan to int8, which yields 0 on x86-64; we match that.
        out.fill(0);
        return;
    }
    let magic_bits = ROUND_MAGIC.to_bits() as i32;
    for (o, &x) in out.iter_mut().zip(row) {
        let y = (x / scale).clamp(-127.0, 127.0) + ROUND_MAGIC;
        *o = (y.to_bits() as i32 - magic_bits) as i8;
    }
}

/// Reconstructs one row: the scalar reference of [`dequantize`].
pub fn dequantize_scalar(codes: &[i8], scale: f32, out: &mut [f32]) {
    for (o, &q) in out.iter_mut().zip(codes) {
        *o = f32::from(q) * scale;
    }
}

#[cfg(test)]
mod tests {
    //! Every level this CPU runs must give the scalar reference's bits, on random rows of
    //! every length up to a few vectors (so each kernel's tail is hit) and on the values
    //! that break naive kernels: exact .5 ties, ±0, subnormals, huge magnitudes.
    use super::*;
    use crate::test_rng::Rng;

    /// The int8 codec's scale for a row whose largest magnitude is `max`.
    fn scale_of_max(max: f32) -> f32 {
        if max == 0.0 { 1.0 } else { max / 127.0 }
    }

    /// `max_j |row[j]|`, the obvious way.
    fn max_abs(row: &[f32]) -> f32 {
        row.iter().fold(0f32, |m, &x| m.max(x.abs()))
    }

    /// A row of `len` values of one of several kinds, chosen by `kind`.
    fn row(rng: &mut Rng, len: usize, kind: u64) -> Vec<f32> {
        let e = rng.below(250) as i32 - 140;
        let mut v: Vec<f32> = (0..len)
            .map(|_| match kind {
                // Uniform in ±2^e, e from deep subnormal to near f32::MAX.
                0 => (rng.next() as i64 as f32 / i64::MAX as f32) * 2f32.powi(e.min(126)),
                // Exact ties: the max is 127·2^k so the scale is 2^k and v/scale = n + 0.5.
                1 => {
                    let k = (e / 2).clamp(-100, 100);
                    let n = rng.below(254) as f32 - 127.0;
                    // The row's first value is 127·2^k (below), pinning the scale.
                    let v = if rng.below(2) == 0 {
                        n + 0.5
                    } else {
                        -(n + 0.5)
                    };
                    v.clamp(-127.0, 127.0) * 2f32.powi(k)
                }
                // Subnormals and zeros of both signs.
                2 => {
                    let bits = rng.below(0x0080_0000) as u32 * (rng.below(3) as u32 % 2);
                    f32::from_bits(bits | (rng.below(2) as u32) << 31)
                }
                // Huge values next to tiny ones.
                _ => match rng.below(3) {
                    0 => f32::MAX * if rng.below(2) == 0 { 1.0 } else { -1.0 },
                    1 => f32::from_bits(rng.below(0x7f80_0000) as u32),
                    _ => -f32::from_bits(rng.below(0x7f80_0000) as u32),
                },
            })
            .collect();
        if kind == 1 && len > 0 {
            v[0] = 127.0 * 2f32.powi((e / 2).clamp(-100, 100));
        }
        v
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn every_level_matches_the_scalar_reference() {
        let levels = Level::available();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for case in 0..3000u64 {
            let len = match case % 3 {
                0 => rng.below(200) as usize,
                1 => 384,
                _ => 1 + rng.below(4) as usize * 64 + rng.below(3) as usize,
            };
            let data = row(&mut rng, len, case % 4);
            let max = max_abs(&data);
            let max_bits = max_abs_bits_scalar(&data);
            assert_eq!(max_bits, max.to_bits(), "reference case {case}");
            let scale = scale_of_max(max);
            let mut want = vec![0i8; len];
            quantize_scalar(&data, scale, &mut want);
            let mut back = vec![0f32; len];
            dequantize_scalar(&want, scale, &mut back);
            for &l in &levels {
                let ctx = format!("{} case {case} len {len}", l.name());
                assert_eq!(max_abs_bits_at(l, &data), max_bits, "max_abs_bits {ctx}");
                let mut got = vec![0i8; len];
                quantize_at(l, &data, scale, &mut got);
                assert_eq!(got, want, "quantize {ctx}: {data:?}");
                let mut out = vec![0f32; len];
                dequantize_at(l, &want, scale, &mut out);
                assert_eq!(bits(&out), bits(&back), "dequantize {ctx}");
            }
        }
    }

    #[test]
    fn max_abs_bits_flags_every_non_finite_value_on_every_level() {
        let bad = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7f80_0001),
            f32::from_bits(0xffc0_0001),
        ];
        for len in [1usize, 7, 8, 31, 32, 33, 63, 64, 65, 130, 384] {
            let mut data: Vec<f32> = (0..len).map(|i| -f32::MAX * (i % 2) as f32).collect();
            for l in Level::available() {
                assert!(
                    max_abs_bits_at(l, &data) < INF_BITS,
                    "{} len {len}",
                    l.name()
                );
            }
            for at in 0..len {
                for b in bad {
                    let keep = std::mem::replace(&mut data[at], b);
                    for l in Level::available() {
                        let got = max_abs_bits_at(l, &data);
                        assert!(got >= INF_BITS, "{} {b} at {at}/{len}", l.name());
                    }
                    data[at] = keep;
                }
            }
        }
    }

    /// Values a few ulps either side of `h × scale` for half-integers `h` and scales that
    /// are not powers of two: where `v × (1/scale)` and `v / scale` can round apart, so a
    /// kernel that multiplies by the reciprocal (faster-looking, and wrong) fails here.
    /// (Tried: a multiply with a division fallback next to ties was also slower on Zen 4,
    /// 29 against 35 GiB/s, because the tie check costs more than the division.)
    #[test]
    fn near_ties_match_the_true_division_on_every_level() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut apart = 0;
        for case in 0..4000 {
            let e = rng.below(200) as i32 - 100;
            let max = (1.0 + rng.below(1 << 23) as f32 / (1 << 23) as f32) * 2f32.powi(e);
            let scale = scale_of_max(max);
            let mut row = vec![max];
            while row.len() < 384 {
                let h = rng.below(254) as f32 - 126.5;
                let v = h * scale;
                let ulps = rng.below(9) as i32 - 4;
                let bits = (v.to_bits() as i32 + ulps) as u32;
                let v = f32::from_bits(bits);
                if v.is_finite() && v.abs() <= max {
                    apart += usize::from(((v * (1.0 / scale)) - v / scale).abs() > 0.0);
                    row.push(v);
                }
            }
            let mut want = vec![0i8; row.len()];
            quantize_scalar(&row, scale, &mut want);
            for l in Level::available() {
                let mut got = vec![0i8; row.len()];
                quantize_at(l, &row, scale, &mut got);
                assert_eq!(got, want, "{} case {case} scale {scale:e}", l.name());
            }
        }
        // The multiply and the division must really disagree somewhere, or this tests nothing.
        assert!(apart > 1000, "{apart}");
    }

    #[test]
    fn ties_round_half_to_even_on_every_level() {
        // scale 1.0: the codes are rint of the values themselves.
        let mut data = vec![127.0f32; 64];
        let cases = [0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.5, -3.5];
        data[..cases.len()].copy_from_slice(&cases);
        let want = [0i8, 2, 2, 0, -2, -2, 126, -126, 4, -4];
        for l in Level::available() {
            let mut got = vec![0i8; data.len()];
            quantize_at(l, &data, 1.0, &mut got);
            assert_eq!(&got[..want.len()], &want, "{}", l.name());
            assert!(got[want.len()..].iter().all(|&q| q == 127), "{}", l.name());
        }
    }

    #[test]
    fn every_code_dequantizes_exactly_on_every_level() {
        let codes: Vec<i8> = (i8::MIN..=i8::MAX).collect();
        for scale in [1.0f32, 0.0, f32::MIN_POSITIVE, 1e-42, 3.7e-3, 2.68e36] {
            let mut want = vec![0f32; codes.len()];
            dequantize_scalar(&codes, scale, &mut want);
            for l in Level::available() {
                let mut got = vec![0f32; codes.len()];
                dequantize_at(l, &codes, scale, &mut got);
                assert_eq!(bits(&got), bits(&want), "{} scale {scale}", l.name());
            }
        }
    }

    #[test]
    fn underflowed_scale_gives_zero_codes_on_every_level() {
        let data = vec![f32::from_bits(1); 70];
        assert_eq!(scale_of_max(max_abs(&data)), 0.0);
        for l in Level::available() {
            let mut got = vec![5i8; data.len()];
            quantize_at(l, &data, 0.0, &mut got);
            assert!(got.iter().all(|&q| q == 0), "{}", l.name());
        }
    }

    #[test]
    fn dot_codes_has_the_reference_bits_on_every_level() {
        let mut rng = Rng(0xd07c_0de5);
        for n in (0..80).chain([383, 384, 385, 1000]) {
            let q: Vec<f32> = (0..n)
                .map(|_| rng.below(20001) as f32 / 7919.0 - 1.26)
                .collect();
            let c: Vec<i8> = (0..n)
                .map(|_| (rng.below(255) as i32 - 127) as i8)
                .collect();
            let want = dot_codes_scalar(&q, &c);
            // The reference is the dot product of the decoded row, up to rounding.
            let exact: f64 = q
                .iter()
                .zip(&c)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let mag: f64 = q
                .iter()
                .zip(&c)
                .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                .sum();
            assert!(
                (f64::from(want.0) - exact).abs() <= 1e-5 * (1.0 + mag),
                "n={n}"
            );
            let sq: i32 = c.iter().map(|&x| i32::from(x) * i32::from(x)).sum();
            assert_eq!(want.1, sq, "n={n}");
            for l in Level::available() {
                let got = dot_codes_at(l, &q, &c);
                assert_eq!(
                    (got.0.to_bits(), got.1),
                    (want.0.to_bits(), want.1),
                    "{} n={n}",
                    l.name()
                );
            }
        }
        // ±127 everywhere: the largest sums of squares.
        let c = vec![-127i8; 4096];
        let q = vec![1.0f32; 4096];
        for l in Level::available() {
            assert_eq!(dot_codes_at(l, &q, &c), (-127.0 * 4096.0, 127 * 127 * 4096));
        }
    }

    #[test]
    fn the_wide_levels_exist_where_the_cpu_has_them() {
        // Guards against the agreement tests passing vacuously through a broken detection.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            assert!(Level::available().contains(&Level::Avx2));
            assert!(Level::best() >= Level::Avx2);
        }
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("neon") {
            assert_eq!(Level::best(), Level::Neon);
        }
    }
}
