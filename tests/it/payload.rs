//! Payload columns (format 1.5) and `export --format parquet` (docs/inputs.md): a Parquet
//! input's other columns stored with the rows survive shards, merge, resume and every
//! thread count byte for byte, and come back from `get`, `export` (JSONL and Parquet) and
//! `Container::payload` equal to the input's values; the export format follows the output's
//! extension; each bad input is refused with its message, its exit code and no output.
//! Files written by pyarrow are tested in python/tests/test_payload.py.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, Int32Builder, ListBuilder};
use arrow_array::builder::{StringBuilder, StructBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, LargeStringArray,
    RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use vectro::Container;
use vectro::format::IdColumn;

use crate::helpers::{fails, ok, random_rows, vectro_std};

const ROWS: usize = 300;
const DIMS: usize = 24;
const PAYLOAD: &str = "title,n,score,flag,tags,big,codes";

fn id(i: usize) -> String {
    format!("doc-{i}-é")
}

fn title(i: usize) -> Option<String> {
    (i % 7 != 3).then(|| format!("title {i}: \"quoted\", ü\n"))
}

fn tags(i: usize) -> Vec<String> {
    (0..i % 4).map(|k| format!("t{k}")).collect()
}

/// A Parquet file of `ROWS` rows: string ids, a `list<float>` vector column and payload
/// columns of every supported kind (nulls included), in row groups of 97 rows, so that
/// chunk boundaries fall inside row groups.
fn input(dir: &Path) -> (PathBuf, Vec<f32>) {
    let v = random_rows(ROWS, DIMS, 5);
    let mut emb = ListBuilder::new(Float32Builder::new());
    for row in v.chunks(DIMS) {
        emb.values().append_slice(row);
        emb.append(true);
    }
    let mut tag = ListBuilder::new(StringBuilder::new());
    for i in 0..ROWS {
        for t in tags(i) {
            tag.values().append_value(t);
        }
        tag.append(i % 11 != 5);
    }
    let mut codes = FixedSizeListBuilder::new(Int32Builder::new(), 2);
    for i in 0..ROWS {
        codes.values().append_value(i as i32);
        codes
            .values()
            .append_option((!i.is_multiple_of(5)).then_some(-(i as i32)));
        codes.append(true);
    }
    let cols: Vec<(&str, ArrayRef)> = vec![
        (
            "id",
            Arc::new(StringArray::from_iter_values((0..ROWS).map(id))),
        ),
        ("emb", Arc::new(emb.finish())),
        (
            "title",
            Arc::new(StringArray::from_iter((0..ROWS).map(title))),
        ),
        (
            "n",
            Arc::new(Int64Array::from_iter_values(
                (0..ROWS).map(|i| i as i64 * 3 - 100),
            )),
        ),
        (
            "score",
            Arc::new(Float64Array::from_iter_values(
                (0..ROWS).map(|i| i as f64 / 7.0),
            )),
        ),
        (
            "flag",
            Arc::new(BooleanArray::from_iter(
                (0..ROWS).map(|i| Some(i.is_multiple_of(3))),
            )),
        ),
        ("tags", Arc::new(tag.finish())),
        (
            "big",
            Arc::new(LargeStringArray::from_iter_values(
                (0..ROWS).map(|i| "x".repeat(i % 5)),
            )),
        ),
        ("codes", Arc::new(codes.finish())),
        (
            "day",
            Arc::new(Date32Array::from_iter_values(0..ROWS as i32)),
        ),
    ];
    let path = dir.join("data.parquet");
    write_parquet(&path, cols, 97);
    (path, v)
}

fn write_parquet(path: &Path, cols: Vec<(&str, ArrayRef)>, group: usize) {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|c| c.1).collect(),
    )
    .unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let mut w =
        ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn compress(input: &Path, out: &Path, extra: &[&str]) -> String {
    ok(vectro_std()
        .args(["compress", "-q", "--no-fsync", "--chunk-rows", "64"])
        .args([
            "--column",
            "emb",
            "--id-column",
            "id",
            "--payload-columns",
            PAYLOAD,
        ])
        .args(extra)
        .arg("--in")
        .arg(input)
        .arg("--out")
        .arg(out))
}

