//! The settings of a compress run and what it reports.

use std::path::PathBuf;

use serde::Serialize;

use crate::codec::CodecRequest;
use crate::codec::auto::{AutoReport, Target};
use crate::format::shard::Shard;
use crate::output::Durability;

/// Rows `--codec auto` samples when not told otherwise.
pub const DEFAULT_SAMPLE: usize = 2000;

/// Settings of a compress run.
#[derive(Debug, Clone)]
pub struct CompressOptions {
    /// The codec `--codec` asks for, parsed ([`CodecRequest::parse`], or `"int4:rotate=1"
    /// .parse()`). `None` (the default) means int8, or with a [`codebook`](Self::codebook)
    /// the codec the codebook holds; a request next to a codebook must match it.
    pub codec: Option<CodecRequest>,
    /// A finer codec of the same rows stored beside `codec` in every chunk (`--rescore`;
    /// format 1.6): `codec` becomes the search tier and this the rescoring tier, which
    /// rows decode from. It must need no training and take more bytes a row than `codec`.
    pub rescore: Option<CodecRequest>,
    /// Worker threads; 0 means the available cores.
    pub threads: usize,
    /// Rows per chunk; `None` picks [`default_chunk_rows`](super::default_chunk_rows).
    pub chunk_rows: Option<u32>,
    /// Overwrite an existing output.
    pub overwrite: bool,
    /// fsync before the rename, or not.
    pub durability: Durability,
    /// Compress only this shard of the input's chunks.
    pub shard: Option<Shard>,
    /// Compress each chunk payload with zstd at this level.
    pub zstd: Option<i32>,
    /// The quality target of `codec = "auto"`.
    pub target: Option<Target>,
    /// Rows sampled by `codec = "auto"`.
    pub sample: usize,
    /// Continue the partial output an interrupted run left, if it matches this run.
    pub resume: bool,
    /// Keep the partial output on an I/O error or a cancel, for a later `resume`.
    pub keep_partial: bool,
    /// A frozen `.vcb` codebook to encode with instead of training (`--codebook`).
    pub codebook: Option<PathBuf>,
    /// Rows to train `pq`/`opq` on (`--train-rows`); `None` means `min(rows, 65536)`.
    pub train_rows: Option<u64>,
    /// A file of one id per input row (`--ids`): a `.npy` of integers or strings, or text
    /// with one id a line; the container then stores each row's id (format 1.4).
    pub ids: Option<PathBuf>,
    /// The id column of a Parquet or Arrow input (`--id-column`), stored as `ids` are.
    pub id_column: Option<String>,
    /// Other columns of a Parquet or Arrow input stored with the rows, per chunk
    /// (`--payload-columns`; format 1.5); empty for none.
    pub payload_columns: Vec<String>,
    /// How to read the input beyond its path (`--column` of a Parquet or Arrow input).
    pub input: crate::source::InputOptions,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            codec: None,
            rescore: None,
            threads: 0,
            chunk_rows: None,
            overwrite: false,
            durability: Durability::Fsync,
            shard: None,
            zstd: None,
            target: None,
            sample: DEFAULT_SAMPLE,
            resume: false,
            keep_partial: true,
            codebook: None,
            train_rows: None,
            ids: None,
            id_column: None,
            payload_columns: Vec::new(),
            input: crate::source::InputOptions::default(),
        }
    }
}

/// What a compress run did.
#[derive(Debug, Clone, Serialize)]
pub struct CompressSummary {
    /// The input file.
    pub input: PathBuf,
    /// The output file.
    pub output: PathBuf,
    /// The codec used.
    pub codec: String,
    /// Rows compressed.
    pub rows: u64,
    /// Dimensions per row.
    pub dims: u64,
    /// Chunks written.
    pub chunks: u64,
    /// Input file size.
    pub input_bytes: u64,
    /// Output file size.
    pub output_bytes: u64,
    /// `input_bytes / output_bytes`.
    pub ratio: f64,
    /// Wall time.
    pub seconds: f64,
    /// Input MB (10⁶ bytes) per second.
    pub mb_per_s: f64,
    /// Peak resident memory of the process.
    pub peak_rss_bytes: u64,
    /// The shard compressed, as `K/N`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// True if a complete, verified output of this shard (or, with `resume`, of this whole
    /// run) was already there: nothing was done.
    pub already_complete: bool,
    /// The zstd level of the payload stage, if any.
    pub zstd: Option<i32>,
    /// What `--codec auto` measured and chose.
    pub auto: Option<AutoReport>,
    /// Rows taken from an interrupted run's partial output (`resume`).
    pub resumed_rows: u64,
    /// Why a partial output found with `resume` was not reused.
    pub partial_discarded: Option<String>,
    /// True if the trained codec (pq, opq, binary-itq) was taken from an earlier run's
    /// output (the partial a `resume` continues, or a finished output or shard) instead
    /// of training again.
    pub training_reused: bool,
}
