//! The parameter block shared by the quantizing codecs (int8, int4, binary), and the parser
//! for `--codec NAME:key=value,...`.
//!
//! On disk the block is empty (every default: no rotation, the codec's default scale rule,
//! which is what format 1.0 int8 files hold) or exactly [`QUANT_PARAMS_LEN`] bytes:
//!
//! ```text
//! 0  u8   layout, 1
//! 1  u8   scale rule: 0 = the codec's default, 1 = max (int4: exactly max|v|/7),
//!         2 = gauss (int4: Lloyd–Max levels for a Gaussian; changes decoding)
//! 2  u16  reserved, 0
//! 4  u32  rotation rounds R (0 = no rotation)
//! 8  u32  rotation window w (0 without rotation; else the largest power of two <= dims)
//! 12 u64  rotation seed (0 without rotation)
//! ```

use byteorder::{ByteOrder, LittleEndian as LE};

use super::rotate::{self, DEFAULT_ROUNDS, DEFAULT_SEED, MAX_ROUNDS};
use crate::error::{Error, Result};

/// Bytes of a non-empty quantizer parameter block.
pub const QUANT_PARAMS_LEN: usize = 20;

/// How a quantizer picks each row's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleRule {
    /// The codec's default (int8: `max|v|/127`; int4: least-squares fit; binary: `mean|v|`).
    #[default]
    Default,
    /// int4 only: exactly `max|v|/7`, never clipping.
    Max,
    /// int4 only: codes index the Lloyd–Max levels of a unit Gaussian instead of a uniform
    /// grid (the right grid for rotated, hence near-Gaussian, coordinates).
    Gauss,
}

/// The rotation a quantizer applies first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationSpec {
    /// Rounds of sign flips and Hadamard transforms.
    pub rounds: u32,
    /// Seed of the sign flips.
    pub seed: u64,
}

/// Parameters of a quantizing codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuantParams {
    /// How each row's scale is chosen.
    pub scale: ScaleRule,
    /// The rotation, if any.
    pub rotation: Option<RotationSpec>,
}

impl QuantParams {
    /// The on-disk block: empty when everything is default.
    pub fn encode(&self, dims: usize) -> Vec<u8> {
        if *self == QuantParams::default() {
            return Vec::new();
        }
        let mut b = vec![0u8; QUANT_PARAMS_LEN];
        b[0] = 1;
        b[1] = match self.scale {
            ScaleRule::Default => 0,
            ScaleRule::Max => 1,
            ScaleRule::Gauss => 2,
        };
        if let Some(r) = self.rotation {
            LE::write_u32(&mut b[4..8], r.rounds);
            LE::write_u32(&mut b[8..12], rotate::window_for(dims) as u32);
            LE::write_u64(&mut b[12..20], r.seed);
        }
        b
    }

    /// Parses and checks an on-disk block for a `dims`-dimensional codec named `name`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field that is wrong.
    pub fn decode(name: &str, bytes: &[u8], dims: usize) -> Result<QuantParams> {
        if bytes.is_empty() {
            return Ok(QuantParams::default());
        }
        let bad = |what: String| Err(Error::Config(format!("{name} parameters: {what}")));
        if bytes.len() != QUANT_PARAMS_LEN {
            return bad(format!(
                "{} bytes, expected 0 or {QUANT_PARAMS_LEN}",
                bytes.len()
            ));
        }
        if bytes[0] != 1 || bytes[2..4] != [0, 0] {
            return bad(format!(
                "unknown layout {} (written by a newer vectro? upgrade vectro)",
                bytes[0]
            ));
        }
        let scale = match bytes[1] {
            0 => ScaleRule::Default,
            1 => ScaleRule::Max,
            2 => ScaleRule::Gauss,
            s => return bad(format!("unknown scale rule {s}")),
        };
        let rounds = LE::read_u32(&bytes[4..8]);
        let window = LE::read_u32(&bytes[8..12]) as usize;
        let seed = LE::read_u64(&bytes[12..20]);
        let rotation = match rounds {
            0 if window == 0 && seed == 0 => None,
            0 => return bad("rotation window or seed without rounds".into()),
            r if r > MAX_ROUNDS => {
                return bad(format!("{r} rotation rounds (at most {MAX_ROUNDS})"));
            }
            r if window != rotate::window_for(dims) => {
                return bad(format!(
                    "rotation window {window} for {dims} dims (expected {}), {r} rounds",
                    rotate::window_for(dims)
                ));
            }
            rounds => Some(RotationSpec { rounds, seed }),
        };
        Ok(QuantParams { scale, rotation })
    }
}

/// Splits the `key=value,...` part of a codec string (`--codec NAME:key=value,...`) into
/// pairs, checking that each key is one of `keys` and given once: the one key=value parser
/// of every codec, so every codec's message has the same style.
///
/// # Errors
/// [`Error::Config`] for a pair without `=`, a key given twice, or a key not in `keys`
/// (the message lists the valid ones).
pub fn key_values<'a>(name: &str, text: &'a str, keys: &[&str]) -> Result<Vec<(&'a str, &'a str)>> {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for kv in text.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            let example = match keys.first() {
                Some(&"m") => format!("{name}:m=48"),
                Some(&"rotate") => format!("{name}:rotate=1"),
                Some(&"bits") => format!("{name}:bits=4"),
                _ => format!("just {name}"),
            };
            Error::Config(format!(
                "{name}: expected key=value, got '{kv}' (e.g. {example})"
            ))
        })?;
        if pairs.iter().any(|&(seen, _)| seen == k) {
            // `int4:seed=1,seed=2` silently took the last value.
            return Err(Error::Config(format!("{name}: '{k}' is given twice")));
        }
        if !keys.contains(&k) {
            return Err(Error::Config(format!(
                "{name}: unknown parameter '{k}'; valid: {}",
                if keys.is_empty() {
                    "none".to_string()
                } else {
                    keys.join(", ")
                }
            )));
        }
        pairs.push((k, v));
    }
    Ok(pairs)
}

