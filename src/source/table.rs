//! Inputs whose rows are not one contiguous array in a file, so they cannot be mapped:
//! Parquet and Arrow IPC columns, `.fvecs`, bf16 safetensors tensors and deflated `.npz`
//! members. Each file is a [`Part`] that decodes its rows in order from any row; a
//! [`Table`] reads its parts as one matrix and cuts it into the same chunks of rows a
//! `.npy` of that matrix gives, so the encoder sees the same bytes and the container is
//! the same.
//!
//! A chunk is decoded by the pipeline's feeder thread when the pipeline asks for it, into
//! its own buffer: the read-ahead is bounded by the pipeline's queue, whatever the input's
//! size (a Parquet row group is decoded a batch of rows at a time, never whole).

use std::fmt::Debug;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::reader::ChunkJob;
use crate::error::{Error, Result};
use crate::npy::{Dtype, NpyHeader};

/// One file (or member) of a [`Table`]: a known number of rows of `dims` values of one
/// dtype, decoded in order.
pub trait Part: Send + Sync + Debug {
    /// The name errors give it (a path, or `path:member`).
    fn name(&self) -> &Path;
    /// The file it is read from (what an output must not overwrite).
    fn file(&self) -> &Path;
    /// Its size in bytes on disk.
    fn file_len(&self) -> u64;
    /// Rows, as its metadata says.
    fn rows(&self) -> u64;
    /// Values per row.
    fn dims(&self) -> u64;
    /// The dtype of the bytes [`PartReader::read`] gives.
    fn dtype(&self) -> Dtype;
    /// A reader positioned at row `row` (`row <= rows()`).
    ///
    /// # Errors
    /// Bad input or I/O errors naming the file.
    fn open_at(&self, row: u64) -> Result<Box<dyn PartReader>>;
}

/// Decodes a [`Part`]'s rows in order.
pub trait PartReader: Send {
    /// Appends the little-endian bytes of at most `n` rows to `out` and returns how many
    /// it appended: 0 only at the end of the part.
    ///
    /// # Errors
    /// Bad input (nulls, ragged rows, corrupt pages) naming the file and the row.
    fn read(&mut self, n: u64, out: &mut Vec<u8>) -> Result<u64>;
}

/// Parts read as one matrix, in order.
#[derive(Debug, Clone)]
pub struct Table {
    spec: PathBuf,
    /// The first part with rows: the dims and dtype of all.
    first: Arc<dyn Part>,
    parts: Arc<Vec<Arc<dyn Part>>>,
    /// `starts[i]` is the first global row of part `i`; `starts[n]` is the total.
    starts: Arc<Vec<u64>>,
    multi: bool,
    /// The format, for messages and the container's metadata ("parquet", "fvecs", ...).
    format: &'static str,
}

impl Table {
    /// The parts, which must agree on dims and dtype, as one matrix named `spec`; `multi`
    /// when `--in` named a directory or a pattern.
    ///
    /// # Errors
    /// [`Error::BadNpy`] naming the first part whose dims or dtype differ from the first's,
    /// or an input with no rows or no dims.
    pub fn new(
        spec: &Path,
        parts: Vec<Arc<dyn Part>>,
        multi: bool,
        format: &'static str,
    ) -> Result<Table> {
        if parts.is_empty() {
            return Err(Error::Config(format!(
                "{}: no file to read",
                spec.display()
            )));
        }
        // The dims of a list column come from a file's first row: an empty file has none,
        // and agrees with any.
        let first = Arc::clone(parts.iter().find(|p| p.rows() > 0).unwrap_or(&parts[0]));
        let mut starts = vec![0u64];
        for p in &parts {
            if p.rows() > 0 && (p.dims() != first.dims() || p.dtype() != first.dtype()) {
                return Err(Error::bad_npy(
                    p.name(),
                    format!(
                        "rows of {} dims of {} differ from the first file {} ({} dims of {}): \
                         every file of a dataset needs the same dims and dtype",
                        p.dims(),
                        p.dtype().descr(),
                        first.name().display(),
                        first.dims(),
                        first.dtype().descr()
                    ),
                ));
            }
            starts.push(starts[starts.len() - 1] + p.rows());
        }
        let rows = starts[parts.len()];
        if rows == 0 || first.dims() == 0 {
            return Err(Error::bad_npy(
                spec,
                format!(
                    "shape ({rows}, {}) is empty; there is nothing to compress",
                    first.dims()
                ),
            ));
        }
        if first.dims() > u32::MAX as u64 {
            return Err(Error::bad_npy(
                spec,
                format!("{} dims is more than Vectro supports", first.dims()),
            ));
        }
        Ok(Table {
            spec: spec.to_path_buf(),
            first,
            parts: Arc::new(parts),
            starts: Arc::new(starts),
            multi,
            format,
        })
    }

