//! `vectro train` and trained `compress` (pq, opq, binary-itq): bad samples, cancels,
//! outputs refused before training, and many-file inputs.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{random_rows, vectro, write_npy};

/// A 600 × 64 sample whose row 7 holds `big` in column 3.
fn with_huge_row(dir: &Path, big: f32) -> std::path::PathBuf {
    let (rows, dims) = (600, 64);
    let mut x = random_rows(rows, dims, 3);
    x[7 * dims + 3] = big;
    let p = dir.join("huge.npy");
    write_npy(&p, rows as u64, dims as u64, &x);
    p
}

#[test]
fn a_huge_value_is_refused_before_training_naming_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    for big in [1e30f32, 3.4e38] {
        let npy = with_huge_row(dir.path(), big);
        for codec in ["pq:m=8,nbits=4", "opq:m=8,nbits=4", "binary-itq"] {
            let out = dir.path().join("x.vectro");
            // Without the bound, opq and binary-itq spun in the SVD for minutes.
            let o = vectro()
                .timeout(Duration::from_secs(120))
                .args(["compress", "-q", "--no-fsync", "--codec", codec, "--in"])
                .arg(&npy)
                .arg("--out")
                .arg(&out)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(3), "{codec} {big}: {err}");
            assert!(
                err.contains("huge.npy")
                    && err.contains("row 7, column 3")
                    && err.contains("too large to train on")
                    && err.contains("normalise"),
                "{codec} {big}: {err}"
            );
            assert!(!out.exists(), "{codec}: an output was left");
        }
    }
}
