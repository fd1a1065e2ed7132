//! `compress`: a `.npy` file into a container.

use std::cell::RefCell;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crossbeam_channel::{Receiver, bounded};
use serde::Serialize;

use super::ordered::run_ordered;
use super::reader::{ChunkJob, NpySource};
use super::writer::{ChunkLayout, ChunkSink, EncodedChunk, PlacedChunk, PlacedSink};
use super::{Progress, default_threads, peak_rss_bytes};
use crate::codec::{self, Codec};
use crate::error::{Error, Result};
use crate::format::{CHUNK_OVERHEAD, ContainerWriter, Header, Metadata};
use crate::npy::Dtype;
use crate::output::{AtomicOutput, DirectWriter, Durability, WriteBehind};

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
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            codec: "int8".into(),
            threads: 0,
            chunk_rows: None,
            overwrite: false,
            durability: Durability::Fsync,
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
    compress_with(input, output, opts, progress, cancel, true)
}

/// [`compress`], choosing whether to try direct I/O (tests run both ways).
pub(crate) fn compress_with(
    input: &Path,
    output: &Path,
    opts: &CompressOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
    direct_io: bool,
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
    let out = AtomicOutput::create(output, opts.overwrite, opts.durability)?;
    let header = Header {
        codec: codec.spec(),
        rows: h.rows,
        dims: h.dims as u32,
        chunk_rows,
        source_dtype: h.dtype,
        metadata: source_metadata(&source),
    };
    let threads = if opts.threads == 0 {
        default_threads()
    } else {
        opts.threads
    };
    progress.begin(h.rows, h.rows * h.row_bytes() as u64);
    let codec = codec.as_ref();
    let direct = if direct_io { out.direct_writer() } else { None };
    let result = match direct {
        Some(w) => encode_direct(&source, &out, w, header, codec, threads, progress, cancel),
        None => encode_all(&source, &out, header, codec, threads, progress, cancel),
    };
    progress.finish();
    let chunks = result?;
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
    })
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
    m.insert(
        "tool".into(),
        format!("vectro {}", env!("CARGO_PKG_VERSION")),
    );
    m
}

