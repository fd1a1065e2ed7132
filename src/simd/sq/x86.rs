//! x86-64 kernels of the `sq` encoder's passes (AVX2; also what the AVX-512 level runs).

use std::arch::x86_64::*;

use super::{LANES, code_of};

/// `|v|` of eight floats: the sign bit cleared.
#[target_feature(enable = "avx2")]
#[inline]
fn abs8(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

/// The eight f64 products `x[i] × y[i]` of eight f32 pairs, in order, into `out`.
#[target_feature(enable = "avx2")]
#[inline]
fn products_f64(x: __m256, y: __m256, out: &mut [f64; 8]) {
    let lo = _mm256_mul_pd(
        _mm256_cvtps_pd(_mm256_castps256_ps128(x)),
        _mm256_cvtps_pd(_mm256_castps256_ps128(y)),
    );
    let hi = _mm256_mul_pd(
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)),
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(y)),
    );
    // SAFETY: `out` has 8 f64, so 4 from offsets 0 and 4 are in bounds.
    unsafe {
        _mm256_storeu_pd(out.as_mut_ptr(), lo);
        _mm256_storeu_pd(out.as_mut_ptr().add(4), hi);
    }
}

#[target_feature(enable = "avx2")]
pub(super) fn stats_avx2(v: &[f32], a: &mut [f32]) -> (f64, f32) {
    let n = v.len().min(a.len());
    let (v, a) = (&v[..n], &mut a[..n]);
    let full = n / 8 * 8;
    let mut mx = _mm256_setzero_ps();
    let mut sum_sq = 0f64;
    let mut sq = [0f64; 8];
    for i in (0..full).step_by(8) {
        // SAFETY: `i + 8 <= full <= n`, the length of both slices.
        let y = unsafe { _mm256_loadu_ps(v.as_ptr().add(i)) };
        let x = abs8(y);
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr().add(i), x) };
        mx = _mm256_max_ps(mx, x);
        products_f64(y, y, &mut sq);
        for s in sq {
            sum_sq += s;
        }
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` has 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), mx) };
    let mut max_abs = lanes.iter().fold(0f32, |m, &x| m.max(x));
    for (x, &y) in a[full..].iter_mut().zip(&v[full..]) {
        *x = y.abs();
        sum_sq += f64::from(y) * f64::from(y);
        max_abs = max_abs.max(*x);
    }
    (sum_sq, max_abs)
}

#[target_feature(enable = "avx2")]
pub(super) fn scale_avx2(a: &mut [f32], inv: f64) -> f32 {
    let n = a.len();
    let full = n / 8 * 8;
    let vi = _mm256_set1_pd(inv);
    for i in (0..full).step_by(8) {
        // SAFETY: `i + 8 <= full <= n`.
        let x = unsafe { _mm256_loadu_ps(a.as_ptr().add(i)) };
        let lo = _mm256_cvtpd_ps(_mm256_mul_pd(
            _mm256_cvtps_pd(_mm256_castps256_ps128(x)),
            vi,
        ));
        let hi = _mm256_cvtpd_ps(_mm256_mul_pd(
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)),
            vi,
        ));
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr().add(i), _mm256_set_m128(hi, lo)) };
    }
    a[full..]
        .iter_mut()
        .for_each(|x| *x = (f64::from(*x) * inv) as f32);
    a.iter().sum()
}

#[target_feature(enable = "avx2")]
pub(super) fn grid_fit_avx2(a: &[f32], t: f32, top: f32) -> (f32, f32) {
    let n = a.len();
    let full = n / LANES * LANES;
    let (vt, vtop, one) = (_mm256_set1_ps(t), _mm256_set1_ps(top), _mm256_set1_ps(1.0));
    let (mut ma, mut mm) = (_mm256_setzero_ps(), _mm256_setzero_ps());
    for i in (0..full).step_by(LANES) {
        // SAFETY: `i + 8 <= full <= n`.
        let x = unsafe { _mm256_loadu_ps(a.as_ptr().add(i)) };
        let m = _mm256_min_ps(_mm256_floor_ps(_mm256_mul_ps(x, vt)), vtop);
        ma = _mm256_add_ps(ma, _mm256_mul_ps(m, x));
        mm = _mm256_add_ps(mm, _mm256_mul_ps(m, _mm256_add_ps(m, one)));
    }
    let (mut la, mut lm) = ([0f32; LANES], [0f32; LANES]);
    // SAFETY: each array has 8 floats.
    unsafe {
        _mm256_storeu_ps(la.as_mut_ptr(), ma);
        _mm256_storeu_ps(lm.as_mut_ptr(), mm);
    }
    for (l, &x) in a[full..].iter().enumerate() {
        let m = ((x * t) as i32 as f32).min(top);
        la[l] += m * x;
        lm[l] += m * (m + 1.0);
    }
    (la.iter().sum(), lm.iter().sum())
}

/// [`super::grid_fits_at`]: [`grid_fit_avx2`] of each of the `K` steps, in one pass.
#[target_feature(enable = "avx2")]
pub(super) fn grid_fits_avx2<const K: usize>(a: &[f32], ts: [f32; K], top: f32) -> [(f32, f32); K] {
    let n = a.len();
    let full = n / LANES * LANES;
    let (vtop, one) = (_mm256_set1_ps(top), _mm256_set1_ps(1.0));
    let vt = ts.map(|t| _mm256_set1_ps(t));
    let (mut ma, mut mm) = ([_mm256_setzero_ps(); K], [_mm256_setzero_ps(); K]);
    for i in (0..full).step_by(LANES) {
        // SAFETY: `i + 8 <= full <= n`.
        let x = unsafe { _mm256_loadu_ps(a.as_ptr().add(i)) };
        for k in 0..K {
            let m = _mm256_min_ps(_mm256_floor_ps(_mm256_mul_ps(x, vt[k])), vtop);
            ma[k] = _mm256_add_ps(ma[k], _mm256_mul_ps(m, x));
            mm[k] = _mm256_add_ps(mm[k], _mm256_mul_ps(m, _mm256_add_ps(m, one)));
        }
    }
    std::array::from_fn(|k| {
        let (mut la, mut lm) = ([0f32; LANES], [0f32; LANES]);
        // SAFETY: each array has 8 floats.
        unsafe {
            _mm256_storeu_ps(la.as_mut_ptr(), ma[k]);
            _mm256_storeu_ps(lm.as_mut_ptr(), mm[k]);
        }
        for (l, &x) in a[full..].iter().enumerate() {
            let m = ((x * ts[k]) as i32 as f32).min(top);
            la[l] += m * x;
            lm[l] += m * (m + 1.0);
        }
        (la.iter().sum(), lm.iter().sum())
    })
}

#[target_feature(enable = "avx2")]
pub(super) fn codes_avx2(v: &[f32], a: &[f32], t: f32, bits: u8, codes: &mut [u8]) -> (f64, u64) {
    let n = v.len().min(a.len()).min(codes.len());
    let full = n / 8 * 8;
    let half = 1u32 << (bits - 1);
    let top = (half - 1) as f32;
    let (vt, vtop) = (_mm256_set1_ps(t), _mm256_set1_ps(top));
    let vhalf = _mm256_set1_epi32(half as i32);
    let vhalf1 = _mm256_set1_epi32(half as i32 - 1);
    let lv_off = _mm256_set1_epi32(1 - (1 << bits));
    // Byte 0 of each 32-bit lane to the low 4 bytes of its 128-bit half.
    let pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let (mut lv, mut ll) = (0f64, _mm256_setzero_si256());
    let mut p = [0f64; 8];
    for i in (0..full).step_by(8) {
        // SAFETY: `i + 8 <= full <= n`, within all three slices.
        let (y, x) = unsafe {
            (
                _mm256_loadu_ps(v.as_ptr().add(i)),
                _mm256_loadu_ps(a.as_ptr().add(i)),
            )
        };
        // m is a whole number in [0, top]: the conversion is exact.
        let m = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_floor_ps(_mm256_mul_ps(x, vt)), vtop));
        let nonneg = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(y, _mm256_setzero_ps()));
        let code = _mm256_blendv_epi8(
            _mm256_sub_epi32(vhalf1, m),
            _mm256_add_epi32(vhalf, m),
            nonneg,
        );
        let l = _mm256_add_epi32(_mm256_add_epi32(code, code), lv_off);
        let l2 = _mm256_mullo_epi32(l, l);
        ll = _mm256_add_epi64(
            ll,
            _mm256_add_epi64(
                _mm256_cvtepu32_epi64(_mm256_castsi256_si128(l2)),
                _mm256_cvtepu32_epi64(_mm256_extracti128_si256::<1>(l2)),
            ),
        );
        products_f64(_mm256_cvtepi32_ps(l), y, &mut p);
        for s in p {
            lv += s;
        }
        let b = _mm256_shuffle_epi8(code, pick);
        let lo = _mm256_cvtsi256_si32(b) as u32;
        let hi = _mm256_extract_epi32::<4>(b) as u32;
        codes[i..i + 8].copy_from_slice(&(u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes());
    }
    let mut sums = [0u64; 4];
    // SAFETY: `sums` has 4 u64.
    unsafe { _mm256_storeu_si256(sums.as_mut_ptr().cast(), ll) };
    let mut ll: u64 = sums.iter().sum();
    for ((c, &y), &x) in codes[full..n].iter_mut().zip(&v[full..n]).zip(&a[full..n]) {
        let (code, l) = code_of(x, y, t, top, half, bits);
        *c = code;
        lv += f64::from(l) * f64::from(y);
        ll += (l * l) as u64;
    }
    (lv, ll)
}

#[target_feature(enable = "avx2")]
pub(super) fn abs_max_avx2(v: &[f32], a: &mut [f32]) -> f32 {
    let n = v.len().min(a.len());
    let (v, a) = (&v[..n], &mut a[..n]);
    let full = n / 8 * 8;
    let mut mx = _mm256_setzero_ps();
    for i in (0..full).step_by(8) {
        // SAFETY: `i + 8 <= full <= n`, the length of both slices.
        let x = abs8(unsafe { _mm256_loadu_ps(v.as_ptr().add(i)) });
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr().add(i), x) };
        mx = _mm256_max_ps(mx, x);
    }
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` has 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), mx) };
    let mut max_abs = lanes.iter().fold(0f32, |m, &x| m.max(x));
    for (x, &y) in a[full..].iter_mut().zip(&v[full..]) {
        *x = y.abs();
        max_abs = max_abs.max(*x);
    }
    max_abs
}

