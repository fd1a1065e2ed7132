//! Shared by the tests/scaleout_*.rs files: a small multi-file dataset and the binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Rows per chunk in these tests: small, so that chunks straddle files and shards hold many.
pub const CHUNK_ROWS: u32 = 64;
/// Dimensions of the test data.
pub const DIMS: u64 = 24;
/// Rows of each file of [`dataset`], in natural order of their names.
pub const FILES: [(&str, u64); 4] = [
    ("part-0.npy", 301),
    ("part-1.npy", 257),
    ("part-2.npy", 123),
    ("part-10.npy", 410),
];

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vectro"))
}

pub fn vectro() -> Command {
    let mut c = Command::new(bin());
    // The engines' variables must come from the test, never from the machine running it.
    for v in [
        "JOB_COMPLETION_INDEX",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_STEP",
    ] {
        c.env_remove(v);
    }
    c
}

/// Deterministic, embedding-like float32 rows (a xorshift, so no dependency on rand).
pub fn rows(n: u64, dims: u64, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n * dims)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn write_npy(path: &Path, data: &[f32], dims: u64) {
    let mut bytes = vectro::npy::write_header(data.len() as u64 / dims, dims);
    for x in data {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Writes [`FILES`] into `dir/in` and returns that directory.
pub fn dataset(dir: &Path) -> PathBuf {
    let d = dir.join("in");
    std::fs::create_dir_all(&d).unwrap();
    for (i, (name, n)) in FILES.iter().enumerate() {
        write_npy(&d.join(name), &rows(*n, DIMS, i as u64 + 1), DIMS);
    }
    d
}

pub fn total_rows() -> u64 {
    FILES.iter().map(|f| f.1).sum()
}

/// Runs `cmd`, panicking with its stderr if it fails; returns stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `cmd`, expecting failure; returns (exit code, stderr).
pub fn fails(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} succeeded");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The container a single process writes for `input`.
pub fn single_run(input: &Path, out: &Path) -> Vec<u8> {
    ok(vectro()
        .args([
            "compress",
            "--quiet",
            "--chunk-rows",
            &CHUNK_ROWS.to_string(),
        ])
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(out));
    std::fs::read(out).unwrap()
}

/// `compress --shard ...` of `input` into `out` (which may hold `{shard}`), not yet run.
pub fn shard_cmd(input: &Path, out: &Path) -> Command {
    let mut c = vectro();
    c.args([
        "compress",
        "--quiet",
        "--threads",
        "1",
        "--chunk-rows",
        &CHUNK_ROWS.to_string(),
    ])
    .arg("--in")
    .arg(input)
    .arg("--out")
    .arg(out);
    c
}
