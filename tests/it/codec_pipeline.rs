//! One round-trip harness for every codec × zstd stage × thread count × chunk size,
//! through the real compress and decompress pipeline.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::helpers::{read_npy_f32, write_npy};
use vectro::output::Durability;
use vectro::{CompressOptions, Container, NoProgress, codec, compress, decompress};

const CODECS: [&str; 18] = [
    "sq:bits=1",
    "sq:bits=1,centre=1",
    "sq:bits=1,centre=1,pad=0",
    "sq:bits=3,centre=1,pad=1",
    "sq:bits=2,centre=1,extra=60",
    "sq:bits=4,centre=1",
    "sq:bits=3",
    "sq:bits=4",
    "sq:bits=8",
    "int8",
    "int8:rotate=1",
    "int4",
    "int4:scale=max",
    "int4:rotate=1",
    "binary",
    "binary:rotate=1",
    "f16",
    "bf16",
];
const ROWS: usize = 50;
const DIMS: usize = 19;

/// Odd dims, a zero row, a constant row, a spike and spread values of mixed magnitudes.
fn data() -> Vec<f32> {
    let mut s = 0x9e37_79b9u64;
    let mut out = Vec::with_capacity(ROWS * DIMS);
    for r in 0..ROWS {
        for c in 0..DIMS {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            out.push(match r {
                0 => 0.0,
                1 => -2.5,
                2 => {
                    if c == 4 {
                        100.0
                    } else {
                        u * 1e-3
                    }
                }
                _ => u * 10f32.powi((r % 7) as i32 - 3),
            });
        }
    }
    out
}

fn write_input(path: &Path, x: &[f32]) {
    write_npy(path, ROWS as u64, DIMS as u64, x);
}

/// The codec's own round trip of the whole array as one block. A codec that takes
/// something from the data (`sq:...,centre=1`, its mean) is the one a compress run built.
fn in_memory(dir: &Path, input: &Path, name: &str, x: &[f32]) -> Vec<f32> {
    let c = codec::parse(name, DIMS).unwrap_or_else(|_| {
        let (file, _) = run(dir, input, name, None, 2, 64);
        let spec = Container::open(&file).unwrap().header().codec.clone();
        codec::from_spec(spec.id, &spec.params, DIMS).unwrap()
    });
    let mut p = vec![0u8; c.encoded_len(ROWS)];
    c.encode(x, &mut p).unwrap();
    let mut out = vec![0f32; x.len()];
    c.decode(&p, ROWS, &mut out);
    out
}

fn run(
    dir: &Path,
    input: &Path,
    name: &str,
    zstd: Option<i32>,
    threads: usize,
    chunk: u32,
) -> (PathBuf, Vec<f32>) {
    let tag = format!(
        "{}-{zstd:?}-{threads}-{chunk}",
        name.replace([':', ',', '='], "_")
    );
    let out = dir.join(format!("{tag}.vectro"));
    let opts = CompressOptions {
        codec: Some(name.parse().unwrap()),
        threads,
        chunk_rows: Some(chunk),
        durability: Durability::None,
        zstd,
        ..CompressOptions::default()
    };
    let stop = AtomicBool::new(false);
    compress(input, &out, &opts, &NoProgress, &stop).unwrap();
    let npy = dir.join(format!("{tag}.npy"));
    decompress(
        &out,
        &npy,
        threads,
        false,
        Durability::None,
        &NoProgress,
        &stop,
    )
    .unwrap();
    (out, read_npy_f32(&npy).2)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn every_codec_stage_thread_count_and_chunk_size_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npy");
    let x = data();
    write_input(&input, &x);
    // Shuffled ids with repeats, touching every chunk in random order.
    let ids: Vec<u64> = (0..120u64).map(|i| (i * 37 + 11) % ROWS as u64).collect();
    for name in CODECS {
        let want = bits(&in_memory(dir.path(), &input, name, &x));
        for zstd in [None, Some(3)] {
            for chunk in [1u32, 7, 64] {
                let mut files = Vec::new();
                for threads in [1usize, 3] {
                    let (file, got) = run(dir.path(), &input, name, zstd, threads, chunk);
                    assert_eq!(
                        bits(&got),
                        want,
                        "{name} zstd {zstd:?} threads {threads} chunk {chunk}"
                    );
                    files.push(std::fs::read(&file).unwrap());
                    let c = Container::open(&file).unwrap();
                    let mut many = vec![0f32; ids.len() * DIMS];
                    c.get_many(&ids, &mut many).unwrap();
                    for (k, &id) in ids.iter().enumerate() {
                        let row = &want[id as usize * DIMS..(id as usize + 1) * DIMS];
                        assert_eq!(
                            bits(&many[k * DIMS..(k + 1) * DIMS]),
                            row,
                            "{name} get_many row {id}"
                        );
                    }
                    let mut range = vec![0f32; 13 * DIMS];
                    c.get_range(5..18, &mut range).unwrap();
                    assert_eq!(bits(&range), &want[5 * DIMS..18 * DIMS], "{name} get_range");
                }
                assert!(
                    files.windows(2).all(|w| w[0] == w[1]),
                    "{name}: bytes depend on threads"
                );
            }
        }
    }
}

#[test]
fn zstd_chunk_corruption_is_reported_not_misdecoded() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npy");
    write_input(&input, &data());
    let (file, _) = run(dir.path(), &input, "int4", Some(3), 1, 10);
    let c = Container::open(&file).unwrap();
    let e = c.chunks()[2];
    drop(c);
    let mut b = std::fs::read(&file).unwrap();
    b[e.payload_range().start + 3] ^= 0x10;
    std::fs::write(&file, &b).unwrap();
    let c = Container::open(&file).unwrap();
    let mut row = vec![0f32; DIMS];
    let err = c.get(25, &mut row).unwrap_err().to_string();
    assert!(err.contains("chunk 2") && err.contains("crc32c"), "{err}");
    c.get(5, &mut row).expect("other chunks still decode");
}

#[test]
fn zstd_shrinks_low_entropy_data() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npy");
    write_input(&input, &vec![0.5f32; ROWS * DIMS]);
    let (plain, _) = run(dir.path(), &input, "f16", None, 1, 64);
    let (z, got) = run(dir.path(), &input, "f16", Some(3), 1, 64);
    let (p, zl) = (
        std::fs::metadata(plain).unwrap().len(),
        std::fs::metadata(z).unwrap().len(),
    );
    assert!(zl * 4 < p, "zstd {zl} vs plain {p}");
    assert!(got.iter().all(|&v| v == 0.5));
}

#[test]
fn a_truncated_zstd_file_reports_its_intact_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.npy");
    write_input(&input, &data());
    let (file, _) = run(dir.path(), &input, "binary:rotate=1", Some(1), 2, 8);
    let c = Container::open(&file).unwrap();
    // Cut inside chunk 4: chunks 0..4 (rows 0..32) survive.
    let cut = c.chunks()[4].offset + 20;
    drop(c);
    let b = std::fs::read(&file).unwrap();
    std::fs::write(&file, &b[..cut as usize]).unwrap();
    let err = Container::open(&file).unwrap_err().to_string();
    assert!(
        err.contains("4 complete chunks holding rows 0..32"),
        "{err}"
    );
}
