//! The seeded rotation of `rotate=1` (the codec's `Rotation`) at each SIMD level: `R`
//! rounds of a ±1 sign flip, then an orthonormal Walsh–Hadamard transform on the window
//! `[0, w)` and, when `w < dims`, on `[dims − w, dims)`.
//!
//! The scalar reference is [`forward_scalar`] / [`inverse_scalar`] with [`fwht`]: sign flips
//! and Walsh–Hadamard butterflies, each output an add or a subtract of the same two values
//! in the same stage order, then one multiply. The AVX2 level runs the three shortest
//! butterfly stages inside one register (a lane permute, an add, a subtract and a blend),
//! the next three across the registers of a 64-float block, and the later ones two at a
//! time; the AVX-512 level runs the four shortest inside one register (a lane permute, an
//! add and a masked subtract), and windows of up to 512 floats entirely in registers.
//! Every stage still maps each pair to the same sum and difference. Rust never fuses a multiply and an add by itself and float
//! addition is commutative, so every level gives the reference's bits. The encoders' forward
//! rotation ([`forward_planned_at`], with a [`Plan`]) also folds the sign flips into the
//! passes at AVX2 and AVX-512: round 1's into the first pass's loads (at AVX-512 straight
//! from the input row, [`forward_planned_centred_at`]), each later round's into the
//! multiply by the norm as the previous round's last pass stores (`x × (norm × s)` is
//! `(x × norm) × s` when `s` is ±1), so a round is four passes over a 384-float row's
//! windows instead of seven at AVX2, and two at AVX-512 (each window of up to 512 floats
//! in registers); on a CPU with FMA its in-register stages are a fused
//! multiply-add by ±1 each (`t + v × (±1)` rounds once, as `t ± v` does).
//!
//! Every function takes the row (`dims` long), the `rounds × dims` signs (±1.0, round by
//! round) and the window `w`, a power of two `<= dims`.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// Rotates `row` in place.
pub fn forward(signs: &[f32], window: usize, row: &mut [f32]) {
    forward_at(Level::detect(), signs, window, row)
}

/// Undoes [`forward`] in place.
pub fn inverse(signs: &[f32], window: usize, row: &mut [f32]) {
    inverse_at(Level::detect(), signs, window, row)
}

/// The forward rotation of `dims`-dimensional rows with its sign flips folded into the
/// Walsh–Hadamard passes ([`forward_planned_at`]): round 1's signs are multiplied in as the
/// first pass of each window loads its values, and every later round's signs together with
/// the previous round's normalisation as the last pass stores them (`x × (norm × s)` is
/// `(x × norm) × s` bit for bit when `s` is ±1). Built once per rotation from its signs.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    dims: usize,
    window: usize,
    rounds: usize,
    /// Round 1's signs of `[0, w)`, for window 1's loads.
    load1: Vec<f32>,
    /// Round 1's multipliers of `[d − w, d)` for window 2's loads: 1 on `[d − w, w)`
    /// (window 1 has flipped them), the signs on `[w, d)`.
    load2: Vec<f32>,
    /// Per round, `w` multipliers for window 1's last stores: the norm times the next
    /// round's sign on `[0, d − w)` (all of it when `w = d`), the norm alone on the rest.
    store1: Vec<f32>,
    /// Per round, `w` multipliers for window 2's last stores: the norm times the next
    /// round's sign.
    store2: Vec<f32>,
}

impl Plan {
    /// The plan of the rotation with `signs` (`rounds × dims`, ±1.0) and window `window`.
    pub fn new(signs: &[f32], window: usize, dims: usize) -> Plan {
        let (d, w) = (dims, window);
        let rounds = signs.len() / d.max(1);
        let norm = (w as f64).sqrt().recip() as f32;
        let sign = |r: usize, i: usize| {
            if r < rounds { signs[r * d + i] } else { 1.0 }
        };
        let mut plan = Plan {
            dims,
            window,
            rounds,
            load1: (0..w).map(|i| sign(0, i)).collect(),
            load2: (d - w..d)
                .map(|i| if i < w { 1.0 } else { sign(0, i) })
                .collect(),
            store1: Vec::with_capacity(rounds * w),
            store2: Vec::with_capacity(rounds * w),
        };
        for r in 0..rounds {
            let last1 = if w < d { d - w } else { d };
            plan.store1.extend((0..w).map(|i| {
                if i < last1 {
                    norm * sign(r + 1, i)
                } else {
                    norm
                }
            }));
            plan.store2
                .extend((d - w..d).map(|i| norm * sign(r + 1, i)));
        }
        plan
    }
}

