//! Helpers shared by every integration test: the binary under test, `.npy` files in and
//! out, small containers, and the multi-file dataset of the scale-out tests.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::AtomicBool;

use vectro::output::Durability;
use vectro::{CompressOptions, GenerateOptions, NoProgress};

// ---- the binary ------------------------------------------------------------------------

/// Path of the `vectro` binary under test.
pub fn bin_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vectro"))
}

/// The `vectro` binary as a plain [`std::process::Command`] (to spawn, pipe, or pass as
/// `&mut Command`), with the variables it reads from the machine removed: the scale-out
/// engines' must come from the test, never from the machine running it.
pub fn vectro_std() -> std::process::Command {
    let mut c = std::process::Command::new(bin_path());
    for v in [
        "SOURCE_DATE_EPOCH",
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

/// The `vectro` binary as an [`assert_cmd::Command`], set up as [`vectro_std`].
pub fn vectro() -> assert_cmd::Command {
    assert_cmd::Command::from_std(vectro_std())
}

/// Runs vectro with `args`, returning its output.
pub fn run(args: &[&str]) -> Output {
    vectro_std().args(args).output().expect("vectro runs")
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

/// Runs `cmd`, panicking with its stderr if it fails; returns stdout.
pub fn ok(cmd: &mut std::process::Command) -> String {
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
pub fn fails(cmd: &mut std::process::Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "{cmd:?} succeeded");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stderr).unwrap(),
    )
}

// ---- .npy files --------------------------------------------------------------------------

/// Path of a committed fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A float32 matrix as `.npy` bytes (vectro's own header writer).
pub fn npy_bytes(rows: u64, dims: u64, data: &[f32]) -> Vec<u8> {
    assert_eq!(data.len() as u64, rows * dims, "rows × dims floats");
    let mut buf = vectro::npy::write_header(rows, dims);
    buf.extend(data.iter().flat_map(|x| x.to_le_bytes()));
    buf
}

/// Writes a float32 matrix as a `.npy`.
pub fn write_npy(path: &Path, rows: u64, dims: u64, data: &[f32]) {
    std::fs::write(path, npy_bytes(rows, dims, data)).expect("write file");
}

/// Reads a `.npy` with npyz, an implementation independent of ours: `(shape, values)`.
pub fn read_npy<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let bytes = std::fs::read(path).expect("readable");
    let f = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let shape = f.shape().to_vec();
    (shape, f.into_vec().expect("data"))
}

/// Reads a 2-D little-endian float32 `.npy` (what vectro writes): `(rows, dims, values)`.
pub fn read_npy_f32(path: &Path) -> (u64, u64, Vec<f32>) {
    let bytes = std::fs::read(path).expect("readable");
    let f = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    assert_eq!(
        f.dtype(),
        npyz::DType::Plain("<f4".parse().unwrap()),
        "{}: dtype",
        path.display()
    );
    let shape = f.shape().to_vec();
    assert_eq!(shape.len(), 2, "{}: shape {shape:?}", path.display());
    (shape[0], shape[1], f.into_vec().expect("data"))
}

/// Writes a seeded synthetic `.npy` (`vectro generate`) of `rows × dims` to `dir/name`.
pub fn make_npy(dir: &Path, name: &str, rows: u64, dims: u64, seed: u64) -> PathBuf {
    generate_npy(
        dir,
        name,
        GenerateOptions {
            rows,
            dims,
            clusters: 7,
            seed,
            threads: 1,
        },
    )
}

/// Like [`make_npy`] with `vectro generate`'s default clusters and seed.
pub fn npy(dir: &Path, name: &str, rows: u64, dims: u64) -> PathBuf {
    generate_npy(
        dir,
        name,
        GenerateOptions {
            rows,
            dims,
            threads: 1,
            ..GenerateOptions::default()
        },
    )
}

fn generate_npy(dir: &Path, name: &str, opts: GenerateOptions) -> PathBuf {
    let p = dir.join(name);
    vectro::generate::generate(&p, &opts, true, &NoProgress, &AtomicBool::new(false)).unwrap();
    p
}

