//! Search over PQ/OPQ codes by asymmetric distance computation (ADC), without decoding.
//!
//! For each query, one table holds the squared distance from each query subvector to each
//! centroid of its subspace (`m × 2^nbits` floats); the distance to a row is then a sum of
//! `m` table lookups. OPQ queries are rotated once, and rotation preserves distances, so
//! the ADC distance is exactly `‖q − x̂‖²` with `x̂` the decoded row, up to rounding.
//!
//! ```
//! # use vectro::codec::{Codebook, Codec, Pq, codebook::TrainingFacts};
//! # use vectro::eval::adc::adc_search;
//! // A codebook as a container's codec parameters hold it, e.g. from
//! // `Codebook::from_params(header.codec.id, &header.codec.params, dims)`.
//! # let book = Codebook { dims: 2, m: 1, nbits: 4, rotation: None, aniso: 1.0, unit: false,
//! #     centroids: (0..32).map(|i| i as f32).collect(),
//! #     facts: TrainingFacts { sample_rows: 0, kmeans_iterations: 0, opq_iterations: 0,
//! #         distortion: 0.0, seed: 0 } };
//! let codes: Vec<u8> = vec![0, 3, 1]; // rows × code_bytes, the chunk payloads concatenated
//! let queries = [6.0f32, 7.0]; // n_queries × dims
//! let top = adc_search(&book, &codes, &queries, 2);
//! assert_eq!(top, vec![vec![1, 2]]); // row ids of the 2 nearest rows per query, nearest first
//! ```

use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;

use super::exact::{Floors, Metric, Queries};
use super::filter::RowFilter;
use super::huge::LanesBuf;
use super::topk::TopK;
use crate::codec::Codebook;
use crate::codec::opq::rotate;
use crate::codec::pq::inv_length;
use crate::simd;
use crate::simd::adc::{BLOCK, Lanes, Term, block_sums};
use crate::simd::fastscan::{self, BLOCK_BYTES_PER_PAIR, BLOCK_ROWS};

/// The ids of the `k` rows nearest (squared L2) to each query, nearest first, ties to the
/// smaller id; nearest to the decoded rows, so scaled to unit length for a
/// [`Codebook::unit`] codebook. `codes` holds the rows' codes back to back (`rows × codebook.code_bytes()`,
/// as the chunk payloads are, in row order); `queries` is `n × codebook.dims` floats.
/// Blocks of 16 queries run in parallel on the current rayon pool.
///
/// # Panics
/// If `codes` or `queries` is not a whole number of rows.
pub fn adc_search(codebook: &Codebook, codes: &[u8], queries: &[f32], k: usize) -> Vec<Vec<u64>> {
    let (d, cb) = (codebook.dims, codebook.code_bytes());
    assert!(
        codes.len().is_multiple_of(cb) && queries.len().is_multiple_of(d),
        "adc_search: ragged input"
    );
    let queries = Queries::new(queries.to_vec(), d, None, Metric::L2);
    let nq = queries.len();
    if k == 0 || codes.is_empty() {
        return vec![Vec::new(); nq];
    }
    // Every row by its float lookups (the fast-scan's float tables interleaved again).
    let tables = AdcTables::new(codebook, &queries).without_fast_scan();
    let inv_norm = if codebook.unit {
        tables.inv_norms(codes)
    } else {
        Vec::new()
    };
    let blocks: Vec<Vec<Vec<u64>>> = (0..nq.div_ceil(BLOCK))
        .into_par_iter()
        .map_init(Vec::new, |sums, b| {
            let mut heaps = vec![TopK::new(k); BLOCK.min(nq - b * BLOCK)];
            let rows = Candidates {
                codes,
                first_row: 0,
                inv_norm: &inv_norm,
                filter: None,
            };
            tables.scan_block(b, rows, &mut heaps, &[None; BLOCK], sums);
            heaps.iter().map(|h| h.ids(k)).collect()
        })
        .collect();
    blocks.into_iter().flatten().collect()
}

/// The rows a query block is scanned against.
#[derive(Clone, Copy)]
struct Candidates<'a> {
    /// Their codes.
    codes: &'a [u8],
    /// The row number of the first.
    first_row: u64,
    /// Each row's `1/‖x̂‖`, for cosine (empty otherwise).
    inv_norm: &'a [f32],
    /// The rows that may be returned (all with `None`).
    filter: Option<&'a RowFilter>,
}

/// Rows summed at a time by [`AdcTables::scan_block`] (a default chunk of 384-d rows is
/// 2730): their sums take 256 KiB, their codes 192 KiB at m = 48.
const ROW_TILE: usize = 4096;
/// Rows whose float sums the 4-bit fast-scan adds side by side.
const EXACT_LANES: usize = 8;
/// Bytes of the tables of the subspaces summed over a row tile at a time: with the sums
/// and codes, within a 1 MiB L2. (12 subspaces of 8-bit codes, 192 of 4-bit ones.)
const GROUP_BYTES: usize = 192 << 10;

/// The lookup tables of every query over a PQ/OPQ codebook, built once per eval and then
/// used on every chunk's codes: eval's search over the compressed rows without decoding.
///
/// The score of row `x̂` (the decoded row; `ŷ = x̂·R` its rotated form for OPQ, the
/// concatenation of its centroids) for query `q` (unit length for cosine) is greater for
/// closer rows, and is exactly the metric over the reconstruction, up to rounding:
/// - `l2`: `−Σ_s ‖q_s − c_s‖² = −‖qR − ŷ‖² = −‖q − x̂‖²` (tables of squared distances; a
///   rotation preserves distances). It ranks as the float path's `2q·x̂ − ‖x̂‖²` does.
/// - `ip`: `Σ_s q_s·c_s = qR·ŷ = q·x̂` (tables of inner products; a rotation preserves them).
/// - `cos`: the `ip` sum over `‖x̂‖ = ‖ŷ‖ = √(Σ_s ‖c_s‖²)`. The subspaces split the
///   coordinates, so the squared norm has no cross terms: it is `m` lookups in one table of
///   centroid norms shared by all queries, once per row, from the codes alone. A zero
///   reconstruction scores 0, as in the float path.
/// - A unit-length codebook ([`Codebook::unit`]) decodes `x̃ = x̂/‖x̂‖`: `ip` is the `cos`
///   score above, and `l2` ranks by `2q·x̃ − ‖x̃‖² = 2·(q·x̂)/‖x̂‖ − 1` (inner-product tables
///   and the same norm lookups; `0` for a zero row), as the float path ranks `x̃`.
///
/// Queries go in blocks of [`BLOCK`], their tables interleaved (`T[s][j]` holds all the
/// block's values for centroid `j` of subspace `s`), so that a row's scores for the whole
/// block are `m` vector adds ([`block_sums`]). Each row's sum still runs over the
/// subspaces in order, lane by lane, so scores, and results, are the same for any thread
/// count, chunking or SIMD level. The tables take `⌈queries/16⌉ × 16 × m × 2^nbits × 4`
/// bytes (49 MB for 1000 queries at m = 48, nbits = 8; 786 KB a block).
#[derive(Debug)]
pub(crate) struct AdcTables {
    m: usize,
    ksub: usize,
    nbits: u8,
    code_bytes: usize,
    metric: Metric,
    /// The codebook decodes to unit length ([`Codebook::unit`]).
    unit: bool,
    /// `blocks × m × ksub` vectors.
    tables: LanesBuf,
    /// `‖c_{s,j}‖²` at `s × ksub + j` (cosine or a unit-length codebook, else empty).
    norms: Vec<f32>,
    /// The 8-bit tables of the 4-bit fast-scan (`nbits = 4`), else `None`.
    fast: Option<FastTables>,
    /// The fast-scan's rows scored exactly per chunk and query: 0 for every row whose
    /// bound may reach the top-k (exact search), else only those among the best this
    /// many (at least `k`) by their 8-bit estimate ([`AdcTables::with_candidates`]).
    candidates: usize,
    /// The workers the fast-scan splits a chunk's query blocks over (`None`: the calling
    /// thread alone), see [`AdcTables::with_threads`]: one of [`shared_pool`]'s.
    pool: Option<Arc<rayon::ThreadPool>>,
}

/// Each query's tables quantized to `u8` for [`fastscan::block_scores`], and how a row's
/// quantized sum bounds its exact score.
///
/// For query `q` let `v_s[j] = σ·T_s[j]` (`σ = −1` for the squared-distance tables, so
/// that greater is better, `+1` for products), `min_s = min_j v_s[j]`, and
/// `a = ⌊min(255, 65535/2p)⌋ / max_s (max_j v_s[j] − min_s)` (`p` pairs of sub-quantizers,
/// so that no sum of `2p` entries overflows `u16`). The 8-bit entry is
/// `e_s[j] = round(a·(v_s[j] − min_s))`, within `1/2` of the real value, so a row whose
/// entries sum to `Q` has `σ·S ≤ Σ_s min_s + Q/a + m/(2a)` (`S` its exact sum), plus the
/// float rounding of the exact sum, which `base` also covers. The slacks are each table's
/// actual rounding (its entries' greatest error above, and below), at most `1/2` a table.
#[derive(Debug)]
struct FastTables {
    /// Sub-quantizer pairs: the code bytes of a row.
    pairs: usize,
    /// `queries × pairs × 32` entries, laid out as [`fastscan`] reads them.
    luts: Vec<u8>,
    /// Per query, `1/a`.
    step: Vec<f32>,
    /// Per query, `Σ_s min_s` plus the slack: `σ·S ≤ base + Q·step` for every row.
    base: Vec<f32>,
    /// Per query, `Σ_s min_s` less the slack: `σ·S ≥ low + Q·step` for every row.
    low: Vec<f32>,
    /// The float tables, a query's `m × 16` entries contiguous (query `i`'s entry `j` of
    /// sub-quantizer `s` is `exact[i·m + s].0[j]`): the few rows scored exactly per query
    /// and chunk read 6 KB of them (at m = 96) rather than one 64-byte line of the
    /// interleaved tables per lookup, which missed cache on most lookups. The fast-scan
    /// keeps only these (no interleaved copy, see [`AdcTables::fast_tables`]).
    exact: LanesBuf,
}

impl AdcTables {
    /// The tables of every query of `queries` (as prepared for their metric).
    pub(crate) fn new(book: &Codebook, queries: &Queries) -> AdcTables {
        let (d, n) = (book.dims, queries.len());
        let mut q = vec![0f32; n * d];
        for (i, out) in q.chunks_exact_mut(d.max(1)).enumerate() {
            out.copy_from_slice(queries.get(i));
        }
        if let Some(r) = &book.rotation {
            let mut rotated = vec![0f32; q.len()];
            rotate(&q, d, r, &mut rotated);
            q = rotated;
        }
        let metric = queries.metric();
        let per_block = book.m * book.ksub();
        // The 4-bit fast-scan reads each query's tables on their own: it builds them block
        // by block below ([`AdcTables::fast_tables`]) and keeps no interleaved copy.
        let tables = if book.nbits == 4 {
            LanesBuf::zeroed(0)
        } else {
            let len = n.div_ceil(BLOCK).checked_mul(per_block);
            let mut tables = LanesBuf::zeroed(len.expect("ADC tables overflow the address space"));
            tables
                .par_chunks_mut(per_block.max(1))
                .zip(q.par_chunks(BLOCK * d.max(1)))
                .for_each(|(t, qs)| block_table(book, qs, metric, t));
            tables
        };
        // A unit-length codebook decodes `x̂ / ‖x̂‖`: every metric scores through the
        // inner product and the row's `1/‖x̂‖`.
        let norms = if metric == Metric::Cos || book.unit {
            book.centroids
                .chunks_exact(book.dsub())
                .map(|c| c.iter().map(|v| v * v).sum())
                .collect()
        } else {
            Vec::new()
        };
        let mut t = AdcTables {
            m: book.m,
            ksub: book.ksub(),
            nbits: book.nbits,
            code_bytes: book.code_bytes(),
            metric,
            unit: book.unit,
            tables,
            norms,
            fast: None,
            candidates: 0,
            pool: None,
        };
        if t.nbits == 4 {
            t.fast = Some(t.fast_tables(book, &q, n));
        }
        t
    }

