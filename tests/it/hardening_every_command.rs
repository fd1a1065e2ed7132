//! Every subcommand in every hostile environment: stdout on a full device, stderr on a full
//! device, both, `--threads` at its bounds, and a process limit that refuses threads. Each
//! run must end with the documented exit code, never a panic (101), an abort (134) or a
//! signal (SIGBUS 135).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::helpers::*;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_vectro")
}

fn dev_full() -> File {
    OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full")
}

/// One working invocation of each subcommand, run in a directory holding `x.npy` (3000 ×
/// 32), its container `x.vectro`, two shards and the prototype's `x.npz`; whether it has
/// `--threads`; and whether its summary goes to stdout (every command's does).
struct Case {
    args: &'static [&'static str],
    threads: bool,
    prints: bool,
}

const CASES: &[Case] = &[
    Case {
        args: &["compress", "--in", "x.npy", "--out", "o1.vectro", "--force"],
        threads: true,
        prints: true,
    },
    Case {
        args: &[
            "decompress",
            "--in",
            "x.vectro",
            "--out",
            "o2.npy",
            "--force",
        ],
        threads: true,
        prints: true,
    },
    Case {
        args: &[
            "train",
            "--in",
            "x.npy",
            "--codec",
            "pq:m=4,nbits=4",
            "--train-rows",
            "1000",
            "--out",
            "o3.vcb",
            "--force",
        ],
        threads: true,
        prints: true,
    },
    Case {
        args: &["eval", "--orig", "x.npy", "--comp", "x.vectro"],
        threads: true,
        prints: true,
    },
    Case {
        args: &["bench", "--in", "x.npy", "--codecs", "int8", "--runs", "1"],
        threads: true,
        prints: true,
    },
    Case {
        args: &[
            "report", "--orig", "x.npy", "x.vectro", "--out", "o8.html", "--force",
        ],
        threads: true,
        prints: true,
    },
    Case {
        args: &["info", "x.vectro"],
        threads: false,
        prints: true,
    },
    Case {
        args: &["verify", "x.vectro"],
        threads: false,
        prints: true,
    },
    Case {
        args: &["get", "x.vectro", "--rows", "0..5"],
        threads: false,
        prints: true,
    },
    Case {
        args: &[
            "export", "x.vectro", "--format", "jsonl", "--out", "o4.jsonl", "--force",
        ],
        threads: true,
        prints: true,
    },
    Case {
        args: &["import-npz", "x.npz", "--out", "o5.vectro", "--force"],
        threads: true,
        prints: true,
    },
    Case {
        args: &[
            "merge",
            "s0.vectro",
            "s1.vectro",
            "--out",
            "o6.vectro",
            "--force",
        ],
        threads: false,
        prints: true,
    },
    Case {
        args: &[
            "generate", "--rows", "100", "--dims", "8", "--out", "o7.npy", "--force",
        ],
        threads: true,
        prints: true,
    },
    Case {
        args: &["demo", "--rows", "500", "--dims", "16"],
        threads: true,
        prints: true,
    },
];

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_npy(&d.join("x.npy"), 3000, 32, &random_rows(3000, 32, 11));
    for args in [
        &["compress", "-q", "--in", "x.npy", "--out", "x.vectro"][..],
        &[
            "compress",
            "-q",
            "--in",
            "x.npy",
            "--chunk-rows",
            "500",
            "--shard",
            "0/2",
            "--out",
            "s0.vectro",
        ],
        &[
            "compress",
            "-q",
            "--in",
            "x.npy",
            "--chunk-rows",
            "500",
            "--shard",
            "1/2",
            "--out",
            "s1.vectro",
        ],
        &[
            "export", "-q", "x.vectro", "--format", "npz", "--out", "x.npz",
        ],
    ] {
        let o = Command::new(bin())
            .current_dir(d)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    }
    dir
}

fn run_in(dir: &Path, args: &[&str], out: Stdio, err: Stdio) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .output()
        .unwrap()
}

/// Never 101 (panic), 134 (abort) or a signal; `what` names the run.
fn documented(o: &Output, what: &str) -> i32 {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    let code = o
        .status
        .code()
        .unwrap_or_else(|| panic!("{what}: killed by a signal: {:?}", o.status));
    assert!(
        [0, 1, 2, 3, 4].contains(&code),
        "{what}: exit {code} is not a documented one: {err}"
    );
    code
}

