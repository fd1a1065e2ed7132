//! Scoring a chunk's codes without decoding them.
//!
//! The quantizing codecs decode a row as `x̂ = T⁻¹(s · ℓ(c))`: codes `c`, their levels
//! `ℓ` (±1 for sign bits, the integer for int8/int4, a Gaussian level for int4's `gauss`
//! grid), the row's scale `s`, and the codec's frame `T` (none; the seeded rotation of
//! `rotate=1`; or ITQ's `y = Rᵀ(x − μ)`). `T` is orthogonal, so for a query `q`
//! - `q·x̂ = s · (q̃·ℓ(c)) + q·μ` with `q̃ = Rᵀq` the query in the codes' frame, computed
//!   once per query (`μ = 0` but for ITQ);
//! - `‖x̂‖² = s²‖ℓ(c)‖² + 2s · (w·ℓ(c)) + ‖μ‖²` with `w = Rᵀμ` (ITQ; `s²‖ℓ(c)‖²`
//!   otherwise), from the codes alone, once per row for all queries.
//!
//! The metric then ranks as [`Metric`] does over decoded rows: `ip` by `q·x̂`, `cos` by
//! `q·x̂ / ‖x̂‖` (the query unit length), `l2` by `2q·x̂ − ‖x̂‖²`. So the result is the
//! brute-force search over the decoded rows, up to float rounding, with one stated
//! exception: int8 and int4 (uniform grid) quantize the query to int8 (`max|q̃|/127` per
//! query) and score it with exact integer dot products, so they rank for that quantized
//! query (an error of at most `max|q̃|/254` per coordinate).
//!
//! `sq:bits=B` is scored with its estimator: `q·x̂ = g · (q̃·L)` (levels `L`, the row's
//! stored gain `g`, which makes it an unbiased estimate of `q·x`) and the row's stored
//! norm `‖x‖` in place of `‖x̂‖`, so cosine ranks by `q·x̂ / ‖x‖` and L2 by
//! `2q·x̂ − ‖x‖²` (see `crate::codec::sq`). For inner product that is the search over the
//! decoded rows; for cosine and L2 it is the corrected estimate they cannot give. Centred
//! (`centre=1`), `q·x̂ = g · (q̃·L) + κ · (q·c)` with the row's offset `κ` along the mean
//! `c`, again the decoded row's inner product, and `‖x‖` comes from the stored `‖x − c‖`
//! and `<x, c>`.

use std::borrow::Cow;

use super::adc::{AdcTables, kth_floor, quantize_tables};
use super::exact::{Floors, Metric, Queries};
use super::filter::RowFilter;
use super::rq::RqScan;
use super::topk::{CountScratch, TopK, smallest_by_count};
use crate::codec::int4::gauss_level;
use crate::codec::itq::Itq;
use crate::codec::rq::Rq;
use crate::codec::sq::{self, Sq};
use crate::codec::{Codebook, CodecId, CodecSpec, QuantParams, Rotation, ScaleRule};
use crate::error::Result;
use crate::format::Container;
use crate::simd::fastscan::{self, BLOCK_BYTES_PER_PAIR, BLOCK_ROWS};
use crate::simd::{Level, hamming, idot};

/// Rows of int8/int4 codes scored against every query at a time: their codes stay in L2.
const INT_TILE: usize = 512;

/// How a container's chunks are scored for a set of queries.
#[derive(Debug)]
pub enum Scorer {
    /// Decode the chunk, then one matrix multiply per tile (f16, bf16 and any codec
    /// without a code-space path).
    Float,
    /// PQ/OPQ lookup tables (4-bit codes: the fast-scan over 8-bit tables first).
    Adc(AdcTables),
    /// Sign bits (binary, rotated binary, binary-itq).
    Bits(Bits),
    /// int8 / int4 codes.
    Ints(Ints),
    /// `sq:bits=B` codes, by their unbiased estimator.
    Sq(SqScan),
    /// `rq` codes, by lookup tables of each query against the codebooks.
    Rq(RqScan),
}

/// What every code-space scorer knows about each query.
#[derive(Debug)]
struct Frame {
    d: usize,
    /// `nq × d`: each query in the codes' frame.
    qt: Vec<f32>,
    /// `q·μ` per query (ITQ; zeros otherwise).
    c0: Vec<f32>,
    /// `w = Rᵀμ` (ITQ only).
    w: Option<Vec<f32>>,
    /// `‖μ‖²` (ITQ; 0 otherwise).
    mu2: f32,
    metric: Metric,
}

impl Frame {
    fn plain(q: &Queries, d: usize) -> Frame {
        let mut qt = Vec::with_capacity(q.len() * d);
        (0..q.len()).for_each(|i| qt.extend_from_slice(q.get(i)));
        Frame {
            d,
            qt,
            c0: vec![0.0; q.len()],
            w: None,
            mu2: 0.0,
            metric: q.metric(),
        }
    }

    fn rotated(q: &Queries, d: usize, r: &Rotation) -> Frame {
        let mut f = Frame::plain(q, d);
        f.qt.chunks_exact_mut(d).for_each(|row| r.forward(row));
        f
    }

    fn itq(q: &Queries, d: usize, itq: &Itq) -> Frame {
        let (mean, rot) = (itq.mean(), itq.rotation());
        let apply = |x: &[f32], out: &mut [f32]| {
            out.fill(0.0);
            for (&xi, r) in x.iter().zip(rot.chunks_exact(d)) {
                out.iter_mut().zip(r).for_each(|(o, &rij)| *o += xi * rij);
            }
        };
        let mut f = Frame::plain(q, d);
        let mut tmp = vec![0f32; d];
        for (i, row) in f.qt.chunks_exact_mut(d).enumerate() {
            f.c0[i] = dot(q.get(i), mean);
            apply(q.get(i), &mut tmp);
            row.copy_from_slice(&tmp);
        }
        let mut w = vec![0f32; d];
        apply(mean, &mut w);
        f.w = Some(w);
        f.mu2 = dot(mean, mean);
        f
    }

    fn q(&self, i: usize) -> &[f32] {
        &self.qt[i * self.d..(i + 1) * self.d]
    }

    /// Whether the metric needs each row's norm.
    fn needs_norms(&self) -> bool {
        self.metric != Metric::Ip
    }

