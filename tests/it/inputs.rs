//! Inputs other than `.npy` (docs/inputs.md): Parquet and Arrow written by the Rust
//! crates, `.fvecs`, `.fbin`, safetensors tensors and `.npz` members give the container
//! that the same matrix as a `.npy` gives (the same chunks, byte for byte, whatever the
//! threads), a Hugging Face-style directory of shards reads as one matrix, and every bad
//! input is refused with a message naming the file, row group and row, exit 3, and no
//! output. Files written by pyarrow are tested in python/tests/test_inputs.py.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, ListBuilder};
use arrow_array::{
    ArrayRef, Float16Array, Float64Array, Int32Array, RecordBatch, StringArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use vectro::Container;
use vectro::source::{Ids, Input, InputOptions, open_id_column};

use crate::helpers::{assert_fails, random_rows, run, write_npy};

const DIMS: usize = 24;

fn data(rows: usize, seed: u64) -> Vec<f32> {
    random_rows(rows, DIMS, seed)
}

/// A vector column of `rows`: a list, or a fixed_size_list when `fixed`.
fn vectors(v: &[f32], fixed: bool) -> ArrayRef {
    if fixed {
        let mut b = FixedSizeListBuilder::new(Float32Builder::new(), DIMS as i32);
        for row in v.chunks(DIMS) {
            b.values().append_slice(row);
            b.append(true);
        }
        Arc::new(b.finish())
    } else {
        let mut b = ListBuilder::new(Float32Builder::new());
        for row in v.chunks(DIMS) {
            b.values().append_slice(row);
            b.append(true);
        }
        Arc::new(b.finish())
    }
}

fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|c| c.1).collect(),
    )
    .unwrap()
}