/// [`forward_at`] of the rotation `plan` was built from (with its `signs` and window), the
/// sign flips folded into the transform's passes where the level has such a kernel (AVX2,
/// windows of at least 64; AVX-512 with FMA, windows of 16 to 512; the in-register
/// butterflies with fused multiply-adds by ±1 when the CPU has FMA, which round as the adds
/// do); the same bits as [`forward_scalar`] at every level.
pub fn forward_planned_at(level: Level, plan: &Plan, signs: &[f32], row: &mut [f32]) {
    forward_planned_rows_at(level, plan, signs, None, row)
}

/// [`forward_planned_at`] of `src` (without `row` holding it first), centred on `mean`
/// (when given, as long as `src`) and padded with zeros: the rotation of the row whose first `src.len()` values
/// (at most `dims`) are `src[i] − mean[i]` (`src[i]` without a mean) and whose others
/// are `0.0`, into `row`. At AVX-512 (with FMA, windows of 16 to 512) the subtraction comes
/// with the first round's loads and the zeros are masked lanes of them; elsewhere the
/// centred, padded row is written to `row` first. The same bits as [`forward_scalar`] of
/// that row at every level.
///
/// # Panics
/// If `src` is longer than `row`, or `mean` is not as long as `src`.
pub fn forward_planned_centred_at(
    level: Level,
    plan: &Plan,
    signs: &[f32],
    src: &[f32],
    mean: Option<&[f32]>,
    row: &mut [f32],
) {
    assert!(src.len() <= row.len() && mean.is_none_or(|m| m.len() == src.len()));
    if src.len() == row.len() && mean.is_none() {
        return forward_planned_rows_at(level, plan, signs, Some(src), row);
    }
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512
        && (16..=512).contains(&plan.window)
        && row.len() == plan.dims
        && level.runs_here()
        && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL, and
        // `is_x86_feature_detected` that it has FMA.
        return unsafe { x86::forward_planned_avx512(plan, Some((src, mean)), row) };
    }
    let (head, tail) = row.split_at_mut(src.len());
    match mean {
        Some(m) => head
            .iter_mut()
            .zip(src.iter().zip(m))
            .for_each(|(v, (&x, &c))| *v = x - c),
        None => head.copy_from_slice(src),
    }
    tail.fill(0.0);
    forward_planned_rows_at(level, plan, signs, None, row)
}

/// [`forward_planned_centred_at`]'s body (`src`, when given, as long as `row`).
fn forward_planned_rows_at(
    level: Level,
    plan: &Plan,
    signs: &[f32],
    src: Option<&[f32]>,
    row: &mut [f32],
) {
    debug_assert_eq!(row.len(), plan.dims);
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx512
        && (16..=512).contains(&plan.window)
        && row.len() == plan.dims
        && src.is_none_or(|s| s.len() == row.len())
        && level.runs_here()
        && std::arch::is_x86_feature_detected!("fma")
    {
        // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL, and
        // `is_x86_feature_detected` that it has FMA.
        return unsafe { x86::forward_planned_avx512(plan, src.map(|s| (s, None)), row) };
    }
    if let Some(s) = src {
        row.copy_from_slice(s);
    }
    #[cfg(target_arch = "x86_64")]
    if level == Level::Avx2 && plan.window >= 64 && row.len() == plan.dims && level.runs_here() {
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2, and
            // `is_x86_feature_detected` that it has FMA.
            return unsafe { x86::forward_planned_avx2_fma(plan, row) };
        }
        // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
        return unsafe { x86::forward_planned_avx2(plan, row) };
    }
    forward_at(level, signs, plan.window, row)
}

