//! Measures every codec on a real `.npy`: bytes per vector (plain and with the zstd stage),
//! mean cosine, recall@10 of exact search (float queries against the reconstruction, inner
//! product and L2), rescored recall for binary, and single-thread encode throughput as a
//! ratio to a memcpy of the same input in the same run.
//!
//! ```text
//! cargo run --release --example codec_quality -- ../shared/data/minilm_wordnet_10k.npy [queries] [self]
//! ```
//!
//! Queries are a seeded sample of the rows; each query's own row is excluded from both the
//! truth and the results (as `vectro eval` does), unless the third argument is `self`.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use vectro::codec::{self, auto::sample_ids};
use vectro::pipeline::reader::NpySource;

const CONFIGS: [&str; 12] = [
    "int8",
    "int8:rotate=1",
    "int4:scale=max",
    "int4",
    "int4:grid=gauss",
    "int4:rotate=1,scale=max",
    "int4:grid=uniform,rotate=1",
    "int4:rotate=1",
    "binary",
    "binary:rotate=1",
    "f16",
    "bf16",
];
const K: usize = 10;
const RESCORE: usize = 100;
const ZSTD_LEVEL: i32 = 3;
const REPEATS: usize = 5;

#[derive(Clone, Copy, PartialEq)]
enum Metric {
    Ip,
    L2,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .ok_or("usage: codec_quality FILE.npy [queries]")?;
    let nq: u64 = args.get(2).map_or(Ok(1000), |s| s.parse())?;
    let keep_self = args.get(3).is_some_and(|a| a == "self");
    let src = NpySource::open(Path::new(path))?;
    let h = *src.header();
    let (n, d) = (h.rows as usize, h.dims as usize);
    let mut x = vec![0f32; n * d];
    h.dtype.to_f32(src.row_bytes(0, h.rows), &mut x);
    let qids: Vec<usize> = sample_ids(h.rows, nq, 1)
        .into_iter()
        .map(|i| i as usize)
        .collect();
    let truth: Vec<_> = [Metric::Ip, Metric::L2]
        .iter()
        .map(|&m| search(&x, &x, d, &qids, m, K, keep_self))
        .collect();
    let chunk_rows = vectro::pipeline::default_chunk_rows(d as u64) as usize;
    let memcpy_s = time_memcpy(&x);
    println!(
        "{n} rows x {d} dims, {} queries (own row {}), chunks of {chunk_rows} rows, zstd level {ZSTD_LEVEL}",
        qids.len(),
        if keep_self { "kept" } else { "excluded" }
    );
    println!(
        "| codec | B/vec | B/vec +zstd | zstd gain | mean cos | R@10 ip | R@10 l2 | rescored R@10 ip / l2 | encode vs memcpy |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for name in CONFIGS {
        let c = codec::parse(name, d)?;
        let plain = c.encoded_len(n);
        let mut payload = vec![0u8; plain];
        // Best of a few passes: the machine is shared, and the minimum is the least noisy.
        let mut enc_s = f64::INFINITY;
        for _ in 0..REPEATS {
            let t = Instant::now();
            for (rows, out) in
                x.chunks(chunk_rows * d)
                    .zip(chunk_slices(&mut payload, c.as_ref(), chunk_rows, n))
            {
                c.encode(rows, out)
                    .map_err(|f| format!("{name}: row {}: {}", f.row, f.msg))?;
            }
            enc_s = enc_s.min(t.elapsed().as_secs_f64());
        }
        let mut zbytes = 0usize;
        let mut frame = Vec::new();
        for out in chunk_slices(&mut payload, c.as_ref(), chunk_rows, n) {
            codec::zstd::compress_into(out, ZSTD_LEVEL, &mut frame)?;
            zbytes += frame.len();
        }
        let mut recon = vec![0f32; n * d];
        let mut at = 0;
        for (out, part) in recon.chunks_mut(chunk_rows * d).zip(chunk_slices(
            &mut payload,
            c.as_ref(),
            chunk_rows,
            n,
        )) {
            c.decode(part, out.len() / d, out);
            at += part.len();
        }
        assert_eq!(at, plain);
        let cos = mean_cos(&x, &recon, d);
        let mut recall = Vec::new();
        let mut rescored = Vec::new();
        for (mi, &m) in [Metric::Ip, Metric::L2].iter().enumerate() {
            let found = search(&x, &recon, d, &qids, m, RESCORE, keep_self);
            let top: Vec<Vec<usize>> = found.iter().map(|f| f[..K].to_vec()).collect();
            recall.push(mean_recall(&truth[mi], &top));
            let re: Vec<Vec<usize>> = found
                .iter()
                .zip(&qids)
                .map(|(cand, &q)| rerank(&x, d, q, cand, m))
                .collect();
            rescored.push(mean_recall(&truth[mi], &re));
        }
        println!(
            "| `{name}` | {:.1} | {:.1} | {:.1}% | {:.6} | {:.4} | {:.4} | {:.4} / {:.4} | {:.2}x ({:.0} MB/s) |",
            plain as f64 / n as f64,
            zbytes as f64 / n as f64,
            100.0 * (1.0 - zbytes as f64 / plain as f64),
            cos,
            recall[0],
            recall[1],
            rescored[0],
            rescored[1],
            memcpy_s / enc_s,
            (n * d * 4) as f64 / 1e6 / enc_s
        );
    }
    println!(
        "memcpy of the input: {:.0} MB/s",
        (n * d * 4) as f64 / 1e6 / memcpy_s
    );
    Ok(())
}

