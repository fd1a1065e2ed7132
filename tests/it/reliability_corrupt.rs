//! Every reader path refuses a damaged container: never a panic, never silent garbage.

use crate::helpers::*;
use byteorder::{ByteOrder, LittleEndian as LE};
use vectro::format::verify::verify_reader;
use vectro::format::{Container, TRAILER_LEN};
use vectro::fuzzing::fix_checksums;

fn small() -> (tempfile::TempDir, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 10, 4);
    let c = container(dir.path(), &input, "c.vectro", 3);
    let bytes = std::fs::read(c).unwrap();
    (dir, bytes)
}

/// Opens `bytes` and reads every row through every access path; Err if any path refuses.
fn read_all(bytes: &[u8]) -> vectro::Result<Vec<f32>> {
    let c = Container::from_bytes("t.vectro", bytes)?;
    let d = c.dims();
    let mut whole = vec![0f32; c.rows() as usize * d];
    c.get_range(0..c.rows(), &mut whole)?;
    let mut by_chunk = Vec::new();
    for (i, e) in c.chunks().iter().enumerate() {
        let mut out = vec![0f32; e.rows as usize * d];
        c.decode_chunk(i, &mut out)?;
        by_chunk.extend(out);
    }
    assert_eq!(whole, by_chunk);
    let ids: Vec<u64> = (0..c.rows()).rev().collect();
    let mut many = vec![0f32; whole.len()];
    c.get_many(&ids, &mut many)?;
    Ok(whole)
}

fn verify_bytes(bytes: &[u8]) -> vectro::format::VerifyReport {
    verify_reader(
        std::path::Path::new("t.vectro"),
        std::io::Cursor::new(bytes),
        bytes.len() as u64,
    )
    .unwrap()
}

#[test]
fn every_flipped_byte_is_detected_by_verify_and_by_readers() {
    let (_d, good) = small();
    assert!(verify_bytes(&good).ok);
    read_all(&good).unwrap();
    for i in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[i] ^= mask;
            let r = verify_bytes(&b);
            assert!(!r.ok, "byte {i} ^ {mask:#x} passed verify");
            assert!(
                read_all(&b).is_err(),
                "byte {i} ^ {mask:#x} was read silently"
            );
        }
    }
}

#[test]
fn every_truncation_is_detected() {
    let (_d, good) = small();
    for n in 0..good.len() {
        assert!(!verify_bytes(&good[..n]).ok, "{n} bytes passed verify");
        let e = read_all(&good[..n]).unwrap_err().to_string();
        assert!(
            e.contains("incomplete")
                || e.contains("truncated")
                || e.contains("empty")
                || e.contains("magic"),
            "{n} bytes: {e}"
        );
    }
}

#[test]
fn verify_names_the_first_bad_chunk_with_bytes_and_rows() {
    let (_d, good) = small();
    let c = Container::from_bytes("t", &good).unwrap();
    for (i, e) in c.chunks().iter().enumerate() {
        let mut b = good.clone();
        b[e.payload_range().start] ^= 0x10;
        let r = verify_bytes(&b);
        let p = r.first_bad_chunk.expect("a bad chunk");
        assert_eq!(p.chunk, Some(i as u64));
        assert_eq!(p.bytes, [e.offset, e.offset + e.len]);
        assert_eq!(p.rows, Some([e.first_row, e.first_row + e.rows]));
        assert_eq!(r.chunks_ok, c.chunks().len() as u64 - 1);
    }
}

/// Damage that keeps every checksum valid: only the structural checks can catch it.
fn crafted(good: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = good.to_vec();
    edit(&mut b);
    fix_checksums(&mut b);
    b
}

