//! Choosing the codec of a compress run: a frozen `--codebook`, the codebook an earlier
//! run of the same settings left (a `--resume` partial, a finished shard), training, the
//! `--codec auto` measurement, or the codec `--codec` names.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::Progress;
use super::options::CompressOptions;
use crate::codec::auto::{self, AutoReport};
use crate::codec::{self, Codec, CodecRequest};
use crate::error::{Error, Result};
use crate::format::Header;
use crate::output::dest::Dest;
use crate::source::Input;

/// What a run's codec starts from: a frozen `--codebook`, if any, and the training recipe
/// the header records.
pub(super) struct Recipe {
    frozen: Option<Box<dyn Codec>>,
    /// What training depends on besides the input and vectro's version (metadata key
    /// `train`): with `--resume`, an earlier run's codebook can then stand in for a new
    /// one. A frozen `--codebook` records the recipe it was trained with, so that its
    /// header is the one training here would write.
    pub(super) recipe: Option<String>,
}

impl Recipe {
    /// Reads the `--codebook`, if any, or works out the recipe of `--codec`.
    pub(super) fn new(opts: &CompressOptions, dims: usize) -> Result<Recipe> {
        Ok(match &opts.codebook {
            Some(path) => {
                let (codec, recipe) = frozen_codec(path, opts, dims)?;
                Recipe {
                    frozen: Some(codec),
                    recipe,
                }
            }
            None => Recipe {
                frozen: None,
                recipe: match &opts.codec {
                    Some(request) => request.training_recipe(dims, opts.train_rows)?,
                    None => None,
                },
            },
        })
    }
}

/// The codec chosen, and how.
pub(super) struct Choice {
    /// The codec to encode with.
    pub(super) codec: Box<dyn Codec>,
    /// What `--codec auto` measured.
    pub(super) auto: Option<AutoReport>,
    /// The trained codec was taken from an earlier run's output.
    pub(super) training_reused: bool,
    /// `--codec auto` chose a trained codec: its training recipe, which the header
    /// records as a `--codebook` of that codebook would.
    pub(super) auto_recipe: Option<String>,
}

/// What the choice looks at besides the recipe.
pub(super) struct Choose<'a> {
    pub(super) source: &'a Input,
    pub(super) opts: &'a CompressOptions,
    /// The output as opened before the choice; `None` when an existing one is kept.
    pub(super) early: Option<&'a Dest>,
    pub(super) output: &'a Path,
    /// The header this run writes with a given codec.
    pub(super) header_for: &'a dyn Fn(&dyn Codec) -> Header,
    pub(super) threads: usize,
    pub(super) progress: &'a dyn Progress,
    pub(super) cancel: &'a AtomicBool,
}

/// Chooses the codec: an earlier run's codebook of exactly these settings, else the
/// frozen `--codebook`, else (keeping an existing output) that output's codec for the
/// completeness check to judge, else training, `--codec auto` or `--codec` itself.
pub(super) fn choose(c: Choose<'_>, recipe: Recipe) -> Result<Choice> {
    let Choose {
        source,
        opts,
        early,
        output,
        header_for,
        threads,
        progress,
        cancel,
    } = c;
    // Training takes minutes; a cron job's --resume rerun, or a retried shard, should not
    // repeat it. The file an earlier run left: the partial output a resume continues, or
    // with an existing output kept, the finished one.
    let from = match early {
        Some(Dest::File(o)) => o.tmp_path(),
        _ => output,
    };
    let found = match early {
        _ if recipe.frozen.is_some() || recipe.recipe.is_none() => None,
        Some(Dest::File(o)) if opts.resume => earlier_codec(from, o.file()),
        Some(_) => None,
        None => std::fs::File::open(from)
            .ok()
            .and_then(|f| earlier_codec(from, &f)),
    };
    // Reused only if the file's header is exactly the one this run writes with that
    // codebook: the same recipe, input, vectro and settings. Training is deterministic,
    // so it is then the codebook training again would give.
    let (earlier, stale) = match found {
        Some((c, old)) if header_for(c.as_ref()) == old => (Some(c), None),
        Some((c, _)) => (None, Some(c)),
        None => (None, None),
    };
    let training_reused = earlier.is_some();
    if training_reused {
        progress.note(&format!(
            "{} holds a codebook trained with these settings on this input by this vectro; \
             reusing it instead of training again",
            from.display()
        ));
    }
    let (codec, auto, auto_recipe) = match (earlier, recipe.frozen, stale) {
        (Some(c), _, _) | (None, Some(c), _) => (c, None, None),
        // A finished output of other settings: the completeness check says what differs,
        // and training first would not change its answer.
        (None, None, Some(c)) if early.is_none() => (c, None, None),
        (None, None, _) => match &opts.codec {
            Some(request) if request.is_trained() => (
                train_codec(request, source, opts, threads, progress, cancel)?,
                None,
                None,
            ),
            request => pick_codec(request.as_ref(), source, opts, threads, progress, cancel)?,
        },
    };
    Ok(Choice {
        codec,
        auto,
        training_reused,
        auto_recipe,
    })
}

