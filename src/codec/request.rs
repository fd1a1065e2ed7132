//! `--codec`, parsed once: a [`CodecRequest`] says what kind of codec a run asks for
//! (one built from its parameters alone, one trained on the input, or `auto`), with its
//! parameters already checked. Every caller (the CLI, the Python package, `compress`,
//! `train`, `bench`) goes through [`CodecRequest::parse`], so a codec string has one
//! grammar and one style of message.
//!
//! ```text
//! NAME[:key=value,...]     NAME: int8 int4 binary f16 bf16 sq | pq opq rq binary-itq | auto
//! ```
//!
//! The checks that need the data's dimension (does `m` divide `dims`?) happen when the
//! codec is built ([`CodecRequest::build`]) or trained ([`CodecRequest::train`]).

use std::fmt;
use std::str::FromStr;

use super::params::{self, QuantParams, ScaleRule};
use super::pq::PqParams;
use super::rotate::{DEFAULT_ROUNDS, DEFAULT_SEED};
use super::rq::{self, RqParams};
use super::sq::SqParams;
use super::{Codec, CodecId, RowSource, TrainOptions, codebook, itq};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// What `--codec` asks for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CodecRequest {
    /// A codec built from its parameters alone: `int8`, `int4`, `binary` (with a quantizer
    /// parameter block), `f16`, `bf16` (whose parameters are always the default).
    Fixed {
        /// The registry id.
        id: CodecId,
        /// Rotation and scale rule.
        params: QuantParams,
    },
    /// `sq:bits=B`: the rotated scalar quantizer at `B` bits per dimension.
    Sq(SqParams),
    /// A codec trained on a sample of the input.
    Trained(TrainedRequest),
    /// The smallest codec that meets a quality target on a sample (`--codec auto`).
    Auto,
}

/// A codec that learns from the data.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TrainedRequest {
    /// `pq` or `opq` (`id` says which) with its training settings.
    Pq {
        /// [`CodecId::Pq`] or [`CodecId::Opq`].
        id: CodecId,
        /// Training settings; `m` is checked against the dims when training.
        params: PqParams,
    },
    /// `binary-itq`, which takes no parameters.
    BinaryItq,
    /// `rq`: residual quantization with its training settings.
    Rq(RqParams),
    /// `sq:bits=B,centre=1`: the rotated scalar quantizer on rows centred on the mean of a
    /// sample (a mean, not a learned codebook, but taken from the data all the same).
    Sq(SqParams),
}

/// int8, the default codec.
impl Default for CodecRequest {
    fn default() -> Self {
        CodecRequest::Fixed {
            id: CodecId::Int8,
            params: QuantParams::default(),
        }
    }
}

/// The keys each training-free codec takes.
fn quant_keys(id: CodecId) -> &'static [&'static str] {
    match id {
        CodecId::Int8 | CodecId::Binary => &["rotate", "seed", "rounds"],
        CodecId::Int4 => &["rotate", "seed", "rounds", "scale", "grid"],
        _ => &[],
    }
}

impl CodecRequest {
    /// Parses `NAME[:key=value,...]`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the unknown codec, key or value, and listing the valid ones.
    pub fn parse(text: &str) -> Result<CodecRequest> {
        let (name, rest) = text.split_once(':').unwrap_or((text, ""));
        let fixed = |id: CodecId| -> Result<CodecRequest> {
            Ok(CodecRequest::Fixed {
                id,
                params: params::parse_quant(name, rest, quant_keys(id))?,
            })
        };
        match name {
            "int8" => fixed(CodecId::Int8),
            "int4" => fixed(CodecId::Int4),
            "binary" => fixed(CodecId::Binary),
            "f16" => fixed(CodecId::F16),
            "bf16" => fixed(CodecId::Bf16),
            "sq" => {
                let p = SqParams::parse(rest)?;
                Ok(if p.centre {
                    CodecRequest::Trained(TrainedRequest::Sq(p))
                } else {
                    CodecRequest::Sq(p)
                })
            }
            "pq" | "opq" => Ok(CodecRequest::Trained(TrainedRequest::Pq {
                id: if name == "pq" {
                    CodecId::Pq
                } else {
                    CodecId::Opq
                },
                params: PqParams::parse_keys(name, rest)?,
            })),
            "rq" => Ok(CodecRequest::Trained(TrainedRequest::Rq(
                RqParams::parse_keys(rest)?,
            ))),
            "binary-itq" | "auto" => {
                params::key_values(name, rest, &[])?;
                Ok(if name == "auto" {
                    CodecRequest::Auto
                } else {
                    CodecRequest::Trained(TrainedRequest::BinaryItq)
                })
            }
            _ => Err(Error::Config(format!(
                "unknown codec '{name}'; known codecs: {}, sq, pq, opq, rq, binary-itq (trained), auto",
                super::NAMES.join(", ")
            ))),
        }
    }

