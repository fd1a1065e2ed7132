//! The quality of several candidate codecs over a whole input, in one streamed pass: what
//! `--codec auto` measures before it chooses.
//!
//! Recall measured on a sample of the rows overestimates recall on the whole file (a small
//! corpus has fewer, farther neighbours), the more so the bigger the file. So the queries
//! here are searched over **every** row: each chunk is read once, its exact top-k per query
//! found, and each candidate encodes and decodes the chunk and finds its own top-k over the
//! reconstructions, exactly as `vectro eval` searches a container. Memory is bounded by the
//! chunks in flight and `queries × k` heap entries per candidate.
//!
//! Each query's recall is a number in [0, 1]; the report gives their mean and its standard
//! error over the queries, so a caller can ask for a one-sided confidence bound.

use std::sync::atomic::AtomicBool;

use super::quality::Quality;
use super::search::{Floors, Metric, Queries};
use super::topk::TopK;
use crate::codec::Codec;
use crate::error::Result;
use crate::par::run_ordered;
use crate::progress::Progress;
use crate::source::check_finite;
use crate::source::reader::{Input, ReleaseBehind};

/// How [`measure`] samples queries and searches.
#[derive(Debug, Clone)]
pub struct WholeOptions {
    /// The k of recall@k.
    pub k: usize,
    /// Rows of the input used as queries (each searched over all the other rows).
    pub queries: usize,
    /// Seed of the query sample.
    pub seed: u64,
    /// Similarity of the search.
    pub metric: Metric,
    /// Worker threads (already resolved, at least 1).
    pub threads: usize,
    /// Rows per chunk of the pass.
    pub chunk_rows: u64,
}

/// One candidate's quality over the whole input.
pub use crate::codec::auto::WholeQuality as Measured;

/// What one chunk contributes.
struct Partial {
    first_row: u64,
    rows: u64,
    truth: Vec<TopK>,
    found: Vec<Vec<TopK>>,
    quality: Vec<Quality>,
    faults: Vec<Option<String>>,
}

