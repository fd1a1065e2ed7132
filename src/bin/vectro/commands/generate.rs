use std::sync::atomic::AtomicBool;

use vectro::GenerateOptions;

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
    let bar = Bar::new(a.common.quiet, "generate");
    vectro::generate::generate(&a.output, &opts, a.force, &bar, cancel)?;
    if !a.common.quiet {
        eprintln!("wrote {} rows x {} dims to {}", a.rows, a.dims, a.output.display());
    }
    Ok(exit_codes::OK)
}
