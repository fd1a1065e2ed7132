//! The pq/opq codecs end to end through the `vectro` binary.

use std::path::{Path, PathBuf};

use crate::helpers::{read_npy_f32, vectro};

fn generate(dir: &Path, rows: u64, dims: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let npy = dir.join("x.npy");
    vectro()
        .args([
            "generate",
            "--clusters",
            "8",
            "-q",
            "--rows",
            &rows.to_string(),
        ])
        .args(["--dims", &dims.to_string(), "--out"])
        .arg(&npy)
        .assert()
        .success();
    npy
}

/// Runs compress and returns its stderr (where notes go).
fn compress(npy: &Path, out: &Path, extra: &[&str]) -> String {
    let o = vectro()
        .args([
            "compress",
            "--no-fsync",
            "-q",
            "--chunk-rows",
            "100",
            "--in",
        ])
        .arg(npy)
        .arg("--out")
        .arg(out)
        .args(extra)
        .assert()
        .success();
    String::from_utf8_lossy(&o.get_output().stderr).into_owned()
}

fn decompress(container: &Path, npy: &Path) {
    vectro()
        .args(["decompress", "-q", "--no-fsync", "--in"])
        .arg(container)
        .arg("--out")
        .arg(npy)
        .assert()
        .success();
}

fn stderr_of_failure(args: &[&str], paths: &[(&str, &Path)]) -> String {
    let mut c = vectro();
    c.args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    let o = c.assert().failure();
    String::from_utf8_lossy(&o.get_output().stderr).into_owned()
}

#[test]
fn shared_codebook_gives_the_same_file_as_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let npy = generate(dir.path(), 700, 16);
    for codec in ["pq:m=4,nbits=4", "opq:m=4,nbits=4,opq_iters=2"] {
        let one = dir.path().join("one.vectro");
        let shared = dir.path().join("two.vectro");
        let vcb = dir.path().join("c.vcb");
        let warn = compress(
            &npy,
            &one,
            &["--force", "--codec", codec, "--train-rows", "500"],
        );
        assert!(warn.contains("fewer than 624"), "{warn}");
        vectro()
            .args([
                "train",
                "-q",
                "--force",
                "--codec",
                codec,
                "--train-rows",
                "500",
                "--in",
            ])
            .arg(&npy)
            .arg("--out")
            .arg(&vcb)
            .assert()
            .success();
        compress(
            &npy,
            &shared,
            &["--force", "--codebook", vcb.to_str().unwrap()],
        );
        assert_eq!(
            std::fs::read(&one).unwrap(),
            std::fs::read(&shared).unwrap(),
            "{codec}"
        );
    }
}

#[test]
fn same_bytes_for_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let npy = generate(dir.path(), 600, 16);
    for codec in ["pq:m=8,nbits=4", "opq:m=4,nbits=4,opq_iters=2"] {
        let files: Vec<Vec<u8>> = ["1", "3"]
            .iter()
            .map(|t| {
                let out = dir.path().join(format!("t{t}.vectro"));
                compress(&npy, &out, &["--force", "--codec", codec, "--threads", t]);
                std::fs::read(out).unwrap()
            })
            .collect();
        assert_eq!(files[0], files[1], "{codec}");
    }
}

#[test]
fn info_shows_training_and_decompress_reconstructs() {
    let dir = tempfile::tempdir().unwrap();
    let npy = generate(dir.path(), 400, 16);
    let out = dir.path().join("x.vectro");
    compress(&npy, &out, &["--codec", "opq:m=4,nbits=4,opq_iters=1"]);
    let info = vectro().arg("info").arg(&out).assert().success();
    let text = String::from_utf8_lossy(&info.get_output().stdout).into_owned();
    for want in [
        "opq:m=4,nbits=4",
        "train rows:    400",
        "k-means iterations:",
        "opq iterations: 1",
        "train distortion:",
        "encoding:      anisotropic, aniso=2",
    ] {
        assert!(text.contains(want), "missing '{want}' in:\n{text}");
    }
    let back = dir.path().join("y.npy");
    decompress(&out, &back);
    let (x, y) = (read_npy_f32(&npy).2, read_npy_f32(&back).2);
    let err: f64 = x
        .iter()
        .zip(&y)
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum();
    let energy: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
    assert!(
        err < 0.5 * energy,
        "reconstruction error {err} vs energy {energy}"
    );
}

/// Squared error of each row of `b` against `a`, and the part of it along the row.
fn errors(a: &[f32], b: &[f32], dims: usize) -> (f64, f64) {
    let (mut all, mut along) = (0f64, 0f64);
    for (x, y) in a.chunks(dims).zip(b.chunks(dims)) {
        let r: Vec<f64> = x.iter().zip(y).map(|(x, y)| f64::from(x - y)).collect();
        let xx: f64 = x.iter().map(|v| f64::from(*v).powi(2)).sum();
        let rx: f64 = r.iter().zip(x).map(|(r, v)| r * f64::from(*v)).sum();
        all += r.iter().map(|v| v * v).sum::<f64>();
        along += rx * rx / xx;
    }
    (all, along)
}

