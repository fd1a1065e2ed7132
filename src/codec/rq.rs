//! Residual quantization (RQ) with beam-search encoding: a learned additive code.
//!
//! A row is approximated by a sum of `m` codewords, one from each of `m` codebooks of 256
//! entries over the *full* dimension: `x̂ = C₁[c₁] + C₂[c₂] + … + Cₘ[cₘ]`. Unlike PQ, every
//! codebook spans all coordinates, so at the same bytes the code adapts to correlations
//! between dimensions; a row costs `m` bytes of codes plus a 2-byte scale.
//!
//! - **Training** (on a seeded sample, out of core like PQ): codebook `l` is k-means on
//!   the residuals that codebooks `1..l` leave (greedy RQ), clustered with progressive
//!   dimensions in the residuals' principal axes (see `progressive_kmeans`; `iters` Lloyd
//!   iterations at each of its steps), then `refine` rounds alternate
//!   beam-search encoding of the sample with a least-squares update of every codebook in
//!   turn given the others (block coordinate descent: codeword `k` of level `l` becomes
//!   the mean of `x − x̂ + C_l[c_l]` over the rows that use it), which lowers the error of
//!   the codes as they are really encoded.
//! - **Encoding** keeps the `beam` best partial codes of each row level by level
//!   (distance `‖x − Σ C_l[c_l]‖²`, ties to the lower index) and writes the best.
//! - **The norm** is coded separately: each row stores, as IEEE half precision, the scale
//!   `s = ‖x‖ / ‖x̂‖`, and decodes to `s · x̂`, whose length is the row's own (to half
//!   precision). So inner-product and L2 search see each row's true length, and a
//!   unit-length row decodes to unit length.
//!
//! Payload of a chunk of `n` rows: row after row, `m` code bytes then the f16 scale.
//! Parameter block: FORMAT.md, "rq (id 19)".

use std::sync::atomic::AtomicBool;

use byteorder::{ByteOrder, LittleEndian as LE};
use rayon::prelude::*;

use super::codebook::{RowSource, Ticker, TrainOptions, Watch, draw_sample};
use super::kmeans::{self, CentroidTable, KMeansParams};
use super::{Codec, CodecId, CodecSpec, EncodeFault};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Codewords per codebook (8-bit codes).
pub const K: usize = 256;
/// Bytes of the parameter block before the codebooks.
const FIXED_LEN: usize = 40;
/// Rows RQ trains on unless `--train-rows` says otherwise.
pub const DEFAULT_RQ_ROWS: u64 = 32_768;
/// Most codebooks (bytes of codes per row).
pub const MAX_M: usize = 255;
/// Widest beam.
pub const MAX_BEAM: usize = 64;
/// Most local-search rounds after the beam.
pub const MAX_ICM: usize = 64;
/// Conditional-mode sweeps over the levels in one local-search round.
const ICM_SWEEPS: usize = 2;
/// Rows encoded per parallel task (fixed, so the work split never depends on the input).
const ROWS_PER_TASK: usize = 64;

/// Training settings parsed from `--codec rq:m=16,...`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RqParams {
    /// Codebooks, i.e. code bytes per row (`m=`).
    pub m: usize,
    /// Partial codes kept per row while encoding (`beam=`).
    pub beam: usize,
    /// Lloyd iterations of each level's k-means (`iters=`).
    pub iters: usize,
    /// Rounds of beam encoding plus codebook update after the greedy levels (`refine=`).
    pub refine: usize,
    /// Seed of the sample and the k-means initialisations (`seed=`).
    pub seed: u64,
    /// Rounds of iterated local search after the beam (`icm=`, 0 for none): each round
    /// perturbs a few levels of the row's code, runs conditional-mode sweeps, and keeps the
    /// result if its error is lower (LSQ++'s encoder, started from the beam's code).
    pub icm: usize,
}

/// The keys `rq:` takes.
const KEYS: [&str; 6] = ["m", "beam", "iters", "refine", "seed", "icm"];

impl RqParams {
    fn defaults(m: usize) -> RqParams {
        RqParams {
            m,
            beam: 8,
            iters: 12,
            refine: 2,
            seed: 1234,
            icm: 0,
        }
    }

    /// Parses the parameter list of `rq:`, checking everything that does not depend on the
    /// data's dimension ([`RqParams::check_dims`] does the rest).
    ///
    /// # Errors
    /// [`Error::Config`] for a missing `m`, an unknown key or a bad value.
    pub fn parse_keys(text: &str) -> Result<RqParams> {
        let mut p = RqParams::defaults(0);
        let bad = |msg: String| Error::Config(format!("rq: {msg}"));
        for (k, v) in super::params::key_values("rq", text, &KEYS)? {
            let num = |lo: u64, hi: u64, what: &str| -> Result<u64> {
                v.parse::<u64>()
                    .ok()
                    .filter(|n| (lo..=hi).contains(n))
                    .ok_or_else(|| bad(format!("{k} must be {lo} to {hi} ({what}), got '{v}'")))
            };
            match k {
                "m" => p.m = num(1, MAX_M as u64, "codebooks, one byte each")? as usize,
                "beam" => p.beam = num(1, MAX_BEAM as u64, "partial codes kept")? as usize,
                "iters" => p.iters = num(1, 1000, "k-means iterations a level")? as usize,
                "refine" => p.refine = num(0, 100, "codebook update rounds")? as usize,
                "seed" => p.seed = num(0, u64::MAX, "a whole number")?,
                "icm" => p.icm = num(0, MAX_ICM as u64, "local-search rounds")? as usize,
                _ => unreachable!("key_values checks the keys"),
            }
        }
        if p.m == 0 {
            return Err(bad(
                "needs the number of codebooks m, one byte of code each (e.g. rq:m=16 for 16 \
                 bytes of codes a row)"
                    .into(),
            ));
        }
        Ok(p)
    }

