//! [`Decompressor`]: a container read front to back from any reader.
//!
//! Chunks are self-describing, so a reader that cannot seek still decodes them in order: it
//! checks each chunk header as it arrives, has the workers check the chunk crc, undo the
//! payload stage and decode, then checks the index and trailer against the chunks it saw.
//! Every check is the container parser's (`format::layout`), the one
//! [`Container`](crate::Container) and [`verify`](crate::format::verify()) use.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use byteorder::{ByteOrder, LittleEndian as LE};

use super::{CountingWriter, StreamSummary};
use crate::codec::{self, Codec};
use crate::error::{Error, Result};
use crate::format::layout::{
    check_chunk_header, check_index_entry, check_trailer, chunk_crc_ok, index_header_ok, unstage,
};
use crate::format::{
    CHUNK_HEADER_LEN, CHUNK_OVERHEAD, Header, INDEX_ENTRY_LEN, INDEX_HEADER_LEN, MAGIC,
    MAX_HEADER_LEN, TRAILER_LEN,
};
use crate::input::read_full;
use crate::npy;
use crate::npy::f32_le_bytes;
use crate::par::run_ordered;
use crate::progress::{NoProgress, Progress};

/// The largest chunk (payload, or decoded floats) the streaming reader holds in memory.
/// Default chunks are a few MiB; only a hand-set `--chunk-rows` comes near this.
const MAX_STREAM_CHUNK: u64 = 1 << 30;

/// Builds and runs a streaming decompression.
///
/// ```
/// use vectro::stream::{Compressor, Decompressor};
///
/// let data: Vec<f32> = (0..300 * 4).map(|i| i as f32 / 7.0).collect();
/// let mut container = Vec::new();
/// Compressor::new().chunk_rows(64).compress_f32(&data, 4, &mut container)?;
///
/// // Any `Read` works: a socket, a pipe, an HTTP body.
/// let mut seen = 0;
/// Decompressor::new().threads(2).for_each_chunk(container.as_slice(), |h, first, rows| {
///     assert_eq!(first, seen);
///     seen += (rows.len() / h.dims as usize) as u64;
///     Ok(())
/// })?;
/// assert_eq!(seen, 300);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Decompressor<'a> {
    threads: usize,
    name: PathBuf,
    progress: &'a dyn Progress,
    cancel: Option<&'a AtomicBool>,
}

impl Default for Decompressor<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Decompressor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("threads", &self.threads)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> Decompressor<'a> {
    /// The defaults: all cores, no progress.
    pub fn new() -> Self {
        Decompressor {
            threads: 0,
            name: PathBuf::from("<input>"),
            progress: &NoProgress,
            cancel: None,
        }
    }

    /// Worker threads; 0 (the default) means the available cores.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// What to call the input in error messages (default `<input>`).
    pub fn name(mut self, name: impl AsRef<Path>) -> Self {
        self.name = name.as_ref().to_path_buf();
        self
    }

    /// Receives progress as chunks are decoded.
    pub fn progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Stops at the next chunk boundary with [`Error::Cancelled`] once this is set.
    pub fn cancel(mut self, flag: &'a AtomicBool) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Decodes the container on `input` into a float32 `.npy` on `output`.
    ///
    /// Rows are written as soon as their chunk checks out; the index and trailer are
    /// checked at the end. On an error, `output` holds a partial `.npy`: write to a
    /// temporary file and rename it on success (as [`AtomicOutput`] does) if that matters.
    ///
    /// [`AtomicOutput`]: crate::output::AtomicOutput
    ///
    /// # Errors
    /// As [`Decompressor::for_each_chunk`], and [`Error::Io`] from the writer.
    pub fn decompress_npy<R: Read + Send, W: Write>(
        &self,
        input: R,
        output: W,
    ) -> Result<StreamSummary> {
        let out_name = Path::new(crate::error::UNNAMED_OUTPUT);
        let io = |e| Error::io(out_name, "writing", e);
        let mut w = CountingWriter {
            inner: output,
            count: 0,
        };
        let mut s = self.for_each_chunk(input, |h, first, rows| {
            if first == 0 {
                w.write_all(&npy::write_header(h.rows, h.dims as u64))
                    .map_err(io)?;
            }
            w.write_all(&f32_le_bytes(rows)).map_err(io)
        })?;
        w.flush().map_err(io)?;
        s.bytes_out = w.count;
        Ok(s)
    }

    /// Reads the container on `input` and calls `f(header, first_row, rows)` for each
    /// chunk in order, `rows` holding the chunk's decoded rows (`n × dims` floats).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming the chunk and byte offset for a bad header, chunk, index
    /// or trailer, a truncated stream, or bytes after the trailer; [`Error::Io`] from the
    /// reader; any error `f` returns; [`Error::Cancelled`].
    pub fn for_each_chunk<R, F>(&self, mut input: R, mut f: F) -> Result<StreamSummary>
    where
        R: Read + Send,
        F: FnMut(&Header, u64, &[f32]) -> Result<()>,
    {
        let name = self.name.as_path();
        let (header, header_len) = read_header(name, &mut input)?;
        let codec = codec::tiers::from_specs(&header.tiers, &header.codec, header.dims as usize)
            .map_err(|e| Error::corrupt(name, format!("header: {e}")))?;
        let codec = codec.as_ref();
        let dims = header.dims as usize;
        let threads = crate::par::resolve_threads(self.threads);
        let never = AtomicBool::new(false);
        let row_bytes = dims as u64 * 4;
        let mut chunks = ChunkReader {
            input: &mut input,
            name,
            header: &header,
            codec,
            next: 0,
            offset: header_len as u64,
            lens: Vec::new(),
        };
        self.progress.begin(header.rows, header.rows * row_bytes);
        let result = run_ordered(
            threads,
            chunks.by_ref(),
            |c: RawChunk| {
                c.check_crc(name)?;
                let payload = unstage(c.payload(), c.rows, &header, codec)
                    .map_err(|msg| c.corrupt(name, &msg))?;
                let mut rows = vec![0f32; c.rows as usize * dims];
                codec.decode(&payload, c.rows as usize, &mut rows);
                crate::format::decoded::check(name, &rows, dims, c.first_row)?;
                Ok((c.first_row, rows))
            },
            |(first, rows)| {
                f(&header, first, &rows)?;
                let n = (rows.len() / dims) as u64;
                self.progress.advance(n, n * row_bytes);
                Ok(())
            },
            self.cancel.unwrap_or(&never),
        );
        self.progress.finish();
        result?;
        let (chunks_end, lens) = (chunks.offset, chunks.lens);
        let end = read_index_and_trailer(
            name, &mut input, &header, header_len, chunks_end, &lens, codec,
        )?;
        Ok(StreamSummary {
            codec: codec.name(),
            rows: header.rows,
            dims: dims as u64,
            chunks: header.chunk_count(),
            bytes_in: end,
            bytes_out: 0,
        })
    }
}

