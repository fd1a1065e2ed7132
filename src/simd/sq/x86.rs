//! x86-64 kernels of the `sq` encoder's passes (AVX2; also what the AVX-512 level runs).

use std::arch::x86_64::*;

use super::{LANES, fits_finish, pack, pack8, stats_finish};

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
    let max_abs = lanes(mx).iter().fold(0f32, |m, &x| m.max(x));
    stats_finish(max_abs, (lanes(sb), lanes(sbb)), &v[full..], scale)
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
    std::array::from_fn(|k| fits_finish((lanes(ma[k]), lanes(mm[k])), &v[full..], s, ts[k], top))
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

/// By width `b`, the byte permute that gathers eight 64-bit lanes' low `b` bytes: byte
/// `j < 8b` comes from byte `j mod b` of lane `j / b` (the rest are not stored).
static GATHER: [[u8; 64]; 9] = {
    let mut t = [[0u8; 64]; 9];
    let mut b = 1;
    while b <= 8 {
        let mut j = 0;
        while j < 64 {
            let x = (j / b) * 8 + j % b;
            t[b][j] = if x > 63 { 63 } else { x as u8 };
            j += 1;
        }
        b += 1;
    }
    t
};

/// [`super::packed_codes_at`] at AVX-512 with VBMI: 64 codes at a time, made sixteen to a
/// register as [`EightCodes::of`] makes eight, narrowed to bytes, packed in each 64-bit
/// lane as [`pack8`] packs a word (the same shifts and masks on eight words at once), and
/// the eight lanes' `bits` bytes each gathered by one byte permute into `8 × bits`
/// consecutive bytes; at one bit the sign mask itself. The codes past the last whole 64
/// go through [`packed_codes_avx2`] (they start on a whole byte).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi")]
pub(super) fn packed_codes_avx512(v: &[f32], s: f32, t: f32, bits: u8, out: &mut [u8]) {
    let n = v.len();
    let full = n / 64 * 64;
    let b = usize::from(bits);
    assert!((1..=8).contains(&bits) && out.len() >= (n * b).div_ceil(8));
    let (vs, vt, zero) = (_mm512_set1_ps(s), _mm512_set1_ps(t), _mm512_setzero_ps());
    let half = 1i32 << (bits - 1);
    let vtop = _mm512_set1_ps((half - 1) as f32);
    let (vhalf, vhalf1) = (_mm512_set1_epi32(half), _mm512_set1_epi32(half - 1));
    // SAFETY: each table has 64 bytes.
    let idx = unsafe { _mm512_loadu_si512(GATHER[b].as_ptr().cast()) };
    let keep: u64 = if b == 8 {
        u64::MAX
    } else {
        (1u64 << (8 * b)) - 1
    };
    let sh = |k: u32| _mm_cvtsi32_si128(k as i32);
    let (m1, m2) = (
        _mm512_set1_epi64(0x00ff_00ff_00ff_00ff),
        _mm512_set1_epi64(0x0000_ffff_0000_ffff),
    );
    let m3 = _mm512_set1_epi64(0xffff_ffff);
    let bu = u32::from(bits);
    for i in (0..full).step_by(64) {
        // SAFETY: `i + 64 <= full <= n`.
        let p = unsafe { v.as_ptr().add(i) };
        if bits == 1 {
            for k in 0..4 {
                // SAFETY: as above, 16 floats from `i + 16k`.
                let y = unsafe { _mm512_loadu_ps(p.add(16 * k)) };
                // Code 1 for `v >= 0`, value k to bit k.
                let m = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(y, zero);
                let o = i / 8 + 2 * k;
                out[o..o + 2].copy_from_slice(&m.to_le_bytes());
            }
            continue;
        }
        let code16 = |k: usize| {
            // SAFETY: as above, 16 floats from `i + 16k`.
            let y = unsafe { _mm512_loadu_ps(p.add(16 * k)) };
            let x = _mm512_mul_ps(_mm512_abs_ps(y), vs);
            // m is a whole number in [0, top]: the conversion is exact.
            let m = _mm512_cvttps_epi32(_mm512_min_ps(
                _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(
                    _mm512_mul_ps(x, vt),
                ),
                vtop,
            ));
            let nonneg = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(y, zero);
            let code = _mm512_mask_add_epi32(_mm512_sub_epi32(vhalf1, m), nonneg, vhalf, m);
            _mm512_cvtepi32_epi8(code)
        };
        let mut w = _mm512_castsi128_si512(code16(0));
        w = _mm512_inserti32x4::<1>(w, code16(1));
        w = _mm512_inserti32x4::<2>(w, code16(2));
        w = _mm512_inserti32x4::<3>(w, code16(3));
        if bits < 8 {
            // pack8 on every 64-bit lane.
            w = _mm512_or_si512(
                _mm512_and_si512(w, m1),
                _mm512_srl_epi64(_mm512_andnot_si512(m1, w), sh(8 - bu)),
            );
            w = _mm512_or_si512(
                _mm512_and_si512(w, m2),
                _mm512_srl_epi64(_mm512_andnot_si512(m2, w), sh(16 - 2 * bu)),
            );
            w = _mm512_or_si512(
                _mm512_and_si512(w, m3),
                _mm512_sll_epi64(_mm512_srli_epi64::<32>(w), sh(4 * bu)),
            );
            w = _mm512_permutexvar_epi8(idx, w);
        }
        let o = i / 8 * b;
        let dst = &mut out[o..o + 8 * b];
        // SAFETY: `dst` has `8b` bytes, exactly the ones `keep` stores.
        unsafe { _mm512_mask_storeu_epi8(dst.as_mut_ptr().cast(), keep, w) };
    }
    if full < n {
        packed_codes_avx2(&v[full..], s, t, bits, &mut out[full / 8 * b..]);
    }
}

