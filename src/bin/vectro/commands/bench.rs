use std::sync::atomic::AtomicBool;

use vectro::GenerateOptions;
use vectro::eval::bench::{BenchOptions, BenchReport, bench, load_npy};

use super::print_json;
use crate::cli::BenchArgs;
use crate::exit_codes;
use crate::progress::Bar;

/// Rows generated when neither --in nor --rows is given.
const DEFAULT_ROWS: u64 = 20_000;

/// Rows of --in used when --rows is not given. bench holds its data in memory, with a
/// reconstruction per codec: all of a terabyte dump would exhaust RAM (a 2 GiB input took
/// 5.3 GB), while 100,000 rows measure size, speed and recall well.
const DEFAULT_IN_ROWS: u64 = 100_000;

pub fn run(a: BenchArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let start = std::time::Instant::now();
    let queries = query_count(&a)?;
    let quiet = a.common.quiet || a.common.json;
    let (data, dims) = match &a.input {
        Some(p) => {
            let input = vectro::source::InputOptions {
                column: a.column.clone(),
            };
            let source = vectro::source::Input::open_file(p, &input)?;
            let all = source.header().rows;
            let rows = a.rows.unwrap_or(DEFAULT_IN_ROWS.min(all));
            if rows < all && a.rows.is_none() {
                noteln!(
                    "vectro: bench uses the first {rows} of the {all} rows of {} (held in memory); --rows N changes that",
                    p.display()
                );
            }
            (source.read_head(rows)?, source.header().dims as usize)
        }
        None => {
            let dir = tempfile::tempdir()?;
            let npy = dir.path().join("bench.npy");
            let g = GenerateOptions {
                rows: a.rows.unwrap_or(DEFAULT_ROWS),
                dims: a.dims,
                seed: a.seed,
                threads: a.common.threads,
                ..GenerateOptions::default()
            };
            vectro::generate::generate(&npy, &g, true, &Bar::new(quiet, "generate"), cancel)?;
            load_npy(&npy, None)?
        }
    };
    let opts = BenchOptions {
        codecs: a.codecs,
        queries,
        k: a.k,
        rerank: a.rerank,
        metric: a.metric,
        runs: a.runs,
        seed: a.seed,
        threads: a.common.threads,
        codebooks: a.codebook,
    };
    let r = bench(&data, dims, &opts, &Bar::new(quiet, "bench"), cancel)?;
    if a.common.json {
        let mut v = serde_json::to_value(&r)?;
        v["input"] = a.input.as_ref().map(|p| p.display().to_string()).into();
        v["seconds"] = start.elapsed().as_secs_f64().into();
        print_json(&v)?;
    } else {
        print_table(&r);
    }
    Ok(exit_codes::OK)
}

/// `--query-count`, or the number the old `--queries N` gave (with a note); bench
/// samples its queries from the data, so a file there is refused.
fn query_count(a: &BenchArgs) -> anyhow::Result<usize> {
    let Some(q) = &a.queries else {
        return Ok(a.query_count);
    };
    match q.parse::<usize>() {
        Ok(n) => {
            noteln!("vectro: note: bench --queries N is deprecated: write --query-count {n}");
            Ok(n)
        }
        Err(_) => Err(vectro::Error::Config(format!(
            "bench --queries takes no file ('{q}'): bench samples its queries from the data; \
             give their number with --query-count N, or measure a queries file with `vectro eval INPUT CONTAINER --queries FILE`"
        ))
        .into()),
    }
}

pub fn print_table(r: &BenchReport) {
    outln!(
        "{} rows x {} dims; {} {} queries; recall@{}, rescored from the top {}; median of {} runs, one thread (training apart)",
        r.rows,
        r.dims,
        r.queries,
        r.metric,
        r.k,
        r.rerank,
        r.runs
    );
    outln!(
        "{:<16} {:>9} {:>7} {:>8} {:>12} {:>12} {:>10} {:>9} {:>9}",
        "codec",
        "B/vector",
        "ratio",
        "train s",
        "enc MB/s",
        "dec MB/s",
        "cos mean",
        "recall",
        "rescored"
    );
    for c in &r.codecs {
        outln!(
            "{:<16} {:>9.1} {:>7.2} {:>8} {:>12.0} {:>12.0} {:>10.6} {:>9.4} {:>9.4}",
            c.codec,
            c.bytes_per_vector,
            c.ratio,
            c.train_seconds
                .map_or_else(|| "-".to_string(), |s| format!("{s:.2}")),
            c.compress_mb_s,
            c.decompress_mb_s,
            c.cosine_mean,
            c.recall,
            c.rescored_recall
        );
    }
}
