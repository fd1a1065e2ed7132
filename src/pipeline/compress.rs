//! `compress`: a `.npy` file into a container.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::Progress;
use super::choose::{self, Choice, Choose, Recipe};
pub use super::options::{CompressOptions, CompressSummary};
use super::resume::{self, Start};
use crate::codec::{self, Codec, PayloadStage};
use crate::encode::default_chunk_rows;
use crate::encode::worker::Encoder;
use crate::encode::writer::ChunkSink;
use crate::error::{Error, ErrorKind, Result};
use crate::format::{ContainerWriter, Header, Metadata};
use crate::output::dest::Dest;
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
    let source = Input::open_with(input, &opts.input)?;
    compress_source(source, input, output, opts, progress, cancel)
}

/// [`compress`] of an opened `source`, named `input` in the summary.
pub(crate) fn compress_source(
    source: Input,
    input: &Path,
    output: &Path,
    opts: &CompressOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<CompressSummary> {
    let start = Instant::now();
    // Check every setting before training, which can take minutes.
    check_output(&source, output, opts)?;
    let h = source.header();
    let threads = crate::par::resolve_threads(opts.threads);
    let chunk_rows = chunk_rows(opts, h.rows, h.dims, source.path())?;
    // Whether an existing shard output is complete can only be told from the header of
    // the trained codec; every other output is created before training, so that an
    // existing, locked or unwritable output fails at once, not after minutes of work.
    // So is a `--resume` rerun of a run that already finished (a cron job repeating itself).
    let keep_existing = (opts.shard.is_some() || opts.resume)
        && !opts.overwrite
        && output.as_os_str() != "-"
        && output.exists();
    let early = match keep_existing {
        true => None,
        false => Some(open_dest(output, opts)?),
    };
    // Plan, and choose the codec.
    let recipe = Recipe::new(opts, h.dims as usize)?;
    let plan = Plan::new(&source, opts, chunk_rows, recipe.recipe.as_deref())?;
    let choice = choose::choose(
        Choose {
            source: &source,
            opts,
            early: early.as_ref(),
            output,
            header_for: &|c| plan.header(c),
            threads,
            progress,
            cancel,
        },
        recipe,
    )?;
    let codec = choice.codec.as_ref();
    let header = plan.header(codec);
    let report = Report {
        input,
        output,
        opts,
        start,
        header: &header,
        choice: &choice,
        input_bytes: match opts.shard {
            Some(_) => header.rows * h.row_bytes() as u64,
            None => source.input_bytes(),
        },
    };
    if keep_existing {
        let len = existing_output(output, &header, opts)?;
        return Ok(report.summary(plan.chunks(), len, true, &Start::default()));
    }
    // Open the destination, continuing an interrupted run's partial output if asked.
    let mut out = match early {
        Some(out) => out,
        None => open_dest(output, opts)?,
    };
    out.keep_on_drop(opts.keep_partial);
    let resume = prepare_output(&mut out, &source, &plan, &header, codec, opts)?;
    // Run: reader -> workers -> ordered writer.
    progress.begin(header.rows, header.rows * h.row_bytes() as u64);
    let done = resume.rows();
    if done > 0 {
        progress.advance(done, done * h.row_bytes() as u64);
    }
    let first = plan.chunk_range.start + resume.chunks.len() as u64;
    let jobs = source.chunks(chunk_rows as u64, first..plan.chunk_range.end)?;
    let result = run(Run {
        source: &source,
        jobs,
        out: &out,
        header: header.clone(),
        codec,
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
    // Commit.
    out.commit()?;
    Ok(report.summary(chunks, output_bytes, false, &resume))
}

/// Refuses an output that is one of the input files or the codebook.
fn check_output(source: &Input, output: &Path, opts: &CompressOptions) -> Result<()> {
    let files = source.files();
    crate::output::check_not_input(output, files.into_iter().chain(opts.codebook.as_deref()))
}

/// The rows per chunk (`--chunk-rows`, or the default for `dims`), with the zstd level
/// checked too: the settings a run can refuse before any work.
fn chunk_rows(opts: &CompressOptions, rows: u64, dims: u64, input: &Path) -> Result<u32> {
    if let Some(level) = opts.zstd {
        codec::zstd::check_level(level)?;
    }
    let chunk_rows = match opts.chunk_rows {
        Some(0) => return Err(Error::Config("--chunk-rows must be at least 1".into())),
        Some(n) => n,
        // Not the user's --chunk-rows to blame when a single row is too wide: the input is.
        None if dims > crate::format::MAX_CHUNK_VALUES => {
            return Err(Error::bad_npy(
                input,
                format!(
                    "rows of {dims} dims are wider than a chunk can hold ({} values); \
                     vectro compresses rows of at most that many dims",
                    crate::format::MAX_CHUNK_VALUES
                ),
            ));
        }
        None => default_chunk_rows(dims),
    };
    check_chunk_size(chunk_rows, rows, dims)?;
    Ok(chunk_rows)
}

/// What a run writes, whatever the codec: the chunks and rows (of its shard), and the
/// header but for the codec.
struct Plan {
    chunk_rows: u32,
    /// The input's chunks this run encodes.
    chunk_range: std::ops::Range<u64>,
    /// The input's rows they hold.
    rows: std::ops::Range<u64>,
    dims: u32,
    source_dtype: crate::npy::Dtype,
    metadata: Metadata,
    stage: PayloadStage,
}

impl Plan {
    /// Plans a run of `source` with `opts`, recording `recipe` (the training recipe, if
    /// any) and the shard in the metadata.
    fn new(
        source: &Input,
        opts: &CompressOptions,
        chunk_rows: u32,
        recipe: Option<&str>,
    ) -> Result<Plan> {
        let h = source.header();
        let mut metadata = source_metadata(source);
        if let Some(r) = recipe {
            metadata.insert("train".into(), r.to_string());
        }
        let (chunk_range, rows) = match opts.shard {
            Some(s) => {
                let (c, r) = s.plan(h.rows, chunk_rows as u64)?;
                s.record(&mut metadata, &r, h.rows);
                (c, r)
            }
            None => (0..h.rows.div_ceil(chunk_rows as u64), 0..h.rows),
        };
        Ok(Plan {
            chunk_rows,
            chunk_range,
            rows,
            dims: h.dims as u32,
            source_dtype: h.dtype,
            metadata,
            stage: match opts.zstd {
                Some(_) => PayloadStage::Zstd,
                None => PayloadStage::Plain,
            },
        })
    }

    /// The header this run writes with `codec`.
    fn header(&self, codec: &dyn Codec) -> Header {
        Header {
            codec: codec.spec(),
            rows: self.rows.end - self.rows.start,
            dims: self.dims,
            chunk_rows: self.chunk_rows,
            source_dtype: self.source_dtype,
            metadata: self.metadata.clone(),
            stage: self.stage,
        }
    }

    /// The number of chunks the run writes.
    fn chunks(&self) -> u64 {
        self.chunk_range.end - self.chunk_range.start
    }
}

/// What the summary of a run reports besides its outcome.
struct Report<'a> {
    input: &'a Path,
    output: &'a Path,
    opts: &'a CompressOptions,
    start: Instant,
    header: &'a Header,
    choice: &'a Choice,
    input_bytes: u64,
}

impl Report<'_> {
    fn summary(
        &self,
        chunks: u64,
        output_bytes: u64,
        already_complete: bool,
        resume: &Start,
    ) -> CompressSummary {
        let (input_bytes, seconds) = (self.input_bytes, self.start.elapsed().as_secs_f64());
        CompressSummary {
            input: self.input.to_path_buf(),
            output: self.output.to_path_buf(),
            codec: self.choice.codec.name(),
            rows: self.header.rows,
            dims: self.header.dims as u64,
            chunks,
            input_bytes,
            output_bytes,
            ratio: input_bytes as f64 / output_bytes as f64,
            seconds,
            mb_per_s: input_bytes as f64 / 1e6 / seconds.max(1e-9),
            peak_rss_bytes: peak_rss_bytes(),
            shard: self.opts.shard.map(|s| s.to_string()),
            already_complete,
            zstd: self.opts.zstd,
            auto: self.choice.auto.clone(),
            resumed_rows: resume.rows(),
            partial_discarded: resume.discarded.clone(),
            training_reused: self.choice.training_reused,
        }
    }
}

/// Checks that the existing `output` a shard or `--resume` run keeps is its complete
/// output; returns its length.
fn existing_output(output: &Path, header: &Header, opts: &CompressOptions) -> Result<u64> {
    crate::format::shard::check_complete(output, header).map_err(|e| match opts.shard {
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
    Ok(std::fs::metadata(output).map_or(0, |m| m.len()))
}

/// Readies the opened output: with `--resume`, keeps the checksum-valid chunks of the
/// partial output an interrupted run left (re-encoding the last to check it was this
/// run's); without, reserves the container's size when it is known.
fn prepare_output(
    out: &mut Dest,
    source: &Input,
    plan: &Plan,
    header: &Header,
    codec: &dyn Codec,
    opts: &CompressOptions,
) -> Result<Start> {
    let (encoder, _recycle) = Encoder::new(codec, header.source_dtype, opts.zstd, source.path(), 1);
    let reencode = |i: u64| -> Result<Vec<u8>> {
        let at = plan.chunk_range.start + i;
        let job = source
            .chunks(plan.chunk_rows as u64, at..at + 1)?
            .next()
            .unwrap_or_else(|| unreachable!("a range of one chunk yields one chunk"))?;
        Ok(encoder.encode(&job)?.payload)
    };
    let resume = match &*out {
        Dest::File(o) => resume::prepare(o, header, codec, opts.resume, &reencode)?,
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
    Ok(resume)
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
        Input::Memory(s) => {
            m.insert("source".into(), name(s.name()));
            m.insert("source_bytes".into(), s.len_bytes().to_string());
        }
        Input::Table(t) => {
            // As for many .npy files: from the files, without mtimes.
            let (p, n) = (t.parts(), t.parts().len());
            let source = match n {
                1 => name(p[0].name()),
                _ => format!(
                    "{} .. {} ({n} files)",
                    name(p[0].name()),
                    name(p[n - 1].name())
                ),
            };
            m.insert("source".into(), source);
            m.insert("source_bytes".into(), t.total_bytes().to_string());
            m.insert("source_format".into(), t.format().into());
            if n > 1 {
                let files: Vec<_> = p
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let r = t.part_rows(i);
                        serde_json::json!({ "name": name(f.name()), "rows": [r.start, r.end], "bytes": f.file_len() })
                    })
                    .collect();
                m.insert(
                    "source_files".into(),
                    serde_json::Value::from(files).to_string(),
                );
            }
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
    let bytes = crate::output::dest::finished_len(&sink.writer);
    let mut w = sink
        .writer
        .finish()
        .map_err(|e| Error::io(out_path, "writing", e))?;
    w.flush().map_err(|e| Error::io(out_path, "writing", e))?;
    Ok((chunks, bytes))
}
