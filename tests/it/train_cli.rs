//! `vectro train` and trained `compress` (pq, opq, binary-itq): bad samples, cancels,
//! outputs refused before training, and many-file inputs.

use std::path::Path;
use std::time::Duration;

use crate::helpers::{random_rows, vectro, write_npy};

/// A 600 × 64 sample whose row 7 holds `big` in column 3.
fn with_huge_row(dir: &Path, big: f32) -> std::path::PathBuf {
    let (rows, dims) = (600, 64);
    let mut x = random_rows(rows, dims, 3);
    x[7 * dims + 3] = big;
    let p = dir.join("huge.npy");
    write_npy(&p, rows as u64, dims as u64, &x);
    p
}

#[test]
fn a_huge_value_is_refused_before_training_naming_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    for big in [1e30f32, 3.4e38] {
        let npy = with_huge_row(dir.path(), big);
        for codec in ["pq:m=8,nbits=4", "opq:m=8,nbits=4", "binary-itq"] {
            let out = dir.path().join("x.vectro");
            // Without the bound, opq and binary-itq spun in the SVD for minutes.
            let o = vectro()
                .timeout(Duration::from_secs(120))
                .args(["compress", "-q", "--no-fsync", "--codec", codec, "--in"])
                .arg(&npy)
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(3), "{codec} {big}: {err}");
            assert!(
                err.contains("huge.npy")
                    && err.contains("row 7, column 3")
                    && err.contains("too large to train on")
                    && err.contains("normalise"),
                "{codec} {big}: {err}"
            );
            assert!(!out.exists(), "{codec}: an output was left");
        }
    }
}

/// Runs `args` and returns (exit code, stderr).
fn run(args: &[&str], paths: &[(&str, &Path)]) -> (Option<i32>, String) {
    let mut c = vectro();
    c.timeout(Duration::from_secs(120)).args(args);
    for (flag, p) in paths {
        c.arg(flag).arg(p);
    }
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn an_existing_or_unwritable_output_fails_before_training() {
    let dir = tempfile::tempdir().unwrap();
    // Training on this input fails (a value too large) and notes its small sample: an
    // output error that comes first proves the output was checked before training.
    let npy = with_huge_row(dir.path(), 1e30);
    let exists = dir.path().join("exists.out");
    std::fs::write(&exists, b"keep me").unwrap();
    let missing_dir = dir.path().join("no-such-dir/x.out");
    for codec in ["pq:m=8,nbits=4", "opq:m=8,nbits=4", "binary-itq"] {
        let mut cases = vec![(["compress", "--codec", codec, "--no-fsync"], "compress")];
        if codec != "binary-itq" {
            cases.push((["train", "--codec", codec, "--train-rows"], "train"));
        }
        for (args, cmd) in cases {
            let args: Vec<&str> = if cmd == "train" {
                vec![args[0], args[1], args[2], args[3], "100000"]
            } else {
                args.to_vec()
            };
            let (code, err) = run(&args, &[("--in", &npy), ("--out", &exists)]);
            assert_eq!(code, Some(2), "{cmd} {codec}: {err}");
            assert!(
                err.contains("exists.out: output already exists; pass --force"),
                "{cmd} {codec}: {err}"
            );
            assert!(
                !err.contains("training on") && !err.contains("too large"),
                "{cmd} {codec} trained first: {err}"
            );
            assert_eq!(std::fs::read(&exists).unwrap(), b"keep me");
            let (code, err) = run(&args, &[("--in", &npy), ("--out", &missing_dir)]);
            assert_eq!(code, Some(4), "{cmd} {codec}: {err}");
            assert!(
                err.contains("no-such-dir") && !err.contains("training on"),
                "{cmd} {codec}: {err}"
            );
        }
    }
    // Nothing was left beside the outputs: no temporary or empty partial file.
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["exists.out", "huge.npy"]);
}

