//! x86-64 int4 kernels (AVX2, AVX-512); see [`super`] for the contract. Tails shorter
//! than one block run the scalar reference, which gives the same bits by construction.

use std::arch::x86_64::*;

use super::{FIT_SETS, LANES};
use crate::simd::int8::max_abs_bits_scalar;

/// Round to nearest, ties to even, without raising exceptions.
const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// `out[k]` = `<v, q>` and `<q, q>` of `row` and its codes at scale `1 / invs[k]`.
#[target_feature(enable = "avx2,fma")]
pub(super) fn fit_dots_avx2(row: &[f32], invs: &[f32], out: &mut [(f64, f64)]) {
    for (o, &inv) in out.iter_mut().zip(invs) {
        *o = dots_avx2(row, inv);
    }
}

/// One scale's sums: each of the reference's lane sets is two registers (lanes 0–7, 8–15).
#[target_feature(enable = "avx2,fma")]
fn dots_avx2(row: &[f32], inv: f32) -> (f64, f64) {
    let mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let seven = _mm256_set1_ps(7.0);
    let vinv = _mm256_set1_ps(inv);
    let mut vq = [[_mm256_setzero_ps(); 2]; FIT_SETS];
    let mut qq = [[_mm256_setzero_ps(); 2]; FIT_SETS];
    let mut chunks = row.chunks_exact(LANES);
    for (j, c) in (&mut chunks).enumerate() {
        let s = j % FIT_SETS;
        for h in 0..2 {
            // SAFETY: `c` has 16 floats, so 8 from offset 8h are in bounds.
            let a = _mm256_and_ps(unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * h)) }, mask);
            // min(y, 7) is the reference's `if y < 7 { y } else { 7 }` (y is never NaN).
            let y = _mm256_min_ps(_mm256_mul_ps(a, vinv), seven);
            let q = _mm256_round_ps::<NEAREST>(y);
            vq[s][h] = _mm256_fmadd_ps(a, q, vq[s][h]);
            qq[s][h] = _mm256_add_ps(qq[s][h], _mm256_mul_ps(q, q));
        }
    }
    // The reference's merge of the four sets, lane by lane: (s0 + s1) + (s2 + s3).
    let merge = |s: [[__m256; 2]; FIT_SETS]| {
        std::array::from_fn(|h| {
            _mm256_add_ps(
                _mm256_add_ps(s[0][h], s[1][h]),
                _mm256_add_ps(s[2][h], s[3][h]),
            )
        })
    };
    let (tv, tq) = super::fit_dots_tail(chunks.remainder(), inv);
    (lanes_avx2(merge(vq), tv), lanes_avx2(merge(qq), tq))
}

/// The reference's sum of 16 lanes (`l[0]` = lanes 0–7) and the tail `t`, in its order:
/// `h[i] = l[i] + l[i + 8]` in f64, then halves added pairwise, then `t`.
#[target_feature(enable = "avx2")]
fn lanes_avx2(l: [__m256; 2], t: f32) -> f64 {
    let pd = |x: __m128| _mm256_cvtps_pd(x);
    let h0 = _mm256_add_pd(
        pd(_mm256_castps256_ps128(l[0])),
        pd(_mm256_castps256_ps128(l[1])),
    );
    let h1 = _mm256_add_pd(
        pd(_mm256_extractf128_ps::<1>(l[0])),
        pd(_mm256_extractf128_ps::<1>(l[1])),
    );
    horizontal_pd(_mm256_add_pd(h0, h1)) + f64::from(t)
}

/// `(h[0] + h[2]) + (h[1] + h[3])`: the last two levels of the reference's tree.
#[target_feature(enable = "avx2")]
fn horizontal_pd(h: __m256d) -> f64 {
    let h = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd::<1>(h));
    _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)))
}

/// `out[k]` = `<v, q>` and `<q, q>` of `row` and its codes at scale `1 / invs[k]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn fit_dots_avx512(row: &[f32], invs: &[f32], out: &mut [(f64, f64)]) {
    for (o, &inv) in out.iter_mut().zip(invs) {
        *o = dots_avx512(row, inv);
    }
}

