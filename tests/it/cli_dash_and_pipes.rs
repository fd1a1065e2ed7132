//! `-` and pipes where a command needs a file: a clear error, never a file named `-` and
//! never a misleading "empty file".

use std::path::Path;
use std::time::Duration;

use crate::helpers::{fixture, random_rows, vectro, write_npy};

/// A directory holding `g.npy`, `d.vectro` and `p.npz`.
fn inputs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(&d.join("g.npy"), 100, 8, &random_rows(100, 8, 5));
    std::fs::copy(fixture("npz_reference.npz"), d.join("p.npz")).unwrap();
    vectro()
        .current_dir(d)
        .args(["compress", "-q", "--in", "g.npy", "--out", "d.vectro"])
        .assert()
        .success();
    dir
}

/// Runs `args` in `dir` and returns the exit code and stderr. The timeout only keeps a
/// command blocked on a pipe from hanging the suite.
fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = vectro()
        .current_dir(dir)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn out_dash_on_file_only_commands_is_refused_not_a_file_named_dash() {
    let dir = inputs();
    let d = dir.path();
    for args in [
        &["generate", "--rows", "10", "--dims", "4", "--out", "-"][..],
        &["import-npz", "p.npz", "--out", "-"],
        &[
            "train",
            "--codec",
            "pq:m=2,nbits=4",
            "--in",
            "g.npy",
            "--out",
            "-",
        ],
    ] {
        let (code, err) = run(d, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("-: this command writes files only; give --out a path, not -"),
            "{args:?}: {err}"
        );
        // Train is refused before it trains.
        assert!(!err.contains("training on"), "{args:?}: {err}");
        assert!(!d.join("-").exists(), "{args:?} created ./-");
    }
}

#[test]
fn get_out_dash_is_stdout() {
    let dir = inputs();
    let out = vectro()
        .current_dir(dir.path())
        .args([
            "get", "d.vectro", "--rows", "0..2", "--format", "csv", "--out", "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(!dir.path().join("-").exists());
}

#[test]
fn in_dash_on_commands_that_cannot_stream_says_only_compress_reads_stdin() {
    let dir = inputs();
    for args in [
        &["decompress", "--in", "-", "--out", "x.npy"][..],
        &["info", "-"],
        &["verify", "-"],
        &["get", "-", "--rows", "0"],
        &["export", "-", "--format", "jsonl", "--out", "x.jsonl"],
        &["eval", "--orig", "-", "--comp", "d.vectro"],
        &["eval", "--orig", "g.npy", "--comp", "-"],
        &["import-npz", "-", "--out", "x.vectro"],
        &[
            "train",
            "--codec",
            "pq:m=2,nbits=4",
            "--in",
            "-",
            "--out",
            "x.vcb",
        ],
        &[
            "compress",
            "--in",
            "g.npy",
            "--codebook",
            "-",
            "--out",
            "x.vectro",
        ],
    ] {
        let (code, err) = run(dir.path(), args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains(
                "-: this command cannot read standard input (only `vectro compress - OUTPUT` does)"
            ) && err.contains("save the stream to a file first"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_pipe_as_input_is_named_as_a_pipe() {
    let dir = inputs();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for args in [
        &["compress", "--in", "fifo", "--out", "x.vectro"][..],
        &["decompress", "--in", "fifo", "--out", "x.npy"],
        &["info", "fifo"],
        &["verify", "fifo"],
        &["import-npz", "fifo", "--out", "x.vectro"],
    ] {
        let (code, err) = run(dir.path(), args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("fifo: not a regular file") && err.contains("`vectro compress - OUTPUT`"),
            "{args:?}: {err}"
        );
    }
}