    /// The same tables scanned without the 4-bit fast-scan: the float lookups for every
    /// row (the reference the fast-scan's results equal), from the fast-scan's float
    /// tables interleaved again (the same values).
    pub(crate) fn without_fast_scan(mut self) -> AdcTables {
        if let Some(f) = self.fast.take() {
            let (m, nq) = (self.m, f.step.len());
            let mut t = LanesBuf::zeroed(nq.div_ceil(BLOCK) * m * self.ksub);
            for i in 0..nq {
                let (b, l) = (i / BLOCK, i % BLOCK);
                for s in 0..m {
                    for j in 0..self.ksub {
                        t[(b * m + s) * self.ksub + j].0[l] = f.exact[i * m + s].0[j];
                    }
                }
            }
            self.tables = t;
        }
        self
    }

    /// The same tables, the 4-bit fast-scan scoring exactly only the rows among the best
    /// `candidates` (at least the `k` asked for) of each chunk by their 8-bit estimate,
    /// ties included, for each query: an approximate search whose results are the best
    /// by the exact float sum among those rows. 0 is the exact search; a count of at
    /// least the rows of a chunk gives its results. Other codes ignore it.
    pub(crate) fn with_candidates(mut self, candidates: usize) -> AdcTables {
        self.candidates = candidates;
        self
    }

    /// The same tables, the exact 4-bit fast-scan splitting each chunk's blocks of
    /// queries over a pool of `threads` workers (0: the available cores; never more than
    /// the cores): a search's chunks are few and uneven, and the queries of one chunk
    /// are independent, so every worker keeps busy until the last chunk. Results are the
    /// same for any count; without a pool (one thread, or the system refusing threads)
    /// the calling thread scans alone. Other codes ignore it.
    pub(crate) fn with_threads(mut self, threads: usize) -> AdcTables {
        let workers = crate::par::resolve_threads(threads).min(crate::par::default_threads());
        // Only when there are queries enough to split ([`AdcTables::splits_queries`]): a
        // search of a few queries starts no threads of its own.
        let queries = self.fast.as_ref().map_or(0, |f| f.step.len());
        if workers > 1 && queries.div_ceil(BLOCK) >= 2 * workers {
            self.pool = shared_pool(workers);
        }
        self
    }

    /// Whether the scan of `queries` queries splits each chunk's query blocks over the
    /// pool ([`AdcTables::with_threads`]): when there are at least two blocks a worker.
    /// The caller then scans the chunks one at a time, so that each chunk starts from
    /// the floors the chunks before it reached.
    pub(crate) fn splits_queries(&self, queries: usize) -> bool {
        self.candidates == 0
            && self
                .pool
                .as_ref()
                .is_some_and(|p| queries.div_ceil(BLOCK) >= 2 * p.current_num_threads())
    }

    /// `out[r]` = the score of row `r` whose `σ·S` is `add + qs[r]·step` (the bits the
    /// scan's per-row scoring gives), one loop per metric so that it vectorizes.
    fn bounds_into(&self, add: f32, step: f32, qs: &[u16], inv: &[f32], out: &mut Vec<f32>) {
        out.clear();
        let signed = qs.iter().map(|&q| add + f32::from(q) * step);
        match (self.metric, self.unit) {
            (Metric::L2, false) | (Metric::Ip, false) => out.extend(signed),
            (Metric::Cos, _) | (Metric::Ip, true) => {
                out.extend(signed.zip(inv).map(|(s, &i)| s * i));
            }
            (Metric::L2, true) => out.extend(
                signed
                    .zip(inv)
                    .map(|(s, &i)| 2.0 * (s * i) - if i > 0.0 { 1.0 } else { 0.0 }),
            ),
        }
    }

    /// Whether rows are scanned by the 4-bit fast-scan.
    pub(crate) fn is_fast_scan(&self) -> bool {
        self.fast.is_some()
    }

    /// The float and quantized tables of the `nq` queries `q` (rotated for OPQ; see
    /// [`FastTables`]). A block of queries at a time in parallel: its interleaved tables
    /// ([`block_table`], the bits [`AdcTables::scan_block`] sums) in a scratch of the
    /// worker's, quantized lane by lane for the whole block ([`quantize_block`]), then each
    /// query's float tables taken out contiguous.
    fn fast_tables(&self, book: &Codebook, q: &[f32], nq: usize) -> FastTables {
        let (m, ksub, d) = (self.m, self.ksub, book.dims);
        debug_assert_eq!(ksub, 16);
        let pairs = self.code_bytes;
        let bb = pairs * BLOCK_BYTES_PER_PAIR;
        let sigma = if self.l2_is_negated_distance() {
            -1.0
        } else {
            1.0
        };
        let metric = self.metric;
        let mut luts = vec![0u8; nq * bb];
        let mut exact = LanesBuf::zeroed(nq * m);
        let bounds: Vec<(f32, f32, f32)> = exact
            .par_chunks_mut((BLOCK * m).max(1))
            .zip(luts.par_chunks_mut((BLOCK * bb).max(1)))
            .zip(q.par_chunks((BLOCK * d).max(1)))
            .map_init(
                || (vec![Lanes::default(); m * ksub], vec![Lanes::default(); m]),
                |(table, mins), ((ex, lut), qs)| {
                    block_table(book, qs, metric, table);
                    // Each sub-quantizer's 16 × 16 (entry × query) values transposed
                    // whole, in fixed-size arrays, then each query's 16 stored at once.
                    for (s, t) in table.chunks_exact(16).enumerate() {
                        let mut by_query = [[0f32; 16]; BLOCK];
                        for (j, e) in t.iter().enumerate() {
                            for (q, v) in by_query.iter_mut().zip(e.0) {
                                q[j] = v;
                            }
                        }
                        for (ex, v) in ex.chunks_exact_mut(m.max(1)).zip(&by_query) {
                            ex[s].0 = *v;
                        }
                    }
                    quantize_block(table, pairs, sigma, m + 8, lut, mins)
                },
            )
            .collect::<Vec<_>>()
            .concat();
        let step = bounds.iter().map(|b| b.0).collect();
        let base = bounds.iter().map(|b| b.1).collect();
        let low = bounds.iter().map(|b| b.2).collect();
        FastTables {
            pairs,
            luts,
            step,
            base,
            low,
            exact,
        }
    }

    /// Whether the `l2` scores are `−‖q − x̂‖²` itself rather than `2q·x̂ − ‖x̂‖²` (both
    /// rank alike; a unit-length codebook scores the latter).
    pub(crate) fn l2_is_negated_distance(&self) -> bool {
        self.metric == Metric::L2 && !self.unit
    }

    /// The top-`k` of every query over `codes` (the codes of consecutive rows from
    /// `first_row`), each query's own row excluded and candidates below its floor in
    /// `floors` skipped: [`Queries::scan`] on the codes instead of decoded rows.
    pub(crate) fn scan(
        &self,
        queries: &Queries,
        codes: &[u8],
        first_row: u64,
        k: usize,
        floors: &Floors,
    ) -> Vec<TopK> {
        self.scan_filtered(queries, codes, first_row, k, floors, None)
    }

    /// [`AdcTables::scan`] over only the rows `filter` allows (all with `None`).
    pub(crate) fn scan_filtered(
        &self,
        queries: &Queries,
        codes: &[u8],
        first_row: u64,
        k: usize,
        floors: &Floors,
        filter: Option<&RowFilter>,
    ) -> Vec<TopK> {
        let nq = queries.len();
        let mut heaps: Vec<TopK> = (0..nq)
            .map(|i| TopK::with_floor(k, floors.get(i)))
            .collect();
        if k == 0 || nq == 0 || self.code_bytes == 0 {
            return heaps;
        }
        let inv_norm = if self.metric == Metric::Cos || self.unit {
            self.inv_norms(codes)
        } else {
            Vec::new()
        };
        if let Some(fast) = &self.fast {
            let rows = Candidates {
                codes,
                first_row,
                inv_norm: &inv_norm,
                filter,
            };
            self.scan_fast(fast, queries, rows, floors, &mut heaps);
            heaps.iter_mut().for_each(TopK::shrink);
            return heaps;
        }
        let mut sums = Vec::new();
        for (b, block) in heaps.chunks_mut(BLOCK).enumerate() {
            let own = std::array::from_fn(|l| {
                (l < block.len())
                    .then(|| queries.own(b * BLOCK + l))
                    .flatten()
            });
            let rows = Candidates {
                codes,
                first_row,
                inv_norm: &inv_norm,
                filter,
            };
            self.scan_block(b, rows, block, &own, &mut sums);
        }
        heaps.iter_mut().for_each(TopK::shrink);
        heaps
    }

    /// Offers every candidate row to the `heaps` of query block `b`, except each query's
    /// `own` row. `sums` is scratch, kept by the caller from block to block so that it is
    /// allocated once.
    fn scan_block(
        &self,
        b: usize,
        rows: Candidates<'_>,
        heaps: &mut [TopK],
        own: &[Option<u64>; BLOCK],
        sums: &mut Vec<Lanes>,
    ) {
        let Candidates {
            codes,
            first_row,
            inv_norm,
            filter,
        } = rows;
        let (m, cb) = (self.m, self.code_bytes);
        let per_block = m * self.ksub;
        let table = &self.tables[b * per_block..(b + 1) * per_block];
        // Lanes past the last query never take a candidate.
        let mut floor = [f32::INFINITY; BLOCK];
        for (f, h) in floor.iter_mut().zip(heaps.iter()) {
            *f = h.floor();
        }
        // Subspaces whose tables fit in L2 beside the rows' sums and codes.
        let group = (GROUP_BYTES / (self.ksub * size_of::<Lanes>())).max(1);
        sums.resize(ROW_TILE.min(codes.len() / cb), Lanes::default());
        for (t, tile) in codes.chunks(ROW_TILE * cb).enumerate() {
            let sums = &mut sums[..tile.len() / cb];
            sums.fill(Lanes::default());
            for s0 in (0..m).step_by(group) {
                let s = s0..(s0 + group).min(m);
                let part = &table[s.start * self.ksub..s.end * self.ksub];
                // One sequential read of the group's tables first: the hardware prefetcher
                // streams them into cache at full bandwidth, where the sums' random reads
                // would each wait for memory (each chunk reads the tables of all blocks,
                // tens of MB). It cut the scan's time by a third to a half on this
                // AVX-512 machine.
                std::hint::black_box(part.iter().fold(0u32, |a, l| a ^ l.0[0].to_bits()));
                block_sums(table, tile, m, self.nbits, s, sums);
            }
            let first = t * ROW_TILE;
            for (r, s) in sums.iter().enumerate() {
                let score = match (self.metric, self.unit) {
                    (Metric::L2, false) => s.0.map(|v| -v),
                    (Metric::Ip, false) => s.0,
                    (Metric::Cos, _) | (Metric::Ip, true) => s.0.map(|v| v * inv_norm[first + r]),
                    // `2q·x̃ − ‖x̃‖²` for `x̃ = x̂/‖x̂‖`, of length 1 (0 for a zero row).
                    (Metric::L2, true) => {
                        let inv = inv_norm[first + r];
                        let len = if inv > 0.0 { 1.0 } else { 0.0 };
                        s.0.map(|v| 2.0 * (v * inv) - len)
                    }
                };
                // Most rows beat no query's floor: one pass over the lanes rules them out.
                let mut hits = (0..BLOCK).fold(0u32, |h, l| {
                    h | (u32::from(may_enter(score[l], floor[l])) << l)
                });
                let id = first_row + (first + r) as u64;
                while hits != 0 {
                    let l = hits.trailing_zeros() as usize;
                    hits &= hits - 1;
                    // A push raises only its own lane's floor: the other bits still hold.
                    if let Some(heap) = heaps.get_mut(l)
                        && own[l] != Some(id)
                        && filter.is_none_or(|f| f.allows(id))
                    {
                        heap.push(score[l], id);
                        floor[l] = heap.floor();
                    }
                }
            }
        }
    }

