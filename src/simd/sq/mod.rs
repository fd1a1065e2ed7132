//! The `sq:bits=B` encoder's passes over one rotated row `v`: its largest magnitude and the
//! sums of its scaled magnitudes ([`stats_at`]), the fits of the candidate steps
//! ([`grid_fits_at`]) and the codes of the chosen step ([`codes_at`]). None of them writes
//! anything but the codes: each pass reads `v` and takes the magnitudes `a[i] = |v[i]| × s`
//! (`s` a power of two, so the product is exact unless it is tiny) as it goes.
//!
//! The scalar references are the `_scalar` functions here; they are the encoder's own
//! definition (FORMAT.md, "`sq`"). Every sum is in f32 and in [`LANES`] lanes: value `i`
//! goes to lane `i % LANES`, each lane adds its values in order from 0, and the lanes are
//! added last, lane 0 first ([`lane_sum`]). The AVX2 level keeps those lanes in one
//! register, and AVX-512 runs two rows of the same length at once ([`stats2_at`],
//! [`grid_fits2_at`]) with one row's lanes in each half of a register, so both give the
//! reference's bits: Rust never fuses a
//! multiply and an add, `⌊t·a⌋` is a floor where the reference truncates to an integer
//! (the same value for the non-negative products it sees, and past `2^31` both clip to the
//! top level), and maxima do not depend on order. The lanes also keep the sums' dependent
//! adds eight apart, where one chain in order waited on each add. The codes take no sums:
//! at AVX-512 with VBMI they are made sixteen to a register and packed 64 at a time.

#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// Lanes of every sum here: value `i` goes to lane `i % LANES`.
pub const LANES: usize = 8;

/// The sum of the lanes `l`, lane 0 first, from 0.
#[inline]
pub fn lane_sum(l: [f32; LANES]) -> f32 {
    l.iter().fold(0.0, |s, &x| s + x)
}

/// The end of a [`stats_at`] pass at a SIMD level: the values `tail` past the last full
/// register (fewer than [`LANES`]) taken into the largest magnitude and the lanes `lb`,
/// `lbb` (lane `l` gets `tail[l]`, as in the scalar reference), then each sum's lanes added.
fn stats_finish(
    mut max_abs: f32,
    (mut lb, mut lbb): ([f32; LANES], [f32; LANES]),
    tail: &[f32],
    scale: f32,
) -> (f32, f32, f32) {
    for (l, &y) in tail.iter().enumerate() {
        let x = y.abs();
        max_abs = max_abs.max(x);
        let b = x * scale;
        lb[l] += b;
        lbb[l] += b * b;
    }
    (max_abs, lane_sum(lb), lane_sum(lbb))
}

/// The end of one step's [`grid_fits_at`] pass at a SIMD level: the values `tail` past the
/// last full register taken into the lanes `la`, `lm` for the scale `s` and step `1/t`,
/// then each sum's lanes added.
fn fits_finish(
    (mut la, mut lm): ([f32; LANES], [f32; LANES]),
    tail: &[f32],
    s: f32,
    t: f32,
    top: f32,
) -> (f32, f32) {
    for (l, &y) in tail.iter().enumerate() {
        let x = y.abs() * s;
        let m = ((x * t) as i32 as f32).min(top);
        la[l] += m * x;
        lm[l] += m * (m + 1.0);
    }
    (lane_sum(la), lane_sum(lm))
}

/// `(max |v|, Σ b, Σ b²)` of the row `v` for `b[i] = |v[i]| × scale`, the sums in
/// [`LANES`] lanes. `max |v|` is unscaled (a NaN in `v` may be skipped by it; it makes
/// both sums NaN).
pub fn stats_at(level: Level, v: &[f32], scale: f32) -> (f32, f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::stats_avx2(v, scale) };
    }
    let _ = level;
    stats_scalar(v, scale)
}

/// [`stats_at`] of two rows of the same length, `[a's, b's]`: at AVX-512 both in one pass,
/// row `a`'s lanes in the low half of each register and row `b`'s in the high half (each
/// lane still adds its values in order: the same bits).
pub fn stats2_at(level: Level, a: &[f32], b: &[f32], scale: f32) -> [(f32, f32, f32); 2] {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx512 && a.len() == b.len() && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
        return unsafe { x86::stats2_avx512(a, b, scale) };
    }
    [stats_at(level, a, scale), stats_at(level, b, scale)]
}

