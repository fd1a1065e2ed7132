//! `vectro get`: decode chosen rows and print them, or write them to a file.

use std::io::{IsTerminal, Write};
use std::ops::Range;

use anyhow::{Context, bail};
use std::collections::HashMap;
use vectro::output::{AtomicOutput, Durability, check_not_input};

use vectro::format::{Id, IdKind};
use vectro::stream::{push_f32, push_jsonl_row_id, push_payload_fields};
use vectro::{Container, Error};

use crate::cli::{GetArgs, GetFormat};
use crate::exit_codes;

/// Rows decoded at a time, at most, so that `--rows 0..100000000` streams in bounded memory.
const BATCH: usize = 4096;
/// Decoded floats per batch, at most: wide rows come in smaller batches, so that the
/// decoded rows and their text stay a few MiB whatever the dims.
const BATCH_FLOATS: usize = 1 << 18;

pub fn run(a: GetArgs) -> anyhow::Result<i32> {
    let c = Container::open(&a.file)?;
    let rows = match (&a.rows, &a.ids) {
        (Some(spec), _) => {
            Selection::Ranges(local_ranges(&c, &vectro::format::rows::parse(spec)?)?)
        }
        (None, Some(spec)) => Selection::Rows(lookup_ids(&c, spec)?),
        (None, None) => unreachable!("clap requires --rows or --ids"),
    };
    // `--out -` is stdout, as in the commands that stream, rather than a file named `-`.
    let output = a.output.as_ref().filter(|p| p.as_os_str() != "-");
    if a.format == GetFormat::Npy && output.is_none() && std::io::stdout().is_terminal() {
        bail!(Error::Config(
            "--format npy writes binary: give --out FILE or redirect stdout".into()
        ));
    }
    match output {
        Some(path) => {
            check_not_input(path, [a.file.as_path()])?;
            let out = AtomicOutput::create(path, a.force, Durability::Fsync)?;
            let mut w = out.writer();
            write_rows(&c, &rows, a.format, &mut w)
                .and_then(|_| Ok(w.flush()?))
                .map_err(super::on_file(out.tmp_path()))?;
            drop(w);
            out.commit()?;
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            write_rows(&c, &rows, a.format, &mut w)
                .and_then(|_| Ok(w.flush()?))
                .context("writing to stdout")?;
        }
    }
    Ok(exit_codes::OK)
}

/// The rows to print, numbered in the file from 0.
enum Selection {
    /// From `--rows`: streamed, never collected (`--rows 0..100000000`).
    Ranges(Vec<Range<u64>>),
    /// From `--ids`: the rows found, in the order the ids were given.
    Rows(Vec<u64>),
}

impl Selection {
    fn len(&self) -> u64 {
        match self {
            Selection::Ranges(r) => r.iter().map(|r| r.end - r.start).sum(),
            Selection::Rows(r) => r.len() as u64,
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = u64> + '_> {
        match self {
            Selection::Ranges(r) => Box::new(r.iter().flat_map(|r| r.clone())),
            Selection::Rows(r) => Box::new(r.iter().copied()),
        }
    }
}

/// `--rows` ranges, numbered in the whole input, as rows of this file: a shard's rows are
/// numbered from its first row (metadata `shard_first_row`).
fn local_ranges(c: &Container, ranges: &[Range<u64>]) -> Result<Vec<Range<u64>>, Error> {
    let (base, n) = (c.first_row(), c.rows());
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        if r.start < base || r.end > base + n {
            let bad = if r.start < base {
                r.start
            } else {
                r.end.max(base + n + 1) - 1
            };
            let bad = bad.max(r.start);
            let msg = match (base, c.metadata().get("shard")) {
                (0, None) => format!(
                    "--rows: row {} is out of range: {} has {n} rows (numbered 0..{n})",
                    r.start.max(n),
                    c.path().display(),
                ),
                (_, shard) => format!(
                    "--rows: row {bad} is out of range: {} holds rows {base}..{} of the whole input{}; \
                     rows are numbered in the whole input",
                    c.path().display(),
                    base + n,
                    shard.map_or(String::new(), |s| format!(" (shard {s})")),
                ),
            };
            return Err(Error::Config(msg));
        }
        out.push(r.start - base..r.end - base);
    }
    Ok(out)
}

