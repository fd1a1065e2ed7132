//! One grammar and one JSON vocabulary (#26): positional paths with the old flags kept as
//! hidden aliases, every `--json` key checked against docs/cli.md's table, the README's
//! exit-code table run row by row, and a closed pipe that exits 0.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::helpers::{make_npy, stderr, vectro_std};

fn run(dir: &Path, args: &[&str]) -> Output {
    vectro_std()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("vectro runs")
}

/// Runs, asserting success; returns stdout.
fn ok(dir: &Path, args: &[&str]) -> Vec<u8> {
    let o = run(dir, args);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    o.stdout
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = ok(dir, args);
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out)))
}

/// Keys whose values differ from run to run (times, memory), and the paths that differ
/// between two runs by design: removed before two outputs are compared.
const VARYING: &[&str] = &[
    "seconds",
    "mb_per_s",
    "peak_rss_bytes",
    "compress_mb_s",
    "decompress_mb_s",
    "train_seconds",
    "output",
    "command",
];

fn strip(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(k, _)| !VARYING.contains(&k.as_str()))
                .map(|(k, v)| (k, strip(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
        v => v,
    }
}

#[test]
fn old_and_new_spellings_give_identical_results() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    make_npy(d, "a.npy", 600, 16, 5);
    // compress: positional, -o, the old --in/--out, and a mix.
    let new = json(d, &["compress", "-j", "1", "a.npy", "new.vectro", "--json"]);
    let dash_o = json(d, &["compress", "a.npy", "-o", "o.vectro", "--json"]);
    let old = json(
        d,
        &[
            "compress",
            "--threads",
            "1",
            "--in",
            "a.npy",
            "--out",
            "old.vectro",
            "--json",
        ],
    );
    ok(d, &["compress", "--in", "a.npy", "mix.vectro", "-q"]);
    let bytes = |n: &str| std::fs::read(d.join(n)).unwrap();
    for other in ["o.vectro", "old.vectro", "mix.vectro"] {
        assert_eq!(bytes("new.vectro"), bytes(other), "{other}");
    }
    assert_eq!(strip(new.clone()), strip(old));
    assert_eq!(strip(new), strip(dash_o));

    // decompress, train: the same bytes.
    ok(d, &["decompress", "new.vectro", "n.npy", "-q"]);
    ok(
        d,
        &["decompress", "--in", "new.vectro", "--out", "o.npy", "-q"],
    );
    assert_eq!(bytes("n.npy"), bytes("o.npy"));
    ok(
        d,
        &[
            "train", "a.npy", "n.vcb", "--codec", "pq:m=4", "-j", "1", "-q",
        ],
    );
    ok(
        d,
        &[
            "train",
            "--in",
            "a.npy",
            "--codec",
            "pq:m=4",
            "--out",
            "o.vcb",
            "--threads",
            "1",
            "-q",
        ],
    );
    assert_eq!(bytes("n.vcb"), bytes("o.vcb"));

    // eval: positional or --orig/--comp; --k spaced or comma-separated.
    let new = json(
        d,
        &["eval", "a.npy", "new.vectro", "--k", "1", "10", "--json"],
    );
    let old = json(
        d,
        &[
            "eval",
            "--orig",
            "a.npy",
            "--comp",
            "new.vectro",
            "--k",
            "1,10",
            "--json",
        ],
    );
    assert_eq!(strip(new.clone()), strip(old));
    let ks: Vec<u64> = new["recall"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["k"].as_u64().unwrap())
        .collect();
    assert_eq!(ks, [1, 10]);
    assert_eq!(
        (new["input"].as_str(), new["container"].as_str()),
        (Some("a.npy"), Some("new.vectro"))
    );

    // bench: positional or --in; --codecs spaced; --query-count or the old --queries N.
    let b = ["--runs", "1", "--json"];
    let new = json(
        d,
        &[
            &[
                "bench",
                "a.npy",
                "--query-count",
                "7",
                "--codecs",
                "int8",
                "int4",
            ][..],
            &b,
        ]
        .concat(),
    );
    let old = json(
        d,
        &[
            &[
                "bench",
                "--in",
                "a.npy",
                "--queries",
                "7",
                "--codecs",
                "int8,int4",
            ][..],
            &b,
        ]
        .concat(),
    );
    assert_eq!(new["queries"], 7);
    let rows = |v: &Value| -> Vec<Value> {
        v["codecs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                serde_json::json!([
                    r["codec"],
                    r["recall"],
                    r["cosine_mean"],
                    r["bytes_per_vector"]
                ])
            })
            .collect()
    };
    assert_eq!(rows(&new), rows(&old));
    let o = run(d, &["bench", "a.npy", "--queries", "q.npy"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--query-count"), "{}", stderr(&o));

    // report: positional INPUT CONTAINER, or the old --orig.
    let new = json(
        d,
        &["report", "a.npy", "new.vectro", "-o", "n.html", "--json"],
    );
    let old = json(
        d,
        &[
            "report",
            "--orig",
            "a.npy",
            "new.vectro",
            "--out",
            "o.html",
            "--json",
        ],
    );
    assert_eq!(new["entries"][0]["recall"], old["entries"][0]["recall"]);
    assert_eq!(new["input"], "a.npy");

    // A path missing or given twice is a usage error, before any file is touched.
    for args in [
        vec!["compress", "a.npy"],
        vec!["compress", "a.npy", "x.vectro", "y.vectro"],
        vec!["compress", "--in", "a.npy", "x.vectro", "y.vectro"],
        vec!["eval", "a.npy"],
        vec!["decompress", "new.vectro"],
        vec!["train", "a.npy", "--codec", "pq:m=4"],
    ] {
        let o = run(d, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).starts_with("vectro: error:"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(!d.join("x.vectro").exists());
    }
}

/// The `--json` keys docs/cli.md documents: key -> (allowed types, opaque).
fn documented() -> BTreeMap<String, (Vec<String>, bool)> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/cli.md")).unwrap();
    let table = doc
        .split("<!-- json-keys")
        .nth(1)
        .expect("docs/cli.md has the json-keys table");
    let mut keys = BTreeMap::new();
    for line in table.lines().skip(1) {
        let line = line.trim();
        if !line.starts_with('|') {
            if keys.is_empty() {
                continue;
            }
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let Some(key) = cells[0].strip_prefix('`').and_then(|k| k.strip_suffix('`')) else {
            continue;
        };
        let opaque = cells[1].contains("opaque");
        let types = cells[1]
            .replace("opaque", "")
            .split(" or ")
            .map(|t| t.trim().to_string())
            .collect();
        keys.insert(key.to_string(), (types, opaque));
    }
    assert!(keys.len() > 50, "{keys:?}");
    keys
}

fn type_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks every key of `v` (at any depth, but inside opaque ones) against the table.
fn check(
    what: &str,
    v: &Value,
    doc: &BTreeMap<String, (Vec<String>, bool)>,
    seen: &mut BTreeSet<String>,
) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| check(what, x, doc, seen)),
        Value::Object(m) => {
            for (k, x) in m {
                let (types, opaque) = doc
                    .get(k)
                    .unwrap_or_else(|| panic!("{what}: key `{k}` is not in docs/cli.md's table"));
                let t = type_of(x);
                // A number may happen to be whole.
                let fits = types
                    .iter()
                    .any(|d| d == t || (d == "number" && t == "integer"));
                assert!(fits, "{what}: `{k}` is {t} ({x}), documented as {types:?}");
                seen.insert(k.clone());
                if !opaque {
                    check(what, x, doc, seen);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn every_json_key_is_in_the_documented_table() {
    let doc = documented();
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    make_npy(d, "g.npy", 1200, 16, 3);
    let mut outputs: Vec<(String, Value)> = Vec::new();
    let mut go = |args: &[&str]| {
        let v = json(d, args);
        outputs.push((args.join(" "), v));
    };
    go(&[
        "generate", "gen.npy", "--rows", "300", "--dims", "8", "--json",
    ]);
    go(&["compress", "g.npy", "g.vectro", "--json"]);
    go(&[
        "compress",
        "g.npy",
        "auto.vectro",
        "--codec",
        "auto",
        "--min-cosine",
        "0.99",
        "--json",
    ]);
    for k in ["0", "1"] {
        go(&[
            "compress",
            "g.npy",
            "sh-{shard}.vectro",
            "--shard",
            &format!("{k}/2"),
            "--chunk-rows",
            "300",
            "--json",
        ]);
    }
    go(&[
        "merge",
        "sh-0.vectro",
        "sh-1.vectro",
        "-o",
        "m.vectro",
        "--json",
    ]);
    go(&["decompress", "g.vectro", "r.npy", "--json"]);
    go(&["info", "g.vectro", "--json"]);
    go(&["verify", "g.vectro", "--json"]);
    go(&["eval", "g.npy", "g.vectro", "--json", "--min-cosine", "0.5"]);
    go(&[
        "bench",
        "g.npy",
        "--codecs",
        "int8,pq:m=4",
        "--runs",
        "1",
        "--json",
    ]);
    go(&["train", "g.npy", "book.vcb", "--codec", "pq:m=4", "--json"]);
    go(&[
        "train",
        "g.npy",
        "itq.vcb",
        "--codec",
        "binary-itq",
        "--json",
    ]);
    go(&["info", "book.vcb", "itq.vcb", "--json"]);
    go(&["export", "g.vectro", "g.jsonl", "--json"]);
    go(&["report", "g.npy", "g.vectro", "--json"]);
    go(&["demo", "--rows", "500", "--dims", "8", "--json"]);
    // A damaged file, and one that cannot be read, among several.
    let mut bytes = std::fs::read(d.join("g.vectro")).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 1;
    std::fs::write(d.join("bad.vectro"), bytes).unwrap();
    for cmd in ["verify", "info"] {
        let o = run(
            d,
            &[cmd, "g.vectro", "bad.vectro", "missing.vectro", "--json"],
        );
        assert_ne!(o.status.code(), Some(0));
        outputs.push((
            format!("{cmd} several"),
            serde_json::from_slice(&o.stdout).unwrap(),
        ));
    }
    // Errors: one JSON object on stderr, whatever failed.
    for args in [
        vec!["compress", "--bogus", "--json"],
        vec!["compress", "g.npy", "--json"],
        vec!["compress", "missing.npy", "x.vectro", "--json"],
        vec!["eval", "g.npy", "g.vectro", "--min-cosine", "1", "--json"],
    ] {
        let o = run(d, &args);
        let line = String::from_utf8_lossy(&o.stderr);
        let v: Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("{args:?}: stderr is not one JSON object ({e}): {line}"));
        assert_eq!(
            v["error"]["exit_code"].as_i64(),
            o.status.code().map(i64::from),
            "{args:?}"
        );
        outputs.push((format!("{args:?} (stderr)"), v));
    }

    let mut seen = BTreeSet::new();
    for (what, v) in &outputs {
        let objects: Vec<&Value> = match v {
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for o in objects {
            assert_eq!(o["schema"], 1, "{what}: {o}");
        }
        check(what, v, &doc, &mut seen);
    }
    // Every summary names its input and its time, where it has one.
    for (what, v) in &outputs {
        let first = what.split(' ').next().unwrap();
        if [
            "compress",
            "decompress",
            "info",
            "verify",
            "eval",
            "train",
            "export",
            "report",
            "bench",
        ]
        .contains(&first)
            && v.is_object()
        {
            assert!(v["input"].is_string(), "{what}: no input");
            assert!(v["seconds"].is_number(), "{what}: no seconds");
        }
    }
    // And the table lists nothing that no command prints.
    let unseen: Vec<&String> = doc.keys().filter(|k| !seen.contains(*k)).collect();
    assert!(
        unseen.is_empty(),
        "documented but never printed: {unseen:?}"
    );
}

/// The codes of the README's exit-code table, and the constants of exit_codes.rs.
fn readme_codes() -> Vec<i32> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = readme.split("## Exit codes").nth(1).unwrap();
    let codes: Vec<i32> = table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| l.trim_matches('|').split('|').next()?.trim().parse().ok())
        .collect();
    let src = std::fs::read_to_string(root.join("src/bin/vectro/exit_codes.rs")).unwrap();
    let mut consts: Vec<i32> = src
        .lines()
        .filter_map(|l| {
            l.strip_prefix("pub const ")?
                .split("= ")
                .nth(1)?
                .trim_end_matches(';')
                .parse()
                .ok()
        })
        .collect();
    consts.sort_unstable();
    let mut sorted = codes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, consts, "README's table and exit_codes.rs differ");
    codes
}

#[test]
fn every_exit_code_of_the_table_is_what_its_mistakes_give() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    make_npy(d, "a.npy", 400, 16, 9);
    ok(
        d,
        &["compress", "a.npy", "a.vectro", "-q", "--codec", "int4"],
    );
    ok(d, &["train", "a.npy", "b.vcb", "--codec", "pq:m=4", "-q"]);
    std::fs::write(d.join("junk.npy"), b"not a numpy file at all").unwrap();
    let mut bad = std::fs::read(d.join("a.vectro")).unwrap();
    let n = bad.len();
    bad[n / 2] ^= 0x40;
    std::fs::write(d.join("bad.vectro"), bad).unwrap();
    make_npy(d, "other.npy", 400, 8, 9);

    // (code, args, a needle of the message). 70, 130 and 143 need a bug or a signal: the
    // signals are sent in reliability_write_faults.rs; 70 has no case that a user can cause.
    let cases: &[(i32, &[&str], &str)] = &[
        (0, &["verify", "a.vectro"], ""),
        (0, &["info", "a.vectro", "-q"], ""),
        (
            0,
            &[
                "compress", "a.npy", "a.vectro", "--codec", "int4", "--resume", "-q",
            ],
            "",
        ),
        (
            1,
            &["eval", "a.npy", "a.vectro", "--min-cosine", "1"],
            "quality gate failed",
        ),
        (
            1,
            &["eval", "a.npy", "a.vectro", "--max-nmse", "0"],
            "--max-nmse",
        ),
        (
            1,
            &["eval", "a.npy", "a.vectro", "--min-recall", "1.01"],
            "recall@",
        ),
        (2, &["compress", "--bogus"], "unexpected argument"),
        (2, &["compress", "a.npy"], "needs OUTPUT"),
        (2, &["compress", "a.npy", "a.vectro"], "already exists"),
        (2, &["compress", "a.npy", "a.npy", "--force"], "input"),
        // The codec is checked before the existing output is.
        (
            2,
            &["compress", "a.npy", "a.vectro", "--codec", "bogus"],
            "unknown codec",
        ),
        (
            2,
            &[
                "compress",
                "a.npy",
                "a.vectro",
                "--codec",
                "auto",
                "--min-recall",
                "2",
            ],
            "(0, 1]",
        ),
        // One mistake, one code: a --codec that contradicts --codebook, whatever codec.
        (
            2,
            &[
                "compress",
                "a.npy",
                "x.vectro",
                "--codebook",
                "b.vcb",
                "--codec",
                "int8",
            ],
            "does not match",
        ),
        (
            2,
            &[
                "compress",
                "a.npy",
                "x.vectro",
                "--codebook",
                "b.vcb",
                "--codec",
                "pq:m=8",
            ],
            "does not match",
        ),
        (
            2,
            &[
                "eval",
                "a.npy",
                "a.vectro",
                "--queries",
                "q.npy",
                "--sample-queries",
                "3",
            ],
            "cannot be used",
        ),
        (3, &["compress", "junk.npy", "x.vectro"], "junk.npy"),
        (3, &["verify", "bad.vectro"], "CORRUPT"),
        (3, &["eval", "other.npy", "a.vectro"], "dims differ"),
        (3, &["info", "junk.npy"], "junk.npy"),
        (4, &["compress", "missing.npy", "x.vectro"], "missing.npy"),
        (4, &["verify", "missing.vectro"], "No such file"),
        (
            4,
            &["compress", "a.npy", "/nonexistent/dir/x.vectro"],
            "/nonexistent",
        ),
    ];
    let codes = readme_codes();
    for &(code, args, needle) in cases {
        assert!(codes.contains(&code), "{code} is not in the README's table");
        let o = run(d, args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!d.join("x.vectro").exists(), "{args:?} left an output");
        // With --json the same code, and the error as JSON.
        if code >= 2 && args.first() != Some(&"verify") {
            let o = run(d, &[args, &["--json"]].concat());
            assert_eq!(o.status.code(), Some(code), "{args:?} --json");
            let v: Value = serde_json::from_slice(&o.stderr)
                .unwrap_or_else(|e| panic!("{args:?} --json: {e}: {}", stderr(&o)));
            assert_eq!(v["error"]["exit_code"], code, "{args:?}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains(needle) || needle == "CORRUPT"
            );
        }
    }
    for code in codes {
        let covered = cases.iter().any(|c| c.0 == code) || [70, 130, 143].contains(&code);
        assert!(covered, "no case for exit code {code}");
    }
}

#[test]
fn a_closed_pipe_exits_0() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    make_npy(d, "a.npy", 20_000, 32, 1);
    ok(d, &["compress", "a.npy", "a.vectro", "-q"]);
    for args in [
        vec!["export", "a.vectro", "-"],
        vec!["export", "a.vectro", "--out", "-", "--format", "jsonl"],
        vec!["get", "a.vectro", "--rows", "0..20000"],
        vec!["decompress", "a.vectro", "-"],
    ] {
        // `| head -c 100`: the reader takes a little and closes the pipe.
        let mut child = vectro_std()
            .current_dir(d)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 100];
        child.stdout.take().unwrap().read_exact(&mut buf).unwrap();
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
}