/// [`grid_fits_at`] of two rows of the same length, each with its own scale `s[r]` and
/// steps `ts[r]`, `[a's, b's]`: at AVX-512 both in one pass, as [`stats2_at`] runs them.
pub fn grid_fits2_at<const K: usize>(
    level: Level,
    a: &[f32],
    b: &[f32],
    s: [f32; 2],
    ts: [[f32; K]; 2],
    top: f32,
) -> [[(f32, f32); K]; 2] {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx512
        && a.len() == b.len()
        && level.runs_here()
        && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL, and
        // `is_x86_feature_detected` that it has FMA.
        return unsafe { x86::grid_fits2_avx512(a, b, s, ts, top) };
    }
    [
        grid_fits_at(level, a, s[0], ts[0], top),
        grid_fits_at(level, b, s[1], ts[1], top),
    ]
}

/// The scalar reference of [`stats_at`].
pub fn stats_scalar(v: &[f32], scale: f32) -> (f32, f32, f32) {
    let (mut mx, mut sb, mut sbb) = (0f32, [0f32; LANES], [0f32; LANES]);
    for (i, &y) in v.iter().enumerate() {
        let x = y.abs();
        mx = mx.max(x);
        let b = x * scale;
        sb[i % LANES] += b;
        sbb[i % LANES] += b * b;
    }
    (mx, lane_sum(sb), lane_sum(sbb))
}

/// `(Σ m·a, Σ m(m+1))` for `m = min(⌊t·a⌋, top)` over the magnitudes `a[i] = |v[i]| × s`
/// (`v` finite), for each of the `K` steps `1/t` of `ts` (each finite and positive), in
/// [`LANES`] lanes: how well the grid of step `1/t` fits `a`. All steps in one pass; the
/// fits of one step are chains of dependent adds, and `K` of them side by side overlap
/// their latencies.
pub fn grid_fits_at<const K: usize>(
    level: Level,
    v: &[f32],
    s: f32,
    ts: [f32; K],
    top: f32,
) -> [(f32, f32); K] {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::grid_fits_avx2(v, s, ts, top) };
    }
    let _ = level;
    grid_fits_scalar(v, s, ts, top)
}

/// The scalar reference of [`grid_fits_at`].
pub fn grid_fits_scalar<const K: usize>(
    v: &[f32],
    s: f32,
    ts: [f32; K],
    top: f32,
) -> [(f32, f32); K] {
    ts.map(|t| {
        let (mut ma, mut mm) = ([0f32; LANES], [0f32; LANES]);
        for (i, &y) in v.iter().enumerate() {
            let x = y.abs() * s;
            let m = ((x * t) as i32 as f32).min(top);
            ma[i % LANES] += m * x;
            mm[i % LANES] += m * (m + 1.0);
        }
        (lane_sum(ma), lane_sum(mm))
    })
}

/// The `bits`-bit codes of the row `v` (finite) for the step `1/t` (`t` finite, at least
/// 0) on the magnitudes `a[i] = |v[i]| × s`: `m = min(⌊t·a⌋, 2^(bits−1) − 1)`, code
/// `2^(bits−1) + m` for `v >= 0` and `2^(bits−1) − 1 − m` below, into `codes` (as long as
/// `v`).
pub fn codes_at(level: Level, v: &[f32], s: f32, t: f32, bits: u8, codes: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::codes_avx2(v, s, t, bits, codes) };
    }
    let _ = level;
    codes_scalar(v, s, t, bits, codes)
}

/// The scalar reference of [`codes_at`].
pub fn codes_scalar(v: &[f32], s: f32, t: f32, bits: u8, codes: &mut [u8]) {
    let half = 1u32 << (bits - 1);
    let top = (half - 1) as f32;
    for (c, &y) in codes.iter_mut().zip(v) {
        let m = (((y.abs() * s) * t) as i32 as f32).min(top) as u32;
        *c = if y >= 0.0 { half + m } else { half - 1 - m } as u8;
    }
}

/// Eight codes of `b` bits (2 to 7), one a byte of `w`, packed into the low `8b` bits of
/// the result (code `k` at bits `[kb, (k+1)b)`): pairs, then quads, then the eight.
#[inline]
pub fn pack8(w: u64, b: u32) -> u64 {
    let w = (w & 0x00ff_00ff_00ff_00ff) | ((w & 0xff00_ff00_ff00_ff00) >> (8 - b));
    let w = (w & 0x0000_ffff_0000_ffff) | ((w & 0xffff_0000_ffff_0000) >> (16 - 2 * b));
    (w & 0xffff_ffff) | ((w >> 32) << (4 * b))
}

