//! Codecs: the [`Codec`] trait and the registry that maps container ids to codecs.
//!
//! A codec is an array→bytes stage: it turns a block of `rows × dims` float32 values into a
//! payload whose size it can state up front ([`Codec::encoded_len`]), and back. Encoding and
//! decoding write into buffers the caller owns, so the pipeline can reuse them.

pub mod auto;
pub mod bf16;
pub mod binary;
pub mod f16;
pub mod int4;
pub mod int8;
pub mod itq;
pub mod params;
pub mod request;
pub mod rotate;
pub mod sq;
pub mod tiers;
pub mod zstd;

pub mod aniso;
#[cfg(test)]
mod bounds;
pub mod codebook;
pub mod kmeans;
pub mod opq;
pub mod pq;
pub mod rq;

use crate::error::{Error, Result};

pub use crate::simd::prefetch;
pub use bf16::Bf16;
pub use binary::Binary;
pub use codebook::{Codebook, RowSource, TrainOptions, Trained};
pub use f16::F16;
pub use int4::Int4;
pub use int8::Int8;
pub use params::{QuantParams, ScaleRule};
pub use pq::Pq;
pub use request::{CodecRequest, TrainedRequest};
pub use rotate::{Rotated, Rotation};
pub use sq::{Sq, SqParams};
pub use tiers::Tiered;
pub use zstd::PayloadStage;

/// The registry id of a codec, stored in the container header.
///
/// Ids are never reused: a reader that meets an unknown id refuses the file with a clear
/// error instead of guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecId {
    /// Per-vector int8 ([`Int8`]).
    Int8 = 1,
    /// Per-vector int4 ([`Int4`]).
    Int4 = 2,
    /// Sign bits with a per-vector scale ([`Binary`]).
    Binary = 3,
    /// IEEE half precision ([`F16`]).
    F16 = 4,
    /// bfloat16 ([`Bf16`]).
    Bf16 = 5,
    /// The rotated scalar quantizer at 1 to 8 bits, with the unbiased-estimator factors
    /// ([`Sq`]).
    Sq = 6,
    /// Product quantization with a trained codebook ([`Pq`]).
    Pq = 16,
    /// PQ after a learned rotation ([`Pq`] with a rotation).
    Opq = 17,
    /// Sign bits after a learned rotation ([`itq::Itq`]).
    BinaryItq = 18,
    /// Residual quantization: additive codes over the full dimension, beam-search
    /// encoded, with the norm coded separately ([`rq::Rq`]).
    Rq = 19,
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
            2 => Some(CodecId::Int4),
            3 => Some(CodecId::Binary),
            4 => Some(CodecId::F16),
            5 => Some(CodecId::Bf16),
            6 => Some(CodecId::Sq),
            16 => Some(CodecId::Pq),
            17 => Some(CodecId::Opq),
            18 => Some(CodecId::BinaryItq),
            19 => Some(CodecId::Rq),
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

    /// Whether [`Codec::encode`] itself refuses NaN and ±Inf with an [`EncodeFault`], so
    /// callers can skip their own pass over the input (int8 finds them in the pass that
    /// finds each row's scale). Callers still name the offender as a non-finite value.
    fn rejects_non_finite(&self) -> bool {
        false
    }

    /// Whether a block's payload is its rows' encodings one after another, each made from
    /// its row alone (f16, bf16), so a block can be encoded in pieces of rows, each into
    /// its own stretch of the payload, with the same bytes.
    fn row_major(&self) -> bool {
        false
    }

    /// Decodes a whole block of `rows` rows from `payload` into `out` (`rows × dims`).
    ///
    /// The default decodes row by row; codecs with a faster whole-block path override it.
    fn decode(&self, payload: &[u8], rows: usize, out: &mut [f32]) {
        for (r, o) in out.chunks_exact_mut(self.dims()).take(rows).enumerate() {
            self.decode_row(payload, rows, r, o);
        }
    }

    /// Decodes row `row` of a block of `rows` rows, without decoding the others.
    fn decode_row(&self, payload: &[u8], rows: usize, row: usize, out: &mut [f32]);

    /// Whether [`Codec::decode_row`] costs about one row's work, as for per-row codecs
    /// (int8, int4, binary, f16). A codec that must decode a whole block to reach one row
    /// returns false, and readers then decode each touched block once instead.
    fn row_access(&self) -> bool {
        true
    }

    /// Hints the CPU to start loading the bytes [`Codec::decode_row`] will read for `row`.
    /// Random-access readers call it for a batch of rows before decoding them, so the
    /// cache misses overlap instead of coming one after another. The default does nothing.
    fn prefetch_row(&self, _payload: &[u8], _rows: usize, _row: usize) {}

    /// The search tiers stored before this codec's payload, coarsest first (format 1.6;
    /// [`Tiered`]): empty for every codec but a tiered one, whose [`Codec::spec`] is its
    /// finest tier, the one rows decode from.
    fn search_tiers(&self) -> Vec<CodecSpec> {
        Vec::new()
    }

    /// Facts worth showing in `info` (e.g. how a codebook was trained), as label/value.
    fn facts(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The first row of the block whose decoded values are not all finite, or `None`:
    /// what `verify` asks of every chunk, since a reader refuses such rows. The default
    /// decodes the block into `scratch`; a codec that can answer from less work (an
    /// orthogonal rotation keeps a finite row finite unless it nears overflow) overrides it.
    fn first_non_finite_row(
        &self,
        payload: &[u8],
        rows: usize,
        scratch: &mut Vec<f32>,
    ) -> Option<usize> {
        let d = self.dims();
        scratch.resize(rows * d, 0.0);
        self.decode(payload, rows, scratch);
        first_non_finite_row(scratch, d, |_, _| false)
    }
}

