//! `report`: what compression did to a data set, as one self-contained HTML page.
//!
//! For each container (or each codec tried on a sample, `--codecs`), one streamed
//! [`evaluate_observed`] pass over the original and the container computes eval's numbers
//! and, in the same pass, what the figures need ([`stats`]): histograms of each row's
//! `1 − cosine` and error norm, the error per dimension, and a fixed sample of rows whose
//! originals and reconstructions are projected on the sample's first two principal axes
//! ([`pca`]). Memory is eval's (the chunks in flight, the queries' heaps) plus the sample
//! and a few hundred counters, never proportional to the rows. The page ([`html`]) draws
//! every figure as inline SVG ([`svg`]), with the numbers behind it in a table; the
//! figures are also written as standalone SVG files.

pub mod html;
pub mod pca;
pub mod png;
pub mod stats;
pub mod svg;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::codec::CodecRequest;
use crate::error::{Error, Result};
use crate::eval::{EvalOptions, EvalReport, Metric, Observer, evaluate_observed};
use crate::format::Container;
use crate::output::Durability;
use crate::pipeline::{CompressOptions, compress};
use crate::progress::Progress;
use crate::source::reader::Input;
use stats::{Bar, Stats};

/// How many bars a histogram is drawn with, at most.
pub const HIST_BARS: usize = 40;
/// How many true neighbours of each query the movement figure follows.
pub const MOVEMENT_TOP: usize = 10;

/// Settings of a report.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The k of the recall plotted against bytes per vector.
    pub k: usize,
    /// Rows of the original sampled as queries.
    pub sample_queries: usize,
    /// Seed of the query sample, the PCA sample and the codecs' training.
    pub seed: u64,
    /// Ranking metric of the search.
    pub metric: Metric,
    /// Found candidates re-ranked with the original floats for the rescored recall; also
    /// how deep the compressed ranking is followed in the movement figure.
    pub rerank: usize,
    /// Worker threads; 0 means the available cores.
    pub threads: usize,
    /// Rows drawn in the PCA scatter.
    pub pca_sample: usize,
    /// Queries shown in the movement figure.
    pub movement_queries: usize,
    /// With codecs to try: the first rows of the original they are tried on.
    pub sample_rows: u64,
    /// Other systems' points for the recall-versus-bytes figure.
    pub peers: Vec<Peer>,
    /// The command that made the report, shown on the page.
    pub command: String,
    /// How to read the original beyond its path (`--column`).
    pub input: crate::source::InputOptions,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            k: 10,
            sample_queries: 100,
            seed: 42,
            metric: Metric::Cos,
            rerank: 100,
            threads: 0,
            pca_sample: 500,
            movement_queries: 5,
            sample_rows: 100_000,
            peers: Vec::new(),
            command: String::new(),
            input: crate::source::InputOptions::default(),
        }
    }
}

/// Another system's point on the recall-versus-bytes figure (the `--peers` file is a JSON
/// array of these; see docs/report.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its label, e.g. `faiss IVF-PQ m=48`.
    pub name: String,
    /// Bytes per vector of its codes.
    pub bytes_per_vector: f64,
    /// Its recall@k, 0 to 1.
    pub recall: f64,
    /// The k of that recall; when given it must be the report's.
    #[serde(default)]
    pub k: Option<usize>,
}

/// One container's (or codec's) part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The container's file name, or the codec string tried.
    pub label: String,
    /// The container measured (a temporary one for a codec tried on a sample).
    pub container: String,
    /// Its codec, with parameters.
    pub codec: String,
    /// Bytes of its chunks per vector: the codes plus each chunk's header and checksum;
    /// the file header, codebook and index are left out, as they do not grow with the rows.
    pub bytes_per_vector: f64,
    /// The whole file's bytes per vector.
    pub file_bytes_per_vector: f64,
    /// Recall@k of the search over the compressed data, at the report's k.
    pub recall: f64,
    /// The same, re-ranked with the original floats.
    pub rescored_recall: f64,
    /// Everything `vectro eval` measures, from the same pass.
    pub eval: EvalReport,
    /// Rows per bar of `1 − cosine(original, reconstruction)`.
    pub cosine_hist: Vec<Bar>,
    /// Rows per bar of the error norm `‖original − reconstruction‖`.
    pub error_norm_hist: Vec<Bar>,
    /// Mean error norm.
    pub error_norm_mean: f64,
    /// Largest error norm.
    pub error_norm_max: f64,
    /// Error per dimension.
    pub per_dim: PerDim,
    /// The PCA scatter.
    pub pca: PcaScatter,
    /// How far each sampled query's true top neighbours moved in the compressed ranking.
    pub movement: Vec<Movement>,
}

