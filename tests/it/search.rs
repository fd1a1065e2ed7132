//! `search` scores the codes, and must find what a brute-force search over the decoded
//! rows finds, for every codec and metric; the same whatever the thread count and chunk
//! size; only allowed ids with a filter; and rescoring must rank by the finer rows.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use vectro::codec::{CodecId, QuantParams, Rotation, ScaleRule};
use vectro::output::Durability;
use vectro::search::{Hits, Metric, SearchOptions, search, search_rescored};
use vectro::{CompressOptions, Container, NoProgress, compress};

use crate::helpers::{assert_fails, read_npy, run, write_npy};

/// Not a power of two, nor a multiple of 8: the rotation's two windows, the sign bits'
/// partial last byte and the int4 kernels' tails are all exercised.
const DIMS: usize = 44;
const ROWS: usize = 700;

/// Rows around 14 seeded centres (so that neighbours mean something), offset from the
/// origin (so that binary-itq's mean matters).
fn data(seed: u64, rows: usize) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut g = || -> f32 { StandardNormal.sample(&mut rng) };
    let centres: Vec<f32> = (0..14 * DIMS).map(|_| 2.0 * g() + 0.3).collect();
    (0..rows * DIMS)
        .map(|i| centres[((i / DIMS) % 14) * DIMS + i % DIMS] + g())
        .collect()
}

/// Held-out queries: not rows of the base.
fn queries(n: usize) -> Vec<f32> {
    data(99, n)
}

fn container(dir: &Path, codec: &str, chunk_rows: u32, zstd: Option<i32>) -> PathBuf {
    let npy = dir.join("base.npy");
    if !npy.exists() {
        write_npy(&npy, ROWS as u64, DIMS as u64, &data(5, ROWS));
    }
    let out = dir.join(format!(
        "{}-{chunk_rows}-{}.vectro",
        codec.replace([':', ',', '='], "_"),
        zstd.is_some()
    ));
    if out.exists() {
        return out;
    }
    let opts = CompressOptions {
        codec: Some(codec.parse().unwrap()),
        chunk_rows: Some(chunk_rows),
        zstd,
        durability: Durability::None,
        ..CompressOptions::default()
    };
    compress(&npy, &out, &opts, &NoProgress, &AtomicBool::new(false)).unwrap();
    out
}