    /// The ranking score from `q·x̂` and `‖x̂‖²`, as [`Metric`] ranks decoded rows.
    #[inline]
    fn rank(&self, dot: f32, nsq: f32) -> f32 {
        let (mul, add) = self.metric.per_row(nsq);
        dot * mul + add
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The sign-bit scorer.
#[derive(Debug)]
pub struct Bits {
    frame: Frame,
    /// `Σ q̃` per query.
    qsum: Vec<f32>,
    /// Each query's own sign bits in the codes' frame (Hamming mode), `nq × row_bytes`.
    hamming: Option<Vec<u8>>,
    /// Their nibble tables for the blocked scan ([`hamming::nibble_tables`],
    /// `nq × row_bytes × 32`; Hamming mode, rows of at most
    /// [`hamming::SCAN_MAX_ROW_BYTES`]).
    nibble_tables: Option<Vec<u8>>,
    /// The byte tables of `w` (ITQ norms) and `Σ w`.
    w_tables: Option<(Vec<f32>, f32)>,
    /// The float query scored by the fast-scan first (not Hamming mode).
    fast: Option<FastBits>,
}

/// Each query's nibble tables quantized to `u8`, for the sign-bit fast-scan: a row's
/// `row_bytes` bytes are `2 × row_bytes` nibbles, nibble `t` holding the bits of dimensions
/// `4t..4t + 4`, and its table holds the sums of the query over the 16 subsets of those.
/// That is the layout of 4-bit PQ codes, so [`fastscan::block_scores`] sums them, 32 rows
/// per shuffle; `Σ_{bits set} q̃ ≤ base + Q·step` bounds the float set sum (see
/// [`quantize_tables`]), and only the rows whose bound can still reach the floor are summed
/// in float, as [`hamming::set_sums`] sums them.
#[derive(Debug)]
struct FastBits {
    /// `queries × row_bytes × 32` entries.
    luts: Vec<u8>,
    step: Vec<f32>,
    base: Vec<f32>,
    /// `Σ_{bits set} q̃ ≥ low + Q·step`.
    low: Vec<f32>,
}

/// Queries summed by one [`fastscan::block_scores`] call.
const FAST_QUERIES: usize = 16;

/// Rows of one query summed in float past which the query's byte tables
/// ([`hamming::byte_tables`], 256 entries a byte) are built to sum them, rather than
/// adding the dimensions of each set bit: building them costs about as much as summing
/// this many rows bit by bit.
const ROWS_FOR_TABLES: usize = 96;

/// The int8 / int4 scorer.
#[derive(Debug)]
pub struct Ints {
    frame: Frame,
    /// int4 codes (else int8).
    int4: bool,
    /// int4 codes on the Gaussian grid: scored in float through per-dimension tables.
    gauss: bool,
    /// `nq × d` quantized queries and their scales (uniform grids).
    qc: Vec<i8>,
    qscale: Vec<f32>,
}

impl Scorer {
    /// The scorer for `c`'s codec and the prepared queries. `hamming` asks binary codecs
    /// for Hamming ranking (other codecs ignore it).
    ///
    /// # Errors
    /// [`crate::Error::Config`] when the container's codec parameters do not parse.
    pub fn new(c: &Container, q: &Queries, hamming: bool) -> Result<Scorer> {
        Scorer::for_spec(&c.header().codec, c.dims(), q, hamming)
    }

    /// The scorer for codec `spec` over `d`-dimensional rows and the prepared queries.
    ///
    /// # Errors
    /// [`crate::Error::Config`] when the codec parameters do not parse.
    pub fn for_spec(spec: &CodecSpec, d: usize, q: &Queries, hamming: bool) -> Result<Scorer> {
        let rotation = |name: &str| -> Result<(Option<Rotation>, ScaleRule)> {
            let p = QuantParams::decode(name, &spec.params, d)?;
            Ok((
                p.rotation.map(|r| Rotation::new(d, r.rounds, r.seed)),
                p.scale,
            ))
        };
        let frame = |r: &Option<Rotation>| match r {
            Some(r) => Frame::rotated(q, d, r),
            None => Frame::plain(q, d),
        };
        Ok(match spec.id {
            CodecId::Pq | CodecId::Opq => {
                let book = Codebook::from_params(spec.id, &spec.params, d)?;
                Scorer::Adc(AdcTables::new(&book, q))
            }
            CodecId::Binary => {
                let (r, _) = rotation("binary")?;
                Scorer::Bits(Bits::new(frame(&r), hamming))
            }
            CodecId::BinaryItq => {
                let itq = Itq::from_params(&spec.params, d)?;
                Scorer::Bits(Bits::new(Frame::itq(q, d, &itq), hamming))
            }
            CodecId::Int8 => {
                let (r, _) = rotation("int8")?;
                Scorer::Ints(Ints::new(frame(&r), false, false))
            }
            CodecId::Int4 => {
                let (r, rule) = rotation("int4")?;
                Scorer::Ints(Ints::new(frame(&r), true, rule == ScaleRule::Gauss))
            }
            CodecId::Sq => Scorer::Sq(SqScan::new(Sq::from_params(&spec.params, d)?, q)),
            CodecId::Rq => Scorer::Rq(RqScan::new(Rq::from_params(&spec.params, d)?, q)),
            _ => Scorer::Float,
        })
    }

    /// The same scorer, the pq/opq 4-bit fast-scan scoring exactly only each chunk's
    /// best `candidates` rows by their 8-bit estimate ([`super::SearchOptions::fast_scan_candidates`]);
    /// 0 (exact) and the other scorers are unchanged.
    pub fn with_fast_scan_candidates(self, candidates: usize) -> Scorer {
        match self {
            Scorer::Adc(t) => Scorer::Adc(t.with_candidates(candidates)),
            other => other,
        }
    }

    /// The same scorer, the pq/opq 4-bit fast-scan splitting each chunk's queries over
    /// `threads` workers (0: the available cores; see [`AdcTables::with_threads`]); the
    /// other scorers are unchanged.
    pub fn with_threads(self, threads: usize) -> Scorer {
        match self {
            Scorer::Adc(t) => Scorer::Adc(t.with_threads(threads)),
            other => other,
        }
    }

    /// Whether a chunk's scan of `queries` queries runs on the scorer's own workers
    /// ([`AdcTables::splits_queries`]): the chunks are then best scanned one at a time.
    pub fn splits_queries(&self, queries: usize) -> bool {
        matches!(self, Scorer::Adc(t) if t.splits_queries(queries))
    }

    /// Whether the `l2` ranking scores are `−‖q − x̂‖²` rather than `2q·x̂ − ‖x̂‖²`.
    pub fn l2_is_negated_distance(&self) -> bool {
        matches!(self, Scorer::Adc(t) if t.l2_is_negated_distance())
    }

    /// Whether the scores are negated Hamming distances.
    pub fn is_hamming(&self) -> bool {
        matches!(self, Scorer::Bits(b) if b.hamming.is_some())
    }

    /// What the scorer is, for reports: `float`, `adc` (pq/opq/rq lookup tables),
    /// `fastscan` (pq/opq with 4-bit codes), `bits`, `hamming`, `int` or `estimator`.
    pub fn name(&self) -> &'static str {
        match self {
            Scorer::Float => "float",
            Scorer::Adc(t) if t.is_fast_scan() => "fastscan",
            Scorer::Adc(_) => "adc",
            Scorer::Bits(b) if b.hamming.is_some() => "hamming",
            Scorer::Bits(_) => "bits",
            Scorer::Ints(_) => "int",
            Scorer::Sq(_) => "estimator",
            Scorer::Rq(_) => "adc",
        }
    }

    /// The scorer of a codec whose codes rank better by their own estimator than their
    /// decoded rows do under some metric (`sq`), or that ranks as the decoded rows do at a
    /// fraction of decoding's cost (`rq`'s lookup tables), for `eval`, `bench` and
    /// `--codec auto` to search with as `search` does; `None` for the others, which those
    /// search over decoded rows (pq/opq have their own tables there).
    ///
    /// # Errors
    /// [`crate::Error::Config`] when the codec parameters do not parse.
    pub fn estimator(spec: &CodecSpec, d: usize, q: &Queries) -> Result<Option<Scorer>> {
        Ok(match spec.id {
            CodecId::Sq | CodecId::Rq => Some(Scorer::for_spec(spec, d, q, false)?),
            _ => None,
        })
    }

    /// The best `keep` rows of the block `payload` (`n` rows from `first_row`, as the
    /// codec encoded them) for each query, each query's own row excluded, below each
    /// query's floor in `floors` skipped: for the scorers [`Scorer::estimator`] returns.
    pub fn scan_payload(
        &self,
        payload: &[u8],
        n: usize,
        first_row: u64,
        keep: usize,
        floors: &Floors,
    ) -> Vec<TopK> {
        let nq = match self {
            Scorer::Sq(s) => s.own.len(),
            Scorer::Rq(s) => s.queries(),
            _ => unreachable!("scan_payload is for Scorer::estimator's scorers"),
        };
        let mut heaps: Vec<TopK> = (0..nq)
            .map(|j| TopK::with_floor(keep, floors.get(j)))
            .collect();
        match self {
            Scorer::Sq(s) if keep > 0 => s.scan(payload, n, first_row, &mut heaps, None),
            Scorer::Rq(s) if keep > 0 => s.scan(payload, n, first_row, &mut heaps, None),
            _ => {}
        }
        heaps.iter_mut().for_each(TopK::shrink);
        heaps
    }

    /// The best `keep` rows of chunk `i` of `c` for each query, below each query's floor
    /// in `floors` skipped, only rows `filter` allows.
    ///
    /// # Errors
    /// Errors reading the chunk.
    pub fn scan_chunk(
        &self,
        c: &Container,
        i: usize,
        q: &Queries,
        keep: usize,
        floors: &Floors,
        filter: Option<&RowFilter>,
    ) -> Result<Vec<TopK>> {
        let e = c.chunks()[i];
        let n = e.rows as usize;
        let mut heaps: Vec<TopK> = (0..q.len())
            .map(|j| TopK::with_floor(keep, floors.get(j)))
            .collect();
        match self {
            Scorer::Float => {
                let mut rows = vec![0f32; n * c.dims()];
                c.decode_chunk(i, &mut rows)?;
                return Ok(q.scan_filtered(&rows, e.first_row, keep, floors, filter));
            }
            Scorer::Adc(t) => {
                let codes = c.chunk_data(i)?;
                return Ok(t.scan_filtered(q, &codes, e.first_row, keep, floors, filter));
            }
            Scorer::Bits(b) => b.scan(&c.chunk_data(i)?, n, e.first_row, &mut heaps, filter),
            Scorer::Ints(t) => t.scan(&c.chunk_data(i)?, n, e.first_row, &mut heaps, filter),
            Scorer::Sq(s) => s.scan(&c.chunk_data(i)?, n, e.first_row, &mut heaps, filter),
            Scorer::Rq(s) => s.scan(&c.chunk_data(i)?, n, e.first_row, &mut heaps, filter),
        }
        heaps.iter_mut().for_each(TopK::shrink);
        Ok(heaps)
    }
}

/// Offers row `first_row + r` with `score` to `heap` if the filter allows it.
#[inline(always)]
fn offer(heap: &mut TopK, score: f32, row: u64, filter: Option<&RowFilter>) {
    // The floor test first: most rows fail it, and it is what `push` tests too.
    if score >= heap.floor() && filter.is_none_or(|f| f.allows(row)) {
        heap.push(score, row);
    }
}

/// The f32 at `at` in `p` (little-endian).
#[inline]
fn f32_at(p: &[u8], at: usize) -> f32 {
    f32::from_le_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]])
}

