//! A `.npy` read from a stream (`--in -`: stdin), without mmap and without seeking.
//!
//! The header is parsed as it arrives; each chunk is then read into its own buffer by the
//! pipeline's feeder thread. The feeder blocks on the pipeline's bounded channels, so the
//! read-ahead is at most the pipeline's `3 × threads + 1` chunks, whatever the stream's size.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::reader::ChunkJob;
use crate::error::{Error, Result};
use crate::npy::{self, NpyHeader};

type BoxRead = Box<dyn Read + Send>;

/// A `.npy` arriving on a stream.
pub struct StreamSource {
    name: PathBuf,
    header: NpyHeader,
    reader: Mutex<Option<BoxRead>>,
}

impl std::fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSource")
            .field("name", &self.name)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl StreamSource {
    /// Reads the header from standard input.
    ///
    /// # Errors
    /// As [`StreamSource::new`].
    pub fn stdin() -> Result<StreamSource> {
        StreamSource::new(Box::new(std::io::stdin()), Path::new("<stdin>"))
    }

    /// Reads the header from `reader`; `name` names the stream in errors.
    ///
    /// # Errors
    /// [`Error::BadNpy`] if the stream does not start with a usable `.npy` header;
    /// [`Error::Io`] if reading fails.
    pub fn new(mut reader: BoxRead, name: &Path) -> Result<StreamSource> {
        // The data length of a stream is unknown; a short stream is caught chunk by chunk.
        let header = npy::read_header(name, &mut reader)?;
        Ok(StreamSource {
            name: name.to_path_buf(),
            header,
            reader: Mutex::new(Some(reader)),
        })
    }

    /// The stream's name for messages.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// The parsed header; `data_offset` is the header's length.
    pub fn header(&self) -> &NpyHeader {
        &self.header
    }

    /// The chunks of `chunk_rows` rows, read in order as the pipeline asks for them.
    ///
    /// # Errors
    /// [`Error::Config`] if called twice: a stream is read once.
    pub fn chunks(
        &self,
        chunk_rows: u64,
    ) -> Result<impl Iterator<Item = Result<ChunkJob>> + Send + 'static> {
        let reader = self
            .reader
            .lock()
            .map_err(|_| Error::Config("stream reader poisoned".into()))?
            .take()
            .ok_or_else(|| Error::Config(format!("{} was already read", self.name.display())))?;
        let h = &self.header;
        // A file with more data than its shape says is refused; so is a stream.
        Ok(read_chunks(
            reader,
            self.name.clone(),
            h.rows,
            h.row_bytes(),
            chunk_rows,
            true,
        ))
    }
}

/// The chunks of `chunk_rows` rows of a `.npy` data section (`rows` rows of `row_bytes`),
/// each read from `reader` (positioned after the header) into its own buffer when the
/// iterator is asked for it. A stream that ends early is an error naming the row it ends in;
/// with `check_end`, so is one that goes on after the last row (the library's
/// `stream::Compressor` does not check: its caller may hold several arrays in one
/// stream, as `numpy.save` to one file object writes them).
/// Shared by `--in -` and `stream::Compressor`.
pub(crate) fn read_chunks<R: Read>(
    mut reader: R,
    name: PathBuf,
    rows: u64,
    row_bytes: usize,
    chunk_rows: u64,
    check_end: bool,
) -> impl Iterator<Item = Result<ChunkJob>> {
    let chunks = rows.div_ceil(chunk_rows);
    (0..chunks).map(move |index| {
        let first = index * chunk_rows;
        let n = chunk_rows.min(rows - first);
        let mut buf = vec![0u8; n as usize * row_bytes];
        let got = crate::input::read_full(&mut reader, &mut buf)
            .map_err(|e| Error::io(&name, "reading", e))?;
        if got < buf.len() {
            // `got < buf.len()` implies row_bytes > 0.
            return Err(Error::bad_npy(
                &name,
                format!(
                    "data section is truncated: the stream ends inside row {} of the {rows} its \
                     header promises (in the chunk of rows {first}..{}); check that whatever \
                     writes the stream finishes it, then rerun",
                    first + (got / row_bytes) as u64,
                    first + n
                ),
            ));
        }
        if check_end && index + 1 == chunks {
            let more = crate::input::read_full(&mut reader, &mut [0u8; 1])
                .map_err(|e| Error::io(&name, "reading", e))?;
            if more > 0 {
                return Err(Error::bad_npy(
                    &name,
                    format!(
                        "data section is longer than its shape says: the stream goes on after \
                         the {rows} rows ({} bytes) its header promises; the shape in the \
                         header may be wrong, or something is written after the array: check \
                         whatever writes the stream, then rerun",
                        rows * row_bytes as u64
                    ),
                ));
            }
        }
        Ok(ChunkJob::owned(index, first, n, buf))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(rows: u64, dims: u64) -> Vec<u8> {
        let mut v = npy::write_header(rows, dims);
        for i in 0..rows * dims {
            v.extend_from_slice(&(i as f32).to_le_bytes());
        }
        v
    }

    #[test]
    fn reads_chunks_in_order() {
        let bytes = npy(10, 3);
        let s = StreamSource::new(
            Box::new(std::io::Cursor::new(bytes.clone())),
            Path::new("s"),
        )
        .unwrap();
        let data: Vec<u8> = s
            .chunks(4)
            .unwrap()
            .flat_map(|j| j.unwrap().bytes().to_vec())
            .collect();
        assert_eq!(data, bytes[s.header().data_offset as usize..]);
        assert!(s.chunks(4).is_err(), "a stream is read once");
    }

    #[test]
    fn truncated_stream_names_the_rows() {
        let mut bytes = npy(10, 3);
        bytes.truncate(bytes.len() - 5);
        let s = StreamSource::new(Box::new(std::io::Cursor::new(bytes)), Path::new("s")).unwrap();
        let e = s
            .chunks(4)
            .unwrap()
            .find_map(|j| j.err())
            .unwrap()
            .to_string();
        assert!(e.contains("rows 8..10"), "{e}");
        let e = StreamSource::new(
            Box::new(std::io::Cursor::new(b"\x93NUM".to_vec())),
            Path::new("s"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ended inside the .npy header"), "{e}");
    }

    #[test]
    fn a_stream_longer_than_its_shape_is_refused_after_the_last_row() {
        let mut bytes = npy(10, 3);
        bytes.push(0);
        let s = StreamSource::new(Box::new(std::io::Cursor::new(bytes)), Path::new("s")).unwrap();
        let got: Vec<_> = s.chunks(4).unwrap().collect();
        assert!(got[..2].iter().all(|j| j.is_ok()));
        let e = got[2].as_ref().unwrap_err().to_string();
        assert!(e.starts_with("s: "), "{e}");
        assert!(e.contains("longer than its shape says"), "{e}");
        assert!(e.contains("10 rows (120 bytes)"), "{e}");
    }
}
