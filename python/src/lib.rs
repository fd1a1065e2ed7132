//! `vectro._vectro`: the Python extension module over the `vectro` library.
//!
//! Argument handling only: every computation is the library's. Long calls run on a worker
//! thread with the GIL released while the calling thread waits, polls for signals (Ctrl-C
//! stops the run at a chunk boundary, as in the CLI) and reports progress.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use numpy::ndarray::{Array1, Array2};
use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PySlice, PySliceMethods};
use rayon::prelude::*;
use vectro::codec::CodecId;
use vectro::npy::Dtype;
use vectro::output::Durability;
use vectro::{CompressOptions, Container, ErrorKind, MemorySource, Progress};

create_exception!(
    vectro,
    VectroError,
    PyException,
    "Base class of every error Vectro raises; the message is the library's."
);
create_exception!(
    vectro,
    BadInputError,
    VectroError,
    "The input data is unusable: wrong shape or dtype, NaN/Inf, values out of a codec's range."
);
create_exception!(
    vectro,
    CorruptError,
    VectroError,
    "A container (or codebook, or .npz) is malformed, truncated or fails its checksums."
);
create_exception!(
    vectro,
    VectroIOError,
    VectroError,
    "The operating system failed an operation (open, read, write, lock); a retry may help."
);
create_exception!(
    vectro,
    UsageError,
    VectroError,
    "The request itself is invalid: a bad option, an existing output without force=True, ..."
);
create_exception!(
    vectro,
    QualityGateError,
    VectroError,
    "eval() measured a quality below a gate (min_cosine, min_recall, max_nmse); `.report` holds the measurements."
);
create_exception!(
    vectro,
    CancelledError,
    VectroError,
    "The run was cancelled (the library's own cancel, not Ctrl-C, which raises KeyboardInterrupt)."
);
create_exception!(
    vectro,
    InternalError,
    VectroError,
    "A bug in Vectro (a worker panicked); please report it."
);

/// The Python exception for a library error.
fn to_py(e: vectro::Error) -> PyErr {
    let msg = e.to_string();
    match (e.kind(), &e) {
        (_, vectro::Error::Corrupt { .. }) => CorruptError::new_err(msg),
        (ErrorKind::BadInput, _) => BadInputError::new_err(msg),
        (ErrorKind::Io, _) => VectroIOError::new_err(msg),
        (ErrorKind::Usage, _) => UsageError::new_err(msg),
        (ErrorKind::Cancelled, _) => CancelledError::new_err(msg),
        (ErrorKind::Internal, _) => InternalError::new_err(msg),
        _ => VectroError::new_err(msg),
    }
}

