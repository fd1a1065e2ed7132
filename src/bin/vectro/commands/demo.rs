use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use serde::Serialize;
use vectro::eval::EvalReport;
use vectro::eval::bench::BenchReport;
use vectro::eval::{EvalOptions, evaluate};
use vectro::output::Durability;
use vectro::{CompressOptions, CompressSummary, Container, GenerateOptions, NoProgress};

use super::print_json;
use crate::cli::DemoArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: DemoArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let tmp;
    let dir: PathBuf = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let npy = dir.join("demo.npy");
    let vec = dir.join("demo.vectro");
    let back = dir.join("demo.restored.npy");
    // With --json, stdout carries one JSON object at the end: no bars, no text lines.
    let json = a.common.json;
    let quiet = a.common.quiet || json;
    let say = |line: String| {
        if !json {
            outln!("{line}");
        }
    };
    say(format!(
        "vectro demo: {} rows x {} dims of synthetic embeddings in {}",
        a.rows,
        a.dims,
        dir.display()
    ));

    let gen_opts = GenerateOptions {
        rows: a.rows,
        dims: a.dims,
        threads: a.common.threads,
        ..GenerateOptions::default()
    };
    vectro::generate::generate(&npy, &gen_opts, true, &Bar::new(quiet, "generate"), cancel)?;
    say(format!("1. generated  {}", npy.display()));

    let opts = CompressOptions {
        threads: a.common.threads,
        overwrite: true,
        durability: Durability::None,
        ..CompressOptions::default()
    };
    let s = vectro::compress(&npy, &vec, &opts, &Bar::new(quiet, "compress"), cancel)?;
    say(format!("2. {}", super::compress::summary_line(&s)));

    let eval_opts = EvalOptions {
        threads: a.common.threads,
        ..EvalOptions::default()
    };
    let r = evaluate(&npy, &vec, &eval_opts, &Bar::new(quiet, "eval"), cancel)?;
    if !json {
        outln!("3. evaluated:");
        super::eval::print_table(&r);
    }

    let d = vectro::decompress(
        &vec,
        &back,
        a.common.threads,
        true,
        Durability::None,
        &NoProgress,
        cancel,
    )?;
    let c = Container::open(&vec)?;
    let mut row = vec![0f32; c.dims()];
    c.get(c.rows() / 2, &mut row)?;
    say(format!(
        "4. decompressed {} rows to {} in {:.2} s; random access to row {} works",
        d.rows,
        back.display(),
        d.seconds,
        c.rows() / 2
    ));
    // The size/quality curve on the same sample: every codec that needs no training.
    let (data, dims) = vectro::eval::bench::load_npy(&npy, None)?;
    let bench_opts = vectro::eval::bench::BenchOptions {
        codecs: vectro::codec::NAMES
            .iter()
            .flat_map(|n| match *n {
                "int4" | "binary" => vec![n.to_string(), format!("{n}:rotate=1")],
                _ => vec![n.to_string()],
            })
            .collect(),
        queries: 100,
        k: 10,
        rerank: 100,
        metric: vectro::eval::Metric::Cos,
        runs: 1,
        seed: 42,
        threads: a.common.threads,
        codebooks: Vec::new(),
    };
    let b =
        vectro::eval::bench::bench(&data, dims, &bench_opts, &Bar::new(quiet, "bench"), cancel)?;
    if json {
        print_json(&Report {
            rows: a.rows,
            dims: a.dims,
            kept_in: a.keep.as_ref().map(|d| d.display().to_string()),
            compress: &s,
            eval: &r,
            decompress: &d,
            random_access_row: c.rows() / 2,
            bench: &b,
        })?;
        return Ok(exit_codes::OK);
    }
    outln!("5. every codec on the same sample (`vectro bench`):");
    super::bench::print_table(&b);
    if a.keep.is_none() {
        outln!("(files removed; pass --keep DIR to keep them)");
    }
    Ok(exit_codes::OK)
}

/// `demo --json`: what each step reported, as the step's own command prints it with
/// `--json` (`compress`, `eval`, `decompress`, `bench`).
#[derive(Serialize)]
struct Report<'a> {
    rows: u64,
    dims: u64,
    /// The directory the files were kept in (`--keep`); `null` when they were removed.
    kept_in: Option<String>,
    compress: &'a CompressSummary,
    eval: &'a EvalReport,
    decompress: &'a vectro::DecompressSummary,
    /// The row read back by random access.
    random_access_row: u64,
    bench: &'a BenchReport,
}
