//! `--codec auto`: pick the smallest codec that meets a quality target on the whole input.
//!
//! Two steps:
//! 1. **Screen** ([`choose`]): every candidate is measured on a seeded sample of rows, as
//!    `vectro eval` measures (mean cosine; recall@10 of exact cosine search with up to
//!    [`MAX_QUERIES`] sampled rows as queries against the other sampled rows). Recall on a
//!    sample *overestimates* recall on the whole file (a small corpus has fewer, farther
//!    neighbours; 0.97 on 2,000 rows was 0.85 on 100,000), so the sample only rules out
//!    candidates far below the target ([`SCREEN_MARGIN`]).
//! 2. **Decide** ([`AutoReport::decide`]): the remaining candidates are measured over
//!    every row of the input in one streamed pass (`eval::whole`): [`WHOLE_QUERIES`] sampled
//!    rows searched over all rows, each candidate encoding and decoding every chunk. The
//!    smallest candidate whose whole-input recall is at least the target with
//!    [`CONFIDENCE`] one-sided confidence over the query sample (mean minus [`Z`] standard
//!    errors), or whose mean cosine over every row is at least the target, is chosen.

use std::collections::BTreeSet;

use serde::Serialize;

use super::parse;
use crate::error::{Error, Result};

/// One rung of the ladder `auto` climbs: a codec string, or a family sized from the data's
/// dimension. Adding a codec to `auto` is one entry in [`LADDER`].
#[derive(Debug, Clone, Copy)]
pub struct Rung {
    /// The codec string; for a rung sized by [`Rung::dims_per_m`], the codec name to which
    /// `:m=M` is appended.
    pub codec: &'static str,
    /// For pq-like codecs: `m = dims / dims_per_m` subspaces (the rung is left out when
    /// it does not divide the dimension).
    pub dims_per_m: Option<usize>,
    /// Whether the codec is trained (on the auto sample) before it is measured.
    pub trained: bool,
    /// Encoded bytes per row for `dims`-dimensional data, for a trained rung: known before
    /// training, so a rung that cannot be chosen is not trained.
    pub row_bytes: Option<fn(dims: usize, m: usize) -> usize>,
}

impl Rung {
    /// A training-free codec string.
    pub const fn fixed(codec: &'static str) -> Rung {
        Rung {
            codec,
            dims_per_m: None,
            trained: false,
            row_bytes: None,
        }
    }

    /// A trained codec of `m = dims / dims_per_m` one-byte subspaces (pq, opq).
    pub const fn subspaces(codec: &'static str, dims_per_m: usize) -> Rung {
        Rung {
            codec,
            dims_per_m: Some(dims_per_m),
            trained: true,
            row_bytes: Some(|_, m| m),
        }
    }

    /// A trained additive code of `m = dims / dims_per_m` one-byte codebooks over all the
    /// dimensions and a 2-byte norm scale (rq).
    pub const fn codebooks(codec: &'static str, dims_per_m: usize) -> Rung {
        Rung {
            codec,
            dims_per_m: Some(dims_per_m),
            trained: true,
            row_bytes: Some(|_, m| m + 2),
        }
    }

    /// A trained codec of one bit per dimension (binary-itq).
    pub const fn bits(codec: &'static str) -> Rung {
        Rung {
            codec,
            dims_per_m: None,
            trained: true,
            // The sign bits and the row's f32 norm, as binary stores them.
            row_bytes: Some(|d, _| d.div_ceil(8) + 4),
        }
    }

    /// `sq` at `B` bits on rows centred on the mean of a sample (`sq:bits=B,centre=1`),
    /// which is "trained" only in that the mean comes from the data.
    pub const fn centred_bits<const B: usize>(codec: &'static str) -> Rung {
        Rung {
            codec,
            dims_per_m: None,
            trained: true,
            // The codes, the factor word and the row's f32 `<x, c>`; at one bit the padded
            // layout's 32 more signs and one packed word, the same bytes.
            row_bytes: Some(|d, _| (B * d).div_ceil(8) + 8),
        }
    }

    /// The codec string for `dims`-dimensional data, `None` when the rung does not apply.
    pub fn codec_for(&self, dims: usize) -> Option<String> {
        match self.dims_per_m {
            None => Some(self.codec.to_string()),
            Some(per) if per > 0 && dims >= per && dims.is_multiple_of(per) => {
                Some(format!("{}:m={}", self.codec, dims / per))
            }
            Some(_) => None,
        }
    }

