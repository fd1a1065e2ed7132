//! Crash-safe resume: a compress killed anywhere, then resumed, gives the same bytes as an
//! uninterrupted run.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use crate::helpers::*;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use vectro::output::partial_path;
use vectro::{CompressSummary, Container, NoProgress};

fn resume(input: &Path, out: &Path, chunk_rows: u32) -> CompressSummary {
    let mut o = opts(chunk_rows);
    o.resume = true;
    vectro::compress(input, out, &o, &NoProgress, &AtomicBool::new(false)).unwrap()
}

#[test]
fn every_torn_prefix_resumes_to_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 40, 4);
    let reference = container(dir.path(), &input, "ref.vectro", 3);
    let want = std::fs::read(&reference).unwrap();
    let chunks = Container::open(&reference).unwrap().chunks().to_vec();
    let out = dir.path().join("out.vectro");
    for k in 0..=want.len() {
        std::fs::write(partial_path(&out), &want[..k]).unwrap();
        let s = resume(&input, &out, 3);
        assert_eq!(std::fs::read(&out).unwrap(), want, "prefix of {k} bytes");
        let kept: u64 = chunks
            .iter()
            .filter(|c| c.offset + c.len <= k as u64)
            .map(|c| c.rows)
            .sum();
        assert_eq!(s.resumed_rows, kept, "prefix of {k} bytes");
        assert!(s.partial_discarded.is_none());
        assert!(
            !partial_path(&out).exists(),
            "the partial becomes the output"
        );
        std::fs::remove_file(&out).unwrap();
    }
}

#[test]
fn a_damaged_chunk_in_the_partial_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 100, 8);
    let reference = container(dir.path(), &input, "ref.vectro", 10);
    let want = std::fs::read(&reference).unwrap();
    let c5 = Container::open(&reference).unwrap().chunks()[5];
    let out = dir.path().join("out.vectro");
    let mut partial = want.clone();
    partial[c5.offset as usize + 50] ^= 1;
    std::fs::write(partial_path(&out), &partial).unwrap();
    let s = resume(&input, &out, 10);
    assert_eq!(s.resumed_rows, 50, "chunks 0..5 kept, the rest recomputed");
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

#[test]
fn a_partial_of_other_settings_or_input_is_discarded_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 100, 8);
    let out = dir.path().join("out.vectro");
    let want = std::fs::read(container(dir.path(), &input, "ref.vectro", 10)).unwrap();

    // Another chunk size.
    let other = std::fs::read(container(dir.path(), &input, "other.vectro", 7)).unwrap();
    std::fs::write(partial_path(&out), &other[..other.len() / 2]).unwrap();
    let s = resume(&input, &out, 10);
    let why = s.partial_discarded.expect("discarded");
    assert!(why.contains("--chunk-rows 7"), "{why}");
    assert_eq!(s.resumed_rows, 0);
    assert_eq!(std::fs::read(&out).unwrap(), want);
    std::fs::remove_file(&out).unwrap();

    // The input touched since (a new mtime): the settings match, the input may not.
    std::fs::write(partial_path(&out), &want[..want.len() / 2]).unwrap();
    let later =
        std::fs::metadata(&input).unwrap().modified().unwrap() + std::time::Duration::from_secs(10);
    std::fs::File::options()
        .write(true)
        .open(&input)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let s = resume(&input, &out, 10);
    let why = s.partial_discarded.expect("discarded");
    assert!(why.contains("the input changed"), "{why}");
    std::fs::remove_file(&out).unwrap();
    let want = std::fs::read(container(dir.path(), &input, "ref2.vectro", 10)).unwrap();

    // The same input rewritten in place with its size and mtime preserved.
    std::fs::write(partial_path(&out), &want[..want.len() / 2]).unwrap();
    let mtime = std::fs::metadata(&input).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&input).unwrap();
    let data = bytes.len() - 100 * 8 * 4;
    bytes[data..data + 4].copy_from_slice(&0.5f32.to_le_bytes());
    std::fs::write(&input, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&input)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let s = resume(&input, &out, 10);
    let why = s.partial_discarded.expect("discarded");
    assert!(why.contains("re-encoded"), "{why}");
    let fresh = container(dir.path(), &input, "fresh.vectro", 10);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(fresh).unwrap());
}

