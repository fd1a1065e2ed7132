use std::sync::atomic::AtomicBool;
#[cfg(feature = "test-hooks")]
use std::time::Duration;

use vectro::codec::auto::Target;
use vectro::output::{Durability, partial_path};
use vectro::pipeline::shard::Shard;
use vectro::{CompressOptions, CompressSummary, ErrorKind, Progress};

use super::{human_bytes, print_json};
use crate::cli::CompressArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: CompressArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let input = a.input.clone().expect("resolved");
    let a_output = a.output.clone().expect("resolved");
    check_target(&a)?;
    let shard = a
        .shard
        .as_deref()
        .map(|s| Shard::resolve(s, a.shards, |k| std::env::var(k).ok()))
        .transpose()?;
    if shard.is_none() && a_output.to_string_lossy().contains("{shard}") {
        // Without --shard nothing replaces it: the file was named literally `x-{shard}...`.
        return Err(vectro::Error::Config(format!(
            "--out {} holds {{shard}}, which only --shard K/N fills in: pass --shard, or name \
             the output plainly",
            a_output.display()
        ))
        .into());
    }
    let output = shard.map_or(a_output.clone(), |s| s.expand_output(&a_output));
    let opts = CompressOptions {
        codec: a.codec,
        rescore: a.rescore,
        threads: a.common.threads,
        chunk_rows: a.chunk_rows,
        overwrite: a.force,
        durability: if a.no_fsync {
            Durability::None
        } else {
            Durability::Fsync
        },
        shard,
        zstd: a.zstd,
        target: match (a.min_cosine, a.min_recall) {
            (Some(x), _) => Some(Target::MinCosine(x)),
            (_, Some(x)) => Some(Target::MinRecall(x)),
            _ => None,
        },
        sample: a.sample,
        input: vectro::source::InputOptions {
            column: a.column.clone(),
        },
        resume: a.resume,
        keep_partial: !a.no_resume_file,
        codebook: a.codebook,
        train_rows: a.train_rows,
        ids: a.ids,
        id_column: a.id_column,
        payload_columns: a.payload_columns.unwrap_or_default(),
    };
    let bar = Bar::new(a.common.quiet || a.common.json, "compress");
    #[cfg(feature = "test-hooks")]
    let slow = Throttle::from_env(&bar);
    #[cfg(feature = "test-hooks")]
    let progress: &dyn Progress = slow.as_ref().map_or(&bar, |t| t as &dyn Progress);
    #[cfg(not(feature = "test-hooks"))]
    let progress: &dyn Progress = &bar;
    let s = match vectro::compress(&input, &output, &opts, progress, cancel) {
        Ok(s) => s,
        Err(e) if kept_partial(&e, &output, opts.keep_partial) => {
            // Print the error here, so that the hint on how to continue comes after it.
            let err = anyhow::Error::from(e);
            errln!(
                "vectro: error: {}",
                crate::escape_controls(&err.to_string())
            );
            errln!(
                "vectro: the complete chunks are kept in {}; rerun the same command with --resume to continue",
                partial_path(&output).display()
            );
            return Ok(exit_codes::for_error(&err));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(why) = &s.partial_discarded {
        noteln!(
            "vectro: note: started afresh: the partial output {} was not reused: {why}",
            partial_path(&output).display()
        );
    } else if s.resumed_rows > 0 && !a.common.json {
        noteln!(
            "vectro: resumed: kept {} rows from the interrupted run",
            s.resumed_rows
        );
    }
    // With --out -, stdout carries the container: the summary goes to stderr.
    if output.as_os_str() == "-" {
        noteln!("{}", summary_line(&s));
    } else if a.common.json {
        print_json(&s)?;
    } else {
        outln!("{}", summary_line(&s));
    }
    Ok(exit_codes::OK)
}

/// The checks of `--codec auto`'s target that need no file, made before any file is
/// touched: a wrong flag is reported before an existing output is.
fn check_target(a: &CompressArgs) -> Result<(), vectro::Error> {
    let auto = a.codec == Some(vectro::codec::CodecRequest::Auto);
    let gate = a.min_cosine.or(a.min_recall);
    if !auto && gate.is_some() {
        return Err(vectro::Error::Config(
            "--min-cosine and --min-recall only apply with --codec auto".into(),
        ));
    }
    if auto && gate.is_none() {
        return Err(vectro::Error::Config(
            "--codec auto needs a target: --min-cosine X or --min-recall X".into(),
        ));
    }
    if let Some(t) = gate.filter(|t| !(*t > 0.0 && *t <= 1.0)) {
        return Err(vectro::Error::Config(format!(
            "the auto target must be in (0, 1], got {t}"
        )));
    }
    if auto && a.sample == 0 {
        return Err(vectro::Error::Config("--sample must be at least 1".into()));
    }
    Ok(())
}

/// Whether a failed run left a partial output that `--resume` can continue.
fn kept_partial(e: &vectro::Error, output: &std::path::Path, keep: bool) -> bool {
    keep && matches!(
        e.kind(),
        ErrorKind::Io | ErrorKind::Cancelled | ErrorKind::Internal
    ) && !matches!(
        e,
        vectro::Error::Locked { .. } | vectro::Error::OutputExists(_)
    ) && partial_path(output).exists()
}

pub fn summary_line(s: &CompressSummary) -> String {
    if s.already_complete {
        return match &s.shard {
            Some(k) => format!(
                "shard {k} is already complete and verified: {} ({} rows); nothing to do",
                s.output.display(),
                s.rows
            ),
            None => format!(
                "{} is already complete and verified ({} rows x {} dims with {}, from this input); \
                 left unchanged, nothing to do",
                s.output.display(),
                s.rows,
                s.dims,
                s.codec
            ),
        };
    }
    let shard = s
        .shard
        .as_ref()
        .map_or(String::new(), |k| format!(" (shard {k})"));
    format!(
        "compressed {} rows x {} dims with {}{}{shard}: {} -> {} ({:.2}x) in {:.2} s, {:.0} MB/s",
        s.rows,
        s.dims,
        s.codec,
        s.zstd.map(|l| format!(" + zstd {l}")).unwrap_or_default(),
        human_bytes(s.input_bytes),
        human_bytes(s.output_bytes),
        s.ratio,
        s.seconds,
        s.mb_per_s
    )
}

/// A test hook: `VECTRO_TEST_SLOW_CHUNK_MS=n` sleeps n ms after each chunk is written, so
/// that tests can interrupt a run of a tiny input midway. Only in the test build (feature
/// `test-hooks`), never in a release binary.
#[cfg(feature = "test-hooks")]
struct Throttle<'a> {
    inner: &'a dyn Progress,
    pause: Duration,
}

#[cfg(feature = "test-hooks")]
impl<'a> Throttle<'a> {
    fn from_env(inner: &'a dyn Progress) -> Option<Throttle<'a>> {
        let ms = std::env::var("VECTRO_TEST_SLOW_CHUNK_MS")
            .ok()?
            .parse()
            .ok()?;
        Some(Throttle {
            inner,
            pause: Duration::from_millis(ms),
        })
    }
}

#[cfg(feature = "test-hooks")]
impl Progress for Throttle<'_> {
    fn begin(&self, rows: u64, bytes: u64) {
        self.inner.begin(rows, bytes);
    }

    fn advance(&self, rows: u64, bytes: u64) {
        self.inner.advance(rows, bytes);
        std::thread::sleep(self.pause);
    }

    fn finish(&self) {
        self.inner.finish();
    }

    fn note(&self, msg: &str) {
        self.inner.note(msg);
    }

    fn stage(&self, what: &str, steps: u64) {
        self.inner.stage(what, steps);
    }

    fn step(&self, n: u64) {
        self.inner.step(n);
    }
}