    /// Checks that `m` codebooks fit `dims`-dimensional rows: at most one a dimension.
    ///
    /// # Errors
    /// [`Error::Config`] saying the largest `m` that fits.
    pub fn check_dims(&self, dims: usize) -> Result<()> {
        if self.m <= dims {
            return Ok(());
        }
        Err(Error::Config(format!(
            "rq: m={} codebooks do not fit {dims}-dimensional rows: at most {dims} (one per \
             dimension; more bytes than that are better spent on int8 or f16)",
            self.m
        )))
    }

    /// Every parameter, defaults included, in one fixed order (`icm` only when set, so
    /// that recipes written before it existed read the same).
    pub fn canonical(&self) -> String {
        let icm = if self.icm > 0 {
            format!(",icm={}", self.icm)
        } else {
            String::new()
        };
        format!(
            "rq:m={},beam={},iters={},refine={},seed={}{icm}",
            self.m, self.beam, self.iters, self.refine, self.seed
        )
    }

    /// The `key=value` settings that differ from their defaults, `m` first.
    pub fn non_default_keys(&self) -> Vec<String> {
        let all = self.canonical();
        let base = RqParams::defaults(self.m).canonical();
        let (_, all) = all.split_once(':').unwrap_or_default();
        let (_, base) = base.split_once(':').unwrap_or_default();
        let base: Vec<&str> = base.split(',').collect();
        all.split(',')
            .enumerate()
            .filter(|&(i, a)| a.starts_with("m=") || base.get(i) != Some(&a))
            .map(|(_, a)| a.to_string())
            .collect()
    }
}

/// The `rq` codec: `m` frozen codebooks of 256 full-dimension codewords.
#[derive(Debug, Clone)]
pub struct Rq {
    dims: usize,
    m: usize,
    beam: usize,
    /// Local-search rounds after the beam ([`RqParams::icm`]).
    icm: usize,
    /// `m × K × dims`: level, then codeword, then coordinate.
    books: Vec<f32>,
    tables: Vec<CentroidTable>,
    /// The inner products between codewords of different levels, built on first encode
    /// (encoding only; see [`cross_products`]).
    cross: std::sync::OnceLock<Vec<f32>>,
    facts: RqFacts,
}

/// How an `rq` codec was trained, as `info` shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RqFacts {
    /// Rows in the training sample.
    pub sample_rows: u64,
    /// Lloyd iterations of each level's k-means (the most any level ran).
    pub kmeans_iterations: u32,
    /// Rounds of beam encoding plus codebook update.
    pub refine_rounds: u32,
    /// Mean squared error per row of the sample's beam-encoded sums, before scaling.
    pub distortion: f64,
    /// Seed of the sample and the initialisation.
    pub seed: u64,
}

impl PartialEq for Rq {
    fn eq(&self, o: &Rq) -> bool {
        self.dims == o.dims
            && self.m == o.m
            && self.beam == o.beam
            && self.icm == o.icm
            && self.books == o.books
            && self.facts == o.facts
    }
}

impl Rq {
    fn from_parts(
        dims: usize,
        m: usize,
        (beam, icm): (usize, usize),
        books: Vec<f32>,
        facts: RqFacts,
    ) -> Rq {
        let tables = books
            .chunks_exact(K * dims)
            .map(|c| CentroidTable::new(c, K, dims))
            .collect();
        Rq {
            dims,
            m,
            beam,
            icm,
            books,
            tables,
            cross: std::sync::OnceLock::new(),
            facts,
        }
    }

    /// Codebooks (code bytes per row).
    pub fn m(&self) -> usize {
        self.m
    }

    /// The encoding beam width.
    pub fn beam(&self) -> usize {
        self.beam
    }

    /// Local-search rounds after the beam (0: the beam's code as it is).
    pub fn icm(&self) -> usize {
        self.icm
    }

    /// How it was trained.
    pub fn facts(&self) -> &RqFacts {
        &self.facts
    }

    /// Codeword `k` of level `l`.
    pub fn codeword(&self, l: usize, k: usize) -> &[f32] {
        let at = (l * K + k) * self.dims;
        &self.books[at..at + self.dims]
    }

    /// Every codeword, `m × 256 × dims` floats: level, then codeword, then coordinate.
    pub fn codebooks(&self) -> &[f32] {
        &self.books
    }

    /// Bytes of one encoded row: the codes and the f16 scale.
    pub fn row_bytes(&self) -> usize {
        self.m + 2
    }

    /// Trains on a seeded sample of `source` (default [`DEFAULT_RQ_ROWS`] rows).
    ///
    /// # Errors
    /// [`Error::Config`] when `m` does not fit the dims or the sample has fewer than 256
    /// rows; errors reading the sample; [`Error::Training`] for a non-finite result;
    /// [`Error::Cancelled`] once `opts.cancel` is set.
    pub fn train(
        p: &RqParams,
        source: &dyn RowSource,
        opts: &TrainOptions,
        progress: &dyn Progress,
    ) -> Result<Rq> {
        p.check_dims(source.dims())?;
        let opts = TrainOptions {
            train_rows: Some(opts.train_rows.unwrap_or(DEFAULT_RQ_ROWS)),
            ..*opts
        };
        let sample = draw_sample(source, &opts, p.seed, K, progress)?;
        train_on(p, &sample, source.dims(), progress, opts.flag())
    }

