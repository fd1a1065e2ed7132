//! The seeded rotation ([`crate::codec::Rotation`]) at each SIMD level.
//!
//! The scalar reference is the rotation's own body with [`fwht`]: sign flips and
//! Walsh–Hadamard butterflies, each output an add or a subtract of the same two values in
//! the same stage order, then one multiply. The AVX2 level compiles that body with wider
//! instructions; the AVX-512 level also runs the four shortest butterfly stages inside one
//! register (a lane permute, an add, a subtract and a blend). Rust never fuses a multiply
//! and an add by itself and float addition is commutative, so every level gives the
//! reference's bits.

use super::Level;
use crate::codec::Rotation;
use crate::codec::rotate::fwht;

/// Rotates `row` (`rot`'s dims long) in place.
pub fn forward(rot: &Rotation, row: &mut [f32]) {
    forward_at(Level::detect(), rot, row)
}

/// Undoes [`forward`] in place.
pub fn inverse(rot: &Rotation, row: &mut [f32]) {
    inverse_at(Level::detect(), rot, row)
}

/// [`forward`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn forward_at(level: Level, rot: &Rotation, row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::forward_avx512(rot, row) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::forward_avx2(rot, row) },
            _ => {}
        }
    }
    let _ = level;
    rot.forward_with(row, fwht)
}

/// [`inverse`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn inverse_at(level: Level, rot: &Rotation, row: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::inverse_avx512(rot, row) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::inverse_avx2(rot, row) },
            _ => {}
        }
    }
    let _ = level;
    rot.inverse_with(row, fwht)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::codec::Rotation;
    use crate::codec::rotate::{fwht, fwht_from};

    #[target_feature(enable = "avx2")]
    pub(super) fn forward_avx2(rot: &Rotation, row: &mut [f32]) {
        rot.forward_with(row, fwht)
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn inverse_avx2(rot: &Rotation, row: &mut [f32]) {
        rot.inverse_with(row, fwht)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) fn forward_avx512(rot: &Rotation, row: &mut [f32]) {
        rot.forward_with(row, |x| fwht_avx512(x))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) fn inverse_avx512(rot: &Rotation, row: &mut [f32]) {
        rot.inverse_with(row, |x| fwht_avx512(x))
    }

    /// [`fwht`] with stages 1, 2, 4 and 8 inside each 16-lane register.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn fwht_avx512(x: &mut [f32]) {
        if x.len() < 16 {
            return fwht(x);
        }
        for c in x.chunks_exact_mut(16) {
            // SAFETY: `c` has exactly 16 floats.
            let mut v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
            // Each stage: `t` is every lane's partner at distance h; lanes with bit h clear
            // become u + v (self + partner), the others u − v (partner − self).
            let t = _mm512_permute_ps::<0b10_11_00_01>(v);
            v = _mm512_mask_blend_ps(0xaaaa, _mm512_add_ps(v, t), _mm512_sub_ps(t, v));
            let t = _mm512_permute_ps::<0b01_00_11_10>(v);
            v = _mm512_mask_blend_ps(0xcccc, _mm512_add_ps(v, t), _mm512_sub_ps(t, v));
            let t = _mm512_shuffle_f32x4::<0b10_11_00_01>(v, v);
            v = _mm512_mask_blend_ps(0xf0f0, _mm512_add_ps(v, t), _mm512_sub_ps(t, v));
            let t = _mm512_shuffle_f32x4::<0b01_00_11_10>(v, v);
            v = _mm512_mask_blend_ps(0xff00, _mm512_add_ps(v, t), _mm512_sub_ps(t, v));
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(c.as_mut_ptr(), v) };
        }
        fwht_from(x, 16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_matches_the_scalar_reference() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for dims in [
            1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 64, 100, 384, 513, 1000,
        ] {
            for rounds in [1u32, 3] {
                let rot = Rotation::new(dims, rounds, dims as u64);
                let row: Vec<f32> = (0..dims)
                    .map(|_| {
                        s ^= s << 13;
                        s ^= s >> 7;
                        s ^= s << 17;
                        (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
                    })
                    .collect();
                let mut fwd = row.clone();
                rot.forward_with(&mut fwd, fwht);
                let mut back = fwd.clone();
                rot.inverse_with(&mut back, fwht);
                for l in Level::available() {
                    let mut got = row.clone();
                    forward_at(l, &rot, &mut got);
                    assert_eq!(bits(&got), bits(&fwd), "forward {} dims {dims}", l.name());
                    inverse_at(l, &rot, &mut got);
                    assert_eq!(bits(&got), bits(&back), "inverse {} dims {dims}", l.name());
                }
            }
        }
    }
}
