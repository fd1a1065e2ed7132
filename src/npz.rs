//! The original Python prototype's `.npz` layout, read and written, so that its users'
//! files keep working.
//!
//! `shared/reference/int8_reference.py` defines it: a zip (as `np.savez` writes it) of three
//! `.npy` members, `q` (the int8 codes, flat, row-major), `scales` (one float32 per row) and
//! `dims` (an int64 scalar). That is exactly the int8 codec's data, so import and export
//! only move bytes: no value is re-quantized, and a round trip is bit-exact.
//!
//! Both directions stream one chunk at a time, so memory does not grow with the file.
//!
//! ```
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("x.vectro");
//! # let data: Vec<f32> = (0..40 * 6).map(|i| (i as f32 * 0.3).sin()).collect();
//! # vectro::stream::Compressor::new().chunk_rows(16).compress_f32(&data, 6, std::fs::File::create(&path)?)?;
//! use vectro::{Container, NoProgress, npz};
//! use vectro::output::Durability;
//!
//! let old = dir.path().join("compressed.npz");
//! let c = Container::open(&path)?;
//! npz::export_npz(&c, &old, false, Durability::None)?;
//!
//! let back = dir.path().join("back.vectro");
//! let opts = npz::ImportOptions { durability: Durability::None, ..Default::default() };
//! npz::import_npz(&old, &back, &opts, &NoProgress, &Default::default())?;
//! assert_eq!(Container::open(&back)?.rows(), 40);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use zip::ZipArchive;
use zip::write::SimpleFileOptions;

use crate::codec::{Codec, CodecId, Int8, QuantParams};
use crate::encode::default_chunk_rows;
use crate::error::{Error, Result};
use crate::format::{Container, ContainerWriter, Header, IdColumn, IdKind, Metadata};
use crate::npy::{self, Dtype};
use crate::output::{AtomicOutput, Durability};
use crate::progress::Progress;
use crate::source::reader::ReleaseBehind;

/// Settings of [`import_npz`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Rows per chunk; `None` picks [`default_chunk_rows`].
    pub chunk_rows: Option<u32>,
    /// Overwrite an existing output.
    pub overwrite: bool,
    /// fsync before the rename, or not.
    pub durability: Durability,
}

/// What an import or export did.
#[derive(Debug, Clone, Serialize)]
pub struct NpzSummary {
    /// The file read.
    pub input: PathBuf,
    /// The file written.
    pub output: PathBuf,
    /// Rows moved.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// Size of the output.
    pub output_bytes: u64,
}