/// Writes `batches` as Parquet with row groups of at most `group` rows.
fn write_parquet(path: &Path, batches: &[RecordBatch], group: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut w = ArrowWriter::try_new(
        File::create(path).unwrap(),
        batches[0].schema(),
        Some(props),
    )
    .unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

fn write_ipc(path: &Path, batches: &[RecordBatch]) {
    let mut w =
        arrow_ipc::writer::FileWriter::try_new(File::create(path).unwrap(), &batches[0].schema())
            .unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

fn write_fvecs(path: &Path, v: &[f32]) {
    let mut f = File::create(path).unwrap();
    for row in v.chunks(DIMS) {
        f.write_all(&(DIMS as i32).to_le_bytes()).unwrap();
        for x in row {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
}

fn write_fbin(path: &Path, v: &[f32]) {
    let mut f = File::create(path).unwrap();
    f.write_all(&((v.len() / DIMS) as u32).to_le_bytes())
        .unwrap();
    f.write_all(&(DIMS as u32).to_le_bytes()).unwrap();
    for x in v {
        f.write_all(&x.to_le_bytes()).unwrap();
    }
}

fn le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn write_safetensors(path: &Path, tensors: Vec<(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)>) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn npy_bytes(v: &[f32]) -> Vec<u8> {
    crate::helpers::npy_bytes((v.len() / DIMS) as u64, DIMS as u64, v)
}

fn write_npz(path: &Path, members: &[(&str, Vec<u8>)], deflate: bool) {
    let mut z = zip::ZipWriter::new(File::create(path).unwrap());
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in members {
        z.start_file(format!("{name}.npy"), opts).unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

/// Asserts two containers hold the same chunks, byte for byte, and the same header but
/// for the metadata (which names the source).
fn assert_same_container(a: &Path, b: &Path) {
    let (a, b) = (Container::open(a).unwrap(), Container::open(b).unwrap());
    let (ha, hb) = (a.header(), b.header());
    assert_eq!(
        (
            &ha.codec,
            ha.rows,
            ha.dims,
            ha.chunk_rows,
            ha.source_dtype,
            ha.stage
        ),
        (
            &hb.codec,
            hb.rows,
            hb.dims,
            hb.chunk_rows,
            hb.source_dtype,
            hb.stage
        ),
        "{} vs {}",
        a.path().display(),
        b.path().display()
    );
    assert_eq!(a.chunks().len(), b.chunks().len());
    for i in 0..a.chunks().len() {
        assert_eq!(
            a.chunk_payload(i).unwrap(),
            b.chunk_payload(i).unwrap(),
            "chunk {i} of {} vs {}",
            a.path().display(),
            b.path().display()
        );
    }
}

fn compress(input: &str, out: &Path, codec: &str, threads: &str, extra: &[&str]) {
    let mut args = vec![
        "compress",
        "--in",
        input,
        "--out",
        out.to_str().unwrap(),
        "--codec",
        codec,
        "--chunk-rows",
        "64",
        "--threads",
        threads,
        "--quiet",
        "--force",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert!(
        o.status.success(),
        "{input}: {}",
        crate::helpers::stderr(&o)
    );
}

/// Every format of the same 1000 × 24 rows, against the `.npy`.
fn all_formats(dir: &Path, v: &[f32]) -> Vec<String> {
    let rows = v.len() / DIMS;
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    // Parquet: a list column in row groups of 97 rows (none aligned with the chunks),
    // written in batches of 250; a fixed_size_list beside an id column, one row group.
    let batches: Vec<RecordBatch> = v
        .chunks(250 * DIMS)
        .map(|c| batch(vec![("emb", vectors(c, false))]))
        .collect();
    write_parquet(Path::new(&p("list.parquet")), &batches, 97);
    let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(0..rows as u64));
    write_parquet(
        Path::new(&p("fixed.parquet")),
        &[batch(vec![("id", ids), ("emb", vectors(v, true))])],
        1 << 20,
    );
    write_ipc(Path::new(&p("batches.arrow")), &batches);
    write_fvecs(Path::new(&p("x.fvecs")), v);
    write_fbin(Path::new(&p("x.fbin")), v);
    write_safetensors(
        Path::new(&p("model.safetensors")),
        vec![
            ("bias", safetensors::Dtype::F32, vec![DIMS], le(&v[..DIMS])),
            ("emb", safetensors::Dtype::F32, vec![rows, DIMS], le(v)),
            ("other", safetensors::Dtype::F32, vec![2, 3], le(&v[..6])),
        ],
    );
    let ids_npy = crate::helpers::npy_bytes(rows as u64, 1, &vec![0f32; rows]);
    let members = [("ids", ids_npy), ("embeddings", npy_bytes(v))];
    write_npz(Path::new(&p("stored.npz")), &members, false);
    write_npz(Path::new(&p("deflated.npz")), &members, true);
    vec![
        p("list.parquet"),
        p("fixed.parquet"),
        p("batches.arrow"),
        p("x.fvecs"),
        p("x.fbin"),
        format!("{}:emb", p("model.safetensors")),
        format!("{}:embeddings", p("stored.npz")),
        format!("{}:embeddings", p("deflated.npz")),
    ]
}

#[test]
fn every_format_gives_the_npy_container_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let v = data(1000, 7);
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 1000, DIMS as u64, &v);
    let inputs = all_formats(dir.path(), &v);
    for codec in ["int8", "int4"] {
        let want = dir.path().join(format!("want-{codec}.vectro"));
        compress(npy.to_str().unwrap(), &want, codec, "1", &[]);
        for (i, input) in inputs.iter().enumerate() {
            for threads in ["1", "3"] {
                let got = dir.path().join(format!("got-{codec}-{i}-{threads}.vectro"));
                compress(input, &got, codec, threads, &[]);
                assert_same_container(&want, &got);
            }
        }
    }
}

#[test]
fn zstd_and_shards_of_parquet_match_the_npy() {
    let dir = tempfile::tempdir().unwrap();
    let v = data(1000, 8);
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 1000, DIMS as u64, &v);
    let inputs = all_formats(dir.path(), &v);
    let pq = &inputs[0];
    for shard in ["0/3", "1/3", "2/3"] {
        let want = dir.path().join("want.vectro");
        let got = dir.path().join("got.vectro");
        let extra = ["--shard", shard, "--zstd", "3"];
        compress(npy.to_str().unwrap(), &want, "int8", "2", &extra);
        compress(pq, &got, "int8", "2", &extra);
        assert_same_container(&want, &got);
    }
}

#[test]
fn float16_and_float64_columns_keep_their_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let v = data(300, 9);
    for (tag, values, dtype) in [
        (
            "f16",
            Arc::new(Float16Array::from_iter_values(
                v.iter().map(|&x| half::f16::from_f32(x)),
            )) as ArrayRef,
            DataType::Float16,
        ),
        (
            "f64",
            Arc::new(Float64Array::from_iter_values(v.iter().map(|&x| x as f64))) as ArrayRef,
            DataType::Float64,
        ),
    ] {
        let field = Arc::new(Field::new("item", dtype, true));
        let col: ArrayRef = Arc::new(arrow_array::FixedSizeListArray::new(
            field,
            DIMS as i32,
            values,
            None,
        ));
        let pq = dir.path().join(format!("{tag}.parquet"));
        write_parquet(&pq, &[batch(vec![("v", col)])], 128);
        // The same values as a .npy of that dtype.
        let npy = dir.path().join(format!("{tag}.npy"));
        let mut f = File::create(&npy).unwrap();
        let descr = if tag == "f16" { "<f2" } else { "<f8" };
        let head =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (300, {DIMS}), }}");
        let pad = 64 - (10 + head.len() + 1) % 64;
        let head = format!("{head}{}\n", " ".repeat(pad % 64));
        f.write_all(b"\x93NUMPY\x01\x00").unwrap();
        f.write_all(&(head.len() as u16).to_le_bytes()).unwrap();
        f.write_all(head.as_bytes()).unwrap();
        for &x in &v {
            if tag == "f16" {
                f.write_all(&half::f16::from_f32(x).to_le_bytes()).unwrap();
            } else {
                f.write_all(&(x as f64).to_le_bytes()).unwrap();
            }
        }
        drop(f);
        let (a, b) = (dir.path().join("a.vectro"), dir.path().join("b.vectro"));
        compress(npy.to_str().unwrap(), &a, "int8", "2", &[]);
        compress(pq.to_str().unwrap(), &b, "int8", "2", &[]);
        assert_same_container(&a, &b);
    }
}