/// The trained codec recorded in an earlier run's output `file` (at `path`), with that
/// file's header. Anything unreadable is `None`: the caller then trains.
fn earlier_codec(path: &Path, file: &std::fs::File) -> Option<(Box<dyn Codec>, Header)> {
    // SAFETY: read-only. The partial output is under this run's exclusive lock; another
    // process rewriting a finished output while we read is outside what we can guard
    // against (as for any mmap reader), and every length is checked against the map's size.
    let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
    let (old, _) = Header::decode(path, &map).ok()?;
    // A tiered file's trained codec is its search tier (`--codec`; `--rescore` needs none).
    let spec = old.tiers.first().unwrap_or(&old.codec);
    let codec = codec::from_spec(spec.id, &spec.params, old.dims as usize).ok()?;
    Some((codec, old))
}

/// The codec `request` asks for (`None`: int8); for `auto`, the smallest that meets the
/// target over the whole input (each line of its report also goes to `progress.note`).
/// With a trained codec chosen, its training recipe (the header's `train` key).
type Picked = (Box<dyn Codec>, Option<AutoReport>, Option<String>);

fn pick_codec(
    request: Option<&CodecRequest>,
    source: &Input,
    opts: &CompressOptions,
    threads: usize,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Picked> {
    let dims = source.header().dims as usize;
    if request != Some(&CodecRequest::Auto) {
        if opts.target.is_some() {
            return Err(Error::Config(
                "--min-cosine and --min-recall only apply with --codec auto".into(),
            ));
        }
        let int8 = CodecRequest::default();
        return Ok((request.unwrap_or(&int8).build(dims)?, None, None));
    }
    let Some(target) = opts.target else {
        return Err(Error::Config(
            "--codec auto needs a target: --min-cosine X or --min-recall X".into(),
        ));
    };
    if opts.sample == 0 {
        return Err(Error::Config("--sample must be at least 1".into()));
    }
    let ids = auto::sample_ids(source.header().rows, opts.sample as u64, auto::SAMPLE_SEED);
    let mut sample = vec![0f32; ids.len() * dims];
    source.read_rows(&ids, &mut sample)?;
    let mut report = auto::choose(&sample, dims, target)?;
    // Trained candidates: each trained once, on rows drawn as `vectro train --train-rows N`
    // draws them (so its codebook is the one that command writes), unless a candidate no
    // bigger already clearly meets the target.
    let train_rows = auto::train_rows(opts.train_rows, opts.sample as u64, source.header().rows);
    let mut trained: Vec<(String, Box<dyn Codec>)> = Vec::new();
    let pool = crate::par::pool(threads)?;
    let train_opts = codec::TrainOptions {
        train_rows: Some(train_rows),
        cancel: Some(cancel),
    };
    for (name, row_bytes) in auto::trained_candidates(dims) {
        if let Some(why) = report.skip_training(row_bytes) {
            report.add_unmeasured(&name, row_bytes as f64, auto::Unmeasured::Skipped(why));
            continue;
        }
        progress.note(&format!(
            "auto: training {name} on {train_rows} sampled rows"
        ));
        let quiet = TrainingOnly(progress);
        match pool.install(|| codec::train(&name, source, &train_opts, &quiet)) {
            Ok(t) => {
                let c = t.into_codec();
                report.measure_on_sample(&name, c.as_ref(), &sample, dims, true);
                trained.push((name, c));
            }
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => report.add_unmeasured(
                &name,
                row_bytes as f64,
                auto::Unmeasured::Failed(e.to_string()),
            ),
        }
    }
    report.train_rows = if trained.is_empty() { 0 } else { train_rows };
    report.settle();
    // The sample overestimates recall on the whole file: it only screens. The candidates
    // it does not rule out are measured over every row, the trained ones among them.
    let names = report.screened();
    let mut codecs: Vec<Box<dyn Codec>> = Vec::with_capacity(names.len());
    for n in &names {
        codecs.push(match trained.iter().position(|(t, _)| t == n) {
            Some(i) => trained.swap_remove(i).1,
            None => codec::parse(n, dims)?,
        });
    }
    let refs: Vec<&dyn Codec> = codecs.iter().map(|c| c.as_ref()).collect();
    let whole = crate::eval::whole::WholeOptions {
        k: auto::K,
        queries: auto::WHOLE_QUERIES,
        seed: auto::SAMPLE_SEED ^ 0x5eed,
        metric: crate::eval::Metric::Cos,
        threads,
        chunk_rows: crate::encode::default_chunk_rows(dims as u64) as u64,
    };
    progress.note(&format!(
        "auto: measuring {} over every row of the input",
        names.join(", ")
    ));
    let measured = crate::eval::whole::measure(source, &refs, &whole, &AsStage(progress), cancel)?;
    let queries = auto::WHOLE_QUERIES.min(source.header().rows as usize);
    let pairs: Vec<_> = names.iter().cloned().zip(measured).collect();
    report.decide(&pairs, source.header().rows, queries);
    for line in report.lines() {
        progress.note(&line);
    }
    // The chosen codec is the one measured: a trained one is not trained again.
    let chosen = match names.iter().position(|n| *n == report.chosen) {
        Some(i) => codecs.swap_remove(i),
        None => codec::parse(&report.chosen, dims)?,
    };
    let recipe = codec::training_recipe(&report.chosen, dims, Some(train_rows))?;
    Ok((chosen, Some(report), recipe))
}

/// The whole-input pass drawn as a stage of the run (rows measured), not as its rows: the
/// encode's rate and ETA count from the encode's own start.
struct AsStage<'a>(&'a dyn Progress);

