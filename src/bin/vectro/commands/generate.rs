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
    let output = a.output.clone().expect("resolved");
    vectro::generate::generate(&output, &opts, a.force, &bar, cancel)?;
    if a.common.json {
        let bytes = std::fs::metadata(&output).map_or(0, |m| m.len());
        print_json(&serde_json::json!({
            "output": output.display().to_string(),
            "rows": a.rows,
            "dims": a.dims,
            "output_bytes": bytes,
            "seconds": start.elapsed().as_secs_f64(),
        }))?;
    } else {
        outln!(
            "wrote {} rows x {} dims to {} in {:.2} s",
            a.rows,
            a.dims,
            output.display(),
            start.elapsed().as_secs_f64()
        );
    }
    Ok(exit_codes::OK)
}
