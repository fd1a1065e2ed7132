//! `bench`: the codec trade-off table, in memory, on one data set.
//!
//! For each codec: encode and decode the data chunk by chunk on one thread (the median of
//! several runs gives the throughput), then measure the reconstruction against the original
//! as `eval` does. The truth neighbours are computed once and shared by every codec.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::search::{Floors, Metric, Queries};
use super::{Measure, Totals, recall};
use crate::codec::{self, Codec, RowSource};
use crate::encode::default_chunk_rows;
use crate::error::{Error, Result};
use crate::par::run_ordered;
use crate::progress::Progress;
use crate::source::NpySource;

/// Settings of a bench run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Codec strings, as `--codec` takes them.
    pub codecs: Vec<String>,
    /// Rows sampled as queries (each excluded from its own results).
    pub queries: usize,
    /// The k of recall@k.
    pub k: usize,
    /// Candidates re-ranked with the original floats for the rescored recall.
    pub rerank: usize,
    /// How neighbours are ranked.
    pub metric: Metric,
    /// Timed runs of encode and of decode; the median is reported.
    pub runs: usize,
    /// Seed of the query sample.
    pub seed: u64,
    /// Worker threads for the search; 0 means the available cores. Encode and decode
    /// are timed on one thread.
    pub threads: usize,
    /// Frozen codebooks (`.vcb` from `vectro train`) benchmarked beside the codecs, each
    /// a row named by its codec and file; nothing is trained for them.
    pub codebooks: Vec<std::path::PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            codecs: vec!["int8".into()],
            queries: 100,
            k: 10,
            rerank: 100,
            metric: Metric::Cos,
            runs: 5,
            seed: 42,
            threads: 0,
            codebooks: Vec::new(),
        }
    }
}

/// One codec's row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    /// The codec string.
    pub codec: String,
    /// Encoded payload bytes per vector (container framing excluded).
    pub bytes_per_vector: f64,
    /// float32 bytes per vector over encoded bytes per vector.
    pub ratio: f64,
    /// Seconds spent training the codec on the data (pq, opq, binary-itq; on the bench
    /// threads), apart from encoding; `None` for a codec that is not trained.
    pub train_seconds: Option<f64>,
    /// Encode throughput, MB (1e6 bytes) of float32 input per second, one thread; a
    /// trained codec's training is not in it.
    pub compress_mb_s: f64,
    /// Decode throughput, MB of float32 output per second, one thread.
    pub decompress_mb_s: f64,
    /// Mean cosine between each row and its reconstruction.
    pub cosine_mean: f64,
    /// Recall@k of search over the reconstruction.
    pub recall: f64,
    /// Recall@k after re-ranking the top `max(rerank, k)` with the original floats.
    pub rescored_recall: f64,
}

/// The whole table.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Rows of the data.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// Queries sampled.
    pub queries: usize,
    /// The k of recall@k.
    pub k: usize,
    /// Candidates re-ranked.
    pub rerank: usize,
    /// Ranking metric.
    pub metric: Metric,
    /// Timed runs per measurement.
    pub runs: usize,
    /// One row per codec, in the order asked.
    pub codecs: Vec<BenchRow>,
}

/// Reads the first `max_rows` rows (all if `None`) of a `.npy` into memory as float32.
///
/// # Errors
/// As [`NpySource::open`]; [`Error::NonFinite`] naming the first NaN or ±Inf.
pub fn load_npy(path: &Path, max_rows: Option<u64>) -> Result<(Vec<f32>, usize)> {
    let src = NpySource::open(path)?;
    let h = *src.header();
    let rows = max_rows.map_or(h.rows, |m| m.min(h.rows));
    let mut data = vec![0f32; (rows * h.dims) as usize];
    h.dtype.to_f32(src.row_bytes(0, rows), &mut data);
    src.check_unchanged()?;
    crate::source::check_finite(&data, h.dims as usize, 0, path).map_err(|e| {
        crate::npy::f64_overflow(e, src.row_bytes(0, rows), h.dtype, 0, h.dims as usize)
    })?;
    Ok((data, h.dims as usize))
}

