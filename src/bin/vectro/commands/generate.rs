use std::sync::atomic::AtomicBool;

use vectro::GenerateOptions;

use super::print_json;
use crate::cli::GenerateArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: GenerateArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let opts = GenerateOptions {
        rows: a.rows,
        dims: a.dims,
        clusters: a.clusters,
        seed: a.seed,
        threads: a.common.threads,
    };
    let bar = Bar::new(a.common.quiet || a.common.json, "generate");
    let start = std::time::Instant::now();
    vectro::generate::generate(&a.output, &opts, a.force, &bar, cancel)?;
    if a.common.json {
        let bytes = std::fs::metadata(&a.output).map_or(0, |m| m.len());
        print_json(&serde_json::json!({
            "output": a.output.display().to_string(),
            "rows": a.rows,
            "dims": a.dims,
            "output_bytes": bytes,
            "seconds": start.elapsed().as_secs_f64(),
        }))?;
    } else if !a.common.quiet {
        errln!(
            "wrote {} rows x {} dims to {}",
            a.rows,
            a.dims,
            a.output.display()
        );
    }
    Ok(exit_codes::OK)
}
