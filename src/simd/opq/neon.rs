//! aarch64 NEON kernel of OPQ's rotation: the reference's tiled loop with a tile of 4 rows
//! × 16 columns, whose 16 accumulators (128-bit) plus the 4 vectors of `r` and the 4
//! broadcast values of `x` a step loads fit NEON's 32 registers (the reference's 2 × 16
//! tile is sized for SSE's 16). The order in which each output element adds its products
//! is the reference's, so the bits are too. Not timed on aarch64 hardware (the CI runs it
//! under qemu, which checks the bits, not the speed).

use super::rotate_tiled;

#[target_feature(enable = "neon")]
pub(super) fn rotate(x: &[f32], d: usize, r: &[f32], out: &mut [f32]) {
    rotate_tiled::<4, 16>(x, d, r, out)
}