/// Benchmarks every codec of `opts` on `data` (`rows × dims`).
///
/// # Errors
/// [`Error::Config`] for an unknown codec or empty data; a codec's encode fault.
pub fn bench(
    data: &[f32],
    dims: usize,
    opts: &BenchOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<BenchReport> {
    if dims == 0 || data.is_empty() || !data.len().is_multiple_of(dims) {
        return Err(Error::Config(format!(
            "bench needs at least one row of {dims} dims, got {} values",
            data.len()
        )));
    }
    if opts.k == 0 {
        return Err(Error::Config("--k must be at least 1".into()));
    }
    // As in eval: k and the re-ranked candidates cannot exceed the rows there are.
    let rows = data.len() / dims;
    let capped = BenchOptions {
        k: opts.k.min(rows),
        rerank: opts.rerank.min(rows),
        ..opts.clone()
    };
    let opts = &capped;
    let asked = rejoin_params(&opts.codecs);
    let codecs = asked
        .iter()
        .map(|c| {
            if c.split(':').next() == Some("auto") {
                // auto is a choice among the codecs bench already lists, not a codec.
                return Err(Error::Config(
                    "bench lists every codec side by side, which is what --codec auto \
                     chooses from: leave auto out of --codecs (compress --codec auto \
                     --min-cosine X picks one for a target)"
                        .into(),
                ));
            }
            Ok(c)
        })
        .collect::<Result<Vec<_>>>()?;
    // Every codec string is checked before any training, which can take a while.
    for c in &codecs {
        if !is_trained(c) {
            codec::parse(c, dims)?;
        } else {
            codec::training_recipe(c, dims, None)?;
        }
    }
    // Frozen codebooks are read (and checked against the data's dimension) before too.
    let mut frozen: Vec<(String, Box<dyn Codec>)> = Vec::new();
    for path in &opts.codebooks {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "reading", e))?;
        let trained = codec::codebook::VcbFile::parse(path, &bytes)?.codec(path, dims)?;
        frozen.push((
            format!("{} ({})", trained.name(), path.display()),
            trained.into_codec(),
        ));
    }
    let threads = crate::par::resolve_threads(opts.threads);
    let pool = crate::par::pool(threads)?;
    let src = SliceRows { data, dims };
    let train = codec::TrainOptions {
        train_rows: None,
        cancel: Some(cancel),
    };
    // Trained codecs learn from the data itself, as compress trains on its input; the
    // time it takes is reported apart from the encode throughput.
    let codecs = codecs
        .iter()
        .map(|c| {
            let t = Instant::now();
            let codec = pool.install(|| codec::parse_trained(c, &src, &train, progress))?;
            Ok((codec, is_trained(c).then(|| t.elapsed().as_secs_f64())))
        })
        .collect::<Result<Vec<_>>>()?;
    // Each row is named as asked (a codec string with options is one name, not its pieces).
    let mut names = asked;
    let mut codecs = codecs;
    for (name, c) in frozen {
        names.push(name);
        codecs.push((c, None));
    }
    let rows = data.len() / dims;
    let queries = sampled(data, dims, opts.queries, opts.seed, opts.metric);
    let k_found = opts.k.max(opts.rerank);
    let chunk = default_chunk_rows(dims as u64) as usize;
    progress.begin((rows * (codecs.len() + 1)) as u64, 0);
    let pass = Pass {
        d: dims,
        chunk,
        q: &queries,
        threads,
        progress,
        cancel,
    };
    let truth = pass.run(data, None, None, (opts.k, 0))?.truth;
    let mut table = Vec::new();
    for (name, (c, train_seconds)) in names.iter().zip(&codecs) {
        let (payloads, enc_s) = timed_encode(c.as_ref(), data, chunk, opts.runs)?;
        let mut recon = vec![0f32; data.len()];
        let dec_s = timed_decode(c.as_ref(), &payloads, chunk, opts.runs, &mut recon);
        // Codes with their own estimator (sq) are searched by it, as `search` does.
        let est = crate::search::codes::Scorer::estimator(&c.spec(), dims, &queries)?;
        let codes = est.as_ref().map(|s| (s, payloads.as_slice()));
        let t = pass.run(data, Some(&recon), codes, (0, k_found))?;
        let exact = recall::exact_scores(&queries, &t.found, dims, threads, |id, out| {
            out.copy_from_slice(&data[id as usize * dims..(id as usize + 1) * dims]);
            Ok(())
        })?;
        let r = &recall::recalls(&[opts.k], &truth, &t.found, &exact, opts.rerank)[0];
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        let mb = (data.len() * 4) as f64 / 1e6;
        table.push(BenchRow {
            codec: name.clone(),
            bytes_per_vector: bytes as f64 / rows as f64,
            ratio: (data.len() * 4) as f64 / bytes.max(1) as f64,
            train_seconds: *train_seconds,
            compress_mb_s: mb / enc_s,
            decompress_mb_s: mb / dec_s,
            cosine_mean: t.quality.cos_sum / rows as f64,
            recall: r.recall,
            rescored_recall: r.rescored,
        });
    }
    progress.finish();
    Ok(BenchReport {
        rows: rows as u64,
        dims: dims as u64,
        queries: queries.len(),
        k: opts.k,
        rerank: opts.rerank,
        metric: opts.metric,
        runs: opts.runs,
        codecs: table,
    })
}

/// A measuring pass over the data, in chunks on the workers.
struct Pass<'a> {
    /// Dimensions per row.
    d: usize,
    /// Rows per chunk.
    chunk: usize,
    q: &'a Queries,
    threads: usize,
    progress: &'a dyn Progress,
    cancel: &'a AtomicBool,
}

