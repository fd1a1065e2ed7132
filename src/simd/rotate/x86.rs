//! x86-64 kernels of the rotation (AVX2, AVX-512).

use std::arch::x86_64::*;

use super::{Plan, forward_with, fwht, fwht_from, inverse_with};

#[target_feature(enable = "avx2")]
pub(super) fn forward_avx2(signs: &[f32], window: usize, row: &mut [f32]) {
    forward_with(signs, window, row, |x| fwht_avx2(x))
}

#[target_feature(enable = "avx2")]
pub(super) fn inverse_avx2(signs: &[f32], window: usize, row: &mut [f32]) {
    inverse_with(signs, window, row, |x| fwht_avx2(x))
}

/// [`fwht`] with stages 1, 2 and 4 inside each 8-lane register, stages 8 to 32 across the
/// registers of a 64-float block, and the later stages two at a time (four registers
/// `h` apart), then the normalisation: one load and store a value per pass, where the
/// plain loop makes one per stage.
#[target_feature(enable = "avx2")]
fn fwht_avx2(x: &mut [f32]) {
    let n = x.len();
    let block = match n {
        0..8 => return fwht(x),
        8 => 8,
        16 => 16,
        32 => 32,
        _ => 64,
    };
    for b in x.chunks_exact_mut(block) {
        match block {
            8 => fwht8_regs::<1>(b),
            16 => fwht8_regs::<2>(b),
            32 => fwht8_regs::<4>(b),
            _ => fwht8_regs::<8>(b),
        }
    }
    let mut h = block;
    while h < n {
        if 4 * h <= n {
            for b in x.chunks_exact_mut(4 * h) {
                for i in (0..h).step_by(8) {
                    let p = b.as_mut_ptr();
                    // SAFETY: `i + 3h + 8 <= 4h = b.len()` (h is a multiple of 8).
                    unsafe {
                        let p0 = _mm256_loadu_ps(p.add(i));
                        let p1 = _mm256_loadu_ps(p.add(i + h));
                        let p2 = _mm256_loadu_ps(p.add(i + 2 * h));
                        let p3 = _mm256_loadu_ps(p.add(i + 3 * h));
                        // Stage h, then stage 2h, as fwht_from runs them.
                        let (q0, q1) = (_mm256_add_ps(p0, p1), _mm256_sub_ps(p0, p1));
                        let (q2, q3) = (_mm256_add_ps(p2, p3), _mm256_sub_ps(p2, p3));
                        _mm256_storeu_ps(p.add(i), _mm256_add_ps(q0, q2));
                        _mm256_storeu_ps(p.add(i + 2 * h), _mm256_sub_ps(q0, q2));
                        _mm256_storeu_ps(p.add(i + h), _mm256_add_ps(q1, q3));
                        _mm256_storeu_ps(p.add(i + 3 * h), _mm256_sub_ps(q1, q3));
                    }
                }
            }
            h *= 4;
        } else {
            for b in x.chunks_exact_mut(2 * h) {
                for i in (0..h).step_by(8) {
                    let p = b.as_mut_ptr();
                    // SAFETY: `i + h + 8 <= 2h = b.len()`.
                    unsafe {
                        let u = _mm256_loadu_ps(p.add(i));
                        let v = _mm256_loadu_ps(p.add(i + h));
                        _mm256_storeu_ps(p.add(i), _mm256_add_ps(u, v));
                        _mm256_storeu_ps(p.add(i + h), _mm256_sub_ps(u, v));
                    }
                }
            }
            h *= 2;
        }
    }
    let norm = _mm256_set1_ps((n as f64).sqrt().recip() as f32);
    for c in x.chunks_exact_mut(8) {
        // SAFETY: `c` has exactly 8 floats.
        unsafe {
            _mm256_storeu_ps(
                c.as_mut_ptr(),
                _mm256_mul_ps(_mm256_loadu_ps(c.as_ptr()), norm),
            )
        };
    }
}

/// `x[i] × m[i]` of the eight floats at `i` of `x` and `m` (both at least `i + 8` long).
#[target_feature(enable = "avx2")]
#[inline]
fn times8(v: __m256, m: &[f32], i: usize) -> __m256 {
    let m = &m[i..i + 8];
    // SAFETY: `m` has exactly 8 floats.
    _mm256_mul_ps(v, unsafe { _mm256_loadu_ps(m.as_ptr()) })
}