    /// The 4-bit fast-scan of `rows` for every query: the kernel sums each row's 8-bit
    /// table entries and reports only the rows whose sum reaches its query's threshold
    /// ([`fastscan::block_scan`]); of those, each row whose bound may still reach the
    /// query's floor is kept, and at the end of the chunk scored exactly (the float sum,
    /// the bits [`AdcTables::scan_block`] computes), best first. So the heaps end as the
    /// float scan leaves them; only the rows scored exactly differ.
    ///
    /// The threshold is the least quantized sum whose upper bound reaches the floor
    /// (conservatively: the kept rows are then tested on their own bound). The floor rises
    /// during the scan to a score that `k` of the kept rows are known to reach from their
    /// lower bounds: without it the floor of an empty top-k rises only as rows are
    /// pushed, and the first chunk's first rows would all be scored exactly. When the
    /// score divides by the row's length (cosine, or a unit-length codebook) the rows go
    /// to the kernel sorted by that length, so that one threshold per block of 32 rows
    /// (from its rows' least and greatest length) is close to every row's own.
    fn scan_fast(
        &self,
        fast: &FastTables,
        queries: &Queries,
        rows: Candidates<'_>,
        floors: &Floors,
        heaps: &mut [TopK],
    ) {
        if self.candidates > 0 {
            return self.scan_fast_estimate(fast, queries, rows, heaps);
        }
        let Candidates {
            codes,
            first_row,
            inv_norm,
            filter,
        } = rows;
        let (m, pairs) = (self.m, fast.pairs);
        let bb = pairs * BLOCK_BYTES_PER_PAIR;
        let n = codes.len() / pairs;
        let nb = n.div_ceil(BLOCK_ROWS);
        let per_row = self.metric == Metric::Cos || self.unit;
        // Rows in block order: by `1/‖x̂‖`, greatest first (ties by row), when the score
        // depends on it.
        let order: Vec<u32> = if per_row {
            let mut o: Vec<u32> = (0..n as u32).collect();
            o.sort_unstable_by(|&a, &b| {
                inv_norm[b as usize]
                    .total_cmp(&inv_norm[a as usize])
                    .then(a.cmp(&b))
            });
            o
        } else {
            Vec::new()
        };
        let mut blocks = vec![0u8; nb * bb];
        if per_row {
            let mut sorted = Vec::with_capacity(codes.len());
            for &r in &order {
                sorted.extend_from_slice(&codes[r as usize * pairs..][..pairs]);
            }
            fastscan::pack_blocks(&sorted, pairs, &mut blocks);
        } else {
            fastscan::pack_blocks(codes, pairs, &mut blocks);
        }
        // Per block, `‖x̂‖` of its shortest and longest rows; `None` for a block with a
        // zero row (score 0 whatever its sum: every row of it goes to the bound test).
        let spans: Vec<Option<(f64, f64)>> = if per_row {
            (0..nb)
                .map(|b| {
                    let (hi, lo) = (
                        inv_norm[order[b * BLOCK_ROWS] as usize],
                        inv_norm[order[((b + 1) * BLOCK_ROWS).min(n) - 1] as usize],
                    );
                    (lo > 0.0).then(|| (1.0 / f64::from(hi), 1.0 / f64::from(lo)))
                })
                .collect()
        } else {
            Vec::new()
        };
        let sigma = if self.l2_is_negated_distance() {
            -1.0
        } else {
            1.0
        };
        let (metric, unit) = (self.metric, self.unit);
        let scan = |(b, block): (usize, &mut [TopK])| {
            let (mut keyed, mut hits) = (Vec::new(), Vec::new());
            let q0 = b * BLOCK;
            let mut sink = ScanSink {
                metric,
                unit,
                per_row,
                n,
                order: &order,
                inv: inv_norm,
                spans: &spans,
                first_row,
                filter,
                own: std::array::from_fn(|l| {
                    (l < block.len()).then(|| queries.own(q0 + l)).flatten()
                }),
                base: &fast.base[q0..q0 + block.len()],
                low: &fast.low[q0..q0 + block.len()],
                step: &fast.step[q0..q0 + block.len()],
                states: block
                    .iter()
                    .map(|h| QueryScan {
                        floor: f32::NEG_INFINITY,
                        slope: 0.0,
                        offset: 0.0,
                        t: 0,
                        lows: BinaryHeap::new(),
                        k: h.k(),
                        cands: Vec::new(),
                    })
                    .collect(),
            };
            // The floors other chunks reached since this one's heaps were made.
            for (l, h) in block.iter().enumerate() {
                sink.set_floor(l, h.floor().max(floors.get(q0 + l)));
            }
            fastscan::block_scan(
                &fast.luts[q0 * bb..(q0 + block.len()) * bb],
                pairs,
                &blocks,
                &mut sink,
            );
            for (l, (heap, st)) in block.iter_mut().zip(&sink.states).enumerate() {
                let i = q0 + l;
                let (base, step) = (fast.base[i], fast.step[i]);
                let inv = |r: usize| if per_row { inv_norm[r] } else { 0.0 };
                let up = |c: usize| {
                    let (r, q) = (st.cands[c].0 as usize, st.cands[c].1);
                    row_score(metric, unit, base + f32::from(q) * step, inv(r))
                };
                heap.raise_floor(st.floor);
                let floor = heap.floor();
                hits.clear();
                hits.extend((0..st.cands.len()).filter(|&c| may_enter(up(c), floor)));
                let t = &fast.exact[i * m..(i + 1) * m];
                let exact = |group: &[usize], sums: &mut [f32; EXACT_LANES]| {
                    let mut rows = [0usize; EXACT_LANES];
                    for (r, &c) in rows.iter_mut().zip(group) {
                        *r = st.cands[c].0 as usize;
                    }
                    self.exact_group(t, codes, pairs, &rows[..group.len()], sums)
                };
                best_first(heap, &mut hits, &mut keyed, up, exact, |sum, c| {
                    let r = st.cands[c].0 as usize;
                    (
                        row_score(metric, unit, sigma * sum, inv(r)),
                        first_row + r as u64,
                    )
                });
                // For the chunks still to come: `k` rows reach it.
                if let Some(f) = heap.full_floor() {
                    floors.raise(i, f);
                }
            }
        };
        match &self.pool {
            Some(pool) if self.splits_queries(heaps.len()) => {
                pool.install(|| heaps.par_chunks_mut(BLOCK).enumerate().for_each(scan));
            }
            _ => heaps.chunks_mut(BLOCK).enumerate().for_each(scan),
        }
    }

    /// The opt-in approximate 4-bit fast-scan ([`AdcTables::with_candidates`]): the
    /// quantized sums of all rows, then the exact float sum of only the rows among each
    /// query's best `candidates` by their 8-bit estimate whose bound may still reach its
    /// floor.
    fn scan_fast_estimate(
        &self,
        fast: &FastTables,
        queries: &Queries,
        rows: Candidates<'_>,
        heaps: &mut [TopK],
    ) {
        let Candidates {
            codes,
            first_row,
            inv_norm,
            filter,
        } = rows;
        let (m, pairs) = (self.m, fast.pairs);
        let bb = pairs * BLOCK_BYTES_PER_PAIR;
        let n = codes.len() / pairs;
        let padded = n.div_ceil(BLOCK_ROWS) * BLOCK_ROWS;
        let mut blocks = vec![0u8; padded / BLOCK_ROWS * bb];
        fastscan::pack_blocks(codes, pairs, &mut blocks);
        let mut quant = vec![0u16; BLOCK.min(heaps.len()) * padded];
        let (metric, unit) = (self.metric, self.unit);
        // The score from `σ·S` (`S` the row's float sum): `−S` is the `l2` score.
        let score = |signed: f32, r: usize| {
            let inv = if inv_norm.is_empty() {
                0.0
            } else {
                inv_norm[r]
            };
            row_score(metric, unit, signed, inv)
        };
        let sigma = if self.l2_is_negated_distance() {
            -1.0
        } else {
            1.0
        };
        // Only the sum's sign differs with σ, and score is monotone in `σ·S`: each row
        // bound below is the score of an upper bound of `σ·S`, with the same roundings.
        let by_quant_alone = !(metric == Metric::Cos || unit);
        let (mut lows, mut scratch, mut scratch16) = (Vec::new(), Vec::new(), Vec::new());
        let mut masked: Vec<u16> = Vec::new();
        let mut hits = Vec::new();
        let mut keyed: Vec<(f32, usize)> = Vec::new();
        for (b, block) in heaps.chunks_mut(BLOCK).enumerate() {
            let q0 = b * BLOCK;
            let out = &mut quant[..block.len() * padded];
            fastscan::block_scores(
                &fast.luts[q0 * bb..(q0 + block.len()) * bb],
                pairs,
                &blocks,
                out,
            );
            for (l, (heap, qs)) in block.iter_mut().zip(out.chunks_exact(padded)).enumerate() {
                let (i, qs) = (q0 + l, &qs[..n]);
                let own = queries.own(i);
                let (step, base, low) = (fast.step[i], fast.base[i], fast.low[i]);
                let own_here = own.is_some_and(|o| (first_row..first_row + n as u64).contains(&o));
                let allowed = |r: usize| {
                    let id = first_row + r as u64;
                    own != Some(id) && filter.is_none_or(|f| f.allows(id))
                };
                // The least quantized sum whose bound reaches `floor`, one lower for the
                // rounding of this division (`as` saturates; NaN gives 0, all rows).
                let least = |floor: f32| (((floor - base) / step).floor() as i32).saturating_sub(1);
                hits.clear();
                // Rows whose 16-row run has no row passing `any` are skipped whole (a
                // vectorized test); the others each pass `pass` and the filter.
                let collect = |any: &dyn Fn(usize, usize) -> bool,
                               pass: &dyn Fn(usize) -> bool,
                               hits: &mut Vec<usize>| {
                    for start in (0..n).step_by(16) {
                        let end = (start + 16).min(n);
                        if any(start, end) {
                            hits.extend((start..end).filter(|&r| pass(r) && allowed(r)));
                        }
                    }
                };
                let restricted = filter.is_some() || own_here;
                // Only the rows among the best `candidates` of this chunk by
                // their 8-bit estimate (ties kept) are scored exactly; the floor comes
                // from exact scores alone.
                let want = self.candidates.max(heap.k());
                let floor = heap.floor();
                if by_quant_alone {
                    let qk = if restricted {
                        masked.clear();
                        masked.extend(
                            qs.iter()
                                .enumerate()
                                .map(|(r, &v)| if allowed(r) { v } else { 0 }),
                        );
                        kth_floor_u16(&masked, want, &mut scratch16)
                    } else {
                        kth_floor_u16(qs, want, &mut scratch16)
                    };
                    let t = least(floor).max(qk.map_or(0, i32::from));
                    let above = |r: usize| i32::from(qs[r]) >= t;
                    collect(
                        &|a, e| qs[a..e].iter().fold(false, |h, &v| h | (i32::from(v) >= t)),
                        &above,
                        &mut hits,
                    );
                } else {
                    // The estimate is the middle of the bounds.
                    self.bounds_into(0.5 * (base + low), step, qs, inv_norm, &mut lows);
                    if restricted {
                        for (r, v) in lows.iter_mut().enumerate() {
                            if !allowed(r) {
                                *v = f32::NEG_INFINITY;
                            }
                        }
                    }
                    let cut = kth_floor(&lows, want, &mut scratch);
                    let lows = &lows;
                    collect(
                        &|a, e| lows[a..e].iter().fold(false, |h, &v| h | may_enter(v, cut)),
                        &|r| {
                            may_enter(lows[r], cut)
                                && may_enter(score(base + f32::from(qs[r]) * step, r), floor)
                        },
                        &mut hits,
                    );
                }
                let up = |r: usize| score(base + f32::from(qs[r]) * step, r);
                let t = &fast.exact[i * m..(i + 1) * m];
                let exact = |group: &[usize], sums: &mut [f32; EXACT_LANES]| {
                    self.exact_group(t, codes, pairs, group, sums)
                };
                best_first(heap, &mut hits, &mut keyed, up, exact, |sum, r| {
                    (score(sigma * sum, r), first_row + r as u64)
                });
            }
        }
    }

