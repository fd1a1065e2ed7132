//! `vectro get`, `vectro export` and `vectro import-npz` as a user runs them.

use std::path::{Path, PathBuf};

use crate::helpers::{assert_bits_eq, compress, make_npy, read_npy_f32, vectro};
use vectro::Container;

fn setup(dir: &Path) -> (PathBuf, Vec<f32>) {
    let npy = make_npy(dir, "x.npy", 300, 6, 8);
    let file = dir.join("x.vectro");
    compress(&npy, &file, "int8", 40, 2);
    let c = Container::open(&file).unwrap();
    let mut all = vec![0f32; 300 * 6];
    c.get_range(0..300, &mut all).unwrap();
    (file, all)
}

fn rows_of(all: &[f32], ids: &[u64]) -> Vec<f32> {
    ids.iter()
        .flat_map(|&i| all[i as usize * 6..(i as usize + 1) * 6].to_vec())
        .collect()
}

const IDS: [u64; 16] = [
    5, 17, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 299, 7, 8, 5,
];
const SPEC: &str = "5,17,100..110,299,7..=8,5";

#[derive(serde::Deserialize)]
struct Point {
    id: u64,
    vector: Vec<f32>,
}

#[test]
fn get_prints_json_csv_and_npy_equal_to_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let (file, all) = setup(dir.path());
    let want = rows_of(&all, &IDS);

    let out = vectro()
        .args(["get"])
        .arg(&file)
        .args(["--rows", SPEC])
        .output()
        .unwrap();
    assert!(out.status.success());
    let pts: Vec<Point> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pts.iter().map(|p| p.id).collect::<Vec<_>>(), IDS);
    let got: Vec<f32> = pts.into_iter().flat_map(|p| p.vector).collect();
    assert_bits_eq(&got, &want, "json");

    let out = vectro()
        .args(["get"])
        .arg(&file)
        .args(["--rows", SPEC, "--format", "csv"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next().unwrap(), "id,d0,d1,d2,d3,d4,d5");
    let mut got = Vec::new();
    for (line, &id) in lines.zip(&IDS) {
        let mut f = line.split(',');
        assert_eq!(f.next().unwrap().parse::<u64>().unwrap(), id);
        got.extend(f.map(|x| x.parse::<f32>().unwrap()));
    }
    assert_bits_eq(&got, &want, "csv");

    let npy = dir.path().join("rows.npy");
    vectro()
        .args(["get"])
        .arg(&file)
        .args(["--rows", SPEC, "--format", "npy", "--out"])
        .arg(&npy)
        .assert()
        .success();
    let (r, d, got) = read_npy_f32(&npy);
    assert_eq!((r, d), (16, 6));
    assert_bits_eq(&got, &want, "npy");
    // --out never clobbers without --force.
    vectro()
        .args(["get"])
        .arg(&file)
        .args(["--rows", "1", "--format", "npy", "--out"])
        .arg(&npy)
        .assert()
        .code(2);
    vectro()
        .args(["get"])
        .arg(&file)
        .args(["--rows", "1", "--format", "npy", "--force", "--out"])
        .arg(&npy)
        .assert()
        .success();
    assert_eq!(read_npy_f32(&npy).0, 1);
}

