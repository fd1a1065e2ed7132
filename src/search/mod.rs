//! `search`: the top-k rows of a container for each query, scored on the codes.
//!
//! One pass over the container's chunks in parallel ([`run_ordered`]), bounded memory
//! (the chunks in flight and `queries × k` candidates, never the rows), pages released
//! behind the scan. Each codec is scored where it is cheapest, and exactly: the score of
//! a row is the metric between the query and the row as the container decodes it, up to
//! float rounding (the derivation is in `codes.rs` and docs/search.md):
//! - `binary`, `binary:rotate=…`, `binary-itq`: per-byte lookup tables of the (rotated)
//!   float query against the sign bits, the row's scale folded in; or, with
//!   [`SearchOptions::hamming`], the Hamming distance of the query's own sign bits
//!   (XOR + popcount, as faiss `IndexBinaryFlat`);
//! - `int8`, `int4` (uniform grid), rotated or not: the query quantized to int8, exact
//!   integer dot products, the two scales folded in;
//! - `int4` on the Gaussian grid: a 16-entry table per dimension of the float query;
//! - `pq`, `opq`: lookup tables, 16 queries per table vector ([`adc`]);
//! - `sq:bits=B`: its unbiased estimator, the levels times the row's stored gain, with the
//!   row's stored norm for cosine and L2 (one matrix multiply per tile of levels);
//! - `f16`, `bf16`: decoded, then one matrix multiply per tile ([`exact`]).
//!
//! Ties are broken by the smaller row, so results do not depend on the thread count or the
//! chunk size. `--rescore N` ([`SearchOptions::rescore`]) re-ranks the best `N` with a
//! finer copy of the same rows ([`search_rescored`]), fetched by random access.
//!
//! Rows are reported as ids through one mapping ([`ids`]); today a row's id is its row
//! number.

pub mod adc;
pub(crate) mod codes;
pub mod exact;
pub mod filter;
pub(crate) mod huge;
pub mod ids;
pub(crate) mod rq;
pub mod topk;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::error::{Error, Result};
use crate::format::Container;
use crate::par::run_ordered;
use crate::source::reader::ReleaseBehind;
use codes::Scorer;
pub use exact::{Floors, Metric, Queries};
pub use filter::RowFilter;
use ids::IdMap;
use topk::TopK;

/// Settings of a search.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Results per query.
    pub k: usize,
    /// How rows are ranked: inner product, cosine or (squared) Euclidean distance.
    pub metric: Metric,
    /// Worker threads; 0 means the available cores.
    pub threads: usize,
    /// Only these ids may be returned (an allow-list); `None` allows every row.
    pub filter: Option<Vec<u64>>,
    /// Binary codecs: rank by the Hamming distance between the query's sign bits and the
    /// row's (the metric then only ranks the rescoring).
    pub hamming: bool,
    /// Candidates of the coarse search re-ranked with the finer rows (0: no rescoring).
    pub rescore: usize,
    /// pq/opq with 4-bit codes: 0 (the default) searches exactly, scoring in float every
    /// row whose 8-bit fast-scan bound may still reach the top k. `R > 0` is approximate,
    /// as faiss's `IndexPQFastScan` with a refine step: in each chunk only the best `R`
    /// rows (at least `k`, or the rescoring depth) by their 8-bit fast-scan estimate, ties
    /// included, are scored in float, and the results are the best of those by the float
    /// score. An `R` of at least a chunk's rows gives the exact results. Other codecs
    /// ignore it.
    pub fast_scan_candidates: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            metric: Metric::Cos,
            threads: 0,
            filter: None,
            hamming: false,
            rescore: 0,
            fast_scan_candidates: 0,
        }
    }
}

/// The results of a search: `k` per query, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct Hits {
    /// Results per query (the width of [`Hits::ids`] and [`Hits::scores`]).
    pub k: usize,
    /// `queries × k` ids; [`Hits::NONE`] where a query has fewer than `k` results (fewer
    /// rows, or a filter).
    pub ids: Vec<u64>,
    /// `queries × k` scores: the inner product (`ip`), the cosine (`cos`), the squared
    /// Euclidean distance (`l2`, smaller is nearer) or the Hamming distance (with
    /// [`SearchOptions::hamming`] and no rescoring); NaN where there is no result.
    pub scores: Vec<f32>,
    /// What the scores are: `ip`, `cos`, `l2` or `hamming`.
    pub score: &'static str,
    /// How the coarse search scored the codes: `bits` (sign-bit tables), `hamming`, `int`
    /// (integer dot products), `adc` (pq/opq lookup tables), `estimator` (`sq`'s unbiased
    /// estimator) or `float` (decoded rows).
    pub scorer: &'static str,
}

