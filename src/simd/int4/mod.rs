//! int4 kernels: the `fit` search's integer levels and candidate scores, the pass that
//! sums `<v, q>` and `<q, q>` of one scale's codes, the quantize-and-pack of the chosen
//! codes (alone or fused with those sums), the max pass and the `gauss` rule.
//!
//! The scalar references are the `_scalar` functions here. Every faster path gives their
//! bits: float partial sums keep the reference's [`LANES`] lanes, lane sets and order,
//! with a fused multiply-add wherever the reference has one; rounding is
//! half to even after clamping; the candidate scores are exact integers.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

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

/// Codes of `row` (finite) under the `gauss` rule, packed two per byte into `out`
/// (`ceil(row.len() / 2)` bytes, as [`quantize_pack`] packs them), and its scale.
pub fn encode_row_gauss(row: &[f32], out: &mut [u8]) -> f32 {
    encode_row_gauss_at(Level::detect(), row, out)
}

/// [`encode_row_gauss`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// If `out` is shorter than `ceil(row.len() / 2)`.
pub fn encode_row_gauss_at(level: Level, row: &[f32], out: &mut [u8]) -> f32 {
    let out = &mut out[..row.len().div_ceil(2)];
    #[cfg(target_arch = "x86_64")]
    if matches!(level, Level::Avx2 | Level::Avx512)
        && level.runs_here()
        && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2 (every AVX-512
        // level has it too), and FMA is checked here; `out` has `ceil(row.len() / 2)` bytes.
        return unsafe { x86::gauss_pack_avx2(row, out) };
    }
    let _ = level;
    encode_row_gauss_scalar(row, out)
}

/// `max_abs_bits(row)` (see [`super::int8::max_abs_bits`]) and `Σ v²` in the `fit`
/// search's lane order, in one pass: the reference is [`max_abs_sumsq_scalar`].
pub fn max_abs_sumsq(row: &[f32]) -> (u32, f64) {
    max_abs_sumsq_at(Level::detect(), row)
}

/// [`max_abs_sumsq`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn max_abs_sumsq_at(level: Level, row: &[f32]) -> (u32, f64) {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::max_abs_sumsq_avx512(row) },
            Level::Avx2 if std::arch::is_x86_feature_detected!("fma") => {
                // SAFETY: `runs_here` checked AVX2 at run time, and FMA is checked here.
                return unsafe { x86::max_abs_sumsq_avx2(row) };
            }
            _ => {}
        }
    }
    let _ = level;
    max_abs_sumsq_scalar(row)
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
            Level::Avx512 => return unsafe { x86::fit_dots_avx512(row, invs, out) },
            Level::Avx2 if std::arch::is_x86_feature_detected!("fma") => {
                // SAFETY: `runs_here` checked AVX2 at run time, and FMA is checked here.
                return unsafe { x86::fit_dots_avx2(row, invs, out) };
            }
            _ => {}
        }
    }
    let _ = level;
    for (o, &inv) in out.iter_mut().zip(invs) {
        *o = fit_dots_scalar(row, inv);
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
            Level::Avx512 => return unsafe { x86::quantize_pack_avx512(row, s, out) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2; `out` has
            // `ceil(row.len() / 2)` bytes.
            Level::Avx2 => return unsafe { x86::quantize_pack_avx2(row, s, out) },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if inv.is_finite() && level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time; `out` has `ceil(row.len() / 2)` bytes.
        return unsafe { neon::quantize_pack(row, s, out) };
    }
    let _ = (level, inv);
    quantize_pack_scalar(row, s, out)
}

/// The `fit` search's levels of `row` (finite) at `c = 127 / max|v|` (finite), into `u`
/// (as long as `row`): see [`fit_levels_scalar`].
pub fn fit_levels(row: &[f32], c: f32, u: &mut [u8]) {
    fit_levels_at(Level::detect(), row, c, u)
}

/// [`fit_levels`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn fit_levels_at(level: Level, row: &[f32], c: f32, u: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::fit_levels_avx512(row, c, u) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::fit_levels_avx2(row, c, u) },
            _ => {}
        }
    }
    let _ = level;
    fit_levels_scalar(row, c, u)
}

