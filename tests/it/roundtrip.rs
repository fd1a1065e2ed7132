//! The round-trip harness: every codec × zstd on/off × threads 1/2 × chunk sizes, through
//! every way in and out of a container, against one expected output.
//!
//! Per codec, the expected output is the rows [`Container::open`] decodes from the file
//! `compress()` writes with one thread, one chunk and no zstd; the reference bytes of each
//! (zstd, chunk size) are those of `compress()` with one thread. Then, for every
//! combination:
//!
//! - `compress()` with 2 threads writes the reference bytes;
//! - `stream::Compressor` (fed the reference's metadata) writes the reference bytes;
//! - `stream::Decompressor` decodes them to the expected rows;
//! - `Container::get_many` returns the expected rows, in any order, repeated;
//! - `verify` finds every chunk and row sound;
//! - and the decoded rows are the expected ones whatever the zstd stage, threads and chunk
//!   size (codecs encode rows independently; trained codecs train on a seeded sample).
//!
//! Combinations the library cannot run yet are listed, with why, in [`not_yet`]: they are
//! run only to check that they still fail as expected, so that the day they work the
//! harness says to enable them.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use vectro::output::Durability;
use vectro::stream::{Compressor, Decompressor};
use vectro::{CodecId, CompressOptions, Container, NoProgress};

use crate::helpers::{assert_bits_eq, make_npy, read_npy_f32};

/// `stream::Decompressor` reads `--zstd` containers: it shares the container parser
/// (issue 19, item 3).
const STREAM_DECOMPRESSOR_READS_ZSTD: bool = true;

/// `stream::Compressor` has a zstd stage: it shares `compress()`'s encoder (issue 19,
/// item 3), and [`stream_compressor`] sets it.
const STREAM_COMPRESSOR_HAS_ZSTD: bool = true;

/// `stream::Compressor` trains pq, opq and binary-itq. Today it refuses them ("must be
/// trained"): a stream cannot be sampled before it is encoded.
const STREAM_COMPRESSOR_TRAINS: bool = false;

/// Every codec, with parameters small enough for the test data.
const CODECS: &[&str] = &[
    "int8",
    "int8:rotate=1",
    "int4",
    "int4:rotate=1",
    "binary",
    "binary:rotate=1",
    "sq:bits=2",
    "sq:bits=5",
    "sq:bits=1,centre=1",
    "sq:bits=1,centre=1,pad=0",
    "f16",
    "bf16",
    "pq:m=8,nbits=4",
    "opq:m=8,nbits=4",
    "binary-itq",
    "rq:m=4",
    "rq:m=4,icm=2",
];

/// `None`: the default (one chunk for this data).
const CHUNK_ROWS: [Option<u32>; 3] = [Some(7), Some(64), None];
const ZSTD: [Option<i32>; 2] = [None, Some(3)];
const THREADS: [usize; 2] = [1, 2];

const ROWS: u64 = 300;
const DIMS: u64 = 32;

fn trained(codec: &str) -> bool {
    ["pq", "opq", "binary-itq", "rq"].contains(&codec.split(':').next().unwrap())
        || codec.contains("centre=1")
}

/// The API paths of one combination.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Api {
    StreamCompressor,
    StreamDecompressor,
}

/// Why a combination of `api`, `codec` and `zstd` cannot run yet, if it cannot: the one
/// place the harness skips anything.
fn not_yet(api: Api, codec: &str, zstd: Option<i32>) -> Option<&'static str> {
    match api {
        Api::StreamDecompressor if zstd.is_some() && !STREAM_DECOMPRESSOR_READS_ZSTD => {
            Some("stream::Decompressor does not read the zstd payload stage")
        }
        Api::StreamCompressor if trained(codec) && !STREAM_COMPRESSOR_TRAINS => {
            Some("stream::Compressor does not train")
        }
        Api::StreamCompressor if zstd.is_some() && !STREAM_COMPRESSOR_HAS_ZSTD => {
            Some("stream::Compressor has no zstd stage")
        }
        _ => None,
    }
}

/// A `stream::Compressor` set up as `compress()` was for `reference`: codec, chunk rows,
/// threads, metadata (source name, size, mtime, tool), and zstd.
fn stream_compressor(
    reference: &Container,
    codec: &str,
    threads: usize,
    zstd: Option<i32>,
) -> Compressor<'static> {
    let mut c = Compressor::new()
        .codec(codec)
        .threads(threads)
        .chunk_rows(reference.header().chunk_rows);
    for (k, v) in reference.metadata() {
        c = c.metadata(k, v);
    }
    if let Some(level) = zstd {
        c = c.zstd(level);
    }
    c
}

fn compress(
    npy: &Path,
    out: &Path,
    codec: &str,
    chunk: Option<u32>,
    zstd: Option<i32>,
    threads: usize,
) {
    let opts = CompressOptions {
        codec: Some(codec.parse().unwrap()),
        threads,
        chunk_rows: chunk,
        zstd,
        durability: Durability::None,
        ..CompressOptions::default()
    };
    vectro::compress(npy, out, &opts, &NoProgress, &AtomicBool::new(false)).unwrap_or_else(|e| {
        panic!("compress {codec} chunk {chunk:?} zstd {zstd:?} threads {threads}: {e}")
    });
}

/// All rows of `path`, decoded by `Container::open`.
fn open_all(path: &Path) -> Vec<f32> {
    let c = Container::open(path).unwrap();
    let mut out = vec![0f32; c.rows() as usize * c.dims()];
    c.get_range(0..c.rows(), &mut out).unwrap();
    out
}

