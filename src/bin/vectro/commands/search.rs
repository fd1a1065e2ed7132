//! `vectro search`: the k nearest rows of each query, scored on the compressed codes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, bail};
use vectro::output::{AtomicOutput, Durability, check_not_input};
use vectro::search::{Hits, SearchOptions, read_queries, search, search_rescored};
use vectro::{Container, Error};

use crate::cli::{SearchArgs, SearchFormat};
use crate::exit_codes;

/// Candidates re-ranked with `--rescore-with`, or on a tiered file, and no `--rescore`.
const DEFAULT_RESCORE: usize = 100;

pub fn run(a: SearchArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let c = Container::open(&a.file)?;
    let fine = a.rescore_with.as_ref().map(Container::open).transpose()?;
    let output = a.output.as_ref().filter(|p| p.as_os_str() != "-");
    if a.format == SearchFormat::Npy && output.is_none() {
        bail!(Error::Config(
            "--format npy writes two files: give --out PREFIX (PREFIX.ids.npy, PREFIX.scores.npy)"
                .into()
        ));
    }
    let (queries, dims) = read_queries(&a.queries)?;
    if dims != c.dims() {
        bail!(Error::Mismatch(format!(
            "{} has {dims}-dimensional queries but {} holds {}-dimensional rows",
            a.queries.display(),
            a.file.display(),
            c.dims()
        )));
    }
    let filter = a.filter_ids.as_deref().map(parse_ids).transpose()?;
    let opts = SearchOptions {
        k: a.k,
        metric: a.metric,
        threads: a.common.threads,
        filter,
        hamming: a.hamming,
        fast_scan_candidates: a.fast_scan_candidates,
        memory_budget: a.memory.saturating_mul(1 << 20),
        rescore: a
            .rescore
            .unwrap_or(if fine.is_some() || c.tier_count() > 1 {
                DEFAULT_RESCORE
            } else {
                0
            }),
    };
    let hits = match &fine {
        Some(f) => search_rescored(&c, f, &queries, &opts, cancel)?,
        None => search(&c, &queries, &opts, cancel)?,
    };
    match (a.format, output) {
        (SearchFormat::Npy, Some(prefix)) => write_npy(&hits, prefix, &a, a.force)?,
        (format, Some(path)) => {
            check_not_input(path, inputs(&a))?;
            let out = AtomicOutput::create(path, a.force, Durability::Fsync)?;
            let mut w = out.writer();
            write_text(&hits, format, &mut w)
                .and_then(|_| Ok(w.flush()?))
                .map_err(super::on_file(out.tmp_path()))?;
            drop(w);
            out.commit()?;
        }
        (format, None) => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            write_text(&hits, format, &mut w)
                .and_then(|_| Ok(w.flush()?))
                .context("writing to stdout")?;
        }
    }
    Ok(exit_codes::OK)
}

fn inputs(a: &SearchArgs) -> Vec<&Path> {
    let mut v = vec![a.file.as_path(), a.queries.as_path()];
    if let Some(f) = &a.rescore_with {
        v.push(f);
    }
    v
}

/// `--filter-ids`: `5,17,100..110,7..=9`, or `@FILE` with one id per line.
fn parse_ids(spec: &str) -> anyhow::Result<Vec<u64>> {
    if let Some(path) = spec.strip_prefix('@') {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(path, "reading the --filter-ids file", e))?;
        let mut ids = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            ids.push(line.parse::<u64>().map_err(|_| {
                Error::Config(format!(
                    "{path}, line {}: '{line}' is not an id (one non-negative integer a line)",
                    n + 1
                ))
            })?);
        }
        return Ok(ids);
    }
    let ranges = vectro::format::rows::parse(spec)
        .map_err(|e| Error::Config(e.to_string().replacen("--rows", "--filter-ids", 1)))?;
    Ok(ranges.into_iter().flatten().collect())
}

/// JSON Lines or a table.
fn write_text(hits: &Hits, format: SearchFormat, w: &mut impl Write) -> anyhow::Result<()> {
    if format == SearchFormat::Table {
        writeln!(
            w,
            "{:>7} {:>5} {:>12} {:>14}",
            "query", "rank", "id", hits.score
        )?;
    }
    let mut line = String::new();
    for i in 0..hits.len() {
        let (ids, scores) = hits.query(i);
        if format == SearchFormat::Table {
            for (r, (id, s)) in ids.iter().zip(scores).enumerate() {
                writeln!(w, "{i:>7} {r:>5} {id:>12} {s:>14.6}")?;
            }
            continue;
        }
        line.clear();
        line.push_str(&format!("{{\"query\":{i},\"ids\":["));
        for (j, id) in ids.iter().enumerate() {
            if j > 0 {
                line.push(',');
            }
            line.push_str(&id.to_string());
        }
        line.push_str("],\"scores\":[");
        let mut buf = ryu::Buffer::new();
        for (j, s) in scores.iter().enumerate() {
            if j > 0 {
                line.push(',');
            }
            line.push_str(buf.format(*s));
        }
        line.push_str("]}\n");
        w.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// `PREFIX.ids.npy` (int64, -1 for no result) and `PREFIX.scores.npy` (float32, NaN).
fn write_npy(hits: &Hits, prefix: &Path, a: &SearchArgs, force: bool) -> anyhow::Result<()> {
    let base = prefix.to_string_lossy();
    let base = base.strip_suffix(".npy").unwrap_or(&base);
    let ids_path = PathBuf::from(format!("{base}.ids.npy"));
    let scores_path = PathBuf::from(format!("{base}.scores.npy"));
    let (n, k) = (hits.len() as u64, hits.k as u64);
    // Both targets are checked before either is written: no half of a pair left behind.
    for p in [&ids_path, &scores_path] {
        check_not_input(p, inputs(a))?;
        vectro::output::check_target(p, force)?;
    }
    let mut ids = npy_header("<i8", n, k);
    for &id in &hits.ids {
        let v = if id == Hits::NONE { -1i64 } else { id as i64 };
        ids.extend_from_slice(&v.to_le_bytes());
    }
    let mut scores = npy_header("<f4", n, k);
    for s in &hits.scores {
        scores.extend_from_slice(&s.to_le_bytes());
    }
    vectro::output::write_file(&ids_path, &ids, force)?;
    vectro::output::write_file(&scores_path, &scores, force)?;
    Ok(())
}

/// A version 1.0 `.npy` header for a C-order `rows × cols` matrix of `descr`, padded to 64
/// bytes as numpy pads it.
fn npy_header(descr: &str, rows: u64, cols: u64) -> Vec<u8> {
    let dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}