/// Measures every codec of `codecs` over every row of `source`.
///
/// # Errors
/// Errors reading the input (a non-finite value names its file and row), or
/// [`crate::Error::Cancelled`].
pub fn measure(
    source: &Input,
    codecs: &[&dyn Codec],
    opts: &WholeOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Vec<Measured>> {
    let h = source.header();
    let d = h.dims as usize;
    let ids = crate::codec::auto::sample_ids(h.rows, opts.queries as u64, opts.seed);
    let mut data = vec![0f32; ids.len() * d];
    source.read_rows(&ids, &mut data)?;
    let queries = Queries::new(data, d, Some(ids), opts.metric);
    let nq = queries.len();
    let k = opts.k.min(h.rows as usize).max(1);
    let floors: Vec<Floors> = (0..=codecs.len()).map(|_| Floors::new(nq)).collect();
    let mut truth = vec![TopK::new(k); nq];
    let mut found = vec![vec![TopK::new(k); nq]; codecs.len()];
    let mut quality = vec![Quality::default(); codecs.len()];
    let mut faults: Vec<Option<String>> = vec![None; codecs.len()];
    // Codes with their own estimator (sq) are searched by it, as `vectro search` does.
    let estimators = codecs
        .iter()
        .map(|c| crate::search::codes::Scorer::estimator(&c.spec(), d, &queries))
        .collect::<Result<Vec<_>>>()?;
    let mut hist = super::hist::CosHist::default();
    let row_bytes = h.row_bytes() as u64;
    let mut behind = ReleaseBehind::by_bytes(row_bytes);
    let chunks = h.rows.div_ceil(opts.chunk_rows.max(1));
    progress.begin(h.rows, h.rows * row_bytes);
    let result = run_ordered(
        opts.threads,
        source.chunks(opts.chunk_rows.max(1), 0..chunks)?,
        |job| {
            let rows = job.rows as usize;
            let mut original = vec![0f32; rows * d];
            h.dtype.to_f32(job.bytes(), &mut original);
            job.check_unchanged()?;
            check_finite(&original, d, job.first_row, std::path::Path::new("")).map_err(|e| {
                match e {
                    // Name the file of a many-file input, and the row within it.
                    crate::Error::NonFinite {
                        row, col, value, ..
                    } => {
                        let (path, row) = source.locate(row);
                        crate::Error::NonFinite {
                            path,
                            row,
                            col,
                            value,
                        }
                    }
                    e => e,
                }
            })?;
            let mut p = Partial {
                first_row: job.first_row,
                rows: job.rows,
                truth: queries.scan(&original, job.first_row, k, &floors[0]),
                found: Vec::with_capacity(codecs.len()),
                quality: Vec::with_capacity(codecs.len()),
                faults: Vec::with_capacity(codecs.len()),
            };
            let mut recon = vec![0f32; original.len()];
            for (i, codec) in codecs.iter().enumerate() {
                let mut payload = vec![0u8; codec.encoded_len(rows)];
                match codec.encode(&original, &mut payload) {
                    Ok(()) => {
                        codec.decode(&payload, rows, &mut recon);
                        p.quality.push(Quality::of_block(&original, &recon, d));
                        p.found.push(match &estimators[i] {
                            Some(s) => {
                                s.scan_payload(&payload, rows, job.first_row, k, &floors[i + 1])
                            }
                            None => queries.scan(&recon, job.first_row, k, &floors[i + 1]),
                        });
                        p.faults.push(None);
                    }
                    Err(f) => {
                        let (path, row) = source.locate(job.first_row + f.row as u64);
                        p.quality.push(Quality::default());
                        p.found.push(Vec::new());
                        p.faults.push(Some(format!(
                            "{}: row {row}, column {}: {}",
                            path.display(),
                            f.col,
                            f.msg
                        )));
                    }
                }
            }
            Ok(p)
        },
        |p| {
            progress.advance(p.rows, p.rows * row_bytes);
            if let Some(r) = behind.consumed(p.first_row, p.first_row + p.rows) {
                source.release_rows(r.start, r.end);
            }
            merge_heaps(&mut truth, p.truth, &floors[0]);
            for (i, part) in p.found.into_iter().enumerate() {
                if faults[i].is_none() {
                    faults[i] = p.faults[i].clone();
                }
                if faults[i].is_none() {
                    merge_heaps(&mut found[i], part, &floors[i + 1]);
                }
            }
            for (q, part) in quality.iter_mut().zip(p.quality) {
                q.merge(part, &mut hist);
            }
            Ok(())
        },
        cancel,
    );
    progress.finish();
    result?;
    Ok((0..codecs.len())
        .map(|i| {
            let (recall, recall_se) = mean_and_se(&truth, &found[i], k);
            let q = &quality[i];
            Measured {
                cosine: if q.rows > 0 {
                    q.cos_sum / q.rows as f64
                } else {
                    1.0
                },
                recall,
                recall_se,
                fault: faults[i].clone(),
            }
        })
        .collect())
}

fn merge_heaps(heaps: &mut [TopK], part: Vec<TopK>, floors: &Floors) {
    for (i, (a, b)) in heaps.iter_mut().zip(part).enumerate() {
        a.merge(b);
        if let Some(f) = a.full_floor() {
            floors.raise(i, f);
        }
    }
}

/// The mean of the queries' recall@k and its standard error. A query with no true
/// neighbours (a one-row input) counts as fully recalled, as in `vectro eval`.
fn mean_and_se(truth: &[TopK], found: &[TopK], k: usize) -> (f64, f64) {
    if truth.is_empty() || found.is_empty() {
        return (1.0, 0.0);
    }
    let per: Vec<f64> = truth
        .iter()
        .zip(found)
        .map(|(t, f)| {
            let t = t.ids(k);
            if t.is_empty() {
                return 1.0;
            }
            f.ids(k).iter().filter(|id| t.contains(id)).count() as f64 / t.len() as f64
        })
        .collect();
    let n = per.len() as f64;
    let mean = per.iter().sum::<f64>() / n;
    let var = per.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, (var / n).sqrt())
}
