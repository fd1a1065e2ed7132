//! The bad-input matrix: every bad input we know of, through the CLI, with its exit code
//! and message. `cargo test --test reliability_matrix -- --nocapture` prints the table the
//! README shows.

use std::path::Path;

use crate::helpers::*;
use byteorder::{ByteOrder, LittleEndian as LE};
use vectro::format::TRAILER_LEN;
use vectro::fuzzing::fix_checksums;

struct Row {
    what: &'static str,
    args: Vec<String>,
    code: i32,
    needle: &'static str,
}

/// A FIFO named `special` in `dir`, as a path string.
fn special_output(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let path = dir.join("special");
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    path.display().to_string()
}

/// Whether `path` is still the FIFO [`special_output`] made.
fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo())
}

fn npy_bytes(header_dict: &str, major: u8, data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    let dict = format!("{header_dict}\n");
    if major == 1 {
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn put(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn compress_rows(dir: &Path, out: &str) -> Vec<Row> {
    let d = dir;
    let ok = vec![0.5f32; 8];
    let dict = |shape: &str, descr: &str, fortran: &str| {
        format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
    };
    let mut nan = ok.clone();
    nan[5] = f32::NAN;
    let mut inf = ok.clone();
    inf[2] = f32::NEG_INFINITY;
    let good = put(
        d,
        "good.npy",
        &npy_bytes(&dict("(2, 4)", "<f4", "False"), 1, &f32s(&ok)),
    );
    let mut huge_len = npy_bytes(&dict("(2, 4)", "<f4", "False"), 2, &f32s(&ok));
    huge_len[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::create_dir_all(d.join("dir.npy")).unwrap();
    std::fs::create_dir_all(d.join("outdir")).unwrap();
    std::fs::write(d.join("exists.vectro"), b"x").unwrap();
    let c = |what, input: String, code, needle| Row {
        what,
        args: vec!["compress".into(), input, out.into()],
        code,
        needle,
    };
    // Two rows of data and a third appended: every command reading a .npy refuses it.
    let mut appended = ok.clone();
    appended.extend_from_slice(&[0.25; 4]);
    let long = put(
        d,
        "long.npy",
        &npy_bytes(&dict("(2, 4)", "<f4", "False"), 1, &f32s(&appended)),
    );
    let mut rows = vec![
        c(
            "input does not exist",
            d.join("missing.npy").display().to_string(),
            4,
            "No such file",
        ),
        c(
            "input is a directory with no .npy files",
            d.join("dir.npy").display().to_string(),
            2,
            "matches no .npy file",
        ),
        c("input is empty", put(d, "empty.npy", b""), 3, "empty file"),
        c(
            "input is not a .npy (text)",
            put(d, "text.npy", b"id,vector\n1,0.5\n"),
            3,
            "not a .npy file",
        ),
        c(
            "input is a .vectro container",
            put(d, "c.npy", b"VCTR\x01\x00\x00\x00"),
            3,
            "not a .npy file",
        ),
        c(
            ".npy version 4.0",
            put(
                d,
                "v4.npy",
                &npy_bytes(&dict("(2, 4)", "<f4", "False"), 4, &f32s(&ok)),
            ),
            3,
            "not supported",
        ),
        c(
            ".npy header length 4 GiB",
            put(d, "hl.npy", &huge_len),
            3,
            "exceeds",
        ),
        c(
            ".npy header cut short",
            put(
                d,
                "cut.npy",
                &npy_bytes(&dict("(2, 4)", "<f4", "False"), 1, b"")[..30],
            ),
            3,
            "truncated",
        ),
        c(
            ".npy header not a dict",
            put(
                d,
                "dict.npy",
                &npy_bytes("{'descr': '<f4', 'shape': (2, 4", 1, &f32s(&ok)),
            ),
            3,
            "malformed .npy header",
        ),
        c(
            "Fortran order",
            put(
                d,
                "f.npy",
                &npy_bytes(&dict("(2, 4)", "<f4", "True"), 1, &f32s(&ok)),
            ),
            3,
            "Fortran",
        ),
        c(
            "1-D array",
            put(
                d,
                "1d.npy",
                &npy_bytes(&dict("(8,)", "<f4", "False"), 1, &f32s(&ok)),
            ),
            3,
            "2-D",
        ),
        c(
            "3-D array",
            put(
                d,
                "3d.npy",
                &npy_bytes(&dict("(2, 2, 2)", "<f4", "False"), 1, &f32s(&ok)),
            ),
            3,
            "2-D",
        ),
        c(
            "zero rows",
            put(
                d,
                "0r.npy",
                &npy_bytes(&dict("(0, 4)", "<f4", "False"), 1, b""),
            ),
            3,
            "is empty",
        ),
        c(
            "integer dtype <i4",
            put(
                d,
                "i4.npy",
                &npy_bytes(&dict("(2, 4)", "<i4", "False"), 1, &f32s(&ok)),
            ),
            3,
            "<i4",
        ),
        c(
            "complex dtype <c8",
            put(
                d,
                "c8.npy",
                &npy_bytes(&dict("(1, 4)", "<c8", "False"), 1, &f32s(&ok)),
            ),
            3,
            "<c8",
        ),
        c(
            "data section truncated",
            put(
                d,
                "short.npy",
                &npy_bytes(&dict("(3, 4)", "<f4", "False"), 1, &f32s(&ok)),
            ),
            3,
            "data section is truncated",
        ),
        c(
            "shape overflows 64 bits",
            put(
                d,
                "ovf.npy",
                &npy_bytes(
                    &dict("(18446744073709551615, 4)", "<f4", "False"),
                    1,
                    &f32s(&ok),
                ),
            ),
            3,
            "too large",
        ),
        c(
            "NaN in the data",
            put(
                d,
                "nan.npy",
                &npy_bytes(&dict("(2, 4)", "<f4", "False"), 1, &f32s(&nan)),
            ),
            3,
            "row 1, column 1 is NaN",
        ),
        c(
            "float64 past float32's range",
            put(
                d,
                "f64big.npy",
                &npy_bytes(
                    &dict("(2, 4)", "<f8", "False"),
                    1,
                    &[1.0f64, 1.0, 1.0, 1.0, 1.0, 1.0, 1e300, 1.0]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect::<Vec<u8>>(),
                ),
            ),
            3,
            // It said "row 1, column 2 is inf (non-finite)", which the file does not hold.
            "row 1, column 2: 1e300 is beyond float32's range",
        ),
        c(
            "-Inf in the data",
            put(
                d,
                "inf.npy",
                &npy_bytes(&dict("(2, 4)", "<f4", "False"), 1, &f32s(&inf)),
            ),
            3,
            "row 0, column 2 is -inf",
        ),
    ];
    let flag = |what, extra: &[&str], code, needle| {
        let mut args = s(&["compress", "--in", &good, "--out", out]);
        args.extend(extra.iter().map(|x| x.to_string()));
        Row {
            what,
            args,
            code,
            needle,
        }
    };
    rows.extend([
        flag("--chunk-rows 0", &["--chunk-rows", "0"], 2, "at least 1"),
        flag("unknown --codec", &["--codec", "int3"], 2, "int8"),
        flag("unknown flag", &["--frobnicate"], 2, "unexpected argument"),
        Row {
            what: "output exists, no --force",
            args: s(&[
                "compress",
                "--in",
                &good,
                "--out",
                &d.join("exists.vectro").display().to_string(),
            ]),
            code: 2,
            needle: "pass --force",
        },
        Row {
            what: "output is a directory",
            args: s(&[
                "compress",
                "--in",
                &good,
                "--out",
                &d.join("outdir").display().to_string(),
                "--force",
            ]),
            code: 2,
            needle: "is a directory",
        },
        Row {
            what: "output directory missing",
            args: s(&[
                "compress",
                "--in",
                &good,
                "--out",
                &d.join("no/such/dir/x.vectro").display().to_string(),
            ]),
            code: 4,
            needle: "No such file",
        },
    ]);
    let comp = d.join("c.vectro").display().to_string();
    // A FIFO stands for /dev/null and other special files: a rename into place replaced
    // them (`--out /dev/null --force` as root left a regular file there).
    let fifo = special_output(d);
    let special = |args: &[&str]| Row {
        what: "output is a device or FIFO (such as /dev/null)",
        args: s(args),
        code: 2,
        needle: "not a regular file",
    };
    rows.extend([
        special(&["compress", "--in", &good, "--out", &fifo, "--force"]),
        special(&["decompress", "--in", &comp, "--out", &fifo, "--force"]),
        special(&[
            "export", &comp, "--format", "jsonl", "--out", &fifo, "--force",
        ]),
        special(&[
            "train", "--in", &good, "--codec", "pq:m=2", "--out", &fifo, "--force",
        ]),
    ]);
    // A directory input: the second part is the long one.
    let parts = d.join("parts").display().to_string();
    std::fs::create_dir_all(&parts).unwrap();
    std::fs::copy(&good, d.join("parts/a.npy")).unwrap();
    std::fs::copy(&long, d.join("parts/b.npy")).unwrap();
    let longer = |args: &[&str]| Row {
        what: "data section longer than the shape",
        args: s(args),
        code: 3,
        needle: "longer than its shape says",
    };
    rows.extend([
        longer(&["compress", "--in", &long, "--out", out]),
        longer(&["eval", "--orig", &long, "--comp", &comp]),
        longer(&["train", "--in", &long, "--codec", "pq:m=2", "--out", out]),
        longer(&["bench", "--in", &long, "--runs", "1"]),
        longer(&["compress", "--in", &parts, "--out", out]),
    ]);
    rows
}

fn container_rows(dir: &Path, good: &[u8]) -> Vec<Row> {
    let d = dir;
    let n = good.len();
    let t = n - TRAILER_LEN;
    let flip = |at: usize| {
        let mut b = good.to_vec();
        b[at] ^= 0x20;
        b
    };
    let crafted = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.to_vec();
        edit(&mut b);
        fix_checksums(&mut b);
        b
    };
    let first_chunk_payload = 200; // inside chunk 0 of the 3-chunk test file
    let index_byte = t - 8;
    let cases: Vec<(&'static str, Vec<u8>, &'static str)> = vec![
        ("empty file", vec![], "empty file"),
        (
            "a .npy given as container",
            npy_bytes(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }",
                1,
                &[0; 4],
            ),
            "bad magic",
        ),
        (
            "truncated (writer killed)",
            good[..n / 2].to_vec(),
            "incomplete container",
        ),
        (
            "flipped byte in the header",
            flip(20),
            "header checksum mismatch",
        ),
        (
            "flipped byte in a chunk",
            flip(first_chunk_payload),
            "fails its crc32c check",
        ),
        (
            "flipped byte in the index",
            flip(index_byte),
            "index checksum mismatch",
        ),
        (
            "flipped byte in the trailer",
            flip(t + 3),
            "trailer checksum mismatch",
        ),
        (
            "wrong magic",
            {
                let mut b = good.to_vec();
                b[0] = b'X';
                b
            },
            "bad magic",
        ),
        (
            "future format version 2.0",
            crafted(&|b| LE::write_u16(&mut b[4..6], 2)),
            "newer vectro",
        ),
        (
            "unknown codec id",
            crafted(&|b| LE::write_u16(&mut b[12..14], 77)),
            "unknown codec id 77",
        ),
        (
            "index offset outside the file",
            crafted(&|b| LE::write_u64(&mut b[t..t + 8], 1 << 40)),
            "does not fit the file",
        ),
        (
            "absurd dims (2^32-1)",
            crafted(&|b| LE::write_u32(&mut b[24..28], u32::MAX)),
            "exceed",
        ),
        (
            "absurd row count (2^64-1)",
            crafted(&|b| LE::write_u64(&mut b[16..24], u64::MAX)),
            "trailer says",
        ),
        (
            "absurd header length",
            crafted(&|b| LE::write_u32(&mut b[8..12], u32::MAX)),
            "out of range",
        ),
    ];
    let orig = d.join("in.npy").display().to_string();
    let mut rows = Vec::new();
    for (i, (what, bytes, needle)) in cases.into_iter().enumerate() {
        let p = put(d, &format!("bad{i}.vectro"), &bytes);
        rows.push(Row {
            what,
            args: s(&["info", &p]),
            code: 3,
            needle,
        });
        let out = d.join(format!("bad{i}.npy")).display().to_string();
        rows.push(Row {
            what,
            args: s(&["decompress", "--in", &p, "--out", &out]),
            code: 3,
            needle,
        });
        rows.push(Row {
            what,
            args: s(&["eval", "--orig", &orig, "--comp", &p, "-q"]),
            code: 3,
            needle,
        });
        rows.push(Row {
            what,
            args: s(&["verify", &p]),
            code: 3,
            needle: "",
        });
    }
    let comp = d.join("c.vectro").display().to_string();
    for (what, flag, value, code, needle) in [
        ("eval --k 0", "--k", "0", 2, "at least 1"),
        ("eval --k 2^64-1", "--k", "18446744073709551615", 0, ""),
        (
            "eval --sample-queries 0 (quality only, no recall)",
            "--sample-queries",
            "0",
            0,
            "",
        ),
    ] {
        rows.push(Row {
            what,
            args: s(&["eval", "--orig", &orig, "--comp", &comp, "-q", flag, value]),
            code,
            needle,
        });
    }
    rows.push(Row {
        what: "container does not exist",
        args: s(&["verify", &d.join("none.vectro").display().to_string()]),
        code: 4,
        needle: "No such file",
    });
    rows.push(Row {
        what: "eval against another .npy",
        args: s(&[
            "eval",
            "--orig",
            &d.join("good.npy").display().to_string(),
            "--comp",
            &d.join("c.vectro").display().to_string(),
            "-q",
        ]),
        code: 3,
        needle: "",
    });
    rows
}

#[test]
fn bad_input_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = npy(d, "in.npy", 10, 4);
    let good = std::fs::read(container(d, &input, "c.vectro", 4)).unwrap();
    let out = d.join("out.vectro").display().to_string();
    let mut rows = compress_rows(d, &out);
    rows.extend(container_rows(d, &good));
    let dir_text = format!("{}/", d.display());
    // One table row per bad input; the commands that were tried for it are listed.
    let mut table: Vec<(&str, Vec<String>, i32, String)> = Vec::new();
    for r in &rows {
        let args: Vec<&str> = r.args.iter().map(String::as_str).collect();
        let o = run(&args);
        let err = stderr(&o);
        assert_eq!(
            o.status.code(),
            Some(r.code),
            "{}: {:?}: {err}",
            r.what,
            r.args
        );
        assert!(
            err.contains(r.needle),
            "{}: expected {:?} in {err}",
            r.what,
            r.needle
        );
        assert!(!err.contains("panicked"), "{}: {err}", r.what);
        assert!(!Path::new(&out).exists(), "{}: output written", r.what);
        assert!(
            is_fifo(&d.join("special")),
            "{}: the FIFO was replaced",
            r.what
        );
        let cmd = format!("vectro {}", r.args.join(" ")).replace(&dir_text, "");
        let line = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .replace(&dir_text, "")
            .replace('|', "\\|");
        match table.last_mut() {
            Some(t) if t.0 == r.what && t.2 == r.code => t.1.push(r.args[0].clone()),
            _ => table.push((r.what, vec![cmd], r.code, line)),
        }
    }
    println!("| bad input | command | exit | what the user sees (first line of stderr) |");
    println!("|---|---|---|---|");
    for (what, cmds, code, line) in table {
        let also = if cmds.len() > 1 {
            format!(" (also {})", cmds[1..].join(", "))
        } else {
            String::new()
        };
        println!("| {what} | `{}`{also} | {code} | {line} |", cmds[0]);
    }
}