    /// Encoded bytes per row of a trained rung, before it is trained.
    pub fn trained_row_bytes(&self, dims: usize) -> Option<usize> {
        let m = self.dims_per_m.map_or(0, |per| dims / per.max(1));
        self.row_bytes.map(|f| f(dims, m))
    }
}

/// Every codec `auto` considers. Order does not matter: candidates are ranked by encoded
/// size (at equal size, the higher quality wins). pq and opq come in three sizes (a
/// subspace of 24, 8 or 4 dims: `m = d/24, d/8, d/4` bytes a row), filling the gaps
/// between binary (`d/8` bytes) and int4 (`d/2`). rq comes in two (`m = d/24, d/12`
/// codebooks, 18 and 34 bytes a row at 384 dims), where additive codes beat pq and opq
/// of about the same size; its training costs about as much as opq's at `m = d/24` and
/// about four times that at `d/12`, and like every trained rung it is not trained when a
/// candidate no bigger already clearly meets the target on the sample. `sq` at 1 to 4
/// bits also comes centred on the data's mean (4 bytes a row more): where the rows share a
/// large offset (outlier coordinates), centring gains 6 to 12 points of recall@10.
pub const LADDER: &[Rung] = &[
    Rung::fixed("binary:rotate=1"),
    Rung::bits("binary-itq"),
    Rung::fixed("sq:bits=1"),
    Rung::centred_bits::<1>("sq:bits=1,centre=1"),
    Rung::fixed("sq:bits=2"),
    Rung::centred_bits::<2>("sq:bits=2,centre=1"),
    Rung::fixed("sq:bits=3"),
    Rung::centred_bits::<3>("sq:bits=3,centre=1"),
    Rung::fixed("int4:rotate=1"),
    Rung::fixed("sq:bits=4"),
    Rung::centred_bits::<4>("sq:bits=4,centre=1"),
    Rung::fixed("sq:bits=5"),
    Rung::fixed("sq:bits=6"),
    Rung::fixed("int8:rotate=1"),
    Rung::fixed("int8"),
    Rung::fixed("sq:bits=8"),
    Rung::fixed("f16"),
    Rung::subspaces("pq", 24),
    Rung::subspaces("opq", 24),
    Rung::subspaces("pq", 8),
    Rung::subspaces("opq", 8),
    Rung::subspaces("pq", 4),
    Rung::subspaces("opq", 4),
    Rung::codebooks("rq", 24),
    Rung::codebooks("rq", 12),
];

/// The training-free candidates for `dims`-dimensional data.
pub fn fixed_candidates(dims: usize) -> Vec<String> {
    LADDER
        .iter()
        .filter(|r| !r.trained)
        .filter_map(|r| r.codec_for(dims))
        .collect()
}

/// The trained candidates for `dims`-dimensional data, with their bytes per row, smallest
/// first.
pub fn trained_candidates(dims: usize) -> Vec<(String, usize)> {
    let mut v: Vec<(String, usize)> = LADDER
        .iter()
        .filter(|r| r.trained)
        .filter_map(|r| Some((r.codec_for(dims)?, r.trained_row_bytes(dims)?)))
        .collect();
    v.sort_by_key(|(_, b)| *b);
    v
}

/// Queries of the whole-input measurement.
pub const WHOLE_QUERIES: usize = 500;
/// The one-sided confidence with which a chosen codec meets a recall target.
pub const CONFIDENCE: f64 = 0.95;
/// Standard errors below the measured recall for [`CONFIDENCE`].
pub const Z: f64 = 1.645;
/// A candidate whose sample estimate is this far below the target is not measured on the
/// whole input: the sample overestimates, so it cannot meet the target there.
pub const SCREEN_MARGIN: f64 = 0.02;
/// The codec used when no candidate meets the target.
pub const FALLBACK: &str = "f16";
/// Queries used for the recall estimate.
pub const MAX_QUERIES: usize = 200;
/// Neighbours compared for the recall estimate.
pub const K: usize = 10;
/// Seed of the row sample, fixed so that a rerun makes the same choice.
pub const SAMPLE_SEED: u64 = 0x00a0_70c0;
/// The fewest rows a trained candidate is trained on (unless the input has fewer): 40 a
/// centroid of a 256-entry codebook. The chosen codebook is the one written, and one trained
/// on the screening sample alone is poor: `rq:m=32` trained on 2,000 rows of a 10,000-row
/// file read recall@10 0.64 over the file, trained on 9,000 rows 0.90.
pub const MIN_TRAIN_ROWS: u64 = 10_240;

