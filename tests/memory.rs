//! Peak memory must not grow with the number of rows: the pipeline keeps a bounded number
//! of chunks in flight and releases the input's pages behind the writer, and scattered
//! reads (eval's sampled queries and re-ranked candidates) bypass the mapping.

mod common;

use common::vectro;

/// Generates `rows` rows of 256 dims and compresses them with `codec`, then returns the
/// peak RSS that compress (or, with `eval`, an eval of the result) reports.
fn peak_rss(rows: u64, dir: &std::path::Path, codec: &[&str], eval: bool) -> u64 {
    let npy = dir.join(format!("m{rows}.npy"));
    let comp = dir.join(format!("m{rows}.vectro"));
    vectro()
        .args(["generate", "--quiet", "--dims", "256", "--rows"])
        .arg(rows.to_string())
        .arg("--out")
        .arg(&npy)
        .assert()
        .success();
    let mut compress = vectro();
    compress
        .args(["compress", "--json", "--no-fsync", "--threads", "2"])
        .args(["--chunk-rows", "256"])
        .args(codec)
        .arg("--in")
        .arg(&npy)
        .arg("--out")
        .arg(&comp);
    let mut cmd = if eval {
        compress.assert().success();
        let mut e = vectro();
        e.args(["eval", "--json", "--threads", "2", "--orig"])
            .arg(&npy)
            .arg("--comp")
            .arg(&comp);
        e
    } else {
        compress
    };
    let out = cmd.assert().success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    std::fs::remove_file(&npy).unwrap();
    std::fs::remove_file(&comp).unwrap();
    v["peak_rss_bytes"].as_u64().unwrap()
}

fn assert_flat(codec: &[&str], eval: bool) {
    let dir = tempfile::tempdir().unwrap();
    let small = peak_rss(8_192, dir.path(), codec, eval); // 8 MiB of input
    let large = peak_rss(131_072, dir.path(), codec, eval); // 128 MiB of input
    let grew = large.saturating_sub(small);
    // The larger input has 120 MiB more data; a pipeline that held it, or a mapping that
    // pinned it, would grow by about that much. Allow 16 MiB of noise.
    assert!(
        grew < 16 << 20,
        "peak RSS grew by {} MiB ({} -> {} MiB)",
        grew >> 20,
        small >> 20,
        large >> 20
    );
}

#[test]
fn compress_peak_memory_is_flat_in_the_number_of_rows() {
    assert_flat(&[], false);
}

#[test]
fn trained_compress_peak_memory_is_flat_in_the_number_of_rows() {
    // The same 4,096-row sample from either input. Read through the mapping, the sampled
    // rows mapped the windows around them, and the larger input's compress held most of
    // its 128 MiB before encoding began.
    assert_flat(&["--codec", "pq:m=16", "--train-rows", "4096"], false);
}

#[test]
fn eval_peak_memory_is_flat_in_the_number_of_rows() {
    // 100 sampled queries re-rank 100 candidates each: 10,000 scattered rows. Read through
    // the mapping, each mapped a fault-around window or more, and the larger input's eval
    // held most of its 128 MiB.
    assert_flat(&[], true);
}