/// The encoder's forward rotation ([`super::forward_planned_at`]) and its transform, once
/// for each way of running the in-register butterflies: `$feat` the features the kernels
/// are compiled with, `$inreg` the butterflies of stages 1, 2 and 4.
macro_rules! planned_kernels {
    ($feat:literal, $planned:ident, $fused:ident, $inreg:ident) => {
        /// [`super::forward_planned_at`] at AVX2 (the window `w` is at least 64): each window in
        /// as few passes as [`fwht_avx2`] makes, with round 1's signs multiplied in by the first
        /// pass's loads and the normalisation (times the next round's signs) by the last pass's
        /// stores, instead of a pass of their own each.
        #[target_feature(enable = $feat)]
        pub(super) fn $planned(plan: &Plan, row: &mut [f32]) {
            let (d, w) = (row.len(), plan.window);
            for r in 0..plan.rounds {
                let load1 = (r == 0).then_some(&plan.load1[..]);
                $fused(&mut row[..w], load1, &plan.store1[r * w..(r + 1) * w]);
                if w < d {
                    let load2 = (r == 0).then_some(&plan.load2[..]);
                    $fused(&mut row[d - w..], load2, &plan.store2[r * w..(r + 1) * w]);
                }
            }
        }

        /// The butterflies of [`fwht_avx2`] on `x` (a power of two, at least 64 long), each value
        /// multiplied by `load[i]` as the first pass loads it (when given) and by `store[i]` (the
        /// normalisation, and a sign) as the last pass stores it.
        #[target_feature(enable = $feat)]
        fn $fused(x: &mut [f32], load: Option<&[f32]>, store: &[f32]) {
            let n = x.len();
            assert!(n >= 64 && load.is_none_or(|l| l.len() == n) && store.len() == n);
            // Stages 1 to 32 in 64-float blocks of 8 registers.
            for (k, b) in x.chunks_exact_mut(64).enumerate() {
                let mut r = [_mm256_setzero_ps(); 8];
                for (j, r) in r.iter_mut().enumerate() {
                    // SAFETY: `b` has 64 floats, so 8 from offset 8j are in bounds.
                    let mut v = unsafe { _mm256_loadu_ps(b.as_ptr().add(8 * j)) };
                    if let Some(l) = load {
                        v = times8(v, l, 64 * k + 8 * j);
                    }
                    *r = $inreg(v);
                }
                let mut h = 1;
                while h < 8 {
                    for s in (0..8).step_by(2 * h) {
                        for i in s..s + h {
                            let (u, v) = (r[i], r[i + h]);
                            r[i] = _mm256_add_ps(u, v);
                            r[i + h] = _mm256_sub_ps(u, v);
                        }
                    }
                    h *= 2;
                }
                for (j, v) in r.into_iter().enumerate() {
                    let v = if n == 64 { times8(v, store, 8 * j) } else { v };
                    // SAFETY: as above.
                    unsafe { _mm256_storeu_ps(b.as_mut_ptr().add(8 * j), v) };
                }
            }
            let mut h = 64;
            while h < n {
                let pair = 4 * h <= n;
                let next = if pair { 4 * h } else { 2 * h };
                let last = next >= n;
                let span = next;
                for (k, b) in x.chunks_exact_mut(span).enumerate() {
                    let base = k * span;
                    let p = b.as_mut_ptr();
                    let put = |off: usize, v: __m256| {
                        let v = if last {
                            times8(v, store, base + off)
                        } else {
                            v
                        };
                        // SAFETY: every `off` below is at most `span − 8` (`h` is a multiple of 8).
                        unsafe { _mm256_storeu_ps(p.add(off), v) };
                    };
                    for i in (0..h).step_by(8) {
                        if pair {
                            // SAFETY: `i + 3h + 8 <= 4h = b.len()`.
                            let (p0, p1, p2, p3) = unsafe {
                                (
                                    _mm256_loadu_ps(p.add(i)),
                                    _mm256_loadu_ps(p.add(i + h)),
                                    _mm256_loadu_ps(p.add(i + 2 * h)),
                                    _mm256_loadu_ps(p.add(i + 3 * h)),
                                )
                            };
                            // Stage h, then stage 2h, as fwht_from runs them.
                            let (q0, q1) = (_mm256_add_ps(p0, p1), _mm256_sub_ps(p0, p1));
                            let (q2, q3) = (_mm256_add_ps(p2, p3), _mm256_sub_ps(p2, p3));
                            put(i, _mm256_add_ps(q0, q2));
                            put(i + 2 * h, _mm256_sub_ps(q0, q2));
                            put(i + h, _mm256_add_ps(q1, q3));
                            put(i + 3 * h, _mm256_sub_ps(q1, q3));
                        } else {
                            // SAFETY: `i + h + 8 <= 2h = b.len()`.
                            let (u, v) = unsafe {
                                (_mm256_loadu_ps(p.add(i)), _mm256_loadu_ps(p.add(i + h)))
                            };
                            put(i, _mm256_add_ps(u, v));
                            put(i + h, _mm256_sub_ps(u, v));
                        }
                    }
                }
                h = next;
            }
        }
    };
}