/// Rows each trained candidate is trained on: `--train-rows` if given, else the screening
/// sample's size but at least [`MIN_TRAIN_ROWS`], and never more than the input has (so
/// the training recipe names the rows actually drawn).
pub fn train_rows(requested: Option<u64>, sample: u64, input_rows: u64) -> u64 {
    requested.unwrap_or_else(|| sample.max(MIN_TRAIN_ROWS).min(input_rows.max(1)))
}

/// What the chosen codec must reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "metric", content = "min")]
pub enum Target {
    /// Mean cosine between rows and their reconstructions, at least this.
    #[serde(rename = "cosine")]
    MinCosine(f64),
    /// Recall@10 of float queries against the reconstructions, at least this.
    #[serde(rename = "recall@10")]
    MinRecall(f64),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::MinCosine(x) => write!(f, "mean cosine >= {x}"),
            Target::MinRecall(x) => write!(f, "recall@{K} >= {x}"),
        }
    }
}

/// One measured candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    /// The `--codec` string.
    pub codec: String,
    /// Encoded bytes per row (chunk framing excluded).
    pub bytes_per_row: f64,
    /// The quality measured on the whole input, if it was (else on the sample); `None`
    /// when the codec cannot encode the data.
    pub quality: Option<f64>,
    /// The estimate on the sample, which screened the candidates.
    pub sample_quality: Option<f64>,
    /// For a recall target measured on the whole input: the standard error of `quality`
    /// over the queries.
    pub recall_se: Option<f64>,
    /// Whether it was measured on the whole input.
    pub whole: bool,
    /// Why it could not encode (or be trained), if so.
    pub error: Option<String>,
    /// Whether it meets the target.
    pub meets: bool,
    /// Trained on the sample (pq, opq, rq, binary-itq).
    pub trained: bool,
    /// Why a trained candidate was not trained, if it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The outcome of the selection.
#[derive(Debug, Clone, Serialize)]
pub struct AutoReport {
    /// The target.
    pub target: Target,
    /// Rows in the sample.
    pub sample_rows: usize,
    /// Rows the decision was measured on: every row of the input, once [`decide`]d.
    ///
    /// [`decide`]: AutoReport::decide
    pub measured_rows: u64,
    /// Queries of the whole-input recall measurement (0 for a cosine target).
    pub queries: usize,
    /// The one-sided confidence with which the chosen codec meets a recall target.
    pub confidence: f64,
    /// Every candidate, smallest first.
    pub candidates: Vec<Candidate>,
    /// The codec chosen.
    pub chosen: String,
    /// True when no candidate met the target and [`FALLBACK`] was used.
    pub fell_back: bool,
    /// Rows each trained candidate was trained on (0 when none was).
    pub train_rows: u64,
}

impl AutoReport {
    /// Human-readable lines: one per candidate, then the decision.
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![match (self.measured_rows, self.target) {
            (0, _) => format!(
                "auto: target {} measured on {} sampled rows",
                self.target, self.sample_rows
            ),
            (n, Target::MinRecall(_)) => format!(
                "auto: target {} measured over all {n} rows with {} sampled queries, \
                 met with {:.0}% confidence (screened on {} sampled rows)",
                self.target,
                self.queries,
                self.confidence * 100.0,
                self.sample_rows
            ),
            (n, Target::MinCosine(_)) => format!(
                "auto: target {} measured over all {n} rows (screened on {} sampled rows)",
                self.target, self.sample_rows
            ),
        }];
        let trained: Vec<&str> = self
            .candidates
            .iter()
            .filter(|c| c.trained && c.skipped.is_none() && c.error.is_none())
            .map(|c| c.codec.as_str())
            .collect();
        if !trained.is_empty() {
            out.push(format!(
                "auto: trained {} on {} sampled rows",
                trained.join(", "),
                self.train_rows
            ));
        }
        for c in &self.candidates {
            let q = match (&c.quality, &c.error) {
                (Some(q), _) if c.whole => match c.recall_se {
                    Some(se) => format!(
                        "{q:.4} ± {:.4} (sample {:.4})",
                        Z * se,
                        c.sample_quality.unwrap_or(f64::NAN)
                    ),
                    None => format!(
                        "{q:.6} (sample {:.6})",
                        c.sample_quality.unwrap_or(f64::NAN)
                    ),
                },
                (Some(q), _) if self.measured_rows > 0 => {
                    format!("{q:.6} on the sample: far below, not measured further")
                }
                (Some(q), _) => format!("{q:.6}"),
                (None, Some(e)) if c.trained && !c.whole => format!("cannot train: {e}"),
                (None, Some(e)) => format!("cannot encode: {e}"),
                (None, None) => match &c.skipped {
                    Some(why) => format!("not trained: {why}"),
                    None => "-".into(),
                },
            };
            out.push(format!(
                "  {:<16} {:>7.1} B/row  {}  {}",
                c.codec,
                c.bytes_per_row,
                q,
                if c.meets { "meets" } else { "misses" }
            ));
        }
        out.push(if self.fell_back {
            format!(
                "auto: no candidate meets {}; falling back to {}",
                self.target, self.chosen
            )
        } else {
            format!("auto: chose {}", self.chosen)
        });
        out
    }
}

