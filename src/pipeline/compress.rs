//! `compress`: a `.npy` file into a container.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::Progress;
use super::choose::{self, Choice, Choose, Recipe};
pub use super::options::{CompressOptions, CompressSummary};
use super::resume::{self, Start};
use crate::codec::{self, Codec, CodecRequest, CodecSpec, PayloadStage, Tiered};
use crate::encode::default_chunk_rows;
use crate::encode::ids::{append_ids, open_ids};
use crate::encode::worker::Encoder;
use crate::encode::writer::{ChunkSink, EncodedChunk};
use crate::error::{Error, ErrorKind, Result};
use crate::format::ids;
use crate::format::{ContainerWriter, Header, IdKind, IdSource, Metadata};
use crate::output::dest::Dest;
use crate::par::{peak_rss_bytes, run_ordered};
use crate::source::columnar::PayloadColumns;
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

/// [`compress`] of an opened `source`, named `input` in the summary, with the ids of
/// `opts.ids` if any.
pub(crate) fn compress_source(
    source: Input,
    input: &Path,
    output: &Path,
    opts: &CompressOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<CompressSummary> {
    let ids: Option<Box<dyn IdSource>> = match (&opts.ids, &opts.id_column) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(
                "give the ids once: --ids FILE or --id-column NAME, not both".into(),
            ));
        }
        (Some(path), None) => Some(open_ids(path)?),
        (None, Some(name)) => Some(Box::new(crate::source::open_id_column(input, name)?)),
        (None, None) => None,
    };
    compress_with_ids(source, ids, input, output, opts, progress, cancel)
}

/// [`compress_source`] with the rows' ids taken from `ids` (a file of ids, or a column of
/// a table input), one per input row, stored in each chunk after its payload.
pub(crate) fn compress_with_ids(
    source: Input,
    ids: Option<Box<dyn IdSource>>,
    input: &Path,
    output: &Path,
    opts: &CompressOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<CompressSummary> {
    let start = Instant::now();
    // Plan: every setting is checked before training, which can take minutes.
    let id_kind = check_ids(ids.as_deref(), source.header().rows, input, opts)?;
    let payload = open_payload(&source, input, opts)?;
    let (mut plan, recipe) = Plan::new(&source, output, opts, id_kind, payload.as_ref())?;
    let ids = ids.map(Mutex::new);
    let payload = payload.map(Mutex::new);
    // An output that a shard or `--resume` rerun may keep is judged once the codec is
    // known; any other is created now, so a locked or unwritable one fails before work.
    let early = match plan.keep_existing {
        true => None,
        false => Some(open_dest(output, opts)?),
    };
    // Choose the codec.
    let choice = choose::choose(
        Choose {
            source: &source,
            opts,
            early: early.as_ref(),
            output,
            header_for: &|c| plan.header(c),
            threads: plan.threads,
            progress,
            cancel,
        },
        recipe,
    )?;
    // `--codec auto` chose a trained codec: the header records its recipe, as it does for
    // `--codebook` of that codebook, so the two outputs are the same bytes.
    if let Some(r) = &choice.auto_recipe {
        plan.metadata.insert("train".into(), r.clone());
    }
    let mut choice = choice;
    choice.codec = plan.tiered(choice.codec)?;
    let (codec, header) = (choice.codec.as_ref(), plan.header(choice.codec.as_ref()));
    let report = Report::new(input, output, opts, start, &header, &choice, &source);
    if plan.keep_existing {
        let len = existing_output(output, &header, opts)?;
        return Ok(report.summary(plan.chunks(), len, true, &Start::default()));
    }
    // Open the destination, continuing an interrupted run's partial output if asked.
    let mut out = match early {
        Some(out) => out,
        None => open_dest(output, opts)?,
    };
    let extra = Extra {
        ids: ids.as_ref(),
        payload: payload.as_ref(),
    };
    let resume = prepare_output(&mut out, &source, &plan, &header, codec, opts, extra)?;
    // Run: reader -> workers -> ordered writer.
    let stages = Run {
        source: &source,
        plan: &plan,
        out: &out,
        header: &header,
        codec,
        zstd: opts.zstd,
        progress,
        cancel,
        resume: &resume,
        extra,
    };
    let (chunks, output_bytes) = run(stages).inspect_err(|e| keep_partial_for(&mut out, e))?;
    // Commit.
    out.commit()?;
    Ok(report.summary(chunks, output_bytes, false, &resume))
}

/// The kind of `ids`, which must hold one id per input row (`rows`).
fn check_ids(
    ids: Option<&dyn IdSource>,
    rows: u64,
    input: &Path,
    opts: &CompressOptions,
) -> Result<IdKind> {
    let Some(ids) = ids else {
        return Ok(IdKind::None);
    };
    if ids.rows() != rows {
        return Err(Error::Mismatch(format!(
            "--ids: {} holds {} ids, the input {} has {rows} rows; give one id per input row, in row order",
            opts.ids
                .as_deref()
                .unwrap_or(Path::new("the id column"))
                .display(),
            ids.rows(),
            input.display(),
        )));
    }
    Ok(ids.kind())
}

/// The payload columns of `opts.payload_columns`, if any, checked to hold one value per
/// input row.
fn open_payload(
    source: &Input,
    input: &Path,
    opts: &CompressOptions,
) -> Result<Option<PayloadColumns>> {
    if opts.payload_columns.is_empty() {
        return Ok(None);
    }
    let p = crate::source::open_payload_columns(input, &opts.payload_columns)?;
    if p.rows() != source.header().rows {
        return Err(Error::Mismatch(format!(
            "--payload-columns: {} holds {} rows of payload columns, but {} rows of vectors",
            input.display(),
            p.rows(),
            source.header().rows
        )));
    }
    Ok(Some(p))
}

/// What the writer appends to each chunk after the codec's payload: the rows' ids, then
/// their payload columns.
#[derive(Clone, Copy)]
struct Extra<'a> {
    ids: Option<&'a Mutex<Box<dyn IdSource>>>,
    payload: Option<&'a Mutex<PayloadColumns>>,
}

