//! `sq:bits=B`: a rotated scalar quantizer at every width from 1 to 8 bits per dimension,
//! with a per-vector correction that makes the inner product with a float query unbiased
//! (the estimator of RaBitQ and extended RaBitQ).
//!
//! Each row `x` is rotated by the seeded transform of `rotate=1` (always on here), `v = Qx`.
//! Every coordinate gets a `B`-bit code `c` whose level is the odd integer
//! `L = 2c + 1 − 2^B` (so `±1, ±3, …, ±(2^B − 1)`: a uniform grid without a zero level; at
//! one bit it is the sign). The grid is rescaled per row: for a step `1/t` the code of `v_i`
//! is `|L_i| = 2·min(⌊t|v_i|/max|v|⌋, 2^(B−1) − 1) + 1` with the sign of `v_i`, and the encoder
//! picks, among a few `t` around the best step for a Gaussian of the row's RMS (and the
//! step that clips nothing), the one whose codes point closest to `v`: the largest
//! `cos θ = <L, v> / (‖L‖ ‖v‖)`. Bound: `sin² θ <= dims × (max|v| / 2^B)² / ‖v‖²`, from the
//! step that clips nothing.
//!
//! Per row two factors are stored, both computed from the codes actually stored: `‖v‖` and
//! `cos θ`. The row decodes to `x' = Qᵀ(g·L)` with `g = ‖v‖ / (‖L‖ cos θ) = ‖v‖² / <L, v>`.
//! That `g` is not the least-squares scale (`<L, v>/‖L‖²`, which shrinks every row by its
//! own `cos² θ`) but the one for which `<x', q>` estimates `<x, q>` without bias: writing
//! `q = <q, v̂> v̂ + q⊥` (`v̂ = v/‖v‖`), `<g L, q> = <x, q> + g <L, q⊥>`, and the last term
//! has mean zero over the random rotation. So ranking decoded rows by inner product *is*
//! the corrected estimator, and `<x', x> = ‖x‖²` for every row. Searches by cosine or L2
//! (`vectro search`, `vectro eval`) use `‖v‖` for the norm instead of `‖x'‖ = ‖v‖/cos θ`.
//!
//! Payload of a block of `n` rows, row after row: `ceil(dims × B / 8)` bytes of codes (the
//! row's bit stream, code `j` in bits `[jB, (j+1)B)`, least significant bit first; unused
//! high bits of the last byte 0), then one little-endian u32 of factors: bits 31..14 are
//! bits 30..13 of the f32 `‖v‖` (8 exponent and 10 mantissa bits, rounded to nearest;
//! relative error at most 2⁻¹¹), bits 13..0 are `round(cos θ × 16383)` (at least 1). At 384
//! dimensions and 4 bits a row is 192 + 4 = 196 bytes.
//!
//! `sq:bits=B,centre=1` centres the rows first, as faiss's RaBitQ does: `v = Q(x − c)` with
//! `c` the mean of a seeded sample of the input's rows ([`Sq::train`]; stored in the
//! parameter block, layout 2). That is a mean, not a learned codebook, but it does come
//! from the data, so the codec goes through the trained path (`compress` samples the
//! input, `vectro train` writes it to a `.vcb`, `--codebook` and shards reuse it). Embeddings
//! share a mean direction, and the codes of `x − c` spend their bits on what tells the rows
//! apart. Each row also stores the f32 `<x, c>` (4 bytes: 56 a row at 384 dims and one bit,
//! faiss RaBitQ's size). The row decodes to `x' = Qᵀ(g L) + κ c` with
//! `κ = (<x, c> − g <L, Qc>) / ‖c‖²`, which makes `<x', c> = <x, c>`: the decoded row is
//! exact along the mean, so `<x', q> − <x, q> = <q⊥, Qᵀ g L − (x − c)>` with `q⊥` the part
//! of `q` off the mean. RaBitQ's estimator `<Q(q − c), g L> + <x, c>` (up to a per-query
//! constant) has the error `<q − c, Qᵀ g L − (x − c)>`, which is the same plus a term
//! along the mean; so ranking decoded rows by inner product is that estimator without its
//! error along the mean (on 384-dim embeddings, the same recall within noise), and `search` and `eval` score the codes exactly so (`g <Qq, L> + κ <q, c>`), with
//! `‖x‖² = ‖v‖² + 2<x, c> − ‖c‖²` as the row's norm for cosine and L2.
//!
//! `sq:bits=B,centre=1,pad=1` (the default at one bit; `pad=0` writes the layout above)
//! packs a centred row's three numbers into one u32 ([`Packed`]: 14 bits of `‖v‖`'s float,
//! 8 of `cos θ`, 10 of `ρ = <x − c, c> / (‖v‖ ‖c‖)`, from which `<x, c>` decodes) and spends
//! the 4 bytes that frees on the codes of `⌊32/B⌋` more coordinates: each centred row is
//! padded with that many zeros and rotated over `dims + ⌊32/B⌋` dims (block layout 3), and
//! a query scored against the codes is padded and rotated alike. At one bit and 384 dims
//! that is 416 signs and the word, 56 bytes as before; the decoded row is the inverse
//! rotation of `g L` with its last `⌊32/B⌋` coordinates dropped, plus `κ c`. The longer
//! rotation carries more of the row than the lost factor precision costs: about 0.01
//! recall@10 more on 384-dim sentence embeddings (docs/benchmarks.md).
//!
//! `sq:bits=B,centre=1,extra=N` is the same layout with `N` zero coordinates (1 to
//! [`MAX_EXTRA`]) instead of `⌊32/B⌋`, the count stored in the parameter block: each row
//! costs `ceil((dims + N) × B / 8) + 4` bytes. At two bits and 384 dims, `extra=60` (115
//! bytes a row) reads about 0.01 recall@10 above faiss RaBitQ 2-bit behind a random
//! rotation (116 bytes) over six rotation seeds; at three bits (`extra=32`, 160 bytes
//! against 164) the gain is within the seeds' spread, and on a 768-dim set the extra
//! coordinates gain nothing (docs/benchmarks.md).

use std::cell::RefCell;
use std::fmt;

use byteorder::{ByteOrder, LittleEndian as LE};

use super::rotate::{self, DEFAULT_ROUNDS, DEFAULT_SEED, MAX_ROUNDS};
use super::{Codec, CodecId, CodecSpec, EncodeFault, Rotation};
use crate::error::{Error, Result};
use crate::simd::Level;
use crate::simd::sq as simd_sq;

/// Bytes of the `sq` parameter block.
pub const SQ_PARAMS_LEN: usize = 20;
/// The widths `sq` takes.
pub const BITS: std::ops::RangeInclusive<u8> = 1..=8;
/// Bytes of a centred block (layout 2) before its mean: the 20 of layout 1, the dims (u32)
/// and the rows the mean was taken over (u64).
pub const CENTRED_FIXED_LEN: usize = 32;
/// Rows whose mean a centred codec is built on unless `--train-rows` says otherwise: the
/// mean of a few thousand rows is as good as the whole file's for the codes (about 0.001
/// recall@10 apart at one bit on 384-dim embeddings), and only the sampled rows are read.
pub const DEFAULT_CENTRE_ROWS: u64 = 4_096;
/// Seed of the rows sampled for the mean.
const CENTRE_SEED: u64 = 0xc3e7_5eed;
/// Steps of `cos θ` in the factor word.
const COS_STEPS: f64 = 16383.0;

/// The step (in units of the row's RMS) of the uniform quantizer with `2^B` levels that
/// has the least squared error on a unit Gaussian (Max 1960; Jayant & Noll, table 4.2),
/// by width; the search starts from it.
const GAUSS_STEP: [f32; 9] = [
    0.0, 1.596, 0.9957, 0.5860, 0.3352, 0.1881, 0.1041, 0.0568, 0.0307,
];
/// The multiples of the Gaussian step's `t` the encoder scores (the no-clipping step is
/// scored too). On 384-dim embeddings the best of these three steps and of a finer
/// search (0.8 to 1.25 in eight steps) point within 0.0001 of each other (`cos θ`, at
/// every width).
const T_FACTORS: [f32; 2] = [0.95, 1.06];
/// A row whose largest magnitude lies in `[2^-50, 2^50]` has its sums taken unscaled (the
/// sum of its squares stays far inside float32's range, and the squares too small to be
/// normal floats are below its rounding); any other row's on its magnitudes times
/// [`pow2_scale`].
const UNSCALED: std::ops::RangeInclusive<f32> = 8.881_784e-16..=1.125_899_9e15;

/// What `sq:bits=B[,centre=1][,seed=S][,rounds=R]` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqParams {
    /// Bits per dimension, 1 to 8.
    pub bits: u8,
    /// Rotation rounds.
    pub rounds: u32,
    /// Rotation seed.
    pub seed: u64,
    /// Rows are centred on the mean of a sample before rotating (`centre=1`; layout 2).
    pub centre: bool,
    /// Centred only (layout 3; `pad=1`, the default at one bit): the row's three numbers
    /// share one packed factor word, and the 4 bytes that frees hold the codes of
    /// [`pad_dims`] more coordinates: each centred row is padded with that many zeros and
    /// rotated over `dims + pad_dims` dimensions.
    pub pad: bool,
    /// The zero coordinates a padded row gets (`extra=N`; [`pad_dims`] unless spelled; 0
    /// unpadded).
    pub extra: usize,
}

/// The most zero coordinates `extra=N` appends.
pub const MAX_EXTRA: usize = 4096;

/// The zero coordinates a padded row (layout 3) gets at `bits` bits: the 32 bits that the
/// packed factor word frees, `⌊32 / bits⌋` codes.
pub fn pad_dims(bits: u8) -> usize {
    32 / usize::from(bits.max(1))
}

