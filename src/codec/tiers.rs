//! Tiers: one block of rows encoded by several codecs, coarsest first (format 1.6).
//!
//! A tiered container keeps a coarse copy of its rows to search (`binary:rotate=1`,
//! `pq:m=48`) and a finer one to re-rank and decode from (`int8`, `f16`). [`Tiered`] is
//! the array→bytes stage that writes them: its payload is each tier's codec payload
//! followed by that payload's own crc32c, coarsest first, so that one tier can be read or
//! checked without touching the others:
//!
//! ```text
//! | tier 0 codes | crc32c | tier 1 codes | crc32c | ... | last tier codes | crc32c |
//! ```
//!
//! Every length is the tier codec's `encoded_len(rows)`, so each tier's place in a chunk
//! follows from the header ([`Tiered::range`]). Rows decode from the last, finest tier.

use std::ops::Range;
use std::sync::Arc;

use super::{Codec, CodecSpec, EncodeFault};
use crate::checksum::crc;
use crate::error::{Error, Result};

/// Bytes of the crc32c after each tier's payload.
pub const TIER_CRC_LEN: usize = 4;

/// Several codecs of the same rows, coarsest first; a [`Codec`] whose payload holds every
/// tier and whose rows decode from the last. Cloning shares the tiers.
#[derive(Debug, Clone)]
pub struct Tiered(Arc<Vec<Box<dyn Codec>>>);

impl Tiered {
    /// The tiers `tiers`, coarsest first: at least two, of the same dims, none of them
    /// itself tiered, each strictly more bytes a row than the one before it.
    ///
    /// # Errors
    /// [`Error::Config`] naming what does not hold.
    pub fn new(tiers: Vec<Box<dyn Codec>>) -> Result<Tiered> {
        if tiers.len() < 2 {
            return Err(Error::Config(
                "tiers: a tiered codec needs at least two codecs".into(),
            ));
        }
        let d = tiers[0].dims();
        for w in tiers.windows(2) {
            let (a, b) = (&w[0], &w[1]);
            if b.dims() != d {
                return Err(Error::Config(format!(
                    "tiers: {} has {} dims, {} has {d}",
                    b.name(),
                    b.dims(),
                    tiers[0].name()
                )));
            }
            if a.spec() == b.spec() {
                return Err(Error::Config(format!(
                    "--rescore {} is the --codec itself: a rescoring tier must be a finer codec (e.g. --codec binary:rotate=1 --rescore int8)",
                    b.name()
                )));
            }
            let (la, lb) = (a.encoded_len(1), b.encoded_len(1));
            if lb <= la {
                return Err(Error::Config(format!(
                    "--rescore {} ({lb} bytes a row) is not finer than --codec {} ({la} bytes a row): \
                     the rescoring tier must take more bytes a row than the searched one (e.g. --codec binary:rotate=1 --rescore int8)",
                    b.name(),
                    a.name()
                )));
            }
        }
        if let Some(t) = tiers.iter().find(|t| !t.search_tiers().is_empty()) {
            return Err(Error::Config(format!(
                "tiers: {} is itself tiered",
                t.name()
            )));
        }
        Ok(Tiered(Arc::new(tiers)))
    }

    /// The tiers, coarsest first.
    pub fn tiers(&self) -> &[Box<dyn Codec>] {
        &self.0
    }

    /// Where tier `t`'s codec payload lies within the payload of a block of `rows` rows.
    pub fn range(&self, t: usize, rows: usize) -> Range<usize> {
        let start: usize = self.0[..t]
            .iter()
            .map(|c| c.encoded_len(rows) + TIER_CRC_LEN)
            .sum();
        start..start + self.0[t].encoded_len(rows)
    }

    /// The first tier whose stored crc32c does not match its payload in `payload` (a block
    /// of `rows` rows), or `None` when every tier checks.
    pub fn first_bad_tier(&self, payload: &[u8], rows: usize) -> Option<usize> {
        (0..self.0.len()).find(|&t| !tier_crc_ok(payload, self.range(t, rows)))
    }

    fn last(&self) -> &dyn Codec {
        self.0.last().expect("at least two tiers").as_ref()
    }

    fn finest<'a>(&self, payload: &'a [u8], rows: usize) -> &'a [u8] {
        &payload[self.range(self.0.len() - 1, rows)]
    }
}

/// The codec of a container whose rows are encoded by `rows` and whose chunks store the
/// search tiers `tiers` before them (coarsest first; empty for a container without tiers).
///
/// # Errors
/// [`Error::Config`] when a parameter block does not fit its codec, or the tiers are not
/// each finer than the one before.
pub fn from_specs(tiers: &[CodecSpec], rows: &CodecSpec, dims: usize) -> Result<Box<dyn Codec>> {
    if tiers.is_empty() {
        return super::from_spec(rows.id, &rows.params, dims);
    }
    Ok(Box::new(tiered_from_specs(tiers, rows, dims)?))
}

/// [`from_specs`] for a tiered container (`tiers` not empty), as a [`Tiered`].
///
/// # Errors
/// As [`from_specs`].
pub fn tiered_from_specs(tiers: &[CodecSpec], rows: &CodecSpec, dims: usize) -> Result<Tiered> {
    let mut all = Vec::with_capacity(tiers.len() + 1);
    for t in tiers.iter().chain([rows]) {
        all.push(super::from_spec(t.id, &t.params, dims)?);
    }
    Tiered::new(all)
}

