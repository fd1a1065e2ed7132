//! `--in -` and `--out -`: streams through pipes, compared with file runs.

use std::process::{Command, Stdio};

use crate::helpers::*;
use vectro::Container;

/// `cat file | vectro compress --in - --out -` with more flags; returns stdout.
fn through_cat(file: &std::path::Path, out: &str, extra: &[&str]) -> Vec<u8> {
    let mut cat = Command::new("cat")
        .arg(file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = vectro_std();
    c.args([
        "compress",
        "--quiet",
        "--chunk-rows",
        &CHUNK_ROWS.to_string(),
        "--in",
        "-",
        "--out",
        out,
    ])
    .args(extra)
    .stdin(cat.stdout.take().unwrap());
    let o = c.output().unwrap();
    assert!(cat.wait().unwrap().success());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
fn stdin_through_cat_matches_the_file_run() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 1000, DIMS, &rows(1000, DIMS, 7));
    let from_file = dir.path().join("file.vectro");
    single_run(&npy, &from_file);
    let from_pipe = dir.path().join("pipe.vectro");
    through_cat(&npy, from_pipe.to_str().unwrap(), &["--threads", "2"]);
    let (a, b) = (
        Container::open(&from_file).unwrap(),
        Container::open(&from_pipe).unwrap(),
    );
    // Only the source metadata differs (a stream has no name, size or mtime).
    assert_eq!(b.metadata()["source"], "-");
    assert_eq!(
        (a.rows(), a.dims(), a.chunks().len()),
        (b.rows(), b.dims(), b.chunks().len())
    );
    for i in 0..a.chunks().len() {
        assert_eq!(
            a.chunk_payload(i).unwrap(),
            b.chunk_payload(i).unwrap(),
            "chunk {i}"
        );
    }
    // Through both pipes at once: the container on stdout is the same file, byte for byte.
    let streamed = through_cat(&npy, "-", &[]);
    assert_eq!(streamed, std::fs::read(&from_pipe).unwrap());
    // --out - from a file input is the file run's container.
    let mut c = vectro_std();
    c.args([
        "compress",
        "--chunk-rows",
        &CHUNK_ROWS.to_string(),
        "--out",
        "-",
        "--in",
    ])
    .arg(&npy);
    let o = c.output().unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, std::fs::read(&from_file).unwrap());
    assert!(String::from_utf8_lossy(&o.stderr).contains("compressed 1000 rows"));
}

#[test]
fn decompress_to_stdout_matches_the_file_run() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 1000, DIMS, &rows(1000, DIMS, 7));
    let comp = dir.path().join("x.vectro");
    assert!(
        vectro_std()
            .args(["compress", "--quiet", "--codec", "int4", "--in"])
            .arg(&npy)
            .arg("--out")
            .arg(&comp)
            .status()
            .unwrap()
            .success()
    );
    let file = dir.path().join("back.npy");
    assert!(
        vectro_std()
            .args(["decompress", "--quiet", "--in"])
            .arg(&comp)
            .arg("--out")
            .arg(&file)
            .status()
            .unwrap()
            .success()
    );
    // Run where a file named `-` would land, had `-` been taken as a path.
    let o = vectro_std()
        .current_dir(dir.path())
        .args(["decompress", "--out", "-", "--in"])
        .arg(&comp)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, std::fs::read(&file).unwrap());
    assert!(!dir.path().join("-").exists());
    // The summary goes to stderr, never into the .npy on stdout.
    assert!(String::from_utf8_lossy(&o.stderr).contains("decompressed 1000 rows"));
}

/// `compress --in - --out OUT` in chunks of 64 rows, with `npy` on stdin.
fn compress_stdin(npy: &std::path::Path, out: &std::path::Path) -> Command {
    let mut c = vectro_std();
    c.args([
        "compress",
        "--quiet",
        "--chunk-rows",
        "64",
        "--in",
        "-",
        "--out",
    ])
    .arg(out)
    .stdin(std::fs::File::open(npy).unwrap());
    c
}

#[test]
fn a_truncated_stream_names_the_rows_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 1000, DIMS, &rows(1000, DIMS, 7));
    let mut bytes = std::fs::read(&npy).unwrap();
    bytes.truncate(bytes.len() - 1000);
    std::fs::write(&npy, bytes).unwrap();
    let out = dir.path().join("t.vectro");
    let (code, err) = fails(&mut compress_stdin(&npy, &out));
    assert_eq!(code, 3);
    assert!(
        err.contains("<stdin>") && err.contains("rows 960..1000"),
        "{err}"
    );
    assert!(!out.exists(), "no half-written output at the final path");
    let mut c = vectro_std();
    c.args([
        "compress",
        "--chunk-rows",
        "64",
        "--in",
        "-",
        "--shard",
        "0/2",
        "--out",
    ])
    .arg(&out)
    .stdin(std::fs::File::open(&npy).unwrap());
    let (_, err) = fails(&mut c);
    assert!(err.contains("cannot be sharded"), "{err}");
}

#[test]
fn a_stream_longer_than_its_shape_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 1000, DIMS, &rows(1000, DIMS, 7));
    let mut bytes = std::fs::read(&npy).unwrap();
    bytes.extend_from_slice(&[0; 40]);
    std::fs::write(&npy, bytes).unwrap();
    let out = dir.path().join("t.vectro");
    let (code, err) = fails(&mut compress_stdin(&npy, &out));
    assert_eq!(code, 3);
    assert!(
        err.contains("<stdin>") && err.contains("longer than its shape says"),
        "{err}"
    );
    assert!(err.contains("after the 1000 rows"), "{err}");
    assert!(!out.exists(), "no half-written output at the final path");
}