/// Encodes on the workers and writes in order through direct I/O (see [`DirectWriter`]):
/// the one writer thread copies each chunk into the aligned block, and the device reads it
/// from there.
#[allow(clippy::too_many_arguments)]
fn encode_direct(
    source: &NpySource,
    out: &AtomicOutput,
    direct: DirectWriter,
    header: Header,
    codec: &dyn Codec,
    threads: usize,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<u64> {
    let out_path = out.tmp_path();
    let writer = ContainerWriter::new(direct, header.clone())
        .map_err(|e| Error::io(out_path, "writing", e))?;
    let (recycle, pool) = bounded::<Vec<u8>>(2 * threads + 2);
    // read() or the mapping: measured by scripts/bench.sh; VECTRO_READ=mmap picks the map.
    let input = match std::env::var("VECTRO_READ").as_deref() {
        Ok("mmap") => None,
        _ => std::fs::File::open(source.path()).ok(),
    };
    let mut sink = ChunkSink {
        writer,
        out_path,
        // Also in read mode, for progress; releasing pages never mapped costs next to nothing.
        source: Some(source),
        progress,
        recycle,
    };
    let dtype = header.source_dtype;
    run_ordered(
        threads,
        source.chunks(header.chunk_rows as u64),
        |job| match &input {
            Some(f) => encode_read(&job, source, f, dtype, codec, &pool),
            None => encode_job(&job, dtype, codec, source.path(), &pool),
        },
        |chunk| sink.put(chunk),
        cancel,
    )?;
    let chunks = sink.writer.chunks().len() as u64;
    let w = sink
        .writer
        .finish()
        .map_err(|e| Error::io(out_path, "writing", e))?;
    w.finish().map_err(|e| Error::io(out_path, "writing", e))?;
    Ok(chunks)
}

/// Encodes on the workers, which also write their chunks at their final offsets (see
/// [`ChunkLayout`]), so the copy into the page cache runs on every core; the ordered stage
/// records the index and starts write-back in durable mode.
fn encode_all(
    source: &NpySource,
    out: &AtomicOutput,
    header: Header,
    codec: &dyn Codec,
    threads: usize,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<u64> {
    let out_path = out.tmp_path();
    let io = |e| Error::io(out_path, "writing", e);
    let file = out.file();
    let head = header.encode();
    file.write_all_at(&head, 0).map_err(io)?;
    let layout = ChunkLayout {
        start: head.len() as u64,
        stride: (CHUNK_OVERHEAD + codec.encoded_len(header.chunk_rows as usize)) as u64,
    };
    let (recycle, pool) = bounded::<Vec<u8>>(2 * threads + 2);
    let mut sink = PlacedSink {
        index: Vec::new(),
        offset: layout.start,
        behind: WriteBehind::new(file, out.durability()),
        source: Some(source),
        progress,
        recycle,
    };
    let dtype = header.source_dtype;
    run_ordered(
        threads,
        source.chunks(header.chunk_rows as u64),
        |job| {
            let c = encode_job(&job, dtype, codec, source.path(), &pool)?;
            let entry = layout
                .place(file, job.index, c.first_row, c.rows, &c.payload)
                .map_err(io)?;
            Ok(PlacedChunk {
                entry,
                payload: c.payload,
            })
        },
        |chunk| sink.put(chunk),
        cancel,
    )?;
    let chunks = sink.index.len() as u64;
    let mut w = out.writer();
    w.seek(SeekFrom::Start(sink.offset)).map_err(io)?;
    let mut w = ContainerWriter::resume(w, header, sink.index, sink.offset)
        .finish()
        .map_err(io)?;
    w.flush().map_err(io)?;
    Ok(chunks)
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static READ: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Encodes one chunk: convert to float32 if needed, refuse non-finite values, encode.
pub(crate) fn encode_job(
    job: &ChunkJob,
    dtype: Dtype,
    codec: &dyn Codec,
    path: &Path,
    pool: &Receiver<Vec<u8>>,
) -> Result<EncodedChunk> {
    encode_bytes(
        job.bytes(),
        job.first_row,
        job.rows,
        dtype,
        codec,
        path,
        pool,
    )
}

/// [`encode_job`] reading the chunk with `pread` into a reused buffer instead of touching
/// the mapping: no page faults, no `madvise` to release pages behind, and the data is hot
/// in cache for the passes that follow the copy.
pub(crate) fn encode_read(
    job: &ChunkJob,
    source: &NpySource,
    file: &std::fs::File,
    dtype: Dtype,
    codec: &dyn Codec,
    pool: &Receiver<Vec<u8>>,
) -> Result<EncodedChunk> {
    let h = source.header();
    let offset = h.data_offset + job.first_row * h.row_bytes() as u64;
    let len = job.rows as usize * h.row_bytes();
    READ.with(|b| {
        let mut b = b.borrow_mut();
        b.resize(len.div_ceil(4), 0.0);
        let bytes = &mut bytemuck_bytes_mut(&mut b)[..len];
        file.read_exact_at(bytes, offset)
            .map_err(|e| Error::io(source.path(), "reading", e))?;
        encode_bytes(
            bytes,
            job.first_row,
            job.rows,
            dtype,
            codec,
            source.path(),
            pool,
        )
    })
}

fn bytemuck_bytes_mut(v: &mut [f32]) -> &mut [u8] {
    // SAFETY: any byte pattern is a valid f32 and u8 has alignment 1; length scaled by 4.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 4) }
}

fn encode_bytes(
    bytes: &[u8],
    first_row: u64,
    rows: u64,
    dtype: Dtype,
    codec: &dyn Codec,
    path: &Path,
    pool: &Receiver<Vec<u8>>,
) -> Result<EncodedChunk> {
    let mut payload = pool.try_recv().unwrap_or_default();
    payload.resize(codec.encoded_len(rows as usize), 0);
    let encode = |data: &[f32], payload: &mut [u8]| -> Result<()> {
        check_finite(data, codec.dims(), first_row, path)?;
        codec.encode(data, payload).map_err(|f| Error::OutOfRange {
            path: path.to_path_buf(),
            row: first_row + f.row as u64,
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
        first_row,
        rows,
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
    use crate::generate::{GenerateOptions, generate};
    use crate::pipeline::NoProgress;

    /// The container a plain sequential writer makes from the same input: the reference the
    /// parallel, positional writes must reproduce byte for byte.
    fn sequential(npy: &Path, chunk_rows: u32) -> Vec<u8> {
        let source = NpySource::open(npy).unwrap();
        let h = *source.header();
        let codec = codec::parse("int8", h.dims as usize).unwrap();
        let header = Header {
            codec: codec.spec(),
            rows: h.rows,
            dims: h.dims as u32,
            chunk_rows,
            source_dtype: h.dtype,
            metadata: source_metadata(&source),
        };
        let mut w = ContainerWriter::new(Vec::new(), header).unwrap();
        for job in source.chunks(chunk_rows as u64) {
            let job = job.unwrap();
            let data: Vec<f32> = job
                .bytes()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            let mut payload = vec![0u8; codec.encoded_len(job.rows as usize)];
            codec.encode(&data, &mut payload).unwrap();
            w.write_chunk(job.rows, &payload).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn check_finite_finds_exactly_the_non_finite_values() {
        let p = Path::new("x.npy");
        let edge = [
            f32::MAX,
            -f32::MAX,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            -0.0,
            0.0,
        ];
        let mut data: Vec<f32> = (0..300).map(|i| edge[i % edge.len()]).collect();
        check_finite(&data, 3, 0, p).unwrap();
        for (at, bad) in [
            (0, f32::NAN),
            (150, f32::INFINITY),
            (299, f32::NEG_INFINITY),
        ] {
            let keep = data[at];
            data[at] = bad;
            match check_finite(&data, 3, 10, p) {
                Err(Error::NonFinite { row, col, .. }) => {
                    assert_eq!((row, col), (10 + at as u64 / 3, at as u64 % 3))
                }
                other => panic!("{bad} at {at}: {other:?}"),
            }
            data[at] = keep;
        }
        // A NaN with a payload and the sign bit set is still NaN.
        data[7] = f32::from_bits(0xffc0_0001);
        assert!(check_finite(&data, 3, 0, p).is_err());
    }

    #[test]
    fn parallel_placed_chunks_equal_the_sequential_container() {
        let dir = tempfile::tempdir().unwrap();
        let npy = dir.path().join("x.npy");
        let opts = GenerateOptions {
            rows: 1000,
            dims: 37,
            ..Default::default()
        };
        let stop = AtomicBool::new(false);
        generate(&npy, &opts, false, &NoProgress, &stop).unwrap();
        for chunk_rows in [1u32, 7, 64, 999, 1000, 5000] {
            let want = sequential(&npy, chunk_rows);
            for (threads, durability) in [
                (1, Durability::None),
                (2, Durability::Fsync),
                (5, Durability::None),
            ] {
                let out = dir.path().join(format!("o{chunk_rows}-{threads}.vectro"));
                let o = CompressOptions {
                    threads,
                    chunk_rows: Some(chunk_rows),
                    durability,
                    ..Default::default()
                };
                for direct_io in [false, true] {
                    std::fs::remove_file(&out).ok();
                    compress_with(&npy, &out, &o, &NoProgress, &stop, direct_io).unwrap();
                    let got = std::fs::read(&out).unwrap();
                    assert!(
                        got == want,
                        "chunk_rows {chunk_rows}, threads {threads}, direct {direct_io}"
                    );
                }
            }
        }
    }
}