/// Measures every candidate on `sample` (`rows × dims`) and picks the smallest that meets
/// `target`.
///
/// # Errors
/// [`Error::Config`] for a target outside (0, 1] or an empty sample.
pub fn choose(sample: &[f32], dims: usize, target: Target) -> Result<AutoReport> {
    let t = match target {
        Target::MinCosine(x) | Target::MinRecall(x) => x,
    };
    if !(t > 0.0 && t <= 1.0) {
        return Err(Error::Config(format!(
            "the auto target must be in (0, 1], got {t}"
        )));
    }
    let rows = sample.len() / dims.max(1);
    if rows == 0 {
        return Err(Error::Config("auto needs at least one sampled row".into()));
    }
    let mut report = AutoReport {
        target,
        sample_rows: rows,
        measured_rows: 0,
        queries: 0,
        confidence: CONFIDENCE,
        fell_back: true,
        chosen: FALLBACK.into(),
        candidates: Vec::new(),
        train_rows: 0,
    };
    for name in fixed_candidates(dims) {
        let codec = parse(&name, dims)?;
        report.measure_on_sample(&name, codec.as_ref(), sample, dims, false);
    }
    report.settle();
    Ok(report)
}

impl AutoReport {
    /// Measures `codec` (named `name`) on the `sample` and adds it as a candidate.
    pub fn measure_on_sample(
        &mut self,
        name: &str,
        codec: &dyn crate::codec::Codec,
        sample: &[f32],
        dims: usize,
        trained: bool,
    ) {
        let rows = sample.len() / dims.max(1);
        let t = self.target.value();
        let mut payload = vec![0u8; codec.encoded_len(rows)];
        let mut recon = vec![0f32; sample.len()];
        let mut c = Candidate::new(name, codec.encoded_len(rows) as f64 / rows as f64, trained);
        match codec.encode(sample, &mut payload) {
            Ok(()) => {
                codec.decode(&payload, rows, &mut recon);
                let q = match self.target {
                    Target::MinCosine(_) => mean_cosine(sample, &recon, dims),
                    Target::MinRecall(_) => recall(sample, &recon, dims),
                };
                c.quality = Some(q);
                c.sample_quality = Some(q);
                c.meets = q >= t;
            }
            Err(f) => c.error = Some(format!("sampled row {}: {}", f.row, f.msg)),
        }
        self.candidates.push(c);
    }

    /// Why the trained candidate `name` (`row_bytes` a row) is not worth training, if it
    /// is not: a candidate no bigger already meets the target on the sample by
    /// [`SCREEN_MARGIN`] or more (a trained codec's sample estimate is no less biased than
    /// theirs, so it would be chosen only if they all missed on the whole input).
    pub fn skip_training(&self, row_bytes: usize) -> Option<String> {
        let t = self.target.value();
        self.candidates
            .iter()
            .filter(|c| c.skipped.is_none() && c.bytes_per_row <= row_bytes as f64)
            .find(|c| c.sample_quality.is_some_and(|q| q >= t + SCREEN_MARGIN))
            .map(|c| {
                format!(
                    "{} is no bigger and meets the target on the sample",
                    c.codec
                )
            })
    }

    /// Adds the trained candidate `name` as not measured: `why` says why (not worth
    /// training, or training failed).
    pub fn add_unmeasured(&mut self, name: &str, row_bytes: f64, why: Unmeasured) {
        let mut c = Candidate::new(name, row_bytes, true);
        match why {
            Unmeasured::Skipped(s) => c.skipped = Some(s),
            Unmeasured::Failed(e) => c.error = Some(e),
        }
        self.candidates.push(c);
    }