/// `out[k]` = `(Σ u·q, Σ q²)` of levels `u` (each at most 127) and their codes at factor
/// `FIT_FACTORS[k]`, for each `k` in `ks`: see [`fit_scores_scalar`]. Where
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
        return unsafe { x86::fit_scores_vbmi(u, out) };
    }
    #[cfg(target_arch = "x86_64")]
    if matches!(level, Level::Avx2 | Level::Avx512) && level.runs_here() {
        for &k in ks {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            out[k] = unsafe { x86::fit_scores_avx2(u, k) };
        }
        return;
    }
    let _ = level;
    for &k in ks {
        out[k] = fit_scores_scalar(u, k);
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
        return unsafe { x86::quantize_pack_dots_avx512(row, s, out) };
    }
    quantize_pack_at(level, row, s, out);
    let mut got = [(0f64, 0f64)];
    fit_dots_at(level, row, &[1.0 / s], &mut got);
    got[0]
}

/// The non-negative Lloyd–Max levels of a unit Gaussian for 15 symmetric levels (code
/// `q` decodes to `sign(q) × GAUSS[|q|] × scale`), computed by Lloyd's algorithm on 2·10⁶
/// normal samples and rounded to 4 decimals; FORMAT.md lists the same values.
pub const GAUSS: [f32; 8] = [0.0, 0.2751, 0.5572, 0.8545, 1.1783, 1.5497, 2.0103, 2.6829];

/// Clipping factors the `fit` rule may try, largest first.
pub const FIT_FACTORS: [f32; 9] = [1.0, 0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6];

/// Adding then subtracting 1.5·2²³ rounds a float32 of magnitude < 2²² to an integer, half to
/// even; unlike `f32::round` it needs no libm call, so the loop vectorises.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Lanes of the `fit` search's partial sums. They fix the order of the float additions, so
/// every SIMD level reproduces the scalar reference's bits: 16 is one AVX-512 register or
/// two AVX2 ones.
pub const LANES: usize = 16;

/// The code magnitude for `a = |v| / s`: `min(a, 7)` rounded half to even, as a float.
/// `min` is written as a comparison so it compiles to one `minps`, the SIMD levels' op.
#[inline(always)]
fn magnitude(a: f32) -> f32 {
    let y = if a < 7.0 { a } else { 7.0 };
    (y + ROUND_MAGIC) - ROUND_MAGIC
}

/// `<v, q>` and `<q, q>` of `row` and its codes at scale `1 / inv`, without storing the
/// codes: the scalar reference of [`fit_dots`].
///
/// `v·q = |v|·|q|` exactly (the code has the value's sign), so the sums run on magnitudes.
/// [`FIT_SETS`] sets of [`LANES`] lanes take the 16-value chunks in turn (chunk `j` to set
/// `j mod 4`; lane `i` of a set adds its chunks' `i`th products in order), so a row is
/// four independent chains of fused multiply-adds; then [`fit_dots_finish`] adds the tail
/// and the lanes. `<q, q>` is exact (integers below 2²⁴ for any dims under 342,000).
/// `<v, q>` accumulates with fused multiply-adds (one rounding each), so every SIMD level's
/// FMA reproduces it.
pub fn fit_dots_scalar(row: &[f32], inv: f32) -> (f64, f64) {
    let (mut vq, mut qq) = ([[0f32; LANES]; FIT_SETS], [[0f32; LANES]; FIT_SETS]);
    let mut chunks = row.chunks_exact(LANES);
    for (j, c) in (&mut chunks).enumerate() {
        let (vq, qq) = (&mut vq[j % FIT_SETS], &mut qq[j % FIT_SETS]);
        for i in 0..LANES {
            let a = c[i].abs();
            let q = magnitude(a * inv);
            vq[i] = a.mul_add(q, vq[i]);
            qq[i] += q * q;
        }
    }
    fit_dots_finish(&vq, &qq, chunks.remainder(), inv)
}

/// Lane sets of [`fit_dots_scalar`]: one chain of 4-cycle fused multiply-adds would make a
/// single candidate's pass wait on latency, not throughput.
pub const FIT_SETS: usize = 4;

