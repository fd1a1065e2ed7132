//! JSONL export throughput: is it bound by float formatting or by decoding?
//!
//! ```sh
//! cargo bench --bench export_jsonl
//! ```
//!
//! On one thread, compares decoding 20,000 × 384 int8 rows alone with decoding and
//! formatting them as JSON Lines (ryu), then times the full parallel `export_jsonl`.
//! Throughput is in bytes of float32 decoded, so the three lines compare directly.

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vectro::stream::{Compressor, JsonlOptions, export_jsonl, push_jsonl_row};
use vectro::{Container, NoProgress};

const ROWS: usize = 20_000;
const DIMS: usize = 384;

fn bench(c: &mut Criterion) {
    let mut s = 1u64;
    let data: Vec<f32> = (0..ROWS * DIMS)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
        })
        .collect();
    let mut bytes = Vec::new();
    Compressor::new()
        .compress_f32(&data, DIMS, &mut bytes)
        .unwrap();
    let container = Container::from_bytes("bench", &bytes).unwrap();
    let mut rows = vec![0f32; ROWS * DIMS];
    let mut text = Vec::with_capacity(ROWS * DIMS * 12);

    let mut g = c.benchmark_group("export_20000x384");
    g.throughput(Throughput::Bytes((ROWS * DIMS * 4) as u64));
    g.sample_size(10);
    g.bench_function("decode_only_1_thread", |b| {
        b.iter(|| container.get_range(0..ROWS as u64, &mut rows).unwrap())
    });
    g.bench_function("decode_and_format_1_thread", |b| {
        b.iter(|| {
            container.get_range(0..ROWS as u64, &mut rows).unwrap();
            text.clear();
            for (r, row) in rows.chunks_exact(DIMS).enumerate() {
                push_jsonl_row(&mut text, r as u64, row).unwrap();
            }
            black_box(&text);
        })
    });
    g.bench_function("export_jsonl_2_threads", |b| {
        b.iter(|| {
            let opts = JsonlOptions {
                id_offset: 0,
                threads: 2,
            };
            export_jsonl(
                &container,
                std::io::sink(),
                &opts,
                &NoProgress,
                &AtomicBool::new(false),
            )
            .unwrap()
        })
    });
    g.finish();
    let mut one = Vec::new();
    for (r, row) in rows.chunks_exact(DIMS).enumerate() {
        push_jsonl_row(&mut one, r as u64, row).unwrap();
    }
    eprintln!(
        "JSONL is {:.2} bytes per float32 byte ({} MB for {} MB of float32)",
        one.len() as f64 / (ROWS * DIMS * 4) as f64,
        one.len() / 1_000_000,
        ROWS * DIMS * 4 / 1_000_000
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
