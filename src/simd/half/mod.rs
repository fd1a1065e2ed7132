//! float32 → f16 / bf16 kernels: convert a row straight into little-endian payload bytes
//! and find, in the same pass, the first value that is not a finite 16-bit float (NaN,
//! ±Inf, or too large for the format).
//!
//! The scalar references are the `half` crate's conversions, round to nearest even. f16
//! uses the CPU's conversion instruction (`vcvtps2ph`, also round to nearest even, and
//! exact on subnormal results); bf16 rounds with integer adds, `(x + 0x7fff + lsb) >> 16`,
//! the same rule `half` applies (the AVX-512 BF16 instruction treats subnormal inputs as
//! zero, so it is not used). NaN bit patterns may differ between levels, but a NaN is
//! refused, never stored. aarch64 NEON converts f16 with `fcvtn` (baseline AdvSIMD, the
//! same rounding) and bf16 with the same integer adds.

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// Writes `src` as f16 (LE, 2 bytes each) into `dst`, which must be `2 × src.len()` long;
/// returns the index of the first value that is NaN, ±Inf or beyond ±65504, and then
/// `dst` holds unspecified bytes (the caller discards the block).
pub fn f32_to_f16_le(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    f32_to_f16_le_at(Level::detect(), src, dst)
}

/// [`f32_to_f16_le`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// If `dst` is not `2 × src.len()` bytes long.
pub fn f32_to_f16_le_at(level: Level, src: &[f32], dst: &mut [u8]) -> Option<usize> {
    assert_eq!(dst.len(), 2 * src.len(), "f32_to_f16_le: dst length");
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked AVX-512 F/BW/VL at run time.
            Level::Avx512 => return unsafe { x86::f16_avx512(src, dst) },
            Level::Avx2 if std::arch::is_x86_feature_detected!("f16c") => {
                // SAFETY: AVX2 was checked by `runs_here`, F16C here.
                return unsafe { x86::f16_avx2(src, dst) };
            }
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time.
        return unsafe { neon::f16(src, dst) };
    }
    let _ = level;
    f16_scalar(src, dst)
}

/// Writes `src` as bf16 (LE) into `dst` (`2 × src.len()` bytes); returns the index of the
/// first value that is NaN, ±Inf or rounds beyond the largest finite bf16 (and then `dst`
/// holds unspecified bytes).
pub fn f32_to_bf16_le(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    f32_to_bf16_le_at(Level::detect(), src, dst)
}

/// [`f32_to_bf16_le`] at a given level; a level this CPU lacks runs the scalar reference.
///
/// # Panics
/// If `dst` is not `2 × src.len()` bytes long.
pub fn f32_to_bf16_le_at(level: Level, src: &[f32], dst: &mut [u8]) -> Option<usize> {
    assert_eq!(dst.len(), 2 * src.len(), "f32_to_bf16_le: dst length");
    #[cfg(target_arch = "x86_64")]
    if level.runs_here() {
        match level {
            // SAFETY: `runs_here` checked AVX-512 F/BW/VL at run time.
            Level::Avx512 => return unsafe { x86::bf16_avx512(src, dst) },
            // SAFETY: `runs_here` checked AVX2 at run time.
            Level::Avx2 => return unsafe { x86::bf16_avx2(src, dst) },
            _ => {}
        }
    }
    #[cfg(target_arch = "aarch64")]
    if level == Level::Neon && level.runs_here() {
        // SAFETY: NEON was detected at run time.
        return unsafe { neon::bf16(src, dst) };
    }
    let _ = level;
    bf16_scalar(src, dst)
}

/// The scalar reference of [`f32_to_f16_le`].
pub fn f16_scalar(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    for (i, (&x, o)) in src.iter().zip(dst.chunks_exact_mut(2)).enumerate() {
        let h = half::f16::from_f32(x);
        if !h.is_finite() {
            return Some(i);
        }
        o.copy_from_slice(&h.to_bits().to_le_bytes());
    }
    None
}

