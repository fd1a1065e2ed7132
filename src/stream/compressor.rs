//! [`Compressor`]: a `.npy` stream or a float slice into a container on any writer.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use super::{CountingWriter, StreamSummary};
use crate::codec::{self, Codec, PayloadStage};
use crate::encode::default_chunk_rows;
use crate::encode::worker::Encoder;
use crate::encode::writer::{ChunkSink, EncodedChunk};
use crate::error::{Error, Result};
use crate::format::{ContainerWriter, Header, IdSource, Metadata};
use crate::npy::{self, Dtype};
use crate::par::run_ordered;
use crate::progress::{NoProgress, Progress};
use crate::source::reader::ChunkJob;
use crate::source::stream::read_chunks;

/// Builds and runs a streaming compression.
///
/// Unlike [`compress`](crate::compress), which memory-maps a file, a `Compressor` reads its
/// input front to back, so it works on pipes and sockets. It holds at most
/// `3 × threads + 1` chunks in memory. It shares `compress`'s encoder (the worker stage,
/// zstd stage included) and writer, so the same rows, codec and settings give the same
/// chunks; with the same header metadata, the same bytes.
///
/// ```
/// use vectro::stream::Compressor;
///
/// // A .npy arriving on a socket, say; here, built in memory.
/// let mut npy = vectro::npy::write_header(3, 2);
/// for x in [0.5f32, -1.0, 2.0, 0.0, 1.5, 1.5] {
///     npy.extend_from_slice(&x.to_le_bytes());
/// }
/// let mut out = Vec::new();
/// let s = Compressor::new()
///     .codec("int8")
///     .threads(2)
///     .chunk_rows(2)
///     .metadata("source", "socket")
///     .compress_npy(npy.as_slice(), &mut out)?;
/// assert_eq!((s.rows, s.dims, s.chunks), (3, 2, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Compressor<'a> {
    codec: String,
    rescore: Option<String>,
    threads: usize,
    chunk_rows: Option<u32>,
    zstd: Option<i32>,
    metadata: Metadata,
    name: PathBuf,
    progress: &'a dyn Progress,
    cancel: Option<&'a AtomicBool>,
    /// The rows' ids, appended to each chunk by the writer (format 1.4).
    ids: Option<std::sync::Mutex<Box<dyn IdSource + 'a>>>,
}

