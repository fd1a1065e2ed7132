//! Id files for `compress --ids`: the [`IdSource`]s of a `.npy` of integers or strings and
//! of a text file with one id per line, and the step that appends a chunk's ids to its
//! payload on the writer thread.
//!
//! - `.npy`, 1-D (or `(rows, 1)`), C order: `<u8`/`<i8`/`<u4`/`<i4` (and `|u1`/`|i1`,
//!   `<u2`/`<i2`) become u64 ids (a negative value is refused); `<U…` (numpy's fixed-width
//!   unicode, what `np.save` writes for an array of `str`) and `|S…` (bytes, taken as
//!   UTF-8) become string ids, their trailing NULs (numpy's padding) removed.
//! - Any other file: UTF-8 text, one string id per line; a final newline is optional and
//!   a `\r` before a `\n` is dropped (files from Windows).
//!
//! Every id is checked when the file is opened, before anything is written: an empty id,
//! one over [`MAX_ID_BYTES`] bytes, text that is not UTF-8 or a negative integer is refused
//! naming the file and row (numbered from 0, as `get` numbers rows). Duplicates are not
//! looked for: that takes memory in proportion to the rows (see docs/random-access.md).

use std::ops::Range;
use std::path::{Path, PathBuf};

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::error::{Error, Result};
use crate::format::ids::{MAX_ID_BYTES, check_str_id};
use crate::format::{IdColumn, IdKind, IdSource};
use crate::mapping::Map;

/// Opens the id file `path` (see the module documentation for what it may hold) and
/// checks every id in it.
///
/// # Errors
/// [`Error::BadNpy`] naming the file (and row) for an unsupported or bad file;
/// [`Error::Io`] if it cannot be read.
pub fn open_ids(path: &Path) -> Result<Box<dyn IdSource>> {
    let file = crate::input::open_input(path)?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::bad_npy(
            path,
            "--ids: is a directory, not a file of ids",
        ));
    }
    let map = Map::new(&file, path)?;
    let is_npy = map.starts_with(b"\x93NUMPY");
    let source: Box<dyn IdSource> = if is_npy {
        Box::new(NpyIds::open(path, map)?)
    } else {
        Box::new(TextIds::open(path, map)?)
    };
    if source.rows() == 0 {
        return Err(Error::bad_npy(path, "--ids: the file holds no ids"));
    }
    Ok(source)
}

/// The element type of an ids `.npy`.
#[derive(Debug, Clone, Copy)]
enum NpyElem {
    /// An integer of this many bytes, signed or not.
    Int { size: usize, signed: bool },
    /// `<U{chars}`: UTF-32LE code points, NUL-padded.
    Unicode { chars: usize },
    /// `|S{bytes}`: bytes, NUL-padded, taken as UTF-8.
    Bytes { bytes: usize },
}

impl NpyElem {
    fn parse(descr: &str) -> Option<NpyElem> {
        let (order, rest) = descr.split_at(descr.len().min(1));
        let (kind, width) = rest.split_at(rest.len().min(1));
        let width: usize = width.parse().ok()?;
        let little = order == "<" || order == "|";
        match kind {
            "u" | "i" if little && matches!(width, 1 | 2 | 4 | 8) => Some(NpyElem::Int {
                size: width,
                signed: kind == "i",
            }),
            "U" if (order == "<" || order == "|") && width > 0 => {
                Some(NpyElem::Unicode { chars: width })
            }
            "S" if width > 0 => Some(NpyElem::Bytes { bytes: width }),
            _ => None,
        }
    }

    fn size(self) -> usize {
        match self {
            NpyElem::Int { size, .. } => size,
            NpyElem::Unicode { chars } => 4 * chars,
            NpyElem::Bytes { bytes } => bytes,
        }
    }
}

/// Ids in a `.npy`, memory-mapped.
struct NpyIds {
    path: PathBuf,
    map: Map,
    elem: NpyElem,
    data_offset: usize,
    rows: u64,
}

