use std::sync::atomic::AtomicBool;

use vectro::codec::auto::Target;
use vectro::output::Durability;
use vectro::pipeline::shard::Shard;
use vectro::{CompressOptions, CompressSummary};

use super::{human_bytes, print_json};
use crate::cli::CompressArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: CompressArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let shard = a
        .shard
        .as_deref()
        .map(|s| Shard::resolve(s, a.shards, |k| std::env::var(k).ok()))
        .transpose()?;
    let output = shard.map_or(a.output.clone(), |s| s.expand_output(&a.output));
    let opts = CompressOptions {
        codec: a.codec,
        threads: a.common.threads,
        chunk_rows: a.chunk_rows,
        overwrite: a.force,
        durability: if a.no_fsync {
            Durability::None
        } else {
            Durability::Fsync
        },
        shard,
        zstd: a.zstd,
        target: match (a.min_cosine, a.min_recall) {
            (Some(x), _) => Some(Target::MinCosine(x)),
            (_, Some(x)) => Some(Target::MinRecall(x)),
            _ => None,
        },
        sample: a.sample,
    };
    let bar = Bar::new(a.common.quiet || a.common.json, "compress");
    let s = vectro::compress(&a.input, &output, &opts, &bar, cancel)?;
    // With --out -, stdout carries the container: the summary goes to stderr.
    if output.as_os_str() == "-" {
        eprintln!("{}", summary_line(&s));
    } else if a.common.json {
        print_json(&s)?;
    } else {
        println!("{}", summary_line(&s));
    }
    Ok(exit_codes::OK)
}

pub fn summary_line(s: &CompressSummary) -> String {
    if s.already_complete {
        return format!(
            "shard {} is already complete and verified: {} ({} rows); nothing to do",
            s.shard.as_deref().unwrap_or("?"),
            s.output.display(),
            s.rows
        );
    }
    let shard = s
        .shard
        .as_ref()
        .map_or(String::new(), |k| format!(" (shard {k})"));
    format!(
        "compressed {} rows x {} dims with {}{}{shard}: {} -> {} ({:.2}x) in {:.2} s, {:.0} MB/s",
        s.rows,
        s.dims,
        s.codec,
        s.zstd.map(|l| format!(" + zstd {l}")).unwrap_or_default(),
        human_bytes(s.input_bytes),
        human_bytes(s.output_bytes),
        s.ratio,
        s.seconds,
        s.mb_per_s
    )
}