/// Deterministic pseudo-random numbers in `[0, 1)` (xorshift), `n` of them.
pub fn xorshift_unit(n: u64, seed: u64) -> impl Iterator<Item = f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(move |_| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    })
}

/// Deterministic pseudo-random floats in `[-0.1, 0.1)`, embedding-like scale.
pub fn random_rows(rows: usize, dims: usize, seed: u64) -> Vec<f32> {
    xorshift_unit((rows * dims) as u64, seed)
        .map(|u| (u - 0.5) * 0.2)
        .collect()
}

/// Deterministic pseudo-random floats in `[-1, 1)`.
pub fn rows(n: u64, dims: u64, seed: u64) -> Vec<f32> {
    xorshift_unit(n * dims, seed)
        .map(|u| u * 2.0 - 1.0)
        .collect()
}

/// Bit patterns, to compare floats exactly.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
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
    /// The next number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---- containers --------------------------------------------------------------------------

/// Every codec spec the random-access tests run on. `codec_list_covers_the_registry`
/// fails when one is missing.
pub const CODECS: &[&str] = &[
    "int8",
    "int8:rotate=1",
    "int4",
    "int4:rotate=1",
    "binary",
    "binary:rotate=1",
    "sq:bits=2",
    "sq:bits=5",
    "f16",
    "bf16",
];

/// Compress options with a fixed chunk size, two threads and no fsync (tests only).
pub fn opts(chunk_rows: u32) -> CompressOptions {
    CompressOptions {
        chunk_rows: Some(chunk_rows),
        threads: 2,
        durability: Durability::None,
        ..CompressOptions::default()
    }
}

/// Compresses `npy` into `out` with the given codec, chunk size and threads.
pub fn compress(npy: &Path, out: &Path, codec: &str, chunk_rows: u32, threads: usize) {
    let opts = CompressOptions {
        codec: Some(codec.parse().unwrap()),
        threads,
        ..opts(chunk_rows)
    };
    vectro::compress(npy, out, &opts, &NoProgress, &AtomicBool::new(false)).unwrap();
}

/// Compresses `input` to `dir/name` with [`opts`], returning the path.
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
    read_npy_f32(&out).2
}

// ---- the scale-out tests' multi-file dataset ---------------------------------------------

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

/// Writes [`FILES`] into `dir/in` and returns that directory.
pub fn dataset(dir: &Path) -> PathBuf {
    let d = dir.join("in");
    std::fs::create_dir_all(&d).unwrap();
    for (i, (name, n)) in FILES.iter().enumerate() {
        write_npy(&d.join(name), *n, DIMS, &rows(*n, DIMS, i as u64 + 1));
    }
    d
}

/// Rows of [`dataset`].
pub fn total_rows() -> u64 {
    FILES.iter().map(|f| f.1).sum()
}

/// The container a single process writes for `input`.
pub fn single_run(input: &Path, out: &Path) -> Vec<u8> {
    ok(vectro_std()
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
pub fn shard_cmd(input: &Path, out: &Path) -> std::process::Command {
    let mut c = vectro_std();
    c.args([
        "compress",
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

/// Runs `cmd` to its end and returns its peak resident memory in bytes, measured by
/// `wait4` (the commands measured report no memory of their own); fails the test, naming
/// `what`, when it does not succeed.
#[cfg(target_os = "linux")]
pub fn peak_rss_of(mut cmd: std::process::Command, what: &str) -> u64 {
    use std::os::unix::process::ExitStatusExt;
    // Reaped by wait4 below, which std's wait cannot replace: it returns no rusage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain integers, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own child, reaped here (the Child is never waited on again);
    // `status` and `usage` are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let status = std::process::ExitStatus::from_raw(status);
    assert!(status.success(), "{what} failed: {status}");
    usage.ru_maxrss as u64 * 1024 // kilobytes on Linux
}
