//! Row ids (format 1.4): one id per row, an unsigned 64-bit integer or a UTF-8 string,
//! stored in each chunk after the codec payload and covered by the chunk crc.
//!
//! ```text
//! chunk of n rows, header flag bit 1 (u64 ids):
//! +------------+-------------------------+------------------+-------+
//! | header 36  | codec payload (staged)  | n × u64 ids      | crc32c|
//! +------------+-------------------------+------------------+-------+
//!              |<------- payload length L in the chunk header ---->|
//!
//! chunk of n rows, header flag bit 2 (string ids):
//! +------------+-------------------------+-----------+----------------+-------+
//! | header 36  | codec payload (staged)  | B bytes:  | n × u32 ends   | crc32c|
//! |            |                         | the ids,  | end[j] = where |       |
//! |            |                         | UTF-8,    | id j ends in   |       |
//! |            |                         | back to   | the B bytes;   |       |
//! |            |                         | back      | end[n-1] = B   |       |
//! +------------+-------------------------+-----------+----------------+-------+
//! ```
//!
//! The id block ends the payload, so the chunk framing (header, `L`, crc) is the same as
//! without ids: every reader that walks chunks (recovery scan, `verify`, the streaming
//! decompressor, `merge`) finds them unchanged, and merge copies ids with the payload. The
//! block is read from its end: for string ids the last `u32` is `B`, so the block is
//! `B + 4n` bytes and the codec payload is what precedes it. Reading one row is still one
//! seek (the chunk), and a row's id is two offsets and a slice.
//!
//! Like Arrow's and Lance's variable-length columns (an offsets buffer beside one data
//! buffer) rather than length-prefixed items, so that id `j` is found without walking ids
//! `0..j`; the offsets come after the data so that the block's length is its last field.

use std::ops::Range;

use byteorder::{ByteOrder, LittleEndian as LE};
use serde::Serialize;

use crate::error::Result;

/// The longest id accepted, in UTF-8 bytes.
pub const MAX_ID_BYTES: usize = 4096;
/// The most bytes of string ids one chunk may hold (offsets aside): 256 MiB.
pub const MAX_CHUNK_ID_BYTES: u64 = 1 << 28;

/// Header flag bit: chunks carry u64 ids.
pub(crate) const FLAG_U64: u16 = 1 << 1;
/// Header flag bit: chunks carry string ids.
pub(crate) const FLAG_STR: u16 = 1 << 2;
/// Every id flag bit.
pub(crate) const FLAG_MASK: u16 = FLAG_U64 | FLAG_STR;

/// What kind of ids a container's rows carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IdKind {
    /// No stored ids: a row's id is its global row number (a shard's rows count from its
    /// first row in the whole input).
    #[default]
    None,
    /// Unsigned 64-bit integers.
    U64,
    /// UTF-8 strings, 1 to [`MAX_ID_BYTES`] bytes each.
    #[serde(rename = "string")]
    Str,
}

impl IdKind {
    /// The header flag bits of this kind.
    pub(crate) fn flags(self) -> u16 {
        match self {
            IdKind::None => 0,
            IdKind::U64 => FLAG_U64,
            IdKind::Str => FLAG_STR,
        }
    }

    /// The kind the id flag bits of `flags` record; `None` for both bits at once.
    pub(crate) fn from_flags(flags: u16) -> Option<IdKind> {
        match flags & FLAG_MASK {
            0 => Some(IdKind::None),
            FLAG_U64 => Some(IdKind::U64),
            FLAG_STR => Some(IdKind::Str),
            _ => None,
        }
    }

    /// `none`, `u64` or `string`, as `info` prints it.
    pub fn name(self) -> &'static str {
        match self {
            IdKind::None => "none",
            IdKind::U64 => "u64",
            IdKind::Str => "string",
        }
    }
}

/// One id, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Id<'a> {
    /// An integer id (or a row number, for a container without ids).
    U64(u64),
    /// A string id.
    Str(&'a str),
}

