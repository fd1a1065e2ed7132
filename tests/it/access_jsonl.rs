//! JSONL export: parsed back by serde_json, every value round-trips exactly.

use std::sync::atomic::AtomicBool;

use crate::helpers::{CODECS, compress, make_npy};
use proptest::prelude::*;
use vectro::stream::{JsonlOptions, export_jsonl, push_f32, push_jsonl_row};
use vectro::{Container, NoProgress};

#[derive(serde::Deserialize)]
struct Point {
    id: u64,
    vector: Vec<f32>,
}

#[test]
fn exported_lines_parse_back_to_the_exact_rows() {
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", 700, 33, 21);
    for codec in CODECS {
        let file = dir
            .path()
            .join(format!("{}.vectro", codec.replace(':', "_")));
        compress(&npy, &file, codec, 64, 2);
        let c = Container::open(&file).unwrap();
        let mut want = vec![0f32; 700 * 33];
        c.get_range(0..700, &mut want).unwrap();
        for threads in [1, 2, 4] {
            let mut out = Vec::new();
            let opts = JsonlOptions {
                id_offset: 1_000_000,
                threads,
            };
            let s =
                export_jsonl(&c, &mut out, &opts, &NoProgress, &AtomicBool::new(false)).unwrap();
            assert_eq!((s.rows, s.bytes_out), (700, out.len() as u64));
            let text = std::str::from_utf8(&out).unwrap();
            let mut n = 0;
            for (r, line) in text.lines().enumerate() {
                let p: Point = serde_json::from_str(line).unwrap();
                assert_eq!(p.id, 1_000_000 + r as u64);
                let w = &want[r * 33..(r + 1) * 33];
                assert!(
                    p.vector
                        .iter()
                        .zip(w)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "row {r}"
                );
                assert_eq!(p.vector.len(), 33);
                n += 1;
            }
            assert_eq!(n, 700);
        }
    }
}

#[test]
fn overflowing_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", 5, 2, 1);
    let file = dir.path().join("x.vectro");
    compress(&npy, &file, "int8", 64, 1);
    let c = Container::open(&file).unwrap();
    let opts = JsonlOptions {
        id_offset: u64::MAX - 3,
        threads: 1,
    };
    let e = export_jsonl(&c, Vec::new(), &opts, &NoProgress, &AtomicBool::new(false)).unwrap_err();
    assert!(e.to_string().contains("overflows"), "{e}");
}

#[test]
fn non_finite_values_are_not_written() {
    let mut buf = b"keep".to_vec();
    assert_eq!(push_jsonl_row(&mut buf, 1, &[1.0, f32::INFINITY]), Err(1));
    assert_eq!(buf, b"keep");
    push_jsonl_row(&mut buf, 7, &[0.5, -0.0, 1e-7]).unwrap();
    assert_eq!(
        std::str::from_utf8(&buf).unwrap(),
        "keep{\"id\":7,\"vector\":[0.5,-0.0,1e-7]}\n"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

    /// Shortest round-trip formatting survives serde_json's parse (via f64) exactly.
    #[test]
    fn any_finite_f32_round_trips_through_serde_json(bits in any::<u32>()) {
        let x = f32::from_bits(bits);
        prop_assume!(x.is_finite());
        let mut buf = Vec::new();
        push_f32(&mut buf, x);
        let back: f32 = serde_json::from_slice(&buf).unwrap();
        prop_assert_eq!(back.to_bits(), x.to_bits(), "{}", String::from_utf8_lossy(&buf));
    }
}