/// The scalar reference of [`f32_to_bf16_le`].
pub fn bf16_scalar(src: &[f32], dst: &mut [u8]) -> Option<usize> {
    for (i, (&x, o)) in src.iter().zip(dst.chunks_exact_mut(2)).enumerate() {
        let h = half::bf16::from_f32(x);
        if !h.is_finite() {
            return Some(i);
        }
        o.copy_from_slice(&h.to_bits().to_le_bytes());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// Random bit patterns of every class: normal, subnormal, zero, near each format's
    /// overflow and rounding edges, NaN and ±Inf.
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed | 1);
        (0..n)
            .map(|_| {
                let r = rng.next();
                let bits = match r % 8 {
                    0 => (r >> 32) as u32,                               // anything, NaN included
                    1 => (r >> 40) as u32 & 0x807f_ffff,                 // f32 subnormal
                    2 => 0x3380_0000 + ((r >> 40) as u32 & 0x00ff_ffff), // f16 subnormal range
                    3 => 0x477f_e000 + ((r >> 44) as u32 & 0x3fff),      // around 65504 / 65520
                    4 => 0x7f7f_0000 + ((r >> 48) as u32 & 0xffff),      // near f32::MAX
                    5 => [0x7f80_0000, 0xff80_0000, 0, 0x8000_0000][(r >> 60) as usize % 4],
                    _ => 0x3c00_0000 + ((r >> 36) as u32 & 0x07ff_ffff), // ordinary
                };
                f32::from_bits(bits ^ ((r as u32 >> 3) & 0x8000_0000))
            })
            .collect()
    }

    type Kernel = fn(Level, &[f32], &mut [u8]) -> Option<usize>;
    type Reference = fn(&[f32], &mut [u8]) -> Option<usize>;

    fn agree(kernel: Kernel, reference: Reference, name: &str) {
        for case in 0..400u64 {
            let len = (case as usize * 7) % 130;
            let mut v = values(len, case + 1);
            if case % 2 == 0 {
                // Mostly finite rows, so the bytes are compared too.
                v.iter_mut()
                    .filter(|x| !x.is_finite() || x.abs() > 6e4)
                    .for_each(|x| *x = 1.5);
            }
            let mut want = vec![0u8; 2 * len];
            let bad = reference(&v, &mut want);
            for l in Level::available() {
                let mut got = vec![0u8; 2 * len];
                assert_eq!(
                    kernel(l, &v, &mut got),
                    bad,
                    "{name} {} case {case}",
                    l.name()
                );
                if bad.is_none() {
                    assert_eq!(got, want, "{name} {} case {case}", l.name());
                }
            }
        }
    }

    #[test]
    fn every_level_matches_half_for_f16() {
        agree(f32_to_f16_le_at, f16_scalar, "f16");
    }

    #[test]
    fn every_level_matches_half_for_bf16() {
        agree(f32_to_bf16_le_at, bf16_scalar, "bf16");
    }

    #[test]
    fn overflow_nan_and_inf_are_found_at_their_index() {
        for l in Level::available() {
            for (x, f16_bad, bf16_bad) in [
                (65504.0f32, false, false),
                (65520.0, true, false),
                (f32::MAX, true, true),
                (f32::NAN, true, true),
                (f32::from_bits(0x7fff_ffff), true, true),
                (f32::NEG_INFINITY, true, true),
            ] {
                for at in [0usize, 5, 16, 31, 40] {
                    let mut v = vec![0.25f32; 41];
                    v[at] = x;
                    let mut out = vec![0u8; 82];
                    let want = |bad: bool| bad.then_some(at);
                    assert_eq!(
                        f32_to_f16_le_at(l, &v, &mut out),
                        want(f16_bad),
                        "{x} {}",
                        l.name()
                    );
                    assert_eq!(
                        f32_to_bf16_le_at(l, &v, &mut out),
                        want(bf16_bad),
                        "{x} {}",
                        l.name()
                    );
                }
            }
        }
    }
}