planned_kernels!("avx2", forward_planned_avx2, fwht_fused_avx2, in_register8);
planned_kernels!(
    "avx2,fma",
    forward_planned_avx2_fma,
    fwht_fused_avx2_fma,
    in_register8_fma
);

/// Stages 1 to `4N` of [`fwht`] on `x`, exactly `8 × N` floats, held in `N` registers
/// (no normalisation).
#[target_feature(enable = "avx2")]
#[inline]
fn fwht8_regs<const N: usize>(x: &mut [f32]) {
    let x = &mut x[..8 * N];
    let mut r = [_mm256_setzero_ps(); N];
    for (k, r) in r.iter_mut().enumerate() {
        // SAFETY: `x` has 8N floats, so 8 from offset 8k are in bounds.
        *r = in_register8(unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * k)) });
    }
    let mut h = 1;
    while h < N {
        for b in (0..N).step_by(2 * h) {
            for i in b..b + h {
                let (u, v) = (r[i], r[i + h]);
                r[i] = _mm256_add_ps(u, v);
                r[i + h] = _mm256_sub_ps(u, v);
            }
        }
        h *= 2;
    }
    for (k, r) in r.iter().enumerate() {
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(x.as_mut_ptr().add(8 * k), *r) };
    }
}

/// Butterfly stages 1, 2 and 4 of 8 floats in one register. Each stage: `t` is every
/// lane's partner at distance h; lanes with bit h clear become u + v (self + partner),
/// the others u − v (partner − self), which is partner + (−self) bit for bit: the sign of
/// those lanes is flipped (an exact xor) and one add makes both kinds, where an add, a
/// subtract and a blend did.
#[target_feature(enable = "avx2")]
#[inline]
fn in_register8(mut v: __m256) -> __m256 {
    let neg = |lanes: [f32; 8]| {
        // SAFETY: `lanes` has 8 floats.
        unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
    };
    let z = 0.0;
    let m1 = neg([z, -z, z, -z, z, -z, z, -z]);
    let m2 = neg([z, z, -z, -z, z, z, -z, -z]);
    let m4 = neg([z, z, z, z, -z, -z, -z, -z]);
    let t = _mm256_permute_ps::<0b10_11_00_01>(v);
    v = _mm256_add_ps(t, _mm256_xor_ps(v, m1));
    let t = _mm256_permute_ps::<0b01_00_11_10>(v);
    v = _mm256_add_ps(t, _mm256_xor_ps(v, m2));
    let t = _mm256_permute2f128_ps::<0x01>(v, v);
    _mm256_add_ps(t, _mm256_xor_ps(v, m4))
}

