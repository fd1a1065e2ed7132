//! Hostile environments: stdout and stderr on a full device, a closed stdout, a reader that
//! hangs up, `--threads` at its bounds, impossible sizes and gates. Each must end with the
//! documented exit code and a message, never a panic (exit 101) or a death by signal.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::helpers::*;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vectro")
}

fn dev_full() -> File {
    OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
}

/// A small dataset and its int8 container.
fn dataset(dir: &Path) -> (String, String) {
    let npy = dir.join("x.npy");
    write_npy(&npy, 3000, 32, &random_rows(3000, 32, 7));
    let vec = dir.join("x.vectro");
    let st = Command::new(bin())
        .args(["compress", "-q", "--in"])
        .arg(&npy)
        .arg("--out")
        .arg(&vec)
        .status()
        .unwrap();
    assert!(st.success());
    (
        npy.to_str().unwrap().to_owned(),
        vec.to_str().unwrap().to_owned(),
    )
}

fn no_panic(o: &Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    assert_ne!(o.status.code(), Some(101), "{what}: exit 101");
    assert!(
        o.status.code().is_some(),
        "{what}: killed by a signal: {:?}",
        o.status
    );
}

/// Every subcommand that prints to stdout, with stdout on a full device: exit 4 (I/O) and a
/// message naming stdout, never a panic.
#[test]
fn stdout_on_a_full_device_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let (npy, vec) = dataset(dir.path());
    let out = |n: &str| dir.path().join(n).to_str().unwrap().to_owned();
    let cases: Vec<Vec<String>> = vec![
        vec!["info".into(), vec.clone()],
        vec!["info".into(), "--quick".into(), vec.clone()],
        vec!["info".into(), "--json".into(), vec.clone()],
        vec!["verify".into(), vec.clone()],
        vec![
            "eval".into(),
            "--orig".into(),
            npy.clone(),
            "--comp".into(),
            vec.clone(),
        ],
        vec![
            "eval".into(),
            "--json".into(),
            "--orig".into(),
            npy.clone(),
            "--comp".into(),
            vec.clone(),
        ],
        vec!["get".into(), vec.clone(), "--rows".into(), "0..50".into()],
        vec![
            "export".into(),
            vec.clone(),
            "--format".into(),
            "jsonl".into(),
            "--out".into(),
            "-".into(),
        ],
        vec![
            "decompress".into(),
            "--in".into(),
            vec.clone(),
            "--out".into(),
            "-".into(),
        ],
        vec![
            "compress".into(),
            "--in".into(),
            npy.clone(),
            "--out".into(),
            "-".into(),
        ],
        vec![
            "compress".into(),
            "--in".into(),
            npy.clone(),
            "--out".into(),
            out("c.vectro"),
        ],
        vec![
            "bench".into(),
            "--in".into(),
            npy.clone(),
            "--codecs".into(),
            "int8".into(),
            "--runs".into(),
            "1".into(),
        ],
    ];
    for args in cases {
        let what = args.join(" ");
        let o = Command::new(bin())
            .args(&args)
            .stdout(dev_full())
            .output()
            .unwrap();
        no_panic(&o, &what);
        assert_eq!(
            o.status.code(),
            Some(4),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("stdout"),
            "{what}: the message names stdout: {err}"
        );
        assert!(
            err.contains("No space left"),
            "{what}: and the cause: {err}"
        );
    }
}

/// With stderr on a full device, an error still ends with its own exit code (3 for bad
/// input), not a panic.
#[test]
fn stderr_on_a_full_device_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("nan.npy");
    let mut rows = random_rows(10, 4, 1);
    rows[9] = f32::NAN;
    write_npy(&bad, 10, 4, &rows);
    let o = Command::new(bin())
        .args(["compress", "--in"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("x.vectro"))
        .stderr(dev_full())
        .output()
        .unwrap();
    no_panic(&o, "compress nan 2>/dev/full");
    assert_eq!(o.status.code(), Some(3));
    assert!(!dir.path().join("x.vectro").exists());
}