/// A Hugging Face `data/train-0000K-of-0000N.parquet` directory, as a directory and as a
/// glob, and Spark `part-*.parquet` with its `_SUCCESS` and `.crc` files.
#[test]
fn a_directory_of_parquet_shards_is_one_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let v = data(1000, 10);
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 1000, DIMS as u64, &v);
    let hf = dir.path().join("data");
    let spark = dir.path().join("spark");
    std::fs::create_dir_all(&hf).unwrap();
    std::fs::create_dir_all(&spark).unwrap();
    // Uneven shards: 333, 1, 666 rows; listed out of order on purpose (natural order).
    let cuts = [0usize, 333, 334, 1000];
    for k in 0..3 {
        let rows = &v[cuts[k] * DIMS..cuts[k + 1] * DIMS];
        let b = batch(vec![("emb", vectors(rows, false))]);
        write_parquet(
            &hf.join(format!("train-{k:05}-of-00003.parquet")),
            std::slice::from_ref(&b),
            100,
        );
        write_parquet(
            &spark.join(format!("part-{k}-c000.snappy.parquet")),
            &[b],
            100,
        );
    }
    std::fs::write(spark.join("_SUCCESS"), b"").unwrap();
    std::fs::write(spark.join(".part-0-c000.snappy.parquet.crc"), b"junk").unwrap();
    let want = dir.path().join("want.vectro");
    compress(npy.to_str().unwrap(), &want, "int8", "2", &[]);
    for input in [
        hf.to_str().unwrap().to_string(),
        format!("{}/train-*.parquet", hf.display()),
        spark.to_str().unwrap().to_string(),
    ] {
        let got = dir.path().join("got.vectro");
        compress(&input, &got, "int8", "2", &[]);
        assert_same_container(&want, &got);
        let c = Container::open(&got).unwrap();
        assert!(
            c.metadata()["source"].contains("(3 files)"),
            "{:?}",
            c.metadata()
        );
    }
}