/// One scale's sums: each of the reference's lane sets is one register. `<q, q>` may use
/// fused multiply-adds: its sums are exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn dots_avx512(row: &[f32], inv: f32) -> (f64, f64) {
    let seven = _mm512_set1_ps(7.0);
    let vinv = _mm512_set1_ps(inv);
    let mut vq = [_mm512_setzero_ps(); FIT_SETS];
    let mut qq = [_mm512_setzero_ps(); FIT_SETS];
    let mut chunks = row.chunks_exact(LANES);
    for (j, c) in (&mut chunks).enumerate() {
        let s = j % FIT_SETS;
        // SAFETY: `c` has exactly 16 floats.
        let a = _mm512_abs_ps(unsafe { _mm512_loadu_ps(c.as_ptr()) });
        let y = _mm512_min_ps(_mm512_mul_ps(a, vinv), seven);
        let q = _mm512_roundscale_ps::<NEAREST>(y);
        vq[s] = _mm512_fmadd_ps(a, q, vq[s]);
        qq[s] = _mm512_fmadd_ps(q, q, qq[s]);
    }
    finish_avx512(vq, qq, chunks.remainder(), inv)
}

/// The reference's end of `fit_dots` ([`super::fit_dots_finish`]): the four sets
/// merged lane by lane, `(s0 + s1) + (s2 + s3)`, then the tail and the lanes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn finish_avx512(
    vq: [__m512; FIT_SETS],
    qq: [__m512; FIT_SETS],
    tail: &[f32],
    inv: f32,
) -> (f64, f64) {
    let merge =
        |s: [__m512; FIT_SETS]| _mm512_add_ps(_mm512_add_ps(s[0], s[1]), _mm512_add_ps(s[2], s[3]));
    let (tv, tq) = super::fit_dots_tail(tail, inv);
    (lanes_avx512(merge(vq), tv), lanes_avx512(merge(qq), tq))
}

/// The reference's sum of 16 lanes and the tail `t`, in its order (see [`lanes_avx2`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn lanes_avx512(l: __m512, t: f32) -> f64 {
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(l)));
    let h = _mm512_add_pd(
        _mm512_cvtps_pd(_mm512_castps512_ps256(l)),
        _mm512_cvtps_pd(hi),
    );
    let h = _mm256_add_pd(_mm512_castpd512_pd256(h), _mm512_extractf64x4_pd::<1>(h));
    horizontal_pd(h) + f64::from(t)
}

/// `max_abs_bits` and `Σ v²` of `row` in one pass: each of the reference's two lane sets
/// is two registers (lanes 0–7, 8–15).
#[target_feature(enable = "avx2,fma")]
pub(super) fn max_abs_sumsq_avx2(row: &[f32]) -> (u32, f64) {
    let mask = _mm256_set1_epi32(0x7fff_ffff);
    let mut m = [_mm256_setzero_si256(); 2];
    let mut ss = [[_mm256_setzero_ps(); 2]; 2];
    let mut chunks = row.chunks_exact(LANES);
    for (j, c) in (&mut chunks).enumerate() {
        for h in 0..2 {
            // SAFETY: `c` has 16 floats, so 8 from offset 8h are in bounds.
            let x = unsafe { _mm256_loadu_si256(c.as_ptr().add(8 * h).cast()) };
            let a = _mm256_and_si256(x, mask);
            // Masked values are non-negative as i32, so the signed max orders them as u32.
            m[h] = _mm256_max_epi32(m[h], a);
            let v = _mm256_castsi256_ps(a);
            ss[j % 2][h] = _mm256_fmadd_ps(v, v, ss[j % 2][h]);
        }
    }
    let rest = chunks.remainder();
    let mut lanes = [0u32; 8];
    // SAFETY: `lanes` is 32 bytes; storeu needs no alignment.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), _mm256_max_epi32(m[0], m[1])) };
    let bits = lanes.into_iter().fold(max_abs_bits_scalar(rest), u32::max);
    let sum = lanes_avx2(ss[0], super::sum_squares_tail(rest)) + lanes_avx2(ss[1], 0.0);
    (bits, sum)
}

/// [`max_abs_sumsq_avx2`] on 512-bit vectors: each of the reference's lane sets is one
/// register.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn max_abs_sumsq_avx512(row: &[f32]) -> (u32, f64) {
    let mask = _mm512_set1_epi32(0x7fff_ffff);
    let mut m = _mm512_setzero_si512();
    let mut ss = [_mm512_setzero_ps(); 2];
    let mut chunks = row.chunks_exact(LANES);
    for (j, c) in (&mut chunks).enumerate() {
        // SAFETY: `c` has exactly 16 floats.
        let a = _mm512_and_si512(unsafe { _mm512_loadu_si512(c.as_ptr().cast()) }, mask);
        m = _mm512_max_epi32(m, a);
        let v = _mm512_castsi512_ps(a);
        ss[j % 2] = _mm512_fmadd_ps(v, v, ss[j % 2]);
    }
    let rest = chunks.remainder();
    let bits = (_mm512_reduce_max_epi32(m) as u32).max(max_abs_bits_scalar(rest));
    let sum = lanes_avx512(ss[0], super::sum_squares_tail(rest)) + lanes_avx512(ss[1], 0.0);
    (bits, sum)
}