#[test]
fn anisotropic_encoding_trades_error_across_rows_for_error_along_them() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, dims) = (1500, 32);
    let npy = generate(dir.path(), rows, dims);
    let mut got = Vec::new();
    for (name, codec) in [
        ("plain", "pq:m=8,nbits=4,aniso=1"),
        ("aniso", "pq:m=8,nbits=4"),
    ] {
        let out = dir.path().join(format!("{name}.vectro"));
        compress(&npy, &out, &["--codec", codec]);
        let back = dir.path().join(format!("{name}.npy"));
        decompress(&out, &back);
        got.push(errors(
            &read_npy_f32(&npy).2,
            &read_npy_f32(&back).2,
            dims as usize,
        ));
    }
    let (plain, aniso) = (got[0], got[1]);
    // Same codebook (training does not depend on aniso), other codes: less error along the
    // rows, more in all, as the loss trades them.
    assert!(aniso.1 < 0.9 * plain.1, "along: {aniso:?} vs {plain:?}");
    assert!(aniso.0 > plain.0, "total: {aniso:?} vs {plain:?}");

    let bad_out = dir.path().join("bad.vectro");
    let io = [("--in", npy.as_path()), ("--out", bad_out.as_path())];
    for bad in ["0.5", "65", "x"] {
        let msg = stderr_of_failure(
            &["compress", "--codec", &format!("pq:m=8,aniso={bad}")],
            &io,
        );
        assert!(
            msg.contains("aniso must be auto or a number from 1 to 64"),
            "{msg}"
        );
        assert!(!bad_out.exists());
    }
}

#[test]
fn bad_requests_are_named_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let npy = generate(dir.path(), 300, 12);
    let out = dir.path().join("x.vectro");
    let io = [("--in", npy.as_path()), ("--out", out.as_path())];
    let msg = stderr_of_failure(&["compress", "--codec", "pq:m=5"], &io);
    assert!(
        msg.contains("12 dims are not divisible by m=5; valid m for 12 dims: 1, 2, 3, 4, 6, 12"),
        "{msg}"
    );
    // nbits=8 needs one row per centroid at the very least.
    // pq:m=3 on a sample of 100 rows, which training would refuse, plus `extra`.
    let small_sample = |extra: &[&str]| {
        let mut args = vec!["compress", "--codec", "pq:m=3", "--train-rows", "100"];
        args.extend_from_slice(extra);
        stderr_of_failure(&args, &io)
    };
    let msg = small_sample(&[]);
    assert!(msg.contains("at least 256 rows"), "{msg}");
    // Settings are checked before training (which would fail here, and can take minutes).
    let msg = small_sample(&["--chunk-rows", "0"]);
    assert!(msg.contains("--chunk-rows must be at least 1"), "{msg}");
    let msg = small_sample(&["--zstd", "99"]);
    assert!(msg.contains("--zstd 99 is out of range"), "{msg}");
    // A codebook trained on data of another dimension.
    let other = generate(&dir.path().join("o"), 300, 8);
    let vcb = dir.path().join("c.vcb");
    vectro()
        .args(["train", "-q", "--codec", "pq:m=2,nbits=4", "--in"])
        .arg(&other)
        .arg("--out")
        .arg(&vcb)
        .assert()
        .success();
    let msg = stderr_of_failure(
        &["compress"],
        &[("--codebook", vcb.as_path()), io[0], io[1]],
    );
    assert!(
        msg.contains("c.vcb") && msg.contains("8-dimensional") && msg.contains("12 dims"),
        "{msg}"
    );
    // A codebook of another kind, m or nbits than --codec asks for, or a codec no
    // codebook serves (it silently gave pq codes): one usage error (exit 2), one message,
    // found before any output is touched.
    let npy8 = other;
    for codec in [
        "opq:m=2",
        "pq:m=4,nbits=4",
        "pq:m=2,nbits=8",
        "binary-itq",
        "int8",
        "int4:rotate=1",
    ] {
        let mut c = vectro();
        c.args(["compress", "--codec", codec, "--codebook"])
            .arg(&vcb)
            .arg("--in")
            .arg(&npy8)
            .args([io[1].0])
            .arg(io[1].1);
        let o = c.assert().code(2);
        let msg = String::from_utf8_lossy(&o.get_output().stderr).into_owned();
        // The request as parsed, in its shortest spelling (defaults left out).
        let asked = codec.trim_end_matches(",nbits=8");
        assert!(
            msg.contains(&format!(
                "holds a pq:m=2,nbits=4,aniso=2 codebook, which --codec {asked} does not match; \
                 drop --codec to encode with the codebook"
            )),
            "{msg}"
        );
        assert!(!io[1].1.exists(), "{codec}");
    }
    // The codebook's own codec is no mismatch.
    for codec in ["pq:m=2,nbits=4", "pq:nbits=4,m=2"] {
        vectro()
            .args(["compress", "-q", "--force", "--codec", codec, "--codebook"])
            .arg(&vcb)
            .arg("--in")
            .arg(&npy8)
            .arg(io[1].0)
            .arg(io[1].1)
            .assert()
            .success();
        std::fs::remove_file(io[1].1).unwrap();
    }
    assert!(!out.exists());
}
