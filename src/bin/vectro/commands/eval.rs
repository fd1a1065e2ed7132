use std::sync::atomic::AtomicBool;

use serde::Serialize;
use vectro::eval::{EvalOptions, EvalReport, evaluate};

use super::{human_bytes, print_json};
use crate::cli::{EvalArgs, EvalSearch};
use crate::exit_codes;
use crate::progress::Bar;

/// One quality gate and how the run fared against it.
#[derive(Debug, Serialize)]
pub struct Gate {
    /// The flag, e.g. `--min-cosine`.
    pub flag: &'static str,
    /// The measured metric, as named in the JSON report (e.g. `recall@10`).
    pub metric: String,
    /// The limit given.
    pub limit: f64,
    /// The measured value.
    pub value: f64,
    /// Whether the value meets the limit.
    pub passed: bool,
}

#[derive(Serialize)]
struct Output<'a> {
    input: &'a std::path::Path,
    container: &'a std::path::Path,
    #[serde(flatten)]
    report: &'a EvalReport,
    gates: &'a [Gate],
}

/// eval's keys in the one vocabulary of `--json` (docs/cli.md).
pub const RENAMES: &[(&str, &str)] = &[
    ("original_bytes", "input_bytes"),
    ("compressed_bytes", "container_bytes"),
];

pub fn run(a: EvalArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let opts = EvalOptions {
        k: a.k.clone(),
        sample_queries: a.sample_queries,
        queries: a.queries.clone(),
        seed: a.seed,
        threads: a.common.threads,
        metric: a.metric,
        rerank: a.rerank,
        exact_float_search: a.search == EvalSearch::ExactFloat,
        input: vectro::source::InputOptions {
            column: a.column.clone(),
        },
    };
    if a.min_recall.is_some() && a.queries.is_none() && a.sample_queries == 0 {
        return Err(vectro::Error::Config(
            "--min-recall needs queries: drop --sample-queries 0 or pass --queries".into(),
        )
        .into());
    }
    let bar = Bar::new(a.common.quiet || a.common.json, "eval");
    let orig = a.orig_pos.clone().expect("resolved");
    let comp = a.comp_pos.clone().expect("resolved");
    let r = evaluate(&orig, &comp, &opts, &bar, cancel)?;
    let gates = gates(&a, &r);
    if a.common.json {
        let v = serde_json::to_value(Output {
            input: &orig,
            container: &comp,
            report: &r,
            gates: &gates,
        })?;
        print_json(&super::rename_keys(v, RENAMES))?;
    } else {
        print_table(&r);
    }
    let failed: Vec<&Gate> = gates.iter().filter(|g| !g.passed).collect();
    let msg: Vec<String> = failed
        .iter()
        .map(|g| {
            format!(
                "quality gate failed: {} = {} does not meet {} {}",
                g.metric, g.value, g.flag, g.limit
            )
        })
        .collect();
    if !msg.is_empty() && crate::out::json() {
        crate::print_json_error(&msg.join("; "), exit_codes::QUALITY_GATE);
    } else {
        for m in &msg {
            errln!("vectro: {m}");
        }
    }
    Ok(if failed.is_empty() {
        exit_codes::OK
    } else {
        exit_codes::QUALITY_GATE
    })
}

/// The gates asked for on the command line, checked against the report. NaN never passes.
pub fn gates(a: &EvalArgs, r: &EvalReport) -> Vec<Gate> {
    let mut g = Vec::new();
    if let Some(limit) = a.min_cosine {
        g.push(Gate {
            flag: "--min-cosine",
            metric: "cosine_mean".into(),
            limit,
            value: r.cosine_mean,
            passed: r.cosine_mean >= limit,
        });
    }
    if let Some(limit) = a.min_recall {
        for rec in &r.recall {
            g.push(Gate {
                flag: "--min-recall",
                metric: format!("recall@{}", rec.k),
                limit,
                value: rec.recall,
                passed: rec.recall >= limit,
            });
        }
    }
    if let Some(limit) = a.max_nmse {
        g.push(Gate {
            flag: "--max-nmse",
            metric: "nmse".into(),
            limit,
            value: r.nmse,
            passed: r.nmse <= limit,
        });
    }
    g
}

pub fn print_table(r: &EvalReport) {
    outln!("rows x dims        {} x {}", r.rows, r.dims);
    outln!(
        "size               {} -> {} ({:.2}x, {:.2} bits/dim)",
        human_bytes(r.original_bytes),
        human_bytes(r.compressed_bytes),
        r.ratio,
        r.bits_per_dim
    );
    outln!(
        "cosine mean / min  {:.7} / {:.7}",
        r.cosine_mean,
        r.cosine_min
    );
    outln!(
        "cosine p1/p5/p50   {:.7} / {:.7} / {:.7}",
        r.cosine_p1,
        r.cosine_p5,
        r.cosine_median
    );
    outln!("mse / nmse         {:.3e} / {:.3e}", r.mse, r.nmse);
    outln!("max abs error      {:.3e}", r.max_abs_error);
    if r.queries == 0 {
        outln!("recall             (no queries)");
    } else {
        outln!(
            "recall ({}, {} {} queries, {} search, rescored = top {} re-ranked with the originals)",
            r.metric,
            r.queries,
            r.query_source,
            r.search,
            r.rerank
        );
    }
    for rec in &r.recall {
        outln!(
            "  recall@{:<10} {:.4}   rescored {:.4}",
            rec.k,
            rec.recall,
            rec.rescored
        );
    }
    outln!("time               {:.2} s", r.seconds);
}
