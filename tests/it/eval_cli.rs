//! `vectro eval` and `vectro bench` from the command line: gates and their exit codes,
//! bad inputs and their messages, the JSON shapes.

use std::path::{Path, PathBuf};

use crate::helpers::{vectro, write_npy};

const GATE: i32 = 1;
const USAGE: i32 = 2;
const BAD_INPUT: i32 = 3;

/// Writes deterministic, not too regular data: row i, column j.
fn write_salted(path: &Path, rows: usize, dims: usize, salt: u32) {
    let data: Vec<f32> = (0..rows * dims)
        .map(|k| {
            let (i, j) = (k / dims, k % dims);
            let x = ((i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(j as u32 * 40_503 + salt))
                % 1000;
            x as f32 / 500.0 - 1.0
        })
        .collect();
    write_npy(path, rows as u64, dims as u64, &data);
}

struct Files {
    dir: tempfile::TempDir,
    npy: PathBuf,
    vectro: PathBuf,
}

fn files(rows: usize, dims: usize) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    let out = dir.path().join("x.vectro");
    write_salted(&npy, rows, dims, 0);
    vectro()
        .args(["compress", "-q", "--no-fsync", "--chunk-rows", "50", "--in"])
        .arg(&npy)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    Files {
        dir,
        npy,
        vectro: out,
    }
}