/// `Σ v²` of `row` in a fixed order, and its [`super::int8::max_abs_bits`]: the scalar
/// reference of [`max_abs_sumsq`]. Two sets of [`LANES`] lanes take
/// alternate 16-value chunks (two independent chains of fused multiply-adds, so the sum does
/// not wait on one chain's latency), each set is added like [`fit_dots_scalar`]' lanes (the first
/// with the sequential tail), then the two. Only the `fit` search's bound check reads the sum; on
/// rows past ~10¹⁸ its float32 lanes overflow to inf, which sends the check to its fallback.
pub fn max_abs_sumsq_scalar(row: &[f32]) -> (u32, f64) {
    let mut ss = [[0f32; LANES]; 2];
    let mut chunks = row.chunks_exact(LANES);
    for (j, c) in (&mut chunks).enumerate() {
        for i in 0..LANES {
            ss[j % 2][i] = c[i].mul_add(c[i], ss[j % 2][i]);
        }
    }
    let tail = chunks.remainder();
    let sum = lane_sum(&ss[0], sum_squares_tail(tail)) + lane_sum(&ss[1], 0.0);
    (super::int8::max_abs_bits_scalar(row), sum)
}

/// The tail's part of [`max_abs_sumsq_scalar`]: a sequential sum, in f32.
pub fn sum_squares_tail(tail: &[f32]) -> f32 {
    tail.iter().fold(0f32, |t, &x| x.mul_add(x, t))
}

/// The end of [`fit_dots_scalar`], shared by every SIMD level: the sets added lane by lane in
/// float32, `(s0 + s1) + (s2 + s3)`, then the tail of fewer than [`LANES`] values and the
/// lanes added pairwise in f64 (a short dependency chain).
pub fn fit_dots_finish(
    vq: &[[f32; LANES]; FIT_SETS],
    qq: &[[f32; LANES]; FIT_SETS],
    tail: &[f32],
    inv: f32,
) -> (f64, f64) {
    let merge = |s: &[[f32; LANES]; FIT_SETS]| -> [f32; LANES] {
        std::array::from_fn(|i| (s[0][i] + s[1][i]) + (s[2][i] + s[3][i]))
    };
    let (tvq, tqq) = fit_dots_tail(tail, inv);
    (lane_sum(&merge(vq), tvq), lane_sum(&merge(qq), tqq))
}

/// The tail's part of [`fit_dots_finish`]: plain sequential sums, in f32.
pub fn fit_dots_tail(tail: &[f32], inv: f32) -> (f32, f32) {
    let (mut tvq, mut tqq) = (0f32, 0f32);
    for &x in tail {
        let a = x.abs();
        let q = magnitude(a * inv);
        tvq = a.mul_add(q, tvq);
        tqq += q * q;
    }
    (tvq, tqq)
}

/// The `fit` search's resolution: it scores candidate scales on `u = round(|v| × 127 /
/// max|v|)`, an integer in `0..=127`, instead of on `|v|`. Its sums are then integers, so
/// every SIMD level gets them exactly and in any order, and AVX-512 scores all nine factors
/// with one byte lookup and two dot products per 64 values. Only the choice of factor comes
/// from them: the stored scale is refit on the real values.
pub const FIT_U: u8 = 127;

/// `fit_codes()[k][u]`: the code magnitude of `u` (see [`FIT_U`]) at factor
/// `FIT_FACTORS[k]`, `round(min(u × 7 / (127 × f), 7))`, computed in float64 and rounded half
/// to even.
pub fn fit_codes() -> &'static [[u8; 128]; 9] {
    static CODES: std::sync::OnceLock<[[u8; 128]; 9]> = std::sync::OnceLock::new();
    CODES.get_or_init(|| {
        let mut t = [[0u8; 128]; 9];
        for (row, &f) in t.iter_mut().zip(&FIT_FACTORS) {
            for (u, q) in row.iter_mut().enumerate() {
                let y = u as f64 * 7.0 / (f64::from(FIT_U) * f64::from(f));
                *q = y.min(7.0).round_ties_even() as u8;
            }
        }
        t
    })
}

