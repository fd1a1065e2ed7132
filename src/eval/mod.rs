//! `eval`: what compression cost, streamed over both files chunk by chunk.
//!
//! One pass over the container's chunks, in parallel through
//! [`run_ordered`]: each worker decodes a chunk,
//! reads the same rows of the original, and measures
//! - reconstruction quality (`quality.rs`): cosine, squared error and max error, in f64, and
//!   each row's cosine into a log-spaced histogram for percentiles (`hist.rs`);
//! - retrieval (`crate::search::exact`): exact top-k of every query over the original
//!   rows (the truth) and over the reconstructed rows (what a search over the compressed
//!   data finds), one matrix multiply per tile into bounded top-k buffers. For pq/opq
//!   containers the found top-k comes instead from the chunk's codes by ADC
//!   (`crate::search::adc`: lookup tables built once, 16 queries interleaved, then `m`
//!   vector adds per row for 16 queries), as PQ is
//!   searched in practice; rq containers likewise by their lookup tables
//!   (`crate::search::rq`), sq by its estimator; the chunk is still decoded for the
//!   quality metrics.
//!
//! Then the found candidates are re-ranked with the original floats (random reads of a few
//! rows per query) for the rescored recall. Memory is bounded by the chunks in flight and
//! the heaps (`queries × (k + rerank)` entries), never by the number of rows.

pub mod bench;
mod hist;
mod quality;
mod recall;

// The scan engine (exact float scan, pq/opq lookup tables, bounded top-k) is shared with
// `vectro search` and lives in `crate::search`.
pub use crate::search::adc;
use crate::search::{exact as search, topk};
pub mod whole;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::codec::{Codebook, CodecId};
use crate::error::{Error, Result};
use crate::format::Container;
use crate::par::run_ordered;
use crate::progress::Progress;
use crate::source::check_finite;
use crate::source::reader::{Input, NpySource, ReleaseBehind};
use adc::AdcTables;
use hist::CosHist;
pub use hist::PER_DECADE as PERCENTILE_BINS_PER_DECADE;
use quality::Quality;
pub use quality::cosine;
pub use recall::Recall;
use search::Floors;
pub use search::{Metric, Queries};
use topk::TopK;

/// Settings of an eval run.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The k of recall@k.
    pub k: Vec<usize>,
    /// How many rows of the original to use as queries (when `queries` is `None`).
    pub sample_queries: usize,
    /// A `.npy` of queries to use instead of sampled rows.
    pub queries: Option<PathBuf>,
    /// Seed of the query sample.
    pub seed: u64,
    /// Worker threads; 0 means the available cores.
    pub threads: usize,
    /// How neighbours are ranked.
    pub metric: Metric,
    /// Found candidates re-ranked with the original floats for the rescored recall.
    pub rerank: usize,
    /// Search pq/opq containers over their decoded rows, as for every other codec, instead
    /// of over their codes by ADC: for comparing the two (`vectro eval --search exact-float`).
    pub exact_float_search: bool,
    /// How to read the original beyond its path (`--column` of a Parquet or Arrow input).
    pub input: crate::source::InputOptions,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            k: vec![1, 10, 100],
            sample_queries: 100,
            queries: None,
            seed: 42,
            threads: 0,
            metric: Metric::Cos,
            rerank: 100,
            exact_float_search: false,
            input: crate::source::InputOptions::default(),
        }
    }
}

