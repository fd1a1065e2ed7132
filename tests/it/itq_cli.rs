//! `binary-itq` through the command line: trained on the input, identical for any thread
//! count and chunk size, and its random access equals its decompress.

use crate::helpers::{bits, read_npy, vectro};

#[test]
fn binary_itq_is_deterministic_and_decodes_consistently() {
    let dir = tempfile::tempdir().unwrap();
    let npy = dir.path().join("x.npy");
    vectro()
        .args(["generate", "-q", "--rows", "900", "--dims", "24", "--out"])
        .arg(&npy)
        .assert()
        .success();
    let mut files = Vec::new();
    for (i, (threads, chunk)) in [("1", "100"), ("3", "100"), ("2", "100")]
        .iter()
        .enumerate()
    {
        let out = dir.path().join(format!("{i}.vectro"));
        vectro()
            .args([
                "compress",
                "-q",
                "--codec",
                "binary-itq",
                "--threads",
                threads,
            ])
            .args(["--chunk-rows", chunk, "--in"])
            .arg(&npy)
            .arg("--out")
            .arg(&out)
            .assert()
            .success();
        files.push(std::fs::read(&out).unwrap());
    }
    assert!(
        files.windows(2).all(|w| w[0] == w[1]),
        "same bytes for any thread count"
    );
    let c = dir.path().join("0.vectro");
    let back = dir.path().join("back.npy");
    vectro()
        .args(["decompress", "-q", "--in"])
        .arg(&c)
        .arg("--out")
        .arg(&back)
        .assert()
        .success();
    let (_, all) = read_npy::<f32>(&back);
    let got = vectro()
        .arg("get")
        .arg(&c)
        .args(["--rows", "250", "--format", "npy", "--out"])
        .arg(dir.path().join("row.npy"))
        .assert()
        .success();
    drop(got);
    let (_, row) = read_npy::<f32>(&dir.path().join("row.npy"));
    assert_eq!(bits(&row), bits(&all[250 * 24..251 * 24]));
    let info = vectro().arg("info").arg(&c).assert().success();
    let text = String::from_utf8_lossy(&info.get_output().stdout).into_owned();
    assert!(
        text.contains("binary-itq") && text.contains("itq iterations"),
        "{text}"
    );
    vectro()
        .args(["compress", "-q", "--codec", "binary-itq:x=1", "--in"])
        .arg(&npy)
        .arg("--out")
        .arg(dir.path().join("bad.vectro"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "binary-itq: unknown parameter 'x'; valid: none",
        ));
}