/// Converts the prototype's `.npz` at `input` into an int8 container at `output`.
///
/// # Errors
/// [`Error::BadNpy`] naming the member and what is wrong (missing member, wrong dtype or
/// shape, sizes that disagree, a non-finite scale); [`Error::Io`];
/// [`Error::OutputExists`]; [`Error::Cancelled`].
pub fn import_npz(
    input: &Path,
    output: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<NpzSummary> {
    crate::output::check_not_input(output, [input])?;
    let mut q_zip = open_zip(input)?;
    let mut s_zip = open_zip(input)?;
    let dims = read_dims(input, &mut open_zip(input)?)?;
    let mut q = member(input, &mut q_zip, "q")?;
    let mut s = member(input, &mut s_zip, "scales")?;
    let (q_size, s_size) = (q.size(), s.size());
    let (q_descr, q_shape, q_head) = read_member_header(input, "q", &mut q)?;
    let (s_descr, s_shape, s_head) = read_member_header(input, "scales", &mut s)?;
    let bad = |msg: String| Error::bad_npy(input, msg);
    if !matches!(q_descr.as_str(), "|i1" | "<i1" | "i1") {
        return Err(bad(format!(
            "member q has dtype '{q_descr}', expected int8 ('|i1')"
        )));
    }
    if !matches!(s_descr.as_str(), "<f4" | "=f4") {
        return Err(bad(format!(
            "member scales has dtype '{s_descr}', expected float32 ('<f4')"
        )));
    }
    let rows = match s_shape[..] {
        [n] if n > 0 => n,
        _ => {
            return Err(bad(format!(
                "member scales has shape {s_shape:?}, expected (rows,) with rows > 0"
            )));
        }
    };
    let codes: u64 = q_shape.iter().product();
    if q_shape.is_empty() || rows.checked_mul(dims) != Some(codes) {
        return Err(bad(format!(
            "member q has shape {q_shape:?} ({codes} codes) but scales × dims = {rows} × {dims}; the file is inconsistent"
        )));
    }
    // The zip directory states each member's size: check it before trusting the shapes
    // with an allocation.
    for (name, size, head, want) in [
        ("q", q_size, q_head, codes),
        ("scales", s_size, s_head, rows * 4),
    ] {
        if size != head + want {
            return Err(bad(format!(
                "member {name} holds {} data bytes but its shape needs {want}; the file is inconsistent",
                size.saturating_sub(head)
            )));
        }
    }
    let chunk_rows = match opts.chunk_rows {
        Some(0) => return Err(Error::Config("--chunk-rows must be at least 1".into())),
        Some(n) => n,
        None => default_chunk_rows(dims),
    };
    let out = AtomicOutput::create(output, opts.overwrite, opts.durability)?;
    let header = Header {
        codec: Int8::new(dims as usize).spec(),
        rows,
        dims: dims as u32,
        chunk_rows,
        source_dtype: Dtype::F32Le,
        metadata: import_metadata(input),
        stage: crate::codec::PayloadStage::Plain,
        ids: Default::default(),
        payload: false,
        tiers: Vec::new(),
    };
    progress.begin(rows, rows * dims * 4);
    let result = copy_chunks(input, &mut q, &mut s, header, &out, progress, cancel);
    progress.finish();
    result?;
    expect_end(input, "q", &mut q)?;
    expect_end(input, "scales", &mut s)?;
    drop((q, s));
    out.commit()?;
    Ok(NpzSummary {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        rows,
        dims,
        output_bytes: file_len(output)?,
    })
}

fn import_metadata(input: &Path) -> Metadata {
    let mut m = Metadata::new();
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    m.insert("source".into(), name);
    m.insert("imported_from".into(), "npz (q, scales, dims)".into());
    m.insert("tool".into(), crate::format::TOOL.into());
    m
}

/// The largest scale whose codes all decode to finite floats.
const MAX_SCALE: f32 = f32::MAX / 128.0;

/// Copies the codes and scales chunk by chunk into int8 payloads (codes, then scales).
fn copy_chunks(
    input: &Path,
    q: &mut impl Read,
    s: &mut impl Read,
    header: Header,
    out: &AtomicOutput,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<()> {
    let tmp = out.tmp_path();
    let io_out = |e| Error::io(tmp, "writing", e);
    let d = header.dims as usize;
    let mut w = ContainerWriter::new(out.writer(), header.clone()).map_err(io_out)?;
    let mut payload = Vec::new();
    for i in 0..header.chunk_count() {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let first = i * header.chunk_rows as u64;
        let n = header.rows_in_chunk(i) as usize;
        payload.resize(n * (d + 4), 0);
        let (codes, scales) = payload.split_at_mut(n * d);
        read_member(input, "q", q, codes)?;
        read_member(input, "scales", s, scales)?;
        for (r, b) in scales.chunks_exact(4).enumerate() {
            let x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            // Any code times the scale must stay finite: |q| ≤ 128. (The reference's
            // scales, max|v| / 127 of finite float32 rows, are all below this.)
            if x.is_nan() || x.abs() > MAX_SCALE {
                return Err(Error::bad_npy(
                    input,
                    format!(
                        "member scales: row {} has scale {x}; a scale must be finite and at \
                         most {MAX_SCALE:e} (f32::MAX / 128), or its codes decode to infinity",
                        first + r as u64
                    ),
                ));
            }
        }
        w.write_chunk(n as u64, &payload).map_err(io_out)?;
        progress.advance(n as u64, (n * d * 4) as u64);
    }
    let mut inner = w.finish().map_err(io_out)?;
    inner.flush().map_err(io_out)
}

/// Writes the int8 container `c` as the prototype's `.npz` at `output` (members stored
/// uncompressed, as `np.savez` writes them).
///
/// # Errors
/// [`Error::Config`] if `c` is not int8: other codecs have no `.npz` form;
/// [`Error::Corrupt`] for a corrupt chunk; [`Error::Io`]; [`Error::OutputExists`].
pub fn export_npz(
    c: &Container,
    output: &Path,
    overwrite: bool,
    durability: Durability,
) -> Result<NpzSummary> {
    crate::output::check_not_input(output, [c.path()])?;
    if c.header().codec.id != CodecId::Int8 {
        return Err(Error::Config(format!(
            "{} uses the {} codec; the .npz layout (q, scales, dims) holds int8 codes only: \
             export --format jsonl, decompress to .npy, or compress again with --codec int8",
            c.path().display(),
            c.codec().name()
        )));
    }
    let params = QuantParams::decode("int8", &c.header().codec.params, c.dims())?;
    if params.rotation.is_some() {
        // The prototype reads `q × scale` as the vector; rotated codes decode only after
        // the inverse rotation, which the .npz has no place for.
        return Err(Error::Config(format!(
            "{} uses {}, whose codes are rotated; the .npz layout (q, scales, dims) holds \
             plain int8 codes only: export --format jsonl, decompress to .npy, or compress \
             again with --codec int8",
            c.path().display(),
            c.codec().name()
        )));
    }
    let out = AtomicOutput::create(output, overwrite, durability)?;
    // The zip writer finishes its archive when dropped after an error, and prints if that
    // fails too: behind FirstError it fails once, here.
    write_npz(c, crate::output::FirstError::new(out.writer()))
        .map_err(|e| Error::io(out.tmp_path(), "writing", e))?;
    out.commit()?;
    Ok(NpzSummary {
        input: c.path().to_path_buf(),
        output: output.to_path_buf(),
        rows: c.rows(),
        dims: c.dims() as u64,
        output_bytes: file_len(output)?,
    })
}

/// Writes the `.npz` of int8 container `c` to `w`. A chunk that fails its checksum is
/// reported as an [`std::io::Error`] wrapping the [`Error::Corrupt`].
fn write_npz<W: Write + Seek>(c: &Container, w: W) -> std::io::Result<()> {
    let d = c.dims();
    let rows = c.rows();
    let codes = rows * d as u64;
    // A fixed timestamp makes the same container give the same bytes on every run.
    let opts = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .last_modified_time(zip::DateTime::default());
    let large = |bytes: u64| opts.large_file(bytes >= u32::MAX as u64);
    let mut z = zip::ZipWriter::new(w);
    z.start_file("q.npy", large(codes + 128)).map_err(zip_io)?;
    z.write_all(&member_header("|i1", &[codes]))?;
    // Both passes release the container's pages behind them, or the whole file would
    // stay in the resident set.
    let mut behind = ReleaseBehind::for_chunks(c);
    // chunk_data, not chunk_payload: a --zstd chunk is stored compressed.
    for i in 0..c.chunks().len() {
        let p = c.chunk_data(i).map_err(std::io::Error::other)?;
        z.write_all(&p[..c.chunks()[i].rows as usize * d])?;
        c.check_unchanged().map_err(std::io::Error::other)?;
        behind.release_chunks(c, i, i + 1);
    }
    z.start_file("scales.npy", large(rows * 4 + 128))
        .map_err(zip_io)?;
    z.write_all(&member_header("<f4", &[rows]))?;
    let mut behind = ReleaseBehind::for_chunks(c);
    for i in 0..c.chunks().len() {
        let p = c.chunk_data(i).map_err(std::io::Error::other)?;
        z.write_all(&p[c.chunks()[i].rows as usize * d..])?;
        c.check_unchanged().map_err(std::io::Error::other)?;
        behind.release_chunks(c, i, i + 1);
    }
    z.start_file("dims.npy", opts).map_err(zip_io)?;
    z.write_all(&member_header("<i8", &[]))?;
    z.write_all(&(d as i64).to_le_bytes())?;
    if c.id_kind() != IdKind::None || c.first_row() != 0 {
        write_ids(c, &mut z, opts)?;
    }
    z.finish().map_err(zip_io)?.flush()
}

/// Writes the member `ids.npy`: the stored ids (`<u8`, or numpy's fixed-width unicode
/// `<U{longest}` for string ids), or for a shard without ids its rows' global numbers. A
/// chunk's ids at a time; string ids take a first pass for the longest.
fn write_ids<W: Write + Seek>(
    c: &Container,
    z: &mut zip::ZipWriter<W>,
    opts: SimpleFileOptions,
) -> std::io::Result<()> {
    let rows = c.rows();
    let chunk_ids = |i: usize| {
        let e = c.chunks()[i];
        c.ids(e.first_row..e.first_row + e.rows)
            .map_err(std::io::Error::other)
    };
    let chars = match c.id_kind() {
        IdKind::Str => {
            let mut most = 1;
            for i in 0..c.chunks().len() {
                if let IdColumn::Str(v) = chunk_ids(i)? {
                    most = v.iter().map(|s| s.chars().count()).fold(most, usize::max);
                }
            }
            Some(most)
        }
        _ => None,
    };
    let width = chars.map_or(8, |n| 4 * n as u64);
    let descr = chars.map_or("<u8".to_string(), |n| format!("<U{n}"));
    z.start_file(
        "ids.npy",
        opts.large_file(rows * width + 128 >= u32::MAX as u64),
    )
    .map_err(zip_io)?;
    z.write_all(&member_header(&descr, &[rows]))?;
    let mut buf = Vec::new();
    for i in 0..c.chunks().len() {
        buf.clear();
        match chunk_ids(i)? {
            IdColumn::U64(v) => buf.extend(v.iter().flat_map(|x| x.to_le_bytes())),
            IdColumn::Str(v) => {
                let n = chars.unwrap_or(1);
                for s in &v {
                    let mut k = 0;
                    for ch in s.chars() {
                        buf.extend_from_slice(&(ch as u32).to_le_bytes());
                        k += 1;
                    }
                    buf.resize(buf.len() + 4 * (n - k), 0);
                }
            }
        }
        z.write_all(&buf)?;
    }
    Ok(())
}

fn zip_io(e: zip::result::ZipError) -> std::io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => std::io::Error::other(other),
    }
}

