//! `.npy` header parsing and writing, and the element types Vectro reads.
//!
//! The format (numpy `lib/format.py`): magic `\x93NUMPY`, a major and minor version, a
//! little-endian header length (u16 in 1.0, u32 in 2.0 and 3.0), then a Python dict literal
//! with `descr`, `fortran_order` and `shape`. The data starts right after the header; numpy
//! pads it to 64 bytes, but we take the offset from the header length, never assume it.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};
use crate::input::read_full;

/// The `.npy` magic string.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Headers longer than this are refused. numpy itself caps them at 10,000 bytes by default;
/// we allow more, but never an allocation driven by a corrupt length field.
pub const MAX_HEADER_LEN: usize = 1 << 20;

/// The element type of the source array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// `<f4`: little-endian float32.
    F32Le,
    /// `>f4`: big-endian float32.
    F32Be,
    /// `<f2`: little-endian float16.
    F16Le,
    /// `<f8`: little-endian float64.
    F64Le,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32Le | Dtype::F32Be => 4,
            Dtype::F16Le => 2,
            Dtype::F64Le => 8,
        }
    }

    /// The numpy `descr` string.
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::F32Le => "<f4",
            Dtype::F32Be => ">f4",
            Dtype::F16Le => "<f2",
            Dtype::F64Le => "<f8",
        }
    }

    /// A stable one-byte code, as stored in the container header.
    pub fn code(self) -> u8 {
        match self {
            Dtype::F32Le => 1,
            Dtype::F32Be => 2,
            Dtype::F16Le => 3,
            Dtype::F64Le => 4,
        }
    }

    /// The inverse of [`Dtype::code`].
    pub fn from_code(code: u8) -> Option<Dtype> {
        Some(match code {
            1 => Dtype::F32Le,
            2 => Dtype::F32Be,
            3 => Dtype::F16Le,
            4 => Dtype::F64Le,
            _ => return None,
        })
    }

    fn from_descr(descr: &str) -> Option<Dtype> {
        // `=` and `|` mean native order; every platform we build for is little-endian.
        Some(match descr {
            "<f4" | "=f4" | "float32" => Dtype::F32Le,
            ">f4" => Dtype::F32Be,
            "<f2" | "=f2" | "float16" => Dtype::F16Le,
            "<f8" | "=f8" | "float64" => Dtype::F64Le,
            _ => return None,
        })
    }

    /// Converts `src` (exactly `out.len()` elements of this dtype) to float32, rounding to
    /// nearest as numpy's `astype(np.float32)` does.
    pub fn to_f32(self, src: &[u8], out: &mut [f32]) {
        debug_assert_eq!(src.len(), out.len() * self.size());
        match self {
            Dtype::F32Le => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
                    *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Dtype::F32Be => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(4)) {
                    *o = f32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Dtype::F16Le => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                }
            }
            Dtype::F64Le => {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(8)) {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    *o = f64::from_le_bytes(a) as f32;
                }
            }
        }
    }
}

/// A parsed `.npy` header describing a 2-D C-order float matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: Dtype,
    /// Number of rows (vectors).
    pub rows: u64,
    /// Number of columns (dimensions).
    pub dims: u64,
    /// Byte offset of the first element.
    pub data_offset: u64,
}

impl NpyHeader {
    /// Bytes of the data section the shape implies.
    pub fn data_len(&self) -> Option<u64> {
        self.rows
            .checked_mul(self.dims)?
            .checked_mul(self.dtype.size() as u64)
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.dims as usize * self.dtype.size()
    }
}

/// Parses the header at the start of `bytes` (at least the whole header must be present).
///
/// `file_len` is the total file size, used to check the data section is complete.
///
/// # Errors
/// [`Error::BadNpy`] naming `path` for anything that is not a 2-D, C-order float matrix
/// with a complete data section.
pub fn parse_header(path: &Path, bytes: &[u8], file_len: u64) -> Result<NpyHeader> {
    parse(path, bytes, Some(file_len))
}