impl Pass<'_> {
    /// Measures `data` (with its reconstruction `recon`, if any), keeping the `k_truth`
    /// nearest rows of each query in `data` and the `k_found` in `recon`, or, with
    /// `codes`, in the chunks' payloads as that scorer ranks them.
    fn run(
        &self,
        data: &[f32],
        recon: Option<&[f32]>,
        codes: Option<(&crate::search::codes::Scorer, &[Vec<u8>])>,
        (k_truth, k_found): (usize, usize),
    ) -> Result<Totals> {
        let Pass {
            d,
            chunk,
            q,
            threads,
            progress,
            cancel,
        } = *self;
        let rows = data.len() / d;
        let mut total = Totals::new(q.len(), k_truth, k_found);
        let floors = (Floors::new(q.len()), Floors::new(q.len()));
        let measure = Measure {
            q,
            d,
            k_truth,
            k_found: if codes.is_some() { 0 } else { k_found },
            floors: &floors,
        };
        run_ordered(
            threads,
            (0..rows.div_ceil(chunk)).map(Ok),
            |i| {
                let r = i * chunk * d..((i + 1) * chunk).min(rows) * d;
                let n = r.len() / d;
                let rc = recon.map(|x| &x[r.clone()]);
                let mut p = measure.block(&data[r], rc, (i * chunk) as u64);
                if let Some((s, payloads)) = codes {
                    p.found =
                        s.scan_payload(&payloads[i], n, (i * chunk) as u64, k_found, &floors.1);
                }
                Ok(p)
            },
            |p| {
                progress.advance(p.rows, 0);
                total.merge(p, &floors);
                Ok(())
            },
            cancel,
        )?;
        Ok(total)
    }
}

/// Whether `codec` is trained on the data (pq, opq, rq, binary-itq).
/// The codec strings of a comma-split list, each `key=value` piece without a codec name
/// put back after the codec before it: `["sq:bits=1", "centre=1", "int8"]` is
/// `["sq:bits=1,centre=1", "int8"]` (a codec name never holds `=`).
fn rejoin_params(pieces: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in pieces {
        match out.last_mut() {
            Some(prev) if !p.contains(':') && p.contains('=') && prev.contains(':') => {
                prev.push(',');
                prev.push_str(p);
            }
            _ => out.push(p.clone()),
        }
    }
    out
}

fn is_trained(codec: &str) -> bool {
    codec::CodecRequest::parse(codec).is_ok_and(|r| r.is_trained())
}

/// The bench data as rows a trained codec samples.
struct SliceRows<'a> {
    data: &'a [f32],
    dims: usize,
}

impl RowSource for SliceRows<'_> {
    fn rows(&self) -> u64 {
        (self.data.len() / self.dims) as u64
    }
    fn dims(&self) -> usize {
        self.dims
    }
    fn read_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
        for (&id, o) in ids.iter().zip(out.chunks_exact_mut(self.dims)) {
            let at = id as usize * self.dims;
            o.copy_from_slice(&self.data[at..at + self.dims]);
        }
        Ok(())
    }
}

fn sampled(data: &[f32], d: usize, n: usize, seed: u64, metric: Metric) -> Queries {
    let rows = data.len() / d;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ids: Vec<u64> = sample(&mut rng, rows, n.min(rows))
        .into_iter()
        .map(|i| i as u64)
        .collect();
    ids.sort_unstable();
    let q = ids
        .iter()
        .flat_map(|&i| data[i as usize * d..(i as usize + 1) * d].iter().copied())
        .collect();
    Queries::new(q, d, Some(ids), metric)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2].max(1e-9)
}

fn timed_encode(
    c: &dyn Codec,
    data: &[f32],
    chunk: usize,
    runs: usize,
) -> Result<(Vec<Vec<u8>>, f64)> {
    let d = c.dims();
    let mut payloads: Vec<Vec<u8>> = data
        .chunks(chunk * d)
        .map(|b| vec![0u8; c.encoded_len(b.len() / d)])
        .collect();
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        for (i, (b, out)) in data.chunks(chunk * d).zip(&mut payloads).enumerate() {
            c.encode(b, out).map_err(|f| {
                Error::Config(format!(
                    "{}: row {}, column {}: {}",
                    c.name(),
                    i * chunk + f.row,
                    f.col,
                    f.msg
                ))
            })?;
        }
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((payloads, median(times)))
}

fn timed_decode(
    c: &dyn Codec,
    payloads: &[Vec<u8>],
    chunk: usize,
    runs: usize,
    out: &mut [f32],
) -> f64 {
    let d = c.dims();
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        for (p, o) in payloads.iter().zip(out.chunks_mut(chunk * d)) {
            c.decode(p, o.len() / d, o);
        }
        times.push(t.elapsed().as_secs_f64());
    }
    median(times)
}

#[cfg(test)]
mod tests {
    use super::rejoin_params;

    #[test]
    fn comma_split_codec_parameters_are_put_back() {
        let split = |s: &str| s.split(',').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            rejoin_params(&split("int8,sq:bits=1,centre=1,seed=3,pq:m=8,nbits=4,f16")),
            ["int8", "sq:bits=1,centre=1,seed=3", "pq:m=8,nbits=4", "f16"]
        );
        // A stray parameter with no codec before it stays a (bad) codec string.
        assert_eq!(rejoin_params(&split("m=8,int8")), ["m=8", "int8"]);
    }
}