/// `>&-`: Rust would turn a closed stdout into a sink; the rows must not vanish with exit 0.
#[test]
fn a_closed_stdout_is_refused_for_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_, vec) = dataset(dir.path());
    for cmd in [
        format!("\"$0\" decompress --in {vec} --out - >&-"),
        format!("\"$0\" get {vec} --rows 0..5 >&-"),
        format!("\"$0\" export {vec} --format jsonl --out - >&-"),
    ] {
        let o = Command::new("sh")
            .args(["-c", &cmd, bin()])
            .output()
            .unwrap();
        no_panic(&o, &cmd);
        assert_eq!(o.status.code(), Some(4), "{cmd}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("stdout is closed"),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // A deliberate `> /dev/null` is a place to write, not a closed stdout.
    let o = Command::new("sh")
        .args([
            "-c",
            &format!("\"$0\" decompress --in {vec} --out - > /dev/null"),
            bin(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
}

/// A reader that hangs up early (`| head`) ends the run with exit 0, as in ripgrep, so
/// `set -o pipefail` scripts do not fail.
#[test]
fn a_broken_pipe_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let (_, vec) = dataset(dir.path());
    for args in [
        vec!["export", &vec, "--format", "jsonl", "--out", "-"],
        vec!["get", &vec, "--rows", "0..3000"],
        vec!["decompress", "--in", &vec, "--out", "-"],
    ] {
        let mut child = Command::new(bin())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        no_panic(&o, &args.join(" "));
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// `--threads` takes 0 to 1024; beyond is a usage error (exit 2) before any work, in every
/// command that has it.
#[test]
fn threads_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (npy, vec) = dataset(dir.path());
    let out = dir.path().join("t.vectro");
    let ok = Command::new(bin())
        .args(["compress", "-q", "--threads", "1024", "--in", &npy, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for n in ["1025", "5000", "18446744073709551615"] {
        for args in [
            vec!["compress", "--in", &npy, "--out", "u.vectro"],
            vec!["decompress", "--in", &vec, "--out", "u.npy"],
            vec!["eval", "--orig", &npy, "--comp", &vec],
            vec!["export", &vec, "--format", "jsonl", "--out", "u.jsonl"],
            vec!["generate", "--rows", "10", "--dims", "4", "--out", "u.npy"],
            vec!["train", "--in", &npy, "--codec", "pq:m=4", "--out", "u.vcb"],
            vec!["bench", "--in", &npy],
        ] {
            let o = Command::new(bin())
                .current_dir(dir.path())
                .args(&args)
                .args(["--threads", n])
                .output()
                .unwrap();
            no_panic(&o, &format!("{args:?} --threads {n}"));
            assert_eq!(o.status.code(), Some(2), "{args:?} --threads {n}");
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("--threads"),
                "{args:?}: the message names the flag"
            );
        }
    }
    for name in ["u.vectro", "u.npy", "u.jsonl", "u.vcb"] {
        assert!(!dir.path().join(name).exists(), "{name} was written");
    }
}

/// Sizes no disk or memory could hold are usage errors, found before anything is written.
#[test]
fn impossible_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "4611686018427387904";
    for (args, needle) in [
        (
            vec!["generate", "--rows", huge, "--dims", "4", "--out", "g.npy"],
            "--rows",
        ),
        (
            vec!["generate", "--rows", "10", "--dims", huge, "--out", "g.npy"],
            "--dims",
        ),
        (
            vec![
                "generate",
                "--rows",
                "10",
                "--dims",
                "4",
                "--clusters",
                huge,
                "--out",
                "g.npy",
            ],
            "--clusters",
        ),
        (vec!["bench", "--rows", "100", "--dims", huge], "--dims"),
        (
            vec![
                "eval",
                "--orig",
                "a.npy",
                "--comp",
                "b.vectro",
                "--min-cosine",
                "nan",
            ],
            "--min-cosine",
        ),
        (
            vec![
                "compress",
                "--in",
                "a.npy",
                "--out",
                "b.vectro",
                "--codec",
                "auto",
                "--min-recall",
                "inf",
            ],
            "--min-recall",
        ),
    ] {
        let o = Command::new(bin())
            .current_dir(dir.path())
            .args(&args)
            .args(["-q"])
            .output()
            .unwrap();
        no_panic(&o, &args.join(" "));
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

/// bench caps k at the rows there are, as eval does, instead of failing.
#[test]
fn bench_caps_k_like_eval() {
    let dir = tempfile::tempdir().unwrap();
    let (npy, _) = dataset(dir.path());
    let o = Command::new(bin())
        .args([
            "bench",
            "--json",
            "--codecs",
            "int8",
            "--runs",
            "1",
            "--k",
            "18446744073709551615",
            "--in",
            &npy,
        ])
        .output()
        .unwrap();
    no_panic(&o, "bench --k huge");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["k"], 3000);
}

/// A mapped input cut short by another process while compress reads it (a log rotation, a
/// producer writing the same path again): a clear error naming the file, exit 4, nothing at
/// the final path, and the complete chunks kept for `--resume`. Without the guard this was
/// SIGBUS (exit 135, no message).
#[test]
fn an_input_truncated_while_compress_reads_it_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("t.npy");
    let (rows, dims) = (4000u64, 64u64);
    write_npy(
        &npy,
        rows,
        dims,
        &random_rows(rows as usize, dims as usize, 3),
    );
    let out = dir.path().join("t.vectro");
    let partial = dir.path().join(".t.vectro.partial");
    let child = Command::new(bin())
        .args([
            "compress",
            "-q",
            "--threads",
            "1",
            "--chunk-rows",
            "100",
            "--in",
        ])
        .arg(&npy)
        .arg("--out")
        .arg(&out)
        .env("VECTRO_TEST_SLOW_CHUNK_MS", "40")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once a few chunks are written, cut the input to its first 300 rows.
    while std::fs::metadata(&partial).map_or(0, |m| m.len()) < 3 * 100 * dims {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let header = std::fs::metadata(&npy).unwrap().len() - rows * dims * 4;
    OpenOptions::new()
        .write(true)
        .open(&npy)
        .unwrap()
        .set_len(header + 300 * dims * 4)
        .unwrap();
    let o = child.wait_with_output().unwrap();
    no_panic(&o, "compress of a truncated input");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(
        err.contains("t.npy") && err.contains("truncated while being read"),
        "{err}"
    );
    assert!(!out.exists(), "nothing at the final path");
    assert!(
        partial.exists(),
        "the complete chunks are kept for --resume"
    );
}

/// A container cut short under an open `Container`: reads past the cut are an error naming
/// the file, not SIGBUS, and never rows of zeros.
#[test]
fn a_container_truncated_under_a_reader_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, vec) = dataset(dir.path());
    let c = vectro::Container::open(&vec).unwrap();
    let mut row = vec![0f32; c.dims()];
    c.get(2999, &mut row).unwrap();
    let len = std::fs::metadata(&vec).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&vec)
        .unwrap()
        .set_len(len / 8)
        .unwrap();
    let mut all = vec![0f32; 3000 * c.dims()];
    let e = c.get_range(0..3000, &mut all).unwrap_err();
    assert_eq!(e.kind(), vectro::ErrorKind::Io, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("x.vectro") && msg.contains("truncated"),
        "{msg}"
    );
    // The reader goes on reporting the cut.
    assert!(c.check_unchanged().is_err());
}

/// A row wider than a chunk can hold is the input's fault (exit 3, naming the file), not a
/// `--chunk-rows` the user never passed.
#[test]
fn a_too_wide_input_is_bad_input_not_a_flag_error() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("wide.npy");
    let dims = (1u64 << 28) + 1;
    let header = vectro::npy::write_header(1, dims);
    std::fs::write(&npy, &header).unwrap();
    // Sparse: the data section reads as zeros and takes no disk.
    OpenOptions::new()
        .write(true)
        .open(&npy)
        .unwrap()
        .set_len(header.len() as u64 + dims * 4)
        .unwrap();
    let o = Command::new(bin())
        .args(["compress", "-q", "--in"])
        .arg(&npy)
        .arg("--out")
        .arg(dir.path().join("w.vectro"))
        .output()
        .unwrap();
    no_panic(&o, "compress of a too-wide input");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("wide.npy") && err.contains("wider than a chunk"),
        "{err}"
    );
    assert!(!err.contains("--chunk-rows"), "{err}");
}