#[test]
fn get_refuses_bad_rows_with_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = setup(dir.path());
    for (spec, want) in [
        ("300", "row 300 is out of range"),
        ("290..301", "out of range"),
        ("4,x", "'x'"),
        ("9..3", "reversed"),
    ] {
        let out = vectro()
            .args(["get"])
            .arg(&file)
            .args(["--rows", spec])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{spec}: {err}");
        assert!(out.stdout.is_empty(), "{spec}: printed rows before failing");
    }
    let out = vectro()
        .args(["get", "missing.vectro", "--rows", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn export_jsonl_round_trips_and_npz_import_export_work_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (file, all) = setup(dir.path());
    let jsonl = dir.path().join("points.jsonl");
    vectro()
        .args(["export"])
        .arg(&file)
        .args([
            "--format",
            "jsonl",
            "--id-offset",
            "42",
            "--threads",
            "2",
            "--quiet",
            "--out",
        ])
        .arg(&jsonl)
        .assert()
        .success();
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let mut got = Vec::new();
    for (r, line) in text.lines().enumerate() {
        let p: Point = serde_json::from_str(line).unwrap();
        assert_eq!(p.id, 42 + r as u64);
        got.extend(p.vector);
    }
    assert_bits_eq(&got, &all, "jsonl");

    let npz = dir.path().join("c.npz");
    vectro()
        .args(["export"])
        .arg(&file)
        .args(["--format", "npz", "--out"])
        .arg(&npz)
        .assert()
        .success();
    let back = dir.path().join("back.vectro");
    let out = vectro()
        .args(["import-npz"])
        .arg(&npz)
        .args(["--json", "--out"])
        .arg(&back)
        .output()
        .unwrap();
    assert!(out.status.success());
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (s["rows"].as_u64(), s["dims"].as_u64()),
        (Some(300), Some(6))
    );
    let c = Container::open(&back).unwrap();
    let mut again = vec![0f32; 300 * 6];
    c.get_range(0..300, &mut again).unwrap();
    assert_bits_eq(&again, &all, "npz round trip");

    let out = vectro()
        .args(["import-npz"])
        .arg(&jsonl)
        .args(["--out"])
        .arg(dir.path().join("bad.vectro"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a readable .npz"));
}

#[test]
fn export_jsonl_streams_to_stdout_with_a_dash() {
    let dir = tempfile::tempdir().unwrap();
    let (file, all) = setup(dir.path());
    let out = vectro()
        .args(["export"])
        .arg(&file)
        .args(["--format", "jsonl", "--out", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut got = Vec::new();
    for (r, line) in String::from_utf8(out.stdout).unwrap().lines().enumerate() {
        let p: Point = serde_json::from_str(line).unwrap();
        assert_eq!(p.id, r as u64);
        got.extend(p.vector);
    }
    assert_bits_eq(&got, &all, "jsonl on stdout");
    let out = vectro()
        .args(["export"])
        .arg(&file)
        .args(["--format", "npz", "--out", "-"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn get_output_is_exact_across_decode_batches() {
    // 1000 dims: a few hundred rows a decode batch, so these 900 rows span several, and
    // a repeat of an early row comes after its chunk's pages were released.
    let dir = tempfile::tempdir().unwrap();
    let (rows, dims) = (700usize, 1000usize);
    let npy = make_npy(dir.path(), "w.npy", rows as u64, dims as u64, 3);
    let file = dir.path().join("w.vectro");
    compress(&npy, &file, "int8", 40, 2);
    let c = Container::open(&file).unwrap();
    let mut all = vec![0f32; rows * dims];
    c.get_range(0..rows as u64, &mut all).unwrap();
    let ids: Vec<u64> = (0..700).chain([3]).chain(500..699).collect();
    let spec = "0..700,3,500..=698";
    let row = |id: u64| &all[id as usize * dims..(id as usize + 1) * dims];

    let mut json = b"[\n".to_vec();
    let mut csv = format!(
        "id,{}\n",
        (0..dims)
            .map(|k| format!("d{k}"))
            .collect::<Vec<_>>()
            .join(",")
    )
    .into_bytes();
    let mut npy_bytes = vectro::npy::write_header(ids.len() as u64, dims as u64);
    for (k, &id) in ids.iter().enumerate() {
        vectro::stream::push_jsonl_row(&mut json, id, row(id)).unwrap();
        if k + 1 < ids.len() {
            json.insert(json.len() - 1, b',');
        }
        csv.extend_from_slice(id.to_string().as_bytes());
        for &x in row(id) {
            csv.push(b',');
            vectro::stream::push_f32(&mut csv, x);
        }
        csv.push(b'\n');
        npy_bytes.extend(row(id).iter().flat_map(|x| x.to_le_bytes()));
    }
    json.extend_from_slice(b"]\n");
    for (format, want) in [("json", json), ("csv", csv), ("npy", npy_bytes)] {
        let out = dir.path().join(format!("got.{format}"));
        vectro()
            .arg("get")
            .arg(&file)
            .args(["--rows", spec, "--format", format, "--out"])
            .arg(&out)
            .assert()
            .success();
        assert!(std::fs::read(&out).unwrap() == want, "{format} differs");
    }
}