/// Packs 16 codes in `i8` lanes, in order, into the low 8 bytes: low nibble first.
#[target_feature(enable = "avx2")]
fn nibbles(b: __m128i) -> __m128i {
    let w = _mm_and_si128(b, _mm_set1_epi16(0x0f0f));
    let p = _mm_and_si128(
        _mm_or_si128(w, _mm_srli_epi16::<4>(w)),
        _mm_set1_epi16(0x00ff),
    );
    _mm_packus_epi16(p, p)
}

/// The int4 codes of `row` at scale `s` (with `1/s` finite), packed into `out`
/// (`ceil(row.len() / 2)` bytes).
#[target_feature(enable = "avx2")]
pub(super) fn quantize_pack_avx2(row: &[f32], s: f32, out: &mut [u8]) {
    let vinv = _mm256_set1_ps(1.0 / s);
    let (lo, hi) = (_mm256_set1_ps(-7.0), _mm256_set1_ps(7.0));
    let src = row.chunks_exact(16);
    let (body, tail) = out.split_at_mut(row.len() / 16 * 8);
    let rest = src.remainder();
    for (x, o) in src.zip(body.chunks_exact_mut(8)) {
        let mut q = [_mm256_setzero_si256(); 2];
        for (k, q) in q.iter_mut().enumerate() {
            // SAFETY: `x` has 16 floats, so 8 from offset 8k are in bounds.
            let v = unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * k)) };
            let y = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(v, vinv), lo), hi);
            // cvtps2dq rounds by MXCSR: to nearest, ties to even, as Rust keeps it.
            *q = _mm256_cvtps_epi32(y);
        }
        // SAFETY: `o` has exactly 8 bytes, the width of storel_epi64.
        unsafe { _mm_storel_epi64(o.as_mut_ptr().cast(), pack16(q)) };
    }
    super::quantize_pack_scalar(rest, s, tail);
}

/// The int4 codes of `row` at scale `s` (with `1/s` finite), packed into `out`
/// (`ceil(row.len() / 2)` bytes).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn quantize_pack_avx512(row: &[f32], s: f32, out: &mut [u8]) {
    let vinv = _mm512_set1_ps(1.0 / s);
    let (lo, hi) = (_mm512_set1_ps(-7.0), _mm512_set1_ps(7.0));
    let src = row.chunks_exact(16);
    let (body, tail) = out.split_at_mut(row.len() / 16 * 8);
    let rest = src.remainder();
    for (x, o) in src.zip(body.chunks_exact_mut(8)) {
        // SAFETY: `x` has exactly 16 floats.
        let v = unsafe { _mm512_loadu_ps(x.as_ptr()) };
        let y = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, vinv), lo), hi);
        let q = _mm512_cvt_roundps_epi32::<NEAREST>(y);
        // SAFETY: `o` has exactly 8 bytes, the width of storel_epi64.
        unsafe { _mm_storel_epi64(o.as_mut_ptr().cast(), nibbles(_mm512_cvtepi32_epi8(q))) };
    }
    super::quantize_pack_scalar(rest, s, tail);
}