impl Extra<'_> {
    /// Appends the ids and payload columns of `chunk`'s rows to its payload (and crc).
    /// On the writer thread, in chunk order: both are read forward once,
    /// deterministically whatever the threads.
    fn append(&self, chunk: &mut EncodedChunk) -> Result<()> {
        with_ids(chunk, self.ids)?;
        let Some(p) = self.payload else {
            return Ok(());
        };
        let rows = chunk.first_row..chunk.first_row + chunk.rows;
        let batch = p
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .read(rows.clone())?;
        let at = chunk.payload.len();
        crate::format::payload::encode_block(&batch, &mut chunk.payload)
            .map_err(|m| Error::Config(format!("rows {}..{}: {m}", rows.start, rows.end)))?;
        chunk.crc = chunk.crc.extend(&chunk.payload[at..]);
        Ok(())
    }
}

/// Drops the partial output of a run that failed on bad input, which needs a new input
/// that a resume would discard anyway; keeps it (if asked) for an I/O error, a cancel or
/// a bug, which a `--resume` rerun can continue after.
fn keep_partial_for(out: &mut Dest, e: &Error) {
    if !matches!(
        e.kind(),
        ErrorKind::Io | ErrorKind::Cancelled | ErrorKind::Internal
    ) {
        out.keep_on_drop(false);
    }
}

/// Refuses an output that is one of the input files or the codebook.
fn check_output(source: &Input, output: &Path, opts: &CompressOptions) -> Result<()> {
    let files = source.files();
    let others = opts
        .codebook
        .as_deref()
        .into_iter()
        .chain(opts.ids.as_deref());
    crate::output::check_not_input(output, files.into_iter().chain(others))
}

/// The rescoring tier `--rescore` asks for, checked against `--codec` where that can be
/// done before training: a codec built without training, not the `--codec` itself, and
/// (when `--codec` needs no training) more bytes a row than it.
fn rescore_tier(opts: &CompressOptions, dims: usize) -> Result<Option<CodecSpec>> {
    let Some(r) = &opts.rescore else {
        return Ok(None);
    };
    if r.is_trained() || *r == CodecRequest::Auto {
        return Err(Error::Config(format!(
            "--rescore {}: the rescoring tier must be a codec built without training (int8, int4, sq:bits=B, f16, bf16)",
            r.name()
        )));
    }
    if opts.zstd.is_some() {
        return Err(Error::Config(
            "--zstd and --rescore together are not supported: tiers are stored plain so that each can be read on its own".into(),
        ));
    }
    let fine = r.build(dims)?;
    let coarse = opts.codec.clone().unwrap_or_default();
    if opts.codebook.is_none() && !coarse.is_trained() && coarse != CodecRequest::Auto {
        Tiered::new(vec![coarse.build(dims)?, r.build(dims)?])?;
    }
    Ok(Some(fine.spec()))
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
/// header but for the codec; and how it runs.
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
    /// Worker threads.
    threads: usize,
    /// An existing output may be kept (a shard's, or a `--resume` rerun's finished one),
    /// if it proves to be this run's complete output.
    keep_existing: bool,
    /// What ids the rows carry.
    ids: IdKind,
    /// The rows carry payload columns.
    payload: bool,
    /// The rescoring tier (`--rescore`), stored after the codec's payload in every chunk.
    rescore: Option<CodecSpec>,
}