/// Reads and checks the container header from the front of a stream.
fn read_header<R: Read>(name: &Path, input: &mut R) -> Result<(Header, usize)> {
    let mut buf = vec![0u8; 12];
    let got = read_full(input, &mut buf).map_err(|e| Error::io(name, "reading", e))?;
    buf.truncate(got);
    if got == 12 && buf[0..4] == MAGIC {
        let len = LE::read_u32(&buf[8..12]) as usize;
        // Header::decode refuses a length out of range; read no more than it would accept.
        if (12..=MAX_HEADER_LEN).contains(&len) {
            buf.resize(len, 0);
            let more =
                read_full(input, &mut buf[12..]).map_err(|e| Error::io(name, "reading", e))?;
            buf.truncate(12 + more);
        }
    }
    Header::decode(name, &buf)
}

/// One chunk as read from the stream: its 36-byte header, payload and crc, unchecked.
struct RawChunk {
    index: u64,
    first_row: u64,
    rows: u64,
    offset: u64,
    bytes: Vec<u8>,
}

impl RawChunk {
    fn payload(&self) -> &[u8] {
        &self.bytes[CHUNK_HEADER_LEN..self.bytes.len() - 4]
    }

    fn check_crc(&self, name: &Path) -> Result<()> {
        if chunk_crc_ok(&self.bytes) {
            Ok(())
        } else {
            Err(self.corrupt(name, "fails its crc32c check"))
        }
    }

    fn corrupt(&self, name: &Path, what: &str) -> Error {
        Error::corrupt(
            name,
            format!(
                "chunk {} (bytes {}..{}, rows {}..{}) {what}; the data is corrupt",
                self.index,
                self.offset,
                self.offset + self.bytes.len() as u64,
                self.first_row,
                self.first_row + self.rows
            ),
        )
    }
}

/// Yields the chunks in order, checking each chunk header against the file header.
struct ChunkReader<'r, R> {
    input: &'r mut R,
    name: &'r Path,
    header: &'r Header,
    codec: &'r dyn Codec,
    next: u64,
    offset: u64,
    /// The length of each chunk read, for the index to be checked against.
    lens: Vec<u64>,
}

