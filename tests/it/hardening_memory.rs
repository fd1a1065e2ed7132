//! Memory that must not grow with the container: `compress --resume` of a finished output
//! or of a partial one, and a retried `--shard`, check what is already there before
//! writing. Checking it through a map of the whole file held all of it: 260 MiB peak for a
//! 256 MiB container.

use std::path::Path;

use crate::helpers::vectro;

/// Peak RSS (bytes) of each check, for a container of `rows` rows of 256 dims in f16
/// (512 bytes a row).
struct Peaks {
    resume_finished: u64,
    shard_retry: u64,
    resume_partial: u64,
}

fn compress_json(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = vectro()
        .current_dir(dir)
        .args(["compress", "--json", "--no-fsync", "--codec", "f16"])
        .args(args)
        .assert()
        .success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

/// Whether two files hold the same bytes, compared a block at a time.
fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut a, mut b) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
}

fn peaks(rows: u64, dir: &Path) -> Peaks {
    vectro()
        .current_dir(dir)
        .args([
            "generate", "-q", "--dims", "256", "--out", "x.npy", "--rows",
        ])
        .arg(rows.to_string())
        .assert()
        .success();
    let peak = |v: &serde_json::Value| v["peak_rss_bytes"].as_u64().unwrap();
    compress_json(dir, &["--in", "x.npy", "--out", "x.vectro"]);

    // A cron job repeating itself: the output is finished, so it is only checked.
    let v = compress_json(dir, &["--resume", "--in", "x.npy", "--out", "x.vectro"]);
    let resume_finished = peak(&v);

    // A shard retried after it finished.
    let shard = ["--shard", "0/2", "--in", "x.npy", "--out", "s.vectro"];
    compress_json(dir, &shard);
    let shard_retry = peak(&compress_json(dir, &shard));
    std::fs::remove_file(dir.join("s.vectro")).unwrap();

    // A partial whose last chunk was torn (the last MiB lost): every other chunk is read
    // and checked, one chunk is encoded again, whatever the size.
    let partial = dir.join(".p.vectro.partial");
    std::fs::copy(dir.join("x.vectro"), &partial).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&partial)
        .unwrap();
    f.set_len(f.metadata().unwrap().len() - (1 << 20)).unwrap();
    drop(f);
    let v = compress_json(dir, &["--resume", "--in", "x.npy", "--out", "p.vectro"]);
    let resume_partial = peak(&v);
    let chunk_rows = rows / v["chunks"].as_u64().unwrap();
    assert_eq!(v["resumed_rows"], rows - chunk_rows, "{v}");
    assert!(
        same_bytes(&dir.join("p.vectro"), &dir.join("x.vectro")),
        "the resumed output is the uninterrupted one"
    );
    for f in ["x.npy", "x.vectro", "p.vectro"] {
        std::fs::remove_file(dir.join(f)).unwrap();
    }
    Peaks {
        resume_finished,
        shard_retry,
        resume_partial,
    }
}

#[test]
fn checking_an_existing_output_has_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let small = peaks(131_072, dir.path()); // a 64 MiB container
    let large = peaks(524_288, dir.path()); // a 256 MiB container
    for (what, s, l) in [
        (
            "--resume of a finished output",
            small.resume_finished,
            large.resume_finished,
        ),
        ("a retried --shard", small.shard_retry, large.shard_retry),
        (
            "--resume of a partial output",
            small.resume_partial,
            large.resume_partial,
        ),
    ] {
        // 24 MiB: the noise the other memory tests allow (pages of the input are released
        // in 16 MiB steps). Holding the container would grow by 192 MiB.
        assert!(
            l.saturating_sub(s) < 24 << 20,
            "{what}: peak RSS grew by {} MiB ({} -> {} MiB) with a 4x larger container",
            l.saturating_sub(s) >> 20,
            s >> 20,
            l >> 20
        );
    }
}