/// As [`parse_header`]; a `file_len` of `None` (a stream) skips the data length checks.
fn parse(path: &Path, bytes: &[u8], file_len: Option<u64>) -> Result<NpyHeader> {
    let bad = |msg: String| Error::bad_npy(path, msg);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(
            "not a .npy file (missing the \\x93NUMPY magic); save it with numpy.save".into(),
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (len_bytes, utf8) = match (major, minor) {
        (1, 0) => (2usize, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => {
            return Err(bad(format!(
                ".npy format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)"
            )));
        }
    };
    if bytes.len() < 8 + len_bytes {
        return Err(bad("truncated .npy header".into()));
    }
    let header_len = if len_bytes == 2 {
        u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    if header_len > MAX_HEADER_LEN {
        return Err(bad(format!(
            ".npy header length {header_len} exceeds the {MAX_HEADER_LEN}-byte limit; the file is corrupt"
        )));
    }
    let start = 8 + len_bytes;
    let data_offset = start + header_len;
    if bytes.len() < data_offset {
        return Err(bad(format!(
            "truncated .npy header: it claims {header_len} bytes but the file ends first"
        )));
    }
    let raw = &bytes[start..data_offset];
    let text = if utf8 {
        std::str::from_utf8(raw).map_err(|_| bad(".npy header is not valid UTF-8".into()))?
    } else {
        if !raw.is_ascii() {
            return Err(bad(".npy header is not ASCII".into()));
        }
        std::str::from_utf8(raw).expect("ascii is utf8")
    };
    let dict = parse_dict(text).map_err(|e| bad(format!("malformed .npy header: {e}")))?;
    let header = dict.into_header(path, data_offset as u64)?;
    let need = header
        .data_len()
        .and_then(|n| n.checked_add(header.data_offset))
        .ok_or_else(|| bad("shape is too large to address".into()))?;
    let Some(file_len) = file_len else {
        return Ok(header);
    };
    if file_len < need {
        return Err(bad(format!(
            "data section is truncated: shape ({}, {}) of {} needs {} bytes after the header, the file has {}",
            header.rows,
            header.dims,
            header.dtype.descr(),
            need - header.data_offset,
            file_len.saturating_sub(header.data_offset)
        )));
    }
    if file_len > need {
        // Rows past the shape would be silently dropped: either the shape is wrong and
        // the matrix would be cut, or something was appended that is not this matrix.
        return Err(bad(format!(
            "data section is longer than its shape says: shape ({}, {}) of {} needs {} bytes \
             after the header ({need} in all), the file has {} ({} bytes too many); the \
             shape in the header may be wrong (re-save the array with numpy.save), or \
             something was appended to the file (cut it back to {need} bytes, or write it again)",
            header.rows,
            header.dims,
            header.dtype.descr(),
            need - header.data_offset,
            file_len - header.data_offset,
            file_len - need
        )));
    }
    Ok(header)
}

/// Reads and parses a `.npy` header from the front of a stream, leaving the stream at the
/// first data byte.
///
/// # Errors
/// [`Error::BadNpy`] as [`parse_header`] gives it, or for a stream that ends inside
/// the header; [`Error::Io`] from the reader.
pub fn read_header<R: Read + ?Sized>(name: &Path, input: &mut R) -> Result<NpyHeader> {
    let io = |e| Error::io(name, "reading", e);
    let mut buf = vec![0u8; 12];
    let got = read_full(input, &mut buf[..10]).map_err(io)?;
    if got < 10 && got > 0 && MAGIC.starts_with(&buf[..got.min(6)]) {
        return Err(Error::bad_npy(
            name,
            format!(
                "truncated .npy header: the stream ended inside the .npy header after {got} bytes"
            ),
        ));
    }
    // A v2/v3 header has a 4-byte length; v1 a 2-byte one. parse_header names bad versions.
    let len_bytes = if got >= 7 && buf[6] >= 2 { 4 } else { 2 };
    if got == 10 && len_bytes == 4 {
        let more = read_full(input, &mut buf[10..12]).map_err(io)?;
        buf.truncate(10 + more);
    } else {
        buf.truncate(got);
    }
    if buf.len() == 8 + len_bytes {
        let len = if len_bytes == 2 {
            u16::from_le_bytes([buf[8], buf[9]]) as usize
        } else {
            u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize
        };
        // parse_header refuses an oversized length before looking at the bytes.
        let take = if len > MAX_HEADER_LEN { 0 } else { len };
        let start = buf.len();
        buf.resize(start + take, 0);
        let got = read_full(input, &mut buf[start..]).map_err(io)?;
        buf.truncate(start + got);
    }
    // The data length is unknown on a stream: a short stream is caught as rows are read.
    parse(name, &buf, None)
}

/// The little-endian bytes of `v`; free (no copy) on little-endian machines. With
/// `f32_view`, the crate's one pair of byte views of float32 data.
pub fn f32_le_bytes(v: &[f32]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        // SAFETY: f32 has no padding and u8 has alignment 1; the length is scaled by 4.
        let b = unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 4) };
        std::borrow::Cow::Borrowed(b)
    } else {
        std::borrow::Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// Views little-endian float32 bytes (`dtype` [`Dtype::F32Le`]) as floats without a copy,
/// when the machine and the alignment allow; `None` otherwise (convert with [`Dtype::to_f32`]).
pub(crate) fn f32_view(bytes: &[u8], dtype: Dtype) -> Option<&[f32]> {
    if dtype != Dtype::F32Le || cfg!(target_endian = "big") {
        return None;
    }
    // SAFETY: every bit pattern is a valid f32; align_to only yields the aligned middle.
    let (pre, mid, post) = unsafe { bytes.align_to::<f32>() };
    (pre.is_empty() && post.is_empty()).then_some(mid)
}

/// Builds a version 1.0 header (2.0 when it would not fit) for a C-order `<f4` matrix,
/// padded so that the data starts on a 64-byte boundary, as numpy writes it.
pub fn write_header(rows: u64, dims: u64) -> Vec<u8> {
    write_header_descr(rows, dims, "<f4")
}

/// [`write_header`] for a matrix of any numpy `descr` (`<f2`, `<u2`, ...).
pub fn write_header_descr(rows: u64, dims: u64, descr: &str) -> Vec<u8> {
    let dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {dims}), }}");
    for (major, len_bytes) in [(1u8, 2usize), (2, 4)] {
        let unpadded = 6 + 2 + len_bytes + dict.len() + 1;
        let total = unpadded.div_ceil(64) * 64;
        let header_len = total - 6 - 2 - len_bytes;
        if len_bytes == 2 && header_len > u16::MAX as usize {
            continue;
        }
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[major, 0]);
        if len_bytes == 2 {
            out.extend_from_slice(&(header_len as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header_len as u32).to_le_bytes());
        }
        out.extend_from_slice(dict.as_bytes());
        out.resize(total - 1, b' ');
        out.push(b'\n');
        return out;
    }
    unreachable!("a 2.0 header always fits")
}

