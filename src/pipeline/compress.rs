//! `compress`: a `.npy` file into a container.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crossbeam_channel::{Receiver, bounded};
use serde::Serialize;

use super::dest::Dest;
use super::ordered::run_ordered;
use super::reader::{ChunkJob, Input, ReleaseBehind};
use super::resume::{self, Start};
use super::shard::{self, Shard};
use super::writer::{ChunkSink, EncodedChunk};
use super::{Progress, default_threads, peak_rss_bytes};
use crate::codec::auto::{self, AutoReport, Target};
use crate::codec::{self, Codec, PayloadStage};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{ChunkCrc, ChunkCrcBuilder, ContainerWriter, Header, Metadata};
use crate::npy::Dtype;
use crate::output::Durability;

/// Input bytes a default chunk aims for: a few MiB keeps workers busy and memory small.
const TARGET_CHUNK_BYTES: u64 = 4 << 20;

/// Rows `--codec auto` samples when not told otherwise.
pub const DEFAULT_SAMPLE: usize = 2000;

/// The default rows per chunk for `dims`-dimensional float32 rows.
pub fn default_chunk_rows(dims: u64) -> u32 {
    (TARGET_CHUNK_BYTES / (dims * 4)).clamp(1, u32::MAX as u64) as u32
}

/// Settings of a compress run.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    /// The codec, as `--codec` takes it (e.g. `int8`).
    pub codec: String,
    /// Worker threads; 0 means the available cores.
    pub threads: usize,
    /// Rows per chunk; `None` picks [`default_chunk_rows`].
    pub chunk_rows: Option<u32>,
    /// Overwrite an existing output.
    pub overwrite: bool,
    /// fsync before the rename, or not.
    pub durability: Durability,
    /// Compress only this shard of the input's chunks.
    pub shard: Option<Shard>,
    /// Compress each chunk payload with zstd at this level.
    pub zstd: Option<i32>,
    /// The quality target of `codec = "auto"`.
    pub target: Option<Target>,
    /// Rows sampled by `codec = "auto"`.
    pub sample: usize,
    /// Continue the partial output an interrupted run left, if it matches this run.
    pub resume: bool,
    /// Keep the partial output on an I/O error or a cancel, for a later `resume`.
    pub keep_partial: bool,
    /// A frozen `.vcb` codebook to encode with instead of training (`--codebook`).
    pub codebook: Option<PathBuf>,
    /// Rows to train `pq`/`opq` on (`--train-rows`); `None` means `min(rows, 65536)`.
    pub train_rows: Option<u64>,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            codec: "int8".into(),
            threads: 0,
            chunk_rows: None,
            overwrite: false,
            durability: Durability::Fsync,
            shard: None,
            zstd: None,
            target: None,
            sample: DEFAULT_SAMPLE,
            resume: false,
            keep_partial: true,
            codebook: None,
            train_rows: None,
        }
    }
}