/// A serde value as a Python object, through `json.loads` (summaries are small).
fn to_dict<T: serde::Serialize>(py: Python<'_>, v: &T) -> PyResult<Py<PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| InternalError::new_err(e.to_string()))?;
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

// ---------------------------------------------------------------------------------------
// Long calls: a worker thread without the GIL; signals and progress on the caller's thread.

/// How a long call reports progress.
enum ProgressArg {
    None,
    /// A bar on stderr, labelled.
    Bar(&'static str),
    /// `callback(done_rows, total_rows)`, called on the calling thread.
    Callback(Py<PyAny>),
}

impl ProgressArg {
    fn from_py(arg: Option<&Bound<'_, PyAny>>, label: &'static str) -> PyResult<ProgressArg> {
        let Some(arg) = arg else {
            return Ok(ProgressArg::None);
        };
        if arg.is_none() {
            return Ok(ProgressArg::None);
        }
        if arg.is_callable() {
            return Ok(ProgressArg::Callback(arg.clone().unbind()));
        }
        if arg.extract::<bool>()? {
            Ok(ProgressArg::Bar(label))
        } else {
            Ok(ProgressArg::None)
        }
    }
}

/// What the library reports, kept in atomics for the waiting thread to read.
#[derive(Default)]
struct Counter {
    total: AtomicU64,
    done: AtomicU64,
    notes: Mutex<Vec<String>>,
    /// A test hook, as the CLI's: `VECTRO_TEST_SLOW_CHUNK_MS=n` sleeps n ms after each
    /// chunk, so that tests can interrupt a run of a small input midway. Only with the
    /// feature `test-hooks`, which the test build of the wheel turns on.
    pause: Option<Duration>,
}

impl Counter {
    fn new() -> Counter {
        // Only in the wheel python/tests build (feature `test-hooks`).
        let pause = std::env::var("VECTRO_TEST_SLOW_CHUNK_MS")
            .ok()
            .filter(|_| cfg!(feature = "test-hooks"))
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis);
        Counter {
            pause,
            ..Counter::default()
        }
    }
}

impl Progress for Counter {
    fn begin(&self, rows: u64, _bytes: u64) {
        self.total.store(rows, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }
    fn advance(&self, rows: u64, _bytes: u64) {
        self.done.fetch_add(rows, Ordering::Relaxed);
        if let Some(p) = self.pause {
            std::thread::sleep(p);
        }
    }
    fn note(&self, msg: &str) {
        if let Ok(mut n) = self.notes.lock() {
            n.push(msg.to_string());
        }
    }
    /// A training stage counts its iterations as the rows are counted after it.
    fn stage(&self, _what: &str, steps: u64) {
        self.begin(steps, 0);
    }
    fn step(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
}

/// Draws or calls back progress from the calling thread.
struct Reporter {
    arg: ProgressArg,
    bar: Option<indicatif::ProgressBar>,
    last: (u64, u64),
}

impl Reporter {
    fn new(arg: ProgressArg) -> Reporter {
        Reporter {
            arg,
            bar: None,
            last: (u64::MAX, u64::MAX),
        }
    }

    fn report(&mut self, py: Python<'_>, c: &Counter) -> PyResult<()> {
        let now = (
            c.done.load(Ordering::Relaxed),
            c.total.load(Ordering::Relaxed),
        );
        let notes = c.notes.lock().map(|mut n| std::mem::take(&mut *n));
        match &self.arg {
            ProgressArg::None => {}
            ProgressArg::Callback(cb) => {
                if now != self.last && now.1 > 0 {
                    cb.call1(py, now)?;
                }
            }
            ProgressArg::Bar(label) => {
                let bar = self.bar.get_or_insert_with(|| {
                    let b = indicatif::ProgressBar::new(0);
                    b.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {pos}/{len} rows ({percent}%, eta {eta})",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    b.set_prefix(*label);
                    b
                });
                for n in notes.iter().flatten() {
                    bar.println(format!("vectro: {n}"));
                }
                bar.set_length(now.1);
                bar.set_position(now.0);
            }
        }
        self.last = now;
        Ok(())
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}

/// Runs `work` on a worker thread with the GIL released. The calling thread wakes every
/// 50 ms to report progress and check for signals: a KeyboardInterrupt (or any exception
/// a signal handler or the progress callback raises) sets the stop flag, the library stops
/// at its next chunk boundary (keeping a resumable partial output), and the exception is
/// raised once the worker has returned.
fn run_long<T: Send>(
    py: Python<'_>,
    progress: ProgressArg,
    work: impl FnOnce(&dyn Progress, &AtomicBool) -> vectro::Result<T> + Send,
) -> PyResult<T> {
    let stop = AtomicBool::new(false);
    let counter = Counter::new();
    let mut reporter = Reporter::new(progress);
    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
    let mut raised: Option<PyErr> = None;
    let result = std::thread::scope(|s| {
        // A refused thread (a process limit) is an error like any other, not a panic.
        let spawned = std::thread::Builder::new().spawn_scoped(s, || {
            let r = work(&counter, &stop);
            drop(tx);
            r
        });
        let worker = match spawned {
            Ok(w) => w,
            Err(e) => {
                return Ok(Err(vectro::Error::Threads {
                    threads: 1,
                    reason: e.to_string(),
                }));
            }
        };
        loop {
            let finished = py.detach(|| {
                matches!(
                    rx.recv_timeout(Duration::from_millis(50)),
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected)
                )
            });
            if let Err(e) = reporter.report(py, &counter)
                && raised.is_none()
            {
                raised = Some(e);
                stop.store(true, Ordering::Relaxed);
            }
            if finished {
                break;
            }
            if raised.is_none()
                && let Err(e) = py.check_signals()
            {
                raised = Some(e);
                stop.store(true, Ordering::Relaxed);
            }
        }
        py.detach(|| worker.join())
    });
    reporter.finish();
    if let Some(e) = raised {
        return Err(e);
    }
    match result {
        Ok(r) => r.map_err(to_py),
        Err(_) => Err(InternalError::new_err(
            "internal error: a worker panicked; please report this",
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Arrays in.

/// A C-contiguous numpy array's bytes, borrowed: the array is kept alive by the handle,
/// and its data pointer stays valid as long as the array lives (numpy never moves the
/// buffer of an array that other references hold).
struct ArrayBytes {
    ptr: *const u8,
    len: usize,
    _owner: Py<PyAny>,
}

// SAFETY: the bytes are only read, and the owner keeps the buffer alive for the whole life
// of this value. Writing to the array from another Python thread while a compress reads it
// is a data race of the same kind as with any nogil numpy operation; the docs say not to.
unsafe impl Send for ArrayBytes {}
// SAFETY: as for Send: shared access is read-only.
unsafe impl Sync for ArrayBytes {}

impl AsRef<[u8]> for ArrayBytes {
    fn as_ref(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: ptr..ptr+len is the C-contiguous data of the array `_owner` keeps alive
        // (checked when this value was made).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// The dtype of a float array Vectro reads, or an error naming what to do.
fn float_dtype(arr: &Bound<'_, PyUntypedArray>, what: &str) -> PyResult<Dtype> {
    let dt = arr.dtype();
    let native_le = cfg!(target_endian = "little") && dt.is_native_byteorder() != Some(false);
    let dtype = match (dt.kind(), dt.itemsize()) {
        (b'f', 4) if native_le => Dtype::F32Le,
        (b'f', 4) if dt.byteorder() == b'>' => Dtype::F32Be,
        (b'f', 2) if native_le => Dtype::F16Le,
        (b'f', 8) if native_le => Dtype::F64Le,
        _ => {
            return Err(BadInputError::new_err(format!(
                "{what}: dtype {} is not supported; Vectro reads float32, float16 and float64: \
                 convert with x.astype(np.float32)",
                dt.str()?
            )));
        }
    };
    Ok(dtype)
}

/// A 2-D, C-contiguous float array borrowed as a [`MemorySource`], without a copy, with the
/// address of its data and a handle: the caller drops the handle after the library is done,
/// with the GIL held, so that the array's reference is released there and then.
fn borrow_rows(
    arr: &Bound<'_, PyUntypedArray>,
    name: &str,
) -> PyResult<(MemorySource, u64, Arc<ArrayBytes>)> {
    let dtype = float_dtype(arr, name)?;
    if arr.ndim() != 2 {
        return Err(BadInputError::new_err(format!(
            "{name}: shape {:?} is not 2-D; Vectro expects (rows, dims): reshape with x.reshape(-1, dims)",
            arr.shape()
        )));
    }
    if !arr.is_c_contiguous() {
        return Err(BadInputError::new_err(format!(
            "{name}: the array is not C-contiguous (a transposed or strided view); Vectro reads \
             rows in place without copying: pass np.ascontiguousarray(x), which makes one copy"
        )));
    }
    let (rows, dims) = (arr.shape()[0] as u64, arr.shape()[1] as u64);
    // SAFETY: the array object is alive (we hold a reference); reading its data pointer
    // field does not touch the data.
    let ptr = unsafe { (*arr.as_array_ptr()).fields.data } as *const u8;
    let len = (rows * dims) as usize * dtype.size();
    let bytes = Arc::new(ArrayBytes {
        ptr,
        len,
        _owner: arr.clone().into_any().unbind(),
    });
    let src = MemorySource::new(name, bytes.clone(), dtype, rows, dims).map_err(to_py)?;
    Ok((src, ptr as u64, bytes))
}

fn as_array<'py>(obj: &Bound<'py, PyAny>) -> Option<Bound<'py, PyUntypedArray>> {
    obj.cast::<PyUntypedArray>().ok().cloned()
}

// ---------------------------------------------------------------------------------------
// compress / decompress / train / eval

/// Compress rows to a container. See `vectro.compress` for the documentation.
#[pyfunction]
#[pyo3(signature = (data, out, codec=None, *, zstd=None, threads=0, chunk_rows=None,
    codebook=None, train_rows=None, shard=None, resume=false, force=false, min_cosine=None,
    min_recall=None, sample=2000, fsync=true, keep_partial=true, name=None, progress=None,
    ids=None, column=None, id_column=None, payload_columns=None, rescore=None))]
#[allow(clippy::too_many_arguments)]
fn compress(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    out: PathBuf,
    codec: Option<String>,
    zstd: Option<i32>,
    threads: usize,
    chunk_rows: Option<u32>,
    codebook: Option<PathBuf>,
    train_rows: Option<u64>,
    shard: Option<String>,
    resume: bool,
    force: bool,
    min_cosine: Option<f64>,
    min_recall: Option<f64>,
    sample: usize,
    fsync: bool,
    keep_partial: bool,
    name: Option<String>,
    progress: Option<&Bound<'_, PyAny>>,
    ids: Option<PathBuf>,
    column: Option<String>,
    id_column: Option<String>,
    payload_columns: Option<Vec<String>>,
    rescore: Option<String>,
) -> PyResult<Py<PyAny>> {
    use vectro::codec::auto::Target;
    let shard = shard
        .as_deref()
        .map(|s| {
            vectro::pipeline::shard::Shard::resolve(s, None, |k| std::env::var(k).ok())
                .map_err(to_py)
        })
        .transpose()?;
    let output = shard.map_or(out.clone(), |s| s.expand_output(&out));
    let opts = CompressOptions {
        codec: codec
            .as_deref()
            .map(vectro::codec::CodecRequest::parse)
            .transpose()
            .map_err(to_py)?,
        rescore: rescore
            .as_deref()
            .map(vectro::codec::CodecRequest::parse)
            .transpose()
            .map_err(to_py)?,
        threads,
        chunk_rows,
        overwrite: force,
        durability: if fsync {
            Durability::Fsync
        } else {
            Durability::None
        },
        shard,
        zstd,
        target: match (min_cosine, min_recall) {
            (Some(_), Some(_)) => {
                return Err(UsageError::new_err(
                    "give min_cosine or min_recall, not both",
                ));
            }
            (Some(x), _) => Some(Target::MinCosine(x)),
            (_, Some(x)) => Some(Target::MinRecall(x)),
            _ => None,
        },
        sample,
        resume,
        keep_partial,
        codebook,
        train_rows,
        ids,
        id_column,
        payload_columns: payload_columns.unwrap_or_default(),
        input: vectro::source::InputOptions { column },
    };
    let progress = ProgressArg::from_py(progress, "compress")?;
    let summary = if let Some(arr) = as_array(data) {
        let (src, _, handle) = borrow_rows(&arr, name.as_deref().unwrap_or("<array>"))?;
        let r = run_long(py, progress, |p, stop| {
            vectro::compress_memory(src, &output, &opts, p, stop)
        });
        drop(handle);
        r?
    } else {
        let input: PathBuf = data.extract().map_err(|_| {
            PyTypeError::new_err(format!(
                "data must be a numpy array or a path (str or os.PathLike), not {}",
                data.get_type().name().map_or("?".into(), |n| n.to_string())
            ))
        })?;
        run_long(py, progress, |p, stop| {
            vectro::compress(&input, &output, &opts, p, stop)
        })?
    };
    to_dict(py, &summary)
}

/// The `dtype=` argument: `None` is the container's input dtype.
fn out_dtype(dtype: Option<&str>) -> PyResult<Option<vectro::OutDtype>> {
    dtype
        .map(|d| {
            d.parse::<vectro::OutDtype>().map_err(|_| {
                UsageError::new_err(format!("dtype={d:?}: use \"f32\", \"f16\" or \"bf16\""))
            })
        })
        .transpose()
}

/// Decompress a container to a .npy file. See `vectro.decompress`.
#[pyfunction]
#[pyo3(signature = (path, out, *, dtype=None, threads=0, force=false, fsync=true, progress=None))]
#[allow(clippy::too_many_arguments)]
fn decompress_to(
    py: Python<'_>,
    path: PathBuf,
    out: PathBuf,
    dtype: Option<&str>,
    threads: usize,
    force: bool,
    fsync: bool,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let dtype = out_dtype(dtype)?;
    let progress = ProgressArg::from_py(progress, "decompress")?;
    let durability = if fsync {
        Durability::Fsync
    } else {
        Durability::None
    };
    let s = run_long(py, progress, |p, stop| {
        vectro::decompress_as(&path, &out, dtype, (threads, force, durability), p, stop)
    })?;
    to_dict(py, &s)
}

/// Train a pq/opq/binary-itq codebook and write it as a .vcb. See `vectro.train`.
#[pyfunction]
#[pyo3(signature = (data, out, codec, *, train_rows=None, threads=0, force=false, name=None, progress=None, column=None))]
#[allow(clippy::too_many_arguments)]
fn train(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    out: PathBuf,
    codec: String,
    train_rows: Option<u64>,
    threads: usize,
    force: bool,
    name: Option<String>,
    progress: Option<&Bound<'_, PyAny>>,
    column: Option<String>,
) -> PyResult<Py<PyAny>> {
    use vectro::codec::TrainOptions;
    use vectro::pipeline::reader::Input;
    let progress = ProgressArg::from_py(progress, "train")?;
    let mut handle = None;
    let source = match as_array(data) {
        Some(arr) => {
            let (src, _, h) = borrow_rows(&arr, name.as_deref().unwrap_or("<array>"))?;
            handle = Some(h);
            Input::Memory(src)
        }
        None => {
            let input: PathBuf = data.extract().map_err(|_| {
                PyTypeError::new_err("data must be a numpy array or a path (str or os.PathLike)")
            })?;
            vectro::output::check_not_input(&out, [input.as_path()]).map_err(to_py)?;
            let opts = vectro::source::InputOptions { column };
            Input::open_with(&input, &opts).map_err(to_py)?
        }
    };
    let input_name = source.path().display().to_string();
    let start = std::time::Instant::now();
    let threads = if threads == 0 {
        vectro::pipeline::default_threads()
    } else {
        threads
    };
    let output =
        vectro::output::AtomicOutput::create(&out, force, Durability::Fsync).map_err(to_py)?;
    let r = run_long(py, progress, |p, stop| {
        let pool = vectro::par::pool(threads)?;
        let opts = TrainOptions {
            train_rows,
            cancel: Some(stop),
        };
        let trained = pool.install(|| vectro::codec::train(&codec, &source, &opts, p))?;
        let recipe = vectro::codec::training_recipe(&codec, trained.dims(), train_rows)?;
        let bytes = trained.to_vcb(recipe.as_deref());
        output.commit_bytes(&bytes)?;
        Ok((trained, bytes))
    });
    drop((source, handle));
    let (trained, bytes) = r?;
    let d = PyDict::new(py);
    d.set_item("input", input_name)?;
    d.set_item("output", out.display().to_string())?;
    d.set_item("codec", trained.name())?;
    // The keys of `vectro train --json`.
    match &trained {
        vectro::codec::Trained::Pq(book) => {
            let f = book.facts;
            d.set_item("train_rows", f.sample_rows)?;
            d.set_item("kmeans_iterations", f.kmeans_iterations)?;
            d.set_item("opq_iterations", f.opq_iterations)?;
            d.set_item("distortion", f.distortion)?;
        }
        vectro::codec::Trained::Rq(rq) => {
            let f = rq.facts();
            d.set_item("train_rows", f.sample_rows)?;
            d.set_item("kmeans_iterations", f.kmeans_iterations)?;
            d.set_item("opq_iterations", 0)?;
            d.set_item("distortion", f.distortion)?;
        }
        vectro::codec::Trained::Sq(sq) => {
            d.set_item("train_rows", sq.mean_rows())?;
            d.set_item("kmeans_iterations", 0)?;
            d.set_item("opq_iterations", 0)?;
        }
        vectro::codec::Trained::Itq(itq) => {
            d.set_item("train_rows", itq.train_rows())?;
            d.set_item("kmeans_iterations", 0)?;
            d.set_item("opq_iterations", 0)?;
            d.set_item("itq_iterations", itq.iterations())?;
            d.set_item("itq_loss", f64::from(itq.loss()))?;
        }
    }
    d.set_item("fingerprint", format!("{:08x}", trained.fingerprint()))?;
    d.set_item("bytes", bytes.len() as u64)?;
    d.set_item("seconds", start.elapsed().as_secs_f64())?;
    Ok(d.into_any().unbind())
}

/// Evaluate a container against its original .npy. See `vectro.eval`.
#[pyfunction]
#[pyo3(signature = (orig, comp, *, queries=None, k=vec![1, 10, 100], sample_queries=100,
    seed=42, metric="cos", rerank=100, threads=0, exact_float_search=false, min_cosine=None,
    min_recall=None, max_nmse=None, progress=None, column=None))]
#[allow(clippy::too_many_arguments)]
fn eval(
    py: Python<'_>,
    orig: PathBuf,
    comp: PathBuf,
    queries: Option<PathBuf>,
    k: Vec<usize>,
    sample_queries: usize,
    seed: u64,
    metric: &str,
    rerank: usize,
    threads: usize,
    exact_float_search: bool,
    min_cosine: Option<f64>,
    min_recall: Option<f64>,
    max_nmse: Option<f64>,
    progress: Option<&Bound<'_, PyAny>>,
    column: Option<String>,
) -> PyResult<Py<PyAny>> {
    use vectro::eval::{EvalOptions, Metric};
    let metric: Metric = metric.parse().map_err(to_py)?;
    if min_recall.is_some() && queries.is_none() && sample_queries == 0 {
        return Err(UsageError::new_err(
            "min_recall needs queries: drop sample_queries=0 or pass queries",
        ));
    }
    let opts = EvalOptions {
        k,
        sample_queries,
        queries,
        seed,
        threads,
        metric,
        rerank,
        exact_float_search,
        input: vectro::source::InputOptions { column },
    };
    let progress = ProgressArg::from_py(progress, "eval")?;
    let r = run_long(py, progress, |p, stop| {
        vectro::eval::evaluate(&orig, &comp, &opts, p, stop)
    })?;
    // The gates, as `vectro eval --json` lists them.
    let mut gates = Vec::new();
    let mut gate = |flag: &str, metric: String, limit: f64, value: f64, passed: bool| {
        gates.push(serde_json::json!({
            "flag": flag, "metric": metric, "limit": limit, "value": value, "passed": passed,
        }));
    };
    if let Some(l) = min_cosine {
        gate(
            "--min-cosine",
            "cosine_mean".into(),
            l,
            r.cosine_mean,
            r.cosine_mean >= l,
        );
    }
    if let Some(l) = min_recall {
        for rec in &r.recall {
            let m = format!("recall@{}", rec.k);
            gate("--min-recall", m, l, rec.recall, rec.recall >= l);
        }
    }
    if let Some(l) = max_nmse {
        gate("--max-nmse", "nmse".into(), l, r.nmse, r.nmse <= l);
    }
    let mut value = serde_json::to_value(&r).map_err(|e| InternalError::new_err(e.to_string()))?;
    let failed: Vec<String> = gates
        .iter()
        .filter(|g| g["passed"] == false)
        .map(|g| {
            format!(
                "quality gate failed: {} = {} does not meet {} {}",
                g["metric"].as_str().unwrap_or_default(),
                g["value"],
                g["flag"].as_str().unwrap_or_default(),
                g["limit"]
            )
        })
        .collect();
    value["gates"] = serde_json::Value::from(gates);
    let dict = to_dict(py, &value)?;
    if !failed.is_empty() {
        let e = QualityGateError::new_err(failed.join("; "));
        e.value(py).setattr("report", dict)?;
        return Err(e);
    }
    Ok(dict)
}

/// Write a report page on containers (or codecs tried on a sample). See `vectro.report`.
#[pyfunction]
#[pyo3(signature = (orig, containers, out=None, *, codecs=vec![], rows=100_000, svg_dir=None,
    png=false, peers_json=None, k=10, sample_queries=100, seed=42, metric="cos", rerank=100, pca_sample=500,
    movement_queries=5, threads=0, force=false, command=String::new(), progress=None, column=None))]
