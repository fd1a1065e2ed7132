//! What `--in` names, told apart: the format from the extension (or, without a known one,
//! the file's first bytes), a `PATH:member` suffix for safetensors and `.npz`, and a
//! directory or glob of files of one format read as one matrix. See `docs/inputs.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::columnar::{IdColumn, IpcPart, ParquetPart, PayloadColumns};
use super::dataset::{Dataset, expand};
use super::formats::{self, FvecsPart, Member, Tensor};
use super::reader::Input;
use super::table::{Part, Table};
use crate::error::{Error, Result};

/// How to read an input beyond its path.
#[derive(Debug, Clone, Default)]
pub struct InputOptions {
    /// The Parquet or Arrow column of vectors (`--column`); `None` takes the only column
    /// of float vectors.
    pub column: Option<String>,
}

/// The formats `--in` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A `.npy`.
    Npy,
    /// Parquet (`.parquet`, `.parq`, `.pq`).
    Parquet,
    /// Arrow IPC file (`.arrow`, `.feather`, `.ipc`).
    Arrow,
    /// ANN-benchmark `.fvecs`.
    Fvecs,
    /// ANN-benchmark `.fbin`.
    Fbin,
    /// A safetensors tensor.
    Safetensors,
    /// A `.npz` member.
    Npz,
}

impl Format {
    /// The format an extension names.
    pub fn from_ext(ext: &str) -> Option<Format> {
        Some(match ext.to_ascii_lowercase().as_str() {
            "npy" => Format::Npy,
            "parquet" | "parq" | "pq" => Format::Parquet,
            "arrow" | "feather" | "ipc" => Format::Arrow,
            "fvecs" => Format::Fvecs,
            "fbin" => Format::Fbin,
            "safetensors" => Format::Safetensors,
            "npz" => Format::Npz,
            _ => return None,
        })
    }

    /// The format of a file from its first bytes, if they say.
    fn from_magic(path: &Path) -> Option<Format> {
        use std::io::Read;
        let mut b = [0u8; 8];
        let f = std::fs::File::open(path).ok()?;
        let n = f.take(8).read(&mut b).ok()?;
        let b = &b[..n];
        if b.starts_with(b"PAR1") {
            Some(Format::Parquet)
        } else if b.starts_with(b"ARROW1") {
            Some(Format::Arrow)
        } else if b.starts_with(b"\x93NUMPY") {
            Some(Format::Npy)
        } else if b.starts_with(b"PK\x03\x04") {
            Some(Format::Npz)
        } else {
            None
        }
    }

    /// The extension a directory's files of this format have.
    fn ext(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::Parquet => "parquet",
            Format::Arrow => "arrow",
            Format::Fvecs => "fvecs",
            Format::Fbin => "fbin",
            Format::Safetensors => "safetensors",
            Format::Npz => "npz",
        }
    }

    /// The name messages and the container's metadata use.
    pub fn name(self) -> &'static str {
        match self {
            Format::Arrow => "arrow",
            f => f.ext(),
        }
    }
}

/// Splits a `PATH:member` spec of a safetensors or `.npz` file that exists.
fn split_member(spec: &Path) -> Option<(PathBuf, String)> {
    if spec.exists() {
        return None;
    }
    let text = spec.to_str()?;
    let (file, member) = text.rsplit_once(':')?;
    let file = Path::new(file);
    let fmt = file
        .extension()
        .and_then(|e| e.to_str())
        .and_then(Format::from_ext);
    match fmt {
        Some(Format::Safetensors | Format::Npz) if file.is_file() && !member.is_empty() => {
            Some((file.to_path_buf(), member.to_string()))
        }
        _ => None,
    }
}

/// The format of one file: its extension, else its first bytes, else `.npy` (whose
/// reader then says what is wrong).
fn file_format(path: &Path) -> Format {
    path.extension()
        .and_then(|e| e.to_str())
        .and_then(Format::from_ext)
        .or_else(|| Format::from_magic(path))
        .unwrap_or(Format::Npy)
}