    /// Ranks the candidates and chooses from their sample estimates.
    pub fn settle(&mut self) {
        sort_candidates(&mut self.candidates);
        let chosen = self
            .candidates
            .iter()
            .find(|c| c.meets)
            .map(|c| c.codec.clone());
        self.fell_back = chosen.is_none();
        self.chosen = chosen.unwrap_or_else(|| FALLBACK.into());
    }
}

/// Why a trained candidate was not measured.
#[derive(Debug, Clone)]
pub enum Unmeasured {
    /// Not trained: a cheaper candidate made it pointless.
    Skipped(String),
    /// Training failed (too few rows, say).
    Failed(String),
}

impl Candidate {
    fn new(codec: &str, bytes_per_row: f64, trained: bool) -> Candidate {
        Candidate {
            codec: codec.into(),
            bytes_per_row,
            quality: None,
            sample_quality: None,
            recall_se: None,
            whole: false,
            error: None,
            meets: false,
            trained,
            skipped: None,
        }
    }
}

/// Smallest first; at equal size, the higher quality first.
fn sort_candidates(c: &mut [Candidate]) {
    c.sort_by(|a, b| {
        a.bytes_per_row.total_cmp(&b.bytes_per_row).then_with(|| {
            b.quality
                .unwrap_or(f64::NEG_INFINITY)
                .total_cmp(&a.quality.unwrap_or(f64::NEG_INFINITY))
        })
    });
}

/// A candidate's quality over the whole input (`eval::whole` measures it).
#[derive(Debug, Clone, PartialEq)]
pub struct WholeQuality {
    /// Mean cosine between every row and its reconstruction.
    pub cosine: f64,
    /// recall@10 of the sampled queries over every row.
    pub recall: f64,
    /// Its standard error over the queries.
    pub recall_se: f64,
    /// Why the codec cannot encode the input, if it cannot.
    pub fault: Option<String>,
}

impl AutoReport {
    /// The candidates worth measuring on the whole input, smallest first: those whose
    /// sample estimate is within [`SCREEN_MARGIN`] of the target, and [`FALLBACK`].
    pub fn screened(&self) -> Vec<String> {
        let t = self.target.value();
        self.candidates
            .iter()
            .filter(|c| {
                c.codec == FALLBACK || c.sample_quality.is_some_and(|q| q >= t - SCREEN_MARGIN)
            })
            .map(|c| c.codec.clone())
            .collect()
    }

    /// Decides from `whole`, the whole-input quality of each of [`screened`](Self::screened)
    /// (in its order), measured over `rows` rows with `queries` queries: the smallest
    /// candidate that meets the target there (a recall target with [`CONFIDENCE`]), or
    /// [`FALLBACK`] when none does.
    pub fn decide(&mut self, whole: &[(String, WholeQuality)], rows: u64, queries: usize) {
        let t = self.target.value();
        self.measured_rows = rows;
        self.queries = match self.target {
            Target::MinRecall(_) => queries,
            Target::MinCosine(_) => 0,
        };
        for c in &mut self.candidates {
            c.meets = false;
            let Some((_, w)) = whole.iter().find(|(name, _)| *name == c.codec) else {
                continue;
            };
            c.whole = true;
            if let Some(f) = &w.fault {
                c.quality = None;
                c.error = Some(f.clone());
                continue;
            }
            let (q, meets) = match self.target {
                Target::MinRecall(_) => {
                    c.recall_se = Some(w.recall_se);
                    (w.recall, w.recall - Z * w.recall_se >= t)
                }
                Target::MinCosine(_) => (w.cosine, w.cosine >= t),
            };
            c.quality = Some(q);
            c.meets = meets;
        }
        sort_candidates(&mut self.candidates);
        let chosen = self
            .candidates
            .iter()
            .find(|c| c.meets)
            .map(|c| c.codec.clone());
        self.fell_back = chosen.is_none();
        self.chosen = chosen.unwrap_or_else(|| FALLBACK.into());
    }
}

impl Target {
    /// The threshold.
    pub fn value(self) -> f64 {
        match self {
            Target::MinCosine(x) | Target::MinRecall(x) => x,
        }
    }
}