/// What a compress run did.
#[derive(Debug, Clone, Serialize)]
pub struct CompressSummary {
    /// The input file.
    pub input: PathBuf,
    /// The output file.
    pub output: PathBuf,
    /// The codec used.
    pub codec: String,
    /// Rows compressed.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Input file size.
    pub input_bytes: u64,
    /// Output file size.
    pub output_bytes: u64,
    /// `input_bytes / output_bytes`.
    pub ratio: f64,
    /// Wall time.
    pub seconds: f64,
    /// Input MB (10⁶ bytes) per second.
    pub mb_per_s: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
    /// The shard compressed, as `K/N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// True if a complete, verified output of this shard (or, with `resume`, of this whole
    /// run) was already there: nothing was done.
    pub already_complete: bool,
    /// The zstd level of the payload stage, if any.
    pub zstd: Option<i32>,
    /// What `--codec auto` measured and chose.
    pub auto: Option<AutoReport>,
    /// Rows taken from an interrupted run's partial output (`resume`).
    pub resumed_rows: u64,
    /// Why a partial output found with `resume` was not reused.
    pub partial_discarded: Option<String>,
    /// True if the trained codec (pq, opq, binary-itq) was taken from an earlier run's
    /// output (the partial a `resume` continues, or a finished output or shard) instead
    /// of training again.
    pub training_reused: bool,
}

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
    compress_source(Input::open(input)?, input, output, opts, progress, cancel)
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
    let files = match &source {
        Input::Files(d) => d.files().iter().map(|f| f.path()).collect(),
        Input::Stream(_) | Input::Memory(_) => Vec::new(),
    };
    crate::output::check_not_input(output, files.into_iter().chain(opts.codebook.as_deref()))?;
    let h = source.header();
    let threads = if opts.threads == 0 {
        default_threads()
    } else {
        opts.threads
    };
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
    // What training depends on besides the input and vectro's version, recorded in the
    // header: with --resume, an earlier run's codebook can then stand in for a new one.
    // A frozen --codebook records the recipe it was trained with, so that its header is
    // the one training here would write.
    let frozen = match &opts.codebook {
        Some(path) => Some(frozen_codec(path, opts, h.dims as usize)?),
        None => None,
    };
    let recipe = match &frozen {
        Some((_, r)) => r.clone(),
        None => codec::training_recipe(&opts.codec, h.dims as usize, opts.train_rows)?,
    };
    let mut metadata = source_metadata(&source);
    if let Some(r) = &recipe {
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
    // Training takes minutes; a cron job's --resume rerun, or a retried shard, should not
    // repeat it. The file an earlier run left: the partial output a resume continues, or
    // with `keep_existing` the finished one.
    let from = match &early {
        Some(Dest::File(o)) => o.tmp_path(),
        _ => output,
    };
    let found = match &early {
        _ if frozen.is_some() || recipe.is_none() => None,
        Some(Dest::File(o)) if opts.resume => earlier_codec(from, o.file()),
        Some(_) => None,
        None => std::fs::File::open(from)
            .ok()
            .and_then(|f| earlier_codec(from, &f)),
    };
    // Reused only if the file's header is exactly the one this run writes with that
    // codebook: the same recipe, input, vectro and settings. Training is deterministic,
    // so it is then the codebook training again would give.
    let (earlier, stale) = match found {
        Some((c, old)) if header_for(c.as_ref()) == old => (Some(c), None),
        Some((c, _)) => (None, Some(c)),
        None => (None, None),
    };
    let training_reused = earlier.is_some();
    if training_reused {
        progress.note(&format!(
            "{} holds a codebook trained with these settings on this input by this vectro; \
             reusing it instead of training again",
            from.display()
        ));
    }
    let (codec, auto) = match (earlier, frozen, stale) {
        (Some(c), _, _) | (None, Some((c, _)), _) => (c, None),
        // A finished output of other settings: the check below says what differs, and
        // training first would not change its answer.
        (None, None, Some(c)) if keep_existing => (c, None),
        (None, None, _) if is_trained(&opts.codec) => {
            (train_codec(&source, opts, threads, progress, cancel)?, None)
        }
        (None, None, _) => pick_codec(&source, opts, progress)?,
    };
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
    let (_keep, one) = bounded(1);
    let reencode = |i: u64| -> Result<Vec<u8>> {
        let at = chunk_range.start + i;
        let job = source
            .chunks(chunk_rows as u64, at..at + 1)?
            .next()
            .unwrap_or_else(|| unreachable!("a range of one chunk yields one chunk"))?;
        let chunk = encode_job(&job, h.dtype, codec.as_ref(), source.path(), &one)?;
        Ok(staged(chunk, opts.zstd, &one)?.payload)
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
    let result = encode_all(
        &source,
        jobs,
        &out,
        header.clone(),
        codec.as_ref(),
        (threads, opts.zstd),
        progress,
        cancel,
        &resume,
    );
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

/// Whether `codec` names a codec that is trained on the input (pq, opq, binary-itq).
fn is_trained(codec: &str) -> bool {
    matches!(codec.split(':').next(), Some("pq" | "opq" | "binary-itq"))
}

/// The trained codec recorded in an earlier run's output `file` (at `path`), with that
/// file's header. Anything unreadable is `None`: the caller then trains.
fn earlier_codec(path: &Path, file: &std::fs::File) -> Option<(Box<dyn Codec>, Header)> {
    // SAFETY: read-only. The partial output is under this run's exclusive lock; another
    // process rewriting a finished output while we read is outside what we can guard
    // against (as for any mmap reader), and every length is checked against the map's size.
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    let (old, _) = Header::decode(path, &map).ok()?;
    let codec = codec::from_spec(old.codec.id, &old.codec.params, old.dims as usize).ok()?;
    Some((codec, old))
}

/// The codec `opts` asks for; for `auto`, the one the sample measurement picks (each line
/// of its report also goes to `progress.note`).
fn pick_codec(
    source: &Input,
    opts: &CompressOptions,
    progress: &dyn Progress,
) -> Result<(Box<dyn Codec>, Option<AutoReport>)> {
    let dims = source.header().dims as usize;
    if opts.codec != "auto" {
        if opts.target.is_some() {
            return Err(Error::Config(
                "--min-cosine and --min-recall only apply with --codec auto".into(),
            ));
        }
        return Ok((codec::parse(&opts.codec, dims)?, None));
    }
    let Some(target) = opts.target else {
        return Err(Error::Config(
            "--codec auto needs a target: --min-cosine X or --min-recall X".into(),
        ));
    };
    if opts.sample == 0 {
        return Err(Error::Config("--sample must be at least 1".into()));
    }
    let ids = auto::sample_ids(source.header().rows, opts.sample as u64, auto::SAMPLE_SEED);
    let mut sample = vec![0f32; ids.len() * dims];
    source.read_rows(&ids, &mut sample)?;
    let report = auto::choose(&sample, dims, target)?;
    for line in report.lines() {
        progress.note(&line);
    }
    Ok((codec::parse(&report.chosen, dims)?, Some(report)))
}

/// The codec of a frozen `--codebook`, checked against `--codec` if one is given, and the
/// training recipe its file records.
fn frozen_codec(
    path: &Path,
    opts: &CompressOptions,
    dims: usize,
) -> Result<(Box<dyn Codec>, Option<String>)> {
    let (book, recipe) = super::train::read_codebook(path, dims)?;
    let kind = if book.rotation.is_some() { "opq" } else { "pq" };
    let (asked, params) = opts.codec.split_once(':').unwrap_or((&opts.codec, ""));
    let fits = opts.codec == CompressOptions::default().codec
        || (asked == kind
            && codec::pq::PqParams::parse(asked, params, dims).map_or(params.is_empty(), |p| {
                p.m == book.m && p.nbits == book.nbits
            }));
    if !fits {
        return Err(Error::Mismatch(format!(
            "{}: the codebook is {kind}:m={},nbits={}, but --codec asks for '{}'; drop --codec or train a matching codebook",
            path.display(),
            book.m,
            book.nbits,
            opts.codec
        )));
    }
    Ok((Box::new(codec::Pq::new(book)), recipe))
}

/// `--codec` (pq, opq, binary-itq) trained on a sample of the input, on exactly
/// `threads` threads.
fn train_codec(
    source: &Input,
    opts: &CompressOptions,
    threads: usize,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Box<dyn Codec>> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Config(format!("cannot start {threads} threads: {e}")))?;
    let train = codec::TrainOptions {
        train_rows: opts.train_rows,
        cancel: Some(cancel),
    };
    pool.install(|| codec::parse_trained(&opts.codec, source, &train, progress))
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
    }
    m.insert(
        "tool".into(),
        format!("vectro {}", env!("CARGO_PKG_VERSION")),
    );
    m
}