/// The error of each dimension over all rows.
#[derive(Debug, Clone, Serialize)]
pub struct PerDim {
    /// Root mean square error per dimension.
    pub rms: Vec<f64>,
    /// Mean absolute error per dimension.
    pub mean_abs: Vec<f64>,
    /// The dimensions of largest RMS error, worst first (at most 10).
    pub worst: Vec<usize>,
}

/// A sample of rows, originals and reconstructions, on the originals' two principal axes.
#[derive(Debug, Clone, Serialize)]
pub struct PcaScatter {
    /// The rows drawn, in order.
    pub rows: Vec<u64>,
    /// Fraction of the sample's variance along each axis.
    pub explained: [f64; 2],
    /// Each original's coordinates.
    pub original: Vec<[f64; 2]>,
    /// Each reconstruction's coordinates on the same axes.
    pub reconstruction: Vec<[f64; 2]>,
    /// Mean distance between an original and its reconstruction in the plane.
    pub mean_shift: f64,
}

/// Where one query's true top neighbours landed in the compressed ranking.
#[derive(Debug, Clone, Serialize)]
pub struct Movement {
    /// The row the query was sampled from.
    pub query_row: Option<u64>,
    /// How deep the compressed ranking was followed.
    pub depth: usize,
    /// For the true neighbour of rank `i + 1`: its rank in the compressed ranking (1 is
    /// first), `None` if it is not among the first `depth`.
    pub ranks: Vec<Option<usize>>,
}

/// The whole report: what the page shows and `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The command that made it.
    pub command: String,
    /// The original.
    pub original: String,
    /// Rows compared (the sample's, with codecs tried on a sample).
    pub rows: u64,
    /// Rows of the original file.
    pub original_rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// The k of the plotted recall.
    pub k: usize,
    /// Ranking metric.
    pub metric: Metric,
    /// Queries sampled.
    pub queries: usize,
    /// Candidates re-ranked for the rescored recall.
    pub rerank: usize,
    /// One per container or codec, in the order given.
    pub entries: Vec<Entry>,
    /// The peers' points.
    pub peers: Vec<Peer>,
    /// Wall time of the whole report.
    pub seconds: f64,
    /// Peak resident set size of this process, bytes.
    pub peak_rss_bytes: u64,
}

/// Reads a `--peers` JSON file: an array of [`Peer`].
///
/// # Errors
/// [`Error::Io`] if it cannot be read; [`Error::Mismatch`] naming the file and the entry if
/// it is not such an array, a number is out of range or a `k` is not `k`.
pub fn read_peers(path: &Path, k: usize) -> Result<Vec<Peer>> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, "reading", e))?;
    parse_peers(&text, path, k)
}

/// Parses peers as [`read_peers`] does, `path` naming where the JSON came from.
///
/// # Errors
/// As [`read_peers`].
pub fn parse_peers(text: &[u8], path: &Path, k: usize) -> Result<Vec<Peer>> {
    let peers: Vec<Peer> = serde_json::from_slice(text).map_err(|e| {
        Error::Mismatch(format!(
            "{}: not a peers file: {e}; expected a JSON array of \
             {{\"name\", \"bytes_per_vector\", \"recall\", optional \"k\"}} (docs/report.md)",
            path.display()
        ))
    })?;
    for (i, p) in peers.iter().enumerate() {
        let bad = if !(p.bytes_per_vector.is_finite() && p.bytes_per_vector > 0.0) {
            Some("bytes_per_vector must be a positive number")
        } else if !(0.0..=1.0).contains(&p.recall) {
            Some("recall must be between 0 and 1")
        } else if p.k.is_some_and(|pk| pk != k) {
            Some("k differs from the report's --k")
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(Error::Mismatch(format!(
                "{}: peer {i} ({:?}): {why}",
                path.display(),
                p.name
            )));
        }
    }
    Ok(peers)
}

/// Where a report is written: the page, and optionally each figure as an SVG file (and a
/// PNG of it).
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The HTML page.
    pub html: PathBuf,
    /// A directory for the standalone SVG figures (created if missing).
    pub svg_dir: Option<PathBuf>,
    /// Also write each figure of `svg_dir` as a PNG beside its SVG (`X.svg` and `X.png`).
    pub png: bool,
    /// Replace existing files.
    pub overwrite: bool,
}

