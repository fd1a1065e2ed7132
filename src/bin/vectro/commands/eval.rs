use std::sync::atomic::AtomicBool;

use vectro::eval::{EvalOptions, EvalReport, evaluate};

use super::{human_bytes, print_json};
use crate::cli::EvalArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: EvalArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let opts = EvalOptions {
        k: a.k,
        sample_queries: a.sample_queries,
        seed: a.seed,
        threads: a.common.threads,
    };
    let bar = Bar::new(a.common.quiet || a.common.json, "eval");
    let r = evaluate(&a.orig, &a.comp, &opts, &bar, cancel)?;
    if a.common.json {
        print_json(&r)?;
    } else {
        print_table(&r);
    }
    Ok(exit_codes::OK)
}

pub fn print_table(r: &EvalReport) {
    println!("rows x dims        {} x {}", r.rows, r.dims);
    println!(
        "size               {} -> {} ({:.2}x, {:.2} bits/dim)",
        human_bytes(r.original_bytes),
        human_bytes(r.compressed_bytes),
        r.ratio,
        r.bits_per_dim
    );
    println!("cosine mean / min  {:.7} / {:.7}", r.cosine_mean, r.cosine_min);
    println!("mse / nmse         {:.3e} / {:.3e}", r.mse, r.nmse);
    println!("max abs error      {:.3e}", r.max_abs_error);
    for rec in &r.recall {
        println!("recall@{:<11} {:.4}  ({} queries)", rec.k, rec.recall, r.queries);
    }
}