#[test]
fn train_eval_and_bench_read_parquet() {
    let dir = tempfile::tempdir().unwrap();
    let v = data(600, 11);
    let pq = dir.path().join("x.parquet");
    write_parquet(&pq, &[batch(vec![("emb", vectors(&v, false))])], 128);
    let npy = dir.path().join("x.npy");
    write_npy(&npy, 600, DIMS as u64, &v);
    let p = pq.to_str().unwrap();
    // A codebook trained on the Parquet is the one trained on the .npy.
    let (a, b) = (dir.path().join("a.vcb"), dir.path().join("b.vcb"));
    for (input, out) in [(p, &a), (npy.to_str().unwrap(), &b)] {
        let o = run(&[
            "train",
            "--in",
            input,
            "--codec",
            "pq:m=4,nbits=4",
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert!(o.status.success(), "{}", crate::helpers::stderr(&o));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let c = dir.path().join("c.vectro");
    compress(p, &c, "int8", "2", &[]);
    let eval = |orig: &str| {
        let o = run(&[
            "eval",
            "--orig",
            orig,
            "--comp",
            c.to_str().unwrap(),
            "--json",
            "--k",
            "1,10",
        ]);
        assert!(o.status.success(), "{}", crate::helpers::stderr(&o));
        let mut j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        for k in [
            "seconds",
            "peak_rss_bytes",
            "input",
            "input_bytes",
            "ratio",
            "bits_per_dim",
        ] {
            j.as_object_mut().unwrap().remove(k);
        }
        j
    };
    assert_eq!(eval(p), eval(npy.to_str().unwrap()));
    let o = run(&[
        "bench", "--in", p, "--codecs", "int8", "--json", "--quiet", "--runs", "1",
    ]);
    assert!(o.status.success(), "{}", crate::helpers::stderr(&o));
}

#[test]
fn ids_are_read_beside_the_rows_across_files_and_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let v = data(500, 12);
    let d = dir.path().join("ds");
    std::fs::create_dir_all(&d).unwrap();
    for (k, r) in [(0usize, 0..200usize), (1, 200..500)] {
        let rows = &v[r.start * DIMS..r.end * DIMS];
        let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            r.clone().map(|i| 1000 + i as u64),
        ));
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(
            r.clone().map(|i| format!("doc-{i}")),
        ));
        let b = batch(vec![
            ("id", ids),
            ("name", names),
            ("emb", vectors(rows, true)),
        ]);
        write_parquet(
            &d.join(format!("part-{k}.parquet")),
            std::slice::from_ref(&b),
            64,
        );
        write_ipc(
            &d.join(format!("part-{k}.arrow")),
            &[b.slice(0, 70), b.slice(70, b.num_rows() - 70)],
        );
    }
    for spec in [d.join("*.parquet"), d.join("*.arrow")] {
        let ids = open_id_column(&spec, "id").unwrap();
        assert_eq!(ids.rows(), 500);
        assert_eq!(
            ids.read_ids(150..260).unwrap(),
            Ids::U64((1150..1260).collect())
        );
        let names = open_id_column(&spec, "name").unwrap();
        assert!(names.is_strings());
        let got = names.read_ids(63..201).unwrap();
        assert_eq!(
            got,
            Ids::Str((63..201).map(|i| format!("doc-{i}")).collect())
        );
        assert_eq!(names.read_ids(0..500).unwrap().len(), 500);
        assert!(names.read_ids(400..501).is_err());
        let e = open_id_column(&spec, "nope").unwrap_err().to_string();
        assert!(
            e.contains("no column \"nope\"") && e.contains("id (uint64)"),
            "{e}"
        );
        let e = open_id_column(&spec, "emb").unwrap_err().to_string();
        assert!(e.contains("integers") && e.contains("strings"), "{e}");
        // The rows that go with them.
        let input = Input::open_with(&spec, &InputOptions::default()).unwrap();
        let mut row = vec![0f32; DIMS];
        input.read_rows(&[260], &mut row).unwrap();
        assert_eq!(row, v[260 * DIMS..261 * DIMS]);
    }
    // Negative and null ids are refused naming the file, row group and row.
    let p = dir.path().join("bad.parquet");
    let ids: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), Some(2), None, Some(-4)]));
    write_parquet(
        &p,
        &[batch(vec![
            ("id", ids),
            ("emb", vectors(&v[..4 * DIMS], true)),
        ])],
        3,
    );
    let c = open_id_column(&p, "id").unwrap();
    let e = c.read_ids(0..4).unwrap_err().to_string();
    assert!(
        e.contains("row group 0, row 2") && e.contains("null"),
        "{e}"
    );
    let e = c.read_ids(3..4).unwrap_err().to_string();
    assert!(
        e.contains("row group 1, row 0 (row 3 of the file)") && e.contains("negative"),
        "{e}"
    );
}

// ---- bad input -------------------------------------------------------------------------