    /// The float sums of one query (`table`: its `m × 16` entries, as
    /// [`FastTables::exact`] holds them) over the rows `group` (at most [`EXACT_LANES`])
    /// into `sums`, side by side: each row's sum runs over the subspaces in order as
    /// [`AdcTables::scan_block`]'s does (the same bits), and the lanes' independent chains
    /// of adds overlap.
    #[inline(always)]
    fn exact_group(
        &self,
        table: &[Lanes],
        codes: &[u8],
        pairs: usize,
        group: &[usize],
        sums: &mut [f32; EXACT_LANES],
    ) {
        let m = self.m;
        // Lanes past the group's rows sum row `group[0]` again, unused.
        let row: [&[u8]; EXACT_LANES] = std::array::from_fn(|j| {
            let r = group.get(j).copied().unwrap_or(group[0]);
            &codes[r * pairs..(r + 1) * pairs]
        });
        *sums = [0f32; EXACT_LANES];
        // `get_code(code, s, 4)`: sub-quantizer `s` in byte `s/2`, the low nibble for even
        // `s`; a byte at a time, its low nibble's entry added before its high one's.
        for p in 0..m / 2 {
            let (lo, hi) = (&table[2 * p].0, &table[2 * p + 1].0);
            for (sum, code) in sums.iter_mut().zip(&row) {
                let c = code[p];
                *sum += lo[usize::from(c & 0x0f)];
                *sum += hi[usize::from(c >> 4)];
            }
        }
        if m % 2 == 1 {
            let t = &table[m - 1].0;
            for (sum, code) in sums.iter_mut().zip(&row) {
                *sum += t[usize::from(code[m / 2] & 0x0f)];
            }
        }
    }

    /// `1/‖x̂‖` of every row of `codes` (0 for a zero row), from the centroid norms.
    fn inv_norms(&self, codes: &[u8]) -> Vec<f32> {
        if self.nbits == 4 && self.m.is_multiple_of(2) && self.norms.len() == self.m * 16 {
            // `inv_length`'s sum in its order (sub-quantizer `2p`, the low nibble of byte
            // `p`, then `2p + 1`), read a byte at a time from each pair's 32 norms.
            let pairs: Vec<&[f32; 32]> = self
                .norms
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32 norms a pair"))
                .collect();
            return codes
                .chunks_exact(self.code_bytes)
                .map(|code| {
                    let nsq: f32 = code
                        .iter()
                        .zip(&pairs)
                        .map(|(&c, n)| (n[usize::from(c & 0x0f)], n[16 + usize::from(c >> 4)]))
                        .fold(0.0, |acc, (lo, hi)| acc + lo + hi);
                    if nsq > 0.0 { 1.0 / nsq.sqrt() } else { 0.0 }
                })
                .collect();
        }
        codes
            .chunks_exact(self.code_bytes)
            .map(|code| {
                inv_length(code, self.m, self.nbits, |s, j| {
                    self.norms[s * self.ksub + j]
                })
            })
            .collect()
    }
}

/// The fast-scan's pool of `workers` threads, built on first use and kept for the
/// process (`None` if the system refuses a thread): a search then starts no threads of
/// its own. At most one pool per count, and counts never exceed the cores
/// ([`AdcTables::with_threads`]).
fn shared_pool(workers: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((_, p)) = pools.iter().find(|(w, _)| *w == workers) {
        return Some(Arc::clone(p));
    }
    let p = Arc::new(crate::par::pool(workers).ok()?);
    pools.push((workers, Arc::clone(&p)));
    Some(p)
}

/// Quantizes one query's tables `v(s, j)` (`m` of 16 entries; `v` greater for closer)
/// into `lut` (`pairs × 32` bytes, the layout of [`fastscan`]; entries of sub-quantizers
/// past `m` stay 0) and returns `(step, base, low)` such that any choice of one entry per
/// table, whose 8-bit entries sum to `Q`, has its float sum at most `base + Q·step` and at
/// least `low + Q·step`, when that float sum adds up at most `terms` rounded values of the
/// entries' magnitude.
///
/// With `min_s = min_j v(s, j)` and `a = ⌊min(255, 65535/2·pairs)⌋ / max_s (max_j v(s, j) −
/// min_s)`, the entry is `round(a·(v(s, j) − min_s))`, within half a step of the real
/// value: `Σ_s min_s + Q/a − m/(2a) ≤ Σ_s v_s ≤ Σ_s min_s + Q/a + m/(2a)`. The bounds take
/// each table's actual rounding rather than `1/2` (see [`slacks`]). The slack adds `2⁻²²·terms` times the
/// magnitudes summed, for the float rounding of the sums (each below `terms·2⁻²⁴` of them).
pub(crate) fn quantize_tables(
    m: usize,
    pairs: usize,
    v: impl Fn(usize, usize) -> f32,
    terms: usize,
    lut: &mut [u8],
) -> (f32, f32, f32) {
    let qmax = (65535 / (2 * pairs).max(1)).min(255) as f32;
    let (mut span, mut bias, mut mag) = (0f32, 0f32, 0f32);
    let mut mins = vec![0f32; m];
    for (s, min) in mins.iter_mut().enumerate() {
        let (lo, hi, big) = (0..16).fold(
            (f32::INFINITY, f32::NEG_INFINITY, 0f32),
            |(lo, hi, big), j| {
                let x = v(s, j);
                (lo.min(x), hi.max(x), big.max(x.abs()))
            },
        );
        *min = lo;
        span = span.max(hi - lo);
        bias += lo;
        mag += big;
    }
    let a = match qmax / span {
        a if a.is_finite() && span > 0.0 => a,
        _ => 1.0,
    };
    lut.fill(0);
    let (mut over, mut under) = (0f32, 0f32);
    for (s, &min) in mins.iter().enumerate() {
        let at = (s / 2) * BLOCK_BYTES_PER_PAIR + (s % 2) * 16;
        let (mut up, mut down) = (0f32, 0f32);
        for j in 0..16 {
            let y = (v(s, j) - min) * a;
            let e = y.round().clamp(0.0, qmax);
            lut[at + j] = e as u8;
            up = up.max(y - e);
            down = down.max(e - y);
        }
        over += up.min(0.5);
        under += down.min(0.5);
    }
    let (up, down) = slacks(m, terms, a, over, under, mag, bias);
    (1.0 / a, bias + up, bias - down)
}

/// The slacks `(up, down)` of [`quantize_tables`]'s bounds: `over` (`under`) is the sum
/// over the tables of the most any entry's scaled value `y = a·(v − min_s)` lies above
/// (below) its 8-bit entry, each at most 1/2.
///
/// `y − e` is exact in `f32` (`e` an integer, `|y − e| ≤ 1/2`, `y < 2²⁴`), so a row's
/// real sum lies within `over/a` above and `under/a` below `Σ_s min_s + Q/a`, plus the
/// rounding of `y` against the real `a·(v − min_s)` (below `2⁻²²·255` a table, covered
/// by `0.001` a table); the float sums' rounding, that of `Σ min_s` and that of
/// evaluating `base + Q·step` are each below `terms·2⁻²⁴` times the magnitudes summed.
/// Never more than the worst case `0.501·m/a` (+ the same rounding term).
#[inline(always)]
fn slacks(
    m: usize,
    terms: usize,
    a: f32,
    over: f32,
    under: f32,
    mag: f32,
    bias: f32,
) -> (f32, f32) {
    let float = 2.5e-7 * terms as f32 * (mag + bias.abs());
    let margin = 0.001 * m as f32;
    ((over + margin) / a + float, (under + margin) / a + float)
}