#[test]
fn every_command_with_stdout_or_stderr_on_a_full_device() {
    let dir = setup();
    let d = dir.path();
    for c in CASES {
        let what = c.args.join(" ");
        // The baseline: it works.
        let o = run_in(d, c.args, Stdio::piped(), Stdio::piped());
        assert_eq!(documented(&o, &what), 0, "{what}: {}", stderr(&o));

        // stdout full: an I/O error naming stdout (exit 4), unless nothing goes there.
        let o = run_in(d, c.args, dev_full().into(), Stdio::piped());
        let want = if c.prints { 4 } else { 0 };
        assert_eq!(
            documented(&o, &format!("{what} >/dev/full")),
            want,
            "{what} >/dev/full: {}",
            stderr(&o)
        );
        if c.prints {
            let err = stderr(&o);
            assert!(
                err.contains("stdout") && err.contains("No space left"),
                "{what} >/dev/full: {err}"
            );
        }

        // stderr full: the progress and messages are lost, the work and the exit code
        // are not.
        let o = run_in(d, c.args, Stdio::piped(), dev_full().into());
        assert_eq!(documented(&o, &format!("{what} 2>/dev/full")), 0);

        // Both: stdout's error is the exit code, though it cannot be printed.
        let o = run_in(d, c.args, dev_full().into(), dev_full().into());
        assert_eq!(
            documented(&o, &format!("{what} >/dev/full 2>/dev/full")),
            want
        );

        // A failing run with stderr full keeps its own exit code (4: the input is missing).
        let missing: Vec<&str> = c
            .args
            .iter()
            .map(|a| match *a {
                "x.npy" => "missing.npy",
                "x.vectro" => "missing.vectro",
                "x.npz" => "missing.npz",
                "s0.vectro" => "missing.vectro",
                a => a,
            })
            .collect();
        if missing != c.args {
            let o = run_in(d, &missing, Stdio::piped(), dev_full().into());
            let what = missing.join(" ");
            assert_eq!(documented(&o, &format!("{what} 2>/dev/full")), 4, "{what}");
        }
    }
}

#[test]
fn every_command_with_threads_at_its_bounds() {
    let dir = setup();
    let d = dir.path();
    for c in CASES {
        for (n, want) in [("0", 0), ("1", 0), ("1024", 0), ("1025", 2)] {
            let mut args = c.args.to_vec();
            args.extend(["-q", "--threads", n]);
            let what = args.join(" ");
            let o = run_in(d, &args, Stdio::piped(), Stdio::piped());
            let code = documented(&o, &what);
            // Commands without --threads refuse the flag as a usage error.
            let want = if c.threads { want } else { 2 };
            assert_eq!(code, want, "{what}: {}", stderr(&o));
            if code == 2 {
                assert!(stderr(&o).contains("--threads"), "{what}: {}", stderr(&o));
            }
        }
    }
}