/// Writes the `B`-bit codes `codes` densely into `out` (least significant bit first), eight
/// codes at a time.
///
/// # Panics
/// When `out` is shorter than `ceil(codes.len() × bits / 8)` bytes.
pub fn pack(codes: &[u8], bits: u8, out: &mut [u8]) {
    match bits {
        8 => out.copy_from_slice(codes),
        1 => {
            // Eight 0/1 bytes to the eight bits of one byte, byte k to bit k: the multiply
            // adds byte k shifted to bit 56 + k, with no carries between them.
            for (o, c8) in out.iter_mut().zip(codes.chunks(8)) {
                let mut w = [0u8; 8];
                w[..c8.len()].copy_from_slice(c8);
                *o = (u64::from_le_bytes(w).wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8;
            }
        }
        _ => {
            // Eight codes fill `bits` whole bytes: one word per eight, stored eight bytes
            // wide where the output has room (the next word overwrites the zero bytes past
            // its `bits`).
            let b = usize::from(bits);
            let whole = codes.len() / 8;
            for (k, c8) in codes.chunks_exact(8).enumerate() {
                let w = pack8(
                    u64::from_le_bytes(c8.try_into().expect("8 codes")),
                    bits.into(),
                );
                let o = k * b;
                if o + 8 <= out.len() {
                    out[o..o + 8].copy_from_slice(&w.to_le_bytes());
                } else {
                    out[o..o + b].copy_from_slice(&w.to_le_bytes()[..b]);
                }
            }
            let (codes, out) = (&codes[whole * 8..], &mut out[whole * b..]);
            let (mut acc, mut n, mut o) = (0u64, 0u32, 0usize);
            for &c in codes {
                acc |= u64::from(c) << n;
                n += u32::from(bits);
                if n >= 32 {
                    out[o..o + 4].copy_from_slice(&(acc as u32).to_le_bytes());
                    acc >>= 32;
                    n -= 32;
                    o += 4;
                }
            }
            for b in &mut out[o..o + (n as usize).div_ceil(8)] {
                *b = acc as u8;
                acc >>= 8;
            }
        }
    }
}

/// [`codes_at`] written packed: the codes' `bits`-bit stream ([`pack`]) into `out`
/// (`ceil(v.len() × bits / 8)` bytes), without the codes a byte each in between.
pub fn packed_codes_at(level: Level, v: &[f32], s: f32, t: f32, bits: u8, out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx512
        && level.runs_here()
        && std::arch::is_x86_feature_detected!("avx512vbmi")
    {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL, and
        // `is_x86_feature_detected` that it has VBMI.
        return unsafe { x86::packed_codes_avx512(v, s, t, bits, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::packed_codes_avx2(v, s, t, bits, out) };
    }
    let _ = level;
    packed_codes_scalar(v, s, t, bits, out)
}

/// The scalar reference of [`packed_codes_at`]: [`codes_scalar`], then [`pack`].
pub fn packed_codes_scalar(v: &[f32], s: f32, t: f32, bits: u8, out: &mut [u8]) {
    let mut codes = vec![0u8; v.len()];
    codes_scalar(v, s, t, bits, &mut codes);
    pack(&codes, bits, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// Rows of every shape the encoder meets: Gaussian-like, one outlier, exact zeros and
    /// negative zeros, tiny and huge magnitudes, lengths around the lane count.
    fn rows() -> Vec<Vec<f32>> {
        let mut rng = Rng(0x5151_2024);
        let mut out = Vec::new();
        for n in [1usize, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 384, 385, 1000] {
            let mut r: Vec<f32> = (0..n).map(|_| rng.centred()).collect();
            out.push(r.clone());
            r[n / 2] = 40.0;
            out.push(r.clone());
            for (i, x) in r.iter_mut().enumerate() {
                if i % 3 == 0 {
                    *x = if i % 2 == 0 { 0.0 } else { -0.0 };
                }
            }
            out.push(r.clone());
            out.push(r.iter().map(|x| x * 1e-30).collect());
            out.push(r.iter().map(|x| x * 3e30).collect());
        }
        out
    }

    #[test]
    fn every_level_matches_the_scalar_reference() {
        for v in rows() {
            let n = v.len();
            for l in Level::available() {
                for scale in [1.0f32, 0.5, 2f32.powi(-100), 2f32.powi(99)] {
                    let want = stats_scalar(&v, scale);
                    let got = stats_at(l, &v, scale);
                    assert_eq!(
                        (got.0.to_bits(), got.1.to_bits(), got.2.to_bits()),
                        (want.0.to_bits(), want.1.to_bits(), want.2.to_bits()),
                        "stats {} n={n} scale={scale}",
                        l.name()
                    );
                }
                let w: Vec<f32> = v.iter().rev().map(|x| -x * 3.0).collect();
                for scale in [1.0f32, 0.5, 2f32.powi(-100)] {
                    let want = [stats_scalar(&v, scale), stats_scalar(&w, scale)];
                    let b = |s: (f32, f32, f32)| (s.0.to_bits(), s.1.to_bits(), s.2.to_bits());
                    let got = stats2_at(l, &v, &w, scale);
                    assert_eq!(got.map(b), want.map(b), "stats2 {} n={n}", l.name());
                }
                let (mx, _, _) = stats_scalar(&v, 1.0);
                // The encoder's scale: a power of two that brings the largest to [1, 2).
                let s = if mx > 0.0 {
                    2f32.powi(-(mx.log2().floor() as i32))
                } else {
                    1.0
                };
                for top in [0.0f32, 1.0, 7.0, 127.0] {
                    let ts = [0.37f32, 1.0, 2.5, 17.3, 128.0, 3e38];
                    let want = grid_fits_scalar(&v, s, ts, top);
                    let got = grid_fits_at(l, &v, s, ts, top);
                    for k in 0..ts.len() {
                        assert_eq!(
                            (got[k].0.to_bits(), got[k].1.to_bits()),
                            (want[k].0.to_bits(), want[k].1.to_bits()),
                            "grid_fits {} n={n} t={} top={top}",
                            l.name(),
                            ts[k]
                        );
                    }
                    // Two rows at once score as each does alone (the row and its reverse,
                    // on steps of their own).
                    let w: Vec<f32> = v.iter().rev().map(|x| x * 0.75).collect();
                    let ts2 = ts.map(|t| t * 0.75);
                    let pair = grid_fits2_at(l, &v, &w, [s, s * 2.0], [ts, ts2], top);
                    let want2 = grid_fits_scalar(&w, s * 2.0, ts2, top);
                    let b = |f: [(f32, f32); 6]| f.map(|(x, y)| (x.to_bits(), y.to_bits()));
                    assert_eq!(b(pair[0]), b(want), "grid_fits2 a {} n={n}", l.name());
                    assert_eq!(b(pair[1]), b(want2), "grid_fits2 b {} n={n}", l.name());
                    // One step alone scores as it does among others.
                    let [one] = grid_fits_scalar(&v, s, [ts[2]], top);
                    assert_eq!(one, want[2]);
                }
                for b in 1..=8u8 {
                    for t in [0.0f32, 0.37, 1.0, 2.5, 17.3, 128.0, 1e9, 3e38] {
                        let mut c_ref = vec![0u8; n];
                        codes_scalar(&v, s, t, b, &mut c_ref);
                        let mut c = vec![0xaau8; n];
                        codes_at(l, &v, s, t, b, &mut c);
                        assert_eq!(c, c_ref, "codes {} n={n} b={b} t={t}", l.name());
                        assert!(c.iter().all(|&x| u32::from(x) < 1 << b));
                        let nb = (n * usize::from(b)).div_ceil(8);
                        let mut p_ref = vec![0u8; nb];
                        pack(&c_ref, b, &mut p_ref);
                        let mut p = vec![0x55u8; nb];
                        packed_codes_at(l, &v, s, t, b, &mut p);
                        assert_eq!(p, p_ref, "packed {} n={n} b={b} t={t}", l.name());
                        packed_codes_scalar(&v, s, t, b, &mut p);
                        assert_eq!(p, p_ref);
                    }
                }
            }
        }
    }

    #[test]
    fn sums_are_in_lanes_and_catch_values_that_are_not_finite() {
        // Value i in lane i % 8: a row whose lanes differ sums as the lanes say.
        let v: Vec<f32> = (0..20)
            .map(|i| if i % 8 == 3 { 1e8 } else { 1.0 })
            .collect();
        let (mx, sb, sbb) = stats_scalar(&v, 1.0);
        assert_eq!(mx, 1e8);
        let mut lanes = [0f32; LANES];
        for (i, &x) in v.iter().enumerate() {
            lanes[i % LANES] += x;
        }
        assert_eq!(sb.to_bits(), lane_sum(lanes).to_bits());
        assert!(sbb > 1.9e16);
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0usize, 5, 19] {
                let mut w = v.clone();
                w[at] = bad;
                for l in Level::available() {
                    let (_, sb, sbb) = stats_at(l, &w, 1.0);
                    assert!(!sb.is_finite() && !sbb.is_finite(), "{} at={at}", l.name());
                    // Either row of a pair.
                    for (r, (x, y)) in [(&w, &v), (&v, &w)].into_iter().enumerate() {
                        let (_, sb, sbb) = stats2_at(l, x, y, 1.0)[r];
                        assert!(!sb.is_finite() && !sbb.is_finite(), "{} at={at}", l.name());
                    }
                }
            }
        }
    }
}