#[target_feature(enable = "avx2")]
pub(super) fn rescale_avx2(a: &mut [f32], inv: f64) {
    let n = a.len();
    let full = n / 8 * 8;
    let vi = _mm256_set1_pd(inv);
    for i in (0..full).step_by(8) {
        // SAFETY: `i + 8 <= full <= n`.
        let x = unsafe { _mm256_loadu_ps(a.as_ptr().add(i)) };
        let lo = _mm256_cvtpd_ps(_mm256_mul_pd(
            _mm256_cvtps_pd(_mm256_castps256_ps128(x)),
            vi,
        ));
        let hi = _mm256_cvtpd_ps(_mm256_mul_pd(
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x)),
            vi,
        ));
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr().add(i), _mm256_set_m128(hi, lo)) };
    }
    a[full..]
        .iter_mut()
        .for_each(|x| *x = (f64::from(*x) * inv) as f32);
}

/// The columns of the 4 × 4 block whose rows are `r`: column `k` holds `r[g][k]` in lane `g`.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose4(r: [__m128; 4]) -> [__m128; 4] {
    let t0 = _mm_unpacklo_ps(r[0], r[1]);
    let t1 = _mm_unpacklo_ps(r[2], r[3]);
    let t2 = _mm_unpackhi_ps(r[0], r[1]);
    let t3 = _mm_unpackhi_ps(r[2], r[3]);
    [
        _mm_movelh_ps(t0, t1),
        _mm_movehl_ps(t1, t0),
        _mm_movelh_ps(t2, t3),
        _mm_movehl_ps(t3, t2),
    ]
}

