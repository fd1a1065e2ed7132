//! `vectro search` kernels and whole searches, per codec.
//!
//! ```sh
//! cargo bench --bench search                 # all
//! cargo bench --bench search -- kernels      # the kernels at each SIMD level this CPU has
//! cargo bench --bench search -- scan         # whole searches over an in-memory container
//! ```
//!
//! Kernels run over one chunk's worth of 384-d rows (2,730, the default chunk): the
//! Hamming distance (XOR + popcount), the sign-bit table sums (a float query against
//! binary codes), int8 dot products, int4 unpacking, the pq lookup sums and the pq 4-bit
//! fast-scan (and its repacking of a chunk into blocks of 32 rows), each at every SIMD
//! level the CPU runs. The scans search 16 queries over 20,000 generated rows per
//! codec on one thread, so the codecs compare with each other and with decoding (f16).

use std::hint::black_box;
use std::sync::atomic::AtomicBool;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vectro::search::{Metric, SearchOptions, search};
use vectro::simd::{Level, adc, fastscan, hamming, idot};

const DIMS: usize = 384;
const ROWS: usize = 2730;

/// A small deterministic generator (no dependency on the machine).
fn lcg(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s >> 33
    }
}

fn kernels(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernels");
    g.throughput(Throughput::Elements(ROWS as u64));
    let mut r = lcg(7);
    let rb = DIMS / 8;
    let bits: Vec<u8> = (0..ROWS * rb).map(|_| r() as u8).collect();
    let qbits: Vec<u8> = (0..rb).map(|_| r() as u8).collect();
    let mut dist = vec![0u32; ROWS];
    for level in Level::available() {
        g.bench_function(format!("hamming/{}", level.name()), |b| {
            b.iter(|| hamming::hamming_rows_at(level, &qbits, black_box(&bits), rb, &mut dist))
        });
    }
    // The blocked scan: 4 queries (one per load of a block), a bound no row reaches, so
    // the time is the distances and the compare (each row of an iteration against 4
    // queries, where `hamming` is against 1).
    struct Nothing;
    impl hamming::DistSink for Nothing {
        fn bound(&mut self, _: usize, _: usize) -> u16 {
            0
        }
        fn hits(&mut self, _: usize, _: usize, _: u32, _: &[u16; hamming::SCAN_ROWS]) {}
    }
    let mut blocks = vec![0u8; ROWS.div_ceil(hamming::SCAN_ROWS) * rb * hamming::SCAN_BLOCK_BYTES];
    hamming::pack_nibble_blocks(&bits, rb, &mut blocks);
    let nq = hamming::SCAN_QUERIES;
    let mut nibbles = vec![0u8; nq * rb * hamming::SCAN_TABLE_BYTES];
    for t in nibbles.chunks_exact_mut(rb * hamming::SCAN_TABLE_BYTES) {
        hamming::nibble_tables(&qbits, t);
    }
    for level in Level::available() {
        g.bench_function(format!("hamming_blocked_4q/{}", level.name()), |b| {
            b.iter(|| {
                hamming::scan_blocks_at(level, &nibbles, rb, black_box(&blocks), ROWS, &mut Nothing)
            })
        });
    }
    let q: Vec<f32> = (0..DIMS)
        .map(|_| r() as f32 / (1u64 << 31) as f32 - 0.5)
        .collect();
    let mut tables = vec![0f32; rb * hamming::TABLE];
    let mut sums = vec![0f32; ROWS];
    g.bench_function("sign_bit_tables/scalar", |b| {
        b.iter(|| {
            hamming::byte_tables(&q, &mut tables);
            hamming::set_sums(&tables, black_box(&bits), rb, &mut sums)
        })
    });
    let codes: Vec<i8> = (0..ROWS * DIMS).map(|_| (r() % 255) as i8).collect();
    let codes: Vec<i8> = codes.iter().map(|&v| v.max(-127)).collect();
    let qc: Vec<i8> = (0..DIMS).map(|_| ((r() % 255) as i8).max(-127)).collect();
    let mut dots = vec![0i32; ROWS];
    for level in Level::available() {
        g.bench_function(format!("int8_dot/{}", level.name()), |b| {
            b.iter(|| idot::dot_rows_at(level, &qc, black_box(&codes), &mut dots))
        });
    }
    let packed: Vec<u8> = (0..ROWS * DIMS / 2).map(|_| r() as u8).collect();
    let mut unpacked = vec![0i8; DIMS];
    for level in Level::available() {
        g.bench_function(format!("int4_unpack/{}", level.name()), |b| {
            b.iter(|| {
                for row in black_box(&packed).chunks_exact(DIMS / 2) {
                    idot::unpack_i4_at(level, row, &mut unpacked);
                }
            })
        });
    }
    // pq m=48, nbits=8: 16 queries' lookup sums per row.
    let m = 48;
    let table: Vec<adc::Lanes> = (0..m * 256)
        .map(|_| adc::Lanes(std::array::from_fn(|_| r() as f32)))
        .collect();
    let pq: Vec<u8> = (0..ROWS * m).map(|_| r() as u8).collect();
    let mut out = vec![adc::Lanes::default(); ROWS];
    for level in Level::available() {
        g.bench_function(format!("pq8_lookup_16q/{}", level.name()), |b| {
            b.iter(|| {
                out.fill(adc::Lanes::default());
                adc::block_sums_at(level, &table, black_box(&pq), m, 8, 0..m, &mut out)
            })
        });
    }
    // pq m=96, nbits=4 fast-scan: the repacking into blocks of 32 rows (once per chunk),
    // then 16 queries' 8-bit table sums (as the search runs them per query block).
    let pairs = 48;
    let pq4: Vec<u8> = (0..ROWS * pairs).map(|_| r() as u8).collect();
    let nb = ROWS.div_ceil(fastscan::BLOCK_ROWS);
    let mut blocks = vec![0u8; nb * pairs * 32];
    g.bench_function("pq4_repack", |b| {
        b.iter(|| fastscan::pack_blocks(black_box(&pq4), pairs, &mut blocks))
    });
    let luts: Vec<u8> = (0..16 * pairs * 32).map(|_| (r() % 128) as u8).collect();
    let mut q16 = vec![0u16; 16 * nb * fastscan::BLOCK_ROWS];
    for level in Level::available() {
        g.bench_function(format!("pq4_fastscan_16q/{}", level.name()), |b| {
            b.iter(|| fastscan::block_scores_at(level, &luts, pairs, black_box(&blocks), &mut q16))
        });
    }
    // The threshold scan with each query's threshold at its 99th percentile or so (a
    // search's floor), counting the rows reported.
    let mut sorted = q16.clone();
    let per = nb * fastscan::BLOCK_ROWS;
    let thresholds: Vec<u16> = sorted
        .chunks_exact_mut(per)
        .map(|s| {
            s.sort_unstable();
            s[per - per / 100 - 1]
        })
        .collect();
    struct Count<'a>(&'a [u16], u64);
    impl fastscan::BlockSink for Count<'_> {
        fn threshold(&mut self, q: usize, _b: usize) -> u16 {
            self.0[q]
        }
        fn hits(&mut self, _q: usize, _b: usize, mask: u32, _s: &[u16; fastscan::BLOCK_ROWS]) {
            self.1 += u64::from(mask.count_ones());
        }
    }
    for level in Level::available() {
        g.bench_function(
            format!("pq4_fastscan_threshold_16q/{}", level.name()),
            |b| {
                b.iter(|| {
                    let mut sink = Count(&thresholds, 0);
                    fastscan::block_scan_at(level, &luts, pairs, black_box(&blocks), &mut sink);
                    sink.1
                })
            },
        );
    }
    g.finish();
}

