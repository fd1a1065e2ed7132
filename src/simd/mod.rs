//! SIMD kernels behind safe dispatchers with runtime CPU detection.
//!
//! Every kernel has a scalar reference (the plain Rust loop in the codec's own file), and
//! tests check that each instruction set available on the test machine agrees with it bit
//! for bit. The default build targets generic x86-64 (SSE2), so the wider paths are chosen
//! at run time: detection runs once per process and is cached.
//!
//! Adding a kernel: its `#[target_feature]` functions go in `x86.rs` / `neon.rs`, a safe
//! dispatcher in a module named for the codec (see [`int8`]), plus agreement tests there.
//! [`adc`] keeps its x86 kernels apart, in `x86_adc.rs`.

pub mod adc;
pub mod binary;
pub mod half;
pub mod int4;
pub mod int8;
#[cfg(target_arch = "aarch64")]
mod neon;
pub mod rotate;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_adc;
#[cfg(target_arch = "x86_64")]
mod x86_half;
#[cfg(target_arch = "x86_64")]
mod x86_int4;

use std::sync::atomic::{AtomicU8, Ordering};

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
    let _ = level;
    any_non_finite_scalar(data)
}

/// The scalar reference of [`any_non_finite`]: branch-free, so it vectorises on SSE2.
pub fn any_non_finite_scalar(data: &[f32]) -> bool {
    data.iter().fold(false, |acc, x| {
        acc | (x.to_bits() & 0x7f80_0000 == 0x7f80_0000)
    })
}

/// An instruction-set level a kernel can run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Level {
    /// Plain Rust; the reference every other level must match.
    Scalar = 1,
    /// x86-64 AVX2 (256-bit).
    Avx2 = 2,
    /// x86-64 AVX-512 F/BW/VL (512-bit).
    Avx512 = 3,
    /// aarch64 NEON (128-bit).
    Neon = 4,
}

/// The best level the CPU has, and the one in use; 0 until detected.
static BEST: AtomicU8 = AtomicU8::new(0);
static CHOSEN: AtomicU8 = AtomicU8::new(0);

impl Level {
    /// The level the dispatchers use: the best this CPU supports, detected once.
    ///
    /// The environment variable `VECTRO_SIMD` (`scalar`, `avx2`, `avx512` or `neon`) picks
    /// a lower level, for benchmarking or to rule the kernels out when chasing a bug; a
    /// level the CPU lacks, or an unknown name, means scalar.
    pub fn detect() -> Level {
        match CHOSEN.load(Ordering::Relaxed) {
            0 => {
                let best = Self::best();
                let l = match std::env::var("VECTRO_SIMD") {
                    Ok(cap) => Self::available()
                        .into_iter()
                        .find(|l| l.name() == cap)
                        .unwrap_or(Level::Scalar),
                    Err(_) => best,
                };
                CHOSEN.store(l as u8, Ordering::Relaxed);
                l
            }
            n => Self::from_u8(n),
        }
    }

    /// The best level this CPU supports, whatever `VECTRO_SIMD` says.
    #[inline]
    pub fn best() -> Level {
        match BEST.load(Ordering::Relaxed) {
            0 => {
                let l = Self::available().last().copied().unwrap_or(Level::Scalar);
                BEST.store(l as u8, Ordering::Relaxed);
                l
            }
            n => Self::from_u8(n),
        }
    }

    /// Every level this CPU can run, scalar first.
    pub fn available() -> Vec<Level> {
        let mut v = vec![Level::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(Level::Avx2);
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                {
                    v.push(Level::Avx512);
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                v.push(Level::Neon);
            }
        }
        v
    }

    /// The level's name, as `VECTRO_SIMD` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
            Level::Neon => "neon",
        }
    }

    /// Whether this CPU can run `self`. Levels of the same architecture are nested, so
    /// comparing with the best one is enough.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    #[inline]
    pub(crate) fn runs_here(self) -> bool {
        self <= Self::best()
    }

    #[inline]
    fn from_u8(n: u8) -> Level {
        match n {
            2 => Level::Avx2,
            3 => Level::Avx512,
            4 => Level::Neon,
            _ => Level::Scalar,
        }
    }
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