/// Values `i..i + 4` of each of the four rows, as the columns of [`transpose4`].
#[target_feature(enable = "avx2")]
#[inline]
fn columns4(rows: &[&[f32]; 4], i: usize) -> [__m128; 4] {
    transpose4(rows.map(|r| {
        let r = &r[i..i + 4];
        // SAFETY: `r` has exactly 4 floats.
        unsafe { _mm_loadu_ps(r.as_ptr()) }
    }))
}

/// Four of the `G` rows, from row `4q`.
#[inline]
fn quad<'a, const G: usize>(rows: &[&'a [f32]; G], q: usize) -> [&'a [f32]; 4] {
    std::array::from_fn(|g| rows[4 * q + g])
}

/// [`super::sums_sq_abs_at`] of 4 or 8 rows (`G`): four rows a register, and with eight
/// the two registers' chains side by side.
#[target_feature(enable = "avx2")]
pub(super) fn sums_sq_abs_avx2<const G: usize>(
    v: [&[f32]; G],
    a: [&[f32]; G],
) -> ([f64; G], [f32; G]) {
    assert!(G == 4 || G == 8);
    let quads = G / 4;
    let n = v.iter().chain(&a).map(|r| r.len()).min().unwrap_or(0);
    let full = n / 4 * 4;
    let (mut ss, mut sa) = ([_mm256_setzero_pd(); 2], [_mm_setzero_ps(); 2]);
    for i in (0..full).step_by(4) {
        for q in 0..quads {
            let (cv, ca) = (columns4(&quad(&v, q), i), columns4(&quad(&a, q), i));
            // Column k is value i + k of every row: added in column order, each lane adds
            // its row's values one after another.
            for (y, x) in cv.into_iter().zip(ca) {
                let y = _mm256_cvtps_pd(y);
                ss[q] = _mm256_add_pd(ss[q], _mm256_mul_pd(y, y));
                sa[q] = _mm_add_ps(sa[q], x);
            }
        }
    }
    let (mut s, mut t) = ([0f64; G], [0f32; G]);
    for q in 0..quads {
        let (s, t) = (&mut s[4 * q..4 * q + 4], &mut t[4 * q..4 * q + 4]);
        // SAFETY: `s` has 4 f64 and `t` 4 f32.
        unsafe {
            _mm256_storeu_pd(s.as_mut_ptr(), ss[q]);
            _mm_storeu_ps(t.as_mut_ptr(), sa[q]);
        }
    }
    for i in full..n {
        for (((s, t), v), a) in s.iter_mut().zip(&mut t).zip(&v).zip(&a) {
            *s += f64::from(v[i]) * f64::from(v[i]);
            *t += a[i];
        }
    }
    (s, t)
}

