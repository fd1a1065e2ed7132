//! x86-64 kernels of OPQ's rotation (AVX2, AVX-512): the reference's tiled loop with tile
//! shapes that keep each level's accumulators in registers.

use super::rotate_tiled;

// Tile shapes per level, measured on a 384-dim OPQ decode (`cargo bench --bench codecs --
// decode/opq`, Zen 5): each keeps its accumulators in registers. The old 4 × 32 everywhere
// gave 616 MiB/s with AVX-512, 336 with AVX2 and 173 without (its 32 AVX2 or SSE
// accumulators spill); these give 838, 518 and 242. Other shapes tried: AVX-512 4×64,
// 6×64, 8×48, 12×32 (390-505); AVX2 4×16, 8×16, 2×32, 3×32 (305-464); SSE 4×16, 4×8,
// 6×8 (194-224).

#[target_feature(enable = "avx512f")]
pub(super) fn rotate_avx512(x: &[f32], d: usize, r: &[f32], out: &mut [f32]) {
    rotate_tiled::<8, 32>(x, d, r, out)
}

#[target_feature(enable = "avx2")]
pub(super) fn rotate_avx2(x: &[f32], d: usize, r: &[f32], out: &mut [f32]) {
    rotate_tiled::<6, 16>(x, d, r, out)
}