/// `fit_thresholds()[k][j]`: the first level whose code at factor `FIT_FACTORS[k]` is
/// above `j` (128 if none), so a level's code is the count of thresholds it reaches: the
/// form of [`fit_codes`] that compares, rather than looks up, in SIMD.
pub fn fit_thresholds() -> &'static [[u8; 7]; 9] {
    static THRESHOLDS: std::sync::OnceLock<[[u8; 7]; 9]> = std::sync::OnceLock::new();
    THRESHOLDS.get_or_init(|| {
        fit_codes().map(|t| {
            std::array::from_fn(|j| t.iter().position(|&q| usize::from(q) > j).unwrap_or(128) as u8)
        })
    })
}

/// `u[i] = round(min(|row[i]| × c, 127))`, half to even: the search's levels of `row` at
/// `c = 127 / max|v|` (finite). The scalar reference of [`fit_levels`].
pub fn fit_levels_scalar(row: &[f32], c: f32, u: &mut [u8]) {
    fit_levels_body(row, c, u)
}

/// The body of [`fit_levels_scalar`], inlined into each SIMD level's wrapper: the integer is read
/// from the bits of `y + 1.5·2²³`, so the loop vectorises.
#[inline(always)]
pub(crate) fn fit_levels_body(row: &[f32], c: f32, u: &mut [u8]) {
    let magic = ROUND_MAGIC.to_bits();
    for (o, &x) in u.iter_mut().zip(row) {
        let y = x.abs() * c;
        let y = if y < 127.0 { y } else { 127.0 };
        *o = (y + ROUND_MAGIC).to_bits().wrapping_sub(magic) as u8;
    }
}

/// `(Σ u·q, Σ q²)` of levels `u` (each at most 127) and their codes `q` at factor
/// `FIT_FACTORS[k]`: the scalar reference of [`fit_scores`].
pub fn fit_scores_scalar(u: &[u8], k: usize) -> (u64, u64) {
    let t = &fit_codes()[k];
    let (mut vq, mut qq) = (0u64, 0u64);
    for &x in u {
        let q = u64::from(t[usize::from(x & 127)]);
        vq += u64::from(x) * q;
        qq += q * q;
    }
    (vq, qq)
}

/// Codes of `row` at scale `s` (non-zero), packed two per byte into `out`
/// (`ceil(row.len() / 2)` bytes): the scalar reference of
/// [`quantize_pack`].
pub fn quantize_pack_scalar(row: &[f32], s: f32, out: &mut [u8]) {
    let magic_bits = ROUND_MAGIC.to_bits() as i32;
    let inv = 1.0 / s;
    // 1/s overflows for the smallest subnormal scales: divide instead.
    let divide = !inv.is_finite();
    let code = |x: f32| {
        let y = if divide { x / s } else { x * inv };
        ((y.clamp(-7.0, 7.0) + ROUND_MAGIC).to_bits() as i32 - magic_bits) as u8 & 0x0f
    };
    for (o, pair) in out.iter_mut().zip(row.chunks(2)) {
        *o = code(pair[0]) | pair.get(1).map_or(0, |&x| code(x)) << 4;
    }
}

/// The `gauss` rule: codes are the nearest Gaussian level at scale `rms(v)` (ties to the
/// level nearer zero), then the scale is refit by least squares. Bound: the row's squared
/// error is at most that of the nearest-level codes at scale `rms(v)`.
///
/// The scalar reference of [`encode_row_gauss`]: codes packed into `out`
/// (`ceil(row.len() / 2)` bytes). Sums run in [`LANES`] lanes, added as
/// [`fit_dots_finish`] adds its lanes, so their order is fixed and a SIMD level can
/// reproduce them: `Σ v²` and `<|v|, level>` in f64 (their f32 versions overflow for |v| past 1.8e19), each term an
/// exact product of two f32 (so a fused multiply-add gives the same bits), `Σ level²` in f32.
pub fn encode_row_gauss_scalar(row: &[f32], out: &mut [u8]) -> f32 {
    encode_row_gauss_body(row, out)
}

/// Midpoints between neighbouring [`GAUSS`] levels, in float32: a magnitude `|v| / σ`
/// codes to the number of them it is above.
#[inline(always)]
pub(crate) fn gauss_mids() -> [f32; 7] {
    std::array::from_fn(|j| (GAUSS[j] + GAUSS[j + 1]) / 2.0)
}