impl Hits {
    /// The id marking a missing result.
    pub const NONE: u64 = u64::MAX;

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.ids.len().checked_div(self.k).unwrap_or(0)
    }

    /// Whether there are no queries.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Query `i`'s ids and scores, without the missing ones.
    pub fn query(&self, i: usize) -> (&[u64], &[f32]) {
        let (a, b) = (i * self.k, (i + 1) * self.k);
        let n = self.ids[a..b]
            .iter()
            .take_while(|&&id| id != Self::NONE)
            .count();
        (&self.ids[a..a + n], &self.scores[a..a + n])
    }
}

/// The best `opts.k` rows of `c` for each query of `queries` (`n × c.dims()`, row-major),
/// scored on the codes (see the module documentation), and re-ranked by `c`'s own decoded
/// rows when `opts.rescore > 0` (what a Hamming search wants; use [`search_rescored`] for
/// a finer container).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("x.vectro");
/// # let data: Vec<f32> = (0..200 * 8).map(|i| (i as f32 * 0.37).sin()).collect();
/// # let file = std::fs::File::create(&path)?;
/// # vectro::stream::Compressor::new().compress_f32(&data, 8, file)?;
/// use vectro::search::{SearchOptions, search};
/// let c = vectro::Container::open(&path)?;
/// let opts = SearchOptions { k: 3, ..Default::default() };
/// let hits = search(&c, &data[..2 * 8], &opts, &Default::default())?;
/// let (ids, scores) = hits.query(0);
/// assert_eq!(ids[0], 0); // row 0 is its own nearest neighbour
/// assert!(scores[0] > 0.99);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::BadNpy`] for queries of the wrong width or a non-finite query value;
/// [`Error::Config`] for `k = 0` or a filter id not in the container; errors reading the container's chunks;
/// [`Error::Cancelled`] once `cancel` is set.
pub fn search(
    c: &Container,
    queries: &[f32],
    opts: &SearchOptions,
    cancel: &AtomicBool,
) -> Result<Hits> {
    run(c, None, queries, opts, cancel)
}

/// As [`search`], then the best `opts.rescore` candidates of each query are re-ranked by
/// the rows of `fine` (a container of the same rows, e.g. `int8` beside a `binary`
/// search copy), fetched by random access ([`Container::get_many`]).
///
/// # Errors
/// As [`search`], and [`Error::Mismatch`] when `fine` does not have `c`'s rows and dims.
pub fn search_rescored(
    c: &Container,
    fine: &Container,
    queries: &[f32],
    opts: &SearchOptions,
    cancel: &AtomicBool,
) -> Result<Hits> {
    if fine.rows() != c.rows() || fine.dims() != c.dims() {
        return Err(Error::Mismatch(format!(
            "{} has {} rows × {} dims but {} has {} × {}: rescoring needs the same rows",
            fine.path().display(),
            fine.rows(),
            fine.dims(),
            c.path().display(),
            c.rows(),
            c.dims()
        )));
    }
    run(c, Some(fine), queries, opts, cancel)
}

/// Candidates a search of a tiered file re-ranks when [`SearchOptions::rescore`] is 0.
pub const TIERED_RESCORE: usize = 100;

