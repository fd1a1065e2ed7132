//! The streaming builders: any Read in, any Write out, same rows as the file paths.

use std::io::Read;

use crate::helpers::{CODECS, assert_bits_eq, compress, decompressed, make_npy, read_npy_f32};
use vectro::stream::{Compressor, Decompressor};
use vectro::{Container, ErrorKind};

/// A reader that hands out at most `step` bytes a call, like a socket.
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn compressor_from_a_stream_matches_the_file_path_and_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", 333, 20, 11);
    let npy_bytes = std::fs::read(&npy).unwrap();
    for codec in CODECS {
        let file = dir
            .path()
            .join(format!("{}.vectro", codec.replace(':', "_")));
        compress(&npy, &file, codec, 50, 2);
        let want = decompressed(&file);
        let mut first: Option<Vec<u8>> = None;
        for threads in [1, 2, 4] {
            let mut out = Vec::new();
            let s = Compressor::new()
                .codec(*codec)
                .threads(threads)
                .chunk_rows(50)
                .compress_npy(
                    Trickle {
                        data: &npy_bytes,
                        step: 13,
                    },
                    &mut out,
                )
                .unwrap();
            assert_eq!((s.rows, s.dims, s.chunks), (333, 20, 7));
            assert_eq!(s.bytes_in, npy_bytes.len() as u64);
            assert_eq!(s.bytes_out, out.len() as u64);
            match &first {
                None => first = Some(out.clone()),
                Some(f) => assert!(f == &out, "{threads} threads gave different bytes"),
            }
            let c = Container::from_bytes("stream", &out).unwrap();
            let mut got = vec![0f32; want.len()];
            c.get_range(0..333, &mut got).unwrap();
            assert_bits_eq(&got, &want, codec);
        }
        // From a slice: the same rows again.
        let (_, _, data) = read_npy_f32(&npy);
        let mut out = Vec::new();
        Compressor::new()
            .codec(*codec)
            .chunk_rows(50)
            .compress_f32(&data, 20, &mut out)
            .unwrap();
        assert!(
            first.as_ref() == Some(&out),
            "compress_f32 differs from compress_npy"
        );
    }
}

#[test]
fn decompressor_from_a_stream_writes_the_same_npy_as_decompress() {
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", 201, 9, 4);
    for codec in CODECS {
        let file = dir
            .path()
            .join(format!("{}.vectro", codec.replace(':', "_")));
        compress(&npy, &file, codec, 32, 2);
        let want_path = file.with_extension("decoded.npy");
        decompressed(&file);
        let want = std::fs::read(&want_path).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        for threads in [1, 3] {
            let mut out = Vec::new();
            let s = Decompressor::new()
                .threads(threads)
                .decompress_npy(
                    Trickle {
                        data: &bytes,
                        step: 7,
                    },
                    &mut out,
                )
                .unwrap();
            assert!(out == want, "streamed .npy differs ({threads} threads)");
            assert_eq!((s.rows, s.dims, s.chunks), (201, 9, 7));
            assert_eq!(
                (s.bytes_in, s.bytes_out),
                (bytes.len() as u64, want.len() as u64)
            );
        }
    }
}