impl<R: Read> ChunkReader<'_, R> {
    fn read_chunk(&mut self) -> Result<RawChunk> {
        let i = self.next;
        let corrupt = |msg: String| {
            Error::corrupt(
                self.name,
                format!("chunk {i} at byte {}: {msg}", self.offset),
            )
        };
        let truncated = || {
            corrupt(format!(
                "the stream ends inside it (the container is truncated; {} of {} chunks were read)",
                i,
                self.header.chunk_count()
            ))
        };
        let mut head = [0u8; CHUNK_HEADER_LEN];
        let got =
            read_full(self.input, &mut head).map_err(|e| Error::io(self.name, "reading", e))?;
        if got < head.len() {
            return Err(truncated());
        }
        let (rows, payload_len) =
            check_chunk_header(&head, i, self.header, self.codec).map_err(corrupt)?;
        let first_row = i * self.header.chunk_rows as u64;
        // Crc-valid headers can still describe absurd chunks; refuse before allocating.
        let decoded = rows
            .saturating_mul(self.header.dims as u64)
            .saturating_mul(4);
        if payload_len > MAX_STREAM_CHUNK || decoded > MAX_STREAM_CHUNK {
            return Err(corrupt(format!(
                "a chunk of {payload_len} bytes decoding to {decoded} exceeds the streaming reader's {MAX_STREAM_CHUNK}-byte limit; open the file with Container::open instead"
            )));
        }
        let len = CHUNK_OVERHEAD + payload_len as usize;
        let mut bytes = vec![0u8; len];
        bytes[..CHUNK_HEADER_LEN].copy_from_slice(&head);
        let got = read_full(self.input, &mut bytes[CHUNK_HEADER_LEN..])
            .map_err(|e| Error::io(self.name, "reading", e))?;
        if got < len - CHUNK_HEADER_LEN {
            return Err(truncated());
        }
        let chunk = RawChunk {
            index: i,
            first_row,
            rows,
            offset: self.offset,
            bytes,
        };
        self.next += 1;
        self.offset += len as u64;
        self.lens.push(len as u64);
        Ok(chunk)
    }
}

impl<R: Read> Iterator for ChunkReader<'_, R> {
    type Item = Result<RawChunk>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.next < self.header.chunk_count()).then(|| self.read_chunk())
    }
}

/// Reads the index and trailer after the last chunk, checks them against the chunks as
/// read (`lens`, their lengths), and checks that nothing follows. Returns the container's
/// total length.
fn read_index_and_trailer<R: Read>(
    name: &Path,
    input: &mut R,
    header: &Header,
    header_len: usize,
    chunks_end: u64,
    lens: &[u64],
    codec: &dyn Codec,
) -> Result<u64> {
    let corrupt = |msg: String| Error::corrupt(name, msg);
    let io = |e| Error::io(name, "reading", e);
    let truncated = |what: &str| {
        corrupt(format!(
            "the stream ends inside the {what} (the container is truncated)"
        ))
    };
    let mut head = [0u8; INDEX_HEADER_LEN];
    if read_full(input, &mut head).map_err(io)? < head.len() {
        return Err(truncated("index"));
    }
    if !index_header_ok(&head, header) {
        return Err(corrupt(format!(
            "index header at byte {chunks_end} is malformed"
        )));
    }
    // Entries are read one at a time: the index costs no memory beyond the chunks' lengths.
    let mut crc = crate::format::crc(&head);
    let mut offset = header_len as u64;
    let mut entry = [0u8; INDEX_ENTRY_LEN];
    for (i, &len) in lens.iter().enumerate() {
        if read_full(input, &mut entry).map_err(io)? < entry.len() {
            return Err(truncated("index"));
        }
        crc = crate::format::crc_append(crc, &entry);
        let e = check_index_entry(&entry, i as u64, offset, header, codec).map_err(corrupt)?;
        if e.len != len {
            return Err(corrupt(format!(
                "index entry {i} does not match chunk {i} as read ({} bytes, not {len})",
                e.len
            )));
        }
        offset += len;
    }
    let index_len = INDEX_HEADER_LEN as u64 + lens.len() as u64 * INDEX_ENTRY_LEN as u64;
    let mut t = [0u8; TRAILER_LEN];
    if read_full(input, &mut t).map_err(io)? < t.len() {
        return Err(truncated("trailer"));
    }
    let end = chunks_end + index_len + TRAILER_LEN as u64;
    // With the file's length known to end here, the trailer must point at the index read.
    let at = check_trailer(name, &t, end, header, header_len)?;
    if at.crc != crc {
        return Err(corrupt(format!(
            "index checksum mismatch (bytes {chunks_end}..{}); the index is corrupt",
            chunks_end + index_len
        )));
    }
    let mut extra = [0u8; 1];
    if read_full(input, &mut extra).map_err(io)? != 0 {
        return Err(corrupt(format!(
            "unexpected bytes after the trailer at byte {end}; is this more than one container?"
        )));
    }
    Ok(end)
}