impl NpyIds {
    fn open(path: &Path, map: Map) -> Result<NpyIds> {
        let bad = |msg: String| Error::bad_npy(path, format!("--ids: {msg}"));
        let b: &[u8] = &map;
        let (text, data_offset) = match b.get(6) {
            Some(1) if b.len() >= 10 => (10, 10 + LE::read_u16(&b[8..10]) as usize),
            Some(2 | 3) if b.len() >= 12 => (12, 12 + LE::read_u32(&b[8..12]) as usize),
            _ => {
                return Err(bad(
                    "not a .npy file this build can read (bad version)".into()
                ));
            }
        };
        let header = b
            .get(text..data_offset)
            .and_then(|h| std::str::from_utf8(h).ok())
            .ok_or_else(|| bad("the .npy header is truncated or not text".into()))?;
        let (descr, fortran, shape) =
            crate::npy::parse_header_fields(header).map_err(|m| bad(m.to_string()))?;
        let elem = NpyElem::parse(&descr).ok_or_else(|| {
            bad(format!(
                "dtype '{descr}' cannot hold ids; save unsigned or non-negative integers \
                 (np.uint64, np.int64) or strings (an array of str, dtype '<U…')"
            ))
        })?;
        let rows = match shape[..] {
            [n] => n,
            [n, 1] => n,
            _ => {
                return Err(bad(format!(
                    "shape {shape:?} is not 1-D; ids are one per row: save ids.reshape(-1)"
                )));
            }
        };
        if fortran && shape.len() > 1 {
            return Err(bad(
                "array is in Fortran order; save np.ascontiguousarray(ids)".into(),
            ));
        }
        let need = rows
            .checked_mul(elem.size() as u64)
            .and_then(|n| n.checked_add(data_offset as u64));
        if need.is_none_or(|n| n > b.len() as u64) {
            return Err(bad(format!(
                "the file is truncated: {rows} ids of {} bytes need {} bytes, the file has {}",
                elem.size(),
                need.map_or_else(|| "more".into(), |n| n.to_string()),
                b.len()
            )));
        }
        let ids = NpyIds {
            path: path.to_path_buf(),
            map,
            elem,
            data_offset,
            rows,
        };
        // Every id is checked now, so that a bad one stops the run before it writes.
        let mut row = 0;
        while row < rows {
            let end = rows.min(row + 65536);
            ids.read(row..end)?;
            row = end;
        }
        Ok(ids)
    }

    fn read(&self, rows: Range<u64>) -> Result<IdColumn> {
        let size = self.elem.size();
        let at = |r: u64| self.data_offset + r as usize * size;
        let bytes = &self.map[at(rows.start)..at(rows.end)];
        let bad = |k: usize, why: String| {
            Error::bad_npy(
                &self.path,
                format!("--ids: row {}: the id {why}", rows.start + k as u64),
            )
        };
        let out = match self.elem {
            NpyElem::Int { size, signed } => {
                let mut v = Vec::with_capacity(bytes.len() / size);
                for (k, b) in bytes.chunks_exact(size).enumerate() {
                    let x = LE::read_uint(b, size);
                    if signed && b[size - 1] & 0x80 != 0 {
                        let neg = LE::read_int(b, size);
                        return Err(bad(k, format!("{neg} is negative; ids are unsigned")));
                    }
                    v.push(x);
                }
                IdColumn::U64(v)
            }
            NpyElem::Unicode { chars } => {
                let mut v = Vec::with_capacity(bytes.len() / size);
                for (k, b) in bytes.chunks_exact(4 * chars).enumerate() {
                    let mut s = String::new();
                    for c in b.chunks_exact(4).map(LE::read_u32) {
                        if c == 0 {
                            break;
                        }
                        let ch = char::from_u32(c).ok_or_else(|| {
                            bad(k, format!("holds {c:#x}, which is not a Unicode character"))
                        })?;
                        s.push(ch);
                    }
                    if let Some(why) = check_str_id(s.as_bytes()) {
                        return Err(bad(k, why));
                    }
                    v.push(s);
                }
                IdColumn::Str(v)
            }
            NpyElem::Bytes { bytes: width } => {
                let mut v = Vec::with_capacity(bytes.len() / size);
                for (k, b) in bytes.chunks_exact(width).enumerate() {
                    let end = b.iter().rposition(|&c| c != 0).map_or(0, |i| i + 1);
                    if let Some(why) = check_str_id(&b[..end]) {
                        return Err(bad(k, why));
                    }
                    v.push(String::from_utf8_lossy(&b[..end]).into_owned());
                }
                IdColumn::Str(v)
            }
        };
        self.map.check()?;
        Ok(out)
    }
}

