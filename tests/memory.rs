//! Peak memory must not grow with the number of rows: the pipeline keeps a bounded number
//! of chunks in flight and releases the input's pages behind the writer.

mod common;

use common::vectro;

fn peak_rss(rows: u64, dir: &std::path::Path) -> u64 {
    let npy = dir.join(format!("m{rows}.npy"));
    vectro()
        .args(["generate", "--quiet", "--dims", "256", "--rows"])
        .arg(rows.to_string())
        .arg("--out")
        .arg(&npy)
        .assert()
        .success();
    let out = vectro()
        .args([
            "compress",
            "--json",
            "--no-fsync",
            "--threads",
            "2",
            "--chunk-rows",
            "256",
            "--in",
        ])
        .arg(&npy)
        .arg("--out")
        .arg(dir.join(format!("m{rows}.vectro")))
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    std::fs::remove_file(&npy).unwrap();
    v["peak_rss_bytes"].as_u64().unwrap()
}

#[test]
fn peak_memory_is_flat_in_the_number_of_rows() {
    let dir = tempfile::tempdir().unwrap();
    let small = peak_rss(8_192, dir.path()); // 8 MiB of input
    let large = peak_rss(131_072, dir.path()); // 128 MiB of input
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