fn run(
    c: &Container,
    fine: Option<&Container>,
    queries: &[f32],
    opts: &SearchOptions,
    cancel: &AtomicBool,
) -> Result<Hits> {
    // A tiered file (format 1.6): scan the coarsest tier, re-rank from the finest (or
    // the finer container given), each read through its own tier alone.
    if c.tier_count() > 1 && !c.is_tier_view() {
        let coarse = c.tier(0)?;
        let own;
        let fine = match fine {
            Some(f) => f,
            None => {
                own = c.tier(c.tier_count() - 1)?;
                &own
            }
        };
        let opts = SearchOptions {
            rescore: match opts.rescore {
                0 => TIERED_RESCORE,
                n => n,
            },
            ..opts.clone()
        };
        return run(&coarse, Some(fine), queries, &opts, cancel);
    }
    let d = c.dims();
    check_queries(queries, d)?;
    if opts.k == 0 {
        return Err(Error::Config("k must be at least 1".into()));
    }
    let map = IdMap::of(c);
    let filter = match &opts.filter {
        Some(ids) => Some(RowFilter::new(&map.rows_of(ids, c.path())?, c.rows())),
        None => None,
    };
    let rescoring = opts.rescore > 0 || fine.is_some();
    let keep = opts.k.max(if rescoring { opts.rescore } else { 0 });
    let prepared = Queries::new(queries.to_vec(), d, None, opts.metric);
    let scorer = Scorer::new(c, &prepared, opts.hamming)?
        .with_fast_scan_candidates(opts.fast_scan_candidates)
        .with_threads(opts.threads);
    let heaps = scan(
        c,
        &scorer,
        &prepared,
        keep,
        filter.as_ref(),
        opts.threads,
        cancel,
    )?;
    let nq = prepared.len();
    let (heaps, kind) = if rescoring {
        let fine = fine.unwrap_or(c);
        (
            rescore(fine, &prepared, heaps, opts.k, opts.threads, cancel)?,
            Kind::Metric,
        )
    } else if opts.hamming && scorer.is_hamming() {
        (heaps, Kind::Hamming)
    } else if scorer.l2_is_negated_distance() {
        (heaps, Kind::NegatedDistance)
    } else {
        (heaps, Kind::Metric)
    };
    let mut hits = Hits {
        k: opts.k,
        ids: vec![Hits::NONE; nq * opts.k],
        scores: vec![f32::NAN; nq * opts.k],
        score: match kind {
            Kind::Hamming => "hamming",
            Kind::Metric | Kind::NegatedDistance => metric_name(opts.metric),
        },
        scorer: scorer.name(),
    };
    for (i, h) in heaps.iter().enumerate() {
        let qn2 = norm_sq(&queries[i * d..(i + 1) * d]);
        for (j, e) in h.sorted().into_iter().take(opts.k).enumerate() {
            hits.ids[i * opts.k + j] = map.id(e.id);
            hits.scores[i * opts.k + j] = match kind {
                Kind::Hamming | Kind::NegatedDistance => -e.score,
                Kind::Metric => reported(opts.metric, e.score, qn2),
            };
        }
    }
    Ok(hits)
}

/// What the kept scores are.
enum Kind {
    /// The metric's ranking score ([`Metric`]).
    Metric,
    /// Negated Hamming distances.
    Hamming,
    /// Negated squared distances (pq/opq lookup tables under `l2`).
    NegatedDistance,
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Ip => "ip",
        Metric::Cos => "cos",
        Metric::L2 => "l2",
    }
}

/// The score a user sees from the ranking score (greater is closer): for `l2` the ranking
/// score is `2q·x − ‖x‖²`, so the squared distance is `‖q‖²` minus it.
fn reported(m: Metric, rank: f32, qn2: f32) -> f32 {
    match m {
        Metric::L2 => (qn2 - rank).max(0.0),
        _ => rank,
    }
}

fn norm_sq(q: &[f32]) -> f32 {
    q.iter().map(|v| v * v).sum()
}

fn check_queries(queries: &[f32], d: usize) -> Result<()> {
    let name = "<queries>";
    if d == 0 || !queries.len().is_multiple_of(d) {
        return Err(Error::bad_npy(
            name,
            format!(
                "{} values are not a whole number of {d}-dimensional rows",
                queries.len()
            ),
        ));
    }
    if let Some(at) = queries.iter().position(|v| !v.is_finite()) {
        return Err(Error::bad_npy(
            name,
            format!(
                "query {}, column {} is {} (not a finite number); search needs finite queries",
                at / d,
                at % d,
                queries[at]
            ),
        ));
    }
    Ok(())
}

/// What one chunk contributes: its first row and each query's best rows in it.
struct Partial {
    chunk: usize,
    heaps: Vec<TopK>,
}