impl Default for Compressor<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Compressor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("codec", &self.codec)
            .field("rescore", &self.rescore)
            .field("threads", &self.threads)
            .field("chunk_rows", &self.chunk_rows)
            .field("zstd", &self.zstd)
            .field("metadata", &self.metadata)
            .field("name", &self.name)
            .field("ids", &self.ids.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> Compressor<'a> {
    /// The defaults: int8, all cores, about 4 MiB of input per chunk, no progress.
    pub fn new() -> Self {
        Compressor {
            codec: "int8".into(),
            rescore: None,
            threads: 0,
            chunk_rows: None,
            zstd: None,
            metadata: Metadata::new(),
            name: PathBuf::from("<input>"),
            progress: &NoProgress,
            cancel: None,
            ids: None,
        }
    }

    /// The codec, as `--codec` takes it (e.g. `int8`).
    pub fn codec(mut self, spec: impl Into<String>) -> Self {
        self.codec = spec.into();
        self
    }

    /// Also stores a finer codec of the same rows in every chunk, as `compress --rescore`
    /// (format 1.6): [`Compressor::codec`] becomes the search tier, this the rescoring
    /// tier rows decode from (e.g. `.codec("binary:rotate=1").rescore("int8")`).
    pub fn rescore(mut self, spec: impl Into<String>) -> Self {
        self.rescore = Some(spec.into());
        self
    }

    /// The codec to encode with: [`Compressor::codec`], tiered with the rescoring tier.
    fn build_codec(&self, dims: usize) -> Result<Box<dyn Codec>> {
        let coarse = codec::parse(&self.codec, dims)?;
        let Some(fine) = &self.rescore else {
            return Ok(coarse);
        };
        if self.zstd.is_some() {
            return Err(Error::Config(
                "zstd and rescore together are not supported: tiers are stored plain so that each can be read on its own".into(),
            ));
        }
        Ok(Box::new(codec::Tiered::new(vec![
            coarse,
            codec::parse(fine, dims)?,
        ])?))
    }

    /// Worker threads; 0 (the default) means the available cores.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Rows per chunk; unset picks [`default_chunk_rows`].
    pub fn chunk_rows(mut self, n: u32) -> Self {
        self.chunk_rows = Some(n);
        self
    }

    /// Also compresses each chunk payload with zstd at `level` (as `--zstd`: -7..=22, 3
    /// is a good default); unset (the default) stores payloads as the codec writes them.
    ///
    /// ```
    /// let data: Vec<f32> = (0..500 * 8).map(|i| (i % 17) as f32).collect();
    /// let mut out = Vec::new();
    /// vectro::stream::Compressor::new().zstd(3).compress_f32(&data, 8, &mut out)?;
    /// let c = vectro::Container::from_bytes("z", &out)?;
    /// assert_eq!(c.header().stage, vectro::codec::PayloadStage::Zstd);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn zstd(mut self, level: i32) -> Self {
        self.zstd = Some(level);
        self
    }

    /// Adds a metadata entry to the container header.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// What to call the input in error messages (default `<input>`).
    pub fn name(mut self, name: impl AsRef<Path>) -> Self {
        self.name = name.as_ref().to_path_buf();
        self
    }

    /// Receives progress as chunks are written.
    pub fn progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Stores one id per row with the rows (format 1.4, as `compress --ids`): `ids` is
    /// asked for each chunk's ids in row order, once, as the chunk is written, so a source
    /// may read them forward from a file or a socket. An [`IdColumn`](crate::format::IdColumn) in memory is one.
    ///
    /// ```
    /// use vectro::format::IdColumn;
    ///
    /// let data: Vec<f32> = (0..4 * 2).map(|i| i as f32).collect();
    /// let ids = IdColumn::Str(vec!["a".into(), "b".into(), "c".into(), "d".into()]);
    /// let mut out = Vec::new();
    /// vectro::stream::Compressor::new()
    ///     .chunk_rows(3)
    ///     .ids(Box::new(ids))
    ///     .compress_f32(&data, 2, &mut out)?;
    /// let c = vectro::Container::from_bytes("x", &out)?;
    /// assert_eq!(c.ids(2..4)?, IdColumn::Str(vec!["c".into(), "d".into()]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ids(mut self, ids: Box<dyn IdSource + 'a>) -> Self {
        self.ids = Some(std::sync::Mutex::new(ids));
        self
    }

    /// Stops at the next chunk boundary with [`Error::Cancelled`] once this is set.
    pub fn cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Reads a `.npy` (any dtype [`compress`](crate::compress) takes) from `input` and
    /// writes a container to `output`. The writer gets whole chunks in order; on an error
    /// it holds a partial container, which a reader refuses.
    ///
    /// # Errors
    /// [`Error::BadNpy`] for a malformed header or a stream that ends early,
    /// [`Error::NonFinite`], [`Error::Config`] for bad settings, [`Error::Io`] from either
    /// side, [`Error::Cancelled`].
    pub fn compress_npy<R: Read + Send, W: Write>(
        &self,
        mut input: R,
        output: W,
    ) -> Result<StreamSummary> {
        let h = npy::read_header(&self.name, &mut input)?;
        let codec = self.build_codec(h.dims as usize)?;
        let header = self.header(h.rows, h.dims, h.dtype, codec.as_ref())?;
        let row_bytes = h.row_bytes();
        let chunk_rows = header.chunk_rows as u64;
        let jobs = read_chunks(
            &mut input,
            self.name.clone(),
            h.rows,
            row_bytes,
            chunk_rows,
            false,
        );
        let work = |e: &Encoder, job: ChunkJob| e.encode(&job);
        let s = self.run(header, codec.as_ref(), jobs, work, output)?;
        Ok(StreamSummary {
            bytes_in: h.data_offset + h.rows * row_bytes as u64,
            ..s
        })
    }

    /// Compresses `data`, `dims` floats a row, row-major, into a container on `output`.
    ///
    /// # Errors
    /// [`Error::Config`] if `data` is empty or not a whole number of rows;
    /// [`Error::NonFinite`]; [`Error::Io`] from the writer; [`Error::Cancelled`].
    pub fn compress_f32<W: Write>(
        &self,
        data: &[f32],
        dims: usize,
        output: W,
    ) -> Result<StreamSummary> {
        if dims == 0 || data.is_empty() || !data.len().is_multiple_of(dims) {
            return Err(Error::Config(format!(
                "{} floats are not a whole, non-zero number of {dims}-dimensional rows",
                data.len()
            )));
        }
        let rows = (data.len() / dims) as u64;
        let codec = self.build_codec(dims)?;
        let header = self.header(rows, dims as u64, Dtype::F32Le, codec.as_ref())?;
        let step = header.chunk_rows as usize * dims;
        let jobs = data
            .chunks(step)
            .enumerate()
            .map(|(i, c)| Ok(((i * step / dims) as u64, c)));
        let work = |e: &Encoder, (first, block): (u64, &[f32])| e.encode_f32(block, first);
        let s = self.run(header, codec.as_ref(), jobs, work, output)?;
        Ok(StreamSummary {
            bytes_in: data.len() as u64 * 4,
            ..s
        })
    }

    fn header(&self, rows: u64, dims: u64, dtype: Dtype, codec: &dyn Codec) -> Result<Header> {
        if let Some(level) = self.zstd {
            codec::zstd::check_level(level)?;
        }
        let chunk_rows = match self.chunk_rows {
            Some(0) => return Err(Error::Config("chunk rows must be at least 1".into())),
            Some(n) => n,
            None => default_chunk_rows(dims),
        };
        let dims = u32::try_from(dims)
            .map_err(|_| Error::Config(format!("{dims} dims is more than Vectro supports")))?;
        let mut metadata = self.metadata.clone();
        metadata
            .entry("tool".into())
            .or_insert_with(|| crate::format::TOOL.into());
        Ok(Header {
            codec: codec.spec(),
            rows,
            dims,
            chunk_rows,
            source_dtype: dtype,
            metadata,
            stage: match self.zstd {
                Some(_) => PayloadStage::Zstd,
                None => PayloadStage::Plain,
            },
            ids: match &self.ids {
                Some(ids) => {
                    let ids = ids.lock().unwrap_or_else(|p| p.into_inner());
                    if ids.rows() != rows {
                        return Err(Error::Mismatch(format!(
                            "{} ids for {rows} rows: give one id per row",
                            ids.rows()
                        )));
                    }
                    ids.kind()
                }
                None => Default::default(),
            },
            payload: false,
            tiers: codec.search_tiers(),
        })
    }

    /// Encodes the jobs on the workers (`work` with the shared [`Encoder`]) and appends the
    /// chunks in order.
    fn run<J, I, F, W>(
        &self,
        header: Header,
        codec: &dyn Codec,
        jobs: I,
        work: F,
        output: W,
    ) -> Result<StreamSummary>
    where
        J: Send,
        I: Iterator<Item = Result<J>> + Send,
        F: Fn(&Encoder, J) -> Result<EncodedChunk> + Sync,
        W: Write,
    {
        let out_name = Path::new(crate::error::UNNAMED_OUTPUT);
        let io = |e| Error::io(out_name, "writing", e);
        let (rows, dims) = (header.rows, header.dims as u64);
        let row_bytes = dims * header.source_dtype.size() as u64;
        let counting = CountingWriter {
            inner: output,
            count: 0,
        };
        let writer = ContainerWriter::new(counting, header).map_err(io)?;
        let threads = crate::par::resolve_threads(self.threads);
        let (encoder, recycle) = Encoder::new(
            codec,
            writer.header().source_dtype,
            self.zstd,
            &self.name,
            threads,
        );
        let mut sink = ChunkSink {
            writer,
            out_path: out_name,
            recycle,
        };
        let never = AtomicBool::new(false);
        self.progress.begin(rows, rows * row_bytes);
        let result = run_ordered(
            threads,
            jobs,
            |job| work(&encoder, job),
            |mut chunk| {
                let n = chunk.rows;
                if let Some(ids) = &self.ids {
                    let rows = chunk.first_row..chunk.first_row + n;
                    let column = ids
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .ids(rows.clone())?;
                    chunk.crc = crate::encode::ids::append_ids(
                        &mut chunk.payload,
                        chunk.crc,
                        &column,
                        rows,
                    )?;
                }
                sink.put(chunk)?;
                self.progress.advance(n, n * row_bytes);
                Ok(())
            },
            self.cancel.unwrap_or(&never),
        );
        self.progress.finish();
        result?;
        let writer = sink.writer;
        let chunks = writer.chunks().len() as u64;
        let counting = writer.finish().map_err(io)?;
        Ok(StreamSummary {
            codec: codec.name(),
            rows,
            dims,
            chunks,
            bytes_in: 0,
            bytes_out: counting.count,
        })
    }
}
