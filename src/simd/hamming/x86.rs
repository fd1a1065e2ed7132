//! x86-64 sign-bit kernels: `popcnt` on 8-byte words. AVX-512 VPOPCNTDQ would count 64
//! bytes per instruction, but a 384-d row is 48 bytes (six words), and the CPUs this was
//! written on lack it, so it is not here.

use super::hamming_body;

/// [`super::hamming_rows_scalar`] compiled with `popcnt`.
#[target_feature(enable = "popcnt")]
pub(super) fn hamming_rows_popcnt(q: &[u8], codes: &[u8], row_bytes: usize, out: &mut [u32]) {
    if row_bytes == 0 {
        return;
    }
    for (row, o) in codes.chunks_exact(row_bytes).zip(out.iter_mut()) {
        *o = hamming_body(q, row);
    }
}
