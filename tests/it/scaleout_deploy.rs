//! The examples under deploy/ must not rot: their vectro command lines parse with the CLI
//! as it is now, and run, giving the single run's bytes.

// The binary's own clap definition, so that "parses" means what `vectro` itself accepts.
#[allow(dead_code)]
#[path = "../../src/bin/vectro/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;
use clap::Parser;
use yaml_rust2::{Yaml, YamlLoader};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn parses(args: &[String]) {
    if let Err(e) = cli::Cli::try_parse_from(args) {
        panic!("{args:?} is not a valid vectro command line:\n{e}");
    }
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .unwrap_or_else(|| panic!("not a list: {y:?}"))
        .iter()
        .map(|s| match s {
            Yaml::String(s) => s.clone(),
            Yaml::Integer(i) => i.to_string(),
            other => panic!("not a string: {other:?}"),
        })
        .collect()
}

/// Every (name, command) of the Job's containers and init containers.
fn commands(job: &Yaml) -> Vec<(String, Vec<String>)> {
    let spec = &job["spec"]["template"]["spec"];
    let mut out = Vec::new();
    for key in ["initContainers", "containers"] {
        for c in spec[key].as_vec().into_iter().flatten() {
            out.push((
                c["name"].as_str().unwrap().to_string(),
                strings(&c["command"]),
            ));
        }
    }
    out
}

fn flag_value(args: &[String], flag: &str) -> String {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("{flag} in {args:?}"));
    args[i + 1].clone()
}

#[test]
fn kubernetes_indexed_job_parses_and_runs() {
    let text = std::fs::read_to_string(repo("deploy/k8s-indexed-job.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap();
    let job = |name: &str| {
        docs.iter()
            .find(|d| d["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("no Job {name}"))
    };
    let (compress, merge) = (job("vectro-compress"), job("vectro-merge"));
    assert_eq!(compress["spec"]["completionMode"].as_str(), Some("Indexed"));
    let completions = compress["spec"]["completions"].as_i64().unwrap();
    assert!(compress["spec"]["parallelism"].as_i64().is_some());
    assert!(compress["spec"]["backoffLimitPerIndex"].as_i64().is_some());
    let compress_cmd = commands(compress).remove(0).1;
    let merge_cmds = commands(merge);
    for cmd in [&compress_cmd, &merge_cmds[1].1] {
        parses(cmd);
    }
    assert_eq!(flag_value(&compress_cmd, "--shard"), "auto");
    assert_eq!(
        flag_value(&compress_cmd, "--shards"),
        completions.to_string()
    );
    let wait = merge_cmds[0].1.join(" ");
    assert!(
        wait.contains(&format!("-ge {completions}")),
        "the merge waits for all shards: {wait}"
    );

    // Run them as the pods would, with /data on a temporary directory.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data); // data/in/part-*.npy
    let single = single_run(&data.join("in"), &dir.path().join("single.vectro"));
    let local = |args: &[String]| -> Vec<String> {
        args.iter()
            .map(|a| a.replace("/data", data.to_str().unwrap()))
            .collect()
    };
    let children: Vec<_> = (0..completions)
        .map(|k| {
            let args = local(&compress_cmd);
            vectro_std()
                .args(&args[1..])
                // The only addition: chunks small enough that the test data has 4 shards.
                .args(["--chunk-rows", &CHUNK_ROWS.to_string()])
                .env("JOB_COMPLETION_INDEX", k.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        assert!(c.wait_with_output().unwrap().status.success());
    }
    let init = local(&merge_cmds[0].1);
    ok(Command::new(&init[0]).args(&init[1..]));
    let args = local(&merge_cmds[1].1);
    ok(vectro_std().args(&args[1..]));
    let merged = std::fs::read(data.join("out/embeddings.vectro")).unwrap();
    assert!(
        merged == single,
        "the Kubernetes flow's result differs from a single run"
    );
}

/// The `"$VECTRO" ...` lines of the Slurm script, continuation lines joined, variables
/// given sample values, split as the shell would.
fn slurm_vectro_lines() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(repo("deploy/slurm-array.sh")).unwrap();
    let joined = text.replace("\\\n", " ");
    let lines: Vec<_> = joined
        .lines()
        .filter(|l| l.contains("\"$VECTRO\" "))
        .map(|l| {
            let l = l.trim().trim_start_matches("exec ");
            let l = l
                .replace("\"${tuning[@]}\"", "--chunk-rows 64")
                .replace("${SLURM_CPUS_PER_TASK:-0}", "2")
                .replace("$VECTRO", "vectro")
                .replace("$CODEC", "int8")
                .replace("$IN", "dump/part-*.npy")
                .replace("$OUT", "/shared/all.vectro");
            assert!(!l.contains('$'), "unhandled variable in {l}");
            shlex::split(&l).unwrap()
        })
        .collect();
    assert!(lines.len() >= 2, "expected the compress and merge lines");
    lines
}

#[test]
fn slurm_script_lines_parse() {
    let lines = slurm_vectro_lines();
    for l in &lines {
        parses(l);
    }
    let compress = lines
        .iter()
        .find(|l| l[1] == "compress")
        .expect("a compress line");
    assert_eq!(flag_value(compress, "--shard"), "auto");
    assert!(lines.iter().any(|l| l[1] == "merge"), "a merge line");
    let syntax = Command::new("bash")
        .arg("-n")
        .arg(repo("deploy/slurm-array.sh"))
        .status()
        .unwrap();
    assert!(syntax.success(), "bash -n deploy/slurm-array.sh");
}

#[test]
fn slurm_script_runs_as_slurm_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dataset(dir.path());
    let single = single_run(&input, &dir.path().join("single.vectro"));
    let out = dir.path().join("all.vectro");
    let script = repo("deploy/slurm-array.sh");
    let glob = input.join("part-*.npy");
    let tasks: Vec<_> = (0..4)
        .map(|id| {
            Command::new("bash")
                .arg(&script)
                .arg("--task")
                .arg(&glob)
                .arg(&out)
                .env("VECTRO", bin_path())
                .env("CHUNK_ROWS", CHUNK_ROWS.to_string())
                .env("SLURM_ARRAY_TASK_ID", id.to_string())
                .env("SLURM_ARRAY_TASK_COUNT", "4")
                .env_remove("JOB_COMPLETION_INDEX")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for t in tasks {
        assert!(t.wait_with_output().unwrap().status.success());
    }
    let info = ok(Command::new("bash")
        .arg(&script)
        .arg("--merge")
        .arg(&out)
        .env("VECTRO", bin_path()));
    assert!(info.contains("rows"), "{info}");
    assert!(
        std::fs::read(&out).unwrap() == single,
        "the Slurm flow's result differs from a single run"
    );
}