#[allow(clippy::too_many_arguments)]
fn report(
    py: Python<'_>,
    orig: PathBuf,
    containers: Vec<PathBuf>,
    out: Option<PathBuf>,
    codecs: Vec<String>,
    rows: u64,
    svg_dir: Option<PathBuf>,
    png: bool,
    peers_json: Option<String>,
    k: usize,
    sample_queries: usize,
    seed: u64,
    metric: &str,
    rerank: usize,
    pca_sample: usize,
    movement_queries: usize,
    threads: usize,
    force: bool,
    command: String,
    progress: Option<&Bound<'_, PyAny>>,
    column: Option<String>,
) -> PyResult<Py<PyAny>> {
    use vectro::report::{Outputs, ReportOptions};
    if containers.is_empty() == codecs.is_empty() {
        return Err(UsageError::new_err(
            "report takes containers or codecs (to try on a sample), one of the two",
        ));
    }
    let outputs = Outputs {
        html: out.unwrap_or_else(|| Outputs::default_html(&orig, &containers)),
        svg_dir,
        png,
        overwrite: force,
    };
    outputs
        .check(&vectro::report::labels(&containers, &codecs))
        .map_err(to_py)?;
    let peers = match &peers_json {
        Some(text) => {
            vectro::report::parse_peers(text.as_bytes(), Path::new("peers"), k).map_err(to_py)?
        }
        None => Vec::new(),
    };
    let opts = ReportOptions {
        k,
        sample_queries,
        seed,
        metric: metric.parse().map_err(to_py)?,
        rerank,
        threads,
        pca_sample,
        movement_queries,
        sample_rows: rows,
        peers,
        command,
        input: vectro::source::InputOptions { column },
    };
    let progress = ProgressArg::from_py(progress, "report")?;
    let r = run_long(py, progress, |p, stop| {
        let r = if codecs.is_empty() {
            vectro::report::report(&orig, &containers, &opts, p, stop)?
        } else {
            vectro::report::report_codecs(&orig, &codecs, &opts, p, stop)?
        };
        outputs.write(&r)?;
        Ok(r)
    })?;
    let mut value = serde_json::to_value(&r).map_err(|e| InternalError::new_err(e.to_string()))?;
    value["html"] = serde_json::Value::from(outputs.html.display().to_string());
    to_dict(py, &value)
}