/// A zstd container whose header dims were rewritten with the header crc recomputed (as a
/// buggy rewriting tool would): `verify` and `info` refuse it as every reader does, since
/// they share one parser of the layout.
#[test]
fn verify_checks_what_every_reader_checks() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("z.npy");
    write_npy(&npy, 2000, 64, &random_rows(2000, 64, 5));
    let good = dir.path().join("z.vectro");
    let st = Command::new(bin())
        .args(["compress", "-q", "--zstd", "3", "--in"])
        .arg(&npy)
        .arg("--out")
        .arg(&good)
        .status()
        .unwrap();
    assert!(st.success());
    let mut b = std::fs::read(&good).unwrap();
    let h = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
    b[24..28].copy_from_slice(&32u32.to_le_bytes());
    let crc = crc32c::crc32c(&b[..h - 4]);
    b[h - 4..h].copy_from_slice(&crc.to_le_bytes());
    let bad = dir.path().join("bad.vectro");
    std::fs::write(&bad, &b).unwrap();
    for args in [
        vec!["verify"],
        vec!["info"],
        vec!["info", "--quick"],
        vec!["get", "--rows", "0"],
    ] {
        let o = Command::new(bin()).args(&args).arg(&bad).output().unwrap();
        no_panic(&o, &format!("{args:?}"));
        assert_eq!(
            o.status.code(),
            Some(3),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = Command::new(bin())
        .args(["decompress", "--in"])
        .arg(&bad)
        .arg("--out")
        .arg(dir.path().join("d.npy"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
}

/// A float64 value past float32's range is named as such by every reader of an input, not
/// called "inf" (what it converts to) by some.
#[test]
fn a_float64_past_float32_is_named_the_same_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, dims) = (40usize, 4usize);
    let write = |name: &str, big: bool| {
        let header =
            format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {dims}), }}");
        let pad = 64 - (10 + header.len() + 1) % 64;
        let header = format!("{header}{}\n", " ".repeat(pad));
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend((header.len() as u16).to_le_bytes());
        b.extend(header.as_bytes());
        for (i, v) in random_rows(rows, dims, 5).iter().enumerate() {
            let v = if big && i == 6 * dims + 2 {
                1e300
            } else {
                *v as f64
            };
            b.extend(v.to_le_bytes());
        }
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let (ok, big) = (write("ok.npy", false), write("big.npy", true));
    let comp = dir.path().join("ok.vectro").to_str().unwrap().to_owned();
    let o = Command::new(bin())
        .args(["compress", "-q", "--in", &ok, "--out", &comp])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for args in [
        vec!["compress", "--in", &big, "--out", "x.vectro"],
        vec!["eval", "--orig", &big, "--comp", &comp],
        vec!["bench", "--in", &big, "--codecs", "int8", "--runs", "1"],
    ] {
        let o = Command::new(bin())
            .current_dir(dir.path())
            .args(&args)
            .arg("-q")
            .output()
            .unwrap();
        no_panic(&o, &args.join(" "));
        assert_eq!(o.status.code(), Some(3), "{args:?}");
        let err = stderr(&o);
        assert!(
            err.contains("row 6, column 2: 1e300 is beyond float32's range"),
            "{args:?}: {err}"
        );
    }
}

