//! Write faults: a full disk (RLIMIT_FSIZE), a second writer, Ctrl-C. The final path is
//! never touched, and the complete chunks stay for --resume.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;
use vectro::output::partial_path;

struct Case {
    _dir: tempfile::TempDir,
    input: PathBuf,
    out: PathBuf,
    want: Vec<u8>,
}

fn case() -> Case {
    let dir = tempfile::tempdir().unwrap();
    let input = npy(dir.path(), "in.npy", 6000, 16);
    let want = std::fs::read(container(dir.path(), &input, "ref.vectro", 20)).unwrap();
    let out = dir.path().join("out.vectro");
    Case {
        input,
        out,
        want,
        _dir: dir,
    }
}

fn compress(c: &Case, extra: &[&str]) -> Command {
    let mut cmd = vectro_std();
    cmd.args(["compress", "--in"])
        .arg(&c.input)
        .arg("--out")
        .arg(&c.out)
        .args(["--chunk-rows", "20", "--no-fsync"])
        .args(extra)
        .stdin(Stdio::null());
    cmd
}

/// Limits the child's file size to `bytes`, with SIGXFSZ ignored so writes fail with EFBIG
/// as they would on a full disk, instead of killing the process.
fn limit_file_size(cmd: &mut Command, bytes: u64) {
    // SAFETY: the closure runs between fork and exec and only calls setrlimit and signal,
    // both async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
}

fn finish_with_resume(c: &Case) {
    let o = compress(c, &["--resume"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("resumed: kept"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&c.out).unwrap(), c.want);
    assert!(!partial_path(&c.out).exists());
}

#[test]
fn disk_full_midway_keeps_the_partial_for_resume_and_leaves_the_target_alone() {
    let c = case();
    let mut cmd = compress(&c, &[]);
    limit_file_size(&mut cmd, 30_000);
    let o = cmd.output().unwrap();
    assert_fails(
        &o,
        4,
        &[".out.vectro.partial: writing: File too large", "--resume"],
    );
    assert!(!c.out.exists());
    let kept = std::fs::metadata(partial_path(&c.out)).unwrap().len();
    assert!(kept > 0 && kept <= 30_000, "{kept}");
    finish_with_resume(&c);
}

#[test]
fn disk_full_with_no_resume_file_removes_the_partial() {
    let c = case();
    let mut cmd = compress(&c, &["--no-resume-file"]);
    limit_file_size(&mut cmd, 30_000);
    let o = cmd.output().unwrap();
    assert_fails(&o, 4, &["File too large"]);
    assert!(!stderr(&o).contains("--resume"), "{}", stderr(&o));
    assert!(!c.out.exists());
    assert!(!partial_path(&c.out).exists());
}

#[test]
fn disk_full_with_force_leaves_the_old_output_intact() {
    let c = case();
    std::fs::write(&c.out, b"yesterday's good output").unwrap();
    let mut cmd = compress(&c, &["--force"]);
    limit_file_size(&mut cmd, 30_000);
    assert_fails(&cmd.output().unwrap(), 4, &["File too large"]);
    assert_eq!(std::fs::read(&c.out).unwrap(), b"yesterday's good output");
}

/// Waits until `path` holds more than `than` bytes; false if the child exited first. The
/// deadline only keeps a broken test from hanging.
fn wait_for_growth(child: &mut Child, path: &Path, than: u64) -> bool {
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
    panic!("{} did not grow", path.display());
}

fn spawn_slow(c: &Case, ms: u64, extra: &[&str]) -> Child {
    compress(c, extra)
        .env("VECTRO_TEST_SLOW_CHUNK_MS", ms.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigint(child: &Child) {
    // SAFETY: kill only sends a signal to our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
}

#[test]
fn a_second_writer_of_the_same_output_fails_at_once() {
    let c = case();
    let mut first = spawn_slow(&c, 50, &[]);
    assert!(wait_for_growth(&mut first, &partial_path(&c.out), 0));
    let o = compress(&c, &[]).output().unwrap();
    assert_fails(&o, 4, &["another vectro process is writing this output"]);
    let o = compress(&c, &["--resume"]).output().unwrap();
    assert_fails(&o, 4, &["another vectro process"]);
    sigint(&first);
    assert_eq!(first.wait().unwrap().code(), Some(130));
    // The losers did not disturb the winner's partial output.
    finish_with_resume(&c);
}

/// Sends `signal` mid-run: the run stops at a chunk boundary with `code`, saying `said`,
/// leaves no output but a partial that is a clean prefix of it, and `--resume` finishes
/// it byte-identically.
fn stops_cleanly_and_resumes(signal: i32, code: i32, said: &str) {
    let c = case();
    let mut child = spawn_slow(&c, 5, &[]);
    assert!(wait_for_growth(&mut child, &partial_path(&c.out), 2000));
    // SAFETY: kill only sends a signal to our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let o = child.wait_with_output().unwrap();
    assert_fails(&o, code, &[said, "rerun the same command with --resume"]);
    assert!(!c.out.exists());
    let part = std::fs::read(partial_path(&c.out)).unwrap();
    assert!(
        c.want.starts_with(&part),
        "the partial is a clean prefix of the output"
    );
    finish_with_resume(&c);
}

#[test]
fn sigint_stops_at_a_chunk_boundary_and_the_run_resumes() {
    stops_cleanly_and_resumes(libc::SIGINT, 130, "stopping at the next chunk boundary");
}

#[test]
fn sigterm_stops_like_the_first_ctrl_c_and_the_run_resumes() {
    stops_cleanly_and_resumes(
        libc::SIGTERM,
        143,
        "SIGTERM: stopping at the next chunk boundary",
    );
}

#[test]
fn sigint_with_no_resume_file_removes_the_partial() {
    let c = case();
    let mut child = spawn_slow(&c, 5, &["--no-resume-file"]);
    assert!(wait_for_growth(&mut child, &partial_path(&c.out), 2000));
    sigint(&child);
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(!partial_path(&c.out).exists());
    assert!(!c.out.exists());
}

#[test]
fn a_second_sigint_exits_at_once_with_130() {
    let c = case();
    // Each chunk then takes 5 s, so only the second Ctrl-C can end the run soon.
    let mut child = spawn_slow(&c, 5000, &[]);
    // Past the header means chunk 0 is written and the run is inside its 5 s pause; a
    // Ctrl-C any earlier could stop it cleanly before the first chunk.
    let header_len = u32::from_le_bytes(c.want[8..12].try_into().unwrap()) as u64;
    assert!(wait_for_growth(
        &mut child,
        &partial_path(&c.out),
        header_len
    ));
    sigint(&child);
    std::thread::sleep(Duration::from_millis(200));
    sigint(&child);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("rerun the same command"),
        "it waited for the chunk: {}",
        stderr(&o)
    );
    assert!(!c.out.exists());
}
