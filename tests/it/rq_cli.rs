//! `rq` (residual quantization) through the command line: identical bytes for any thread
//! count and chunk size, a frozen codebook (`train` + `--codebook`, shards + `merge`) gives
//! the file of one run, search equals brute force over the decoded rows, and bad settings
//! are refused by name.

use std::path::{Path, PathBuf};

use crate::helpers::{bits, read_npy, vectro, write_npy};

const CODEC: &str = "rq:m=4,iters=3,refine=1,beam=4";

fn generate(dir: &Path, rows: u64, dims: u64) -> PathBuf {
    let npy = dir.join(format!("x{rows}x{dims}.npy"));
    vectro()
        .args(["generate", "-q", "--rows", &rows.to_string()])
        .args(["--dims", &dims.to_string(), "--out"])
        .arg(&npy)
        .assert()
        .success();
    npy
}

fn compress(npy: &Path, out: &Path, args: &[&str]) {
    vectro()
        .args(["compress", "-q", "--force", "--in"])
        .arg(npy)
        .arg("--out")
        .arg(out)
        .args(args)
        .assert()
        .success();
}

fn decompress(c: &Path) -> Vec<f32> {
    let back = c.with_extension("back.npy");
    vectro()
        .args(["decompress", "-q", "--force", "--in"])
        .arg(c)
        .arg("--out")
        .arg(&back)
        .assert()
        .success();
    read_npy::<f32>(&back).1
}

#[test]
fn rq_is_deterministic_and_a_frozen_codebook_gives_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let npy = generate(dir.path(), 700, 16);
    let mut files = Vec::new();
    for (i, (threads, chunk)) in [("1", "700"), ("3", "100"), ("2", "64")].iter().enumerate() {
        let out = dir.path().join(format!("{i}.vectro"));
        compress(
            &npy,
            &out,
            &[
                "--codec",
                CODEC,
                "--threads",
                threads,
                "--chunk-rows",
                chunk,
            ],
        );
        files.push(std::fs::read(&out).unwrap());
    }
    // Chunking changes the chunk table, not the codes: compare decoded rows across
    // chunk sizes, bytes across thread counts at one chunk size.
    let one = dir.path().join("same_chunks.vectro");
    compress(
        &npy,
        &one,
        &["--codec", CODEC, "--threads", "1", "--chunk-rows", "100"],
    );
    assert_eq!(std::fs::read(&one).unwrap(), files[1], "any thread count");
    let decoded: Vec<Vec<u32>> = (0..3)
        .map(|i| bits(&decompress(&dir.path().join(format!("{i}.vectro")))))
        .collect();
    assert!(
        decoded.windows(2).all(|w| w[0] == w[1]),
        "same rows for any chunk size"
    );
    // train + --codebook is the one-shot compress, byte for byte.
    let vcb = dir.path().join("rq.vcb");
    vectro()
        .args(["train", "-q", "--force", "--codec", CODEC, "--in"])
        .arg(&npy)
        .arg("--out")
        .arg(&vcb)
        .assert()
        .success();
    let frozen = dir.path().join("frozen.vectro");
    compress(
        &npy,
        &frozen,
        &["--codebook", vcb.to_str().unwrap(), "--chunk-rows", "100"],
    );
    assert_eq!(std::fs::read(&frozen).unwrap(), files[1], "--codebook");
    // Shards with the frozen codebook merge into the same rows.
    let parts = dir.path().join("parts");
    std::fs::create_dir_all(&parts).unwrap();
    for k in 0..2 {
        let part = parts.join(format!("part-{k}.vectro"));
        compress(
            &npy,
            &part,
            &[
                "--codebook",
                vcb.to_str().unwrap(),
                "--chunk-rows",
                "100",
                "--shard",
                &format!("{k}/2"),
            ],
        );
    }
    let merged = dir.path().join("merged.vectro");
    vectro()
        .args(["merge", "-q", "--out"])
        .arg(&merged)
        .arg(&parts)
        .assert()
        .success();
    assert_eq!(bits(&decompress(&merged)), decoded[1], "merged shards");
    // info names the codec, on the container and on the codebook.
    for f in [&frozen, &vcb] {
        let o = vectro().arg("info").arg(f).assert().success();
        let text = String::from_utf8_lossy(&o.get_output().stdout).into_owned();
        assert!(
            text.contains("rq:m=4,beam=4") && text.contains("refine rounds"),
            "{text}"
        );
    }
    // get of one row is that row of decompress.
    let row = dir.path().join("row.npy");
    vectro()
        .arg("get")
        .arg(&frozen)
        .args(["--rows", "250", "--format", "npy", "--out"])
        .arg(&row)
        .assert()
        .success();
    let (_, r) = read_npy::<f32>(&row);
    assert_eq!(bits(&r), decoded[1][250 * 16..251 * 16].to_vec());
}