/// `k` distinct row ids out of `n`, sorted, drawn from `seed` (Floyd's algorithm).
pub fn sample_ids(n: u64, k: u64, seed: u64) -> Vec<u64> {
    let k = k.min(n);
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut set = BTreeSet::new();
    for j in n - k..n {
        let t = next() % (j + 1);
        if !set.insert(t) {
            set.insert(j);
        }
    }
    set.into_iter().collect()
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

fn mean_cosine(orig: &[f32], recon: &[f32], d: usize) -> f64 {
    let n = orig.len() / d;
    let sum: f64 = orig
        .chunks_exact(d)
        .zip(recon.chunks_exact(d))
        .map(|(o, r)| {
            let (oo, rr) = (dot(o, o), dot(r, r));
            match (oo == 0.0, rr == 0.0) {
                (true, true) => 1.0,
                (true, _) | (_, true) => 0.0,
                _ => dot(o, r) / (oo.sqrt() * rr.sqrt()),
            }
        })
        .sum();
    sum / n as f64
}

/// The ids of the `k` best scores (ties to the lower id), skipping `skip`.
fn top_k(scores: &[f64], k: usize, skip: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..scores.len()).filter(|&i| i != skip).collect();
    let by = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    if ids.len() > k {
        ids.select_nth_unstable_by(k, by);
        ids.truncate(k);
    }
    ids
}

