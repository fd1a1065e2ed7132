//! `eval` of pq/opq/rq containers searches the codes by ADC (one lookup table per query) and
//! must find exactly what an exact float search over the decoded rows finds, for every
//! metric, and the same for any thread count.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use vectro::eval::{EvalOptions, EvalReport, Metric, evaluate};
use vectro::output::Durability;
use vectro::{CompressOptions, NoProgress, compress};

const DIMS: usize = 16;

/// 600 rows around 12 seeded centres, so that neighbours are meaningful, written as
/// `.npy`, and compressed with `codec` in chunks of 100 rows.
fn container(dir: &Path, codec: &str) -> (PathBuf, PathBuf) {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut g = || -> f32 { StandardNormal.sample(&mut rng) };
    let centres: Vec<f32> = (0..12 * DIMS).map(|_| 3.0 * g()).collect();
    let mut data = Vec::with_capacity(600 * DIMS);
    for r in 0..600 {
        for t in 0..DIMS {
            data.push(centres[(r % 12) * DIMS + t] + g());
        }
    }
    let npy = dir.join("x.npy");
    crate::helpers::write_npy(&npy, 600, DIMS as u64, &data);
    let out = dir.join(format!("{}.vectro", codec.replace([':', ',', '='], "_")));
    let opts = CompressOptions {
        codec: Some(codec.parse().unwrap()),
        chunk_rows: Some(100),
        durability: Durability::None,
        ..CompressOptions::default()
    };
    compress(&npy, &out, &opts, &NoProgress, &AtomicBool::new(false)).unwrap();
    (npy, out)
}

fn eval(npy: &Path, comp: &Path, opts: &EvalOptions) -> EvalReport {
    evaluate(npy, comp, opts, &NoProgress, &AtomicBool::new(false)).unwrap()
}

/// Everything but the wall time, to compare two runs.
fn measured(r: &EvalReport) -> String {
    let mut r = r.clone();
    r.seconds = 0.0;
    // The test process's peak RSS, which the tests running beside this one move.
    r.peak_rss_bytes = 0;
    format!("{r:?}")
}

#[test]
fn adc_finds_what_exact_search_over_the_reconstruction_finds() {
    let dir = tempfile::tempdir().unwrap();
    for codec in [
        "pq:m=4",
        "pq:m=8,nbits=4",
        "opq:m=4,opq_iters=2",
        "rq:m=3,beam=4",
    ] {
        let (npy, comp) = container(dir.path(), codec);
        for metric in [Metric::L2, Metric::Ip, Metric::Cos] {
            let opts = EvalOptions {
                k: vec![1, 5, 10, 50],
                sample_queries: 40,
                metric,
                rerank: 20,
                threads: 2,
                ..EvalOptions::default()
            };
            let adc = eval(&npy, &comp, &opts);
            let float = eval(
                &npy,
                &comp,
                &EvalOptions {
                    exact_float_search: true,
                    ..opts.clone()
                },
            );
            assert_eq!((adc.search, float.search), ("adc", "exact-float"));
            let what = format!("{codec} {metric}");
            // Not a vacuous agreement: the codes lose neighbours, but not all.
            let r10 = float.recall[2].recall;
            assert!(r10 > 0.2 && r10 < 1.0, "{what}: recall@10 {r10}");
            for (a, f) in adc.recall.iter().zip(&float.recall) {
                assert_eq!(a.k, f.k);
                assert_eq!(a.recall, f.recall, "{what}: recall@{}", a.k);
                assert_eq!(a.rescored, f.rescored, "{what}: rescored@{}", a.k);
            }
            // The quality metrics still come from the decoded rows.
            assert_eq!(adc.cosine_mean, float.cosine_mean, "{what}");
            assert_eq!(adc.nmse, float.nmse, "{what}");
        }
    }
}

#[test]
fn adc_results_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    for codec in ["pq:m=4", "opq:m=4,opq_iters=2", "rq:m=3,beam=4"] {
        let (npy, comp) = container(dir.path(), codec);
        for metric in [Metric::L2, Metric::Cos] {
            let opts = |threads| EvalOptions {
                k: vec![1, 10, 30],
                sample_queries: 25,
                metric,
                rerank: 30,
                threads,
                ..EvalOptions::default()
            };
            let one = eval(&npy, &comp, &opts(1));
            assert_eq!(one.search, "adc");
            for threads in [2, 3] {
                assert_eq!(
                    measured(&one),
                    measured(&eval(&npy, &comp, &opts(threads))),
                    "{codec} {metric} threads {threads}"
                );
            }
        }
    }
}

#[test]
fn other_codecs_search_the_decoded_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (npy, comp) = container(dir.path(), "int8");
    let r = eval(&npy, &comp, &EvalOptions::default());
    assert_eq!(r.search, "exact-float");
}

/// `vectro eval --search exact-float` searches a pq container over its decoded rows, and
/// finds what the default ADC search finds.
#[test]
fn the_cli_searches_the_codes_unless_asked_for_exact_float() {
    let dir = tempfile::tempdir().unwrap();
    let (npy, comp) = container(dir.path(), "pq:m=4");
    let run = |extra: &[&str]| -> serde_json::Value {
        let out = crate::helpers::vectro()
            .args(["eval", "--json", "--metric", "l2", "--sample-queries", "30"])
            .arg("--orig")
            .arg(&npy)
            .arg("--comp")
            .arg(&comp)
            .args(extra)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        serde_json::from_slice(&out).unwrap()
    };
    let (auto, float) = (run(&[]), run(&["--search", "exact-float"]));
    assert_eq!(auto["search"], "adc");
    assert_eq!(run(&["--search", "auto"])["search"], "adc");
    assert_eq!(float["search"], "exact-float");
    assert_eq!(auto["recall"], float["recall"]);
    let bad = crate::helpers::vectro()
        .args([
            "eval", "--orig", "x.npy", "--comp", "x.vectro", "--search", "fast",
        ])
        .assert()
        .failure()
        .get_output()
        .stderr
        .clone();
    let bad = String::from_utf8_lossy(&bad);
    assert!(bad.contains("auto") && bad.contains("exact-float"), "{bad}");
}