/// Checks that the JSON object `o` (a line of export or get) holds row `i`'s id and
/// payload values, and its vector within int8's bound.
fn check_json_row(o: &serde_json::Value, i: usize, v: &[f32]) {
    use serde_json::json;
    assert_eq!(o["id"], json!(id(i)), "row {i}");
    assert_eq!(o["title"], json!(title(i)), "row {i}");
    assert_eq!(o["n"], json!(i as i64 * 3 - 100));
    assert_eq!(o["score"].as_f64().unwrap(), i as f64 / 7.0);
    assert_eq!(o["flag"], json!(i.is_multiple_of(3)));
    if i % 11 == 5 {
        assert_eq!(o["tags"], serde_json::Value::Null);
    } else {
        assert_eq!(o["tags"], json!(tags(i)));
    }
    assert_eq!(o["big"], json!("x".repeat(i % 5)));
    let second = if !i.is_multiple_of(5) {
        json!(-(i as i64))
    } else {
        json!(null)
    };
    assert_eq!(o["codes"], json!([i, second]));
    assert!(o.get("day").is_none(), "only the named columns");
    let got: Vec<f32> = o["vector"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    check_vector(&got, &v[i * DIMS..(i + 1) * DIMS], i);
}

fn check_vector(got: &[f32], want: &[f32], i: usize) {
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs())) / 127.0;
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() <= scale * 0.5 + 1e-6, "row {i}: {a} vs {b}");
    }
}

#[test]
fn payload_columns_survive_shards_merge_resume_and_threads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pq, _) = input(d);
    let single = d.join("single.vectro");
    compress(&pq, &single, &["--threads", "1"]);
    let want = fs::read(&single).unwrap();
    assert_eq!(u16::from_le_bytes([want[6], want[7]]), 5, "format 1.5");
    let four = d.join("four.vectro");
    compress(&pq, &four, &["--threads", "4"]);
    assert!(
        fs::read(&four).unwrap() == want,
        "threads changed the bytes"
    );
    // Three shards (cut inside row groups), merged: the single run's bytes.
    let mut parts = Vec::new();
    for k in 0..3 {
        let p = d.join(format!("part-{k}.vectro"));
        compress(&pq, &p, &["--shard", &format!("{k}/3")]);
        parts.push(p);
    }
    let merged = d.join("merged.vectro");
    ok(vectro_std()
        .args(["merge", "-q", "--no-fsync", "--out"])
        .arg(&merged)
        .args(&parts));
    assert!(
        fs::read(&merged).unwrap() == want,
        "merge differs from the single run"
    );
    // A shard's payload is its own rows'.
    let c = Container::open(&parts[2]).unwrap();
    let first = c.first_row() as usize;
    let p = c.payload(0..2).unwrap().unwrap();
    assert_eq!(
        p.column_by_name("n")
            .unwrap()
            .as_primitive::<Int64Type>()
            .value(1),
        (first + 1) as i64 * 3 - 100
    );
    // An interrupted run's partial is resumed to the same bytes.
    let r = d.join("r.vectro");
    fs::write(d.join(".r.vectro.partial"), &want[..want.len() / 2]).unwrap();
    let s = ok(vectro_std()
        .args(["compress", "--json", "--no-fsync", "--chunk-rows", "64"])
        .args([
            "--column",
            "emb",
            "--id-column",
            "id",
            "--payload-columns",
            PAYLOAD,
        ])
        .arg("--resume")
        .arg("--in")
        .arg(&pq)
        .arg("--out")
        .arg(&r));
    let s: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert!(s["resumed_rows"].as_u64().unwrap() > 0, "{s}");
    assert!(fs::read(&r).unwrap() == want, "the resumed run differs");
    // verify decodes every payload block; info names the columns.
    ok(vectro_std().arg("verify").arg(&merged));
    let info = ok(vectro_std().arg("info").arg(&merged));
    assert!(
        info.contains("vectro 1.5") && info.contains("\"name\":\"tags\""),
        "{info}"
    );
    // Flipping a byte of a payload block is caught by the chunk crc.
    let c = Container::open(&merged).unwrap();
    let e = c.chunks()[1];
    let mut bad = want.clone();
    bad[(e.offset + e.len) as usize - 20] ^= 1;
    let b = d.join("bad.vectro");
    fs::write(&b, &bad).unwrap();
    let (code, err) = fails(vectro_std().arg("verify").arg(&b));
    assert!(code != 0 && err.contains("chunk"), "{code} {err}");
}