impl std::fmt::Display for Id<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Id::U64(v) => write!(f, "{v}"),
            Id::Str(s) => f.write_str(s),
        }
    }
}

impl Id<'_> {
    /// Appends the id as a JSON value: a number, or a string with JSON escapes.
    pub fn push_json(&self, buf: &mut Vec<u8>) {
        match self {
            Id::U64(v) => buf.extend_from_slice(v.to_string().as_bytes()),
            Id::Str(s) => {
                // serde_json escapes exactly what JSON requires.
                let _ = serde_json::to_writer(&mut *buf, s);
            }
        }
    }
}

/// The ids of a run of rows: what an [`IdSource`] yields and a chunk stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdColumn {
    /// Integer ids.
    U64(Vec<u64>),
    /// String ids.
    Str(Vec<String>),
}

impl IdColumn {
    /// How many ids.
    pub fn len(&self) -> usize {
        match self {
            IdColumn::U64(v) => v.len(),
            IdColumn::Str(v) => v.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind of ids held.
    pub fn kind(&self) -> IdKind {
        match self {
            IdColumn::U64(_) => IdKind::U64,
            IdColumn::Str(_) => IdKind::Str,
        }
    }

    /// Id `i`.
    ///
    /// # Panics
    /// If `i` is out of range.
    pub fn get(&self, i: usize) -> Id<'_> {
        match self {
            IdColumn::U64(v) => Id::U64(v[i]),
            IdColumn::Str(v) => Id::Str(&v[i]),
        }
    }
}

/// Where the ids of a compress run's rows come from: a `.npy` or text file of ids, or a
/// column of a table input. The encode core asks for the ids of each chunk's rows, by the
/// rows' numbers in the whole input, in increasing order (a resumed or sharded run starts
/// past row 0), from the writer thread.
pub trait IdSource: Send {
    /// The kind of ids every call returns.
    fn kind(&self) -> IdKind;
    /// How many ids there are: the input's row count, checked before anything is written.
    fn rows(&self) -> u64;
    /// The ids of rows `rows` (numbered in the whole input); never called with a range
    /// before one already asked for, so a source may read forward only.
    ///
    /// # Errors
    /// A bad id (empty, not UTF-8, too long) or an I/O error, naming the source and row.
    fn ids(&mut self, rows: Range<u64>) -> Result<IdColumn>;
}

/// Ids held in memory, one per row from row 0: for [`crate::stream::Compressor::ids`].
impl IdSource for IdColumn {
    fn kind(&self) -> IdKind {
        IdColumn::kind(self)
    }

    fn rows(&self) -> u64 {
        self.len() as u64
    }

