//! Payload columns (format 1.5): other columns of a table input (titles, urls, tags...)
//! stored with the rows, per chunk, inside the chunk's payload and so under its crc.
//!
//! ```text
//! chunk of n rows, header flag bit 3 (payload columns):
//! +-----------+-----------------+-------------------+--------------------+-------+-------+
//! | header 36 | codec payload   | id block (if ids) | P bytes: an Arrow  | u64 P | crc32c|
//! |           | (staged)        |                   | IPC stream, n rows |       |       |
//! +-----------+-----------------+-------------------+--------------------+-------+-------+
//!             |<--------------------- payload length L in the chunk header -->|
//! ```
//!
//! The block is read from its end (its length is the last field), then the id block from
//! the end of what precedes it, so a reader of the ids or the codes never parses the
//! payload. The block is the Arrow IPC *streaming format* (a schema message, one record
//! batch of the chunk's rows, the end-of-stream marker): the one columnar encoding every
//! Arrow implementation reads (pyarrow: `pa.ipc.open_stream(block).read_all()`).
//!
//! The columns are first rebuilt in a canonical form ([`canonical`]): one type per kind
//! (`large_string` and `string_view` become `string`, `large_list` and `fixed_size_list`
//! become `list<item>`, `halffloat` becomes `float`), fresh buffers, zeros under nulls and
//! a validity bitmap only when there are nulls. The same rows therefore give the same
//! bytes however the input's batches were cut: a shard's chunk equals the single run's,
//! and `--resume` can compare a re-encoded chunk byte for byte.

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, Float32Builder, PrimitiveBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field, Schema};
use byteorder::{ByteOrder, LittleEndian as LE};

/// Header flag bit: chunks carry payload columns.
pub(crate) const FLAG_PAYLOAD: u16 = 1 << 3;
/// The largest payload block of one chunk: 1 GiB.
pub const MAX_BLOCK_BYTES: u64 = 1 << 30;
/// The header metadata key that lists the payload columns and their types, as JSON.
pub const KEY_COLUMNS: &str = "payload_columns";

/// What payload columns may hold, in words, for error messages.
pub const SUPPORTED: &str = "integers (int8..int64, uint8..uint64), floats (halffloat, float, double), \
bool, strings (string, large_string) and lists of those (list, large_list, fixed_size_list)";

/// Whether a column of type `t` can be stored as a payload column.
pub fn supported(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            scalar_supported(f.data_type())
        }
        t => scalar_supported(t),
    }
}

fn scalar_supported(t: &DataType) -> bool {
    t.is_integer()
        || matches!(
            t,
            DataType::Float16
                | DataType::Float32
                | DataType::Float64
                | DataType::Boolean
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
        )
}

/// The type a column of type `t` is stored as (see the module documentation).
pub fn canonical_type(t: &DataType) -> DataType {
    match t {
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            DataType::List(Arc::new(Field::new(
                "item",
                canonical_type(f.data_type()),
                true,
            )))
        }
        DataType::Float16 => DataType::Float32,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        t => t.clone(),
    }
}

