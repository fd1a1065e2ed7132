//! The prototype's .npz: import and export bit-exact against the reference script's output
//! (fixtures made by scripts/make_npz_fixtures.py with shared/reference/int8_reference.py).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use crate::helpers::{assert_bits_eq, compress, read_npy_f32};
use vectro::npz::{ImportOptions, export_npz, import_npz};
use vectro::output::Durability;
use vectro::{Container, ErrorKind, NoProgress};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn opts(chunk_rows: u32) -> ImportOptions {
    ImportOptions {
        chunk_rows: Some(chunk_rows),
        overwrite: false,
        durability: Durability::None,
    }
}

/// The raw data bytes of each member of a .npz (after its .npy header), by name.
fn members(path: &Path) -> Vec<(String, String, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
        let header = String::from_utf8(b[10..10 + hl].to_vec()).unwrap();
        let (descr, _, shape) = vectro::npy::parse_header_fields(&header).unwrap();
        out.push((
            f.name().unwrap().to_string(),
            format!("{descr} {shape:?}"),
            b[10 + hl..].to_vec(),
        ));
    }
    out.sort();
    out
}

#[test]
fn imported_reference_npz_decodes_to_the_reference_reconstruction() {
    let (_, _, want) = read_npy_f32(&fixture("npz_reference_recon.npy"));
    let dir = tempfile::tempdir().unwrap();
    for (name, chunk_rows) in [
        ("npz_reference.npz", 5),
        ("npz_deflated.npz", 100),
        ("npz_reference.npz", 1),
    ] {
        let out = dir.path().join(format!("{name}.{chunk_rows}.vectro"));
        let s = import_npz(
            &fixture(name),
            &out,
            &opts(chunk_rows),
            &NoProgress,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!((s.rows, s.dims), (37, 24));
        let c = Container::open(&out).unwrap();
        let mut got = vec![0f32; 37 * 24];
        c.get_range(0..37, &mut got).unwrap();
        assert_bits_eq(&got, &want, name);
        let mut row = vec![0f32; 24];
        c.get(5, &mut row).unwrap();
        assert_bits_eq(&row, &want[5 * 24..6 * 24], "get(5)");
    }
}

#[test]
fn round_trip_and_fresh_compress_export_the_reference_arrays() {
    let want = members(&fixture("npz_reference.npz"));
    let dir = tempfile::tempdir().unwrap();
    // npz -> vectro -> npz
    let v = dir.path().join("imported.vectro");
    import_npz(
        &fixture("npz_reference.npz"),
        &v,
        &opts(6),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    let back = dir.path().join("back.npz");
    export_npz(
        &Container::open(&v).unwrap(),
        &back,
        false,
        Durability::None,
    )
    .unwrap();
    assert_eq!(members(&back), want);
    // npy -> vectro (our encoder) -> npz equals the reference encoder's npz
    let fresh = dir.path().join("fresh.vectro");
    compress(&fixture("npz_input.npy"), &fresh, "int8", 8, 2);
    let out = dir.path().join("fresh.npz");
    export_npz(
        &Container::open(&fresh).unwrap(),
        &out,
        false,
        Durability::None,
    )
    .unwrap();
    assert_eq!(members(&out), want);
    // The same container exports to the same bytes every time.
    let again = dir.path().join("again.npz");
    export_npz(
        &Container::open(&fresh).unwrap(),
        &again,
        false,
        Durability::None,
    )
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    // An existing output is refused.
    let e = export_npz(
        &Container::open(&fresh).unwrap(),
        &out,
        false,
        Durability::None,
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
}

#[test]
fn zstd_chunks_export_like_plain_ones_and_rotated_codes_are_refused() {
    let want = members(&fixture("npz_reference.npz"));
    let dir = tempfile::tempdir().unwrap();
    // A --zstd container stores its chunks compressed: the export must unstage them (it
    // sliced the compressed bytes and panicked).
    let z = dir.path().join("z.vectro");
    let opts = vectro::CompressOptions {
        codec: None,
        chunk_rows: Some(8),
        zstd: Some(3),
        durability: Durability::None,
        ..vectro::CompressOptions::default()
    };
    vectro::compress(
        &fixture("npz_input.npy"),
        &z,
        &opts,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    let out = dir.path().join("z.npz");
    export_npz(&Container::open(&z).unwrap(), &out, false, Durability::None).unwrap();
    assert_eq!(members(&out), want);
    // Rotated int8 codes are not `q × scale` of the vector: refused, nothing written
    // (they exported, and decoded the prototype's way to a mean cosine of -0.06).
    let r = dir.path().join("r.vectro");
    compress(&fixture("npz_input.npy"), &r, "int8:rotate=1", 8, 2);
    let out = dir.path().join("r.npz");
    let e = export_npz(&Container::open(&r).unwrap(), &out, false, Durability::None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(e.to_string().contains("rotated"), "{e}");
    assert!(!out.exists());
}

/// One .npz member: name, dtype, shape, data.
type Member = (&'static str, &'static str, &'static str, Vec<u8>);

/// Writes a .npz of the given members.
fn write_npz(path: &Path, members: &[Member]) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, descr, shape, data) in members {
        z.start_file(
            format!("{name}.npy"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        z.write_all(b"\x93NUMPY\x01\x00").unwrap();
        z.write_all(&(dict.len() as u16).to_le_bytes()).unwrap();
        z.write_all(dict.as_bytes()).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn malformed_npz_files_are_named_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let q = || vec![1u8; 6];
    let scales = |x: f32| {
        [x, 1.0, 2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    let dims = || 2i64.to_le_bytes().to_vec();
    let cases: Vec<(&str, Vec<Member>, &str)> = vec![
        (
            "missing",
            vec![("q", "|i1", "(6,)", q()), ("dims", "<i8", "()", dims())],
            "has no member 'scales'",
        ),
        (
            "dtype",
            vec![
                ("q", "<f4", "(6,)", q()),
                ("scales", "<f4", "(3,)", scales(1.0)),
                ("dims", "<i8", "()", dims()),
            ],
            "member q has dtype '<f4'",
        ),
        (
            "shape",
            vec![
                ("q", "|i1", "(5,)", q()[..5].to_vec()),
                ("scales", "<f4", "(3,)", scales(1.0)),
                ("dims", "<i8", "()", dims()),
            ],
            "inconsistent",
        ),
        (
            "short",
            vec![
                ("q", "|i1", "(6,)", q()[..4].to_vec()),
                ("scales", "<f4", "(3,)", scales(1.0)),
                ("dims", "<i8", "()", dims()),
            ],
            "member q holds 4 data bytes but its shape needs 6",
        ),
        (
            "long",
            vec![
                ("q", "|i1", "(6,)", vec![1u8; 9]),
                ("scales", "<f4", "(3,)", scales(1.0)),
                ("dims", "<i8", "()", dims()),
            ],
            "member q holds 9 data bytes",
        ),
        (
            "nan",
            vec![
                ("q", "|i1", "(6,)", q()),
                ("scales", "<f4", "(3,)", scales(f32::NAN)),
                ("dims", "<i8", "()", dims()),
            ],
            "row 0 has scale NaN",
        ),
        (
            // Finite, but 127 × 3e38 decodes to infinity (it imported, and `verify` passed).
            "huge",
            vec![
                ("q", "|i1", "(6,)", q()),
                ("scales", "<f4", "(3,)", scales(3e38)),
                ("dims", "<i8", "()", dims()),
            ],
            "or its codes decode to infinity",
        ),
        (
            "zero dims",
            vec![
                ("q", "|i1", "(6,)", q()),
                ("scales", "<f4", "(3,)", scales(1.0)),
                ("dims", "<i8", "()", 0i64.to_le_bytes().to_vec()),
            ],
            "member dims is 0",
        ),
    ];
    for (name, m, want) in cases {
        let p = dir.path().join(format!("{name}.npz"));
        write_npz(&p, &m);
        let out = dir.path().join(format!("{name}.vectro"));
        let e = import_npz(&p, &out, &opts(2), &NoProgress, &AtomicBool::new(false)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadInput, "{name}: {e}");
        assert!(e.to_string().contains(want), "{name}: {e}");
        assert!(
            e.to_string().contains(&format!("{name}.npz")),
            "{name}: {e}"
        );
        assert!(
            !out.exists(),
            "{name}: a failed import left {}",
            out.display()
        );
    }
    let p = dir.path().join("plain.npz");
    std::fs::write(&p, b"not a zip at all").unwrap();
    let e = import_npz(
        &p,
        &dir.path().join("p.vectro"),
        &opts(2),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not a readable .npz"), "{e}");
}