impl SqParams {
    /// Parses the `key=value,...` part of `--codec sq:...`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key or value that is wrong, or the missing `bits`.
    pub fn parse(text: &str) -> Result<SqParams> {
        let mut p = SqParams {
            bits: 0,
            rounds: DEFAULT_ROUNDS,
            seed: DEFAULT_SEED,
            centre: false,
            pad: false,
            extra: 0,
        };
        let mut pad = None;
        let mut extra = None;
        for (k, v) in super::params::key_values(
            "sq",
            text,
            &["bits", "seed", "rounds", "centre", "pad", "extra"],
        )? {
            let num = |v: &str| {
                v.parse::<u64>().map_err(|_| {
                    Error::Config(format!("sq: {k} must be a whole number, got '{v}'"))
                })
            };
            match k {
                "bits" => {
                    p.bits = match v.parse::<u8>() {
                        Ok(b) if BITS.contains(&b) => b,
                        _ => {
                            return Err(Error::Config(format!(
                                "sq: bits must be 1 to 8 (bits per dimension), got '{v}'"
                            )));
                        }
                    }
                }
                "seed" => p.seed = num(v)?,
                "centre" => {
                    p.centre = match v {
                        "0" => false,
                        "1" => true,
                        _ => {
                            return Err(Error::Config(format!(
                                "sq: centre must be 0 or 1 (1 centres the rows on the mean of a sample), got '{v}'"
                            )));
                        }
                    }
                }
                "pad" => {
                    pad = match v {
                        "0" => Some(false),
                        "1" => Some(true),
                        _ => {
                            return Err(Error::Config(format!(
                                "sq: pad must be 0 or 1 (1 packs a centred row's factors in one word and spends the 4 bytes freed on more codes), got '{v}'"
                            )));
                        }
                    }
                }
                "rounds" => {
                    let r = num(v)?;
                    if !(1..=u64::from(MAX_ROUNDS)).contains(&r) {
                        return Err(Error::Config(format!(
                            "sq: rounds must be 1..={MAX_ROUNDS}, got {r}"
                        )));
                    }
                    p.rounds = r as u32;
                }
                "extra" => {
                    extra = match v.parse::<usize>() {
                        Ok(e) if (1..=MAX_EXTRA).contains(&e) => Some(e),
                        _ => {
                            return Err(Error::Config(format!(
                                "sq: extra must be 1 to {MAX_EXTRA} (the zero coordinates each padded row is rotated with), got '{v}'"
                            )));
                        }
                    }
                }
                _ => unreachable!("key_values checks the keys"),
            }
        }
        if p.bits == 0 {
            return Err(Error::Config(
                "sq: needs the bits per dimension, 1 to 8 (e.g. sq:bits=4)".into(),
            ));
        }
        if extra.is_some() && pad == Some(false) {
            return Err(Error::Config(
                "sq: extra=N pads the rows, so it does not go with pad=0".into(),
            ));
        }
        p.pad = pad.unwrap_or_else(|| extra.is_some() || p.default_pad());
        if extra.is_some() && !p.centre {
            return Err(Error::Config(
                "sq: extra=N needs centre=1 (it pads a centred row, whose factors share one word)"
                    .into(),
            ));
        }
        p.extra = if p.pad {
            extra.unwrap_or_else(|| p.default_extra())
        } else {
            0
        };
        if p.pad && !p.centre {
            return Err(Error::Config(
                "sq: pad=1 needs centre=1 (it packs the centred row's <x, c> into the factor word)"
                    .into(),
            ));
        }
        Ok(p)
    }

    /// Whether `pad` is on unless spelled: at one bit with `centre=1`.
    fn default_pad(&self) -> bool {
        self.centre && self.bits == 1
    }

    /// The zero coordinates a padded row gets unless `extra=N` says otherwise.
    fn default_extra(&self) -> usize {
        pad_dims(self.bits)
    }

    /// The zero coordinates appended to each centred row before rotating (0 unpadded).
    pub fn pad_dims(&self) -> usize {
        if self.pad { self.extra } else { 0 }
    }

    /// The on-disk block (FORMAT.md, "`sq` parameter block") of an uncentred codec, or the
    /// first [`SQ_PARAMS_LEN`] bytes of a centred one's (layout 2, or 3 padded, which
    /// [`Sq::spec`] follows with the dims, the sample size and the mean).
    pub fn encode(&self, dims: usize) -> Vec<u8> {
        let mut b = vec![0u8; SQ_PARAMS_LEN];
        b[0] = match (self.centre, self.pad) {
            (false, _) => 1,
            (true, false) => 2,
            (true, true) => 3,
        };
        b[1] = self.bits;
        LE::write_u16(&mut b[2..4], self.pad_dims() as u16);
        LE::write_u32(&mut b[4..8], self.rounds);
        LE::write_u32(
            &mut b[8..12],
            rotate::window_for(dims + self.pad_dims()) as u32,
        );
        LE::write_u64(&mut b[12..20], self.seed);
        b
    }

    /// Parses and checks an on-disk block for `dims`-dimensional rows (of either layout;
    /// [`Sq::from_params`] reads a centred block's mean).
    ///
    /// # Errors
    /// [`Error::Config`] naming the field that is wrong.
    pub fn decode(bytes: &[u8], dims: usize) -> Result<SqParams> {
        let bad = |what: String| Err(Error::Config(format!("sq parameters: {what}")));
        let centre = matches!(bytes.first(), Some(2 | 3));
        let pad = bytes.first() == Some(&3);
        let want = if centre {
            CENTRED_FIXED_LEN + 4 * dims
        } else {
            SQ_PARAMS_LEN
        };
        if bytes.len() != want {
            return bad(format!(
                "{} bytes, expected {want} for layout {} at {dims} dims",
                bytes.len(),
                bytes.first().copied().unwrap_or(1)
            ));
        }
        if !(1..=3).contains(&bytes[0]) || (!pad && bytes[2..4] != [0, 0]) {
            return bad(format!(
                "unknown layout {} (written by a newer vectro? upgrade vectro)",
                bytes[0]
            ));
        }
        let bits = bytes[1];
        if !BITS.contains(&bits) {
            return bad(format!("{bits} bits per dimension (1 to 8)"));
        }
        let extra = LE::read_u16(&bytes[2..4]) as usize;
        if pad && !(1..=MAX_EXTRA).contains(&extra) {
            return bad(format!(
                "{extra} padding coordinates (layout 3 pads 1 to {MAX_EXTRA})"
            ));
        }
        let rdims = dims + extra;
        let rounds = LE::read_u32(&bytes[4..8]);
        let window = LE::read_u32(&bytes[8..12]) as usize;
        if !(1..=MAX_ROUNDS).contains(&rounds) {
            return bad(format!("{rounds} rotation rounds (1 to {MAX_ROUNDS})"));
        }
        if window != rotate::window_for(rdims) {
            return bad(format!(
                "rotation window {window} for {rdims} rotated dims (expected {})",
                rotate::window_for(rdims)
            ));
        }
        if centre && LE::read_u32(&bytes[20..24]) as usize != dims {
            return bad(format!(
                "a mean of {} dims for {dims}-dimensional rows",
                LE::read_u32(&bytes[20..24])
            ));
        }
        Ok(SqParams {
            bits,
            rounds,
            seed: LE::read_u64(&bytes[12..20]),
            centre,
            pad,
            extra: if pad { extra } else { 0 },
        })
    }
}

/// The shortest spelling: `sq:bits=B`, then the seed and rounds if not the defaults.
impl fmt::Display for SqParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sq:bits={}", self.bits)?;
        if self.centre {
            f.write_str(",centre=1")?;
        }
        if self.pad && self.extra != self.default_extra() {
            write!(f, ",extra={}", self.extra)?;
        } else if self.pad != self.default_pad() {
            write!(f, ",pad={}", u8::from(self.pad))?;
        }
        if self.seed != DEFAULT_SEED {
            write!(f, ",seed={}", self.seed)?;
        }
        if self.rounds != DEFAULT_ROUNDS {
            write!(f, ",rounds={}", self.rounds)?;
        }
        Ok(())
    }
}

/// A row's stored factors, unpacked.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Factors {
    /// `‖v‖` as stored.
    pub norm: f32,
    /// `cos θ` as stored (0 for an all-zero row).
    pub cos: f64,
}

impl Factors {
    /// Unpacks the factor word.
    pub fn from_word(w: u32) -> Factors {
        Factors {
            norm: f32::from_bits((w >> 14) << 13),
            cos: f64::from(w & 0x3fff) / COS_STEPS,
        }
    }

    /// The multiplier `g` of the odd-integer levels, for a row whose levels have
    /// `Σ L² = ll`: `‖v‖ / (‖L‖ cos θ)`, in f64, then f32 (0 for an all-zero row).
    pub fn gain(&self, ll: u64) -> f32 {
        if self.norm == 0.0 || ll == 0 || self.cos == 0.0 {
            return 0.0;
        }
        (f64::from(self.norm) / ((ll as f64).sqrt() * self.cos)) as f32
    }
}

/// Steps of `cos θ` in the packed factor word (layout 3).
const PACKED_COS_STEPS: f64 = 255.0;
/// Steps of `ρ` in `[0, 1]` in the packed factor word (layout 3): `ρ` in `[−1, 1]` is
/// stored as `round(ρ × 511) + 511`, 0 to 1022.
const RHO_STEPS: f64 = 511.0;

/// The fields of a packed factor word (layout 3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packed {
    /// `‖v‖` and `cos θ`.
    pub factors: Factors,
    /// `ρ = <x − c, c> / (‖v‖ ‖c‖)`, the cosine between the centred row and the mean.
    pub rho: f64,
}

impl Packed {
    /// Unpacks the packed factor word: bits 31..18 are bits 30..17 of the f32 `‖v‖`,
    /// bits 17..10 `round(cos θ × 255)`, bits 9..0 `round(ρ × 511) + 511`.
    pub fn from_word(w: u32) -> Packed {
        Packed {
            factors: Factors {
                norm: f32::from_bits((w >> 18) << 17),
                cos: f64::from((w >> 10) & 0xff) / PACKED_COS_STEPS,
            },
            rho: (f64::from((w & 0x3ff).min(1022)) - RHO_STEPS) / RHO_STEPS,
        }
    }

