//! The container header: what the file holds and how it was encoded.

use std::collections::BTreeMap;
use std::path::Path;

use byteorder::{ByteOrder, LittleEndian as LE};

use super::ids::{self, IdKind};
use super::payload::FLAG_PAYLOAD;
use super::{
    MAGIC, MAJOR, MAX_HEADER_LEN, MINOR_WITH_IDS, MINOR_WITH_PAYLOAD, MINOR_WITH_TIERS,
    MINOR_WITHOUT_IDS, crc,
};
use crate::codec::{CodecId, CodecSpec, PayloadStage};
use crate::error::{Error, Result};
use crate::npy::Dtype;

/// Free-form string metadata, sorted so that it serialises deterministically.
pub type Metadata = BTreeMap<String, String>;

/// The fixed part of the header, before the codec parameters.
const FIXED_LEN: usize = 40;

/// Everything the header records.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The codec and its parameters.
    pub codec: CodecSpec,
    /// Total rows in the file.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u32,
    /// Rows per chunk; every chunk but the last holds exactly this many.
    pub chunk_rows: u32,
    /// The element type of the source `.npy`.
    pub source_dtype: Dtype,
    /// Source file name, tool version and the like.
    pub metadata: Metadata,
    /// How chunk payloads are stored (plain, or zstd-compressed): header flag bit 0.
    pub stage: PayloadStage,
    /// The ids each chunk stores after its payload (header flag bits 1 and 2; format 1.4).
    pub ids: IdKind,
    /// Each chunk stores payload columns after its ids (header flag bit 3; format 1.5);
    /// metadata key `payload_columns` names them.
    pub payload: bool,
    /// The search tiers each chunk stores before the rows' codec payload, coarsest first,
    /// each finer than the one before and all coarser than [`Header::codec`], which is the
    /// finest tier and the one rows decode from (header flag bit 4; format 1.6). Empty for
    /// a container without tiers.
    pub tiers: Vec<CodecSpec>,
}

/// Header flag bit 4: the header lists search tiers and each chunk stores them (format 1.6).
pub const FLAG_TIERS: u16 = 1 << 4;

/// The most search tiers a header may list.
pub const MAX_TIERS: usize = 8;

impl Header {
    /// The minor version this header is written with: 1.4 only for what needs it (ids),
    /// so that a container without ids is byte-identical to what 1.3 wrote.
    pub fn minor(&self) -> u16 {
        match (self.payload, self.ids) {
            _ if !self.tiers.is_empty() => MINOR_WITH_TIERS,
            (true, _) => MINOR_WITH_PAYLOAD,
            (false, IdKind::None) => MINOR_WITHOUT_IDS,
            (false, _) => MINOR_WITH_IDS,
        }
    }

    /// Number of chunks the file must hold.
    pub fn chunk_count(&self) -> u64 {
        self.rows.div_ceil(self.chunk_rows as u64)
    }

    /// Rows in chunk `i`.
    pub fn rows_in_chunk(&self, i: u64) -> u64 {
        let first = i * self.chunk_rows as u64;
        (self.rows - first).min(self.chunk_rows as u64)
    }

    /// The length of the whole container when chunk payloads of `rows` rows take
    /// `payload_len(rows)` bytes: header, chunks, index and trailer.
    pub fn container_len(&self, payload_len: impl Fn(u64) -> u64) -> u64 {
        let n = self.chunk_count();
        let full = payload_len(self.chunk_rows as u64) + super::CHUNK_OVERHEAD as u64;
        let last = match n {
            0 => 0,
            _ => payload_len(self.rows_in_chunk(n - 1)) + super::CHUNK_OVERHEAD as u64,
        };
        self.encode().len() as u64
            + n.saturating_sub(1) * full
            + last
            + (super::INDEX_HEADER_LEN + super::TRAILER_LEN) as u64
            + n * super::INDEX_ENTRY_LEN as u64
    }