    fn ids(&mut self, rows: Range<u64>) -> Result<IdColumn> {
        let r = rows.start as usize..rows.end as usize;
        if r.end > self.len() {
            return Err(crate::error::Error::Config(format!(
                "ids asked for rows {}..{} of {}",
                r.start,
                r.end,
                self.len()
            )));
        }
        Ok(match self {
            IdColumn::U64(v) => IdColumn::U64(v[r].to_vec()),
            IdColumn::Str(v) => IdColumn::Str(v[r].to_vec()),
        })
    }
}

/// Why a string id cannot be stored, if it cannot; `None` when it is fine.
pub fn check_str_id(id: &[u8]) -> Option<String> {
    if id.is_empty() {
        return Some("is empty (ids must have 1 to 4096 bytes)".into());
    }
    if id.len() > MAX_ID_BYTES {
        return Some(format!(
            "is {} bytes long, over the limit of {MAX_ID_BYTES}",
            id.len()
        ));
    }
    if let Err(e) = std::str::from_utf8(id) {
        return Some(format!(
            "is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ));
    }
    None
}

/// Appends the id block of `ids` to `out`.
///
/// # Errors
/// A message if the ids' bytes exceed [`MAX_CHUNK_ID_BYTES`] or an id is bad (the sources
/// check ids first; this is the last line).
pub fn encode_block(ids: &IdColumn, out: &mut Vec<u8>) -> std::result::Result<(), String> {
    match ids {
        IdColumn::U64(v) => {
            out.reserve(v.len() * 8);
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        IdColumn::Str(v) => {
            let total: u64 = v.iter().map(|s| s.len() as u64).sum();
            if total > MAX_CHUNK_ID_BYTES {
                return Err(format!(
                    "the ids of {} rows take {total} bytes, over the limit of {MAX_CHUNK_ID_BYTES} a chunk; use a smaller --chunk-rows",
                    v.len()
                ));
            }
            out.reserve(total as usize + v.len() * 4);
            for (j, s) in v.iter().enumerate() {
                if let Some(why) = check_str_id(s.as_bytes()) {
                    return Err(format!("id {j} of the chunk {why}"));
                }
                out.extend_from_slice(s.as_bytes());
            }
            let mut end = 0u32;
            for s in v {
                end += s.len() as u32;
                out.extend_from_slice(&end.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// Bytes of the id block of `rows` ids of `kind` could take: `(least, most)`.
pub(crate) fn block_len_bounds(kind: IdKind, rows: u64) -> (u64, u64) {
    match kind {
        IdKind::None => (0, 0),
        IdKind::U64 => (8 * rows, 8 * rows),
        IdKind::Str => (
            5 * rows,
            4 * rows + MAX_CHUNK_ID_BYTES.min(rows * MAX_ID_BYTES as u64),
        ),
    }
}

/// The length of the id block at the end of a chunk's `stored` payload of `rows` rows.
///
/// # Errors
/// A message when the block cannot fit.
pub(crate) fn block_len(
    kind: IdKind,
    stored: &[u8],
    rows: u64,
) -> std::result::Result<usize, String> {
    let len = match kind {
        IdKind::None => return Ok(0),
        IdKind::U64 => 8 * rows,
        IdKind::Str => {
            let b = stored
                .len()
                .checked_sub(4)
                .map(|at| LE::read_u32(&stored[at..]) as u64)
                .ok_or("the payload is too short for its ids")?;
            if b > MAX_CHUNK_ID_BYTES {
                return Err(format!(
                    "its ids claim {b} bytes, over the limit of {MAX_CHUNK_ID_BYTES}"
                ));
            }
            b + 4 * rows
        }
    };
    usize::try_from(len)
        .ok()
        .filter(|&l| l <= stored.len())
        .ok_or_else(|| {
            format!(
                "its ids take {len} bytes, more than its {}-byte payload",
                stored.len()
            )
        })
}

/// Decodes and checks the id block `block` of a chunk of `rows` rows; `want` selects the
/// chunk's rows whose ids are returned.
///
/// # Errors
/// A message naming the first bad id (offsets out of order, empty, not UTF-8, too long).
pub(crate) fn decode_block(
    kind: IdKind,
    block: &[u8],
    rows: usize,
    want: Range<usize>,
) -> std::result::Result<IdColumn, String> {
    match kind {
        IdKind::None => Err("the container holds no ids".into()),
        IdKind::U64 => Ok(IdColumn::U64(
            block[want.start * 8..want.end * 8]
                .chunks_exact(8)
                .map(LE::read_u64)
                .collect(),
        )),
        IdKind::Str => {
            let (data, ends) = block.split_at(block.len() - 4 * rows);
            let end = |j: usize| LE::read_u32(&ends[4 * j..4 * j + 4]) as usize;
            let mut out = Vec::with_capacity(want.len());
            let mut start = if want.start == 0 {
                0
            } else {
                end(want.start - 1)
            };
            for j in want {
                let e = end(j);
                let id = data.get(start..e).filter(|_| e >= start).ok_or_else(|| {
                    format!("id {j} has offsets {start}..{e}, out of order or past the ids' bytes")
                })?;
                if let Some(why) = check_str_id(id) {
                    return Err(format!("id {j} {why}"));
                }
                out.push(std::str::from_utf8(id).expect("checked").to_owned());
                start = e;
            }
            Ok(IdColumn::Str(out))
        }
    }
}

/// Checks every id of a chunk's block: offsets in order and ending at the data's end, and
/// each id sound.
///
/// # Errors
/// A message naming the first bad id.
pub(crate) fn check_block(
    kind: IdKind,
    block: &[u8],
    rows: usize,
) -> std::result::Result<(), String> {
    if kind == IdKind::Str {
        let data = block.len() - 4 * rows;
        let last = rows
            .checked_sub(1)
            .map_or(0, |j| LE::read_u32(&block[data + 4 * j..]) as usize);
        if last != data {
            return Err(format!(
                "its last id ends at byte {last} of {data} bytes of ids"
            ));
        }
    }
    decode_block(kind, block, rows, 0..rows).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> IdColumn {
        IdColumn::Str(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn blocks_round_trip_and_are_found_from_their_end() {
        for ids in [
            IdColumn::U64(vec![7, u64::MAX, 0]),
            strs(&["a", "ünïcode", "x\ny\"z"]),
        ] {
            let mut payload = vec![9u8; 13];
            encode_block(&ids, &mut payload).unwrap();
            let len = block_len(ids.kind(), &payload, 3).unwrap();
            assert_eq!(len, payload.len() - 13);
            let block = &payload[13..];
            check_block(ids.kind(), block, 3).unwrap();
            assert_eq!(decode_block(ids.kind(), block, 3, 0..3).unwrap(), ids);
            let tail = decode_block(ids.kind(), block, 3, 1..3).unwrap();
            assert_eq!(tail.get(1), ids.get(2));
        }
    }

    #[test]
    fn bad_blocks_are_named() {
        let mut b = Vec::new();
        encode_block(&strs(&["ab", "c"]), &mut b).unwrap();
        // The first id's end moved past the data.
        let mut bad = b.clone();
        bad[3] = 4;
        let e = check_block(IdKind::Str, &bad, 2).unwrap_err();
        assert!(e.contains("out of order"), "{e}");
        // The last end short of the data.
        let mut bad = b.clone();
        bad[7] = 2;
        let e = check_block(IdKind::Str, &bad, 2).unwrap_err();
        assert!(e.contains("ends at byte 2"), "{e}");
        // An empty id.
        let mut bad = b.clone();
        bad[3] = 0;
        assert!(
            check_block(IdKind::Str, &bad, 2)
                .unwrap_err()
                .contains("empty")
        );
        // Not UTF-8.
        let mut bad = b.clone();
        bad[0] = 0xff;
        assert!(
            check_block(IdKind::Str, &bad, 2)
                .unwrap_err()
                .contains("UTF-8")
        );
        // A length past the payload.
        assert!(block_len(IdKind::Str, &[0, 0, 0, 9], 1).is_err());
        assert!(block_len(IdKind::U64, &[0; 7], 1).is_err());
        // The writer refuses what the reader would.
        assert!(encode_block(&strs(&[""]), &mut Vec::new()).is_err());
        let long = "x".repeat(MAX_ID_BYTES + 1);
        assert!(encode_block(&strs(&[&long]), &mut Vec::new()).is_err());
    }

    #[test]
    fn flags_are_bits_1_and_2() {
        for k in [IdKind::None, IdKind::U64, IdKind::Str] {
            assert_eq!(IdKind::from_flags(k.flags() | 1), Some(k));
        }
        assert_eq!(IdKind::from_flags(6), None);
    }

    #[test]
    fn ids_are_json() {
        let mut b = Vec::new();
        Id::Str("a\"b").push_json(&mut b);
        b.push(b' ');
        Id::U64(u64::MAX).push_json(&mut b);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "\"a\\\"b\" 18446744073709551615"
        );
    }
}