    /// Packs a centred row's `‖v‖`, `cos θ` and `<x − c, c>` (`xc_c`) for a mean of norm
    /// `norm_c`: `ρ` is taken with the norm as stored, so that `<x, c>` decodes closest.
    /// Every field clamps: a norm that rounds past float32 to the largest finite one
    /// (the caller refuses a norm that is not finite), `cos θ` to `[1, 255]` steps (0 only
    /// for an all-zero `v`), `ρ` to `[−1, 1]` (0 when `‖v‖` or `‖c‖` is 0).
    pub fn word(norm: f32, cos: f64, xc_c: f64, norm_c: f64) -> u32 {
        let n14 = if norm == 0.0 {
            0
        } else {
            ((norm.to_bits() + (1 << 16)) >> 17).min((0xff << 6) - 1)
        };
        let stored = f64::from(f32::from_bits(n14 << 17));
        let k = if n14 == 0 {
            0
        } else {
            (cos * PACKED_COS_STEPS)
                .round()
                .clamp(1.0, PACKED_COS_STEPS) as u32
        };
        let den = stored * norm_c;
        let rho = if den > 0.0 && den.is_finite() {
            (xc_c / den).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        let j = ((rho * RHO_STEPS).round() + RHO_STEPS).clamp(0.0, 2.0 * RHO_STEPS) as u32;
        (n14 << 18) | (k << 10) | j
    }
}

/// A row's fit before its factors are stored: `‖v‖` and `cos θ`, unrounded.
#[derive(Debug, Clone, Copy)]
struct Fit {
    norm: f32,
    cos: f64,
}

/// A rotated row's scale, norm and sums before its step is chosen ([`Sq::prefit`]).
#[derive(Debug, Clone, Copy)]
struct Pre {
    /// The [`pow2_scale`] of its largest magnitude.
    s: f32,
    norm: f32,
    /// `Σ a` and `Σ a²` of `a = |v| × s`.
    sum_a: f64,
    sum_aa: f64,
    /// The steps to score (`None`: one bit, or an all-zero row), and which are usable.
    cands: Option<[f32; T_FACTORS.len() + 1]>,
    usable: [bool; T_FACTORS.len() + 1],
}

/// Packs `norm` and `cos` into the factor word; `None` when the norm rounds past f32.
fn factor_word(norm: f32, cos: f64) -> Option<u32> {
    if norm == 0.0 {
        return Some(0);
    }
    let n18 = (norm.to_bits() + (1 << 12)) >> 13;
    if n18 >= 0xff << 10 {
        return None;
    }
    let c = (cos * COS_STEPS).round().clamp(1.0, COS_STEPS) as u32;
    Some((n18 << 14) | c)
}

/// The power of two that brings `max` (finite, at least 0) to `[1, 2)`, kept within
/// `[2^-126, 2^126]` (a normal float32): the magnitudes the encoder fits its grid to are
/// `|v| × pow2_scale(max |v|)`, exact products (unless tiny) of at most 4.
fn pow2_scale(max: f32) -> f32 {
    let e = ((max.to_bits() >> 23) & 0xff) as i32 - 127;
    f32::from_bits(((127 - e.clamp(-126, 126)) as u32) << 23)
}

/// Why a rotated row has no codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowFault {
    /// A value of the rotated row is not finite.
    NotFinite,
    /// The row's norm does not fit a float32.
    TooLarge,
}

/// Bytes of one row's codes.
pub fn code_bytes(dims: usize, bits: u8) -> usize {
    (dims * bits as usize).div_ceil(8)
}

/// Reads `codes.len()` `B`-bit codes from the packed row `packed`.
pub fn unpack(packed: &[u8], bits: u8, codes: &mut [u8]) {
    match bits {
        8 => codes.copy_from_slice(&packed[..codes.len()]),
        4 => {
            for (pair, &b) in codes.chunks_mut(2).zip(packed) {
                pair[0] = b & 15;
                if let Some(hi) = pair.get_mut(1) {
                    *hi = b >> 4;
                }
            }
        }
        _ => {
            let mask = (1u32 << bits) - 1;
            let (mut acc, mut n, mut i) = (0u32, 0u32, 0usize);
            for c in codes.iter_mut() {
                while n < u32::from(bits) {
                    acc |= u32::from(packed[i]) << n;
                    i += 1;
                    n += 8;
                }
                *c = (acc & mask) as u8;
                acc >>= bits;
                n -= u32::from(bits);
            }
        }
    }
}

/// The odd-integer level of code `c` at `bits` bits: `2c + 1 − 2^bits`.
#[inline]
pub fn level(c: u8, bits: u8) -> i32 {
    2 * i32::from(c) + 1 - (1 << bits)
}

/// One packed row's levels as f32 into `out`, and `Σ L²`.
pub fn row_levels(packed: &[u8], bits: u8, codes: &mut [u8], out: &mut [f32]) -> u64 {
    unpack(packed, bits, codes);
    let mut ll = 0u64;
    for (o, &c) in out.iter_mut().zip(codes.iter()) {
        let l = level(c, bits);
        ll += (l * l) as u64;
        *o = l as f32;
    }
    ll
}

/// The encoder's (and the decoder's) per-thread buffers.
struct Scratch {
    v: Vec<f32>,
    /// A second rotated row (rows encoded in pairs).
    w: Vec<f32>,
    codes: Vec<u8>,
}

/// The rotated scalar quantizer.
#[derive(Debug, Clone)]
pub struct Sq {
    dims: usize,
    /// The rotated dimensions: `dims`, plus [`SqParams::pad_dims`] zeros when padded.
    rdims: usize,
    params: SqParams,
    rotation: Rotation,
    /// The mean rows are centred on (`centre=1`).
    centre: Option<Centre>,
}

/// The mean `c` a centred codec subtracts before rotating, and what scoring needs of it.
#[derive(Debug, Clone, PartialEq)]
struct Centre {
    /// `c`, `dims` values.
    mean: Vec<f32>,
    /// `Qc`, the mean in the codes' frame (padded with zeros before rotating when the rows
    /// are).
    rotated: Vec<f32>,
    /// `‖c‖²` (f64 sum of the f32 values' squares).
    norm_sq: f64,
    /// Rows the mean was taken over (informational).
    rows: u64,
}

/// What scoring needs of one stored row besides its levels `L`: the decoded row is
/// `x' = Qᵀ(gain · L) + offset · c` (`offset` 0 without centring), and `norm_sq` is the
/// row's own `‖x‖²` from its factors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowTerms {
    /// `g`, the multiplier of the levels.
    pub gain: f32,
    /// The multiplier of the mean `c` (centred codecs; 0 otherwise).
    pub offset: f32,
    /// `‖x‖²` of the original row, from the stored factors.
    pub norm_sq: f32,
}

thread_local! {
    /// Per-thread scratch: a rotated row, and a row's codes a byte each (decoding).
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch {
        v: Vec::new(),
        w: Vec::new(),
        codes: Vec::new(),
    }) };
}

impl Sq {
    /// The codec for `dims`-dimensional rows, uncentred (`params.centre` is ignored: a
    /// centred codec is made by [`Sq::train`] or [`Sq::with_mean`]).
    pub fn new(dims: usize, params: SqParams) -> Sq {
        Sq {
            dims,
            rdims: dims,
            params: SqParams {
                centre: false,
                pad: false,
                extra: 0,
                ..params
            },
            rotation: Rotation::new(dims, params.rounds, params.seed),
            centre: None,
        }
    }