/// [`quantize_pack_avx512`] and the `<v, q>`, `<q, q>` of those codes in the same pass, in
/// the reference's lane order (see [`dots_avx512`]): `v·q = |v|·|q|`, as the code has the
/// value's sign.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn quantize_pack_dots_avx512(row: &[f32], s: f32, out: &mut [u8]) -> (f64, f64) {
    let inv = 1.0 / s;
    let vinv = _mm512_set1_ps(inv);
    let (lo, hi) = (_mm512_set1_ps(-7.0), _mm512_set1_ps(7.0));
    let mut vq = [_mm512_setzero_ps(); FIT_SETS];
    let mut qq = [_mm512_setzero_ps(); FIT_SETS];
    let src = row.chunks_exact(16);
    let (body, tail) = out.split_at_mut(row.len() / 16 * 8);
    let rest = src.remainder();
    for (j, (x, o)) in src.zip(body.chunks_exact_mut(8)).enumerate() {
        let s = j % FIT_SETS;
        // SAFETY: `x` has exactly 16 floats.
        let v = unsafe { _mm512_loadu_ps(x.as_ptr()) };
        let y = _mm512_min_ps(_mm512_max_ps(_mm512_mul_ps(v, vinv), lo), hi);
        let q = _mm512_roundscale_ps::<NEAREST>(y);
        vq[s] = _mm512_fmadd_ps(v, q, vq[s]);
        qq[s] = _mm512_fmadd_ps(q, q, qq[s]);
        // `q` is integral, so truncating converts it exactly.
        let c = _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(q));
        // SAFETY: `o` has exactly 8 bytes, the width of storel_epi64.
        unsafe { _mm_storel_epi64(o.as_mut_ptr().cast(), nibbles(c)) };
    }
    super::quantize_pack_scalar(rest, s, tail);
    finish_avx512(vq, qq, rest, inv)
}

/// The `gauss` rule's codes, packed, and scale ([`super::encode_row_gauss_scalar`]'s bits).
/// The reference's 16 lanes of f64 sums are four registers of four; its terms are exact
/// products of two f32, so a fused multiply-add rounds them once, as its add does. The code
/// of `u = |v| / σ` is a branch-free binary search over the seven midpoints (three compares,
/// each picking the next midpoint with a lane permute), which counts the midpoints `u` is
/// above, as the reference's seven selects do (they are sorted, and a NaN is above none);
/// the level is one more permute.
#[target_feature(enable = "avx2,fma")]
pub(super) fn gauss_pack_avx2(row: &[f32], out: &mut [u8]) -> f32 {
    let mut ss = [_mm256_setzero_pd(); 4];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for h in 0..2 {
            // SAFETY: `c` has 16 floats, so 8 from offset 8h are in bounds.
            let x = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * h)) };
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(x));
            ss[2 * h] = _mm256_fmadd_pd(lo, lo, ss[2 * h]);
            ss[2 * h + 1] = _mm256_fmadd_pd(hi, hi, ss[2 * h + 1]);
        }
    }
    let sigma = super::gauss_sigma(&lanes_pd(ss), chunks.remainder(), row.len());
    let inv = 1.0 / sigma;
    if sigma == 0.0 || !inv.is_normal() {
        // All zero, or σ so small or large that the reference divides: rare, and its path.
        return super::encode_row_gauss_body(row, out);
    }
    let mid = super::gauss_mids();
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let vinv = _mm256_set1_ps(inv);
    // The search: midpoint 3 first, then 1 or 5 (the permute's index is the first answer,
    // 0 or 1), then 0, 2, 4 or 6 (index 0–3: the first two answers as bits); the three
    // answers are the code's bits, high to low.
    let m3 = _mm256_set1_ps(mid[3]);
    let m15 = _mm256_setr_ps(mid[1], mid[5], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let m0246 = _mm256_setr_ps(mid[0], mid[2], mid[4], mid[6], 0.0, 0.0, 0.0, 0.0);
    // SAFETY: GAUSS has exactly 8 floats.
    let levels = unsafe { _mm256_loadu_ps(super::GAUSS.as_ptr()) };
    let mut vl = [_mm256_setzero_pd(); 4];
    let mut ll = [_mm256_setzero_ps(); 2];
    let full = row.len() / LANES * LANES;
    let (body, tail) = out.split_at_mut(full / 2);
    // Two passes a block: the codes, their levels (kept in `lv`) and `Σ level²`, then
    // `<|v|, level>` from the kept levels. One pass would need more registers than AVX2 has,
    // and the spilled f64 sums would wait on memory every step.
    let mut lv = [0f32; GAUSS_BLOCK];
    for (blk, ob) in row[..full]
        .chunks(GAUSS_BLOCK)
        .zip(body.chunks_mut(GAUSS_BLOCK / 2))
    {
        for ((c, o), lc) in blk
            .chunks_exact(LANES)
            .zip(ob.chunks_exact_mut(LANES / 2))
            .zip(lv.chunks_exact_mut(LANES))
        {
            let mut q = [_mm256_setzero_si256(); 2];
            for (h, q) in q.iter_mut().enumerate() {
                // SAFETY: `c` has 16 floats, so 8 from offset 8h are in bounds.
                let x = unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * h)) };
                let u = _mm256_mul_ps(_mm256_and_ps(x, abs), vinv);
                let above = |m: __m256| _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(u, m));
                // An answer is a mask (-1 or 0): `2k - mask` appends it as the next bit.
                let k = _mm256_srli_epi32::<31>(above(m3));
                let next = |k: __m256i, m: __m256| {
                    let a = above(_mm256_permutevar8x32_ps(m, k));
                    _mm256_sub_epi32(_mm256_add_epi32(k, k), a)
                };
                let k = next(next(k, m15), m0246);
                let l = _mm256_permutevar8x32_ps(levels, k);
                // Not fused: the reference rounds the square, then the sum.
                ll[h] = _mm256_add_ps(ll[h], _mm256_mul_ps(l, l));
                // SAFETY: `lc` has 16 floats, so 8 from offset 8h are in bounds.
                unsafe { _mm256_storeu_ps(lc.as_mut_ptr().add(8 * h), l) };
                // The code has the value's sign: negate (xor with -1, subtract -1) where
                // v < 0 (-0.0 and the sign bit of a NaN only ever negate code 0).
                let neg = _mm256_srai_epi32::<31>(_mm256_castps_si256(x));
                *q = _mm256_sub_epi32(_mm256_xor_si256(k, neg), neg);
            }
            // SAFETY: `o` has exactly 8 bytes, the width of storel_epi64.
            unsafe { _mm_storel_epi64(o.as_mut_ptr().cast(), pack16(q)) };
        }
        // The four accumulators as locals, each step updating all four, so their chains of
        // FMAs overlap.
        let [mut v0, mut v1, mut v2, mut v3] = vl;
        let abs4 = _mm256_castps256_ps128(abs);
        for (c, lc) in blk.chunks_exact(LANES).zip(lv.chunks_exact(LANES)) {
            // SAFETY: `c` and `lc` have 16 floats, so 4 from offset 4k are in bounds.
            let term = |k: usize| unsafe {
                let a = _mm256_cvtps_pd(_mm_and_ps(_mm_loadu_ps(c.as_ptr().add(4 * k)), abs4));
                (a, _mm256_cvtps_pd(_mm_loadu_ps(lc.as_ptr().add(4 * k))))
            };
            let ((a0, l0), (a1, l1), (a2, l2), (a3, l3)) = (term(0), term(1), term(2), term(3));
            v0 = _mm256_fmadd_pd(a0, l0, v0);
            v1 = _mm256_fmadd_pd(a1, l1, v1);
            v2 = _mm256_fmadd_pd(a2, l2, v2);
            v3 = _mm256_fmadd_pd(a3, l3, v3);
        }
        vl = [v0, v1, v2, v3];
    }
    let (tvl, tll) = super::gauss_tail(&row[full..], inv, sigma, false, tail);
    let mut lls = [0f32; LANES];
    // SAFETY: `lls` has 16 floats: two unaligned stores of 8.
    unsafe {
        _mm256_storeu_ps(lls.as_mut_ptr(), ll[0]);
        _mm256_storeu_ps(lls.as_mut_ptr().add(8), ll[1]);
    }
    super::gauss_scale(&lanes_pd(vl), &lls, tvl, tll)
}