impl Outputs {
    /// The page's default path: the first container's with `.report.html` in place of its
    /// extension (`x.vectro` → `x.report.html`, which `vectro serve` links to), else the
    /// original's.
    pub fn default_html(orig: &Path, containers: &[PathBuf]) -> PathBuf {
        containers
            .first()
            .map_or(orig, |c| c.as_path())
            .with_extension("report.html")
    }

    /// The figure files for entries labelled `labels`, in the order [`svg::all`] gives
    /// them: each SVG, followed by its PNG when [`Outputs::png`] is set.
    pub fn svg_paths(&self, labels: &[String]) -> Vec<PathBuf> {
        let Some(dir) = &self.svg_dir else {
            return Vec::new();
        };
        let mut stems = vec!["recall_vs_bytes".to_string()];
        for (i, l) in labels.iter().enumerate() {
            let stem = svg::entry_stem(i, l);
            for f in svg::ENTRY_FIGURES {
                stems.push(format!("{stem}-{f}"));
            }
        }
        let mut v = Vec::new();
        for s in stems {
            v.push(dir.join(format!("{s}.svg")));
            if self.png {
                v.push(dir.join(format!("{s}.png")));
            }
        }
        v
    }

    /// Checks up front, before the long passes, that every output can be written.
    ///
    /// # Errors
    /// As [`crate::output::check_target`].
    pub fn check(&self, labels: &[String]) -> Result<()> {
        crate::output::check_target(&self.html, self.overwrite)?;
        for p in self.svg_paths(labels) {
            crate::output::check_target(&p, self.overwrite)?;
        }
        Ok(())
    }

    /// Writes the SVG figures (and their PNGs), then the page, each through a temporary
    /// file renamed into place.
    ///
    /// # Errors
    /// As [`crate::output::write_file`]; [`Error::Io`] creating the SVG directory.
    pub fn write(&self, r: &Report) -> Result<()> {
        if let Some(dir) = &self.svg_dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating", e))?;
            for (stem, text) in svg::all(r, true) {
                let p = dir.join(format!("{stem}.svg"));
                crate::output::write_file(&p, text.as_bytes(), self.overwrite)?;
                if self.png {
                    let p = dir.join(format!("{stem}.png"));
                    let png = png::render(&text, &stem)?;
                    crate::output::write_file(&p, &png, self.overwrite)?;
                }
            }
        }
        crate::output::write_file(&self.html, html::render(r).as_bytes(), self.overwrite)
    }
}

/// The labels of a report's entries: the containers' file names, or the codec strings.
pub fn labels(containers: &[PathBuf], codecs: &[String]) -> Vec<String> {
    if containers.is_empty() {
        return codecs.to_vec();
    }
    containers.iter().map(|c| label_of(c)).collect()
}