/// [`super::dots_in_order_at`] of 4 or 8 rows (`G`), as [`sums_sq_abs_avx2`] runs them.
#[target_feature(enable = "avx2")]
pub(super) fn dots_in_order_avx2<const G: usize>(l: [&[f32]; G], v: [&[f32]; G]) -> [f64; G] {
    assert!(G == 4 || G == 8);
    let quads = G / 4;
    let n = l.iter().chain(&v).map(|r| r.len()).min().unwrap_or(0);
    let full = n / 4 * 4;
    let mut acc = [_mm256_setzero_pd(); 2];
    for i in (0..full).step_by(4) {
        for (q, acc) in acc.iter_mut().enumerate().take(quads) {
            let (cl, cv) = (columns4(&quad(&l, q), i), columns4(&quad(&v, q), i));
            for (x, y) in cl.into_iter().zip(cv) {
                *acc = _mm256_add_pd(*acc, _mm256_mul_pd(_mm256_cvtps_pd(x), _mm256_cvtps_pd(y)));
            }
        }
    }
    let mut s = [0f64; G];
    for q in 0..quads {
        let s = &mut s[4 * q..4 * q + 4];
        // SAFETY: `s` has 4 f64.
        unsafe { _mm256_storeu_pd(s.as_mut_ptr(), acc[q]) };
    }
    for i in full..n {
        for ((s, l), v) in s.iter_mut().zip(&l).zip(&v) {
            *s += f64::from(l[i]) * f64::from(v[i]);
        }
    }
    s
}