    /// `--in` as given.
    pub fn spec(&self) -> &Path {
        &self.spec
    }

    /// True when `--in` named a directory or a pattern.
    pub fn is_multi(&self) -> bool {
        self.multi
    }

    /// The format's name (`parquet`, `arrow`, `fvecs`, `safetensors`, `npz`).
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// The parts, in row order.
    pub fn parts(&self) -> &[Arc<dyn Part>] {
        &self.parts
    }

    /// The global rows of part `i`.
    pub fn part_rows(&self, i: usize) -> Range<u64> {
        self.starts[i]..self.starts[i + 1]
    }

    /// The shape and dtype of the whole matrix (`data_offset` 0).
    pub fn header(&self) -> NpyHeader {
        NpyHeader {
            dtype: self.first.dtype(),
            rows: self.starts[self.parts.len()],
            dims: self.first.dims(),
            data_offset: 0,
        }
    }

    /// Bytes on disk of all parts.
    pub fn total_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.file_len()).sum()
    }

    /// The part holding global `row`, and the row within it.
    pub fn locate(&self, row: u64) -> (usize, u64) {
        locate(&self.starts, row)
    }

    /// Chunks `range` (chunk numbers) of `chunk_rows` rows each, in order, decoded as
    /// they are asked for.
    pub fn chunks(
        &self,
        chunk_rows: u64,
        range: Range<u64>,
    ) -> impl Iterator<Item = Result<ChunkJob>> + Send + 'static {
        let total = self.header().rows;
        let row_bytes = self.header().row_bytes();
        let mut cursor = Cursor::new(self.clone(), range.start * chunk_rows);
        range.map(move |index| {
            let first = index * chunk_rows;
            let n = chunk_rows.min(total - first);
            let mut buf = Vec::with_capacity(n as usize * row_bytes);
            cursor.read_exact(n, &mut buf)?;
            Ok(ChunkJob::owned(index, first, n, buf))
        })
    }

    /// Jobs of the global rows of each of `ranges` (in bounds), numbered from 0, decoded
    /// in order: consecutive ranges continue one reader.
    pub fn ranges(
        &self,
        ranges: Vec<Range<u64>>,
    ) -> impl Iterator<Item = Result<ChunkJob>> + Send + 'static {
        let row_bytes = self.header().row_bytes();
        let table = self.clone();
        let mut cursor: Option<Cursor> = None;
        ranges.into_iter().enumerate().map(move |(i, r)| {
            if cursor.as_ref().is_some_and(|c| c.row != r.start) {
                cursor = None;
            }
            let c = cursor.get_or_insert_with(|| Cursor::new(table.clone(), r.start));
            let n = r.end - r.start;
            let mut buf = Vec::with_capacity(n as usize * row_bytes);
            c.read_exact(n, &mut buf)?;
            Ok(ChunkJob::owned(i as u64, r.start, n, buf))
        })
    }

    /// Reads global rows `ids` (any order) as float32 into `out` (`ids.len() × dims`),
    /// checking that they are finite. Rows are decoded in order, each part from the
    /// nearest point it can start at.
    ///
    /// # Errors
    /// As [`PartReader::read`]; [`Error::NonFinite`] naming the part and its own row;
    /// [`Error::Config`] for a row past the end.
    pub fn read_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
        let h = self.header();
        let (dims, rb) = (h.dims as usize, h.row_bytes());
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_unstable_by_key(|&i| ids[i]);
        let mut cursor: Option<Cursor> = None;
        let mut raw = Vec::with_capacity(rb);
        for i in order {
            let id = ids[i];
            if id >= h.rows {
                return Err(Error::Config(format!(
                    "{}: row {id} is past the last row ({} rows)",
                    self.spec.display(),
                    h.rows
                )));
            }
            // Skip forward by decoding when the row is near; otherwise start again there.
            let near = cursor.as_ref().is_some_and(|c| {
                c.row <= id && id - c.row <= SKIP_ROWS && self.locate(c.row).0 == self.locate(id).0
            });
            if !near {
                cursor = None;
            }
            let c = cursor.get_or_insert_with(|| Cursor::new(self.clone(), id));
            while c.row < id {
                raw.clear();
                let n = (id - c.row).min(1024);
                c.read_exact(n, &mut raw)?;
            }
            raw.clear();
            c.read_exact(1, &mut raw)?;
            let row = &mut out[i * dims..(i + 1) * dims];
            h.dtype.to_f32(&raw, row);
            let (p, local) = self.locate(id);
            super::check_finite(row, dims, local, self.parts[p].name())?;
        }
        Ok(())
    }
}