#[test]
fn rq_search_is_brute_force_over_the_decoded_rows() {
    let dir = tempfile::tempdir().unwrap();
    let npy = generate(dir.path(), 600, 16);
    let c = dir.path().join("c.vectro");
    compress(&npy, &c, &["--codec", CODEC]);
    let rows = decompress(&c);
    let queries: Vec<f32> = rows[..5 * 16].iter().map(|v| v * 0.9 + 0.01).collect();
    let q = dir.path().join("q.npy");
    write_npy(&q, 5, 16, &queries);
    for metric in ["ip", "l2", "cos"] {
        let o = vectro()
            .args([
                "search",
                "--k",
                "5",
                "--metric",
                metric,
                "--format",
                "json",
                "--queries",
            ])
            .arg(&q)
            .arg(&c)
            .assert()
            .success();
        let text = String::from_utf8_lossy(&o.get_output().stdout).into_owned();
        for (qi, line) in text.lines().enumerate() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let got: Vec<u64> = v["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            let qv = &queries[qi * 16..(qi + 1) * 16];
            let mut scored: Vec<(f64, u64)> = rows
                .chunks(16)
                .enumerate()
                .map(|(i, r)| {
                    let dot: f64 = qv.iter().zip(r).map(|(a, b)| f64::from(a * b)).sum();
                    let n2: f64 = r.iter().map(|b| f64::from(b * b)).sum();
                    let s = match metric {
                        "ip" => dot,
                        "l2" => 2.0 * dot - n2,
                        _ => dot / n2.sqrt(),
                    };
                    (-s, i as u64)
                })
                .collect();
            scored.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let want: Vec<u64> = scored[..5].iter().map(|s| s.1).collect();
            assert_eq!(got, want, "{metric}, query {qi}");
        }
    }
}

#[test]
fn rq_bad_settings_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let npy = generate(dir.path(), 300, 8);
    let fail = |args: &[&str], input: &Path| -> String {
        let o = vectro()
            .args(["compress", "-q", "--force", "--in"])
            .arg(input)
            .arg("--out")
            .arg(dir.path().join("bad.vectro"))
            .args(args)
            .assert()
            .failure();
        assert!(!dir.path().join("bad.vectro").exists(), "{args:?}");
        let code = o.get_output().status.code();
        let msg = String::from_utf8_lossy(&o.get_output().stderr).into_owned();
        assert_eq!(code, Some(2), "{args:?}: {msg}");
        msg
    };
    let msg = fail(&["--codec", "rq:m=16"], &npy);
    assert!(
        msg.contains("rq: m=16 codebooks do not fit 8-dimensional rows: at most 8"),
        "{msg}"
    );
    let msg = fail(&["--codec", "rq:m=4,beam=65"], &npy);
    assert!(msg.contains("rq: beam must be 1 to 64"), "{msg}");
    let msg = fail(&["--codec", "rq"], &npy);
    assert!(msg.contains("rq: needs the number of codebooks m"), "{msg}");
    // A codebook trained on data of another dimension.
    let other = generate(dir.path(), 300, 16);
    let vcb = dir.path().join("o.vcb");
    vectro()
        .args(["train", "-q", "--codec", CODEC, "--in"])
        .arg(&other)
        .arg("--out")
        .arg(&vcb)
        .assert()
        .success();
    let o = vectro()
        .args(["compress", "-q", "--in"])
        .arg(&npy)
        .arg("--out")
        .arg(dir.path().join("bad.vectro"))
        .arg("--codebook")
        .arg(&vcb)
        .assert()
        .failure();
    let msg = String::from_utf8_lossy(&o.get_output().stderr).into_owned();
    assert!(
        msg.contains("o.vcb") && msg.contains("16-dimensional") && msg.contains("8 dims"),
        "{msg}"
    );
    // Another m than the codebook's.
    let o = vectro()
        .args(["compress", "-q", "--codec", "rq:m=2", "--in"])
        .arg(&other)
        .arg("--out")
        .arg(dir.path().join("bad.vectro"))
        .arg("--codebook")
        .arg(&vcb)
        .assert()
        .code(2);
    let msg = String::from_utf8_lossy(&o.get_output().stderr).into_owned();
    assert!(msg.contains("which --codec rq:m=2 does not match"), "{msg}");
}