#[test]
fn without_resume_a_stale_partial_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 50, 8);
    let want = std::fs::read(container(dir.path(), &input, "ref.vectro", 10)).unwrap();
    let out = dir.path().join("out.vectro");
    std::fs::write(partial_path(&out), b"garbage from an old run").unwrap();
    let s = vectro::compress(
        &input,
        &out,
        &opts(10),
        &NoProgress,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(s.resumed_rows, 0);
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

/// Waits until `path` is longer than `than` bytes or the child exits; returns false if it
/// exited. The deadline only stops a broken test from hanging; nothing asserts on time.
fn wait_for_growth(child: &mut std::process::Child, path: &Path, than: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if std::fs::metadata(path).is_ok_and(|m| m.len() > than) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

#[test]
fn sigkill_at_random_points_then_resume_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 6000, 16);
    let want = std::fs::read(container(dir.path(), &input, "ref.vectro", 20)).unwrap();
    let out = dir.path().join("out.vectro");
    let partial = partial_path(&out);
    let args = |resume: bool| {
        let mut a = vec![
            "compress".to_string(),
            "--in".into(),
            input.display().to_string(),
            "--out".into(),
            out.display().to_string(),
            "--chunk-rows".into(),
            "20".into(),
            "--no-fsync".into(),
            "--quiet".into(),
        ];
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut kills = 0;
    for round in 0..6 {
        let before = std::fs::metadata(&partial).map_or(0, |m| m.len());
        let mut child = vectro_std()
            .args(args(round > 0))
            .env("VECTRO_TEST_SLOW_CHUNK_MS", "2")
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        if wait_for_growth(&mut child, &partial, before) {
            std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        if out.exists() {
            break; // it finished before the kill landed
        }
        assert!(
            partial.exists(),
            "round {round}: the partial output survives SIGKILL"
        );
    }
    assert!(kills >= 3, "only {kills} kills landed");
    let o = run(&args(true).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), want, "resumed output differs");
    assert!(!partial.exists());
}

#[test]
fn resume_on_a_finished_output_leaves_it_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 50, 8);
    let out = dir.path().join("out.vectro");
    let (i, o) = (input.display().to_string(), out.display().to_string());
    let args = |chunk_rows: &'static str, extra: &[&'static str]| {
        let mut a = vec![
            "compress",
            "--in",
            &i,
            "--out",
            &o,
            "--chunk-rows",
            chunk_rows,
            "--no-fsync",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let go = |a: Vec<String>| run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let first = go(args("10", &[]));
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let want = std::fs::read(&out).unwrap();
    let mtime = std::fs::metadata(&out).unwrap().modified().unwrap();

    // The cron job reruns the same command: told it is done, nothing touched.
    let again = go(args("10", &["--resume"]));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(said.contains("already complete and verified"), "{said}");
    assert!(said.contains("left unchanged"), "{said}");
    assert_eq!(std::fs::read(&out).unwrap(), want);
    assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), mtime);
    assert!(!partial_path(&out).exists());
    let json = go(args("10", &["--resume", "--json"]));
    assert_eq!(json.status.code(), Some(0), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["already_complete"], true);
    assert_eq!(v["rows"], 50);

    // Other settings than the finished output's: an error, the output kept.
    let other = go(args("7", &["--resume"]));
    assert_fails(
        &other,
        2,
        &[
            &o,
            "not the complete output",
            "codec, shape or chunking",
            "--force",
        ],
    );
    assert_eq!(std::fs::read(&out).unwrap(), want);

    // A damaged output is not "complete": an error naming the damage, the file kept.
    let mut bad = want.clone();
    let c = Container::open(&out).unwrap().chunks()[2];
    bad[c.offset as usize + c.len as usize - 3] ^= 1;
    std::fs::write(&out, &bad).unwrap();
    let damaged = go(args("10", &["--resume"]));
    assert_fails(&damaged, 2, &[&o, "not the complete output", "--force"]);
    assert_eq!(std::fs::read(&out).unwrap(), bad);
}

/// Keeps the notes: training on a small sample says so ("training on 300 rows, fewer
/// than ..."), which tells whether a run trained.
#[derive(Default)]
struct Notes(std::sync::Mutex<Vec<String>>);

impl vectro::Progress for Notes {
    fn note(&self, msg: &str) {
        self.0.lock().unwrap().push(msg.to_owned());
    }
}

impl Notes {
    fn trained(&self) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.starts_with("training on"))
    }
}

/// Compresses with `codec` (trained), optionally resuming; true if it trained.
fn try_trained(
    input: &Path,
    out: &Path,
    codec: &str,
    resume: bool,
) -> (vectro::Result<CompressSummary>, bool) {
    let mut o = opts(40);
    o.codec = Some(codec.parse().unwrap());
    o.train_rows = Some(300);
    o.resume = resume;
    let notes = Notes::default();
    let s = vectro::compress(input, out, &o, &notes, &AtomicBool::new(false));
    (s, notes.trained())
}

