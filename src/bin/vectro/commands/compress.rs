use std::sync::atomic::AtomicBool;

use vectro::output::Durability;
use vectro::{CompressOptions, CompressSummary};

use super::{human_bytes, print_json};
use crate::cli::CompressArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: CompressArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let opts = CompressOptions {
        codec: a.codec,
        threads: a.common.threads,
        chunk_rows: a.chunk_rows,
        overwrite: a.force,
        durability: if a.no_fsync { Durability::None } else { Durability::Fsync },
        codebook: a.codebook,
        train_rows: a.train_rows,
    };
    let bar = Bar::new(a.common.quiet || a.common.json, "compress");
    let s = vectro::compress(&a.input, &a.output, &opts, &bar, cancel)?;
    if a.common.json {
        print_json(&s)?;
    } else {
        println!("{}", summary_line(&s));
    }
    Ok(exit_codes::OK)
}

pub fn summary_line(s: &CompressSummary) -> String {
    format!(
        "compressed {} rows x {} dims with {}: {} -> {} ({:.2}x) in {:.2} s, {:.0} MB/s",
        s.rows,
        s.dims,
        s.codec,
        human_bytes(s.input_bytes),
        human_bytes(s.output_bytes),
        s.ratio,
        s.seconds,
        s.mb_per_s
    )
}