impl IdSource for NpyIds {
    fn kind(&self) -> IdKind {
        match self.elem {
            NpyElem::Int { .. } => IdKind::U64,
            _ => IdKind::Str,
        }
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn ids(&mut self, rows: Range<u64>) -> Result<IdColumn> {
        self.read(rows)
    }
}

/// Lines between two remembered line offsets of a text file of ids.
const CHECKPOINT_LINES: u64 = 4096;

/// Ids in a text file, one a line, memory-mapped; the offset of every 4096th line is
/// remembered, so that reading the ids of a range skips at most 4095 lines.
struct TextIds {
    path: PathBuf,
    map: Map,
    /// Byte offset of line `k × CHECKPOINT_LINES`.
    checkpoints: Vec<usize>,
    rows: u64,
}

impl TextIds {
    fn open(path: &Path, map: Map) -> Result<TextIds> {
        let bytes: &[u8] = &map;
        let mut checkpoints = Vec::new();
        let mut rows = 0u64;
        let mut at = 0;
        while at < bytes.len() {
            if rows.is_multiple_of(CHECKPOINT_LINES) {
                checkpoints.push(at);
            }
            let (line, next) = line_at(bytes, at);
            if let Some(why) = check_str_id(line) {
                let hint = match line.first() {
                    None => "; remove empty lines (every row needs an id)",
                    _ if line.len() > MAX_ID_BYTES => "",
                    _ if bytes.starts_with(b"PAR1") => {
                        "; this looks like a Parquet file, not text with one id a line"
                    }
                    _ => "; the file must be UTF-8 text with one id a line, or a .npy",
                };
                return Err(Error::bad_npy(
                    path,
                    format!("--ids: line {} (row {rows}): the id {why}{hint}", rows + 1),
                ));
            }
            rows += 1;
            at = next;
        }
        map.check()?;
        Ok(TextIds {
            path: path.to_path_buf(),
            map,
            checkpoints,
            rows,
        })
    }
}

/// The line starting at `at` (without its `\n` or `\r\n`) and where the next one starts.
fn line_at(bytes: &[u8], at: usize) -> (&[u8], usize) {
    let end = memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i);
    let mut line = &bytes[at..end];
    if let Some(l) = line.strip_suffix(b"\r") {
        line = l;
    }
    (line, end + 1)
}

fn memchr(b: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == b)
}

impl IdSource for TextIds {
    fn kind(&self) -> IdKind {
        IdKind::Str
    }

    fn rows(&self) -> u64 {
        self.rows
    }

    fn ids(&mut self, rows: Range<u64>) -> Result<IdColumn> {
        let bytes: &[u8] = &self.map;
        let k = rows.start / CHECKPOINT_LINES;
        let mut at = self.checkpoints[k as usize];
        let mut out = Vec::with_capacity((rows.end - rows.start) as usize);
        for r in k * CHECKPOINT_LINES..rows.end {
            let (line, next) = line_at(bytes, at);
            if r >= rows.start {
                // Checked when the file was opened; checked again in case it changed.
                let s = std::str::from_utf8(line)
                    .ok()
                    .filter(|s| check_str_id(s.as_bytes()).is_none())
                    .ok_or_else(|| {
                        Error::bad_npy(
                            &self.path,
                            format!("--ids: line {} changed while it was read", r + 1),
                        )
                    })?;
                out.push(s.to_owned());
            }
            at = next;
        }
        self.map.check()?;
        Ok(IdColumn::Str(out))
    }
}

