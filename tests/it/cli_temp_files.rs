//! A run killed mid-write (SIGKILL, `timeout`) leaves its temporary file; the next run for
//! the same output reuses it, so retries from cron never pile up full-size orphans.

use crate::helpers::{random_rows, read_npy, vectro, write_npy};

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn stale_temp_files_of_killed_runs_are_reused_not_left() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(&d.join("g.npy"), 200, 8, &random_rows(200, 8, 3));
    let run = |args: &[&str]| {
        vectro()
            .current_dir(d)
            .args(args)
            .arg("-q")
            .assert()
            .success();
    };
    run(&["compress", "--in", "g.npy", "--out", "c.vectro"]);
    // What killed runs of each command leave behind: a temporary file beside the output.
    for stale in [".d.npy.tmp", ".e.jsonl.tmp", ".gen.npy.tmp"] {
        std::fs::write(d.join(stale), vec![1u8; 10_000]).unwrap();
    }
    run(&["decompress", "--in", "c.vectro", "--out", "d.npy"]);
    run(&[
        "export", "c.vectro", "--format", "jsonl", "--out", "e.jsonl",
    ]);
    run(&[
        "generate", "--rows", "10", "--dims", "4", "--out", "gen.npy",
    ]);
    assert_eq!(
        names(d),
        ["c.vectro", "d.npy", "e.jsonl", "g.npy", "gen.npy"]
    );
    let (shape, rows) = read_npy::<f32>(&d.join("d.npy"));
    assert_eq!(shape, [200, 8]);
    assert_eq!(rows.len(), 1600, "the stale bytes leaked into the output");
}