#[test]
fn a_failed_training_leaves_no_partial_output() {
    // The output now exists before training: a training that fails must not leave an
    // empty `.partial` behind (which would invite a pointless --resume).
    let dir = tempfile::tempdir().unwrap();
    let npy = with_huge_row(dir.path(), 1e30);
    let out = dir.path().join("x.vectro");
    let (code, err) = run(
        &["compress", "--codec", "opq:m=8,nbits=4", "--no-fsync"],
        &[("--in", &npy), ("--out", &out)],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(!err.contains("--resume"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

/// Trains `codec` on `input` and returns the codebook's bytes.
fn train(input: &Path, out: &Path, codec: &str) -> Vec<u8> {
    let (code, err) = run(
        &["train", "-q", "--codec", codec, "--train-rows", "200"],
        &[("--in", input), ("--out", out)],
    );
    assert_eq!(code, Some(0), "{}: {err}", input.display());
    std::fs::read(out).unwrap()
}

#[test]
fn training_on_shards_equals_training_on_their_concatenation() {
    let dir = tempfile::tempdir().unwrap();
    let dims = 16;
    let x = random_rows(300, dims, 11);
    let shards = dir.path().join("dump");
    std::fs::create_dir(&shards).unwrap();
    // Natural order: part-2 comes before part-10, whatever the byte order says.
    write_npy(
        &shards.join("part-2.npy"),
        120,
        dims as u64,
        &x[..120 * dims],
    );
    write_npy(
        &shards.join("part-10.npy"),
        180,
        dims as u64,
        &x[120 * dims..],
    );
    let whole = dir.path().join("whole.npy");
    write_npy(&whole, 300, dims as u64, &x);
    let glob = shards.join("part-*.npy");
    for codec in ["pq:m=4,nbits=4", "opq:m=4,nbits=4"] {
        // 200 of 300 rows: the seeded sample must pick the same global rows.
        let one = train(&whole, &dir.path().join("one.vcb"), codec);
        let from_dir = train(&shards, &dir.path().join("dir.vcb"), codec);
        let from_glob = train(&glob, &dir.path().join("glob.vcb"), codec);
        assert!(one == from_dir, "{codec}: directory codebook differs");
        assert!(one == from_glob, "{codec}: glob codebook differs");
        // A different order of the same rows gives another codebook: the test can tell.
        let mut swapped = x[120 * dims..].to_vec();
        swapped.extend_from_slice(&x[..120 * dims]);
        let other = dir.path().join("swapped.npy");
        write_npy(&other, 300, dims as u64, &swapped);
        assert!(
            one != train(&other, &dir.path().join("other.vcb"), codec),
            "{codec}"
        );
        for f in ["one.vcb", "dir.vcb", "glob.vcb", "other.vcb"] {
            std::fs::remove_file(dir.path().join(f)).unwrap();
        }
    }
}

/// Runs `vectro info [--json] path` and returns its stdout.
fn info(path: &Path, json: bool) -> String {
    let mut c = vectro();
    c.arg("info").arg(path);
    if json {
        c.arg("--json");
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "info {}: {err}", path.display());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn info_reads_a_codebook_file() {
    let dir = tempfile::tempdir().unwrap();
    let dims = 16;
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 300, dims as u64, &random_rows(300, dims, 5));
    for (codec, rotated) in [("pq:m=4,nbits=4", false), ("opq:m=8,nbits=4", true)] {
        let vcb = dir.path().join("book.vcb");
        let _ = std::fs::remove_file(&vcb);
        let o = vectro()
            .args(["train", "--json", "--codec", codec, "--train-rows", "200"])
            .arg("--in")
            .arg(&npy)
            .arg("--out")
            .arg(&vcb)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{codec}");
        let trained: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

        let v: serde_json::Value = serde_json::from_str(&info(&vcb, true)).unwrap();
        assert_eq!(v["kind"], "codebook", "{v}");
        assert_eq!(v["codec"], trained["codec"], "{v}");
        // The default anisotropic encoding is part of the codec's name.
        assert_eq!(v["codec"], format!("{codec},aniso=2"), "{v}");
        assert_eq!(v["dims"], dims);
        assert_eq!(v["m"], if rotated { 8 } else { 4 });
        assert_eq!(v["nbits"], 4);
        assert_eq!(v["rotation"], rotated);
        assert_eq!(v["train_rows"], 200);
        assert_eq!(v["train_rows"], trained["train_rows"]);
        assert_eq!(v["kmeans_iterations"], trained["kmeans_iterations"]);
        assert_eq!(v["opq_iterations"], trained["opq_iterations"]);
        assert_eq!(v["distortion"], trained["distortion"]);
        assert_eq!(v["fingerprint"], trained["fingerprint"]);
        assert_eq!(v["file_bytes"], trained["bytes"]);

        // The text shows what a container encoded with it shows of its codec.
        let out = dir.path().join("x.vectro");
        let _ = std::fs::remove_file(&out);
        let (code, err) = run(
            &["compress", "-q", "--no-fsync"],
            &[("--in", &npy), ("--codebook", &vcb), ("--out", &out)],
        );
        assert_eq!(code, Some(0), "{err}");
        let text = info(&vcb, false);
        assert!(text.contains("vectro codebook (.vcb)"), "{text}");
        assert!(text.contains(&format!("codec:         {codec}")), "{text}");
        let container = info(&out, false);
        let facts = [
            "codebook:",
            "train rows:",
            "k-means iterations:",
            "train distortion:",
        ];
        for key in facts {
            let line = |t: &str| t.lines().find(|l| l.starts_with(key)).map(str::to_owned);
            assert!(line(&text).is_some(), "{key} in {text}");
            assert_eq!(line(&text), line(&container), "{key}");
        }

        // A damaged codebook is refused, naming the file.
        let mut bytes = std::fs::read(&vcb).unwrap();
        bytes[60] ^= 1;
        let bad = dir.path().join("bad.vcb");
        std::fs::write(&bad, &bytes).unwrap();
        let o = vectro().arg("info").arg(&bad).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(3), "{err}");
        assert!(
            err.contains("bad.vcb") && err.contains("checksum mismatch"),
            "{err}"
        );
    }
}

#[test]
fn unit_length_rows_decode_to_unit_length() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, dims) = (400, 16);
    let mut x = random_rows(rows, dims, 9);
    for r in x.chunks_mut(dims) {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        r.iter_mut().for_each(|v| *v /= n);
    }
    let npy = dir.path().join("unit.npy");
    write_npy(&npy, rows as u64, dims as u64, &x);
    let out = dir.path().join("unit.vectro");
    let back = dir.path().join("back.npy");
    let (code, err) = run(
        &["compress", "-q", "--no-fsync", "--codec", "pq:m=4,nbits=4"],
        &[("--in", &npy), ("--out", &out)],
    );
    assert_eq!(code, Some(0), "{err}");
    let text = info(&out, false);
    // Detected from the sample; the anisotropic default steps aside (aniso=1).
    assert!(text.contains("pq:m=4,nbits=4,unit=1"), "{text}");
    assert!(text.contains("scaled to unit length"), "{text}");
    assert!(text.contains("nearest centroid (aniso=1)"), "{text}");
    let (code, err) = run(
        &["decompress", "-q", "--no-fsync"],
        &[("--in", &out), ("--out", &back)],
    );
    assert_eq!(code, Some(0), "{err}");
    let (shape, y) = crate::helpers::read_npy::<f32>(&back);
    assert_eq!(shape, [rows as u64, dims as u64]);
    for r in y.chunks(dims) {
        let len = r.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
        assert!((len - 1.0).abs() < 1e-5, "{len}");
    }

    // Rows of other lengths through that codebook would come back at length 1: refused,
    // by file and row, and nothing is written.
    let vcb = dir.path().join("unit.vcb");
    let (code, err) = run(
        &["train", "-q", "--codec", "pq:m=4,nbits=4"],
        &[("--in", &npy), ("--out", &vcb)],
    );
    assert_eq!(code, Some(0), "{err}");
    let mut raw = x.clone();
    raw[7 * dims..8 * dims].iter_mut().for_each(|v| *v *= 3.0);
    let rawp = dir.path().join("raw.npy");
    write_npy(&rawp, rows as u64, dims as u64, &raw);
    let out2 = dir.path().join("raw.vectro");
    let (code, err) = run(
        &["compress", "-q", "--no-fsync"],
        &[("--in", &rawp), ("--codebook", &vcb), ("--out", &out2)],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("raw.npy") && err.contains("row 7") && err.contains("length is 3.0000"),
        "{err}"
    );
    assert!(err.contains("normalise the rows"), "{err}");
    assert!(!out2.exists());
}

#[test]
fn a_binary_itq_codebook_gives_the_bytes_of_training_in_runs_shards_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let dims = 16;
    write_npy(&p("x.npy"), 600, dims as u64, &random_rows(600, dims, 8));
    let npy = p("x.npy");
    let vcb = p("itq.vcb");
    let o = vectro()
        .args([
            "train",
            "--json",
            "--codec",
            "binary-itq",
            "--train-rows",
            "200",
        ])
        .arg("--in")
        .arg(&npy)
        .arg("--out")
        .arg(&vcb)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let trained: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(trained["codec"], "binary-itq", "{trained}");
    assert_eq!(trained["train_rows"], 200, "{trained}");
    assert_eq!(trained["itq_iterations"], 50, "{trained}");
    let bytes = std::fs::read(&vcb).unwrap();
    assert_eq!((&bytes[0..4], bytes[6], bytes[8]), (&b"VCBK"[..], 3, 18));

    let v: serde_json::Value = serde_json::from_str(&info(&vcb, true)).unwrap();
    assert_eq!(v["kind"], "codebook", "{v}");
    assert_eq!(v["format_version"], "1.3", "{v}");
    assert_eq!(v["dims"], dims, "{v}");
    assert_eq!(v["fingerprint"], trained["fingerprint"], "{v}");
    assert_eq!(v["recipe"], "binary-itq;train_rows=200", "{v}");

    let compress = |out: &Path, extra: &[&str]| {
        let mut args = vec!["compress", "-q", "--no-fsync", "--chunk-rows", "100"];
        args.extend_from_slice(extra);
        let (code, err) = run(&args, &[("--in", &npy), ("--out", out)]);
        assert_eq!(code, Some(0), "{extra:?}: {err}");
        std::fs::read(out).unwrap_or_default()
    };
    let direct = compress(
        &p("direct.vectro"),
        &["--codec", "binary-itq", "--train-rows", "200"],
    );
    let vcb_s = vcb.to_str().unwrap();
    // The header (metadata `train` included) and every chunk are the training run's.
    assert!(direct == compress(&p("frozen.vectro"), &["--codebook", vcb_s]));
    assert!(
        direct
            == compress(
                &p("named.vectro"),
                &["--codebook", vcb_s, "--codec", "binary-itq"]
            )
    );
    // Shards encoded with the codebook merge into the single run's file.
    let parts = p("parts");
    let pattern = parts.join("part-{shard}.vectro");
    for k in ["0/3", "1/3", "2/3"] {
        compress(&pattern, &["--codebook", vcb_s, "--shard", k]);
    }
    let merged = p("merged.vectro");
    vectro()
        .arg("merge")
        .arg(&parts)
        .arg("--out")
        .arg(&merged)
        .args(["-q", "--no-fsync"])
        .assert()
        .success();
    assert!(
        std::fs::read(&merged).unwrap() == direct,
        "merged shards differ"
    );
    // A --resume or retried --shard of a finished output keeps it: the same header.
    let frozen_out = p("frozen.vectro");
    let before = std::fs::metadata(&frozen_out).unwrap().modified().unwrap();
    compress(&frozen_out, &["--codebook", vcb_s, "--resume"]);
    assert_eq!(
        std::fs::metadata(&frozen_out).unwrap().modified().unwrap(),
        before
    );
    let shard0 = parts.join("part-0.vectro");
    let before = std::fs::metadata(&shard0).unwrap().modified().unwrap();
    compress(&pattern, &["--codebook", vcb_s, "--shard", "0/3"]);
    assert_eq!(
        std::fs::metadata(&shard0).unwrap().modified().unwrap(),
        before
    );

    // Data of another dimension is bad input naming the codebook (exit 3).
    write_npy(&p("y.npy"), 300, 8, &random_rows(300, 8, 1));
    let (code, err) = run(
        &["compress", "-q"],
        &[
            ("--in", &p("y.npy")),
            ("--codebook", &vcb),
            ("--out", &p("y.vectro")),
        ],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("itq.vcb") && err.contains("16-dimensional"),
        "{err}"
    );
    // A damaged one is refused, naming the file.
    let mut bad = bytes.clone();
    bad[40] ^= 1;
    std::fs::write(p("bad.vcb"), &bad).unwrap();
    let (code, err) = run(
        &["compress", "-q"],
        &[
            ("--in", &npy),
            ("--codebook", &p("bad.vcb")),
            ("--out", &p("z.vectro")),
        ],
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("bad.vcb") && err.contains("checksum mismatch"),
        "{err}"
    );
}

