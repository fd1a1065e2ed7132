//! `--codec auto`: measure the candidate codecs on a seeded sample of rows and pick the
//! smallest that meets a quality target.
//!
//! Quality is measured exactly as `vectro eval` does, on the sample only:
//! - cosine: the mean cosine between each sampled row and its reconstruction;
//! - recall: recall@10 of exact cosine search, with up to [`MAX_QUERIES`] sampled rows as
//!   float queries against the reconstructions of the other sampled rows.
//!
//! Recall measured on a sample of `N` rows is an estimate of recall on the full file, not
//! the same number: a small sample has fewer, farther neighbours, and its queries are few. On
//! the shared 10k MiniLM sample, 2000 rows estimated `int4:rotate=1` at 0.949 against 0.954
//! to 0.956 on the full set. The report says how many rows it used; raise `--sample` for a
//! closer estimate, and leave a margin when a target is tight.

use std::collections::BTreeSet;

use serde::Serialize;

use super::parse;
use crate::error::{Error, Result};

/// Candidates in increasing encoded size (ties broken by listing order).
pub const CANDIDATES: [&str; 4] = ["binary:rotate=1", "int4:rotate=1", "int8", "f16"];
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
    /// The measured quality; `None` when the codec cannot encode the sample.
    pub quality: Option<f64>,
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
        let mut out = vec![format!(
            "auto: target {} measured on {} sampled rows",
            self.target, self.sample_rows
        )];
        for c in &self.candidates {
            let q = match (&c.quality, &c.error) {
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
                c.meets = q >= t;
            }
            Err(f) => c.error = Some(format!("sampled row {}: {}", f.row, f.msg)),
        }
        candidates.push(c);
    }
    candidates.sort_by(|a, b| a.bytes_per_row.total_cmp(&b.bytes_per_row));
    let chosen = candidates.iter().find(|c| c.meets).map(|c| c.codec.clone());
    Ok(AutoReport {
        target,
        sample_rows: rows,
        fell_back: chosen.is_none(),
        chosen: chosen.unwrap_or_else(|| FALLBACK.into()),
        candidates,
    })
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