    /// Whether the codec learns from the input (pq, opq, binary-itq).
    pub fn is_trained(&self) -> bool {
        matches!(self, CodecRequest::Trained(_))
    }

    /// The codec for `dims`-dimensional rows, for a request that needs no training.
    ///
    /// # Errors
    /// [`Error::Config`] for a trained codec or `auto`, which cannot be built from their
    /// parameters alone.
    pub fn build(&self, dims: usize) -> Result<Box<dyn Codec>> {
        match self {
            CodecRequest::Fixed { id, params } => Ok(super::build_fixed(*id, *params, dims)),
            CodecRequest::Sq(p) => Ok(Box::new(super::Sq::new(dims, *p))),
            CodecRequest::Trained(t) => {
                if let TrainedRequest::Pq { params, .. } = t {
                    params.check_dims(&self.name(), dims)?;
                }
                if let TrainedRequest::Rq(params) = t {
                    params.check_dims(dims)?;
                }
                let name = match t {
                    TrainedRequest::Sq(_) => self.to_string(),
                    _ => self.name(),
                };
                Err(Error::Config(format!(
                    "{name} must be trained: use `vectro compress` (it trains on a sample) or `vectro train`"
                )))
            }
            CodecRequest::Auto => Err(Error::Config(
                "auto is not a codec but a choice among them: it needs a target (--min-cosine X or --min-recall X)".into(),
            )),
        }
    }

    /// The codec trained on a seeded sample of `source` (built directly when it needs no
    /// training).
    ///
    /// # Errors
    /// As [`CodecRequest::build`] for `auto`; [`Error::Config`] for settings that do not
    /// fit the data; errors reading the sample or training.
    pub fn train(
        &self,
        source: &dyn RowSource,
        opts: &TrainOptions,
        progress: &dyn Progress,
    ) -> Result<Box<dyn Codec>> {
        match self {
            CodecRequest::Trained(TrainedRequest::Pq { id, params }) => Ok(Box::new(
                super::Pq::new(train_pq(*id, params, source, opts, progress)?),
            )),
            CodecRequest::Trained(TrainedRequest::BinaryItq) => {
                Ok(Box::new(itq::Itq::train(source, opts, progress)?))
            }
            CodecRequest::Trained(TrainedRequest::Rq(p)) => {
                Ok(Box::new(rq::Rq::train(p, source, opts, progress)?))
            }
            CodecRequest::Trained(TrainedRequest::Sq(p)) => {
                Ok(Box::new(super::Sq::train(p, source, opts, progress)?))
            }
            _ => self.build(source.dims()),
        }
    }

    /// What training depends on besides the input and vectro's version: every setting in
    /// canonical form and the sample size, e.g. `pq:m=48,nbits=8,...;train_rows=65536`.
    /// `None` for a codec that is not trained. See [`super::training_recipe`].
    ///
    /// # Errors
    /// [`Error::Config`] when the settings do not fit `dims`.
    pub fn training_recipe(&self, dims: usize, train_rows: Option<u64>) -> Result<Option<String>> {
        let (canonical, default_rows) = match self {
            CodecRequest::Trained(TrainedRequest::Pq { id, params }) => {
                let name = super::registry_name(*id);
                params.check_dims(name, dims)?;
                (params.canonical(name), codebook::DEFAULT_TRAIN_ROWS)
            }
            CodecRequest::Trained(TrainedRequest::BinaryItq) => {
                ("binary-itq".to_string(), itq::DEFAULT_ITQ_ROWS)
            }
            CodecRequest::Trained(TrainedRequest::Rq(p)) => {
                p.check_dims(dims)?;
                (p.canonical(), rq::DEFAULT_RQ_ROWS)
            }
            CodecRequest::Trained(TrainedRequest::Sq(p)) => {
                (p.to_string(), super::sq::DEFAULT_CENTRE_ROWS)
            }
            _ => return Ok(None),
        };
        Ok(Some(format!(
            "{canonical};train_rows={}",
            train_rows.unwrap_or(default_rows)
        )))
    }

    /// The codec's name without parameters (`int4`, `pq`, `auto`).
    pub fn name(&self) -> String {
        match self {
            CodecRequest::Fixed { id, .. }
            | CodecRequest::Trained(TrainedRequest::Pq { id, .. }) => {
                super::registry_name(*id).to_string()
            }
            CodecRequest::Trained(TrainedRequest::BinaryItq) => "binary-itq".into(),
            CodecRequest::Trained(TrainedRequest::Rq(_)) => "rq".into(),
            CodecRequest::Sq(_) | CodecRequest::Trained(TrainedRequest::Sq(_)) => "sq".into(),
            CodecRequest::Auto => "auto".into(),
        }
    }
}

