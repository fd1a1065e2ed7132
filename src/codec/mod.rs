//! Codecs: the [`Codec`] trait and the registry that maps container ids to codecs.
//!
//! A codec is an array→bytes stage: it turns a block of `rows × dims` float32 values into a
//! payload whose size it can state up front ([`Codec::encoded_len`]), and back. Encoding and
//! decoding write into buffers the caller owns, so the pipeline can reuse them.

pub mod int8;

use crate::error::{Error, Result};

pub use int8::Int8;

/// The registry id of a codec, stored in the container header.
///
/// Ids are never reused: a reader that meets an unknown id refuses the file with a clear
/// error instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecId {
    /// Per-vector int8 ([`Int8`]).
    Int8 = 1,
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
        _ => Err(Error::Config(format!(
            "unknown codec '{name}'; known codecs: int8"
        ))),
    }
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