    /// The codec parameter block (FORMAT.md, "rq (id 19)").
    pub fn to_params(&self) -> Vec<u8> {
        let mut out = vec![0u8; FIXED_LEN];
        LE::write_u32(&mut out[0..4], self.dims as u32);
        LE::write_u16(&mut out[4..6], self.m as u16);
        out[6] = self.beam as u8;
        out[7] = self.icm as u8;
        let f = &self.facts;
        LE::write_u64(&mut out[8..16], f.sample_rows);
        LE::write_u32(&mut out[16..20], f.kmeans_iterations);
        LE::write_u32(&mut out[20..24], f.refine_rounds);
        LE::write_f64(&mut out[24..32], f.distortion);
        LE::write_u64(&mut out[32..40], f.seed);
        out.reserve(4 * self.books.len());
        for v in &self.books {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Rebuilds the codec from a parameter block, for `dims`-dimensional rows.
    ///
    /// # Errors
    /// [`Error::Mismatch`] when the block is for another dimension; [`Error::Config`]
    /// naming the field that does not fit.
    pub fn from_params(params: &[u8], dims: usize) -> Result<Rq> {
        let bad = |msg: String| Error::Config(format!("rq codebooks: {msg}"));
        if params.len() < FIXED_LEN {
            return Err(bad(format!(
                "{} bytes, at least {FIXED_LEN} expected",
                params.len()
            )));
        }
        let stored = LE::read_u32(&params[0..4]) as usize;
        if stored != dims {
            return Err(Error::Mismatch(format!(
                "the codebook is for {stored}-dimensional vectors, the data has {dims} dims; \
                 train a codebook on data of this shape"
            )));
        }
        let m = LE::read_u16(&params[4..6]) as usize;
        let (beam, icm) = (params[6] as usize, params[7] as usize);
        if m == 0 || m > MAX_M.min(dims) {
            return Err(bad(format!(
                "m = {m} at byte 4, expected 1 to {}",
                MAX_M.min(dims)
            )));
        }
        if beam == 0 || beam > MAX_BEAM {
            return Err(bad(format!(
                "beam = {beam} at byte 6, expected 1 to {MAX_BEAM}"
            )));
        }
        if icm > MAX_ICM {
            return Err(bad(format!(
                "icm = {icm} at byte 7, expected 0 to {MAX_ICM}"
            )));
        }
        let want = FIXED_LEN as u64 + 4 * (m * K) as u64 * dims as u64;
        if params.len() as u64 != want {
            return Err(bad(format!("{} bytes, expected {want}", params.len())));
        }
        let books: Vec<f32> = params[FIXED_LEN..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = books.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "non-finite value at byte {}",
                FIXED_LEN + 4 * i
            )));
        }
        let facts = RqFacts {
            sample_rows: LE::read_u64(&params[8..16]),
            kmeans_iterations: LE::read_u32(&params[16..20]),
            refine_rounds: LE::read_u32(&params[20..24]),
            distortion: LE::read_f64(&params[24..32]),
            seed: LE::read_u64(&params[32..40]),
        };
        Ok(Rq::from_parts(dims, m, (beam, icm), books, facts))
    }

    /// The crc32c of the parameter block: two containers with the same fingerprint share
    /// their codebooks.
    pub fn fingerprint(&self) -> u32 {
        crate::checksum::crc(&self.to_params())
    }

    /// The beam-search codes of each row of `x` into `codes` (`m` a row).
    fn encode_codes(&self, x: &[f32], codes: &mut [u8]) {
        let (d, m) = (self.dims, self.m);
        let cross =
            (m <= MAX_CROSS_M).then(|| self.cross.get_or_init(|| cross_products(self)).as_slice());
        x.par_chunks(ROWS_PER_TASK * d)
            .zip(codes.par_chunks_mut(ROWS_PER_TASK * m))
            .for_each(|(rows, out)| {
                let mut beam = Beam::new(self.beam, d, m);
                let mut ils = Ils::new(d, m);
                for (row, code) in rows.chunks_exact(d).zip(out.chunks_exact_mut(m)) {
                    match cross {
                        Some(t) => beam.search_tables(self, t, row, code),
                        None => beam.search(self, row, code),
                    }
                    if self.icm > 0 {
                        ils.refine(self, row, code);
                    }
                }
            });
    }

    /// The unscaled sum of the codewords of `code`, in level order, into `out`.
    fn sum_codewords(&self, code: &[u8], out: &mut [f32]) {
        out.copy_from_slice(self.codeword(0, code[0] as usize));
        for (l, &c) in code.iter().enumerate().skip(1) {
            out.iter_mut()
                .zip(self.codeword(l, c as usize))
                .for_each(|(o, v)| *o += v);
        }
    }
}

/// Most codebooks for which encoding uses the table of cross products (`m(m−1)/2 × 256²`
/// floats: 130 MB at 32); above it, each beam entry carries its residual instead.
const MAX_CROSS_M: usize = 32;

/// Offset of level `l`'s cross products in the table of [`cross_products`].
#[inline]
fn cross_at(l: usize) -> usize {
    l * (l - 1) / 2 * K * K
}

/// `T[l][j][a][k] = 2⟨C_j[a], C_l[k]⟩` for every pair of levels `j < l`, level `l` at
/// [`cross_at`]`(l)`, then `j`, then `a`, then `k`. With them the error of extending a
/// partial code `c₁..c_{l−1}` of `x` by `k` is, without the residual,
/// `err + ‖C_l[k]‖² − 2⟨x, C_l[k]⟩ + Σ_j T[l][j][c_j][k]` (faiss's beam LUT). Computed as
/// `‖C_l[k]‖²` minus the nearest-centroid kernel's scores of `C_j[a]` against level `l`,
/// which every SIMD level computes bit for bit alike, so the codes do not depend on the CPU.
fn cross_products(rq: &Rq) -> Vec<f32> {
    let (m, d) = (rq.m, rq.dims);
    let mut t = vec![0f32; cross_at(m)];
    let blocks: Vec<(usize, usize)> = (1..m).flat_map(|l| (0..l).map(move |j| (l, j))).collect();
    t.par_chunks_mut(K * K)
        .zip(blocks.par_iter())
        .for_each(|(out, &(l, j))| {
            let norms = rq.tables[l].norms();
            for (a, o) in out.chunks_exact_mut(K).enumerate() {
                rq.tables[l].all_scores(&rq.books[(j * K + a) * d..(j * K + a + 1) * d], o);
                o.iter_mut().zip(norms).for_each(|(v, &n)| *v = n - *v);
            }
        });
    t
}