#[target_feature(enable = "avx2")]
pub(super) fn code_levels_avx2(
    v: &[f32],
    a: &mut [f32],
    t: f32,
    bits: u8,
    codes: &mut [u8],
) -> u64 {
    let n = v.len().min(a.len()).min(codes.len());
    let full = n / 8 * 8;
    let half = 1u32 << (bits - 1);
    let top = (half - 1) as f32;
    let (vt, vtop) = (_mm256_set1_ps(t), _mm256_set1_ps(top));
    let vhalf = _mm256_set1_epi32(half as i32);
    let vhalf1 = _mm256_set1_epi32(half as i32 - 1);
    let lv_off = _mm256_set1_epi32(1 - (1 << bits));
    // Byte 0 of each 32-bit lane to the low 4 bytes of its 128-bit half.
    let pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let mut ll = _mm256_setzero_si256();
    for i in (0..full).step_by(8) {
        // SAFETY: `i + 8 <= full <= n`, within all three slices.
        let (y, x) = unsafe {
            (
                _mm256_loadu_ps(v.as_ptr().add(i)),
                _mm256_loadu_ps(a.as_ptr().add(i)),
            )
        };
        // m is a whole number in [0, top]: the conversion is exact.
        let m = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_floor_ps(_mm256_mul_ps(x, vt)), vtop));
        let nonneg = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(y, _mm256_setzero_ps()));
        let code = _mm256_blendv_epi8(
            _mm256_sub_epi32(vhalf1, m),
            _mm256_add_epi32(vhalf, m),
            nonneg,
        );
        let l = _mm256_add_epi32(_mm256_add_epi32(code, code), lv_off);
        let l2 = _mm256_mullo_epi32(l, l);
        ll = _mm256_add_epi64(
            ll,
            _mm256_add_epi64(
                _mm256_cvtepu32_epi64(_mm256_castsi256_si128(l2)),
                _mm256_cvtepu32_epi64(_mm256_extracti128_si256::<1>(l2)),
            ),
        );
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr().add(i), _mm256_cvtepi32_ps(l)) };
        let b = _mm256_shuffle_epi8(code, pick);
        let lo = _mm256_cvtsi256_si32(b) as u32;
        let hi = _mm256_extract_epi32::<4>(b) as u32;
        codes[i..i + 8].copy_from_slice(&(u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes());
    }
    let mut sums = [0u64; 4];
    // SAFETY: `sums` has 4 u64.
    unsafe { _mm256_storeu_si256(sums.as_mut_ptr().cast(), ll) };
    let mut ll: u64 = sums.iter().sum();
    for ((c, x), &y) in codes[full..n]
        .iter_mut()
        .zip(&mut a[full..n])
        .zip(&v[full..n])
    {
        let (code, l) = code_of(*x, y, t, top, half, bits);
        *c = code;
        *x = l as f32;
        ll += (l * l) as u64;
    }
    ll
}
