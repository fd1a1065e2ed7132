use std::path::Path;
use std::sync::atomic::AtomicBool;

use vectro::report::{Outputs, Report, ReportOptions, labels, read_peers, report, report_codecs};

use super::print_json;
use crate::cli::ReportArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: ReportArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let orig = a.orig.clone().expect("resolved");
    let outputs = Outputs {
        html: a
            .output
            .clone()
            .unwrap_or_else(|| Outputs::default_html(&orig, &a.containers)),
        svg_dir: a.svg_dir.clone(),
        png: a.png,
        overwrite: a.force,
    };
    // Refused before the long passes, not after.
    outputs.check(&labels(&a.containers, &a.codecs))?;
    let opts = ReportOptions {
        k: a.k,
        sample_queries: a.sample_queries,
        seed: a.seed,
        metric: a.metric,
        rerank: a.rerank,
        threads: a.common.threads,
        pca_sample: a.pca_sample,
        movement_queries: a.movement_queries,
        sample_rows: a.rows,
        peers: match &a.peers {
            Some(p) => read_peers(p, a.k)?,
            None => Vec::new(),
        },
        command: command_line(),
        input: vectro::source::InputOptions {
            column: a.column.clone(),
        },
    };
    let bar = Bar::new(a.common.quiet || a.common.json, "report");
    let r = if a.codecs.is_empty() {
        report(&orig, &a.containers, &opts, &bar, cancel)?
    } else {
        report_codecs(&orig, &a.codecs, &opts, &bar, cancel)?
    };
    outputs.write(&r)?;
    if a.common.json {
        let v = serde_json::to_value(Output {
            html: &outputs.html,
            report: &r,
        })?;
        print_json(&super::rename_keys(
            v,
            &[("original", "input"), ("html", "output")],
        ))?;
    } else {
        print_summary(&r, &outputs);
    }
    Ok(exit_codes::OK)
}

#[derive(serde::Serialize)]
struct Output<'a> {
    html: &'a Path,
    #[serde(flatten)]
    report: &'a Report,
}

/// The command line as typed, quoted for a POSIX shell where needed.
fn command_line() -> String {
    let mut words = vec!["vectro".to_string()];
    for a in std::env::args_os().skip(1) {
        let a = a.to_string_lossy();
        let plain = !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
        words.push(if plain {
            a.into_owned()
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        });
    }
    words.join(" ")
}

fn print_summary(r: &Report, out: &Outputs) {
    outln!(
        "{:<28} {:>9} {:>10} {:>10} {:>9} {:>9}",
        "container / codec",
        "B/vector",
        "cos mean",
        "cos p1",
        format!("recall@{}", r.k),
        "rescored"
    );
    for e in &r.entries {
        outln!(
            "{:<28} {:>9.1} {:>10.6} {:>10.6} {:>9.4} {:>9.4}",
            e.label,
            e.bytes_per_vector,
            e.eval.cosine_mean,
            e.eval.cosine_p1,
            e.recall,
            e.rescored_recall
        );
    }
    outln!("wrote {}", out.html.display());
    if let Some(d) = &out.svg_dir {
        let what = if out.png { "SVG and PNG" } else { "SVG" };
        outln!("wrote the figures as {what} into {}", d.display());
    }
}