impl Plan {
    /// Plans a run of `source` into `output` with `opts`, checking every setting, and
    /// reads the `--codebook` or works out the training recipe, which the metadata
    /// records with the shard.
    fn new(
        source: &Input,
        output: &Path,
        opts: &CompressOptions,
        ids: IdKind,
        payload: Option<&PayloadColumns>,
    ) -> Result<(Plan, Recipe)> {
        check_output(source, output, opts)?;
        let h = source.header();
        let chunk_rows = chunk_rows(opts, h.rows, h.dims, source.path())?;
        let rescore = rescore_tier(opts, h.dims as usize)?;
        let recipe = Recipe::new(opts, h.dims as usize)?;
        let mut metadata = source_metadata(source);
        if let Some(r) = &recipe.recipe {
            metadata.insert("train".into(), r.to_string());
        }
        if let Some(p) = payload {
            metadata.insert(
                crate::format::payload::KEY_COLUMNS.into(),
                crate::format::payload::describe(p.schema()),
            );
        }
        let (chunk_range, rows) = match opts.shard {
            Some(s) => {
                let (c, r) = s.plan(h.rows, chunk_rows as u64)?;
                s.record(&mut metadata, &r, h.rows);
                (c, r)
            }
            None => (0..h.rows.div_ceil(chunk_rows as u64), 0..h.rows),
        };
        let plan = Plan {
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
            threads: crate::par::resolve_threads(opts.threads),
            keep_existing: (opts.shard.is_some() || opts.resume)
                && !opts.overwrite
                && output.as_os_str() != "-"
                && output.exists(),
            ids,
            payload: payload.is_some(),
            rescore,
        };
        Ok((plan, recipe))
    }

    /// The codec this run encodes with: `chosen` (the `--codec`), with the `--rescore`
    /// tier after it if there is one.
    fn tiered(&self, chosen: Box<dyn Codec>) -> Result<Box<dyn Codec>> {
        match &self.rescore {
            Some(f) if chosen.search_tiers().is_empty() => Ok(Box::new(Tiered::new(vec![
                chosen,
                codec::from_spec(f.id, &f.params, self.dims as usize)?,
            ])?)),
            _ => Ok(chosen),
        }
    }