/// Beam-search state for one row at a time: the `width` best partial codes, their
/// residuals and squared errors.
struct Beam {
    width: usize,
    d: usize,
    m: usize,
    /// Per entry: codes so far (`m`), residual (`d`), error.
    codes: Vec<u8>,
    resid: Vec<f32>,
    err: Vec<f32>,
    next_codes: Vec<u8>,
    next_resid: Vec<f32>,
    next_err: Vec<f32>,
    scores: Vec<f32>,
    /// The best candidates of a level: (error, entry, codeword), sorted.
    best: Vec<(f32, u32, u32)>,
}

impl Beam {
    fn new(width: usize, d: usize, m: usize) -> Beam {
        Beam {
            width,
            d,
            m,
            codes: vec![0; width * m],
            resid: vec![0.0; width * d],
            err: vec![0.0; width],
            next_codes: vec![0; width * m],
            next_resid: vec![0.0; width * d],
            next_err: vec![0.0; width],
            scores: vec![0.0; K],
            best: Vec::with_capacity(width + 1),
        }
    }

    /// Like [`Beam::search`], from the cross products `t` ([`cross_products`]) instead of
    /// residuals: `O(l · 256)` a beam entry at level `l` instead of `O(256 · d)`.
    fn search_tables(&mut self, rq: &Rq, t: &[f32], row: &[f32], out: &mut [u8]) {
        let m = self.m;
        self.err[0] = row.iter().map(|v| v * v).sum();
        let mut live = 1;
        let mut cand = vec![0f32; K];
        for l in 0..m {
            // ‖C_l[k]‖² − 2⟨x, C_l[k]⟩, shared by every entry.
            rq.tables[l].all_scores(row, &mut self.scores);
            self.best.clear();
            for b in 0..live {
                let base = self.err[b];
                cand.iter_mut()
                    .zip(&self.scores)
                    .for_each(|(c, &s)| *c = base + s);
                let codes = &self.codes[b * m..b * m + l];
                for (j, &cj) in codes.iter().enumerate() {
                    let at = cross_at(l) + (j * K + cj as usize) * K;
                    cand.iter_mut()
                        .zip(&t[at..at + K])
                        .for_each(|(c, &v)| *c += v);
                }
                for (k, &e) in cand.iter().enumerate() {
                    self.offer((e, b as u32, k as u32));
                }
            }
            live = self.best.len();
            for (j, &(e, b, k)) in self.best.iter().enumerate() {
                let b = b as usize;
                let nc = &mut self.next_codes[j * m..(j + 1) * m];
                nc[..l].copy_from_slice(&self.codes[b * m..b * m + l]);
                nc[l] = k as u8;
                self.next_err[j] = e;
            }
            std::mem::swap(&mut self.codes, &mut self.next_codes);
            std::mem::swap(&mut self.err, &mut self.next_err);
        }
        let best = (0..live).fold(0, |i, j| if self.err[j] < self.err[i] { j } else { i });
        out.copy_from_slice(&self.codes[best * m..(best + 1) * m]);
    }

    /// Keeps `cand` if it is among the `width` best of the level so far.
    #[inline]
    fn offer(&mut self, cand: (f32, u32, u32)) {
        if self.best.len() == self.width {
            // Sorted ascending: the last is the worst kept; ties keep the earlier
            // candidate (lower entry, then lower codeword).
            if !less(cand, self.best[self.width - 1]) {
                return;
            }
            self.best.pop();
        }
        let at = self.best.partition_point(|&c| less(c, cand));
        self.best.insert(at, cand);
    }

    /// Writes the best code of `row` found by a beam of `self.width` into `out`.
    fn search(&mut self, rq: &Rq, row: &[f32], out: &mut [u8]) {
        let (d, m) = (self.d, self.m);
        self.resid[..d].copy_from_slice(row);
        self.err[0] = row.iter().map(|v| v * v).sum();
        let mut live = 1;
        for l in 0..m {
            self.best.clear();
            for b in 0..live {
                rq.tables[l].all_scores(&self.resid[b * d..(b + 1) * d], &mut self.scores);
                let base = self.err[b];
                let scores = std::mem::take(&mut self.scores);
                for (k, &sc) in scores.iter().enumerate() {
                    self.offer((base + sc, b as u32, k as u32));
                }
                self.scores = scores;
            }
            live = self.best.len();
            for (j, &(_, b, k)) in self.best.iter().enumerate() {
                let (b, k) = (b as usize, k as usize);
                let nc = &mut self.next_codes[j * m..(j + 1) * m];
                nc[..l].copy_from_slice(&self.codes[b * m..b * m + l]);
                nc[l] = k as u8;
                let src = &self.resid[b * d..(b + 1) * d];
                let dst = &mut self.next_resid[j * d..(j + 1) * d];
                let mut e = 0f32;
                for ((o, &r), &c) in dst.iter_mut().zip(src).zip(rq.codeword(l, k)) {
                    *o = r - c;
                    e += *o * *o;
                }
                self.next_err[j] = e;
            }
            std::mem::swap(&mut self.codes, &mut self.next_codes);
            std::mem::swap(&mut self.resid, &mut self.next_resid);
            std::mem::swap(&mut self.err, &mut self.next_err);
        }
        // The entry of least exact error, the first on ties.
        let best = (0..live).fold(0, |i, j| if self.err[j] < self.err[i] { j } else { i });
        out.copy_from_slice(&self.codes[best * m..(best + 1) * m]);
    }
}

/// Iterated local search on one row's code at a time (LSQ++'s encoder, started from the
/// beam's code): round 0 runs [`ICM_SWEEPS`] conditional-mode sweeps from the code as it
/// is; each later round first sets a few levels to codewords drawn from a generator seeded
/// by the row's current code and the round (so the result depends on the row alone, never
/// on its position or the thread count). A sweep visits the levels in order and gives
/// level `l` the codeword nearest to `x − Σ_{j≠l} C_j[c_j]`. A round's code replaces the
/// row's only if its exact error `‖x − Σ C_l[c_l]‖²` (summed in level order) is lower.
struct Ils {
    d: usize,
    m: usize,
    cand: Vec<u8>,
    resid: Vec<f32>,
    xh: Vec<f32>,
    scores: Vec<f32>,
}

