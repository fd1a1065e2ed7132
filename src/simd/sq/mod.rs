//! The `sq:bits=B` encoder's passes over one rotated row: the magnitudes, norm and largest
//! magnitude ([`stats_at`]), the magnitudes relative to the largest ([`scale_at`]), the fit of
//! one candidate step ([`grid_fit_at`]) and the codes of the chosen step ([`codes_at`]).
//!
//! The scalar references are the `_scalar` functions here; they are the encoder's own
//! definition (FORMAT.md, "`sq`"). The AVX2 level (also used at AVX-512) gives their bits:
//! sums the reference adds one value after another (the row's `Σ v²` and `<L, v>` in f64,
//! `Σ a` in f32) are still added one value after another, in order, from products computed
//! eight at a time (each product of two floats is exact in f64, or the same f32 multiply);
//! the fit's partial sums keep the reference's eight lanes and their order; `⌊t·a⌋` is a
//! floor where the reference truncates to an integer, which is the same value for the
//! non-negative finite products it sees (and past `2^31` both clip to the top level);
//! maxima and integer sums do not depend on order. Rust never fuses a multiply and an add.
//! The encoder's groups of eight rows add those ordered sums with one row a vector lane
//! ([`sums_sq_abs_at`], [`dots_in_order_at`]): each lane still adds its row's values one
//! after another, and the two registers of four rows each run side by side: eight rows for
//! one add's latency.

#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// Lanes of [`grid_fit_at`]'s partial sums: value `i` goes to lane `i % LANES`.
pub const LANES: usize = 8;

/// The magnitudes `a[i] = |v[i]|` of the row `v` (finite), and `(Σ v², max |v|)` (the
/// sum in f64, value after value in order).
pub fn stats_at(level: Level, v: &[f32], a: &mut [f32]) -> (f64, f32) {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::stats_avx2(v, a) };
    }
    let _ = level;
    stats_scalar(v, a)
}

/// The scalar reference of [`stats_at`].
pub fn stats_scalar(v: &[f32], a: &mut [f32]) -> (f64, f32) {
    let (mut sum_sq, mut max_abs) = (0f64, 0f32);
    for (x, &y) in a.iter_mut().zip(v) {
        *x = y.abs();
        sum_sq += f64::from(y) * f64::from(y);
        max_abs = max_abs.max(*x);
    }
    (sum_sq, max_abs)
}

/// Replaces each magnitude `a[i]` by `(a[i] × inv)` (in f64, rounded to f32) and returns
/// their f32 sum, value after value.
pub fn scale_at(level: Level, a: &mut [f32], inv: f64) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::scale_avx2(a, inv) };
    }
    let _ = level;
    scale_scalar(a, inv)
}

/// The scalar reference of [`scale_at`].
pub fn scale_scalar(a: &mut [f32], inv: f64) -> f32 {
    a.iter_mut().for_each(|x| *x = (f64::from(*x) * inv) as f32);
    a.iter().sum()
}

/// `(Σ m·a, Σ m(m+1))` for `m = min(⌊t·a⌋, top)` over the magnitudes `a` (finite, at least
/// 0), for a step `1/t` (`t` finite and positive), in [`LANES`] f32 lanes added in lane
/// order: how well the grid of step `1/t` fits `a`.
pub fn grid_fit_at(level: Level, a: &[f32], t: f32, top: f32) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::grid_fit_avx2(a, t, top) };
    }
    let _ = level;
    grid_fit_scalar(a, t, top)
}

/// The scalar reference of [`grid_fit_at`].
pub fn grid_fit_scalar(a: &[f32], t: f32, top: f32) -> (f32, f32) {
    let (mut ma, mut mm) = ([0f32; LANES], [0f32; LANES]);
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for ((&x, a), b) in c.iter().zip(ma.iter_mut()).zip(mm.iter_mut()) {
            let m = ((x * t) as i32 as f32).min(top);
            *a += m * x;
            *b += m * (m + 1.0);
        }
    }
    for (l, &x) in tail.iter().enumerate() {
        let m = ((x * t) as i32 as f32).min(top);
        ma[l] += m * x;
        mm[l] += m * (m + 1.0);
    }
    (ma.iter().sum(), mm.iter().sum())
}

