//! Shards over a multi-file input, merged, compared byte for byte with a single run.

use std::path::Path;
use std::process::Command;

use crate::helpers::*;
use vectro::Container;

fn shard(input: &Path, out: &Path, spec: &str) -> Command {
    let mut c = shard_cmd(input, out);
    c.args(["--shard", spec]);
    c
}

fn merge(parts: &Path, out: &Path) -> Vec<u8> {
    ok(vectro_std()
        .args(["merge", "--quiet"])
        .arg(parts)
        .arg("--out")
        .arg(out));
    std::fs::read(out).unwrap()
}

/// Starts every command at once and waits for all: the shards really run concurrently.
fn run_concurrently(cmds: Vec<Command>) {
    let children: Vec<_> = cmds
        .into_iter()
        .map(|mut c| {
            (
                format!("{c:?}"),
                c.stdout(std::process::Stdio::null()).spawn().unwrap(),
            )
        })
        .collect();
    for (what, child) in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{what}: {}", out.status);
    }
}

#[test]
fn four_concurrent_shards_merge_to_the_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let single = single_run(&input, &dir.path().join("single.vectro"));
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    // The shards name the input by a glob, the single run by its directory: same result.
    let glob = input.join("part-*.npy");
    run_concurrently(
        (0..4)
            .map(|k| shard(&glob, &parts.join("p-{shard}.vectro"), &format!("{k}/4")))
            .collect(),
    );
    for k in 0..4 {
        let c = Container::open(parts.join(format!("p-{k}.vectro"))).unwrap();
        assert_eq!(c.metadata()["shard"], format!("{k}/4"));
    }
    let merged = merge(&parts, &dir.path().join("all.vectro"));
    assert!(merged == single, "merged file differs from the single run");
    // To stdout, from a glob of the parts: the same bytes.
    let mut c = vectro_std();
    c.args(["merge", "--out", "-"])
        .arg(parts.join("p-*.vectro"));
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        o.stdout == single,
        "merge --out - differs from the single run"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("merged 4 shards"));
}

#[test]
fn shard_auto_reads_the_engines_variables() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let single = single_run(&input, &dir.path().join("single.vectro"));
    // Kubernetes Indexed Job: JOB_COMPLETION_INDEX, and the count from --shards.
    let k8s = dir.path().join("k8s");
    run_concurrently(
        (0..4)
            .map(|k| {
                let mut c = shard(&input, &k8s.join("part-{shard}.vectro"), "auto");
                c.args(["--shards", "4"])
                    .env("JOB_COMPLETION_INDEX", k.to_string());
                c
            })
            .collect(),
    );
    assert!(merge(&k8s, &dir.path().join("k8s.vectro")) == single);
    // Slurm array --array=1-4: ids from SLURM_ARRAY_TASK_MIN, count from the environment.
    let slurm = dir.path().join("slurm");
    run_concurrently(
        (1..=4)
            .map(|id| {
                let mut c = shard(&input, &slurm.join("part-{shard}.vectro"), "auto");
                c.env("SLURM_ARRAY_TASK_ID", id.to_string())
                    .env("SLURM_ARRAY_TASK_MIN", "1")
                    .env("SLURM_ARRAY_TASK_COUNT", "4");
                c
            })
            .collect(),
    );
    assert!(merge(&slurm, &dir.path().join("slurm.vectro")) == single);
    let (code, err) = fails(&mut shard(&input, &dir.path().join("x.vectro"), "auto"));
    assert_eq!(code, 2);
    assert!(
        err.contains("JOB_COMPLETION_INDEX") && err.contains("SLURM_ARRAY_TASK_ID"),
        "{err}"
    );
    let (_, err) =
        fails(shard(&input, &dir.path().join("x.vectro"), "auto").env("JOB_COMPLETION_INDEX", "1"));
    assert!(err.contains("needs --shards N"), "{err}");
}

#[test]
fn killed_shard_is_rerun_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let single = single_run(&input, &dir.path().join("single.vectro"));
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    let out = parts.join("part-{shard}.vectro");
    run_concurrently(
        [0, 1, 3]
            .map(|k| shard(&input, &out, &format!("{k}/4")))
            .into(),
    );
    // Shard 2 is killed: SIGKILL as soon as it has started writing (or whenever it is, if
    // it is quicker than us). Whatever it leaves must not reach the final path half-written.
    let mut victim = shard(&input, &out, "2/4").spawn().unwrap();
    let started = || {
        std::fs::read_dir(&parts).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".part-2")
        })
    };
    while !started() && victim.try_wait().unwrap().is_none() {
        std::thread::yield_now();
    }
    let _ = victim.kill(); // it may have finished already
    victim.wait().unwrap();
    let final_path = parts.join("part-2.vectro");
    if final_path.exists() {
        Container::open(&final_path).expect("a final shard is always complete");
        std::fs::remove_file(&final_path).unwrap();
    }
    // Exactly what a writer killed mid-way leaves: a temporary file holding a prefix.
    let half = &single[..single.len() / 2];
    std::fs::write(parts.join(".part-2.vectro.killed.tmp"), half).unwrap();
    let (code, err) = fails(
        vectro_std()
            .args(["merge", "--quiet"])
            .arg(&parts)
            .arg("--out")
            .arg(dir.path().join("m.vectro")),
    );
    assert_eq!(code, 3);
    assert!(
        err.contains("shard 2 of 4 (rows 576..832) is missing") && err.contains("--shard 2/4"),
        "{err}"
    );
    ok(&mut shard(&input, &out, "2/4"));
    assert!(merge(&parts, &dir.path().join("all.vectro")) == single);
}