/// Everything eval measures. Serialised as the `--json` output (see docs/eval-bench.md).
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// Rows compared.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// Size of the original file.
    pub original_bytes: u64,
    /// Size of the container.
    pub compressed_bytes: u64,
    /// `original_bytes / compressed_bytes`.
    pub ratio: f64,
    /// Container bits per dimension, all overheads included.
    pub bits_per_dim: f64,
    /// Mean cosine between each row and its reconstruction.
    pub cosine_mean: f64,
    /// Smallest such cosine.
    pub cosine_min: f64,
    /// 1st percentile of the cosines (nearest rank; see [`PERCENTILE_BINS_PER_DECADE`]).
    pub cosine_p1: f64,
    /// 5th percentile of the cosines.
    pub cosine_p5: f64,
    /// Median of the cosines.
    pub cosine_median: f64,
    /// Mean squared error per element.
    pub mse: f64,
    /// Sum of squared errors over sum of squares.
    pub nmse: f64,
    /// Largest absolute error of any element.
    pub max_abs_error: f64,
    /// The ranking metric of the recall.
    pub metric: Metric,
    /// Queries used for recall.
    pub queries: usize,
    /// `sampled` (rows of the original, each excluded from its own results) or `file`.
    pub query_source: &'static str,
    /// Candidates re-ranked for the rescored recall.
    pub rerank: usize,
    /// How the found neighbours were searched: `adc` (over the pq/opq/rq codes, one lookup
    /// table per query), `estimator` (over the `sq` codes by their unbiased estimator, as
    /// `vectro search` scores them) or `exact-float` (brute force over the decoded rows).
    pub search: &'static str,
    /// Recall at each k; empty with no queries.
    pub recall: Vec<Recall>,
    /// Wall time of the evaluation.
    pub seconds: f64,
    /// Peak resident set size of this process, bytes.
    pub peak_rss_bytes: u64,
}

/// What one chunk contributes.
struct Partial {
    rows: u64,
    first_row: u64,
    quality: Quality,
    truth: Vec<TopK>,
    found: Vec<TopK>,
}

/// The running totals of a pass.
struct Totals {
    quality: Quality,
    hist: CosHist,
    truth: Vec<TopK>,
    found: Vec<TopK>,
}

impl Totals {
    fn new(nq: usize, k_truth: usize, k_found: usize) -> Totals {
        Totals {
            quality: Quality::default(),
            hist: CosHist::default(),
            truth: vec![TopK::new(k_truth); nq],
            found: vec![TopK::new(k_found); nq],
        }
    }

    /// Adds a chunk's partial, and raises the floors the workers prune with.
    fn merge(&mut self, p: Partial, floors: &(Floors, Floors)) {
        self.quality.merge(p.quality, &mut self.hist);
        for (heaps, part, floors) in [
            (&mut self.truth, p.truth, &floors.0),
            (&mut self.found, p.found, &floors.1),
        ] {
            for (i, (a, b)) in heaps.iter_mut().zip(part).enumerate() {
                a.merge(b);
                if let Some(f) = a.full_floor() {
                    floors.raise(i, f);
                }
            }
        }
    }
}

/// How the found neighbours are searched.
enum FoundSearch {
    /// Brute force over the decoded rows.
    ExactFloat,
    /// Over the pq/opq codes, with the queries' lookup tables.
    Adc(AdcTables),
    /// Over the codes by the codec's estimator (`sq`) or lookup tables (`rq`), as
    /// `vectro search` scores them.
    Estimator(crate::search::codes::Scorer),
}

/// What each block of rows is measured against.
struct Measure<'a> {
    q: &'a Queries,
    /// Dimensions per row.
    d: usize,
    /// The truth heaps' size (0: none).
    k_truth: usize,
    /// The found heaps' size (0: none).
    k_found: usize,
    /// The truth and found heaps' floors, shared by all blocks.
    floors: &'a (Floors, Floors),
}

impl Measure<'_> {
    /// Measures one block of rows from `first_row`: quality if `recon` is given, the
    /// truth heaps if `k_truth > 0`, the found heaps over `recon` if `k_found > 0`.
    fn block(&self, orig: &[f32], recon: Option<&[f32]>, first_row: u64) -> Partial {
        let (q, d, floors) = (self.q, self.d, self.floors);
        let k_found = if recon.is_some() { self.k_found } else { 0 };
        Partial {
            rows: (orig.len() / d) as u64,
            first_row,
            quality: recon.map_or_else(Quality::default, |r| Quality::of_block(orig, r, d)),
            truth: q.scan(orig, first_row, self.k_truth, &floors.0),
            found: q.scan(recon.unwrap_or(&[]), first_row, k_found, &floors.1),
        }
    }
}

