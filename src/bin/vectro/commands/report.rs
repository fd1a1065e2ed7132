use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use vectro::report::{Report, ReportOptions, html, read_peers, report, report_codecs, svg};

use super::print_json;
use crate::cli::ReportArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: ReportArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let out = a.output.clone().unwrap_or_else(|| default_out(&a));
    // Refused before the long passes, not after.
    vectro::output::check_target(&out, a.force)?;
    let labels: Vec<String> = if a.codecs.is_empty() {
        a.containers.iter().map(|c| label(c)).collect()
    } else {
        a.codecs.clone()
    };
    let svgs = a.svg_dir.as_ref().map(|dir| {
        let mut names = vec![dir.join("recall_vs_bytes.svg")];
        for (i, l) in labels.iter().enumerate() {
            let stem = svg::entry_stem(i, l);
            for f in ["cosine", "error_norm", "per_dim", "pca", "movement"] {
                names.push(dir.join(format!("{stem}-{f}.svg")));
            }
        }
        names
    });
    for p in svgs.iter().flatten() {
        vectro::output::check_target(p, a.force)?;
    }
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
        report(&a.orig, &a.containers, &opts, &bar, cancel)?
    } else {
        report_codecs(&a.orig, &a.codecs, &opts, &bar, cancel)?
    };
    if let Some(dir) = &a.svg_dir {
        std::fs::create_dir_all(dir).map_err(|e| vectro::Error::io(dir, "creating", e))?;
        for (stem, text) in svg::all(&r, true) {
            vectro::output::write_file(&dir.join(format!("{stem}.svg")), text.as_bytes(), a.force)?;
        }
    }
    vectro::output::write_file(&out, html::render(&r).as_bytes(), a.force)?;
    if a.common.json {
        print_json(&Output {
            html: &out,
            report: &r,
        })?;
    } else {
        print_summary(&r, &out, a.svg_dir.as_deref());
    }
    Ok(exit_codes::OK)
}

#[derive(serde::Serialize)]
struct Output<'a> {
    html: &'a Path,
    #[serde(flatten)]
    report: &'a Report,
}

/// `x.vectro` -> `x.report.html`, beside the first container (or the original).
fn default_out(a: &ReportArgs) -> PathBuf {
    let base = a.containers.first().unwrap_or(&a.orig);
    base.with_extension("report.html")
}

fn label(c: &Path) -> String {
    c.file_name()
        .map_or_else(|| c.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The command line as typed, quoted for a POSIX shell where needed.
fn command_line() -> String {
    let mut args = std::env::args_os();
    let mut words = vec!["vectro".to_string()];
    args.next();
    for a in args {
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

fn print_summary(r: &Report, out: &Path, svg_dir: Option<&Path>) {
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
    outln!("wrote {}", out.display());
    if let Some(d) = svg_dir {
        outln!("wrote the figures as SVG into {}", d.display());
    }
}
