//! The ordered writer stage: appends encoded chunks to the container in input order.

use std::io::Write;
use std::path::Path;

use crossbeam_channel::Sender;

use crate::error::{Error, Result};
use crate::format::{ChunkCrc, ContainerWriter};

/// One encoded chunk, as a worker hands it to the writer.
#[derive(Debug)]
pub struct EncodedChunk {
    /// First row of the chunk.
    pub first_row: u64,
    /// Rows in the chunk.
    pub rows: u64,
    /// The codec's payload.
    pub payload: Vec<u8>,
    /// The chunk's crc, computed by the worker.
    pub crc: ChunkCrc,
}

/// Writes chunks as they arrive in order.
pub struct ChunkSink<'a, W: Write> {
    /// The container being written.
    pub writer: ContainerWriter<W>,
    /// Where errors are reported to the user.
    pub out_path: &'a Path,
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
            .write_chunk_with_crc(chunk.rows, &chunk.payload, Some(&chunk.crc))
            .and_then(|()| self.writer.flush())
            .map_err(|e| Error::io(self.out_path, "writing", e))?;
        let _ = self.recycle.try_send(chunk.payload);
        Ok(())
    }
}
