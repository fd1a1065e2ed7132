//! JSON Lines export: `{"id":N,"vector":[...]}` per row, the shape Qdrant's and Weaviate's
//! batch upserts take (after a `jq` reshaping; see docs/random-access.md).
//!
//! Floats are written by `ryu` in their shortest form that parses back to the same f32, so
//! the JSON carries exactly the reconstructed values. Formatting costs far more than
//! decoding, so the workers format too; the writer only copies bytes.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::{Container, Id, IdKind};
use crate::par::run_ordered;
use crate::progress::Progress;
use crate::source::reader::ReleaseBehind;

/// Floats decoded per export job: small enough to bound memory, big enough to amortise.
const JOB_FLOATS: usize = 1 << 18;

/// Settings of [`export_jsonl`].
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonlOptions {
    /// Added to each row's number in the whole input to make its `id`, for a container
    /// without stored ids (one with ids exports them as they are, and refuses an offset).
    pub id_offset: u64,
    /// Worker threads; 0 means the available cores.
    pub threads: usize,
}

/// What an export did.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Wall time.
    pub seconds: f64,
    /// Output MB (10⁶ bytes) per second.
    pub mb_per_s: f64,
}

/// Appends `x` in the shortest form that parses back to the same f32 (`1.0`, `-0.25`,
/// `1e-7`). A finite value is always valid JSON; NaN and infinities are not, so callers
/// check first (as [`push_jsonl_row`] does).
pub fn push_f32(buf: &mut Vec<u8>, x: f32) {
    let mut b = ryu::Buffer::new();
    buf.extend_from_slice(b.format(x).as_bytes());
}

/// Appends one line, `{"id":ID,"vector":[...]}\n`.
///
/// # Errors
/// The index of the first non-finite value in `row`, which JSON cannot hold; nothing is
/// appended then.
pub fn push_jsonl_row(buf: &mut Vec<u8>, id: u64, row: &[f32]) -> Result<(), usize> {
    push_jsonl_row_id(buf, Id::U64(id), row)
}

/// [`push_jsonl_row`] with any id: a number, or a string (JSON-escaped).
///
/// # Errors
/// As [`push_jsonl_row`].
pub fn push_jsonl_row_id(buf: &mut Vec<u8>, id: Id<'_>, row: &[f32]) -> Result<(), usize> {
    if let Some(bad) = row.iter().position(|x| !x.is_finite()) {
        return Err(bad);
    }
    let mut b = ryu::Buffer::new();
    buf.extend_from_slice(b"{\"id\":");
    // ryu formats floats only; the id is formatted by std (or serde_json, a string).
    id.push_json(buf);
    buf.extend_from_slice(b",\"vector\":[");
    for (k, &x) in row.iter().enumerate() {
        if k > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b.format_finite(x).as_bytes());
    }
    buf.extend_from_slice(b"]}\n");
    Ok(())
}

/// Appends row `row` of the payload columns `batch` as JSON members after the others of
/// a line that [`push_jsonl_row_id`] wrote (before its closing `}`):
/// `{"id":7,"vector":[...],"title":"...","tags":["a","b"]}`.
///
/// # Errors
/// A message naming the column whose value JSON cannot hold (NaN, ±Inf); the line is
/// left as it was.
pub fn push_payload_fields(
    buf: &mut Vec<u8>,
    batch: &arrow_array::RecordBatch,
    row: usize,
) -> Result<(), String> {
    let close = buf.len().saturating_sub(2);
    if buf.get(close..) != Some(b"}\n".as_slice()) {
        return Err("the line does not end in }\\n".into());
    }
    let tail = buf.split_off(close);
    let start = buf.len();
    for (f, col) in batch.schema().fields().iter().zip(batch.columns()) {
        buf.push(b',');
        let _ = serde_json::to_writer(&mut *buf, f.name());
        buf.push(b':');
        if let Err(m) = crate::format::payload::push_json(buf, col.as_ref(), row) {
            buf.truncate(start);
            buf.extend_from_slice(&tail);
            return Err(format!("payload column \"{}\" {m}", f.name()));
        }
    }
    buf.extend_from_slice(&tail);
    Ok(())
}