#[test]
fn payload_columns_come_back_from_get_export_and_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pq, v) = input(d);
    let mut parts = Vec::new();
    for k in 0..2 {
        let p = d.join(format!("part-{k}.vectro"));
        compress(&pq, &p, &["--shard", &format!("{k}/2")]);
        parts.push(p);
    }
    let merged = d.join("m.vectro");
    ok(vectro_std()
        .args(["merge", "-q", "--no-fsync", "--out"])
        .arg(&merged)
        .args(&parts));
    // JSONL, format from the extension.
    let jl = d.join("out.jsonl");
    ok(vectro_std()
        .args(["export", "-q", "m.vectro", "--out", "out.jsonl"])
        .current_dir(d));
    let text = fs::read_to_string(&jl).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), ROWS);
    for (i, o) in lines.iter().enumerate() {
        check_json_row(o, i, &v);
    }
    // Each shard exported on its own: its own rows.
    let s1 = d.join("s1.jsonl");
    ok(vectro_std()
        .args(["export", "-q", "--format", "jsonl"])
        .arg(&parts[1])
        .arg("--out")
        .arg(&s1));
    let first = Container::open(&parts[1]).unwrap().first_row() as usize;
    for (k, l) in fs::read_to_string(&s1).unwrap().lines().enumerate() {
        check_json_row(&serde_json::from_str(l).unwrap(), first + k, &v);
    }
    // get --ids, JSON.
    let got = ok(vectro_std()
        .args([
            "get",
            "m.vectro",
            "--ids",
            &format!("{},{}", id(250), id(3)),
        ])
        .current_dir(d));
    let got: Vec<serde_json::Value> = serde_json::from_str(&got).unwrap();
    check_json_row(&got[0], 250, &v);
    check_json_row(&got[1], 3, &v);
    // Parquet, format from the extension, small row groups.
    let out = d.join("out.parquet");
    ok(vectro_std()
        .args([
            "export",
            "-q",
            "m.vectro",
            "--row-group-rows",
            "100",
            "--out",
            "out.parquet",
        ])
        .current_dir(d));
    let r = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap()).unwrap();
    assert_eq!(r.metadata().num_row_groups(), 3);
    let schema = r.schema().clone();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "id", "vector", "title", "n", "score", "flag", "tags", "big", "codes"
        ]
    );
    assert_eq!(
        schema.field(1).data_type(),
        &DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 24)
    );
    let batches: Vec<RecordBatch> = r.build().unwrap().map(|b| b.unwrap()).collect();
    let all = arrow_select::concat::concat_batches(&schema, &batches).unwrap();
    // The payload columns equal what the container returns (checked against the input
    // through JSON above), and the ids and vectors match.
    let c = Container::open(&merged).unwrap();
    let lib = c.payload(0..ROWS as u64).unwrap().unwrap();
    for f in lib.schema().fields() {
        assert_eq!(
            all.column_by_name(f.name()).unwrap().as_ref(),
            lib.column_by_name(f.name()).unwrap().as_ref(),
            "column {}",
            f.name()
        );
    }
    let ids = all.column(0).as_string::<i32>();
    let vecs = all.column(1).as_fixed_size_list();
    for i in 0..ROWS {
        assert_eq!(ids.value(i), id(i));
        let row = vecs.value(i);
        let row = row.as_primitive::<arrow_array::types::Float32Type>();
        check_vector(row.values(), &v[i * DIMS..(i + 1) * DIMS], i);
    }
    assert_eq!(
        c.ids(0..2).unwrap(),
        IdColumn::Str(vec![id(0), id(1)]),
        "library ids"
    );
    let lib_score = lib
        .column_by_name("score")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(lib_score.value(14), 2.0);
}

