//! The worker stage, shared by `compress()` and
//! `stream::Compressor`: a chunk of source rows into the
//! chunk payload the writer appends. Convert to float32 if needed, refuse non-finite
//! values, encode (checksumming as it goes), then the optional zstd stage; payload buffers
//! come back from the writer and are reused.

use std::cell::RefCell;
use std::path::Path;

use crossbeam_channel::{Receiver, Sender, bounded};

use super::writer::EncodedChunk;
use crate::codec::{self, Codec};
use crate::error::{Error, Result};
use crate::format::{ChunkCrc, ChunkCrcBuilder};
use crate::npy::{Dtype, f32_view, f64_overflow};
use crate::source::check_finite;
use crate::source::reader::ChunkJob;

/// Encodes chunks on the workers (it is `Sync`: share one `&Encoder`).
#[derive(Debug)]
pub(crate) struct Encoder<'a> {
    codec: &'a dyn Codec,
    /// The source's element type.
    dtype: Dtype,
    /// The zstd level of the payload stage, if any.
    zstd: Option<i32>,
    /// The input, named in errors.
    path: &'a Path,
    /// Payload buffers the writer is done with.
    pool: Receiver<Vec<u8>>,
}

impl<'a> Encoder<'a> {
    /// An encoder for `codec` of rows of `dtype` read from `path`, and the sender through
    /// which the writer returns payload buffers (enough for `threads` workers).
    pub(crate) fn new(
        codec: &'a dyn Codec,
        dtype: Dtype,
        zstd: Option<i32>,
        path: &'a Path,
        threads: usize,
    ) -> (Self, Sender<Vec<u8>>) {
        let (recycle, pool) = bounded::<Vec<u8>>(2 * threads + 2);
        let encoder = Encoder {
            codec,
            dtype,
            zstd,
            path,
            pool,
        };
        (encoder, recycle)
    }

    /// Encodes one chunk of source rows (in the source's element type).
    ///
    /// # Errors
    /// [`Error::NonFinite`] or [`Error::OutOfRange`] naming the first offending value by
    /// its row in the input; [`Error::Config`] if zstd refuses the level;
    /// [`Error::Truncated`] if the input was cut short while the chunk was read.
    pub(crate) fn encode(&self, job: &ChunkJob) -> Result<EncodedChunk> {
        let bytes = job.bytes();
        let (dtype, first_row) = (self.dtype, job.first_row);
        let chunk = self.chunk(first_row, job.rows, |payload| {
            match f32_view(bytes, dtype) {
                Some(data) => self.encode_rows(data, first_row, payload),
                None => SCRATCH
                    .with(|s| {
                        let mut s = s.borrow_mut();
                        s.resize(bytes.len() / dtype.size(), 0.0);
                        dtype.to_f32(bytes, &mut s);
                        self.encode_rows(&s, first_row, payload)
                    })
                    .map_err(|e| f64_overflow(e, bytes, dtype, first_row, self.codec.dims())),
            }
        });
        // The input cut short under the map: what was encoded may be zeros, and whatever
        // error the encoder met may be an artefact of them. Say so instead.
        job.check_unchanged()?;
        chunk
    }

    /// Encodes one chunk of float32 rows, the first of which is row `first_row`.
    ///
    /// # Errors
    /// As [`Encoder::encode`].
    pub(crate) fn encode_f32(&self, data: &[f32], first_row: u64) -> Result<EncodedChunk> {
        let rows = (data.len() / self.codec.dims()) as u64;
        self.chunk(first_row, rows, |payload| {
            self.encode_rows(data, first_row, payload)
        })
    }

    /// The chunk whose codec payload `fill` writes (returning its crc), with the payload
    /// stage applied. A plain payload is written straight into a recycled buffer; with
    /// zstd, into this thread's scratch buffer, and its frame into a recycled buffer.
    fn chunk(
        &self,
        first_row: u64,
        rows: u64,
        fill: impl FnOnce(&mut [u8]) -> Result<ChunkCrc>,
    ) -> Result<EncodedChunk> {
        let len = self.codec.encoded_len(rows as usize);
        let mut buffer = self.pool.try_recv().unwrap_or_default();
        let crc = match self.zstd {
            None => {
                buffer.resize(len, 0);
                fill(&mut buffer)?
            }
            Some(level) => PLAIN.with(|plain| -> Result<ChunkCrc> {
                let mut plain = plain.borrow_mut();
                plain.resize(len, 0);
                fill(&mut plain)?;
                codec::zstd::compress_into(&plain, level, &mut buffer)?;
                Ok(ChunkCrc::new(&buffer))
            })?,
        };
        Ok(EncodedChunk {
            first_row,
            rows,
            crc,
            payload: buffer,
        })
    }

    /// Encodes `data` into `payload` and returns the chunk crc.
    fn encode_rows(&self, data: &[f32], first_row: u64, payload: &mut [u8]) -> Result<ChunkCrc> {
        let (codec, path) = (self.codec, self.path);
        if !codec.row_major() {
            encode_block(codec, data, payload, first_row, path)?;
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
            encode_block(codec, data, payload, first_row + (i * rows) as u64, path)?;
            crc.update(payload);
        }
        Ok(crc.finish())
    }
}

thread_local! {
    /// A chunk converted to float32, for inputs that are not aligned float32.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// A chunk's codec payload before the zstd stage.
    static PLAIN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Payload bytes a row-major codec encodes before checksumming them: well inside a core's
/// L2 cache.
const CRC_PIECE: usize = 128 << 10;

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
        for codec in [&F16::new(d) as &dyn Codec, &Bf16::new(d)] {
            let mut whole = vec![0u8; codec.encoded_len(rows)];
            codec.encode(&data, &mut whole).unwrap();
            let mut bytes: Vec<u8> = data.iter().flat_map(|x| x.to_le_bytes()).collect();
            let job = ChunkJob::owned(0, 40, rows as u64, bytes.clone());
            let (encoder, _recycle) =
                Encoder::new(codec, Dtype::F32Le, None, Path::new("x.npy"), 1);
            let chunk = encoder.encode(&job).unwrap();
            assert!(chunk.payload == whole, "{}", codec.name());
            assert_eq!(chunk.crc, ChunkCrc::new(&whole), "{}", codec.name());
            // A NaN in the fourth piece is named by its row in the file.
            let at = (700 * d + 5) * 4;
            bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            let job = ChunkJob::owned(0, 40, rows as u64, bytes);
            match encoder.encode(&job) {
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
        // The rotated codecs find them in the rotated rows.
        let codecs: Vec<Box<dyn Codec>> = codecs
            .into_iter()
            .chain(
                ["sq:bits=1", "sq:bits=4", "int4:rotate=1", "binary:rotate=1"]
                    .into_iter()
                    .map(|c| crate::codec::parse(c, 3).unwrap())
                    .inspect(|c| assert!(c.rejects_non_finite(), "{}", c.name())),
            )
            .collect();
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