#[test]
fn many_files_are_one_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let whole = dir.path().join("whole.vectro");
    single_run(&input, &whole);
    let c = Container::open(&whole).unwrap();
    assert_eq!(c.rows(), total_rows());
    let files: serde_json::Value = serde_json::from_str(&c.metadata()["source_files"]).unwrap();
    let names: Vec<_> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        FILES.map(|f| f.0),
        "natural order: part-10 after part-2"
    );
    assert_eq!(files[1]["rows"], serde_json::json!([301, 558]));
    // Row by row, the whole equals each file compressed alone (chunks straddle files).
    let mut at = 0;
    for (name, n) in FILES {
        let alone = dir.path().join(format!("{name}.vectro"));
        single_run(&input.join(name), &alone);
        let a = Container::open(&alone).unwrap();
        let (mut x, mut y) = (
            vec![0f32; n as usize * DIMS as usize],
            vec![0f32; n as usize * DIMS as usize],
        );
        a.get_range(0..n, &mut x).unwrap();
        c.get_range(at..at + n, &mut y).unwrap();
        assert_eq!(x, y, "{name}");
        at += n;
    }
}

#[test]
fn bad_files_in_a_dataset_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let out = dir.path().join("o.vectro");
    let run = || {
        let mut c = vectro_std();
        c.args(["compress", "--quiet", "--in"])
            .arg(&input)
            .arg("--out")
            .arg(&out);
        fails(&mut c)
    };
    // A NaN in the third file: named with its own row, not the global one.
    let mut data = rows(123, DIMS, 3);
    data[5 * DIMS as usize + 2] = f32::NAN;
    write_npy(
        &input.join("part-2.npy"),
        data.len() as u64 / DIMS,
        DIMS,
        &data,
    );
    let (code, err) = run();
    assert_eq!(code, 3);
    assert!(err.contains("part-2.npy: row 5, column 2 is NaN"), "{err}");
    write_npy(
        &input.join("part-2.npy"),
        10,
        DIMS + 1,
        &rows(10, DIMS + 1, 3),
    );
    let (_, err) = run();
    assert!(
        err.contains("part-2.npy") && err.contains("differs from the first file"),
        "{err}"
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut c = vectro_std();
    c.args(["compress", "--in"])
        .arg(&empty)
        .arg("--out")
        .arg(&out);
    let (code, err) = fails(&mut c);
    assert_eq!(code, 2);
    assert!(err.contains("matches no .npy file"), "{err}");
}

/// Peak RSS of `compress --in - --json` fed `rows` rows of 384 dims by a writer thread.
fn stdin_peak_rss(rows: u64) -> u64 {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.vectro");
    let mut c = vectro_std();
    c.args([
        "compress",
        "--json",
        "--threads",
        "2",
        "--chunk-rows",
        "256",
        "--in",
        "-",
        "--out",
    ])
    .arg(&out)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        stdin
            .write_all(&vectro::npy::write_header(rows, 384))
            .unwrap();
        let block: Vec<u8> = (0..64 * 384u32)
            .flat_map(|i| ((i % 251) as f32 / 251.0).to_le_bytes())
            .collect();
        for _ in 0..rows / 64 {
            stdin.write_all(&block).unwrap();
        }
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"], rows);
    v["peak_rss_bytes"].as_u64().unwrap()
}

#[test]
fn stdin_read_ahead_is_bounded() {
    // 6 MB and 60 MB of input: the read-ahead is a few chunks, whatever the stream's size.
    let small = stdin_peak_rss(4096);
    let large = stdin_peak_rss(40960);
    assert!(
        large < small + (16 << 20),
        "peak RSS grew from {small} to {large} bytes with 10x the input"
    );
}

#[test]
fn info_shows_source_files_as_a_json_array_and_one_line_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let whole = dir.path().join("whole.vectro");
    single_run(&input, &whole);
    let json = ok(vectro_std().args(["info", "--json"]).arg(&whole));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let files = v["metadata"]["source_files"]
        .as_array()
        .unwrap_or_else(|| panic!("source_files is not an array: {json}"));
    let names: Vec<_> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, FILES.map(|f| f.0));
    assert_eq!(files[1]["rows"], serde_json::json!([301, 558]));
    assert!(files.iter().all(|f| f["bytes"].as_u64().unwrap() > 0));
    // The other metadata: a number as a number, text as a string.
    assert!(v["metadata"]["source_bytes"].is_u64(), "{json}");
    assert!(v["metadata"]["tool"].is_string(), "{json}");

    let text = ok(vectro_std().arg("info").arg(&whole));
    let at = text.find("meta source_files ").expect(&text);
    let lines: Vec<_> = text[at..].lines().take(FILES.len()).collect();
    assert!(lines[1].contains("rows 301..558"), "{text}");
    for (line, (name, _)) in lines.iter().zip(FILES) {
        assert!(line.contains(&format!("{name}: rows ")), "{text}");
    }
    assert!(!text.contains("\"name\""), "raw JSON in the text: {text}");
}