/// Compares the original `.npy` with its container.
///
/// # Errors
/// [`Error::Mismatch`] when the shapes differ or the queries have other dims;
/// [`Error::Config`] for an invalid option; errors of opening or reading either file.
pub fn evaluate(
    orig: &Path,
    comp: &Path,
    opts: &EvalOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<EvalReport> {
    let observer = Observer {
        observe: &|_, _, _| (),
        merge: &mut |()| {},
    };
    Ok(evaluate_observed(orig, comp, opts, observer, progress, cancel)?.0)
}

/// What a caller measures beside eval, in the same pass: `observe(first_row, original,
/// reconstruction)` runs on the workers for each chunk (both `rows × dims`, row-major), and
/// `merge` takes its results on the calling thread in row order. Memory is the caller's:
/// a part should be bounded by the chunk, and the merged total by anything but the rows.
pub struct Observer<'a, P> {
    /// Measures one chunk.
    pub observe: &'a ObserveChunk<'a, P>,
    /// Adds one chunk's measure to the total.
    pub merge: &'a mut dyn FnMut(P),
}

/// Measures one chunk: `(first_row, original, reconstruction)` to a part.
pub type ObserveChunk<'a, P> = dyn Fn(u64, &[f32], &[f32]) -> P + Sync + 'a;

/// The neighbour lists behind the recall, per query, best first.
#[derive(Debug, Clone, Default)]
pub struct Neighbours {
    /// The row of the original each query was sampled from (`None` for a queries file).
    pub query_rows: Vec<Option<u64>>,
    /// The exact top-k over the original rows, `k` the largest of [`EvalOptions::k`].
    pub truth: Vec<Vec<u64>>,
    /// The top `max(k, rerank)` found over the compressed data (ADC for pq/opq).
    pub found: Vec<Vec<u64>>,
}

