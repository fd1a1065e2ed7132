//! Property tests: every codec, over random shapes and values (zero rows, constant rows,
//! spikes, huge and tiny magnitudes, odd dims), round-trips within the error bound that
//! FORMAT.md documents for it, and decodes a single row exactly as the whole block.

use proptest::prelude::*;

use super::harness::round_trip;
use super::int4::GAUSS;
use super::{Rotation, binary, int8, parse};

/// Every `--codec` configuration with a distinct bound or layout.
const ALL: [&str; 18] = [
    "sq:bits=1",
    "sq:bits=2",
    "sq:bits=3",
    "sq:bits=4,seed=7,rounds=2",
    "sq:bits=8",
    "int8",
    "int8:rotate=1",
    "int4",
    "int4:grid=gauss",
    "int4:grid=uniform,rotate=1",
    "int4:scale=max",
    "int4:rotate=1",
    "int4:rotate=1,scale=max,seed=3,rounds=1",
    "binary",
    "binary:rotate=1",
    "f16",
    "bf16",
    "binary:rotate=1,seed=99",
];

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

fn sq_err(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum()
}

fn sq_norm(a: &[f32]) -> f64 {
    a.iter().map(|x| f64::from(*x).powi(2)).sum()
}

/// Checks one row's reconstruction against the codec's documented bound.
fn check_row(name: &str, v: &[f32], out: &[f32]) -> Result<(), String> {
    let d = v.len();
    let (base, params) = name.split_once(':').unwrap_or((name, ""));
    let rotated = params.contains("rotate=1") || base == "sq";
    // Rotation keeps L2 distances, so quantizer bounds hold in the rotated domain and carry
    // over to the original one in L2, up to the transform's float rounding.
    let seed = params
        .split(',')
        .find_map(|kv| kv.strip_prefix("seed="))
        .map_or(super::rotate::DEFAULT_SEED, |s| s.parse().unwrap());
    let rounds = params
        .split(',')
        .find_map(|kv| kv.strip_prefix("rounds="))
        .map_or(super::rotate::DEFAULT_ROUNDS, |s| s.parse().unwrap());
    let mut w = v.to_vec();
    if rotated {
        Rotation::new(d, rounds, seed).forward(&mut w);
    }
    let slack = 1e-5 * sq_norm(v) + d as f64 * 2f64.powi(-270);
    let err = sq_err(v, out);
    let gauss = base == "int4"
        && (params.contains("grid=gauss")
            || (rotated && !params.contains("grid=uniform") && !params.contains("scale=")));
    let ok = match base {
        "int4" if gauss => {
            // At most the error of the nearest levels at scale rms(w).
            let sigma = (sq_norm(&w) / d as f64).sqrt();
            let nearest: f64 = w
                .iter()
                .map(|&x| {
                    let u = f64::from(x.abs());
                    GAUSS
                        .iter()
                        .map(|&l| (u - f64::from(l) * sigma).powi(2))
                        .fold(f64::INFINITY, f64::min)
                })
                .sum();
            err <= nearest * (1.0 + 1e-5) + slack
        }
        "int8" | "int4" => {
            let levels = if base == "int8" { 127.0 } else { 7.0 };
            let scale = f64::from(max_abs(&w)) / levels;
            if !rotated && (base == "int8" || params.contains("scale=max")) {
                // Per element, no clipping.
                let s = if base == "int8" {
                    int8::row_scale(v)
                } else {
                    max_abs(v) / 7.0
                };
                return v
                    .iter()
                    .zip(out)
                    .all(|(x, y)| {
                        if s == 0.0 {
                            *y == 0.0
                        } else {
                            // Half a step plus float rounding, at most a relative
                            // 254·ε (see int8's tests); a subnormal scale is itself
                            // rounded by up to 2⁻¹⁵⁰, which the largest code multiplies
                            // (FORMAT.md).
                            (x - y).abs()
                                <= s / 2.0 * (1.0 + 256.0 * f32::EPSILON) + 64.0 * f32::from_bits(1)
                        }
                    })
                    .then_some(())
                    .ok_or_else(|| format!("{name}: element error above scale/2"));
            }
            // Squared, the relative rounding slack of each element doubles: 1e-4 covers it.
            err <= d as f64 * (scale / 2.0).powi(2) * (1.0 + 1e-4) + slack
        }
        "binary" if !rotated => {
            let m = binary::row_scale(v);
            return v
                .iter()
                .zip(out)
                .all(|(x, y)| *y == if *x >= 0.0 { m } else { -m })
                .then_some(())
                .ok_or_else(|| format!("{name}: not sign × mean|v|"));
        }
        "binary" => {
            // ||w − m·s||² = ||w||² − dims·m² for the least-squares m = mean|w|.
            let m = f64::from(binary::row_scale(&w));
            (err - (sq_norm(&w) - d as f64 * m * m)).abs() <= slack + 1e-5 * sq_norm(&w)
        }
        "sq" => {
            // With the stored gain, x' = x‖x‖/(‖L‖ cos θ)·L̂: ‖x' − x‖² = ‖x‖² tan² θ, and the
            // no-clipping step bounds sin² θ <= d (max|w| / 2^B)² / ‖w‖² (FORMAT.md); the
            // factors' rounding (cos θ to 2⁻¹⁵, ‖x‖ to 2⁻¹¹) loosens it a little.
            let bits: i32 = params
                .split(',')
                .find_map(|kv| kv.strip_prefix("bits="))
                .unwrap()
                .parse()
                .unwrap();
            let n2 = sq_norm(&w);
            if n2 == 0.0 {
                return out
                    .iter()
                    .all(|&y| y == 0.0)
                    .then_some(())
                    .ok_or_else(|| format!("{name}: zero row not decoded to zeros"));
            }
            let m = f64::from(max_abs(&w));
            let sin2 = (d as f64 * (m / 2f64.powi(bits)).powi(2) / n2).min(1.0);
            let (t, c) = ((sin2 / (1.0 - sin2)).sqrt(), (1.0 - sin2).sqrt());
            // The gain's relative error: the norm's 2⁻¹¹, cos θ's 2⁻¹⁵ / cos θ, f32.
            let eps = 1e-3 + 1e-4 / c;
            if sin2 < 0.9 && n2.sqrt() >= f64::from(f32::MIN_POSITIVE) {
                err <= n2 * (t + eps / c).powi(2) * (1.0 + 1e-4) + slack
            } else {
                // A near-useless bound (tiny dims), or a subnormal norm, stored with fewer
                // significant bits (FORMAT.md): the decoded row is still finite.
                true
            }
        }
        "f16" | "bf16" => {
            let (rel, abs) = if base == "f16" {
                (2f32.powi(-11), 2f32.powi(-25))
            } else {
                (2f32.powi(-8), 2f32.powi(-134))
            };
            return v
                .iter()
                .zip(out)
                .all(|(x, y)| (x - y).abs() <= (x.abs() * rel).max(abs))
                .then_some(())
                .ok_or_else(|| format!("{name}: element error above half an ulp"));
        }
        _ => unreachable!("{name}"),
    };
    ok.then_some(())
        .ok_or_else(|| format!("{name}: squared error {err} above the bound"))
}

