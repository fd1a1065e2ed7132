//! Query-time rescoring: search a tiny binary index, then re-rank the candidates with
//! their int8 reconstructions fetched by `get_many`.
//!
//! ```sh
//! cargo run --release --example rescoring                  # 20,000 x 384 synthetic rows
//! cargo run --release --example rescoring -- 100000 128    # rows dims
//! cargo run --release --example rescoring -- embeddings.npy  # your own float .npy
//! ```
//!
//! The pattern: keep 1 bit a dimension in RAM (the sign of each centred reconstruction: 48 bytes a
//! vector at 384 dims), keep the int8 container on disk or in the page cache, and at query
//! time
//! 1. rank every row by Hamming distance to the query's sign bits, keep the top 100;
//! 2. fetch those 100 rows with `Container::get_many`;
//! 3. re-rank them by cosine similarity with the float query, keep the top 10.
//!
//! It prints recall@10 against exact search on the original floats, for the binary index
//! alone and after rescoring, and the time spent in `get_many`.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use vectro::output::Durability;
use vectro::{CompressOptions, Container, GenerateOptions, NoProgress};

const CANDIDATES: usize = 100;
const K: usize = 10;
const QUERIES: usize = 50;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = tempfile::tempdir()?;
    let stop = AtomicBool::new(false);
    let npy = match args.as_slice() {
        [path] => std::path::PathBuf::from(path),
        rest => {
            let rows = rest
                .first()
                .map(|a| a.parse())
                .transpose()?
                .unwrap_or(20_000);
            let dims = rest.get(1).map(|a| a.parse()).transpose()?.unwrap_or(384);
            let npy = dir.path().join("x.npy");
            let opts = GenerateOptions {
                rows,
                dims,
                seed: 7,
                ..Default::default()
            };
            vectro::generate::generate(&npy, &opts, false, &NoProgress, &stop)?;
            npy
        }
    };
    let vec = dir.path().join("x.vectro");
    let opts = CompressOptions {
        durability: Durability::None,
        ..Default::default()
    };
    vectro::compress(&npy, &vec, &opts, &NoProgress, &stop)?;

    let raw = read_npy(&npy)?;
    let mut original = raw.clone();
    let c = Container::open(&vec)?;
    let rows = c.rows();
    let dims = c.dims();
    let d = c.dims();
    // Similarity is cosine, as for most embedding models: normalise the ground truth's rows.
    original.chunks_exact_mut(d).for_each(normalise);
    let (mean, index) = build_binary_index(&c)?;
    let words = d.div_ceil(64);

    let (mut hits_binary, mut hits_rescored) = (0, 0);
    let mut fetch_time = 0.0;
    let mut cand = vec![0f32; CANDIDATES * d];
    for q in 0..QUERIES {
        // Queries are rows of the original data, spread over the file.
        let qi = (q as u64 * 7919 % rows) as usize;
        let query = &original[qi * d..(qi + 1) * d];
        let exact = top_k(rows as usize, K, |r| {
            dot(query, &original[r * d..(r + 1) * d])
        });

        // The index holds raw (unnormalised) rows, so the query's bits come from its raw row.
        let qbits = sign_bits(&raw[qi * d..(qi + 1) * d], &mean);
        let by_hamming = top_k(rows as usize, CANDIDATES, |r| {
            -(hamming(&qbits, &index[r * words..(r + 1) * words]) as f32)
        });
        hits_binary += overlap(&exact, &by_hamming[..K]);

        let ids: Vec<u64> = by_hamming.iter().map(|&r| r as u64).collect();
        let t = Instant::now();
        c.get_many(&ids, &mut cand)?;
        fetch_time += t.elapsed().as_secs_f64();
        cand.chunks_exact_mut(d).for_each(normalise);
        let best = top_k(CANDIDATES, K, |k| dot(query, &cand[k * d..(k + 1) * d]));
        let rescored: Vec<usize> = best.iter().map(|&k| ids[k] as usize).collect();
        hits_rescored += overlap(&exact, &rescored);
    }
    let total = (QUERIES * K) as f64;
    println!("{rows} rows x {dims} dims, {QUERIES} queries, {CANDIDATES} candidates, recall@{K}:");
    println!(
        "  binary index alone:          {:.3}",
        hits_binary as f64 / total
    );
    println!(
        "  + int8 rescoring (get_many): {:.3}",
        hits_rescored as f64 / total
    );
    println!(
        "  get_many of {CANDIDATES} rows: {:.1} µs a query on average",
        fetch_time / QUERIES as f64 * 1e6
    );
    Ok(())
}

/// One sign bit a dimension of every row's reconstruction minus the mean row, built
/// chunk by chunk. Centring matters: embeddings share a common direction, and without it
/// most sign bits are the same for every row.
fn build_binary_index(c: &Container) -> vectro::Result<(Vec<f32>, Vec<u64>)> {
    let d = c.dims();
    let mut mean = vec![0f64; d];
    for_each_chunk(c, |row| {
        mean.iter_mut().zip(row).for_each(|(m, &x)| *m += x as f64)
    })?;
    let mean: Vec<f32> = mean.iter().map(|m| (m / c.rows() as f64) as f32).collect();
    let mut index = Vec::with_capacity(c.rows() as usize * d.div_ceil(64));
    for_each_chunk(c, |row| index.extend(sign_bits(row, &mean)))?;
    Ok((mean, index))
}

fn for_each_chunk(c: &Container, mut f: impl FnMut(&[f32])) -> vectro::Result<()> {
    let d = c.dims();
    let mut rows = Vec::new();
    for e in c.chunks() {
        rows.resize(e.rows as usize * d, 0f32);
        c.get_range(e.first_row..e.first_row + e.rows, &mut rows)?;
        rows.chunks_exact(d).for_each(&mut f);
    }
    Ok(())
}

fn sign_bits(row: &[f32], mean: &[f32]) -> Vec<u64> {
    row.chunks(64)
        .zip(mean.chunks(64))
        .map(|(w, m)| {
            w.iter()
                .zip(m)
                .enumerate()
                .fold(0u64, |acc, (i, (&x, &m))| acc | (((x > m) as u64) << i))
        })
        .collect()
}

fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

fn normalise(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The `k` indices in `0..n` with the highest scores, best first.
fn top_k(n: usize, k: usize, score: impl Fn(usize) -> f32) -> Vec<usize> {
    let mut all: Vec<(f32, usize)> = (0..n).map(|i| (score(i), i)).collect();
    let k = k.min(n);
    all.select_nth_unstable_by(k.saturating_sub(1), |a, b| b.0.total_cmp(&a.0));
    all.truncate(k);
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    all.into_iter().map(|(_, i)| i).collect()
}

fn overlap(a: &[usize], b: &[usize]) -> usize {
    a.iter().filter(|x| b.contains(x)).count()
}

fn read_npy(path: &std::path::Path) -> vectro::Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| vectro::Error::io(path, "reading", e))?;
    let h = vectro::npy::parse_header(path, &bytes, bytes.len() as u64)?;
    let mut out = vec![0f32; (h.rows * h.dims) as usize];
    h.dtype.to_f32(&bytes[h.data_offset as usize..], &mut out);
    Ok(out)
}
