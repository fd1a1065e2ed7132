//! The ordered writer stage: appends encoded chunks to the container in input order and
//! releases the input pages behind it.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crossbeam_channel::Sender;

use super::Progress;
use super::reader::NpySource;
use crate::error::{Error, Result};
use crate::format::write::chunk_header;
use crate::format::{CHUNK_OVERHEAD, ChunkEntry, ContainerWriter};
use crate::output::WriteBehind;

/// One encoded chunk, as a worker hands it to the writer.
#[derive(Debug)]
pub struct EncodedChunk {
    /// First row of the chunk.
    pub first_row: u64,
    /// Rows in the chunk.
    pub rows: u64,
    /// The codec's payload.
    pub payload: Vec<u8>,
}

/// Writes chunks as they arrive in order.
pub struct ChunkSink<'a, W: Write> {
    /// The container being written.
    pub writer: ContainerWriter<W>,
    /// Where errors are reported to the user.
    pub out_path: &'a Path,
    /// The input, whose pages are released once written.
    pub source: Option<&'a NpySource>,
    /// Progress receiver.
    pub progress: &'a dyn Progress,
    /// Finished payload buffers go back to the workers through this.
    pub recycle: Sender<Vec<u8>>,
}

impl<W: Write> ChunkSink<'_, W> {
    /// Appends one chunk.
    ///
    /// # Errors
    /// [`Error::Io`] naming the output.
    pub fn put(&mut self, chunk: EncodedChunk) -> Result<()> {
        self.writer
            .write_chunk(chunk.rows, &chunk.payload)
            .map_err(|e| Error::io(self.out_path, "writing", e))?;
        let end = chunk.first_row + chunk.rows;
        if let Some(src) = self.source {
            src.release_rows(chunk.first_row, end);
            self.progress
                .advance(chunk.rows, chunk.rows * src.header().row_bytes() as u64);
        }
        let _ = self.recycle.try_send(chunk.payload);
        Ok(())
    }
}

/// Where each chunk of a container goes, known before any is encoded: every chunk but the
/// last holds `chunk_rows` rows, so chunk `i` starts at `start + i × stride`. Workers can
/// then write their chunks themselves, in parallel, instead of queueing the copy into the
/// page cache (the dominant cost of a compress run) on the one writer thread.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLayout {
    /// Offset of chunk 0: the container header's length.
    pub start: u64,
    /// Bytes of a full chunk: framing plus `encoded_len(chunk_rows)`.
    pub stride: u64,
}

impl ChunkLayout {
    /// Frames `payload` as chunk `index` (header, payload, crc, exactly as
    /// [`ContainerWriter::write_chunk`] does) and writes it at its place in `file`.
    ///
    /// # Errors
    /// Any error of the positional write.
    pub fn place(
        &self,
        file: &File,
        index: u64,
        first_row: u64,
        rows: u64,
        payload: &[u8],
    ) -> std::io::Result<ChunkEntry> {
        let head = chunk_header(index, first_row, rows, payload.len() as u64);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&head), payload);
        let offset = self.start + index * self.stride;
        file.write_all_at(&head, offset)?;
        file.write_all_at(payload, offset + head.len() as u64)?;
        file.write_all_at(
            &crc.to_le_bytes(),
            offset + (head.len() + payload.len()) as u64,
        )?;
        Ok(ChunkEntry {
            offset,
            len: (CHUNK_OVERHEAD + payload.len()) as u64,
            first_row,
            rows,
        })
    }
}

/// A chunk a worker has already written to the output, as the ordered stage receives it.
#[derive(Debug)]
pub struct PlacedChunk {
    /// Its index entry.
    pub entry: ChunkEntry,
    /// The payload buffer, to be reused.
    pub payload: Vec<u8>,
}

/// The ordered stage when workers write their own chunks: it only checks that chunks are
/// contiguous, records the index, starts write-back, releases input pages and reports
/// progress.
pub struct PlacedSink<'a> {
    /// Index entries so far, in order.
    pub index: Vec<ChunkEntry>,
    /// End of the last chunk received.
    pub offset: u64,
    /// Write-back of finished ranges (durable mode).
    pub behind: WriteBehind<'a>,
    /// The input, whose pages are released once written.
    pub source: Option<&'a NpySource>,
    /// Progress receiver.
    pub progress: &'a dyn Progress,
    /// Finished payload buffers go back to the workers through this.
    pub recycle: Sender<Vec<u8>>,
}

impl PlacedSink<'_> {
    /// Takes the next chunk in order.
    ///
    /// # Panics
    /// If the chunk does not start where the previous one ended: a layout bug, not input.
    pub fn put(&mut self, chunk: PlacedChunk) -> Result<()> {
        let e = chunk.entry;
        assert_eq!(
            e.offset, self.offset,
            "chunk at row {} is misplaced",
            e.first_row
        );
        self.offset += e.len;
        self.index.push(e);
        self.behind.written_to(self.offset);
        if let Some(src) = self.source {
            src.release_rows(e.first_row, e.first_row + e.rows);
            self.progress
                .advance(e.rows, e.rows * src.header().row_bytes() as u64);
        }
        let _ = self.recycle.try_send(chunk.payload);
        Ok(())
    }
}
