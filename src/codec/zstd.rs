//! The zstd stage (bytes→bytes): each chunk's payload is compressed on its own, so chunks
//! still decode independently and random access costs one chunk's decompression.
//!
//! The container records it as header flag bit 0. A compressed chunk's payload is one
//! zstd frame whose content, decompressed, is exactly the codec's payload
//! (`encoded_len(rows)` bytes); the chunk header's payload length is the frame's length.

use std::borrow::Cow;

use crate::error::{Error, Result};

/// The lowest and highest levels accepted (zstd's negative "fast" levels included).
pub const LEVELS: std::ops::RangeInclusive<i32> = -7..=22;

/// How chunk payloads are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadStage {
    /// The codec's payload as is; its length is exactly `encoded_len(rows)`.
    #[default]
    Plain,
    /// One zstd frame per chunk.
    Zstd,
}

impl PayloadStage {
    /// The header flag bits that record this stage.
    pub fn flags(self) -> u16 {
        match self {
            PayloadStage::Plain => 0,
            PayloadStage::Zstd => 1,
        }
    }

    /// The stage recorded by header `flags`, or `None` if the flags hold unknown bits.
    pub fn from_flags(flags: u16) -> Option<PayloadStage> {
        match flags {
            0 => Some(PayloadStage::Plain),
            1 => Some(PayloadStage::Zstd),
            _ => None,
        }
    }

    /// Whether a stored payload of `stored` bytes can hold a codec payload of `plain` bytes.
    /// Exact for plain chunks; for zstd, between the smallest frame and zstd's bound.
    pub fn payload_len_ok(self, stored: u64, plain: usize) -> bool {
        match self {
            PayloadStage::Plain => stored == plain as u64,
            PayloadStage::Zstd => {
                stored >= MIN_FRAME && stored <= zstd::zstd_safe::compress_bound(plain) as u64
            }
        }
    }

    /// The codec payload of a stored chunk payload (`plain` bytes once decompressed).
    ///
    /// # Errors
    /// A message (without the file name) when the frame is invalid or its size is wrong.
    pub fn unstage<'a>(
        self,
        stored: &'a [u8],
        plain: usize,
    ) -> std::result::Result<Cow<'a, [u8]>, String> {
        match self {
            PayloadStage::Plain => Ok(Cow::Borrowed(stored)),
            PayloadStage::Zstd => {
                let mut out = vec![0u8; plain];
                let n = zstd::bulk::decompress_to_buffer(stored, &mut out[..])
                    .map_err(|e| format!("zstd frame does not decompress ({e})"))?;
                if n != plain {
                    return Err(format!(
                        "zstd frame holds {n} bytes, the codec needs {plain}"
                    ));
                }
                Ok(Cow::Owned(out))
            }
        }
    }
}

/// Bytes of the smallest zstd frame (magic, frame header, one empty block).
const MIN_FRAME: u64 = 9;

/// Compresses one chunk payload at `level` into `out` (cleared first).
///
/// # Errors
/// [`Error::Config`] if zstd refuses the level (it does not fail on valid input otherwise).
pub fn compress_into(payload: &[u8], level: i32, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    out.reserve(zstd::zstd_safe::compress_bound(payload.len()));
    zstd::bulk::Compressor::new(level)
        .and_then(|mut c| c.compress_to_buffer(payload, out))
        .map_err(|e| Error::Config(format!("zstd level {level}: {e}")))?;
    Ok(())
}

/// Checks a `--zstd` level.
///
/// # Errors
/// [`Error::Config`] with the valid range.
pub fn check_level(level: i32) -> Result<()> {
    if LEVELS.contains(&level) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "--zstd {level} is out of range; use {}..={} (3 is a good default)",
            LEVELS.start(),
            LEVELS.end()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_checks_sizes() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| (i % 7) as u8).collect();
        let mut z = Vec::new();
        compress_into(&payload, 3, &mut z).unwrap();
        assert!(z.len() < payload.len() / 10);
        let s = PayloadStage::Zstd;
        assert!(s.payload_len_ok(z.len() as u64, payload.len()));
        assert_eq!(s.unstage(&z, payload.len()).unwrap(), &payload[..]);
        assert!(s.unstage(&z, payload.len() + 1).is_err(), "size is checked");
        let mut bad = z.clone();
        bad[0] ^= 1;
        assert!(s.unstage(&bad, payload.len()).is_err());
        assert!(!PayloadStage::Plain.payload_len_ok(9, 10));
        assert!(!s.payload_len_ok(0, 10));
    }

    #[test]
    fn flags_round_trip() {
        for s in [PayloadStage::Plain, PayloadStage::Zstd] {
            assert_eq!(PayloadStage::from_flags(s.flags()), Some(s));
        }
        assert_eq!(PayloadStage::from_flags(2), None);
    }
}
