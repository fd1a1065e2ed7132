//! Row ids end to end (format 1.4): `compress --ids` from a `.npy` of integers or strings
//! or a text file, through `--shard` and `merge` (byte-identical to a single run),
//! `--resume`, `get` (by row and `--ids`), `export`, `info` and `verify`; and the global row
//! numbers of a container without ids (a shard's rows from its first row).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use vectro::Container;
use vectro::format::{IdColumn, IdKind};

use crate::helpers::{assert_fails, make_npy, ok, read_npy_f32, run, vectro_std, write_npy};

/// A 1-D `.npy` of `descr` holding `data` (what `np.save` writes).
fn npy_1d(descr: &str, n: usize, data: &[u8]) -> Vec<u8> {
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({n},), }}");
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out
}

/// `np.save` of a uint64 array.
pub fn u64_npy(v: &[u64]) -> Vec<u8> {
    let data: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    npy_1d("<u8", v.len(), &data)
}

/// `np.save` of an array of str: fixed-width UTF-32, NUL-padded (`<U{width}`).
fn str_npy(v: &[String]) -> Vec<u8> {
    let width = v
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut data = Vec::new();
    for s in v {
        let mut c: Vec<u32> = s.chars().map(|c| c as u32).collect();
        c.resize(width, 0);
        data.extend(c.into_iter().flat_map(u32::to_le_bytes));
    }
    npy_1d(&format!("<U{width}"), v.len(), &data)
}

const ROWS: u64 = 1000;
const DIMS: u64 = 16;

fn string_ids(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| format!("doc-{i:05}-{}", "é\"\\,".repeat((i % 3) as usize)))
        .collect()
}

fn u64_ids(n: u64) -> Vec<u64> {
    (0..n).map(|i| (i * 7919) ^ 0xdead_beef_0000_0000).collect()
}

/// `vectro compress` of `input` to `out` with `extra` arguments (64 rows a chunk unless
/// they say otherwise).
fn compress(input: &Path, out: &Path, extra: &[&str]) -> String {
    let mut cmd = vectro_std();
    cmd.args(["compress", "-q", "--no-fsync"]);
    if !extra.contains(&"--chunk-rows") {
        cmd.args(["--chunk-rows", "64"]);
    }
    ok(cmd.arg("--in").arg(input).arg("--out").arg(out).args(extra))
}

/// The lines of a JSONL export: `(id, vector)`.
fn export(container: &Path) -> Vec<(serde_json::Value, Vec<f32>)> {
    let text = ok(vectro_std()
        .args(["export", "-q", "--format", "jsonl", "--out", "-"])
        .arg(container));
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let vec = v["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (v["id"].clone(), vec)
        })
        .collect()
}

fn ids_file(dir: &Path, kind: IdKind) -> PathBuf {
    match kind {
        IdKind::U64 => {
            let p = dir.join("ids.npy");
            fs::write(&p, u64_npy(&u64_ids(ROWS))).unwrap();
            p
        }
        _ => {
            let p = dir.join("ids_str.npy");
            fs::write(&p, str_npy(&string_ids(ROWS))).unwrap();
            p
        }
    }
}

fn json_ids(kind: IdKind) -> Vec<serde_json::Value> {
    match kind {
        IdKind::U64 => u64_ids(ROWS).into_iter().map(Into::into).collect(),
        _ => string_ids(ROWS).into_iter().map(Into::into).collect(),
    }
}

