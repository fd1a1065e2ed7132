//! Product quantization (PQ), and the codec for OPQ (PQ after a learned rotation).
//!
//! A row is cut into `m` subspaces of `dims / m` coordinates; each subspace is replaced by
//! the index of its nearest centroid among `2^nbits` trained by k-means. A row costs
//! `m × nbits / 8` bytes. Decoding concatenates the centroids (and, for OPQ, rotates back).
//!
//! Payload of a chunk of `n` rows: `n × code_bytes` bytes, row-major; with `nbits = 4` the
//! code of subspace `j` is in byte `j / 2`, low nibble for even `j`.

use rayon::prelude::*;
use std::sync::atomic::AtomicBool;

use super::codebook::{Codebook, Ticker, TrainingFacts, Watch};
use super::kmeans::{self, CentroidTable, KMeansParams};
use super::{Codec, CodecId, CodecSpec, EncodeFault, aniso, opq};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Training settings parsed from `--codec pq:m=48,nbits=8,...`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PqParams {
    /// Subspaces.
    pub m: usize,
    /// Bits per code: 8 or 4.
    pub nbits: u8,
    /// Most Lloyd iterations per subspace (`iters=`).
    pub max_iter: usize,
    /// Early stop when an iteration improves distortion by less than this fraction (`tol=`).
    pub tol: f64,
    /// Seed of the sample and the initialisation (`seed=`).
    pub seed: u64,
    /// OPQ rotation updates (`opq_iters=`); ignored by PQ.
    pub opq_iters: usize,
    /// OPQ starting rotation (`opq_init=random|identity|pca`); ignored by PQ.
    pub opq_init: OpqInit,
    /// k-means seeding (`kinit=random|kpp`): uniformly drawn rows, or greedy k-means++.
    pub kmeans_pp: bool,
    /// k-means runs per subspace from different seeds (`redo=`); each subspace keeps its
    /// run of least distortion.
    pub redo: usize,
    /// Encoding's weight on the error along the row against the error across it
    /// (`aniso=`); 1 is plain nearest-centroid encoding. See [`Codebook::aniso`]. `None`
    /// (`auto`): [`aniso::DEFAULT`], or 1 for a unit-length codebook, whose decoding
    /// already removes the error along the row.
    pub aniso: Option<f32>,
    /// Whether decoding scales reconstructions to unit length (`unit=auto|1|0`); `None`
    /// (`auto`) decides from the training sample. See [`Codebook::unit`].
    pub unit: Option<bool>,
}

/// Where OPQ's alternation starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpqInit {
    /// A seeded random orthogonal matrix, as faiss starts.
    Random,
    /// No rotation: OPQ then only improves on PQ.
    Identity,
    /// PCA with eigenvalue allocation (the parametric OPQ solution); the default.
    Pca,
}

impl PqParams {
    /// Parses the parameter list of `pq:` or `opq:` for `dims`-dimensional rows.
    ///
    /// # Errors
    /// [`Error::Config`] for a missing `m`, an unknown key, a bad value, or `m` not dividing
    /// `dims` (the message lists the values that do).
    pub fn parse(name: &str, text: &str, dims: usize) -> Result<PqParams> {
        let p = PqParams::parse_keys(name, text)?;
        p.check_dims(name, dims)?;
        Ok(p)
    }