/// A version 1.0 `.npy` header for a C-order array, padded to 64 bytes as numpy pads it.
fn member_header(descr: &str, shape: &[u64]) -> Vec<u8> {
    let shape = match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        s => format!(
            "({})",
            s.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let total = (10 + dict.len() + 1).div_ceil(64) * 64;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(npy::MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

fn file_len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p)
        .map_err(|e| Error::io(p, "reading metadata of", e))?
        .len())
}

fn open_zip(input: &Path) -> Result<ZipArchive<BufReader<File>>> {
    let f = crate::input::open_input(input)?;
    ZipArchive::new(BufReader::with_capacity(1 << 20, f)).map_err(|e| {
        Error::bad_npy(
            input,
            format!("not a readable .npz (zip) file: {e}; write it with numpy.savez"),
        )
    })
}

fn member<'z>(
    input: &Path,
    zip: &'z mut ZipArchive<BufReader<File>>,
    name: &str,
) -> Result<zip::read::ZipFile<'z, BufReader<File>>> {
    let names: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.ok())
        .map(|n| n.into_owned())
        .collect();
    zip.by_name(&format!("{name}.npy")).map_err(|_| {
        Error::bad_npy(
            input,
            format!(
                "has no member '{name}': the prototype's layout is q, scales and dims; this file holds {}",
                names.join(", ")
            ),
        )
    })
}