/// [`grid_fit_at`] of `K` steps at once, one pass over `a`: element `k` is
/// `grid_fit_at(level, a, ts[k], top)` bit for bit (each step keeps its own [`LANES`]
/// partial sums in their order). The step search scores its candidates so: the fits of
/// one step are a chain of dependent adds, and `K` of them side by side overlap their
/// latencies where `K` passes would wait on each.
pub fn grid_fits_at<const K: usize>(
    level: Level,
    a: &[f32],
    ts: [f32; K],
    top: f32,
) -> [(f32, f32); K] {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::grid_fits_avx2(a, ts, top) };
    }
    let _ = level;
    grid_fits_scalar(a, ts, top)
}

/// The scalar reference of [`grid_fits_at`].
pub fn grid_fits_scalar<const K: usize>(a: &[f32], ts: [f32; K], top: f32) -> [(f32, f32); K] {
    ts.map(|t| grid_fit_scalar(a, t, top))
}

/// The `bits`-bit codes of the row `v` (finite) with magnitudes `a` (finite, at least 0)
/// for the step `1/t` (`t` finite, at least 0): `m = min(⌊t·a⌋, 2^(bits−1) − 1)`, code
/// `2^(bits−1) + m` for `v >= 0` and `2^(bits−1) − 1 − m` below, into `codes` (as long as
/// `v`). Returns `(<L, v>, Σ L²)` of their levels `L = 2c + 1 − 2^bits`, the first in f64,
/// value after value.
pub fn codes_at(
    level: Level,
    v: &[f32],
    a: &[f32],
    t: f32,
    bits: u8,
    codes: &mut [u8],
) -> (f64, u64) {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::codes_avx2(v, a, t, bits, codes) };
    }
    let _ = level;
    codes_scalar(v, a, t, bits, codes)
}

/// The scalar reference of [`codes_at`].
pub fn codes_scalar(v: &[f32], a: &[f32], t: f32, bits: u8, codes: &mut [u8]) -> (f64, u64) {
    let half = 1u32 << (bits - 1);
    let top = (half - 1) as f32;
    let (mut lv, mut ll) = (0f64, 0u64);
    for ((c, &y), &x) in codes.iter_mut().zip(v).zip(a) {
        let (code, l) = code_of(x, y, t, top, half, bits);
        *c = code;
        lv += f64::from(l) * f64::from(y);
        ll += (l * l) as u64;
    }
    (lv, ll)
}

/// One value's code and level (see [`codes_at`]).
#[inline(always)]
fn code_of(x: f32, y: f32, t: f32, top: f32, half: u32, bits: u8) -> (u8, i32) {
    let m = ((x * t) as i32 as f32).min(top) as u32;
    let code = if y >= 0.0 { half + m } else { half - 1 - m };
    (code as u8, 2 * code as i32 + 1 - (1 << bits))
}

/// The magnitudes `a[i] = |v[i]|` of the row `v` (finite) and their largest: [`stats_at`]
/// without the sum of squares, which [`sums_sq_abs_at`] gives for a group of rows at once.
pub fn abs_max_at(level: Level, v: &[f32], a: &mut [f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::abs_max_avx2(v, a) };
    }
    let _ = level;
    let mut max_abs = 0f32;
    for (x, &y) in a.iter_mut().zip(v) {
        *x = y.abs();
        max_abs = max_abs.max(*x);
    }
    max_abs
}

/// [`scale_at`] without the sum: each `a[i]` becomes `(a[i] × inv)` in f64, rounded to f32.
pub fn rescale_at(level: Level, a: &mut [f32], inv: f64) {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::rescale_avx2(a, inv) };
    }
    let _ = level;
    a.iter_mut().for_each(|x| *x = (f64::from(*x) * inv) as f32);
}

