//! The array formats other than `.npy` and the columnar ones: `.fbin` and `.fvecs` (the
//! ANN-benchmark layouts), safetensors tensors and `.npz` members.
//!
//! An array stored contiguously and little-endian (a `.fbin`, a float32/float16/float64
//! tensor, a stored `.npz` member) is mapped as a `.npy` is ([`NpySource`]), with all that
//! gives: no copy, random access, pages released behind the encoder. The others are
//! [`Part`]s of a [`Table`](super::table::Table): an `.fvecs` (a length before every row),
//! a bfloat16 tensor (widened to float32, exactly) and a deflated `.npz` member (inflated
//! as it is read).
//!
//! safetensors headers are parsed by the `safetensors` crate (Hugging Face's own
//! reference, which checks the offsets against the file) and zip directories by `zip`,
//! already used for `.npz`; `.fbin` and `.fvecs` have no crate worth a dependency: their
//! layouts are a count or two and the raw floats.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::reader::NpySource;
use super::table::{Part, PartReader};
use crate::error::{Error, Result};
use crate::mapping::Map;
use crate::npy::{self, Dtype, NpyHeader};

fn map_file(path: &Path) -> Result<(Map, u64)> {
    let file = crate::input::open_input(path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(path, "reading metadata of", e))?
        .len();
    if len == 0 {
        return Err(Error::bad_npy(path, "empty file"));
    }
    Ok((Map::new(&file, path)?, len))
}

// ---------------------------------------------------------------------------------------
// .fbin

/// A `.fbin`: `rows` and `dims` as little-endian uint32, then the float32 rows.
///
/// # Errors
/// [`Error::BadNpy`] for a file whose length is not what its counts say.
pub fn open_fbin(path: &Path) -> Result<NpySource> {
    NpySource::open_mapped(path, path, |b, len| {
        if len < 8 {
            return Err(Error::bad_npy(
                path,
                "too short for a .fbin header (8 bytes)",
            ));
        }
        let rows = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
        let dims = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as u64;
        let need = 8 + rows * dims * 4;
        if rows == 0 || dims == 0 {
            return Err(Error::bad_npy(
                path,
                format!("shape ({rows}, {dims}) is empty; there is nothing to compress"),
            ));
        }
        if len != need {
            return Err(Error::bad_npy(
                path,
                format!(
                    "a .fbin of {rows} rows of {dims} float32 is {need} bytes, the file has \
                     {len}: it is cut short, or not a .fbin (a .u8bin or .i8bin holds bytes, \
                     not floats)"
                ),
            ));
        }
        Ok(NpyHeader {
            dtype: Dtype::F32Le,
            rows,
            dims,
            data_offset: 8,
        })
    })
}

// ---------------------------------------------------------------------------------------
// .fvecs

/// A `.fvecs`: every row a little-endian int32 length, then that many float32.
#[derive(Debug)]
pub struct FvecsPart {
    path: PathBuf,
    map: Arc<Map>,
    len: u64,
    dims: u64,
    rows: u64,
}

impl FvecsPart {
    /// Maps the file and takes the dims from its first row.
    ///
    /// # Errors
    /// [`Error::BadNpy`] for a length that is not a whole number of rows of the first
    /// row's dims.
    pub fn open(path: &Path) -> Result<FvecsPart> {
        let (map, len) = map_file(path)?;
        if len < 4 {
            return Err(Error::bad_npy(path, "too short for a .fvecs row"));
        }
        let d = i32::from_le_bytes([map[0], map[1], map[2], map[3]]);
        if d <= 0 {
            return Err(Error::bad_npy(
                path,
                format!("row 0 says it has {d} values: not a .fvecs file"),
            ));
        }
        let dims = d as u64;
        let rb = 4 + 4 * dims;
        if !len.is_multiple_of(rb) {
            return Err(Error::bad_npy(
                path,
                format!(
                    "{len} bytes is not a whole number of rows of {dims} values ({rb} bytes \
                     each, as row 0 says): the file is cut short, or its rows differ in \
                     length (see the error naming the row when it is read)"
                ),
            ));
        }
        map.check()?;
        Ok(FvecsPart {
            path: path.to_path_buf(),
            map: Arc::new(map),
            len,
            dims,
            rows: len / rb,
        })
    }
}

