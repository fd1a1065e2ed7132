//! Helpers shared by the reliability tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;

use vectro::{CompressOptions, GenerateOptions, NoProgress};

/// The vectro binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vectro"))
}

/// Runs vectro with `args`, returning its output.
pub fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("vectro runs")
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failure with `code` whose stderr contains every one of `needles`, and no panic.
pub fn assert_fails(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

/// Writes a seeded synthetic `.npy` of `rows × dims` to `dir/name`.
pub fn npy(dir: &Path, name: &str, rows: u64, dims: u64) -> PathBuf {
    let p = dir.join(name);
    let opts = GenerateOptions {
        rows,
        dims,
        threads: 1,
        ..GenerateOptions::default()
    };
    vectro::generate::generate(&p, &opts, true, &NoProgress, &AtomicBool::new(false)).unwrap();
    p
}

/// Compress options with a fixed chunk size and no fsync (tests only).
pub fn opts(chunk_rows: u32) -> CompressOptions {
    CompressOptions {
        chunk_rows: Some(chunk_rows),
        threads: 2,
        durability: vectro::output::Durability::None,
        ..CompressOptions::default()
    }
}

/// Compresses `input` to `dir/name` with `opts`, returning the path.
pub fn container(dir: &Path, input: &Path, name: &str, chunk_rows: u32) -> PathBuf {
    let out = dir.join(name);
    vectro::compress(
        input,
        &out,
        &opts(chunk_rows),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    out
}