    /// Serialises the header, crc included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; FIXED_LEN];
        out[0..4].copy_from_slice(&MAGIC);
        LE::write_u16(&mut out[4..6], MAJOR);
        LE::write_u16(&mut out[6..8], self.minor());
        // 8..12: header length, filled in below.
        LE::write_u16(&mut out[12..14], self.codec.id.code());
        LE::write_u16(
            &mut out[14..16],
            self.stage.flags()
                | self.ids.flags()
                | if self.payload { FLAG_PAYLOAD } else { 0 }
                | if self.tiers.is_empty() { 0 } else { FLAG_TIERS },
        );
        LE::write_u64(&mut out[16..24], self.rows);
        LE::write_u32(&mut out[24..28], self.dims);
        LE::write_u32(&mut out[28..32], self.chunk_rows);
        out[32] = self.source_dtype.code();
        // 33..36: reserved, zero.
        LE::write_u32(&mut out[36..40], self.codec.params.len() as u32);
        out.extend_from_slice(&self.codec.params);
        if !self.tiers.is_empty() {
            push_u32(&mut out, self.tiers.len() as u32);
            for t in &self.tiers {
                out.extend_from_slice(&t.id.code().to_le_bytes());
                out.extend_from_slice(&[0, 0]);
                push_u32(&mut out, t.params.len() as u32);
                out.extend_from_slice(&t.params);
            }
        }
        push_u32(&mut out, self.metadata.len() as u32);
        for (k, v) in &self.metadata {
            push_u32(&mut out, k.len() as u32);
            out.extend_from_slice(k.as_bytes());
            push_u32(&mut out, v.len() as u32);
            out.extend_from_slice(v.as_bytes());
        }
        let total = out.len() + 4;
        LE::write_u32(&mut out[8..12], total as u32);
        let c = crc(&out);
        push_u32(&mut out, c);
        out
    }

    /// Parses and checks the header at the start of `bytes`; returns it and its length.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `path` for a wrong magic, a newer major version, a bad crc,
    /// or any field out of range.
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<(Header, usize)> {
        let corrupt = |msg: String| Error::corrupt(path, msg);
        if bytes.len() < 8 || bytes[0..4] != MAGIC {
            return Err(corrupt(
                "not a vectro container (bad magic at byte 0)".into(),
            ));
        }
        let major = LE::read_u16(&bytes[4..6]);
        let minor = LE::read_u16(&bytes[6..8]);
        if major > MAJOR {
            return Err(corrupt(format!(
                "written by a newer vectro (format {major}.{minor}; this build reads {MAJOR}.x): upgrade vectro"
            )));
        }
        if major == 0 {
            return Err(corrupt(format!(
                "invalid format version {major}.{minor} at byte 4"
            )));
        }
        if bytes.len() < FIXED_LEN + 8 {
            return Err(corrupt("truncated: the file ends inside the header".into()));
        }
        let len = LE::read_u32(&bytes[8..12]) as usize;
        if !(FIXED_LEN + 8..=MAX_HEADER_LEN).contains(&len) {
            return Err(corrupt(format!(
                "header length {len} at byte 8 is out of range; the header is corrupt"
            )));
        }
        if len > bytes.len() {
            return Err(corrupt(format!(
                "truncated: the header claims {len} bytes, the file has {}",
                bytes.len()
            )));
        }
        let stored = LE::read_u32(&bytes[len - 4..len]);
        if crc(&bytes[..len - 4]) != stored {
            return Err(corrupt(format!(
                "header checksum mismatch (bytes 0..{len}); the header is corrupt"
            )));
        }
        let h = &bytes[..len - 4];
        let code = LE::read_u16(&h[12..14]);
        let id = CodecId::from_code(code).ok_or_else(|| {
            corrupt(format!(
                "unknown codec id {code}: written by a newer vectro? upgrade vectro"
            ))
        })?;
        let flags = LE::read_u16(&h[14..16]);
        let unknown = || {
            corrupt(format!(
                "unknown header flags {flags:#x}: written by a newer vectro? upgrade vectro"
            ))
        };
        let id_kind = IdKind::from_flags(flags).ok_or_else(unknown)?;
        let payload = flags & FLAG_PAYLOAD != 0;
        let tiered = flags & FLAG_TIERS != 0;
        let stage = PayloadStage::from_flags(flags & !ids::FLAG_MASK & !FLAG_PAYLOAD & !FLAG_TIERS)
            .ok_or_else(unknown)?;
        if tiered && stage != PayloadStage::Plain {
            return Err(corrupt(
                "header flags 0x1 (zstd) and 0x10 (tiers) together: tiers are stored plain; the header is corrupt".into(),
            ));
        }
        let rows = LE::read_u64(&h[16..24]);
        let dims = LE::read_u32(&h[24..28]);
        let chunk_rows = LE::read_u32(&h[28..32]);
        let source_dtype = Dtype::from_code(h[32])
            .ok_or_else(|| corrupt(format!("unknown source dtype code {}", h[32])))?;
        if rows == 0 || dims == 0 || chunk_rows == 0 {
            return Err(corrupt(format!(
                "invalid shape: rows {rows}, dims {dims}, chunk rows {chunk_rows}"
            )));
        }
        let mut cur = Cursor { b: h, i: 36 };
        let params = cur
            .bytes_u32()
            .ok_or_else(|| corrupt("codec parameters run past the header".into()))?
            .to_vec();
        let mut tiers = Vec::new();
        if tiered {
            let n = cur
                .u32()
                .ok_or_else(|| corrupt("the tier list runs past the header".into()))?
                as usize;
            if !(1..=MAX_TIERS).contains(&n) {
                return Err(corrupt(format!(
                    "the header lists {n} search tiers (1 to {MAX_TIERS} allowed); the header is corrupt"
                )));
            }
            for t in 0..n {
                let head = cur
                    .take(4)
                    .ok_or_else(|| corrupt("the tier list runs past the header".into()))?;
                let code = LE::read_u16(&head[0..2]);
                if head[2..4] != [0, 0] {
                    return Err(corrupt(format!(
                        "tier {t}: reserved bytes are not zero; the header is corrupt"
                    )));
                }
                let id = CodecId::from_code(code).ok_or_else(|| {
                    corrupt(format!(
                        "tier {t}: unknown codec id {code}: written by a newer vectro? upgrade vectro"
                    ))
                })?;
                let params = cur
                    .bytes_u32()
                    .ok_or_else(|| corrupt("the tier list runs past the header".into()))?
                    .to_vec();
                tiers.push(CodecSpec { id, params });
            }
        }
        let count = cur
            .u32()
            .ok_or_else(|| corrupt("metadata runs past the header".into()))?;
        let mut metadata = Metadata::new();
        for _ in 0..count {
            let (k, v) = cur
                .bytes_u32()
                .zip(cur.bytes_u32())
                .ok_or_else(|| corrupt("metadata runs past the header".into()))?;
            let k = String::from_utf8_lossy(k).into_owned();
            metadata.insert(k, String::from_utf8_lossy(v).into_owned());
        }
        if cur.i != h.len() {
            return Err(corrupt("unexpected bytes at the end of the header".into()));
        }
        let header = Header {
            codec: CodecSpec { id, params },
            rows,
            dims,
            chunk_rows,
            source_dtype,
            metadata,
            stage,
            ids: id_kind,
            payload,
            tiers,
        };
        Ok((header, len))
    }
}