/// `σ = rms(row)` as the `gauss` rule computes it (see [`encode_row_gauss_scalar`]), from the
/// [`LANES`] lanes' sums of squares of its full chunks and the rest of the row.
#[inline(always)]
pub(crate) fn gauss_sigma(lanes: &[f64; LANES], rest: &[f32], len: usize) -> f32 {
    let tail = rest.iter().fold(0f64, |t, &x| t + gauss_sq(x));
    (lane_sum(lanes, tail) / len as f64).sqrt() as f32
}

#[inline(always)]
fn gauss_sq(x: f32) -> f64 {
    f64::from(x) * f64::from(x)
}

/// The `gauss` code (signed) and level (unsigned) of `x` at `1 / σ = inv`, or by dividing by
/// `sigma` when `divide`: the highest level whose midpoint `|x| / σ` is above. A select per
/// midpoint (not a table lookup) keeps the scalar loop vectorisable.
#[inline(always)]
fn gauss_code(x: f32, mid: &[f32; 7], inv: f32, sigma: f32, divide: bool) -> (i8, f32) {
    let u = if divide {
        x.abs() / sigma
    } else {
        x.abs() * inv
    };
    let (mut k, mut l) = (0i32, 0f32);
    for (j, &m) in mid.iter().enumerate() {
        let past = u > m;
        k += i32::from(past);
        l = if past { GAUSS[j + 1] } else { l };
    }
    (if x < 0.0 { -k } else { k } as i8, l)
}

/// Packs codes two per byte into `out` (`ceil(codes.len() / 2)` bytes), low nibble first.
#[inline(always)]
fn pack_codes(codes: &[i8], out: &mut [u8]) {
    for (o, pair) in out.iter_mut().zip(codes.chunks(2)) {
        let lo = pair[0] as u8 & 0x0f;
        let hi = pair.get(1).map_or(0, |&c| c as u8 & 0x0f);
        *o = lo | (hi << 4);
    }
}

/// The tail of the `gauss` rule's coding pass (fewer than [`LANES`] values), shared by every
/// level: codes packed into `out` (`ceil(rest.len() / 2)` bytes), and the plain sequential
/// sums of `|v|·level` (f64) and `level²` (f32).
#[inline(always)]
pub(crate) fn gauss_tail(
    rest: &[f32],
    inv: f32,
    sigma: f32,
    divide: bool,
    out: &mut [u8],
) -> (f64, f32) {
    let mid = gauss_mids();
    let mut q = [0i8; LANES];
    let (mut tvl, mut tll) = (0f64, 0f32);
    for (&x, o) in rest.iter().zip(&mut q) {
        let (k, l) = gauss_code(x, &mid, inv, sigma, divide);
        *o = k;
        tvl += f64::from(x.abs()) * f64::from(l);
        tll += l * l;
    }
    pack_codes(&q[..rest.len()], out);
    (tvl, tll)
}

/// The body of [`encode_row_gauss_scalar`].
#[inline(always)]
pub(crate) fn encode_row_gauss_body(row: &[f32], out: &mut [u8]) -> f32 {
    let out = &mut out[..row.len().div_ceil(2)];
    let mut ss = [0f64; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for i in 0..LANES {
            ss[i] += gauss_sq(c[i]);
        }
    }
    let sigma = gauss_sigma(&ss, chunks.remainder(), row.len());
    if sigma == 0.0 {
        out.fill(0);
        return 1.0;
    }
    let mid = gauss_mids();
    let inv = 1.0 / sigma;
    // 1/σ overflows for the smallest subnormal σ, and is imprecise when σ is huge and 1/σ
    // subnormal: divide instead.
    let divide = !inv.is_normal();
    let (mut vl, mut ll) = ([0f64; LANES], [0f32; LANES]);
    // The full chunks' bytes, then the tail's (a row under 16 values has only a tail).
    let (body, tail) = out.split_at_mut(row.len() / LANES * (LANES / 2));
    let mut rows = row.chunks_exact(LANES);
    for (c, o) in (&mut rows).zip(body.chunks_exact_mut(LANES / 2)) {
        let mut q = [0i8; LANES];
        for i in 0..LANES {
            let (k, l) = gauss_code(c[i], &mid, inv, sigma, divide);
            q[i] = k;
            // v·level(q) = |v|·|level| exactly: the code has the value's sign.
            vl[i] += f64::from(c[i].abs()) * f64::from(l);
            ll[i] += l * l;
        }
        pack_codes(&q, o);
    }
    let (tvl, tll) = gauss_tail(rows.remainder(), inv, sigma, divide, tail);
    gauss_scale(&vl, &ll, tvl, tll)
}

