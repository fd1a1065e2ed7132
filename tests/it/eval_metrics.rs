//! `eval` against a naive, independent implementation on small data: per-row f64 loops
//! for the reconstruction metrics and a full sort of every score for top-k.
//!
//! The reconstruction is read back with `Container::get_range`, not eval's chunk path.
//! Recall must agree exactly; float metrics to 1e-9 relative; percentiles within the
//! histogram's documented precision.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use crate::helpers::write_npy;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use vectro::eval::{EvalOptions, EvalReport, Metric, PERCENTILE_BINS_PER_DECADE, evaluate};
use vectro::output::Durability;
use vectro::{CompressOptions, Container, NoProgress, compress};

fn gaussian(rows: usize, dims: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..rows * dims)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    npy: PathBuf,
    vectro: PathBuf,
    orig: Vec<f32>,
    recon: Vec<f32>,
    dims: usize,
}

fn fixture(rows: usize, dims: usize, chunk_rows: u32) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    let out = dir.path().join("x.vectro");
    let mut orig = gaussian(rows, dims, 7);
    // A zero row and a constant row: the edge cases of cosine.
    orig[..dims].iter_mut().for_each(|v| *v = 0.0);
    orig[dims..2 * dims].iter_mut().for_each(|v| *v = 0.5);
    write_npy(&npy, (orig.len() / dims) as u64, dims as u64, &orig);
    let opts = CompressOptions {
        chunk_rows: Some(chunk_rows),
        durability: Durability::None,
        ..CompressOptions::default()
    };
    compress(&npy, &out, &opts, &NoProgress, &AtomicBool::new(false)).unwrap();
    let c = Container::open(&out).unwrap();
    let mut recon = vec![0f32; orig.len()];
    c.get_range(0..rows as u64, &mut recon).unwrap();
    Fixture {
        _dir: dir,
        npy,
        vectro: out,
        orig,
        recon,
        dims,
    }
}

fn run(f: &Fixture, opts: &EvalOptions) -> EvalReport {
    evaluate(
        &f.npy,
        &f.vectro,
        opts,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap()
}

fn close(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1e-300);
    assert!(
        (got - want).abs() <= tol,
        "{what}: eval {got}, naive {want}"
    );
}

fn naive_cosine(a: &[f32], b: &[f32]) -> f64 {
    let mut dot = 0f64;
    let mut aa = 0f64;
    let mut bb = 0f64;
    for i in 0..a.len() {
        dot += a[i] as f64 * b[i] as f64;
        aa += a[i] as f64 * a[i] as f64;
        bb += b[i] as f64 * b[i] as f64;
    }
    if aa == 0.0 && bb == 0.0 {
        1.0
    } else if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        dot / (aa.sqrt() * bb.sqrt())
    }
}

/// Greater is closer, in f64.
fn naive_score(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
    match metric {
        Metric::Ip => q.iter().zip(x).map(|(a, b)| *a as f64 * *b as f64).sum(),
        Metric::Cos => naive_cosine(q, x),
        Metric::L2 => -q
            .iter()
            .zip(x)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>(),
    }
}