/// [`evaluate`], with an [`Observer`] fed every chunk's original and reconstructed rows,
/// and the neighbour lists of each query returned beside the report.
///
/// # Errors
/// As [`evaluate`].
pub fn evaluate_observed<P: Send>(
    orig: &Path,
    comp: &Path,
    opts: &EvalOptions,
    observer: Observer<'_, P>,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<(EvalReport, Neighbours)> {
    let Observer { observe, merge } = observer;
    let start = Instant::now();
    check_ks(&opts.k)?;
    let src = Input::open_file(orig, &opts.input)?;
    let c = Container::open(comp)?;
    let h = src.header();
    check_shapes(orig, comp, (h.rows, h.dims), (c.rows(), c.dims() as u64))?;
    let d = h.dims as usize;
    let (queries, query_source) = match &opts.queries {
        Some(p) => (load_queries(p, d, opts.metric)?, "file"),
        None => (
            sample_queries(&src, opts.sample_queries, opts.seed, opts.metric)?,
            "sampled",
        ),
    };
    // No top-k list can hold more than all the rows: a huge --k or --rerank must not
    // size a buffer by it.
    let all = h.rows as usize;
    let k_truth = opts.k.iter().copied().max().unwrap_or(1).min(all);
    let k_found = k_truth.max(opts.rerank.min(all));
    let threads = crate::par::resolve_threads(opts.threads);
    // pq/opq rows are searched on their codes, as they would be in production.
    let search = match c.header().codec.id {
        CodecId::Pq | CodecId::Opq if !opts.exact_float_search => {
            let book = Codebook::from_params(c.header().codec.id, &c.header().codec.params, d)?;
            FoundSearch::Adc(AdcTables::new(&book, &queries))
        }
        _ if !opts.exact_float_search => {
            match crate::search::codes::Scorer::estimator(&c.header().codec, d, &queries)? {
                Some(s) => FoundSearch::Estimator(s),
                None => FoundSearch::ExactFloat,
            }
        }
        _ => FoundSearch::ExactFloat,
    };
    let mut total = Totals::new(queries.len(), k_truth, k_found);
    let floors = (Floors::new(queries.len()), Floors::new(queries.len()));
    progress.begin(h.rows, h.rows * h.row_bytes() as u64);
    let mut rows_behind = ReleaseBehind::by_bytes(h.row_bytes() as u64);
    let chunk_rows = c.header().chunk_rows as u64;
    let mut chunks_behind = ReleaseBehind::for_chunks(&c);
    // The original's rows of each chunk of the container, read in order beside it.
    let ranges = c.chunks().iter().map(|e| e.first_row..e.first_row + e.rows);
    let jobs = src.ranges(ranges.collect())?.enumerate();
    let result = run_ordered(
        threads,
        jobs.map(|(i, job)| job.map(|job| (i, job))),
        |(i, job)| {
            let e = c.chunks()[i];
            // Decoded for the quality metrics whatever the search.
            let codes = c.chunk_data(i)?;
            let mut recon = vec![0f32; e.rows as usize * d];
            c.codec().decode(&codes, e.rows as usize, &mut recon);
            crate::format::decoded::check(c.path(), &recon, d, e.first_row)?;
            let mut original = vec![0f32; recon.len()];
            h.dtype.to_f32(job.bytes(), &mut original);
            // Either file cut short under its map: zeros, not data.
            c.check_unchanged()?;
            job.check_unchanged()?;
            // A NaN would poison every metric quietly (an NMSE of 0 passed its gate).
            check_finite(&original, d, e.first_row, src.path()).map_err(|x| {
                let raw = job.bytes();
                crate::npy::f64_overflow(x, raw, h.dtype, e.first_row, d)
            })?;
            let measure = Measure {
                q: &queries,
                d,
                k_truth,
                k_found: match search {
                    FoundSearch::ExactFloat => k_found,
                    _ => 0,
                },
                floors: &floors,
            };
            let mut p = measure.block(&original, Some(&recon), e.first_row);
            match &search {
                FoundSearch::Adc(t) => {
                    p.found = t.scan(&queries, &codes, e.first_row, k_found, &floors.1);
                }
                FoundSearch::Estimator(s) => {
                    let n = e.rows as usize;
                    p.found = s.scan_payload(&codes, n, e.first_row, k_found, &floors.1);
                }
                FoundSearch::ExactFloat => {}
            }
            let seen = observe(e.first_row, &original, &recon);
            Ok((p, seen))
        },
        |(p, seen)| {
            merge(seen);
            progress.advance(p.rows, p.rows * h.row_bytes() as u64);
            if let Some(r) = rows_behind.consumed(p.first_row, p.first_row + p.rows) {
                src.release_rows(r.start, r.end);
            }
            let ci = (p.first_row / chunk_rows) as usize;
            chunks_behind.release_chunks(&c, ci, ci + 1);
            total.merge(p, &floors);
            Ok(())
        },
        cancel,
    );
    progress.finish();
    result?;
    // Rows decoded from Parquet and the like are read all at once, in order; mapped
    // files row by row (`NpySource::read_rows_at`).
    let decoded = match &src {
        Input::Table(_) => {
            let mut ids: Vec<u64> = total
                .found
                .iter()
                .flat_map(|t| t.sorted().iter().map(|e| e.id).collect::<Vec<_>>())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            let mut rows = vec![0f32; ids.len() * d];
            src.read_rows(&ids, &mut rows)?;
            Some((ids, rows))
        }
        _ => None,
    };
    let exact = recall::exact_scores(
        &queries,
        &total.found,
        d,
        threads,
        |id, out| match &decoded {
            Some((ids, rows)) => {
                let i = ids.binary_search(&id).map_err(|_| {
                    Error::Config(format!("internal: row {id} was not read for re-ranking"))
                })?;
                out.copy_from_slice(&rows[i * d..(i + 1) * d]);
                Ok(())
            }
            None => src.read_rows(&[id], out),
        },
    )?;
    // Without queries there is no recall to report (rather than a recall of 0).
    let recall = if queries.is_empty() {
        Vec::new()
    } else {
        recall::recalls(&opts.k, &total.truth, &total.found, &exact, opts.rerank)
    };
    let neighbours = Neighbours {
        query_rows: (0..queries.len()).map(|i| queries.own(i)).collect(),
        truth: total.truth.iter().map(|t| t.ids(k_truth)).collect(),
        found: total.found.iter().map(|t| t.ids(k_found)).collect(),
    };
    let q = &total.quality;
    let n = (h.rows * h.dims) as f64;
    let pct = |p| {
        total
            .hist
            .percentile(p)
            // Not `clamp`, which panics on NaN or an empty range.
            .map_or(1.0, |v: f64| v.max(q.cos_min).min(q.cos_max))
    };
    Ok((
        EvalReport {
            rows: h.rows,
            dims: h.dims,
            original_bytes: src.input_bytes(),
            compressed_bytes: c.file_len(),
            ratio: src.input_bytes() as f64 / c.file_len() as f64,
            bits_per_dim: if n > 0.0 {
                c.file_len() as f64 * 8.0 / n
            } else {
                0.0
            },
            cosine_mean: if q.rows > 0 {
                q.cos_sum / q.rows as f64
            } else {
                1.0
            },
            cosine_min: if q.rows > 0 { q.cos_min } else { 1.0 },
            cosine_p1: pct(1.0),
            cosine_p5: pct(5.0),
            cosine_median: pct(50.0),
            mse: if n > 0.0 { q.sq_err / n } else { 0.0 },
            nmse: if q.sq_sum > 0.0 {
                q.sq_err / q.sq_sum
            } else {
                0.0
            },
            max_abs_error: q.max_err,
            metric: opts.metric,
            queries: queries.len(),
            query_source,
            rerank: opts.rerank,
            search: match search {
                FoundSearch::ExactFloat => "exact-float",
                FoundSearch::Adc(_) => "adc",
                FoundSearch::Estimator(s) => s.name(),
            },
            recall,
            seconds: start.elapsed().as_secs_f64(),
            peak_rss_bytes: crate::par::peak_rss_bytes(),
        },
        neighbours,
    ))
}