/// Verify every checksum of a container. See `Container.verify`.
#[pyfunction]
fn verify(py: Python<'_>, path: PathBuf) -> PyResult<Py<PyAny>> {
    let r = run_long(py, ProgressArg::None, |_, _| {
        vectro::format::verify::verify(&path)
    })?;
    let dict = to_dict(py, &r)?;
    if !r.ok {
        let first = r
            .problems
            .first()
            .map_or(String::new(), |p| format!(": {}", p.message));
        let e = CorruptError::new_err(format!(
            "{}: {} problem(s) found{first}",
            path.display(),
            r.problem_count
        ));
        e.value(py).setattr("report", dict)?;
        return Err(e);
    }
    Ok(dict)
}

/// Convert the prototype's .npz (q, scales, dims) into an int8 container.
#[pyfunction]
#[pyo3(signature = (npz, out, *, chunk_rows=None, force=false, fsync=true))]
fn import_npz(
    py: Python<'_>,
    npz: PathBuf,
    out: PathBuf,
    chunk_rows: Option<u32>,
    force: bool,
    fsync: bool,
) -> PyResult<Py<PyAny>> {
    let opts = vectro::npz::ImportOptions {
        chunk_rows,
        overwrite: force,
        durability: if fsync {
            Durability::Fsync
        } else {
            Durability::None
        },
    };
    let s = run_long(py, ProgressArg::None, |p, stop| {
        vectro::npz::import_npz(&npz, &out, &opts, p, stop)
    })?;
    to_dict(py, &s)
}

/// Merge the shards of one compress into the container a single run writes. See
/// `vectro.merge`.
#[pyfunction]
#[pyo3(signature = (parts, out, *, force=false, fsync=true, progress=None))]
fn merge(
    py: Python<'_>,
    parts: Vec<PathBuf>,
    out: PathBuf,
    force: bool,
    fsync: bool,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let durability = if fsync {
        Durability::Fsync
    } else {
        Durability::None
    };
    let progress = ProgressArg::from_py(progress, "merge")?;
    let s = run_long(py, progress, |p, stop| {
        vectro::merge(&parts, &out, force, durability, p, stop)
    })?;
    to_dict(py, &s)
}

// ---------------------------------------------------------------------------------------
// The prototype's int8 API.

/// Rows per parallel task of the int8 kernels: a few hundred KiB of floats.
const BLOCK_ROWS: usize = 256;

/// The prototype's `(q, scales)`.
type Int8Arrays<'py> = (Bound<'py, PyArray2<i8>>, Bound<'py, PyArray1<f32>>);

