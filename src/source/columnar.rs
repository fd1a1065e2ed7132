//! Parquet and Arrow IPC files: a column of float vectors (`list`, `large_list` or
//! `fixed_size_list` of float16, float32 or float64) read as the rows of a matrix, and a
//! column of ids read beside it ([`IdColumn`]).
//!
//! Read with the `parquet` and `arrow-ipc` crates of the Apache Arrow project: they are
//! what every other Rust reader of these formats uses, follow the specifications (page
//! encodings, compression codecs, nested levels) as they evolve, and decode into Arrow
//! arrays whose value buffers are the rows' bytes. A Parquet file is read a row group at a
//! time and a batch of [`BATCH_ROWS`] rows at a time within it, pages streamed from the
//! file, so memory does not grow with the file or its row groups.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, Float64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Schema};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection, RowSelector,
};

use super::table::{Part, PartReader};
use crate::error::{Error, Result};
use crate::npy::Dtype;

/// Rows decoded at a time: 4096 rows of 1024 float32 dims is 16 MiB.
pub const BATCH_ROWS: usize = 4096;

/// A column of ids, one per row: unsigned integers or strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ids {
    /// From an integer column (`uint64`, `int64`, or a narrower integer).
    U64(Vec<u64>),
    /// From a `string` or `large_string` column.
    Str(Vec<String>),
}