impl Ils {
    fn new(d: usize, m: usize) -> Ils {
        Ils {
            d,
            m,
            cand: vec![0; m],
            resid: vec![0.0; d],
            xh: vec![0.0; d],
            scores: vec![0.0; K],
        }
    }

    /// `‖x − Σ C_l[code_l]‖²`, the sum in level order.
    fn error(&mut self, rq: &Rq, x: &[f32], code: &[u8]) -> f32 {
        rq.sum_codewords(code, &mut self.xh);
        x.iter().zip(&self.xh).map(|(a, b)| (a - b) * (a - b)).sum()
    }

    fn refine(&mut self, rq: &Rq, x: &[f32], code: &mut [u8]) {
        let (d, m) = (self.d, self.m);
        let mut best = self.error(rq, x, code);
        // Levels a perturbation redraws: about one in eight, at least one.
        let perturb = m.div_ceil(8).min(m);
        for round in 0..rq.icm {
            self.cand.copy_from_slice(code);
            if round > 0 {
                let mut h = 0xcbf2_9ce4_8422_2325u64 ^ round as u64;
                for &c in code.iter() {
                    h = (h ^ u64::from(c)).wrapping_mul(0x0100_0000_01b3);
                }
                for _ in 0..perturb {
                    h = splitmix(h);
                    let l = (h >> 32) as usize % m;
                    h = splitmix(h);
                    self.cand[l] = (h >> 56) as u8;
                }
            }
            // resid = x − Σ C[cand].
            rq.sum_codewords(&self.cand, &mut self.xh);
            self.resid
                .iter_mut()
                .zip(x)
                .zip(&self.xh)
                .for_each(|((r, a), b)| *r = a - b);
            for _ in 0..ICM_SWEEPS {
                for l in 0..m {
                    let old = rq.codeword(l, self.cand[l] as usize);
                    self.resid.iter_mut().zip(old).for_each(|(r, c)| *r += c);
                    let (k, _) = rq.tables[l].nearest(&self.resid, &mut self.scores);
                    self.cand[l] = k as u8;
                    let new = &rq.books[(l * K + k) * d..(l * K + k + 1) * d];
                    self.resid.iter_mut().zip(new).for_each(|(r, c)| *r -= c);
                }
            }
            let cand = std::mem::take(&mut self.cand);
            let e = self.error(rq, x, &cand);
            if e < best {
                best = e;
                code.copy_from_slice(&cand);
            }
            self.cand = cand;
        }
    }
}

/// One step of the splitmix64 generator.
#[inline]
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The order of beam candidates: error, then entry, then codeword; NaN last.
#[inline]
fn less(a: (f32, u32, u32), b: (f32, u32, u32)) -> bool {
    match a.0.partial_cmp(&b.0) {
        Some(std::cmp::Ordering::Less) => true,
        Some(std::cmp::Ordering::Greater) => false,
        Some(std::cmp::Ordering::Equal) => (a.1, a.2) < (b.1, b.2),
        None => !a.0.is_nan() && b.0.is_nan(),
    }
}