/// `(q, scales)` of float32 rows, bit-exact with the reference. See `vectro.quantize_embeddings`.
#[pyfunction]
fn quantize_embeddings<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyArray2<f32>>,
) -> PyResult<Int8Arrays<'py>> {
    let x = x.readonly();
    let view = x.as_array();
    let (rows, dims) = view.dim();
    let data = x.as_slice().map_err(|_| {
        BadInputError::new_err("x is not C-contiguous: pass np.ascontiguousarray(x)")
    })?;
    let mut q = vec![0i8; rows * dims];
    let mut scales = vec![0f32; rows];
    if dims > 0 {
        // The int8 codec's own kernels (as `Int8::encode` runs them), writing straight into
        // the two output arrays instead of a chunk payload.
        use vectro::codec::int8::{INF_BITS, scale_of_max};
        use vectro::simd::int8::{max_abs_bits_at, quantize_at};
        let level = vectro::simd::Level::detect();
        py.detach(|| {
            q.par_chunks_mut(BLOCK_ROWS * dims)
                .zip(scales.par_chunks_mut(BLOCK_ROWS))
                .zip(data.par_chunks(BLOCK_ROWS * dims))
                .enumerate()
                .try_for_each(|(b, ((q, s), x))| {
                    let rows = q.chunks_exact_mut(dims).zip(x.chunks_exact(dims));
                    for (r, ((q, x), s)) in rows.zip(s.iter_mut()).enumerate() {
                        let max = max_abs_bits_at(level, x);
                        if max >= INF_BITS {
                            let col = x.iter().position(|v| !v.is_finite()).unwrap_or(0);
                            return Err(BadInputError::new_err(format!(
                                "x: row {}, column {col} is {} (non-finite); clean the input \
                                 (e.g. np.nan_to_num) before quantizing",
                                b * BLOCK_ROWS + r,
                                x[col]
                            )));
                        }
                        *s = scale_of_max(f32::from_bits(max));
                        quantize_at(level, x, *s, q);
                    }
                    Ok(())
                })
        })?;
    }
    let q = Array2::from_shape_vec((rows, dims), q).expect("shape matches");
    Ok((
        q.into_pyarray(py),
        Array1::from_vec(scales).into_pyarray(py),
    ))
}

/// `float32(q) * scale` per row. See `vectro.reconstruct_embeddings`.
#[pyfunction]
fn reconstruct_embeddings<'py>(
    py: Python<'py>,
    q: &Bound<'py, PyArray2<i8>>,
    scales: &Bound<'py, PyArray1<f32>>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (q, s) = (q.readonly(), scales.readonly());
    let (rows, dims) = q.as_array().dim();
    if s.len() != rows {
        return Err(BadInputError::new_err(format!(
            "q has {rows} rows but scales has {} values",
            s.len()
        )));
    }
    let codes = q
        .as_slice()
        .map_err(|_| BadInputError::new_err("q is not C-contiguous"))?;
    let sc = s
        .as_slice()
        .map_err(|_| BadInputError::new_err("scales is not contiguous"))?;
    let mut out = vec![0f32; rows * dims];
    if dims > 0 {
        py.detach(|| {
            out.par_chunks_mut(BLOCK_ROWS * dims)
                .zip(codes.par_chunks(BLOCK_ROWS * dims))
                .zip(sc.par_chunks(BLOCK_ROWS))
                .for_each(|((o, c), s)| {
                    for ((o, c), &s) in o.chunks_exact_mut(dims).zip(c.chunks_exact(dims)).zip(s) {
                        vectro::simd::int8::dequantize(c, s, o);
                    }
                });
        });
    }
    let out = Array2::from_shape_vec((rows, dims), out).expect("shape matches");
    Ok(out.into_pyarray(py))
}

// ---------------------------------------------------------------------------------------
// Container

/// An open Vectro container, memory-mapped: `Container(path)` or `vectro.open(path)`.
///
/// `len(c)`, `c.shape`, `c.dims`, `c.codec`, `c.metadata`; rows as float32 arrays with
/// `c[i]`, `c[i:j]`, `c[[ids]]`, `c[np_array]`, `c[bool_mask]`; raw codes with `c.codes()`;
/// `c.iter_chunks()`, `c.verify()`, `c.to_npz(out)`, `c.close()` or `with`. Every read
/// releases the GIL, and one container may be shared by any number of threads. Each chunk's
/// checksum is checked the first time a read touches it (a damaged chunk raises
/// CorruptError).
#[pyclass(frozen, name = "Container", module = "vectro")]
struct PyContainer {
    inner: RwLock<Option<Arc<Container>>>,
    path: PathBuf,
}

impl PyContainer {
    fn get(&self) -> PyResult<Arc<Container>> {
        self.inner
            .read()
            .map_err(|_| InternalError::new_err("container lock poisoned"))?
            .clone()
            .ok_or_else(|| {
                PyValueError::new_err(format!(
                    "{}: I/O operation on a closed container",
                    self.path.display()
                ))
            })
    }
}

/// What `Container.search` returns: ids (int64) and scores (float32), `(queries, k)`.
type SearchResult<'py> = (Bound<'py, PyArray2<i64>>, Bound<'py, PyArray2<f32>>);

/// Rows `ids` decoded into a new float32 array.
fn rows_of<'py>(
    py: Python<'py>,
    c: &Container,
    ids: &[u64],
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let d = c.dims();
    let mut out = vec![0f32; ids.len() * d];
    py.detach(|| c.get_many(ids, &mut out)).map_err(to_py)?;
    let out = Array2::from_shape_vec((ids.len(), d), out).expect("shape matches");
    Ok(out.into_pyarray(py))
}

/// Rows `start..stop` decoded into a new float32 array, chunks in parallel.
fn range_of<'py>(
    py: Python<'py>,
    c: &Container,
    start: u64,
    stop: u64,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let d = c.dims();
    let n = stop.saturating_sub(start) as usize;
    let mut out = vec![0f32; n * d];
    if n > 0 {
        py.detach(|| decode_range(c, start, stop, &mut out))
            .map_err(to_py)?;
    }
    let out = Array2::from_shape_vec((n, d), out).expect("shape matches");
    Ok(out.into_pyarray(py))
}

/// `get_range` split at chunk boundaries and run on the rayon pool.
fn decode_range(c: &Container, start: u64, stop: u64, out: &mut [f32]) -> vectro::Result<()> {
    let d = c.dims();
    let mut pieces = Vec::new();
    let mut rest = out;
    let mut row = start;
    for e in c.chunks() {
        let end = e.first_row + e.rows;
        if end <= row || row >= stop {
            continue;
        }
        let until = end.min(stop);
        let (head, tail) = rest.split_at_mut((until - row) as usize * d);
        pieces.push((row..until, head));
        rest = tail;
        row = until;
    }
    pieces
        .into_par_iter()
        .try_for_each(|(r, o)| c.get_range(r, o))
}

/// Row ids from an int, a sequence or an integer/boolean numpy array; negative ids count
/// from the end, as in numpy.
fn ids_of(py: Python<'_>, key: &Bound<'_, PyAny>, rows: u64) -> PyResult<Vec<u64>> {
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (key,))?;
    let arr = arr.cast::<PyUntypedArray>()?;
    let kind = arr.dtype().kind();
    let arr = match kind {
        b'b' => {
            if arr.ndim() != 1 || arr.len() as u64 != rows {
                return Err(PyIndexError::new_err(format!(
                    "boolean index of shape {:?} does not match {rows} rows",
                    arr.shape()
                )));
            }
            np.call_method1("flatnonzero", (arr,))?
        }
        b'i' | b'u' => arr.clone().into_any(),
        _ if arr.len() == 0 => arr.clone().into_any(),
        _ => {
            return Err(PyTypeError::new_err(format!(
                "row ids must be integers (or a boolean mask), not {}",
                arr.dtype().str()?
            )));
        }
    };
    let arr = np.call_method1("asarray", (arr, np.getattr("int64")?))?;
    let arr = arr
        .cast::<PyArray1<i64>>()
        .map_err(|_| PyIndexError::new_err("row ids must be a 1-D sequence of integers"))?;
    let ro = arr.readonly();
    ro.as_array()
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + rows as i64 } else { i };
            if j < 0 || j as u64 >= rows {
                Err(PyIndexError::new_err(format!(
                    "row {i} is out of range for {rows} rows"
                )))
            } else {
                Ok(j as u64)
            }
        })
        .collect()
}