/// The best `keep` rows of every query over all of `c`'s chunks.
fn scan(
    c: &Container,
    scorer: &Scorer,
    q: &Queries,
    keep: usize,
    filter: Option<&RowFilter>,
    threads: usize,
    cancel: &AtomicBool,
) -> Result<Vec<TopK>> {
    let nq = q.len();
    let keep = keep.min(c.rows() as usize);
    let mut total = vec![TopK::new(keep); nq];
    if nq == 0 || keep == 0 {
        return Ok(total);
    }
    let floors = Floors::new(nq);
    // A scorer that splits each chunk's queries over its own workers takes the chunks
    // one at a time: each then starts from the floors of those before it.
    let threads = match scorer.splits_queries(nq) {
        true => 1,
        false => crate::par::resolve_threads(threads),
    };
    let mut behind = ReleaseBehind::for_chunks(c);
    run_ordered(
        threads,
        (0..c.chunks().len()).map(Ok),
        |i| {
            let e = c.chunks()[i];
            let range = e.first_row..e.first_row + e.rows;
            if filter.is_some_and(|f| !f.any_in(range)) {
                return Ok(Partial {
                    chunk: i,
                    heaps: Vec::new(),
                });
            }
            let heaps = scorer.scan_chunk(c, i, q, keep, &floors, filter)?;
            c.check_unchanged()?;
            Ok(Partial { chunk: i, heaps })
        },
        |p| {
            for (i, (a, b)) in total.iter_mut().zip(p.heaps).enumerate() {
                a.merge(b);
                if let Some(f) = a.full_floor() {
                    floors.raise(i, f);
                }
            }
            behind.release_chunks(c, p.chunk, p.chunk + 1);
            Ok(())
        },
        cancel,
    )?;
    Ok(total)
}

/// Queries re-ranked per job.
const RESCORE_BLOCK: usize = 16;

/// Re-ranks each query's candidates by the rows of `fine` (fetched by random access:
/// an `int8` container's codes scored in place, [`codes::Int8Rescorer`]; any other's rows
/// decoded by [`Container::get_many`]), keeping the best `k`.
fn rescore(
    fine: &Container,
    q: &Queries,
    mut coarse: Vec<TopK>,
    k: usize,
    threads: usize,
    cancel: &AtomicBool,
) -> Result<Vec<TopK>> {
    let d = fine.dims();
    let threads = crate::par::resolve_threads(threads);
    let int8 = codes::Int8Rescorer::new(fine, q)?;
    let cands: Vec<Vec<u64>> = coarse
        .iter_mut()
        .map(|h| h.best_unordered().iter().map(|e| e.id).collect())
        .collect();
    drop(coarse);
    let mut out = Vec::with_capacity(cands.len());
    run_ordered(
        threads,
        (0..cands.len()).step_by(RESCORE_BLOCK).map(Ok),
        |first| {
            let end = (first + RESCORE_BLOCK).min(cands.len());
            let mut heaps = Vec::with_capacity(end - first);
            if let Some(r) = &int8 {
                let mut chunks = vec![None; fine.chunks().len()];
                for (i, ids) in cands.iter().enumerate().take(end).skip(first) {
                    let mut top = TopK::new(k);
                    r.rescore(i, ids, &mut top, &mut chunks)?;
                    heaps.push(top);
                }
                return Ok(heaps);
            }
            let mut rows = Vec::new();
            for (i, ids) in cands.iter().enumerate().take(end).skip(first) {
                rows.resize(ids.len() * d, 0f32);
                fine.get_many(ids, &mut rows)?;
                let mut top = TopK::new(k);
                for (&id, x) in ids.iter().zip(rows.chunks_exact(d)) {
                    top.push(q.metric().score(q.get(i), x), id);
                }
                heaps.push(top);
            }
            Ok(heaps)
        },
        |heaps| {
            out.extend(heaps);
            Ok(())
        },
        cancel,
    )?;
    Ok(out)
}

/// Reads a `.npy` of queries (float32, float16 or float64; `-` reads it from stdin) into
/// memory as float32: `(rows × dims values, dims)`.
///
/// # Errors
/// [`Error::Io`] reading it, [`Error::BadNpy`] for what is not a 2-D float matrix,
/// [`Error::NonFinite`] naming the first NaN or ±Inf.
pub fn read_queries(path: &Path) -> Result<(Vec<f32>, usize)> {
    let bytes = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)
            .map_err(|e| Error::io("<stdin>", "reading", e))?;
        b
    } else {
        std::fs::read(path).map_err(|e| Error::io(path, "reading", e))?
    };
    let name = if path == Path::new("-") {
        Path::new("<stdin>")
    } else {
        path
    };
    let h = crate::npy::parse_header(name, &bytes, bytes.len() as u64)?;
    let d = h.dims as usize;
    let start = h.data_offset as usize;
    let len = h.data_len().unwrap_or(u64::MAX) as usize;
    let data = bytes
        .get(start..start.saturating_add(len))
        .ok_or_else(|| Error::bad_npy(name, "the data section is shorter than its shape"))?;
    let mut out = vec![0f32; h.rows as usize * d];
    h.dtype.to_f32(data, &mut out);
    crate::source::check_finite(&out, d, 0, name)?;
    Ok((out, d))
}