/// Parses the `key=value,...` part of `--codec int4:rotate=1,seed=9` for codec `name`, which
/// accepts the keys in `keys` (a subset of `rotate`, `seed`, `rounds`, `scale`, `grid`).
///
/// A codec that takes `grid` (int4) defaults to `grid=gauss` when rotated and to the
/// uniform grid otherwise: rotated coordinates are near-Gaussian, which is what the
/// Lloyd–Max levels are optimal for.
///
/// # Errors
/// [`Error::Config`] naming the key or value that is wrong and listing the valid ones.
pub fn parse_quant(name: &str, text: &str, keys: &[&str]) -> Result<QuantParams> {
    let mut p = QuantParams::default();
    let (mut rotate, mut seed, mut rounds) = (false, None, None);
    let (mut grid, mut scale_set) = (None, false);
    for (k, v) in key_values(name, text, keys)? {
        let num = |v: &str| {
            v.parse::<u64>().map_err(|_| {
                Error::Config(format!("{name}: {k} must be a whole number, got '{v}'"))
            })
        };
        match k {
            "rotate" => {
                rotate = match v {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(Error::Config(format!(
                            "{name}: rotate must be 0 or 1, got '{v}'"
                        )));
                    }
                }
            }
            "seed" => seed = Some(num(v)?),
            "rounds" => rounds = Some(num(v)?),
            "grid" => {
                grid = Some(match v {
                    "uniform" => false,
                    "gauss" => true,
                    _ => {
                        return Err(Error::Config(format!(
                            "{name}: grid must be uniform or gauss, got '{v}'"
                        )));
                    }
                })
            }
            "scale" => {
                scale_set = true;
                p.scale = match v {
                    "fit" => ScaleRule::Default,
                    "max" => ScaleRule::Max,
                    _ => {
                        return Err(Error::Config(format!(
                            "{name}: scale must be fit or max, got '{v}'"
                        )));
                    }
                }
            }
            _ => unreachable!("key_values checks the keys"),
        }
    }
    if !rotate && (seed.is_some() || rounds.is_some()) {
        return Err(Error::Config(format!(
            "{name}: seed and rounds only apply with rotate=1"
        )));
    }
    if grid == Some(true) && scale_set {
        return Err(Error::Config(format!(
            "{name}: scale=fit|max only applies to grid=uniform"
        )));
    }
    let gauss_by_default = keys.contains(&"grid") && rotate && !scale_set;
    if grid.unwrap_or(gauss_by_default) {
        p.scale = ScaleRule::Gauss;
    }
    if rotate {
        let rounds = rounds.unwrap_or(DEFAULT_ROUNDS as u64);
        if !(1..=MAX_ROUNDS as u64).contains(&rounds) {
            return Err(Error::Config(format!(
                "{name}: rounds must be 1..={MAX_ROUNDS}, got {rounds}"
            )));
        }
        p.rotation = Some(RotationSpec {
            rounds: rounds as u32,
            seed: seed.unwrap_or(DEFAULT_SEED),
        });
    }
    Ok(p)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_key_given_twice_is_refused() {
        // Both parsers took the last value silently.
        let e = parse_quant("int4", "seed=1,seed=2,rotate=1", &["rotate", "seed"]).unwrap_err();
        assert!(e.to_string().contains("'seed' is given twice"), "{e}");
        let e = crate::codec::pq::PqParams::parse("pq", "m=8,m=16", 16).unwrap_err();
        assert!(e.to_string().contains("'m' is given twice"), "{e}");
    }

    use super::*;

    #[test]
    fn default_is_empty_and_round_trips() {
        assert!(QuantParams::default().encode(10).is_empty());
        let p = parse_quant(
            "int4",
            "rotate=1,seed=9,scale=max",
            &["rotate", "seed", "scale"],
        )
        .unwrap();
        let b = p.encode(384);
        assert_eq!(b.len(), QUANT_PARAMS_LEN);
        assert_eq!(QuantParams::decode("int4", &b, 384).unwrap(), p);
        assert!(
            QuantParams::decode("int4", &b, 200).is_err(),
            "window checked against dims"
        );
    }

    #[test]
    fn bad_text_is_named() {
        let e = parse_quant("int8", "scale=max", &["rotate", "seed"]).unwrap_err();
        assert!(e.to_string().contains("unknown parameter 'scale'"), "{e}");
        let e = parse_quant("int8", "seed=3", &["rotate", "seed"]).unwrap_err();
        assert!(e.to_string().contains("rotate=1"), "{e}");
        let e = parse_quant("int8", "rotate=yes", &["rotate"]).unwrap_err();
        assert!(e.to_string().contains("0 or 1"), "{e}");
    }

    #[test]
    fn corrupt_blocks_are_refused() {
        let p = parse_quant("binary", "rotate=1", &["rotate"]).unwrap();
        let good = p.encode(64);
        for (i, v) in [(0usize, 2u8), (1, 9), (2, 1), (4, 0), (4, 99), (8, 3)] {
            let mut b = good.clone();
            b[i] = v;
            assert!(
                QuantParams::decode("binary", &b, 64).is_err(),
                "byte {i} = {v}"
            );
        }
        assert!(QuantParams::decode("binary", &good[..5], 64).is_err());
    }
}