/// The fields of a header dict of any dtype and rank: `(descr, fortran_order, shape)`.
///
/// [`parse_header`] accepts only 2-D float matrices; this is for the other arrays Vectro
/// reads, such as the int8 codes and scales inside a `.npz`. `shape` is empty for a scalar.
///
/// # Errors
/// What is malformed or missing, as a message for the caller to put in context.
pub fn parse_header_fields(text: &str) -> std::result::Result<(String, bool, Vec<u64>), String> {
    let d = parse_dict(text)?;
    let descr = d.descr.ok_or("header has no 'descr' field")?;
    let fortran = d.fortran.ok_or("header has no 'fortran_order' field")?;
    let shape = d.shape.ok_or("header has no 'shape' field")?;
    Ok((descr, fortran, shape))
}

#[derive(Default)]
struct Dict {
    descr: Option<String>,
    fortran: Option<bool>,
    shape: Option<Vec<u64>>,
}

impl Dict {
    fn into_header(self, path: &Path, data_offset: u64) -> Result<NpyHeader> {
        let bad = |msg: String| Error::bad_npy(path, msg);
        let descr = self
            .descr
            .ok_or_else(|| bad("header has no 'descr' field".into()))?;
        let fortran = self
            .fortran
            .ok_or_else(|| bad("header has no 'fortran_order' field".into()))?;
        let shape = self
            .shape
            .ok_or_else(|| bad("header has no 'shape' field".into()))?;
        let dtype = Dtype::from_descr(&descr).ok_or_else(|| {
            bad(format!(
                "dtype '{descr}' is not supported; Vectro reads float32 (<f4, >f4), float16 (<f2) and float64 (<f8): convert with arr.astype(np.float32)"
            ))
        })?;
        if fortran {
            return Err(bad(
                "array is in Fortran (column-major) order; save np.ascontiguousarray(arr) instead"
                    .into(),
            ));
        }
        if shape.len() != 2 {
            return Err(bad(format!(
                "shape {shape:?} is not 2-D; Vectro expects (rows, dims): reshape with arr.reshape(-1, dims)"
            )));
        }
        let (rows, dims) = (shape[0], shape[1]);
        if rows == 0 || dims == 0 {
            return Err(bad(format!(
                "shape ({rows}, {dims}) is empty; there is nothing to compress"
            )));
        }
        if dims > u32::MAX as u64 {
            return Err(bad(format!("{dims} dims is more than Vectro supports")));
        }
        Ok(NpyHeader {
            dtype,
            rows,
            dims,
            data_offset,
        })
    }
}