/// Trains the `pq`/`opq` codebook of `params` on a sample of `source`.
pub(super) fn train_pq(
    id: CodecId,
    params: &PqParams,
    source: &dyn RowSource,
    opts: &TrainOptions,
    progress: &dyn Progress,
) -> Result<codebook::Codebook> {
    params.check_dims(super::registry_name(id), source.dims())?;
    let sample = codebook::draw_sample(source, opts, params.seed, params.ksub(), progress)?;
    super::pq::train(id, params, &sample, source.dims(), progress, opts.flag())
}

impl FromStr for CodecRequest {
    type Err = Error;

    fn from_str(s: &str) -> Result<CodecRequest> {
        CodecRequest::parse(s)
    }
}

/// The request in its shortest spelling: the name, then only the parameters that differ
/// from their defaults. Parsing the text gives the same request back.
impl fmt::Display for CodecRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kv: Vec<String> = Vec::new();
        match self {
            CodecRequest::Fixed { id, params } => {
                if let Some(r) = params.rotation {
                    kv.push("rotate=1".into());
                    if r.seed != DEFAULT_SEED {
                        kv.push(format!("seed={}", r.seed));
                    }
                    if r.rounds != DEFAULT_ROUNDS {
                        kv.push(format!("rounds={}", r.rounds));
                    }
                }
                // int4's grid defaults to gauss when rotated, else to the uniform fit.
                let default_scale = if *id == CodecId::Int4 && params.rotation.is_some() {
                    ScaleRule::Gauss
                } else {
                    ScaleRule::Default
                };
                match params.scale {
                    s if s == default_scale => {}
                    ScaleRule::Gauss => kv.push("grid=gauss".into()),
                    ScaleRule::Max => kv.push("scale=max".into()),
                    ScaleRule::Default => kv.push("grid=uniform".into()),
                }
            }
            CodecRequest::Trained(TrainedRequest::Pq { id, params }) => {
                kv = params.non_default_keys(super::registry_name(*id));
            }
            CodecRequest::Trained(TrainedRequest::Rq(p)) => kv = p.non_default_keys(),
            // `sq:bits=B[,centre=1][,pad=P|,extra=N][,seed=S][,rounds=R]`, bits always spelled.
            CodecRequest::Sq(p) | CodecRequest::Trained(TrainedRequest::Sq(p)) => {
                return write!(f, "{p}");
            }
            _ => {}
        }
        f.write_str(&self.name())?;
        if !kv.is_empty() {
            write!(f, ":{}", kv.join(","))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_string_parses_to_its_kind_and_prints_back_in_its_shortest_spelling() {
        for (text, shortest) in [
            ("int8", "int8"),
            ("int8:rotate=1", "int8:rotate=1"),
            (
                "int8:rotate=1,seed=9,rounds=2",
                "int8:rotate=1,seed=9,rounds=2",
            ),
            ("int4", "int4"),
            ("int4:rotate=1", "int4:rotate=1"),
            ("int4:rotate=1,grid=gauss", "int4:rotate=1"),
            ("int4:rotate=1,grid=uniform", "int4:rotate=1,grid=uniform"),
            ("int4:scale=max", "int4:scale=max"),
            ("int4:grid=gauss", "int4:grid=gauss"),
            ("binary:rotate=1", "binary:rotate=1"),
            ("f16", "f16"),
            ("bf16", "bf16"),
            ("sq:bits=3", "sq:bits=3"),
            ("sq:rounds=3,bits=1,seed=1592614637", "sq:bits=1"),
            ("sq:bits=8,seed=7,rounds=2", "sq:bits=8,seed=7,rounds=2"),
            ("sq:centre=1,bits=1", "sq:bits=1,centre=1"),
            ("sq:seed=7,centre=1,bits=3", "sq:bits=3,centre=1,seed=7"),
            ("sq:bits=2,centre=0", "sq:bits=2"),
            ("sq:extra=60,bits=2,centre=1", "sq:bits=2,centre=1,extra=60"),
            ("pq:m=48", "pq:m=48"),
            ("pq:nbits=8,m=48", "pq:m=48"),
            ("pq:m=48,nbits=4,seed=7", "pq:m=48,nbits=4,seed=7"),
            ("opq:m=16,opq_init=random", "opq:m=16,opq_init=random"),
            ("binary-itq", "binary-itq"),
            ("auto", "auto"),
        ] {
            let r = CodecRequest::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(r.to_string(), shortest, "{text}");
            assert_eq!(CodecRequest::parse(shortest).unwrap(), r, "{text}");
            assert_eq!(
                r.is_trained(),
                ["pq", "opq", "binary-itq"].contains(&r.name().as_str())
                    || shortest.contains("centre=1")
            );
        }
    }

    #[test]
    fn a_built_codec_is_the_one_the_old_parser_built() {
        for text in [
            "int8",
            "int4:rotate=1",
            "int4:scale=max",
            "binary:rotate=1,seed=3",
            "f16",
            "bf16",
            "sq:bits=2",
            "sq:bits=5,seed=3",
        ] {
            let c = CodecRequest::parse(text).unwrap().build(64).unwrap();
            let spec = c.spec();
            let back = super::super::from_spec(spec.id, &spec.params, 64).unwrap();
            assert_eq!(back.spec(), spec, "{text}");
        }
    }

    #[test]
    fn one_grammar_and_one_style_of_message_for_every_codec() {
        for (text, want) in [
            (
                "int3",
                "unknown codec 'int3'; known codecs: int8, int4, binary, f16, bf16, sq, pq, opq, rq, binary-itq (trained), auto",
            ),
            (
                "int8:rotate",
                "int8: expected key=value, got 'rotate' (e.g. int8:rotate=1)",
            ),
            ("pq:48", "pq: expected key=value, got '48' (e.g. pq:m=48)"),
            (
                "int8:scale=max",
                "int8: unknown parameter 'scale'; valid: rotate, seed, rounds",
            ),
            (
                "f16:rotate=1",
                "f16: unknown parameter 'rotate'; valid: none",
            ),
            (
                "binary-itq:seed=1",
                "binary-itq: unknown parameter 'seed'; valid: none",
            ),
            ("auto:x=1", "auto: unknown parameter 'x'; valid: none"),
            (
                "pq:q=1",
                "pq: unknown parameter 'q'; valid: m, nbits, iters, tol, seed, kinit, redo, aniso, unit, opq_iters, opq_init",
            ),
            ("int4:seed=1,seed=2", "int4: 'seed' is given twice"),
            ("pq:m=8,m=16", "pq: 'm' is given twice"),
            ("pq:nbits=8", "pq: needs the number of subspaces m"),
            ("pq:m=8,nbits=5", "pq: nbits must be 8 or 4, got 5"),
            (
                "sq",
                "sq: needs the bits per dimension, 1 to 8 (e.g. sq:bits=4)",
            ),
            ("sq:seed=3", "sq: needs the bits per dimension"),
            (
                "sq:bits=0",
                "sq: bits must be 1 to 8 (bits per dimension), got '0'",
            ),
            (
                "sq:bits=9",
                "sq: bits must be 1 to 8 (bits per dimension), got '9'",
            ),
            (
                "sq:bits=three",
                "sq: bits must be 1 to 8 (bits per dimension), got 'three'",
            ),
            (
                "sq:bits=-1",
                "sq: bits must be 1 to 8 (bits per dimension), got '-1'",
            ),
            (
                "sq:bits",
                "sq: expected key=value, got 'bits' (e.g. sq:bits=4)",
            ),
            ("sq:bits=3,bits=4", "sq: 'bits' is given twice"),
            (
                "sq:rotate=1",
                "sq: unknown parameter 'rotate'; valid: bits, seed, rounds, centre",
            ),
            ("sq:bits=3,rounds=0", "sq: rounds must be 1..=16, got 0"),
            (
                "sq:bits=1,centre=yes",
                "sq: centre must be 0 or 1 (1 centres the rows on the mean of a sample), got 'yes'",
            ),
            (
                "sq:bits=1,center=1",
                "sq: unknown parameter 'center'; valid: bits, seed, rounds, centre",
            ),
            ("sq:centre=1", "sq: needs the bits per dimension"),
        ] {
            let e = CodecRequest::parse(text).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{text}");
            assert!(e.to_string().starts_with(want), "{text}: {e}");
        }
        // The dims-dependent check comes when building or training.
        let pq5 = CodecRequest::parse("pq:m=5").unwrap();
        let e = pq5.training_recipe(16, None).unwrap_err().to_string();
        assert!(
            e.contains("16 dims are not divisible by m=5; valid m for 16 dims: 1, 2, 4, 8, 16"),
            "{e}"
        );
        let e = pq5.build(16).unwrap_err().to_string();
        assert!(e.contains("not divisible"), "{e}");
        let e = CodecRequest::parse("pq:m=4")
            .unwrap()
            .build(16)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pq must be trained"), "{e}");
        let centred = CodecRequest::parse("sq:bits=1,centre=1").unwrap();
        let e = centred.build(16).unwrap_err().to_string();
        assert!(e.contains("sq:bits=1,centre=1 must be trained"), "{e}");
        assert_eq!(
            centred.training_recipe(16, None).unwrap().as_deref(),
            Some("sq:bits=1,centre=1;train_rows=4096")
        );
    }
}