#[test]
fn complete_shard_exits_at_once_and_a_damaged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let out = dir.path().join("part-1.vectro");
    ok(&mut shard(&input, &out, "1/4"));
    let before = std::fs::metadata(&out).unwrap().modified().unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let stdout = ok(&mut shard(&input, &out, "1/4"));
    assert!(stdout.contains("already complete and verified"), "{stdout}");
    assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), before);
    let json = ok(shard(&input, &out, "1/4").arg("--json"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["already_complete"], true);
    // Another shard's output at this path is not this shard.
    let (code, err) = fails(&mut shard(&input, &out, "2/4"));
    assert_eq!(code, 2);
    assert!(
        err.contains("is not this shard's complete output") && err.contains("--force"),
        "{err}"
    );
    // A flipped payload byte: every chunk's crc is checked, not just the header.
    let mut bad = bytes.clone();
    let at = bad.len() - 400; // in the last chunk's payload
    bad[at] ^= 1;
    std::fs::write(&out, &bad).unwrap();
    let (_, err) = fails(&mut shard(&input, &out, "1/4"));
    assert!(err.contains("crc32c") && err.contains("--force"), "{err}");
    ok(shard(&input, &out, "1/4").arg("--force"));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
}

#[test]
fn merge_refuses_what_is_not_one_whole_compress() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let p = |name: &str| dir.path().join(name);
    for k in 0..3 {
        ok(&mut shard(
            &input,
            &p("part-{shard}.vectro"),
            &format!("{k}/3"),
        ));
    }
    let merge_of = |parts: &[&str]| {
        let mut c = vectro_std();
        c.args(["merge", "--quiet", "--out"]).arg(p("m.vectro"));
        for x in parts {
            c.arg(p(x));
        }
        fails(&mut c).1
    };
    let e = merge_of(&["part-0.vectro", "part-2.vectro"]);
    assert!(e.contains("shard 1 of 3") && e.contains("missing"), "{e}");
    let e = merge_of(&["part-0.vectro", "part-1.vectro"]);
    assert!(e.contains("shard 2 of 3") && e.contains("missing"), "{e}");
    std::fs::copy(p("part-1.vectro"), p("copy.vectro")).unwrap();
    let e = merge_of(&[
        "part-0.vectro",
        "part-1.vectro",
        "copy.vectro",
        "part-2.vectro",
    ]);
    assert!(e.contains("shard 1/3 is given twice"), "{e}");
    // A shard compressed with other settings (here: the codec's chunking) does not fit.
    let mut c = vectro_std();
    c.args([
        "compress",
        "--quiet",
        "--chunk-rows",
        "32",
        "--shard",
        "1/3",
        "--in",
    ])
    .arg(&input)
    .arg("--out")
    .arg(p("other.vectro"));
    ok(&mut c);
    let e = merge_of(&["part-0.vectro", "other.vectro", "part-2.vectro"]);
    assert!(e.contains("chunk rows"), "{e}");
    // A shard of another input (one file fewer) does not fit either.
    std::fs::remove_file(input.join("part-10.npy")).unwrap();
    ok(&mut shard(&input, &p("small.vectro"), "1/3"));
    let e = merge_of(&["part-0.vectro", "small.vectro", "part-2.vectro"]);
    assert!(e.contains("not from the same compress"), "{e}");
    let single = p("single.vectro");
    single_run(&input, &single);
    let e = merge_of(&["single.vectro"]);
    assert!(e.contains("not a shard"), "{e}");
    let mut c = vectro_std();
    c.args(["compress", "--chunk-rows", "300", "--shard", "0/6", "--in"])
        .arg(&input)
        .arg("--out")
        .arg(p("x.vectro"));
    let e = fails(&mut c).1;
    assert!(e.contains("would be empty"), "{e}");
}

#[test]
fn a_shard_placeholder_without_shard_is_refused() {
    // Nothing fills {shard} in without --shard: the file was named literally part-{shard}.
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let out = dir.path().join("part-{shard}.vectro");
    let mut c = vectro_std();
    c.args(["compress", "--quiet", "--in"])
        .arg(&input)
        .arg("--out")
        .arg(&out);
    let (code, e) = fails(&mut c);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("only --shard K/N fills in"), "{e}");
    assert!(!out.exists());
}

/// Shards compressed with a frozen centred `sq` mean (`vectro train`; the padded layout,
/// the default at one bit) merge to the single run with it, and `info` names the layout.
#[test]
fn shards_with_a_frozen_sq_mean_merge_to_the_single_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let vcb = dir.path().join("mean.vcb");
    ok(vectro_std()
        .args(["train", "-q", "--codec", "sq:bits=1,centre=1", "--in"])
        .arg(&input)
        .arg("--out")
        .arg(&vcb));
    let single_out = dir.path().join("single.vectro");
    ok(shard_cmd(&input, &single_out)
        .arg("--codebook")
        .arg(&vcb)
        .arg("-q"));
    let parts = dir.path().join("parts");
    std::fs::create_dir(&parts).unwrap();
    for k in 0..3 {
        ok(
            shard(&input, &parts.join("p-{shard}.vectro"), &format!("{k}/3"))
                .arg("--codebook")
                .arg(&vcb)
                .arg("-q"),
        );
    }
    let merged = merge(&parts, &dir.path().join("all.vectro"));
    assert!(
        merged == std::fs::read(&single_out).unwrap(),
        "merged file differs from the single run"
    );
    let o = vectro_std()
        .arg("info")
        .arg(dir.path().join("all.vectro"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("sq:bits=1,centre=1") && text.contains("3: codes of"),
        "{text}"
    );
}