#[test]
fn parquet_export_of_containers_without_payload_or_ids() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = crate::helpers::make_npy(d, "x.npy", 200, 8, 3);
    for k in 0..2 {
        ok(vectro_std()
            .args([
                "compress",
                "-q",
                "--chunk-rows",
                "32",
                "--shard",
                &format!("{k}/2"),
            ])
            .arg("--in")
            .arg(&x)
            .arg("--out")
            .arg(d.join("p-{shard}.vectro")));
    }
    // Each shard's ids are its global row numbers, so the shards' exports never collide.
    let mut seen = Vec::new();
    for k in 0..2 {
        let out = d.join(format!("p-{k}.parquet"));
        ok(vectro_std()
            .args(["export", "-q"])
            .arg(d.join(format!("p-{k}.vectro")))
            .arg("--out")
            .arg(&out));
        let r = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for b in r {
            let b = b.unwrap();
            assert_eq!(b.num_columns(), 2);
            seen.extend(
                b.column(0)
                    .as_primitive::<UInt64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
        }
    }
    assert_eq!(seen, (0..200).collect::<Vec<u64>>());
}

#[test]
fn export_takes_the_format_from_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = crate::helpers::make_npy(d, "x.npy", 50, 8, 3);
    ok(vectro_std()
        .args(["compress", "-q", "--in"])
        .arg(&x)
        .args(["--out", "x.vectro"])
        .current_dir(d));
    for (name, magic) in [
        ("a.parquet", &b"PAR1"[..]),
        ("a.PQ", b"PAR1"),
        ("a.jsonl", b"{\"id\":0,"),
        ("a.ndjson", b"{\"id\":0,"),
        ("a.npz", b"PK"),
    ] {
        ok(vectro_std()
            .args(["export", "-q", "x.vectro", "--out", name])
            .current_dir(d));
        assert!(fs::read(d.join(name)).unwrap().starts_with(magic), "{name}");
    }
    // --format wins over the extension.
    ok(vectro_std()
        .args([
            "export",
            "-q",
            "x.vectro",
            "--format",
            "jsonl",
            "--out",
            "b.parquet",
        ])
        .current_dir(d));
    assert!(fs::read(d.join("b.parquet")).unwrap().starts_with(b"{"));
    for (name, needles) in [
        (
            "a.txt",
            &["extension .txt", ".jsonl", ".parquet", ".npz", "--format"][..],
        ),
        ("noext", &["no extension", "--format jsonl|parquet|npz"]),
        ("a.npy", &["vectro decompress"]),
    ] {
        let (code, err) = fails(
            vectro_std()
                .args(["export", "x.vectro", "--out", name])
                .current_dir(d),
        );
        assert_eq!(code, 2, "{name}: {err}");
        for n in needles {
            assert!(err.contains(n), "{name}: {n:?} not in {err}");
        }
        assert!(!d.join(name).exists(), "{name} was written");
    }
    let (code, err) = fails(
        vectro_std()
            .args(["export", "x.vectro", "--format", "parquet", "--out", "-"])
            .current_dir(d),
    );
    assert!(code == 2 && err.contains("needs a file"), "{code} {err}");
}

#[test]
fn npz_export_carries_the_ids() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pq, _) = input(d);
    ok(vectro_std()
        .args([
            "compress",
            "-q",
            "--chunk-rows",
            "64",
            "--column",
            "emb",
            "--id-column",
            "id",
        ])
        .arg("--in")
        .arg(&pq)
        .args(["--out", "s.vectro"])
        .current_dir(d));
    ok(vectro_std()
        .args(["export", "-q", "s.vectro", "--out", "s.npz"])
        .current_dir(d));
    let mut z = zip::ZipArchive::new(File::open(d.join("s.npz")).unwrap()).unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut z.by_name("ids.npy").unwrap(), &mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes[..128]).to_string();
    let longest = (0..ROWS).map(|i| id(i).chars().count()).max().unwrap();
    assert!(text.contains(&format!("'descr': '<U{longest}'")), "{text}");
    assert!(text.contains(&format!("'shape': ({ROWS},)")), "{text}");
    // Row 7's id, UTF-32 and NUL-padded.
    let at = 128 + 7 * 4 * longest;
    let got: String = bytes[at..at + 4 * longest]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .take_while(|&c| c != 0)
        .map(|c| char::from_u32(c).unwrap())
        .collect();
    assert_eq!(got, id(7));
}

