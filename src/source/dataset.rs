//! Many `.npy` files read as one logical matrix: `--in dump/` or `--in 'dump/part-*.npy'`.
//!
//! Files are taken in natural order (`part-2` before `part-10`), must share dims and dtype,
//! and are concatenated by rows. A chunk that straddles two files is copied together;
//! every other chunk is a window of one file's mapping, as for a single file.

use std::cmp::Ordering;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::reader::{ChunkJob, NpySource};
use crate::error::{Error, Result};
use crate::npy::NpyHeader;

/// The files of a dataset, in order, with the global row where each starts.
#[derive(Debug, Clone)]
pub struct Dataset {
    spec: PathBuf,
    files: Vec<NpySource>,
    /// `starts[i]` is the first global row of file `i`; `starts[n]` is the total.
    starts: Vec<u64>,
    multi: bool,
}

impl Dataset {
    /// Opens what `--in` names: a directory (its `*.npy` files), a glob pattern, or one file.
    ///
    /// # Errors
    /// [`Error::Config`] if a directory or pattern matches no file; [`Error::BadNpy`] for an
    /// unreadable file or one whose dims or dtype differ from the first file's, naming it.
    pub fn open(spec: &Path) -> Result<Dataset> {
        let (paths, multi) = expand(spec, "npy")?;
        let files = paths
            .iter()
            .map(|p| NpySource::open(p))
            .collect::<Result<Vec<_>>>()?;
        Dataset::from_sources(spec, files, multi)
    }

    /// The mapped `files` (`.npy` files, or arrays of other formats mapped as one) read
    /// as one matrix named `spec`; `multi` when `--in` named a directory or a pattern.
    ///
    /// # Errors
    /// [`Error::BadNpy`] for a file whose dims or dtype differ from the first file's;
    /// [`Error::Config`] for no file.
    pub fn from_sources(spec: &Path, files: Vec<NpySource>, multi: bool) -> Result<Dataset> {
        if files.is_empty() {
            return Err(Error::Config(format!(
                "{}: no file to read",
                spec.display()
            )));
        }
        let mut starts = vec![0u64];
        for (i, f) in files.iter().enumerate() {
            check_same(&files[0], f)?;
            starts.push(starts[i] + f.header().rows);
        }
        Ok(Dataset {
            spec: spec.to_path_buf(),
            files,
            starts,
            multi,
        })
    }

    /// `--in` as given.
    pub fn spec(&self) -> &Path {
        &self.spec
    }

    /// True when `--in` named a directory or a pattern, not one file.
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    /// The files, in row order.
    pub fn files(&self) -> &[NpySource] {
        &self.files
    }

    /// The global rows of file `i`.
    pub fn file_rows(&self, i: usize) -> Range<u64> {
        self.starts[i]..self.starts[i + 1]
    }

    /// The first file's header with the total row count: the shape of the logical matrix.
    pub fn header(&self) -> NpyHeader {
        NpyHeader {
            rows: self.starts[self.files.len()],
            ..*self.files[0].header()
        }
    }

    /// Total bytes of all files.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(NpySource::file_len).sum()
    }

    /// The file holding global `row`, and the row within it.
    pub fn locate(&self, row: u64) -> (&NpySource, u64) {
        let i = self.starts.partition_point(|&s| s <= row).saturating_sub(1);
        let i = i.min(self.files.len() - 1);
        (&self.files[i], row - self.starts[i])
    }

    /// Chunks `range` (chunk numbers) of `chunk_rows` rows each, in order.
    pub fn chunks(
        &self,
        chunk_rows: u64,
        range: Range<u64>,
    ) -> impl Iterator<Item = Result<ChunkJob>> + Send + 'static {
        let me = self.clone();
        let total = me.header().rows;
        range.map(move |index| {
            let first = index * chunk_rows;
            let n = chunk_rows.min(total - first);
            me.job(index, first, n)
        })
    }

    pub(crate) fn job(&self, index: u64, first: u64, rows: u64) -> Result<ChunkJob> {
        let (f, local) = self.locate(first);
        if local + rows <= f.header().rows {
            return Ok(f.job(index, first, local, rows));
        }
        let rb = f.header().row_bytes();
        let mut buf = Vec::with_capacity(rows as usize * rb);
        let mut row = first;
        while row < first + rows {
            let (f, local) = self.locate(row);
            let n = (f.header().rows - local).min(first + rows - row);
            buf.extend_from_slice(f.row_bytes(local, n));
            // The copy no longer points at the map: check it here, while it still can be.
            f.check_unchanged()?;
            row += n;
        }
        Ok(ChunkJob::owned(index, first, rows, buf))
    }

    /// Releases the mapped pages of global rows `first..end` (see [`NpySource::release_rows`]).
    pub fn release_rows(&self, first: u64, end: u64) {
        let mut row = first;
        while row < end {
            let (f, local) = self.locate(row);
            let n = (f.header().rows - local).min(end - row);
            f.release_rows(local, local + n);
            row += n;
        }
    }
}

