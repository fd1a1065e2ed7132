//! Codecs: the [`Codec`] trait and the registry that maps container ids to codecs.
//!
//! A codec is an array→bytes stage: it turns a block of `rows × dims` float32 values into a
//! payload whose size it can state up front ([`Codec::encoded_len`]), and back. Encoding and
//! decoding write into buffers the caller owns, so the pipeline can reuse them.

pub mod int8;
pub mod codebook;
pub mod kmeans;
pub mod opq;
pub mod pq;

use crate::error::{Error, Result};

pub use int8::Int8;
pub use codebook::{Codebook, RowSource, TrainOptions};
pub use pq::Pq;

/// The registry id of a codec, stored in the container header.
///
/// Ids are never reused: a reader that meets an unknown id refuses the file with a clear
/// error instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecId {
    /// Per-vector int8 ([`Int8`]).
    Int8 = 1,
    /// Product quantization with a trained codebook ([`Pq`]).
    Pq = 16,
    /// PQ after a learned rotation ([`Pq`] with a rotation).
    Opq = 17,
}

impl CodecId {
    /// The id as stored on disk.
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The inverse of [`CodecId::code`].
    pub fn from_code(code: u16) -> Option<CodecId> {
        match code {
            1 => Some(CodecId::Int8),
            16 => Some(CodecId::Pq),
            17 => Some(CodecId::Opq),
            _ => None,
        }
    }
}

/// A codec's identity as the container records it: the registry id plus an opaque,
/// codec-defined parameter block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecSpec {
    /// Registry id.
    pub id: CodecId,
    /// Codec parameters, little-endian, layout defined by the codec (see FORMAT.md).
    pub params: Vec<u8>,
}

/// A value the codec cannot represent, relative to the block being encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodeFault {
    /// Row within the block.
    pub row: usize,
    /// Column within the row.
    pub col: usize,
    /// What is wrong and what to do.
    pub msg: String,
}

/// An array→bytes codec for fixed-dimension float32 vectors.
pub trait Codec: Send + Sync + std::fmt::Debug {
    /// A short human name with parameters, e.g. `int8`.
    fn name(&self) -> String;

    /// The id and parameter block stored in the container.
    fn spec(&self) -> CodecSpec;

    /// The vector dimension this codec was built for.
    fn dims(&self) -> usize;

    /// Exact payload bytes for a block of `rows` rows.
    fn encoded_len(&self, rows: usize) -> usize;

    /// Encodes `input` (`rows × dims`, row-major) into `out`, which is exactly
    /// `encoded_len(rows)` bytes. Input values are finite.
    ///
    /// # Errors
    /// An [`EncodeFault`] naming the first value the codec cannot represent.
    fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault>;

    /// Decodes a whole block of `rows` rows from `payload` into `out` (`rows × dims`).
    fn decode(&self, payload: &[u8], rows: usize, out: &mut [f32]);

    /// Decodes row `row` of a block of `rows` rows, without decoding the others.
    fn decode_row(&self, payload: &[u8], rows: usize, row: usize, out: &mut [f32]);

    /// Facts worth showing in `info` (e.g. how a codebook was trained), as label/value.
    fn facts(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Builds the codec a container header describes.
///
/// # Errors
/// [`Error::Config`] when the parameter block does not fit the codec.
pub fn from_spec(id: CodecId, params: &[u8], dims: usize) -> Result<Box<dyn Codec>> {
    match id {
        CodecId::Int8 => {
            if !params.is_empty() {
                return Err(Error::Config(format!(
                    "int8 takes no parameters, the container has {} bytes",
                    params.len()
                )));
            }
            Ok(Box::new(Int8::new(dims)))
        }
        CodecId::Pq | CodecId::Opq => Ok(Box::new(Pq::new(Codebook::from_params(id, params, dims)?))),
    }
}

/// Parses a `--codec` string such as `int8`.
///
/// # Errors
/// [`Error::Config`] listing the known codecs.
pub fn parse(text: &str, dims: usize) -> Result<Box<dyn Codec>> {
    let (name, params) = text.split_once(':').unwrap_or((text, ""));
    match name {
        "int8" if params.is_empty() => Ok(Box::new(Int8::new(dims))),
        "int8" => Err(Error::Config(format!(
            "int8 takes no parameters, got '{params}'"
        ))),
        "pq" | "opq" => {
            pq::PqParams::parse(name, params, dims)?;
            Err(Error::Config(format!(
                "{name} must be trained: use `vectro compress` (it trains on a sample) or `vectro train`"
            )))
        }
        _ => Err(Error::Config(format!(
            "unknown codec '{name}'; known codecs: int8, pq, opq"
        ))),
    }
}

/// Like [`parse`], but a codec that needs training (`pq`, `opq`) is trained on a seeded
/// sample of `source`'s rows; the others ignore `source` beyond its dims.
///
/// # Errors
/// As [`parse`] and [`train_codebook`].
pub fn parse_trained(
    text: &str,
    source: &dyn RowSource,
    opts: &TrainOptions,
    progress: &dyn crate::pipeline::Progress,
) -> Result<Box<dyn Codec>> {
    match text.split_once(':').map_or(text, |(n, _)| n) {
        "pq" | "opq" => Ok(Box::new(Pq::new(train_codebook(text, source, opts, progress)?))),
        _ => parse(text, source.dims()),
    }
}

/// Trains the codebook of `text` (`pq:...` or `opq:...`) on a sample of `source`.
///
/// # Errors
/// [`Error::Config`] for a bad codec string or too few rows; errors reading the sample.
pub fn train_codebook(
    text: &str,
    source: &dyn RowSource,
    opts: &TrainOptions,
    progress: &dyn crate::pipeline::Progress,
) -> Result<Codebook> {
    let (name, params) = text.split_once(':').unwrap_or((text, ""));
    let id = match name {
        "pq" => CodecId::Pq,
        "opq" => CodecId::Opq,
        _ => {
            return Err(Error::Config(format!(
                "only pq and opq are trained, not '{name}'"
            )));
        }
    };
    let p = pq::PqParams::parse(name, params, source.dims())?;
    let sample = codebook::draw_sample(source, opts, p.seed, p.ksub(), progress)?;
    Ok(pq::train(id, &p, &sample, source.dims(), progress))
}

#[cfg(test)]
pub(crate) mod harness {
    //! One round-trip check shared by every codec's tests.
    use super::Codec;

    /// Encodes and decodes `data` whole and row by row, returning the reconstruction, and
    /// checks that the two decoding paths agree bit for bit.
    pub fn round_trip(codec: &dyn Codec, data: &[f32]) -> Vec<f32> {
        let d = codec.dims();
        let rows = data.len() / d;
        let mut payload = vec![0u8; codec.encoded_len(rows)];
        codec.encode(data, &mut payload).expect("encodable");
        let mut whole = vec![0f32; data.len()];
        codec.decode(&payload, rows, &mut whole);
        let mut one = vec![0f32; d];
        for r in 0..rows {
            codec.decode_row(&payload, rows, r, &mut one);
            let want = &whole[r * d..(r + 1) * d];
            assert!(
                one.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "decode_row({r}) differs from decode"
            );
        }
        whole
    }
}