fn eval(f: &Files, extra: &[&str]) -> assert_cmd::assert::Assert {
    vectro()
        .arg("eval")
        .arg(&f.npy)
        .arg(&f.vectro)
        .args(extra)
        .assert()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

#[test]
fn json_report_has_the_documented_fields() {
    let f = files(200, 16);
    let a = eval(&f, &["--json", "--k", "1,10", "--sample-queries", "20"]).success();
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    for key in [
        "rows",
        "dims",
        "input_bytes",
        "container_bytes",
        "ratio",
        "bits_per_dim",
        "cosine_mean",
        "cosine_min",
        "cosine_p1",
        "cosine_p5",
        "cosine_median",
        "mse",
        "nmse",
        "max_abs_error",
        "metric",
        "queries",
        "query_source",
        "rerank",
        "recall",
        "seconds",
        "gates",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["rows"], 200);
    assert_eq!(v["metric"], "cos");
    assert_eq!(v["queries"], 20);
    assert_eq!(v["recall"][1]["k"], 10);
    assert!(v["recall"][1]["rescored"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["gates"].as_array().unwrap().len(), 0);
}

#[test]
fn gates_pass_or_exit_1_naming_the_metric() {
    let f = files(200, 16);
    eval(
        &f,
        &[
            "--min-cosine",
            "0.9",
            "--min-recall",
            "0",
            "--max-nmse",
            "1",
        ],
    )
    .code(0);

    let a = eval(&f, &["--min-cosine", "0.99999999"]).code(GATE);
    let e = stderr(&a);
    assert!(
        e.contains("quality gate failed: cosine_mean") && e.contains("--min-cosine"),
        "{e}"
    );

    let a = eval(&f, &["--k", "5", "--min-recall", "1.01"]).code(GATE);
    let e = stderr(&a);
    assert!(e.contains("recall@5") && e.contains("--min-recall"), "{e}");

    let a = eval(&f, &["--max-nmse", "0", "--min-cosine", "0"]).code(GATE);
    let e = stderr(&a);
    assert!(e.contains("nmse") && !e.contains("cosine_mean"), "{e}");

    let a = eval(&f, &["--json", "--max-nmse", "0"]).code(GATE);
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(v["gates"][0]["metric"], "nmse");
    assert_eq!(v["gates"][0]["passed"], false);
}

#[test]
fn mismatched_files_are_refused_clearly() {
    let f = files(100, 16);
    let other_dims = f.dir.path().join("d.npy");
    write_salted(&other_dims, 100, 8, 0);
    let a = vectro()
        .args(["eval", "--orig"])
        .arg(&other_dims)
        .arg("--comp")
        .arg(&f.vectro)
        .assert()
        .code(BAD_INPUT);
    let e = stderr(&a);
    assert!(
        e.contains("dims differ") && e.contains("(100, 8)") && e.contains("(100, 16)"),
        "{e}"
    );

    let other_rows = f.dir.path().join("r.npy");
    write_salted(&other_rows, 90, 16, 0);
    let a = vectro()
        .args(["eval", "--orig"])
        .arg(&other_rows)
        .arg("--comp")
        .arg(&f.vectro)
        .assert()
        .code(BAD_INPUT);
    let e = stderr(&a);
    assert!(e.contains("rows differ") && e.contains("(90, 16)"), "{e}");

    let a = vectro()
        .args(["eval", "--orig"])
        .arg(&f.npy)
        .arg("--comp")
        .arg(&f.npy)
        .assert()
        .code(BAD_INPUT);
    let e = stderr(&a);
    assert!(
        e.contains("not a vectro container") && e.contains("x.npy"),
        "{e}"
    );
}

#[test]
fn queries_with_other_dims_are_refused() {
    let f = files(100, 16);
    let q = f.dir.path().join("q.npy");
    write_salted(&q, 5, 12, 3);
    let a = eval(&f, &["--queries", q.to_str().unwrap()]).code(BAD_INPUT);
    let e = stderr(&a);
    assert!(
        e.contains("q.npy") && e.contains("queries have 12 dims but the data has 16"),
        "{e}"
    );

    write_salted(&q, 5, 16, 3);
    let a = eval(&f, &["--json", "--queries", q.to_str().unwrap()]).success();
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(
        (v["queries"].as_u64(), v["query_source"].as_str()),
        (Some(5), Some("file"))
    );

    let a = eval(
        &f,
        &["--queries", q.to_str().unwrap(), "--sample-queries", "3"],
    )
    .code(USAGE);
    assert!(stderr(&a).contains("cannot be used with"), "{}", stderr(&a));
}

#[test]
fn bad_options_are_usage_errors() {
    let f = files(60, 8);
    let a = eval(&f, &["--k", "0"]).code(USAGE);
    assert!(stderr(&a).contains("--k must list"), "{}", stderr(&a));
    let a = eval(&f, &["--metric", "dot"]).code(USAGE);
    assert!(stderr(&a).contains("ip, cos or l2"), "{}", stderr(&a));
    let a = eval(&f, &["--sample-queries", "0", "--min-recall", "0.5"]).code(USAGE);
    assert!(
        stderr(&a).contains("--min-recall needs queries"),
        "{}",
        stderr(&a)
    );
    let a = eval(&f, &["--sample-queries", "0", "--json"]).success();
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(
        (v["queries"].as_u64(), v["recall"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
}

#[test]
fn bench_reports_one_row_per_codec() {
    let a = vectro()
        .args([
            "bench",
            "--json",
            "--rows",
            "300",
            "--dims",
            "16",
            "--queries",
            "20",
            "--runs",
            "2",
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    assert_eq!(
        (v["rows"].as_u64(), v["dims"].as_u64(), v["k"].as_u64()),
        (Some(300), Some(16), Some(10))
    );
    // The old `--queries N` is still the query count, with a note naming the new flag.
    assert_eq!(v["queries"].as_u64(), Some(20));
    assert!(stderr(&a).contains("--query-count 20"), "{}", stderr(&a));
    let rows = v["codecs"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["codec"].as_str().unwrap()).collect();
    for name in vectro::codec::NAMES {
        assert!(
            names.contains(&name),
            "bench compares every codec by default: {names:?}"
        );
    }
    let r = &rows[0];
    assert_eq!(r["codec"], "int8");
    // int8: 16 one-byte codes and a 4-byte scale per vector.
    assert_eq!(r["bytes_per_vector"].as_f64(), Some(20.0));
    assert_eq!(r["ratio"].as_f64(), Some(3.2));
    for key in ["compress_mb_s", "decompress_mb_s"] {
        assert!(r[key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(r["cosine_mean"].as_f64().unwrap() > 0.999);
    let (rec, res) = (
        r["recall"].as_f64().unwrap(),
        r["rescored_recall"].as_f64().unwrap(),
    );
    assert!((0.5..=1.0).contains(&rec) && rec <= res, "{rec} {res}");
}

#[test]
fn bench_trains_pq_opq_and_binary_itq_on_its_data_and_reports_training_apart() {
    let a = vectro()
        .args([
            "bench", "--json", "--rows", "600", "--dims", "16", "--runs", "1",
        ])
        .args([
            "--query-count",
            "20",
            "--codecs",
            "int8,pq:m=4,opq:m=4,binary-itq",
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    let rows = v["codecs"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["codec"].as_str().unwrap()).collect();
    assert_eq!(names, ["int8", "pq:m=4", "opq:m=4", "binary-itq"]);
    assert!(rows[0]["train_seconds"].is_null(), "{}", rows[0]);
    for r in &rows[1..] {
        assert!(r["train_seconds"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["compress_mb_s"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["cosine_mean"].as_f64().unwrap() > 0.5, "{r}");
    }
    // pq:m=4 stores 4 one-byte codes a row; binary-itq 2 bytes of bits and a scale.
    assert_eq!(rows[1]["bytes_per_vector"].as_f64(), Some(4.0));
    assert_eq!(rows[3]["bytes_per_vector"].as_f64(), Some(6.0));
}

#[test]
fn bench_names_a_codec_with_options_as_asked() {
    // `--codecs` splits on commas and puts `key=value` pieces back after their codec; each
    // row is named by the whole codec string, in order, whatever the spacing.
    let a = vectro()
        .args([
            "bench", "--json", "--rows", "300", "--dims", "16", "--runs", "1",
        ])
        .args(["--query-count", "20", "--codecs", "int8"])
        .args([
            "sq:bits=4,rounds=2",
            "sq:bits=2,centre=1,seed=3,int4:rotate=1,rounds=1",
        ])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    let rows = v["codecs"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["codec"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "int8",
            "sq:bits=4,rounds=2",
            "sq:bits=2,centre=1,seed=3",
            "int4:rotate=1,rounds=1"
        ]
    );
    // The rows' sizes are their codecs': int8 16 bytes and a scale; sq at 4 bits 8 code bytes and a factor word;
    // centred at 2 bits 4 code bytes, the factor word and <x, c>; int4 8 bytes and a scale.
    let bytes: Vec<f64> = rows
        .iter()
        .map(|r| r["bytes_per_vector"].as_f64().unwrap())
        .collect();
    assert_eq!(bytes, [20.0, 12.0, 12.0, 12.0]);
}

#[test]
fn bench_reads_an_input_file_and_refuses_unknown_codecs() {
    let f = files(120, 16);
    let a = vectro()
        .args(["bench", "--runs", "1", "--in"])
        .arg(&f.npy)
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(
        out.contains("120 rows x 16 dims") && out.contains("int8"),
        "{out}"
    );

    // A usage error (exit 2) from bench on 50 generated rows of 8 dims.
    let refused = |args: &[&str]| {
        let a = vectro()
            .args(["bench", "--rows", "50", "--dims", "8"])
            .args(args)
            .assert()
            .code(USAGE);
        stderr(&a)
    };
    let e = refused(&["--codecs", "int8,zstd9"]);
    assert!(e.contains("unknown codec 'zstd9'"), "{e}");
    // A bad trained codec is refused before anything is trained.
    let e = refused(&["--codecs", "int8,pq:m=3"]);
    assert!(e.contains("not divisible by m=3"), "{e}");
    // auto is not a codec to bench (it said "unknown codec 'auto'; known codecs: ... auto").
    let e = refused(&["--codecs", "int8,auto"]);
    assert!(e.contains("leave auto out of --codecs"), "{e}");
    let e = refused(&["--runs", "0"]);
    assert!(e.contains("--runs"), "{e}");

    // A NaN in --in is named by file, row and column, as compress names it (exit 3, not 2).
    let mut bytes = std::fs::read(&f.npy).unwrap();
    let at = bytes.len() - 4 * 16 * 2 + 4; // row 118, column 1
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&f.npy, bytes).unwrap();
    let a = vectro()
        .args(["bench", "--runs", "1", "--in"])
        .arg(&f.npy)
        .assert()
        .code(BAD_INPUT);
    assert!(
        stderr(&a).contains("x.npy") && stderr(&a).contains("row 118, column 1 is NaN"),
        "{}",
        stderr(&a)
    );
}

#[test]
fn bench_takes_at_most_100000_rows_of_an_input_unless_told() {
    // bench holds its data in memory: a dump's first 100,000 rows, not all of it.
    let f = files(100_001, 2);
    let a = vectro()
        .args(["bench", "--runs", "1", "--codecs", "int8", "--in"])
        .arg(&f.npy)
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("100000 rows x 2 dims"), "{out}");
    assert!(
        stderr(&a).contains("first 100000 of the 100001 rows") && stderr(&a).contains("--rows"),
        "{}",
        stderr(&a)
    );
    let a = vectro()
        .args([
            "bench", "--runs", "1", "--codecs", "int8", "--rows", "100001",
        ])
        .arg("--in")
        .arg(&f.npy)
        .assert()
        .success();
    let out = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(out.contains("100001 rows x 2 dims"), "{out}");
    assert!(!stderr(&a).contains("first"), "{}", stderr(&a));
}

#[test]
fn a_non_finite_original_or_query_is_refused_by_row() {
    let f = files(100, 16);
    let mut bytes = std::fs::read(&f.npy).unwrap();
    let at = bytes.len() - 4 * 16 * 3; // row 97, column 0
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&f.npy, bytes).unwrap();
    // It used to report NaN metrics, and an NMSE of 0 passed --max-nmse.
    for extra in [&[][..], &["--max-nmse", "0.001"]] {
        let a = eval(&f, extra).code(BAD_INPUT);
        let e = stderr(&a);
        assert!(
            e.contains("row 97, column 0 is NaN") && e.contains("x.npy"),
            "{e}"
        );
    }
    // A NaN in a queries file is named there.
    let g = files(100, 16);
    let q = g.npy.with_file_name("q.npy");
    write_salted(&q, 5, 16, 9);
    let mut bytes = std::fs::read(&q).unwrap();
    let at = bytes.len() - 4 * 16 * 2 + 4 * 3; // row 3, column 3
    bytes[at..at + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    std::fs::write(&q, bytes).unwrap();
    let a = eval(&g, &["--queries", q.to_str().unwrap()]).code(BAD_INPUT);
    let e = stderr(&a);
    assert!(e.contains("q.npy") && e.contains("row 3, column 3"), "{e}");
}

/// `bench` trains rq on its data (reporting the training apart) and takes a frozen rq
/// codebook: both are measured on their codes, the frozen one without training.
#[test]
fn bench_trains_rq_and_takes_a_frozen_rq_codebook() {
    let f = files(600, 16);
    let vcb = f.dir.path().join("rq.vcb");
    vectro()
        .args(["train", "-q", "--codec", "rq:m=3,beam=2", "--in"])
        .arg(&f.npy)
        .arg("--out")
        .arg(&vcb)
        .assert()
        .success();
    let a = vectro()
        .args(["bench", "--json", "--runs", "1", "--query-count", "20"])
        .args(["--codecs", "int8,rq:m=4"])
        .arg("--codebook")
        .arg(&vcb)
        .arg("--in")
        .arg(&f.npy)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&a.get_output().stdout).unwrap();
    let rows = v["codecs"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["codec"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names[1].starts_with("rq:m=4") && names[2].starts_with("rq:m=3"),
        "{names:?}"
    );
    assert!(
        rows[1]["train_seconds"].as_f64().unwrap() > 0.0,
        "{}",
        rows[1]
    );
    assert!(rows[2]["train_seconds"].is_null(), "{}", rows[2]);
    // m code bytes and the f16 scale a row.
    assert_eq!(rows[1]["bytes_per_vector"].as_f64(), Some(6.0));
    assert_eq!(rows[2]["bytes_per_vector"].as_f64(), Some(5.0));
    for r in &rows[1..] {
        assert!(r["cosine_mean"].as_f64().unwrap() > 0.5, "{r}");
        assert!(r["recall"].as_f64().unwrap() > 0.0, "{r}");
    }
}
