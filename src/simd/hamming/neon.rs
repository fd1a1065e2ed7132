//! aarch64 NEON sign-bit kernels: XOR + `cnt` (`vcntq_u8`) on 16 bytes at a time, the
//! per-byte counts added pairwise into u16 lanes (`vpadalq_u8`) and summed across the
//! vector once per row. Tails shorter than 16 bytes run the scalar body; integer counts
//! are exact, so the result is the reference's.

// The value intrinsics are safe to call inside a NEON `#[target_feature]` function on
// recent toolchains and `unsafe` on older ones; each body sits in an `unsafe` block so the
// file builds on both, and this keeps the newer toolchains from calling the blocks unused.
#![allow(unused_unsafe)]

use std::arch::aarch64::*;

use super::hamming_body;

/// 16-byte blocks added into one u16 accumulator before it is summed: each block adds at
/// most 16 to a lane (two bytes of 8 bits), so 2048 blocks stay below 2^15 (4096 would
/// reach 2^16 and wrap).
const FLUSH: usize = 2048;

/// [`super::hamming_rows_scalar`] with NEON. `q` is `row_bytes` long and `out` has an entry
/// for every row of `codes` (the dispatcher checked both).
#[target_feature(enable = "neon")]
pub(super) fn hamming_rows(q: &[u8], codes: &[u8], row_bytes: usize, out: &mut [u32]) {
    if row_bytes == 0 {
        return;
    }
    for (row, o) in codes.chunks_exact(row_bytes).zip(out.iter_mut()) {
        *o = hamming(q, row);
    }
}

/// `popcount(a XOR b)` over two slices of the same length.
#[target_feature(enable = "neon")]
fn hamming(a: &[u8], b: &[u8]) -> u32 {
    // SAFETY: NEON is enabled for this function; every pointer access is bounds-checked
    // by the slice it comes from, as noted at each one.
    unsafe {
        let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
        let tail = hamming_body(ca.remainder(), cb.remainder());
        let mut total = 0u32;
        let mut acc = vdupq_n_u16(0);
        for (k, (x, y)) in ca.zip(cb).enumerate() {
            // SAFETY: `x` and `y` have exactly 16 bytes each.
            let (vx, vy) = unsafe { (vld1q_u8(x.as_ptr()), vld1q_u8(y.as_ptr())) };
            acc = vpadalq_u8(acc, vcntq_u8(veorq_u8(vx, vy)));
            if k % FLUSH == FLUSH - 1 {
                total += vaddlvq_u16(acc);
                acc = vdupq_n_u16(0);
            }
        }
        total + vaddlvq_u16(acc) + tail
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Level, hamming_rows_at};

    /// Rows long enough that one u16 accumulator would wrap (every bit differs, so each
    /// lane gains 16 per 16-byte block and reaches 2^16 after 4096 blocks), and rows at the
    /// flush boundary: the count must still be `8 × row_bytes`.
    #[test]
    fn long_rows_count_past_the_u16_lanes() {
        let f = 16 * super::FLUSH;
        for row_bytes in [f - 1, f, f + 17, 2 * f, 16 * 4096, 16 * 4096 + 3, 150_001] {
            let q = vec![0xffu8; row_bytes];
            let codes = vec![0u8; 2 * row_bytes];
            let mut got = [0u32; 2];
            hamming_rows_at(Level::Neon, &q, &codes, row_bytes, &mut got);
            assert_eq!(got, [8 * row_bytes as u32; 2], "{row_bytes} bytes");
        }
    }
}