/// [`quantize_tables`] of each query of a block at once: `table` holds the block's
/// interleaved tables (`m × 16` vectors, entry `j` of sub-quantizer `s` at `s × 16 + j`,
/// lane `l` query `l`'s, the value `σ·table`); query `l`'s bytes go to `lut[l × pairs × 32..]`
/// (zeroed; as many queries as `lut` holds) and its bounds to the result's `l`-th entry.
/// The same bytes and bounds, bit for bit: every query's folds run over the lanes side by
/// side, in [`quantize_tables`]'s order, so that the loops vectorize across the block
/// (rounding as `f32::round` does for the non-negative values here, without its library
/// call). `mins` is scratch of `m` vectors.
fn quantize_block(
    table: &[Lanes],
    pairs: usize,
    sigma: f32,
    terms: usize,
    lut: &mut [u8],
    mins: &mut [Lanes],
) -> Vec<(f32, f32, f32)> {
    let m = mins.len();
    debug_assert_eq!(table.len(), m * 16);
    let bb = pairs * BLOCK_BYTES_PER_PAIR;
    let nl = lut.len().checked_div(bb).unwrap_or(0);
    debug_assert!(nl <= BLOCK);
    let qmax = (65535 / (2 * pairs).max(1)).min(255) as f32;
    let (mut span, mut bias, mut mag) = ([0f32; BLOCK], [0f32; BLOCK], [0f32; BLOCK]);
    for (t, min) in table.chunks_exact(16).zip(mins.iter_mut()) {
        let (mut lo, mut hi, mut big) = (
            [f32::INFINITY; BLOCK],
            [f32::NEG_INFINITY; BLOCK],
            [0f32; BLOCK],
        );
        for e in t {
            for l in 0..BLOCK {
                let x = sigma * e.0[l];
                lo[l] = lo[l].min(x);
                hi[l] = hi[l].max(x);
                big[l] = big[l].max(x.abs());
            }
        }
        for l in 0..BLOCK {
            span[l] = span[l].max(hi[l] - lo[l]);
            bias[l] += lo[l];
            mag[l] += big[l];
        }
        min.0 = lo;
    }
    let a: [f32; BLOCK] = std::array::from_fn(|l| match qmax / span[l] {
        a if a.is_finite() && span[l] > 0.0 => a,
        _ => 1.0,
    });
    let (mut over, mut under) = ([0f32; BLOCK], [0f32; BLOCK]);
    for (s, (t, min)) in table.chunks_exact(16).zip(mins.iter()).enumerate() {
        let at = (s / 2) * BLOCK_BYTES_PER_PAIR + (s % 2) * 16;
        // The sub-quantizer's entries by query, then each query's 16 bytes stored at once.
        let mut by_query = [[0u8; 16]; BLOCK];
        let (mut up, mut down) = ([0f32; BLOCK], [0f32; BLOCK]);
        for (j, e) in t.iter().enumerate() {
            let mut q = [0u8; BLOCK];
            for l in 0..BLOCK {
                // `round().clamp(0, qmax)`: NaN gives 0, and for `0 ≤ x ≤ qmax` the
                // integer part plus one when the fraction is at least 1/2 (exact: `x` is
                // below 2²³; the sum is at most `qmax ≤ 255`, so the `u8` cast is exact).
                let y = (sigma * e.0[l] - min.0[l]) * a[l];
                let x = y.max(0.0).min(qmax);
                let int = x as i32;
                let r = int + i32::from(x - int as f32 >= 0.5);
                q[l] = r as u8;
                // `quantize_tables`'s `y − e` and its folds (NaN dropped by `max`).
                let e = r as f32;
                up[l] = up[l].max(y - e);
                down[l] = down[l].max(e - y);
            }
            for (b, v) in by_query.iter_mut().zip(q) {
                b[j] = v;
            }
        }
        for l in 0..BLOCK {
            over[l] += up[l].min(0.5);
            under[l] += down[l].min(0.5);
        }
        for (l, v) in by_query.iter().enumerate().take(nl) {
            lut[l * bb + at..][..16].copy_from_slice(v);
        }
    }
    (0..nl)
        .map(|l| {
            let (up, down) = slacks(m, terms, a[l], over[l], under[l], mag[l], bias[l]);
            (1.0 / a[l], bias[l] + up, bias[l] - down)
        })
        .collect()
}

/// A score that at least `k` rows reach, given a lower bound of each row's score in
/// `lows` (−∞ or NaN for a row that does not count): no row scoring below it can be among
/// the best `k`. −∞ when fewer than `k` rows count.
///
/// Not the `k`-th largest bound itself, which would cost a selection over every row, but
/// the `k`-th largest of the maxima of `G ≥ 4k` groups of rows (row `r` in group `r mod G`):
/// `k` groups whose maxima reach it are `k` distinct rows that do. With `G` ≥ the rows it
/// is the `k`-th largest bound. `scratch` is reused from call to call.
pub(crate) fn kth_floor(lows: &[f32], k: usize, scratch: &mut Vec<f32>) -> f32 {
    if k == 0 || lows.len() < k {
        return f32::NEG_INFINITY;
    }
    let groups = (4 * k).next_multiple_of(32).min(lows.len());
    scratch.clear();
    scratch.resize(groups, f32::NEG_INFINITY);
    for part in lows.chunks(groups) {
        // `max` returns the other operand for a NaN: a NaN row never counts.
        for (m, &v) in scratch.iter_mut().zip(part) {
            *m = m.max(v);
        }
    }
    scratch.retain(|v| *v > f32::NEG_INFINITY);
    if scratch.len() < k {
        return f32::NEG_INFINITY;
    }
    let (_, kth, _) = scratch.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
    *kth
}

/// [`kth_floor`] over integer bounds of which every row counts: a value that at least `k`
/// of `qs` reach (`None` if there are fewer than `k`), the `k`-th largest of the maxima of
/// the same groups.
pub(crate) fn kth_floor_u16(qs: &[u16], k: usize, scratch: &mut Vec<u16>) -> Option<u16> {
    if k == 0 || qs.len() < k {
        return None;
    }
    let groups = (4 * k).next_multiple_of(32).min(qs.len());
    scratch.clear();
    scratch.resize(groups, 0);
    // Every group holds at least one row (`groups ≤ rows`), so each maximum is a row's.
    for part in qs.chunks(groups) {
        for (m, &v) in scratch.iter_mut().zip(part) {
            *m = (*m).max(v);
        }
    }
    let (_, kth, _) = scratch.select_nth_unstable_by(k - 1, |a, b| b.cmp(a));
    Some(*kth)
}

/// The score of a row whose `σ·S` is `signed` (`inv`: its `1/‖x̂‖`, unused when the score
/// does not depend on it): the bits of every per-row scoring of the fast-scan.
#[inline(always)]
fn row_score(metric: Metric, unit: bool, signed: f32, inv: f32) -> f32 {
    match (metric, unit) {
        (Metric::L2, false) | (Metric::Ip, false) => signed,
        (Metric::Cos, _) | (Metric::Ip, true) => signed * inv,
        (Metric::L2, true) => 2.0 * (signed * inv) - if inv > 0.0 { 1.0 } else { 0.0 },
    }
}

/// Scores exactly the `hits` of one query (handles of its rows) into `heap`, best first:
/// the `k` hits of the greatest upper bounds `up` are scored first and the top-k
/// compacted, so that its floor is this chunk's own `k`-th best (or better) before the
/// other hits are scored; each of those is then tested against the floor as it stands
/// when its group is formed (a row whose upper bound is below it cannot enter). The
/// top-k is the same set whatever the order of pushes: only rows that cannot enter are
/// skipped. `exact` sums a group of at most [`EXACT_LANES`] hits; `entry` gives the score
/// and id of a hit from its sum.
fn best_first(
    heap: &mut TopK,
    hits: &mut Vec<usize>,
    keyed: &mut Vec<(f32, usize)>,
    up: impl Fn(usize) -> f32,
    mut exact: impl FnMut(&[usize], &mut [f32; EXACT_LANES]),
    entry: impl Fn(f32, usize) -> (f32, u64),
) {
    let first = heap.k().min(hits.len());
    if hits.len() > 2 * first && first > 0 {
        keyed.clear();
        keyed.extend(hits.iter().map(|&r| (up(r), r)));
        keyed.select_nth_unstable_by(first - 1, |a, b| b.0.total_cmp(&a.0));
        hits.clear();
        hits.extend(keyed.iter().map(|e| e.1));
    }
    let (mut at, mut compacted) = (0, false);
    let mut group = [0usize; EXACT_LANES];
    let mut sums = [0f32; EXACT_LANES];
    while at < hits.len() {
        let floor = heap.floor();
        let mut g = 0;
        while g < EXACT_LANES && at < hits.len() {
            let r = hits[at];
            at += 1;
            if may_enter(up(r), floor) {
                group[g] = r;
                g += 1;
            }
        }
        if g > 0 {
            exact(&group[..g], &mut sums);
            for (&sum, &r) in sums.iter().zip(&group[..g]) {
                let (score, id) = entry(sum, r);
                heap.push(score, id);
            }
        }
        if at >= first && !compacted {
            // The first `k` are in: their `k`-th best is a floor.
            heap.best_unordered();
            compacted = true;
        }
    }
}

/// A lower bound kept by [`QueryScan`], ordered by [`f32::total_cmp`], least first (so
/// that a [`BinaryHeap`] of them has the least on top).
#[derive(Clone, Copy, PartialEq)]
struct Low(f32);

impl Eq for Low {}

impl PartialOrd for Low {
    fn partial_cmp(&self, other: &Low) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Low {
    fn cmp(&self, other: &Low) -> std::cmp::Ordering {
        other.0.total_cmp(&self.0)
    }
}

/// One query's state in [`AdcTables::scan_fast`]'s threshold scan of a chunk.
struct QueryScan {
    /// The floor: a score that `k` rows reach (−∞ at first, or the heap's floor).
    floor: f32,
    /// [`least_sum`]'s threshold is `norm·slope − offset`, for the row lengths `norm`
    /// of a block (both set with the floor, see [`ScanSink::set_floor`]).
    slope: f64,
    offset: f64,
    /// The threshold of every block, when it does not depend on the rows' lengths.
    t: u16,
    /// The `k` greatest lower bounds of the rows kept so far (least on top).
    lows: BinaryHeap<Low>,
    /// The query's `k`.
    k: usize,
    /// The rows kept (row in the chunk, quantized sum): each may reach the floor.
    cands: Vec<(u32, u16)>,
}

/// The [`fastscan::BlockSink`] of [`AdcTables::scan_fast`] for one block of queries.
struct ScanSink<'a> {
    metric: Metric,
    unit: bool,
    /// The score divides by the row's length (blocks sorted by it, see `spans`).
    per_row: bool,
    /// Rows of the chunk (the blocks' rows past it are padding).
    n: usize,
    /// The row at each position of the blocks (empty: the identity).
    order: &'a [u32],
    /// `1/‖x̂‖` by row (empty unless `per_row`).
    inv: &'a [f32],
    /// Per block, `‖x̂‖` of its shortest and longest rows (`None`: it has a zero row).
    spans: &'a [Option<(f64, f64)>],
    first_row: u64,
    filter: Option<&'a RowFilter>,
    own: [Option<u64>; BLOCK],
    base: &'a [f32],
    low: &'a [f32],
    step: &'a [f32],
    states: Vec<QueryScan>,
}

impl ScanSink<'_> {
    /// Sets query `l`'s floor and the thresholds that follow from it.
    fn set_floor(&mut self, l: usize, floor: f32) {
        let st = &mut self.states[l];
        st.floor = floor;
        let step = f64::from(self.step[l]);
        // The score is at least `floor` only if `σ·S·inv` (per row) or `σ·S` reaches:
        let target = match (self.metric, self.unit) {
            (Metric::L2, true) => (f64::from(floor) + 1.0) / 2.0,
            _ => f64::from(floor),
        };
        let gs = target / step;
        let bs = f64::from(self.base[l]) / step;
        // `⌊x − margin⌋` for `x = gs·norm − bs` and the margin
        // `2 + 10⁻⁵(|gs·norm| + |bs|) + 10⁻⁶(|floor| + 1)·norm/step`, gathered by `norm`
        // (`norm > 0`) so that each block's threshold costs one product and one
        // difference.
        st.slope = gs - 1e-5 * gs.abs() - 1e-6 * (f64::from(floor).abs() + 1.0) / step;
        st.offset = bs + 2.0 + 1e-5 * bs.abs();
        if !self.per_row {
            st.t = least_sum(st, 1.0);
        }
    }
}

/// The least quantized sum `Q` (as `u16`, saturating; 0 for NaN) whose upper bound
/// `base + Q·step`, times `1/norm`, may reach the floor of `st`: every smaller sum is
/// below it by at least two steps, plus margins far above the float rounding of either
/// side (`slope` and `offset`, see [`ScanSink::set_floor`]). The cast is `⌊·⌋` clamped
/// to `0..=u16::MAX`: it truncates toward zero (the floor for positive values, 0 above
/// −1) and saturates (NaN to 0).
#[inline(always)]
fn least_sum(st: &QueryScan, norm: f64) -> u16 {
    (norm * st.slope - st.offset) as u16
}