/// The sums of `G` rows (the encoder's group) whose order is fixed, for each row `g`:
/// `Σ v_g[i]²` in f64 and `Σ a_g[i]` in f32, each added value after value in order from 0
/// ([`stats_at`]'s and [`scale_at`]'s sums). The AVX2 level (for 4 or 8 rows) puts each four rows in the four
/// lanes of one register (a 4 × 4 transpose of the values), so one vector add is one step of
/// all four rows' sums and the two sums' chains run side by side.
pub fn sums_sq_abs_at<const G: usize>(
    level: Level,
    v: [&[f32]; G],
    a: [&[f32]; G],
) -> ([f64; G], [f32; G]) {
    #[cfg(target_arch = "x86_64")]
    if (G == 4 || G == 8) && level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::sums_sq_abs_avx2(v, a) };
    }
    let _ = level;
    sums_sq_abs_scalar(v, a)
}

/// The scalar reference of [`sums_sq_abs_at`] (over the shortest row's length).
pub fn sums_sq_abs_scalar<const G: usize>(v: [&[f32]; G], a: [&[f32]; G]) -> ([f64; G], [f32; G]) {
    let n = v.iter().chain(&a).map(|r| r.len()).min().unwrap_or(0);
    let (mut ss, mut sa) = ([0f64; G], [0f32; G]);
    for i in 0..n {
        for (((s, t), v), a) in ss.iter_mut().zip(&mut sa).zip(&v).zip(&a) {
            *s += f64::from(v[i]) * f64::from(v[i]);
            *t += a[i];
        }
    }
    (ss, sa)
}

/// For `G` rows, `Σ l_g[i] × v_g[i]` in f64 (each product exact), value after value in
/// order from 0: [`codes_at`]'s `<L, v>` from the levels [`code_levels_at`] wrote. The
/// AVX2 level transposes as [`sums_sq_abs_at`] does.
pub fn dots_in_order_at<const G: usize>(level: Level, l: [&[f32]; G], v: [&[f32]; G]) -> [f64; G] {
    #[cfg(target_arch = "x86_64")]
    if (G == 4 || G == 8) && level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::dots_in_order_avx2(l, v) };
    }
    let _ = level;
    dots_in_order_scalar(l, v)
}

/// The scalar reference of [`dots_in_order_at`] (over the shortest row's length).
pub fn dots_in_order_scalar<const G: usize>(l: [&[f32]; G], v: [&[f32]; G]) -> [f64; G] {
    let n = l.iter().chain(&v).map(|r| r.len()).min().unwrap_or(0);
    let mut s = [0f64; G];
    for i in 0..n {
        for ((s, l), v) in s.iter_mut().zip(&l).zip(&v) {
            *s += f64::from(l[i]) * f64::from(v[i]);
        }
    }
    s
}

/// [`codes_at`] without the sum `<L, v>`: the codes into `codes` and each value's level
/// `L_i` (a whole number, exact in f32) over its magnitude in `a`, whose products with `v`
/// summed in order ([`dots_in_order_at`]) are [`codes_at`]'s; returns `Σ L²`.
pub fn code_levels_at(
    level: Level,
    v: &[f32],
    a: &mut [f32],
    t: f32,
    bits: u8,
    codes: &mut [u8],
) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if level >= Level::Avx2 && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (AVX-512 has it).
        return unsafe { x86::code_levels_avx2(v, a, t, bits, codes) };
    }
    let _ = level;
    code_levels_scalar(v, a, t, bits, codes)
}

/// The scalar reference of [`code_levels_at`].
pub fn code_levels_scalar(v: &[f32], a: &mut [f32], t: f32, bits: u8, codes: &mut [u8]) -> u64 {
    let half = 1u32 << (bits - 1);
    let top = (half - 1) as f32;
    let mut ll = 0u64;
    for ((c, x), &y) in codes.iter_mut().zip(a.iter_mut()).zip(v) {
        let (code, l) = code_of(*x, y, t, top, half, bits);
        *c = code;
        *x = l as f32;
        ll += (l * l) as u64;
    }
    ll
}