/// [`in_register8`] with one fused multiply-add a stage: `partner + self × s`, `s` = −1 in
/// the lanes with bit h set and 1 in the others. The product by ±1 is exact, so the one
/// rounding is that of partner ± self: the same bits as the add, with the adds on the
/// multiply units (half the instructions of [`in_register8`]'s stages).
#[target_feature(enable = "avx2,fma")]
#[inline]
fn in_register8_fma(mut v: __m256) -> __m256 {
    let s = |lanes: [f32; 8]| {
        // SAFETY: `lanes` has 8 floats.
        unsafe { _mm256_loadu_ps(lanes.as_ptr()) }
    };
    let s1 = s([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, -1.0]);
    let s2 = s([1.0, 1.0, -1.0, -1.0, 1.0, 1.0, -1.0, -1.0]);
    let s4 = s([1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -1.0]);
    let t = _mm256_permute_ps::<0b10_11_00_01>(v);
    v = _mm256_fmadd_ps(v, s1, t);
    let t = _mm256_permute_ps::<0b01_00_11_10>(v);
    v = _mm256_fmadd_ps(v, s2, t);
    let t = _mm256_permute2f128_ps::<0x01>(v, v);
    _mm256_fmadd_ps(v, s4, t)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn forward_avx512(signs: &[f32], window: usize, row: &mut [f32]) {
    forward_with(signs, window, row, |x| fwht_avx512(x))
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn inverse_avx512(signs: &[f32], window: usize, row: &mut [f32]) {
    inverse_with(signs, window, row, |x| fwht_avx512(x))
}

/// [`fwht`] with stages 1, 2, 4 and 8 inside each 16-lane register, and for windows of
/// up to 512 floats the whole transform in registers (one load and one store a value).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn fwht_avx512(x: &mut [f32]) {
    match x.len() {
        16 => fwht_regs::<1>(x),
        32 => fwht_regs::<2>(x),
        64 => fwht_regs::<4>(x),
        128 => fwht_regs::<8>(x),
        256 => fwht_regs::<16>(x),
        512 => fwht_regs::<32>(x),
        n if n < 16 => fwht(x),
        _ => {
            for c in x.chunks_exact_mut(16) {
                // SAFETY: `c` has exactly 16 floats.
                let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
                // SAFETY: as above.
                unsafe { _mm512_storeu_ps(c.as_mut_ptr(), in_register(v)) };
            }
            fwht_from(x, 16);
        }
    }
}

/// [`fwht`] of `x`, exactly `16 × N` floats, held in `N` registers.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn fwht_regs<const N: usize>(x: &mut [f32]) {
    let x = &mut x[..16 * N];
    let mut r = [_mm512_setzero_ps(); N];
    for (k, r) in r.iter_mut().enumerate() {
        // SAFETY: `x` has 16N floats, so 16 from offset 16k are in bounds.
        *r = in_register(unsafe { _mm512_loadu_ps(x.as_ptr().add(16 * k)) });
    }
    // Stages 16, 32, ...: register k pairs with register k + h, as fwht_from pairs
    // x[i] with x[i + 16h].
    let mut h = 1;
    while h < N {
        for b in (0..N).step_by(2 * h) {
            for i in b..b + h {
                let (u, v) = (r[i], r[i + h]);
                r[i] = _mm512_add_ps(u, v);
                r[i + h] = _mm512_sub_ps(u, v);
            }
        }
        h *= 2;
    }
    let norm = _mm512_set1_ps(((16 * N) as f64).sqrt().recip() as f32);
    for (k, r) in r.iter().enumerate() {
        // SAFETY: as above.
        unsafe { _mm512_storeu_ps(x.as_mut_ptr().add(16 * k), _mm512_mul_ps(*r, norm)) };
    }
}

/// Butterfly stages 1, 2, 4 and 8 of 16 floats in one register. Each stage: `t` is every
/// lane's partner at distance h; lanes with bit h clear become u + v (self + partner),
/// the others u − v (partner − self).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn in_register(mut v: __m512) -> __m512 {
    let t = _mm512_permute_ps::<0b10_11_00_01>(v);
    v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), 0xaaaa, t, v);
    let t = _mm512_permute_ps::<0b01_00_11_10>(v);
    v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), 0xcccc, t, v);
    let t = _mm512_shuffle_f32x4::<0b10_11_00_01>(v, v);
    v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), 0xf0f0, t, v);
    let t = _mm512_shuffle_f32x4::<0b01_00_11_10>(v, v);
    _mm512_mask_sub_ps(_mm512_add_ps(v, t), 0xff00, t, v)
}

/// [`in_register`] with one fused multiply-add a stage, as [`in_register8_fma`] does it:
/// `partner + self × s` with `s` = −1 in the lanes with bit h set and 1 in the others;
/// the product by ±1 is exact, so it rounds as `partner ± self` does.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
#[inline]
fn in_register_fma(mut v: __m512) -> __m512 {
    let s = |m: u16| _mm512_mask_blend_ps(m, _mm512_set1_ps(1.0), _mm512_set1_ps(-1.0));
    let t = _mm512_permute_ps::<0b10_11_00_01>(v);
    v = _mm512_fmadd_ps(v, s(0xaaaa), t);
    let t = _mm512_permute_ps::<0b01_00_11_10>(v);
    v = _mm512_fmadd_ps(v, s(0xcccc), t);
    let t = _mm512_shuffle_f32x4::<0b10_11_00_01>(v, v);
    v = _mm512_fmadd_ps(v, s(0xf0f0), t);
    let t = _mm512_shuffle_f32x4::<0b01_00_11_10>(v, v);
    _mm512_fmadd_ps(v, s(0xff00), t)
}