impl fastscan::BlockSink for ScanSink<'_> {
    #[inline(always)]
    fn threshold(&mut self, l: usize, b: usize) -> u16 {
        let st = &self.states[l];
        if !self.per_row {
            return st.t;
        }
        match self.spans[b] {
            // `norm·slope − offset` is least at the shortest row for a positive slope
            // (then the target is positive too), at the longest otherwise.
            Some((short, long)) => least_sum(st, if st.slope > 0.0 { short } else { long }),
            None => 0,
        }
    }

    fn hits(&mut self, l: usize, b: usize, mask: u32, sums: &[u16; BLOCK_ROWS]) {
        let (base, low, step) = (self.base[l], self.low[l], self.step[l]);
        let mut bits = mask;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let j = b * BLOCK_ROWS + i;
            if j >= self.n {
                // Padding, and so are the higher bits.
                break;
            }
            let r = match self.order.get(j) {
                Some(&r) => r as usize,
                None => j,
            };
            let id = self.first_row + r as u64;
            if self.own[l] == Some(id) || self.filter.is_some_and(|f| !f.allows(id)) {
                continue;
            }
            let inv = if self.per_row { self.inv[r] } else { 0.0 };
            let q = f32::from(sums[i]);
            let st = &mut self.states[l];
            if !may_enter(
                row_score(self.metric, self.unit, base + q * step, inv),
                st.floor,
            ) {
                continue;
            }
            st.cands.push((r as u32, sums[i]));
            let lo = row_score(self.metric, self.unit, low + q * step, inv);
            // −∞ and NaN do not count.
            if lo > f32::NEG_INFINITY && st.k > 0 {
                if st.lows.len() < st.k {
                    st.lows.push(Low(lo));
                } else if st.lows.peek().is_some_and(|m| lo > m.0) {
                    st.lows.pop();
                    st.lows.push(Low(lo));
                }
                if st.lows.len() == st.k
                    && let Some(kth) = st.lows.peek().map(|m| m.0)
                    && kth > st.floor
                {
                    self.set_floor(l, kth);
                }
            }
        }
    }
}

/// Whether [`TopK::push`] would take `score` against `floor`: exactly its test, NaN
/// included.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn may_enter(score: f32, floor: f32) -> bool {
    !(score < floor)
}