    /// Parses the parameter list of `pq:` or `opq:`, checking everything that does not
    /// depend on the data's dimension ([`PqParams::check_dims`] does the rest).
    ///
    /// # Errors
    /// [`Error::Config`] for a missing `m`, an unknown key or a bad value.
    pub fn parse_keys(name: &str, text: &str) -> Result<PqParams> {
        let mut p = PqParams::defaults(0);
        let bad = |msg: String| Error::Config(format!("{name}: {msg}"));
        for (k, v) in super::params::key_values(name, text, &KEYS)? {
            let num = |what: &str| -> Result<u64> {
                v.parse()
                    .map_err(|_| bad(format!("{what} must be a whole number, got '{v}'")))
            };
            match k {
                "m" => p.m = num("m")? as usize,
                "nbits" => p.nbits = num("nbits")?.min(255) as u8,
                "iters" => p.max_iter = num("iters")? as usize,
                "seed" => p.seed = num("seed")?,
                "opq_iters" => p.opq_iters = num("opq_iters")? as usize,
                "redo" => {
                    p.redo = num("redo")? as usize;
                    if !(1..=64).contains(&p.redo) {
                        return Err(bad(format!("redo must be 1 to 64, got {v}")));
                    }
                }
                "kinit" => {
                    p.kmeans_pp = match v {
                        "kpp" => true,
                        "random" => false,
                        _ => return Err(bad(format!("kinit must be kpp or random, got '{v}'"))),
                    }
                }
                "opq_init" => {
                    p.opq_init = match v {
                        "random" => OpqInit::Random,
                        "identity" => OpqInit::Identity,
                        "pca" => OpqInit::Pca,
                        _ => {
                            return Err(bad(format!(
                                "opq_init must be random, identity or pca, got '{v}'"
                            )));
                        }
                    }
                }
                "aniso" if v == "auto" => p.aniso = None,
                "aniso" => {
                    p.aniso = Some(
                        v.parse()
                            .ok()
                            .filter(|a: &f32| (1.0..=aniso::MAX).contains(a))
                            .ok_or_else(|| {
                                bad(format!(
                                    "aniso must be auto or a number from 1 to {}, got '{v}'",
                                    aniso::MAX
                                ))
                            })?,
                    )
                }
                "unit" => {
                    p.unit = match v {
                        "auto" => None,
                        "1" => Some(true),
                        "0" => Some(false),
                        _ => return Err(bad(format!("unit must be auto, 1 or 0, got '{v}'"))),
                    }
                }
                "tol" => {
                    p.tol = v
                        .parse()
                        .ok()
                        .filter(|t: &f64| (0.0..1.0).contains(t))
                        .ok_or_else(|| bad(format!("tol must be in [0, 1), got '{v}'")))?
                }
                _ => unreachable!("key_values checks the keys"),
            }
        }
        if p.m == 0 {
            return Err(bad(format!(
                "needs the number of subspaces m, a divisor of the dims (e.g. {name}:m=48 for \
                 384 dims: about 8 dims a subspace)"
            )));
        }
        if p.nbits != 4 && p.nbits != 8 {
            return Err(bad(format!("nbits must be 8 or 4, got {}", p.nbits)));
        }
        if p.m > u16::MAX as usize {
            return Err(bad(format!("m = {} is too large (at most 65535)", p.m)));
        }
        Ok(p)
    }

    /// Every setting at its default, with `m` subspaces.
    fn defaults(m: usize) -> PqParams {
        PqParams {
            m,
            nbits: 8,
            max_iter: 25,
            tol: 0.0,
            seed: 1234,
            opq_iters: 20,
            opq_init: OpqInit::Pca,
            kmeans_pp: false,
            redo: 1,
            aniso: None,
            unit: None,
        }
    }

    /// Checks that `m` divides `dims`.
    ///
    /// # Errors
    /// [`Error::Config`] listing the values of `m` that do.
    pub fn check_dims(&self, name: &str, dims: usize) -> Result<()> {
        if dims.is_multiple_of(self.m) {
            return Ok(());
        }
        let valid: Vec<String> = (1..=dims)
            .filter(|&m| dims.is_multiple_of(m))
            .map(|m| m.to_string())
            .collect();
        Err(Error::Config(format!(
            "{name}: {dims} dims are not divisible by m={}; valid m for {dims} dims: {} (about 8 dims a subspace: m={})",
            self.m,
            valid.join(", "),
            suggest_m(dims)
        )))
    }

    /// The `key=value` settings that differ from their defaults, `m` first, in the order
    /// of [`PqParams::canonical`].
    pub fn non_default_keys(&self, name: &str) -> Vec<String> {
        let all = self.canonical(name);
        let base = PqParams::defaults(self.m).canonical(name);
        let (_, all) = all.split_once(':').unwrap_or_default();
        let (_, base) = base.split_once(':').unwrap_or_default();
        all.split(',')
            .zip(base.split(','))
            .filter(|(a, b)| a.starts_with("m=") || a != b)
            .map(|(a, _)| a.to_string())
            .collect()
    }

    /// Centroids per subspace.
    pub fn ksub(&self) -> usize {
        1 << self.nbits
    }