/// The first row of `decoded` (`dims` floats a row) holding a NaN or an infinity, or for
/// which `suspect(row, values)` is true.
pub(crate) fn first_non_finite_row(
    decoded: &[f32],
    dims: usize,
    mut suspect: impl FnMut(usize, &[f32]) -> bool,
) -> Option<usize> {
    decoded
        .chunks_exact(dims.max(1))
        .enumerate()
        .position(|(r, row)| crate::simd::any_non_finite(row) || suspect(r, row))
}

/// Whether an orthogonal transform of `row` (plus an offset of at most `offset` in each
/// value) can overflow float32: each output is at most the row's length plus the offset,
/// and the length is at most `√dims · max|x|`.
pub(crate) fn rotation_may_overflow(row: &[f32], offset: f32) -> bool {
    let peak = row.iter().fold(0f32, |m, x| m.max(x.abs()));
    (peak as f64) * (row.len() as f64).sqrt() + offset as f64 >= f32::MAX as f64 / 2.0
}

/// Builds the codec a container header describes.
///
/// # Errors
/// [`Error::Config`] when the parameter block does not fit the codec.
pub fn from_spec(id: CodecId, params: &[u8], dims: usize) -> Result<Box<dyn Codec>> {
    match id {
        CodecId::Int8 | CodecId::Int4 | CodecId::Binary => {
            let name = registry_name(id);
            let p = QuantParams::decode(name, params, dims)?;
            if p.scale != ScaleRule::Default && id != CodecId::Int4 {
                return Err(Error::Config(format!(
                    "{name} has no scale rule {:?}",
                    p.scale
                )));
            }
            Ok(build_quant(id, p, dims))
        }
        CodecId::F16 | CodecId::Bf16 => {
            if !params.is_empty() {
                return Err(Error::Config(format!(
                    "{} takes no parameters, the container has {} bytes",
                    registry_name(id),
                    params.len()
                )));
            }
            Ok(build_float(id, dims))
        }
        CodecId::BinaryItq => Ok(Box::new(itq::Itq::from_params(params, dims)?)),
        CodecId::Sq => Ok(Box::new(Sq::from_params(params, dims)?)),
        CodecId::Rq => Ok(Box::new(rq::Rq::from_params(params, dims)?)),
        CodecId::Pq | CodecId::Opq => {
            Ok(Box::new(Pq::new(Codebook::from_params(id, params, dims)?)))
        }
    }
}

