//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The `vectro` binary under test.
pub fn vectro() -> Command {
    let mut c = Command::cargo_bin("vectro").expect("binary built");
    c.env_remove("SOURCE_DATE_EPOCH");
    c
}

/// Path of a committed fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Reads a `.npy` with npyz, an implementation independent of ours.
pub fn read_npy<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let bytes = std::fs::read(path).expect("readable");
    let f = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let shape = f.shape().to_vec();
    (shape, f.into_vec().expect("data"))
}

/// Writes a float32 matrix as a `.npy`.
pub fn write_npy(path: &Path, rows: u64, dims: u64, data: &[f32]) {
    let mut buf = vectro::npy::write_header(rows, dims);
    buf.extend(data.iter().flat_map(|x| x.to_le_bytes()));
    std::fs::write(path, buf).expect("write file");
}

/// Deterministic pseudo-random floats (xorshift), embedding-like scale.
pub fn random_rows(rows: usize, dims: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..rows * dims)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect()
}

/// Bit patterns, to compare floats exactly.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