/// Shards → merge → export → re-import with the exported ids → export: every id arrives
/// exactly once with its vector; the merge is byte-identical to a single run.
#[test]
fn ids_survive_shard_merge_export_and_reimport() {
    for kind in [IdKind::U64, IdKind::Str] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let input = make_npy(d, "x.npy", ROWS, DIMS, 3);
        let ids = ids_file(d, kind);
        let ids_arg = ids.to_str().unwrap();
        let single = d.join("single.vectro");
        compress(&input, &single, &["--ids", ids_arg]);
        for k in 0..3 {
            let shard = format!("{k}/3");
            compress(
                &input,
                &d.join("parts/p-{shard}.vectro"),
                &["--ids", ids_arg, "--shard", &shard],
            );
        }
        // Each shard holds its own rows' ids.
        let want = json_ids(kind);
        let mut from_shards = Vec::new();
        for k in 0..3 {
            let part = d.join(format!("parts/p-{k}.vectro"));
            let c = Container::open(&part).unwrap();
            let first = c.first_row() as usize;
            let got: Vec<_> = export(&part).into_iter().map(|(id, _)| id).collect();
            assert_eq!(
                got[..],
                want[first..first + got.len()],
                "{kind:?} shard {k}"
            );
            from_shards.extend(got);
        }
        assert_eq!(from_shards, want, "{kind:?}: the shards' ids, in order");
        let merged = d.join("merged.vectro");
        ok(vectro_std()
            .args(["merge", "-q", "--no-fsync"])
            .arg(d.join("parts"))
            .arg("--out")
            .arg(&merged));
        assert!(
            fs::read(&merged).unwrap() == fs::read(&single).unwrap(),
            "{kind:?}: merge differs from a single run"
        );
        // Export, then compress what was exported with the exported ids.
        let first = export(&merged);
        assert_eq!(first.len() as u64, ROWS);
        let vectors: Vec<f32> = first.iter().flat_map(|(_, v)| v.clone()).collect();
        write_npy(&d.join("again.npy"), ROWS, DIMS, &vectors);
        let text: String = first
            .iter()
            .map(|(id, _)| match id {
                serde_json::Value::String(s) => format!("{s}\n"),
                other => format!("{other}\n"),
            })
            .collect();
        let again_ids = match kind {
            IdKind::U64 => {
                let v: Vec<u64> = first.iter().map(|(id, _)| id.as_u64().unwrap()).collect();
                let p = d.join("again_ids.npy");
                fs::write(&p, u64_npy(&v)).unwrap();
                p
            }
            _ => {
                let p = d.join("again_ids.txt");
                fs::write(&p, text).unwrap();
                p
            }
        };
        let again = d.join("again.vectro");
        compress(
            &d.join("again.npy"),
            &again,
            &["--ids", again_ids.to_str().unwrap(), "--chunk-rows", "100"],
        );
        let second = export(&again);
        let mut by_id: BTreeMap<String, Vec<f32>> = BTreeMap::new();
        for (id, v) in &second {
            assert!(
                by_id.insert(id.to_string(), v.clone()).is_none(),
                "{id} twice"
            );
        }
        assert_eq!(by_id.len() as u64, ROWS, "{kind:?}: every id once");
        for (id, v) in &first {
            let back = &by_id[&id.to_string()];
            let err = v
                .iter()
                .zip(back)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let max = v.iter().map(|a| a.abs()).fold(0f32, f32::max);
            assert!(
                err <= max / 127.0,
                "{kind:?} {id}: its vector moved by {err}"
            );
        }
    }
}

/// A container without ids numbers its rows in the whole input: each shard's export and
/// `get` use global row numbers, so per-shard exports never collide.
#[test]
fn shards_without_ids_report_global_row_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = make_npy(d, "x.npy", ROWS, DIMS, 5);
    for k in 0..3 {
        compress(
            &input,
            &d.join("p-{shard}.vectro"),
            &["--shard", &format!("{k}/3")],
        );
    }
    let mut all = Vec::new();
    let (_, _, x) = read_npy_f32(&input);
    for k in 0..3 {
        let part = d.join(format!("p-{k}.vectro"));
        let c = Container::open(&part).unwrap();
        let first = c.first_row();
        assert!(k == 0 || first > 0);
        let rows = export(&part);
        for (i, (id, _)) in rows.iter().enumerate() {
            assert_eq!(id.as_u64(), Some(first + i as u64), "shard {k} row {i}");
        }
        all.extend(rows.into_iter().map(|(id, _)| id.as_u64().unwrap()));
        assert_eq!(c.ids(0..2).unwrap(), IdColumn::U64(vec![first, first + 1]));
        // `get` takes global numbers: the shard's first row is its row 0.
        let got = ok(vectro_std()
            .args(["get", "--rows", &first.to_string()])
            .arg(&part));
        let v: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(v[0]["id"].as_u64(), Some(first));
        let want = &x[(first * DIMS) as usize..((first + 1) * DIMS) as usize];
        let row: Vec<f32> = v[0]["vector"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        let max = want.iter().map(|a| a.abs()).fold(0f32, f32::max);
        assert!(
            row.iter()
                .zip(want)
                .all(|(a, b)| (a - b).abs() <= max / 254.0 + 1e-6)
        );
        if k == 1 {
            let o = run(&["get", "--rows", "0", part.to_str().unwrap()]);
            let range = format!("holds rows {first}..{}", first + c.rows());
            assert_fails(&o, 2, &["row 0 is out of range", &range, "shard 1/3"]);
        }
        // `--id-offset` still shifts the numbers.
        let text = ok(vectro_std()
            .args([
                "export",
                "--format",
                "jsonl",
                "--out",
                "-",
                "--id-offset",
                "10",
            ])
            .arg(&part));
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["id"].as_u64(), Some(first + 10));
    }
    assert_eq!(
        all,
        (0..ROWS).collect::<Vec<_>>(),
        "every row once, in order"
    );
}

