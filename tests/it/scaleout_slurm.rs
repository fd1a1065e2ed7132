//! deploy/slurm-array.sh on a real Slurm cluster: the array and its dependent merge job.
//!
//! Ignored by default: it needs a running cluster. `.ci/run` brings one up on this machine
//! with scripts/slurm_local.sh and runs `cargo test --test scaleout_slurm -- --ignored`, or
//! says loudly that it skipped it.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;

#[test]
#[ignore = "needs a Slurm cluster: scripts/slurm_local.sh up"]
fn slurm_array_and_merge_job_match_a_single_run() {
    let up = Command::new("sinfo")
        .arg("-h")
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(up, Ok(true)),
        "no Slurm cluster answers (sinfo); run scripts/slurm_local.sh up"
    );
    // The jobs run as another process tree on the same node: a plain directory they can see.
    let dir = tempfile::Builder::new()
        .prefix("vectro-slurm-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let input = dataset(dir.path());
    let single = single_run(&input, &dir.path().join("single.vectro"));
    let out = dir.path().join("all.vectro");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/slurm-array.sh");
    // The script as written, submitted as a user would; WAIT=1 blocks until the merge job ends.
    let run = Command::new("bash")
        .arg(&script)
        .arg(input.join("part-*.npy"))
        .arg(&out)
        .arg("4")
        .current_dir(dir.path())
        .env("VECTRO", bin_path())
        .env("CHUNK_ROWS", CHUNK_ROWS.to_string())
        .env("WAIT", "1")
        .output()
        .unwrap();
    let logs = || {
        let parts = dir.path().join("all.vectro.parts");
        let mut s = String::new();
        for e in std::fs::read_dir(&parts).into_iter().flatten().flatten() {
            if e.path().extension().is_some_and(|x| x == "log") {
                s += &format!(
                    "--- {}\n{}",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                );
            }
        }
        s
    };
    assert!(
        run.status.success(),
        "{}\n{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        logs()
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("(4 tasks)") && stdout.contains("submitted merge"),
        "{stdout}"
    );
    let merged =
        std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}\n{}", out.display(), logs()));
    assert!(
        merged == single,
        "the Slurm result differs from a single run\n{}",
        logs()
    );
    let parts: Vec<_> = (0..4)
        .map(|k| dir.path().join(format!("all.vectro.parts/part-{k}.vectro")))
        .collect();
    assert!(
        parts.iter().all(|p| p.exists()),
        "every array task wrote its shard"
    );
}
