//! vectro's SIMD kernels (`src/simd`), compiled alone so that their agreement tests can run
//! on aarch64 under qemu-user without cross-building the rest of the library. The files are
//! the library's own, included by path: nothing here is a copy.
#![allow(dead_code, unused_imports)]

#[path = "../../../src/simd/mod.rs"]
pub mod simd;

#[cfg(test)]
#[path = "../../../src/test_rng.rs"]
mod test_rng;