impl Bits {
    fn new(frame: Frame, hamming: bool) -> Bits {
        let (d, rb) = (frame.d, frame.d.div_ceil(8));
        let nq = frame.qt.len() / d.max(1);
        let qsum = (0..nq).map(|i| frame.q(i).iter().sum()).collect();
        let hamming = hamming.then(|| {
            let mut bits = vec![0u8; nq * rb];
            let mut y = vec![0f32; d];
            for (i, out) in bits.chunks_exact_mut(rb.max(1)).enumerate() {
                // The codes are the signs of `Rᵀ(x − μ) = x̃ − w`.
                y.copy_from_slice(frame.q(i));
                if let Some(w) = &frame.w {
                    y.iter_mut().zip(w).for_each(|(a, b)| *a -= b);
                }
                hamming::sign_bits(&y, out);
            }
            bits
        });
        let nibble_tables = hamming
            .as_ref()
            .filter(|_| (1..=hamming::SCAN_MAX_ROW_BYTES).contains(&rb))
            .map(|bits| {
                let tb = rb * hamming::SCAN_TABLE_BYTES;
                let mut t = vec![0u8; nq * tb];
                for (t, q) in t.chunks_exact_mut(tb).zip(bits.chunks_exact(rb)) {
                    hamming::nibble_tables(q, t);
                }
                t
            });
        let w_tables = frame.w.as_ref().map(|w| {
            let mut t = vec![0f32; rb * hamming::TABLE];
            hamming::byte_tables(w, &mut t);
            (t, w.iter().sum())
        });
        let fast = (hamming.is_none() && rb > 0).then(|| {
            let bb = rb * BLOCK_BYTES_PER_PAIR;
            let mut luts = vec![0u8; nq * bb];
            let (mut step, mut base, mut low) = (vec![0f32; nq], vec![0f32; nq], vec![0f32; nq]);
            for (i, lut) in luts.chunks_exact_mut(bb).enumerate() {
                let q = frame.q(i);
                // The sum of the nibble's dimensions over the bits set in `j`.
                let v = |t: usize, j: usize| {
                    (0..4)
                        .filter(|b| j >> b & 1 == 1)
                        .map(|b| q.get(4 * t + b).copied().unwrap_or(0.0))
                        .sum::<f32>()
                };
                // A set sum adds 48 byte-table entries of up to 8 values each.
                (step[i], base[i], low[i]) = quantize_tables(2 * rb, rb, v, 2 * rb + 64, lut);
            }
            FastBits {
                luts,
                step,
                base,
                low,
            }
        });
        Bits {
            frame,
            qsum,
            hamming,
            nibble_tables,
            w_tables,
            fast,
        }
    }

    /// The same scorer without the fast-scan (the float set sums of every row).
    #[cfg(test)]
    fn without_fast_scan(mut self) -> Bits {
        self.fast = None;
        self
    }