/// The `gauss` rule's least-squares scale from its lanes' sums and the tail's.
#[inline(always)]
pub(crate) fn gauss_scale(vl: &[f64; LANES], ll: &[f32; LANES], tvl: f64, tll: f32) -> f32 {
    let (vl, ll) = (lane_sum(vl, tvl), lane_sum(ll, tll));
    // Every code is 0 only if every |v| < 0.1376·rms(v), which cannot happen.
    if ll == 0.0 { 1.0 } else { (vl / ll) as f32 }
}

/// `LANES` partial sums and a tail, added in f64 in a fixed order: `h[i] = l[i] + l[i + 8]`,
/// then halves pairwise, then the tail.
#[inline(always)]
pub(crate) fn lane_sum<T: Copy + Into<f64>>(l: &[T; LANES], t: T) -> f64 {
    let mut h = [0f64; LANES / 2];
    for (i, h) in h.iter_mut().enumerate() {
        *h = l[i].into() + l[i + LANES / 2].into();
    }
    let mut w = LANES / 4;
    while w > 0 {
        for i in 0..w {
            h[i] += h[i + w];
        }
        w /= 2;
    }
    h[0] + t.into()
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
            let max = f32::from_bits(crate::simd::int8::max_abs_bits_scalar(&data));
            let mut scales = vec![1.0f32, 0.5, 3.7e-3, f32::MIN_POSITIVE];
            if max / 7.0 > 0.0 {
                scales.extend(FIT_FACTORS.iter().map(|f| max / 7.0 * f));
            }
            for s in scales {
                let inv = 1.0 / s;
                let dots = fit_dots_scalar(&data, inv);
                let mut want = vec![0u8; len.div_ceil(2)];
                quantize_pack_scalar(&data, s, &mut want);
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
            let max = f32::from_bits(crate::simd::int8::max_abs_bits_scalar(&data));
            let c = f32::from(FIT_U) / max;
            if !c.is_finite() {
                continue;
            }
            let mut want_u = vec![0u8; len];
            fit_levels_scalar(&data, c, &mut want_u);
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
                        assert_eq!(got[k], fit_scores_scalar(levels, k), "scores {k} {ctx}");
                    }
                }
                for f in FIT_FACTORS {
                    let s = max / 7.0 * f;
                    if !(1.0 / s).is_finite() {
                        continue;
                    }
                    let mut want = vec![0u8; len.div_ceil(2)];
                    quantize_pack_scalar(&data, s, &mut want);
                    let dots = fit_dots_scalar(&data, 1.0 / s);
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
        let (codes, thresholds) = (fit_codes(), fit_thresholds());
        for (k, &f) in FIT_FACTORS.iter().enumerate() {
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
            let (bits, ss) = max_abs_sumsq_scalar(&data);
            assert_eq!(bits, crate::simd::int8::max_abs_bits_scalar(&data));
            for l in Level::available() {
                let (b, s) = max_abs_sumsq_at(l, &data);
                let ctx = format!("{} case {case} len {len}", l.name());
                assert_eq!(b, bits, "max {ctx}");
                if bits < crate::simd::int8::INF_BITS {
                    assert_eq!(s.to_bits(), ss.to_bits(), "sum {ctx}: {data:?}");
                }
            }
        }
    }

    #[test]
    fn gauss_rule_matches_the_scalar_reference_on_every_level() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for case in 0..2000u64 {
            let len = 1 + match case % 4 {
                0 => rng.below(100) as usize,
                1 => 383,
                2 => rng.below(4) as usize * 64 + rng.below(3) as usize,
                // Many of the AVX2 kernel's blocks of 128 values.
                _ => 1000 + rng.below(2100) as usize,
            };
            let data = row(&mut rng, len, case % 4);
            let mut want = vec![0u8; len.div_ceil(2)];
            let scale = encode_row_gauss_scalar(&data, &mut want);
            for l in Level::available() {
                let mut got = vec![0x99u8; len.div_ceil(2)];
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
