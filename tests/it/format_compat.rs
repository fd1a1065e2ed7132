//! Files written by format 1.0 (the core skeleton's int8) still decode, bit for bit, and
//! plain int8 still writes the same chunk payloads.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use vectro::output::Durability;
use vectro::{CompressOptions, Container, NoProgress, compress, decompress};

const FIXTURE: &str = "tests/fixtures/v1_int8.vectro";
const DECODED: &str = "tests/fixtures/v1_int8_decoded.npy";
const SOURCE: &str = "tests/fixtures/v1_int8_source.npy";

#[test]
fn format_1_0_int8_file_decodes_bit_for_bit() {
    let bytes = std::fs::read(FIXTURE).unwrap();
    assert_eq!(&bytes[4..8], &[1, 0, 0, 0], "the fixture is format 1.0");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.npy");
    let stop = AtomicBool::new(false);
    decompress(
        Path::new(FIXTURE),
        &out,
        2,
        false,
        Durability::None,
        &NoProgress,
        &stop,
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(DECODED).unwrap()
    );
    let c = Container::open(FIXTURE).unwrap();
    assert_eq!(c.codec().name(), "int8");
}

#[test]
fn plain_int8_writes_the_same_chunks_as_format_1_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new.vectro");
    let opts = CompressOptions {
        chunk_rows: Some(4),
        durability: Durability::None,
        ..CompressOptions::default()
    };
    compress(
        Path::new(SOURCE),
        &out,
        &opts,
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    let (old, new) = (
        Container::open(FIXTURE).unwrap(),
        Container::open(&out).unwrap(),
    );
    assert_eq!(old.header().codec, new.header().codec);
    assert_eq!(old.chunks().len(), new.chunks().len());
    for i in 0..old.chunks().len() {
        assert_eq!(
            old.chunk_payload(i).unwrap(),
            new.chunk_payload(i).unwrap(),
            "chunk {i}"
        );
    }
}