/// `col` rebuilt in canonical form.
///
/// # Errors
/// A message for a type that is not supported, or a chunk whose strings or list values
/// exceed 2³¹ bytes or items.
pub fn canonical(col: &dyn Array) -> Result<ArrayRef, String> {
    macro_rules! prim {
        ($t:ty) => {{
            let a = col.as_primitive::<$t>();
            let mut b = PrimitiveBuilder::<$t>::with_capacity(a.len());
            for v in a.iter() {
                b.append_option(v);
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match col.data_type() {
        DataType::Int8 => prim!(Int8Type),
        DataType::Int16 => prim!(Int16Type),
        DataType::Int32 => prim!(Int32Type),
        DataType::Int64 => prim!(Int64Type),
        DataType::UInt8 => prim!(UInt8Type),
        DataType::UInt16 => prim!(UInt16Type),
        DataType::UInt32 => prim!(UInt32Type),
        DataType::UInt64 => prim!(UInt64Type),
        DataType::Float32 => prim!(Float32Type),
        DataType::Float64 => prim!(Float64Type),
        DataType::Float16 => {
            let a = col.as_primitive::<Float16Type>();
            let mut b = Float32Builder::with_capacity(a.len());
            for v in a.iter() {
                b.append_option(v.map(f32::from));
            }
            Arc::new(b.finish())
        }
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(col.len());
            for v in col.as_boolean().iter() {
                b.append_option(v);
            }
            Arc::new(b.finish())
        }
        DataType::Utf8 => strings(col.as_string::<i32>().iter(), col.len())?,
        DataType::LargeUtf8 => strings(col.as_string::<i64>().iter(), col.len())?,
        DataType::Utf8View => strings(col.as_string_view().iter(), col.len())?,
        DataType::List(_) => {
            let a = col.as_list::<i32>();
            let o = a.value_offsets();
            list(col, a.values(), |i| o[i] as usize..o[i + 1] as usize)?
        }
        DataType::LargeList(_) => {
            let a = col.as_list::<i64>();
            let o = a.value_offsets();
            list(col, a.values(), |i| o[i] as usize..o[i + 1] as usize)?
        }
        DataType::FixedSizeList(_, n) => {
            let a = col.as_fixed_size_list();
            let (n, off) = (*n as usize, a.offset());
            // The child is not sliced with the list: row i's values start at (offset + i) × n.
            list(col, a.values(), |i| (off + i) * n..(off + i + 1) * n)?
        }
        t => {
            return Err(format!(
                "is {}, which a payload column cannot hold; payload columns hold {SUPPORTED}",
                type_label(t)
            ));
        }
    })
}

fn strings<'a>(it: impl Iterator<Item = Option<&'a str>>, len: usize) -> Result<ArrayRef, String> {
    let mut b = StringBuilder::with_capacity(len, 0);
    let mut bytes = 0usize;
    for v in it {
        bytes += v.map_or(0, str::len);
        if bytes > i32::MAX as usize {
            return Err(format!(
                "holds more than {} bytes of strings in one chunk; use a smaller --chunk-rows",
                i32::MAX
            ));
        }
        b.append_option(v);
    }
    Ok(Arc::new(b.finish()))
}

/// A canonical `list<item>` of the rows of list column `col`, whose row `i` holds
/// `values[range(i)]` (null rows hold nothing).
fn list(
    col: &dyn Array,
    values: &ArrayRef,
    range: impl Fn(usize) -> std::ops::Range<usize>,
) -> Result<ArrayRef, String> {
    let mut offsets = Vec::with_capacity(col.len() + 1);
    offsets.push(0i32);
    let mut parts: Vec<ArrayRef> = Vec::new();
    let mut run: Option<std::ops::Range<usize>> = None;
    let mut total = 0usize;
    for i in 0..col.len() {
        if col.is_valid(i) {
            let r = range(i);
            total += r.len();
            // Adjacent rows' values are copied as one slice.
            run = match run {
                Some(p) if p.end == r.start => Some(p.start..r.end),
                Some(p) => {
                    parts.push(values.slice(p.start, p.len()));
                    Some(r)
                }
                None => Some(r),
            };
        }
        let end = i32::try_from(total).map_err(|_| {
            "holds more than 2³¹ list items in one chunk; use a smaller --chunk-rows".to_string()
        })?;
        offsets.push(end);
    }
    if let Some(p) = run {
        parts.push(values.slice(p.start, p.len()));
    }
    let child = match parts.len() {
        0 => values.slice(0, 0),
        1 => parts.swap_remove(0),
        _ => {
            let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            arrow_select::concat::concat(&refs).map_err(|e| e.to_string())?
        }
    };
    if matches!(
        child.data_type(),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..)
    ) {
        return Err(format!(
            "is a list of lists, which a payload column cannot hold; payload columns hold {SUPPORTED}"
        ));
    }
    let child = canonical(child.as_ref())?;
    let nulls = (col.null_count() > 0)
        .then(|| NullBuffer::from((0..col.len()).map(|i| col.is_valid(i)).collect::<Vec<_>>()));
    let field = Arc::new(Field::new("item", child.data_type().clone(), true));
    let a = ListArray::try_new(
        field,
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        child,
        nulls,
    )
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(a))
}

