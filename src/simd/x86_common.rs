//! x86-64 helpers shared by several kernel families.

use std::arch::x86_64::*;

/// 16 running minima, one per lane, each the first (lowest position) among that lane's
/// values, with their positions: blocks of 16 values are pushed in position order.
pub(crate) struct MinLanes16 {
    low: __m512,
    at: __m512i,
    next: __m512i,
}

impl MinLanes16 {
    #[target_feature(enable = "avx512f")]
    pub(crate) fn new() -> MinLanes16 {
        MinLanes16 {
            low: _mm512_set1_ps(f32::INFINITY),
            at: _mm512_setzero_si512(),
            next: _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        }
    }

    /// Offers the next 16 values (NaN never wins).
    #[target_feature(enable = "avx512f")]
    pub(crate) fn push(&mut self, v: __m512) {
        let lt = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, self.low);
        self.low = _mm512_mask_mov_ps(self.low, lt, v);
        self.at = _mm512_mask_mov_epi32(self.at, lt, self.next);
        self.next = _mm512_add_epi32(self.next, _mm512_set1_epi32(16));
    }

    /// The smallest value and the lowest position holding it; infinity (at a position
    /// that means nothing) when no value was below it.
    #[target_feature(enable = "avx512f")]
    pub(crate) fn first_min(&self) -> (usize, f32) {
        let min = _mm512_reduce_min_ps(self.low);
        let eq = _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.low, _mm512_set1_ps(min));
        (_mm512_mask_reduce_min_epu32(eq, self.at) as usize, min)
    }
}

/// [`MinLanes16`] with 8 lanes, for AVX2.
pub(crate) struct MinLanes8 {
    low: __m256,
    at: __m256i,
    next: __m256i,
}

impl MinLanes8 {
    #[target_feature(enable = "avx2")]
    pub(crate) fn new() -> MinLanes8 {
        MinLanes8 {
            low: _mm256_set1_ps(f32::INFINITY),
            at: _mm256_setzero_si256(),
            next: _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        }
    }

    /// Offers the next 8 values (NaN never wins).
    #[target_feature(enable = "avx2")]
    pub(crate) fn push(&mut self, v: __m256) {
        let lt = _mm256_cmp_ps::<_CMP_LT_OQ>(v, self.low);
        self.low = _mm256_blendv_ps(self.low, v, lt);
        self.at = _mm256_blendv_epi8(self.at, self.next, _mm256_castps_si256(lt));
        self.next = _mm256_add_epi32(self.next, _mm256_set1_epi32(8));
    }

    /// As [`MinLanes16::first_min`].
    #[target_feature(enable = "avx2")]
    pub(crate) fn first_min(&self) -> (usize, f32) {
        let (mut lv, mut li) = ([0f32; 8], [0u32; 8]);
        // SAFETY: both arrays hold exactly 8 lanes; storeu needs no alignment.
        unsafe {
            _mm256_storeu_ps(lv.as_mut_ptr(), self.low);
            _mm256_storeu_si256(li.as_mut_ptr().cast(), self.at);
        }
        let mut best = (0, f32::INFINITY);
        for (&x, &i) in lv.iter().zip(&li) {
            if x < best.1 || (x == best.1 && (i as usize) < best.0) {
                best = (i as usize, x);
            }
        }
        best
    }
}
