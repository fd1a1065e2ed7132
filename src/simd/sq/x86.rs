//! x86-64 kernels of the `sq` encoder's passes (AVX2; also what the AVX-512 level runs).

use std::arch::x86_64::*;

use super::{LANES, lane_sum, pack, pack8};

/// `|v|` of eight floats: the sign bit cleared.
#[target_feature(enable = "avx2")]
#[inline]
fn abs8(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

/// The eight lanes of `v`.
#[target_feature(enable = "avx2")]
#[inline]
fn lanes(v: __m256) -> [f32; LANES] {
    let mut l = [0f32; LANES];
    // SAFETY: `l` has 8 floats.
    unsafe { _mm256_storeu_ps(l.as_mut_ptr(), v) };
    l
}

#[target_feature(enable = "avx2")]
pub(super) fn stats_avx2(v: &[f32], scale: f32) -> (f32, f32, f32) {
    let n = v.len();
    let full = n / LANES * LANES;
    let vs = _mm256_set1_ps(scale);
    let (mut mx, mut sb, mut sbb) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    for i in (0..full).step_by(LANES) {
        // SAFETY: `i + 8 <= full <= n`.
        let x = abs8(unsafe { _mm256_loadu_ps(v.as_ptr().add(i)) });
        mx = _mm256_max_ps(mx, x);
        let b = _mm256_mul_ps(x, vs);
        sb = _mm256_add_ps(sb, b);
        sbb = _mm256_add_ps(sbb, _mm256_mul_ps(b, b));
    }
    let (mut lb, mut lbb) = (lanes(sb), lanes(sbb));
    let mut max_abs = lanes(mx).iter().fold(0f32, |m, &x| m.max(x));
    for (l, &y) in v[full..].iter().enumerate() {
        let x = y.abs();
        max_abs = max_abs.max(x);
        let b = x * scale;
        lb[l] += b;
        lbb[l] += b * b;
    }
    (max_abs, lane_sum(lb), lane_sum(lbb))
}

/// [`super::grid_fits_at`]: every step's lanes in registers, one pass over `v`.
#[target_feature(enable = "avx2")]
pub(super) fn grid_fits_avx2<const K: usize>(
    v: &[f32],
    s: f32,
    ts: [f32; K],
    top: f32,
) -> [(f32, f32); K] {
    let n = v.len();
    let full = n / LANES * LANES;
    let (vs, vtop, one) = (_mm256_set1_ps(s), _mm256_set1_ps(top), _mm256_set1_ps(1.0));
    let vt = ts.map(|t| _mm256_set1_ps(t));
    let (mut ma, mut mm) = ([_mm256_setzero_ps(); K], [_mm256_setzero_ps(); K]);
    for i in (0..full).step_by(LANES) {
        // SAFETY: `i + 8 <= full <= n`.
        let x = _mm256_mul_ps(abs8(unsafe { _mm256_loadu_ps(v.as_ptr().add(i)) }), vs);
        for k in 0..K {
            let m = _mm256_min_ps(_mm256_floor_ps(_mm256_mul_ps(x, vt[k])), vtop);
            ma[k] = _mm256_add_ps(ma[k], _mm256_mul_ps(m, x));
            mm[k] = _mm256_add_ps(mm[k], _mm256_mul_ps(m, _mm256_add_ps(m, one)));
        }
    }
    std::array::from_fn(|k| {
        let (mut la, mut lm) = (lanes(ma[k]), lanes(mm[k]));
        for (l, &y) in v[full..].iter().enumerate() {
            let x = y.abs() * s;
            let m = ((x * ts[k]) as i32 as f32).min(top);
            la[l] += m * x;
            lm[l] += m * (m + 1.0);
        }
        (lane_sum(la), lane_sum(lm))
    })
}

/// The codes of eight values at a time for a scale `s`, a step `1/t` and `bits`: one byte
/// each, little-endian in a `u64` (as [`super::code_of`] makes them).
struct EightCodes {
    vs: __m256,
    vt: __m256,
    vtop: __m256,
    vhalf: __m256i,
    vhalf1: __m256i,
    pick: __m256i,
}

impl EightCodes {
    #[target_feature(enable = "avx2")]
    fn new(s: f32, t: f32, bits: u8) -> Self {
        let half = 1u32 << (bits - 1);
        let top = (half - 1) as f32;
        EightCodes {
            vs: _mm256_set1_ps(s),
            vt: _mm256_set1_ps(t),
            vtop: _mm256_set1_ps(top),
            vhalf: _mm256_set1_epi32(half as i32),
            vhalf1: _mm256_set1_epi32(half as i32 - 1),
            // Byte 0 of each 32-bit lane to the low 4 bytes of its 128-bit half.
            pick: _mm256_setr_epi8(
                0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1,
                -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
            ),
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn of(&self, y: __m256) -> u64 {
        let x = _mm256_mul_ps(abs8(y), self.vs);
        // m is a whole number in [0, top]: the conversion is exact.
        let m = _mm256_cvttps_epi32(_mm256_min_ps(
            _mm256_floor_ps(_mm256_mul_ps(x, self.vt)),
            self.vtop,
        ));
        let nonneg = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(y, _mm256_setzero_ps()));
        let code = _mm256_blendv_epi8(
            _mm256_sub_epi32(self.vhalf1, m),
            _mm256_add_epi32(self.vhalf, m),
            nonneg,
        );
        let c = _mm256_shuffle_epi8(code, self.pick);
        let lo = _mm256_cvtsi256_si32(c) as u32;
        let hi = _mm256_extract_epi32::<4>(c) as u32;
        u64::from(lo) | (u64::from(hi) << 32)
    }
}

#[target_feature(enable = "avx2")]
pub(super) fn codes_avx2(v: &[f32], s: f32, t: f32, bits: u8, codes: &mut [u8]) {
    let n = v.len().min(codes.len());
    let full = n / 8 * 8;
    let eight = EightCodes::new(s, t, bits);
    for i in (0..full).step_by(8) {
        // SAFETY: `i + 8 <= full <= n`, within both slices.
        let y = unsafe { _mm256_loadu_ps(v.as_ptr().add(i)) };
        codes[i..i + 8].copy_from_slice(&eight.of(y).to_le_bytes());
    }
    super::codes_scalar(&v[full..n], s, t, bits, &mut codes[full..n]);
}

/// [`super::packed_codes_at`]: [`codes_avx2`]'s eight codes at a time, packed as they are
/// made (`bits` whole bytes each eight; at one bit the sign mask itself).
#[target_feature(enable = "avx2")]
pub(super) fn packed_codes_avx2(v: &[f32], s: f32, t: f32, bits: u8, out: &mut [u8]) {
    let n = v.len();
    let full = n / 8 * 8;
    let b = usize::from(bits);
    assert!(out.len() >= (n * b).div_ceil(8));
    let zero = _mm256_setzero_ps();
    if bits == 1 {
        for i in (0..full).step_by(8) {
            // SAFETY: `i + 8 <= full <= n`.
            let y = unsafe { _mm256_loadu_ps(v.as_ptr().add(i)) };
            // Code 1 for `v >= 0` (its sign bit after the compare), lane k to bit k.
            out[i / 8] = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(y, zero)) as u8;
        }
    } else {
        let eight = EightCodes::new(s, t, bits);
        for i in (0..full).step_by(8) {
            // SAFETY: `i + 8 <= full <= n`.
            let y = unsafe { _mm256_loadu_ps(v.as_ptr().add(i)) };
            let w = eight.of(y);
            let o = i / 8 * b;
            if bits == 8 {
                out[o..o + 8].copy_from_slice(&w.to_le_bytes());
            } else {
                let w = pack8(w, bits.into());
                if o + 8 <= out.len() {
                    // The next eight's bytes overwrite the zeros past this one's `bits`.
                    out[o..o + 8].copy_from_slice(&w.to_le_bytes());
                } else {
                    out[o..o + b].copy_from_slice(&w.to_le_bytes()[..b]);
                }
            }
        }
    }
    // The last `n % 8` codes start on a whole byte (`full × bits / 8`).
    let mut tail = [0u8; 8];
    let tail = &mut tail[..n - full];
    super::codes_scalar(&v[full..], s, t, bits, tail);
    pack(tail, bits, &mut out[full / 8 * b..]);
}