fn check_ks(ks: &[usize]) -> Result<()> {
    if ks.is_empty() || ks.contains(&0) {
        return Err(Error::Config(format!(
            "--k must list one or more k of at least 1, got {ks:?}"
        )));
    }
    Ok(())
}

pub(crate) fn check_shapes(orig: &Path, comp: &Path, o: (u64, u64), c: (u64, u64)) -> Result<()> {
    let what = if o.1 != c.1 {
        "dims"
    } else if o.0 != c.0 {
        "rows"
    } else {
        return Ok(());
    };
    Err(Error::Mismatch(format!(
        "{what} differ: {} is ({}, {}) but {} holds ({}, {}); pass the .npy this container was compressed from",
        orig.display(),
        o.0,
        o.1,
        comp.display(),
        c.0,
        c.1
    )))
}

/// `n` distinct rows of the original, drawn with `seed`, in row order.
fn sample_queries(src: &Input, n: usize, seed: u64, metric: Metric) -> Result<Queries> {
    let h = src.header();
    let d = h.dims as usize;
    let n = n.min(h.rows as usize);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ids: Vec<u64> = sample(&mut rng, h.rows as usize, n)
        .into_iter()
        .map(|i| i as u64)
        .collect();
    ids.sort_unstable();
    let mut data = vec![0f32; n * d];
    // Not through the mapping: see `NpySource::read_rows_at`.
    src.read_rows(&ids, &mut data)?;
    Ok(Queries::new(data, d, Some(ids), metric))
}

/// Every row of a queries `.npy`, which must have `dims` columns.
fn load_queries(path: &Path, dims: usize, metric: Metric) -> Result<Queries> {
    let q = NpySource::open(path)?;
    let h = q.header();
    if h.dims as usize != dims {
        return Err(Error::Mismatch(format!(
            "{}: queries have {} dims but the data has {dims}; use queries embedded with the same model",
            path.display(),
            h.dims
        )));
    }
    let mut data = vec![0f32; h.rows as usize * dims];
    h.dtype.to_f32(q.row_bytes(0, h.rows), &mut data);
    q.check_unchanged()?;
    check_finite(&data, dims, 0, path)?;
    Ok(Queries::new(data, dims, None, metric))
}