    /// The float query against the sign bits by the fast-scan: the 8-bit sums of every
    /// row, then the float set sum (the bits of [`hamming::set_sums`]) of each row whose
    /// bound may still reach its query's floor. The score is monotone in the set sum for
    /// a row (`s ≥ 0`, and the metric's factor is `≥ 0`), and float rounding is monotone,
    /// so the bound's score bounds the row's; a row for which that does not hold is
    /// summed in float.
    #[allow(clippy::too_many_arguments)]
    fn scan_fast(
        &self,
        fast: &FastBits,
        bits: &[u8],
        scales: &[f32],
        nsq: &[f32],
        first_row: u64,
        heaps: &mut [TopK],
        filter: Option<&RowFilter>,
    ) {
        let f = &self.frame;
        let rb = f.d.div_ceil(8);
        let n = scales.len();
        let bb = rb * BLOCK_BYTES_PER_PAIR;
        let padded = n.div_ceil(BLOCK_ROWS) * BLOCK_ROWS;
        let mut blocks = vec![0u8; padded / BLOCK_ROWS * bb];
        fastscan::pack_blocks(bits, rb, &mut blocks);
        let mut quant = vec![0u16; FAST_QUERIES.min(heaps.len()) * padded];
        // Each row's metric factors, once for all queries.
        let per_row: Vec<(f32, f32)> = (0..n)
            .map(|r| f.metric.per_row(nsq.get(r).copied().unwrap_or(0.0)))
            .collect();
        // Whether a row's score is monotone in its set sum (`s ≥ 0`, factor `≥ 0`): only
        // then do the set sum's bounds bound the score.
        let monotone: Vec<bool> = (0..n)
            .map(|r| scales[r] >= 0.0 && per_row[r].0 >= 0.0)
            .collect();
        let allowed: Vec<bool> = (0..n)
            .map(|r| filter.is_none_or(|fl| fl.allows(first_row + r as u64)))
            .collect();
        // The rows whose lower bounds count towards the floor.
        let counts: Vec<bool> = monotone.iter().zip(&allowed).map(|(m, a)| m & a).collect();
        let (mut lows, mut scratch, mut hits) = (Vec::with_capacity(n), Vec::new(), Vec::new());
        let mut ubs: Vec<f32> = Vec::with_capacity(n);
        let mut tables = Vec::new();
        for (g, group) in heaps.chunks_mut(FAST_QUERIES).enumerate() {
            let q0 = g * FAST_QUERIES;
            let out = &mut quant[..group.len() * padded];
            let luts = &fast.luts[q0 * bb..(q0 + group.len()) * bb];
            fastscan::block_scores(luts, rb, &blocks, out);
            for (l, (heap, qs)) in group.iter_mut().zip(out.chunks_exact(padded)).enumerate() {
                let i = q0 + l;
                let q = f.q(i);
                let (qsum, c0) = (self.qsum[i], f.c0[i]);
                let (step, base, low) = (fast.step[i], fast.base[i], fast.low[i]);
                let score = |ss: f32, r: usize| {
                    let (mul, add) = per_row[r];
                    (scales[r] * (2.0 * ss - qsum) + c0) * mul + add
                };
                let qs = &qs[..n];
                // The floor `k` of the rows reach by their lower bounds, before any row is
                // summed in float (see `AdcTables::scan_fast`).
                // Plain loops over the rows' factors (no per-row closure calls): these
                // run over every row, as the kernel does.
                lows.clear();
                lows.resize(n, f32::NEG_INFINITY);
                for ((((l, &qv), &s), &(mul, add)), &ok) in lows
                    .iter_mut()
                    .zip(qs)
                    .zip(scales)
                    .zip(&per_row)
                    .zip(&counts)
                {
                    let v = (s * (2.0 * (low + f32::from(qv) * step) - qsum) + c0) * mul + add;
                    *l = if ok { v } else { f32::NEG_INFINITY };
                }
                heap.raise_floor(kth_floor(&lows, heap.k(), &mut scratch));
                let floor = heap.floor();
                // Each row's upper bound into a buffer (a loop without branches, which
                // vectorises as the lower bounds' does), then the rows that may reach the
                // floor gathered without branches: at scale every row of every chunk
                // passes here, and few of them are kept.
                ubs.clear();
                ubs.extend(
                    qs.iter()
                        .zip(scales)
                        .zip(&per_row)
                        .map(|((&qv, &s), &(mul, add))| {
                            (s * (2.0 * (base + f32::from(qv) * step) - qsum) + c0) * mul + add
                        }),
                );
                // `hits` is never shortened: its first `m` entries are this query's.
                if hits.len() < n {
                    hits.resize(n, 0);
                }
                let mut m = 0;
                for (r, ((&ub, &ok), &cut)) in ubs.iter().zip(&allowed).zip(&counts).enumerate() {
                    hits[m] = r;
                    // Kept unless the bound rules it out (`counts`: allowed and monotone).
                    #[allow(clippy::neg_cmp_op_on_partial_ord)]
                    let below = cut & (ub < floor);
                    m += usize::from(ok & !below);
                }
                let hits = &hits[..m];
                let by_tables = hits.len() > ROWS_FOR_TABLES;
                if by_tables {
                    tables.resize(rb * hamming::TABLE, 0f32);
                    hamming::byte_tables(q, &mut tables);
                }
                for &r in hits {
                    #[allow(clippy::neg_cmp_op_on_partial_ord)]
                    if monotone[r] && score(base + f32::from(qs[r]) * step, r) < heap.floor() {
                        continue;
                    }
                    let row = &bits[r * rb..(r + 1) * rb];
                    // The same bits either way (`set_sum` adds as the tables do).
                    let ss = if by_tables {
                        let mut one = [0f32];
                        hamming::set_sums(&tables, row, rb, &mut one);
                        one[0]
                    } else {
                        set_sum(q, row)
                    };
                    heap.push(score(ss, r), first_row + r as u64);
                }
            }
        }
    }

    fn scan(
        &self,
        payload: &[u8],
        n: usize,
        first_row: u64,
        heaps: &mut [TopK],
        filter: Option<&RowFilter>,
    ) {
        let f = &self.frame;
        let rb = f.d.div_ceil(8);
        let bits = &payload[..n * rb];
        let scales: Vec<f32> = (0..n).map(|r| f32_at(payload, n * rb + 4 * r)).collect();
        if let Some(qbits) = &self.hamming {
            let level = Level::detect();
            match &self.nibble_tables {
                Some(t) if hamming::scan_blocks_is_fast(level) => {
                    scan_hamming_blocks(level, t, bits, rb, first_row, heaps, filter)
                }
                _ => scan_hamming_rows(qbits, bits, rb, first_row, heaps, filter),
            }
            return;
        }
        let mut sums = vec![0f32; n];
        // ‖x̂‖² per row: s²·d, plus ITQ's cross term and ‖μ‖².
        let nsq: Vec<f32> = if f.needs_norms() {
            let mut base: Vec<f32> = scales.iter().map(|s| s * s * f.d as f32).collect();
            if let Some((t, wsum)) = &self.w_tables {
                hamming::set_sums(t, bits, rb, &mut sums);
                for ((b, &s), &ws) in base.iter_mut().zip(&scales).zip(&sums) {
                    *b += 2.0 * s * (2.0 * ws - wsum) + f.mu2;
                }
            }
            base
        } else {
            Vec::new()
        };
        if let Some(fast) = &self.fast {
            return self.scan_fast(fast, bits, &scales, &nsq, first_row, heaps, filter);
        }
        let mut tables = vec![0f32; rb * hamming::TABLE];
        for (i, heap) in heaps.iter_mut().enumerate() {
            hamming::byte_tables(f.q(i), &mut tables);
            hamming::set_sums(&tables, bits, rb, &mut sums);
            let (qsum, c0) = (self.qsum[i], f.c0[i]);
            for (r, (&ss, &s)) in sums.iter().zip(&scales).enumerate() {
                let dot = s * (2.0 * ss - qsum) + c0;
                let score = f.rank(dot, nsq.get(r).copied().unwrap_or(0.0));
                offer(heap, score, first_row + r as u64, filter);
            }
        }
    }
}

/// The largest Hamming distance a row may have and still enter `heap` (its scores are
/// `-distance`, and a row scoring below the floor cannot enter: `h ≤ -floor`), at most
/// `top`; `None` when no row can.
fn hamming_limit(heap: &TopK, top: u32) -> Option<u32> {
    let lim = -heap.floor();
    if heap.k() == 0 {
        None
    } else if lim >= top as f32 {
        Some(top)
    } else if lim >= 0.0 {
        Some(lim as u32)
    } else {
        None
    }
}

