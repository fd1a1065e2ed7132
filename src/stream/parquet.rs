//! Parquet export: `id`, `vector` (`fixed_size_list<float32>`), then the payload columns,
//! the table Milvus bulk insert, LanceDB and Hugging Face `datasets` load.
//!
//! Written with the `parquet` crate's `ArrowWriter` (the Apache Arrow project's writer,
//! which the input side already reads with). Workers decode blocks of rows into record
//! batches; the writer thread encodes them into row groups of at most
//! [`ParquetOptions::row_group_rows`] rows, so memory holds one row group's encoded pages
//! and a few blocks in flight, whatever the container's size.

use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::ExportSummary;
use crate::error::{Error, Result};
use crate::format::{Container, IdColumn, IdKind};
use crate::par::run_ordered;
use crate::progress::Progress;
use crate::source::reader::ReleaseBehind;

/// Floats decoded per job: 1 MiB, as for JSONL; the blocks in flight stay small beside
/// the row group the writer buffers.
const JOB_FLOATS: usize = 1 << 18;

/// Settings of [`export_parquet`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ParquetOptions {
    /// Added to each row's number in the whole input to make its `id`, for a container
    /// without stored ids (as [`JsonlOptions::id_offset`](super::JsonlOptions)).
    pub id_offset: u64,
    /// Worker threads; 0 means the available cores.
    pub threads: usize,
    /// Rows per row group, at most; 0 picks about 64 MiB of vectors a row group.
    pub row_group_rows: usize,
}

/// The schema [`export_parquet`] writes for `c`: `id` (`uint64`, or `string` for string
/// ids), `vector` (`fixed_size_list<item: float>[dims]`), then the payload columns.
///
/// # Errors
/// [`Error::Corrupt`] if chunk 0's payload columns do not decode.
pub fn parquet_schema(c: &Container) -> Result<SchemaRef> {
    let id = match c.id_kind() {
        IdKind::Str => DataType::Utf8,
        _ => DataType::UInt64,
    };
    let mut fields = vec![
        Field::new("id", id, false),
        Field::new(
            "vector",
            DataType::FixedSizeList(
                Arc::new(Field::new("item", DataType::Float32, true)),
                c.dims() as i32,
            ),
            false,
        ),
    ];
    if let Some(p) = c.payload_schema()? {
        fields.extend(p.fields().iter().map(|f| f.as_ref().clone()));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Writes every row of `c` to `out` as a Parquet file of [`parquet_schema`]: the stored
/// ids (or the global row numbers plus `opts.id_offset`), the decoded vectors, and the
/// payload columns as the container stores them. Snappy-compressed pages; no dictionary
/// or statistics for the vectors, which gain nothing from them.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("x.vectro");
/// # let data: Vec<f32> = (0..20 * 3).map(|i| i as f32 / 3.0).collect();
/// # vectro::stream::Compressor::new().compress_f32(&data, 3, std::fs::File::create(&path)?)?;
/// use vectro::stream::{ParquetOptions, export_parquet};
/// use vectro::{Container, NoProgress};
///
/// let c = Container::open(&path)?;
/// let mut out = Vec::new();
/// let s = export_parquet(&c, &mut out, &ParquetOptions::default(), &NoProgress, &Default::default())?;
/// assert_eq!(s.rows, 20);
/// assert!(out.starts_with(b"PAR1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`Error::Config`] if the ids would overflow a u64; [`Error::Corrupt`] for a corrupt
/// chunk; [`Error::Io`] from the writer; [`Error::Cancelled`].
pub fn export_parquet<W: Write + Send>(
    c: &Container,
    out: W,
    opts: &ParquetOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<ExportSummary> {
    let start = Instant::now();
    let rows = c.rows();
    super::jsonl::check_id_offset(c, opts.id_offset)?;
    let d = c.dims();
    let schema = parquet_schema(c)?;
    let group = match opts.row_group_rows {
        0 => ((64 << 20) / (4 * d)).max(1),
        n => n,
    };
    let vector_leaf = ColumnPath::new(vec!["vector".into(), "list".into(), "item".into()]);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(group))
        .set_column_dictionary_enabled(vector_leaf.clone(), false)
        .set_column_statistics_enabled(vector_leaf, EnabledStatistics::None)
        .build();
    let out_name = Path::new("<output>");
    let pq =
        |e: parquet::errors::ParquetError| Error::io(out_name, "writing", std::io::Error::other(e));
    let counting = super::CountingWriter {
        inner: out,
        count: 0,
    };
    let mut w = ArrowWriter::try_new(counting, schema.clone(), Some(props)).map_err(pq)?;
    let step = (JOB_FLOATS / d).clamp(1, group) as u64;
    let threads = crate::par::resolve_threads(opts.threads);
    progress.begin(rows, rows * d as u64 * 4);
    let mut behind = ReleaseBehind::for_chunks(c);
    let mut released = 0;
    let result = run_ordered(
        threads,
        (0..rows.div_ceil(step)).map(|j| Ok(j * step..rows.min((j + 1) * step))),
        |range| block(c, &schema, range, opts.id_offset),
        |(batch, end)| {
            w.write(&batch).map_err(pq)?;
            let n = batch.num_rows() as u64;
            progress.advance(n, n * d as u64 * 4);
            let done = c.chunks().partition_point(|e| e.first_row + e.rows <= end);
            behind.release_chunks(c, released, done);
            released = done;
            Ok(())
        },
        cancel,
    );
    progress.finish();
    result?;
    let counting = w.into_inner().map_err(pq)?;
    let mut inner = counting.inner;
    inner
        .flush()
        .map_err(|e| Error::io(out_name, "writing", e))?;
    let written = counting.count;
    let seconds = start.elapsed().as_secs_f64();
    Ok(ExportSummary {
        rows,
        bytes_out: written,
        seconds,
        mb_per_s: written as f64 / 1e6 / seconds.max(1e-9),
    })
}

/// Rows `range` of `c` as a record batch of `schema`, and the row after them.
fn block(
    c: &Container,
    schema: &SchemaRef,
    range: Range<u64>,
    id_offset: u64,
) -> Result<(RecordBatch, u64)> {
    let d = c.dims();
    let n = (range.end - range.start) as usize;
    let mut values = vec![0f32; n * d];
    c.get_range(range.clone(), &mut values)?;
    let ids: ArrayRef = match c.ids(range.clone())? {
        IdColumn::U64(v) if c.id_kind() == IdKind::None => Arc::new(UInt64Array::from_iter_values(
            v.into_iter().map(|x| x + id_offset),
        )),
        IdColumn::U64(v) => Arc::new(UInt64Array::from(v)),
        IdColumn::Str(v) => Arc::new(StringArray::from(v)),
    };
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let vectors =
        FixedSizeListArray::try_new(item, d as i32, Arc::new(Float32Array::from(values)), None)
            .map_err(|e| Error::corrupt(c.path(), format!("building the vector column: {e}")))?;
    let mut cols: Vec<ArrayRef> = vec![ids, Arc::new(vectors)];
    if let Some(p) = c.payload(range.clone())? {
        cols.extend(p.columns().iter().cloned());
    }
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| {
        Error::corrupt(
            c.path(),
            format!(
                "rows {}..{}: the payload columns do not match chunk 0's: {e}",
                range.start, range.end
            ),
        )
    })?;
    debug_assert_eq!(batch.column(1).len(), n);
    Ok((batch, range.end))
}