/// Trains the codebooks on `sample` (`n × dims`).
///
/// # Errors
/// As [`Rq::train`].
pub fn train_on(
    p: &RqParams,
    sample: &[f32],
    dims: usize,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Rq> {
    p.check_dims(dims)?;
    let d = dims;
    let n = sample.len() / d;
    if n < K {
        return Err(Error::Config(format!(
            "rq: training needs at least {K} rows (one per codeword), the sample has {n}; use \
             more rows or a larger --train-rows"
        )));
    }
    progress.stage("rq levels and refinements", (p.m + p.refine) as u64);
    let ticker = Ticker { cancel, progress };
    // Greedy levels: progressive-dimension k-means on what the levels so far leave.
    let mut resid = sample.to_vec();
    let mut books = Vec::with_capacity(p.m * K * d);
    let mut most_iters = 0;
    for l in 0..p.m {
        let kp = KMeansParams {
            k: K,
            max_iter: p.iters,
            tol: 0.0,
            seed: p.seed ^ (l as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        let km = progressive_kmeans(&resid, d, &kp, &Quiet(cancel))?;
        most_iters = most_iters.max(km.iterations);
        resid
            .par_chunks_mut(d)
            .zip(km.labels.par_iter())
            .for_each(|(r, &j)| {
                let c = &km.centroids[j as usize * d..(j as usize + 1) * d];
                r.iter_mut().zip(c).for_each(|(a, b)| *a -= b);
            });
        books.extend_from_slice(&km.centroids);
        ticker.steps(1);
    }
    let facts = RqFacts {
        sample_rows: n as u64,
        kmeans_iterations: most_iters as u32,
        refine_rounds: p.refine as u32,
        distortion: 0.0,
        seed: p.seed,
    };
    let mut rq = Rq::from_parts(d, p.m, (p.beam, p.icm), books, facts);
    let mut codes = vec![0u8; n * p.m];
    for _ in 0..p.refine {
        ticker.check()?;
        rq.encode_codes(sample, &mut codes);
        let books = update_codebooks(&rq, sample, &codes);
        rq = Rq::from_parts(d, p.m, (p.beam, p.icm), books, facts);
        ticker.steps(1);
    }
    ticker.check()?;
    rq.encode_codes(sample, &mut codes);
    rq.facts.distortion = distortion(&rq, sample, &codes);
    if !rq.facts.distortion.is_finite() || rq.books.iter().any(|v| !v.is_finite()) {
        return Err(Error::Training(
            "training failed: the distortion on the sample is non-finite (its values are too \
             large for float32 arithmetic); check the input for outliers, or normalise it"
                .into(),
        ));
    }
    Ok(rq)
}

/// Steps of [`progressive_kmeans`]: the dimensions clustered grow as `d^(s/STEPS)`.
const PROGRESSIVE_STEPS: u32 = 10;

/// Progressive-dimension k-means (Liu, Lu and Shao, "Improved Residual Vector Quantization",
/// AAAI 2015; how faiss trains its residual quantizer): the rows are taken to their principal
/// axes, clustered on the leading axis first, then on exponentially more axes up to all
/// `d`, each step starting from the last step's centroids (new axes at zero); the centroids
/// are rotated back. On residuals this finds much better optima than one k-means over every
/// dimension from random rows. Deterministic: every step is.
fn progressive_kmeans(
    x: &[f32],
    d: usize,
    p: &KMeansParams,
    stop: &dyn Watch,
) -> Result<kmeans::KMeans> {
    use nalgebra::DMatrix;
    let n = x.len() / d;
    let (mean, eig, order) = super::opq::principal_axes(x, d, "covariance of the residuals")?;
    // V (d × d): column j is the j-th largest axis.
    let v = DMatrix::<f32>::from_fn(d, d, |i, j| eig.eigenvectors[(i, order[j])] as f32);
    let centred: Vec<f32> = x
        .chunks_exact(d)
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(&a, &m)| (f64::from(a) - m) as f32)
        })
        .collect();
    // Y = (X − mean) · V, kept row-major.
    let y = DMatrix::<f32>::from_row_slice(n, d, &centred) * &v;
    let y: Vec<f32> = y.transpose().as_slice().to_vec();
    let mut km: Option<kmeans::KMeans> = None;
    let mut prev = 0;
    for s in 1..=PROGRESSIVE_STEPS {
        let di = if s == PROGRESSIVE_STEPS {
            d
        } else {
            ((d as f64).powf(f64::from(s) / f64::from(PROGRESSIVE_STEPS)) as usize).clamp(1, d)
        };
        if di <= prev {
            continue;
        }
        let sub: Vec<f32> = y.chunks_exact(d).flat_map(|r| &r[..di]).copied().collect();
        km = Some(match km {
            None => kmeans::train_random_init(&sub, di, p, stop)?,
            Some(last) => {
                let init = last
                    .centroids
                    .chunks_exact(prev)
                    .flat_map(|c| c.iter().copied().chain(std::iter::repeat_n(0.0, di - prev)))
                    .collect();
                kmeans::refine(&sub, di, p, init, stop)?
            }
        });
        prev = di;
    }
    let mut km = km.expect("the last step clusters all d dimensions");
    // Back from the axes: c = mean + V · c'.
    let c = DMatrix::<f32>::from_row_slice(p.k, d, &km.centroids) * v.transpose();
    let c = c.transpose();
    km.centroids = c
        .as_slice()
        .chunks_exact(d)
        .flat_map(|row| {
            row.iter()
                .zip(&mean)
                .map(|(&a, &m)| (f64::from(a) + m) as f32)
        })
        .collect();
    Ok(km)
}

/// A cancel flag that reports no progress (k-means's iterations are not the stage's steps).
struct Quiet<'a>(&'a AtomicBool);

impl Watch for Quiet<'_> {
    fn check(&self) -> Result<()> {
        super::codebook::check_cancel(self.0)
    }
}

/// Least-squares update of each codebook in turn, the others fixed: codeword `k` of level
/// `l` becomes the mean of `x − x̂ + C_l[c_l]` over the rows coded `k` at level `l` (a
/// codeword no row uses keeps its value). Sequential, in f64, so the result never depends
/// on the thread count.
fn update_codebooks(rq: &Rq, x: &[f32], codes: &[u8]) -> Vec<f32> {
    let (d, m) = (rq.dims, rq.m);
    let n = x.len() / d;
    let mut books = rq.books.clone();
    // x − x̂ for each row, in f64.
    let mut resid: Vec<f64> = vec![0.0; n * d];
    let mut xh = vec![0f32; d];
    for (i, (row, code)) in x.chunks_exact(d).zip(codes.chunks_exact(m)).enumerate() {
        rq.sum_codewords(code, &mut xh);
        for ((r, &a), &b) in resid[i * d..(i + 1) * d].iter_mut().zip(row).zip(&xh) {
            *r = f64::from(a) - f64::from(b);
        }
    }
    let mut sums = vec![0f64; K * d];
    let mut counts = vec![0u64; K];
    for l in 0..m {
        sums.fill(0.0);
        counts.fill(0);
        let book = &books[l * K * d..(l + 1) * K * d];
        for (i, code) in codes.chunks_exact(m).enumerate() {
            let k = code[l] as usize;
            counts[k] += 1;
            let c = &book[k * d..(k + 1) * d];
            for ((s, &r), &v) in sums[k * d..(k + 1) * d]
                .iter_mut()
                .zip(&resid[i * d..(i + 1) * d])
                .zip(c)
            {
                *s += r + f64::from(v);
            }
        }
        let mut new = book.to_vec();
        for ((o, sum), &c) in new
            .chunks_exact_mut(d)
            .zip(sums.chunks_exact(d))
            .zip(&counts)
        {
            if c > 0 {
                let inv = 1.0 / c as f64;
                o.iter_mut()
                    .zip(sum)
                    .for_each(|(o, &s)| *o = (s * inv) as f32);
            }
        }
        // The residuals with the new codewords of this level.
        for (i, code) in codes.chunks_exact(m).enumerate() {
            let k = code[l] as usize;
            let (old, cur) = (&book[k * d..(k + 1) * d], &new[k * d..(k + 1) * d]);
            for ((r, &a), &b) in resid[i * d..(i + 1) * d].iter_mut().zip(old).zip(cur) {
                *r += f64::from(a) - f64::from(b);
            }
        }
        books[l * K * d..(l + 1) * K * d].copy_from_slice(&new);
    }
    books
}

