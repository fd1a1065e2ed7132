//! Peak memory must not grow with the number of rows: the pipeline keeps a bounded number
//! of chunks in flight and releases the input's pages behind the writer, and scattered
//! reads (eval's sampled queries and re-ranked candidates) bypass the mapping.

use crate::helpers::vectro;

/// What to measure after compressing.
#[derive(Clone, Copy)]
enum Then {
    /// Compress itself.
    Nothing,
    /// `eval` of the container against its input.
    Eval,
    /// `export --format FORMAT` of the container.
    Export(&'static str),
}

/// Writes `rows` generated rows of 256 dims to `npy`.
fn generate(rows: u64, npy: &std::path::Path) {
    vectro()
        .args(["generate", "--quiet", "--dims", "256", "--rows"])
        .arg(rows.to_string())
        .arg("--out")
        .arg(npy)
        .assert()
        .success();
}

/// Generates `rows` rows of 256 dims and compresses them with `codec`, then returns the
/// peak RSS that compress, or the command `then` names, reports.
fn peak_rss(rows: u64, dir: &std::path::Path, codec: &[&str], then: Then) -> u64 {
    let npy = dir.join(format!("m{rows}.npy"));
    let comp = dir.join(format!("m{rows}.vectro"));
    generate(rows, &npy);
    let mut compress = vectro();
    compress
        .args(["compress", "--json", "--no-fsync", "--threads", "2"])
        .args(["--chunk-rows", "256"])
        .args(codec)
        .arg("--in")
        .arg(&npy)
        .arg("--out")
        .arg(&comp);
    let mut cmd = match then {
        Then::Nothing => compress,
        Then::Eval => {
            compress.assert().success();
            let mut e = vectro();
            e.args(["eval", "--json", "--threads", "2", "--orig"])
                .arg(&npy)
                .arg("--comp")
                .arg(&comp);
            e
        }
        Then::Export(format) => {
            compress.assert().success();
            let mut e = vectro();
            e.args([
                "export",
                "--json",
                "--no-fsync",
                "--format",
                format,
                "--out",
            ])
            .arg(dir.join(format!("m{rows}.{format}")))
            .arg(&comp);
            if format == "parquet" {
                // A row group is buffered until it is written: 16 MiB of vectors.
                e.args(["--row-group-rows", "16384"]);
            }
            e
        }
    };
    let out = cmd.assert().success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    std::fs::remove_file(&npy).unwrap();
    std::fs::remove_file(&comp).unwrap();
    v["peak_rss_bytes"].as_u64().unwrap()
}

/// Peak RSS for 256 MiB of input exceeds that for `small_rows` rows (1 KiB each) by less
/// than 24 MiB.
fn assert_flat(small_rows: u64, codec: &[&str], then: Then) {
    let dir = tempfile::tempdir().unwrap();
    let small = peak_rss(small_rows, dir.path(), codec, then);
    let large = peak_rss(262_144, dir.path(), codec, then); // 256 MiB of input
    // A pipeline that held the larger input, or a mapping that pinned it, would grow by
    // about the difference in size (56 MiB for the smallest case, npz's int8 codes).
    assert_grew_little(small, large);
}

/// Peak RSS `large` exceeds `small` by less than 24 MiB: the noise allowed, since input is
/// released in 16 MiB steps and jsonl blocks in flight vary with timing (growth of 8-15 MiB
/// measured over many runs at 128 MiB).
fn assert_grew_little(small: u64, large: u64) {
    let grew = large.saturating_sub(small);
    assert!(
        grew < 24 << 20,
        "peak RSS grew by {} MiB ({} -> {} MiB)",
        grew >> 20,
        small >> 20,
        large >> 20
    );
}

#[test]
fn compress_peak_memory_is_flat_in_the_number_of_rows() {
    assert_flat(32_768, &[], Then::Nothing);
}

#[test]
fn trained_compress_peak_memory_is_flat_in_the_number_of_rows() {
    // The same 4,096-row sample from either input. Read through the mapping, the sampled
    // rows mapped the windows around them, and the larger input's compress held most of
    // it before encoding began.
    assert_flat(
        32_768,
        &["--codec", "pq:m=16", "--train-rows", "4096"],
        Then::Nothing,
    );
}

#[test]
fn eval_peak_memory_is_flat_in_the_number_of_rows() {
    // 100 sampled queries re-rank 100 candidates each: 10,000 scattered rows. Read through
    // the mapping, each mapped a fault-around window or more, and the larger input's eval
    // held most of it.
    assert_flat(32_768, &[], Then::Eval);
}

#[test]
fn export_peak_memory_is_flat_in_the_number_of_rows() {
    // Without releasing the container's pages behind them, both exports held the whole
    // container (128 MiB of f16 or 64 MiB of int8 for the larger input). The smaller
    // input is 32 MiB, so that both fill the pipeline: blocks of JSON text in flight
    // (about 20 MiB) and a release step of container pages (16 MiB) then cost both the
    // same.
    assert_flat(32_768, &["--codec", "f16"], Then::Export("jsonl"));
    assert_flat(32_768, &[], Then::Export("npz"));
    assert_flat(32_768, &["--codec", "f16"], Then::Export("parquet"));
}

/// Peak RSS of `vectro get` of every row of a container of `rows` rows of 256 dims (f16,
/// 512 bytes a row), written as .npy to a file. Measured by `wait4`, since `get` reports
/// nothing but the rows.
#[cfg(target_os = "linux")]
fn get_peak_rss(rows: u64, dir: &std::path::Path) -> u64 {
    let npy = dir.join(format!("g{rows}.npy"));
    let comp = dir.join(format!("g{rows}.vectro"));
    generate(rows, &npy);
    vectro()
        .args([
            "compress",
            "--quiet",
            "--no-fsync",
            "--codec",
            "f16",
            "--in",
        ])
        .arg(&npy)
        .arg("--out")
        .arg(&comp)
        .assert()
        .success();
    std::fs::remove_file(&npy).unwrap();
    let mut cmd = crate::helpers::vectro_std();
    cmd.args(["get", "--format", "npy", "--rows"])
        .arg(format!("0..{rows}"))
        .arg("--out")
        .arg(dir.join(format!("g{rows}.out.npy")))
        .arg(&comp);
    let rss = crate::helpers::peak_rss_of(cmd, "get");
    std::fs::remove_file(&comp).unwrap();
    std::fs::remove_file(dir.join(format!("g{rows}.out.npy"))).unwrap();
    rss
}

#[cfg(target_os = "linux")]
#[test]
fn get_peak_memory_is_flat_in_the_number_of_rows() {
    // Without releasing the container's pages behind the decoded batches, get of every
    // row held the whole container: 64 MiB more for the larger one.
    let dir = tempfile::tempdir().unwrap();
    let small = get_peak_rss(16_384, dir.path());
    let large = get_peak_rss(131_072, dir.path());
    assert_grew_little(small, large);
}