fn push_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn u32(&mut self) -> Option<u32> {
        let s = self.b.get(self.i..self.i.checked_add(4)?)?;
        self.i += 4;
        Some(LE::read_u32(s))
    }

    fn bytes_u32(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        let mut metadata = Metadata::new();
        metadata.insert("source".into(), "x.npy".into());
        Header {
            codec: CodecSpec {
                id: CodecId::Int8,
                params: vec![],
            },
            rows: 10,
            dims: 3,
            chunk_rows: 4,
            source_dtype: Dtype::F32Le,
            metadata,
            stage: PayloadStage::Plain,
            ids: IdKind::None,
            payload: false,
            tiers: Vec::new(),
        }
    }

    #[test]
    fn round_trips() {
        let h = sample();
        let bytes = h.encode();
        let (back, len) = Header::decode(Path::new("x"), &bytes).unwrap();
        assert_eq!(back, h);
        assert_eq!(len, bytes.len());
        assert_eq!(h.chunk_count(), 3);
        assert_eq!(h.rows_in_chunk(2), 2);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(Header::decode(Path::new("x"), &b).is_err(), "byte {i}");
        }
    }

    #[test]
    fn container_len_is_what_the_writer_writes() {
        // compress reserves this many bytes up front, so it must be exact.
        for (rows, chunk_rows) in [(0u64, 4u32), (1, 4), (4, 4), (10, 4), (10, 1), (9, 100)] {
            let h = Header {
                rows,
                chunk_rows,
                ..sample()
            };
            let payload = |r: u64| r * (3 + 4);
            let mut w = crate::format::ContainerWriter::new(Vec::new(), h.clone()).unwrap();
            for i in 0..h.chunk_count() {
                let r = h.rows_in_chunk(i);
                w.write_chunk(r, &vec![0u8; payload(r) as usize]).unwrap();
            }
            let bytes = w.finish().unwrap();
            assert_eq!(
                h.container_len(payload),
                bytes.len() as u64,
                "{rows} rows / {chunk_rows}"
            );
        }
    }

    #[test]
    fn zstd_stage_is_flag_bit_0() {
        let mut h = sample();
        h.stage = PayloadStage::Zstd;
        let bytes = h.encode();
        assert_eq!(LE::read_u16(&bytes[14..16]), 1);
        assert_eq!(Header::decode(Path::new("x"), &bytes).unwrap().0, h);
    }

    #[test]
    fn payload_columns_are_flag_bit_3_of_minor_5() {
        for ids in [IdKind::None, IdKind::U64, IdKind::Str] {
            let h = Header {
                ids,
                payload: true,
                ..sample()
            };
            let bytes = h.encode();
            assert_eq!(LE::read_u16(&bytes[14..16]), 8 | ids.flags());
            assert_eq!(LE::read_u16(&bytes[6..8]), 5);
            assert_eq!(Header::decode(Path::new("x"), &bytes).unwrap().0, h);
            // A 1.4 reader knew bits 0..=2 only.
            assert_eq!(IdKind::from_flags(8), Some(IdKind::None));
            assert_eq!(PayloadStage::from_flags(8 | ids.flags() & !6), None);
        }
    }

    #[test]
    fn ids_are_flag_bits_1_and_2_of_minor_4_and_a_1_3_reader_refuses_them() {
        for (ids, bit) in [(IdKind::U64, 2u16), (IdKind::Str, 4)] {
            for stage in [PayloadStage::Plain, PayloadStage::Zstd] {
                let h = Header {
                    ids,
                    stage,
                    ..sample()
                };
                let bytes = h.encode();
                let flags = LE::read_u16(&bytes[14..16]);
                assert_eq!(flags, bit | stage.flags());
                assert_eq!(LE::read_u16(&bytes[6..8]), 4);
                assert_eq!(Header::decode(Path::new("x"), &bytes).unwrap().0, h);
                // Format 1.3 read the flags as the payload stage's alone.
                assert_eq!(PayloadStage::from_flags(flags), None);
            }
        }
        assert_eq!(LE::read_u16(&sample().encode()[6..8]), 3, "no ids: 1.3");
        let mut b = sample().encode();
        b[14] = 6;
        let at = b.len() - 4;
        let c = crc(&b[..at]);
        b[at..].copy_from_slice(&c.to_le_bytes());
        let e = Header::decode(Path::new("x"), &b).unwrap_err().to_string();
        assert!(e.contains("unknown header flags 0x6"), "{e}");
    }

    #[test]
    fn tiers_are_flag_bit_4_of_minor_6_and_a_1_5_reader_refuses_them() {
        for ids in [IdKind::None, IdKind::U64] {
            for payload in [false, true] {
                let h = Header {
                    ids,
                    payload,
                    tiers: vec![CodecSpec {
                        id: CodecId::Binary,
                        params: vec![1; 20],
                    }],
                    ..sample()
                };
                let bytes = h.encode();
                let flags = LE::read_u16(&bytes[14..16]);
                assert_eq!(flags & 0x10, 0x10);
                assert_eq!(LE::read_u16(&bytes[6..8]), 6);
                assert_eq!(Header::decode(Path::new("x"), &bytes).unwrap().0, h);
                // A 1.5 reader knew bits 0..=3 only: bit 4 is an unknown stage flag to it.
                assert_eq!(
                    PayloadStage::from_flags(flags & !ids::FLAG_MASK & !FLAG_PAYLOAD),
                    None
                );
            }
        }
        let zstd = Header {
            stage: PayloadStage::Zstd,
            tiers: vec![CodecSpec {
                id: CodecId::Binary,
                params: vec![],
            }],
            ..sample()
        };
        let e = Header::decode(Path::new("x"), &zstd.encode())
            .unwrap_err()
            .to_string();
        assert!(e.contains("tiers are stored plain"), "{e}");
        let mut unknown = zstd.clone();
        unknown.stage = PayloadStage::Plain;
        let mut b = unknown.encode();
        // The tier's codec id follows the tier count after the (empty) params.
        b[44..46].copy_from_slice(&999u16.to_le_bytes());
        let at = b.len() - 4;
        let c = crc(&b[..at]);
        b[at..].copy_from_slice(&c.to_le_bytes());
        let e = Header::decode(Path::new("x"), &b).unwrap_err().to_string();
        assert!(e.contains("tier 0: unknown codec id 999"), "{e}");
    }

    #[test]
    fn newer_major_is_named() {
        let mut b = sample().encode();
        b[4] = 9;
        let e = Header::decode(Path::new("x"), &b).unwrap_err().to_string();
        assert!(e.contains("newer vectro"), "{e}");
    }
}
