//! `search`: the top-k rows of a container for each query, scored on the codes.
//!
//! One pass over the container's chunks in parallel ([`run_ordered`]) per block of queries,
//! in bounded memory: the chunks in flight, their pages released behind the scan, and the
//! candidates and tables of as many queries as [`SearchOptions::memory_budget`] holds
//! (one block, one pass, unless there are very many queries or a deep rescoring). Each codec is scored where it is cheapest, and exactly: the score of
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

use crate::codec::rq::Rq;
use crate::codec::{Codebook, CodecId};
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
    /// Bytes the per-query state of a search may take at once: each query's kept
    /// candidates (`max(k, rescore)` of them, on every worker), its scoring tables and its
    /// rescoring. More queries than fit are searched in blocks, one pass over the
    /// container per block, so memory stays flat however many queries and however deep
    /// the rescoring; the results are the same. At least one query goes per pass.
    /// [`DEFAULT_MEMORY_BUDGET`] by default.
    pub memory_budget: usize,
}

/// The default [`SearchOptions::memory_budget`]: 256 MiB. At 2 threads and 384 dims that
/// is about 10,700 queries a pass rescoring 100 candidates, 320 rescoring 10,000 (in
/// chunks of 2,730 rows).
pub const DEFAULT_MEMORY_BUDGET: usize = 256 << 20;

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
            memory_budget: DEFAULT_MEMORY_BUDGET,
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
    let nq = queries.len() / d;
    let block = block_queries(
        nq,
        query_bytes(c, keep, crate::par::resolve_threads(opts.threads))?,
        opts.memory_budget,
    );
    let mut hits = Hits {
        k: opts.k,
        ids: vec![Hits::NONE; nq * opts.k],
        scores: vec![f32::NAN; nq * opts.k],
        score: "",
        scorer: "",
    };
    // One pass over the container per block of queries (one block when the budget
    // allows): every query's results depend on its own scores alone, so they are the
    // same whatever the blocks.
    let mut q0 = 0;
    loop {
        let q1 = (q0 + block).min(nq);
        let part = &queries[q0 * d..q1 * d];
        let prepared = Queries::new(part.to_vec(), d, None, opts.metric);
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
        hits.score = match kind {
            Kind::Hamming => "hamming",
            Kind::Metric | Kind::NegatedDistance => metric_name(opts.metric),
        };
        hits.scorer = scorer.name();
        for (l, h) in heaps.iter().enumerate() {
            let i = q0 + l;
            let qn2 = norm_sq(&queries[i * d..(i + 1) * d]);
            for (j, e) in h.sorted().into_iter().take(opts.k).enumerate() {
                hits.ids[i * opts.k + j] = map.id(e.id);
                hits.scores[i * opts.k + j] = match kind {
                    Kind::Hamming | Kind::NegatedDistance => -e.score,
                    Kind::Metric => reported(opts.metric, e.score, qn2),
                };
            }
        }
        q0 = q1;
        if q0 >= nq {
            return Ok(hits);
        }
    }
}

/// Bytes of one kept candidate.
const ENTRY_BYTES: usize = std::mem::size_of::<topk::Entry>();

/// What one query of a block holds while `c` is searched keeping `keep` candidates on
/// `threads` workers, at most: its candidates (the merged top-k, up to `2·keep` entries
/// between selections; each worker's top-k of the chunk it scores, as many of at most
/// the chunk's rows; the finished chunks' top-k waiting to be merged in order, up to
/// `2·threads + 1` of them; the ids handed to rescoring), its scoring tables and its
/// prepared copy.
fn query_bytes(c: &Container, keep: usize, threads: usize) -> Result<usize> {
    let keep = keep.min(usize::try_from(c.rows()).unwrap_or(usize::MAX));
    let chunk = (c.header().chunk_rows as usize).max(1);
    // A top-k being pushed into holds room for `2·max(keep, 16)`; a chunk's keeps at
    // most the chunk's rows.
    let pushed = |keep: usize| 2 * keep.max(16);
    let entries = pushed(keep)
        .saturating_add(pushed(keep.min(chunk)).saturating_mul(threads))
        .saturating_add(keep.min(chunk).saturating_mul(2 * threads + 1));
    let d = c.dims();
    let spec = &c.header().codec;
    let tables = match spec.id {
        // Float tables (and, for 4-bit codes, their 8-bit copy and a contiguous float one).
        CodecId::Pq | CodecId::Opq => {
            let b = Codebook::from_params(spec.id, &spec.params, d)?;
            2 * b.m * b.ksub() * 4 + b.m * 32
        }
        CodecId::Rq => Rq::from_params(&spec.params, d)?.m() * 256 * 4,
        // The query in the codes' frame, its quantized or sign-bit copy, byte tables.
        _ => 5 * d + 32 * d.div_ceil(8),
    };
    Ok(entries
        .saturating_mul(ENTRY_BYTES)
        .saturating_add(keep.saturating_mul(8))
        .saturating_add(tables + 8 * d + 64))
}