/// The rows of `c` whose id is in the comma-separated `spec`, in the order the ids are
/// given (every row carrying an id, in row order): one scan of the ids, a chunk at a time.
fn lookup_ids(c: &Container, spec: &str) -> Result<Vec<u64>, Error> {
    let items: Vec<&str> = spec.split(',').map(str::trim).collect();
    if let Some(k) = items.iter().position(|s| s.is_empty()) {
        return Err(Error::Config(format!(
            "--ids: item {} of '{spec}' is empty; expected a comma-separated list of ids",
            k + 1
        )));
    }
    let numeric = c.id_kind() != IdKind::Str;
    let mut wanted: HashMap<String, Vec<u64>> = HashMap::new();
    for s in &items {
        if numeric && s.parse::<u64>().is_err() {
            return Err(Error::Config(format!(
                "--ids: '{s}' is not an unsigned integer, and {} holds {}",
                c.path().display(),
                match c.id_kind() {
                    IdKind::None => "no ids (its rows are known by their numbers)",
                    _ => "u64 ids",
                }
            )));
        }
        wanted.insert(s.to_string(), Vec::new());
    }
    if c.id_kind() == IdKind::None {
        let (base, n) = (c.first_row(), c.rows());
        for (s, rows) in wanted.iter_mut() {
            let id: u64 = s.parse().expect("checked");
            if (base..base + n).contains(&id) {
                rows.push(id - base);
            }
        }
    } else {
        for (ci, e) in c.chunks().iter().enumerate() {
            let ids = c.ids(e.first_row..e.first_row + e.rows)?;
            for j in 0..ids.len() {
                let key = match ids.get(j) {
                    Id::U64(v) => std::borrow::Cow::Owned(v.to_string()),
                    Id::Str(s) => std::borrow::Cow::Borrowed(s),
                };
                if let Some(rows) = wanted.get_mut(key.as_ref()) {
                    rows.push(e.first_row + j as u64);
                }
            }
            c.release_chunks(ci..ci + 1);
        }
    }
    let mut missing: Vec<&str> = items
        .iter()
        .copied()
        .filter(|s| wanted[*s].is_empty())
        .collect();
    missing.dedup();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().copied().take(20).collect();
        return Err(Error::Mismatch(format!(
            "--ids: {} of the ids asked for {} not in {}: {}{}",
            missing.len(),
            if missing.len() == 1 { "is" } else { "are" },
            c.path().display(),
            shown.join(", "),
            if missing.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        )));
    }
    Ok(items
        .iter()
        .flat_map(|s| wanted[*s].iter().copied())
        .collect())
}

fn write_rows(
    c: &Container,
    selection: &Selection,
    format: GetFormat,
    w: &mut impl Write,
) -> anyhow::Result<()> {
    let d = c.dims();
    let total = selection.len();
    match format {
        GetFormat::Npy => w.write_all(&vectro::npy::write_header(total, d as u64))?,
        GetFormat::Json => w.write_all(b"[\n")?,
        GetFormat::Csv => {
            let head: Vec<String> = (0..d).map(|k| format!("d{k}")).collect();
            writeln!(w, "id,{}", head.join(","))?;
        }
    }
    let mut ids = selection.iter().peekable();
    let per_batch = (BATCH_FLOATS / d.max(1)).clamp(1, BATCH);
    let chunk_rows = c.header().chunk_rows as u64;
    let mut batch = Vec::with_capacity(per_batch);
    let mut rows = Vec::new();
    let mut text = Vec::new();
    // The payload columns of the last chunk read: rows come in runs from one chunk.
    let mut payload: Option<(usize, arrow_array::RecordBatch)> = None;
    while ids.peek().is_some() {
        batch.clear();
        batch.extend(ids.by_ref().take(per_batch));
        rows.resize(batch.len() * d, 0f32);
        c.get_many(&batch, &mut rows)?;
        // The mapped pages read so far would otherwise stay resident, and memory grow
        // with the rows asked for. A chunk asked for again later is simply read again.
        let lo = batch.iter().min().map_or(0, |&r| r / chunk_rows) as usize;
        let hi = batch.iter().max().map_or(0, |&r| r / chunk_rows) as usize;
        text.clear();
        for (k, (&row, v)) in batch.iter().zip(rows.chunks_exact(d)).enumerate() {
            // The stored id, or the row's number in the whole input.
            let id = match format {
                GetFormat::Npy => None,
                _ => Some(c.ids(row..row + 1)?),
            };
            let id = id.as_ref().map(|i| i.get(0));
            let global = row + c.first_row();
            match (format, id) {
                (GetFormat::Npy, _) => text.extend(v.iter().flat_map(|x| x.to_le_bytes())),
                (GetFormat::Json, Some(id)) => {
                    let last = ids.peek().is_none() && k + 1 == batch.len();
                    push_jsonl_row_id(&mut text, id, v)
                        .map_err(|col| non_finite(c, global, col))?;
                    if c.has_payload() {
                        let ci = (row / chunk_rows) as usize;
                        if payload.as_ref().is_none_or(|p| p.0 != ci) {
                            let b = c.chunk_payload_columns(ci)?.expect("has payload columns");
                            payload = Some((ci, b));
                        }
                        let b = &payload.as_ref().expect("read above").1;
                        push_payload_fields(&mut text, b, (row % chunk_rows) as usize).map_err(
                            |m| {
                                Error::Config(format!(
                                    "row {global}: {m}; use export --format parquet"
                                ))
                            },
                        )?;
                    }
                    if !last {
                        text.insert(text.len() - 1, b',');
                    }
                }
                (GetFormat::Csv, Some(id)) => {
                    push_csv_field(&mut text, &id.to_string());
                    for (col, &x) in v.iter().enumerate() {
                        if !x.is_finite() {
                            return Err(non_finite(c, global, col).into());
                        }
                        text.push(b',');
                        push_f32(&mut text, x);
                    }
                    text.push(b'\n');
                }
                (_, None) => unreachable!("ids are read for text formats"),
            }
        }
        c.release_chunks(lo..hi + 1);
        w.write_all(&text)?;
    }
    if format == GetFormat::Json {
        w.write_all(b"]\n")?;
    }
    Ok(())
}

/// Appends `s` as a CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line
/// break.
fn push_csv_field(buf: &mut Vec<u8>, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        buf.push(b'"');
        buf.extend_from_slice(s.replace('"', "\"\"").as_bytes());
        buf.push(b'"');
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
}

fn non_finite(c: &Container, row: u64, col: usize) -> Error {
    Error::Corrupt {
        path: c.path().to_path_buf(),
        msg: format!(
            "row {row}, column {col} decodes to a non-finite value, which JSON and CSV cannot hold; use --format npy"
        ),
    }
}