    /// The centred codec (`centre=1`) whose rows are centred on `mean`, taken over `rows`
    /// rows.
    ///
    /// # Errors
    /// [`Error::Config`] when `mean` is not `dims` finite values.
    pub fn with_mean(dims: usize, params: SqParams, mean: Vec<f32>, rows: u64) -> Result<Sq> {
        if mean.len() != dims || mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::Config(format!(
                "sq: the mean must be {dims} finite values"
            )));
        }
        let mut sq = Sq::new(dims, params);
        sq.params.centre = true;
        sq.params.pad = params.pad;
        sq.params.extra = params.pad_dims();
        sq.rdims = dims + sq.params.pad_dims();
        if sq.rdims != dims {
            sq.rotation = Rotation::new(sq.rdims, params.rounds, params.seed);
        }
        let mut rotated = mean.clone();
        rotated.resize(sq.rdims, 0.0);
        sq.rotation.forward(&mut rotated);
        let norm_sq = mean.iter().map(|&m| f64::from(m) * f64::from(m)).sum();
        sq.centre = Some(Centre {
            mean,
            rotated,
            norm_sq,
            rows,
        });
        Ok(sq)
    }

    /// The centred codec of `params` (`centre=1`), its mean taken over a seeded sample of
    /// `source`'s rows (default [`DEFAULT_CENTRE_ROWS`]; `--train-rows`). Not a learned
    /// codebook: the mean of a sample, what faiss's RaBitQ `train` computes too.
    ///
    /// # Errors
    /// [`Error::Config`] for `--train-rows 0`; errors reading the sample;
    /// [`Error::Cancelled`] once `opts.cancel` is set.
    pub fn train(
        params: &SqParams,
        source: &dyn super::RowSource,
        opts: &super::TrainOptions,
        progress: &dyn crate::progress::Progress,
    ) -> Result<Sq> {
        let d = source.dims();
        let opts = super::TrainOptions {
            train_rows: Some(opts.train_rows.unwrap_or(DEFAULT_CENTRE_ROWS)),
            ..*opts
        };
        let sample = super::codebook::draw_sample(source, &opts, CENTRE_SEED, 1, progress)?;
        let n = sample.len() / d.max(1);
        let mut sum = vec![0f64; d];
        for row in sample.chunks_exact(d.max(1)) {
            sum.iter_mut()
                .zip(row)
                .for_each(|(s, &x)| *s += f64::from(x));
        }
        let mean = sum.iter().map(|s| (s / n.max(1) as f64) as f32).collect();
        Sq::with_mean(d, *params, mean, n as u64)
    }

    /// Builds the codec a container's parameter block describes.
    ///
    /// # Errors
    /// [`Error::Config`] for a bad block.
    pub fn from_params(params: &[u8], dims: usize) -> Result<Sq> {
        let p = SqParams::decode(params, dims)?;
        if !p.centre {
            return Ok(Sq::new(dims, p));
        }
        let mean = (CENTRED_FIXED_LEN..params.len())
            .step_by(4)
            .map(|at| super::read_f32(params, at))
            .collect::<Vec<f32>>();
        if mean.iter().any(|m| !m.is_finite()) {
            return Err(Error::Config(
                "sq parameters: the mean holds a non-finite value".into(),
            ));
        }
        Sq::with_mean(dims, p, mean, LE::read_u64(&params[24..32]))
    }

    /// The parameters.
    pub fn params(&self) -> SqParams {
        self.params
    }

    /// The mean rows are centred on (`centre=1`), `None` otherwise.
    pub fn mean(&self) -> Option<&[f32]> {
        self.centre.as_ref().map(|c| c.mean.as_slice())
    }

    /// Rows the mean was taken over (0 without centring).
    pub fn mean_rows(&self) -> u64 {
        self.centre.as_ref().map_or(0, |c| c.rows)
    }

    /// Bytes of one row's codes.
    pub fn code_bytes(&self) -> usize {
        code_bytes(self.rdims, self.params.bits)
    }

    /// The dimensions the rows are rotated and coded over: [`Codec::dims`], plus the zeros
    /// a padded codec (layout 3) appends. A query scored against the codes is padded alike.
    pub fn rotated_dims(&self) -> usize {
        self.rdims
    }

    /// The terms of stored row `row` (its [`Sq::row_bytes`] bytes) whose levels are
    /// `levels` with `Σ L² = ll` ([`row_levels`]). Centred: `‖x‖² = ‖v‖² + 2<x, c> − ‖c‖²`,
    /// and the offset `κ = (<x, c> − g <L, Qc>) / ‖c‖²` makes the decoded row's component
    /// along `c` the row's own (`<x', c> = <x, c>`).
    pub fn row_terms(&self, row: &[u8], levels: &[f32], ll: u64) -> RowTerms {
        let cb = self.code_bytes();
        let word = LE::read_u32(&row[cb..cb + 4]);
        let (f, rho) = if self.params.pad {
            let p = Packed::from_word(word);
            (p.factors, p.rho)
        } else {
            (Factors::from_word(word), 0.0)
        };
        let gain = f.gain(ll);
        let vv = f64::from(f.norm) * f64::from(f.norm);
        let Some(c) = &self.centre else {
            return RowTerms {
                gain,
                offset: 0.0,
                norm_sq: vv as f32,
            };
        };
        let xc = if self.params.pad {
            c.norm_sq + f64::from(f.norm) * c.norm_sq.sqrt() * rho
        } else {
            f64::from(super::read_f32(row, cb + 4))
        };
        let lq: f64 = levels
            .iter()
            .zip(&c.rotated)
            .map(|(&l, &q)| f64::from(l) * f64::from(q))
            .sum();
        let offset = if c.norm_sq > 0.0 {
            ((xc - f64::from(gain) * lq) / c.norm_sq) as f32
        } else {
            0.0
        };
        RowTerms {
            gain,
            offset,
            norm_sq: (vv + 2.0 * xc - c.norm_sq).max(0.0) as f32,
        }
    }

    /// Bits per dimension.
    pub fn bits(&self) -> u8 {
        self.params.bits
    }

    /// The rotation applied before quantizing.
    pub fn rotation(&self) -> &Rotation {
        &self.rotation
    }

    /// Bytes per encoded row (codes and factors; centred and unpadded, and `<x, c>`).
    pub fn row_bytes(&self) -> usize {
        self.code_bytes()
            + if self.centre.is_some() && !self.params.pad {
                8
            } else {
                4
            }
    }

    /// The row `x`'s `<x, c>` (a centred codec; 0 otherwise): f64 products, product `i`
    /// added to lane `i % 8` in order, the lanes added last, lane 0 first (independent
    /// lanes, which the compiler may run side by side in vector registers without changing
    /// a bit). The centring itself, `x − c`, comes with the rotation's first loads
    /// ([`Rotation::forward_centred`]).
    fn mean_dot(&self, x: &[f32]) -> f64 {
        let Some(c) = &self.centre else {
            return 0.0;
        };
        let mut lanes = [0f64; 8];
        let mut xs = x.chunks_exact(8);
        let mut ms = c.mean.chunks_exact(8);
        for (x, m) in (&mut xs).zip(&mut ms) {
            for ((l, &x), &m) in lanes.iter_mut().zip(x).zip(m) {
                *l += f64::from(x) * f64::from(m);
            }
        }
        for ((l, &x), &m) in lanes.iter_mut().zip(xs.remainder()).zip(ms.remainder()) {
            *l += f64::from(x) * f64::from(m);
        }
        lanes.iter().fold(0.0, |s, &l| s + l)
    }

    /// Writes a row's factor word and, centred, its `<x, c>` after its `cb` code bytes
    /// (padded: the one packed word); `None` when the norm or `<x, c>` does not fit a
    /// float32.
    fn put_factors(&self, o: &mut [u8], cb: usize, fit: Fit, xc: f64) -> Option<()> {
        if let (true, Some(c)) = (self.params.pad, &self.centre) {
            let word = Packed::word(fit.norm, fit.cos, xc - c.norm_sq, c.norm_sq.sqrt());
            o[cb..cb + 4].copy_from_slice(&word.to_le_bytes());
            return Some(());
        }
        let word = factor_word(fit.norm, fit.cos)?;
        o[cb..cb + 4].copy_from_slice(&word.to_le_bytes());
        if self.centre.is_some() {
            let xc = xc as f32;
            if !xc.is_finite() {
                return None;
            }
            o[cb + 4..cb + 8].copy_from_slice(&xc.to_le_bytes());
        }
        Some(())
    }

    /// Chooses the codes of the rotated row `v`, writes them packed into `packed` (the
    /// row's code bytes), and returns its fit. Its
    /// passes run at `level` and give the same bits at every level ([`crate::simd::sq`]):
    /// the largest magnitude and the sums `Σ b`, `Σ b²` (`b = |v|`, or `|v| × s` for a
    /// row outside [`UNSCALED`]), the candidate steps' fits on `a = |v| × s` with `s`
    /// the [`pow2_scale`] of the largest, then the codes. `cos θ` comes from the chosen
    /// step's fit: `<L, a> = 2 Σ m a + Σ a` and `‖L‖² = 4 Σ m(m+1) + n`.
    fn encode_rotated(&self, level: Level, v: &[f32], packed: &mut [u8]) -> Result<Fit, RowFault> {
        let pre = self.prefit(level, v, simd_sq::stats_at(level, v, 1.0))?;
        let fits = pre
            .cands
            .map(|c| simd_sq::grid_fits_at(level, v, pre.s, c, self.top()));
        Ok(self.finish(level, v, &pre, fits, packed))
    }

    /// [`Sq::encode_rotated`] of two rotated rows of the same length, `a` and `b`, with
    /// their sums and fits taken in one pass each ([`simd_sq::stats2_at`],
    /// [`simd_sq::grid_fits2_at`]): the same bits as each row alone.
    fn encode_rotated2(
        &self,
        level: Level,
        a: &[f32],
        b: &[f32],
        pa: &mut [u8],
        pb: &mut [u8],
    ) -> [Result<Fit, RowFault>; 2] {
        let [sa, sb] = simd_sq::stats2_at(level, a, b, 1.0);
        let (pre_a, pre_b) = (self.prefit(level, a, sa), self.prefit(level, b, sb));
        let top = self.top();
        let (fa, fb) = match (&pre_a, &pre_b) {
            (
                Ok(Pre {
                    cands: Some(ca),
                    s: s_a,
                    ..
                }),
                Ok(Pre {
                    cands: Some(cb),
                    s: s_b,
                    ..
                }),
            ) => {
                let [fa, fb] = simd_sq::grid_fits2_at(level, a, b, [*s_a, *s_b], [*ca, *cb], top);
                (Some(fa), Some(fb))
            }
            _ => {
                let one = |v: &[f32], p: &Result<Pre, RowFault>| match p {
                    Ok(p) => p
                        .cands
                        .map(|c| simd_sq::grid_fits_at(level, v, p.s, c, top)),
                    Err(_) => None,
                };
                (one(a, &pre_a), one(b, &pre_b))
            }
        };
        [
            pre_a.map(|p| self.finish(level, a, &p, fa, pa)),
            pre_b.map(|p| self.finish(level, b, &p, fb, pb)),
        ]
    }

    /// Stores row `r`'s factors (its codes are in place) after its `fit`, or names its
    /// fault: `row` is the input row, `v` its rotated (and centred) values, `xc` its
    /// `<x, c>` (0 uncentred).
    fn put_row(
        &self,
        r: usize,
        row: &[f32],
        v: &[f32],
        fit: Result<Fit, RowFault>,
        o: &mut [u8],
        xc: f64,
    ) -> Result<(), EncodeFault> {
        let d = self.dims;
        let too_large = || EncodeFault {
            row: r,
            col: 0,
            msg: "the row's norm does not fit a float32; scale the data down".into(),
        };
        let fit = match fit {
            Ok(fit) => fit,
            Err(RowFault::TooLarge) => return Err(too_large()),
            Err(RowFault::NotFinite) => {
                // The input's own column when it holds the value that is not finite.
                let col = row
                    .iter()
                    .chain(v.iter())
                    .position(|x| !x.is_finite())
                    .unwrap_or(0)
                    % d;
                return Err(EncodeFault {
                    row: r,
                    col,
                    msg: if row.iter().all(|x| x.is_finite()) {
                        "the row is too large to rotate without overflowing float32".into()
                    } else {
                        format!("{} is not a finite number", row[col])
                    },
                });
            }
        };
        self.put_factors(o, self.code_bytes(), fit, xc)
            .ok_or_else(too_large)
    }

    /// The top level's magnitude `2^(B−1) − 1`, as a float.
    fn top(&self) -> f32 {
        ((1u32 << (self.params.bits - 1)) - 1) as f32
    }

    /// What the rotated row `v` with the stats `(max |v|, Σ |v|, Σ v²)` ([`simd_sq::stats_at`]
    /// at scale 1) needs before its step is chosen: its scale, norm and sums, and the
    /// candidate steps to score (at two bits or more, for a row that is not all zeros).
    fn prefit(&self, level: Level, v: &[f32], stats: (f32, f32, f32)) -> Result<Pre, RowFault> {
        let (max_abs, mut sb, mut sbb) = stats;
        let s = pow2_scale(max_abs);
        let mut unit = 1f32;
        if !UNSCALED.contains(&max_abs) {
            (_, sb, sbb) = simd_sq::stats_at(level, v, s);
            unit = s;
        }
        // A NaN or an infinity makes both sums so; a finite row's cannot overflow.
        if !(sb.is_finite() && sbb.is_finite()) {
            return Err(RowFault::NotFinite);
        }
        let norm = (f64::from(sbb).sqrt() / f64::from(unit)) as f32;
        if !norm.is_finite() {
            return Err(RowFault::TooLarge);
        }
        // The sums on a = |v| × s (`s / unit` is a power of two: exact in f64).
        let k = f64::from(s) / f64::from(unit);
        let (sum_a, sum_aa) = (f64::from(sb) * k, f64::from(sbb) * k * k);
        let (cands, usable) = if self.params.bits > 1 && max_abs > 0.0 {
            let (c, u) = self.candidates(v.len(), max_abs * s, sum_aa);
            (Some(c), u)
        } else {
            (None, [false; T_FACTORS.len() + 1])
        };
        Ok(Pre {
            s,
            norm,
            sum_a,
            sum_aa,
            cands,
            usable,
        })
    }

    /// The candidate steps `t` (each a step `1/t` on the magnitudes `a = |v| × s`, largest
    /// `max_a` > 0, `Σ a² = sum_aa`, over `n` values; at two bits or more), an unusable one
    /// (not finite, or not positive) as a stand-in step 1, with which of them are usable.
    fn candidates(
        &self,
        n: usize,
        max_a: f32,
        sum_aa: f64,
    ) -> ([f32; T_FACTORS.len() + 1], [bool; T_FACTORS.len() + 1]) {
        let bits = self.params.bits;
        let half = 1u32 << (bits - 1);
        let rms = (sum_aa / n as f64).sqrt();
        let t0 = (1.0 / (f64::from(GAUSS_STEP[bits as usize]) * rms)) as f32;
        // The step that clips nothing: the largest magnitude lands in the top cell,
        // `[top, top + 1)` (its product is about `half`, which `min` clips to `top`).
        let t_max = half as f32 / max_a;
        let cands: [f32; T_FACTORS.len() + 1] =
            std::array::from_fn(|k| T_FACTORS.get(k).map_or(t_max, |f| f * t0));
        let usable = cands.map(|c| c.is_finite() && c > 0.0);
        // All candidates are scored in one pass (an unusable one as a stand-in, unread).
        (
            std::array::from_fn(|k| if usable[k] { cands[k] } else { 1.0 }),
            usable,
        )
    }

    /// Picks the step among the row's candidates by their `fits` ([`simd_sq::grid_fits_at`];
    /// `None` without candidates: the one-bit or all-zero row, step 0), writes the row's
    /// codes, and returns its fit.
    fn finish(
        &self,
        level: Level,
        v: &[f32],
        pre: &Pre,
        fits: Option<[(f32, f32); T_FACTORS.len() + 1]>,
        packed: &mut [u8],
    ) -> Fit {
        let n = v.len() as f64;
        let (mut t, mut la, mut ll) = (0f32, pre.sum_a, n);
        if let (Some(cands), Some(fits)) = (pre.cands, fits) {
            let mut best = (f64::NEG_INFINITY, 0f32, pre.sum_a, n);
            for ((cand, (ma, mm)), ok) in cands.into_iter().zip(fits).zip(pre.usable) {
                if !ok {
                    continue;
                }
                // <L, a> = 2 Σ m a + Σ a; ‖L‖² = Σ (2m + 1)² = 4 Σ m(m+1) + n.
                let la = 2.0 * f64::from(ma) + pre.sum_a;
                let ll = 4.0 * f64::from(mm) + n;
                let score = la * la / ll;
                if score > best.0 {
                    best = (score, cand, la, ll);
                }
            }
            (t, la, ll) = (best.1, best.2, best.3);
        }
        simd_sq::packed_codes_at(level, v, pre.s, t, self.params.bits, packed);
        let cos = if pre.sum_aa > 0.0 {
            la / (ll.sqrt() * pre.sum_aa.sqrt())
        } else {
            0.0
        };
        Fit {
            norm: pre.norm,
            cos,
        }
    }
}

