//! SIMD kernels behind safe dispatchers with runtime CPU detection.
//!
//! Every kernel has a scalar reference (plain Rust, in the family's `mod.rs`), and tests
//! check that each instruction set available on the test machine agrees with it bit for
//! bit. The default build targets generic x86-64 (SSE2), so the wider paths are chosen at
//! run time: detection runs once per process and is cached.
//!
//! Kernels take plain slices and parameters and import nothing from the codecs above them:
//! a codec calls down into its family here. Each family is a folder, `simd/<family>/`:
//! - `mod.rs`: the safe dispatchers (`f` at the detected level, `f_at` at a given one), the
//!   scalar references (named `*_scalar` where a dispatcher has the plain name) and the
//!   agreement tests;
//! - `x86.rs`: the AVX2 / AVX-512 `#[target_feature]` functions;
//! - `neon.rs`: the aarch64 NEON ones, where a family has them.
//!
//! Adding a kernel: put it in its family's folder (or a new one) in that shape.

pub mod adc;
pub mod aniso;
pub mod binary;
pub mod fastscan;
mod finite;
pub mod half;
pub mod hamming;
pub mod idot;
pub mod int4;
pub mod int8;
pub mod kmeans;
pub mod opq;
pub mod rotate;
pub mod sq;
#[cfg(target_arch = "x86_64")]
mod x86_common;

use std::sync::atomic::{AtomicU8, Ordering};

pub use finite::{any_non_finite, any_non_finite_at, any_non_finite_scalar};

/// Asks the CPU to start loading the cache line holding `bytes[at]`; a no-op when `at` is
/// out of bounds or the target has no prefetch instruction. Never faults: a prefetch is a
/// hint.
#[inline]
pub fn prefetch(bytes: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bytes.get(at) {
        // SAFETY: SSE is part of the x86-64 baseline, and a prefetch only hints the cache:
        // it reads nothing into the program and cannot fault, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (b as *const u8).cast::<i8>(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (bytes, at);
}

/// [`prefetch`] of every cache line of `v[from..to]` (clipped to `v`): the next rows an
/// encoder will read, asked for while it works on the current ones.
#[inline]
pub fn prefetch_floats(v: &[f32], from: usize, to: usize) {
    let v = &v[from.min(v.len())..to.min(v.len())];
    // 16 floats are one 64-byte cache line; a row not aligned to one also touches the
    // line holding its last float.
    for i in (0..v.len()).step_by(16).chain(v.len().checked_sub(1)) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is part of the x86-64 baseline, and a prefetch only hints the cache:
        // it reads nothing into the program and cannot fault; `v[i]` is in bounds.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (&v[i] as *const f32).cast::<i8>(),
            )
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }
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
    /// level the CPU lacks, or an unknown name, means scalar. Whatever it returns, this CPU
    /// runs: kernels may rely on that.
    #[inline]
    pub fn detect() -> Level {
        match CHOSEN.load(Ordering::Relaxed) {
            0 => Self::detect_first(),
            n => Self::from_u8(n),
        }
    }

    /// [`Level::detect`]'s first call: reads `VECTRO_SIMD` and caches the choice.
    #[cold]
    fn detect_first() -> Level {
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