/// Writes every row of `c` to `out` as JSON Lines, in row order. The `id` is the row's
/// stored id, or for a container without ids `opts.id_offset + c.first_row() + r` for row
/// `r` of the file: a shard's rows keep their numbers in the whole input, so the exports
/// of a sharded run's shards never share an id. A container with payload columns adds
/// them to each line after the vector ([`push_payload_fields`]). Memory stays bounded: workers decode and format blocks of about
/// a MiB of floats, and at most `3 × threads + 1` blocks are in flight.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("x.vectro");
/// # let data: Vec<f32> = (0..20 * 3).map(|i| i as f32 / 3.0).collect();
/// # vectro::stream::Compressor::new().compress_f32(&data, 3, std::fs::File::create(&path)?)?;
/// use vectro::stream::{JsonlOptions, export_jsonl};
/// use vectro::{Container, NoProgress};
///
/// let c = Container::open(&path)?;
/// let mut out = Vec::new();
/// let opts = JsonlOptions { id_offset: 1000, threads: 2 };
/// export_jsonl(&c, &mut out, &opts, &NoProgress, &Default::default())?;
/// let first: serde_json::Value = serde_json::from_slice(out.split(|&b| b == b'\n').next().unwrap())?;
/// assert_eq!(first["id"], 1000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Config`] if the ids would overflow a u64; [`Error::Corrupt`] for a corrupt chunk
/// or a non-finite decoded value; [`Error::Io`] from the writer; [`Error::Cancelled`].
pub fn export_jsonl<W: Write>(
    c: &Container,
    out: W,
    opts: &JsonlOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<ExportSummary> {
    let start = Instant::now();
    let rows = c.rows();
    check_id_offset(c, opts.id_offset)?;
    let d = c.dims();
    let step = (JOB_FLOATS / d).max(1) as u64;
    let threads = crate::par::resolve_threads(opts.threads);
    let out_name = Path::new(crate::error::UNNAMED_OUTPUT);
    let mut out = out;
    let mut written = 0u64;
    progress.begin(rows, rows * d as u64 * 4);
    // The container's pages behind the writer are released, or the whole file would stay
    // in the resident set.
    let mut behind = ReleaseBehind::for_chunks(c);
    let mut released = 0;
    let result = run_ordered(
        threads,
        (0..rows.div_ceil(step)).map(|j| Ok(j * step..rows.min((j + 1) * step))),
        |range| format_block(c, range, opts.id_offset),
        |text| {
            out.write_all(&text.bytes)
                .map_err(|e| Error::io(out_name, "writing", e))?;
            written += text.bytes.len() as u64;
            progress.advance(text.rows, text.rows * d as u64 * 4);
            let done = c
                .chunks()
                .partition_point(|e| e.first_row + e.rows <= text.end);
            behind.release_chunks(c, released, done);
            released = done;
            Ok(())
        },
        cancel,
    );
    progress.finish();
    result?;
    out.flush().map_err(|e| Error::io(out_name, "writing", e))?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(ExportSummary {
        rows,
        bytes_out: written,
        seconds,
        mb_per_s: written as f64 / 1e6 / seconds.max(1e-9),
    })
}

/// Refuses an id offset for a container with ids, or one that overflows a u64.
pub(super) fn check_id_offset(c: &Container, id_offset: u64) -> Result<()> {
    let rows = c.rows();
    if c.id_kind() != IdKind::None && id_offset != 0 {
        return Err(Error::Config(format!(
            "--id-offset applies to containers without ids; {} stores {} ids, exported as they are",
            c.path().display(),
            c.id_kind().name()
        )));
    }
    let offset = id_offset.checked_add(c.first_row());
    if offset.and_then(|o| o.checked_add(rows - 1)).is_none() {
        return Err(Error::Config(format!(
            "--id-offset {} plus rows {}..{} overflows a 64-bit id",
            id_offset,
            c.first_row(),
            c.first_row().saturating_add(rows)
        )));
    }
    Ok(())
}

struct Text {
    rows: u64,
    /// One past the last row.
    end: u64,
    bytes: Vec<u8>,
}

fn format_block(c: &Container, range: std::ops::Range<u64>, id_offset: u64) -> Result<Text> {
    let d = c.dims();
    let n = (range.end - range.start) as usize;
    let mut rows = vec![0f32; n * d];
    c.get_range(range.clone(), &mut rows)?;
    // Global row numbers for a container without ids.
    let ids = c.ids(range.clone())?;
    let payload = c.payload(range.clone())?;
    // About 11 bytes a float for typical embeddings; a guess only saves reallocations.
    let mut bytes = Vec::with_capacity(n * (d * 11 + 32));
    for (k, row) in rows.chunks_exact(d).enumerate() {
        let r = range.start + k as u64;
        let id = match ids.get(k) {
            Id::U64(v) if c.id_kind() == IdKind::None => Id::U64(id_offset + v),
            id => id,
        };
        push_jsonl_row_id(&mut bytes, id, row).map_err(|col| {
            Error::corrupt(
                c.path(),
                format!(
                    "row {r}, column {col} decodes to {}, which JSON cannot hold",
                    row[col]
                ),
            )
        })?;
        if let Some(p) = &payload {
            push_payload_fields(&mut bytes, p, k).map_err(|m| {
                Error::Config(format!(
                    "{}: row {r}: {m}; export --format parquet keeps every value",
                    c.path().display()
                ))
            })?;
        }
    }
    Ok(Text {
        rows: n as u64,
        end: range.end,
        bytes,
    })
}