/// `bench --codebook` measures frozen codebooks of each trained kind beside the codecs,
/// training nothing: each row is named by the codebook's codec and file, has no training
/// time, and measures the bytes the codec writes.
#[test]
fn bench_measures_frozen_codebooks_of_each_kind() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    let (rows, dims) = (600, 32);
    write_npy(
        &npy,
        rows,
        dims,
        &random_rows(rows as usize, dims as usize, 5),
    );
    let mut books = Vec::new();
    for (codec, file) in [
        ("pq:m=4,nbits=4", "pq.vcb"),
        ("opq:m=8,nbits=4", "opq.vcb"),
        ("binary-itq", "itq.vcb"),
    ] {
        let vcb = dir.path().join(file);
        train(&npy, &vcb, codec);
        books.push(vcb);
    }
    let mut c = vectro();
    c.args(["bench", "--json", "--runs", "1", "--codecs", "int8", "--in"])
        .arg(&npy);
    for b in &books {
        c.arg("--codebook").arg(b);
    }
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let table = r["codecs"].as_array().unwrap();
    assert_eq!(table.len(), 4, "{r}");
    for (row, (kind, bytes)) in
        table[1..]
            .iter()
            .zip([("pq:m=4", 2.0), ("opq:m=8", 4.0), ("binary-itq", 8.0)])
    {
        let name = row["codec"].as_str().unwrap();
        assert!(name.starts_with(kind) && name.contains(".vcb"), "{row}");
        assert!(row["train_seconds"].is_null(), "{row}");
        assert_eq!(row["bytes_per_vector"].as_f64().unwrap(), bytes, "{row}");
        assert!(row["cosine_mean"].as_f64().unwrap() > 0.2, "{row}");
    }
    // A codebook of another dimension is refused before anything is measured.
    let other = dir.path().join("other.npy");
    write_npy(&other, 600, 16, &random_rows(600, 16, 6));
    let o = vectro()
        .args(["bench", "-q", "--runs", "1", "--codecs", "int8", "--in"])
        .arg(&other)
        .arg("--codebook")
        .arg(&books[0])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("pq.vcb"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