#[pymethods]
impl PyContainer {
    #[new]
    fn new(py: Python<'_>, path: PathBuf) -> PyResult<PyContainer> {
        let c = py.detach(|| Container::open(&path)).map_err(to_py)?;
        Ok(PyContainer {
            inner: RwLock::new(Some(Arc::new(c))),
            path,
        })
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.get()?.rows() as usize)
    }

    /// `(rows, dims)`.
    #[getter]
    fn shape(&self) -> PyResult<(u64, usize)> {
        let c = self.get()?;
        Ok((c.rows(), c.dims()))
    }

    /// Dimensions per row.
    #[getter]
    fn dims(&self) -> PyResult<usize> {
        Ok(self.get()?.dims())
    }

    /// The codec, as `vectro info` names it (e.g. `int8`, `pq:m=48,nbits=8`).
    #[getter]
    fn codec(&self) -> PyResult<String> {
        Ok(self.get()?.codec().name())
    }

    /// The codecs of the file's tiers, coarsest first: one name for a file without
    /// tiers; for a tiered file (format 1.6) the search tier(s), then the finest, which
    /// rows decode from and `search(..., rescore=N)` re-ranks with.
    #[getter]
    fn tiers(&self) -> PyResult<Vec<String>> {
        Ok(self.get()?.tier_names())
    }

    /// The container's metadata (`source`, `tool`, ...), as a dict of strings.
    #[getter]
    fn metadata(&self) -> PyResult<std::collections::BTreeMap<String, String>> {
        Ok(self.get()?.metadata().clone())
    }

    /// The path the container was opened from.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Size of the file in bytes.
    #[getter]
    fn nbytes(&self) -> PyResult<u64> {
        Ok(self.get()?.file_len())
    }

    /// Number of chunks.
    #[getter]
    fn num_chunks(&self) -> PyResult<usize> {
        Ok(self.get()?.chunks().len())
    }

    /// The rows' stored ids: `"u64"`, `"string"` or `"none"` (rows are then known by
    /// their numbers in the whole input, see `first_row`).
    #[getter]
    fn id_kind(&self) -> PyResult<&'static str> {
        Ok(self.get()?.id_kind().name())
    }

    /// The number of this file's row 0 in the whole input: a shard's first row, else 0.
    #[getter]
    fn first_row(&self) -> PyResult<u64> {
        Ok(self.get()?.first_row())
    }

    /// The ids of rows `start..stop` (positions in this file, as `c[start:stop]`): a list
    /// of str for string ids, else a uint64 array: the stored ids, or for a container
    /// without ids the rows' numbers in the whole input (`first_row + i`).
    #[pyo3(signature = (start=0, stop=None))]
    fn ids<'py>(&self, py: Python<'py>, start: u64, stop: Option<u64>) -> PyResult<Py<PyAny>> {
        let c = self.get()?;
        let stop = stop.unwrap_or(c.rows()).min(c.rows());
        let start = start.min(stop);
        let col = py.detach(|| c.ids(start..stop)).map_err(to_py)?;
        Ok(match col {
            vectro::format::IdColumn::U64(v) => {
                Array1::from_vec(v).into_pyarray(py).into_any().unbind()
            }
            vectro::format::IdColumn::Str(v) => v.into_pyobject(py)?.into_any().unbind(),
        })
    }

    /// The payload columns of rows `start..stop` (positions in this file): a
    /// `pyarrow.Table` when pyarrow is installed, else a dict of lists (column name to
    /// values, `None` for nulls); `None` for a container without payload columns.
    #[pyo3(signature = (start=0, stop=None))]
    fn payload<'py>(&self, py: Python<'py>, start: u64, stop: Option<u64>) -> PyResult<Py<PyAny>> {
        let c = self.get()?;
        let stop = stop.unwrap_or(c.rows()).min(c.rows());
        let start = start.min(stop);
        let Some(batch) = py.detach(|| c.payload(start..stop)).map_err(to_py)? else {
            return Ok(py.None());
        };
        if let Ok(pa) = py.import("pyarrow") {
            let mut bytes = Vec::new();
            vectro::format::payload::encode_block(&batch, &mut bytes)
                .map_err(|m| PyValueError::new_err(format!("payload columns: {m}")))?;
            bytes.truncate(bytes.len() - 8); // the block's length field
            let buf = pyo3::types::PyBytes::new(py, &bytes);
            let reader = pa.getattr("ipc")?.call_method1("open_stream", (buf,))?;
            return Ok(reader.call_method0("read_all")?.unbind());
        }
        // Without pyarrow: the columns as JSON that Python's json module reads back.
        let mut text = b"{".to_vec();
        for (k, (f, col)) in batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .enumerate()
        {
            if k > 0 {
                text.push(b',');
            }
            serde_json::to_writer(&mut text, f.name())
                .map_err(|e| PyValueError::new_err(e.to_string()))?;
            text.extend_from_slice(b":[");
            for r in 0..batch.num_rows() {
                if r > 0 {
                    text.push(b',');
                }
                vectro::format::payload::push_python_json(&mut text, col.as_ref(), r).map_err(
                    |m| PyValueError::new_err(format!("payload column {}: {m}", f.name())),
                )?;
            }
            text.push(b']');
        }
        text.push(b'}');
        let text = String::from_utf8(text).map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
    }

    /// The payload columns' names and types (pyarrow's names), in order; empty without
    /// payload columns.
    #[getter]
    fn payload_columns(&self) -> PyResult<Vec<(String, String)>> {
        let c = self.get()?;
        let schema = c.payload_schema().map_err(to_py)?;
        Ok(schema.map_or_else(Vec::new, |s| {
            s.fields()
                .iter()
                .map(|f| {
                    (
                        f.name().clone(),
                        vectro::format::payload::type_label(f.data_type()),
                    )
                })
                .collect()
        }))
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.read().map_or(true, |g| g.is_none())
    }

    fn __getitem__<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Py<PyAny>> {
        let c = self.get()?;
        let rows = c.rows();
        if let Ok(i) = key.extract::<i64>()
            && !key.is_instance_of::<pyo3::types::PyBool>()
            && as_array(key).is_none_or(|a| a.ndim() == 0)
        {
            let j = if i < 0 { i + rows as i64 } else { i };
            if j < 0 || j as u64 >= rows {
                return Err(PyIndexError::new_err(format!(
                    "row {i} is out of range for {rows} rows"
                )));
            }
            let a = rows_of(py, &c, &[j as u64])?;
            return Ok(a.call_method1("reshape", (c.dims(),))?.unbind());
        }
        if let Ok(s) = key.cast::<PySlice>() {
            let ix = s.indices(rows as isize)?;
            if ix.step == 1 {
                let (a, b) = (ix.start as u64, (ix.stop.max(ix.start)) as u64);
                return Ok(range_of(py, &c, a, b)?.into_any().unbind());
            }
            let ids: Vec<u64> = (0..ix.slicelength)
                .map(|k| (ix.start + k as isize * ix.step) as u64)
                .collect();
            return Ok(rows_of(py, &c, &ids)?.into_any().unbind());
        }
        if key.is_instance_of::<pyo3::types::PyTuple>() {
            return Err(PyIndexError::new_err(
                "index rows only (c[i], c[i:j], c[ids]); slice columns on the result: c[ids][:, cols]",
            ));
        }
        let ids = ids_of(py, key, rows)?;
        Ok(rows_of(py, &c, &ids)?.into_any().unbind())
    }

    /// Rows `ids` (any order, repeats allowed) as a float32 array of shape (len(ids), dims).
    fn get_many<'py>(
        &self,
        py: Python<'py>,
        ids: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let c = self.get()?;
        let ids = ids_of(py, ids, c.rows())?;
        rows_of(py, &c, &ids)
    }

    /// The `k` nearest rows of each query, scored on the compressed codes (see
    /// docs/search.md): `(ids, scores)`, int64 and float32 arrays of shape
    /// `(len(queries), k)`, best first; `-1` and NaN where a query has fewer results.
    /// Scores are the inner product (`ip`), the cosine (`cos`), the squared distance
    /// (`l2`, smallest first) or, with `hamming=True` and no rescoring, the Hamming
    /// distance. `rescore=N` re-ranks the best N with `rescore_with` (a Container or path
    /// of the same rows, finer codec), else with this container's decoded rows.
    /// `filter_ids` is an allow-list of ids. `fast_scan_candidates=R` (pq/opq with 4-bit
    /// codes) scores in float only each chunk's best R rows by the 8-bit fast-scan, an
    /// approximate search; 0 searches exactly.
    #[pyo3(signature = (queries, k=10, *, metric="cos", rescore=0, rescore_with=None,
        filter_ids=None, hamming=false, threads=0, fast_scan_candidates=0))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: usize,
        metric: &str,
        rescore: usize,
        rescore_with: Option<&Bound<'py, PyAny>>,
        filter_ids: Option<&Bound<'py, PyAny>>,
        hamming: bool,
        threads: usize,
        fast_scan_candidates: usize,
    ) -> PyResult<SearchResult<'py>> {
        let c = self.get()?;
        let metric: vectro::search::Metric = metric.parse().map_err(to_py)?;
        let np = py.import("numpy")?;
        let q = np.call_method1("ascontiguousarray", (queries, np.getattr("float32")?))?;
        let q = q.cast::<PyUntypedArray>()?.clone();
        let q = match q.ndim() {
            1 => np.call_method1("reshape", (q, (1, -1)))?,
            2 => q.into_any(),
            n => {
                return Err(BadInputError::new_err(format!(
                    "queries: a {n}-D array; pass (n, dims) or one query of (dims,)"
                )));
            }
        };
        let q = q.cast::<PyArray2<f32>>()?.readonly();
        let (nq, d) = (q.shape()[0], q.shape()[1]);
        if d != c.dims() && nq > 0 {
            return Err(BadInputError::new_err(format!(
                "queries have {d} dimensions but {} holds {}-dimensional rows",
                self.path.display(),
                c.dims()
            )));
        }
        let qdata = q.as_slice()?.to_vec();
        let fine = match rescore_with {
            None => None,
            Some(obj) => Some(match obj.cast::<PyContainer>() {
                Ok(pc) => pc.get().get()?,
                Err(_) => {
                    let path: PathBuf = obj.extract()?;
                    Arc::new(py.detach(|| Container::open(&path)).map_err(to_py)?)
                }
            }),
        };
        let filter = match filter_ids {
            None => None,
            Some(ids) => {
                let arr = np.call_method1("asarray", (ids, np.getattr("int64")?))?;
                let arr = arr.cast::<PyArray1<i64>>().map_err(|_| {
                    PyTypeError::new_err("filter_ids must be a 1-D sequence of integer ids")
                })?;
                let ro = arr.readonly();
                let v: PyResult<Vec<u64>> = ro
                    .as_array()
                    .iter()
                    .map(|&i| {
                        u64::try_from(i)
                            .map_err(|_| UsageError::new_err(format!("filter id {i} is negative")))
                    })
                    .collect();
                Some(v?)
            }
        };
        let opts = vectro::search::SearchOptions {
            k,
            metric,
            threads,
            filter,
            hamming,
            rescore: if fine.is_some() && rescore == 0 {
                100
            } else {
                rescore
            },
            fast_scan_candidates,
            ..Default::default()
        };
        let progress = ProgressArg::from_py(None, "search")?;
        let hits = run_long(py, progress, |_, stop| match &fine {
            Some(f) => vectro::search::search_rescored(&c, f, &qdata, &opts, stop),
            None => vectro::search::search(&c, &qdata, &opts, stop),
        })?;
        let ids: Vec<i64> = hits
            .ids
            .iter()
            .map(|&i| {
                if i == vectro::search::Hits::NONE {
                    -1
                } else {
                    i as i64
                }
            })
            .collect();
        let shape = (hits.len(), hits.k);
        let ids = Array2::from_shape_vec(shape, ids)
            .map_err(|e| InternalError::new_err(e.to_string()))?;
        let scores = Array2::from_shape_vec(shape, hits.scores)
            .map_err(|e| InternalError::new_err(e.to_string()))?;
        Ok((ids.into_pyarray(py), scores.into_pyarray(py)))
    }

    /// The raw codes of rows `start..stop`, for the codecs that have a natural array form:
    ///
    /// - int8: `(q, scales)`, q int8 `(n, dims)`, scales float32 `(n,)`: the prototype's
    ///   arrays (`reconstruct_embeddings(q, scales)` gives the rows);
    /// - binary, binary-itq: `(bits, scales)`, bits uint8 `(n, ceil(dims / 8))`, bit `j` of
    ///   byte `i` (least significant first) is dimension `8i + j`, 1 for `v >= 0`;
    /// - pq, opq: `(codes, None)`, codes uint8 `(n, code_bytes)` (4-bit codes two a byte).
    ///
    /// Other codecs (and rotated int8/binary) raise UsageError.
    #[pyo3(signature = (start=0, stop=None))]
    fn codes<'py>(
        &self,
        py: Python<'py>,
        start: u64,
        stop: Option<u64>,
    ) -> PyResult<(Py<PyAny>, Option<Py<PyAny>>)> {
        let c = self.get()?;
        let stop = stop.unwrap_or(c.rows()).min(c.rows());
        let start = start.min(stop);
        let d = c.dims();
        let spec = &c.header().codec;
        let (row_bytes, scaled, signed) = match spec.id {
            CodecId::Int8 if spec.params.is_empty() => (d, true, true),
            CodecId::Binary if spec.params.is_empty() => (d.div_ceil(8), true, false),
            CodecId::BinaryItq => (d.div_ceil(8), true, false),
            CodecId::Pq | CodecId::Opq => (c.codec().encoded_len(1), false, false),
            _ => {
                return Err(UsageError::new_err(format!(
                    "{}: the {} codec has no raw code array (int8, binary, binary-itq, pq and \
                     opq have); read float rows with c[i:j]",
                    self.path.display(),
                    c.codec().name()
                )));
            }
        };
        let n = (stop - start) as usize;
        let mut codes = vec![0u8; n * row_bytes];
        let mut scales = vec![0f32; if scaled { n } else { 0 }];
        py.detach(|| -> vectro::Result<()> {
            for (i, e) in c.chunks().iter().enumerate() {
                let (a, b) = (e.first_row.max(start), (e.first_row + e.rows).min(stop));
                if a >= b {
                    continue;
                }
                let payload = c.chunk_data(i)?;
                let rows = e.rows as usize;
                let (la, lb) = ((a - e.first_row) as usize, (b - e.first_row) as usize);
                let (oa, ob) = ((a - start) as usize, (b - start) as usize);
                codes[oa * row_bytes..ob * row_bytes]
                    .copy_from_slice(&payload[la * row_bytes..lb * row_bytes]);
                if scaled {
                    let sc = &payload[rows * row_bytes..rows * (row_bytes + 4)];
                    for (o, s) in scales[oa..ob]
                        .iter_mut()
                        .zip(sc[la * 4..lb * 4].chunks_exact(4))
                    {
                        *o = f32::from_le_bytes(s.try_into().expect("4 bytes"));
                    }
                }
            }
            Ok(())
        })
        .map_err(to_py)?;
        let codes_arr: Py<PyAny> = if signed {
            let v: Vec<i8> = codes.into_iter().map(|b| b as i8).collect();
            Array2::from_shape_vec((n, row_bytes), v)
                .expect("shape matches")
                .into_pyarray(py)
                .into_any()
                .unbind()
        } else {
            Array2::from_shape_vec((n, row_bytes), codes)
                .expect("shape matches")
                .into_pyarray(py)
                .into_any()
                .unbind()
        };
        let scales = scaled.then(|| {
            Array1::from_vec(scales)
                .into_pyarray(py)
                .into_any()
                .unbind()
        });
        Ok((codes_arr, scales))
    }

    /// An iterator of `(first_row, rows)` per chunk, rows a float32 array: one chunk in
    /// memory at a time, its pages released after it, for bigger-than-RAM passes.
    fn iter_chunks(&self) -> PyResult<ChunkIter> {
        Ok(ChunkIter {
            c: self.get()?,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Check every chunk's checksum and the file's structure; return the report of
    /// `vectro verify --json`. Raises CorruptError (with `.report`) if anything is wrong.
    fn verify(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get()?;
        verify(py, self.path.clone())
    }

    /// Write an int8 container as the prototype's .npz (q, scales, dims).
    #[pyo3(signature = (out, *, force=false, fsync=true))]
    fn to_npz(
        &self,
        py: Python<'_>,
        out: PathBuf,
        force: bool,
        fsync: bool,
    ) -> PyResult<Py<PyAny>> {
        let c = self.get()?;
        let durability = if fsync {
            Durability::Fsync
        } else {
            Durability::None
        };
        let s = py
            .detach(|| vectro::npz::export_npz(&c, &out, force, durability))
            .map_err(to_py)?;
        to_dict(py, &s)
    }

    /// Unmap the file. Further use raises ValueError; reads in flight finish first.
    fn close(&self) -> PyResult<()> {
        let mut g = self
            .inner
            .write()
            .map_err(|_| InternalError::new_err("container lock poisoned"))?;
        *g = None;
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close()?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        match self.get() {
            Ok(c) => format!(
                "vectro.Container('{}', rows={}, dims={}, codec='{}')",
                self.path.display(),
                c.rows(),
                c.dims(),
                c.codec().name()
            ),
            Err(_) => format!("vectro.Container('{}', closed)", self.path.display()),
        }
    }
}

/// Chunks of a container, decoded one at a time.
#[pyclass(frozen, module = "vectro")]
struct ChunkIter {
    c: Arc<Container>,
    next: std::sync::atomic::AtomicUsize,
}

#[pymethods]
impl ChunkIter {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<(u64, Bound<'py, PyArray2<f32>>)>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(e) = self.c.chunks().get(i).copied() else {
            return Ok(None);
        };
        let d = self.c.dims();
        let mut out = vec![0f32; e.rows as usize * d];
        py.detach(|| {
            let r = self.c.decode_chunk(i, &mut out);
            self.c.release_chunks(i..i + 1);
            r
        })
        .map_err(to_py)?;
        let a = Array2::from_shape_vec((e.rows as usize, d), out).expect("shape matches");
        Ok(Some((e.first_row, a.into_pyarray(py))))
    }
}

/// Rows decoded into a new array, the whole container: float32, or for `f16` and `bf16`
/// (the default for a float16 input is `f16`) their 16-bit patterns as uint16, which the
/// Python side views as float16. Returns the array and the dtype's name.
#[pyfunction]
#[pyo3(signature = (path, dtype=None))]
fn decompress_array<'py>(
    py: Python<'py>,
    path: PathBuf,
    dtype: Option<&str>,
) -> PyResult<(Bound<'py, PyAny>, &'static str)> {
    let dtype = out_dtype(dtype)?;
    let c = py.detach(|| Container::open(&path)).map_err(to_py)?;
    let dtype = dtype.unwrap_or_else(|| vectro::OutDtype::for_source(c.header().source_dtype));
    let rows = range_of(py, &c, 0, c.rows())?;
    if dtype == vectro::OutDtype::F32 {
        return Ok((rows.into_any(), dtype.name()));
    }
    let f = rows.readonly();
    let flat = f.as_slice().expect("a new array is contiguous");
    let bytes = py
        .detach(|| dtype.convert(flat, c.dims().max(1), 0, &path))
        .map_err(to_py)?;
    let bits: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    let a = Array2::from_shape_vec((c.rows() as usize, c.dims()), bits).expect("shape matches");
    Ok((a.into_pyarray(py).into_any(), dtype.name()))
}