/// The Hamming scan a query at a time: each query's distances to every row of the chunk
/// ([`hamming::hamming_rows`]), then its best rows by a counting selection
/// ([`smallest_by_count`]; distances are integers in `0..=8·row_bytes`), ties at the cut
/// to the smaller row as the top-k breaks them, only those offered.
fn scan_hamming_rows(
    qbits: &[u8],
    bits: &[u8],
    rb: usize,
    first_row: u64,
    heaps: &mut [TopK],
    filter: Option<&RowFilter>,
) {
    let top = 8 * rb as u32;
    let (mut dist, mut scratch, mut picked) = (
        vec![0u32; bits.len() / rb.max(1)],
        CountScratch::default(),
        Vec::new(),
    );
    for (heap, qb) in heaps.iter_mut().zip(qbits.chunks_exact(rb)) {
        hamming::hamming_rows(qb, bits, rb, &mut dist);
        let Some(max) = hamming_limit(heap, top) else {
            continue;
        };
        let keep = heap.k();
        match filter {
            None => smallest_by_count(&dist, max, keep, |_| true, &mut scratch, &mut picked),
            Some(fl) => smallest_by_count(
                &dist,
                max,
                keep,
                |r| fl.allows(first_row + r as u64),
                &mut scratch,
                &mut picked,
            ),
        }
        heap.extend_selected(
            picked
                .iter()
                .map(|&r| (-(dist[r] as f32), first_row + r as u64)),
        );
    }
}

/// The Hamming scan by blocks ([`hamming::scan_blocks`]): the chunk's rows repacked by
/// nibble once, then [`hamming::SCAN_QUERIES`] queries at a time against every block,
/// each query's running bound compared inside the kernel. The rows below it are gathered
/// ([`Gather`]) and the best of them offered: the rows [`scan_hamming_rows`] offers, in
/// the same order.
fn scan_hamming_blocks(
    level: Level,
    tables: &[u8],
    bits: &[u8],
    rb: usize,
    first_row: u64,
    heaps: &mut [TopK],
    filter: Option<&RowFilter>,
) {
    let n = bits.len() / rb;
    if n == 0 {
        return;
    }
    let top = 8 * rb as u32;
    let tb = rb * hamming::SCAN_TABLE_BYTES;
    let mut blocks = vec![0u8; n.div_ceil(hamming::SCAN_ROWS) * rb * hamming::SCAN_BLOCK_BYTES];
    hamming::pack_nibble_blocks(bits, rb, &mut blocks);
    let mut sink = Gather {
        filter,
        first_row,
        bound: [0; hamming::SCAN_QUERIES],
        keep: [0; hamming::SCAN_QUERIES],
        cands: Default::default(),
        hist: Vec::new(),
    };
    for (g, group) in heaps.chunks_mut(hamming::SCAN_QUERIES).enumerate() {
        for (l, heap) in group.iter().enumerate() {
            // Distances below `max + 1` (`0`: none) are gathered.
            sink.bound[l] = hamming_limit(heap, top).map_or(0, |m| m as u16 + 1);
            sink.keep[l] = heap.k();
            sink.cands[l].clear();
        }
        if sink.bound[..group.len()].iter().all(|&b| b == 0) {
            continue;
        }
        let q0 = g * hamming::SCAN_QUERIES;
        let t = &tables[q0 * tb..(q0 + group.len()) * tb];
        hamming::scan_blocks_at(level, t, rb, &blocks, n, &mut sink);
        for (l, heap) in group.iter_mut().enumerate() {
            let c = &mut sink.cands[l];
            keep_best(c, sink.keep[l], &mut sink.hist);
            heap.extend_selected(
                c.iter()
                    .map(|&(r, h)| (-f32::from(h), first_row + u64::from(r))),
            );
        }
    }
}

/// The rows of a chunk the blocked Hamming scan reports for a group of queries: per
/// query, the allowed rows below its bound as `(row, distance)`, in row order. Once a
/// query has gathered `2 × keep + 64`, it keeps its best `keep` ([`keep_best`]) and lowers
/// its bound to the worst of them: a later row at that distance comes after the kept ones
/// and loses the tie, so no row that could be among the best `keep` is dropped.
struct Gather<'a> {
    filter: Option<&'a RowFilter>,
    first_row: u64,
    bound: [u16; hamming::SCAN_QUERIES],
    keep: [usize; hamming::SCAN_QUERIES],
    cands: [Vec<(u32, u16)>; hamming::SCAN_QUERIES],
    hist: Vec<u32>,
}

impl hamming::DistSink for Gather<'_> {
    #[inline]
    fn bound(&mut self, q: usize, _b: usize) -> u16 {
        self.bound[q]
    }

    fn hits(&mut self, q: usize, b: usize, mut mask: u32, dists: &[u16; hamming::SCAN_ROWS]) {
        let c = &mut self.cands[q];
        while mask != 0 {
            let i = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let r = b * hamming::SCAN_ROWS + i;
            if self
                .filter
                .is_none_or(|f| f.allows(self.first_row + r as u64))
            {
                c.push((r as u32, dists[i]));
            }
        }
        if c.len() >= 2 * self.keep[q] + 64
            && let Some(t) = keep_best(c, self.keep[q], &mut self.hist)
        {
            self.bound[q] = t;
        }
    }
}

/// Keeps the best `keep` of `cands` (`(row, distance)` in row order): the smallest
/// distances, ties to the earlier rows (the top-k's rule, rows increasing with ids),
/// in their order. When some are dropped, returns the worst kept distance.
fn keep_best(cands: &mut Vec<(u32, u16)>, keep: usize, hist: &mut Vec<u32>) -> Option<u16> {
    if cands.len() <= keep {
        return None;
    }
    if keep == 0 {
        cands.clear();
        return Some(0);
    }
    let worst = cands.iter().map(|c| c.1).max().unwrap_or(0);
    hist.clear();
    hist.resize(usize::from(worst) + 1, 0);
    for &(_, h) in cands.iter() {
        hist[usize::from(h)] += 1;
    }
    let (mut below, mut t) = (0usize, worst);
    for (h, &c) in hist.iter().enumerate() {
        if below + c as usize >= keep {
            t = h as u16;
            break;
        }
        below += c as usize;
    }
    let mut ties = keep - below;
    cands.retain(|&(_, h)| {
        if h == t && ties > 0 {
            ties -= 1;
            return true;
        }
        h < t
    });
    Some(t)
}

/// `Σ_{bit set} q_i` over one row of sign bits, with the bits of [`hamming::set_sums`]:
/// each byte's entry is the sum of its set dimensions in increasing order (what
/// [`hamming::byte_tables`] holds), added into four partial sums by byte position mod 4,
/// then `(s0 + s1) + (s2 + s3)`.
fn set_sum(q: &[f32], row: &[u8]) -> f32 {
    let mut s = [0f32; 4];
    for (i, &b) in row.iter().enumerate() {
        let mut e = 0f32;
        let mut bits = b;
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            e += q.get(8 * i + j).copied().unwrap_or(0.0);
        }
        s[i % 4] += e;
    }
    (s[0] + s[1]) + (s[2] + s[3])
}

impl Ints {
    fn new(frame: Frame, int4: bool, gauss: bool) -> Ints {
        let d = frame.d;
        let nq = frame.qt.len() / d.max(1);
        let (mut qc, mut qscale) = (vec![0i8; nq * d], vec![0f32; nq]);
        if !gauss {
            for i in 0..nq {
                let s = crate::codec::int8::row_scale(frame.q(i));
                crate::simd::int8::quantize(frame.q(i), s, &mut qc[i * d..(i + 1) * d]);
                qscale[i] = s;
            }
        }
        Ints {
            frame,
            int4,
            gauss,
            qc,
            qscale,
        }
    }