/// A tiny parser for the dict literal numpy writes: string keys; string, bool and tuple values.
fn parse_dict(text: &str) -> std::result::Result<Dict, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let mut dict = Dict::default();
    p.ws();
    p.expect(b'{')?;
    loop {
        p.ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        match key.as_str() {
            "descr" => dict.descr = Some(p.string()?),
            "fortran_order" => dict.fortran = Some(p.boolean()?),
            "shape" => dict.shape = Some(p.tuple()?),
            other => return Err(format!("unexpected key '{other}'")),
        }
        p.ws();
        if p.eat(b',') {
            continue;
        }
        p.ws();
        p.expect(b'}')?;
        break;
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("trailing characters after the dict".into());
    }
    Ok(dict)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("expected a quoted string at byte {}", self.i)),
        };
        self.i += 1;
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i] != q {
            self.i += 1;
        }
        if self.i == self.s.len() {
            return Err("unterminated string".into());
        }
        let out = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        self.i += 1;
        Ok(out)
    }

    fn boolean(&mut self) -> std::result::Result<bool, String> {
        let rest = &self.s[self.i..];
        if rest.starts_with(b"True") {
            self.i += 4;
            Ok(true)
        } else if rest.starts_with(b"False") {
            self.i += 5;
            Ok(false)
        } else {
            Err(format!("expected True or False at byte {}", self.i))
        }
    }

    fn tuple(&mut self) -> std::result::Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.eat(b')') {
                return Ok(out);
            }
            if out.len() >= 32 {
                return Err("shape has more than 32 dimensions".into());
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                self.i += 1;
            }
            // numpy may write `5L` on Python 2.
            let digits = std::str::from_utf8(&self.s[start..self.i]).expect("ascii");
            let n: u64 = digits
                .parse()
                .map_err(|_| format!("expected a non-negative integer at byte {start}"))?;
            self.eat(b'L');
            out.push(n);
            self.ws();
            if !self.eat(b',') {
                self.ws();
                self.expect(b')')?;
                return Ok(out);
            }
        }
    }
}