/// Runs compress on `input` and asserts exit 3 with every needle, and no output.
fn refused(dir: &Path, input: &str, extra: &[&str], needles: &[&str]) {
    let out = dir.join("out.vectro");
    let mut args = vec![
        "compress",
        "--in",
        input,
        "--out",
        out.to_str().unwrap(),
        "--chunk-rows",
        "16",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    assert_fails(&o, 3, needles);
    assert!(!out.exists(), "{input}: an output was left");
    let names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().contains("out.vectro")),
        "{input}: a partial output was left: {names:?}"
    );
}

#[test]
fn bad_parquet_is_refused_naming_file_row_group_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let v = data(100, 13);
    let p = |n: &str| dir.path().join(n);
    let s = |n: &str| p(n).to_str().unwrap().to_string();
    // Missing column, and two candidates without --column.
    let two = batch(vec![
        ("a", vectors(&v, false)),
        ("b", vectors(&v, true)),
        ("n", Arc::new(Int32Array::from_iter_values(0..100))),
    ]);
    write_parquet(&p("two.parquet"), &[two], 40);
    refused(
        dir.path(),
        &s("two.parquet"),
        &["--column", "emb"],
        &[
            "two.parquet",
            "no column \"emb\"",
            "a (list<float>)",
            "n (int32)",
        ],
    );
    refused(
        dir.path(),
        &s("two.parquet"),
        &[],
        &[
            "2 columns of float vectors",
            "a (list<float>)",
            "b (fixed_size_list<float>[24])",
            "--column",
        ],
    );
    // Not floats.
    refused(
        dir.path(),
        &s("two.parquet"),
        &["--column", "n"],
        &["column \"n\" is int32, not float vectors"],
    );
    let mut ib = ListBuilder::new(arrow_array::builder::Int64Builder::new());
    ib.values().append_slice(&[1, 2]);
    ib.append(true);
    write_parquet(
        &p("ints.parquet"),
        &[batch(vec![("x", Arc::new(ib.finish()) as ArrayRef)])],
        10,
    );
    refused(
        dir.path(),
        &s("ints.parquet"),
        &[],
        &["no column of float vectors", "x (list<int64>)"],
    );
    // A null row in the third row group.
    let mut b = ListBuilder::new(Float32Builder::new());
    for (i, row) in v.chunks(DIMS).enumerate() {
        b.values().append_slice(row);
        b.append(i != 93);
    }
    write_parquet(
        &p("null.parquet"),
        &[batch(vec![("emb", Arc::new(b.finish()) as ArrayRef)])],
        40,
    );
    refused(
        dir.path(),
        &s("null.parquet"),
        &[],
        &[
            "null.parquet: row group 2, row 13 (row 93 of the file)",
            "null",
        ],
    );
    // A null value inside a row.
    let mut b = ListBuilder::new(Float32Builder::new());
    for (i, row) in v.chunks(DIMS).enumerate() {
        for (j, &x) in row.iter().enumerate() {
            if i == 41 && j == 5 {
                b.values().append_null()
            } else {
                b.values().append_value(x)
            }
        }
        b.append(true);
    }
    write_parquet(
        &p("nullv.parquet"),
        &[batch(vec![("emb", Arc::new(b.finish()) as ArrayRef)])],
        40,
    );
    refused(
        dir.path(),
        &s("nullv.parquet"),
        &[],
        &[
            "row group 1, row 1 (row 41 of the file)",
            "value 5 of the vector is null",
        ],
    );
    // A ragged row.
    let mut b = ListBuilder::new(Float32Builder::new());
    for (i, row) in v.chunks(DIMS).enumerate() {
        b.values()
            .append_slice(if i == 77 { &row[..20] } else { row });
        b.append(true);
    }
    write_parquet(
        &p("ragged.parquet"),
        &[batch(vec![("emb", Arc::new(b.finish()) as ArrayRef)])],
        40,
    );
    refused(
        dir.path(),
        &s("ragged.parquet"),
        &[],
        &[
            "ragged.parquet: row group 1, row 37 (row 77 of the file)",
            "has 20 values",
            "have 24",
        ],
    );
    // A corrupt footer (the file cut short) and a corrupt page.
    let good = p("list.parquet");
    write_parquet(&good, &[batch(vec![("emb", vectors(&v, false))])], 40);
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(p("cut.parquet"), &bytes[..bytes.len() - 30]).unwrap();
    refused(
        dir.path(),
        &s("cut.parquet"),
        &[],
        &["cut.parquet", "not a readable Parquet file"],
    );
    // The first page's header (right after the magic) overwritten: pages have no checksum
    // unless the writer adds one, but a header that does not parse is caught.
    let mut bad = bytes.clone();
    for b in &mut bad[4..40] {
        *b = 0xff;
    }
    std::fs::write(p("page.parquet"), &bad).unwrap();
    refused(
        dir.path(),
        &s("page.parquet"),
        &[],
        &["page.parquet", "row group 0"],
    );
    // A shard whose rows have other dims than the first shard's.
    let ds = p("ds");
    std::fs::create_dir_all(&ds).unwrap();
    write_parquet(
        &ds.join("a.parquet"),
        &[batch(vec![("emb", vectors(&v, true))])],
        40,
    );
    let other: ArrayRef = Arc::new(arrow_array::FixedSizeListArray::new(
        Arc::new(Field::new("item", DataType::Float32, true)),
        4,
        Arc::new(arrow_array::Float32Array::from(vec![0.5f32; 8])),
        None,
    ));
    write_parquet(&ds.join("b.parquet"), &[batch(vec![("emb", other)])], 40);
    refused(
        dir.path(),
        ds.to_str().unwrap(),
        &[],
        &["b.parquet", "4 dims", "24 dims"],
    );
    // --column on a format without columns is a usage error.
    write_fbin(&p("x.fbin"), &v);
    let o = run(&[
        "compress",
        "--in",
        &s("x.fbin"),
        "--column",
        "emb",
        "--out",
        &s("o.vectro"),
    ]);
    assert_fails(&o, 2, &["--column applies to Parquet and Arrow"]);
}

