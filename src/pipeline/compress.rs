//! `compress`: a `.npy` file into a container.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::Progress;
use super::choose::{self, Choice, Choose, Recipe};
use super::dest::Dest;
pub use super::options::{CompressOptions, CompressSummary};
use super::resume::{self, Start};
use super::shard;
use crate::codec::{self, Codec, PayloadStage};
use crate::encode::default_chunk_rows;
use crate::encode::worker::Encoder;
use crate::encode::writer::ChunkSink;
use crate::error::{Error, ErrorKind, Result};
use crate::format::{ContainerWriter, Header, Metadata};
use crate::par::{peak_rss_bytes, run_ordered};
use crate::source::reader::{ChunkJob, Input, ReleaseBehind};

/// Compresses the `.npy` at `input` into a new container at `output`.
///
/// `input` may also be a directory or a glob pattern of `.npy` files, compressed as one
/// matrix, or `-` for standard input; `output` may be `-` for standard output. With
/// `opts.shard`, only that shard's rows are written, and an existing output that is already
/// that shard, complete and verified, is kept as it is.
///
/// A trained codec is trained afresh unless an earlier run's output that is kept (the
/// partial a `resume` continues, or a finished output or shard) was written with the same
/// training recipe (metadata key `train`), input, vectro version and settings: training
/// is deterministic, so its codebook is the one training again would give, and it is
/// reused ([`CompressSummary::training_reused`]).
///
/// The output appears at `output` only when complete and synced; on any error nothing is
/// left there.
///
/// # Errors
/// Bad input ([`Error::BadNpy`], [`Error::NonFinite`]), an existing output, I/O errors, or
/// [`Error::Cancelled`].
pub fn compress(
    input: &Path,
    output: &Path,
    opts: &CompressOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<CompressSummary> {
    let start = Instant::now();
    let source = Input::open(input)?;
    let files = match &source {
        Input::Files(d) => d.files().iter().map(|f| f.path()).collect(),
        Input::Stream(_) => Vec::new(),
    };
    crate::output::check_not_input(output, files.into_iter().chain(opts.codebook.as_deref()))?;
    let h = source.header();
    let threads = crate::par::resolve_threads(opts.threads);
    // Settings checked before training, which can take minutes.
    if let Some(level) = opts.zstd {
        codec::zstd::check_level(level)?;
    }
    let chunk_rows = match opts.chunk_rows {
        Some(0) => return Err(Error::Config("--chunk-rows must be at least 1".into())),
        Some(n) => n,
        None => default_chunk_rows(h.dims),
    };
    check_chunk_size(chunk_rows, h.rows, h.dims)?;
    // Whether an existing shard output is complete can only be told from the header of
    // the trained codec; every other output is created before training, so that an
    // existing, locked or unwritable output fails at once, not after minutes of work.
    // So is a `--resume` rerun of a run that already finished (a cron job repeating itself).
    let keep_existing = (opts.shard.is_some() || opts.resume)
        && !opts.overwrite
        && output.as_os_str() != "-"
        && output.exists();
    let early = if keep_existing {
        None
    } else {
        Some(open_dest(output, opts)?)
    };
    let recipe = Recipe::new(opts, h.dims as usize)?;
    let mut metadata = source_metadata(&source);
    if let Some(r) = &recipe.recipe {
        metadata.insert("train".into(), r.clone());
    }
    let (chunk_range, rows) = match opts.shard {
        Some(s) => {
            let (c, r) = s.plan(h.rows, chunk_rows as u64)?;
            s.record(&mut metadata, &r, h.rows);
            (c, r)
        }
        None => (0..h.rows.div_ceil(chunk_rows as u64), 0..h.rows),
    };
    let header_for = |codec: &dyn Codec| Header {
        codec: codec.spec(),
        rows: rows.end - rows.start,
        dims: h.dims as u32,
        chunk_rows,
        source_dtype: h.dtype,
        metadata: metadata.clone(),
        stage: if opts.zstd.is_some() {
            PayloadStage::Zstd
        } else {
            PayloadStage::Plain
        },
    };
    let Choice {
        codec,
        auto,
        training_reused,
    } = choose::choose(
        Choose {
            source: &source,
            opts,
            early: early.as_ref(),
            output,
            header_for: &header_for,
            threads,
            progress,
            cancel,
        },
        recipe,
    )?;
    let header = header_for(codec.as_ref());
    let input_bytes = match opts.shard {
        Some(_) => header.rows * h.row_bytes() as u64,
        None => source.input_bytes(),
    };
    let summary = |chunks, output_bytes: u64, already_complete, resume: &Start| CompressSummary {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        codec: codec.name(),
        rows: header.rows,
        dims: h.dims,
        chunks,
        input_bytes,
        output_bytes,
        ratio: input_bytes as f64 / output_bytes as f64,
        seconds: start.elapsed().as_secs_f64(),
        mb_per_s: input_bytes as f64 / 1e6 / start.elapsed().as_secs_f64().max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
        shard: opts.shard.map(|s| s.to_string()),
        already_complete,
        zstd: opts.zstd,
        auto: auto.clone(),
        resumed_rows: resume.rows(),
        partial_discarded: resume.discarded.clone(),
        training_reused,
    };
    if keep_existing {
        shard::check_complete(output, &header).map_err(|e| match opts.shard {
            Some(s) => Error::Config(format!(
                "shard {s}: {} exists but is not this shard's complete output ({e}); pass --force to redo it",
                output.display()
            )),
            None => Error::Config(format!(
                "--resume: {} exists but is not the complete output of this input and these \
                 settings ({e}); pass --force to redo it, or choose another --out",
                output.display()
            )),
        })?;
        let len = std::fs::metadata(output).map_or(0, |m| m.len());
        return Ok(summary(
            chunk_range.end - chunk_range.start,
            len,
            true,
            &Start::default(),
        ));
    }
    let mut out = match early {
        Some(out) => out,
        None => open_dest(output, opts)?,
    };
    out.keep_on_drop(opts.keep_partial);
    let (encoder, _recycle) = Encoder::new(codec.as_ref(), h.dtype, opts.zstd, source.path(), 1);
    let reencode = |i: u64| -> Result<Vec<u8>> {
        let at = chunk_range.start + i;
        let job = source
            .chunks(chunk_rows as u64, at..at + 1)?
            .next()
            .expect("one chunk")?;
        Ok(encoder.encode(&job)?.payload)
    };
    let resume = match &out {
        Dest::File(o) => resume::prepare(o, &header, codec.as_ref(), opts.resume, &reencode)?,
        Dest::Stdout if opts.resume => {
            return Err(Error::Config(
                "--resume needs a file output, not --out -".into(),
            ));
        }
        Dest::Stdout => Start::default(),
    };
    if opts.zstd.is_none() {
        // The size is exact when payloads are not compressed.
        out.preallocate(header.container_len(|rows| codec.encoded_len(rows as usize) as u64));
    }
    if opts.resume && matches!(source, Input::Stream(_)) {
        return Err(Error::Config(
            "--resume needs a file input: a stream (--in -) cannot be read again".into(),
        ));
    }
    progress.begin(header.rows, header.rows * h.row_bytes() as u64);
    let done = resume.rows();
    if done > 0 {
        progress.advance(done, done * h.row_bytes() as u64);
    }
    let jobs = source.chunks(
        chunk_rows as u64,
        chunk_range.start + resume.chunks.len() as u64..chunk_range.end,
    )?;
    let result = run(Run {
        source: &source,
        jobs,
        out: &out,
        header: header.clone(),
        codec: codec.as_ref(),
        threads,
        zstd: opts.zstd,
        progress,
        cancel,
        resume: &resume,
    });
    progress.finish();
    let (chunks, output_bytes) = result
        .map_err(|e| locate_error(e, &source))
        .inspect_err(|e| {
            // A bad input needs a new input, which a resume would discard anyway.
            if !matches!(
                e.kind(),
                ErrorKind::Io | ErrorKind::Cancelled | ErrorKind::Internal
            ) {
                out.keep_on_drop(false);
            }
        })?;
    out.commit()?;
    Ok(summary(chunks, output_bytes, false, &resume))
}

/// Refuses chunks so large that readers would refuse them ([`crate::format::MAX_CHUNK_VALUES`]).
fn check_chunk_size(chunk_rows: u32, rows: u64, dims: u64) -> Result<()> {
    let values = (chunk_rows as u64).min(rows).saturating_mul(dims);
    if values > crate::format::MAX_CHUNK_VALUES {
        return Err(Error::Config(format!(
            "--chunk-rows {chunk_rows} × {dims} dims is {values} values a chunk, over the limit of {}; use a smaller --chunk-rows",
            crate::format::MAX_CHUNK_VALUES
        )));
    }
    Ok(())
}

/// Names the file and its own row for an error about a global row of a many-file input.
fn locate_error(e: Error, source: &Input) -> Error {
    match e {
        Error::NonFinite {
            row, col, value, ..
        } => {
            let (path, row) = source.locate(row);
            Error::NonFinite {
                path,
                row,
                col,
                value,
            }
        }
        Error::OutOfRange { row, col, msg, .. } => {
            let (path, row) = source.locate(row);
            Error::OutOfRange {
                path,
                row,
                col,
                msg,
            }
        }
        e => e,
    }
}

/// Creates the (resumable) output, and for a shard its directory.
fn open_dest(output: &Path, opts: &CompressOptions) -> Result<Dest> {
    if let Some(dir) = output
        .parent()
        .filter(|d| opts.shard.is_some() && !d.as_os_str().is_empty())
    {
        // Shards of one run share an output directory that nobody else creates.
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating directory", e))?;
    }
    let earlier_chunks =
        std::fs::metadata(crate::output::partial_path(output)).is_ok_and(|m| m.len() > 0);
    let mut out = Dest::create_resumable(output, opts.overwrite, opts.durability)?;
    // Until encoding starts, only an earlier run's chunks are worth keeping: the empty
    // partial file of a training that failed or was cancelled would only invite a
    // pointless --resume.
    out.keep_on_drop(opts.keep_partial && earlier_chunks);
    Ok(out)
}

/// What the container records about its source. Deliberately no wall-clock time: the same
/// input and settings must give the same bytes. The file's own mtime says when it was made.
fn source_metadata(source: &Input) -> Metadata {
    let mut m = Metadata::new();
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.to_string_lossy().into_owned())
    };
    match source {
        Input::Files(d) if !d.is_multi() => {
            let f = &d.files()[0];
            m.insert("source".into(), name(f.path()));
            m.insert("source_bytes".into(), f.file_len().to_string());
            m.insert("source_mtime".into(), f.mtime().to_string());
        }
        Input::Files(d) => {
            // From the files, not from how --in named them, and without mtimes: shards on
            // other machines, or given a glob instead of the directory, must agree.
            let (f, n) = (d.files(), d.files().len());
            let source = match n {
                1 => name(f[0].path()),
                _ => format!(
                    "{} .. {} ({n} files)",
                    name(f[0].path()),
                    name(f[n - 1].path())
                ),
            };
            m.insert("source".into(), source);
            m.insert("source_bytes".into(), d.total_bytes().to_string());
            let files: Vec<_> = d
                .files()
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let r = d.file_rows(i);
                    serde_json::json!({ "name": name(f.path()), "rows": [r.start, r.end], "bytes": f.file_len() })
                })
                .collect();
            m.insert(
                "source_files".into(),
                serde_json::Value::from(files).to_string(),
            );
        }
        Input::Stream(_) => {
            m.insert("source".into(), "-".into());
        }
    }
    m.insert("tool".into(), crate::format::TOOL.into());
    m
}