/// The `--codec` name of a registry id.
pub fn registry_name(id: CodecId) -> &'static str {
    match id {
        CodecId::Int8 => "int8",
        CodecId::Int4 => "int4",
        CodecId::Binary => "binary",
        CodecId::F16 => "f16",
        CodecId::Bf16 => "bf16",
        CodecId::Sq => "sq",
        CodecId::Pq => "pq",
        CodecId::Opq => "opq",
        CodecId::BinaryItq => "binary-itq",
        CodecId::Rq => "rq",
    }
}

/// Every codec name `--codec` takes without training (besides `auto`; `pq` and `opq` are
/// trained on the input).
pub const NAMES: [&str; 5] = ["int8", "int4", "binary", "f16", "bf16"];

fn build_quant(id: CodecId, p: QuantParams, dims: usize) -> Box<dyn Codec> {
    let inner: Box<dyn Codec> = match id {
        CodecId::Int8 => Box::new(Int8::new(dims)),
        CodecId::Int4 => Box::new(Int4::new(dims, p.scale)),
        _ => Box::new(Binary::new(dims)),
    };
    match p.rotation {
        None => inner,
        Some(r) => {
            let spec = CodecSpec {
                id,
                params: p.encode(dims),
            };
            Box::new(Rotated::new(
                inner,
                Rotation::new(dims, r.rounds, r.seed),
                spec,
            ))
        }
    }
}

fn build_float(id: CodecId, dims: usize) -> Box<dyn Codec> {
    match id {
        CodecId::F16 => Box::new(F16::new(dims)),
        _ => Box::new(Bf16::new(dims)),
    }
}

/// The codec of a request that needs no training.
fn build_fixed(id: CodecId, p: QuantParams, dims: usize) -> Box<dyn Codec> {
    match id {
        CodecId::F16 | CodecId::Bf16 => build_float(id, dims),
        _ => build_quant(id, p, dims),
    }
}

/// Parses a `--codec` string such as `int8`, `int4:rotate=1` or `binary:rotate=1,seed=7`
/// and builds the codec: [`CodecRequest::parse`] then [`CodecRequest::build`].
///
/// # Errors
/// [`Error::Config`] naming the unknown codec or parameter and listing the valid ones, or
/// saying that a trained codec must be trained.
pub fn parse(text: &str, dims: usize) -> Result<Box<dyn Codec>> {
    CodecRequest::parse(text)?.build(dims)
}