#[test]
fn get_looks_rows_up_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = make_npy(d, "x.npy", ROWS, DIMS, 7);
    let (s, u, n) = (d.join("s.vectro"), d.join("u.vectro"), d.join("n.vectro"));
    compress(
        &input,
        &s,
        &["--ids", ids_file(d, IdKind::Str).to_str().unwrap()],
    );
    compress(
        &input,
        &u,
        &["--ids", ids_file(d, IdKind::U64).to_str().unwrap()],
    );
    compress(&input, &n, &[]);
    let strs = string_ids(ROWS);
    let get = |c: &Path, args: &[&str]| -> serde_json::Value {
        serde_json::from_str(&ok(vectro_std().arg("get").arg(c).args(args))).unwrap()
    };
    // By id, in the order given; the same rows as by number. (An id holding a comma
    // cannot be asked for: the list is comma-separated.)
    let ask = format!("{},{},{}", strs[999], strs[3], strs[501]);
    let by_id = get(&s, &["--ids", &ask]);
    let by_row = get(&s, &["--rows", "999,3,501"]);
    assert_eq!(by_id, by_row);
    assert_eq!(by_id[1]["id"], strs[3].as_str());
    let nums = u64_ids(ROWS);
    let by_id = get(&u, &["--ids", &format!("{},{}", nums[10], nums[0])]);
    assert_eq!(by_id, get(&u, &["--rows", "10,0"]));
    assert_eq!(by_id[0]["id"].as_u64(), Some(nums[10]));
    // Without ids, an id is a row number.
    assert_eq!(get(&n, &["--ids", "5,6"]), get(&n, &["--rows", "5,6"]));
    // CSV quotes an id holding a comma or a quote.
    let csv = ok(vectro_std()
        .args(["get", "--format", "csv", "--rows", "1,2"])
        .arg(&s));
    let line = csv.lines().nth(2).unwrap();
    assert!(
        line.starts_with("\"doc-00002-é\"\"\\,é\"\"\\,\","),
        "{line}"
    );
    // Missing ids are named, exit 3; a non-integer for u64 ids is a usage error.
    let o = run(&[
        "get",
        s.to_str().unwrap(),
        "--ids",
        &format!("nope,{},zz", strs[3]),
    ]);
    assert_fails(&o, 3, &["2 of the ids asked for are not in", "nope, zz"]);
    let o = run(&["get", u.to_str().unwrap(), "--ids", "abc"]);
    assert_fails(&o, 2, &["'abc' is not an unsigned integer", "u64 ids"]);
    let o = run(&["get", n.to_str().unwrap(), "--ids", "1000"]);
    assert_fails(&o, 3, &["1 of the ids asked for is not in", "1000"]);
    let o = run(&["get", s.to_str().unwrap(), "--ids", "a,,b"]);
    assert_fails(&o, 2, &["item 2", "is empty"]);
}

