//! Encode and decode throughput of every codec, in float32 input bytes per second.
//!
//! `cargo bench --bench codecs`. A new codec is one line in `CODECS` (or `TRAINED`, for
//! codecs with a codebook: trained once on the bench rows, untimed). The `int8_kernels`
//! and `int4_kernels` groups also time each SIMD level of those kernels on this CPU against
//! the scalar reference (`int4_kernels` includes the rotation of `rotate=1`).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use vectro::codec;
use vectro::pipeline::NoProgress;
use vectro::simd::{Level, int4 as k4, int8 as k8, rotate};

/// Codec specs as `--codec` takes them.
const CODECS: &[&str] = &[
    "int8",
    "int4",
    "int4:rotate=1",
    "binary",
    "binary:rotate=1",
    "f16",
    "bf16",
];
const DIMS: usize = 384;
/// Trained codecs: their codebooks are trained (untimed) on the bench rows, with few Lloyd
/// iterations: encode and decode cost the same whatever the centroids' quality.
/// The rows are not unit length, so `aniso=auto` is anisotropic encoding (2); `aniso=1` is
/// the plain nearest-centroid encoder, for comparison.
const TRAINED: &[&str] = &[
    "pq:m=48,iters=4",
    "pq:m=48,iters=4,aniso=1",
    "pq:m=96,iters=4",
    "pq:m=96,iters=4,aniso=1",
    "pq:m=48,nbits=4,iters=4",
    "opq:m=48,iters=4,opq_iters=2",
];
/// One default chunk: about 4 MiB of input, the unit a worker encodes.
const ROWS: usize = (4 << 20) / (DIMS * 4);

/// Embedding-like rows: a few large dimensions over small noise, varied norms.
fn data(rows: usize, dims: usize) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..rows * dims)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            let big = if (i % dims).is_multiple_of(97) {
                8.0
            } else {
                1.0
            };
            u * big * (1.0 + (i / dims % 7) as f32 * 0.1)
        })
        .collect()
}

fn codecs(c: &mut Criterion) {
    let input = data(ROWS, DIMS);
    let bytes = (input.len() * 4) as u64;
    let mut g = c.benchmark_group("codecs");
    g.throughput(Throughput::Bytes(bytes));
    let trained = TRAINED.iter().map(|spec| {
        let (name, params) = spec.split_once(':').expect("name:params");
        let p = codec::pq::PqParams::parse(name, params, DIMS).expect("valid pq spec");
        let id = match name {
            "opq" => codec::CodecId::Opq,
            _ => codec::CodecId::Pq,
        };
        let book = codec::pq::train(id, &p, &input, DIMS, &NoProgress, &Default::default())
            .expect("trains");
        (
            *spec,
            Box::new(codec::Pq::new(book)) as Box<dyn codec::Codec>,
        )
    });
    let plain = CODECS
        .iter()
        .map(|spec| (*spec, codec::parse(spec, DIMS).expect("known codec")));
    for (spec, codec) in plain.chain(trained) {
        let mut payload = vec![0u8; codec.encoded_len(ROWS)];
        g.bench_function(BenchmarkId::new("encode", spec), |b| {
            b.iter(|| codec.encode(black_box(&input), &mut payload).unwrap())
        });
        let mut out = vec![0f32; input.len()];
        g.bench_function(BenchmarkId::new("decode", spec), |b| {
            b.iter(|| codec.decode(black_box(&payload), ROWS, &mut out))
        });
    }
    g.finish();
}

fn int8_kernels(c: &mut Criterion) {
    let input = data(ROWS, DIMS);
    let mut g = c.benchmark_group("int8_kernels");
    g.throughput(Throughput::Bytes((input.len() * 4) as u64));
    let mut codes = vec![0i8; input.len()];
    let scales: Vec<f32> = input
        .chunks_exact(DIMS)
        .map(vectro::codec::int8::row_scale)
        .collect();
    for level in Level::available() {
        g.bench_function(BenchmarkId::new("max_abs_bits", level.name()), |b| {
            b.iter(|| {
                input
                    .chunks_exact(DIMS)
                    .map(|r| k8::max_abs_bits_at(level, black_box(r)))
                    .fold(0u32, u32::max)
            })
        });
        g.bench_function(BenchmarkId::new("quantize", level.name()), |b| {
            b.iter(|| {
                for ((r, o), &s) in input
                    .chunks_exact(DIMS)
                    .zip(codes.chunks_exact_mut(DIMS))
                    .zip(&scales)
                {
                    k8::quantize_at(level, black_box(r), s, o);
                }
            })
        });
        let mut out = vec![0f32; input.len()];
        g.bench_function(BenchmarkId::new("dequantize", level.name()), |b| {
            b.iter(|| {
                for ((q, o), &s) in codes
                    .chunks_exact(DIMS)
                    .zip(out.chunks_exact_mut(DIMS))
                    .zip(&scales)
                {
                    k8::dequantize_at(level, black_box(q), s, o);
                }
            })
        });
    }
    g.finish();
}