#[test]
fn every_codec_round_trips_through_every_api() {
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", ROWS, DIMS, 19);
    let (_, _, input) = read_npy_f32(&npy);
    let mut ran = 0;
    let mut skipped: Vec<&str> = Vec::new();
    let mut ids = BTreeSet::new();
    for codec in CODECS {
        let expected_path = dir.path().join("expected.vectro");
        let _ = std::fs::remove_file(&expected_path);
        compress(&npy, &expected_path, codec, Some(ROWS as u32), None, 1);
        let expected = open_all(&expected_path);
        ids.insert(
            Container::open(&expected_path)
                .unwrap()
                .header()
                .codec
                .id
                .code(),
        );
        assert_eq!(expected.len(), input.len());
        for zstd in ZSTD {
            for chunk in CHUNK_ROWS {
                let what = format!("{codec}, zstd {zstd:?}, chunk rows {chunk:?}");
                let reference_path = dir.path().join("reference.vectro");
                let _ = std::fs::remove_file(&reference_path);
                compress(&npy, &reference_path, codec, chunk, zstd, 1);
                let reference_bytes = std::fs::read(&reference_path).unwrap();
                let reference = Container::open(&reference_path).unwrap();
                // Header flag bit 0: the zstd payload stage.
                assert_eq!(
                    reference_bytes[14] & 1 == 1,
                    zstd.is_some(),
                    "{what}: flags"
                );
                // One expected output, whatever the payload stage and chunking.
                assert_bits_eq(&open_all(&reference_path), &expected, &what);
                // verify
                let report = vectro::format::verify(&reference_path).unwrap();
                assert!(report.ok, "{what}: verify: {:?}", report.problems);
                assert_eq!(
                    (report.chunks_ok, report.rows_ok),
                    (reference.chunks().len() as u64, ROWS),
                    "{what}: verify"
                );
                // get_many: every row, in a scrambled order, some twice.
                let ids: Vec<u64> = (0..ROWS * 2).map(|i| (i * 97 + 13) % ROWS).collect();
                let mut got = vec![0f32; ids.len() * DIMS as usize];
                reference.get_many(&ids, &mut got).unwrap();
                let want: Vec<f32> = ids
                    .iter()
                    .flat_map(|&i| {
                        expected[(i * DIMS) as usize..((i + 1) * DIMS) as usize]
                            .iter()
                            .copied()
                    })
                    .collect();
                assert_bits_eq(&got, &want, &format!("{what}: get_many"));
                for threads in THREADS {
                    let what = format!("{what}, {threads} threads");
                    // compress(), any thread count: the same bytes.
                    let path = dir.path().join("threads.vectro");
                    let _ = std::fs::remove_file(&path);
                    compress(&npy, &path, codec, chunk, zstd, threads);
                    assert!(
                        std::fs::read(&path).unwrap() == reference_bytes,
                        "{what}: compress() bytes differ"
                    );
                    ran += 1;
                    // stream::Compressor, from the same .npy bytes.
                    let npy_bytes = std::fs::read(&npy).unwrap();
                    let mut streamed = Vec::new();
                    let result = stream_compressor(&reference, codec, threads, zstd)
                        .compress_npy(npy_bytes.as_slice(), &mut streamed);
                    match not_yet(Api::StreamCompressor, codec, zstd) {
                        None => {
                            result.unwrap_or_else(|e| panic!("{what}: stream::Compressor: {e}"));
                            assert!(
                                streamed == reference_bytes,
                                "{what}: stream::Compressor bytes differ"
                            );
                            ran += 1;
                        }
                        Some(why) => {
                            // Fails today, or writes something else (no zstd stage).
                            let works = result.is_ok() && streamed == reference_bytes;
                            assert!(!works, "{what}: now works, enable it in not_yet ({why})");
                            skipped.push(why);
                        }
                    }
                    // stream::Decompressor
                    let mut rows = Vec::new();
                    let result = Decompressor::new().threads(threads).for_each_chunk(
                        reference_bytes.as_slice(),
                        |_, first, chunk| {
                            assert_eq!(first as usize * DIMS as usize, rows.len());
                            rows.extend_from_slice(chunk);
                            Ok(())
                        },
                    );
                    match not_yet(Api::StreamDecompressor, codec, zstd) {
                        None => {
                            let s = result
                                .unwrap_or_else(|e| panic!("{what}: stream::Decompressor: {e}"));
                            assert_eq!(
                                (s.rows, s.chunks),
                                (ROWS, reference.chunks().len() as u64),
                                "{what}"
                            );
                            assert_bits_eq(
                                &rows,
                                &expected,
                                &format!("{what}: stream::Decompressor"),
                            );
                            ran += 1;
                        }
                        Some(why) => {
                            let e = result.expect_err("now works: enable it in not_yet");
                            assert!(
                                e.to_string().contains("the file header implies"),
                                "{what}: {e}"
                            );
                            skipped.push(why);
                        }
                    }
                }
            }
        }
    }
    let combos = CODECS.len() * ZSTD.len() * CHUNK_ROWS.len() * THREADS.len();
    assert_eq!(
        ran + skipped.len(),
        combos * 3,
        "every combination ran or was listed"
    );
    let mut reasons: Vec<&str> = skipped.clone();
    reasons.sort_unstable();
    reasons.dedup();
    eprintln!("{ran} round trips checked; not yet possible:");
    for r in reasons {
        let n = skipped.iter().filter(|s| **s == r).count();
        eprintln!("  {n:3} × {r}");
    }
    let known: BTreeSet<u16> = (0..=u16::MAX)
        .filter_map(CodecId::from_code)
        .map(CodecId::code)
        .collect();
    assert_eq!(ids, known, "codec ids the harness covers");
}