/// Every bad id input is refused before anything is written, naming the file and row.
#[test]
fn bad_id_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = make_npy(d, "x.npy", 10, 4, 1);
    let long = format!("a\n{}\n", "x".repeat(4097));
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "short.txt",
            b"a\nb\n".to_vec(),
            &["short.txt holds 2 ids", "has 10 rows"],
        ),
        (
            "long.npy",
            u64_npy(&(0..11).collect::<Vec<_>>()),
            &["holds 11 ids", "has 10 rows"],
        ),
        (
            "empty_line.txt",
            b"a\n\nc\n".to_vec(),
            &["line 2 (row 1)", "is empty"],
        ),
        (
            "latin1.txt",
            b"a\nb\xe9\n".to_vec(),
            &["line 2 (row 1)", "not valid UTF-8"],
        ),
        (
            "long_id.txt",
            long.into_bytes(),
            &["line 2", "over the limit of 4096"],
        ),
        ("nothing.txt", Vec::new(), &["holds no ids"]),
        (
            "neg.npy",
            npy_1d(
                "<i8",
                2,
                &[1i64, -5]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<_>>(),
            ),
            &["row 1", "-5 is negative"],
        ),
        (
            "float.npy",
            npy_1d("<f8", 1, &[0; 8]),
            &["dtype '<f8' cannot hold ids"],
        ),
        (
            "empty_str.npy",
            str_npy(&["a".into(), String::new()]),
            &["row 1", "is empty"],
        ),
    ];
    for (name, bytes, needles) in cases {
        let ids = d.join(name);
        fs::write(&ids, bytes).unwrap();
        let out = d.join("out.vectro");
        let o = run(&[
            "compress",
            "--in",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--ids",
            ids.to_str().unwrap(),
        ]);
        assert_fails(&o, 3, needles);
        assert!(!out.exists(), "{name}: an output was left");
        assert!(
            fs::read_dir(d).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")),
            "{name}: a partial was left"
        );
    }
    // The ids file is not an output.
    let ids = d.join("ids.txt");
    fs::write(&ids, "a\n".repeat(10)).unwrap();
    let o = run(&[
        "compress",
        "--in",
        input.to_str().unwrap(),
        "--out",
        ids.to_str().unwrap(),
        "--ids",
        ids.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", crate::helpers::stderr(&o));
    // A container with ids refuses --id-offset (its ids are exported as they are).
    let c = d.join("c.vectro");
    compress(&input, &c, &["--ids", ids.to_str().unwrap()]);
    let o = run(&[
        "export",
        c.to_str().unwrap(),
        "--format",
        "jsonl",
        "--out",
        "-",
        "--id-offset",
        "3",
    ]);
    assert_fails(&o, 2, &["--id-offset applies to containers without ids"]);
}

/// The same ids give the same bytes for any thread count, and the same ids for any chunk
/// size; a resumed run equals an uninterrupted one.
#[test]
fn ids_are_deterministic_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = make_npy(d, "x.npy", ROWS, DIMS, 9);
    let ids = ids_file(d, IdKind::Str);
    let ids = ids.to_str().unwrap();
    let (a, b) = (d.join("a.vectro"), d.join("b.vectro"));
    compress(&input, &a, &["--ids", ids, "--threads", "1"]);
    compress(&input, &b, &["--ids", ids, "--threads", "4"]);
    assert!(
        fs::read(&a).unwrap() == fs::read(&b).unwrap(),
        "threads changed the bytes"
    );
    let want = IdColumn::Str(string_ids(ROWS));
    for chunk_rows in ["1", "7", "1000"] {
        let p = d.join(format!("c{chunk_rows}.vectro"));
        compress(
            &input,
            &p,
            &["--ids", ids, "--chunk-rows", chunk_rows, "--zstd", "1"],
        );
        let c = Container::open(&p).unwrap();
        assert_eq!(c.ids(0..ROWS).unwrap(), want, "chunk rows {chunk_rows}");
        assert_eq!(c.id_kind(), IdKind::Str);
    }
    // The streaming decompressor (a pipe) reads a container with ids as the map does.
    let mut streamed = Vec::new();
    vectro::stream::Decompressor::new()
        .decompress_npy(&fs::read(&a).unwrap()[..], &mut streamed)
        .unwrap();
    fs::write(d.join("streamed.npy"), &streamed).unwrap();
    let c = Container::open(&a).unwrap();
    let mut all = vec![0f32; (ROWS * DIMS) as usize];
    c.get_range(0..ROWS, &mut all).unwrap();
    assert_eq!(read_npy_f32(&d.join("streamed.npy")).2, all);
    // An interrupted run's partial (a prefix ending inside a chunk) is resumed.
    let full = fs::read(&a).unwrap();
    let r = d.join("r.vectro");
    fs::write(d.join(".r.vectro.partial"), &full[..full.len() / 2]).unwrap();
    let summary = ok(vectro_std()
        .args([
            "compress",
            "--json",
            "--no-fsync",
            "--chunk-rows",
            "64",
            "--resume",
            "--ids",
            ids,
        ])
        .arg("--in")
        .arg(&input)
        .arg("--out")
        .arg(&r));
    let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert!(s["resumed_rows"].as_u64().unwrap() > 0, "{summary}");
    assert!(fs::read(&r).unwrap() == full, "the resumed run differs");
}