/// Values a block of [`gauss_pack_avx2`]'s two passes: its kept levels fill 512 bytes (a
/// buffer set to zero for every row, so small).
const GAUSS_BLOCK: usize = 128;

/// Four registers of four f64 as the reference's 16 lanes, in order.
#[target_feature(enable = "avx2")]
fn lanes_pd(r: [__m256d; 4]) -> [f64; LANES] {
    let mut l = [0f64; LANES];
    for (k, r) in r.into_iter().enumerate() {
        // SAFETY: `l` has 16 f64, so 4 from offset 4k are in bounds; storeu needs no alignment.
        unsafe { _mm256_storeu_pd(l.as_mut_ptr().add(4 * k), r) };
    }
    l
}

/// 16 codes in `i32` lanes (two registers, in order, each within ±7), packed two per byte
/// into the low 8 bytes: low nibble first.
#[target_feature(enable = "avx2")]
fn pack16(q: [__m256i; 2]) -> __m128i {
    // packs interleaves 128-bit lanes; the permute puts the 16 words back in order.
    let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q[0], q[1]));
    nibbles(_mm_packs_epi16(
        _mm256_castsi256_si128(w),
        _mm256_extracti128_si256::<1>(w),
    ))
}

/// The `fit` search's levels: the reference's body, compiled for AVX2.
#[target_feature(enable = "avx2")]
pub(super) fn fit_levels_avx2(row: &[f32], c: f32, u: &mut [u8]) {
    super::fit_levels_body(row, c, u)
}