/// Where a window's values come from besides its pointer: `src[i] − mean[i]` (the mean
/// when given) for `i < valid`, `0.0` past it (a padded row's zeros, masked lanes of the
/// loads).
#[derive(Clone, Copy)]
struct Source {
    mean: Option<*const f32>,
    valid: usize,
}

impl Source {
    /// A window read in full from its pointer.
    const ALL: Source = Source {
        mean: None,
        valid: usize::MAX,
    };

    /// The 16 values of `p` from `at`, the lanes at or past `valid` zero.
    ///
    /// # Safety
    /// The CPU has AVX-512 F; `p` points to at least `min(at + 16, valid)` floats.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    unsafe fn load(self, p: *const f32, at: usize) -> __m512 {
        if at + 16 <= self.valid {
            // SAFETY: the caller's `p` has `at + 16` floats.
            unsafe { _mm512_loadu_ps(p.add(at)) }
        } else {
            let k = self.valid.saturating_sub(at);
            let m = if k >= 16 { u16::MAX } else { (1u16 << k) - 1 };
            // SAFETY: the mask reads only lanes below `valid`, which the caller's `p`
            // holds; masked-off lanes are not accessed (and `wrapping_add` computes the
            // address without asserting it is in bounds).
            unsafe { _mm512_maskz_loadu_ps(m, p.wrapping_add(at)) }
        }
    }
}

/// One window of the planned forward rotation at AVX-512, `16 × N` floats held in `N`
/// registers: loaded from `src` (as `from` says when `FROM`: minus the mean, zeros past
/// `valid`; in full otherwise),
/// times `load[i]` when given, transformed as
/// [`fwht_regs`] does it, and stored to `dst` times `store[i]` (the normalisation, and a
/// sign). `src` and `dst` may be the same window.
///
/// # Safety
/// The CPU has AVX-512 F/BW/VL and FMA; `src`, `dst`, `store` (and `load`) point to at
/// least `16 × N` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
#[inline]
unsafe fn window_planned<const N: usize, const FROM: bool>(
    src: *const f32,
    dst: *mut f32,
    load: Option<*const f32>,
    from: Source,
    store: *const f32,
) {
    let mut r = [_mm512_setzero_ps(); N];
    for (k, r) in r.iter_mut().enumerate() {
        // SAFETY: the caller's pointers have 16N floats (`src` and the mean `from.valid`
        // when fewer), so 16 from offset 16k are in bounds, or the lanes the mask reads.
        let mut v = if FROM {
            // SAFETY: as above.
            unsafe { from.load(src, 16 * k) }
        } else {
            // SAFETY: as above (`from` is [`Source::ALL`] when `FROM` is false).
            unsafe { _mm512_loadu_ps(src.add(16 * k)) }
        };
        if let (true, Some(c)) = (FROM, from.mean) {
            // SAFETY: as above.
            v = _mm512_sub_ps(v, unsafe { from.load(c, 16 * k) });
        }
        if let Some(l) = load {
            // SAFETY: as above.
            v = _mm512_mul_ps(v, unsafe { _mm512_loadu_ps(l.add(16 * k)) });
        }
        *r = in_register_fma(v);
    }
    let mut h = 1;
    while h < N {
        for b in (0..N).step_by(2 * h) {
            for i in b..b + h {
                let (u, v) = (r[i], r[i + h]);
                r[i] = _mm512_add_ps(u, v);
                r[i + h] = _mm512_sub_ps(u, v);
            }
        }
        h *= 2;
    }
    for (k, r) in r.iter().enumerate() {
        // SAFETY: as above.
        unsafe {
            let m = _mm512_loadu_ps(store.add(16 * k));
            _mm512_storeu_ps(dst.add(16 * k), _mm512_mul_ps(*r, m));
        }
    }
}

/// [`window_planned`] for a window of `w` floats (16 to 512, a power of two).
///
/// # Safety
/// As [`window_planned`], with `w` for `16 × N`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
#[inline]
unsafe fn window_planned_w(
    w: usize,
    src: *const f32,
    dst: *mut f32,
    load: Option<*const f32>,
    from: Source,
    store: *const f32,
) {
    // A window read in full takes the plain loads (the code of a row without a mean or
    // zeros is that of one read from `row`); the others the masked, centring ones.
    if from.mean.is_none() && from.valid >= w {
        // SAFETY: as the caller's.
        unsafe { window_planned_as::<false>(w, src, dst, load, from, store) }
    } else {
        // SAFETY: as the caller's.
        unsafe { window_planned_as::<true>(w, src, dst, load, from, store) }
    }
}