fn scan(c: &mut Criterion) {
    let rows = 20_000usize;
    let mut r = lcg(11);
    let centres: Vec<f32> = (0..64 * DIMS)
        .map(|_| r() as f32 / (1u64 << 31) as f32 - 0.5)
        .collect();
    let data: Vec<f32> = (0..rows * DIMS)
        .map(|i| {
            centres[(i / DIMS % 64) * DIMS + i % DIMS]
                + 0.3 * (r() as f32 / (1u64 << 31) as f32 - 0.5)
        })
        .collect();
    let queries = &data[..16 * DIMS];
    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    g.throughput(Throughput::Elements((rows * 16) as u64));
    for (codec, hamming) in [
        ("binary:rotate=1", false),
        ("binary:rotate=1", true),
        ("int8", false),
        ("int4", false),
        ("int4:rotate=1", false),
        ("pq:m=48", false),
        ("pq:m=96,nbits=4", false),
        ("f16", false),
        // Trained without refinement rounds: the scan's speed does not depend on them.
        ("rq:m=16,refine=0", false),
    ] {
        let mut bytes = Vec::new();
        vectro::stream::Compressor::new()
            .codec(codec)
            .compress_f32(&data, DIMS, &mut bytes)
            .unwrap();
        let cont = vectro::Container::from_bytes(codec, &bytes).unwrap();
        let opts = SearchOptions {
            k: 10,
            metric: Metric::Cos,
            threads: 1,
            hamming,
            ..SearchOptions::default()
        };
        let name = format!("{codec}{}", if hamming { "/hamming" } else { "" });
        let stop = AtomicBool::new(false);
        g.bench_function(name, |b| {
            b.iter(|| search(&cont, queries, &opts, &stop).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, kernels, scan);
criterion_main!(benches);