fn label_of(c: &Path) -> String {
    c.file_name().map_or_else(
        || c.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Reports on `containers`, each compressed from `orig`.
///
/// # Errors
/// As [`crate::eval::evaluate`] for each container (shapes that differ name both files);
/// [`Error::Config`] with no container or an invalid option.
pub fn report(
    orig: &Path,
    containers: &[PathBuf],
    opts: &ReportOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Report> {
    let start = Instant::now();
    check_options(opts)?;
    if containers.is_empty() {
        return Err(Error::Config(
            "report needs one or more containers, or codecs to try".into(),
        ));
    }
    let src = Input::open_file(orig, &opts.input)?;
    let h = src.header();
    drop(src);
    // Every container is opened, and its shape checked, before the first long pass.
    for c in containers {
        let c = Container::open(c)?;
        if (c.rows(), c.dims() as u64) != (h.rows, h.dims) {
            crate::eval::check_shapes(
                orig,
                c.path(),
                (h.rows, h.dims),
                (c.rows(), c.dims() as u64),
            )?;
        }
    }
    let entries = containers
        .iter()
        .map(|c| entry(orig, c, label_of(c), opts, progress, cancel))
        .collect::<Result<Vec<_>>>()?;
    Ok(finish(orig, h.rows, entries, opts, start))
}

/// Tries each codec of `codecs` on the first [`ReportOptions::sample_rows`] rows of `orig`:
/// each is compressed into a temporary container, which is then reported on as
/// [`report`] does.
///
/// # Errors
/// [`Error::Config`] for an unknown codec (before any work); as [`crate::compress`] and
/// [`report`].
pub fn report_codecs(
    orig: &Path,
    codecs: &[String],
    opts: &ReportOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Report> {
    let start = Instant::now();
    check_options(opts)?;
    if codecs.is_empty() {
        return Err(Error::Config("--codecs needs one or more codecs".into()));
    }
    let requests = codecs
        .iter()
        .map(|c| {
            let r: CodecRequest = c.parse()?;
            if r.name() == "auto" {
                return Err(Error::Config(
                    "report lists codecs side by side: leave auto out of --codecs".into(),
                ));
            }
            Ok(r)
        })
        .collect::<Result<Vec<_>>>()?;
    let src = Input::open_file(orig, &opts.input)?;
    let h = src.header();
    let dir = tempfile::Builder::new()
        .prefix(".vectro-report-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), "creating a temporary directory", e))?;
    let rows = opts.sample_rows.max(1).min(h.rows);
    let (sample, sample_opts) = if rows == h.rows {
        (orig.to_path_buf(), opts.input.clone())
    } else {
        let p = dir.path().join("sample.npy");
        write_head(&src, rows, &p)?;
        (p, crate::source::InputOptions::default())
    };
    drop(src);
    let measure = ReportOptions {
        input: sample_opts.clone(),
        ..opts.clone()
    };
    let mut entries = Vec::new();
    for (i, (name, req)) in codecs.iter().zip(requests).enumerate() {
        let out = dir.path().join(format!("{i}.vectro"));
        let copts = CompressOptions {
            codec: Some(req),
            threads: opts.threads,
            durability: Durability::None,
            input: sample_opts.clone(),
            ..CompressOptions::default()
        };
        compress(&sample, &out, &copts, progress, cancel)?;
        let mut e = entry(&sample, &out, name.clone(), &measure, progress, cancel)?;
        e.container = format!("(temporary, {name} on the first {rows} rows)");
        entries.push(e);
    }
    let mut r = finish(orig, rows, entries, opts, start);
    r.original_rows = h.rows;
    Ok(r)
}

fn check_options(opts: &ReportOptions) -> Result<()> {
    if opts.k == 0 {
        return Err(Error::Config("--k must be at least 1".into()));
    }
    Ok(())
}

/// The first `rows` rows of `src` as a float32 `.npy` at `path`, a block at a time.
fn write_head(src: &Input, rows: u64, path: &Path) -> Result<()> {
    use std::io::Write;
    let d = src.header().dims;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, "creating", e))?;
    let mut w = std::io::BufWriter::new(file);
    let io = |e| Error::io(path, "writing", e);
    w.write_all(&crate::npy::write_header(rows, d))
        .map_err(io)?;
    let block = 4096u64;
    let mut buf = Vec::new();
    let mut at = 0;
    while at < rows {
        let n = block.min(rows - at);
        let ids: Vec<u64> = (at..at + n).collect();
        buf.resize((n * d) as usize, 0f32);
        src.read_rows(&ids, &mut buf)?;
        crate::source::check_finite(&buf, d as usize, at, src.path())?;
        w.write_all(&crate::npy::f32_le_bytes(&buf)).map_err(io)?;
        at += n;
    }
    w.flush().map_err(io)
}

fn finish(
    orig: &Path,
    rows: u64,
    entries: Vec<Entry>,
    opts: &ReportOptions,
    start: Instant,
) -> Report {
    let dims = entries.first().map_or(0, |e| e.eval.dims);
    let queries = entries.first().map_or(0, |e| e.eval.queries);
    Report {
        command: opts.command.clone(),
        original: orig.display().to_string(),
        rows,
        original_rows: rows,
        dims,
        k: opts.k,
        metric: opts.metric,
        queries,
        rerank: opts.rerank,
        entries,
        peers: opts.peers.clone(),
        seconds: start.elapsed().as_secs_f64(),
        peak_rss_bytes: crate::par::peak_rss_bytes(),
    }
}

/// One streamed pass over `orig` and `comp`.
fn entry(
    orig: &Path,
    comp: &Path,
    label: String,
    opts: &ReportOptions,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Entry> {
    let c = Container::open(comp)?;
    let (rows, d) = (c.rows(), c.dims());
    let codec = c.codec().name();
    let chunk_bytes: u64 = c.chunks().iter().map(|e| e.len).sum();
    let file_len = c.file_len();
    drop(c);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ 0x9e37_79b9_7f4a_7c15);
    let n = opts.pca_sample.min(rows as usize);
    let mut picked: Vec<u64> = sample(&mut rng, rows as usize, n)
        .into_iter()
        .map(|i| i as u64)
        .collect();
    picked.sort_unstable();
    // The movement figure follows the true top 10, so eval keeps at least 10.
    let mut ks = vec![opts.k];
    if opts.k != MOVEMENT_TOP {
        ks.push(MOVEMENT_TOP);
    }
    let eopts = EvalOptions {
        k: ks,
        sample_queries: opts.sample_queries,
        queries: None,
        seed: opts.seed,
        threads: opts.threads,
        metric: opts.metric,
        rerank: opts.rerank,
        exact_float_search: false,
        input: opts.input.clone(),
    };
    let mut total = Stats::new(d);
    let observe = |first: u64, o: &[f32], r: &[f32]| Stats::of_block(d, first, o, r, &picked);
    let mut merge = |s: Stats| total.merge(s);
    let observer = Observer {
        observe: &observe,
        merge: &mut merge,
    };
    let (eval, nb) = evaluate_observed(orig, comp, &eopts, observer, progress, cancel)?;
    let at_k = eval.recall.iter().find(|r| r.k == opts.k);
    let rows_f = total.rows.max(1) as f64;
    let rms: Vec<f64> = total.sq_sum.iter().map(|s| (s / rows_f).sqrt()).collect();
    let mut worst: Vec<usize> = (0..d).collect();
    worst.sort_by(|&a, &b| rms[b].total_cmp(&rms[a]).then(a.cmp(&b)));
    worst.truncate(10);
    let movement = nb
        .truth
        .iter()
        .zip(&nb.found)
        .zip(&nb.query_rows)
        .take(opts.movement_queries)
        .map(|((t, f), q)| Movement {
            query_row: *q,
            depth: f.len(),
            ranks: t
                .iter()
                .take(MOVEMENT_TOP)
                .map(|id| f.iter().position(|x| x == id).map(|p| p + 1))
                .collect(),
        })
        .collect();
    Ok(Entry {
        label,
        container: comp.display().to_string(),
        codec,
        bytes_per_vector: chunk_bytes as f64 / rows.max(1) as f64,
        file_bytes_per_vector: file_len as f64 / rows.max(1) as f64,
        recall: at_k.map_or(1.0, |r| r.recall),
        rescored_recall: at_k.map_or(1.0, |r| r.rescored),
        cosine_hist: total.cos.bars(HIST_BARS),
        error_norm_hist: total.norm.bars(HIST_BARS),
        error_norm_mean: total.norm_sum / rows_f,
        error_norm_max: total.norm_max,
        per_dim: PerDim {
            mean_abs: total.abs_sum.iter().map(|s| s / rows_f).collect(),
            rms,
            worst,
        },
        pca: scatter(&mut total.sample, d),
        movement,
        eval,
    })
}

fn scatter(sample: &mut [(u64, Vec<f32>, Vec<f32>)], d: usize) -> PcaScatter {
    sample.sort_by_key(|s| s.0);
    let refs: Vec<&[f32]> = sample.iter().map(|s| s.1.as_slice()).collect();
    if refs.len() < 2 || d == 0 {
        return PcaScatter {
            rows: sample.iter().map(|s| s.0).collect(),
            explained: [0.0, 0.0],
            original: vec![[0.0, 0.0]; sample.len()],
            reconstruction: vec![[0.0, 0.0]; sample.len()],
            mean_shift: 0.0,
        };
    }
    let ax = pca::axes(&refs, d);
    let original: Vec<[f64; 2]> = sample.iter().map(|s| ax.project(&s.1)).collect();
    let reconstruction: Vec<[f64; 2]> = sample.iter().map(|s| ax.project(&s.2)).collect();
    let shift = original
        .iter()
        .zip(&reconstruction)
        .map(|(a, b)| ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt())
        .sum::<f64>()
        / original.len() as f64;
    let tv = ax.total_variance.max(f64::MIN_POSITIVE);
    PcaScatter {
        rows: sample.iter().map(|s| s.0).collect(),
        explained: [ax.variance[0] / tv, ax.variance[1] / tv],
        original,
        reconstruction,
        mean_shift: shift,
    }
}