#[test]
fn bad_payload_inputs_are_named_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pq, _) = input(d);
    // A struct column: not a supported type.
    let mut s = StructBuilder::from_fields(vec![Field::new("a", DataType::Int32, true)], ROWS);
    for i in 0..ROWS {
        s.field_builder::<Int32Builder>(0)
            .unwrap()
            .append_value(i as i32);
        s.append(true);
    }
    let mut emb = ListBuilder::new(Float32Builder::new());
    for row in random_rows(ROWS, DIMS, 1).chunks(DIMS) {
        emb.values().append_slice(row);
        emb.append(true);
    }
    let st = d.join("struct.parquet");
    write_parquet(
        &st,
        vec![
            ("emb", Arc::new(emb.finish())),
            ("meta", Arc::new(s.finish())),
        ],
        100,
    );
    let npy = crate::helpers::make_npy(d, "x.npy", 10, 4, 1);
    let cases: Vec<(&str, &Path, &str, i32, Vec<String>)> = vec![
        (
            "a missing column",
            &pq,
            "title,nope",
            3,
            vec![
                "data.parquet".into(),
                "has no column \"nope\" for --payload-columns".into(),
                "title (string)".into(),
            ],
        ),
        (
            "a date column",
            &pq,
            "day",
            3,
            vec![
                "data.parquet".into(),
                "payload column \"day\" is date32".into(),
                "integers".into(),
                "lists of those".into(),
            ],
        ),
        (
            "a struct column",
            &st,
            "meta",
            3,
            vec![
                "struct.parquet".into(),
                "payload column \"meta\" is struct".into(),
            ],
        ),
        (
            "a column named id",
            &pq,
            "title,id",
            2,
            vec!["\"id\" would collide".into(), "--id-column".into()],
        ),
        (
            "a repeated name",
            &pq,
            "n,n",
            2,
            vec!["\"n\" is named twice".into()],
        ),
        (
            "a .npy input",
            &npy,
            "a",
            2,
            vec!["applies to Parquet and Arrow inputs".into()],
        ),
    ];
    for (what, input, cols, code, needles) in cases {
        let out = d.join("out.vectro");
        let (got, err) = fails(
            vectro_std()
                .args(["compress", "--payload-columns", cols, "--in"])
                .arg(input)
                .arg("--out")
                .arg(&out),
        );
        assert_eq!(got, code, "{what}: {err}");
        for n in &needles {
            assert!(err.contains(n.as_str()), "{what}: {n:?} not in {err}");
        }
        assert!(!out.exists(), "{what}: output written");
        let left: Vec<_> = fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
            .collect();
        assert!(left.is_empty(), "{what}: a partial was left");
    }
    // Shards compressed with different payload columns do not merge.
    let (a, b) = (d.join("m-0.vectro"), d.join("m-1.vectro"));
    for (k, out, cols) in [(0, &a, "n"), (1, &b, "title")] {
        ok(vectro_std()
            .args([
                "compress",
                "-q",
                "--column",
                "emb",
                "--payload-columns",
                cols,
            ])
            .args(["--chunk-rows", "64", "--shard", &format!("{k}/2"), "--in"])
            .arg(&pq)
            .arg("--out")
            .arg(out));
    }
    let (code, err) = fails(
        vectro_std()
            .args(["merge", "--out"])
            .arg(d.join("m.vectro"))
            .arg(&a)
            .arg(&b),
    );
    assert!(code != 0 && err.contains("payload_columns"), "{code} {err}");
    assert!(!d.join("m.vectro").exists());
}