fn int4_kernels(c: &mut Criterion) {
    let input = data(ROWS, DIMS);
    let mut g = c.benchmark_group("int4_kernels");
    g.throughput(Throughput::Bytes((input.len() * 4) as u64));
    // The fit rule's nine candidate scales of each row, as the encoder derives them.
    let invs: Vec<[f32; 9]> = input
        .chunks_exact(DIMS)
        .map(|r| {
            let s0 = vectro::codec::int8::max_abs(r) / 7.0;
            vectro::codec::int4::FIT_FACTORS.map(|f| 1.0 / (s0 * f))
        })
        .collect();
    let rot = vectro::codec::Rotation::new(DIMS, 3, 1);
    let mut packed = vec![0u8; input.len() / 2];
    let mut codes = vec![0u8; DIMS / 2];
    let mut row = vec![0f32; DIMS];
    for level in Level::available() {
        // The fit search's ranking of all nine candidates: levels, then integer scores.
        g.bench_function(
            BenchmarkId::new("fit_levels_scores_x9", level.name()),
            |b| {
                let mut u = vec![0u8; DIMS];
                let mut out = [(0u64, 0u64); 9];
                let all = [0, 1, 2, 3, 4, 5, 6, 7, 8];
                b.iter(|| {
                    for (r, i) in input.chunks_exact(DIMS).zip(&invs) {
                        // 127 / max|v| = inv(f = 1) × 7 / 127 … as the encoder derives it.
                        let c = f32::from(vectro::codec::int4::FIT_U) / (7.0 / i[0]);
                        k4::fit_levels_at(level, black_box(r), c, &mut u);
                        k4::fit_scores_at(level, &u, &all, &mut out);
                    }
                })
            },
        );
        g.bench_function(BenchmarkId::new("fit_dots", level.name()), |b| {
            let mut out = [(0f64, 0f64)];
            b.iter(|| {
                for (r, i) in input.chunks_exact(DIMS).zip(&invs) {
                    k4::fit_dots_at(level, black_box(r), &i[4..5], &mut out);
                }
            })
        });
        g.bench_function(BenchmarkId::new("quantize_pack", level.name()), |b| {
            b.iter(|| {
                for ((r, o), i) in input
                    .chunks_exact(DIMS)
                    .zip(packed.chunks_exact_mut(DIMS / 2))
                    .zip(&invs)
                {
                    k4::quantize_pack_at(level, black_box(r), 1.0 / i[0], o);
                }
            })
        });
        g.bench_function(BenchmarkId::new("quantize_pack_dots", level.name()), |b| {
            b.iter(|| {
                for ((r, o), i) in input
                    .chunks_exact(DIMS)
                    .zip(packed.chunks_exact_mut(DIMS / 2))
                    .zip(&invs)
                {
                    black_box(k4::quantize_pack_dots_at(
                        level,
                        black_box(r),
                        1.0 / i[4],
                        o,
                    ));
                }
            })
        });
        g.bench_function(BenchmarkId::new("gauss", level.name()), |b| {
            b.iter(|| {
                for r in input.chunks_exact(DIMS) {
                    black_box(k4::encode_row_gauss_at(level, black_box(r), &mut codes));
                }
            })
        });
        g.bench_function(BenchmarkId::new("rotate_forward", level.name()), |b| {
            b.iter(|| {
                for r in input.chunks_exact(DIMS) {
                    row.copy_from_slice(r);
                    rotate::forward_at(level, rot.signs(), rot.window(), black_box(&mut row));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, codecs, int8_kernels, int4_kernels);
criterion_main!(benches);