/// `dir/tiered.vectro`: `dir/base.npy` (written by [`container`]) as `binary:rotate=1`
/// with an `int8` rescoring tier, 128 rows a chunk.
fn tiered_binary_int8(dir: &Path) -> PathBuf {
    let path = dir.join("tiered.vectro");
    compress(
        &dir.join("base.npy"),
        &path,
        &CompressOptions {
            codec: Some("binary:rotate=1".parse().unwrap()),
            rescore: Some("int8".parse().unwrap()),
            chunk_rows: Some(128),
            durability: Durability::None,
            ..CompressOptions::default()
        },
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    path
}

fn decoded(c: &Container) -> Vec<f32> {
    let mut out = vec![0f32; c.rows() as usize * c.dims()];
    c.get_range(0..c.rows(), &mut out).unwrap();
    out
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

/// The query the codes are scored with, in the rows' frame: the query itself (unit length
/// for cosine), or for int8 and uniform int4 the query quantized to int8 in the codes'
/// frame and brought back, as the search documents it.
fn effective_query(c: &Container, q: &[f32], metric: Metric) -> Vec<f32> {
    let mut q = q.to_vec();
    if metric == Metric::Cos {
        let n = dot(&q, &q).sqrt() as f32;
        q.iter_mut().for_each(|v| *v /= n);
    }
    let spec = &c.header().codec;
    let name = match spec.id {
        CodecId::Int8 => "int8",
        CodecId::Int4 => "int4",
        _ => return q,
    };
    let p = QuantParams::decode(name, &spec.params, DIMS).unwrap();
    if p.scale == ScaleRule::Gauss {
        return q;
    }
    let rot = p.rotation.map(|r| Rotation::new(DIMS, r.rounds, r.seed));
    if let Some(r) = &rot {
        r.forward(&mut q);
    }
    let s = vectro::codec::int8::row_scale(&q);
    let mut codes = vec![0i8; DIMS];
    vectro::simd::int8::quantize(&q, s, &mut codes);
    let mut back: Vec<f32> = codes.iter().map(|&v| f32::from(v) * s).collect();
    if let Some(r) = &rot {
        r.inverse(&mut back);
    }
    back
}

/// Brute force: every row's ranking score (greater is nearer) over the decoded rows.
fn brute_force(rows: &[f32], q: &[f32], metric: Metric) -> Vec<f64> {
    rows.chunks_exact(DIMS)
        .map(|x| {
            let (d, n) = (dot(q, x), dot(x, x));
            match metric {
                Metric::Ip => d,
                Metric::Cos if n > 0.0 => d / n.sqrt(),
                Metric::Cos => 0.0,
                Metric::L2 => 2.0 * d - n,
            }
        })
        .collect()
}

/// Asserts that `got` (ids and ranking scores, best first) is a top-k of `want` (every
/// row's brute-force score; `None` for rows that may not be returned) up to `tol`: each
/// score is the row's own, they come in order, and nothing left out beats the last.
/// Returns how many positions hold exactly the brute force's id.
fn assert_top_k(what: &str, got: &[(u64, f64)], want: &[Option<f64>], k: usize) -> usize {
    assert_top_k_tol(what, got, want, k, 2e-4)
}

/// [`assert_top_k`] with a tolerance of `rel` times the largest score.
fn assert_top_k_tol(
    what: &str,
    got: &[(u64, f64)],
    want: &[Option<f64>],
    k: usize,
    rel: f64,
) -> usize {
    let mut order: Vec<usize> = (0..want.len()).filter(|&r| want[r].is_some()).collect();
    order.sort_by(|&a, &b| {
        want[b]
            .unwrap()
            .total_cmp(&want[a].unwrap())
            .then(a.cmp(&b))
    });
    let expect = order.len().min(k);
    assert_eq!(got.len(), expect, "{what}: result count");
    let scale = 1.0 + want.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let tol = rel * scale;
    let mut seen = std::collections::HashSet::new();
    for (j, &(id, s)) in got.iter().enumerate() {
        assert!(seen.insert(id), "{what}: id {id} twice");
        let own = want[id as usize].unwrap_or_else(|| panic!("{what}: id {id} not allowed"));
        assert!(
            (own - s).abs() <= tol,
            "{what}: id {id} scored {s}, brute force {own}"
        );
        if j > 0 {
            assert!(s <= got[j - 1].1 + tol, "{what}: out of order at {j}");
        }
    }
    if let Some(&(_, last)) = got.last() {
        let kth = want[order[expect - 1]].unwrap();
        assert!(
            last >= kth - tol,
            "{what}: last {last} below the true k-th {kth}"
        );
    }
    got.iter()
        .zip(&order)
        .filter(|((id, _), r)| *id as usize == **r)
        .count()
}

/// The ranking scores back from the reported ones.
fn ranked(hits: &Hits, i: usize, q: &[f32], metric: Metric) -> Vec<(u64, f64)> {
    let (ids, scores) = hits.query(i);
    let qn2 = dot(q, q);
    ids.iter()
        .zip(scores)
        .map(|(&id, &s)| {
            let s = f64::from(s);
            (id, if metric == Metric::L2 { qn2 - s } else { s })
        })
        .collect()
}

const CODECS: [(&str, &str); 14] = [
    ("int8", "int"),
    ("int8:rotate=1", "int"),
    ("int4", "int"),
    ("int4:scale=max", "int"),
    ("int4:rotate=1", "int"),
    ("binary", "bits"),
    ("binary:rotate=1", "bits"),
    ("binary-itq", "bits"),
    ("pq:m=11", "adc"),
    ("pq:m=4,nbits=4", "fastscan"),
    ("opq:m=11,nbits=4,opq_iters=2", "fastscan"),
    ("opq:m=4,opq_iters=2", "adc"),
    ("f16", "float"),
    ("bf16", "float"),
];

/// `sq` at the widths whose packing differs (generic, nibbles, bytes), and the centred
/// layouts (padded: `sq:bits=1,centre=1`, `pad=1` and `extra=N`; unpadded: `pad=0` and
/// `sq:bits=3,centre=1`).
const SQ_CODECS: [&str; 9] = [
    "sq:bits=1",
    "sq:bits=3",
    "sq:bits=4",
    "sq:bits=8",
    "sq:bits=1,centre=1",
    "sq:bits=3,centre=1",
    "sq:bits=1,centre=1,pad=0",
    "sq:bits=3,centre=1,pad=1",
    "sq:bits=2,centre=1,extra=60",
];

/// `sq` is scored by its estimator: the decoded row's inner product with the query (the
/// unbiased estimate) and the row's stored norm `‖x‖` (not the decoded row's, which is
/// longer by 1/cos θ), so cosine ranks by `q·x' / ‖x‖` and L2 by `2q·x' − ‖x‖²`. The stored
/// norm is rounded to 11 significant bits, hence the looser tolerance; 7 in the packed word
/// of the padded layout, with `<x, c>` to 10 bits of a cosine, hence a looser one still.
#[test]
fn sq_search_ranks_by_the_estimator_with_the_stored_norm() {
    let dir = tempfile::tempdir().unwrap();
    let qs = queries(25);
    let base = data(5, ROWS);
    let k = 15;
    for codec in SQ_CODECS {
        let c = Container::open(container(dir.path(), codec, 128, None)).unwrap();
        let rows = decoded(&c);
        for metric in [Metric::Ip, Metric::Cos, Metric::L2] {
            let opts = SearchOptions {
                k,
                metric,
                threads: 2,
                ..SearchOptions::default()
            };
            let hits = search(&c, &qs, &opts, &AtomicBool::new(false)).unwrap();
            assert_eq!(hits.scorer, "estimator", "{codec}: scored by");
            for (i, q) in qs.chunks_exact(DIMS).enumerate() {
                let eq = effective_query(&c, q, metric);
                let want: Vec<Option<f64>> = rows
                    .chunks_exact(DIMS)
                    .zip(base.chunks_exact(DIMS))
                    .map(|(x, o)| {
                        let (d, n) = (dot(&eq, x), dot(o, o));
                        Some(match metric {
                            Metric::Ip => d,
                            Metric::Cos => d / n.sqrt(),
                            _ => 2.0 * d - n,
                        })
                    })
                    .collect();
                let what = format!("{codec} {metric} query {i}");
                let padded = codec.contains("pad=1")
                    || codec.contains("extra=")
                    || codec == "sq:bits=1,centre=1";
                let tol = if padded { 2e-2 } else { 2e-3 };
                assert_top_k_tol(&what, &ranked(&hits, i, q, metric), &want, k, tol);
            }
        }
    }
}

#[test]
fn search_finds_what_brute_force_over_the_decoded_rows_finds() {
    let dir = tempfile::tempdir().unwrap();
    let qs = queries(25);
    let k = 15;
    for (codec, scorer) in CODECS {
        let path = container(dir.path(), codec, 128, None);
        let c = Container::open(&path).unwrap();
        let rows = decoded(&c);
        for metric in [Metric::Ip, Metric::Cos, Metric::L2] {
            let opts = SearchOptions {
                k,
                metric,
                threads: 2,
                ..SearchOptions::default()
            };
            let hits = search(&c, &qs, &opts, &AtomicBool::new(false)).unwrap();
            assert_eq!(hits.scorer, scorer, "{codec}: scored by");
            let mut exact = 0;
            for (i, q) in qs.chunks_exact(DIMS).enumerate() {
                let eq = effective_query(&c, q, metric);
                let want: Vec<Option<f64>> = brute_force(&rows, &eq, metric)
                    .into_iter()
                    .map(Some)
                    .collect();
                let what = format!("{codec} {metric} query {i}");
                exact += assert_top_k(&what, &ranked(&hits, i, q, metric), &want, k);
            }
            // Rounding may swap near-ties, but the ids are nearly all the brute force's.
            assert!(
                exact * 100 >= 95 * k * 25,
                "{codec} {metric}: {exact} exact"
            );
        }
    }
}

#[test]
fn zstd_payloads_search_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let qs = queries(10);
    for codec in ["int8", "binary:rotate=1", "pq:m=11"] {
        let a = Container::open(container(dir.path(), codec, 100, None)).unwrap();
        let b = Container::open(container(dir.path(), codec, 100, Some(3))).unwrap();
        let opts = SearchOptions::default();
        let no = AtomicBool::new(false);
        assert_eq!(
            search(&a, &qs, &opts, &no).unwrap(),
            search(&b, &qs, &opts, &no).unwrap(),
            "{codec}"
        );
    }
}

#[test]
fn results_are_the_same_for_any_thread_count_and_chunk_size() {
    let dir = tempfile::tempdir().unwrap();
    let qs = queries(20);
    let no = AtomicBool::new(false);
    for codec in CODECS.iter().map(|c| c.0).chain(SQ_CODECS) {
        // Trained codecs learn from a sample that may depend on the chunking: those are
        // compared across thread counts only.
        let trained = codec.starts_with("pq") || codec.starts_with("opq") || codec.contains("itq");
        let sizes: &[u32] = if trained { &[128] } else { &[64, 128, 700] };
        for metric in [Metric::Cos, Metric::L2] {
            let mut first: [Option<Hits>; 2] = [None, None];
            for &chunk in sizes {
                let c = Container::open(container(dir.path(), codec, chunk, None)).unwrap();
                for threads in [1, 2, 3] {
                    for hamming in [false, true] {
                        let opts = SearchOptions {
                            k: 12,
                            metric,
                            threads,
                            hamming,
                            ..SearchOptions::default()
                        };
                        let h = search(&c, &qs, &opts, &no).unwrap();
                        match &first[usize::from(hamming)] {
                            None => first[usize::from(hamming)] = Some(h),
                            Some(f) => assert_eq!(
                                &h, f,
                                "{codec} {metric} hamming={hamming}: chunk {chunk}, {threads} threads"
                            ),
                        }
                    }
                }
            }
        }
    }
}

/// A memory budget too small for every query at once searches them in blocks, one pass
/// over the container each: the results are those of one pass, bit for bit, for every
/// codec, with rescoring (from a tiered file's finest tier and from another container),
/// with Hamming ranking and a filter, at any thread count.
#[test]
fn queries_searched_in_blocks_give_the_results_of_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let qs = queries(100);
    let no = AtomicBool::new(false);
    // Also writes the base rows the tiered file is compressed from.
    let fine = Container::open(container(dir.path(), "int8", 100, Some(3))).unwrap();
    let tiered = tiered_binary_int8(dir.path());
    let allow: Vec<u64> = (0..ROWS as u64).filter(|r| r % 5 != 3).collect();
    let mut cases: Vec<(PathBuf, bool, usize, bool)> = CODECS
        .iter()
        .map(|c| c.0)
        .chain(SQ_CODECS)
        .chain(["rq:m=5,beam=4"])
        .map(|codec| (container(dir.path(), codec, 128, None), false, 0, false))
        .collect();
    cases.extend([
        (tiered.clone(), false, 0, false),
        (tiered.clone(), true, 40, false),
        (container(dir.path(), "binary", 128, None), true, 0, false),
        (container(dir.path(), "binary", 128, None), false, 60, true),
    ]);
    for (path, hamming, rescore, with_fine) in cases {
        let c = Container::open(&path).unwrap();
        for (metric, filter) in [(Metric::Cos, None), (Metric::L2, Some(allow.clone()))] {
            let opts = SearchOptions {
                k: 12,
                metric,
                hamming,
                rescore,
                filter,
                threads: 2,
                ..SearchOptions::default()
            };
            let go = |o: &SearchOptions| match with_fine {
                true => search_rescored(&c, &fine, &qs, o, &no).unwrap(),
                false => search(&c, &qs, o, &no).unwrap(),
            };
            let whole = go(&opts);
            assert_eq!(whole.len(), 100);
            // One query a pass; blocks of 64 and a tail (a few queries a pass for the
            // larger lookup tables); one pass.
            for memory_budget in [1, 300_000, usize::MAX] {
                for threads in [1, 3] {
                    let blocked = SearchOptions {
                        memory_budget,
                        threads,
                        ..opts.clone()
                    };
                    assert_eq!(
                        go(&blocked),
                        whole,
                        "{} {metric} hamming={hamming} rescore={rescore}: budget {memory_budget}, \
                         {threads} threads",
                        path.display()
                    );
                }
            }
        }
    }
}