/// The encoding stages of a compress run, set up.
struct Run<'a> {
    source: &'a Input,
    /// The chunks to encode (after those a resume keeps).
    jobs: Box<dyn Iterator<Item = Result<ChunkJob>> + Send>,
    out: &'a Dest,
    header: Header,
    codec: &'a dyn Codec,
    threads: usize,
    zstd: Option<i32>,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
    /// The chunks an interrupted run left, which the writer continues after.
    resume: &'a Start,
}

/// The pipeline: reader (`jobs`) → workers ([`Encoder`]) → ordered writer ([`ChunkSink`]).
/// Returns the chunks written in all and the container's length.
fn run(r: Run<'_>) -> Result<(u64, u64)> {
    let Run {
        source,
        jobs,
        out,
        header,
        codec,
        threads,
        zstd,
        progress,
        cancel,
        resume,
    } = r;
    let out_path = out.error_path();
    let writer = if resume.chunks.is_empty() {
        let mut w = ContainerWriter::new(out.writer(), header.clone())
            .map_err(|e| Error::io(out_path, "writing", e))?;
        // The header reaches the file at once: a run killed now leaves a resumable file.
        w.flush().map_err(|e| Error::io(out_path, "writing", e))?;
        w
    } else {
        ContainerWriter::resume(
            out.writer(),
            header.clone(),
            resume.chunks.clone(),
            resume.offset,
        )
    };
    let (encoder, recycle) = Encoder::new(codec, header.source_dtype, zstd, source.path(), threads);
    let mut sink = ChunkSink {
        writer,
        out_path,
        recycle,
    };
    let row_bytes = source.header().row_bytes() as u64;
    let mut behind = ReleaseBehind::by_bytes(row_bytes);
    run_ordered(
        threads,
        jobs,
        |job| encoder.encode(&job),
        |chunk| {
            let (first, rows) = (chunk.first_row, chunk.rows);
            sink.put(chunk)?;
            if let Some(r) = behind.consumed(first, first + rows) {
                source.release_rows(r.start, r.end);
            }
            progress.advance(rows, rows * row_bytes);
            Ok(())
        },
        cancel,
    )?;
    let chunks = sink.writer.chunks().len() as u64;
    let bytes = super::dest::finished_len(&sink.writer);
    let mut w = sink
        .writer
        .finish()
        .map_err(|e| Error::io(out_path, "writing", e))?;
    w.flush().map_err(|e| Error::io(out_path, "writing", e))?;
    Ok((chunks, bytes))
}