/// Whether the tier payload at `r` in `payload` is followed by its own crc32c.
pub fn tier_crc_ok(payload: &[u8], r: Range<usize>) -> bool {
    let (Some(codes), Some(stored)) = (
        payload.get(r.clone()),
        payload.get(r.end..r.end + TIER_CRC_LEN),
    ) else {
        return false;
    };
    let stored = [stored[0], stored[1], stored[2], stored[3]];
    crc(codes) == u32::from_le_bytes(stored)
}

impl Codec for Tiered {
    fn name(&self) -> String {
        self.0
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join("+")
    }

    fn spec(&self) -> CodecSpec {
        self.last().spec()
    }

    fn search_tiers(&self) -> Vec<CodecSpec> {
        self.0[..self.0.len() - 1]
            .iter()
            .map(|c| c.spec())
            .collect()
    }

    fn dims(&self) -> usize {
        self.last().dims()
    }

    fn encoded_len(&self, rows: usize) -> usize {
        self.0
            .iter()
            .map(|c| c.encoded_len(rows) + TIER_CRC_LEN)
            .sum()
    }

    fn encode(&self, input: &[f32], out: &mut [u8]) -> std::result::Result<(), EncodeFault> {
        let rows = input.len() / self.dims().max(1);
        for (t, c) in self.0.iter().enumerate() {
            let r = self.range(t, rows);
            c.encode(input, &mut out[r.clone()])?;
            let sum = crc(&out[r.clone()]);
            out[r.end..r.end + TIER_CRC_LEN].copy_from_slice(&sum.to_le_bytes());
        }
        Ok(())
    }

    fn rejects_non_finite(&self) -> bool {
        self.0.iter().all(|c| c.rejects_non_finite())
    }

    fn decode(&self, payload: &[u8], rows: usize, out: &mut [f32]) {
        self.last().decode(self.finest(payload, rows), rows, out);
    }

    fn decode_row(&self, payload: &[u8], rows: usize, row: usize, out: &mut [f32]) {
        self.last()
            .decode_row(self.finest(payload, rows), rows, row, out);
    }

    fn row_access(&self) -> bool {
        self.last().row_access()
    }

    fn prefetch_row(&self, payload: &[u8], rows: usize, row: usize) {
        self.last()
            .prefetch_row(self.finest(payload, rows), rows, row);
    }

    fn facts(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (t, c) in self.0.iter().enumerate() {
            for (k, v) in c.facts() {
                out.push((format!("tier {t} ({}): {k}", c.name()), v));
            }
        }
        out
    }

    fn first_non_finite_row(
        &self,
        payload: &[u8],
        rows: usize,
        scratch: &mut Vec<f32>,
    ) -> Option<usize> {
        (0..self.0.len())
            .filter_map(|t| {
                self.0[t].first_non_finite_row(&payload[self.range(t, rows)], rows, scratch)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn tiered(a: &str, b: &str, d: usize) -> Result<Tiered> {
        Tiered::new(vec![
            crate::codec::parse(a, d).unwrap(),
            crate::codec::parse(b, d).unwrap(),
        ])
    }

    #[test]
    fn each_tier_is_its_codecs_payload_and_rows_decode_from_the_last() {
        let (d, n) = (20, 7);
        let mut rng = Rng(0x7135);
        let x: Vec<f32> = (0..n * d).map(|_| rng.centred()).collect();
        let t = tiered("binary:rotate=1", "int8", d).unwrap();
        let mut out = vec![0u8; t.encoded_len(n)];
        t.encode(&x, &mut out).unwrap();
        for (i, c) in t.tiers().iter().enumerate() {
            let mut alone = vec![0u8; c.encoded_len(n)];
            c.encode(&x, &mut alone).unwrap();
            assert_eq!(&out[t.range(i, n)], &alone[..], "tier {i}");
        }
        assert_eq!(t.first_bad_tier(&out, n), None);
        let (mut a, mut b) = (vec![0f32; n * d], vec![0f32; n * d]);
        t.decode(&out, n, &mut a);
        t.tiers()[1].decode(&out[t.range(1, n)], n, &mut b);
        assert_eq!(a, b);
        let mut row = vec![0f32; d];
        t.decode_row(&out, n, 3, &mut row);
        assert_eq!(row, b[3 * d..4 * d]);
        // A flipped byte of either tier names that tier.
        for (i, at) in [(0, 1), (1, t.range(1, n).start + 5)] {
            let mut bad = out.clone();
            bad[at] ^= 1;
            assert_eq!(t.first_bad_tier(&bad, n), Some(i));
        }
        assert_eq!(t.spec(), t.tiers()[1].spec());
        assert_eq!(t.search_tiers(), vec![t.tiers()[0].spec()]);
        assert_eq!(t.name(), "binary:rotate=1+int8");
    }

    #[test]
    fn a_tier_must_be_finer_than_the_one_before() {
        let e = tiered("int8", "binary", 16).unwrap_err().to_string();
        assert!(e.contains("not finer than --codec int8"), "{e}");
        let e = tiered("int8", "int8", 16).unwrap_err().to_string();
        assert!(e.contains("is the --codec itself"), "{e}");
        assert!(Tiered::new(vec![crate::codec::parse("int8", 4).unwrap()]).is_err());
    }
}
