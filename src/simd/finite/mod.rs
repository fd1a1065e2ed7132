//! The input check every codec relies on: whether a slice holds a NaN or ±Inf.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// Whether any value in `data` is NaN or ±Inf: the input check every codec relies on.
pub fn any_non_finite(data: &[f32]) -> bool {
    any_non_finite_at(Level::detect(), data)
}

/// [`any_non_finite`] at a given level; a level this CPU lacks runs the scalar reference.
pub fn any_non_finite_at(level: Level, data: &[f32]) -> bool {
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked at run time that the CPU has AVX-512 F/BW/VL.
            Level::Avx512 => return unsafe { x86::any_non_finite_avx512(data) },
            // SAFETY: `runs_here` checked at run time that the CPU has AVX2.
            Level::Avx2 => return unsafe { x86::any_non_finite_avx2(data) },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time.
        return unsafe { neon::any_non_finite(data) };
    }
    let _ = level;
    any_non_finite_scalar(data)
}

/// The scalar reference of [`any_non_finite`]: branch-free, so it vectorises on SSE2.
pub fn any_non_finite_scalar(data: &[f32]) -> bool {
    data.iter().fold(false, |acc, x| {
        acc | (x.to_bits() & 0x7f80_0000 == 0x7f80_0000)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_non_finite_agrees_on_every_level() {
        let edge = [
            f32::MAX,
            -f32::MAX,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            -0.0,
            1.5,
        ];
        let bad = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0xffc0_0001),
        ];
        for len in [0usize, 1, 7, 8, 15, 16, 17, 63, 64, 100] {
            let mut data: Vec<f32> = (0..len).map(|i| edge[i % edge.len()]).collect();
            for l in Level::available() {
                assert!(!any_non_finite_at(l, &data), "{} len {len}", l.name());
            }
            for at in 0..len {
                for b in bad {
                    let keep = std::mem::replace(&mut data[at], b);
                    for l in Level::available() {
                        assert!(
                            any_non_finite_at(l, &data),
                            "{} {b} at {at}/{len}",
                            l.name()
                        );
                    }
                    data[at] = keep;
                }
            }
        }
    }
}