    /// Every parameter, defaults included, in one fixed order: two codec strings that
    /// train the same codebook (`pq:m=48` and `pq:nbits=8,m=48`) give the same text.
    pub fn canonical(&self, name: &str) -> String {
        let auto = |v: Option<String>| v.unwrap_or_else(|| "auto".into());
        let mut s = format!(
            "{name}:m={},nbits={},iters={},tol={},seed={},kinit={},redo={},aniso={},unit={}",
            self.m,
            self.nbits,
            self.max_iter,
            self.tol,
            self.seed,
            if self.kmeans_pp { "kpp" } else { "random" },
            self.redo,
            auto(self.aniso.map(|a| a.to_string())),
            auto(self.unit.map(|u| u8::from(u).to_string())),
        );
        if name == "opq" {
            let init = match self.opq_init {
                OpqInit::Random => "random",
                OpqInit::Identity => "identity",
                OpqInit::Pca => "pca",
            };
            s += &format!(",opq_iters={},opq_init={init}", self.opq_iters);
        }
        s
    }
}

/// The keys `pq:` and `opq:` take.
const KEYS: [&str; 11] = [
    "m",
    "nbits",
    "iters",
    "tol",
    "seed",
    "kinit",
    "redo",
    "aniso",
    "unit",
    "opq_iters",
    "opq_init",
];

/// A divisor of `dims` giving about 8 dimensions per subspace, for the error message.
fn suggest_m(dims: usize) -> usize {
    (1..=dims)
        .filter(|&m| dims.is_multiple_of(m))
        .min_by_key(|m| (dims / m).abs_diff(8))
        .unwrap_or(1)
}

