//! x86-64 int4 kernels (AVX2, AVX-512); see [`super::int4`] for the contract. Tails shorter
//! than one block run the scalar reference, which gives the same bits by construction.

use std::arch::x86_64::*;

use crate::codec::int4::{self as reference, LANES};
use crate::codec::int8::max_abs_bits;

/// Round to nearest, ties to even, without raising exceptions.
const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// `out[k]` = `<v, q>` and `<q, q>` of `row` and its codes at scale `1 / invs[k]`.
///
/// Three candidates a pass: enough independent sums to hide the add latency, few enough
/// that accumulators and constants stay in AVX2's 16 registers.
#[target_feature(enable = "avx2,fma")]
pub(super) fn fit_dots_avx2(row: &[f32], invs: &[f32], out: &mut [(f64, f64)]) {
    for (i, o) in invs.chunks(3).zip(out.chunks_mut(3)) {
        match *i {
            [a, b, c] => o.copy_from_slice(&group_avx2(row, [a, b, c])),
            [a, b] => o.copy_from_slice(&group_avx2(row, [a, b])),
            [a] => o.copy_from_slice(&group_avx2(row, [a])),
            _ => unreachable!("chunks of 1 to 3"),
        }
    }
}

/// [`fit_dots_avx2`] for `G` scales: lanes 0–7 of the reference in one register, 8–15 in
/// another.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn group_avx2<const G: usize>(row: &[f32], invs: [f32; G]) -> [(f64, f64); G] {
    let mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let seven = _mm256_set1_ps(7.0);
    let vinv = invs.map(|i| _mm256_set1_ps(i));
    let mut vq = [[_mm256_setzero_ps(); 2]; G];
    let mut qq = [[_mm256_setzero_ps(); 2]; G];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for h in 0..2 {
            // SAFETY: `c` has 16 floats, so 8 from offset 8h are in bounds.
            let a = _mm256_and_ps(unsafe { _mm256_loadu_ps(c.as_ptr().add(8 * h)) }, mask);
            for g in 0..G {
                // min(y, 7) is the reference's `if y < 7 { y } else { 7 }` (y is never NaN).
                let y = _mm256_min_ps(_mm256_mul_ps(a, vinv[g]), seven);
                let q = _mm256_round_ps::<NEAREST>(y);
                vq[g][h] = _mm256_fmadd_ps(a, q, vq[g][h]);
                qq[g][h] = _mm256_add_ps(qq[g][h], _mm256_mul_ps(q, q));
            }
        }
    }
    finish(chunks.remainder(), &invs, |g, tv, tq| {
        (lanes_avx2(vq[g], tv), lanes_avx2(qq[g], tq))
    })
}

/// The sums of each of `G` scales: `lanes(g, tail_vq, tail_qq)` adds the lanes and tail.
/// Inlined, so the closure's calls inherit the caller's target features.
#[inline(always)]
fn finish<const G: usize>(
    tail: &[f32],
    invs: &[f32; G],
    lanes: impl Fn(usize, f32, f32) -> (f64, f64),
) -> [(f64, f64); G] {
    let mut out = [(0f64, 0f64); G];
    for (g, o) in out.iter_mut().enumerate() {
        // An empty tail adds 0.0, as the reference does.
        let (tv, tq) = if tail.is_empty() {
            (0.0, 0.0)
        } else {
            reference::fit_dots_tail(tail, invs[g])
        };
        *o = lanes(g, tv, tq);
    }
    out
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
///
/// Up to four candidates a pass: the `fit` search's first pass scores four, and AVX-512's
/// 32 registers hold their sums. (All nine in one pass measured 4% slower.)
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn fit_dots_avx512(row: &[f32], invs: &[f32], out: &mut [(f64, f64)]) {
    for (i, o) in invs.chunks(4).zip(out.chunks_mut(4)) {
        match *i {
            [a, b, c, d] => o.copy_from_slice(&group_avx512(row, [a, b, c, d])),
            [a, b, c] => o.copy_from_slice(&group_avx512(row, [a, b, c])),
            [a, b] => o.copy_from_slice(&group_avx512(row, [a, b])),
            [a] => o.copy_from_slice(&group_avx512(row, [a])),
            _ => unreachable!("chunks of 1 to 4"),
        }
    }
}

/// [`fit_dots_avx512`] for `G` scales: the reference's 16 lanes are one register.
/// `<v, q>` uses fused multiply-adds, as the reference does; `<q, q>` may too: its sums
/// are exact.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
#[inline]
fn group_avx512<const G: usize>(row: &[f32], invs: [f32; G]) -> [(f64, f64); G] {
    let seven = _mm512_set1_ps(7.0);
    let vinv = invs.map(|i| _mm512_set1_ps(i));
    let mut vq = [_mm512_setzero_ps(); G];
    let mut qq = [_mm512_setzero_ps(); G];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        // SAFETY: `c` has exactly 16 floats.
        let a = _mm512_abs_ps(unsafe { _mm512_loadu_ps(c.as_ptr()) });
        for g in 0..G {
            let y = _mm512_min_ps(_mm512_mul_ps(a, vinv[g]), seven);
            let q = _mm512_roundscale_ps::<NEAREST>(y);
            vq[g] = _mm512_fmadd_ps(a, q, vq[g]);
            qq[g] = _mm512_fmadd_ps(q, q, qq[g]);
        }
    }
    finish(chunks.remainder(), &invs, |g, tv, tq| {
        (lanes_avx512(vq[g], tv), lanes_avx512(qq[g], tq))
    })
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
    let bits = lanes.into_iter().fold(max_abs_bits(rest), u32::max);
    let sum = lanes_avx2(ss[0], reference::sum_squares_tail(rest)) + lanes_avx2(ss[1], 0.0);
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
    let bits = (_mm512_reduce_max_epi32(m) as u32).max(max_abs_bits(rest));
    let sum = lanes_avx512(ss[0], reference::sum_squares_tail(rest)) + lanes_avx512(ss[1], 0.0);
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
        // packs interleaves 128-bit lanes; the permute puts the 16 words back in order.
        let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packs_epi32(q[0], q[1]));
        let b = _mm_packs_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256::<1>(w));
        // SAFETY: `o` has exactly 8 bytes, the width of storel_epi64.
        unsafe { _mm_storel_epi64(o.as_mut_ptr().cast(), nibbles(b)) };
    }
    reference::quantize_pack(rest, s, tail);
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
    reference::quantize_pack(rest, s, tail);
}

/// The `gauss` rule's codes and scale: the reference's body, compiled for AVX2. Rust never
/// fuses a multiply and an add by itself, so wider registers change no bits.
#[target_feature(enable = "avx2")]
pub(super) fn gauss_avx2(row: &[f32], q: &mut [i8]) -> f32 {
    reference::encode_row_gauss_body(row, q)
}

/// The `gauss` rule's codes and scale: the reference's body, compiled for AVX-512.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) fn gauss_avx512(row: &[f32], q: &mut [i8]) -> f32 {
    reference::encode_row_gauss_body(row, q)
}