impl Ids {
    /// Ids held.
    pub fn len(&self) -> usize {
        match self {
            Ids::U64(v) => v.len(),
            Ids::Str(v) => v.len(),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn append(&mut self, other: Ids) {
        match (self, other) {
            (Ids::U64(a), Ids::U64(b)) => a.extend(b),
            (Ids::Str(a), Ids::Str(b)) => a.extend(b),
            (a, b) => {
                // Parts of one table agree on the column's kind ([`IdColumn::open`]).
                debug_assert!(a.is_empty() || b.is_empty());
                if a.is_empty() {
                    *a = b;
                }
            }
        }
    }
}

/// A short name of an Arrow type, as pyarrow prints it.
pub(crate) fn type_name(t: &DataType) -> String {
    match t {
        DataType::Float16 => "halffloat".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::List(f) => format!("list<{}>", type_name(f.data_type())),
        DataType::LargeList(f) => format!("large_list<{}>", type_name(f.data_type())),
        DataType::FixedSizeList(f, n) => {
            format!("fixed_size_list<{}>[{n}]", type_name(f.data_type()))
        }
        DataType::Utf8 => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// The dtype of a column of float vectors, or `None` if it is not one.
fn vector_dtype(t: &DataType) -> Option<Dtype> {
    let item = match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => f.data_type(),
        _ => return None,
    };
    match item {
        DataType::Float16 => Some(Dtype::F16Le),
        DataType::Float32 => Some(Dtype::F32Le),
        DataType::Float64 => Some(Dtype::F64Le),
        _ => None,
    }
}

fn columns_list(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} ({})", f.name(), type_name(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The index of the vector column: `want`, or the one column of float vectors.
fn choose_column(path: &Path, schema: &Schema, want: Option<&str>) -> Result<(usize, Dtype)> {
    let fields = schema.fields();
    if let Some(name) = want {
        let Some(i) = fields.iter().position(|f| f.name() == name) else {
            return Err(Error::bad_npy(
                path,
                format!(
                    "has no column \"{name}\"; its columns are: {}; pass one of them with --column",
                    columns_list(schema)
                ),
            ));
        };
        let t = fields[i].data_type();
        let dtype = vector_dtype(t).ok_or_else(|| {
            Error::bad_npy(
                path,
                format!(
                    "column \"{name}\" is {}, not float vectors: vectro reads a list, large_list \
                     or fixed_size_list of float16, float32 or float64 (cast the column, e.g. \
                     pyarrow.compute.cast(col, pa.list_(pa.float32())))",
                    type_name(t)
                ),
            )
        })?;
        return Ok((i, dtype));
    }
    let found: Vec<(usize, Dtype)> = fields
        .iter()
        .enumerate()
        .filter_map(|(i, f)| vector_dtype(f.data_type()).map(|d| (i, d)))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::bad_npy(
            path,
            format!(
                "has no column of float vectors (a list, large_list or fixed_size_list of \
                 float16, float32 or float64); its columns are: {}",
                columns_list(schema)
            ),
        )),
        many => Err(Error::bad_npy(
            path,
            format!(
                "has {} columns of float vectors: {}; choose one with --column",
                many.len(),
                many.iter()
                    .map(|&(i, _)| format!(
                        "{} ({})",
                        fields[i].name(),
                        type_name(fields[i].data_type())
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Where a row is, for messages: a Parquet row group and the row in it, or an Arrow
/// record batch.
#[derive(Clone, Copy)]
enum Unit {
    RowGroup,
    Batch,
}

/// Names row `row` of a file whose units (row groups or batches) start at `starts`.
fn place(unit: Unit, starts: &[u64], row: u64) -> String {
    let i = starts.partition_point(|&s| s <= row).saturating_sub(1);
    let what = match unit {
        Unit::RowGroup => "row group",
        Unit::Batch => "record batch",
    };
    format!(
        "{what} {i}, row {} (row {row} of the file)",
        row - starts.get(i).copied().unwrap_or(0)
    )
}

/// Appends the values of rows `0..col.len()` of a vector column to `out` as little-endian
/// bytes of `dtype`; `first` is the file row of `col`'s row 0 and `at` names a file row.
fn append_vectors(
    path: &Path,
    col: &dyn Array,
    dims: usize,
    out: &mut Vec<u8>,
    first: u64,
    at: &dyn Fn(u64) -> String,
) -> Result<()> {
    let bad = |row: usize, msg: String| {
        Error::bad_npy(path, format!("{}: {msg}", at(first + row as u64)))
    };
    if col.null_count() > 0 {
        let row = (0..col.len()).find(|&i| col.is_null(i)).unwrap_or(0);
        return Err(bad(
            row,
            "the vector is null; drop or fill null rows before compressing".into(),
        ));
    }
    // The values of all rows, and where each row starts in them.
    let (values, range): (&ArrayRef, Range<usize>) = match col.data_type() {
        DataType::FixedSizeList(_, n) => {
            let l = col.as_fixed_size_list();
            let n = *n as usize;
            if n != dims {
                return Err(bad(
                    0,
                    format!("the vector has {n} values, the first file's rows have {dims}"),
                ));
            }
            let start = l.value_offset_at(0);
            (l.values(), start..start + l.len() * n)
        }
        DataType::List(_) => {
            let l = col.as_list::<i32>();
            let o = l.value_offsets();
            check_lengths(o.windows(2).map(|w| (w[1] - w[0]) as usize), dims, &bad)?;
            (l.values(), o[0] as usize..o[o.len() - 1] as usize)
        }
        DataType::LargeList(_) => {
            let l = col.as_list::<i64>();
            let o = l.value_offsets();
            check_lengths(o.windows(2).map(|w| (w[1] - w[0]) as usize), dims, &bad)?;
            (l.values(), o[0] as usize..o[o.len() - 1] as usize)
        }
        t => {
            return Err(bad(
                0,
                format!("the column is {}, not float vectors", type_name(t)),
            ));
        }
    };
    if values.null_count() > 0
        && let Some(j) = range.clone().find(|&j| values.is_null(j))
    {
        let row = (j - range.start) / dims.max(1);
        return Err(bad(
            row,
            format!(
                "value {} of the vector is null; fill or drop it before compressing",
                (j - range.start) % dims.max(1)
            ),
        ));
    }
    match values.data_type() {
        DataType::Float32 => {
            let v = &values.as_primitive::<Float32Type>().values()[range];
            out.extend_from_slice(&crate::npy::f32_le_bytes(v));
        }
        DataType::Float16 => {
            let v = &values.as_primitive::<Float16Type>().values()[range];
            out.reserve(v.len() * 2);
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        DataType::Float64 => {
            let v = &values.as_primitive::<Float64Type>().values()[range];
            out.reserve(v.len() * 8);
            v.iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        }
        t => {
            return Err(bad(
                0,
                format!("the vector's values are {}, not floats", type_name(t)),
            ));
        }
    }
    Ok(())
}

fn check_lengths(
    lens: impl Iterator<Item = usize>,
    dims: usize,
    bad: &dyn Fn(usize, String) -> Error,
) -> Result<()> {
    for (row, n) in lens.enumerate() {
        if n != dims {
            return Err(bad(
                row,
                format!(
                    "the vector has {n} values, but the rows before it have {dims}: every \
                     row needs the same number of values"
                ),
            ));
        }
    }
    Ok(())
}

/// The ids of rows `0..col.len()` of an id column.
fn column_ids(path: &Path, col: &dyn Array, first: u64, at: &dyn Fn(u64) -> String) -> Result<Ids> {
    let bad =
        |row: usize, msg: &str| Error::bad_npy(path, format!("{}: {msg}", at(first + row as u64)));
    if col.null_count() > 0 {
        let row = (0..col.len()).find(|&i| col.is_null(i)).unwrap_or(0);
        return Err(bad(row, "the id is null; every row needs an id"));
    }
    macro_rules! unsigned {
        ($t:ty) => {
            Ids::U64(
                col.as_primitive::<$t>()
                    .values()
                    .iter()
                    .map(|&x| x as u64)
                    .collect(),
            )
        };
    }
    macro_rules! signed {
        ($t:ty) => {{
            let v = col.as_primitive::<$t>().values();
            if let Some(row) = v.iter().position(|&x| x < 0) {
                return Err(bad(
                    row,
                    &format!("the id {} is negative; ids are unsigned", v[row]),
                ));
            }
            Ids::U64(v.iter().map(|&x| x as u64).collect())
        }};
    }
    use arrow_array::types::*;
    Ok(match col.data_type() {
        DataType::UInt64 => unsigned!(UInt64Type),
        DataType::UInt32 => unsigned!(UInt32Type),
        DataType::UInt16 => unsigned!(UInt16Type),
        DataType::UInt8 => unsigned!(UInt8Type),
        DataType::Int64 => signed!(Int64Type),
        DataType::Int32 => signed!(Int32Type),
        DataType::Int16 => signed!(Int16Type),
        DataType::Int8 => signed!(Int8Type),
        DataType::Utf8 => Ids::Str(
            col.as_string::<i32>()
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect(),
        ),
        DataType::LargeUtf8 => Ids::Str(
            col.as_string::<i64>()
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect(),
        ),
        DataType::Utf8View => Ids::Str(
            col.as_string_view()
                .iter()
                .map(|s| s.unwrap_or_default().to_string())
                .collect(),
        ),
        t => {
            return Err(bad(
                0,
                &format!("the id column is {}, not integers or strings", type_name(t)),
            ));
        }
    })
}

fn id_kind(path: &Path, schema: &Schema, name: &str) -> Result<(usize, bool)> {
    let Some(i) = schema.fields().iter().position(|f| f.name() == name) else {
        return Err(Error::bad_npy(
            path,
            format!(
                "has no column \"{name}\"; its columns are: {}; pass one of them with --id-column",
                columns_list(schema)
            ),
        ));
    };
    let t = schema.field(i).data_type();
    let strings = match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        t if t.is_integer() => false,
        t => {
            return Err(Error::bad_npy(
                path,
                format!(
                    "id column \"{name}\" is {}: ids are integers (uint64, int64, ...) or strings",
                    type_name(t)
                ),
            ));
        }
    };
    Ok((i, strings))
}

/// The length of row 0 of a list column: the dims every other row is checked against.
fn first_len(path: &Path, col: &ArrayRef, unit: Unit, starts: &[u64]) -> Result<u64> {
    if col.is_null(0) {
        return Err(Error::bad_npy(
            path,
            format!(
                "{}: the vector is null; drop or fill null rows before compressing",
                place(unit, starts, 0)
            ),
        ));
    }
    Ok(match col.data_type() {
        DataType::List(_) => col.as_list::<i32>().value_length(0) as u64,
        _ => col.as_list::<i64>().value_length(0) as u64,
    })
}

// ---------------------------------------------------------------------------------------
// Parquet

/// One Parquet file's vector column.
pub struct ParquetPart {
    path: PathBuf,
    file_len: u64,
    meta: ArrowReaderMetadata,
    column: usize,
    dims: u64,
    dtype: Dtype,
    /// First row of each row group, and the total at the end.
    starts: Vec<u64>,
}

impl fmt::Debug for ParquetPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParquetPart")
            .field("path", &self.path)
            .field("column", &self.column)
            .field("dims", &self.dims)
            .field("rows", &self.starts.last())
            .finish_non_exhaustive()
    }
}

fn parquet_err(path: &Path, what: &str, e: impl fmt::Display) -> Error {
    Error::bad_npy(
        path,
        format!("{what}: {e}; the file is not a readable Parquet file (corrupt or cut short?)"),
    )
}

impl ParquetPart {
    /// Reads the footer of the Parquet file at `path` and finds its vector column
    /// (`column`, or the only column of float vectors).
    ///
    /// # Errors
    /// [`Error::BadNpy`] for a file that is not Parquet, a corrupt footer, a missing or
    /// non-float column, or a null first row; [`Error::Io`] if it cannot be opened.
    pub fn open(path: &Path, column: Option<&str>) -> Result<ParquetPart> {
        let mut part = ParquetPart::open_for_ids(path)?;
        let (column, dtype) = choose_column(path, part.meta.schema(), column)?;
        (part.column, part.dtype) = (column, dtype);
        part.dims = match part.meta.schema().field(column).data_type() {
            DataType::FixedSizeList(_, n) => *n as u64,
            _ if part.rows() == 0 => 0,
            _ => {
                // A list's length is its first row's; every other row is checked against it.
                let mut r = part.batches(0, Some(1), part.column)?;
                let batch = r
                    .next()
                    .ok_or_else(|| parquet_err(path, "reading row 0", "no rows"))?
                    .map_err(|e| {
                        let at = place(Unit::RowGroup, &part.starts, 0);
                        parquet_err(path, &format!("reading {at}"), e)
                    })?;
                first_len(path, batch.column(0), Unit::RowGroup, &part.starts)?
            }
        };
        Ok(part)
    }

    /// Reads the footer only: for [`IdColumn`], which needs no vector column.
    pub(crate) fn open_for_ids(path: &Path) -> Result<ParquetPart> {
        let file = crate::input::open_input(path)?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io(path, "reading metadata of", e))?
            .len();
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .map_err(|e| parquet_err(path, "reading the footer", e))?;
        let mut starts = vec![0u64];
        for rg in meta.metadata().row_groups() {
            starts.push(starts[starts.len() - 1] + rg.num_rows().max(0) as u64);
        }
        Ok(ParquetPart {
            path: path.to_path_buf(),
            file_len,
            meta,
            column: 0,
            dims: 0,
            dtype: Dtype::F32Le,
            starts,
        })
    }

    /// The column's name.
    pub fn column_name(&self) -> &str {
        self.meta.schema().field(self.column).name()
    }

    /// The file's Arrow schema.
    pub(crate) fn arrow_schema(&self) -> Arc<Schema> {
        self.meta.schema().clone()
    }

    /// Batches of column `column` from file row `row` on (at most `limit` rows).
    fn batches(
        &self,
        row: u64,
        limit: Option<usize>,
        column: usize,
    ) -> Result<ParquetRecordBatchReader> {
        self.batches_of(row, limit, &[column])
    }

    /// Batches of columns `columns` (in the file's order) from file row `row` on (at most
    /// `limit` rows).
    fn batches_of(
        &self,
        row: u64,
        limit: Option<usize>,
        columns: &[usize],
    ) -> Result<ParquetRecordBatchReader> {
        let file = crate::input::open_input(&self.path)?;
        let groups = self.starts.len() - 1;
        let rg = self
            .starts
            .partition_point(|&s| s <= row)
            .saturating_sub(1)
            .min(groups);
        let skip = row - self.starts[rg.min(groups)];
        let mask = ProjectionMask::roots(self.meta.parquet_schema(), columns.iter().copied());
        let mut b = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.meta.clone())
            .with_projection(mask)
            .with_row_groups((rg..groups).collect())
            .with_batch_size(BATCH_ROWS);
        if skip > 0 {
            let rest = self.starts[groups] - self.starts[rg];
            b = b.with_row_selection(RowSelection::from(vec![
                RowSelector::skip(skip as usize),
                RowSelector::select((rest - skip) as usize),
            ]));
        }
        if let Some(l) = limit {
            b = b.with_limit(l);
        }
        b.build().map_err(|e| {
            parquet_err(
                &self.path,
                &format!("reading {}", place(Unit::RowGroup, &self.starts, row)),
                e,
            )
        })
    }

    /// The Parquet id column `name`'s kind: strings (true) or integers.
    fn id_column(&self, name: &str) -> Result<(usize, bool)> {
        id_kind(&self.path, self.meta.schema(), name)
    }
}

impl Part for ParquetPart {
    fn name(&self) -> &Path {
        &self.path
    }
    fn file(&self) -> &Path {
        &self.path
    }
    fn file_len(&self) -> u64 {
        self.file_len
    }
    fn rows(&self) -> u64 {
        self.starts[self.starts.len() - 1]
    }
    fn dims(&self) -> u64 {
        self.dims
    }
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn open_at(&self, row: u64) -> Result<Box<dyn PartReader>> {
        let batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send> = if row >= self.rows() {
            Box::new(std::iter::empty())
        } else {
            let path = self.path.clone();
            let starts = self.starts.clone();
            let mut at = row;
            Box::new(self.batches(row, None, self.column)?.map(move |b| {
                let b = b.map_err(|e| {
                    parquet_err(
                        &path,
                        &format!("reading {}", place(Unit::RowGroup, &starts, at)),
                        e,
                    )
                })?;
                at += b.num_rows() as u64;
                Ok(b)
            }))
        };
        Ok(Box::new(BatchRows {
            path: self.path.clone(),
            unit: Unit::RowGroup,
            starts: self.starts.clone(),
            dims: self.dims as usize,
            batches,
            pending: None,
            row,
        }))
    }
}

/// Rows of a vector column, a batch at a time.
struct BatchRows {
    path: PathBuf,
    unit: Unit,
    starts: Vec<u64>,
    dims: usize,
    batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
    /// The current batch's column and the next row in it.
    pending: Option<(ArrayRef, usize)>,
    /// The file row of the next row.
    row: u64,
}

impl PartReader for BatchRows {
    fn read(&mut self, n: u64, out: &mut Vec<u8>) -> Result<u64> {
        loop {
            if let Some((col, off)) = &mut self.pending
                && *off < col.len()
            {
                let m = (n as usize).min(col.len() - *off);
                let slice = col.slice(*off, m);
                let (unit, starts) = (self.unit, &self.starts);
                append_vectors(&self.path, slice.as_ref(), self.dims, out, self.row, &|r| {
                    place(unit, starts, r)
                })?;
                *off += m;
                self.row += m as u64;
                return Ok(m as u64);
            }
            match self.batches.next() {
                None => return Ok(0),
                Some(b) => self.pending = Some((b?.column(0).clone(), 0)),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Arrow IPC

/// One Arrow IPC file's vector column.
#[derive(Debug)]
pub struct IpcPart {
    path: PathBuf,
    file_len: u64,
    schema: Arc<Schema>,
    column: usize,
    dims: u64,
    dtype: Dtype,
    /// First row of each record batch, and the total at the end.
    starts: Vec<u64>,
}

fn ipc_err(path: &Path, what: &str, e: impl fmt::Display) -> Error {
    Error::bad_npy(
        path,
        format!(
            "{what}: {e}; the file is not a readable Arrow IPC file (corrupt or cut short? \
             Feather v1 files are not read: save it again with pyarrow.feather.write_feather)"
        ),
    )
}

impl IpcPart {
    /// Reads the footer of the Arrow IPC (Feather v2) file at `path`, the row count of each
    /// record batch, and finds its vector column.
    ///
    /// # Errors
    /// As [`ParquetPart::open`].
    pub fn open(path: &Path, column: Option<&str>) -> Result<IpcPart> {
        let mut part = IpcPart::open_for_ids(path)?;
        let (column, dtype) = choose_column(path, &part.schema, column)?;
        (part.column, part.dtype) = (column, dtype);
        part.dims = match part.schema.field(column).data_type() {
            DataType::FixedSizeList(_, n) => *n as u64,
            _ if part.rows() == 0 => 0,
            _ => {
                let mut b = part.batches(0, column)?;
                let batch = b
                    .next()
                    .ok_or_else(|| ipc_err(path, "reading row 0", "no batch"))??;
                first_len(path, batch.column(0), Unit::Batch, &part.starts)?
            }
        };
        Ok(part)
    }

    /// Reads the footer only: for [`IdColumn`], which needs no vector column.
    pub(crate) fn open_for_ids(path: &Path) -> Result<IpcPart> {
        let mut file = crate::input::open_input(path)?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::io(path, "reading metadata of", e))?
            .len();
        let reader = arrow_ipc::reader::FileReader::try_new(BufReader::new(&mut file), None)
            .map_err(|e| ipc_err(path, "reading the footer", e))?;
        let schema = reader.schema();
        drop(reader);
        let starts = ipc_batch_starts(path, &mut file, file_len)?;
        Ok(IpcPart {
            path: path.to_path_buf(),
            file_len,
            schema,
            column: 0,
            dims: 0,
            dtype: Dtype::F32Le,
            starts,
        })
    }

    fn reader(&self, columns: &[usize]) -> Result<arrow_ipc::reader::FileReader<BufReader<File>>> {
        let file = crate::input::open_input(&self.path)?;
        arrow_ipc::reader::FileReader::try_new(BufReader::new(file), Some(columns.to_vec()))
            .map_err(|e| ipc_err(&self.path, "reading the footer", e))
    }

    fn id_column(&self, name: &str) -> Result<(usize, bool)> {
        id_kind(&self.path, &self.schema, name)
    }

    /// The file's Arrow schema.
    pub(crate) fn arrow_schema(&self) -> Arc<Schema> {
        self.schema.clone()
    }

    /// Batches of `column` from file row `row` on, the first sliced to start there.
    fn batches(
        &self,
        row: u64,
        column: usize,
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
        self.batches_of(row, &[column])
    }

    /// Batches of `columns` from file row `row` on, the first sliced to start there.
    fn batches_of(
        &self,
        row: u64,
        columns: &[usize],
    ) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
        if row >= self.rows() {
            return Ok(Box::new(std::iter::empty()));
        }
        let mut r = self.reader(columns)?;
        let b = self.starts.partition_point(|&s| s <= row) - 1;
        r.set_index(b)
            .map_err(|e| ipc_err(&self.path, "seeking", e))?;
        let mut skip = (row - self.starts[b]) as usize;
        let (path, starts) = (self.path.clone(), self.starts.clone());
        let mut at = b;
        Ok(Box::new(r.map(move |batch| {
            let batch = batch.map_err(|e| {
                ipc_err(
                    &path,
                    &format!(
                        "reading record batch {at} (rows from {})",
                        starts[at.min(starts.len() - 1)]
                    ),
                    e,
                )
            })?;
            at += 1;
            let s = std::mem::take(&mut skip).min(batch.num_rows());
            Ok(batch.slice(s, batch.num_rows() - s))
        })))
    }
}

/// The first row of each record batch of an Arrow IPC file, from the footer's blocks and
/// each batch's message header (no body is read).
fn ipc_batch_starts(path: &Path, file: &mut File, file_len: u64) -> Result<Vec<u64>> {
    let io = |e| Error::io(path, "reading", e);
    let bad = |msg: &str| ipc_err(path, "reading the footer", msg);
    if file_len < 10 {
        return Err(bad("too short"));
    }
    let mut tail = [0u8; 10];
    file.seek(SeekFrom::End(-10)).map_err(io)?;
    file.read_exact(&mut tail).map_err(io)?;
    let footer_len = arrow_ipc::reader::read_footer_length(tail)
        .map_err(|e| ipc_err(path, "reading the footer", e))? as u64;
    if footer_len + 10 > file_len {
        return Err(bad("the footer is longer than the file"));
    }
    let mut footer = vec![0u8; footer_len as usize];
    file.seek(SeekFrom::Start(file_len - 10 - footer_len))
        .map_err(io)?;
    file.read_exact(&mut footer).map_err(io)?;
    let footer =
        arrow_ipc::root_as_footer(&footer).map_err(|e| ipc_err(path, "reading the footer", e))?;
    let mut starts = vec![0u64];
    for (i, block) in footer.recordBatches().into_iter().flatten().enumerate() {
        let len = block.metaDataLength().max(0) as u64;
        let at = block.offset().max(0) as u64;
        if at + len > file_len || len < 8 {
            return Err(bad(&format!("record batch {i} lies outside the file")));
        }
        let mut msg = vec![0u8; len as usize];
        file.seek(SeekFrom::Start(at)).map_err(io)?;
        file.read_exact(&mut msg).map_err(io)?;
        // A message starts with 0xFFFFFFFF and its length (the legacy format: the length).
        let body = if msg[..4] == [0xff; 4] {
            &msg[8..]
        } else {
            &msg[4..]
        };
        let rows = arrow_ipc::root_as_message(body)
            .ok()
            .and_then(|m| m.header_as_record_batch())
            .map(|b| b.length())
            .ok_or_else(|| bad(&format!("record batch {i} has no readable header")))?;
        starts.push(starts[starts.len() - 1] + rows.max(0) as u64);
    }
    Ok(starts)
}

impl Part for IpcPart {
    fn name(&self) -> &Path {
        &self.path
    }
    fn file(&self) -> &Path {
        &self.path
    }
    fn file_len(&self) -> u64 {
        self.file_len
    }
    fn rows(&self) -> u64 {
        self.starts[self.starts.len() - 1]
    }
    fn dims(&self) -> u64 {
        self.dims
    }
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn open_at(&self, row: u64) -> Result<Box<dyn PartReader>> {
        Ok(Box::new(BatchRows {
            path: self.path.clone(),
            unit: Unit::Batch,
            starts: self.starts.clone(),
            dims: self.dims as usize,
            batches: self.batches(row, self.column)?,
            pending: None,
            row,
        }))
    }
}

// ---------------------------------------------------------------------------------------
// Ids

/// An id column of a Parquet or Arrow dataset, read beside its vector column: id `i` is
/// the id of global row `i`.
#[derive(Debug)]
pub struct IdColumn {
    name: String,
    strings: bool,
    parts: Vec<(IdPart, u64)>,
}

#[derive(Debug)]
enum IdPart {
    Parquet(Arc<ParquetPart>, usize),
    Ipc(Arc<IpcPart>, usize),
}

impl IdColumn {
    /// The id column `name` of each Parquet part (with its rows), which must all be
    /// strings or all integers.
    ///
    /// # Errors
    /// [`Error::BadNpy`] naming the file that lacks the column or holds another type.
    pub(crate) fn parquet(name: &str, parts: &[Arc<ParquetPart>]) -> Result<IdColumn> {
        let mut v = Vec::new();
        for p in parts {
            let (i, s) = p.id_column(name)?;
            v.push((
                IdPart::Parquet(Arc::clone(p), i),
                p.rows(),
                s,
                p.path.clone(),
            ));
        }
        IdColumn::new(name, v)
    }

    /// As [`IdColumn::parquet`], of Arrow IPC parts.
    ///
    /// # Errors
    /// As [`IdColumn::parquet`].
    pub(crate) fn ipc(name: &str, parts: &[Arc<IpcPart>]) -> Result<IdColumn> {
        let mut v = Vec::new();
        for p in parts {
            let (i, s) = p.id_column(name)?;
            v.push((IdPart::Ipc(Arc::clone(p), i), p.rows(), s, p.path.clone()));
        }
        IdColumn::new(name, v)
    }

    fn new(name: &str, v: Vec<(IdPart, u64, bool, PathBuf)>) -> Result<IdColumn> {
        let strings = v.first().is_some_and(|x| x.2);
        if let Some(x) = v.iter().find(|x| x.2 != strings) {
            return Err(Error::bad_npy(
                &x.3,
                format!(
                    "id column \"{name}\" holds {} but the first file's holds {}",
                    if x.2 { "strings" } else { "integers" },
                    if strings { "strings" } else { "integers" }
                ),
            ));
        }
        Ok(IdColumn {
            name: name.to_string(),
            strings,
            parts: v.into_iter().map(|x| (x.0, x.1)).collect(),
        })
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True for string ids, false for integers.
    pub fn is_strings(&self) -> bool {
        self.strings
    }

    /// Rows in all parts.
    pub fn rows(&self) -> u64 {
        self.parts.iter().map(|p| p.1).sum()
    }

    /// The ids of global rows `rows`, in order.
    ///
    /// # Errors
    /// [`Error::BadNpy`] naming the file, row group and row of a null or negative id, or
    /// a corrupt page; [`Error::Config`] for rows past the end.
    pub fn read_ids(&self, rows: Range<u64>) -> Result<Ids> {
        let mut out = if self.strings {
            Ids::Str(Vec::with_capacity((rows.end - rows.start) as usize))
        } else {
            Ids::U64(Vec::with_capacity((rows.end - rows.start) as usize))
        };
        if rows.end > self.rows() {
            return Err(Error::Config(format!(
                "id column \"{}\": rows {}..{} go past the last row ({})",
                self.name,
                rows.start,
                rows.end,
                self.rows()
            )));
        }
        let mut start = 0u64;
        for (part, n) in &self.parts {
            let end = start + n;
            let (a, b) = (rows.start.max(start), rows.end.min(end));
            if a < b {
                let (local, mut want) = (a - start, (b - a) as usize);
                let (path, unit, starts, batches) = match part {
                    IdPart::Parquet(p, c) => {
                        let it = p.batches(local, Some(want), *c)?;
                        let path = p.path.clone();
                        let st = p.starts.clone();
                        let b: Box<dyn Iterator<Item = Result<RecordBatch>>> = Box::new(
                            it.map(move |b| b.map_err(|e| parquet_err(&path, "reading ids", e))),
                        );
                        (p.path.clone(), Unit::RowGroup, st, b)
                    }
                    IdPart::Ipc(p, c) => {
                        let b: Box<dyn Iterator<Item = Result<RecordBatch>>> =
                            Box::new(p.batches(local, *c)?);
                        (p.path.clone(), Unit::Batch, p.starts.clone(), b)
                    }
                };
                let mut at = local;
                for batch in batches {
                    if want == 0 {
                        break;
                    }
                    let batch = batch?;
                    let m = batch.num_rows().min(want);
                    let col = batch.column(0).slice(0, m);
                    let ids = column_ids(&path, col.as_ref(), at, &|r| place(unit, &starts, r))?;
                    out.append(ids);
                    want -= m;
                    at += m as u64;
                }
                if want > 0 {
                    return Err(Error::bad_npy(
                        &path,
                        format!("ends at row {at} although its metadata says it holds {n} rows"),
                    ));
                }
            }
            start = end;
        }
        Ok(out)
    }
}

/// A Parquet or Arrow id column as the rows' stored ids (`compress --id-column`): each
/// string id is checked as the container requires, naming the column and row.
impl crate::format::IdSource for IdColumn {
    fn kind(&self) -> crate::format::IdKind {
        if self.strings {
            crate::format::IdKind::Str
        } else {
            crate::format::IdKind::U64
        }
    }

    fn rows(&self) -> u64 {
        IdColumn::rows(self)
    }

    fn ids(&mut self, rows: Range<u64>) -> Result<crate::format::IdColumn> {
        let first = rows.start;
        Ok(match self.read_ids(rows)? {
            Ids::U64(v) => crate::format::IdColumn::U64(v),
            Ids::Str(v) => {
                for (i, id) in v.iter().enumerate() {
                    if let Some(why) = crate::format::ids::check_str_id(id.as_bytes()) {
                        return Err(Error::Mismatch(format!(
                            "--id-column {}: row {}: the id {why}",
                            self.name,
                            first + i as u64
                        )));
                    }
                }
                crate::format::IdColumn::Str(v)
            }
        })
    }
}

// ---------------------------------------------------------------------------------------
// Payload columns

/// Payload columns of a Parquet or Arrow dataset (`compress --payload-columns`), read
/// beside its vector column, forward, a chunk's rows at a time, in the canonical form the
/// container stores ([`crate::format::payload`]).
pub struct PayloadColumns {
    names: Vec<String>,
    schema: arrow_schema::SchemaRef,
    parts: Vec<PayloadPart>,
    /// The first global row of each part, and the total at the end.
    starts: Vec<u64>,
    cursor: Option<PayloadCursor>,
}

impl fmt::Debug for PayloadColumns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PayloadColumns")
            .field("names", &self.names)
            .field("rows", &self.starts.last())
            .finish_non_exhaustive()
    }
}

/// A file of a dataset, for [`PayloadColumns::new`]: its path and schema, and the part
/// (Parquet or Arrow) it is.
pub(crate) type PayloadPartSpec<'a> = (
    &'a Path,
    Arc<Schema>,
    Option<Arc<ParquetPart>>,
    Option<Arc<IpcPart>>,
);

enum PayloadPart {
    Parquet(Arc<ParquetPart>, Vec<usize>),
    Ipc(Arc<IpcPart>, Vec<usize>),
}

impl PayloadPart {
    fn path(&self) -> &Path {
        match self {
            PayloadPart::Parquet(p, _) => &p.path,
            PayloadPart::Ipc(p, _) => &p.path,
        }
    }

    fn unit(&self) -> (Unit, &[u64]) {
        match self {
            PayloadPart::Parquet(p, _) => (Unit::RowGroup, &p.starts),
            PayloadPart::Ipc(p, _) => (Unit::Batch, &p.starts),
        }
    }
}

/// Where the reader of payload columns is: part `part`, whose next batch starts at global
/// row `next` once `pending` (the rest of the current batch) is taken.
struct PayloadCursor {
    part: usize,
    next: u64,
    batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send>,
    pending: Option<RecordBatch>,
}

impl PayloadColumns {
    /// The payload columns `names` of each part: every part must have each of them, of
    /// a supported type, the same in every part.
    ///
    /// # Errors
    /// [`Error::BadNpy`] naming the file and the column that is missing, of a type a
    /// payload column cannot hold, or of another type than in the first file;
    /// [`Error::Config`] for no names, a repeated one, or `id`/`vector`.
    pub(crate) fn new(names: &[String], parts: Vec<PayloadPartSpec<'_>>) -> Result<PayloadColumns> {
        check_payload_names(names)?;
        let mut types: Vec<DataType> = Vec::new();
        let mut out = Vec::new();
        let mut starts = vec![0u64];
        for (k, (path, schema, pq, ipc)) in parts.into_iter().enumerate() {
            let mut idx = Vec::new();
            for (j, name) in names.iter().enumerate() {
                let Some(i) = schema.fields().iter().position(|f| f.name() == name) else {
                    return Err(Error::bad_npy(
                        path,
                        format!(
                            "has no column \"{name}\" for --payload-columns; its columns are: {}",
                            columns_list(&schema)
                        ),
                    ));
                };
                let t = schema.field(i).data_type();
                if !crate::format::payload::supported(t) {
                    return Err(Error::bad_npy(
                        path,
                        format!(
                            "payload column \"{name}\" is {}, which a payload column cannot hold; \
                             payload columns hold {} (cast it, or leave it out of --payload-columns)",
                            type_name(t),
                            crate::format::payload::SUPPORTED
                        ),
                    ));
                }
                if k == 0 {
                    types.push(t.clone());
                } else if types[j] != *t {
                    return Err(Error::bad_npy(
                        path,
                        format!(
                            "payload column \"{name}\" is {} but the first file's is {}; \
                             every file of the dataset must agree",
                            type_name(t),
                            type_name(&types[j])
                        ),
                    ));
                }
                idx.push(i);
            }
            let (part, rows) = match (pq, ipc) {
                (Some(p), _) => {
                    let n = p.rows();
                    (PayloadPart::Parquet(p, idx), n)
                }
                (None, Some(p)) => {
                    let n = p.rows();
                    (PayloadPart::Ipc(p, idx), n)
                }
                (None, None) => unreachable!("a part is Parquet or Arrow"),
            };
            out.push(part);
            starts.push(starts[starts.len() - 1] + rows);
        }
        let cols: Vec<(String, DataType)> = names.iter().cloned().zip(types).collect();
        Ok(PayloadColumns {
            names: names.to_vec(),
            schema: crate::format::payload::schema(&cols),
            parts: out,
            starts,
            cursor: None,
        })
    }

    /// The canonical schema of the columns, as the container stores them.
    pub fn schema(&self) -> &arrow_schema::SchemaRef {
        &self.schema
    }

    /// Rows in all parts.
    pub fn rows(&self) -> u64 {
        self.starts[self.starts.len() - 1]
    }

    fn open_part(&self, part: usize, local: u64) -> Result<PayloadCursor> {
        let p = &self.parts[part];
        let batches: Box<dyn Iterator<Item = Result<RecordBatch>> + Send> = match p {
            PayloadPart::Parquet(q, cols) => {
                let path = q.path.clone();
                let starts = q.starts.clone();
                let mut at = local;
                Box::new(q.batches_of(local, None, cols)?.map(move |b| {
                    let b = b.map_err(|e| {
                        parquet_err(
                            &path,
                            &format!(
                                "reading the payload columns at {}",
                                place(Unit::RowGroup, &starts, at)
                            ),
                            e,
                        )
                    })?;
                    at += b.num_rows() as u64;
                    Ok(b)
                }))
            }
            PayloadPart::Ipc(q, cols) => q.batches_of(local, cols)?,
        };
        Ok(PayloadCursor {
            part,
            next: self.starts[part] + local,
            batches,
            pending: None,
        })
    }

    /// The columns of global rows `rows`, canonical, as one record batch. Reading on from
    /// where the last call ended continues the open readers; any other start reopens them.
    ///
    /// # Errors
    /// [`Error::BadNpy`] naming the file, row group (or record batch) and row of a page
    /// that does not decode, or of a column a chunk cannot hold; [`Error::Config`] for rows
    /// past the end.
    pub fn read(&mut self, rows: Range<u64>) -> Result<RecordBatch> {
        if rows.end > self.rows() || rows.start > rows.end {
            return Err(Error::Config(format!(
                "payload columns: rows {}..{} go past the last row ({})",
                rows.start,
                rows.end,
                self.rows()
            )));
        }
        if self.cursor.as_ref().is_none_or(|c| c.next != rows.start) {
            let part = self.starts.partition_point(|&s| s <= rows.start) - 1;
            let part = part.min(self.parts.len() - 1);
            self.cursor = Some(self.open_part(part, rows.start - self.starts[part])?);
        }
        let mut got: Vec<(usize, RecordBatch)> = Vec::new();
        let mut want = (rows.end - rows.start) as usize;
        while want > 0 {
            let Some(c) = self.cursor.as_mut() else {
                unreachable!("opened above")
            };
            let batch = match c.pending.take() {
                Some(b) => b,
                None => match c.batches.next() {
                    Some(b) => b?,
                    None => {
                        let next = c.part + 1;
                        if next >= self.parts.len() || c.next != self.starts[next] {
                            let p = &self.parts[c.part];
                            return Err(Error::bad_npy(
                                p.path(),
                                format!(
                                    "the payload columns end at row {} of the file, although it holds {} rows",
                                    c.next - self.starts[c.part],
                                    self.starts[c.part + 1] - self.starts[c.part]
                                ),
                            ));
                        }
                        self.cursor = Some(self.open_part(next, 0)?);
                        continue;
                    }
                },
            };
            let m = batch.num_rows().min(want);
            if m < batch.num_rows() {
                c.pending = Some(batch.slice(m, batch.num_rows() - m));
            }
            got.push((c.part, batch.slice(0, m)));
            c.next += m as u64;
            want -= m;
        }
        self.canonical_batch(&got, rows.start)
    }

    /// One canonical batch of the columns of `got` (slices of the parts' batches, in
    /// order), whose first row is global row `first`.
    fn canonical_batch(&self, got: &[(usize, RecordBatch)], first: u64) -> Result<RecordBatch> {
        let mut cols = Vec::with_capacity(self.names.len());
        for name in &self.names {
            let arrays: Vec<ArrayRef> = got
                .iter()
                .map(|(_, b)| b.column_by_name(name).cloned().expect("projected"))
                .collect();
            let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
            let joined = match refs.len() {
                1 => arrays[0].clone(),
                _ => arrow_select::concat::concat(&refs)
                    .map_err(|e| Error::Config(format!("payload column \"{name}\": {e}")))?,
            };
            let col = crate::format::payload::canonical(joined.as_ref()).map_err(|m| {
                let part = got.first().map_or(0, |g| g.0);
                let p = &self.parts[part];
                let (unit, starts) = p.unit();
                let local = first - self.starts[part];
                Error::bad_npy(
                    p.path(),
                    format!(
                        "payload column \"{name}\" at {} {m}",
                        place(unit, starts, local)
                    ),
                )
            })?;
            cols.push(col);
        }
        RecordBatch::try_new(self.schema.clone(), cols)
            .map_err(|e| Error::Config(format!("payload columns: {e}")))
    }
}

/// Refuses an empty list of payload columns, a repeated name, and the names of the
/// fields `get` and `export` write beside them.
fn check_payload_names(names: &[String]) -> Result<()> {
    if names.is_empty() {
        return Err(Error::Config(
            "--payload-columns: give at least one column name (a,b,c)".into(),
        ));
    }
    for (i, n) in names.iter().enumerate() {
        if n.is_empty() {
            return Err(Error::Config(format!(
                "--payload-columns: item {} is empty; expected a comma-separated list of column names",
                i + 1
            )));
        }
        if names[..i].contains(n) {
            return Err(Error::Config(format!(
                "--payload-columns: \"{n}\" is named twice"
            )));
        }
        if n == "id" || n == "vector" {
            return Err(Error::Config(format!(
                "--payload-columns: a column named \"{n}\" would collide with the \"{n}\" field \
                 that get and export write; store ids with --id-column, or rename the column"
            )));
        }
    }
    Ok(())
}