/// The payload split into each chunk's part, as the pipeline lays them out.
fn chunk_slices<'a>(
    payload: &'a mut [u8],
    c: &dyn codec::Codec,
    chunk_rows: usize,
    n: usize,
) -> Vec<&'a mut [u8]> {
    let mut out = Vec::new();
    let mut rest = payload;
    let mut first = 0;
    while first < n {
        let rows = chunk_rows.min(n - first);
        let (head, tail) = rest.split_at_mut(c.encoded_len(rows));
        out.push(head);
        rest = tail;
        first += rows;
    }
    out
}

fn time_memcpy(x: &[f32]) -> f64 {
    let mut y = vec![0f32; x.len()];
    let mut best = f64::INFINITY;
    for _ in 0..REPEATS {
        let t = Instant::now();
        y.copy_from_slice(std::hint::black_box(x));
        std::hint::black_box(&mut y);
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight accumulators let the compiler vectorise the reduction.
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (p, q) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += p[i] * q[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn score(q: &[f32], r: &[f32], m: Metric) -> f32 {
    match m {
        Metric::Ip => dot(q, r),
        // -||q - r||² up to the constant ||q||².
        Metric::L2 => 2.0 * dot(q, r) - dot(r, r),
    }
}

/// The `k` best rows of `base` for each query row of `queries_from`, self excluded.
fn search(
    queries_from: &[f32],
    base: &[f32],
    d: usize,
    qids: &[usize],
    m: Metric,
    k: usize,
    keep_self: bool,
) -> Vec<Vec<usize>> {
    qids.par_iter()
        .map(|&qi| {
            let q = &queries_from[qi * d..(qi + 1) * d];
            let mut s: Vec<(f32, usize)> = base
                .chunks_exact(d)
                .enumerate()
                .filter(|&(i, _)| keep_self || i != qi)
                .map(|(i, r)| (score(q, r, m), i))
                .collect();
            let by = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
            s.select_nth_unstable_by(k, by);
            s.truncate(k);
            s.sort_by(by);
            s.into_iter().map(|(_, i)| i).collect()
        })
        .collect()
}

fn rerank(x: &[f32], d: usize, qi: usize, cand: &[usize], m: Metric) -> Vec<usize> {
    let q = &x[qi * d..(qi + 1) * d];
    let mut s: Vec<(f32, usize)> = cand
        .iter()
        .map(|&i| (score(q, &x[i * d..(i + 1) * d], m), i))
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.into_iter().take(K).map(|(_, i)| i).collect()
}

fn mean_recall(truth: &[Vec<usize>], found: &[Vec<usize>]) -> f64 {
    let hits: usize = truth
        .iter()
        .zip(found)
        .map(|(t, f)| f.iter().filter(|i| t.contains(i)).count())
        .sum();
    hits as f64 / (truth.len() * K) as f64
}

fn mean_cos(x: &[f32], r: &[f32], d: usize) -> f64 {
    let n = x.len() / d;
    x.chunks_exact(d)
        .zip(r.chunks_exact(d))
        .map(|(a, b)| {
            let (ab, aa, bb) = (dot(a, b) as f64, dot(a, a) as f64, dot(b, b) as f64);
            if aa == 0.0 || bb == 0.0 {
                f64::from(u8::from(aa == bb))
            } else {
                ab / (aa * bb).sqrt()
            }
        })
        .sum::<f64>()
        / n as f64
}