    fn scan(
        &self,
        payload: &[u8],
        n: usize,
        first_row: u64,
        heaps: &mut [TopK],
        filter: Option<&RowFilter>,
    ) {
        let f = &self.frame;
        let d = f.d;
        let rb = if self.int4 { d.div_ceil(2) } else { d };
        let scales: Vec<f32> = (0..n).map(|r| f32_at(payload, n * rb + 4 * r)).collect();
        if self.gauss {
            return self.scan_gauss(payload, n, &scales, first_row, heaps, filter);
        }
        let codes: Cow<'_, [i8]> = if self.int4 {
            let mut out = vec![0i8; n * d];
            for (packed, o) in payload[..n * rb]
                .chunks_exact(rb.max(1))
                .zip(out.chunks_exact_mut(d.max(1)))
            {
                idot::unpack_i4(packed, o);
            }
            Cow::Owned(out)
        } else {
            let bytes = &payload[..n * d];
            // SAFETY: i8 and u8 have the same size and alignment and every bit pattern is
            // a valid i8: this views the same initialised bytes as signed codes.
            Cow::Borrowed(unsafe {
                std::slice::from_raw_parts(bytes.as_ptr().cast::<i8>(), bytes.len())
            })
        };
        let nsq: Vec<f32> = if f.needs_norms() {
            let mut self_dot = [0i32; 1];
            codes
                .chunks_exact(d.max(1))
                .zip(&scales)
                .map(|(row, &s)| {
                    idot::dot_rows(row, row, &mut self_dot);
                    s * s * self_dot[0] as f32
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut dots = vec![0i32; INT_TILE];
        for (t, tile) in codes.chunks(INT_TILE * d.max(1)).enumerate() {
            let m = tile.len() / d.max(1);
            let r0 = t * INT_TILE;
            for (i, heap) in heaps.iter_mut().enumerate() {
                idot::dot_rows(&self.qc[i * d..(i + 1) * d], tile, &mut dots[..m]);
                let qs = self.qscale[i];
                for (j, &p) in dots[..m].iter().enumerate() {
                    let r = r0 + j;
                    let dot = p as f32 * (qs * scales[r]);
                    let score = f.rank(dot, nsq.get(r).copied().unwrap_or(0.0));
                    offer(heap, score, first_row + r as u64, filter);
                }
            }
        }
    }

    /// int4 on the Gaussian grid: per query, a table of `q̃_j · level(code)` for each
    /// dimension and code; a row's dot is `d` lookups in a fixed order.
    fn scan_gauss(
        &self,
        payload: &[u8],
        n: usize,
        scales: &[f32],
        first_row: u64,
        heaps: &mut [TopK],
        filter: Option<&RowFilter>,
    ) {
        let f = &self.frame;
        let d = f.d;
        let rb = d.div_ceil(2);
        let mut nibs = vec![0u8; n * d];
        for (packed, o) in payload[..n * rb]
            .chunks_exact(rb.max(1))
            .zip(nibs.chunks_exact_mut(d.max(1)))
        {
            for (j, v) in o.iter_mut().enumerate() {
                *v = (packed[j / 2] >> (4 * (j % 2))) & 15;
            }
        }
        // Codes are within ±7: the nibble of −8 never occurs, and its entry is unused.
        let level = |nib: u8| match nib {
            8 => 0.0,
            _ => gauss_level(((nib << 4) as i8) >> 4),
        };
        let nsq: Vec<f32> = if f.needs_norms() {
            nibs.chunks_exact(d.max(1))
                .zip(scales)
                .map(|(row, &s)| {
                    let l2: f32 = row.iter().map(|&c| level(c) * level(c)).sum();
                    s * s * l2
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut lut = vec![0f32; d * 16];
        for (i, heap) in heaps.iter_mut().enumerate() {
            for (j, &qj) in f.q(i).iter().enumerate() {
                for c in 0..16u8 {
                    lut[j * 16 + c as usize] = qj * level(c);
                }
            }
            for (r, row) in nibs.chunks_exact(d.max(1)).enumerate() {
                let mut acc = [0f32; 4];
                for (j, &c) in row.iter().enumerate() {
                    acc[j % 4] += lut[j * 16 + c as usize];
                }
                let dot = scales[r] * ((acc[0] + acc[1]) + (acc[2] + acc[3]));
                let score = f.rank(dot, nsq.get(r).copied().unwrap_or(0.0));
                offer(heap, score, first_row + r as u64, filter);
            }
        }
    }
}

/// Prefetch distance, in candidates, of [`Int8Rescorer::rescore`].
const RESCORE_AHEAD: usize = 8;

/// Re-ranking candidates by an `int8` container's rows without decoding them: `q·x̂ =
/// s · (q̃·c)` and `‖x̂‖² = s² · Σc²` ([`crate::simd::int8::dot_codes`]: the float query
/// against the codes, the row's scale folded in), the codes read in place from the
/// mapped file, one row each. The scores are those of the decoded rows up to float
/// rounding (the query is not quantized, unlike the int8 scan).
#[derive(Debug)]
pub(crate) struct Int8Rescorer<'a> {
    c: &'a Container,
    frame: Frame,
}

impl<'a> Int8Rescorer<'a> {
    /// The rescorer of `c`'s rows for the prepared queries, or `None` when `c` is not
    /// `int8` or its chunks are compressed (then rows are fetched by
    /// [`Container::get_many`]).
    ///
    /// # Errors
    /// [`crate::Error::Config`] when the codec parameters do not parse.
    pub(crate) fn new(c: &'a Container, q: &Queries) -> Result<Option<Int8Rescorer<'a>>> {
        let spec = &c.header().codec;
        if spec.id != CodecId::Int8 || c.chunks().is_empty() || c.chunk_codes(0)?.is_none() {
            return Ok(None);
        }
        let d = c.dims();
        let p = QuantParams::decode("int8", &spec.params, d)?;
        let frame = match p.rotation {
            Some(r) => Frame::rotated(q, d, &Rotation::new(d, r.rounds, r.seed)),
            None => Frame::plain(q, d),
        };
        Ok(Some(Int8Rescorer { c, frame }))
    }

    /// Scores query `i` against rows `cands` into `top`; `chunks` caches the chunks' codes
    /// (one entry per chunk, `None` until first used).
    ///
    /// # Errors
    /// Errors reading a chunk; [`crate::Error::Corrupt`] for a row whose scale is not
    /// finite (as [`Container::get_many`] reports it).
    pub(crate) fn rescore(
        &self,
        i: usize,
        cands: &[u64],
        top: &mut TopK,
        chunks: &mut [Option<&'a [u8]>],
    ) -> Result<()> {
        let (c, f) = (self.c, &self.frame);
        let d = f.d;
        let q = f.q(i);
        let per_chunk = u64::from(c.header().chunk_rows.max(1));
        let mut at = |id: u64| -> Result<(&'a [u8], usize, usize)> {
            let ci = (id / per_chunk) as usize;
            let e = c.chunks()[ci];
            let payload = match chunks[ci] {
                Some(p) => p,
                None => {
                    let p = c.chunk_codes(ci)?.ok_or_else(|| {
                        crate::Error::Config(format!(
                            "{}: chunk {ci} is compressed, its first chunk was not",
                            c.path().display()
                        ))
                    })?;
                    chunks[ci] = Some(p);
                    p
                }
            };
            Ok((payload, e.rows as usize, (id - e.first_row) as usize))
        };
        for (j, &id) in cands.iter().enumerate() {
            if let Some(&next) = cands.get(j + RESCORE_AHEAD) {
                let (p, _, r) = at(next)?;
                (r * d..(r + 1) * d)
                    .step_by(64)
                    .for_each(|b| crate::simd::prefetch(p, b));
            }
            let (p, n, r) = at(id)?;
            let codes = &p[r * d..(r + 1) * d];
            // SAFETY: i8 and u8 have the same size and alignment and every bit pattern is
            // a valid i8: this views the same initialised bytes as signed codes.
            let codes =
                unsafe { std::slice::from_raw_parts(codes.as_ptr().cast::<i8>(), codes.len()) };
            let s = f32_at(p, n * d + 4 * r);
            if !s.is_finite() {
                let mut row = vec![0f32; d];
                crate::simd::int8::dequantize(codes, s, &mut row);
                crate::format::decoded::check(c.path(), &row, d, id)?;
            }
            let (dot, sq) = crate::simd::int8::dot_codes(q, codes);
            top.push(f.rank(s * dot, s * s * sq as f32), id);
        }
        Ok(())
    }
}

/// Rows of `sq` codes turned into levels at a time.
const SQ_TILE: usize = 256;
/// Queries scored against one tile of levels at a time.
const SQ_QUERIES: usize = 256;

/// The `sq` scorer: the estimator `g · (q̃·L)` (centred: `+ κ · (q·c)`) with the row's
/// norm from its factors.
#[derive(Debug)]
pub struct SqScan {
    frame: Frame,
    /// `q·c` per query (centred codecs; empty otherwise).
    qc: Vec<f32>,
    codec: Sq,
    /// Each query's own row (sampled queries), excluded from its results.
    own: Vec<Option<u64>>,
}

impl SqScan {
    fn new(codec: Sq, q: &Queries) -> SqScan {
        let d = crate::codec::Codec::dims(&codec);
        let qc = codec.mean().map_or_else(Vec::new, |c| {
            (0..q.len())
                .map(|i| {
                    let s: f64 = q
                        .get(i)
                        .iter()
                        .zip(c)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum();
                    s as f32
                })
                .collect()
        });
        // A padded codec (layout 3) codes rows padded with zeros and rotated over more
        // dims: the queries are padded and rotated alike.
        let rd = codec.rotated_dims();
        let frame = if rd == d {
            Frame::rotated(q, d, codec.rotation())
        } else {
            let mut f = Frame::plain(q, d);
            f.qt = (0..q.len())
                .flat_map(|i| {
                    q.get(i)
                        .iter()
                        .copied()
                        .chain(std::iter::repeat_n(0.0, rd - d))
                })
                .collect();
            f.d = rd;
            f.qt.chunks_exact_mut(rd)
                .for_each(|row| codec.rotation().forward(row));
            f
        };
        SqScan {
            frame,
            qc,
            own: (0..q.len()).map(|i| q.own(i)).collect(),
            codec,
        }
    }

    fn scan(
        &self,
        payload: &[u8],
        n: usize,
        first_row: u64,
        heaps: &mut [TopK],
        filter: Option<&RowFilter>,
    ) {
        let f = &self.frame;
        let d = f.d;
        let nq = heaps.len();
        if d == 0 || nq == 0 {
            return;
        }
        let (bits, rb) = (self.codec.bits(), self.codec.row_bytes());
        let cb = self.codec.code_bytes();
        let mut levels = vec![0f32; SQ_TILE * d];
        let mut codes = vec![0u8; d];
        let mut gain = vec![0f32; SQ_TILE];
        let mut offset = vec![0f32; SQ_TILE];
        let mut nsq = vec![0f32; SQ_TILE];
        let mut dots = vec![0f32; SQ_QUERIES * SQ_TILE];
        for t0 in (0..n).step_by(SQ_TILE) {
            let m = SQ_TILE.min(n - t0);
            for j in 0..m {
                let row = &payload[(t0 + j) * rb..(t0 + j + 1) * rb];
                let ll = sq::row_levels(
                    &row[..cb],
                    bits,
                    &mut codes,
                    &mut levels[j * d..(j + 1) * d],
                );
                let t = self.codec.row_terms(row, &levels[j * d..(j + 1) * d], ll);
                gain[j] = t.gain;
                offset[j] = t.offset;
                nsq[j] = t.norm_sq;
            }
            for q0 in (0..nq).step_by(SQ_QUERIES) {
                let qm = SQ_QUERIES.min(nq - q0);
                let out = &mut dots[..qm * m];
                super::exact::dot_tile(&f.qt[q0 * d..(q0 + qm) * d], &levels[..m * d], d, out);
                for (i, row) in out.chunks_exact(m).enumerate() {
                    let qi = q0 + i;
                    let own = self.own[qi];
                    let heap = &mut heaps[qi];
                    let qc = self.qc.get(qi).copied().unwrap_or(0.0);
                    for (j, &s) in row.iter().enumerate() {
                        let id = first_row + (t0 + j) as u64;
                        if Some(id) == own {
                            continue;
                        }
                        let score = f.rank(gain[j] * s + offset[j] * qc, nsq[j]);
                        offer(heap, score, id, filter);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    /// The sign-bit fast-scan leaves the heaps of the float set sums bit for bit, for
    /// every metric, plain and ITQ-like frames (`c0`, `w`), a filter, floors from other
    /// chunks, rows of negative scale, a dimension count that is not a multiple of 8, and a
    /// partial query group.
    #[test]
    fn sign_bit_fast_scan_equals_the_float_set_sums() {
        let mut rng = Rng(0x0b17_fa57);
        let mut uniform = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| rng.below(20001) as f32 / 10000.0 - 1.0)
                .collect()
        };
        for (d, itq) in [(64usize, false), (100, false), (384, true)] {
            let (rows, nq) = (700, 19);
            let rb = d.div_ceil(8);
            let x = uniform(rows * d);
            let qv = uniform(nq * d);
            let mut payload = vec![0u8; rows * rb];
            for (r, row) in x.chunks_exact(d).enumerate() {
                hamming::sign_bits(row, &mut payload[r * rb..(r + 1) * rb]);
            }
            for r in 0..rows {
                let s = 0.05 + (r % 13) as f32 / 50.0;
                // Some rows with a negative scale: their score falls as the set sum
                // rises, so the bounds must not rule them out.
                let s = if r % 17 == 5 { -s } else { s };
                payload.extend_from_slice(&s.to_le_bytes());
            }
            let allow: Vec<u64> = (0..rows as u64 + 3).filter(|r| r % 5 != 1).collect();
            let filter = RowFilter::new(&allow, rows as u64 + 3);
            for metric in [Metric::Ip, Metric::Cos, Metric::L2] {
                let q = Queries::new(qv.clone(), d, None, metric);
                let frame = || {
                    let mut f = Frame::plain(&q, d);
                    if itq {
                        f.c0 = (0..nq).map(|i| i as f32 / 7.0 - 1.0).collect();
                        f.w = Some((0..d).map(|t| (t % 9) as f32 / 90.0 - 0.04).collect());
                        f.mu2 = 0.3;
                    }
                    f
                };
                let fast = Bits::new(frame(), false);
                assert!(fast.fast.is_some());
                let slow = Bits::new(frame(), false).without_fast_scan();
                let bits = |t: &TopK| -> Vec<(u32, u64)> {
                    t.sorted()
                        .iter()
                        .map(|e| (e.score.to_bits(), e.id))
                        .collect()
                };
                // k = 100 (a rescoring depth): more rows than the lower bounds' floor
                // can skip; k = rows: none.
                for (k, floors, filt) in [
                    (10, false, None),
                    (10, true, Some(&filter)),
                    (100, false, None),
                    (100, true, Some(&filter)),
                    (rows, false, None),
                ] {
                    let heaps = |b: &Bits| {
                        let mut h: Vec<TopK> = (0..nq)
                            .map(|i| {
                                // A floor as a previous chunk would leave it: no floor,
                                // or one that some rows beat.
                                let fl = if floors {
                                    (i as f32 - 9.0) / 40.0
                                } else {
                                    f32::NEG_INFINITY
                                };
                                TopK::with_floor(k, fl)
                            })
                            .collect();
                        b.scan(&payload, rows, 3, &mut h, filt);
                        h
                    };
                    let (got, want) = (heaps(&fast), heaps(&slow));
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert_eq!(
                            bits(g),
                            bits(w),
                            "d={d} {metric} k={k} floors={floors} query {i}"
                        );
                        assert!(floors || w.sorted().len() == k);
                    }
                    // The floors leave some queries candidates (else the case tests nothing).
                    assert!(
                        want.iter().any(|w| !w.sorted().is_empty()),
                        "d={d} {metric}"
                    );
                }
            }
        }
    }

    /// `n` integers in -1000..=1000 as floats: few distinct sign patterns' distances, many
    /// ties.
    fn integers(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.below(2001) as f32 - 1000.0).collect()
    }

    /// A sign-bit chunk payload of `rows` random rows of `d` dims: each row's sign bits,
    /// then every row's scale 0.5.
    fn sign_rows(rng: &mut Rng, rows: usize, d: usize) -> Vec<u8> {
        let rb = d.div_ceil(8);
        let x = integers(rng, rows * d);
        let mut payload = vec![0u8; rows * rb];
        for (r, row) in x.chunks_exact(d).enumerate() {
            hamming::sign_bits(row, &mut payload[r * rb..(r + 1) * rb]);
        }
        payload.extend((0..rows).flat_map(|_| 0.5f32.to_le_bytes()));
        payload
    }

    /// The Hamming scan's counting selection leaves each query the top-k of `-distance`
    /// over every row offered one by one (ties to the smaller row): few distinct distances
    /// (16 dimensions, so heavy ties at the cut), `keep` below and above the row count,
    /// floors from other chunks (some below every row, some cutting through the ties) and
    /// a filter.
    #[test]
    fn hamming_counting_selection_equals_offering_every_row() {
        let mut rng = Rng(0x4a33_1e55);
        for d in [16usize, 100] {
            let (rows, nq) = (500, 9);
            let rb = d.div_ceil(8);
            let payload = sign_rows(&mut rng, rows, d);
            let qv = integers(&mut rng, nq * d);
            let allow: Vec<u64> = (0..rows as u64 + 7).filter(|r| r % 4 != 3).collect();
            let filter = RowFilter::new(&allow, rows as u64 + 7);
            let q = Queries::new(qv.clone(), d, None, Metric::Cos);
            let b = Bits::new(Frame::plain(&q, d), true);
            for keep in [1usize, 10, 37, 499, 600] {
                for filt in [None, Some(&filter)] {
                    for floor in [f32::NEG_INFINITY, -(d as f32) / 2.0, -1.0] {
                        let mut got: Vec<TopK> =
                            (0..nq).map(|_| TopK::with_floor(keep, floor)).collect();
                        b.scan(&payload, rows, 7, &mut got, filt);
                        let mut dist = vec![0u32; rows];
                        for (i, g) in got.iter().enumerate() {
                            let qb = &b.hamming.as_ref().unwrap()[i * rb..(i + 1) * rb];
                            hamming::hamming_rows_scalar(qb, &payload[..rows * rb], rb, &mut dist);
                            let mut want = TopK::with_floor(keep, floor);
                            for (r, &h) in dist.iter().enumerate() {
                                offer(&mut want, -(h as f32), 7 + r as u64, filt);
                            }
                            let what = format!("d={d} keep={keep} floor={floor} query {i}");
                            assert_eq!(g.sorted(), want.sorted(), "{what}");
                        }
                    }
                }
            }
        }
    }

    /// The blocked Hamming scan, at every level, leaves each query's top-k as the scan a
    /// query at a time does, bit for bit: 1 to 9 queries (partial query groups), row
    /// counts that are not a multiple of the 32-row blocks, few distinct distances (heavy
    /// ties at every cut), `keep` small enough that the gathered rows are cut down many
    /// times and larger than the rows, floors from other chunks and a filter.
    #[test]
    fn blocked_hamming_scan_equals_the_scan_a_query_at_a_time() {
        let mut rng = Rng(0xb10c_4a33);
        for (d, rows) in [(16usize, 333usize), (100, 517), (384, 95)] {
            let rb = d.div_ceil(8);
            let payload = sign_rows(&mut rng, rows, d);
            let bits = &payload[..rows * rb];
            let allow: Vec<u64> = (0..rows as u64 + 5).filter(|r| r % 3 != 2).collect();
            let filter = RowFilter::new(&allow, rows as u64 + 5);
            for nq in 1..=9 {
                let qv: Vec<f32> = (0..nq * d)
                    .map(|_| rng.below(2001) as f32 - 1000.0)
                    .collect();
                let q = Queries::new(qv, d, None, Metric::Cos);
                let b = Bits::new(Frame::plain(&q, d), true);
                let (qbits, tables) = (
                    b.hamming.as_ref().unwrap(),
                    b.nibble_tables.as_ref().unwrap(),
                );
                for keep in [1usize, 7, 100, rows + 1] {
                    for filt in [None, Some(&filter)] {
                        for floor in [f32::NEG_INFINITY, -(d as f32) / 2.0, -2.0] {
                            let heaps = || -> Vec<TopK> {
                                (0..nq)
                                    // Some queries with a floor no row reaches.
                                    .map(|i| match i % 4 {
                                        3 => TopK::with_floor(keep, 1.0),
                                        _ => TopK::with_floor(keep, floor),
                                    })
                                    .collect()
                            };
                            let mut want = heaps();
                            scan_hamming_rows(qbits, bits, rb, 5, &mut want, filt);
                            if floor == f32::NEG_INFINITY && filt.is_none() {
                                assert_eq!(want[0].sorted().len(), keep.min(rows));
                            }
                            for level in Level::available() {
                                let mut got = heaps();
                                scan_hamming_blocks(level, tables, bits, rb, 5, &mut got, filt);
                                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                                    let what = format!(
                                        "{level:?} d={d} nq={nq} keep={keep} floor={floor} \
                                         filter={} query {i}",
                                        filt.is_some()
                                    );
                                    assert_eq!(g.sorted(), w.sorted(), "{what}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn set_sum_has_the_bits_of_the_table_sums() {
        let mut rng = Rng(0x5e75);
        for d in [8usize, 13, 384] {
            let q: Vec<f32> = (0..d)
                .map(|_| rng.below(2001) as f32 / 997.0 - 1.0)
                .collect();
            let rb = d.div_ceil(8);
            let mut t = vec![0f32; rb * hamming::TABLE];
            hamming::byte_tables(&q, &mut t);
            let rows = 50;
            let mut codes: Vec<u8> = (0..rows * rb).map(|_| rng.below(256) as u8).collect();
            if d % 8 != 0 {
                for r in 0..rows {
                    codes[r * rb + rb - 1] &= (1u8 << (d % 8)) - 1;
                }
            }
            let mut want = vec![0f32; rows];
            hamming::set_sums(&t, &codes, rb, &mut want);
            for (r, w) in want.iter().enumerate() {
                assert_eq!(
                    set_sum(&q, &codes[r * rb..(r + 1) * rb]).to_bits(),
                    w.to_bits()
                );
            }
        }
    }
}