/// Rows [`Table::read_rows`] decodes and drops to reach a row, rather than start afresh.
const SKIP_ROWS: u64 = 1 << 16;

fn locate(starts: &[u64], row: u64) -> (usize, u64) {
    let parts = starts.len() - 1;
    let i = starts.partition_point(|&s| s <= row).saturating_sub(1);
    let i = i.min(parts - 1);
    (i, row - starts[i])
}

/// A position in a [`Table`], reading forward across its parts.
struct Cursor {
    table: Table,
    /// The global row the next read starts at.
    row: u64,
    part: usize,
    reader: Option<Box<dyn PartReader>>,
}

impl Cursor {
    fn new(table: Table, row: u64) -> Cursor {
        let (part, _) = locate(&table.starts, row);
        Cursor {
            table,
            row,
            part,
            reader: None,
        }
    }

    /// Appends exactly `n` rows to `out`, crossing into the next parts as needed.
    fn read_exact(&mut self, n: u64, out: &mut Vec<u8>) -> Result<()> {
        let mut left = n;
        while left > 0 {
            let parts = &self.table.parts;
            if self.part >= parts.len() {
                return Err(Error::Config(format!(
                    "{}: row {} is past the last row",
                    self.table.spec.display(),
                    self.row
                )));
            }
            let p = &parts[self.part];
            let end = self.table.starts[self.part + 1];
            if self.row >= end {
                self.part += 1;
                self.reader = None;
                continue;
            }
            if self.reader.is_none() {
                self.reader = Some(p.open_at(self.row - self.table.starts[self.part])?);
            }
            let r = self.reader.as_mut().expect("set above");
            let want = left.min(end - self.row);
            let got = r.read(want, out)?;
            if got == 0 {
                return Err(Error::bad_npy(
                    p.name(),
                    format!(
                        "ends at row {} although its metadata says it holds {} rows; \
                         the file is truncated or corrupt",
                        self.row - self.table.starts[self.part],
                        p.rows()
                    ),
                ));
            }
            self.row += got;
            left -= got;
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A part of `rows` rows whose row `r` is `[base + r, base + r + 0.5, ...]`, read at
    /// most `step` rows a call.
    #[derive(Debug)]
    pub(crate) struct Fake {
        pub rows: u64,
        pub dims: u64,
        pub base: f32,
        pub step: u64,
    }

    struct FakeReader {
        row: u64,
        rows: u64,
        dims: u64,
        base: f32,
        step: u64,
    }

    impl Part for Fake {
        fn name(&self) -> &Path {
            Path::new("fake")
        }
        fn file(&self) -> &Path {
            Path::new("fake")
        }
        fn file_len(&self) -> u64 {
            0
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
            Ok(Box::new(FakeReader {
                row,
                rows: self.rows,
                dims: self.dims,
                base: self.base,
                step: self.step,
            }))
        }
    }

    impl PartReader for FakeReader {
        fn read(&mut self, n: u64, out: &mut Vec<u8>) -> Result<u64> {
            let n = n.min(self.step).min(self.rows - self.row);
            for r in self.row..self.row + n {
                for d in 0..self.dims {
                    let v = self.base + r as f32 + d as f32 * 0.5;
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            self.row += n;
            Ok(n)
        }
    }

    fn table() -> Table {
        let parts: Vec<Arc<dyn Part>> = vec![
            Arc::new(Fake {
                rows: 7,
                dims: 3,
                base: 0.0,
                step: 3,
            }),
            Arc::new(Fake {
                rows: 1,
                dims: 3,
                base: 100.0,
                step: 5,
            }),
            Arc::new(Fake {
                rows: 12,
                dims: 3,
                base: 200.0,
                step: 4,
            }),
        ];
        Table::new(Path::new("t"), parts, true, "test").unwrap()
    }

    fn value(row: u64, d: u64) -> f32 {
        let (base, local) = match row {
            0..7 => (0.0, row),
            7 => (100.0, 0),
            _ => (200.0, row - 8),
        };
        base + local as f32 + d as f32 * 0.5
    }

    #[test]
    fn chunks_cross_parts_and_start_anywhere() {
        let t = table();
        assert_eq!(t.header().rows, 20);
        for chunk_rows in [1u64, 3, 5, 8, 20, 64] {
            let all = 20u64.div_ceil(chunk_rows);
            for start in [0, all / 2, all - 1] {
                let jobs: Vec<_> = t
                    .chunks(chunk_rows, start..all)
                    .map(|j| j.unwrap())
                    .collect();
                for j in &jobs {
                    assert_eq!(j.first_row, j.index * chunk_rows);
                    let v: Vec<f32> = j
                        .bytes()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                        .collect();
                    assert_eq!(v.len() as u64, j.rows * 3);
                    for (k, x) in v.iter().enumerate() {
                        let (r, d) = (j.first_row + k as u64 / 3, k as u64 % 3);
                        assert_eq!(*x, value(r, d), "chunk_rows {chunk_rows} row {r}");
                    }
                }
                assert_eq!(
                    jobs.last().unwrap().first_row + jobs.last().unwrap().rows,
                    20
                );
            }
        }
    }

    #[test]
    fn read_rows_in_any_order() {
        let t = table();
        let ids = [19u64, 0, 7, 8, 6, 7, 13];
        let mut out = vec![0f32; ids.len() * 3];
        t.read_rows(&ids, &mut out).unwrap();
        for (i, &id) in ids.iter().enumerate() {
            for d in 0..3 {
                assert_eq!(out[i * 3 + d as usize], value(id, d));
            }
        }
        assert!(t.read_rows(&[20], &mut [0f32; 3]).is_err());
    }

    #[test]
    fn parts_must_agree() {
        let parts: Vec<Arc<dyn Part>> = vec![
            Arc::new(Fake {
                rows: 7,
                dims: 3,
                base: 0.0,
                step: 3,
            }),
            Arc::new(Fake {
                rows: 1,
                dims: 4,
                base: 0.0,
                step: 3,
            }),
        ];
        let e = Table::new(Path::new("t"), parts, true, "test")
            .unwrap_err()
            .to_string();
        assert!(e.contains("4 dims") && e.contains("3 dims"), "{e}");
    }
}
