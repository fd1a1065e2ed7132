//! Query-time rescoring: search a tiny binary index, then re-rank the candidates with
//! their int8 reconstructions fetched by `get_many`.
//!
//! ```sh
//! cargo run --release --example rescoring                  # 20,000 x 128 synthetic rows
//! cargo run --release --example rescoring -- 100000 384    # rows dims
//! ```
//!
//! The pattern: keep 1 bit a dimension in RAM (the sign of each int8 code: 16 bytes a
//! vector at 128 dims), keep the int8 container on disk or in the page cache, and at query
//! time
//! 1. rank every row by Hamming distance to the query's sign bits, keep the top 100;
//! 2. fetch those 100 rows with `Container::get_many`;
//! 3. re-rank them by exact dot product with the float query, keep the top 10.
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
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let rows = args.next().transpose()?.unwrap_or(20_000);
    let dims = args.next().transpose()?.unwrap_or(128);
    let dir = tempfile::tempdir()?;
    let (npy, vec) = (dir.path().join("x.npy"), dir.path().join("x.vectro"));
    let stop = AtomicBool::new(false);
    let gen_opts = GenerateOptions { rows, dims, seed: 7, ..Default::default() };
    vectro::generate::generate(&npy, &gen_opts, false, &NoProgress, &stop)?;
    let opts = CompressOptions { durability: Durability::None, ..Default::default() };
    vectro::compress(&npy, &vec, &opts, &NoProgress, &stop)?;

    let original = read_npy(&npy)?;
    let c = Container::open(&vec)?;
    let d = c.dims();
    let index = build_binary_index(&c)?;
    let words = d.div_ceil(64);

    let (mut hits_binary, mut hits_rescored) = (0, 0);
    let mut fetch_time = 0.0;
    let mut cand = vec![0f32; CANDIDATES * d];
    for q in 0..QUERIES {
        // Queries are rows of the original data, spread over the file.
        let qi = (q as u64 * 7919 % rows) as usize;
        let query = &original[qi * d..(qi + 1) * d];
        let exact = top_k(rows as usize, K, |r| dot(query, &original[r * d..(r + 1) * d]));

        let qbits = sign_bits(query);
        let by_hamming = top_k(rows as usize, CANDIDATES, |r| {
            -(hamming(&qbits, &index[r * words..(r + 1) * words]) as f32)
        });
        hits_binary += overlap(&exact, &by_hamming[..K]);

        let ids: Vec<u64> = by_hamming.iter().map(|&r| r as u64).collect();
        let t = Instant::now();
        c.get_many(&ids, &mut cand)?;
        fetch_time += t.elapsed().as_secs_f64();
        let best = top_k(CANDIDATES, K, |k| dot(query, &cand[k * d..(k + 1) * d]));
        let rescored: Vec<usize> = best.iter().map(|&k| ids[k] as usize).collect();
        hits_rescored += overlap(&exact, &rescored);
    }
    let total = (QUERIES * K) as f64;
    println!("{rows} rows x {dims} dims, {QUERIES} queries, {CANDIDATES} candidates, recall@{K}:");
    println!("  binary index alone:          {:.3}", hits_binary as f64 / total);
    println!("  + int8 rescoring (get_many): {:.3}", hits_rescored as f64 / total);
    println!(
        "  get_many of {CANDIDATES} rows: {:.1} µs a query on average",
        fetch_time / QUERIES as f64 * 1e6
    );
    Ok(())
}

/// One sign bit a dimension of every row's reconstruction, built chunk by chunk.
fn build_binary_index(c: &Container) -> vectro::Result<Vec<u64>> {
    let d = c.dims();
    let mut index = Vec::with_capacity(c.rows() as usize * d.div_ceil(64));
    for e in c.chunks() {
        let mut rows = vec![0f32; e.rows as usize * d];
        c.get_range(e.first_row..e.first_row + e.rows, &mut rows)?;
        for row in rows.chunks_exact(d) {
            index.extend(sign_bits(row));
        }
    }
    Ok(index)
}

fn sign_bits(row: &[f32]) -> Vec<u64> {
    row.chunks(64)
        .map(|w| w.iter().enumerate().fold(0u64, |acc, (i, &x)| acc | (((x > 0.0) as u64) << i)))
        .collect()
}

fn hamming(a: &[u64], b: &[u64]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
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