/// Trains a PQ (or, for [`CodecId::Opq`], OPQ) codebook on `sample` (`n × dims`),
/// reporting Lloyd iterations (summed over subspaces) as a `progress` stage.
///
/// # Errors
/// As [`opq::train`]; [`Error::Training`] if the distortion or a centroid is not finite;
/// [`Error::Cancelled`] once `cancel` is set (polled between Lloyd iterations).
pub fn train(
    id: CodecId,
    p: &PqParams,
    sample: &[f32],
    dims: usize,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Codebook> {
    progress.stage("k-means iterations", planned_iterations(id, p));
    let ticker = Ticker { cancel, progress };
    let mut book = if id == CodecId::Opq {
        opq::train(p, sample, dims, &ticker)?
    } else {
        pq_only(p, sample, dims, &ticker)?
    };
    book.unit = p.unit.unwrap_or_else(|| all_unit_length(sample, dims));
    book.aniso = p
        .aniso
        .unwrap_or(if book.unit { 1.0 } else { aniso::DEFAULT });
    // k-means does not fail on values whose squares overflow: it returns centroids that
    // encode nothing. Refuse them rather than write a useless codebook.
    if !book.facts.distortion.is_finite() || book.centroids.iter().any(|v| !v.is_finite()) {
        return Err(Error::Training(
            "training failed: the distortion on the sample is non-finite (its values are too \
             large for float32 arithmetic); check the input for outliers, or normalise it"
                .into(),
        ));
    }
    Ok(book)
}

/// The Lloyd iterations training plans, summed over subspaces, for progress: each
/// k-means run reports its iterations and, if it converges early, the rest as done.
fn planned_iterations(id: CodecId, p: &PqParams) -> u64 {
    let m = p.m as u64;
    let full = m * p.max_iter as u64;
    if id != CodecId::Opq || p.opq_iters == 0 {
        // PQ, or OPQ without rotation rounds: `redo` fresh runs per subspace.
        return full * p.redo.max(1) as u64;
    }
    // OPQ (opq::train): 8 iterations in the first round, 3 in each later one, then the
    // final warm-started run.
    m * (8 + 3 * (p.opq_iters as u64 - 1)) + full
}

/// Whether every row of `sample` has unit length, to within what float32 normalisation
/// leaves (`|‖x‖² − 1| ≤ 2e-3`, i.e. lengths within 0.1% of 1).
fn all_unit_length(sample: &[f32], dims: usize) -> bool {
    !sample.is_empty()
        && sample.chunks_exact(dims).all(|r| {
            let n2: f32 = r.iter().map(|v| v * v).sum();
            (n2 - 1.0).abs() <= 2e-3
        })
}

fn pq_only(p: &PqParams, sample: &[f32], dims: usize, cancel: &dyn Watch) -> Result<Codebook> {
    let fit = train_subspaces(p, sample, dims, None, cancel)?;
    Ok(Codebook {
        dims,
        m: p.m,
        nbits: p.nbits,
        centroids: fit.centroids,
        rotation: None,
        aniso: 1.0,
        unit: false,
        facts: TrainingFacts {
            sample_rows: (sample.len() / dims) as u64,
            kmeans_iterations: fit.iterations as u32,
            opq_iterations: 0,
            distortion: fit.distortion,
            seed: p.seed,
        },
    })
}

/// The codebooks of all subspaces, as k-means left them.
pub(crate) struct SubspaceFit {
    /// `m × ksub × dsub` centroids.
    pub centroids: Vec<f32>,
    /// The most Lloyd iterations any subspace ran.
    pub iterations: usize,
    /// Total mean squared error per row.
    pub distortion: f64,
    /// Per subspace, each row's nearest centroid (its code).
    pub labels: Vec<Vec<u32>>,
}

/// k-means in each subspace, in parallel; from fresh seeds (`p.redo` runs per subspace,
/// keeping the one of least distortion) or, with `warm`, from given centroids.
pub(crate) fn train_subspaces(
    p: &PqParams,
    data: &[f32],
    dims: usize,
    warm: Option<&[f32]>,
    cancel: &dyn Watch,
) -> Result<SubspaceFit> {
    let dsub = dims / p.m;
    let ksub = p.ksub();
    let parts: Vec<kmeans::KMeans> = (0..p.m)
        .into_par_iter()
        .map(|s| {
            let sub = subspace(data, dims, s * dsub, dsub);
            let run = |r: usize| {
                // Run 0 keeps the seed of a single run, so `redo=1` is the plain k-means.
                let seed = p.seed ^ (s as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let kp = KMeansParams {
                    k: ksub,
                    max_iter: p.max_iter,
                    tol: p.tol,
                    seed: seed.wrapping_add((r as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)),
                };
                match warm {
                    Some(w) => kmeans::refine(
                        &sub,
                        dsub,
                        &kp,
                        w[s * ksub * dsub..(s + 1) * ksub * dsub].to_vec(),
                        cancel,
                    ),
                    None if p.kmeans_pp => kmeans::train(&sub, dsub, &kp, cancel),
                    None => kmeans::train_random_init(&sub, dsub, &kp, cancel),
                }
            };
            let runs = if warm.is_some() { 1 } else { p.redo.max(1) };
            // Subspaces are independent, so the best run of each is kept on its own; the
            // first of equal distortions wins, whatever the schedule.
            (1..runs).try_fold(run(0)?, |best, r| {
                let k = run(r)?;
                Ok(if k.distortion < best.distortion {
                    k
                } else {
                    best
                })
            })
        })
        .collect::<Result<_>>()?;
    let iterations = parts.iter().map(|k| k.iterations).max().unwrap_or(0);
    let distortion = parts.iter().map(|k| k.distortion).sum();
    let mut centroids = Vec::with_capacity(p.m * ksub * dsub);
    let mut labels = Vec::with_capacity(p.m);
    for k in parts {
        centroids.extend_from_slice(&k.centroids);
        labels.push(k.labels);
    }
    Ok(SubspaceFit {
        centroids,
        iterations,
        distortion,
        labels,
    })
}

/// Columns `first..first + width` of a row-major `n × dims` matrix, contiguous.
fn subspace(data: &[f32], dims: usize, first: usize, width: usize) -> Vec<f32> {
    data.chunks_exact(dims)
        .flat_map(|r| &r[first..first + width])
        .copied()
        .collect()
}

/// The PQ and OPQ codec: a frozen codebook.
#[derive(Debug, Clone)]
pub struct Pq {
    book: Codebook,
    tables: Vec<CentroidTable>,
    /// `Rᵀ` for decoding (OPQ only): `x̂ = ŷ · Rᵀ`.
    rt: Option<Vec<f32>>,
}

impl Pq {
    /// The codec of a trained codebook.
    pub fn new(book: Codebook) -> Pq {
        let (ksub, dsub) = (book.ksub(), book.dsub());
        let tables = book
            .centroids
            .chunks_exact(ksub * dsub)
            .map(|c| CentroidTable::new(c, ksub, dsub))
            .collect();
        let rt = book.rotation.as_ref().map(|r| opq::transpose(r, book.dims));
        Pq { book, tables, rt }
    }

    /// The codebook.
    pub fn codebook(&self) -> &Codebook {
        &self.book
    }

    /// Writes the codes of the (already rotated) rows `x` into `out`.
    pub(crate) fn encode_rotated(&self, x: &[f32], out: &mut [u8]) {
        let (d, dsub, cb) = (self.book.dims, self.book.dsub(), self.book.code_bytes());
        if self.book.aniso != 1.0 {
            let mut scratch = aniso::Scratch::default();
            let mut codes = vec![0; self.book.m];
            for (row, code) in x.chunks_exact(d).zip(out.chunks_exact_mut(cb)) {
                aniso::encode_row(&self.tables, row, self.book.aniso, &mut scratch, &mut codes);
                code.fill(0);
                for (s, &j) in codes.iter().enumerate() {
                    put_code(code, s, self.book.nbits, j);
                }
            }
            return;
        }
        let mut scratch = vec![0f32; self.book.ksub()];
        for (row, code) in x.chunks_exact(d).zip(out.chunks_exact_mut(cb)) {
            code.fill(0);
            for (s, t) in self.tables.iter().enumerate() {
                let (j, _) = t.nearest(&row[s * dsub..(s + 1) * dsub], &mut scratch);
                put_code(code, s, self.book.nbits, j);
            }
        }
    }

    /// The concatenated centroids of `rows` rows (rotated back, for OPQ), before any
    /// scaling to unit length.
    fn decode_unscaled(&self, payload: &[u8], rows: usize, out: &mut [f32]) {
        let (d, cb) = (self.book.dims, self.book.code_bytes());
        let target: &mut [f32] = &mut out[..rows * d];
        match &self.rt {
            None => {
                for (code, o) in payload.chunks_exact(cb).zip(target.chunks_exact_mut(d)) {
                    self.decode_rotated(code, o);
                }
            }
            Some(rt) => {
                let mut y = vec![0f32; rows * d];
                for (code, o) in payload.chunks_exact(cb).zip(y.chunks_exact_mut(d)) {
                    self.decode_rotated(code, o);
                }
                opq::rotate(&y, d, rt, target);
            }
        }
    }

    /// The reconstruction of one row in the rotated space.
    fn decode_rotated(&self, code: &[u8], out: &mut [f32]) {
        let (ksub, dsub) = (self.book.ksub(), self.book.dsub());
        for (s, o) in out.chunks_exact_mut(dsub).enumerate() {
            let j = get_code(code, s, self.book.nbits);
            let at = (s * ksub + j) * dsub;
            o.copy_from_slice(&self.book.centroids[at..at + dsub]);
        }
    }
}

/// How far from 1 a row's length may be for a unit-length codebook, which decodes it to
/// exactly 1: beyond this the decoded row's length would visibly change.
pub const UNIT_TOLERANCE: f32 = 0.01;

/// Refuses a row whose length is not 1 (within [`UNIT_TOLERANCE`]) for a codebook that
/// decodes to unit length: decoding would silently change its length.
fn check_unit_length(input: &[f32], dims: usize) -> Result<(), EncodeFault> {
    for (r, row) in input.chunks_exact(dims).enumerate() {
        let len = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if (len - 1.0).abs() > UNIT_TOLERANCE {
            return Err(EncodeFault {
                row: r,
                col: 0,
                msg: format!(
                    "the row's length is {len:.4}, not 1, and this codebook decodes every row \
                     to length 1 (unit=1: its training rows had unit length); normalise the \
                     rows, or use a codebook trained with unit=0"
                ),
            });
        }
    }
    Ok(())
}

/// Stores code `j` of subspace `s`.
fn put_code(code: &mut [u8], s: usize, nbits: u8, j: usize) {
    if nbits == 8 {
        code[s] = j as u8;
    } else {
        code[s / 2] |= (j as u8 & 0xf) << (4 * (s % 2));
    }
}

/// `1/‖x̂‖` of the row with `code` (0 for a zero row), where `norm(s, j)` is `‖c‖²` of
/// centroid `j` of subspace `s`. The subspaces split the coordinates (and OPQ's rotation
/// keeps lengths), so `‖x̂‖²` is the chosen centroids' squared norms, summed in subspace
/// order: decoding and ADC both take it from here, so they scale alike.
pub(crate) fn inv_length(
    code: &[u8],
    m: usize,
    nbits: u8,
    norm: impl Fn(usize, usize) -> f32,
) -> f32 {
    let nsq: f32 = (0..m).map(|s| norm(s, get_code(code, s, nbits))).sum();
    if nsq > 0.0 { 1.0 / nsq.sqrt() } else { 0.0 }
}

/// Reads the code of subspace `s`.
pub fn get_code(code: &[u8], s: usize, nbits: u8) -> usize {
    if nbits == 8 {
        code[s] as usize
    } else {
        ((code[s / 2] >> (4 * (s % 2))) & 0xf) as usize
    }
}

impl Codec for Pq {
    fn name(&self) -> String {
        let kind = if self.book.rotation.is_some() {
            "opq"
        } else {
            "pq"
        };
        let b = &self.book;
        let mut name = format!("{kind}:m={},nbits={}", b.m, b.nbits);
        if b.aniso != 1.0 {
            name += &format!(",aniso={}", b.aniso);
        }
        if b.unit {
            name += ",unit=1";
        }
        name
    }

    fn spec(&self) -> CodecSpec {
        CodecSpec {
            id: self.book.codec_id(),
            params: self.book.to_params(),
        }
    }

    fn dims(&self) -> usize {
        self.book.dims
    }

    fn encoded_len(&self, rows: usize) -> usize {
        rows * self.book.code_bytes()
    }

    fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault> {
        if self.book.unit {
            check_unit_length(input, self.book.dims)?;
        }
        match &self.book.rotation {
            None => self.encode_rotated(input, out),
            Some(r) => {
                let mut x = vec![0f32; input.len()];
                opq::rotate(input, self.book.dims, r, &mut x);
                self.encode_rotated(&x, out);
            }
        }
        Ok(())
    }

    fn decode(&self, payload: &[u8], rows: usize, out: &mut [f32]) {
        let (d, cb) = (self.book.dims, self.book.code_bytes());
        self.decode_unscaled(payload, rows, out);
        if self.book.unit {
            // The squared length from the centroid norms, summed over the subspaces in
            // order: exactly what ADC computes from the codes, so both scale alike.
            for (code, o) in payload
                .chunks_exact(cb)
                .zip(out[..rows * d].chunks_exact_mut(d))
            {
                let inv = inv_length(code, self.book.m, self.book.nbits, |s, j| {
                    self.tables[s].norms()[j]
                });
                o.iter_mut().for_each(|v| *v *= inv);
            }
        }
    }

    fn decode_row(&self, payload: &[u8], _rows: usize, row: usize, out: &mut [f32]) {
        let cb = self.book.code_bytes();
        // One row through the same block path, so both decoding paths agree bit for bit.
        self.decode(&payload[row * cb..(row + 1) * cb], 1, out);
    }

    fn facts(&self) -> Vec<(String, String)> {
        let f = &self.book.facts;
        let mut v = vec![
            (
                "codebook".into(),
                format!(
                    "{:08x} (crc32c of the codebook section)",
                    self.book.fingerprint()
                ),
            ),
            ("train rows".into(), f.sample_rows.to_string()),
            ("k-means iterations".into(), f.kmeans_iterations.to_string()),
        ];
        if self.book.rotation.is_some() {
            v.push(("opq iterations".into(), f.opq_iterations.to_string()));
        }
        v.push((
            "train distortion".into(),
            format!("{:.6} (mean squared error per row)", f.distortion),
        ));
        v.push(("train seed".into(), f.seed.to_string()));
        v.push((
            "encoding".into(),
            if self.book.aniso == 1.0 {
                "nearest centroid (aniso=1)".into()
            } else {
                format!(
                    "anisotropic, aniso={} (error along the row weighs {}x error across it)",
                    self.book.aniso, self.book.aniso
                )
            },
        ));
        if self.book.unit {
            v.push((
                "decoding".into(),
                "scaled to unit length (unit=1: the training rows had unit length)".into(),
            ));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::harness::round_trip;
    use crate::progress::NoProgress;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Rows near one of a few centres per subspace, so PQ can represent them well.
    fn data(rows: usize, dims: usize, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..rows * dims)
            .map(|_| rng.random_range(0..4) as f32 + rng.random_range(-0.05f32..0.05))
            .collect()
    }

    fn params(text: &str, dims: usize) -> PqParams {
        PqParams::parse("pq", text, dims).unwrap()
    }

    #[test]
    fn round_trip_reaches_the_training_distortion() {
        let (dims, rows) = (16, 2000);
        let x = data(rows, dims, 1);
        // Plain encoding (aniso=1) picks the nearest centroids, as training assigns rows.
        for (id, text) in [
            (CodecId::Pq, "m=8,kinit=kpp,aniso=1"),
            (CodecId::Pq, "m=8,nbits=4,kinit=kpp,aniso=1"),
            (CodecId::Opq, "m=4,aniso=1"),
        ] {
            let book = train(
                id,
                &params(text, dims),
                &x,
                dims,
                &NoProgress,
                &AtomicBool::new(false),
            )
            .unwrap();
            let codec = Pq::new(book.clone());
            let y = round_trip(&codec, &x);
            let mse: f64 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum::<f64>()
                / rows as f64;
            // Encoding the training rows reproduces the training distortion.
            assert!(
                (mse - book.facts.distortion).abs() <= 1e-3 * book.facts.distortion.max(1e-3),
                "{text}: {mse} vs {}",
                book.facts.distortion
            );
            // PQ (seeded by k-means++, which finds separated clusters that uniformly drawn
            // rows may miss): 2 coordinates per subspace take 16 combinations of centres,
            // which the centroids cover; what is left is the noise, variance 8.3e-4 each.
            // OPQ rotates away from that lattice; it must still explain most of the
            // variance (1.25 per coordinate).
            let bound = if id == CodecId::Pq { 0.01 } else { 0.1 };
            assert!(mse < dims as f64 * bound, "{text}: mse {mse}");
            // The default anisotropic encoding trades a little squared error for less
            // error along the rows: never less than the nearest centroids', not much more.
            let aniso = Pq::new(Codebook {
                aniso: super::aniso::DEFAULT,
                ..book
            });
            let z = round_trip(&aniso, &x);
            let (mut all, mut along) = ([0f64; 2], [0f64; 2]);
            for ((r, y), z) in x.chunks(dims).zip(y.chunks(dims)).zip(z.chunks(dims)) {
                let norm = r.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
                for (k, rec) in [y, z].into_iter().enumerate() {
                    let e: Vec<f64> = r.iter().zip(rec).map(|(a, b)| f64::from(a - b)).collect();
                    all[k] += e.iter().map(|v| v * v).sum::<f64>();
                    let dot: f64 = e.iter().zip(r).map(|(e, v)| e * f64::from(*v)).sum();
                    along[k] += (dot / norm).powi(2);
                }
            }
            assert!(
                all[1] >= all[0] && all[1] <= 1.5 * all[0],
                "{text}: {all:?}"
            );
            assert!(along[1] <= along[0], "{text}: {along:?}");
        }
    }

    #[test]
    fn unit_length_training_rows_give_a_unit_codebook() {
        let dims = 16;
        let raw = data(1000, dims, 3);
        let unit: Vec<f32> = raw
            .chunks(dims)
            .flat_map(|r| {
                let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                r.iter().map(move |v| v / n)
            })
            .collect();
        let trained = |x: &[f32], text: &str| {
            train(
                CodecId::Pq,
                &params(text, dims),
                x,
                dims,
                &NoProgress,
                &AtomicBool::new(false),
            )
            .unwrap()
        };
        for (x, is_unit) in [(&raw, false), (&unit, true)] {
            let book = trained(x, "m=4,nbits=4");
            assert_eq!(book.unit, is_unit);
            // Scaling to unit length already removes the error along the row.
            let aniso = if is_unit { 1.0 } else { super::aniso::DEFAULT };
            assert_eq!(book.aniso, aniso);
            let y = round_trip(&Pq::new(book), x);
            if is_unit {
                for y in y.chunks(dims) {
                    let len = y.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
                    assert!((len - 1.0).abs() < 1e-5, "{len}");
                }
            }
        }
        // Explicit settings win over what the sample suggests.
        let book = trained(&unit, "m=4,nbits=4,unit=0,aniso=3");
        assert!(!book.unit && book.aniso == 3.0);
        let book = trained(&raw, "m=4,nbits=4,unit=1");
        assert!(book.unit && book.aniso == 1.0);
        // A unit-length codebook refuses rows it would change the length of, by row.
        let codec = Pq::new(trained(&unit, "m=4,nbits=4"));
        let mut rows = unit[..3 * dims].to_vec();
        rows[dims..2 * dims].iter_mut().for_each(|v| *v *= 1.02);
        let mut out = vec![0u8; codec.encoded_len(3)];
        let e = codec.encode(&rows, &mut out).unwrap_err();
        assert_eq!(e.row, 1);
        assert!(
            e.msg.contains("length is 1.0200") && e.msg.contains("unit=0"),
            "{}",
            e.msg
        );
        rows[dims..2 * dims]
            .iter_mut()
            .for_each(|v| *v /= 1.02 / 1.005);
        assert!(codec.encode(&rows, &mut out).is_ok());
        let e = PqParams::parse("pq", "m=4,unit=yes", dims)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unit must be auto, 1 or 0"), "{e}");
    }

    #[test]
    fn dims_not_divisible_by_m_lists_valid_values() {
        let e = PqParams::parse("pq", "m=50", 384).unwrap_err().to_string();
        assert!(e.contains("384 dims are not divisible by m=50"), "{e}");
        assert!(
            e.contains("valid m for 384 dims: 1, 2, 3, 4, 6, 8,")
                && e.contains(" 48, 64, 96, 128, 192, 384"),
            "{e}"
        );
        let e = PqParams::parse("pq", "", 384).unwrap_err().to_string();
        assert!(e.contains("pq:m=48"), "{e}");
        let e = PqParams::parse("opq", "m=8,nbits=6", 384)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nbits must be 8 or 4"), "{e}");
        let e = PqParams::parse("pq", "m=8,q=1", 384)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown parameter 'q'"), "{e}");
    }

    #[test]
    fn restarts_keep_each_subspace_at_its_best_run() {
        let dims = 8;
        let x = data(1500, dims, 5);
        let p1 = params("m=4,nbits=4,iters=10", dims);
        let p3 = PqParams { redo: 3, ..p1 };
        let one = train_subspaces(&p1, &x, dims, None, &AtomicBool::new(false)).unwrap();
        let three = train_subspaces(&p3, &x, dims, None, &AtomicBool::new(false)).unwrap();
        // Run 0 of the restarts is the single run, so no subspace can end up worse.
        assert!(
            three.distortion <= one.distortion,
            "{} > {}",
            three.distortion,
            one.distortion
        );
        // The labels are the codes of the kept centroids.
        let book = Codebook {
            dims,
            m: 4,
            nbits: 4,
            centroids: three.centroids.clone(),
            rotation: None,
            aniso: 1.0,
            unit: false,
            facts: TrainingFacts {
                sample_rows: 1500,
                kmeans_iterations: 0,
                opq_iterations: 0,
                distortion: 0.0,
                seed: 0,
            },
        };
        let mut codes = vec![0u8; 1500 * book.code_bytes()];
        Pq::new(book.clone())
            .encode(&x, &mut codes)
            .expect("encodes");
        for (row, code) in codes.chunks_exact(book.code_bytes()).enumerate() {
            for (s, lab) in three.labels.iter().enumerate() {
                assert_eq!(
                    get_code(code, s, 4),
                    lab[row] as usize,
                    "row {row}, subspace {s}"
                );
            }
        }
        let e = PqParams::parse("pq", "m=4,redo=0", dims)
            .unwrap_err()
            .to_string();
        assert!(e.contains("redo must be 1 to 64"), "{e}");
    }

    #[test]
    fn nibble_codes_pack_two_per_byte() {
        let mut code = [0u8; 2];
        for (s, j) in [(0, 3), (1, 15), (2, 9)] {
            put_code(&mut code, s, 4, j);
        }
        assert_eq!(code, [0xf3, 0x09]);
        assert_eq!(
            (0..3).map(|s| get_code(&code, s, 4)).collect::<Vec<_>>(),
            [3, 15, 9]
        );
    }

    #[test]
    fn training_is_identical_for_any_thread_count() {
        let dims = 8;
        let x = data(600, dims, 2);
        for id in [CodecId::Pq, CodecId::Opq] {
            let run = |t| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(t)
                    .build()
                    .unwrap()
                    .install(|| {
                        train(
                            id,
                            &params("m=4,nbits=4,iters=8", dims),
                            &x,
                            dims,
                            &NoProgress,
                            &AtomicBool::new(false),
                        )
                        .unwrap()
                    })
            };
            assert_eq!(run(1), run(3), "{id:?}");
        }
    }
}