fn check_same(first: &NpySource, f: &NpySource) -> Result<()> {
    let (a, b) = (first.header(), f.header());
    if a.dims != b.dims || a.dtype != b.dtype {
        return Err(Error::bad_npy(
            f.path(),
            format!(
                "shape (_, {}) of {} differs from the first file {} (_, {}) of {}: every file of a dataset needs the same dims and dtype",
                b.dims,
                b.dtype.descr(),
                first.path().display(),
                a.dims,
                a.dtype.descr()
            ),
        ));
    }
    Ok(())
}

/// What `--in` (or a `merge` argument) names: a directory's files ending in `.ext`, the
/// matches of a glob pattern, or the path itself; sorted in natural order. The flag is true
/// for a directory or a pattern.
///
/// # Errors
/// [`Error::Config`] for a bad pattern or when nothing matches.
pub fn expand(spec: &Path, ext: &str) -> Result<(Vec<PathBuf>, bool)> {
    let text = spec.to_string_lossy();
    let mut paths = if spec.is_dir() {
        let rd = std::fs::read_dir(spec).map_err(|e| Error::io(spec, "listing", e))?;
        let mut v = Vec::new();
        for entry in rd {
            let p = entry.map_err(|e| Error::io(spec, "listing", e))?.path();
            let hidden = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'));
            if !hidden && p.extension().is_some_and(|e| e == ext) && p.is_file() {
                v.push(p);
            }
        }
        v
    } else if !spec.exists() && text.contains(['*', '?', '[']) {
        let matches = glob::glob(&text)
            .map_err(|e| Error::Config(format!("{text}: bad glob pattern: {e}")))?;
        let mut v = Vec::new();
        for m in matches {
            let p = m.map_err(|e| {
                let path = e.path().to_path_buf();
                Error::io(path, "listing", e.into())
            })?;
            if p.is_file() {
                v.push(p);
            }
        }
        v
    } else {
        return Ok((vec![spec.to_path_buf()], false));
    };
    if paths.is_empty() {
        return Err(Error::Config(format!(
            "{text}: matches no .{ext} file; check the path (a pattern must be quoted so that vectro, not the shell, expands it)"
        )));
    }
    paths.sort_by(|a, b| natural_cmp(&a.to_string_lossy(), &b.to_string_lossy()));
    Ok((paths, true))
}

/// Natural order: runs of digits compare as numbers, so `part-2` sorts before `part-10`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while let (Some(&x), Some(&y)) = (a.first(), b.first()) {
        if x.is_ascii_digit() && y.is_ascii_digit() {
            let (da, ra) = split_digits(a);
            let (db, rb) = split_digits(b);
            let (ta, tb) = (trim_zeros(da), trim_zeros(db));
            let ord = ta
                .len()
                .cmp(&tb.len())
                .then(ta.cmp(tb))
                .then(da.len().cmp(&db.len()));
            if ord != Ordering::Equal {
                return ord;
            }
            (a, b) = (ra, rb);
        } else {
            if x != y {
                return x.cmp(&y);
            }
            (a, b) = (&a[1..], &b[1..]);
        }
    }
    a.len().cmp(&b.len())
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec![
            "p-10.npy", "p-2.npy", "p-1.npy", "p-02.npy", "a.npy", "p-1b.npy",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "a.npy", "p-1.npy", "p-1b.npy", "p-2.npy", "p-02.npy", "p-10.npy"
            ]
        );
    }
}