/// Every row id except `skip`, best first: a full sort, ties to the smaller id.
fn ranking(
    metric: Metric,
    q: &[f32],
    rows: &[f32],
    d: usize,
    skip: Option<usize>,
) -> Vec<(usize, f64)> {
    let mut v: Vec<(usize, f64)> = rows
        .chunks_exact(d)
        .enumerate()
        .filter(|(i, _)| Some(*i) != skip)
        .map(|(i, x)| (i, naive_score(metric, q, x)))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Naive recall and rescored recall at `k` for queries `qs` (own rows `own`).
fn naive_recall(
    f: &Fixture,
    metric: Metric,
    qs: &[f32],
    own: &[Option<usize>],
    k: usize,
    rerank: usize,
) -> (f64, f64) {
    let d = f.dims;
    let (mut plain, mut rescored) = (0.0, 0.0);
    for (qi, q) in qs.chunks_exact(d).enumerate() {
        let truth: Vec<usize> = ranking(metric, q, &f.orig, d, own[qi])
            .iter()
            .take(k)
            .map(|e| e.0)
            .collect();
        let found = ranking(metric, q, &f.recon, d, own[qi]);
        let hits = |ids: &[usize]| {
            ids.iter().filter(|i| truth.contains(i)).count() as f64 / truth.len() as f64
        };
        let top: Vec<usize> = found.iter().take(k).map(|e| e.0).collect();
        let mut cands: Vec<(usize, f64)> = found
            .iter()
            .take(rerank.max(k))
            .map(|e| (e.0, naive_score(metric, q, &f.orig[e.0 * d..(e.0 + 1) * d])))
            .collect();
        cands.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let re: Vec<usize> = cands.iter().take(k).map(|e| e.0).collect();
        plain += hits(&top);
        rescored += hits(&re);
    }
    let n = (qs.len() / d) as f64;
    (plain / n, rescored / n)
}

#[test]
fn reconstruction_metrics_match_a_naive_implementation() {
    let f = fixture(300, 24, 37);
    let r = run(&f, &EvalOptions::default());
    let d = f.dims;
    let cos: Vec<f64> = f
        .orig
        .chunks_exact(d)
        .zip(f.recon.chunks_exact(d))
        .map(|(a, b)| naive_cosine(a, b))
        .collect();
    let (mut se, mut ss, mut mx) = (0f64, 0f64, 0f64);
    for (a, b) in f.orig.iter().zip(&f.recon) {
        let e = *a as f64 - *b as f64;
        se += e * e;
        ss += *a as f64 * *a as f64;
        mx = mx.max(e.abs());
    }
    assert_eq!(r.rows, 300);
    assert_eq!(r.dims, 24);
    close(
        r.cosine_mean,
        cos.iter().sum::<f64>() / 300.0,
        "cosine_mean",
    );
    close(
        r.cosine_min,
        cos.iter().copied().fold(f64::INFINITY, f64::min),
        "cosine_min",
    );
    close(r.mse, se / f.orig.len() as f64, "mse");
    close(r.nmse, se / ss, "nmse");
    close(r.max_abs_error, mx, "max_abs_error");
    assert_eq!(r.original_bytes, std::fs::metadata(&f.npy).unwrap().len());
    assert_eq!(
        r.compressed_bytes,
        std::fs::metadata(&f.vectro).unwrap().len()
    );
    close(
        r.ratio,
        r.original_bytes as f64 / r.compressed_bytes as f64,
        "ratio",
    );
    close(
        r.bits_per_dim,
        r.compressed_bytes as f64 * 8.0 / (300.0 * 24.0),
        "bits_per_dim",
    );

    let mut sorted = cos.clone();
    sorted.sort_by(f64::total_cmp);
    let rel = 10f64.powf(0.5 / PERCENTILE_BINS_PER_DECADE as f64) - 1.0;
    for (p, got) in [
        (1.0, r.cosine_p1),
        (5.0, r.cosine_p5),
        (50.0, r.cosine_median),
    ] {
        let want = sorted[(p / 100.0 * 300.0_f64).ceil() as usize - 1];
        let tol = rel * (1.0 - want) + 1e-12;
        assert!(
            (got - want).abs() <= tol,
            "p{p}: eval {got}, naive {want}, tolerance {tol}"
        );
    }
}

#[test]
fn recall_matches_naive_top_k_for_every_metric_with_all_rows_as_queries() {
    let f = fixture(150, 8, 41);
    let own: Vec<Option<usize>> = (0..150).map(Some).collect();
    for metric in [Metric::Cos, Metric::Ip, Metric::L2] {
        let opts = EvalOptions {
            k: vec![1, 5, 10],
            sample_queries: 1000, // more than the rows: every row is a query
            metric,
            rerank: 20,
            ..EvalOptions::default()
        };
        let r = run(&f, &opts);
        assert_eq!(r.queries, 150);
        for rec in &r.recall {
            let (plain, rescored) = naive_recall(&f, metric, &f.orig, &own, rec.k, 20);
            assert_eq!(rec.recall, plain, "{metric} recall@{}", rec.k);
            assert_eq!(rec.rescored, rescored, "{metric} rescored recall@{}", rec.k);
        }
        // int8 on 8 dims loses some neighbours: the test would not notice a broken search
        // that returned the truth for both sides.
        assert!(
            r.recall[2].recall < 1.0,
            "{metric}: recall@10 {}",
            r.recall[2].recall
        );
    }
}

#[test]
fn queries_from_a_file_match_naive_top_k_without_exclusion() {
    let f = fixture(200, 8, 64);
    let qs = gaussian(30, 8, 99);
    let qpath = f.npy.with_file_name("q.npy");
    write_npy(&qpath, qs.len() as u64 / 8, 8, &qs);
    let opts = EvalOptions {
        k: vec![3, 7],
        queries: Some(qpath),
        rerank: 7,
        ..EvalOptions::default()
    };
    let r = run(&f, &opts);
    assert_eq!((r.queries, r.query_source), (30, "file"));
    for rec in &r.recall {
        let (plain, rescored) = naive_recall(&f, Metric::Cos, &qs, &[None; 30], rec.k, 7);
        assert_eq!(
            (rec.recall, rec.rescored),
            (plain, rescored),
            "recall@{}",
            rec.k
        );
    }
}

#[test]
fn results_do_not_depend_on_threads_or_chunking() {
    let base = fixture(240, 16, 240);
    let opts = |threads| EvalOptions {
        threads,
        sample_queries: 40,
        k: vec![1, 10],
        ..EvalOptions::default()
    };
    let want = run(&base, &opts(1));
    for chunk in [240, 7, 64] {
        let f = fixture(240, 16, chunk);
        for threads in [1, 2, 3] {
            let r = run(&f, &opts(threads));
            for (a, b) in r.recall.iter().zip(&want.recall) {
                assert_eq!(
                    (a.recall, a.rescored),
                    (b.recall, b.rescored),
                    "chunk {chunk}, {threads} threads"
                );
            }
            close(r.cosine_mean, want.cosine_mean, "cosine_mean");
            close(r.nmse, want.nmse, "nmse");
            assert_eq!(r.cosine_min, want.cosine_min);
            assert_eq!(r.cosine_median, want.cosine_median);
        }
    }
}

#[test]
fn sampled_queries_are_seeded() {
    let f = fixture(300, 8, 50);
    let opts = |seed| EvalOptions {
        seed,
        sample_queries: 20,
        k: vec![1],
        rerank: 1,
        ..EvalOptions::default()
    };
    let a = run(&f, &opts(1));
    let b = run(&f, &opts(1));
    assert_eq!(a.recall[0].recall, b.recall[0].recall);
    let differs = (2..10).any(|s| run(&f, &opts(s)).recall[0].recall != a.recall[0].recall);
    assert!(differs, "the seed does not change the query sample");
}

#[test]
fn bench_agrees_with_eval_on_the_same_data() {
    use vectro::eval::bench::{BenchOptions, bench};
    let f = fixture(400, 16, 90);
    let opts = BenchOptions {
        queries: 50,
        k: 10,
        rerank: 30,
        runs: 1,
        ..BenchOptions::default()
    };
    let b = bench(&f.orig, 16, &opts, &NoProgress, &AtomicBool::new(false)).unwrap();
    let e = run(
        &f,
        &EvalOptions {
            k: vec![10],
            sample_queries: 50,
            rerank: 30,
            ..EvalOptions::default()
        },
    );
    let row = &b.codecs[0];
    assert_eq!(row.codec, "int8");
    close(row.cosine_mean, e.cosine_mean, "cosine_mean");
    assert_eq!(
        (row.recall, row.rescored_recall),
        (e.recall[0].recall, e.recall[0].rescored)
    );
    assert_eq!(row.bytes_per_vector, 16.0 + 4.0);
}