/// A tiered file's chunks are checked once per opened container, not once per search:
/// repeated searches of one open file give the same results, and a chunk corrupted on
/// disk is still reported, naming the chunk and its tier, by a fresh open, on every search.
#[test]
fn a_tiered_file_searched_again_gives_the_same_results_and_corruption_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let no = AtomicBool::new(false);
    container(dir.path(), "int8", 128, None);
    let path = tiered_binary_int8(dir.path());
    let qs = queries(9);
    let opts = SearchOptions {
        k: 7,
        threads: 2,
        ..SearchOptions::default()
    };
    let c = Container::open(&path).unwrap();
    let first = search(&c, &qs, &opts, &no).unwrap();
    for _ in 0..3 {
        assert_eq!(search(&c, &qs, &opts, &no).unwrap(), first);
    }
    let fresh = Container::open(&path).unwrap();
    assert_eq!(search(&fresh, &qs, &opts, &no).unwrap(), first);
    drop((c, fresh));
    // One bit of chunk 2's search-tier codes (the first bytes of its payload).
    let at = Container::open(&path).unwrap().chunks()[2]
        .payload_range()
        .start
        + 3;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let bad = Container::open(&path).unwrap();
    for _ in 0..2 {
        let e = search(&bad, &qs, &opts, &no).unwrap_err();
        assert!(matches!(e, vectro::Error::Corrupt { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("chunk 2 ") && msg.contains("tier 0") && msg.contains("crc32c"),
            "{msg}"
        );
    }
}

#[test]
fn a_filter_returns_only_allowed_ids_and_the_best_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let qs = queries(10);
    // Whole chunks without an allowed row (rows 128..256) are skipped.
    let allowed: Vec<u64> = (0..ROWS as u64)
        .filter(|r| (r % 7 == 3 && !(128..256).contains(r)) || *r == 699)
        .collect();
    for codec in ["int8", "int4:rotate=1", "binary", "pq:m=11", "f16"] {
        let c = Container::open(container(dir.path(), codec, 128, None)).unwrap();
        let rows = decoded(&c);
        for metric in [Metric::Cos, Metric::L2] {
            let opts = SearchOptions {
                k: 10,
                metric,
                filter: Some(allowed.clone()),
                ..SearchOptions::default()
            };
            let hits = search(&c, &qs, &opts, &AtomicBool::new(false)).unwrap();
            for (i, q) in qs.chunks_exact(DIMS).enumerate() {
                let bf = brute_force(&rows, &effective_query(&c, q, metric), metric);
                let want: Vec<Option<f64>> = bf
                    .iter()
                    .enumerate()
                    .map(|(r, &s)| allowed.contains(&(r as u64)).then_some(s))
                    .collect();
                let what = format!("{codec} {metric} filtered query {i}");
                assert_top_k(&what, &ranked(&hits, i, q, metric), &want, 10);
            }
        }
    }
    // Fewer allowed rows than k: the rest of the row is marked missing.
    let c = Container::open(container(dir.path(), "int8", 128, None)).unwrap();
    let opts = SearchOptions {
        k: 5,
        filter: Some(vec![4, 600, 4]),
        ..SearchOptions::default()
    };
    let hits = search(&c, &qs[..DIMS], &opts, &AtomicBool::new(false)).unwrap();
    let (ids, _) = hits.query(0);
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    assert_eq!(sorted, [4, 600]);
    assert_eq!(&hits.ids[2..], &[Hits::NONE; 3]);
    assert!(hits.scores[2..].iter().all(|s| s.is_nan()));
    // An id the container does not have is a usage error naming it.
    let bad = SearchOptions {
        filter: Some(vec![3, 700]),
        ..SearchOptions::default()
    };
    let e = search(&c, &qs, &bad, &AtomicBool::new(false)).unwrap_err();
    assert!(e.to_string().contains("filter id 700"), "{e}");
}

