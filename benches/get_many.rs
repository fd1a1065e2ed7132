//! `get_many` of 100 random rows from a large int8 container, warm, against the baseline
//! of reading the same rows from the original `.npy` through a memory map.
//!
//! ```sh
//! cargo bench --bench get_many                      # 10M rows x 64 dims (2.56 GB .npy)
//! VECTRO_BENCH_ROWS=1000000 VECTRO_BENCH_DIMS=384 cargo bench --bench get_many
//! ```
//!
//! The data is generated once into `target/bench-data` (or `$VECTRO_BENCH_DIR`) and reused.
//! "Warm" means: every chunk's checksum already checked, both files in the page cache and
//! both mappings pre-faulted, so the numbers are the steady state of a query server.

use std::fs::File;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use memmap2::Mmap;
use vectro::output::Durability;
use vectro::{CompressOptions, Container, GenerateOptions, NoProgress};

const FETCH: usize = 100;
const ID_SETS: usize = 1024;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Generates and compresses the data set once; returns the `.npy` and container paths.
fn data(rows: u64, dims: u64) -> (PathBuf, PathBuf) {
    let dir = std::env::var_os("VECTRO_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data"));
    std::fs::create_dir_all(&dir).unwrap();
    let npy = dir.join(format!("bench_{rows}x{dims}.npy"));
    let vec = dir.join(format!("bench_{rows}x{dims}.vectro"));
    let stop = AtomicBool::new(false);
    if !npy.exists() {
        eprintln!("generating {}", npy.display());
        let opts = GenerateOptions {
            rows,
            dims,
            clusters: 100,
            seed: 42,
            threads: 0,
        };
        vectro::generate::generate(&npy, &opts, false, &NoProgress, &stop).unwrap();
    }
    if !vec.exists() {
        eprintln!("compressing {}", vec.display());
        let opts = CompressOptions {
            durability: Durability::None,
            ..Default::default()
        };
        vectro::compress(&npy, &vec, &opts, &NoProgress, &stop).unwrap();
    }
    (npy, vec)
}

/// Touches one byte a page, so that later reads neither hit the disk nor page-fault.
fn prefault(bytes: &[u8]) -> u64 {
    bytes.iter().step_by(4096).map(|&b| b as u64).sum()
}

fn bench(c: &mut Criterion) {
    let rows = env_u64("VECTRO_BENCH_ROWS", 10_000_000);
    let dims = env_u64("VECTRO_BENCH_DIMS", 64);
    let (npy_path, vec_path) = data(rows, dims);
    let container = Container::open(&vec_path).unwrap();
    for i in 0..container.chunks().len() {
        container.chunk_payload(i).unwrap();
    }
    // SAFETY: read-only map of a file nothing else writes during the benchmark.
    let npy = unsafe { Mmap::map(&File::open(&npy_path).unwrap()) }.unwrap();
    let h = vectro::npy::parse_header(&npy_path, &npy, npy.len() as u64).unwrap();
    black_box(prefault(&npy) + prefault(container.bytes()));

    let d = dims as usize;
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let id_sets: Vec<Vec<u64>> = (0..ID_SETS)
        .map(|_| {
            (0..FETCH)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    s % rows
                })
                .collect()
        })
        .collect();
    let mut out = vec![0f32; FETCH * d];

    let mut g = c.benchmark_group(format!("get_many_{FETCH}_of_{rows}x{dims}"));
    g.throughput(Throughput::Elements(FETCH as u64));
    let mut k = 0;
    g.bench_function("vectro_int8", |b| {
        b.iter(|| {
            k = (k + 1) % ID_SETS;
            container
                .get_many(black_box(&id_sets[k]), &mut out)
                .unwrap();
        })
    });
    let data = &npy[h.data_offset as usize..];
    let row_bytes = d * 4;
    g.bench_function("npy_mmap_baseline", |b| {
        b.iter(|| {
            k = (k + 1) % ID_SETS;
            for (&id, o) in black_box(&id_sets[k]).iter().zip(out.chunks_exact_mut(d)) {
                let src = &data[id as usize * row_bytes..(id as usize + 1) * row_bytes];
                for (x, b) in o.iter_mut().zip(src.chunks_exact(4)) {
                    *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
        })
    });
    g.finish();
    interleaved(&container, data, &id_sets, d);
}

/// On a shared, loaded machine criterion's two runs see different contention. This
/// alternates the two reads call by call and prints the median of each, so that both
/// sides of the ratio saw the same load.
fn interleaved(c: &Container, data: &[u8], id_sets: &[Vec<u64>], d: usize) {
    let mut out = vec![0f32; FETCH * d];
    let (mut tv, mut tn) = (Vec::new(), Vec::new());
    for i in 0..5000 {
        let ids = &id_sets[(2 * i) % ID_SETS];
        let t = Instant::now();
        c.get_many(black_box(ids), &mut out).unwrap();
        tv.push(t.elapsed().as_nanos() as u64);
        let ids = &id_sets[(2 * i + 1) % ID_SETS];
        let t = Instant::now();
        for (&id, o) in black_box(ids).iter().zip(out.chunks_exact_mut(d)) {
            let src = &data[id as usize * d * 4..(id as usize + 1) * d * 4];
            for (x, b) in o.iter_mut().zip(src.chunks_exact(4)) {
                *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        tn.push(t.elapsed().as_nanos() as u64);
        black_box(&out);
    }
    tv.sort_unstable();
    tn.sort_unstable();
    let (v, n) = (tv[tv.len() / 2], tn[tn.len() / 2]);
    println!(
        "interleaved medians of {FETCH} rows: vectro int8 {:.1} µs, npy mmap {:.1} µs, ratio {:.2}",
        v as f64 / 1e3,
        n as f64 / 1e3,
        v as f64 / n as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