/// A summand of [`sums_in_order`]: f32 or f64.
pub trait Summand: Copy + std::ops::AddAssign {
    /// The sum of nothing: `0.0`.
    const ZERO: Self;
}
impl Summand for f32 {
    const ZERO: f32 = 0.0;
}
impl Summand for f64 {
    const ZERO: f64 = 0.0;
}

/// The sums of `G` rows of equal length, each row's values added one after another in
/// order from `0.0` (the order of the scalar references' sums), the rows' additions
/// interleaved so that their latencies overlap: the one pass whose order is fixed runs `G`
/// rows at the speed of one. (`Iterator::sum` may start from `-0.0` instead; for the
/// non-negative magnitudes it sums the two starts give the same bits.)
pub fn sums_in_order<T: Summand, const G: usize>(rows: [&[T]; G]) -> [T; G] {
    let n = rows.iter().map(|r| r.len()).min().unwrap_or(0);
    let rows = rows.map(|r| &r[..n]);
    let mut s = [T::ZERO; G];
    for i in 0..n {
        for (s, r) in s.iter_mut().zip(&rows) {
            *s += r[i];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

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
    fn the_split_passes_give_the_fused_passes_bits() {
        let rows = rows();
        for l in Level::available() {
            for v in &rows {
                let n = v.len();
                let mut a_ref = vec![0f32; n];
                let (ss, mx) = stats_scalar(v, &mut a_ref);
                let mut a = vec![0f32; n];
                assert_eq!(
                    abs_max_at(l, v, &mut a).to_bits(),
                    mx.to_bits(),
                    "{}",
                    l.name()
                );
                assert_eq!(bits(&a), bits(&a_ref), "{} n={n}", l.name());
                let sq: Vec<f64> = v.iter().map(|&y| f64::from(y) * f64::from(y)).collect();
                let [s] = sums_in_order([&sq[..]]);
                assert_eq!(s.to_bits(), ss.to_bits(), "{} n={n}", l.name());
                let inv = if mx > 0.0 { 1.0 / f64::from(mx) } else { 1.0 };
                let mut scaled_ref = a_ref.clone();
                let suma = scale_scalar(&mut scaled_ref, inv);
                rescale_at(l, &mut a, inv);
                assert_eq!(bits(&a), bits(&scaled_ref), "{} n={n}", l.name());
                let [s] = sums_in_order([&a[..]]);
                assert_eq!(s.to_bits(), suma.to_bits(), "{} n={n}", l.name());
            }
        }
        // Several rows at once: each row's sum as if alone.
        let sq: Vec<Vec<f64>> = rows
            .iter()
            .filter(|r| r.len() == 384)
            .map(|r| r.iter().map(|&x| f64::from(x) * 1.7).collect())
            .collect();
        let four = sums_in_order([&sq[0][..], &sq[1][..], &sq[2][..], &sq[3][..]]);
        for (g, s) in four.iter().enumerate() {
            let alone = sq[g].iter().fold(0f64, |acc, &x| acc + x);
            assert_eq!(s.to_bits(), alone.to_bits(), "row {g}");
        }
    }

    #[test]
    fn the_transposed_group_passes_give_row_after_row_bits() {
        let rows = rows();
        for l in Level::available() {
            for n in [1usize, 3, 8, 9, 100, 384, 385] {
                let group: Vec<&Vec<f32>> = rows.iter().filter(|r| r.len() == n).collect();
                for four in group.windows(4) {
                    let v: [&[f32]; 4] = std::array::from_fn(|g| &four[g][..]);
                    let mut a: Vec<Vec<f32>> = v.iter().map(|r| vec![0f32; r.len()]).collect();
                    let mut want_ss = [0f64; 4];
                    for ((w, vg), ag) in want_ss.iter_mut().zip(v).zip(a.iter_mut()) {
                        let (ss, mx) = stats_scalar(vg, ag);
                        *w = ss;
                        if mx > 0.0 {
                            scale_scalar(ag, 1.0 / f64::from(mx));
                        }
                    }
                    let want_sa: [f32; 4] = std::array::from_fn(|g| {
                        let [s] = sums_in_order([&a[g][..]]);
                        s
                    });
                    let ar: [&[f32]; 4] = std::array::from_fn(|g| &a[g][..]);
                    let (ss, sa) = sums_sq_abs_at(l, v, ar);
                    assert_eq!(
                        ss.map(f64::to_bits),
                        want_ss.map(f64::to_bits),
                        "{} n={n}",
                        l.name()
                    );
                    assert_eq!(
                        sa.map(f32::to_bits),
                        want_sa.map(f32::to_bits),
                        "{} n={n}",
                        l.name()
                    );
                    assert_eq!(
                        sums_sq_abs_scalar(v, ar).0.map(f64::to_bits),
                        want_ss.map(f64::to_bits)
                    );
                    for b in 1..=8u8 {
                        for t in [0.0f32, 0.37, 2.5, 17.3, 1e9] {
                            let mut levels = a.clone();
                            let mut want = [(0f64, 0u64); 4];
                            let mut codes = vec![vec![0xaau8; n]; 4];
                            for (g, w) in want.iter_mut().enumerate() {
                                let mut c_ref = vec![0u8; n];
                                *w = codes_scalar(v[g], &a[g], t, b, &mut c_ref);
                                let mut lv_ref = levels[g].clone();
                                let ll_ref =
                                    code_levels_scalar(v[g], &mut lv_ref, t, b, &mut c_ref.clone());
                                let ll =
                                    code_levels_at(l, v[g], &mut levels[g], t, b, &mut codes[g]);
                                assert_eq!(codes[g], c_ref, "{} n={n} b={b} t={t}", l.name());
                                assert_eq!(
                                    bits(&levels[g]),
                                    bits(&lv_ref),
                                    "{} n={n} b={b}",
                                    l.name()
                                );
                                assert_eq!((ll, ll_ref), (w.1, w.1), "{} b={b}", l.name());
                            }
                            let lr: [&[f32]; 4] = std::array::from_fn(|g| &levels[g][..]);
                            let lv = dots_in_order_at(l, lr, v);
                            let want_lv = want.map(|w| w.0.to_bits());
                            assert_eq!(
                                lv.map(f64::to_bits),
                                want_lv,
                                "{} n={n} b={b} t={t}",
                                l.name()
                            );
                            assert_eq!(dots_in_order_scalar(lr, v).map(f64::to_bits), want_lv);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn eight_row_groups_and_many_steps_give_one_by_one_bits() {
        let rows = rows();
        for l in Level::available() {
            for n in [1usize, 3, 8, 9, 100, 384, 385] {
                let group: Vec<&Vec<f32>> = rows.iter().filter(|r| r.len() == n).collect();
                // Eight rows, cycling through the five of this length, each scaled apart.
                let v8: Vec<Vec<f32>> = (0..8)
                    .map(|g| {
                        group[g % group.len()]
                            .iter()
                            .map(|x| x * (g + 1) as f32)
                            .collect()
                    })
                    .collect();
                let a8: Vec<Vec<f32>> = v8
                    .iter()
                    .map(|r| r.iter().map(|x| x.abs()).collect())
                    .collect();
                let v: [&[f32]; 8] = std::array::from_fn(|g| &v8[g][..]);
                let a: [&[f32]; 8] = std::array::from_fn(|g| &a8[g][..]);
                let (ss, sa) = sums_sq_abs_at(l, v, a);
                let lv = dots_in_order_at(l, a, v);
                for g in 0..8 {
                    let want_ss = v[g]
                        .iter()
                        .fold(0f64, |s, &x| s + f64::from(x) * f64::from(x));
                    let want_sa = a[g].iter().fold(0f32, |s, &x| s + x);
                    let want_lv = a[g]
                        .iter()
                        .zip(v[g])
                        .fold(0f64, |s, (&x, &y)| s + f64::from(x) * f64::from(y));
                    assert_eq!(
                        ss[g].to_bits(),
                        want_ss.to_bits(),
                        "{} n={n} g={g}",
                        l.name()
                    );
                    assert_eq!(
                        sa[g].to_bits(),
                        want_sa.to_bits(),
                        "{} n={n} g={g}",
                        l.name()
                    );
                    assert_eq!(
                        lv[g].to_bits(),
                        want_lv.to_bits(),
                        "{} n={n} g={g}",
                        l.name()
                    );
                }
                // The step search's candidates at once, each as if scored alone.
                let mx = a8[0].iter().fold(0f32, |m, &x| m.max(x));
                let mut scaled = a8[0].clone();
                if mx > 0.0 {
                    scale_scalar(&mut scaled, 1.0 / f64::from(mx));
                }
                for top in [1.0f32, 7.0, 127.0] {
                    let ts = [0.37f32, 1.0, 2.5, 17.3, 128.0, 3e38];
                    let got = grid_fits_at(l, &scaled, ts, top);
                    assert_eq!(got, grid_fits_scalar(&scaled, ts, top));
                    for (k, &t) in ts.iter().enumerate() {
                        let want = grid_fit_scalar(&scaled, t, top);
                        assert_eq!(
                            (got[k].0.to_bits(), got[k].1.to_bits()),
                            (want.0.to_bits(), want.1.to_bits()),
                            "{} n={n} t={t} top={top}",
                            l.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_level_matches_the_scalar_reference() {
        for v in rows() {
            let n = v.len();
            let mut a_ref = vec![0f32; n];
            let (ss, mx) = stats_scalar(&v, &mut a_ref);
            let inv = if mx > 0.0 { 1.0 / f64::from(mx) } else { 1.0 };
            let mut scaled_ref = a_ref.clone();
            let suma = scale_scalar(&mut scaled_ref, inv);
            for l in Level::available() {
                let mut a = vec![0f32; n];
                let got = stats_at(l, &v, &mut a);
                assert_eq!(got.0.to_bits(), ss.to_bits(), "{} n={n}", l.name());
                assert_eq!(got.1.to_bits(), mx.to_bits(), "{} n={n}", l.name());
                assert_eq!(bits(&a), bits(&a_ref), "{} n={n}", l.name());
                let s = scale_at(l, &mut a, inv);
                assert_eq!(s.to_bits(), suma.to_bits(), "{} n={n}", l.name());
                assert_eq!(bits(&a), bits(&scaled_ref), "{} n={n}", l.name());
                for b in 1..=8u8 {
                    let top = ((1u32 << (b - 1)) - 1) as f32;
                    for t in [0.0f32, 0.37, 1.0, 2.5, 17.3, 128.0, 1e9, 3e38] {
                        if t > 0.0 && b > 1 {
                            let want = grid_fit_scalar(&scaled_ref, t, top);
                            let got = grid_fit_at(l, &scaled_ref, t, top);
                            assert_eq!(
                                (got.0.to_bits(), got.1.to_bits()),
                                (want.0.to_bits(), want.1.to_bits()),
                                "grid_fit {} n={n} b={b} t={t}",
                                l.name()
                            );
                        }
                        // At one bit (and for zero rows) the encoder codes with t = 0 on
                        // the unscaled magnitudes.
                        let (mag, t) = if b == 1 {
                            (&a_ref, 0.0)
                        } else {
                            (&scaled_ref, t)
                        };
                        let mut c_ref = vec![0u8; n];
                        let want = codes_scalar(&v, mag, t, b, &mut c_ref);
                        let mut c = vec![0xaau8; n];
                        let got = codes_at(l, &v, mag, t, b, &mut c);
                        assert_eq!(c, c_ref, "codes {} n={n} b={b} t={t}", l.name());
                        assert_eq!(
                            (got.0.to_bits(), got.1),
                            (want.0.to_bits(), want.1),
                            "codes sums {} n={n} b={b} t={t}",
                            l.name()
                        );
                    }
                }
            }
        }
    }
}