impl Codec for Sq {
    fn name(&self) -> String {
        self.params.to_string()
    }

    fn spec(&self) -> CodecSpec {
        let mut params = self.params.encode(self.dims);
        if let Some(c) = &self.centre {
            params.extend_from_slice(&(self.dims as u32).to_le_bytes());
            params.extend_from_slice(&c.rows.to_le_bytes());
            params.extend(c.mean.iter().flat_map(|m| m.to_le_bytes()));
        }
        CodecSpec {
            id: CodecId::Sq,
            params,
        }
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn encoded_len(&self, rows: usize) -> usize {
        rows * self.row_bytes()
    }

    fn row_major(&self) -> bool {
        true
    }

    fn rejects_non_finite(&self) -> bool {
        // A NaN or an infinity in a row makes its rotated values (each a sum over its
        // windows) and so its `Σ v²` not finite, which the encoder checks for every row
        // and names by the input's own column.
        true
    }

    fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault> {
        let (d, rb) = (self.dims, self.row_bytes());
        let (cb, rd) = (self.code_bytes(), self.rdims);
        let d1 = d.max(1);
        let level = Level::detect();
        // Rows go two at a time: the rotation reads each row itself (centring it on the
        // mean and padding it with zeros as it loads it), and the pair's sums and fits are
        // taken in one pass each.
        let mean = self.centre.as_ref().map(|c| c.mean.as_slice());
        SCRATCH.with(|s| {
            let mut scratch = s.borrow_mut();
            let Scratch { v, w, .. } = &mut *scratch;
            v.resize(rd, 0.0);
            w.resize(rd, 0.0);
            for (p, (rows, outs)) in input.chunks(2 * d1).zip(out.chunks_mut(2 * rb)).enumerate() {
                let r = 2 * p;
                // The next pair's rows start loading while this pair is encoded: its
                // first reads of a row otherwise wait on memory.
                crate::simd::prefetch_floats(input, (r + 2) * d, (r + 4) * d);
                if rows.len() == 2 * d && outs.len() == 2 * rb {
                    let (xa, xb) = rows.split_at(d);
                    let (oa, ob) = outs.split_at_mut(rb);
                    let (ca, cb2) = (self.mean_dot(xa), self.mean_dot(xb));
                    self.rotation.forward_centred(xa, mean, v);
                    self.rotation.forward_centred(xb, mean, w);
                    let [fa, fb] = self.encode_rotated2(level, v, w, &mut oa[..cb], &mut ob[..cb]);
                    self.put_row(r, xa, v, fa, oa, ca)?;
                    self.put_row(r + 1, xb, w, fb, ob, cb2)?;
                    continue;
                }
                for (k, (row, o)) in rows
                    .chunks_exact(d1)
                    .zip(outs.chunks_exact_mut(rb))
                    .enumerate()
                {
                    let xc = self.mean_dot(row);
                    self.rotation.forward_centred(&row[..d], mean, v);
                    let fit = self.encode_rotated(level, v, &mut o[..cb]);
                    self.put_row(r + k, row, v, fit, o, xc)?;
                }
            }
            Ok(())
        })
    }

    fn decode_row(&self, payload: &[u8], _rows: usize, row: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        let cb = self.code_bytes();
        let r = &payload[row * rb..(row + 1) * rb];
        let out = &mut out[..self.dims];
        let terms = SCRATCH.with(|s| {
            let Scratch { v, codes, .. } = &mut *s.borrow_mut();
            codes.resize(self.rdims, 0);
            let codes = &mut codes[..self.rdims];
            if self.rdims == self.dims {
                let ll = row_levels(&r[..cb], self.params.bits, codes, out);
                let terms = self.row_terms(r, out, ll);
                out.iter_mut().for_each(|x| *x *= terms.gain);
                self.rotation.inverse(out);
                return terms;
            }
            // Padded: the inverse rotation over the rotated dims, whose last ones drop.
            v.resize(self.rdims, 0.0);
            let v = &mut v[..self.rdims];
            let ll = row_levels(&r[..cb], self.params.bits, codes, v);
            let terms = self.row_terms(r, v, ll);
            v.iter_mut().for_each(|x| *x *= terms.gain);
            self.rotation.inverse(v);
            out.copy_from_slice(&v[..self.dims]);
            terms
        });
        if let Some(c) = &self.centre {
            out.iter_mut()
                .zip(&c.mean)
                .for_each(|(x, &m)| *x += terms.offset * m);
        }
    }

    fn prefetch_row(&self, payload: &[u8], _rows: usize, row: usize) {
        crate::simd::prefetch(payload, row * self.row_bytes());
    }

    fn facts(&self) -> Vec<(String, String)> {
        let layout = match (&self.centre, self.params.pad) {
            (None, _) => "1: codes, then a factor word".to_string(),
            (Some(_), false) => "2: codes, a factor word, then the f32 <x, c>".to_string(),
            (Some(_), true) => format!(
                "3: codes of {} rotated dims ({} + {} zeros), then one packed factor word",
                self.rdims,
                self.dims,
                self.rdims - self.dims
            ),
        };
        let mut facts = vec![("layout".to_string(), layout)];
        if let Some(c) = &self.centre {
            facts.push((
                "centred on".into(),
                format!(
                    "the mean of {} sampled rows (not a learned codebook)",
                    c.rows
                ),
            ));
        }
        facts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::harness::round_trip;
    use crate::test_rng::Rng;

    /// The summed squared error of `data` after a round trip through `c`.
    fn squared_error(c: &Sq, data: &[f32]) -> f64 {
        let out = round_trip(c, data);
        data.iter()
            .zip(&out)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum()
    }

    /// A standard normal draw (Box–Muller).
    fn normal(rng: &mut Rng) -> f64 {
        let u1 = (f64::from(rng.centred()) + 0.5).max(1e-12);
        let u2 = f64::from(rng.centred()) + 0.5;
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    fn gaussian(rows: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = Rng(seed);
        (0..rows * d).map(|_| normal(&mut rng) as f32).collect()
    }

    fn sq(d: usize, bits: u8) -> Sq {
        Sq::new(
            d,
            SqParams {
                bits,
                rounds: DEFAULT_ROUNDS,
                seed: DEFAULT_SEED,
                centre: false,
                pad: false,
                extra: 0,
            },
        )
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(*x) * f64::from(*y))
            .sum()
    }

    #[test]
    fn packing_round_trips_at_every_width() {
        for bits in BITS {
            for n in [1usize, 3, 7, 8, 9, 33] {
                let codes: Vec<u8> = (0..n).map(|i| ((i * 37 + 5) % (1 << bits)) as u8).collect();
                let mut packed = vec![0u8; code_bytes(n, bits)];
                simd_sq::pack(&codes, bits, &mut packed);
                let mut back = vec![0u8; n];
                unpack(&packed, bits, &mut back);
                assert_eq!(back, codes, "bits={bits} n={n}");
                // Unused high bits of the last byte are zero.
                let used = n * bits as usize;
                if !used.is_multiple_of(8) {
                    assert_eq!(packed[packed.len() - 1] >> (used % 8), 0, "bits={bits}");
                }
            }
        }
        // 3 bits: code j in bits [3j, 3j+3), least significant first.
        let mut p = [0u8; 2];
        simd_sq::pack(&[1, 2, 3, 4, 5], 3, &mut p);
        assert_eq!(p, [0b1101_0001, 0b0101_1000]);
    }

    #[test]
    fn sizes_are_dense() {
        for (bits, want) in [(1, 52), (2, 100), (3, 148), (4, 196), (8, 388)] {
            assert_eq!(sq(384, bits).row_bytes(), want, "bits={bits}");
        }
    }

    #[test]
    fn round_trip_bounds_at_every_width() {
        let d = 96;
        let data = gaussian(40, d, 3);
        for bits in BITS {
            let c = sq(d, bits);
            let out = round_trip(&c, &data);
            let mut payload = vec![0u8; c.encoded_len(40)];
            c.encode(&data, &mut payload).unwrap();
            let mut cos_sum = 0.0;
            for (r, (x, y)) in data.chunks(d).zip(out.chunks(d)).enumerate() {
                let (xx, xy, yy) = (dot(x, x), dot(x, y), dot(y, y));
                // The decoded row's inner product with its original is ‖x‖² (the
                // unbiased gain), up to the factors' rounding and the rotation's.
                assert!(
                    (xy - xx).abs() <= 2e-3 * xx,
                    "bits={bits} row {r}: {xy} vs {xx}"
                );
                let cos = xy / (xx * yy).sqrt();
                // The stored cos θ is the decoded row's.
                let word = LE::read_u32(&payload[(r + 1) * c.row_bytes() - 4..]);
                let f = Factors::from_word(word);
                assert!(
                    (f.cos - cos).abs() < 1e-3,
                    "bits={bits}: {} vs {cos}",
                    f.cos
                );
                // Bound: the no-clipping step is among the candidates, so
                // sin² θ <= d (max|v| / 2^B)² / ‖v‖² (v the rotated row).
                let mut v = x.to_vec();
                c.rotation.forward(&mut v);
                let max = v.iter().fold(0f32, |m, y| m.max(y.abs())) as f64;
                let top = f64::from(1u32 << bits);
                let sin2 = (d as f64 * (max / top).powi(2) / xx).min(1.0);
                assert!(
                    cos * cos >= 1.0 - sin2 - 1e-4,
                    "bits={bits}: cos {cos}, sin² {sin2}"
                );
                cos_sum += cos;
            }
            // Each width is a real step up on Gaussian rows.
            let mean = cos_sum / 40.0;
            let floor = [0.0, 0.79, 0.93, 0.98, 0.994, 0.998, 0.9995, 0.9998, 0.99995];
            assert!(mean >= floor[bits as usize], "bits={bits}: mean cos {mean}");
        }
    }

    #[test]
    fn groups_encode_the_bits_of_row_after_row() {
        // 27 rows of 100 dims: three groups of eight and a tail of three, with a zero row,
        // a tiny row and an outlier among the grouped ones.
        let (d, n) = (100, 27);
        let mut data = gaussian(n, d, 5);
        data[d..2 * d].fill(0.0);
        data[2 * d..3 * d].iter_mut().for_each(|x| *x *= 1e-30);
        data[5 * d + 7] = 40.0;
        for bits in BITS {
            let c = sq(d, bits);
            let rb = c.row_bytes();
            let mut grouped = vec![0u8; c.encoded_len(n)];
            c.encode(&data, &mut grouped).unwrap();
            let mut single = vec![0u8; c.encoded_len(n)];
            for (r, row) in data.chunks(d).enumerate() {
                c.encode(row, &mut single[r * rb..(r + 1) * rb]).unwrap();
            }
            assert_eq!(grouped, single, "bits={bits}");
        }
        // A fault inside a group names its row.
        let mut bad = data.clone();
        bad[9 * d + 3] = f32::NAN;
        let c = sq(d, 3);
        let mut out = vec![0u8; c.encoded_len(n)];
        let f = c.encode(&bad, &mut out).unwrap_err();
        assert_eq!((f.row, f.col), (9, 3));
        // The first row of a pair too.
        let mut bad = data.clone();
        bad[8 * d + 5] = f32::INFINITY;
        let f = c.encode(&bad, &mut out).unwrap_err();
        assert_eq!((f.row, f.col), (8, 5));
        let mut big = data.clone();
        big[13 * d..14 * d].fill(3e38);
        let f = c.encode(&big, &mut out).unwrap_err();
        assert_eq!(f.row, 13);
        assert!(f.msg.contains("too large to rotate"), "{}", f.msg);
    }

    #[test]
    fn every_row_encodes_as_the_scalar_reference_does() {
        // The encoder at this CPU's level (rows in pairs, the rotation reading each row
        // itself, centring and padding it as it loads it) against the scalar kernels a row
        // at a time on the row written out (`x − c`, then the zeros): random rows of several
        // lengths, with a zero row, a tiny row, a huge row and an outlier among them;
        // uncentred, centred, padded (the default zeros and `extra=N`, some making the
        // rotated row's first window longer than the row).
        for (d, n, seed) in [
            (384usize, 41usize, 11u64),
            (100, 9, 12),
            (256, 6, 13),
            (1000, 5, 14),
            (16, 7, 15),
        ] {
            let mut data = gaussian(n, d, seed);
            data[d..2 * d].fill(0.0);
            data[2 * d..3 * d].iter_mut().for_each(|x| *x *= 1e-30);
            data[3 * d..4 * d].iter_mut().for_each(|x| *x *= 1e30);
            data[4 * d + 7] = 40.0;
            let mean: Vec<f32> = gaussian(1, d, seed + 100)
                .iter()
                .enumerate()
                .map(|(i, x)| 0.3 * x + 0.5 + (i % 5) as f32 * 0.1)
                .collect();
            // (centre, pad, extra); extra 0 is the width's default.
            let layouts = [
                (false, false, 0usize),
                (true, false, 0),
                (true, true, 0),
                (true, true, 60),
                (true, true, 32),
                (true, true, 1),
                (true, true, 300),
            ];
            for bits in BITS {
                for (centre, pad, extra) in layouts {
                    let c = if centre {
                        let p = SqParams {
                            centre,
                            pad,
                            extra: if extra == 0 { pad_dims(bits) } else { extra },
                            ..sq(d, bits).params
                        };
                        Sq::with_mean(d, p, mean.clone(), 1).unwrap()
                    } else {
                        sq(d, bits)
                    };
                    let (rb, cb, rd) = (c.row_bytes(), c.code_bytes(), c.rotated_dims());
                    assert_eq!(rd > d, pad);
                    let mut got = vec![0u8; c.encoded_len(n)];
                    c.encode(&data, &mut got).unwrap();
                    let mut want = vec![0x5au8; c.encoded_len(n)];
                    let rot = c.rotation();
                    for (r, (row, o)) in data.chunks(d).zip(want.chunks_mut(rb)).enumerate() {
                        let mut v = vec![0f32; rd];
                        let mut lanes = [0f64; 8];
                        for (i, &x) in row.iter().enumerate() {
                            v[i] = if centre { x - mean[i] } else { x };
                            if centre {
                                lanes[i % 8] += f64::from(x) * f64::from(mean[i]);
                            }
                        }
                        let xc = lanes.iter().fold(0.0, |s, &l| s + l);
                        crate::simd::rotate::forward_scalar(rot.signs(), rot.window(), &mut v);
                        let fit = c.encode_rotated(Level::Scalar, &v, &mut o[..cb]);
                        c.put_row(r, row, &v, fit, o, xc).unwrap();
                    }
                    assert_eq!(got, want, "d={d} bits={bits} {}", c.params());
                }
            }
        }
    }

    #[test]
    fn zero_and_tiny_rows() {
        let c = sq(5, 3);
        let data = [0f32, 0.0, -0.0, 0.0, 0.0, 1e-30, -2e-30, 3e-30, 0.0, 1e-30];
        let out = round_trip(&c, &data);
        assert!(out[..5].iter().all(|&x| x == 0.0));
        assert!(out[5..].iter().all(|x| x.is_finite() && x.abs() < 1e-29));
        let big = [3e38f32; 5];
        let mut p = vec![0u8; c.encoded_len(1)];
        assert!(c.encode(&big, &mut p).is_err());
    }

    #[test]
    fn the_estimator_is_unbiased_and_the_least_squares_scale_is_not() {
        // Over many random row/query pairs the mean error of <x', q> is within a few
        // standard errors of 0; the least-squares reconstruction (g × cos² θ) is biased
        // toward 0 by far more than that at low widths.
        let (d, n) = (64, 4000);
        let rows = gaussian(n, d, 11);
        let mut rng = Rng(12);
        for bits in [1u8, 2, 3] {
            let c = sq(d, bits);
            let mut payload = vec![0u8; c.encoded_len(n)];
            c.encode(&rows, &mut payload).unwrap();
            let mut dec = vec![0f32; n * d];
            c.decode(&payload, n, &mut dec);
            let (mut sum, mut sum2, mut ls_sum) = (0f64, 0f64, 0f64);
            for (r, (x, y)) in rows.chunks(d).zip(dec.chunks(d)).enumerate() {
                // A query correlated with the row, as near neighbours are.
                let q: Vec<f32> = x.iter().map(|&v| v + normal(&mut rng) as f32).collect();
                let truth = dot(x, &q);
                let e = dot(y, &q) - truth;
                sum += e;
                sum2 += e * e;
                let f = Factors::from_word(LE::read_u32(&payload[(r + 1) * c.row_bytes() - 4..]));
                ls_sum += dot(y, &q) * f.cos * f.cos - truth;
            }
            let mean = sum / n as f64;
            let se = ((sum2 / n as f64 - mean * mean) / n as f64).sqrt();
            assert!(
                mean.abs() <= 4.0 * se,
                "bits={bits}: mean error {mean}, se {se}"
            );
            let ls_mean = ls_sum / n as f64;
            if bits <= 2 {
                assert!(
                    ls_mean.abs() > 10.0 * se,
                    "bits={bits}: ls bias {ls_mean}, se {se}"
                );
            }
        }
    }

    /// A centred codec on `data` (its own mean, over all its rows).
    fn centred(d: usize, bits: u8, data: &[f32]) -> Sq {
        let src = crate::codec::codebook::MemRows::new(data.to_vec(), d);
        let p = SqParams {
            centre: true,
            ..sq(d, bits).params
        };
        let opts = crate::codec::TrainOptions::default();
        Sq::train(&p, &src, &opts, &crate::progress::NoProgress).unwrap()
    }

    /// Gaussian rows around a common offset, as embeddings share a mean direction.
    fn offset_rows(rows: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut x = gaussian(rows, d, seed);
        for row in x.chunks_mut(d) {
            row.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = 0.5 * *v + 1.0 + (i % 7) as f32 * 0.3);
        }
        x
    }

    #[test]
    fn centred_rows_decode_along_the_mean_exactly_and_group_as_row_by_row() {
        let (d, n) = (100, 23);
        let mut data = offset_rows(n, d, 21);
        data[d..2 * d].fill(0.0);
        for bits in [1u8, 2, 3, 4, 8] {
            let c = centred(d, bits, &data);
            assert_eq!(c.row_bytes(), code_bytes(d, bits) + 8);
            assert_eq!(c.mean_rows(), n as u64);
            let mean = c.mean().unwrap().to_vec();
            let out = round_trip(&c, &data);
            let mut payload = vec![0u8; c.encoded_len(n)];
            c.encode(&data, &mut payload).unwrap();
            let rb = c.row_bytes();
            let mut single = vec![0u8; c.encoded_len(n)];
            for (r, row) in data.chunks(d).enumerate() {
                c.encode(row, &mut single[r * rb..(r + 1) * rb]).unwrap();
            }
            assert_eq!(payload, single, "bits={bits}");
            let cc = dot(&mean, &mean);
            for (r, (x, y)) in data.chunks(d).zip(out.chunks(d)).enumerate() {
                // The decoded row's component along the mean is the row's own.
                let (xc, yc) = (dot(x, &mean), dot(y, &mean));
                assert!(
                    (xc - yc).abs() <= 1e-4 * cc,
                    "bits={bits} row {r}: {yc} vs {xc}"
                );
                // The stored terms give the row's own norm.
                let row = &payload[r * rb..(r + 1) * rb];
                let (mut codes, mut lv) = (vec![0u8; d], vec![0f32; d]);
                let ll = row_levels(&row[..code_bytes(d, bits)], bits, &mut codes, &mut lv);
                let t = c.row_terms(row, &lv, ll);
                let xx = dot(x, x);
                assert!(
                    (f64::from(t.norm_sq) - xx).abs() <= 2e-3 * xx.max(cc),
                    "bits={bits} row {r}: {} vs {xx}",
                    t.norm_sq
                );
                // The error is at most that of the centred row's codes, whose cosine with
                // it is above 0.7 at every width on these rows (tan² θ < 1).
                let e: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
                let xm: f64 = x
                    .iter()
                    .zip(&mean)
                    .map(|(a, m)| f64::from(a - m).powi(2))
                    .sum();
                assert!(e <= xm, "bits={bits} row {r}: error {e} vs {xm}");
            }
            // The block carries the mean: the codec read back is the same codec.
            let back = Sq::from_params(&c.spec().params, d).unwrap();
            assert_eq!(back.spec(), c.spec());
            assert_eq!(back.mean(), c.mean());
            assert_eq!(round_trip(&back, &data), out);
        }
    }

    #[test]
    fn centring_helps_rows_that_share_a_mean() {
        // Rows far from the origin: the uncentred codes spend their bits on the shared
        // offset, the centred ones on what tells the rows apart.
        let (d, n) = (64, 400);
        let data = offset_rows(n, d, 22);
        for bits in [1u8, 2] {
            let err = |c: &Sq| squared_error(c, &data);
            let (plain, cent) = (err(&sq(d, bits)), err(&centred(d, bits, &data)));
            assert!(cent < 0.5 * plain, "bits={bits}: {cent} vs {plain}");
        }
    }

    #[test]
    fn centred_faults_name_the_row() {
        let (d, n) = (16, 9);
        let data = offset_rows(n, d, 23);
        let c = centred(d, 1, &data);
        let mut bad = data.clone();
        bad[5 * d + 2] = f32::INFINITY;
        let mut out = vec![0u8; c.encoded_len(n)];
        let f = c.encode(&bad, &mut out).unwrap_err();
        assert_eq!((f.row, f.col), (5, 2));
        assert!(f.msg.contains("inf is not a finite number"), "{}", f.msg);
        // <x, c> past float32 with a norm that fits.
        let mut big = data.clone();
        big[6 * d..7 * d].fill(3e37);
        let f = c.encode(&big, &mut out).unwrap_err();
        assert_eq!(f.row, 6, "{}", f.msg);
        // A block whose mean is not finite, or for another dimension, is refused.
        let mut p = c.spec().params;
        assert!(Sq::from_params(&p, d + 1).is_err());
        let at = CENTRED_FIXED_LEN + 4;
        p[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Sq::from_params(&p, d).is_err());
    }

    #[test]
    fn params_round_trip_and_corrupt_blocks_are_refused() {
        let p = SqParams::parse("bits=3,seed=9").unwrap();
        assert_eq!(p.to_string(), "sq:bits=3,seed=9");
        let b = p.encode(384);
        assert_eq!(SqParams::decode(&b, 384).unwrap(), p);
        assert!(
            SqParams::decode(&b, 200).is_err(),
            "window checked against dims"
        );
        for (i, v) in [(0usize, 2u8), (1, 0), (1, 9), (2, 1), (4, 0), (4, 99)] {
            let mut bad = b.clone();
            bad[i] = v;
            assert!(SqParams::decode(&bad, 384).is_err(), "byte {i} = {v}");
        }
        assert!(SqParams::decode(&b[..19], 384).is_err());
        let p = SqParams::parse("centre=1,bits=1").unwrap();
        assert_eq!(p.to_string(), "sq:bits=1,centre=1");
        assert_eq!(
            SqParams::parse("bits=1,centre=0").unwrap().to_string(),
            "sq:bits=1"
        );
        for bad in ["bits=1,centre=2", "bits=1,centre=yes", "bits=1,centre="] {
            let e = SqParams::parse(bad).unwrap_err().to_string();
            assert!(e.contains("sq: centre must be 0 or 1"), "{bad}: {e}");
        }
        // A layout-2 block must carry the mean: its first 20 bytes alone are refused.
        assert!(SqParams::decode(&p.encode(384), 384).is_err());
    }

    #[test]
    fn pad_is_the_default_at_one_centred_bit_and_spelled_otherwise() {
        for (text, pad, shortest) in [
            ("bits=1,centre=1", true, "sq:bits=1,centre=1"),
            ("bits=1,centre=1,pad=1", true, "sq:bits=1,centre=1"),
            ("bits=1,centre=1,pad=0", false, "sq:bits=1,centre=1,pad=0"),
            ("bits=3,centre=1", false, "sq:bits=3,centre=1"),
            ("pad=1,bits=3,centre=1", true, "sq:bits=3,centre=1,pad=1"),
            ("bits=1", false, "sq:bits=1"),
            ("bits=1,pad=0", false, "sq:bits=1"),
        ] {
            let p = SqParams::parse(text).unwrap();
            assert_eq!((p.pad, p.to_string().as_str()), (pad, shortest), "{text}");
            assert_eq!(SqParams::parse(&shortest[3..]).unwrap(), p, "{shortest}");
        }
        let e = SqParams::parse("bits=1,pad=1").unwrap_err().to_string();
        assert!(e.contains("pad=1 needs centre=1"), "{e}");
        let e = SqParams::parse("bits=1,centre=1,pad=2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sq: pad must be 0 or 1"), "{e}");
        assert_eq!(pad_dims(1), 32);
        assert_eq!(pad_dims(3), 10);
        assert_eq!(pad_dims(8), 4);
    }