/// Eight floats of row `a` and eight of row `b` from offset `i`, in the low and the high
/// half of one register.
///
/// # Safety
/// The CPU has AVX-512 F; `a` and `b` hold at least `i + 8` floats.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
unsafe fn pair16(a: &[f32], b: &[f32], i: usize) -> __m512 {
    // SAFETY: the caller's bounds.
    let (x, y) = unsafe {
        (
            _mm256_loadu_ps(a.as_ptr().add(i)),
            _mm256_loadu_ps(b.as_ptr().add(i)),
        )
    };
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castpd256_pd512(_mm256_castps_pd(x)),
        _mm256_castps_pd(y),
    ))
}

/// The sixteen lanes of `v`: row `a`'s eight, then row `b`'s.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn lanes16(v: __m512) -> [[f32; LANES]; 2] {
    let mut l = [0f32; 16];
    // SAFETY: `l` has 16 floats.
    unsafe { _mm512_storeu_ps(l.as_mut_ptr(), v) };
    [
        l[..8].try_into().expect("8 lanes"),
        l[8..].try_into().expect("8 lanes"),
    ]
}

/// [`super::stats2_at`] at AVX-512: two rows side by side, row `a`'s eight lanes in the low
/// half of each register and row `b`'s in the high half, so that each lane adds its values
/// in the order [`stats_avx2`]'s lane does.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn stats2_avx512(a: &[f32], b: &[f32], scale: f32) -> [(f32, f32, f32); 2] {
    let n = a.len();
    assert_eq!(n, b.len());
    let full = n / LANES * LANES;
    let vs = _mm512_set1_ps(scale);
    let (mut mx, mut sb, mut sbb) = (
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
        _mm512_setzero_ps(),
    );
    for i in (0..full).step_by(LANES) {
        // SAFETY: `i + 8 <= full <= n`, the length of both rows.
        let x = _mm512_abs_ps(unsafe { pair16(a, b, i) });
        mx = _mm512_max_ps(mx, x);
        let y = _mm512_mul_ps(x, vs);
        sb = _mm512_add_ps(sb, y);
        sbb = _mm512_add_ps(sbb, _mm512_mul_ps(y, y));
    }
    let (lm, lb, lbb) = (lanes16(mx), lanes16(sb), lanes16(sbb));
    [(0, a), (1, b)].map(|(r, v)| {
        let max_abs = lm[r].iter().fold(0f32, |m, &x| m.max(x));
        stats_finish(max_abs, (lb[r], lbb[r]), &v[full..], scale)
    })
}

/// [`super::grid_fits2_at`] at AVX-512: [`grid_fits_avx2`] of two rows side by side (row
/// `a`'s lanes in the low half of each register, row `b`'s in the high half), each with
/// its own scale and steps. `Σ m(m+1)` takes one fused multiply-add a step: `m` is an
/// integer of at most 127, so `m(m+1)` is exact in float32 and the fused sum rounds once,
/// as the product's exact value added does: the same bits.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,fma")]
pub(super) fn grid_fits2_avx512<const K: usize>(
    a: &[f32],
    b: &[f32],
    s: [f32; 2],
    ts: [[f32; K]; 2],
    top: f32,
) -> [[(f32, f32); K]; 2] {
    let n = a.len();
    assert_eq!(n, b.len());
    let full = n / LANES * LANES;
    let two = |x: f32, y: f32| {
        _mm512_castpd_ps(_mm512_insertf64x4::<1>(
            _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_set1_ps(x))),
            _mm256_castps_pd(_mm256_set1_ps(y)),
        ))
    };
    let (vs, vtop, one) = (two(s[0], s[1]), _mm512_set1_ps(top), _mm512_set1_ps(1.0));
    let vt: [__m512; K] = std::array::from_fn(|k| two(ts[0][k], ts[1][k]));
    let (mut ma, mut mm) = ([_mm512_setzero_ps(); K], [_mm512_setzero_ps(); K]);
    for i in (0..full).step_by(LANES) {
        // SAFETY: `i + 8 <= full <= n`, the length of both rows.
        let x = _mm512_mul_ps(_mm512_abs_ps(unsafe { pair16(a, b, i) }), vs);
        for k in 0..K {
            let m = _mm512_min_ps(
                _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(
                    _mm512_mul_ps(x, vt[k]),
                ),
                vtop,
            );
            ma[k] = _mm512_add_ps(ma[k], _mm512_mul_ps(m, x));
            mm[k] = _mm512_fmadd_ps(m, _mm512_add_ps(m, one), mm[k]);
        }
    }
    let (la, lm) = (ma.map(|x| lanes16(x)), mm.map(|x| lanes16(x)));
    [(0, a), (1, b)].map(|(r, v)| {
        std::array::from_fn(|k| fits_finish((la[k][r], lm[k][r]), &v[full..], s[r], ts[r][k], top))
    })
}