/// [`forward`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn forward_at(level: Level, signs: &[f32], window: usize, row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::forward_avx512(signs, window, row) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::forward_avx2(signs, window, row) },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has NEON.
        return unsafe { neon::forward(signs, window, row) };
    }
    let _ = level;
    forward_scalar(signs, window, row)
}

/// [`inverse`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn inverse_at(level: Level, signs: &[f32], window: usize, row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::inverse_avx512(signs, window, row) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::inverse_avx2(signs, window, row) },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: `runs_here` checked at run time that the CPU has NEON.
        return unsafe { neon::inverse(signs, window, row) };
    }
    let _ = level;
    inverse_scalar(signs, window, row)
}

/// The scalar reference of [`forward`].
pub fn forward_scalar(signs: &[f32], window: usize, row: &mut [f32]) {
    forward_with(signs, window, row, fwht)
}

/// The scalar reference of [`inverse`].
pub fn inverse_scalar(signs: &[f32], window: usize, row: &mut [f32]) {
    inverse_with(signs, window, row, fwht)
}

/// [`forward`]'s body: the scalar reference, and the body each SIMD level compiles with
/// wider instructions and its own `fwht` (which must give [`fwht`]'s bits).
#[inline(always)]
fn forward_with(signs: &[f32], window: usize, row: &mut [f32], fwht: impl Fn(&mut [f32])) {
    let (d, w) = (row.len(), window);
    for signs in signs.chunks_exact(d) {
        row.iter_mut().zip(signs).for_each(|(x, s)| *x *= s);
        fwht(&mut row[..w]);
        if w < d {
            fwht(&mut row[d - w..]);
        }
    }
}

/// [`inverse`]'s body; see [`forward_with`].
#[inline(always)]
fn inverse_with(signs: &[f32], window: usize, row: &mut [f32], fwht: impl Fn(&mut [f32])) {
    let (d, w) = (row.len(), window);
    for signs in signs.chunks_exact(d).rev() {
        if w < d {
            fwht(&mut row[d - w..]);
        }
        fwht(&mut row[..w]);
        row.iter_mut().zip(signs).for_each(|(x, s)| *x *= s);
    }
}

/// The orthonormal (hence self-inverse) fast Walsh–Hadamard transform; `x.len()` is a power
/// of two.
#[inline(always)]
pub fn fwht(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    if n >= 4 {
        // The first two stages in registers: short inner loops would dominate otherwise.
        for q in x.chunks_exact_mut(4) {
            let (a, b, c, d) = (q[0] + q[1], q[0] - q[1], q[2] + q[3], q[2] - q[3]);
            q.copy_from_slice(&[a + c, b + d, a - c, b - d]);
        }
        h = 4;
    }
    fwht_from(x, h);
}