/// A float64 value past float32's range converts to ±inf, which the float32 check reports
/// as non-finite; say what the input really holds (it said "1e300 ... is inf"). `e` is that
/// check's error on rows of `bytes` (in `dtype`, `dims` a row) from row `first_row` on;
/// every reader of an input (compress, eval, bench) words it the same.
pub(crate) fn f64_overflow(
    e: Error,
    bytes: &[u8],
    dtype: Dtype,
    first_row: u64,
    dims: usize,
) -> Error {
    let Error::NonFinite { path, row, col, .. } = &e else {
        return e;
    };
    if dtype != Dtype::F64Le {
        return e;
    }
    let at = ((row - first_row) as usize * dims + *col as usize) * 8;
    let Some(b) = bytes.get(at..at + 8) else {
        return e;
    };
    let v = f64::from_le_bytes(b.try_into().expect("8 bytes"));
    if !v.is_finite() {
        return e;
    }
    Error::OutOfRange {
        path: path.clone(),
        row: *row,
        col: *col,
        msg: format!(
            "{v:e} is beyond float32's range (±3.4e38), which Vectro computes in; scale or \
             clip the data first"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_bytes(major: u8, dict: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[major, 0]);
        if major == 1 {
            v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        } else {
            v.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        }
        v.extend_from_slice(dict.as_bytes());
        v
    }

    fn parse(bytes: &[u8], data: u64) -> Result<NpyHeader> {
        parse_header(Path::new("x.npy"), bytes, bytes.len() as u64 + data)
    }

    #[test]
    fn written_header_parses_back_and_is_aligned() {
        for (rows, dims) in [(1, 1), (500, 128), (10_000_000_000, 4096)] {
            let h = write_header(rows, dims);
            assert_eq!(h.len() % 64, 0);
            let p = parse(&h, rows * dims * 4).unwrap();
            assert_eq!((p.rows, p.dims, p.dtype), (rows, dims, Dtype::F32Le));
            assert_eq!(p.data_offset, h.len() as u64);
        }
    }

    #[test]
    fn all_versions_and_dtypes_parse() {
        for major in [1, 2, 3] {
            for (d, dt) in [
                ("<f4", Dtype::F32Le),
                (">f4", Dtype::F32Be),
                ("<f2", Dtype::F16Le),
                ("<f8", Dtype::F64Le),
            ] {
                let dict = format!("{{'descr': '{d}', 'fortran_order': False, 'shape': (3, 2), }}");
                let h = parse(&header_bytes(major, &dict), 6 * dt.size() as u64).unwrap();
                assert_eq!(h.dtype, dt);
                assert_eq!((h.rows, h.dims), (3, 2));
            }
        }
    }

    #[test]
    fn minor_versions_numpy_never_wrote_are_refused() {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";
        for major in [1u8, 2, 3] {
            let mut b = header_bytes(major, dict);
            b[7] = 1;
            let e = parse(&b, 24).unwrap_err().to_string();
            assert!(
                e.contains(&format!("version {major}.1 is not supported")),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_headers_have_clear_messages() {
        let cases: &[(&str, &str)] = &[
            (
                "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }",
                "ascontiguousarray",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                "not 2-D",
            ),
            (
                "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }",
                "not supported",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2), }",
                "empty",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 0), }",
                "empty",
            ),
            ("{'descr': '<f4', 'shape': (3, 2), }", "fortran_order"),
            ("{'descr': '<f4', 'fortran_order': False", "malformed"),
        ];
        for (dict, want) in cases {
            let err = parse(&header_bytes(1, dict), 1000).unwrap_err().to_string();
            assert!(err.contains(want), "{dict}: {err}");
            assert!(err.starts_with("x.npy: "), "{err}");
        }
    }

    #[test]
    fn truncation_is_detected() {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";
        let bytes = header_bytes(1, dict);
        let err = parse_header(Path::new("x.npy"), &bytes, bytes.len() as u64 + 23)
            .unwrap_err()
            .to_string();
        assert!(err.contains("data section is truncated"), "{err}");
        let err = parse_header(Path::new("x.npy"), &bytes, bytes.len() as u64 + 25)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x.npy: "), "{err}");
        assert!(err.contains("longer than its shape says"), "{err}");
        assert!(err.contains("needs 24 bytes"), "{err}");
        assert!(err.contains("the file has 25 (1 bytes too many)"), "{err}");
        assert!(parse_header(Path::new("x.npy"), &bytes, bytes.len() as u64 + 24).is_ok());
        let err = parse(&bytes[..20], 0).unwrap_err().to_string();
        assert!(err.contains("truncated .npy header"), "{err}");
        let err = parse(b"hello world, not npy", 0).unwrap_err().to_string();
        assert!(err.contains("not a .npy"), "{err}");
    }

    #[test]
    fn huge_header_length_is_refused_before_allocating() {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[2, 0]);
        v.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = parse(&v, 0).unwrap_err().to_string();
        assert!(err.contains("limit"), "{err}");
    }

    #[test]
    fn overflowing_shape_is_refused() {
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 3), }";
        let err = parse(&header_bytes(1, dict), 0).unwrap_err().to_string();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn dtype_conversion_matches_numpy_rounding() {
        let vals = [
            1.0f64,
            -2.5,
            1.0 + f64::EPSILON,
            1e300,
            0.123_456_789_012_345,
        ];
        let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut out = [0f32; 5];
        Dtype::F64Le.to_f32(&bytes, &mut out);
        for (o, v) in out.iter().zip(vals) {
            assert_eq!(o.to_bits(), (v as f32).to_bits());
        }
        let be: Vec<u8> = [1.5f32, -7.25]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let mut out = [0f32; 2];
        Dtype::F32Be.to_f32(&be, &mut out);
        assert_eq!(out, [1.5, -7.25]);
    }
}