#[test]
fn decompressor_refuses_every_truncation_and_trailing_bytes() {
    let data: Vec<f32> = (0..40 * 3).map(|i| i as f32 - 50.0).collect();
    let mut bytes = Vec::new();
    Compressor::new()
        .chunk_rows(16)
        .compress_f32(&data, 3, &mut bytes)
        .unwrap();
    for cut in 0..bytes.len() {
        let r = Decompressor::new().for_each_chunk(&bytes[..cut], |_, _, _| Ok(()));
        let e = r.expect_err(&format!("truncated at {cut} was accepted"));
        assert_eq!(e.kind(), ErrorKind::BadInput, "cut {cut}: {e}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let e = Decompressor::new()
        .for_each_chunk(longer.as_slice(), |_, _, _| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("after the trailer"), "{e}");
}

#[test]
fn decompressor_detects_every_flipped_byte() {
    let data: Vec<f32> = (0..20 * 4).map(|i| (i as f32).sqrt()).collect();
    let mut bytes = Vec::new();
    Compressor::new()
        .chunk_rows(8)
        .compress_f32(&data, 4, &mut bytes)
        .unwrap();
    for i in 0..bytes.len() {
        let mut b = bytes.clone();
        b[i] ^= 0x04;
        let r = Decompressor::new()
            .name("flipped.vectro")
            .for_each_chunk(b.as_slice(), |_, _, _| Ok(()));
        let e = r.expect_err(&format!("flip at byte {i} went unnoticed"));
        assert!(e.to_string().starts_with("flipped.vectro: "), "{e}");
    }
}

#[test]
fn compressor_names_truncated_and_non_finite_input() {
    let mut npy = vectro::npy::write_header(4, 2);
    for x in [1.0f32, 2.0, 3.0, f32::NAN, 5.0, 6.0, 7.0, 8.0] {
        npy.extend_from_slice(&x.to_le_bytes());
    }
    let e = Compressor::new()
        .name("in.npy")
        .compress_npy(npy.as_slice(), Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("row 1, column 1"), "{e}");
    let e = Compressor::new()
        .name("in.npy")
        .compress_npy(&npy[..npy.len() - 10], Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("ends inside row 2 of the 4"), "{e}");
    let e = Compressor::new()
        .compress_npy(&b"\x93NUMPY\x01"[..], Vec::new())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadInput);
    let e = Compressor::new()
        .compress_f32(&[1.0; 5], 2, Vec::new())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    let e = Compressor::new()
        .chunk_rows(0)
        .compress_f32(&[1.0; 4], 2, Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
}

#[test]
fn decompressor_refuses_absurd_chunks_before_allocating() {
    use vectro::codec::{CodecId, CodecSpec};
    use vectro::format::{Header, Metadata};
    let (rows, dims) = (1u64 << 20, 1u32 << 16);
    let header = Header {
        codec: CodecSpec {
            id: CodecId::Int8,
            params: vec![],
        },
        rows,
        dims,
        chunk_rows: rows as u32,
        source_dtype: vectro::npy::Dtype::F32Le,
        metadata: Metadata::new(),
        stage: vectro::codec::PayloadStage::Plain,
        ids: Default::default(),
        payload: false,
        tiers: Vec::new(),
    };
    let mut bytes = header.encode();
    let payload_len = rows * (dims as u64 + 4);
    let mut h = [0u8; 36];
    h[0..4].copy_from_slice(b"VCHK");
    h[4..8].copy_from_slice(&(rows as u32).to_le_bytes());
    h[24..32].copy_from_slice(&payload_len.to_le_bytes());
    let c = crc32c::crc32c(&h[..32]);
    h[32..36].copy_from_slice(&c.to_le_bytes());
    bytes.extend_from_slice(&h);
    let e = Decompressor::new()
        .for_each_chunk(bytes.as_slice(), |_, _, _| Ok(()))
        .unwrap_err();
    assert!(e.to_string().contains("streaming reader's"), "{e}");
}

#[test]
fn decompressor_reads_zstd_containers_as_container_does() {
    // The streaming reader once refused every --zstd container: it had its own copy of the
    // chunk checks, which expected plain payloads. It now shares the container parser.
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", 201, 9, 5);
    for codec in CODECS {
        let file = dir
            .path()
            .join(format!("{}.z.vectro", codec.replace(':', "_")));
        let opts = vectro::CompressOptions {
            codec: Some(codec.parse().unwrap()),
            threads: 2,
            chunk_rows: Some(32),
            zstd: Some(3),
            durability: vectro::output::Durability::None,
            ..vectro::CompressOptions::default()
        };
        vectro::compress(
            &npy,
            &file,
            &opts,
            &vectro::NoProgress,
            &std::sync::atomic::AtomicBool::new(false),
        )
        .unwrap();
        let c = Container::open(&file).unwrap();
        assert_eq!(c.header().stage, vectro::codec::PayloadStage::Zstd);
        let mut want = vec![0f32; 201 * 9];
        c.get_range(0..201, &mut want).unwrap();
        let bytes = std::fs::read(&file).unwrap();
        for threads in [1, 3] {
            let mut got = Vec::new();
            let s = Decompressor::new()
                .threads(threads)
                .for_each_chunk(
                    Trickle {
                        data: &bytes,
                        step: 11,
                    },
                    |_, first, rows| {
                        assert_eq!(first, got.len() as u64 / 9);
                        got.extend_from_slice(rows);
                        Ok(())
                    },
                )
                .unwrap_or_else(|e| panic!("{codec} zstd, {threads} threads: {e}"));
            assert_eq!((s.rows, s.chunks, s.bytes_in), (201, 7, bytes.len() as u64));
            assert_bits_eq(&got, &want, codec);
        }
        // A flipped byte inside a zstd payload is still caught (by the chunk crc).
        let e = c.chunks()[3];
        let mut bad = bytes.clone();
        bad[e.payload_range().start + 2] ^= 0x10;
        let err = Decompressor::new()
            .for_each_chunk(bad.as_slice(), |_, _, _| Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("chunk 3"), "{codec}: {err}");
    }
}

#[test]
fn compressor_with_zstd_writes_compress_bytes() {
    // compress() and stream::Compressor share one encoder and writer: given the header
    // metadata compress() records about its source file, the bytes are the same.
    let dir = tempfile::tempdir().unwrap();
    let npy = make_npy(dir.path(), "x.npy", 333, 20, 9);
    let npy_bytes = std::fs::read(&npy).unwrap();
    let (_, _, data) = read_npy_f32(&npy);
    for codec in CODECS {
        for zstd in [None, Some(3), Some(-2)] {
            let file = dir.path().join("z.vectro");
            let _ = std::fs::remove_file(&file);
            let opts = vectro::CompressOptions {
                codec: Some(codec.parse().unwrap()),
                threads: 2,
                chunk_rows: Some(50),
                zstd,
                durability: vectro::output::Durability::None,
                ..vectro::CompressOptions::default()
            };
            vectro::compress(
                &npy,
                &file,
                &opts,
                &vectro::NoProgress,
                &std::sync::atomic::AtomicBool::new(false),
            )
            .unwrap();
            let want = std::fs::read(&file).unwrap();
            let c = Container::open(&file).unwrap();
            let streamed = |threads: usize, from_npy: bool| {
                let mut b = Compressor::new()
                    .codec(*codec)
                    .threads(threads)
                    .chunk_rows(50);
                if let Some(level) = zstd {
                    b = b.zstd(level);
                }
                for (k, v) in c.metadata() {
                    b = b.metadata(k.clone(), v.clone());
                }
                let mut out = Vec::new();
                if from_npy {
                    b.compress_npy(npy_bytes.as_slice(), &mut out).unwrap();
                } else {
                    b.compress_f32(&data, 20, &mut out).unwrap();
                }
                out
            };
            for (threads, from_npy) in [(1, true), (3, true), (2, false)] {
                assert!(
                    streamed(threads, from_npy) == want,
                    "{codec}, zstd {zstd:?}, {threads} threads, from npy {from_npy}: bytes differ from compress()"
                );
            }
        }
    }
    let e = Compressor::new()
        .zstd(99)
        .compress_f32(&[1.0; 4], 2, Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("--zstd 99 is out of range"), "{e}");
}
