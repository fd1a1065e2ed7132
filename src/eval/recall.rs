//! Recall@k and rescored recall@k from the heaps of a search pass.

use serde::Serialize;

use super::search::Queries;
use super::topk::TopK;
use crate::error::Result;

/// Recall at one k.
#[derive(Debug, Clone, Serialize)]
pub struct Recall {
    /// The k.
    pub k: usize,
    /// Mean over queries of |true top-k ∩ found top-k| / k.
    pub recall: f64,
    /// The same after re-ranking the top `max(rerank, k)` found candidates with the
    /// original floats.
    pub rescored: f64,
}

/// For each query, the found candidates (best first) with their exact scores against the
/// original rows, which `fetch(id, out)` reads, on at most `threads` threads (0: all cores).
///
/// # Errors
/// [`crate::Error::Threads`] if the system refuses a thread; the first error `fetch`
/// returns.
pub fn exact_scores<F>(
    queries: &Queries,
    found: &[TopK],
    dims: usize,
    threads: usize,
    fetch: F,
) -> Result<Vec<Vec<(u64, f32)>>>
where
    F: Fn(u64, &mut [f32]) -> Result<()> + Sync,
{
    use rayon::prelude::*;
    crate::par::pool(threads)?.install(|| {
        (0..queries.len())
            .into_par_iter()
            .map(|i| {
                let mut row = vec![0f32; dims];
                found[i]
                    .sorted()
                    .iter()
                    .map(|e| {
                        fetch(e.id, &mut row)?;
                        Ok((e.id, queries.metric().score(queries.get(i), &row)))
                    })
                    .collect()
            })
            .collect()
    })
}

/// Recall at each of `ks`, plain and rescored.
///
/// `rescore[i]` is query `i`'s found list, best first as found, with exact scores. A query
/// with no true neighbours at all (a one-row dataset) counts as fully recalled.
pub fn recalls(
    ks: &[usize],
    truth: &[TopK],
    found: &[TopK],
    rescore: &[Vec<(u64, f32)>],
    rerank: usize,
) -> Vec<Recall> {
    let n = truth.len().max(1) as f64;
    ks.iter()
        .map(|&k| {
            let (mut plain, mut rescored) = (0.0, 0.0);
            for i in 0..truth.len() {
                let t = truth[i].ids(k);
                let f = found[i].ids(k);
                let mut cands: Vec<(u64, f32)> =
                    rescore[i].iter().take(rerank.max(k)).copied().collect();
                // Best exact score first; ties to the smaller id, as in the search.
                cands.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                let r: Vec<u64> = cands.iter().take(k).map(|c| c.0).collect();
                plain += overlap(&t, &f);
                rescored += overlap(&t, &r);
            }
            Recall {
                k,
                recall: plain / n,
                rescored: rescored / n,
            }
        })
        .collect()
}

fn overlap(truth: &[u64], got: &[u64]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    got.iter().filter(|id| truth.contains(id)).count() as f64 / truth.len() as f64
}