#[test]
fn bad_arrays_are_refused_naming_the_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let v = data(50, 14);
    let p = |n: &str| dir.path().join(n);
    let s = |n: &str| p(n).to_str().unwrap().to_string();
    // safetensors: a missing tensor, several 2-D tensors, a non-float one, a corrupt header.
    write_safetensors(
        &p("m.safetensors"),
        vec![
            ("a", safetensors::Dtype::F32, vec![50, DIMS], le(&v)),
            ("b", safetensors::Dtype::F32, vec![2, 3], le(&v[..6])),
            ("i", safetensors::Dtype::I32, vec![5, 2], vec![0u8; 40]),
        ],
    );
    refused(
        dir.path(),
        &format!("{}:nope", s("m.safetensors")),
        &[],
        &[
            "has no tensor \"nope\"",
            "a (F32 [50, 24])",
            "b (F32 [2, 3])",
        ],
    );
    refused(
        dir.path(),
        &s("m.safetensors"),
        &[],
        &["several 2-D tensors", "m.safetensors:NAME"],
    );
    refused(
        dir.path(),
        &format!("{}:i", s("m.safetensors")),
        &[],
        &["m.safetensors:i", "I32"],
    );
    let b = std::fs::read(p("m.safetensors")).unwrap();
    std::fs::write(p("bad.safetensors"), &b[..b.len() - 100]).unwrap();
    refused(
        dir.path(),
        &format!("{}:a", s("bad.safetensors")),
        &[],
        &["bad.safetensors", "not a readable safetensors file"],
    );
    // npz: a missing member, no member named among several.
    write_npz(
        &p("x.npz"),
        &[("emb", npy_bytes(&v)), ("ids", npy_bytes(&v))],
        false,
    );
    refused(
        dir.path(),
        &format!("{}:nope", s("x.npz")),
        &[],
        &["x.npz", "no member \"nope\"", "emb, ids"],
    );
    refused(
        dir.path(),
        &s("x.npz"),
        &[],
        &["holds 2 arrays", "x.npz:NAME"],
    );
    // A deflated member cut short.
    write_npz(&p("d.npz"), &[("emb", npy_bytes(&v))], true);
    let b = std::fs::read(p("d.npz")).unwrap();
    let mut cut = b.clone();
    // Corrupt the deflate stream in the middle of the member.
    for x in &mut cut[200..400] {
        *x = 0xff;
    }
    std::fs::write(p("dc.npz"), &cut).unwrap();
    refused(
        dir.path(),
        &format!("{}:emb", s("dc.npz")),
        &[],
        &["dc.npz:emb"],
    );
    // fvecs: a ragged row; fbin: counts that do not fit the length.
    let mut f = Vec::new();
    for (i, row) in v.chunks(DIMS).enumerate() {
        let d = if i == 30 { DIMS - 1 } else { DIMS };
        f.extend_from_slice(&(d as i32).to_le_bytes());
        f.extend_from_slice(&le(&row[..d]));
        if i == 30 {
            f.extend_from_slice(&le(&[0.0]));
        }
    }
    std::fs::write(p("r.fvecs"), &f).unwrap();
    refused(
        dir.path(),
        &s("r.fvecs"),
        &[],
        &["r.fvecs: row 30 says it has 23 values, but row 0 has 24"],
    );
    write_fbin(&p("x.fbin"), &v);
    let b = std::fs::read(p("x.fbin")).unwrap();
    std::fs::write(p("cut.fbin"), &b[..b.len() - 4]).unwrap();
    refused(
        dir.path(),
        &s("cut.fbin"),
        &[],
        &["cut.fbin", "50 rows of 24 float32"],
    );
    // A NaN in a Parquet row names the file and its own row.
    let mut w = v.clone();
    w[33 * DIMS + 2] = f32::NAN;
    write_parquet(
        &p("nan.parquet"),
        &[batch(vec![("emb", vectors(&w, false))])],
        16,
    );
    refused(
        dir.path(),
        &s("nan.parquet"),
        &[],
        &["nan.parquet: row 33, column 2 is NaN"],
    );
}

