//! The one error type of the library.
//!
//! Every variant carries enough context (file, row, column, field) for a user to act on it
//! without a debugger. The binary maps each [`ErrorKind`] to its own exit code.

use std::path::PathBuf;

/// What the streaming writers, handed any `Write`, call their output in an I/O error; the
/// caller that knows the file renames it with [`Error::on_output`].
pub const UNNAMED_OUTPUT: &str = "<output>";

/// Everything that can go wrong in Vectro.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a named file failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file the operation was on.
        path: PathBuf,
        /// What was being done, e.g. "reading" or "renaming into place".
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A memory-mapped file was cut short while it was being read (another process
    /// truncated or rewrote it).
    #[error(
        "{path}: the file was truncated while being read ({mapped} bytes when opened, {} now); nothing read after the cut was used: rerun when whatever rewrites it has finished",
        now.map_or_else(|| "unknown".to_string(), |n| format!("{n} bytes"))
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length when it was mapped.
        mapped: u64,
        /// Its length now, if it can still be read.
        now: Option<u64>,
    },

    /// The input `.npy` is malformed or unsupported.
    #[error("{path}: {msg}")]
    BadNpy {
        /// The offending file.
        path: PathBuf,
        /// What is wrong and what to do about it.
        msg: String,
    },

    /// The input holds a NaN or an infinity.
    #[error(
        "{path}: row {row}, column {col} is {value} (non-finite); clean the input (e.g. np.nan_to_num) before compressing"
    )]
    NonFinite {
        /// The offending file.
        path: PathBuf,
        /// Zero-based row of the value.
        row: u64,
        /// Zero-based column of the value.
        col: u64,
        /// The value itself, formatted.
        value: String,
    },

    /// A value does not fit the codec's range (e.g. f16 overflow).
    #[error("{path}: row {row}, column {col}: {msg}")]
    OutOfRange {
        /// The offending file.
        path: PathBuf,
        /// Zero-based row of the value.
        row: u64,
        /// Zero-based column of the value.
        col: u64,
        /// What is wrong and what to do about it.
        msg: String,
    },

    /// The container is malformed, corrupt, truncated or of an unknown version.
    #[error("{path}: {msg}")]
    Corrupt {
        /// The offending container.
        path: PathBuf,
        /// What is wrong, with byte offsets where known.
        msg: String,
    },

    /// The output exists and `--force` was not given.
    #[error("{0}: output already exists; pass --force to overwrite it")]
    OutputExists(PathBuf),

    /// The output is the same file as an input: writing it would destroy the input.
    #[error("{output}: --out is the input file {input}; write the output elsewhere")]
    OutputIsInput {
        /// The output path as given.
        output: PathBuf,
        /// The input it is the same file as.
        input: PathBuf,
    },

    /// A configuration value is invalid (codec parameters, chunk size, ...).
    #[error("{0}")]
    Config(String),

    /// Two inputs that must agree do not (dims, rows, codec).
    #[error("{0}")]
    Mismatch(String),

    /// `merge` was not given every shard.
    #[error(
        "shard {k} of {n} (rows {first_row}..{end_row}) is missing: run `vectro compress ... --shard {k}/{n}` and merge again with its output"
    )]
    MissingShard {
        /// The missing shard, from 0.
        k: u32,
        /// The number of shards.
        n: u32,
        /// Its first row.
        first_row: u64,
        /// One past its last row.
        end_row: u64,
    },

    /// The run was cancelled (e.g. by Ctrl-C or SIGTERM) at a chunk boundary or between
    /// training steps.
    #[error("cancelled (Ctrl-C or SIGTERM): stopped at a chunk boundary or training step")]
    Cancelled,

    /// Another process is writing the same output (it holds the lock on the partial file).
    #[error(
        "{target}: another vectro process is writing this output (it holds the lock on {lock}); wait for it to finish, or write to another path"
    )]
    Locked {
        /// The final output path.
        target: PathBuf,
        /// The locked partial file.
        lock: PathBuf,
    },

    /// Training a codec on a sample failed: its arithmetic left the finite range, or a
    /// decomposition did not converge.
    #[error("{0}")]
    Training(String),

    /// The system refused to start a thread: a limit on processes and threads (`ulimit -u`,
    /// a container's pids limit) or memory for its stack. Every command reports it the
    /// same way, before or in place of any work, with exit code 4 (a retry may help).
    #[error(
        "could not start {threads} worker thread(s): {reason}; a limit on processes and threads is reached (ulimit -u, or a container's pids limit) or memory is short: {}",
        if *threads > 1 { "pass a smaller --threads (threads= in Python), or raise the limit" } else { "raise the limit, or stop other processes of this user" }
    )]
    Threads {
        /// The worker threads asked for.
        threads: usize,
        /// The system's reason, e.g. "Resource temporarily unavailable (os error 11)".
        reason: String,
    },

    /// A worker thread panicked: a bug in Vectro, not in the input.
    #[error("internal error: a worker panicked: {0}; please report this")]
    WorkerPanic(String),
}

/// The broad category of an [`Error`], for exit codes and retries.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The input data or container is bad; rerunning will not help.
    BadInput,
    /// The operating system failed an operation; a retry may help.
    Io,
    /// The request itself is invalid.
    Usage,
    /// The run was cancelled.
    Cancelled,
    /// A bug in Vectro.
    Internal,
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. }
            | Error::Locked { .. }
            | Error::Truncated { .. }
            | Error::Threads { .. } => ErrorKind::Io,
            Error::BadNpy { .. }
            | Error::NonFinite { .. }
            | Error::OutOfRange { .. }
            | Error::Corrupt { .. }
            | Error::Mismatch(_)
            | Error::MissingShard { .. }
            | Error::Training(_) => ErrorKind::BadInput,
            Error::OutputExists(_) | Error::OutputIsInput { .. } | Error::Config(_) => {
                ErrorKind::Usage
            }
            Error::Cancelled => ErrorKind::Cancelled,
            Error::WorkerPanic(_) => ErrorKind::Internal,
        }
    }

    /// Wraps an I/O error with the file and the action.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }

    /// This error with an I/O failure on the unnamed output of a streaming writer (which
    /// knows it only as `<output>`) put on `path`, the file it was writing; any
    /// other error as it is.
    #[must_use]
    pub fn on_output(self, path: &std::path::Path) -> Self {
        match self {
            Error::Io {
                path: p,
                action,
                source,
            } if p.as_os_str() == UNNAMED_OUTPUT => Error::Io {
                path: path.to_path_buf(),
                action,
                source,
            },
            e => e,
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            msg: msg.into(),
        }
    }

    pub(crate) fn bad_npy(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::BadNpy {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