/// The format of the files a directory holds: the first of Parquet, Arrow, `.fvecs`,
/// `.fbin` that any has (`_SUCCESS` and `.crc` files of a Spark output are not), else `.npy`.
fn dir_format(dir: &Path) -> Format {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Format::Npy;
    };
    let exts: Vec<Format> = rd
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            e.path()
                .extension()
                .and_then(|x| x.to_str())
                .and_then(Format::from_ext)
        })
        .collect();
    [Format::Parquet, Format::Arrow, Format::Fvecs, Format::Fbin]
        .into_iter()
        .find(|f| exts.contains(f))
        .unwrap_or(Format::Npy)
}

/// The format `spec` names, and the member or tensor after a `:`, if any.
pub fn detect(spec: &Path) -> (Format, PathBuf, Option<String>) {
    if let Some((file, member)) = split_member(spec) {
        let f = file_format(&file);
        return (f, file, Some(member));
    }
    let text = spec.to_string_lossy();
    let f = if spec.is_dir() {
        dir_format(spec)
    } else if !spec.exists() && text.contains(['*', '?', '[']) {
        spec.extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_ext)
            .or_else(|| {
                glob::glob(&text)
                    .ok()?
                    .filter_map(|p| p.ok())
                    .find(|p| p.is_file())
                    .map(|p| file_format(&p))
            })
            .unwrap_or(Format::Npy)
    } else if spec.is_file() {
        file_format(spec)
    } else {
        spec.extension()
            .and_then(|e| e.to_str())
            .and_then(Format::from_ext)
            .unwrap_or(Format::Npy)
    };
    (f, spec.to_path_buf(), None)
}

/// The files of a directory or glob, or the file: as [`expand`], with a directory's
/// Arrow files under any of their extensions.
fn files(spec: &Path, f: Format) -> Result<(Vec<PathBuf>, bool)> {
    if f == Format::Arrow && spec.is_dir() {
        for ext in ["arrow", "feather", "ipc"] {
            if let Ok(found) = expand(spec, ext) {
                return Ok(found);
            }
        }
    }
    expand(spec, f.ext())
}

impl Input {
    /// Opens `spec` as `--in` names it (see the module docs of [`super::open`]): `-` is a
    /// `.npy` on standard input; anything else a file, a directory or a glob of one
    /// format, or `PATH:member`.
    ///
    /// # Errors
    /// [`Error::Config`] for `--column` on a format without columns, or a pattern that
    /// matches nothing; [`Error::BadNpy`] naming the file (and row group and row) for a
    /// bad input; [`Error::Io`] if a file cannot be read.
    pub fn open_with(spec: &Path, opts: &InputOptions) -> Result<Input> {
        if spec == Path::new("-") {
            if opts.column.is_some() {
                return Err(Error::Config(
                    "--column: standard input is read as a .npy, which has no columns".into(),
                ));
            }
            return Ok(Input::Stream(super::stream::StreamSource::stdin()?));
        }
        let (format, path, member) = detect(spec);
        if opts.column.is_some() && !matches!(format, Format::Parquet | Format::Arrow) {
            return Err(Error::Config(format!(
                "--column applies to Parquet and Arrow inputs; {} is read as {} (name a \
                 tensor or member as PATH:NAME instead)",
                spec.display(),
                format.name()
            )));
        }
        let column = opts.column.as_deref();
        let table =
            |parts: Vec<Arc<dyn Part>>, multi: bool| Table::new(spec, parts, multi, format.name());
        Ok(match format {
            Format::Npy => Input::Files(Dataset::open(spec)?),
            Format::Fbin => {
                let (paths, multi) = files(&path, format)?;
                let files = paths
                    .iter()
                    .map(|p| formats::open_fbin(p))
                    .collect::<Result<Vec<_>>>()?;
                Input::Files(Dataset::from_sources(spec, files, multi)?)
            }
            Format::Parquet => {
                let (paths, multi) = files(&path, format)?;
                let mut parts: Vec<Arc<dyn Part>> = Vec::new();
                for p in &paths {
                    parts.push(Arc::new(ParquetPart::open(p, column)?));
                }
                Input::Table(table(parts, multi)?)
            }
            Format::Arrow => {
                let (paths, multi) = files(&path, format)?;
                let mut parts: Vec<Arc<dyn Part>> = Vec::new();
                for p in &paths {
                    parts.push(Arc::new(IpcPart::open(p, column)?));
                }
                Input::Table(table(parts, multi)?)
            }
            Format::Fvecs => {
                let (paths, multi) = files(&path, format)?;
                let mut parts: Vec<Arc<dyn Part>> = Vec::new();
                for p in &paths {
                    parts.push(Arc::new(FvecsPart::open(p)?));
                }
                Input::Table(table(parts, multi)?)
            }
            Format::Safetensors => match formats::open_safetensors(&path, member.as_deref())? {
                Tensor::Mapped(s) => Input::Files(Dataset::from_sources(spec, vec![s], false)?),
                Tensor::Bf16(p) => {
                    let p: Arc<dyn Part> = Arc::new(p);
                    Input::Table(table(vec![p], false)?)
                }
            },
            Format::Npz => match formats::open_npz(&path, member.as_deref())? {
                Member::Mapped(s) => Input::Files(Dataset::from_sources(spec, vec![s], false)?),
                Member::Deflated(p) => {
                    let p: Arc<dyn Part> = Arc::new(p);
                    Input::Table(table(vec![p], false)?)
                }
            },
        })
    }
}

