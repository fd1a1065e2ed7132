//! Random access: get, get_range and get_many agree with a full decompress, for every
//! codec, chunk size and thread count; bad requests are errors, never panics.

use std::sync::Arc;

use crate::helpers::{CODECS, Rng, assert_bits_eq, compress, decompressed, make_npy};
use proptest::prelude::*;
use vectro::{Container, ErrorKind};

#[test]
fn codec_list_covers_the_registry() {
    for name in vectro::codec::NAMES {
        assert!(
            CODECS.iter().any(|c| c.split(':').next() == Some(name)),
            "codec '{name}' is registered but missing from helpers::CODECS"
        );
    }
}

/// Checks every access path against the full reconstruction of `path`.
fn check_all_paths(c: &Container, want: &[f32], seed: u64) {
    let d = c.dims();
    let rows = c.rows();
    let mut one = vec![0f32; d];
    for r in 0..rows {
        c.get(r, &mut one).unwrap();
        assert_bits_eq(
            &one,
            &want[r as usize * d..(r as usize + 1) * d],
            &format!("get({r})"),
        );
    }
    let mut rng = Rng(seed | 1);
    for _ in 0..20 {
        let a = rng.below(rows + 1);
        let b = a + rng.below(rows - a + 1);
        let mut out = vec![0f32; (b - a) as usize * d];
        c.get_range(a..b, &mut out).unwrap();
        assert_bits_eq(
            &out,
            &want[a as usize * d..b as usize * d],
            &format!("get_range({a}..{b})"),
        );
    }
    let ids: Vec<u64> = (0..3 * rows).map(|_| rng.below(rows)).collect();
    let mut out = vec![0f32; ids.len() * d];
    c.get_many(&ids, &mut out).unwrap();
    for (k, &id) in ids.iter().enumerate() {
        let w = &want[id as usize * d..(id as usize + 1) * d];
        assert_bits_eq(
            &out[k * d..(k + 1) * d],
            w,
            &format!("get_many[{k}] = row {id}"),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn every_access_path_equals_decompress(
        rows in 1u64..300,
        dims in 1u64..40,
        chunk_rows in 1u32..80,
        threads in 1usize..4,
        seed in any::<u64>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let npy = make_npy(dir.path(), "x.npy", rows, dims, seed);
        for codec in CODECS {
            let out = dir.path().join(format!("{}.vectro", codec.replace(':', "_")));
            compress(&npy, &out, codec, chunk_rows, threads);
            let want = decompressed(&out);
            let c = Container::open(&out).unwrap();
            prop_assert_eq!((c.rows(), c.dims() as u64), (rows, dims));
            check_all_paths(&c, &want, seed);
            let bytes = std::fs::read(&out).unwrap();
            check_all_paths(&Container::from_bytes("in-memory", &bytes).unwrap(), &want, seed);
        }
    }
}

#[test]
fn many_threads_read_one_container_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", 2000, 24, 3);
    for codec in CODECS {
        let out = dir
            .path()
            .join(format!("{}.vectro", codec.replace(':', "_")));
        compress(&npy, &out, codec, 64, 2);
        let want = Arc::new(decompressed(&out));
        // Fresh: no chunk verified yet, so threads race on the first checks too.
        let c = Arc::new(Container::open(&out).unwrap());
        let d = c.dims();
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let (c, want) = (Arc::clone(&c), Arc::clone(&want));
                s.spawn(move || {
                    let mut rng = Rng(t * 7919 + 1);
                    for _ in 0..50 {
                        let ids: Vec<u64> = (0..100).map(|_| rng.below(c.rows())).collect();
                        let mut out = vec![0f32; ids.len() * d];
                        c.get_many(&ids, &mut out).unwrap();
                        for (k, &id) in ids.iter().enumerate() {
                            let w = &want[id as usize * d..(id as usize + 1) * d];
                            assert_bits_eq(&out[k * d..(k + 1) * d], w, "concurrent get_many");
                        }
                    }
                });
            }
        });
    }
}

#[test]
fn out_of_range_and_bad_buffers_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", 50, 4, 9);
    let out = dir.path().join("x.vectro");
    compress(&npy, &out, "int8", 16, 1);
    let c = Container::open(&out).unwrap();
    let mut row = vec![0f32; 4];

    let e = c.get(50, &mut row).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(e.to_string().contains("row 50 is out of range"), "{e}");
    assert!(e.to_string().contains("has 50 rows"), "{e}");
    assert!(c.get(u64::MAX, &mut row).is_err());

    let mut many = vec![0f32; 3 * 4];
    let e = c.get_many(&[1, 77, 2], &mut many).unwrap_err().to_string();
    assert!(e.contains("row 77 is out of range"), "{e}");

    let mut buf = vec![0f32; 10 * 4];
    let e = c.get_range(45..55, &mut buf).unwrap_err().to_string();
    assert!(e.contains("row 54 is out of range"), "{e}");
    #[allow(clippy::reversed_empty_ranges)]
    let e = c.get_range(10..5, &mut buf).unwrap_err().to_string();
    assert!(e.contains("reversed"), "{e}");
    c.get_range(7..7, &mut []).unwrap();

    let e = c.get(3, &mut [0f32; 3]).unwrap_err().to_string();
    assert!(e.contains("output buffer holds 3 floats"), "{e}");
    let e = c.get_many(&[1, 2], &mut row).unwrap_err().to_string();
    assert!(e.contains("2 rows × 4 dims need 8"), "{e}");
    let e = c.chunk_payload(99).unwrap_err().to_string();
    assert!(e.contains("chunk 99 is out of range"), "{e}");
    let e = c.decode_chunk(0, &mut row).unwrap_err().to_string();
    assert!(e.contains("output buffer"), "{e}");
}

#[test]
fn a_corrupt_chunk_fails_only_the_reads_that_touch_it() {
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", 100, 8, 5);
    let out = dir.path().join("x.vectro");
    compress(&npy, &out, "int8", 10, 1);
    let good = Container::open(&out).unwrap();
    let chunk3 = good.chunks()[3];
    let mut bytes = std::fs::read(&out).unwrap();
    bytes[chunk3.payload_range().start + 5] ^= 0x10;
    let c = Container::from_bytes("flipped", &bytes).unwrap();
    let mut row = vec![0f32; 8];
    c.get(29, &mut row).unwrap();
    for _ in 0..2 {
        // Not cached as good after a failure: every touch reports it.
        let e = c.get(31, &mut row).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(e.to_string().contains("chunk 3 (bytes"), "{e}");
        assert!(e.to_string().contains("rows 30..40"), "{e}");
    }
    assert!(c.get_many(&[0, 35], &mut [0f32; 16]).is_err());
}