/// Appends the ids of a chunk to its stored payload (`payload`, whose chunk crc is `crc`)
/// and returns the new crc: the id block of FORMAT.md, right after the payload.
///
/// # Errors
/// [`Error::Config`] when the chunk's ids exceed the per-chunk limit (the message says to
/// lower `--chunk-rows`), or [`Error::Mismatch`] if the source gave the wrong count.
pub(crate) fn append_ids(
    payload: &mut Vec<u8>,
    crc: crate::format::ChunkCrc,
    ids: &IdColumn,
    rows: Range<u64>,
) -> Result<crate::format::ChunkCrc> {
    if ids.len() as u64 != rows.end - rows.start {
        return Err(Error::Mismatch(format!(
            "the id source gave {} ids for rows {}..{}",
            ids.len(),
            rows.start,
            rows.end
        )));
    }
    let at = payload.len();
    crate::format::ids::encode_block(ids, payload)
        .map_err(|m| Error::Config(format!("rows {}..{}: {m}", rows.start, rows.end)))?;
    Ok(crc.extend(&payload[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + h.len() + 1) % 64 != 0 {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_text_lines_from_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..10_000).map(|i| format!("id-{i}\r\n")).collect();
        let mut s = open_ids(&write(dir.path(), "ids.txt", text.as_bytes())).unwrap();
        assert_eq!((s.kind(), s.rows()), (IdKind::Str, 10_000));
        let got = s.ids(8190..8193).unwrap();
        assert_eq!(
            got,
            IdColumn::Str(vec!["id-8190".into(), "id-8191".into(), "id-8192".into()])
        );
        // No final newline.
        let mut s = open_ids(&write(dir.path(), "b.txt", b"a\nb")).unwrap();
        assert_eq!(
            s.ids(0..2).unwrap(),
            IdColumn::Str(vec!["a".into(), "b".into()])
        );
    }

    #[test]
    fn reads_npy_integers_and_strings() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = [5i64, 0, i64::MAX]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let mut s = open_ids(&write(dir.path(), "a.npy", &npy("<i8", "(3,)", &data))).unwrap();
        assert_eq!(
            s.ids(1..3).unwrap(),
            IdColumn::U64(vec![0, i64::MAX as u64])
        );
        let data: Vec<u8> = ["ab", "ü"]
            .iter()
            .flat_map(|s| {
                let mut c: Vec<u32> = s.chars().map(|c| c as u32).collect();
                c.resize(2, 0);
                c.into_iter().flat_map(u32::to_le_bytes)
            })
            .collect();
        let mut s = open_ids(&write(dir.path(), "u.npy", &npy("<U2", "(2,)", &data))).unwrap();
        assert_eq!(
            s.ids(0..2).unwrap(),
            IdColumn::Str(vec!["ab".into(), "ü".into()])
        );
    }

    #[test]
    fn bad_ids_are_named_by_row() {
        let dir = tempfile::tempdir().unwrap();
        let err = |name: &str, bytes: &[u8]| match open_ids(&write(dir.path(), name, bytes)) {
            Ok(_) => panic!("{name} was accepted"),
            Err(e) => e.to_string(),
        };
        let neg: Vec<u8> = [1i64, -2].iter().flat_map(|x| x.to_le_bytes()).collect();
        let e = err("n.npy", &npy("<i8", "(2,)", &neg));
        assert!(e.contains("row 1") && e.contains("-2 is negative"), "{e}");
        let e = err("f.npy", &npy("<f4", "(1,)", &[0; 4]));
        assert!(e.contains("dtype '<f4' cannot hold ids"), "{e}");
        let e = err("2d.npy", &npy("<u8", "(1, 2)", &[0; 16]));
        assert!(e.contains("not 1-D"), "{e}");
        let e = err("e.txt", b"a\n\nc\n");
        assert!(e.contains("line 2 (row 1)") && e.contains("empty"), "{e}");
        let e = err("u.txt", b"a\n\xff\n");
        assert!(e.contains("line 2") && e.contains("UTF-8"), "{e}");
        let e = err("z.txt", b"");
        assert!(e.contains("no ids"), "{e}");
        let long = format!("a\n{}\n", "x".repeat(MAX_ID_BYTES + 1));
        let e = err("l.txt", long.as_bytes());
        assert!(e.contains("over the limit of 4096"), "{e}");
    }
}