impl Progress for AsStage<'_> {
    fn begin(&self, rows: u64, _bytes: u64) {
        self.0.stage("rows measured (auto)", rows);
    }

    fn advance(&self, rows: u64, _bytes: u64) {
        self.0.step(rows);
    }
}

/// Training's progress (its stages and steps) without its notes: a warning about a small
/// sample is the auto report's business, which says what was trained on how many rows.
struct TrainingOnly<'a>(&'a dyn Progress);

impl Progress for TrainingOnly<'_> {
    fn stage(&self, what: &str, steps: u64) {
        self.0.stage(what, steps);
    }

    fn step(&self, n: u64) {
        self.0.step(n);
    }
}

/// The codec of a frozen `--codebook`, checked against `--codec` if one is given, and the
/// training recipe its file records.
fn frozen_codec(
    path: &Path,
    opts: &CompressOptions,
    dims: usize,
) -> Result<(Box<dyn Codec>, Option<String>)> {
    let (trained, recipe) = super::train::read_codebook(path, dims)?;
    // No --codec: the codebook's own.
    if let Some(asked) = &opts.codec {
        trained.check_fits(path, asked)?;
    }
    Ok((trained.into_codec(), recipe))
}

/// `--codec` (pq, opq, binary-itq) trained on a sample of the input, on exactly
/// `threads` threads.
fn train_codec(
    request: &CodecRequest,
    source: &Input,
    opts: &CompressOptions,
    threads: usize,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Box<dyn Codec>> {
    let pool = crate::par::pool(threads)?;
    let train = codec::TrainOptions {
        train_rows: opts.train_rows,
        cancel: Some(cancel),
    };
    pool.install(|| request.train(source, &train, progress))
}