/// A row of kind `kind`: 0 zeros, 1 constant, 2 spike, else spread values; times 2^mag.
fn make_row(d: usize, kind: u8, mag: i32, seed: u64) -> Vec<f32> {
    let scale = 2f64.powi(mag);
    let mut rng = crate::test_rng::Rng(seed | 1);
    (0..d)
        .map(|i| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let x = match kind {
                0 => 0.0,
                1 => 0.75,
                2 => f64::from(u8::from(i == d / 2)) * 3.0 + u * 0.01,
                _ => u,
            };
            (x * scale) as f32
        })
        .collect()
}

proptest! {
    // A fixed seed keeps the test deterministic; raise `cases` locally to search harder.
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x5eed),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_codec_meets_its_bound(
        d in 1usize..70,
        kinds in proptest::collection::vec((0u8..5, -135i32..100), 1..5),
        seed in any::<u64>(),
    ) {
        let data: Vec<f32> = kinds
            .iter()
            .enumerate()
            .flat_map(|(r, &(k, m))| make_row(d, k, m, seed.wrapping_add(r as u64)))
            .collect();
        for name in ALL {
            let codec = parse(name, d).unwrap();
            let mut payload = vec![0u8; codec.encoded_len(kinds.len())];
            match codec.encode(&data, &mut payload) {
                Err(f) => {
                    // Only f16 may refuse, and only for a value past its range.
                    let v = data[f.row * d + f.col];
                    prop_assert!(name == "f16" && v.abs() >= 65520.0, "{name} refused {v}: {}", f.msg);
                }
                Ok(()) => {
                    let out = round_trip(codec.as_ref(), &data);
                    for (v, o) in data.chunks(d).zip(out.chunks(d)) {
                        prop_assert!(o.iter().all(|x| x.is_finite()), "{name}: non-finite output");
                        if let Err(e) = check_row(name, v, o) {
                            prop_assert!(false, "{e}; row {v:?} -> {o:?}");
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn fit_never_loses_to_max() {
    for seed in 0..50u64 {
        let d = 1 + (seed as usize * 7) % 90;
        let v = make_row(d, if seed % 2 == 0 { 2 } else { 3 }, 0, seed);
        let fit = round_trip(parse("int4", d).unwrap().as_ref(), &v);
        let max = round_trip(parse("int4:scale=max", d).unwrap().as_ref(), &v);
        assert!(
            sq_err(&v, &fit) <= sq_err(&v, &max) * (1.0 + 1e-5) + 1e-12 * sq_norm(&v),
            "seed {seed}"
        );
    }
}

#[test]
fn spec_round_trips_through_the_registry() {
    for name in ALL {
        let c = parse(name, 13).unwrap();
        let s = c.spec();
        let back = super::from_spec(s.id, &s.params, 13).unwrap();
        assert_eq!(back.spec(), s, "{name}");
        assert_eq!(back.name(), c.name(), "{name}");
        let data = make_row(13 * 3, 3, 0, 5);
        assert_eq!(
            round_trip(c.as_ref(), &data),
            round_trip(back.as_ref(), &data),
            "{name}"
        );
    }
}

#[test]
fn plain_int8_keeps_the_format_1_0_spec() {
    let s = parse("int8", 8).unwrap().spec();
    assert!(s.params.is_empty());
    assert!(!parse("int8:rotate=1", 8).unwrap().spec().params.is_empty());
}

#[test]
fn bad_codec_strings_are_named() {
    for (text, want) in [
        ("int3", "unknown codec 'int3'"),
        (
            "f16:rotate=1",
            "f16: unknown parameter 'rotate'; valid: none",
        ),
        (
            "int4:scale=min",
            "int4: scale must be fit or max, got 'min'",
        ),
        ("binary:rotate=1,rounds=99", "rounds must be"),
        ("int8:seed=1", "only apply with rotate=1"),
    ] {
        let e = parse(text, 8).unwrap_err().to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}