    #[test]
    fn extra_spells_the_padding_and_bad_values_name_the_key() {
        for (text, extra, shortest) in [
            (
                "bits=2,centre=1,extra=60",
                60,
                "sq:bits=2,centre=1,extra=60",
            ),
            (
                "bits=2,centre=1,pad=1,extra=60",
                60,
                "sq:bits=2,centre=1,extra=60",
            ),
            ("bits=2,centre=1,extra=16", 16, "sq:bits=2,centre=1,pad=1"),
            ("bits=1,centre=1,extra=32", 32, "sq:bits=1,centre=1"),
            (
                "bits=1,centre=1,extra=4096",
                4096,
                "sq:bits=1,centre=1,extra=4096",
            ),
            (
                "extra=1,bits=3,centre=1,seed=4",
                1,
                "sq:bits=3,centre=1,extra=1,seed=4",
            ),
        ] {
            let p = SqParams::parse(text).unwrap();
            assert!(p.pad, "{text}");
            assert_eq!((p.extra, p.pad_dims()), (extra, extra), "{text}");
            assert_eq!(p.to_string(), shortest, "{text}");
            assert_eq!(SqParams::parse(&shortest[3..]).unwrap(), p, "{shortest}");
        }
        for (bad, says) in [
            ("bits=2,centre=1,extra=0", "sq: extra must be 1 to 4096"),
            ("bits=2,centre=1,extra=4097", "sq: extra must be 1 to 4096"),
            ("bits=2,centre=1,extra=-3", "sq: extra must be 1 to 4096"),
            ("bits=2,centre=1,extra=ten", "sq: extra must be 1 to 4096"),
            ("bits=2,centre=1,extra=", "sq: extra must be 1 to 4096"),
            ("bits=2,extra=60", "sq: extra=N needs centre=1"),
            ("bits=2,centre=1,pad=0,extra=60", "does not go with pad=0"),
        ] {
            let e = SqParams::parse(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn extra_coordinates_cost_their_codes_and_round_trip_through_the_block() {
        let (d, n) = (40, 30);
        let data = offset_rows(n, d, 33);
        for (bits, extra) in [(2u8, 60usize), (3, 40), (3, 21), (1, 1)] {
            let c = padded_by(d, bits, extra, &data);
            assert_eq!(c.rotated_dims(), d + extra);
            assert_eq!(c.row_bytes(), code_bytes(d + extra, bits) + 4);
            let block = c.spec().params;
            assert_eq!(
                (block[0], usize::from(LE::read_u16(&block[2..4]))),
                (3, extra)
            );
            assert_eq!(
                LE::read_u32(&block[8..12]) as usize,
                rotate::window_for(d + extra)
            );
            let back = Sq::from_params(&block, d).unwrap();
            assert_eq!(back.params(), c.params());
            assert_eq!(back.params().to_string(), c.params().to_string());
            assert_eq!(round_trip(&back, &data), round_trip(&c, &data));
            // At least as many extra coordinates as the row has (twice the codes or more)
            // decode closer than the default padding does.
            let err = |c: &Sq| squared_error(c, &data);
            let base = padded(d, bits, &data);
            if extra >= d {
                assert!(
                    err(&c) < err(&base),
                    "bits={bits} extra={extra}: {} vs {}",
                    err(&c),
                    err(&base)
                );
            }
        }
    }

    /// A padded centred codec (layout 3) on `data` (its own mean, over all its rows).
    fn padded(d: usize, bits: u8, data: &[f32]) -> Sq {
        padded_by(d, bits, pad_dims(bits), data)
    }

    /// A centred codec on `data` padded with `extra` zero coordinates.
    fn padded_by(d: usize, bits: u8, extra: usize, data: &[f32]) -> Sq {
        let src = crate::codec::codebook::MemRows::new(data.to_vec(), d);
        let p = SqParams {
            centre: true,
            pad: true,
            extra,
            ..sq(d, bits).params
        };
        let opts = crate::codec::TrainOptions::default();
        Sq::train(&p, &src, &opts, &crate::progress::NoProgress).unwrap()
    }

    #[test]
    fn padded_blocks_round_trip_and_bad_ones_are_refused() {
        let data = offset_rows(20, 24, 30);
        let c = padded(24, 1, &data);
        let block = c.spec().params;
        assert_eq!(block.len(), CENTRED_FIXED_LEN + 4 * 24);
        assert_eq!(block[0], 3);
        assert_eq!(LE::read_u16(&block[2..4]), 32);
        assert_eq!(
            LE::read_u32(&block[8..12]),
            32,
            "the window of 24 + 32 dims"
        );
        let back = Sq::from_params(&block, 24).unwrap();
        assert_eq!((back.params(), back.rotated_dims()), (c.params(), 56));
        assert_eq!(round_trip(&back, &data), round_trip(&c, &data));
        // No padding, more than MAX_EXTRA (8224), a window not of 24 + 32, an unknown layout.
        for (i, v) in [(2usize, 0u8), (3, 32), (8, 16), (0, 4)] {
            let mut bad = block.clone();
            bad[i] = v;
            if i == 2 {
                bad[3] = 0;
            }
            assert!(Sq::from_params(&bad, 24).is_err(), "byte {i} = {v}");
        }
        // Layout 2 keeps its bytes: no padding count, the window of the dims.
        let mut p2 = c.params();
        p2.pad = false;
        let old = p2.encode(24);
        assert_eq!(
            (old[0], &old[2..4], LE::read_u32(&old[8..12])),
            (2, &[0u8, 0][..], 16)
        );
    }

    #[test]
    fn padded_rows_keep_the_bytes_and_decode_along_the_mean() {
        let (d, n) = (100, 23);
        let mut data = offset_rows(n, d, 31);
        data[d..2 * d].fill(0.0);
        for bits in BITS {
            let c = padded(d, bits, &data);
            let p = pad_dims(bits);
            assert_eq!(c.rotated_dims(), d + p);
            assert_eq!(c.row_bytes(), code_bytes(d + p, bits) + 4);
            assert!(c.row_bytes() <= code_bytes(d, bits) + 8, "bits={bits}");
            let mean = c.mean().unwrap().to_vec();
            let cc = dot(&mean, &mean);
            let out = round_trip(&c, &data);
            let rb = c.row_bytes();
            let mut payload = vec![0u8; c.encoded_len(n)];
            c.encode(&data, &mut payload).unwrap();
            let mut single = vec![0u8; c.encoded_len(n)];
            for (r, row) in data.chunks(d).enumerate() {
                c.encode(row, &mut single[r * rb..(r + 1) * rb]).unwrap();
            }
            assert_eq!(payload, single, "bits={bits}");
            for (r, (x, y)) in data.chunks(d).zip(out.chunks(d)).enumerate() {
                let xm: f64 = x
                    .iter()
                    .zip(&mean)
                    .map(|(a, m)| f64::from(a - m).powi(2))
                    .sum();
                // <x', c> is <x, c> up to the 10-bit cosine ρ (and float rounding).
                let (xc, yc) = (dot(x, &mean), dot(y, &mean));
                let tol = (xm * cc).sqrt() / 1000.0 + 1e-4 * cc;
                assert!((xc - yc).abs() <= tol, "bits={bits} row {r}: {yc} vs {xc}");
                // The stored terms give the row's norm up to the 7-bit ‖v‖.
                let row = &payload[r * rb..(r + 1) * rb];
                let (mut codes, mut lv) = (vec![0u8; d + p], vec![0f32; d + p]);
                let ll = row_levels(&row[..c.code_bytes()], bits, &mut codes, &mut lv);
                let t = c.row_terms(row, &lv, ll);
                let xx = dot(x, x);
                assert!(
                    (f64::from(t.norm_sq) - xx).abs() <= 0.016 * xm + 2.0 * tol + 1e-3 * xx,
                    "bits={bits} row {r}: {} vs {xx}",
                    t.norm_sq
                );
                // The error is at most that of the centred row's codes (tan² θ < 1 on these
                // rows), with the factors' rounding.
                let e: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
                assert!(e <= 1.05 * xm, "bits={bits} row {r}: error {e} vs {xm}");
            }
        }
    }

    #[test]
    fn padded_extreme_rows_decode_finite_and_sane() {
        let (d, n) = (64, 40);
        let data = offset_rows(n, d, 41);
        let c = padded(d, 1, &data);
        let mean = c.mean().unwrap().to_vec();
        let cc = dot(&mean, &mean);
        let mut rows = vec![0f32; d]; // the zero row
        rows.extend(&mean); // the mean itself: v = 0
        rows.extend(data[..d].iter().map(|x| x * 1e17)); // a huge norm, its square in f32
        rows.extend(data[d..2 * d].iter().map(|x| x * 1e-30)); // a tiny one
        let out = round_trip(&c, &rows);
        assert!(out.iter().all(|y| y.is_finite()));
        let mut payload = vec![0u8; c.encoded_len(4)];
        c.encode(&rows, &mut payload).unwrap();
        let rb = c.row_bytes();
        for (r, (x, y)) in rows.chunks(d).zip(out.chunks(d)).enumerate() {
            let row = &payload[r * rb..(r + 1) * rb];
            let (mut codes, mut lv) = (vec![0u8; d + 32], vec![0f32; d + 32]);
            let ll = row_levels(&row[..c.code_bytes()], 1, &mut codes, &mut lv);
            let t = c.row_terms(row, &lv, ll);
            assert!(
                t.gain.is_finite() && t.offset.is_finite() && t.norm_sq.is_finite(),
                "row {r}: {t:?}"
            );
            let xx = dot(x, x);
            let e: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
            match r {
                // The mean decodes to itself: g = 0 and κ = 1.
                1 => {
                    assert_eq!(y, &mean[..], "the mean row");
                    assert_eq!(t.gain, 0.0);
                }
                // Near the origin, x − c ≈ −c: an error of at most ‖c‖² (tan² θ < 1).
                0 | 3 => {
                    assert!(e <= 1.05 * cc, "row {r}: error {e}, ‖c‖² {cc}");
                    assert!(f64::from(t.norm_sq) <= 0.05 * cc, "row {r}: {t:?}");
                }
                // Far from the mean: the codes of x itself, and its norm.
                _ => {
                    let cos = dot(x, y) / (xx * dot(y, y)).sqrt();
                    assert!(cos > 0.6, "huge row: cos {cos}");
                    let rel = (f64::from(t.norm_sq) - xx).abs() / xx;
                    assert!(rel < 0.02, "huge row: norm² {} vs {xx}", t.norm_sq);
                }
            }
        }
    }

    #[test]
    fn the_packed_word_rounds_and_clamps() {
        let p = Packed::from_word(Packed::word(1.0, 0.8, 0.25, 1.0));
        assert_eq!(p.factors.norm, 1.0);
        assert!((p.factors.cos - 0.8).abs() <= 0.5 / 255.0 + 1e-12);
        assert!((p.rho - 0.25).abs() <= 0.5 / 511.0 + 1e-12);
        // ‖v‖ to 7 significant bits, subnormal or large.
        for x in [3.3e-7f32, 1.0, 7.77, 1e20, 3e38] {
            let n = Packed::from_word(Packed::word(x, 0.5, 0.0, 1.0))
                .factors
                .norm;
            assert!(((n - x) / x).abs() <= 1.0 / 128.0, "{x}: {n}");
        }
        let n = Packed::from_word(Packed::word(1e-40, 0.5, 0.0, 1.0))
            .factors
            .norm;
        assert!(n > 0.0 && n < 2e-40, "a subnormal norm: {n}");
        // A norm that rounds past float32 clamps to the largest finite one.
        let n = Packed::from_word(Packed::word(f32::MAX, 0.5, 0.0, 1.0))
            .factors
            .norm;
        assert!(n.is_finite() && n > 3.3e38, "{n}");
        // cos θ to [1, 255] steps; ρ to [−1, 1]; both 0 without a norm or a mean.
        let p = Packed::from_word(Packed::word(2.0, 1.5, 9.0, 1.0));
        assert_eq!((p.factors.cos, p.rho), (1.0, 1.0));
        let p = Packed::from_word(Packed::word(2.0, 1e-9, -9.0, 1.0));
        assert_eq!((p.factors.cos, p.rho), (1.0 / 255.0, -1.0));
        assert_eq!(Packed::word(0.0, 0.7, 3.0, 1.0), 511);
        assert_eq!(Packed::from_word(Packed::word(2.0, 0.7, 3.0, 0.0)).rho, 0.0);
        // Every word decodes to finite fields in range.
        for w in (0..=u32::MAX).step_by(65_537).chain([u32::MAX]) {
            let p = Packed::from_word(w);
            assert!(p.factors.norm.is_finite() || (w >> 18) >= 0x3fc0, "{w:#x}");
            assert!((0.0..=1.0).contains(&p.factors.cos) && (-1.0..=1.0).contains(&p.rho));
        }
    }
}