fn trained(input: &Path, out: &Path, codec: &str, resume: bool) -> CompressSummary {
    let (s, trained) = try_trained(input, out, codec, resume);
    let s = s.unwrap();
    if codec != "binary-itq" {
        // binary-itq's sample is never small enough to be warned about.
        assert_eq!(trained, !s.training_reused, "{codec}");
    }
    s
}

#[test]
fn resume_takes_the_codebook_from_the_partial_instead_of_training_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 400, 16);
    let out = dir.path().join("out.vectro");
    for codec in [
        "pq:m=4,nbits=4",
        "opq:m=4,nbits=4,opq_iters=2",
        "binary-itq",
    ] {
        let reference = dir.path().join("ref.vectro");
        let s = trained(&input, &reference, codec, false);
        assert!(!s.training_reused, "{codec}: nothing to reuse");
        let want = std::fs::read(&reference).unwrap();
        let c = Container::open(&reference).unwrap();
        assert!(c.header().metadata.contains_key("train"), "{codec}");
        // Killed after its fourth chunk.
        let cut = c.chunks()[3].offset + c.chunks()[3].len;
        std::fs::write(partial_path(&out), &want[..cut as usize]).unwrap();

        let s = trained(&input, &out, codec, true);
        assert!(s.training_reused, "{codec}");
        assert_eq!(s.resumed_rows, 160, "{codec}");
        assert_eq!(std::fs::read(&out).unwrap(), want, "{codec}");

        // A cron job reruns the finished command: nothing trained, nothing written.
        let s = trained(&input, &out, codec, true);
        assert!(s.already_complete && s.training_reused, "{codec}");
        // Other settings than the finished output's: refused, without training first.
        if codec != "binary-itq" {
            let (e, did_train) = try_trained(&input, &out, &format!("{codec},seed=5"), true);
            let e = e.unwrap_err().to_string();
            assert!(e.contains("metadata \"train\" differs"), "{e}");
            assert!(!did_train, "{codec}");
        }
        assert_eq!(std::fs::read(&out).unwrap(), want, "{codec}");
        std::fs::remove_file(&out).unwrap();

        // The partial's codebook, damaged: its header crc fails, so it is trained again
        // and the partial (whose header no longer matches) is discarded.
        let mut bad = want[..cut as usize].to_vec();
        let at = c.header_len() / 2;
        bad[at] ^= 1;
        std::fs::write(partial_path(&out), &bad).unwrap();
        let s = trained(&input, &out, codec, true);
        assert!(!s.training_reused, "{codec}");
        assert!(s.partial_discarded.is_some(), "{codec}");
        assert_eq!(std::fs::read(&out).unwrap(), want, "{codec}");
        std::fs::remove_file(&out).unwrap();
        std::fs::remove_file(&reference).unwrap();
    }
}

#[test]
fn a_partial_trained_with_other_settings_is_trained_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 400, 16);
    let (reference, out) = (dir.path().join("ref.vectro"), dir.path().join("out.vectro"));
    trained(&input, &reference, "pq:m=4,nbits=4", false);
    let old = std::fs::read(&reference).unwrap();
    // The same settings spelled otherwise reuse it; another seed, iteration count or
    // sample size does not.
    for (codec, rows, reused) in [
        ("pq:nbits=4,m=4,seed=1234", 300, true),
        ("pq:m=4,nbits=4,seed=7", 300, false),
        ("pq:m=4,nbits=4,iters=3", 300, false),
        ("pq:m=4,nbits=4", 250, false),
    ] {
        std::fs::write(partial_path(&out), &old[..old.len() / 2]).unwrap();
        let mut o = opts(40);
        o.codec = Some(codec.parse().unwrap());
        o.train_rows = Some(rows);
        o.resume = true;
        let s = vectro::compress(&input, &out, &o, &NoProgress, &AtomicBool::new(false)).unwrap();
        assert_eq!(s.training_reused, reused, "{codec}, {rows} rows");
        assert_eq!(
            s.partial_discarded.is_some(),
            !reused,
            "{codec}, {rows} rows"
        );
        // Either way the bytes of an uninterrupted run of these settings.
        let fresh = dir.path().join("fresh.vectro");
        o.resume = false;
        vectro::compress(&input, &fresh, &o, &NoProgress, &AtomicBool::new(false)).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&fresh).unwrap());
        assert_eq!(std::fs::read(&out).unwrap() == old, reused, "{codec}");
        std::fs::remove_file(&out).unwrap();
        std::fs::remove_file(&fresh).unwrap();
    }
}