impl Input {
    /// As [`Input::open_with`], for a command that cannot read standard input: `-` is
    /// refused as every such command refuses it, before anything is read.
    ///
    /// # Errors
    /// [`Error::Config`] for `-`; as [`Input::open_with`].
    pub fn open_file(spec: &Path, opts: &InputOptions) -> Result<Input> {
        if spec == Path::new("-") {
            crate::input::open_input(spec)?;
        }
        Input::open_with(spec, opts)
    }
}

/// Opens the id column `name` of the Parquet or Arrow input `spec` (a file, a directory
/// or a glob, as `--in` names it), aligned with the rows [`Input::open_with`] reads.
///
/// # Errors
/// [`Error::Config`] for another format; [`Error::BadNpy`] naming the file that lacks the
/// column or holds another type.
pub fn open_id_column(spec: &Path, name: &str) -> Result<IdColumn> {
    let (format, path, _) = detect(spec);
    match format {
        Format::Parquet => {
            let (paths, _) = files(&path, format)?;
            let parts = paths
                .iter()
                .map(|p| ParquetPart::open_for_ids(p).map(Arc::new))
                .collect::<Result<Vec<_>>>()?;
            IdColumn::parquet(name, &parts)
        }
        Format::Arrow => {
            let (paths, _) = files(&path, format)?;
            let parts = paths
                .iter()
                .map(|p| IpcPart::open_for_ids(p).map(Arc::new))
                .collect::<Result<Vec<_>>>()?;
            IdColumn::ipc(name, &parts)
        }
        f => Err(Error::Config(format!(
            "--id-column applies to Parquet and Arrow inputs; {} is read as {}",
            spec.display(),
            f.name()
        ))),
    }
}

/// Opens the payload columns `names` of the Parquet or Arrow input `spec` (a file, a
/// directory or a glob, as `--in` names it), aligned with the rows [`Input::open_with`]
/// reads.
///
/// # Errors
/// [`Error::Config`] for another format or bad names; [`Error::BadNpy`] naming the file
/// that lacks a column or holds a type a payload column cannot hold.
pub fn open_payload_columns(spec: &Path, names: &[String]) -> Result<PayloadColumns> {
    let (format, path, _) = detect(spec);
    match format {
        Format::Parquet => {
            let (paths, _) = files(&path, format)?;
            let parts = paths
                .iter()
                .map(|p| ParquetPart::open_for_ids(p).map(Arc::new))
                .collect::<Result<Vec<_>>>()?;
            PayloadColumns::new(
                names,
                parts
                    .iter()
                    .map(|p| (p.file(), p.arrow_schema(), Some(p.clone()), None))
                    .collect(),
            )
        }
        Format::Arrow => {
            let (paths, _) = files(&path, format)?;
            let parts = paths
                .iter()
                .map(|p| IpcPart::open_for_ids(p).map(Arc::new))
                .collect::<Result<Vec<_>>>()?;
            PayloadColumns::new(
                names,
                parts
                    .iter()
                    .map(|p| (p.file(), p.arrow_schema(), None, Some(p.clone())))
                    .collect(),
            )
        }
        f => Err(Error::Config(format!(
            "--payload-columns applies to Parquet and Arrow inputs; {} is read as {}",
            spec.display(),
            f.name()
        ))),
    }
}
