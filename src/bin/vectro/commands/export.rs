//! `vectro export`: every row as JSON Lines or Parquet (with ids and payload columns), or
//! the container as the prototype's .npz.

use std::io::Write;
use std::sync::atomic::AtomicBool;

use serde::Serialize;
use vectro::output::{AtomicOutput, Durability, check_not_input};
use vectro::stream::{JsonlOptions, ParquetOptions, export_jsonl, export_parquet};
use vectro::{Container, Error, npz};

use super::{human_bytes, print_json};
use crate::cli::{ExportArgs, ExportFormat};
use crate::exit_codes;
use crate::progress::Bar;

#[derive(Serialize)]
struct Summary {
    input: String,
    format: &'static str,
    output: String,
    rows: u64,
    output_bytes: u64,
    seconds: f64,
    mb_per_s: f64,
    peak_rss_bytes: u64,
}

pub fn run(a: ExportArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let output = a.output.clone().expect("resolved");
    let c = Container::open(&a.file)?;
    check_not_input(&output, [a.file.as_path()])?;
    let durability = if a.no_fsync {
        Durability::None
    } else {
        Durability::Fsync
    };
    let start = std::time::Instant::now();
    let export_format = match a.format {
        Some(f) => f,
        None => format_from_extension(&output)?,
    };
    if a.row_group_rows.is_some() && export_format != ExportFormat::Parquet {
        return Err(
            Error::Config("--row-group-rows applies to --format parquet only".into()).into(),
        );
    }
    if a.row_group_rows == Some(0) {
        return Err(Error::Config("--row-group-rows must be at least 1".into()).into());
    }
    let (format, rows, output_bytes) = match export_format {
        ExportFormat::Jsonl if output.as_os_str() == "-" => {
            let bar = Bar::new(a.common.quiet || a.common.json, "export");
            let opts = JsonlOptions {
                id_offset: a.id_offset,
                threads: a.common.threads,
            };
            let mut w = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            let s = export_jsonl(&c, &mut w, &opts, &bar, cancel).map_err(super::on_stdout)?;
            anyhow::Context::context(w.flush(), "writing to stdout")?;
            // The rows went to stdout: the summary must not follow them there.
            noteln!("exported {} rows as jsonl to stdout", s.rows);
            return Ok(exit_codes::OK);
        }
        ExportFormat::Jsonl => {
            let out = AtomicOutput::create(&output, a.force, durability)?;
            let bar = Bar::new(a.common.quiet || a.common.json, "export");
            let opts = JsonlOptions {
                id_offset: a.id_offset,
                threads: a.common.threads,
            };
            let mut w = out.writer();
            let s =
                export_jsonl(&c, &mut w, &opts, &bar, cancel).map_err(|e| e.on_output(&output))?;
            w.flush()
                .map_err(|e| Error::io(out.tmp_path(), "writing", e))?;
            drop(w);
            out.commit()?;
            ("jsonl", s.rows, s.bytes_out)
        }
        ExportFormat::Parquet => {
            if output.as_os_str() == "-" {
                return Err(Error::Config(
                    "--format parquet needs a file for --out (its footer points back into the file)"
                        .into(),
                )
                .into());
            }
            let out = AtomicOutput::create(&output, a.force, durability)?;
            let bar = Bar::new(a.common.quiet || a.common.json, "export");
            let opts = ParquetOptions {
                id_offset: a.id_offset,
                threads: a.common.threads,
                row_group_rows: a.row_group_rows.unwrap_or(0),
            };
            let s = export_parquet(&c, out.writer(), &opts, &bar, cancel)?;
            out.commit()?;
            ("parquet", s.rows, s.bytes_out)
        }
        ExportFormat::Npz => {
            if output.as_os_str() == "-" {
                return Err(Error::Config(
                    "--format npz needs a file for --out (a zip is not streamable to stdout)"
                        .into(),
                )
                .into());
            }
            if a.id_offset != 0 {
                return Err(
                    Error::Config("--id-offset applies to --format jsonl only".into()).into(),
                );
            }
            let s = npz::export_npz(&c, &output, a.force, durability)?;
            ("npz", s.rows, s.output_bytes)
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let s = Summary {
        input: a.file.display().to_string(),
        format,
        output: output.display().to_string(),
        rows,
        output_bytes,
        seconds,
        mb_per_s: output_bytes as f64 / 1e6 / seconds.max(1e-9),
        peak_rss_bytes: vectro::pipeline::peak_rss_bytes(),
    };
    if a.common.json {
        print_json(&s)?;
    } else {
        outln!(
            "exported {} rows as {} to {} ({}) in {:.2} s, {:.0} MB/s",
            s.rows,
            s.format,
            s.output,
            human_bytes(s.output_bytes),
            s.seconds,
            s.mb_per_s
        );
    }
    Ok(exit_codes::OK)
}

/// The export format an output's extension names, for `export` without `--format`.
fn format_from_extension(out: &std::path::Path) -> anyhow::Result<ExportFormat> {
    let choices = ".jsonl (or .ndjson), .parquet (or .parq, .pq), .npz";
    if out.as_os_str() == "-" {
        // The one format written to stdout.
        return Ok(ExportFormat::Jsonl);
    }
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    Ok(match ext.as_str() {
        "jsonl" | "ndjson" => ExportFormat::Jsonl,
        "parquet" | "parq" | "pq" => ExportFormat::Parquet,
        "npz" => ExportFormat::Npz,
        "npy" => {
            return Err(Error::Config(format!(
                "{}: export writes {choices}; a .npy of the vectors is what `vectro decompress` writes",
                out.display()
            ))
            .into());
        }
        "" => {
            return Err(Error::Config(format!(
                "{} has no extension to take the format from: give --format jsonl|parquet|npz, or name the output {choices}",
                out.display()
            ))
            .into());
        }
        other => {
            return Err(Error::Config(format!(
                "{}: the extension .{other} names no export format: give --format jsonl|parquet|npz, or name the output {choices}",
                out.display()
            ))
            .into());
        }
    })
}
