//! `decompress --dtype`: the `.npy` comes back in the dtype its input had (or the one
//! asked for), so a float16 dump does not come back twice its size.

use std::path::{Path, PathBuf};

use crate::helpers::{random_rows, vectro};

/// Writes `data` (raw little-endian values of `descr`) as a `rows × dims` `.npy`.
fn write_raw_npy(path: &Path, rows: u64, dims: u64, descr: &str, data: &[u8]) {
    let mut bytes = vectro::npy::write_header_descr(rows, dims, descr);
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

/// The `descr` and the data bytes of a `.npy`, read by npyz (independent of ours).
fn descr_and_data(path: &Path) -> (String, Vec<u64>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let f = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let descr = match f.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => panic!("{other:?}"),
    };
    let shape = f.shape().to_vec();
    let n = shape.iter().product::<u64>() as usize;
    let size = if descr.ends_with('4') { 4 } else { 2 };
    (descr, shape, bytes[bytes.len() - n * size..].to_vec())
}

/// `vectro decompress --in c --out <dir>/name [extra]`, returning the output path.
fn decompress(c: &Path, dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(name);
    vectro()
        .args(["decompress", "-q", "--no-fsync", "--in"])
        .arg(c)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .assert()
        .success();
    out
}

fn compress(input: &Path, out: &Path, codec: &str) {
    vectro()
        .args([
            "compress",
            "-q",
            "--no-fsync",
            "--chunk-rows",
            "50",
            "--codec",
            codec,
            "--in",
        ])
        .arg(input)
        .arg("--out")
        .arg(out)
        .assert()
        .success();
}

#[test]
fn a_float16_input_comes_back_float16_byte_for_byte_through_the_f16_codec() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, dims) = (230u64, 12u64);
    let x = random_rows(rows as usize, dims as usize, 4);
    let half: Vec<u8> = x
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    let npy = dir.path().join("h.npy");
    write_raw_npy(&npy, rows, dims, "<f2", &half);
    let c = dir.path().join("h.vectro");
    compress(&npy, &c, "f16");
    let out = decompress(&c, dir.path(), "back.npy", &[]);
    let (descr, shape, data) = descr_and_data(&out);
    assert_eq!((descr.as_str(), shape), ("<f2", vec![rows, dims]));
    assert!(data == half, "f16 in, f16 codec, f16 out: the same bytes");
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        std::fs::metadata(&npy).unwrap().len(),
        "not twice its size"
    );
    // --dtype f32 still gives the float32 rows, exactly the float16 values.
    let wide = decompress(&c, dir.path(), "wide.npy", &["--dtype", "f32"]);
    let (descr, _, data) = descr_and_data(&wide);
    assert_eq!(descr, "<f4");
    let want: Vec<u8> = half
        .chunks_exact(2)
        .flat_map(|b| {
            half::f16::from_bits(u16::from_le_bytes([b[0], b[1]]))
                .to_f32()
                .to_le_bytes()
        })
        .collect();
    assert!(data == want);
}

#[test]
fn float32_and_float64_inputs_come_back_float32_and_convert_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, dims) = (120u64, 8u64);
    let x = random_rows(rows as usize, dims as usize, 9);
    let f64_npy = dir.path().join("d.npy");
    let wide: Vec<u8> = x.iter().flat_map(|&v| f64::from(v).to_le_bytes()).collect();
    write_raw_npy(&f64_npy, rows, dims, "<f8", &wide);
    let c = dir.path().join("d.vectro");
    compress(&f64_npy, &c, "int8");
    let f32_out = decompress(&c, dir.path(), "f32.npy", &[]);
    let (descr, _, data) = descr_and_data(&f32_out);
    assert_eq!(
        descr, "<f4",
        "float64 inputs decompress to float32 by default"
    );
    let decoded: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // f16: each decoded value rounded to nearest; bf16: its bit patterns as uint16.
    let (descr, _, data) =
        descr_and_data(&decompress(&c, dir.path(), "h.npy", &["--dtype", "f16"]));
    assert_eq!(descr, "<f2");
    let want: Vec<u8> = decoded
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    assert!(data == want);
    let (descr, _, data) =
        descr_and_data(&decompress(&c, dir.path(), "b.npy", &["--dtype", "bf16"]));
    assert_eq!(descr, "<u2");
    let want: Vec<u8> = decoded
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_bits().to_le_bytes())
        .collect();
    assert!(data == want);
    // The summary says what was written.
    let o = vectro()
        .args([
            "decompress",
            "--json",
            "--no-fsync",
            "--dtype",
            "f16",
            "--in",
        ])
        .arg(&c)
        .arg("--out")
        .arg(dir.path().join("j.npy"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["dtype"], "f16", "{v}");
}

#[test]
fn a_value_beyond_float16_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (rows, dims) = (100u64, 4u64);
    let mut x = random_rows(rows as usize, dims as usize, 2);
    x[(77 * dims + 2) as usize] = 1.0e6;
    let npy = dir.path().join("big.npy");
    crate::helpers::write_npy(&npy, rows, dims, &x);
    let c = dir.path().join("big.vectro");
    compress(&npy, &c, "int8");
    let out = dir.path().join("big16.npy");
    let o = vectro()
        .args(["decompress", "-q", "--dtype", "f16", "--in"])
        .arg(&c)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("big.vectro")
            && err.contains("row 77, column 2")
            && err.contains("--dtype f32"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temp file left"
    );
    // An unknown dtype is a usage error.
    vectro()
        .args(["decompress", "--dtype", "f64", "--in"])
        .arg(&c)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
}