/// The interleaved tables of one block of queries (`qs`: up to [`BLOCK`] rotated queries
/// of `book.dims`) into `out` (`m × ksub` vectors): squared distances for `l2`, inner
/// products otherwise.
fn block_table(book: &Codebook, qs: &[f32], metric: Metric, out: &mut [Lanes]) {
    let d = book.dims;
    // The block's queries by coordinate, so that the lanes of an entry are contiguous.
    let mut by_dim = vec![[0f32; BLOCK]; d];
    for (l, q) in qs.chunks_exact(d).enumerate() {
        for (t, &v) in q.iter().enumerate() {
            by_dim[t][l] = v;
        }
    }
    let term = match metric {
        Metric::L2 if !book.unit => Term::SquaredDistance,
        _ => Term::Product,
    };
    simd::adc::block_table(
        &by_dim,
        &book.centroids,
        book.dsub(),
        book.ksub(),
        term,
        out,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::pq::{PqParams, get_code, train};
    use crate::codec::{Codec, CodecId, Pq};
    use crate::progress::NoProgress;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// `n` values uniform in [-1, 1).
    fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// A pq/opq codec of `text` trained on `x` (made unit length first for a unit-length
    /// codebook, which takes rows of length 1 only) and the codes of the rows it was
    /// trained on.
    fn trained(id: CodecId, text: &str, dims: usize, x: &[f32]) -> (Pq, Vec<u8>) {
        let p = PqParams::parse("pq", text, dims).unwrap();
        let x = if p.unit == Some(true) {
            unit_rows(x, dims)
        } else {
            x.to_vec()
        };
        let codec = Pq::new(train(id, &p, &x, dims, &NoProgress, &Default::default()).unwrap());
        let rows = x.len() / dims;
        let mut codes = vec![0u8; codec.encoded_len(rows)];
        codec.encode(&x, &mut codes).unwrap();
        (codec, codes)
    }

    /// A top-k's entries, best first, scores as bits.
    fn bits(t: &TopK) -> Vec<(u32, u64)> {
        t.sorted()
            .iter()
            .map(|e| (e.score.to_bits(), e.id))
            .collect()
    }

    /// One table per query and a scalar sum per row, as the scan was before the query
    /// blocks: the block layout, the kernels and the floor test must find the same top-k,
    /// scores bit for bit, for every metric, code width and a partial last block.
    #[test]
    fn block_scan_equals_a_scan_per_query_bit_for_bit() {
        let (dims, rows, nq, k) = (16, 700, 37, 25);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut x: Vec<f32> = uniform(&mut rng, rows * dims);
        // A zero row (cosine scores it 0) and a duplicate (ties go to the smaller id).
        x[..dims].fill(0.0);
        x.copy_within(5 * dims..6 * dims, 9 * dims);
        let q: Vec<f32> = uniform(&mut rng, nq * dims);
        let own: Vec<u64> = (0..nq as u64).map(|i| i * 17).collect();
        for (id, text) in [
            (CodecId::Pq, "m=4"),
            (CodecId::Pq, "m=16,nbits=4"),
            (CodecId::Opq, "m=8,opq_iters=2"),
            (CodecId::Pq, "m=4,unit=1"),
            (CodecId::Opq, "m=8,opq_iters=2,unit=1"),
        ] {
            let (codec, codes) = trained(id, text, dims, &x);
            let book = codec.codebook();
            let (m, ksub, nb) = (book.m, book.ksub(), book.nbits);
            let norms: Vec<f32> = book
                .centroids
                .chunks_exact(book.dsub())
                .map(|c| c.iter().map(|v| v * v).sum())
                .collect();
            for metric in [Metric::L2, Metric::Ip, Metric::Cos] {
                let queries = Queries::new(q.clone(), dims, Some(own.clone()), metric);
                let got =
                    AdcTables::new(book, &queries).scan(&queries, &codes, 0, k, &Floors::new(nq));
                for (qi, got) in got.iter().enumerate() {
                    let mut qv = queries.get(qi).to_vec();
                    if let Some(r) = &book.rotation {
                        rotate(queries.get(qi), dims, r, &mut qv);
                    }
                    let table = match metric {
                        Metric::L2 if !book.unit => table(book, &qv, |a, b| (a - b) * (a - b)),
                        _ => table(book, &qv, |a, b| a * b),
                    };
                    let mut want = TopK::new(k);
                    for (row, code) in codes.chunks_exact(book.code_bytes()).enumerate() {
                        let at = |s| s * ksub + get_code(code, s, nb);
                        let sum = (0..m).fold(0f32, |a, s| a + table[at(s)]);
                        let nsq: f32 = (0..m).map(|s| norms[at(s)]).sum();
                        let inv = if nsq > 0.0 { 1.0 / nsq.sqrt() } else { 0.0 };
                        let score = match (metric, book.unit) {
                            (Metric::L2, false) => -sum,
                            (Metric::Ip, false) => sum,
                            (Metric::Cos, _) | (Metric::Ip, true) => sum * inv,
                            (Metric::L2, true) => {
                                2.0 * (sum * inv) - f32::from(u8::from(nsq > 0.0))
                            }
                        };
                        if row as u64 != own[qi] {
                            want.push(score, row as u64);
                        }
                    }
                    assert_eq!(bits(got), bits(&want), "{text} {metric} query {qi}");
                    assert_eq!(got.sorted().len(), k);
                }
            }
        }
    }

    /// The 4-bit fast-scan finds the float scan's heaps bit for bit (scores and ids) for
    /// every metric, with an odd `m` (a padded pair), a partial last block of rows and of
    /// queries, each query's own row excluded, a filter and floors from other chunks; and
    /// every row's quantized sum bounds its float sum from above, within twice the slack.
    #[test]
    fn fast_scan_equals_the_float_scan_and_its_bound_holds() {
        use crate::search::filter::RowFilter;
        let (dims, rows, nq, k) = (28, 1000, 21, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(23);
        let x: Vec<f32> = uniform(&mut rng, rows * dims);
        let q: Vec<f32> = uniform(&mut rng, nq * dims);
        let own: Vec<u64> = (0..nq as u64).map(|i| i * 41).collect();
        let allow: Vec<u64> = (0..rows as u64).filter(|r| r % 7 != 3).collect();
        let filter = RowFilter::new(&allow, rows as u64 + 5);
        for (id, text) in [
            (CodecId::Pq, "m=7,nbits=4"),
            (CodecId::Pq, "m=14,nbits=4"),
            (CodecId::Opq, "m=14,nbits=4,opq_iters=2"),
            (CodecId::Pq, "m=14,nbits=4,unit=1"),
        ] {
            let (codec, codes) = trained(id, text, dims, &x);
            let book = codec.codebook();
            for metric in [Metric::L2, Metric::Ip, Metric::Cos] {
                let queries = Queries::new(q.clone(), dims, Some(own.clone()), metric);
                let fast = AdcTables::new(book, &queries);
                assert!(fast.is_fast_scan());
                let slow = AdcTables::new(book, &queries).without_fast_scan();
                // Floors as a previous chunk would leave them: the 30th best float score.
                let floors = Floors::new(nq);
                let first = slow.scan(
                    &queries,
                    &codes[..200 * codes.len() / rows],
                    0,
                    30,
                    &Floors::new(nq),
                );
                for (i, h) in first.iter().enumerate() {
                    floors.raise(i, h.sorted()[29].score);
                }
                // k = 100 (a rescoring depth) asks for more rows than the floors from
                // the lower bounds can skip: 3 groups or fewer per `k`.
                for kk in [k, 100, rows] {
                    for (fl, filt) in [(&Floors::new(nq), None), (&floors, Some(&filter))] {
                        let got = fast.scan_filtered(&queries, &codes, 5, kk, fl, filt);
                        let want = slow.scan_filtered(&queries, &codes, 5, kk, fl, filt);
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert_eq!(bits(g), bits(w), "{text} {metric} k={kk} query {i}");
                        }
                    }
                }
                // The bound, row by row, against the float sums.
                let f = fast.fast.as_ref().unwrap();
                let pairs = f.pairs;
                let nb = rows.div_ceil(BLOCK_ROWS);
                let mut blocks = vec![0u8; nb * pairs * 32];
                fastscan::pack_blocks(&codes, pairs, &mut blocks);
                let mut quant = vec![0u16; nq * nb * BLOCK_ROWS];
                fastscan::block_scores(&f.luts, pairs, &blocks, &mut quant);
                let sigma = if fast.l2_is_negated_distance() {
                    -1.0
                } else {
                    1.0
                };
                let mut tight = 0f32;
                for i in 0..nq {
                    let table = &f.exact[i * book.m..(i + 1) * book.m];
                    // Above and below: each table's own rounding, so not alike.
                    let width = f.base[i] - f.low[i];
                    for (r, code) in codes.chunks_exact(pairs).enumerate() {
                        let sum: f32 =
                            (0..book.m).fold(0f32, |a, s| a + table[s].0[get_code(code, s, 4)]);
                        let bound =
                            f.base[i] + f32::from(quant[i * nb * BLOCK_ROWS + r]) * f.step[i];
                        assert!(sigma * sum <= bound, "{text} {metric} q {i} row {r}");
                        let below =
                            f.low[i] + f32::from(quant[i * nb * BLOCK_ROWS + r]) * f.step[i];
                        assert!(sigma * sum >= below, "{text} {metric} q {i} row {r}: low");
                        assert!(bound - sigma * sum <= width + 1e-5, "{text}: loose bound");
                        tight = tight.max(0.5 * width / f.step[i]);
                    }
                }
                // The slacks are at most m/2 steps of the quantized tables each.
                assert!(
                    tight <= 0.51 * book.m as f32 + 1.0,
                    "{text}: slack {tight} steps"
                );
            }
        }
    }

    /// Split over a pool of workers, chunk after chunk with the floors passed on (as a
    /// search runs it), the exact fast-scan finds the float scan's heaps bit for bit.
    #[test]
    fn fast_scan_split_over_workers_equals_the_float_scan() {
        let (dims, rows, nq, k) = (28, 900, 70, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(47);
        let x: Vec<f32> = uniform(&mut rng, rows * dims);
        let q: Vec<f32> = uniform(&mut rng, nq * dims);
        let own: Vec<u64> = (0..nq as u64).map(|i| i * 13).collect();
        for text in ["m=14,nbits=4", "m=14,nbits=4,unit=1"] {
            let (codec, codes) = trained(CodecId::Pq, text, dims, &x);
            let book = codec.codebook();
            let cb = book.code_bytes();
            for metric in [Metric::L2, Metric::Cos] {
                let queries = Queries::new(q.clone(), dims, Some(own.clone()), metric);
                let fast = AdcTables::new(book, &queries).with_threads(2);
                if crate::par::default_threads() > 1 {
                    assert!(fast.splits_queries(nq), "{text}: no pool");
                }
                let slow = AdcTables::new(book, &queries).without_fast_scan();
                let heaps = |t: &AdcTables| {
                    let floors = Floors::new(nq);
                    let mut total = vec![TopK::new(k); nq];
                    for (c, chunk) in codes.chunks(300 * cb).enumerate() {
                        let part = t.scan(&queries, chunk, (c * 300) as u64, k, &floors);
                        for (i, (a, b)) in total.iter_mut().zip(part).enumerate() {
                            a.merge(b);
                            if let Some(f) = a.full_floor() {
                                floors.raise(i, f);
                            }
                        }
                    }
                    total
                        .iter()
                        .map(|h| {
                            h.sorted()
                                .iter()
                                .map(|e| (e.score.to_bits(), e.id))
                                .collect::<Vec<_>>()
                        })
                        .collect::<Vec<_>>()
                };
                assert_eq!(heaps(&fast), heaps(&slow), "{text} {metric}");
            }
        }
    }

    /// The fast-scan's kernel scores four queries per pass over a block's codes (then
    /// two, then one alone): a search of 1 to 7 queries, and of 97 (split over a pool
    /// where there are cores for it), with 1 and 3 threads, gives each query the heap it
    /// gets when searched alone, bit for bit.
    #[test]
    fn fast_scan_of_several_queries_equals_each_query_alone() {
        let (dims, rows, k, most) = (28, 700, 10, 97);
        let mut rng = ChaCha8Rng::seed_from_u64(53);
        let x: Vec<f32> = uniform(&mut rng, rows * dims);
        let q: Vec<f32> = uniform(&mut rng, most * dims);
        for text in ["m=14,nbits=4", "m=14,nbits=4,unit=1"] {
            let (codec, codes) = trained(CodecId::Pq, text, dims, &x);
            let book = codec.codebook();
            for metric in [Metric::L2, Metric::Cos] {
                let alone: Vec<Vec<(u32, u64)>> = (0..most)
                    .map(|i| {
                        let one =
                            Queries::new(q[i * dims..(i + 1) * dims].to_vec(), dims, None, metric);
                        let h =
                            AdcTables::new(book, &one).scan(&one, &codes, 0, k, &Floors::new(1));
                        bits(&h[0])
                    })
                    .collect();
                for nq in (1..=7).chain([most]) {
                    for threads in [1, 3] {
                        let qs = Queries::new(q[..nq * dims].to_vec(), dims, None, metric);
                        let got = AdcTables::new(book, &qs).with_threads(threads).scan(
                            &qs,
                            &codes,
                            0,
                            k,
                            &Floors::new(nq),
                        );
                        assert_eq!(got.len(), nq);
                        for (i, g) in got.iter().enumerate() {
                            assert_eq!(
                                bits(g),
                                alone[i],
                                "{text} {metric}: {nq} queries, {threads} threads, query {i}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// With `candidates = R`, the fast-scan's results are scored exactly (the float
    /// scan's bits), and rank by rank at least as good as the exact top-k of the best `R`
    /// allowed rows by the 8-bit estimate; `R` of at least the rows gives the exact scan.
    #[test]
    fn fast_scan_candidates_are_at_least_the_best_by_estimate_scored_exactly() {
        use crate::search::filter::RowFilter;
        use std::collections::HashMap;
        let (dims, rows, nq, k) = (28, 700, 19, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(31);
        let x: Vec<f32> = uniform(&mut rng, rows * dims);
        let q: Vec<f32> = uniform(&mut rng, nq * dims);
        let own: Vec<u64> = (0..nq as u64).map(|i| i * 29).collect();
        let allow: Vec<u64> = (0..rows as u64).filter(|r| r % 5 != 2).collect();
        let filter = RowFilter::new(&allow, rows as u64);
        for text in ["m=14,nbits=4", "m=14,nbits=4,unit=1"] {
            let (codec, codes) = trained(CodecId::Pq, text, dims, &x);
            let book = codec.codebook();
            for metric in [Metric::L2, Metric::Ip, Metric::Cos] {
                let queries = Queries::new(q.clone(), dims, Some(own.clone()), metric);
                let slow = AdcTables::new(book, &queries).without_fast_scan();
                let every = slow.scan(&queries, &codes, 0, rows, &Floors::new(nq));
                let exact: Vec<HashMap<u64, u32>> = every
                    .iter()
                    .map(|h| {
                        h.sorted()
                            .iter()
                            .map(|e| (e.id, e.score.to_bits()))
                            .collect()
                    })
                    .collect();
                let fast = AdcTables::new(book, &queries);
                let f = fast.fast.as_ref().unwrap();
                let pairs = f.pairs;
                let nb = rows.div_ceil(BLOCK_ROWS);
                let mut blocks = vec![0u8; nb * pairs * 32];
                fastscan::pack_blocks(&codes, pairs, &mut blocks);
                let mut quant = vec![0u16; nq * nb * BLOCK_ROWS];
                fastscan::block_scores(&f.luts, pairs, &blocks, &mut quant);
                let inv = if metric == Metric::Cos || book.unit {
                    fast.inv_norms(&codes)
                } else {
                    Vec::new()
                };
                let by_quant = !(metric == Metric::Cos || book.unit);
                for cands in [1usize, 25, 80, rows] {
                    let approx = AdcTables::new(book, &queries).with_candidates(cands);
                    for filt in [None, Some(&filter)] {
                        let got =
                            approx.scan_filtered(&queries, &codes, 0, k, &Floors::new(nq), filt);
                        if cands >= rows {
                            let want =
                                slow.scan_filtered(&queries, &codes, 0, k, &Floors::new(nq), filt);
                            for (g, w) in got.iter().zip(&want) {
                                assert_eq!(g.sorted(), w.sorted(), "{text} {metric} R={cands}");
                            }
                        }
                        for (i, g) in got.iter().enumerate() {
                            let what = format!("{text} {metric} R={cands} query {i}");
                            let g = g.sorted();
                            for e in &g {
                                assert_eq!(Some(&e.score.to_bits()), exact[i].get(&e.id), "{what}");
                            }
                            // The estimates of the allowed rows, best first.
                            let qs = &quant[i * nb * BLOCK_ROWS..][..rows];
                            let mut est = Vec::new();
                            let mid = 0.5 * (f.base[i] + f.low[i]);
                            fast.bounds_into(mid, f.step[i], qs, &inv, &mut est);
                            let mut ok: Vec<usize> = (0..rows)
                                .filter(|&r| {
                                    r as u64 != own[i] && filt.is_none_or(|f| f.allows(r as u64))
                                })
                                .collect();
                            let key = |r: usize| if by_quant { f32::from(qs[r]) } else { est[r] };
                            ok.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
                            let take = cands.max(k).min(ok.len());
                            let best: Vec<f32> = {
                                let mut s: Vec<f32> = ok[..take]
                                    .iter()
                                    .map(|&r| f32::from_bits(exact[i][&(r as u64)]))
                                    .collect();
                                s.sort_by(|a, b| b.total_cmp(a));
                                s
                            };
                            assert_eq!(g.len(), k.min(ok.len()), "{what}");
                            for (e, w) in g.iter().zip(&best) {
                                assert!(e.score >= *w, "{what}: {} < {w}", e.score);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Searches with the same worker count share one pool, kept from search to search;
    /// another count has its own.
    #[test]
    fn fast_scan_pools_are_built_once_per_worker_count() {
        let a = shared_pool(2).expect("a pool of two");
        let b = shared_pool(2).expect("a pool of two");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(
            a.current_num_threads(),
            2.min(crate::par::default_threads())
        );
        let c = shared_pool(1).expect("a pool of one");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.current_num_threads(), 1);
    }

    /// The block quantizer gives each query the bytes and bounds of [`quantize_tables`],
    /// bit for bit, with an odd `m`, a constant table, both signs and a block of fewer
    /// than 16 queries.
    #[test]
    fn quantize_block_equals_quantize_tables() {
        let mut rng = ChaCha8Rng::seed_from_u64(41);
        for (m, nl) in [(7usize, 16usize), (96, 16), (14, 5), (1, 1), (96, 3)] {
            let pairs = m.div_ceil(2);
            let bb = pairs * BLOCK_BYTES_PER_PAIR;
            for constant in [false, true] {
                let mut table = vec![Lanes::default(); m * 16];
                for (i, t) in table.iter_mut().enumerate() {
                    for (l, v) in t.0.iter_mut().enumerate() {
                        // Subspace 3 constant for query 2 in the second round (span 0
                        // there; all of it for m = 1).
                        *v = if constant && (i / 16 == 3 || m == 1) && l == 2 {
                            0.25
                        } else {
                            rng.random_range(-3.0f32..5.0)
                        };
                    }
                }
                for sigma in [1.0f32, -1.0] {
                    let mut got = vec![0u8; nl * bb];
                    let mut mins = vec![Lanes::default(); m];
                    let b = quantize_block(&table, pairs, sigma, m + 8, &mut got, &mut mins);
                    assert_eq!(b.len(), nl);
                    for l in 0..nl {
                        let mut want = vec![0u8; bb];
                        let v = |s: usize, j: usize| sigma * table[s * 16 + j].0[l];
                        let w = quantize_tables(m, pairs, v, m + 8, &mut want);
                        assert_eq!(
                            got[l * bb..(l + 1) * bb],
                            want[..],
                            "m={m} σ={sigma} query {l}"
                        );
                        assert_eq!(
                            (b[l].0.to_bits(), b[l].1.to_bits(), b[l].2.to_bits()),
                            (w.0.to_bits(), w.1.to_bits(), w.2.to_bits())
                        );
                    }
                }
            }
        }
    }

    /// The bounds of [`quantize_tables`] hold for adversarial tables: entries just below
    /// and at half steps (each table's rounding error near its worst, up or down), tables
    /// of mixed spans and signs, checked on the rows that pick each table's worst entry and
    /// on random rows, against the sum in `f64` and the float sum the scan computes. On
    /// tables whose entries sit on the steps the slack is far below the worst case.
    #[test]
    fn quantize_tables_bounds_hold_on_adversarial_tables() {
        let mut rng = ChaCha8Rng::seed_from_u64(43);
        for (m, case) in [96usize, 7, 1, 33]
            .into_iter()
            .flat_map(|m| (0..4).map(move |c| (m, c)))
        {
            let pairs = m.div_ceil(2);
            let qmax = (65535 / (2 * pairs)).min(255) as f32;
            let u = 10f32.powi(rng.random_range(-3..3));
            let mut t = vec![0f32; m * 16];
            for s in 0..m {
                let min = rng.random_range(-2.0f32..2.0) * u;
                let scale = if s == 0 {
                    1.0
                } else {
                    rng.random_range(0.05f32..1.0)
                };
                for j in 0..16 {
                    let k = (j as f32 * qmax * scale / 15.0).floor();
                    let frac = match case {
                        0 => 0.4999,
                        1 => 0.5,
                        2 => [0.4999f32, 0.5, 0.0, 0.25][(s + j) % 4],
                        _ => 0.0,
                    };
                    // Table 0 spans exactly `qmax` steps (so `a = 1/u`); the others less.
                    let k = if s == 0 && j == 15 {
                        qmax
                    } else if s == 0 && j == 0 {
                        0.0
                    } else {
                        k
                    };
                    let f = if s == 0 && (j == 0 || j == 15) {
                        0.0
                    } else {
                        frac
                    };
                    t[s * 16 + j] = min + (k + f).min(qmax) * u;
                }
            }
            let v = |s: usize, j: usize| t[s * 16 + j];
            let mut lut = vec![0u8; pairs * BLOCK_BYTES_PER_PAIR];
            let (step, base, low) = quantize_tables(m, pairs, v, m + 8, &mut lut);
            let a = 1.0 / f64::from(step);
            let mins: Vec<f64> = (0..m)
                .map(|s| {
                    (0..16)
                        .map(|j| f64::from(v(s, j)))
                        .fold(f64::INFINITY, f64::min)
                })
                .collect();
            let entry = |s: usize, j: usize| lut[(s / 2) * BLOCK_BYTES_PER_PAIR + (s % 2) * 16 + j];
            let err =
                |s: usize, j: usize| (f64::from(v(s, j)) - mins[s]) * a - f64::from(entry(s, j));
            let pick = |better: &dyn Fn(f64, f64) -> bool| -> Vec<usize> {
                (0..m)
                    .map(|s| {
                        (0..16).fold(0, |b, j| if better(err(s, j), err(s, b)) { j } else { b })
                    })
                    .collect()
            };
            let mut rows = vec![pick(&|x, y| x > y), pick(&|x, y| x < y)];
            rows.extend((0..200).map(|_| (0..m).map(|_| rng.random_range(0..16)).collect()));
            for row in &rows {
                let q: u32 = row
                    .iter()
                    .enumerate()
                    .map(|(s, &j)| u32::from(entry(s, j)))
                    .sum();
                let q = f32::from(u16::try_from(q).expect("sums fit u16"));
                let exact: f64 = row
                    .iter()
                    .enumerate()
                    .map(|(s, &j)| f64::from(v(s, j)))
                    .sum();
                let float = row
                    .iter()
                    .enumerate()
                    .fold(0f32, |acc, (s, &j)| acc + v(s, j));
                let (hi, lo) = (base + q * step, low + q * step);
                for x in [exact, f64::from(float)] {
                    assert!(
                        f64::from(lo) <= x && x <= f64::from(hi),
                        "m={m} case {case}: {x} outside [{lo}, {hi}]"
                    );
                }
            }
            if case == 3 {
                // Entries on the steps: the slack is the margins' alone.
                let worst = 0.5 * m as f32 * step;
                assert!(base - low < 0.1 * worst, "m={m}: {} vs {worst}", base - low);
            }
        }
    }

    /// The 4-bit rows' `1/‖x̂‖`, read a byte at a time, has [`inv_length`]'s bits for
    /// every row (odd `m` takes `inv_length` itself), and 0 for a row of zero length.
    #[test]
    fn inv_norms_of_4_bit_codes_equal_inv_length() {
        let (dims, rows) = (28, 300);
        let mut rng = ChaCha8Rng::seed_from_u64(53);
        let x = uniform(&mut rng, rows * dims);
        for text in [
            "m=14,nbits=4,unit=1",
            "m=7,nbits=4,unit=1",
            "m=14,nbits=8,unit=1",
        ] {
            let (codec, mut codes) = trained(CodecId::Pq, text, dims, &x);
            let book = codec.codebook();
            let q = Queries::new(uniform(&mut rng, 2 * dims), dims, None, Metric::Ip);
            let mut t = AdcTables::new(book, &q);
            // One row of centroids of zero length: its inverse length is 0.
            for s in 0..t.m {
                t.norms[s * t.ksub] = 0.0;
                t.norms[s * t.ksub + 3] = 0.0;
            }
            let cb = book.code_bytes();
            for (s, byte) in codes[..cb].iter_mut().enumerate() {
                *byte = match (t.nbits, s % 2) {
                    (4, _) => 0x30,
                    (_, 0) => 0,
                    _ => 3,
                };
            }
            let got = t.inv_norms(&codes);
            assert_eq!(got.len(), rows, "{text}");
            assert_eq!(got[0], 0.0, "{text}");
            for (r, code) in codes.chunks_exact(cb).enumerate() {
                let want = inv_length(code, t.m, t.nbits, |s, j| t.norms[s * t.ksub + j]);
                assert_eq!(got[r].to_bits(), want.to_bits(), "{text} row {r}");
                assert!(r == 0 || got[r] > 0.0, "{text} row {r}");
            }
        }
    }

    /// `x`'s rows scaled to length 1 (a zero row becomes the first axis).
    fn unit_rows(x: &[f32], dims: usize) -> Vec<f32> {
        x.chunks_exact(dims)
            .flat_map(|r| {
                let len = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                (0..dims).map(move |t| match len > 0.0 {
                    true => r[t] / len,
                    false => f32::from(u8::from(t == 0)),
                })
            })
            .collect()
    }

    /// `table[s × ksub + j] = Σ_t term(q_s[t], c_{s,j}[t])`: the per-query table.
    fn table(book: &Codebook, q: &[f32], term: impl Fn(f32, f32) -> f32) -> Vec<f32> {
        let dsub = book.dsub();
        book.centroids
            .chunks_exact(dsub)
            .enumerate()
            .map(|(i, c)| {
                let qs = &q[(i / book.ksub()) * dsub..][..dsub];
                qs.iter().zip(c).map(|(&a, &b)| term(a, b)).sum()
            })
            .collect()
    }

    #[test]
    fn adc_equals_decode_then_exact_search() {
        let (dims, rows, nq, k) = (16, 600, 20, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let x: Vec<f32> = uniform(&mut rng, rows * dims);
        let q: Vec<f32> = uniform(&mut rng, nq * dims);
        for (id, text) in [
            (CodecId::Pq, "m=4"),
            (CodecId::Pq, "m=8,nbits=4"),
            (CodecId::Opq, "m=4,opq_iters=2"),
            (CodecId::Pq, "m=4,unit=1"),
            (CodecId::Opq, "m=4,opq_iters=2,unit=1"),
        ] {
            let (codec, codes) = trained(id, text, dims, &x);
            let mut y = vec![0f32; rows * dims];
            codec.decode(&codes, rows, &mut y);
            let got = adc_search(codec.codebook(), &codes, &q, k);
            for (qi, qv) in q.chunks_exact(dims).enumerate() {
                let exact: Vec<f64> = y
                    .chunks_exact(dims)
                    .map(|r| {
                        r.iter()
                            .zip(qv)
                            .map(|(a, b)| f64::from(a - b).powi(2))
                            .sum()
                    })
                    .collect();
                let mut order: Vec<usize> = (0..rows).collect();
                order.sort_by(|&a, &b| exact[a].total_cmp(&exact[b]).then(a.cmp(&b)));
                let want: Vec<u64> = order[..k].iter().map(|&i| i as u64).collect();
                if got[qi] != want {
                    // Only a near-tie, within float rounding, may reorder the answer.
                    for (g, w) in got[qi].iter().zip(&want) {
                        let (a, b) = (exact[*g as usize], exact[*w as usize]);
                        assert!(
                            (a - b).abs() <= 1e-5 * b.max(1.0),
                            "{text} query {qi}: {got:?} vs {want:?}"
                        );
                    }
                }
            }
        }
    }

    /// The floor is one that `k` distinct counted rows reach, never above the `k`-th
    /// largest bound, equal to it when every row is its own group, and −∞ when fewer
    /// than `k` rows count (−∞ and NaN do not).
    #[test]
    fn kth_floor_is_reached_by_k_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut scratch = Vec::new();
        for (n, k) in [
            (1usize, 1usize),
            (10, 3),
            (31, 10),
            (1000, 10),
            (2730, 100),
            (500, 200),
        ] {
            let lows: Vec<f32> = (0..n)
                .map(|r| match r % 11 {
                    3 => f32::NEG_INFINITY,
                    7 => f32::NAN,
                    _ => rng.random_range(-1.0f32..1.0),
                })
                .collect();
            let mut counted: Vec<f32> = lows
                .iter()
                .copied()
                .filter(|v| *v > f32::NEG_INFINITY)
                .collect();
            counted.sort_by(|a, b| b.total_cmp(a));
            let fl = kth_floor(&lows, k, &mut scratch);
            if counted.len() < k {
                assert_eq!(fl, f32::NEG_INFINITY, "n={n} k={k}");
                continue;
            }
            assert!(fl <= counted[k - 1], "n={n} k={k}");
            assert!(counted.iter().filter(|&&v| v >= fl).count() >= k);
            assert!(fl > f32::NEG_INFINITY);
            if n <= (4 * k).next_multiple_of(32) {
                assert_eq!(fl, counted[k - 1], "n={n} k={k}");
            }
        }
        assert_eq!(
            kth_floor(&[f32::NAN; 40], 1, &mut scratch),
            f32::NEG_INFINITY
        );
        assert_eq!(kth_floor(&[1.0; 4], 0, &mut scratch), f32::NEG_INFINITY);
        // The integer form, every row counting.
        let mut s16 = Vec::new();
        for (n, k) in [
            (1usize, 1usize),
            (31, 10),
            (1000, 10),
            (2730, 100),
            (500, 200),
        ] {
            let qs: Vec<u16> = (0..n).map(|_| rng.random_range(0..4000u16)).collect();
            let mut sorted = qs.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            let fl = kth_floor_u16(&qs, k, &mut s16).unwrap();
            assert!(fl <= sorted[k - 1] && qs.iter().filter(|&&v| v >= fl).count() >= k);
            if n <= (4 * k).next_multiple_of(32) {
                assert_eq!(fl, sorted[k - 1]);
            }
        }
        assert_eq!(kth_floor_u16(&[3, 4], 3, &mut s16), None);
    }
}
