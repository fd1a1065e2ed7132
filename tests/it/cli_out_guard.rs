//! `--out` that would destroy an input is refused, whatever spells it (a hard link, a
//! symlink, `./x`), before any work, and the input is left as it was.

use assert_cmd::Command;
use std::path::{Path, PathBuf};

use crate::helpers::{fixture, random_rows, vectro, write_npy};

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn npy(&self, name: &str) -> PathBuf {
        let p = self.path(name);
        write_npy(&p, 300, 16, &random_rows(300, 16, 7));
        p
    }

    fn container(&self, name: &str) -> PathBuf {
        let npy = self.npy(&format!("{name}.src.npy"));
        let p = self.path(name);
        vectro()
            .args(["compress", "-q", "--in"])
            .arg(&npy)
            .arg("--out")
            .arg(&p)
            .assert()
            .success();
        p
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

/// Runs `cmd` in `cwd`, expects the usage exit code and a message naming the input, and
/// checks that `input` still holds its bytes and that no file appeared or vanished.
fn refused(d: &Dir, cmd: &mut Command, input: &Path) -> String {
    let before = std::fs::read(input).unwrap();
    let names = d.names();
    let out = cmd.current_dir(d.0.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--out is the input file"), "{err}");
    assert!(err.contains("write the output elsewhere"), "{err}");
    assert_eq!(std::fs::read(input).unwrap(), before, "the input changed");
    assert_eq!(d.names(), names, "files appeared or vanished");
    err
}

#[test]
fn compress_refuses_its_input_by_any_name() {
    let d = Dir::new();
    let npy = d.npy("g.npy");
    std::fs::hard_link(&npy, d.path("hard.npy")).unwrap();
    std::os::unix::fs::symlink(&npy, d.path("soft.npy")).unwrap();
    for out in ["g.npy", "./g.npy", "hard.npy", "soft.npy"] {
        let err = refused(
            &d,
            vectro().args(["compress", "-q", "--force", "--in", "g.npy", "--out", out]),
            &npy,
        );
        assert!(
            err.contains(&format!("{out}: --out is the input file")),
            "{err}"
        );
    }
}

#[test]
fn compress_refuses_any_file_of_a_directory_or_pattern_input() {
    let d = Dir::new();
    std::fs::create_dir(d.path("dump")).unwrap();
    let first = d.npy("dump/part-0.npy");
    let second = d.npy("dump/part-1.npy");
    for input in ["dump", "dump/part-*.npy"] {
        refused(
            &d,
            vectro()
                .args(["compress", "-q", "--force", "--in", input])
                .args(["--out", "dump/part-1.npy"]),
            &second,
        );
    }
    assert!(std::fs::read(&first).unwrap().starts_with(b"\x93NUMPY"));
}

#[test]
fn decompress_export_get_refuse_the_container() {
    let d = Dir::new();
    let c = d.container("d.vectro");
    refused(
        &d,
        vectro().args([
            "decompress",
            "-q",
            "--force",
            "--in",
            "d.vectro",
            "--out",
            "./d.vectro",
        ]),
        &c,
    );
    for format in ["jsonl", "npz"] {
        refused(
            &d,
            vectro()
                .args(["export", "d.vectro", "--format", format])
                .args(["--out", "d.vectro", "--force"]),
            &c,
        );
    }
    refused(
        &d,
        vectro()
            .args(["get", "d.vectro", "--rows", "0..3", "--format", "npy"])
            .args(["--out", "d.vectro", "--force"]),
        &c,
    );
}

#[test]
fn import_npz_and_train_refuse_their_input() {
    let d = Dir::new();
    let npz = d.path("p.npz");
    std::fs::copy(fixture("npz_reference.npz"), &npz).unwrap();
    refused(
        &d,
        vectro().args(["import-npz", "p.npz", "--out", "p.npz", "--force", "-q"]),
        &npz,
    );
    let npy = d.npy("t.npy");
    refused(
        &d,
        vectro()
            .args(["train", "-q", "--force", "--codec", "pq:m=2,nbits=4"])
            .args(["--in", "t.npy", "--out", "t.npy"]),
        &npy,
    );
}

#[test]
fn compress_refuses_its_codebook_even_reading_stdin() {
    let d = Dir::new();
    let npy = d.npy("t.npy");
    vectro()
        .current_dir(d.0.path())
        .args(["train", "-q", "--codec", "pq:m=2,nbits=4", "--in", "t.npy"])
        .args(["--out", "book.vcb"])
        .assert()
        .success();
    let book = d.path("book.vcb");
    let mut cmd = vectro();
    cmd.args([
        "compress",
        "-q",
        "--force",
        "--in",
        "-",
        "--codebook",
        "book.vcb",
    ])
    .args(["--out", "book.vcb"])
    .pipe_stdin(&npy)
    .unwrap();
    refused(&d, &mut cmd, &book);
}

#[test]
fn merge_says_out_is_one_of_the_parts() {
    let d = Dir::new();
    let npy = d.npy("g.npy");
    for k in 0..3 {
        vectro()
            .args(["compress", "-q", "--chunk-rows", "50", "--in"])
            .arg(&npy)
            .arg("--out")
            .arg(d.path("part-{shard}.vectro"))
            .args(["--shard", &format!("{k}/3")])
            .assert()
            .success();
    }
    let part0 = d.path("part-0.vectro");
    let err = refused(
        &d,
        vectro()
            .args([
                "merge",
                "--quiet",
                "part-0.vectro",
                "part-1.vectro",
                "part-2.vectro",
            ])
            .args(["--out", "part-0.vectro", "--force"]),
        &part0,
    );
    assert!(!err.contains("missing"), "{err}");
    // A pattern that matches a shard as well as --out: still refused, not "missing".
    refused(
        &d,
        vectro().args([
            "merge",
            "--quiet",
            "part-*.vectro",
            "--out",
            "part-1.vectro",
            "--force",
        ]),
        &d.path("part-1.vectro"),
    );
    // An earlier merge's output in the same directory is still left out, as before.
    vectro()
        .current_dir(d.0.path())
        .args(["merge", "--quiet", "part-*.vectro", "--out", "all.vectro"])
        .assert()
        .success();
    vectro()
        .current_dir(d.0.path())
        .args([
            "merge",
            "--quiet",
            "*.vectro",
            "--out",
            "all.vectro",
            "--force",
        ])
        .assert()
        .success();
}

#[test]
fn outputs_named_in_proc_or_dev_are_refused() {
    // `--out /dev/stdout` (or /proc/self/fd/1) with stdout redirected to a file names a
    // regular file, but vectro would create its temporary file in /dev and rename it over
    // the link (as root). /proc stands in for /dev here: a failing run can do no harm there.
    let d = Dir::new();
    let c = d.container("c.vectro");
    let redirected = d.path("stdout.npy");
    let out = crate::helpers::vectro_std()
        .args(["decompress", "--force", "--out", "/proc/self/fd/1", "--in"])
        .arg(&c)
        .stdout(std::fs::File::create(&redirected).unwrap())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot write a temporary file"), "{err}");
    assert!(err.contains("use --out -"), "{err}");
    assert_eq!(std::fs::metadata(&redirected).unwrap().len(), 0);
}
