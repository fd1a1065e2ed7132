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

/// Candidates in increasing encoded size (at equal size, the higher quality wins).
pub const CANDIDATES: [&str; 12] = [
    "binary:rotate=1",
    "sq:bits=1",
    "sq:bits=2",
    "sq:bits=3",
    "int4:rotate=1",
    "sq:bits=4",
    "sq:bits=5",
    "sq:bits=6",
    "int8:rotate=1",
    "int8",
    "sq:bits=8",
    "f16",
];
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
    /// Why it could not encode, if so.
    pub error: Option<String>,
    /// Whether it meets the target.
    pub meets: bool,
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
                (None, Some(e)) => format!("cannot encode: {e}"),
                (None, None) => "-".into(),
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
    let mut candidates = Vec::new();
    for name in CANDIDATES {
        let codec = parse(name, dims)?;
        let mut payload = vec![0u8; codec.encoded_len(rows)];
        let mut recon = vec![0f32; sample.len()];
        let mut c = Candidate {
            codec: name.into(),
            bytes_per_row: codec.encoded_len(rows) as f64 / rows as f64,
            quality: None,
            sample_quality: None,
            recall_se: None,
            whole: false,
            error: None,
            meets: false,
        };
        match codec.encode(sample, &mut payload) {
            Ok(()) => {
                codec.decode(&payload, rows, &mut recon);
                let q = match target {
                    Target::MinCosine(_) => mean_cosine(sample, &recon, dims),
                    Target::MinRecall(_) => recall(sample, &recon, dims),
                };
                c.quality = Some(q);
                c.sample_quality = Some(q);
                c.meets = q >= t;
            }
            Err(f) => c.error = Some(format!("sampled row {}: {}", f.row, f.msg)),
        }
        candidates.push(c);
    }
    sort_candidates(&mut candidates);
    let chosen = candidates.iter().find(|c| c.meets).map(|c| c.codec.clone());
    Ok(AutoReport {
        target,
        sample_rows: rows,
        measured_rows: 0,
        queries: 0,
        confidence: CONFIDENCE,
        fell_back: chosen.is_none(),
        chosen: chosen.unwrap_or_else(|| FALLBACK.into()),
        candidates,
    })
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
    fn sample_is_seeded_distinct_and_sorted() {
        let a = sample_ids(1000, 50, 7);
        assert_eq!(a, sample_ids(1000, 50, 7));
        assert_ne!(a, sample_ids(1000, 50, 8));
        assert_eq!(a.len(), 50);
        assert!(a.windows(2).all(|w| w[0] < w[1]) && *a.last().unwrap() < 1000);
        assert_eq!(sample_ids(5, 50, 1), vec![0, 1, 2, 3, 4]);
    }
}