/// Queries searched per pass: all of them when `budget` holds them at `per_query` bytes
/// each, else the fewest passes of at most what it holds (at least one query), evened
/// out, a multiple of 64 past 64 so that blocks split the queries where one pass groups
/// them (the lookup tables' 16 queries).
fn block_queries(nq: usize, per_query: usize, budget: usize) -> usize {
    let fit = (budget / per_query.max(1)).max(1);
    if fit >= nq {
        return nq.max(1);
    }
    let fit = if fit >= 64 { fit / 64 * 64 } else { fit };
    let even = nq.div_ceil(nq.div_ceil(fit));
    if fit >= 64 {
        even.next_multiple_of(64).min(fit)
    } else {
        even
    }
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
            // A chunk's best `keep` of fewer rows are all of them: a top-k of its rows
            // keeps the same, in less room.
            let keep = keep.min(e.rows as usize);
            let heaps = scorer.scan_chunk(c, i, q, keep, &floors, filter)?;
            c.check_unchanged()?;
            Ok(Partial { chunk: i, heaps })
        },
        |p| {
            for (i, (a, b)) in total.iter_mut().zip(p.heaps).enumerate() {
                a.merge(b);
                if let Some(f) = a.lazy_floor() {
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
/// Candidates decoded at a time by a rescoring job (of a codec without in-place scoring).
const RESCORE_ROWS: usize = 1024;

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
                let mut top = TopK::new(k);
                // A bounded buffer of decoded rows, however deep the rescoring.
                for ids in ids.chunks(RESCORE_ROWS) {
                    rows.resize(ids.len() * d, 0f32);
                    fine.get_many(ids, &mut rows)?;
                    for (&id, x) in ids.iter().zip(rows.chunks_exact(d)) {
                        top.push(q.metric().score(q.get(i), x), id);
                    }
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
/// memory as float32: `(rows × dims values, dims)`. The file's bytes are converted a
/// piece at a time, never held whole beside the floats.
///
/// # Errors
/// [`Error::Io`] reading it, [`Error::BadNpy`] for what is not a 2-D float matrix (or
/// whose data does not match its shape), [`Error::NonFinite`] naming the first NaN or
/// ±Inf.
pub fn read_queries(path: &Path) -> Result<(Vec<f32>, usize)> {
    use std::io::{Read, Seek};
    let stdin = path == Path::new("-");
    let name = if stdin { Path::new("<stdin>") } else { path };
    let (h, mut input): (_, Box<dyn Read>) = if stdin {
        let mut i = std::io::stdin().lock();
        (crate::npy::read_header(name, &mut i)?, Box::new(i))
    } else {
        let io = |e| Error::io(path, "reading", e);
        let mut f = std::fs::File::open(path).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let h = crate::npy::read_header(name, &mut f)?;
        // The header once more with the file's length, for its checks of the data's size;
        // this leaves the file at the data.
        let mut head = vec![0u8; h.data_offset as usize];
        f.rewind()
            .and_then(|()| f.read_exact(&mut head))
            .map_err(io)?;
        crate::npy::parse_header(name, &head, len)?;
        (h, Box::new(std::io::BufReader::new(f)))
    };
    let d = h.dims as usize;
    let size = h.dtype.size();
    let short = || Error::bad_npy(name, "the data section is shorter than its shape");
    let values = usize::try_from(h.rows)
        .ok()
        .and_then(|r| r.checked_mul(d))
        .ok_or_else(short)?;
    let mut out = vec![0f32; values];
    // A piece of 1 MiB of the file's values at a time.
    let per = (1usize << 20) / size;
    let mut buf = vec![0u8; per.min(values) * size];
    for piece in out.chunks_mut(per) {
        let bytes = &mut buf[..piece.len() * size];
        input.read_exact(bytes).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => short(),
            _ => Error::io(name, "reading", e),
        })?;
        h.dtype.to_f32(bytes, piece);
    }
    if stdin {
        let mut more = [0u8; 1];
        if input
            .read(&mut more)
            .map_err(|e| Error::io(name, "reading", e))?
            > 0
        {
            return Err(Error::bad_npy(
                name,
                "data section is longer than its shape says: something follows the matrix",
            ));
        }
    }
    crate::source::check_finite(&out, d, 0, name)?;
    Ok((out, d))
}

#[cfg(test)]
mod tests {
    use super::block_queries;

    /// Blocks never hold more than the budget (but one query), take the fewest passes,
    /// and are multiples of 64 once the budget holds 64 queries.
    #[test]
    fn blocks_fit_the_budget_in_the_fewest_passes() {
        for nq in [0usize, 1, 5, 63, 64, 65, 150, 1000, 10_007] {
            for per in [1usize, 7, 1000, 40_000] {
                for budget in [0usize, 1, 6_999, 64_000, 100_000, 300_000, 40_000_000] {
                    let b = block_queries(nq, per, budget);
                    let fit = (budget / per).max(1);
                    let what = format!("nq {nq} per {per} budget {budget}: block {b}");
                    assert!(b >= 1, "{what}");
                    if fit >= nq {
                        assert_eq!(b, nq.max(1), "{what}");
                        continue;
                    }
                    assert!(b <= fit, "{what}");
                    let fit = if fit >= 64 { fit / 64 * 64 } else { fit };
                    assert_eq!(nq.div_ceil(b), nq.div_ceil(fit), "{what}");
                    if fit >= 64 {
                        assert_eq!(b % 64, 0, "{what}");
                    }
                }
            }
        }
    }
}