/// Reads the little-endian f32 at byte `at`.
pub(crate) fn read_f32(b: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Like [`parse`], but a codec that needs training (`pq`, `opq`, `binary-itq`) is trained
/// on a seeded sample of `source`'s rows; the others ignore `source` beyond its dims.
///
/// # Errors
/// As [`parse`] and [`CodecRequest::train`].
pub fn parse_trained(
    text: &str,
    source: &dyn RowSource,
    opts: &TrainOptions,
    progress: &dyn crate::progress::Progress,
) -> Result<Box<dyn Codec>> {
    CodecRequest::parse(text)?.train(source, opts, progress)
}

/// Trains the codec `text` (`pq:...`, `opq:...` or `binary-itq`) on a seeded sample of
/// `source`, as `vectro train` does.
///
/// # Errors
/// [`Error::Config`] for a codec that is not trained or a bad codec string; errors reading
/// the sample or training.
pub fn train(
    text: &str,
    source: &dyn RowSource,
    opts: &TrainOptions,
    progress: &dyn crate::progress::Progress,
) -> Result<Trained> {
    match CodecRequest::parse(text)? {
        CodecRequest::Trained(TrainedRequest::Pq { id, params }) => Ok(Trained::Pq(
            request::train_pq(id, &params, source, opts, progress)?,
        )),
        CodecRequest::Trained(TrainedRequest::BinaryItq) => {
            Ok(Trained::Itq(itq::Itq::train(source, opts, progress)?))
        }
        CodecRequest::Trained(TrainedRequest::Rq(p)) => {
            Ok(Trained::Rq(rq::Rq::train(&p, source, opts, progress)?))
        }
        CodecRequest::Trained(TrainedRequest::Sq(p)) => {
            Ok(Trained::Sq(Sq::train(&p, source, opts, progress)?))
        }
        other => Err(Error::Config(format!(
            "only pq, opq, rq, binary-itq and sq:bits=B,centre=1 are trained, not '{}'",
            other.name()
        ))),
    }
}

/// What training the codec `text` depends on besides the input and vectro's version: its
/// parameters in canonical form and the sample size, e.g.
/// `pq:m=48,nbits=8,...;train_rows=65536`. `None` for a codec that is not trained.
/// Training is deterministic, so two runs with the same recipe, input and version train
/// the same codebook; `compress` records the recipe (metadata key `train`) so that
/// `--resume` can take the codebook from an interrupted run's partial output.
///
/// # Errors
/// [`Error::Config`] for a bad codec string.
pub fn training_recipe(text: &str, dims: usize, train_rows: Option<u64>) -> Result<Option<String>> {
    CodecRequest::parse(text)?.training_recipe(dims, train_rows)
}

/// Trains the codebook of `text` (`pq:...` or `opq:...`) on a sample of `source`.
///
/// # Errors
/// [`Error::Config`] for a bad codec string, a codec other than pq and opq, or too few
/// rows; errors reading the sample.
pub fn train_codebook(
    text: &str,
    source: &dyn RowSource,
    opts: &TrainOptions,
    progress: &dyn crate::progress::Progress,
) -> Result<Codebook> {
    match CodecRequest::parse(text)? {
        CodecRequest::Trained(TrainedRequest::Pq { id, params }) => {
            request::train_pq(id, &params, source, opts, progress)
        }
        other => Err(Error::Config(format!(
            "only pq and opq are trained into a codebook, not '{}'",
            other.name()
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
                one.iter()
                    .zip(want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "decode_row({r}) differs from decode"
            );
        }
        whole
    }
}

#[cfg(test)]
mod recipe_tests {
    use super::training_recipe;

    fn recipe(text: &str, rows: Option<u64>) -> Option<String> {
        training_recipe(text, 16, rows).unwrap()
    }

    #[test]
    fn a_recipe_names_every_setting_training_depends_on_and_nothing_else() {
        let plain = recipe("pq:m=4", None).unwrap();
        assert_eq!(
            plain,
            "pq:m=4,nbits=8,iters=25,tol=0,seed=1234,kinit=random,redo=1,aniso=auto,unit=auto;train_rows=65536"
        );
        // The same training, spelled otherwise.
        for same in ["pq:nbits=8,m=4", "pq:m=4,seed=1234,aniso=auto"] {
            assert_eq!(recipe(same, None).unwrap(), plain, "{same}");
        }
        assert_eq!(recipe("pq:m=4", Some(65536)).unwrap(), plain);
        // Every setting that changes the codebook changes the recipe.
        for other in [
            "pq:m=8",
            "pq:m=4,nbits=4",
            "pq:m=4,iters=3",
            "pq:m=4,tol=0.01",
            "pq:m=4,seed=7",
            "pq:m=4,kinit=kpp",
            "pq:m=4,redo=2",
            "pq:m=4,aniso=2",
            "pq:m=4,unit=1",
            "opq:m=4",
        ] {
            assert_ne!(recipe(other, None).unwrap(), plain, "{other}");
        }
        assert_ne!(recipe("pq:m=4", Some(100)).unwrap(), plain);
        let opq = recipe("opq:m=4", None).unwrap();
        assert!(opq.contains(",opq_iters=20,opq_init=pca;"), "{opq}");
        assert_ne!(recipe("opq:m=4,opq_init=random", None).unwrap(), opq);
        assert_ne!(recipe("opq:m=4,opq_iters=2", None).unwrap(), opq);
        assert_eq!(
            recipe("binary-itq", None).unwrap(),
            "binary-itq;train_rows=20000"
        );
        for untrained in ["int8", "int4:rotate=1", "f16", "auto"] {
            assert_eq!(recipe(untrained, None), None, "{untrained}");
        }
        assert!(training_recipe("pq:m=5", 16, None).is_err());
    }
}