/// The Hamming search is the brute-force ranking by the sign bits, ties to the smaller
/// row: for 1 to 9 queries (the blocked scan's partial query groups), 1 and 3 threads,
/// and chunks of 128 and of 100 rows (not a multiple of its 32-row blocks).
#[test]
fn hamming_ranks_by_the_sign_bits() {
    let dir = tempfile::tempdir().unwrap();
    for chunk in [128, 100] {
        let c = Container::open(container(dir.path(), "binary", chunk, None)).unwrap();
        let rows = decoded(&c);
        for nq in [10, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
            for threads in [1, 3] {
                hamming_is_brute_force(&c, &rows, &queries(nq), threads, chunk);
            }
        }
    }
}

fn hamming_is_brute_force(c: &Container, rows: &[f32], qs: &[f32], threads: usize, chunk: u32) {
    let opts = SearchOptions {
        k: 20,
        hamming: true,
        threads,
        ..SearchOptions::default()
    };
    let hits = search(c, qs, &opts, &AtomicBool::new(false)).unwrap();
    assert_eq!((hits.score, hits.scorer), ("hamming", "hamming"));
    for (i, q) in qs.chunks_exact(DIMS).enumerate() {
        // A decoded binary row is ±scale: its signs are the stored bits.
        let mut want: Vec<(u32, u64)> = rows
            .chunks_exact(DIMS)
            .enumerate()
            .map(|(r, x)| {
                let h = x
                    .iter()
                    .zip(q)
                    .filter(|(a, b)| (**a >= 0.0) != (**b >= 0.0))
                    .count();
                (h as u32, r as u64)
            })
            .collect();
        want.sort_unstable();
        let (ids, scores) = hits.query(i);
        let got: Vec<(u32, u64)> = scores.iter().map(|&s| s as u32).zip(ids.to_vec()).collect();
        let what = format!(
            "query {i} of {}, {threads} threads, chunks of {chunk}",
            hits.len()
        );
        assert_eq!(got, want[..20], "{what}");
    }
}