/// A control character in a name the user gave (a NUL cannot be in a path, but a tab, an
/// escape or \x01 can) is written escaped in the error message, never raw: a message must
/// not hide text or drive the terminal.
#[test]
fn control_characters_in_names_are_escaped_in_messages() {
    let dir = tempfile::tempdir().unwrap();
    let name = dir.path().join("a\tb\u{1}c\u{1b}[2J.npy");
    for args in [
        vec!["info".into(), name.clone().into_os_string()],
        vec![
            "compress".into(),
            "--in".into(),
            name.clone().into_os_string(),
            "--out".into(),
            dir.path().join("x.vectro").into_os_string(),
        ],
    ] {
        let o = vectro().args(&args).output().unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(
            !err.chars().any(|c| c.is_control() && c != '\n'),
            "raw control character in: {err:?}"
        );
        assert!(err.contains(r"a\tb\u{1}c\u{1b}[2J.npy"), "{err}");
    }
}

/// A container whose checksums all match but whose payload decodes to NaN (a faulty writer:
/// an f16 NaN, an int8 NaN scale, with and without rotation) is refused by every reader and
/// by `verify`, naming the row, exit 3; nothing is written at an output path.
#[test]
fn a_payload_that_decodes_to_nan_is_refused_everywhere() {
    use vectro::codec::PayloadStage;
    use vectro::format::{ContainerWriter, Header};
    let dir = tempfile::tempdir().unwrap();
    let (rows, dims, chunk_rows) = (300usize, 16usize, 128usize);
    let data = random_rows(rows, dims, 11);
    let npy = dir.path().join("x.npy");
    write_npy(&npy, rows as u64, dims as u64, &data);
    // (codec, the byte range to overwrite in chunk 1's payload, the bytes): row 128 + 5.
    type Patch = fn(usize, usize) -> (usize, Vec<u8>);
    let cases: [(&str, Patch); 3] = [
        ("f16", |_, d| ((5 * d + 3) * 2, vec![0x00, 0x7e])),
        ("int8", |n, d| {
            (n * d + 5 * 4, f32::NAN.to_le_bytes().to_vec())
        }),
        ("int8:rotate=1", |n, d| {
            (n * d + 5 * 4, f32::INFINITY.to_le_bytes().to_vec())
        }),
    ];
    for (spec, patch) in cases {
        let codec = vectro::codec::parse(spec, dims).unwrap();
        let header = Header {
            codec: codec.spec(),
            rows: rows as u64,
            dims: dims as u32,
            chunk_rows: chunk_rows as u32,
            source_dtype: vectro::npy::Dtype::F32Le,
            metadata: Default::default(),
            stage: PayloadStage::Plain,
            ids: Default::default(),
            payload: false,
            tiers: Vec::new(),
        };
        let mut w = ContainerWriter::new(Vec::new(), header).unwrap();
        for (i, block) in data.chunks(chunk_rows * dims).enumerate() {
            let n = block.len() / dims;
            let mut payload = vec![0u8; codec.encoded_len(n)];
            codec.encode(block, &mut payload).unwrap();
            if i == 1 {
                let (at, bytes) = patch(n, dims);
                payload[at..at + bytes.len()].copy_from_slice(&bytes);
            }
            w.write_chunk(n as u64, &payload).unwrap();
        }
        let file = dir
            .path()
            .join(format!("{}.vectro", spec.replace([':', '='], "_")));
        std::fs::write(&file, w.finish().unwrap()).unwrap();
        let f = file.to_str().unwrap();
        let out = dir.path().join("out.npy");
        let o_ = out.to_str().unwrap();
        for args in [
            vec!["verify", f],
            vec!["get", f, "--rows", "133"],
            vec!["get", f, "--rows", "100..200", "--out", o_],
            vec!["decompress", "--in", f, "--out", o_],
            vec!["export", f, "--format", "jsonl", "--out", o_],
            vec!["eval", "--orig", npy.to_str().unwrap(), "--comp", f],
        ] {
            let o = Command::new(bin()).args(&args).output().unwrap();
            no_panic(&o, &format!("{spec} {args:?}"));
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(3), "{spec} {args:?}: {err}");
            assert!(err.contains("row 133 decodes to"), "{spec} {args:?}: {err}");
            assert!(err.contains("checksum matches"), "{spec} {args:?}: {err}");
            assert!(!out.exists(), "{spec} {args:?}: wrote {o_}");
        }
        // Rows before the bad one still read: the check is per row, not per file.
        let o = Command::new(bin())
            .args(["get", f, "--rows", "0..128"])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{spec}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}