impl Part for FvecsPart {
    fn name(&self) -> &Path {
        &self.path
    }
    fn file(&self) -> &Path {
        &self.path
    }
    fn file_len(&self) -> u64 {
        self.len
    }
    fn rows(&self) -> u64 {
        self.rows
    }
    fn dims(&self) -> u64 {
        self.dims
    }
    fn dtype(&self) -> Dtype {
        Dtype::F32Le
    }
    fn open_at(&self, row: u64) -> Result<Box<dyn PartReader>> {
        Ok(Box::new(FvecsReader {
            path: self.path.clone(),
            map: Arc::clone(&self.map),
            dims: self.dims,
            rows: self.rows,
            row,
        }))
    }
}

struct FvecsReader {
    path: PathBuf,
    map: Arc<Map>,
    dims: u64,
    rows: u64,
    row: u64,
}

impl PartReader for FvecsReader {
    fn read(&mut self, n: u64, out: &mut Vec<u8>) -> Result<u64> {
        let n = n.min(self.rows - self.row);
        let rb = 4 + 4 * self.dims as usize;
        out.reserve(n as usize * (rb - 4));
        for r in self.row..self.row + n {
            let at = r as usize * rb;
            let m = &self.map[at..at + 4];
            let d = i32::from_le_bytes([m[0], m[1], m[2], m[3]]);
            if d as i64 != self.dims as i64 {
                self.map.check()?;
                return Err(Error::bad_npy(
                    &self.path,
                    format!(
                        "row {r} says it has {d} values, but row 0 has {}: every row needs \
                         the same number of values",
                        self.dims
                    ),
                ));
            }
            out.extend_from_slice(&self.map[at + 4..at + rb]);
        }
        // Copied out of the map: check it was not cut under us while we read.
        self.map.check()?;
        self.row += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// safetensors

/// What `--in model.safetensors[:name]` opens: a mapped tensor, or a bfloat16 one
/// widened as it is read.
#[derive(Debug)]
pub enum Tensor {
    /// A float32, float16 or float64 tensor, mapped.
    Mapped(NpySource),
    /// A bfloat16 tensor.
    Bf16(Bf16Part),
}

/// Opens tensor `name` (or the file's only 2-D tensor) of a safetensors file.
///
/// # Errors
/// [`Error::BadNpy`] naming the file for a corrupt header, a missing tensor (listing the
/// tensors), a tensor that is not 2-D or not of floats.
pub fn open_safetensors(path: &Path, name: Option<&str>) -> Result<Tensor> {
    let (map, len) = map_file(path)?;
    let (n, meta) = safetensors::SafeTensors::read_metadata(&map[..]).map_err(|e| {
        Error::bad_npy(
            path,
            format!("not a readable safetensors file ({e}): corrupt or cut short?"),
        )
    })?;
    map.check()?;
    let tensors = meta.tensors();
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    let list = || {
        names
            .iter()
            .map(|k| {
                let t = tensors[*k];
                format!("{k} ({:?} {:?})", t.dtype, t.shape)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match name {
        Some(want) => want.to_string(),
        None => {
            let two_d: Vec<&&String> = names
                .iter()
                .filter(|k| tensors[**k].shape.len() == 2)
                .collect();
            match two_d.as_slice() {
                [one] => (**one).clone(),
                [] => {
                    return Err(Error::bad_npy(
                        path,
                        format!("holds no 2-D tensor; its tensors are: {}", list()),
                    ));
                }
                _ => {
                    return Err(Error::bad_npy(
                        path,
                        format!(
                            "holds several 2-D tensors: name one as {}:NAME; its tensors are: {}",
                            path.display(),
                            list()
                        ),
                    ));
                }
            }
        }
    };
    let Some(info) = tensors.get(&chosen) else {
        return Err(Error::bad_npy(
            path,
            format!("has no tensor \"{chosen}\"; its tensors are: {}", list()),
        ));
    };
    let display = PathBuf::from(format!("{}:{chosen}", path.display()));
    if info.shape.len() != 2 {
        return Err(Error::bad_npy(
            &display,
            format!(
                "tensor has shape {:?}; vectro reads a 2-D tensor (rows, dims)",
                info.shape
            ),
        ));
    }
    let (rows, dims) = (info.shape[0] as u64, info.shape[1] as u64);
    if rows == 0 || dims == 0 {
        return Err(Error::bad_npy(
            &display,
            format!("shape ({rows}, {dims}) is empty; there is nothing to compress"),
        ));
    }
    let offset = 8 + n as u64 + info.data_offsets.0 as u64;
    use safetensors::Dtype as S;
    let dtype = match info.dtype {
        S::F32 => Dtype::F32Le,
        S::F16 => Dtype::F16Le,
        S::F64 => Dtype::F64Le,
        S::BF16 => {
            let need = rows * dims * 2;
            if offset + need > len {
                return Err(Error::bad_npy(
                    &display,
                    "the tensor runs past the end of the file",
                ));
            }
            return Ok(Tensor::Bf16(Bf16Part {
                name: display,
                file: path.to_path_buf(),
                map: Arc::new(map),
                len,
                offset,
                rows,
                dims,
            }));
        }
        d => {
            return Err(Error::bad_npy(
                &display,
                format!("tensor is {d:?}; vectro reads float32, float16, bfloat16 or float64"),
            ));
        }
    };
    drop(map);
    let header = NpyHeader {
        dtype,
        rows,
        dims,
        data_offset: offset,
    };
    Ok(Tensor::Mapped(NpySource::open_mapped(
        path,
        &display,
        |_, _| Ok(header),
    )?))
}

/// A bfloat16 tensor, read as float32 (every bfloat16 is a float32 exactly).
#[derive(Debug)]
pub struct Bf16Part {
    name: PathBuf,
    file: PathBuf,
    map: Arc<Map>,
    len: u64,
    offset: u64,
    rows: u64,
    dims: u64,
}

impl Part for Bf16Part {
    fn name(&self) -> &Path {
        &self.name
    }
    fn file(&self) -> &Path {
        &self.file
    }
    fn file_len(&self) -> u64 {
        self.len
    }
    fn rows(&self) -> u64 {
        self.rows
    }
    fn dims(&self) -> u64 {
        self.dims
    }
    fn dtype(&self) -> Dtype {
        Dtype::F32Le
    }
    fn open_at(&self, row: u64) -> Result<Box<dyn PartReader>> {
        Ok(Box::new(Bf16Reader {
            map: Arc::clone(&self.map),
            offset: self.offset as usize,
            dims: self.dims as usize,
            rows: self.rows,
            row,
        }))
    }
}

struct Bf16Reader {
    map: Arc<Map>,
    offset: usize,
    dims: usize,
    rows: u64,
    row: u64,
}

impl PartReader for Bf16Reader {
    fn read(&mut self, n: u64, out: &mut Vec<u8>) -> Result<u64> {
        let n = n.min(self.rows - self.row);
        let at = self.offset + self.row as usize * self.dims * 2;
        let src = &self.map[at..at + n as usize * self.dims * 2];
        out.reserve(src.len() * 2);
        for b in src.chunks_exact(2) {
            let x = f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16);
            out.extend_from_slice(&x.to_le_bytes());
        }
        self.map.check()?;
        self.row += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// .npz members

/// What `--in x.npz[:member]` opens: a stored member, mapped, or a deflated one.
#[derive(Debug)]
pub enum Member {
    /// A member stored without compression (`np.savez`), mapped.
    Mapped(NpySource),
    /// A deflated member (`np.savez_compressed`), inflated as it is read.
    Deflated(DeflatedPart),
}

/// Opens member `name` (with or without `.npy`; by default the only member) of a `.npz`.
///
/// # Errors
/// [`Error::BadNpy`] naming the file for a corrupt zip, a missing member (listing the
/// members), or a member that is not a 2-D float `.npy`.
pub fn open_npz(path: &Path, name: Option<&str>) -> Result<Member> {
    let file = crate::input::open_input(path)?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(path, "reading metadata of", e))?
        .len();
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| Error::bad_npy(path, format!("not a readable .npz (zip) file: {e}")))?;
    let members: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok())
        .map(|n| n.into_owned())
        .collect();
    let list = || {
        let mut m: Vec<&str> = members
            .iter()
            .map(|m| m.strip_suffix(".npy").unwrap_or(m))
            .collect();
        m.sort();
        m.join(", ")
    };
    let entry = match name {
        Some(n) if members.iter().any(|m| m == n) => n.to_string(),
        Some(n) if members.iter().any(|m| *m == format!("{n}.npy")) => format!("{n}.npy"),
        Some(n) => {
            return Err(Error::bad_npy(
                path,
                format!("has no member \"{n}\"; its members are: {}", list()),
            ));
        }
        None if members.len() == 1 => members[0].clone(),
        None => {
            return Err(Error::bad_npy(
                path,
                format!(
                    "holds {} arrays: name one as {}:NAME; its members are: {}",
                    members.len(),
                    path.display(),
                    list()
                ),
            ));
        }
    };
    let display = PathBuf::from(format!(
        "{}:{}",
        path.display(),
        entry.strip_suffix(".npy").unwrap_or(&entry)
    ));
    let f = zip
        .by_name(&entry)
        .map_err(|e| Error::bad_npy(&display, format!("cannot read the member: {e}")))?;
    let (method, size, csize, crc) = (f.compression(), f.size(), f.compressed_size(), f.crc32());
    let start = f
        .data_start()
        .ok_or_else(|| Error::bad_npy(&display, "the member's data offset is unknown"))?;
    drop(f);
    if start + csize > len {
        return Err(Error::bad_npy(
            &display,
            "the member runs past the end of the file",
        ));
    }
    match method {
        zip::CompressionMethod::Stored => {
            let member = NpySource::open_mapped(path, &display, |b, _| {
                let at = start as usize;
                let mut h = npy::parse_header(&display, &b[at..at + size as usize], size)?;
                h.data_offset += start;
                Ok(h)
            })?;
            Ok(Member::Mapped(member))
        }
        zip::CompressionMethod::Deflated => {
            let header = inflate(&display, path, start, csize)?.header;
            // The header's own length is its `data_offset` in the member.
            if header
                .data_len()
                .and_then(|n| n.checked_add(header.data_offset))
                != Some(size)
            {
                return Err(Error::bad_npy(
                    &display,
                    format!(
                        "the member's shape ({}, {}) of {} needs {} bytes after its header,                          the member holds {}: the .npz is corrupt",
                        header.rows,
                        header.dims,
                        header.dtype.descr(),
                        header.data_len().unwrap_or(u64::MAX),
                        size.saturating_sub(header.data_offset)
                    ),
                ));
            }
            Ok(Member::Deflated(DeflatedPart {
                name: display,
                file: path.to_path_buf(),
                len,
                start,
                csize,
                crc,
                header,
            }))
        }
        m => Err(Error::bad_npy(
            &display,
            format!("the member is compressed with {m:?}; vectro reads stored or deflated members"),
        )),
    }
}

/// A deflated `.npz` member.
#[derive(Debug)]
pub struct DeflatedPart {
    name: PathBuf,
    file: PathBuf,
    len: u64,
    start: u64,
    csize: u64,
    /// The zip's crc32 of the member, checked when its last row is read.
    crc: u32,
    /// The member's `.npy` header; `data_offset` is the header's length in the member.
    header: NpyHeader,
}

/// A member's inflated bytes, after its `.npy` header.
struct Inflated {
    reader: CrcRead,
    header: NpyHeader,
}

/// Inflated bytes with the crc32 of all read so far: the zip's own check of a member,
/// which the `zip` crate makes when it reads one, made here since the member is inflated
/// from its offset.
struct CrcRead {
    inner: Box<dyn Read + Send>,
    crc: crc32fast::Hasher,
}

impl Read for CrcRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

/// Inflates the member at `start` (`csize` compressed bytes) of the file at `path` and
/// reads its `.npy` header; `name` names the member.
fn inflate(name: &Path, path: &Path, start: u64, csize: u64) -> Result<Inflated> {
    let mut file = File::open(path).map_err(|e| Error::io(path, "opening", e))?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(path, "seeking", e))?;
    let mut reader = CrcRead {
        inner: Box::new(flate2::read::DeflateDecoder::new(BufReader::with_capacity(
            1 << 20,
            file.take(csize),
        ))),
        crc: crc32fast::Hasher::new(),
    };
    let header = npy::read_header(name, &mut reader)?;
    Ok(Inflated { reader, header })
}

impl Part for DeflatedPart {
    fn name(&self) -> &Path {
        &self.name
    }
    fn file(&self) -> &Path {
        &self.file
    }
    fn file_len(&self) -> u64 {
        self.len
    }
    fn rows(&self) -> u64 {
        self.header.rows
    }
    fn dims(&self) -> u64 {
        self.header.dims
    }
    fn dtype(&self) -> Dtype {
        self.header.dtype
    }
    fn open_at(&self, row: u64) -> Result<Box<dyn PartReader>> {
        let mut i = inflate(&self.name, &self.file, self.start, self.csize)?;
        let rb = self.header.row_bytes() as u64;
        let skip = row * rb;
        let skipped = std::io::copy(&mut (&mut i.reader).take(skip), &mut std::io::sink())
            .map_err(|e| self.corrupt(e))?;
        if skipped < skip {
            return Err(self.short(row));
        }
        Ok(Box::new(DeflatedReader {
            name: self.name.clone(),
            reader: i.reader,
            rb: rb as usize,
            rows: self.header.rows,
            row,
            crc: self.crc,
        }))
    }
}

impl DeflatedPart {
    fn corrupt(&self, e: std::io::Error) -> Error {
        Error::bad_npy(
            &self.name,
            format!("cannot inflate the member ({e}): the .npz is corrupt or cut short"),
        )
    }

    fn short(&self, row: u64) -> Error {
        Error::bad_npy(
            &self.name,
            format!(
                "the member ends inside row {row} of the {} its header promises: the .npz is \
                 corrupt or cut short",
                self.header.rows
            ),
        )
    }
}

struct DeflatedReader {
    name: PathBuf,
    reader: CrcRead,
    crc: u32,
    rb: usize,
    rows: u64,
    row: u64,
}

impl PartReader for DeflatedReader {
    fn read(&mut self, n: u64, out: &mut Vec<u8>) -> Result<u64> {
        let n = n.min(self.rows - self.row);
        let at = out.len();
        out.resize(at + n as usize * self.rb, 0);
        let got = crate::input::read_full(&mut self.reader, &mut out[at..]).map_err(|e| {
            Error::bad_npy(
                &self.name,
                format!("cannot inflate the member ({e}): the .npz is corrupt or cut short"),
            )
        })?;
        if got < n as usize * self.rb {
            return Err(Error::bad_npy(
                &self.name,
                format!(
                    "the member ends inside row {} of the {} its header promises: the .npz \
                     is corrupt or cut short",
                    self.row + (got / self.rb.max(1)) as u64,
                    self.rows
                ),
            ));
        }
        self.row += n;
        if self.row == self.rows && n > 0 {
            // The whole member has been inflated: the zip's crc32 must match.
            let more = crate::input::read_full(&mut self.reader, &mut [0u8; 1]).unwrap_or(1);
            let crc = self.reader.crc.clone().finalize();
            if more > 0 || crc != self.crc {
                return Err(Error::bad_npy(
                    &self.name,
                    format!(
                        "the member's crc32 is {crc:08x}, the zip directory says {:08x}: the \
                         .npz is corrupt",
                        self.crc
                    ),
                ));
            }
        }
        Ok(n)
    }
}