#[test]
fn rescoring_ranks_the_candidates_by_the_finer_rows() {
    let dir = tempfile::tempdir().unwrap();
    let qs = queries(15);
    let coarse = Container::open(container(dir.path(), "binary:rotate=1", 128, None)).unwrap();
    let no = AtomicBool::new(false);
    // int8 codes are scored in place (plain, and in a rotated frame); zstd chunks are
    // decoded through get_many; both are the brute force over the decoded rows.
    for (codec, zstd) in [("int8", None), ("int8:rotate=1", None), ("int8", Some(3))] {
        let fine = Container::open(container(dir.path(), codec, 100, zstd)).unwrap();
        let fine_rows = decoded(&fine);
        for metric in [Metric::Ip, Metric::Cos, Metric::L2] {
            for hamming in [false, true] {
                // Every row a candidate: the result is the brute force over the int8 rows.
                let all = SearchOptions {
                    k: 10,
                    metric,
                    hamming,
                    rescore: ROWS,
                    ..SearchOptions::default()
                };
                let hits = search_rescored(&coarse, &fine, &qs, &all, &no).unwrap();
                assert_eq!(hits.score, metric.to_string());
                for (i, q) in qs.chunks_exact(DIMS).enumerate() {
                    let mut eq = q.to_vec();
                    if metric == Metric::Cos {
                        let n = dot(q, q).sqrt() as f32;
                        eq.iter_mut().for_each(|v| *v /= n);
                    }
                    let want: Vec<Option<f64>> = brute_force(&fine_rows, &eq, metric)
                        .into_iter()
                        .map(Some)
                        .collect();
                    let what = format!(
                        "{codec} zstd={zstd:?} rescored {metric} hamming={hamming} query {i}"
                    );
                    assert_top_k(&what, &ranked(&hits, i, q, metric), &want, 10);
                }
            }
        }
    }
    let fine = Container::open(container(dir.path(), "int8", 100, None)).unwrap();
    // Rescoring a few candidates finds more of the int8 neighbours than the codes alone.
    let overlap = |h: &Hits| -> usize {
        let truth = search(
            &fine,
            &qs,
            &SearchOptions {
                k: 10,
                ..SearchOptions::default()
            },
            &no,
        )
        .unwrap();
        (0..h.len())
            .map(|i| {
                h.query(i)
                    .0
                    .iter()
                    .filter(|id| truth.query(i).0.contains(id))
                    .count()
            })
            .sum()
    };
    let plain = search(&coarse, &qs, &SearchOptions::default(), &no).unwrap();
    let some = SearchOptions {
        rescore: 40,
        ..SearchOptions::default()
    };
    let rescored = search_rescored(&coarse, &fine, &qs, &some, &no).unwrap();
    assert!(
        overlap(&rescored) > overlap(&plain),
        "rescoring did not help"
    );
    // A fine container of other rows is refused.
    let short = dir.path().join("short.npy");
    write_npy(&short, 10, DIMS as u64, &data(5, 10));
    let short_c = dir.path().join("short.vectro");
    compress(
        &short,
        &short_c,
        &CompressOptions {
            durability: Durability::None,
            ..CompressOptions::default()
        },
        &NoProgress,
        &no,
    )
    .unwrap();
    let e = search_rescored(
        &coarse,
        &Container::open(&short_c).unwrap(),
        &qs,
        &some,
        &no,
    )
    .unwrap_err();
    assert!(e.to_string().contains("same rows"), "{e}");
}