/// A short name of an Arrow type, as pyarrow prints it.
pub fn type_label(t: &DataType) -> String {
    match t {
        DataType::Float16 => "halffloat".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Boolean => "bool".into(),
        DataType::List(f) => format!("list<{}>", type_label(f.data_type())),
        DataType::LargeList(f) => format!("large_list<{}>", type_label(f.data_type())),
        DataType::FixedSizeList(f, n) => {
            format!("fixed_size_list<{}>[{n}]", type_label(f.data_type()))
        }
        DataType::Utf8 => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Utf8View => "string_view".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// The schema of canonical payload columns `cols` (name, input type).
pub fn schema(cols: &[(String, DataType)]) -> Arc<Schema> {
    Arc::new(Schema::new(
        cols.iter()
            .map(|(n, t)| Field::new(n, canonical_type(t), true))
            .collect::<Vec<_>>(),
    ))
}

/// The header metadata value that lists `schema`'s columns: a JSON array of
/// `{"name": NAME, "type": TYPE}`.
pub fn describe(schema: &Schema) -> String {
    let v: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| serde_json::json!({"name": f.name(), "type": type_label(f.data_type())}))
        .collect();
    serde_json::Value::from(v).to_string()
}

/// Appends the payload block of `batch` (already canonical, with `schema`): the IPC
/// stream, then its length.
///
/// # Errors
/// A message if the block exceeds [`MAX_BLOCK_BYTES`] or Arrow refuses the batch.
pub fn encode_block(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), String> {
    let start = out.len();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut *out, &batch.schema())
        .map_err(|e| e.to_string())?;
    w.write(batch).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    drop(w);
    let len = (out.len() - start) as u64;
    if len > MAX_BLOCK_BYTES {
        out.truncate(start);
        return Err(format!(
            "the payload columns of {} rows take {len} bytes, over the limit of {MAX_BLOCK_BYTES} a chunk; use a smaller --chunk-rows",
            batch.num_rows()
        ));
    }
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Cuts a chunk's stored payload into what precedes the payload block (the staged codec
/// payload and the id block) and the block's IPC stream.
///
/// # Errors
/// A message when the block's length does not fit.
pub(crate) fn split(stored: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let at = stored
        .len()
        .checked_sub(8)
        .ok_or("the payload is too short for its payload columns")?;
    let p = LE::read_u64(&stored[at..]);
    if p > MAX_BLOCK_BYTES || p as usize > at {
        return Err(format!(
            "its payload columns claim {p} bytes, more than the {at} bytes before them or the limit of {MAX_BLOCK_BYTES}"
        ));
    }
    let (before, block) = stored[..at].split_at(at - p as usize);
    Ok((before, block))
}

/// Decodes a payload block of a chunk of `rows` rows.
///
/// # Errors
/// A message when the block is not one IPC stream of one batch of `rows` rows of
/// supported columns.
pub fn decode_block(block: &[u8], rows: usize) -> Result<RecordBatch, String> {
    let r = arrow_ipc::reader::StreamReader::try_new(Cursor::new(block), None)
        .map_err(|e| format!("its payload columns do not read as an Arrow IPC stream: {e}"))?;
    let schema = r.schema();
    let mut batches = Vec::new();
    for b in r {
        batches.push(b.map_err(|e| format!("its payload columns do not read: {e}"))?);
    }
    let n = batches.len();
    let batch = match batches.pop() {
        Some(b) if n == 1 => b,
        _ => return Err(format!("its payload block holds {n} record batches, not 1")),
    };
    if batch.num_rows() != rows {
        return Err(format!(
            "its payload columns hold {} rows, the chunk {rows}",
            batch.num_rows()
        ));
    }
    if let Some(f) = schema
        .fields()
        .iter()
        .find(|f| canonical_type(f.data_type()) != *f.data_type())
    {
        return Err(format!(
            "its payload column \"{}\" is {}, not a type vectro writes",
            f.name(),
            type_label(f.data_type())
        ));
    }
    Ok(batch)
}

/// Appends row `row` of canonical column `col` as a JSON value.
///
/// # Errors
/// A message for a NaN or infinite float, which JSON cannot hold.
pub fn push_json(buf: &mut Vec<u8>, col: &dyn Array, row: usize) -> Result<(), String> {
    push_value(buf, col, row, false)
}

/// [`push_json`] as Python's `json` module reads it: a non-finite float is written as
/// `NaN`, `Infinity` or `-Infinity` (not JSON, which has no such values) instead of
/// refused. For the Python package's dict of lists when pyarrow is absent.
///
/// # Errors
/// None in practice (every canonical type is written); a message for another type.
pub fn push_python_json(buf: &mut Vec<u8>, col: &dyn Array, row: usize) -> Result<(), String> {
    push_value(buf, col, row, true)
}

fn push_value(buf: &mut Vec<u8>, col: &dyn Array, row: usize, python: bool) -> Result<(), String> {
    if col.is_null(row) {
        buf.extend_from_slice(b"null");
        return Ok(());
    }
    macro_rules! int {
        ($t:ty) => {{
            let v = col.as_primitive::<$t>().value(row);
            buf.extend_from_slice(v.to_string().as_bytes());
        }};
    }
    macro_rules! float {
        ($t:ty) => {{
            let v = col.as_primitive::<$t>().value(row);
            if !v.is_finite() {
                if !python {
                    return Err(format!("holds {v}, which JSON cannot hold"));
                }
                let text: &[u8] = match v {
                    v if v.is_nan() => b"NaN",
                    v if v > 0.0 => b"Infinity",
                    _ => b"-Infinity",
                };
                buf.extend_from_slice(text);
                return Ok(());
            }
            let mut b = ryu::Buffer::new();
            buf.extend_from_slice(b.format_finite(v).as_bytes());
        }};
    }
    match col.data_type() {
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => float!(Float32Type),
        DataType::Float64 => float!(Float64Type),
        DataType::Boolean => {
            let v = col.as_boolean().value(row);
            buf.extend_from_slice(if v { b"true" } else { b"false" });
        }
        DataType::Utf8 => {
            let _ = serde_json::to_writer(&mut *buf, col.as_string::<i32>().value(row));
        }
        DataType::List(_) => {
            let items = col.as_list::<i32>().value(row);
            buf.push(b'[');
            for k in 0..items.len() {
                if k > 0 {
                    buf.push(b',');
                }
                push_value(buf, items.as_ref(), k, python)?;
            }
            buf.push(b']');
        }
        t => return Err(format!("is {}, not a type vectro writes", type_label(t))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BooleanArray, FixedSizeListArray, Float64Array, Int64Array, LargeStringArray, StringArray,
        UInt64Array,
    };

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let canon: Vec<(String, ArrayRef)> = cols
            .into_iter()
            .map(|(n, a)| (n.to_string(), canonical(a.as_ref()).unwrap()))
            .collect();
        RecordBatch::try_from_iter(canon).unwrap()
    }

    #[test]
    fn blocks_round_trip_and_slices_give_the_same_bytes() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(-3), Some(4)]));
        let strs: ArrayRef = Arc::new(LargeStringArray::from(vec!["a", "bé", "", "d"]));
        let lists: ArrayRef = Arc::new(
            FixedSizeListArray::from_iter_primitive::<Float32Type, _, _>(
                vec![
                    Some(vec![Some(1.0), Some(2.0)]),
                    None,
                    Some(vec![Some(3.0), None]),
                    Some(vec![Some(5.0), Some(6.0)]),
                ],
                2,
            ),
        );
        let whole = batch(vec![
            ("i", ints.clone()),
            ("s", strs.clone()),
            ("l", lists.clone()),
        ]);
        let mut b = Vec::new();
        encode_block(&whole.slice(1, 3), &mut b).unwrap();
        // The same rows, cut from a slice of the input rather than the canonical whole.
        let again = batch(vec![
            ("i", ints.slice(1, 3)),
            ("s", strs.slice(1, 3)),
            ("l", lists.slice(1, 3)),
        ]);
        let mut b2 = Vec::new();
        encode_block(&again, &mut b2).unwrap();
        assert_eq!(b, b2, "canonical bytes do not depend on slicing");
        let (before, block) = split(&b).unwrap();
        assert!(before.is_empty());
        let got = decode_block(block, 3).unwrap();
        assert_eq!(got, again);
        let mut j = Vec::new();
        for c in 0..3 {
            push_json(&mut j, got.column(c).as_ref(), 1).unwrap();
            j.push(b' ');
        }
        assert_eq!(String::from_utf8(j).unwrap(), "-3 \"\" [3.0,null] ");
        assert!(decode_block(block, 4).unwrap_err().contains("hold 3 rows"));
    }

    #[test]
    fn types_and_json() {
        let b = batch(vec![
            ("u", Arc::new(UInt64Array::from(vec![u64::MAX])) as ArrayRef),
            ("f", Arc::new(Float64Array::from(vec![0.1])) as ArrayRef),
            ("b", Arc::new(BooleanArray::from(vec![true])) as ArrayRef),
            ("s", Arc::new(StringArray::from(vec!["q\"\n"])) as ArrayRef),
        ]);
        let mut j = Vec::new();
        for c in 0..4 {
            push_json(&mut j, b.column(c).as_ref(), 0).unwrap();
            j.push(b' ');
        }
        assert_eq!(
            String::from_utf8(j).unwrap(),
            "18446744073709551615 0.1 true \"q\\\"\\n\" "
        );
        let nan = Float64Array::from(vec![f64::NAN]);
        assert!(
            push_json(&mut Vec::new(), &nan, 0)
                .unwrap_err()
                .contains("NaN")
        );
        assert!(!supported(&DataType::Date32));
        let e = canonical(&arrow_array::Date32Array::from(vec![1])).unwrap_err();
        assert!(e.contains("date32") && e.contains("strings"), "{e}");
        assert!(split(&[0; 7]).is_err());
        assert!(split(&[9, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