/// Reads the `dims` scalar.
fn read_dims(input: &Path, zip: &mut ZipArchive<BufReader<File>>) -> Result<u64> {
    let mut m = member(input, zip, "dims")?;
    let (descr, shape, _) = read_member_header(input, "dims", &mut m)?;
    if shape.iter().product::<u64>() != 1 {
        return Err(Error::bad_npy(
            input,
            format!("member dims has shape {shape:?}, expected a scalar"),
        ));
    }
    let mut b = [0u8; 8];
    let v: i64 = match descr.as_str() {
        "<i8" | "=i8" => {
            read_member(input, "dims", &mut m, &mut b)?;
            i64::from_le_bytes(b)
        }
        "<i4" | "=i4" => {
            read_member(input, "dims", &mut m, &mut b[..4])?;
            i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64
        }
        other => {
            return Err(Error::bad_npy(
                input,
                format!("member dims has dtype '{other}', expected int64 ('<i8')"),
            ));
        }
    };
    if !(1..=u32::MAX as i64).contains(&v) {
        return Err(Error::bad_npy(
            input,
            format!("member dims is {v}; it must be a positive dimension count"),
        ));
    }
    expect_end(input, "dims", &mut m)?;
    Ok(v as u64)
}

/// Reads a member's `.npy` header; returns its dtype string, shape and length in bytes.
fn read_member_header(
    input: &Path,
    name: &str,
    r: &mut impl Read,
) -> Result<(String, Vec<u64>, u64)> {
    let bad = |msg: String| Error::bad_npy(input, format!("member {name}: {msg}"));
    let mut pre = [0u8; 10];
    read_member(input, name, r, &mut pre)?;
    let mut head = 10u64;
    if &pre[..6] != npy::MAGIC {
        return Err(bad("not a .npy array (bad magic)".into()));
    }
    let len = match pre[6] {
        1 => u16::from_le_bytes([pre[8], pre[9]]) as usize,
        2 | 3 => {
            let mut more = [0u8; 2];
            read_member(input, name, r, &mut more)?;
            head += 2;
            u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as usize
        }
        v => return Err(bad(format!(".npy version {v} is not supported"))),
    };
    if len > npy::MAX_HEADER_LEN {
        return Err(bad(format!(
            "header length {len} is too large; the file is corrupt"
        )));
    }
    let mut text = vec![0u8; len];
    read_member(input, name, r, &mut text)?;
    let text = String::from_utf8(text).map_err(|_| bad("header is not UTF-8".into()))?;
    let (descr, fortran, shape) =
        npy::parse_header_fields(&text).map_err(|e| bad(format!("malformed header: {e}")))?;
    if fortran && shape.len() > 1 {
        return Err(bad(
            "is in Fortran order; save np.ascontiguousarray(q) instead".into(),
        ));
    }
    Ok((descr, shape, head + len as u64))
}

fn read_member(input: &Path, name: &str, r: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::bad_npy(
                input,
                format!("member {name} ends early; the file is truncated"),
            )
        } else {
            Error::io(input, "reading", e)
        }
    })
}

fn expect_end(input: &Path, name: &str, r: &mut impl Read) -> Result<()> {
    let mut b = [0u8; 1];
    match r.read(&mut b) {
        Ok(0) => Ok(()),
        Ok(_) => Err(Error::bad_npy(
            input,
            format!("member {name} holds more data than its shape says"),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(Error::bad_npy(
            input,
            format!("member {name} fails its zip checksum: {e}; the file is corrupt"),
        )),
        Err(e) => Err(Error::io(input, "reading", e)),
    }
}