/// The `fit` search's levels: the reference's body, compiled for AVX-512.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn fit_levels_avx512(row: &[f32], c: f32, u: &mut [u8]) {
    super::fit_levels_body(row, c, u)
}

/// The integer scores of all nine factors in one pass: per 64 levels and factor, one
/// 128-entry byte lookup (`vpermi2b`) for the codes and two byte dot products
/// (`vpdpbusd`) for `Σ u·q` and `Σ q²`. A short last block is loaded zero-padded: level 0
/// has code 0 and adds nothing.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni")]
pub(super) fn fit_scores_vbmi(u: &[u8], out: &mut [(u64, u64); 9]) {
    let t = super::fit_codes();
    // SAFETY: each table row has 128 bytes: two unaligned 64-byte loads.
    let lo = t.map(|r| unsafe { _mm512_loadu_si512(r.as_ptr().cast()) });
    // SAFETY: as above, from byte 64.
    let hi = t.map(|r| unsafe { _mm512_loadu_si512(r.as_ptr().add(64).cast()) });
    let mut vq = [_mm512_setzero_si512(); 9];
    let mut qq = [_mm512_setzero_si512(); 9];
    for c in u.chunks(64) {
        let mask = if c.len() == 64 {
            u64::MAX
        } else {
            (1u64 << c.len()) - 1
        };
        // SAFETY: the mask covers only `c`'s bytes; masked-off bytes are not read.
        let x = unsafe { _mm512_maskz_loadu_epi8(mask, c.as_ptr().cast()) };
        for k in 0..9 {
            // Levels are at most 127: bit 6 picks the table half, bit 7 is clear.
            let q = _mm512_permutex2var_epi8(lo[k], x, hi[k]);
            vq[k] = _mm512_dpbusd_epi32(vq[k], x, q);
            qq[k] = _mm512_dpbusd_epi32(qq[k], q, q);
        }
    }
    // The lanes' total is below 2³¹ for rows under 2.4 million dimensions.
    let sum = |v: __m512i| u64::from(_mm512_reduce_add_epi32(v) as u32);
    for k in 0..9 {
        out[k] = (sum(vq[k]), sum(qq[k]));
    }
}

/// One factor's integer scores: the code of each level is the count of the factor's
/// thresholds it reaches (seven byte compares), then byte dot products widen to 32-bit
/// lanes. Levels are at most 127, so signed byte compares order them.
#[target_feature(enable = "avx2")]
pub(super) fn fit_scores_avx2(u: &[u8], k: usize) -> (u64, u64) {
    // Each threshold less one, for `>`; thresholds are at least 1 (level 0 codes 0).
    let thr = super::fit_thresholds()[k].map(|t| _mm256_set1_epi8((i32::from(t) - 1) as i8));
    let ones = _mm256_set1_epi16(1);
    let (mut vq, mut qq) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut chunks = u.chunks_exact(32);
    for c in &mut chunks {
        // SAFETY: `c` has exactly 32 bytes.
        let x = unsafe { _mm256_loadu_si256(c.as_ptr().cast()) };
        let mut q = _mm256_setzero_si256();
        for th in &thr {
            // A passed threshold compares to -1: subtracting it counts it.
            q = _mm256_sub_epi8(q, _mm256_cmpgt_epi8(x, *th));
        }
        // u·q and q·q of neighbouring bytes in 16 bits (at most 2 × 127 × 7), then pairs
        // of those into 32-bit lanes.
        vq = _mm256_add_epi32(vq, _mm256_madd_epi16(_mm256_maddubs_epi16(x, q), ones));
        qq = _mm256_add_epi32(qq, _mm256_madd_epi16(_mm256_maddubs_epi16(q, q), ones));
    }
    let sum = |v: __m256i| {
        let mut l = [0u32; 8];
        // SAFETY: `l` is 32 bytes; storeu needs no alignment.
        unsafe { _mm256_storeu_si256(l.as_mut_ptr().cast(), v) };
        l.iter().map(|&x| u64::from(x)).sum::<u64>()
    };
    let (tv, tq) = super::fit_scores_scalar(chunks.remainder(), k);
    (sum(vq) + tv, sum(qq) + tq)
}