    /// The header this run writes with `codec` (the `--codec`, or the tiered codec of
    /// [`Plan::tiered`]).
    fn header(&self, codec: &dyn Codec) -> Header {
        let (spec, tiers) = match (&self.rescore, codec.search_tiers()) {
            (Some(f), t) if t.is_empty() => (f.clone(), vec![codec.spec()]),
            (_, t) => (codec.spec(), t),
        };
        Header {
            codec: spec,
            tiers,
            rows: self.rows.end - self.rows.start,
            dims: self.dims,
            chunk_rows: self.chunk_rows,
            source_dtype: self.source_dtype,
            metadata: self.metadata.clone(),
            stage: self.stage,
            ids: self.ids,
            payload: self.payload,
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

impl<'a> Report<'a> {
    fn new(
        input: &'a Path,
        output: &'a Path,
        opts: &'a CompressOptions,
        start: Instant,
        header: &'a Header,
        choice: &'a Choice,
        source: &Input,
    ) -> Self {
        let input_bytes = match opts.shard {
            Some(_) => header.rows * source.header().row_bytes() as u64,
            None => source.input_bytes(),
        };
        Report {
            input,
            output,
            opts,
            start,
            header,
            choice,
            input_bytes,
        }
    }

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
    extra: Extra<'_>,
) -> Result<Start> {
    out.keep_on_drop(opts.keep_partial);
    let (encoder, _recycle) = Encoder::new(codec, header.source_dtype, opts.zstd, source.path(), 1);
    let reencode = |i: u64| -> Result<Vec<u8>> {
        let at = plan.chunk_range.start + i;
        let job = source
            .chunks(plan.chunk_rows as u64, at..at + 1)?
            .next()
            .unwrap_or_else(|| unreachable!("a range of one chunk yields one chunk"))?;
        let mut chunk = encoder.encode(&job)?;
        extra.append(&mut chunk)?;
        Ok(chunk.payload)
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
    if opts.zstd.is_none() && header.ids != IdKind::Str && !header.payload {
        // The size is exact when payloads are not compressed (and ids, if any, are u64).
        let ids = ids::block_len_bounds(header.ids, 1).0;
        out.preallocate(
            header.container_len(|rows| codec.encoded_len(rows as usize) as u64 + ids * rows),
        );
    }
    if opts.resume && matches!(source, Input::Stream(_)) {
        return Err(Error::Config(
            "--resume needs a file input: a stream (input -) cannot be read again".into(),
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
            let files: Vec<_> = (d.files().iter().enumerate())
                .map(|(i, f)| (name(f.path()), d.file_rows(i), f.file_len()))
                .collect();
            record_files(&mut m, &files, true);
            m.insert("source_bytes".into(), d.total_bytes().to_string());
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
            let files: Vec<_> = (t.parts().iter().enumerate())
                .map(|(i, f)| (name(f.name()), t.part_rows(i), f.file_len()))
                .collect();
            record_files(&mut m, &files, files.len() > 1);
            m.insert("source_bytes".into(), t.total_bytes().to_string());
            m.insert("source_format".into(), t.format().into());
        }
    }
    m.insert("tool".into(), crate::format::TOOL.into());
    m
}

/// Records a many-file input's `source` (`FIRST .. LAST (N files)`, or the one name) and,
/// with `list`, `source_files`: each file's name, rows in the whole and bytes.
fn record_files(m: &mut Metadata, files: &[(String, std::ops::Range<u64>, u64)], list: bool) {
    let n = files.len();
    let source = match n {
        1 => files[0].0.clone(),
        _ => format!("{} .. {} ({n} files)", files[0].0, files[n - 1].0),
    };
    m.insert("source".into(), source);
    if list {
        let json: Vec<_> = files
            .iter()
            .map(|(name, r, bytes)| {
                serde_json::json!({ "name": name, "rows": [r.start, r.end], "bytes": bytes })
            })
            .collect();
        m.insert(
            "source_files".into(),
            serde_json::Value::from(json).to_string(),
        );
    }
}

/// Appends the ids of `chunk`'s rows to its payload (and its crc), if the run has ids.
/// On the writer thread, in chunk order: the ids are read forward once, deterministically
/// whatever the threads.
fn with_ids(chunk: &mut EncodedChunk, ids: Option<&Mutex<Box<dyn IdSource>>>) -> Result<()> {
    let Some(ids) = ids else {
        return Ok(());
    };
    let rows = chunk.first_row..chunk.first_row + chunk.rows;
    let column = ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .ids(rows.clone())?;
    chunk.crc = append_ids(&mut chunk.payload, chunk.crc, &column, rows)?;
    Ok(())
}

/// The encoding stages of a compress run, set up.
struct Run<'a> {
    source: &'a Input,
    plan: &'a Plan,
    out: &'a Dest,
    header: &'a Header,
    codec: &'a dyn Codec,
    zstd: Option<i32>,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
    /// The chunks an interrupted run left, which the writer continues after.
    resume: &'a Start,
    /// The rows' ids and payload columns, appended to each chunk by the writer.
    extra: Extra<'a>,
}

/// Reports progress around [`stages`] and names the file and row of a bad value. Returns
/// the chunks written in all and the container's length.
fn run(r: Run<'_>) -> Result<(u64, u64)> {
    let (source, header, progress) = (r.source, r.header, r.progress);
    let row_bytes = source.header().row_bytes() as u64;
    progress.begin(header.rows, header.rows * row_bytes);
    let done = r.resume.rows();
    if done > 0 {
        progress.advance(done, done * row_bytes);
    }
    let first = r.plan.chunk_range.start + r.resume.chunks.len() as u64;
    let result = source
        .chunks(r.plan.chunk_rows as u64, first..r.plan.chunk_range.end)
        .and_then(|jobs| stages(&r, jobs));
    progress.finish();
    result.map_err(|e| locate_error(e, source))
}

/// The pipeline: reader (`jobs`, the plan's chunks after those a resume keeps) → workers
/// ([`Encoder`]) → ordered writer ([`ChunkSink`]).
fn stages(
    r: &Run<'_>,
    jobs: Box<dyn Iterator<Item = Result<ChunkJob>> + Send>,
) -> Result<(u64, u64)> {
    let Run {
        source,
        plan,
        out,
        header,
        codec,
        zstd,
        progress,
        cancel,
        resume,
        extra,
    } = *r;
    let (out_path, threads) = (out.error_path(), plan.threads);
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
        |mut chunk| {
            let (first, rows) = (chunk.first_row, chunk.rows);
            extra.append(&mut chunk)?;
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