/// For tests: the address of a C-contiguous array's data as the compressor would borrow it.
#[pyfunction]
fn _borrowed_address(arr: &Bound<'_, PyUntypedArray>) -> PyResult<u64> {
    Ok(borrow_rows(arr, "<array>")?.1)
}

/// For `scripts/bench_python.py`: the seconds the library's own `get_many` takes for each
/// row of `ids` (one call per row, into a reused buffer), timed in Rust: the baseline that
/// `Container.__getitem__` is compared with.
#[pyfunction]
fn _time_get_many(
    py: Python<'_>,
    path: PathBuf,
    ids: numpy::PyReadonlyArray2<'_, u64>,
) -> PyResult<Vec<f64>> {
    let c = Container::open(&path).map_err(to_py)?;
    let ids = ids.as_array();
    let mut out = vec![0f32; ids.ncols() * c.dims()];
    let sets: Vec<Vec<u64>> = ids.rows().into_iter().map(|r| r.to_vec()).collect();
    py.detach(|| {
        sets.iter()
            .map(|set| {
                let t = std::time::Instant::now();
                c.get_many(set, &mut out)?;
                std::hint::black_box(&out);
                Ok(t.elapsed().as_secs_f64())
            })
            .collect::<vectro::Result<Vec<f64>>>()
    })
    .map_err(to_py)
}

/// The Rust side of the `vectro` package.
#[pymodule]
fn _vectro(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("VectroError", py.get_type::<VectroError>())?;
    m.add("BadInputError", py.get_type::<BadInputError>())?;
    m.add("CorruptError", py.get_type::<CorruptError>())?;
    m.add("VectroIOError", py.get_type::<VectroIOError>())?;
    m.add("UsageError", py.get_type::<UsageError>())?;
    m.add("QualityGateError", py.get_type::<QualityGateError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    m.add_class::<PyContainer>()?;
    m.add_class::<ChunkIter>()?;
    m.add_function(wrap_pyfunction!(compress, m)?)?;
    m.add_function(wrap_pyfunction!(decompress_to, m)?)?;
    m.add_function(wrap_pyfunction!(decompress_array, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(eval, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(import_npz, m)?)?;
    m.add_function(wrap_pyfunction!(quantize_embeddings, m)?)?;
    m.add_function(wrap_pyfunction!(reconstruct_embeddings, m)?)?;
    m.add_function(wrap_pyfunction!(_borrowed_address, m)?)?;
    m.add_function(wrap_pyfunction!(_time_get_many, m)?)?;
    Ok(())
}
