//! Shared helpers of the access_* tests: make small containers, read `.npy` files back.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use vectro::output::Durability;
use vectro::{CompressOptions, GenerateOptions, NoProgress};

/// Every codec spec the random-access tests run on. Other codecs are being added in
/// parallel: append them here. `codec_list_covers_the_registry` fails when one is missing.
pub const CODECS: &[&str] = &[
    "int8",
    "int8:rotate=1",
    "int4",
    "int4:rotate=1",
    "binary",
    "binary:rotate=1",
    "f16",
    "bf16",
];

/// Writes a seeded synthetic `.npy` of `rows × dims` float32.
pub fn make_npy(dir: &Path, name: &str, rows: u64, dims: u64, seed: u64) -> PathBuf {
    let p = dir.join(name);
    let opts = GenerateOptions {
        rows,
        dims,
        clusters: 7,
        seed,
        threads: 1,
    };
    vectro::generate::generate(&p, &opts, false, &NoProgress, &AtomicBool::new(false)).unwrap();
    p
}

/// Compresses `npy` into `out` with the given codec, chunk size and threads.
pub fn compress(npy: &Path, out: &Path, codec: &str, chunk_rows: u32, threads: usize) {
    let opts = CompressOptions {
        codec: codec.into(),
        threads,
        chunk_rows: Some(chunk_rows),
        overwrite: false,
        durability: Durability::None,
        ..CompressOptions::default()
    };
    vectro::compress(npy, out, &opts, &NoProgress, &AtomicBool::new(false)).unwrap();
}

/// Reads a float32 `.npy`: `(rows, dims, values)`.
pub fn read_npy(path: &Path) -> (u64, u64, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let h = vectro::npy::parse_header(path, &bytes, bytes.len() as u64).unwrap();
    assert_eq!(h.dtype, vectro::npy::Dtype::F32Le);
    let data = bytes[h.data_offset as usize..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (h.rows, h.dims, data)
}

/// The full reconstruction of a container, through the whole-file `decompress` path.
pub fn decompressed(container: &Path) -> Vec<f32> {
    let out = container.with_extension("decoded.npy");
    let _ = std::fs::remove_file(&out);
    vectro::decompress(
        container,
        &out,
        2,
        false,
        Durability::None,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    read_npy(&out).2
}

/// Asserts two float slices are equal bit for bit, naming the first difference.
pub fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = got
        .iter()
        .zip(want)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        panic!("{what}: value {i} is {} but should be {}", got[i], want[i]);
    }
}

/// A tiny deterministic generator for test ids (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