#[test]
fn structural_damage_behind_valid_checksums_is_refused() {
    let (_d, good) = small();
    let n = good.len();
    let t = n - TRAILER_LEN;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "future major version",
            crafted(&good, |b| LE::write_u16(&mut b[4..6], 2)),
            "newer vectro",
        ),
        (
            "unknown codec id",
            crafted(&good, |b| LE::write_u16(&mut b[12..14], 999)),
            "unknown codec",
        ),
        (
            // Bits 1 and 2 say the chunks carry ids (format 1.4), bit 3 payload columns
            // (1.5), bit 4 search tiers (1.6); bit 5 is unknown.
            "unknown flags",
            crafted(&good, |b| LE::write_u16(&mut b[14..16], 32)),
            "flags",
        ),
        (
            "a tier flag on a header without a tier list",
            crafted(&good, |b| LE::write_u16(&mut b[14..16], 16)),
            "tier list runs past the header",
        ),
        (
            "a payload flag on chunks without payload columns",
            crafted(&good, |b| LE::write_u16(&mut b[14..16], 8)),
            "index entry 0 is inconsistent",
        ),
        (
            "both id flags",
            crafted(&good, |b| LE::write_u16(&mut b[14..16], 6)),
            "flags",
        ),
        (
            "an id flag on chunks without ids",
            crafted(&good, |b| LE::write_u16(&mut b[14..16], 2)),
            "index entry 0 is inconsistent",
        ),
        (
            "zero rows",
            crafted(&good, |b| LE::write_u64(&mut b[16..24], 0)),
            "invalid shape",
        ),
        (
            "absurd rows",
            crafted(&good, |b| LE::write_u64(&mut b[16..24], u64::MAX)),
            "",
        ),
        (
            "absurd dims",
            crafted(&good, |b| LE::write_u32(&mut b[24..28], u32::MAX)),
            "exceed",
        ),
        (
            "absurd chunk rows",
            crafted(&good, |b| LE::write_u32(&mut b[28..32], u32::MAX)),
            "",
        ),
        (
            "header length past the file",
            crafted(&good, |b| LE::write_u32(&mut b[8..12], 1 << 30)),
            "out of range",
        ),
        (
            "index outside the file",
            crafted(&good, |b| LE::write_u64(&mut b[t..t + 8], 1 << 40)),
            "does not fit",
        ),
        (
            "index length absurd",
            crafted(&good, |b| LE::write_u64(&mut b[t + 8..t + 16], u64::MAX)),
            "does not fit",
        ),
        (
            "trailer rows disagree",
            crafted(&good, |b| LE::write_u64(&mut b[t + 16..t + 24], 11)),
            "trailer says",
        ),
        (
            "trailer of another major",
            crafted(&good, |b| LE::write_u16(&mut b[t + 32..t + 34], 7)),
            "does not match",
        ),
        (
            "appended garbage",
            crafted(&good, |b| b.extend_from_slice(&[0u8; 64])),
            "",
        ),
    ];
    for (what, bytes, needle) in cases {
        let e = read_all(&bytes).expect_err(what).to_string();
        assert!(e.contains(needle), "{what}: {e}");
        assert!(!verify_bytes(&bytes).ok, "{what} passed verify");
    }
}

#[test]
fn index_entries_pointing_elsewhere_are_refused() {
    let (_d, good) = small();
    let c = Container::from_bytes("t", &good).unwrap();
    let index_at = c.chunks().last().map(|e| e.offset + e.len).unwrap() as usize;
    for field in 0..4 {
        for value in [0u64, 1, u64::MAX, good.len() as u64] {
            let at = index_at + 16 + 32 + field * 8; // entry 1
            let b = crafted(&good, |b| LE::write_u64(&mut b[at..at + 8], value));
            if b == good {
                continue;
            }
            let e = read_all(&b).expect_err("moved entry").to_string();
            assert!(e.contains("index entry 1"), "{e}");
        }
    }
}

#[test]
fn random_access_rejects_bad_arguments_without_panicking() {
    let (_d, good) = small();
    let c = Container::from_bytes("t", &good).unwrap();
    let mut row = vec![0f32; c.dims()];
    assert!(c.get(10, &mut row).is_err());
    assert!(c.get(u64::MAX, &mut row).is_err());
    assert!(c.get(0, &mut row[..1]).is_err());
    #[allow(clippy::reversed_empty_ranges)] // a reversed range is exactly what is tested
    let reversed = 5..3;
    assert!(c.get_range(reversed, &mut row).is_err());
    assert!(c.get_range(9..11, &mut [0f32; 8]).is_err());
    assert!(c.get_many(&[0, 99], &mut [0f32; 8]).is_err());
    assert!(c.chunk_payload(4).is_err());
    assert!(c.decode_chunk(0, &mut row).is_err(), "wrong buffer size");
}

#[test]
fn verify_cli_exit_codes_and_json() {
    let (dir, good) = small();
    let p = dir.path().join("c.vectro");
    let path = p.to_str().unwrap();
    let o = run(&["verify", path]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("ok: 4 chunks, 10 rows"));
    let o = run(&["verify", "--json", path]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ok"], true);
    assert_eq!(j["chunks_ok"], 4);
    assert_eq!(j["rows_ok"], 10);

    let c = Container::from_bytes("t", &good).unwrap();
    let e = c.chunks()[1];
    let mut bad = good.clone();
    bad[e.payload_range().end - 1] ^= 4;
    std::fs::write(&p, &bad).unwrap();
    let o = run(&["verify", "--json", path]);
    assert_eq!(o.status.code(), Some(3));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["ok"], false);
    let f = &j["first_bad_chunk"];
    assert_eq!(f["chunk"], 1);
    assert_eq!(f["bytes"], serde_json::json!([e.offset, e.offset + e.len]));
    assert_eq!(f["rows"], serde_json::json!([3, 6]));
    let o = run(&["verify", path]);
    assert_fails(
        &o,
        3,
        &["CORRUPT", "first bad chunk: 1 at bytes", "rows 3..6"],
    );
}
