//! `compress`: a `.npy` file into a container.

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crossbeam_channel::{Receiver, bounded};
use serde::Serialize;

use super::ordered::run_ordered;
use super::reader::{ChunkJob, NpySource};
use super::resume::{self, Start};
use super::writer::{ChunkSink, EncodedChunk};
use super::{Progress, default_threads, peak_rss_bytes};
use crate::codec::{self, Codec};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{ContainerWriter, Header, Metadata};
use crate::npy::Dtype;
use crate::output::{AtomicOutput, Durability};

/// Input bytes a default chunk aims for: a few MiB keeps workers busy and memory small.
const TARGET_CHUNK_BYTES: u64 = 4 << 20;

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
    /// Continue the partial output an interrupted run left, if it matches this run.
    pub resume: bool,
    /// Keep the partial output on an I/O error or a cancel, for a later `resume`.
    pub keep_partial: bool,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            codec: "int8".into(),
            threads: 0,
            chunk_rows: None,
            overwrite: false,
            durability: Durability::Fsync,
            resume: false,
            keep_partial: true,
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
    /// Rows taken from an interrupted run's partial output (`resume`).
    pub resumed_rows: u64,
    /// Why a partial output found with `resume` was not reused.
    pub partial_discarded: Option<String>,
}

/// Compresses the `.npy` at `input` into a new container at `output`.
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
    let source = NpySource::open(input)?;
    let h = *source.header();
    let codec = codec::parse(&opts.codec, h.dims as usize)?;
    let chunk_rows = match opts.chunk_rows {
        Some(0) => return Err(Error::Config("--chunk-rows must be at least 1".into())),
        Some(n) => n,
        None => default_chunk_rows(h.dims),
    };
    check_chunk_size(chunk_rows, h.rows, h.dims)?;
    let mut out = AtomicOutput::create_resumable(output, opts.overwrite, opts.durability)?;
    out.keep_on_drop(opts.keep_partial);
    let header = Header {
        codec: codec.spec(),
        rows: h.rows,
        dims: h.dims as u32,
        chunk_rows,
        source_dtype: h.dtype,
        metadata: source_metadata(&source),
    };
    let threads = if opts.threads == 0 { default_threads() } else { opts.threads };
    let resume_at = resume::prepare(&out, &header, &source, codec.as_ref(), opts.resume)?;
    progress.begin(h.rows, h.rows * h.row_bytes() as u64);
    let resumed_rows = resume_at.rows();
    let partial_discarded = resume_at.discarded.clone();
    if resumed_rows > 0 {
        progress.advance(resumed_rows, resumed_rows * h.row_bytes() as u64);
    }
    let result = encode_all(
        &source,
        &out,
        header,
        codec.as_ref(),
        threads,
        progress,
        cancel,
        resume_at,
    );
    progress.finish();
    let chunks = result.inspect_err(|e| {
        // A bad input needs a new input, which a resume would discard anyway.
        if !matches!(
            e.kind(),
            ErrorKind::Io | ErrorKind::Cancelled | ErrorKind::Internal
        ) {
            out.keep_on_drop(false);
        }
    })?;
    out.commit()?;
    let output_bytes = std::fs::metadata(output)
        .map_err(|e| Error::io(output, "reading metadata of", e))?
        .len();
    let seconds = start.elapsed().as_secs_f64();
    Ok(CompressSummary {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        codec: codec.name(),
        rows: h.rows,
        dims: h.dims,
        chunks,
        input_bytes: source.file_len(),
        output_bytes,
        ratio: source.file_len() as f64 / output_bytes as f64,
        seconds,
        mb_per_s: source.file_len() as f64 / 1e6 / seconds.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
        resumed_rows,
        partial_discarded,
    })
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

/// What the container records about its source. Deliberately no wall-clock time: the same
/// input and settings must give the same bytes. The file's own mtime says when it was made.
fn source_metadata(source: &NpySource) -> Metadata {
    let mut m = Metadata::new();
    let name = source
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    m.insert("source".into(), name);
    m.insert("source_bytes".into(), source.file_len().to_string());
    m.insert("source_mtime".into(), source.mtime().to_string());
    m.insert("tool".into(), format!("vectro {}", env!("CARGO_PKG_VERSION")));
    m
}

#[allow(clippy::too_many_arguments)]
fn encode_all(
    source: &NpySource,
    out: &AtomicOutput,
    header: Header,
    codec: &dyn Codec,
    threads: usize,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    start: Start,
) -> Result<u64> {
    let out_path = out.tmp_path();
    let done = start.chunks.len();
    let writer = if done == 0 {
        let mut w = ContainerWriter::new(out.writer(), header.clone())
            .map_err(|e| Error::io(out_path, "writing", e))?;
        w.flush().map_err(|e| Error::io(out_path, "writing", e))?;
        w
    } else {
        ContainerWriter::resume(out.writer(), header.clone(), start.chunks, start.offset)
    };
    let (recycle, pool) = bounded::<Vec<u8>>(2 * threads + 2);
    let mut sink = ChunkSink {
        writer,
        out_path,
        source: Some(source),
        progress,
        recycle,
    };
    let dtype = header.source_dtype;
    run_ordered(
        threads,
        source.chunks(header.chunk_rows as u64).skip(done),
        |job| encode_job(&job, dtype, codec, source.path(), &pool),
        |chunk| sink.put(chunk),
        cancel,
    )?;
    let chunks = sink.writer.chunks().len() as u64;
    let mut w = sink
        .writer
        .finish()
        .map_err(|e| Error::io(out_path, "writing", e))?;
    w.flush().map_err(|e| Error::io(out_path, "writing", e))?;
    Ok(chunks)
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
    let encode = |data: &[f32], payload: &mut [u8]| -> Result<()> {
        check_finite(data, codec.dims(), job.first_row, path)?;
        codec.encode(data, payload).map_err(|f| Error::OutOfRange {
            path: path.to_path_buf(),
            row: job.first_row + f.row as u64,
            col: f.col as u64,
            msg: f.msg,
        })
    };
    match as_f32(bytes, dtype) {
        Some(data) => encode(data, &mut payload)?,
        None => SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.resize(bytes.len() / dtype.size(), 0.0);
            dtype.to_f32(bytes, &mut s);
            encode(&s, &mut payload)
        })?,
    }
    Ok(EncodedChunk {
        first_row: job.first_row,
        rows: job.rows,
        payload,
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

/// Refuses NaN and ±Inf, naming the first offender.
fn check_finite(data: &[f32], dims: usize, first_row: u64, path: &Path) -> Result<()> {
    // A branch-free pass vectorises; we only search for the position when it fails.
    let any_bad = data
        .iter()
        .fold(false, |acc, x| acc | (x.to_bits() & 0x7f80_0000 == 0x7f80_0000));
    if !any_bad {
        return Ok(());
    }
    let i = data.iter().position(|x| !x.is_finite()).expect("found above");
    Err(Error::NonFinite {
        path: path.to_path_buf(),
        row: first_row + (i / dims) as u64,
        col: (i % dims) as u64,
        value: format!("{}", data[i]),
    })
}