/// Mean `‖x − x̂‖²` per row of the unscaled sums.
fn distortion(rq: &Rq, x: &[f32], codes: &[u8]) -> f64 {
    let (d, m) = (rq.dims, rq.m);
    let mut xh = vec![0f32; d];
    let mut total = 0f64;
    for (row, code) in x.chunks_exact(d).zip(codes.chunks_exact(m)) {
        rq.sum_codewords(code, &mut xh);
        total += row
            .iter()
            .zip(&xh)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>();
    }
    total / (x.len() / d).max(1) as f64
}

/// The f16 scale `‖x‖ / ‖x̂‖` (0 for a zero sum), clamped to the f16 range.
fn scale(x: &[f32], xh: &[f32]) -> half::f16 {
    let n2 = |v: &[f32]| v.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>();
    let (nx, nh) = (n2(x).sqrt(), n2(xh).sqrt());
    let s = if nh > 0.0 { nx / nh } else { 0.0 };
    half::f16::from_f64(s.min(f64::from(half::f16::MAX.to_f32())))
}

impl Codec for Rq {
    fn name(&self) -> String {
        if self.icm > 0 {
            format!("rq:m={},beam={},icm={}", self.m, self.beam, self.icm)
        } else {
            format!("rq:m={},beam={}", self.m, self.beam)
        }
    }