/// The command that sets `RLIMIT_NPROC` to 1 before running vectro: the process runs, but
/// the system refuses it any thread. Root is exempt from that limit, so as root the run
/// also drops, with `setpriv`, to a user id that no other process has (the limit counts
/// all of a user's threads). `None` if the tools (util-linux `prlimit`, `setpriv`) are
/// missing.
fn under_a_process_limit(dir: &Path) -> Option<Command> {
    let has = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has("prlimit") {
        return None;
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let root = unsafe { libc::getuid() } == 0;
    let mut cmd = Command::new("prlimit");
    cmd.current_dir(dir).arg("--nproc=1");
    if root {
        if !has("setpriv") {
            return None;
        }
        // nobody must be able to read the inputs and write the outputs.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let id = 40_000 + std::process::id() % 20_000;
        cmd.args([
            "setpriv",
            &format!("--reuid={id}"),
            &format!("--regid={id}"),
            "--clear-groups",
        ]);
    }
    cmd.arg(bin());
    Some(cmd)
}

/// `ulimit -u` (or a container's pids limit) reached: every command with `--threads` fails
/// with the same error, exit 4, naming the thread count and `--threads`, and leaves no file
/// at its final path.
#[test]
fn a_process_limit_is_one_clear_error_in_every_command() {
    let dir = setup();
    let d = dir.path();
    if under_a_process_limit(d).is_none() {
        eprintln!("SKIPPED: needs util-linux prlimit (and setpriv when run as root)");
        return;
    }
    let cases: Vec<Vec<&str>> = CASES
        .iter()
        // import-npz takes --threads but converts on the calling thread.
        .filter(|c| c.threads && c.args[0] != "import-npz")
        .map(|c| c.args.to_vec())
        .chain([vec![
            "compress",
            "--in",
            "x.npy",
            "--codec",
            "pq:m=4,nbits=4",
            "--out",
            "o8.vectro",
        ]])
        .collect();
    for args in cases {
        let what = args.join(" ");
        let o = under_a_process_limit(d)
            .unwrap()
            .args(&args)
            .args(["-q", "--threads", "8"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let code = documented(&o, &what);
        let err = stderr(&o);
        assert_eq!(code, 4, "{what}: {err}");
        assert!(
            err.contains("could not start 8 worker thread(s)") && err.contains("--threads"),
            "{what}: {err}"
        );
        assert!(
            !err.contains("panicked") && err.lines().next().unwrap().starts_with("vectro: error:"),
            "{what}: {err}"
        );
    }
    for name in [
        "o1.vectro",
        "o2.npy",
        "o3.vcb",
        "o4.jsonl",
        "o5.vectro",
        "o7.npy",
        "o8.vectro",
    ] {
        assert!(!d.join(name).exists(), "{name} was written");
    }
}

/// Every command that writes a file, when the disk refuses a write (the file-size limit,
/// which fails a write as a full disk does, with the signal it sends ignored): exit 4, one
/// error line naming the output or its temporary file (never a stray line from a library),
/// and nothing at the final path.
#[test]
fn every_writer_on_a_disk_that_refuses_writes() {
    let dir = setup();
    let d = dir.path();
    // 64 KiB: each output below is larger.
    let limited = |args: &[&str]| {
        let mut c = Command::new("sh");
        c.current_dir(d)
            .arg("-c")
            .arg("trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"")
            .arg(bin())
            .args(args)
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    let cases: &[(&[&str], &str)] = &[
        (
            &["compress", "-q", "--in", "x.npy", "--out", "o.vectro"],
            "o.vectro",
        ),
        (
            &[
                "compress", "-q", "--in", "x.npy", "--codec", "f16", "--out", "o.vectro",
            ],
            "o.vectro",
        ),
        (
            &["decompress", "-q", "--in", "x.vectro", "--out", "o.npy"],
            "o.npy",
        ),
        (
            &[
                "decompress",
                "-q",
                "--in",
                "x.vectro",
                "--dtype",
                "f16",
                "--out",
                "o.npy",
            ],
            "o.npy",
        ),
        (
            &[
                "export", "-q", "x.vectro", "--format", "jsonl", "--out", "o.jsonl",
            ],
            "o.jsonl",
        ),
        (
            &[
                "export", "-q", "x.vectro", "--format", "npz", "--out", "o.npz",
            ],
            "o.npz",
        ),
        (
            &["get", "x.vectro", "--rows", "0..3000", "--out", "o.npy"],
            "o.npy",
        ),
        (
            &[
                "generate", "-q", "--rows", "3000", "--dims", "32", "--out", "o.npy",
            ],
            "o.npy",
        ),
        (
            &["import-npz", "-q", "x.npz", "--out", "o.vectro"],
            "o.vectro",
        ),
        (
            &["merge", "-q", "s0.vectro", "s1.vectro", "--out", "o.vectro"],
            "o.vectro",
        ),
    ];
    for (args, target) in cases {
        let o = limited(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(documented(&o, &format!("{args:?}")), 4, "{args:?}: {err}");
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| !l.starts_with("vectro: note"))
            .collect();
        assert!(
            errors[0].starts_with("vectro: error: ")
                && errors[0].contains(target.trim_start_matches('o')),
            "{args:?}: {err}"
        );
        assert!(errors[0].contains("File too large"), "{args:?}: {err}");
        // A resumable compress also says where its partial is; nothing else is printed.
        assert!(
            errors[1..].iter().all(|l| l.contains("--resume")),
            "{args:?}: stray lines: {err}"
        );
        assert!(!d.join(target).exists(), "{args:?}: {target} exists");
        for e in std::fs::read_dir(d).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.starts_with(".o.") {
                std::fs::remove_file(d.join(&name)).unwrap();
            }
        }
    }
}
