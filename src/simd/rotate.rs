//! The seeded rotation ([`crate::codec::Rotation`]) at each SIMD level.
//!
//! The scalar reference is the rotation's own body with its `fwht`: sign flips and
//! Walsh–Hadamard butterflies, each output an add or a subtract of the same two values in
//! the same stage order, then one multiply. The AVX2 level compiles that body with wider
//! instructions; the AVX-512 level also runs the four shortest butterfly stages inside one
//! register (a lane permute, an add and a masked subtract), and windows of up to 512
//! floats entirely in registers. Rust never fuses a multiply
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

    /// [`fwht`] with stages 1, 2, 4 and 8 inside each 16-lane register, and for windows of
    /// up to 512 floats the whole transform in registers (one load and one store a value).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn fwht_avx512(x: &mut [f32]) {
        match x.len() {
            16 => fwht_regs::<1>(x),
            32 => fwht_regs::<2>(x),
            64 => fwht_regs::<4>(x),
            128 => fwht_regs::<8>(x),
            256 => fwht_regs::<16>(x),
            512 => fwht_regs::<32>(x),
            n if n < 16 => fwht(x),
            _ => {
                for c in x.chunks_exact_mut(16) {
                    // SAFETY: `c` has exactly 16 floats.
                    let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
                    // SAFETY: as above.
                    unsafe { _mm512_storeu_ps(c.as_mut_ptr(), in_register(v)) };
                }
                fwht_from(x, 16);
            }
        }
    }

    /// [`fwht`] of `x`, exactly `16 × N` floats, held in `N` registers.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn fwht_regs<const N: usize>(x: &mut [f32]) {
        let x = &mut x[..16 * N];
        let mut r = [_mm512_setzero_ps(); N];
        for (k, r) in r.iter_mut().enumerate() {
            // SAFETY: `x` has 16N floats, so 16 from offset 16k are in bounds.
            *r = in_register(unsafe { _mm512_loadu_ps(x.as_ptr().add(16 * k)) });
        }
        // Stages 16, 32, ...: register k pairs with register k + h, as fwht_from pairs
        // x[i] with x[i + 16h].
        let mut h = 1;
        while h < N {
            for b in (0..N).step_by(2 * h) {
                for i in b..b + h {
                    let (u, v) = (r[i], r[i + h]);
                    r[i] = _mm512_add_ps(u, v);
                    r[i + h] = _mm512_sub_ps(u, v);
                }
            }
            h *= 2;
        }
        let norm = _mm512_set1_ps(((16 * N) as f64).sqrt().recip() as f32);
        for (k, r) in r.iter().enumerate() {
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(x.as_mut_ptr().add(16 * k), _mm512_mul_ps(*r, norm)) };
        }
    }

    /// Butterfly stages 1, 2, 4 and 8 of 16 floats in one register. Each stage: `t` is every
    /// lane's partner at distance h; lanes with bit h clear become u + v (self + partner),
    /// the others u − v (partner − self).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    #[inline]
    fn in_register(mut v: __m512) -> __m512 {
        let t = _mm512_permute_ps::<0b10_11_00_01>(v);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), 0xaaaa, t, v);
        let t = _mm512_permute_ps::<0b01_00_11_10>(v);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), 0xcccc, t, v);
        let t = _mm512_shuffle_f32x4::<0b10_11_00_01>(v, v);
        v = _mm512_mask_sub_ps(_mm512_add_ps(v, t), 0xf0f0, t, v);
        let t = _mm512_shuffle_f32x4::<0b01_00_11_10>(v, v);
        _mm512_mask_sub_ps(_mm512_add_ps(v, t), 0xff00, t, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_matches_the_scalar_reference() {
        let mut rng = crate::test_rng::Rng(0x9e37_79b9_7f4a_7c15);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for dims in [
            1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 64, 100, 384, 513, 1000,
        ] {
            for rounds in [1u32, 3] {
                let rot = Rotation::new(dims, rounds, dims as u64);
                let row: Vec<f32> = (0..dims).map(|_| rng.centred()).collect();
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
