//! `vectro get`: decode chosen rows and print them, or write them to a file.

use std::io::{IsTerminal, Write};
use std::ops::Range;

use anyhow::{Context, bail};
use vectro::output::{AtomicOutput, Durability, check_not_input};
use vectro::stream::{push_f32, push_jsonl_row};
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
    let ranges = parse_rows(&a.rows)?;
    for r in &ranges {
        if r.end > c.rows() {
            return Err(Error::Config(format!(
                "--rows: row {} is out of range: {} has {} rows (numbered 0..{})",
                r.start.max(c.rows()),
                a.file.display(),
                c.rows(),
                c.rows()
            ))
            .into());
        }
    }
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
            write_rows(&c, &ranges, a.format, &mut w)
                .and_then(|_| Ok(w.flush()?))
                .with_context(|| format!("writing {}", out.tmp_path().display()))?;
            drop(w);
            out.commit()?;
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            write_rows(&c, &ranges, a.format, &mut w)
                .and_then(|_| Ok(w.flush()?))
                .context("writing to stdout")?;
        }
    }
    Ok(exit_codes::OK)
}

/// Parses `5,17,100..110,7..=9` into ranges, in the order given.
pub fn parse_rows(spec: &str) -> Result<Vec<Range<u64>>, Error> {
    let bad = |item: &str, why: &str| {
        Error::Config(format!(
            "--rows: '{item}' {why}; expected a comma-separated list of N, A..B (B excluded) or A..=B"
        ))
    };
    let num = |item: &str, s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| bad(item, "is not a row number or range"))
    };
    let mut out = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        let r = if let Some((a, b)) = item.split_once("..=") {
            let (a, b) = (num(item, a)?, num(item, b)?);
            a..b.checked_add(1).ok_or_else(|| bad(item, "is too large"))?
        } else if let Some((a, b)) = item.split_once("..") {
            num(item, a)?..num(item, b)?
        } else {
            let n = num(item, item)?;
            n..n + 1
        };
        if r.start > r.end {
            return Err(bad(item, "is reversed"));
        }
        out.push(r);
    }
    if out.iter().all(|r| r.is_empty()) {
        return Err(bad(spec, "selects no rows"));
    }
    Ok(out)
}

fn write_rows(
    c: &Container,
    ranges: &[Range<u64>],
    format: GetFormat,
    w: &mut impl Write,
) -> anyhow::Result<()> {
    let d = c.dims();
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    match format {
        GetFormat::Npy => w.write_all(&vectro::npy::write_header(total, d as u64))?,
        GetFormat::Json => w.write_all(b"[\n")?,
        GetFormat::Csv => {
            let head: Vec<String> = (0..d).map(|k| format!("d{k}")).collect();
            writeln!(w, "id,{}", head.join(","))?;
        }
    }
    let mut ids = ranges.iter().flat_map(|r| r.clone()).peekable();
    let per_batch = (BATCH_FLOATS / d.max(1)).clamp(1, BATCH);
    let chunk_rows = c.header().chunk_rows as u64;
    let mut batch = Vec::with_capacity(per_batch);
    let mut rows = Vec::new();
    let mut text = Vec::new();
    while ids.peek().is_some() {
        batch.clear();
        batch.extend(ids.by_ref().take(per_batch));
        rows.resize(batch.len() * d, 0f32);
        c.get_many(&batch, &mut rows)?;
        // The mapped pages read so far would otherwise stay resident, and memory grow
        // with the rows asked for. A chunk asked for again later is simply read again.
        let lo = batch.iter().min().map_or(0, |&r| r / chunk_rows) as usize;
        let hi = batch.iter().max().map_or(0, |&r| r / chunk_rows) as usize;
        c.release_chunks(lo..hi + 1);
        text.clear();
        for (k, (&id, row)) in batch.iter().zip(rows.chunks_exact(d)).enumerate() {
            match format {
                GetFormat::Npy => text.extend(row.iter().flat_map(|x| x.to_le_bytes())),
                GetFormat::Json => {
                    let last = ids.peek().is_none() && k + 1 == batch.len();
                    push_jsonl_row(&mut text, id, row).map_err(|col| non_finite(c, id, col))?;
                    if !last {
                        text.insert(text.len() - 1, b',');
                    }
                }
                GetFormat::Csv => {
                    text.extend_from_slice(id.to_string().as_bytes());
                    for (col, &x) in row.iter().enumerate() {
                        if !x.is_finite() {
                            return Err(non_finite(c, id, col).into());
                        }
                        text.push(b',');
                        push_f32(&mut text, x);
                    }
                    text.push(b'\n');
                }
            }
        }
        w.write_all(&text)?;
    }
    if format == GetFormat::Json {
        w.write_all(b"]\n")?;
    }
    Ok(())
}

fn non_finite(c: &Container, row: u64, col: usize) -> Error {
    Error::Corrupt {
        path: c.path().to_path_buf(),
        msg: format!(
            "row {row}, column {col} decodes to a non-finite value, which JSON and CSV cannot hold; use --format npy"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_rows;

    #[test]
    fn parses_lists_and_ranges_in_order() {
        let r = parse_rows("5, 17,100..103,7..=8,5").unwrap();
        assert_eq!(r, vec![5..6, 17..18, 100..103, 7..9, 5..6]);
    }

    #[test]
    fn rejects_bad_items_with_the_item_named() {
        for (spec, want) in [
            ("5,x", "'x'"),
            ("10..5", "reversed"),
            ("1..", "'1..'"),
            ("3..3", "selects no rows"),
            ("", "''"),
        ] {
            let e = parse_rows(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