fn recall(orig: &[f32], recon: &[f32], d: usize) -> f64 {
    let n = orig.len() / d;
    if n < 2 {
        return 1.0;
    }
    let k = K.min(n - 1);
    let inv_norm = |m: &[f32]| -> Vec<f64> {
        m.chunks_exact(d)
            .map(|r| {
                let n = dot(r, r).sqrt();
                if n > 0.0 { 1.0 / n } else { 0.0 }
            })
            .collect()
    };
    let (on, rn) = (inv_norm(orig), inv_norm(recon));
    let queries = n.min(MAX_QUERIES);
    let mut hits = 0usize;
    for qi in 0..queries {
        let q = &orig[qi * d..(qi + 1) * d];
        let score = |m: &[f32], norms: &[f64]| -> Vec<f64> {
            m.chunks_exact(d)
                .zip(norms)
                .map(|(r, s)| dot(q, r) * s)
                .collect()
        };
        let truth = top_k(&score(orig, &on), k, qi);
        let found = top_k(&score(recon, &rn), k, qi);
        hits += found.iter().filter(|id| truth.contains(id)).count();
    }
    hits as f64 / (queries * k) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rows: usize, d: usize) -> Vec<f32> {
        let mut rng = crate::test_rng::Rng(12345);
        (0..rows * d)
            .map(|i| rng.centred() + (i % d == 3) as u8 as f32)
            .collect()
    }

    #[test]
    fn trained_candidates_get_enough_rows_but_no_more_than_the_input() {
        assert_eq!(train_rows(None, 2000, 1_000_000), MIN_TRAIN_ROWS);
        assert_eq!(train_rows(None, 50_000, 1_000_000), 50_000);
        assert_eq!(train_rows(None, 2000, 3000), 3000);
        assert_eq!(train_rows(Some(500), 2000, 1_000_000), 500);
        assert_eq!(train_rows(None, 2000, 0), 1);
    }

    #[test]
    fn a_centred_rung_costs_its_uncentred_width_plus_one_f32() {
        for dims in [100, 384, 768] {
            for r in LADDER.iter().filter(|r| r.codec.ends_with(",centre=1")) {
                let plain = r.codec.trim_end_matches(",centre=1");
                let c = parse(plain, dims).unwrap();
                assert_eq!(
                    r.trained_row_bytes(dims),
                    Some(c.encoded_len(1) + 4),
                    "{} at {dims} dims",
                    r.codec
                );
                // And what the codec of that spelling writes (padded at one bit).
                let p = super::super::SqParams::parse(&r.codec["sq:".len()..]).unwrap();
                let sq = super::super::Sq::with_mean(dims, p, vec![0.5; dims], 1).unwrap();
                assert_eq!(
                    r.trained_row_bytes(dims),
                    Some(sq.row_bytes()),
                    "{}",
                    r.codec
                );
                assert_eq!(p.pad, r.codec == "sq:bits=1,centre=1");
            }
        }
    }

    #[test]
    fn picks_the_smallest_that_meets() {
        let x = data(300, 32);
        let r = choose(&x, 32, Target::MinCosine(0.9)).unwrap();
        let first = r.candidates.iter().find(|c| c.meets).unwrap();
        assert_eq!(r.chosen, first.codec);
        assert!(!r.fell_back);
        assert!(
            r.candidates
                .windows(2)
                .all(|w| w[0].bytes_per_row <= w[1].bytes_per_row)
        );
        // A stricter target moves to a bigger codec.
        let strict = choose(&x, 32, Target::MinCosine(0.9999)).unwrap();
        let bpr = |r: &AutoReport| {
            r.candidates
                .iter()
                .find(|c| c.codec == r.chosen)
                .unwrap()
                .bytes_per_row
        };
        assert!(bpr(&strict) > bpr(&r), "{} vs {}", strict.chosen, r.chosen);
    }

    #[test]
    fn falls_back_to_f16_and_says_so() {
        let x = data(50, 16);
        let r = choose(&x, 16, Target::MinRecall(1.0)).unwrap();
        // f16 is a candidate too: either it met the target, or nothing did.
        if r.fell_back {
            assert_eq!(r.chosen, FALLBACK);
            assert!(r.lines().last().unwrap().contains("falling back to f16"));
        }
        let r = choose(&x, 16, Target::MinCosine(1.0)).unwrap();
        assert!(r.fell_back, "no lossy codec reaches cosine 1.0 exactly");
        assert_eq!(r.chosen, "f16");
        assert!(choose(&x, 16, Target::MinCosine(1.5)).is_err());
    }

    #[test]
    fn the_ladder_sizes_trained_rungs_from_the_dimension() {
        let fixed = fixed_candidates(384);
        for want in ["binary:rotate=1", "int4:rotate=1", "int8:rotate=1", "f16"] {
            assert!(fixed.iter().any(|c| c == want), "{want} missing: {fixed:?}");
        }
        let trained = trained_candidates(384);
        let names: Vec<&str> = trained.iter().map(|(n, _)| n.as_str()).collect();
        for want in [
            "pq:m=16",
            "opq:m=16",
            "pq:m=48",
            "opq:m=96",
            "rq:m=16",
            "rq:m=32",
            "binary-itq",
            "sq:bits=1,centre=1",
        ] {
            assert!(names.contains(&want), "{want} missing: {names:?}");
        }
        // Bytes per row known before training, as the codec writes them.
        for (name, bytes) in &trained {
            let expect = match name.as_str() {
                "binary-itq" => 384 / 8 + 4,
                // The codes, the factor word and `<x, c>`.
                n if n.ends_with(",centre=1") => {
                    let bits: usize = n["sq:bits=".len()..][..1].parse().unwrap();
                    384 * bits / 8 + 8
                }
                // The codes and the f16 norm scale.
                n if n.starts_with("rq:") => {
                    n.rsplit('=').next().unwrap().parse::<usize>().unwrap() + 2
                }
                n => n.rsplit('=').next().unwrap().parse().unwrap(),
            };
            assert_eq!(*bytes, expect, "{name}");
        }
        assert!(trained.windows(2).all(|w| w[0].1 <= w[1].1));
        // A size that does not divide the dimension is left out.
        let odd: Vec<String> = trained_candidates(64).into_iter().map(|c| c.0).collect();
        assert!(odd.contains(&"pq:m=8".to_string()) && !odd.iter().any(|c| c == "pq:m=2"));
    }

    #[test]
    fn a_trained_size_is_skipped_only_behind_a_no_bigger_candidate_that_clearly_meets() {
        let x = data(300, 32);
        let r = choose(&x, 32, Target::MinCosine(0.9)).unwrap();
        let int8 = r.candidates.iter().find(|c| c.codec == "int8").unwrap();
        assert!(int8.sample_quality.unwrap() >= 0.9 + SCREEN_MARGIN);
        let b = int8.bytes_per_row as usize;
        assert!(r.skip_training(b).unwrap().contains("meets the target"));
        // Below every candidate's size nothing can skip it.
        assert_eq!(r.skip_training(1), None);
    }

    #[test]
    fn sample_is_seeded_distinct_and_sorted() {
        let a = sample_ids(1000, 50, 7);
        assert_eq!(a, sample_ids(1000, 50, 7));
        assert_ne!(a, sample_ids(1000, 50, 8));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && *a.last().unwrap() < 1000);
        assert_eq!(sample_ids(5, 50, 1), vec![0, 1, 2, 3, 4]);
    }
}