#[allow(clippy::too_many_arguments)]
fn encode_all(
    source: &Input,
    jobs: Box<dyn Iterator<Item = Result<ChunkJob>> + Send>,
    out: &Dest,
    header: Header,
    codec: &dyn Codec,
    (threads, zstd): (usize, Option<i32>),
    progress: &dyn Progress,
    cancel: &AtomicBool,
    resume: &Start,
) -> Result<(u64, u64)> {
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
    let (recycle, pool) = bounded::<Vec<u8>>(2 * threads + 2);
    let mut sink = ChunkSink {
        writer,
        out_path,
        recycle,
    };
    let dtype = header.source_dtype;
    let row_bytes = source.header().row_bytes() as u64;
    let mut behind = ReleaseBehind::by_bytes(row_bytes);
    run_ordered(
        threads,
        jobs,
        |job| {
            let chunk = encode_job(&job, dtype, codec, source.path(), &pool)?;
            staged(chunk, zstd, &pool)
        },
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

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Encodes one chunk: convert to float32 if needed, refuse non-finite values, encode.
pub(crate) fn encode_job(
    job: &ChunkJob,
    dtype: Dtype,
    codec: &dyn Codec,
    path: &Path,
    pool: &Receiver<Vec<u8>>,
) -> Result<EncodedChunk> {
    let mut payload = pool.try_recv().unwrap_or_default();
    payload.resize(codec.encoded_len(job.rows as usize), 0);
    let bytes = job.bytes();
    let encode = |data: &[f32], payload: &mut [u8]| -> Result<ChunkCrc> {
        if !codec.row_major() {
            encode_block(codec, data, payload, job.first_row, path)?;
            return Ok(ChunkCrc::new(payload));
        }
        // Encoded and checksummed a piece at a time, the crc reads what the encoder just
        // wrote from the core's cache, not the whole payload again from memory.
        let (d, row_bytes) = (codec.dims(), codec.encoded_len(1).max(1));
        let rows = (CRC_PIECE / row_bytes).max(1);
        let mut crc = ChunkCrcBuilder::new();
        let pieces = data
            .chunks(rows * d)
            .zip(payload.chunks_mut(rows * row_bytes));
        for (i, (data, payload)) in pieces.enumerate() {
            encode_block(
                codec,
                data,
                payload,
                job.first_row + (i * rows) as u64,
                path,
            )?;
            crc.update(payload);
        }
        Ok(crc.finish())
    };
    let crc = match as_f32(bytes, dtype) {
        Some(data) => encode(data, &mut payload)?,
        None => SCRATCH
            .with(|s| {
                let mut s = s.borrow_mut();
                s.resize(bytes.len() / dtype.size(), 0.0);
                dtype.to_f32(bytes, &mut s);
                encode(&s, &mut payload)
            })
            .map_err(|e| f64_overflow(e, bytes, dtype, job.first_row, codec.dims()))?,
    };
    Ok(EncodedChunk {
        first_row: job.first_row,
        rows: job.rows,
        crc,
        payload,
    })
}

/// Payload bytes a row-major codec encodes before checksumming them: well inside a core's
/// L2 cache.
const CRC_PIECE: usize = 128 << 10;

/// A float64 value past float32's range converts to ±inf, which the encoder reports as
/// non-finite; say what the input really holds (it said "1e300 ... is inf").
fn f64_overflow(e: Error, bytes: &[u8], dtype: Dtype, first_row: u64, dims: usize) -> Error {
    let Error::NonFinite { path, row, col, .. } = &e else {
        return e;
    };
    if dtype != Dtype::F64Le {
        return e;
    }
    let at = ((row - first_row) as usize * dims + *col as usize) * 8;
    let Some(b) = bytes.get(at..at + 8) else {
        return e;
    };
    let v = f64::from_le_bytes(b.try_into().expect("8 bytes"));
    if !v.is_finite() {
        return e;
    }
    Error::OutOfRange {
        path: path.clone(),
        row: *row,
        col: *col,
        msg: format!(
            "{v:e} is beyond float32's range (±3.4e38), which Vectro computes in; scale or \
             clip the data first"
        ),
    }
}

/// Applies the payload stage, if any.
fn staged(
    chunk: EncodedChunk,
    zstd: Option<i32>,
    pool: &Receiver<Vec<u8>>,
) -> Result<EncodedChunk> {
    match zstd {
        Some(level) => zstd_stage(chunk, level, pool),
        None => Ok(chunk),
    }
}

/// The zstd payload stage: replaces the chunk's payload by its zstd frame.
fn zstd_stage(chunk: EncodedChunk, level: i32, pool: &Receiver<Vec<u8>>) -> Result<EncodedChunk> {
    let mut frame = pool.try_recv().unwrap_or_default();
    codec::zstd::compress_into(&chunk.payload, level, &mut frame)?;
    Ok(EncodedChunk {
        crc: ChunkCrc::new(&frame),
        payload: frame,
        ..chunk
    })
}

/// Views little-endian float32 bytes as floats without a copy, when alignment allows.
fn as_f32(bytes: &[u8], dtype: Dtype) -> Option<&[f32]> {
    if dtype != Dtype::F32Le || cfg!(target_endian = "big") {
        return None;
    }
    // SAFETY: every bit pattern is a valid f32; align_to only yields the aligned middle.
    let (pre, mid, post) = unsafe { bytes.align_to::<f32>() };
    (pre.is_empty() && post.is_empty()).then_some(mid)
}

/// Encodes the rows of `data`, the first of which is row `first_row` of `path`, into
/// `payload`: NaN and ±Inf are refused as [`Error::NonFinite`] naming the first offender,
/// other values the codec cannot hold as [`Error::OutOfRange`].
pub(crate) fn encode_block(
    codec: &dyn Codec,
    data: &[f32],
    payload: &mut [u8],
    first_row: u64,
    path: &Path,
) -> Result<()> {
    if !codec.rejects_non_finite() {
        check_finite(data, codec.dims(), first_row, path)?;
    }
    codec.encode(data, payload).map_err(|f| {
        // A codec that checks for itself stops at its first fault, which may be a
        // non-finite value: name it as one.
        let upto = (f.row * codec.dims() + f.col + 1).min(data.len());
        if let Err(e) = check_finite(&data[..upto], codec.dims(), first_row, path) {
            return e;
        }
        Error::OutOfRange {
            path: path.to_path_buf(),
            row: first_row + f.row as u64,
            col: f.col as u64,
            msg: f.msg,
        }
    })
}

/// Refuses NaN and ±Inf, naming the first offender.
pub(crate) fn check_finite(data: &[f32], dims: usize, first_row: u64, path: &Path) -> Result<()> {
    // A SIMD pass (12% of compress CPU when it was SSE2); the position only on failure.
    if !crate::simd::any_non_finite(data) {
        return Ok(());
    }
    let i = data
        .iter()
        .position(|x| !x.is_finite())
        .expect("found above");
    Err(Error::NonFinite {
        path: path.to_path_buf(),
        row: first_row + (i / dims) as u64,
        col: (i % dims) as u64,
        value: format!("{}", data[i]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Bf16, F16, Int4, Int8, ScaleRule};

    #[test]
    fn row_major_codecs_encode_in_pieces_to_the_whole_blocks_bytes_crc_and_errors() {
        // 600 payload bytes a row: pieces of 218 rows, so 1000 rows make five.
        let (d, rows) = (300usize, 1000usize);
        let mut rng = crate::test_rng::Rng(0x4a1f_93c2_77d0_5e61);
        let data: Vec<f32> = (0..d * rows)
            .map(|_| (rng.next() as i32) as f32 / 1e6)
            .collect();
        let (_recycle, pool) = crossbeam_channel::bounded(1);
        for codec in [&F16::new(d) as &dyn Codec, &Bf16::new(d)] {
            let mut whole = vec![0u8; codec.encoded_len(rows)];
            codec.encode(&data, &mut whole).unwrap();
            let mut bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            let job = ChunkJob::owned(0, 40, rows as u64, bytes.clone());
            let chunk = encode_job(&job, Dtype::F32Le, codec, Path::new("x.npy"), &pool).unwrap();
            assert!(chunk.payload == whole, "{}", codec.name());
            assert_eq!(chunk.crc, ChunkCrc::new(&whole), "{}", codec.name());
            // A NaN in the fourth piece is named by its row in the file.
            let at = (700 * d + 5) * 4;
            bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            let job = ChunkJob::owned(0, 40, rows as u64, bytes);
            match encode_job(&job, Dtype::F32Le, codec, Path::new("x.npy"), &pool) {
                Err(Error::NonFinite { row, col, .. }) => assert_eq!((row, col), (740, 5)),
                other => panic!("{}: {other:?}", codec.name()),
            }
        }
    }

    /// `(row, col, text)` of the error `encode_block` gives for two rows of 3 dims that
    /// start at row 10.
    fn offender(codec: &dyn Codec, data: &[f32]) -> Option<(u64, u64, String)> {
        let mut out = vec![0u8; codec.encoded_len(2)];
        match encode_block(codec, data, &mut out, 10, Path::new("x.npy")) {
            Ok(()) => None,
            Err(Error::NonFinite {
                row, col, value, ..
            }) => Some((row, col, value)),
            Err(Error::OutOfRange { row, col, msg, .. }) => Some((row, col, msg)),
            Err(e) => panic!("{}: {e}", codec.name()),
        }
    }

    /// The first offender in row-major order is named, as NaN/Inf or as out of range,
    /// whether the codec checks for itself (int8, f16, bf16, int4) or relies on the
    /// separate pass (int4's gauss grid).
    #[test]
    fn encode_block_names_the_first_offender() {
        let codecs: Vec<Box<dyn Codec>> = vec![
            Box::new(Int8::new(3)),
            Box::new(F16::new(3)),
            Box::new(Bf16::new(3)),
            Box::new(Int4::new(3, ScaleRule::Default)),
            Box::new(Int4::new(3, ScaleRule::Gauss)),
        ];
        let (nan, inf) = (f32::NAN, f32::INFINITY);
        for c in &codecs {
            let c = c.as_ref();
            assert_eq!(offender(c, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), None);
            let got = offender(c, &[1.0, 2.0, 3.0, 4.0, nan, 6.0]);
            assert_eq!(got, Some((11, 1, "NaN".into())), "{}", c.name());
            let got = offender(c, &[1.0, -inf, 3.0, nan, 5.0, 6.0]);
            assert_eq!(got, Some((10, 1, "-inf".into())), "{}", c.name());
        }
        // Too large for f16 but finite: named as out of range, before a later NaN/Inf.
        let f16 = F16::new(3);
        for data in [
            [1.0e6, 2.0, 3.0, 4.0, nan, 6.0],
            [1.0, 2.0, 3.0, 1.0e6, inf, 6.0],
        ] {
            let (row, col, msg) = offender(&f16, &data).unwrap();
            assert_eq!((row, col), (10 + u64::from(data[0] == 1.0), 0), "{data:?}");
            assert!(msg.contains("does not fit f16"), "{msg}");
        }
        // A NaN before the overflow in the same row is the first offender.
        let got = offender(&f16, &[nan, 1.0e6, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(got, Some((10, 0, "NaN".into())));
    }
}