/// `info` names the kind, `verify` checks the ids, and the minor version is 1.4 only for
/// files with ids; flipping an id's byte is caught.
#[test]
fn info_verify_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = make_npy(d, "x.npy", 200, 8, 2);
    let (s, n) = (d.join("s.vectro"), d.join("n.vectro"));
    let ids = d.join("ids.txt");
    fs::write(
        &ids,
        (0..200).map(|i| format!("id{i}\n")).collect::<String>(),
    )
    .unwrap();
    compress(&input, &s, &["--ids", ids.to_str().unwrap()]);
    compress(&input, &n, &[]);
    let minor = |p: &Path| {
        let b = fs::read(p).unwrap();
        (
            u16::from_le_bytes([b[6], b[7]]),
            u16::from_le_bytes([b[b.len() - 6], b[b.len() - 5]]),
        )
    };
    assert_eq!(minor(&s), (4, 4));
    assert_eq!(minor(&n), (3, 3));
    let info = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&ok(vectro_std().args(["info", "--json"]).arg(p))).unwrap()
    };
    assert_eq!(info(&s)["ids"], "string");
    assert_eq!(info(&n)["ids"], "none");
    assert_eq!(info(&s)["format_version"], "1.4");
    ok(vectro_std().arg("verify").arg(&s));
    // The last byte of chunk 0's ids (inside its payload): the crc catches it.
    let c = Container::open(&s).unwrap();
    let e = c.chunks()[0];
    drop(c);
    let mut b = fs::read(&s).unwrap();
    b[e.payload_range().end - 5] ^= 0x01;
    fs::write(&s, &b).unwrap();
    let o = run(&["verify", s.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", crate::helpers::stderr(&o));
    let o = run(&["get", s.to_str().unwrap(), "--rows", "3"]);
    assert_fails(&o, 3, &["chunk 0", "crc32c"]);
}

/// A 1.3 reader refuses a file with ids by name: it took the header's flags as the payload
/// stage's, which knows bit 0 alone, and said "unknown header flags" ("upgrade vectro").
/// This build's payload stage is that 1.3 rule, so it is checked on the flags the id files
/// carry.
#[test]
fn a_1_3_reader_refuses_ids_by_their_flag() {
    use vectro::codec::PayloadStage;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = make_npy(d, "x.npy", 50, 8, 2);
    for (ids, zstd) in [(IdKind::U64, false), (IdKind::Str, true)] {
        let text: String = match ids {
            IdKind::U64 => u64_ids(50).iter().map(|v| format!("{v}\n")).collect(),
            _ => string_ids(50).iter().map(|v| format!("{v}\n")).collect(),
        };
        let ids_path = match ids {
            IdKind::U64 => {
                let p = d.join("u50.npy");
                fs::write(&p, u64_npy(&u64_ids(50))).unwrap();
                p
            }
            _ => {
                let p = d.join("s50.txt");
                fs::write(&p, text).unwrap();
                p
            }
        };
        let out = d.join(format!("{ids:?}.vectro"));
        let mut args = vec!["--ids", ids_path.to_str().unwrap()];
        if zstd {
            args.extend(["--zstd", "1"]);
        }
        compress(&input, &out, &args);
        let b = fs::read(&out).unwrap();
        let flags = u16::from_le_bytes([b[14], b[15]]);
        assert_ne!(flags & 0b110, 0, "{ids:?}: an id flag");
        assert_eq!(
            PayloadStage::from_flags(flags),
            None,
            "{ids:?}: 1.3 refuses {flags:#x}"
        );
        let stage = if zstd {
            PayloadStage::Zstd
        } else {
            PayloadStage::Plain
        };
        assert_eq!(PayloadStage::from_flags(flags & 1), Some(stage));
    }
}

/// Shards compressed with and without ids are not one compress: merge says so.
#[test]
fn merge_refuses_shards_that_differ_in_ids() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = make_npy(d, "x.npy", ROWS, DIMS, 4);
    let ids = ids_file(d, IdKind::Str);
    compress(
        &input,
        &d.join("p/0.vectro"),
        &["--shard", "0/2", "--ids", ids.to_str().unwrap()],
    );
    compress(&input, &d.join("p/1.vectro"), &["--shard", "1/2"]);
    let o = run(&[
        "merge",
        d.join("p").to_str().unwrap(),
        "--out",
        d.join("m.vectro").to_str().unwrap(),
    ]);
    assert_fails(
        &o,
        3,
        &["differ in ids (string ids, none ids", "same --ids"],
    );
    assert!(!d.join("m.vectro").exists());
}