/// [`fwht`]'s stages from butterfly distance `h` on (`x` has had the earlier ones), then
/// the normalisation. Stage `h` maps each pair `(u, v) = (x[i], x[i + h])` to
/// `(u + v, u − v)`, for `i` with bit `h` clear.
#[inline(always)]
pub fn fwht_from(x: &mut [f32], mut h: usize) {
    let n = x.len();
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (a, b) = block.split_at_mut(h);
            for (p, q) in a.iter_mut().zip(b.iter_mut()) {
                let (u, v) = (*p, *q);
                *p = u + v;
                *q = u - v;
            }
        }
        h *= 2;
    }
    let norm = (n as f64).sqrt().recip() as f32;
    x.iter_mut().for_each(|v| *v *= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_matches_the_scalar_reference() {
        let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for dims in [
            1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 64, 65, 100, 128, 200, 256, 384, 512, 513,
            700, 1000, 1024,
        ] {
            for rounds in [1u32, 2, 3] {
                let signs: Vec<f32> = (0..rounds as usize * dims).map(|_| rng.sign()).collect();
                let (signs, w) = (&signs[..], 1 << dims.ilog2());
                let plan = Plan::new(signs, w, dims);
                let mut row: Vec<f32> = (0..dims).map(|_| rng.centred()).collect();
                // Zeros of both signs and a tiny value: the folded sign flips keep their signs.
                for (i, x) in row.iter_mut().enumerate().step_by(7) {
                    *x = match i % 3 {
                        0 => 0.0,
                        1 => -0.0,
                        _ => 1e-41,
                    };
                }
                let mut fwd = row.clone();
                forward_scalar(signs, w, &mut fwd);
                let mut back = fwd.clone();
                inverse_scalar(signs, w, &mut back);
                #[cfg(target_arch = "x86_64")]
                if w >= 64 && Level::Avx2.runs_here() {
                    // Both AVX2 variants, whichever the dispatcher picks on this CPU.
                    let mut planned = row.clone();
                    // SAFETY: `runs_here` checked that the CPU has AVX2.
                    unsafe { x86::forward_planned_avx2(&plan, &mut planned) };
                    assert_eq!(bits(&planned), bits(&fwd), "planned avx2 dims {dims}");
                    if std::arch::is_x86_feature_detected!("fma") {
                        let mut planned = row.clone();
                        // SAFETY: AVX2 as above, and FMA checked just now.
                        unsafe { x86::forward_planned_avx2_fma(&plan, &mut planned) };
                        assert_eq!(bits(&planned), bits(&fwd), "planned fma dims {dims}");
                    }
                }
                for l in Level::available() {
                    let mut planned = row.clone();
                    forward_planned_at(l, &plan, signs, &mut planned);
                    assert_eq!(
                        bits(&planned),
                        bits(&fwd),
                        "planned {} dims {dims}",
                        l.name()
                    );
                    // From the input row: `row` starts with other values, all overwritten.
                    let mut from = vec![f32::NAN; dims];
                    forward_planned_centred_at(l, &plan, signs, &row, None, &mut from);
                    assert_eq!(bits(&from), bits(&fwd), "from {} dims {dims}", l.name());
                    // Centred on a mean and padded: the first `n` values `row − mean`,
                    // zeros after, against the reference of that row.
                    let mean: Vec<f32> = (0..dims).map(|_| rng.centred()).collect();
                    for n in [dims, dims * 3 / 4, dims / 2 + 1, 1] {
                        for centred in [true, false] {
                            let m = centred.then_some(&mean[..n]);
                            let mut want: Vec<f32> = (0..dims)
                                .map(|i| match (i < n, m) {
                                    (false, _) => 0.0,
                                    (true, Some(m)) => row[i] - m[i],
                                    (true, None) => row[i],
                                })
                                .collect();
                            forward_scalar(signs, w, &mut want);
                            let mut from = vec![f32::NAN; dims];
                            forward_planned_centred_at(l, &plan, signs, &row[..n], m, &mut from);
                            assert_eq!(
                                bits(&from),
                                bits(&want),
                                "centred={centred} {} dims {dims} of {n}",
                                l.name()
                            );
                        }
                    }
                    let mut got = row.clone();
                    forward_at(l, signs, w, &mut got);
                    assert_eq!(bits(&got), bits(&fwd), "forward {} dims {dims}", l.name());
                    inverse_at(l, signs, w, &mut got);
                    assert_eq!(bits(&got), bits(&back), "inverse {} dims {dims}", l.name());
                }
            }
        }
    }

    #[test]
    fn fwht_matches_the_textbook_definition() {
        for n in [1usize, 2, 4, 8, 16, 64] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let mut y = x.clone();
            fwht(&mut y);
            for (k, &got) in y.iter().enumerate() {
                // H[k][i] = (-1)^popcount(k & i) / sqrt(n)
                let want: f64 = x
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        f64::from(v)
                            * if (k & i).count_ones() % 2 == 0 {
                                1.0
                            } else {
                                -1.0
                            }
                    })
                    .sum::<f64>()
                    / (n as f64).sqrt();
                assert!((f64::from(got) - want).abs() < 1e-5, "n={n} k={k}");
            }
        }
    }
}