/// `--id-column` stores a Parquet dataset's string ids with their rows: after shards and
/// merge, export gives every id exactly once with its own vector, and the container is
/// the one `--ids` of the same ids in a text file writes.
#[test]
fn an_id_column_is_stored_through_shards_and_merge() {
    let dir = tempfile::tempdir().unwrap();
    let v = data(300, 21);
    let d = dir.path().join("ds");
    std::fs::create_dir_all(&d).unwrap();
    for (k, r) in [(0usize, 0..130usize), (1, 130..300)] {
        let names: ArrayRef = Arc::new(StringArray::from_iter_values(
            r.clone().map(|i| format!("doc-{i}")),
        ));
        let b = batch(vec![
            ("name", names),
            ("emb", vectors(&v[r.start * DIMS..r.end * DIMS], true)),
        ]);
        write_parquet(&d.join(format!("part-{k}.parquet")), &[b], 50);
    }
    let spec = d.to_str().unwrap().to_string();
    let whole = dir.path().join("whole.vectro");
    compress(&spec, &whole, "int8", "2", &["--id-column", "name"]);
    // The same ids from a file give the same bytes.
    let txt = dir.path().join("ids.txt");
    std::fs::write(
        &txt,
        (0..300).map(|i| format!("doc-{i}\n")).collect::<String>(),
    )
    .unwrap();
    let from_file = dir.path().join("file.vectro");
    compress(
        &spec,
        &from_file,
        "int8",
        "1",
        &["--ids", txt.to_str().unwrap()],
    );
    assert_same_container(&whole, &from_file);
    // Shards and merge.
    let parts = dir.path().join("parts");
    for k in 0..3 {
        let out = parts.join(format!("p-{k}.vectro"));
        let shard = format!("{k}/3");
        compress(
            &spec,
            &out,
            "int8",
            "1",
            &["--id-column", "name", "--shard", &shard],
        );
    }
    let merged = dir.path().join("merged.vectro");
    let o = run(&[
        "merge",
        "-q",
        parts.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", crate::helpers::stderr(&o));
    assert_same_container(&whole, &merged);
    let c = Container::open(&merged).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    let mut row = vec![0f32; DIMS];
    let ids = c.ids(0..c.rows()).unwrap();
    for i in 0..ids.len() {
        let id = ids.get(i).to_string();
        let n: usize = id.strip_prefix("doc-").unwrap().parse().unwrap();
        assert!(seen.insert(n), "{id} twice");
        c.get(i as u64, &mut row).unwrap();
        let want = &v[n * DIMS..(n + 1) * DIMS];
        let err = row
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(err < 0.05, "{id}: its row is not its vector ({err})");
    }
    assert_eq!(seen.len(), 300);
    // Both ways of giving ids at once is a usage error.
    let o = run(&[
        "compress",
        "--in",
        &spec,
        "--out",
        dir.path().join("x.vectro").to_str().unwrap(),
        "--ids",
        txt.to_str().unwrap(),
        "--id-column",
        "name",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", crate::helpers::stderr(&o));
}
