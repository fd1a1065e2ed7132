//! The command line as a user drives it: round trips, determinism, info, and bad inputs.

use std::path::{Path, PathBuf};

use crate::helpers::{assert_fails, bits, random_rows, read_npy, run, stderr, vectro, write_npy};
use predicates::str::contains;

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn npy(&self, name: &str, rows: usize, dims: usize, seed: u64) -> (PathBuf, Vec<f32>) {
        let p = self.path(name);
        let data = random_rows(rows, dims, seed);
        write_npy(&p, rows as u64, dims as u64, &data);
        (p, data)
    }

    fn raw(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn compress(input: &Path, out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    vectro()
        .args(["compress", "--quiet", "--in"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .assert()
}

fn decompress(input: &Path, out: &Path) -> Vec<f32> {
    vectro()
        .args(["decompress", "--quiet", "--in"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .assert()
        .success();
    read_npy::<f32>(out).1
}

#[test]
fn round_trip_is_within_half_a_step_per_element() {
    let t = Case::new();
    let (dims, rows) = (33, 301);
    let (npy, data) = t.npy("x.npy", rows, dims, 1);
    compress(&npy, &t.path("x.vectro"), &["--chunk-rows", "64"]).success();
    let back = decompress(&t.path("x.vectro"), &t.path("back.npy"));
    assert_eq!(back.len(), data.len());
    for (r, (orig, rec)) in data.chunks(dims).zip(back.chunks(dims)).enumerate() {
        let scale = orig.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
        for (a, b) in orig.iter().zip(rec) {
            assert!(
                (a - b).abs() <= scale / 2.0 * 1.000_001,
                "row {r}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn output_is_identical_for_any_thread_count_and_run() {
    let t = Case::new();
    let (npy, _) = t.npy("x.npy", 1000, 24, 2);
    let mut outputs = Vec::new();
    for (i, threads) in ["1", "2", "4", "4"].iter().enumerate() {
        let out = t.path(&format!("t{i}.vectro"));
        compress(&npy, &out, &["--threads", threads, "--chunk-rows", "37"]).success();
        outputs.push(std::fs::read(out).unwrap());
    }
    assert!(outputs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn decoded_output_is_identical_for_any_chunk_size() {
    let t = Case::new();
    let (npy, _) = t.npy("x.npy", 100, 10, 3);
    let mut decoded = Vec::new();
    for cr in ["1", "7", "4096"] {
        let c = t.path(&format!("c{cr}.vectro"));
        compress(&npy, &c, &["--chunk-rows", cr]).success();
        decoded.push(bits(&decompress(&c, &t.path(&format!("c{cr}.npy")))));
    }
    assert!(decoded.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn decompressed_npy_has_numpys_header() {
    let t = Case::new();
    let (npy, _) = t.npy("x.npy", 5, 3, 4);
    compress(&npy, &t.path("x.vectro"), &[]).success();
    decompress(&t.path("x.vectro"), &t.path("back.npy"));
    let bytes = std::fs::read(t.path("back.npy")).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + hlen) % 64, 0, "data is 64-byte aligned");
    let text = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    assert!(text.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 3), }"));
    assert!(text.ends_with('\n'));
    assert_eq!(bytes.len(), 10 + hlen + 5 * 3 * 4);
}

#[test]
fn info_reports_the_container() {
    let t = Case::new();
    let (npy, _) = t.npy("emb.npy", 50, 8, 5);
    compress(&npy, &t.path("x.vectro"), &["--chunk-rows", "16"]).success();
    vectro()
        .arg("info")
        .arg(t.path("x.vectro"))
        .assert()
        .success()
        .stdout(contains("int8"))
        .stdout(contains("50 rows x 8 dims"))
        .stdout(contains("4 of 16 rows"))
        .stdout(contains("emb.npy"));
    let out = vectro()
        .args(["info", "--json"])
        .arg(t.path("x.vectro"))
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["rows"], 50);
    assert_eq!(v["dims"], 8);
    assert_eq!(v["chunks"], 4);
    assert_eq!(v["codec"], "int8");
    assert_eq!(v["source_dtype"], "<f4");
    assert_eq!(v["metadata"]["source"], "emb.npy");
}

#[test]
fn compress_json_summary_is_complete() {
    let t = Case::new();
    let (npy, _) = t.npy("x.npy", 20, 4, 6);
    let out = vectro()
        .args(["compress", "--json", "--in"])
        .arg(&npy)
        .arg("--out")
        .arg(t.path("x.vectro"))
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    for key in [
        "rows",
        "dims",
        "input_bytes",
        "output_bytes",
        "ratio",
        "seconds",
        "mb_per_s",
    ] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["rows"], 20);
    assert_eq!(
        v["output_bytes"],
        std::fs::metadata(t.path("x.vectro")).unwrap().len()
    );
}

#[test]
fn existing_output_is_refused_without_force() {
    let t = Case::new();
    let (npy, _) = t.npy("x.npy", 4, 4, 7);
    let out = t.raw("x.vectro", b"precious");
    compress(&npy, &out, &[])
        .code(2)
        .stderr(contains("already exists"))
        .stderr(contains("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    compress(&npy, &out, &["--force"]).success();
    assert_ne!(std::fs::read(&out).unwrap(), b"precious");
}

fn npy_with(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    v.extend_from_slice(dict.as_bytes());
    v.extend_from_slice(data);
    v
}

/// Every bad input: the message names the file and the problem, exit code 3, no output.
#[test]
fn bad_inputs_are_refused_clearly_and_leave_nothing() {
    let t = Case::new();
    let f4 =
        |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let mut nan_row = random_rows(3, 4, 8);
    nan_row[2 * 4 + 1] = f32::NAN;
    let nan_bytes: Vec<u8> = nan_row.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut inf_bytes = nan_bytes.clone();
    inf_bytes[4..8].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    inf_bytes[2 * 16 + 4..2 * 16 + 8].copy_from_slice(&0f32.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "text.npy",
            b"hello, not an array".to_vec(),
            vec!["not a .npy file"],
        ),
        ("empty.npy", vec![], vec!["empty file"]),
        (
            "trunc_header.npy",
            npy_with(&f4("(3, 4)"), &[])[..30].to_vec(),
            vec!["truncated .npy header"],
        ),
        (
            "fortran.npy",
            npy_with(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }",
                &[0; 48],
            ),
            vec!["Fortran", "np.ascontiguousarray"],
        ),
        (
            "three_d.npy",
            npy_with(&f4("(2, 3, 4)"), &[0; 96]),
            vec!["not 2-D"],
        ),
        (
            "one_d.npy",
            npy_with(&f4("(12,)"), &[0; 48]),
            vec!["not 2-D"],
        ),
        (
            "ints.npy",
            npy_with(
                "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }",
                &[0; 48],
            ),
            vec!["'<i4' is not supported", "astype(np.float32)"],
        ),
        (
            "short.npy",
            npy_with(&f4("(3, 4)"), &[0; 40]),
            vec!["data section is truncated", "48 bytes", "has 40"],
        ),
        (
            "long.npy",
            npy_with(&f4("(3, 4)"), &[0; 52]),
            vec!["longer than its shape says", "48 bytes", "has 52"],
        ),
        ("zero_rows.npy", npy_with(&f4("(0, 4)"), &[]), vec!["empty"]),
        ("zero_dims.npy", npy_with(&f4("(3, 0)"), &[]), vec!["empty"]),
        (
            "nan.npy",
            npy_with(&f4("(3, 4)"), &nan_bytes),
            vec!["row 2, column 1", "NaN"],
        ),
        (
            "inf.npy",
            npy_with(&f4("(3, 4)"), &inf_bytes),
            vec!["row 0, column 1", "-inf"],
        ),
    ];
    for (name, bytes, wants) in cases {
        let input = t.raw(name, &bytes);
        let out = t.path(&format!("{name}.vectro"));
        let a = compress(&input, &out, &["--chunk-rows", "1"]).code(3);
        let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
        assert!(
            stderr.contains(name),
            "{name}: message must name the file: {stderr}"
        );
        for w in wants {
            assert!(stderr.contains(w), "{name}: want {w:?} in {stderr}");
        }
        assert!(!out.exists(), "{name}: output must not exist");
    }
    // Nothing but the inputs remains: no temporary files either.
    assert!(
        t.files().iter().all(|f| f.ends_with(".npy")),
        "{:?}",
        t.files()
    );
}

#[test]
fn missing_input_is_an_io_error_naming_it() {
    let t = Case::new();
    compress(&t.path("nope.npy"), &t.path("x.vectro"), &[])
        .code(4)
        .stderr(contains("nope.npy"));
}

#[test]
fn non_vectro_file_is_refused_by_info_and_decompress() {
    let t = Case::new();
    let junk = t.raw("junk.vectro", b"this is not a container at all, sorry");
    vectro()
        .arg("info")
        .arg(&junk)
        .assert()
        .code(3)
        .stderr(contains("junk.vectro"))
        .stderr(contains("not a vectro container"));
    vectro()
        .args(["decompress", "--in"])
        .arg(&junk)
        .arg("--out")
        .arg(t.path("o.npy"))
        .assert()
        .code(3);
    assert!(!t.path("o.npy").exists());
}

#[test]
fn generate_is_deterministic_and_valid() {
    let t = Case::new();
    for name in ["a.npy", "b.npy"] {
        vectro()
            .args([
                "generate", "--quiet", "--rows", "500", "--dims", "128", "--out",
            ])
            .arg(t.path(name))
            .assert()
            .success();
    }
    assert_eq!(
        std::fs::read(t.path("a.npy")).unwrap(),
        std::fs::read(t.path("b.npy")).unwrap()
    );
    let (shape, data) = read_npy::<f32>(&t.path("a.npy"));
    assert_eq!(shape, vec![500, 128]);
    assert!(data.iter().all(|x| x.is_finite()));
    // --json prints a summary on stdout (it printed text on stderr and nothing here).
    let a = vectro()
        .args(["generate", "--json", "--rows", "5", "--dims", "3", "--out"])
        .arg(t.path("c.npy"))
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!((v["rows"].as_u64(), v["dims"].as_u64()), (Some(5), Some(3)));
    let len = std::fs::metadata(t.path("c.npy")).unwrap().len();
    assert_eq!(v["output_bytes"].as_u64(), Some(len));
}

#[test]
fn demo_runs_end_to_end() {
    vectro()
        .args(["demo", "--rows", "2000", "--dims", "64"])
        .assert()
        .success()
        .stdout(contains("compressed 2000 rows x 64 dims"))
        .stdout(contains("recall@10"))
        .stdout(contains("random access"));
}

#[test]
fn demo_json_prints_one_json_object() {
    let o = vectro()
        .args(["demo", "--json", "--rows", "2000", "--dims", "64"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The whole of stdout is one object: no text lines before or after it.
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stdout));
    });
    assert_eq!(
        (v["rows"].as_u64(), v["dims"].as_u64()),
        (Some(2000), Some(64))
    );
    assert_eq!(v["compress"]["rows"], 2000);
    assert!(v["compress"]["ratio"].as_f64().unwrap() > 3.0, "{v}");
    assert!(v["eval"]["cosine_mean"].as_f64().unwrap() > 0.99, "{v}");
    assert!(
        v["eval"]["recall"].is_array() || v["eval"]["recall"].is_object(),
        "{v}"
    );
    assert_eq!(v["decompress"]["rows"], 2000);
    assert_eq!(v["random_access_row"], 1000);
    assert!(v["kept_in"].is_null());
    let codecs = v["bench"]["codecs"].as_array().unwrap();
    assert!(codecs.iter().any(|c| c["codec"] == "int8"), "{v}");
}

#[test]
fn a_container_without_its_trailer_is_reported_incomplete() {
    let t = Case::new();
    let (npy, _) = t.npy("x.npy", 100, 8, 9);
    compress(&npy, &t.path("x.vectro"), &["--chunk-rows", "10"]).success();
    let full = std::fs::read(t.path("x.vectro")).unwrap();
    // Each chunk is 36 + 10 * (8 + 4) + 4 = 160 bytes; cut inside chunk 3.
    let header_len = u32::from_le_bytes(full[8..12].try_into().unwrap()) as usize;
    let cut = t.raw("cut.vectro", &full[..header_len + 3 * 160 + 50]);
    vectro()
        .arg("info")
        .arg(&cut)
        .assert()
        .code(3)
        .stderr(contains("incomplete container"))
        .stderr(contains("3 complete chunks holding rows 0..30 of 100"));
    for len in [0, 5, header_len - 1, full.len() - 1] {
        let p = t.raw("short.vectro", &full[..len]);
        vectro().arg("info").arg(&p).assert().code(3);
    }
}

#[test]
fn an_io_error_is_one_line_without_a_repeated_cause() {
    // The message already ends with the OS error; a "caused by:" line repeated it.
    let a = vectro()
        .args([
            "decompress",
            "--in",
            "/nonexistent/x.vectro",
            "--out",
            "/nonexistent/x.npy",
        ])
        .assert()
        .code(4);
    let err = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("/nonexistent/x.vectro") && lines[0].contains("No such file"),
        "{err}"
    );
}

#[test]
fn every_command_accepts_quiet() {
    // Every subcommand lists -q/--quiet in its help (clap refuses what it does not list).
    let help = vectro().arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let commands: Vec<&str> = help
        .split("Commands:")
        .nth(1)
        .unwrap()
        .split("Options:")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        // help, completions and man print only what they are asked for: there is nothing
        // to quieten.
        .filter(|c| !["help", "completions", "man"].contains(c))
        .collect();
    assert!(commands.len() >= 13, "{commands:?}");
    for cmd in &commands {
        let o = vectro().args([cmd, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("-q, --quiet"), "{cmd} --help: {text}");
    }

    // -q is no output but errors: info and verify of a sound file print nothing (the exit
    // code tells), --json included; get still prints the rows asked for.
    let t = Case::new();
    let (npy, _) = t.npy("x.npy", 20, 4, 3);
    let c = t.path("x.vectro");
    compress(&npy, &c, &["--chunk-rows", "5"]).success();
    for (args, silent) in [
        (vec!["info"], true),
        (vec!["info", "--json"], true),
        (vec!["verify"], true),
        (vec!["verify", "--json"], true),
        (vec!["get", "--rows", "0..3,7"], false),
    ] {
        let plain = vectro().args(&args).arg(&c).output().unwrap();
        assert!(plain.status.success(), "{args:?}");
        assert!(!plain.stdout.is_empty(), "{args:?}");
        for q in ["-q", "--quiet"] {
            let o = vectro().args(&args).arg(q).arg(&c).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(0), "{args:?} {q}: {err}");
            if silent {
                assert!(o.stdout.is_empty(), "{args:?} {q}");
            } else {
                assert_eq!(o.stdout, plain.stdout, "{args:?} {q}");
            }
            assert!(err.is_empty(), "{args:?} {q}: {err}");
        }
    }

    // verify --quiet of a damaged file: the verdict and the first bad chunk only.
    let mut bytes = std::fs::read(&c).unwrap();
    let n = bytes.len();
    for at in [200, 260, n / 2] {
        bytes[at] ^= 1;
    }
    let bad = t.raw("bad.vectro", &bytes);
    let full = vectro().arg("verify").arg(&bad).output().unwrap();
    let quiet = vectro().args(["verify", "-q"]).arg(&bad).output().unwrap();
    assert_eq!(full.status.code(), Some(3));
    assert_eq!(quiet.status.code(), Some(3));
    let (full, quiet) = (
        String::from_utf8_lossy(&full.stderr),
        String::from_utf8_lossy(&quiet.stderr),
    );
    assert!(
        quiet.contains("CORRUPT") && quiet.contains("first bad chunk"),
        "{quiet}"
    );
    assert_eq!(quiet.lines().count(), 2, "{quiet}");
    assert!(full.lines().count() > 2, "{full}");
    assert!(full.starts_with(&*quiet), "{full}\n--\n{quiet}");
}

/// `completions` and `man` are generated from the clap definition: every subcommand and
/// flag appears; an unknown shell is a usage error.
#[test]
fn completions_and_man_page_cover_every_subcommand() {
    let sub = [
        "compress",
        "decompress",
        "info",
        "eval",
        "get",
        "export",
        "merge",
        "verify",
        "train",
        "search",
        "report",
        "serve",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        for s in sub {
            assert!(text.contains(s), "{shell}: no {s}");
        }
        assert!(text.contains("--codec"), "{shell}: no --codec");
    }
    let o = run(&["man"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let roff = String::from_utf8(o.stdout).unwrap();
    assert!(
        roff.starts_with(".ie") || roff.contains(".TH vectro"),
        "{roff}"
    );
    for s in sub {
        assert!(roff.contains(s), "man: no {s}");
    }
    assert_fails(&run(&["completions", "nosh"]), 2, &["nosh"]);
}

/// `verify A B C` checks every file even after a bad one; the exit code is the worst of
/// them; `--json` gives one report per file, in order.
#[test]
fn verify_takes_several_files() {
    let t = Case::new();
    let (npy, _) = t.npy("x.npy", 300, 8, 3);
    let good = t.path("good.vectro");
    compress(&npy, &good, &["--chunk-rows", "50"]).success();
    let mut bytes = std::fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let bad = t.path("bad.vectro");
    std::fs::write(&bad, bytes).unwrap();
    let missing = t.path("missing.vectro");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let o = run(&["verify", &s(&good), &s(&bad), &s(&good)]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.matches(": ok:").count(), 2, "{out}");
    assert!(stderr(&o).contains("bad.vectro: CORRUPT"), "{}", stderr(&o));
    let o = run(&["verify", "--json", &s(&bad), &s(&missing), &s(&good)]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let a = v.as_array().unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a[0]["ok"], false);
    assert_eq!(a[1]["error"]["exit_code"], 4);
    assert_eq!(a[1]["error"]["kind"], "io");
    assert!(
        a[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.vectro")
    );
    assert_eq!(a[2]["ok"], true);
    // One file: the report object as before, not an array.
    let o = run(&["verify", "--json", &s(&good)]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["ok"], true);
}