/// Queries are read a piece at a time: a float64 file of several pieces reads as its
/// values, and a file shorter or longer than its shape is refused, naming it.
#[test]
fn queries_are_read_in_pieces_and_must_match_their_shape() {
    let dir = tempfile::tempdir().unwrap();
    let rows = 3001u64;
    let want = queries(rows as usize);
    let mut bytes = vectro::npy::write_header_descr(rows, DIMS as u64, "<f8");
    bytes.extend(want.iter().flat_map(|&v| f64::from(v).to_le_bytes()));
    let path = dir.path().join("q64.npy");
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(vectro::search::read_queries(&path).unwrap(), (want, DIMS));
    for (what, len) in [("truncated", bytes.len() - 5), ("longer", bytes.len() + 8)] {
        let mut b = bytes.clone();
        b.resize(len, 0);
        std::fs::write(&path, &b).unwrap();
        let e = vectro::search::read_queries(&path).unwrap_err().to_string();
        assert!(e.contains("q64.npy") && e.contains(what), "{e}");
    }
}

#[test]
fn cli_writes_json_lines_a_table_and_npy() {
    let dir = tempfile::tempdir().unwrap();
    let path = container(dir.path(), "int8", 128, None);
    let qpath = dir.path().join("q.npy");
    let qs = queries(3);
    write_npy(&qpath, 3, DIMS as u64, &qs);
    let c = Container::open(&path).unwrap();
    let lib = search(
        &c,
        &qs,
        &SearchOptions {
            k: 4,
            metric: Metric::L2,
            ..SearchOptions::default()
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let q = qpath.to_str().unwrap();
    let o = run(&["search", p, "--queries", q, "-k", "4", "--metric", "l2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["query"], i);
        let ids: Vec<u64> = l["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(ids, lib.query(i).0);
        let scores: Vec<f32> = l["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(scores, lib.query(i).1);
    }
    // Queries from stdin, as a table.
    let o = crate::helpers::vectro()
        .args([
            "search",
            p,
            "--queries",
            "-",
            "-k",
            "4",
            "--metric",
            "l2",
            "--format",
            "table",
        ])
        .write_stdin(std::fs::read(&qpath).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success());
    let table = String::from_utf8(o.stdout).unwrap();
    assert_eq!(table.lines().count(), 1 + 3 * 4);
    assert!(table.lines().next().unwrap().contains("l2"));
    // npy pair.
    let prefix = dir.path().join("res");
    let o = run(&[
        "search",
        p,
        "--queries",
        q,
        "-k",
        "4",
        "--metric",
        "l2",
        "--format",
        "npy",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, ids) = read_npy::<i64>(&dir.path().join("res.ids.npy"));
    assert_eq!(shape, [3, 4]);
    assert_eq!(ids, lib.ids.iter().map(|&i| i as i64).collect::<Vec<_>>());
    let (shape, scores) = read_npy::<f32>(&dir.path().join("res.scores.npy"));
    assert_eq!(shape, [3, 4]);
    assert_eq!(scores, lib.scores);
    // Again without --force: refused, and neither file is touched.
    let o = run(&[
        "search",
        p,
        "--queries",
        q,
        "--format",
        "npy",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert_fails(&o, 2, &["already exists"]);
}

#[test]
fn cli_bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = container(dir.path(), "binary", 128, None);
    let p = path.to_str().unwrap();
    let narrow = dir.path().join("narrow.npy");
    write_npy(&narrow, 2, 3, &[0.0; 6]);
    let n = narrow.to_str().unwrap();
    assert_fails(
        &run(&["search", p, "--queries", n]),
        3,
        &["narrow.npy", "3-dimensional queries", "44-dimensional rows"],
    );
    let qpath = dir.path().join("q.npy");
    write_npy(&qpath, 2, DIMS as u64, &queries(2));
    let q = qpath.to_str().unwrap();
    assert_fails(
        &run(&["search", p, "--queries", q, "-k", "0"]),
        2,
        &["k must be"],
    );
    assert_fails(
        &run(&["search", p, "--queries", q, "--filter-ids", "1,5000"]),
        2,
        &["filter id 5000", "ids 0..700"],
    );
    assert_fails(
        &run(&["search", p, "--queries", q, "--filter-ids", "1,x"]),
        2,
        &["--filter-ids", "'x'"],
    );
    assert_fails(
        &run(&["search", p, "--queries", q, "--format", "npy"]),
        2,
        &["--out PREFIX"],
    );
    assert_fails(
        &run(&["search", p, "--queries", "/nonexistent/q.npy"]),
        4,
        &["/nonexistent/q.npy"],
    );
    let mut nan = queries(2);
    nan[DIMS + 5] = f32::NAN;
    write_npy(&qpath, 2, DIMS as u64, &nan);
    assert_fails(&run(&["search", p, "--queries", q]), 3, &["q.npy", "row 1"]);
}

/// Peak RSS of `vectro search` of 10 queries over a container of `rows` generated rows of
/// 256 dims (`codec`), measured by `wait4` (search reports only its results).
#[cfg(target_os = "linux")]
fn search_peak_rss(rows: u64, codec: &str, dir: &Path) -> u64 {
    let npy = dir.join(format!("s{rows}.npy"));
    let comp = dir.join(format!("s{rows}.vectro"));
    let q = dir.join("q256.npy");
    crate::helpers::vectro()
        .args(["generate", "--quiet", "--dims", "256", "--rows"])
        .arg(rows.to_string())
        .arg("--out")
        .arg(&npy)
        .assert()
        .success();
    crate::helpers::vectro()
        .args([
            "compress",
            "--quiet",
            "--no-fsync",
            "--chunk-rows",
            "256",
            "--codec",
            codec,
        ])
        .arg("--in")
        .arg(&npy)
        .arg("--out")
        .arg(&comp)
        .assert()
        .success();
    std::fs::remove_file(&npy).unwrap();
    let qs: Vec<f32> = (0..10 * 256)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
        .collect();
    write_npy(&q, 10, 256, &qs);
    let mut cmd = crate::helpers::vectro_std();
    cmd.args(["search", "--threads", "2", "--format", "npy", "--out"])
        .arg(dir.join(format!("r{rows}-{codec}")))
        .arg("--queries")
        .arg(&q)
        .arg(&comp);
    let rss = crate::helpers::peak_rss_of(cmd, "search");
    std::fs::remove_file(&comp).unwrap();
    rss
}

#[cfg(target_os = "linux")]
#[test]
fn search_peak_memory_is_flat_in_the_number_of_rows() {
    // Without releasing the container's pages behind the scan, the larger search would
    // hold its whole container: 112 MiB more of f16 (56 MiB of int8) than the smaller.
    let dir = tempfile::tempdir().unwrap();
    for codec in ["f16", "int8"] {
        let small = search_peak_rss(32_768, codec, dir.path());
        let large = search_peak_rss(262_144, codec, dir.path());
        let grew = large.saturating_sub(small);
        assert!(
            grew < 24 << 20,
            "{codec}: peak RSS grew by {} MiB ({} -> {} MiB)",
            grew >> 20,
            small >> 20,
            large >> 20
        );
    }
}

/// Peak RSS (wait4) of `vectro search` of `queries` queries over `comp` with `args`.
#[cfg(target_os = "linux")]
fn search_args_peak_rss(comp: &Path, q: &Path, out: &Path, args: &[&str]) -> u64 {
    let mut cmd = crate::helpers::vectro_std();
    cmd.args(["search", "--threads", "2", "--format", "npy", "--force"])
        .args(args)
        .arg("--out")
        .arg(out)
        .arg("--queries")
        .arg(q)
        .arg(comp);
    crate::helpers::peak_rss_of(cmd, "search")
}

/// Many queries rescoring 10 times deeper: every query keeps 10 times the candidates, on
/// every worker, but the queries go in blocks under `--memory`, so peak memory stays
/// flat. Searched in one pass, the deeper search holds over 100 MiB more (2,000 queries
/// × 1,000 candidates × 16 bytes, several copies in flight).
#[cfg(target_os = "linux")]
#[test]
fn search_peak_memory_is_flat_in_the_rescoring_depth_with_many_queries() {
    let dir = tempfile::tempdir().unwrap();
    let (npy, comp, q) = (
        dir.path().join("base.npy"),
        dir.path().join("tiered.vectro"),
        dir.path().join("q.npy"),
    );
    for args in [
        &[
            "generate", "--quiet", "--dims", "64", "--rows", "20000", "--out",
        ][..],
        &[
            "compress",
            "--quiet",
            "--no-fsync",
            "--chunk-rows",
            "256",
            "--codec",
            "binary",
            "--rescore",
            "int8",
            "--in",
            npy.to_str().unwrap(),
            "--out",
        ],
    ] {
        let last = if args[0] == "generate" { &npy } else { &comp };
        let mut all = args.to_vec();
        all.push(last.to_str().unwrap());
        let o = run(&all);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let nq = 2000u64;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let qs: Vec<f32> = (0..nq * 64)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    write_npy(&q, nq, 64, &qs);
    let (shallow, deep) = (dir.path().join("shallow"), dir.path().join("deep"));
    let small = search_args_peak_rss(&comp, &q, &shallow, &["--rescore", "100", "--memory", "16"]);
    let large = search_args_peak_rss(&comp, &q, &deep, &["--rescore", "1000", "--memory", "16"]);
    let grew = large.saturating_sub(small);
    assert!(
        grew < 12 << 20,
        "peak RSS grew by {} MiB ({} -> {} MiB)",
        grew >> 20,
        small >> 20,
        large >> 20
    );
    // Both searched every query.
    for out in [&shallow, &deep] {
        let (rows, k, _) = crate::helpers::read_npy_f32(&out.with_extension("scores.npy"));
        assert_eq!((rows, k), (nq, 10));
    }
}

/// `rq` is scored by lookup tables (`m × 256` inner products per query, the decoded row's
/// norm for cosine and L2): a brute force over the decoded rows finds the same, within
/// float rounding, for every metric, with and without a filter; and the result is the
/// same for any thread count.
#[test]
fn rq_search_by_lookup_tables_finds_what_brute_force_over_the_decoded_rows_finds() {
    let dir = tempfile::tempdir().unwrap();
    let qs = queries(25);
    let k = 15;
    let allow: Vec<u64> = (0..ROWS as u64).filter(|r| r % 4 != 2).collect();
    let no = AtomicBool::new(false);
    for codec in ["rq:m=5,beam=4", "rq:m=12,beam=2,refine=1"] {
        let c = Container::open(container(dir.path(), codec, 128, None)).unwrap();
        let rows = decoded(&c);
        for metric in [Metric::Ip, Metric::Cos, Metric::L2] {
            for filter in [None, Some(allow.clone())] {
                let opts = SearchOptions {
                    k,
                    metric,
                    threads: 2,
                    filter: filter.clone(),
                    ..SearchOptions::default()
                };
                let hits = search(&c, &qs, &opts, &no).unwrap();
                assert_eq!(hits.scorer, "adc", "{codec}: scored by");
                let mut exact = 0;
                for (i, q) in qs.chunks_exact(DIMS).enumerate() {
                    let eq = effective_query(&c, q, metric);
                    let want: Vec<Option<f64>> = brute_force(&rows, &eq, metric)
                        .into_iter()
                        .enumerate()
                        .map(|(r, s)| {
                            filter
                                .as_ref()
                                .is_none_or(|f| f.contains(&(r as u64)))
                                .then_some(s)
                        })
                        .collect();
                    let what = format!("{codec} {metric} query {i}");
                    exact += assert_top_k(&what, &ranked(&hits, i, q, metric), &want, k);
                }
                assert!(
                    exact * 100 >= 95 * k * 25,
                    "{codec} {metric}: {exact} exact"
                );
                for threads in [1, 3] {
                    let again = SearchOptions {
                        threads,
                        ..opts.clone()
                    };
                    assert_eq!(
                        search(&c, &qs, &again, &no).unwrap(),
                        hits,
                        "{codec} {metric}: {threads} threads"
                    );
                }
            }
        }
    }
}

/// `fast_scan_candidates` (pq/opq with 4-bit codes): at least a chunk's rows gives the
/// exact search's hits, bit for bit; fewer returns `k` hits per query whose scores are
/// those of the exact search over every row; the CLI takes the flag alike.
#[test]
fn fast_scan_candidates_is_exact_with_a_whole_chunk_and_scores_exactly_with_fewer() {
    let dir = tempfile::tempdir().unwrap();
    let qs = queries(20);
    let k = 10;
    for codec in ["pq:m=4,nbits=4", "opq:m=11,nbits=4,opq_iters=2"] {
        let path = container(dir.path(), codec, 128, None);
        let c = Container::open(&path).unwrap();
        for metric in [Metric::Ip, Metric::Cos, Metric::L2] {
            let opts = |k: usize, fast_scan_candidates: usize| SearchOptions {
                k,
                metric,
                threads: 2,
                fast_scan_candidates,
                ..SearchOptions::default()
            };
            let cancel = AtomicBool::new(false);
            let exact = search(&c, &qs, &opts(k, 0), &cancel).unwrap();
            assert_eq!(exact.scorer, "fastscan", "{codec}");
            let whole = search(&c, &qs, &opts(k, 128), &cancel).unwrap();
            assert_eq!(whole, exact, "{codec} {metric}: R = chunk rows");
            let every = search(&c, &qs, &opts(ROWS, 0), &cancel).unwrap();
            let few = search(&c, &qs, &opts(k, 3), &cancel).unwrap();
            for i in 0..qs.len() / DIMS {
                let (ids, scores) = few.query(i);
                assert_eq!(ids.len(), k, "{codec} {metric} query {i}");
                let (all_ids, all_scores) = every.query(i);
                for (id, s) in ids.iter().zip(scores) {
                    let at = all_ids.iter().position(|x| x == id).unwrap();
                    assert_eq!(
                        s.to_bits(),
                        all_scores[at].to_bits(),
                        "{codec} {metric} {id}"
                    );
                }
                // Never better than the exact top k, rank by rank.
                let (_, best) = exact.query(i);
                for (s, b) in scores.iter().zip(best) {
                    let worse_or_equal = match metric {
                        Metric::L2 => s >= b,
                        _ => s <= b,
                    };
                    assert!(worse_or_equal, "{codec} {metric} query {i}: {s} vs {b}");
                }
            }
        }
        let q = dir.path().join("q.npy");
        write_npy(&q, (qs.len() / DIMS) as u64, DIMS as u64, &qs);
        let (p, q) = (path.to_str().unwrap(), q.to_str().unwrap());
        let plain = run(&["search", p, "--queries", q, "--metric", "l2"]);
        let flag = ["--fast-scan-candidates", "128"];
        let whole = run(&[
            "search",
            p,
            "--queries",
            q,
            "--metric",
            "l2",
            flag[0],
            flag[1],
        ]);
        assert!(plain.status.success() && whole.status.success(), "{codec}");
        assert_eq!(plain.stdout, whole.stdout, "{codec}: CLI, R = chunk rows");
        let few = run(&["search", p, "--queries", q, "--metric", "l2", flag[0], "3"]);
        assert!(few.status.success(), "{codec}");
    }
}