    fn spec(&self) -> CodecSpec {
        CodecSpec {
            id: CodecId::Rq,
            params: self.to_params(),
        }
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn encoded_len(&self, rows: usize) -> usize {
        rows * self.row_bytes()
    }

    fn row_major(&self) -> bool {
        true
    }

    fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault> {
        let (d, m, rb) = (self.dims, self.m, self.row_bytes());
        let rows = input.len() / d;
        let mut codes = vec![0u8; rows * m];
        self.encode_codes(input, &mut codes);
        out.par_chunks_mut(ROWS_PER_TASK * rb)
            .zip(codes.par_chunks(ROWS_PER_TASK * m))
            .zip(input.par_chunks(ROWS_PER_TASK * d))
            .for_each(|((o, c), x)| {
                let mut xh = vec![0f32; d];
                for ((o, c), x) in o
                    .chunks_exact_mut(rb)
                    .zip(c.chunks_exact(m))
                    .zip(x.chunks_exact(d))
                {
                    self.sum_codewords(c, &mut xh);
                    o[..m].copy_from_slice(c);
                    o[m..].copy_from_slice(&scale(x, &xh).to_le_bytes());
                }
            });
        Ok(())
    }

    fn decode(&self, payload: &[u8], rows: usize, out: &mut [f32]) {
        let (d, m, rb) = (self.dims, self.m, self.row_bytes());
        for (p, o) in payload
            .chunks_exact(rb)
            .zip(out[..rows * d].chunks_exact_mut(d))
            .take(rows)
        {
            self.sum_codewords(&p[..m], o);
            let s = half::f16::from_le_bytes([p[m], p[m + 1]]).to_f32();
            o.iter_mut().for_each(|v| *v *= s);
        }
    }

    fn decode_row(&self, payload: &[u8], _rows: usize, row: usize, out: &mut [f32]) {
        let rb = self.row_bytes();
        self.decode(&payload[row * rb..(row + 1) * rb], 1, out);
    }

    fn facts(&self) -> Vec<(String, String)> {
        let f = &self.facts;
        vec![
            (
                "codebook".into(),
                format!(
                    "{:08x} (crc32c of the codebook section)",
                    self.fingerprint()
                ),
            ),
            (
                "codebooks".into(),
                format!("{} x 256 codewords of {} dims", self.m, self.dims),
            ),
            (
                "encoding".into(),
                if self.icm > 0 {
                    format!(
                        "beam search, beam={}, then {} local-search rounds (icm={})",
                        self.beam, self.icm, self.icm
                    )
                } else {
                    format!("beam search, beam={}", self.beam)
                },
            ),
            ("train rows".into(), f.sample_rows.to_string()),
            ("k-means iterations".into(), f.kmeans_iterations.to_string()),
            ("refine rounds".into(), f.refine_rounds.to_string()),
            (
                "train distortion".into(),
                format!("{:.6} (mean squared error per row)", f.distortion),
            ),
            ("train seed".into(), f.seed.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::harness::round_trip;
    use crate::progress::NoProgress;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Rows around a few centres, with noise.
    fn data(rows: usize, dims: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres: Vec<f32> = (0..20 * dims)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        (0..rows)
            .flat_map(|_| {
                let c = rng.random_range(0..20);
                (0..dims)
                    .map(|t| centres[c * dims + t] + rng.random_range(-0.2f32..0.2))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn trained(text: &str, x: &[f32], d: usize) -> Rq {
        train_on(
            &RqParams::parse_keys(text).unwrap(),
            x,
            d,
            &NoProgress,
            &AtomicBool::new(false),
        )
        .unwrap()
    }

    fn mse(x: &[f32], y: &[f32], d: usize) -> f64 {
        x.iter()
            .zip(y)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum::<f64>()
            / (x.len() / d) as f64
    }

    #[test]
    fn round_trip_keeps_lengths_and_params_round_trip() {
        let d = 16;
        let x = data(1500, d, 1);
        let rq = trained("m=4,iters=5,refine=1,beam=4", &x, d);
        let y = round_trip(&rq, &x);
        for (a, b) in x.chunks(d).zip(y.chunks(d)) {
            let na = a.iter().map(|v| v * v).sum::<f32>().sqrt();
            let nb = b.iter().map(|v| v * v).sum::<f32>().sqrt();
            assert!((na - nb).abs() <= 2e-3 * na, "{na} vs {nb}");
        }
        let back = Rq::from_params(&rq.to_params(), d).unwrap();
        assert_eq!(back, rq);
        let e = Rq::from_params(&rq.to_params(), d + 1).unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)), "{e}");
        let mut p = rq.to_params();
        p.truncate(p.len() - 4);
        let e = Rq::from_params(&p, d).unwrap_err().to_string();
        assert!(e.contains("bytes, expected"), "{e}");
    }

    #[test]
    fn beam_and_refinement_lower_the_error() {
        let d = 16;
        let x = data(2000, d, 2);
        let greedy = trained("m=4,iters=8,refine=0,beam=1", &x, d);
        let beam = trained("m=4,iters=8,refine=0,beam=8", &x, d);
        let refined = trained("m=4,iters=8,refine=3,beam=8", &x, d);
        let (g, b, r) = (
            greedy.facts.distortion,
            beam.facts.distortion,
            refined.facts.distortion,
        );
        assert!(b < g && r < b, "greedy {g}, beam {b}, refined {r}");
        // The facts hold the error of the codes as encoded.
        let mut codes = vec![0u8; 2000 * 4];
        refined.encode_codes(&x, &mut codes);
        assert!((distortion(&refined, &x, &codes) - r).abs() < 1e-9);
    }

    #[test]
    fn local_search_lowers_the_error_and_keeps_old_blocks_readable() {
        let d = 16;
        let x = data(2000, d, 6);
        let beam = trained("m=4,iters=8,refine=2,beam=1", &x, d);
        let ils = trained("m=4,iters=8,refine=2,beam=1,icm=4", &x, d);
        assert_eq!(ils.icm(), 4);
        assert!(ils.name().ends_with(",icm=4"), "{}", ils.name());
        // Local search from the beam's codes, with the beam's codebooks: never worse, and
        // lower for some rows.
        let with_ils = Rq::from_parts(d, 4, (1, 4), beam.books.clone(), beam.facts);
        let (mut a, mut b) = (vec![0u8; 2000 * 4], vec![0u8; 2000 * 4]);
        beam.encode_codes(&x, &mut a);
        with_ils.encode_codes(&x, &mut b);
        let mut ils_state = Ils::new(d, 4);
        let mut lower = 0;
        for ((row, ca), cb) in x.chunks(d).zip(a.chunks(4)).zip(b.chunks(4)) {
            let (ea, eb) = (
                ils_state.error(&beam, row, ca),
                ils_state.error(&beam, row, cb),
            );
            assert!(eb <= ea, "{eb} > {ea}");
            lower += usize::from(eb < ea);
        }
        assert!(lower > 0);
        // Trained with local search (codebooks updated against its codes): lower still.
        assert!(
            ils.facts.distortion < beam.facts.distortion,
            "{} vs {}",
            ils.facts.distortion,
            beam.facts.distortion
        );
        // Byte 7 holds the rounds; a block without them (byte 7 zero) is the plain beam.
        let p = ils.to_params();
        assert_eq!((p[6], p[7]), (1, 4));
        assert_eq!(Rq::from_params(&p, d).unwrap(), ils);
        assert_eq!(beam.to_params()[7], 0);
        let mut bad = p.clone();
        bad[7] = 65;
        let e = Rq::from_params(&bad, d).unwrap_err().to_string();
        assert!(e.contains("icm = 65 at byte 7, expected 0 to 64"), "{e}");
        // The recipe names icm only when it is set.
        let q = RqParams::parse_keys("m=4,icm=3").unwrap();
        assert!(
            q.canonical().ends_with(",seed=1234,icm=3"),
            "{}",
            q.canonical()
        );
        assert_eq!(q.non_default_keys(), ["m=4", "icm=3"]);
        let q = RqParams::parse_keys("m=4,beam=2").unwrap();
        assert!(q.canonical().ends_with(",seed=1234"), "{}", q.canonical());
        assert_eq!(q.non_default_keys(), ["m=4", "beam=2"]);
    }

    #[test]
    fn training_and_encoding_are_identical_for_any_thread_count() {
        let d = 8;
        let x = data(700, d, 3);
        let run = |t| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .unwrap()
                .install(|| {
                    let rq = trained("m=3,iters=4,refine=1,beam=3,icm=2", &x, d);
                    let mut out = vec![0u8; rq.encoded_len(700)];
                    rq.encode(&x, &mut out).unwrap();
                    (rq.to_params(), out)
                })
        };
        assert_eq!(run(1), run(3));
    }

    #[test]
    fn bad_settings_are_named() {
        for (text, want) in [
            ("", "rq: needs the number of codebooks m"),
            ("m=0", "rq: m must be 1 to 255"),
            ("m=16,beam=0", "rq: beam must be 1 to 64"),
            ("m=16,iters=x", "rq: iters must be 1 to 1000"),
            ("m=16,q=1", "rq: unknown parameter 'q'"),
            ("m=16,icm=65", "rq: icm must be 0 to 64"),
        ] {
            let e = RqParams::parse_keys(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text}: {e}");
        }
        let e = RqParams::parse_keys("m=16")
            .unwrap()
            .check_dims(8)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m=16 codebooks do not fit 8-dimensional rows"),
            "{e}"
        );
        let x = data(100, 8, 4);
        let e = train_on(
            &RqParams::parse_keys("m=2").unwrap(),
            &x,
            8,
            &NoProgress,
            &AtomicBool::new(false),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("at least 256 rows"), "{e}");
    }

    #[test]
    fn rq_beats_pq_at_the_same_bytes() {
        let d = 32;
        let x = data(3000, d, 5);
        let rq = trained("m=4,iters=10", &x, d);
        let pqp = crate::codec::pq::PqParams::parse("pq", "m=4,aniso=1,unit=0", d).unwrap();
        let book = crate::codec::pq::train(
            CodecId::Pq,
            &pqp,
            &x,
            d,
            &NoProgress,
            &AtomicBool::new(false),
        )
        .unwrap();
        let pq = crate::codec::Pq::new(book);
        let (a, b) = (
            mse(&x, &round_trip(&rq, &x), d),
            mse(&x, &round_trip(&pq, &x), d),
        );
        assert!(a < b, "rq {a} vs pq {b}");
    }
}