/// [`window_planned_w`] with [`window_planned`]'s `FROM`.
///
/// # Safety
/// As [`window_planned_w`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
#[inline]
unsafe fn window_planned_as<const FROM: bool>(
    w: usize,
    src: *const f32,
    dst: *mut f32,
    load: Option<*const f32>,
    from: Source,
    store: *const f32,
) {
    // SAFETY: the caller's pointers hold `w = 16N` floats (`src` and the mean
    // `min(w, from.valid)`).
    unsafe {
        match w {
            16 => window_planned::<1, FROM>(src, dst, load, from, store),
            32 => window_planned::<2, FROM>(src, dst, load, from, store),
            64 => window_planned::<4, FROM>(src, dst, load, from, store),
            128 => window_planned::<8, FROM>(src, dst, load, from, store),
            256 => window_planned::<16, FROM>(src, dst, load, from, store),
            512 => window_planned::<32, FROM>(src, dst, load, from, store),
            _ => unreachable!("window {w} is not 16 to 512"),
        }
    }
}

/// [`super::forward_planned_at`] and [`super::forward_planned_centred_at`] at AVX-512
/// (windows of 16 to 512 floats): each window of each round in registers, one load and one
/// store a value, with round 1's signs multiplied in by the loads and the normalisation
/// (times the next round's signs) by the stores. Given `src` (at most `dims` values) and
/// its mean, round 1's first window reads `src − mean` (zeros past `src`) instead of `row`,
/// and the values past that window are written from them first, so the row needs no copy
/// of its own.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
pub(super) fn forward_planned_avx512(
    plan: &Plan,
    src: Option<(&[f32], Option<&[f32]>)>,
    row: &mut [f32],
) {
    let (d, w) = (row.len(), plan.window);
    assert!(
        (16..=512).contains(&w)
            && w <= d
            && src.is_none_or(|(s, m)| s.len() <= d && m.is_none_or(|m| m.len() == s.len()))
            && plan.load1.len() == w
            && plan.load2.len() == w
            && plan.store1.len() == plan.rounds * w
            && plan.store2.len() == plan.rounds * w
    );
    let from = src.map(|(s, m)| Source {
        mean: m.map(<[f32]>::as_ptr),
        valid: s.len(),
    });
    if let (Some((s, _)), Some(from)) = (src, from) {
        // The values past window 1, sixteen at a time (the last ones masked), centred and
        // padded as `from` says: a short loop in registers, where `copy_from_slice` calls
        // `memcpy`.
        for i in (w..d).step_by(16) {
            let k = (d - i).min(16);
            let m = if k == 16 { u16::MAX } else { (1u16 << k) - 1 };
            // SAFETY: lanes `i..i + k` of `row` are in bounds and the mask `m` writes
            // only those; `from.load` reads lanes below `s.len()` of `s` and the mean
            // (as long), which they hold.
            unsafe {
                let mut v = from.load(s.as_ptr(), i);
                if let Some(c) = from.mean {
                    v = _mm512_sub_ps(v, from.load(c, i));
                }
                _mm512_mask_storeu_ps(row.as_mut_ptr().add(i), m, v);
            }
        }
    }
    let p = row.as_mut_ptr();
    for r in 0..plan.rounds {
        let first = r == 0;
        let (src1, from1) = match (first, src, from) {
            (true, Some((s, _)), Some(f)) => (s.as_ptr(), f),
            _ => (p.cast_const(), Source::ALL),
        };
        // SAFETY: the CPU has what this function is compiled for (the caller checked);
        // windows `[0, w)` and `[d − w, d)` of `row` hold `w` floats, as do `load1`,
        // `load2` and each round's `store1` and `store2` (asserted above); `src` and its
        // mean hold the `from1.valid` floats window 1 reads of them.
        unsafe {
            window_planned_w(
                w,
                src1,
                p,
                first.then_some(plan.load1.as_ptr()),
                from1,
                plan.store1.as_ptr().add(r * w),
            );
            if w < d {
                window_planned_w(
                    w,
                    p.add(d - w).cast_const(),
                    p.add(d - w),
                    first.then_some(plan.load2.as_ptr()),
                    Source::ALL,
                    plan.store2.as_ptr().add(r * w),
                );
            }
        }
    }
}
