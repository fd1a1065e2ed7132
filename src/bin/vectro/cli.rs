//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use vectro::codec::CodecRequest;

/// Compress embedding vectors: streaming, out of core, checksummed.
#[derive(Debug, Parser)]
#[command(name = "vectro", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once a process and never moved in a loop: the size of the largest variant costs
// nothing, and boxing it would only add indirection to every `a.field`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compress a float .npy (rows, dims) into a .vectro container.
    Compress(CompressArgs),
    /// Decode a .vectro container back into a float32 .npy.
    Decompress(DecompressArgs),
    /// Show what a container (or a .vcb codebook) holds.
    Info(InfoArgs),
    /// Measure what compression cost: reconstruction error and recall@k.
    Eval(EvalArgs),
    /// Write synthetic, embedding-like data (clustered, anisotropic) to a .npy.
    Generate(GenerateArgs),
    /// Generate a sample, compress, evaluate and decompress it, and report.
    Demo(DemoArgs),
    /// Join the shards of one `compress --shard` run into one container, without re-encoding.
    Merge(MergeArgs),
    /// Print or write chosen rows, decoded: `--rows 5,17,100..110`.
    Get(GetArgs),
    /// Stream every row out as JSON Lines (for vector-DB upserts) or as the prototype's .npz.
    Export(ExportArgs),
    /// Convert the Python prototype's .npz (q, scales, dims) into an int8 container.
    ImportNpz(ImportNpzArgs),
    /// Compare codecs on one data set: size, speed, cosine, recall@k.
    Bench(BenchArgs),
    /// Check every checksum of a container (header, chunks, index, trailer), streaming.
    Verify(VerifyArgs),
    /// Train a pq, opq or binary-itq codebook on a sample of a .npy and write it as a reusable .vcb.
    Train(TrainArgs),
    /// Find the k nearest rows of each query, scored on the compressed codes.
    Search(SearchArgs),
    /// Write one self-contained HTML page (and SVG figures) of what compression did.
    Report(ReportArgs),
    /// Serve the containers of a directory over HTTP: a JSON API (rows, search) and a dashboard.
    Serve(ServeArgs),
    /// Print a shell completion script on stdout: `vectro completions bash > /etc/bash_completion.d/vectro`.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout: `vectro man > vectro.1; man ./vectro.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct Common {
    /// Worker threads, at most 1024 [default: available cores].
    #[arg(short = 'j', long, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = parse_threads)]
    pub threads: usize,
    /// No output but errors: no progress bar, no notes, no summary (not even --json's).
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as one JSON object (keys in docs/cli.md), and an error as one
    /// JSON object on stderr.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompressArgs {
    /// Input: .npy (float32, float16 or float64; C order; 2-D), Parquet, Arrow/Feather,
    /// .fvecs, .fbin, FILE.safetensors[:TENSOR] or FILE.npz[:MEMBER]; a directory or a
    /// quoted glob ('dump/part-*.parquet') of them, read as one matrix in natural order; or -
    /// for a .npy on stdin. See docs/inputs.md.
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
    /// The output container (or give it with -o).
    #[arg(value_name = "OUTPUT")]
    pub output_pos: Option<PathBuf>,
    /// Old spelling of INPUT.
    #[arg(long = "in", value_name = "INPUT", hide = true)]
    pub in_flag: Option<PathBuf>,
    /// The Parquet or Arrow column of vectors [default: the one column of float vectors].
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,
    /// Output container, or - for stdout. With --shard, {shard} is replaced by K, and a
    /// missing directory is created.
    #[arg(short = 'o', long = "out", value_name = "VECTRO")]
    pub output: Option<PathBuf>,
    /// Codec and parameters: int8, int4, binary, f16, bf16, sq, pq, opq, binary-itq (e.g.
    /// int4:rotate=1, sq:bits=3, pq:m=48), or auto [default: int8; with --codebook, the codebook's].
    #[arg(long, value_name = "NAME[:k=v,...]")]
    pub codec: Option<CodecRequest>,
    /// Also store a finer codec of the same rows in every chunk (a rescoring tier; format
    /// 1.6): --codec is then searched and this re-ranks and decodes (e.g. --codec
    /// binary:rotate=1 --rescore int8).
    #[arg(long, value_name = "NAME[:k=v,...]")]
    pub rescore: Option<CodecRequest>,
    /// Also compress each chunk with zstd at this level (-7..=22; 3 is a good default).
    #[arg(long, value_name = "LEVEL", allow_negative_numbers = true)]
    pub zstd: Option<i32>,
    /// With --codec auto: the smallest codec whose mean cosine over every row is at least
    /// this.
    #[arg(long, value_name = "X", conflicts_with = "min_recall", allow_negative_numbers = true, value_parser = parse_gate)]
    pub min_cosine: Option<f64>,
    /// With --codec auto: the smallest codec whose recall@10 over the whole input is at
    /// least this, with 95% one-sided confidence (500 sampled queries searched over every
    /// row, as `vectro eval` measures it). Candidates: binary:rotate=1, sq:bits=1..8,
    /// int4:rotate=1, int8:rotate=1, int8, f16, and the trained binary-itq,
    /// sq:bits=1,centre=1 (a mean), pq and opq (m = d/24, d/8, d/4), rq, each trained once on --sample rows unless a candidate no
    /// bigger already meets the target on the sample.
    #[arg(long, value_name = "X", value_parser = parse_gate)]
    pub min_recall: Option<f64>,
    /// With --codec auto: rows sampled (seeded) to screen out candidates far below the
    /// target before the whole input is measured, and to train the trained candidates on
    /// (--train-rows overrides the latter).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub sample: usize,
    /// Encode with this frozen pq, opq or binary-itq codebook (from `vectro train`) instead
    /// of training; a --codec beside it must name the codebook's codec.
    #[arg(long, value_name = "VCB")]
    pub codebook: Option<PathBuf>,
    /// Rows sampled to train pq/opq/binary-itq [default: min(rows, 65536); binary-itq: min(rows, 20000)].
    #[arg(long)]
    pub train_rows: Option<u64>,
    /// One id per input row, stored with it (format 1.4): a 1-D .npy of integers
    /// (uint64/int64, not negative) or strings (dtype <U..), or a UTF-8 text file with one
    /// id a line. `get`, `export` and Python return them.
    #[arg(long, value_name = "FILE")]
    pub ids: Option<PathBuf>,
    /// The id column of a Parquet or Arrow input (integers or strings), stored as --ids
    /// stores ids.
    #[arg(long, value_name = "NAME", conflicts_with = "ids")]
    pub id_column: Option<String>,
    /// Other columns of a Parquet or Arrow input to store with the rows (integers, floats,
    /// bool, strings, or lists of those), returned by get, export and Python. See
    /// docs/inputs.md.
    #[arg(long, value_name = "A,B,...", value_delimiter = ',')]
    pub payload_columns: Option<Vec<String>>,
    /// Rows per chunk [default: about 4 MiB of input].
    #[arg(long)]
    pub chunk_rows: Option<u32>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    /// Skip fsync before the rename (scratch outputs only: a crash may lose the file).
    #[arg(long)]
    pub no_fsync: bool,
    /// Compress only shard K of N (K from 0), or `auto`: K from JOB_COMPLETION_INDEX
    /// (Kubernetes, with --shards) or SLURM_ARRAY_TASK_ID/COUNT (Slurm). A shard whose
    /// complete, verified output exists is left as it is (exit 0).
    #[arg(long, value_name = "K/N|auto")]
    pub shard: Option<String>,
    /// The number of shards, for --shard auto under a Kubernetes Indexed Job.
    #[arg(long, value_name = "N", requires = "shard")]
    pub shards: Option<u32>,
    /// Continue an interrupted run from its partial output (.<name>.partial beside the
    /// output), keeping every checksum-valid chunk; starts afresh if it does not match. An
    /// output already complete, verified and of this input and settings is left as it is (exit 0).
    /// pq, opq and binary-itq reuse the codebook of such a file instead of training again.
    #[arg(long)]
    pub resume: bool,
    /// On an error, Ctrl-C or SIGTERM, delete the partial output instead of keeping it for --resume.
    #[arg(long)]
    pub no_resume_file: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shard files, directories of them, or quoted globs, in any order.
    #[arg(required = true, value_name = "PART")]
    pub parts: Vec<PathBuf>,
    /// The merged container, or - for stdout.
    #[arg(short = 'o', long = "out", value_name = "VECTRO")]
    pub output: PathBuf,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    /// Skip fsync before the rename.
    #[arg(long)]
    pub no_fsync: bool,
    /// No output but errors: no progress bar, no summary (not even --json's).
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as one JSON object (keys in docs/cli.md), and an error as one
    /// JSON object on stderr.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The directory of .vectro files (scanned again on every listing).
    pub dir: PathBuf,
    /// The port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8080, conflicts_with = "bind")]
    pub port: u16,
    /// Listen on another address, e.g. 0.0.0.0:8080 (every interface): the only way to
    /// serve beyond this machine. Give a token with it.
    #[arg(long, value_name = "ADDR:PORT")]
    pub bind: Option<std::net::SocketAddr>,
    /// A file whose first line is the bearer token every request must carry (else the
    /// environment variable VECTRO_SERVE_TOKEN; never on the command line).
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The largest request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_body: usize,
    /// The most rows or ids one batch read may ask for.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub max_batch: usize,
    /// The most queries one search may send.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub max_queries: usize,
    /// The largest k of a search.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub max_k: usize,
    /// Searches run at once (each uses --threads); more wait their turn.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub searches: usize,
    /// Worker threads of one search, at most 1024 [default: available cores].
    #[arg(short = 'j', long, value_name = "N", default_value_t = 0, hide_default_value = true, value_parser = parse_threads)]
    pub threads: usize,
    /// Print only the address line (on stdout, which scripts wait for), no note on stopping.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The containers, checked one after another.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print the report as one JSON object (an array of them for several files; keys in
    /// docs/cli.md), and an error as one JSON object on stderr.
    #[arg(long)]
    pub json: bool,
    /// No output but errors: nothing for a sound file; of a damaged file, only the verdict
    /// and the first bad chunk, not every problem.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct DecompressArgs {
    /// Input container.
    #[arg(value_name = "CONTAINER")]
    pub input: Option<PathBuf>,
    /// The output .npy (or give it with -o).
    #[arg(value_name = "OUTPUT")]
    pub output_pos: Option<PathBuf>,
    /// Old spelling of CONTAINER.
    #[arg(long = "in", value_name = "VECTRO", hide = true)]
    pub in_flag: Option<PathBuf>,
    /// Output .npy, or - for stdout.
    #[arg(short = 'o', long = "out", value_name = "NPY")]
    pub output: Option<PathBuf>,
    /// Element type of the .npy: f32, f16, or bf16 (its bit patterns as uint16, since
    /// numpy has no bfloat16) [default: the input's: f16 for a float16 input, else f32].
    #[arg(long, value_name = "f32|f16|bf16")]
    pub dtype: Option<vectro::OutDtype>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    /// Skip fsync before the rename.
    #[arg(long)]
    pub no_fsync: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// The containers, or codebooks (.vcb) from `vectro train`, shown one after another.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Print as one JSON object (an array of them for several files; keys in docs/cli.md),
    /// and an error as one JSON object on stderr.
    #[arg(long)]
    pub json: bool,
    /// Read only the header, index and trailer (instant on any size); by default every
    /// chunk's checksum is checked too, at disk speed.
    #[arg(long)]
    pub quick: bool,
    /// No output but errors: only the exit code tells (0: every checksum read matches).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The original input, in any form compress reads: a file, a directory or a quoted glob
    /// of them (docs/inputs.md).
    #[arg(value_name = "INPUT")]
    pub orig_pos: Option<PathBuf>,
    /// Its container.
    #[arg(value_name = "CONTAINER")]
    pub comp_pos: Option<PathBuf>,
    /// Old spelling of INPUT.
    #[arg(long = "orig", value_name = "INPUT", hide = true)]
    pub orig_flag: Option<PathBuf>,
    /// Old spelling of CONTAINER.
    #[arg(long = "comp", value_name = "CONTAINER", hide = true)]
    pub comp_flag: Option<PathBuf>,
    /// The Parquet or Arrow column of vectors of INPUT [default: the one column of float vectors].
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,
    /// The k of recall@k: one or more, spaced or comma-separated (--k 1 10 100).
    #[arg(long, value_delimiter = ',', num_args = 1.., default_values_t = vec![1, 10, 100])]
    pub k: Vec<usize>,
    /// Rows of the original to use as queries (each excluded from its own neighbours).
    #[arg(long, default_value_t = 100, conflicts_with = "queries")]
    pub sample_queries: usize,
    /// A .npy of queries to use instead of sampled rows.
    #[arg(long, value_name = "NPY")]
    pub queries: Option<PathBuf>,
    /// Seed of the query sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Ranking metric of the search: ip, cos or l2.
    #[arg(long, default_value = "cos")]
    pub metric: vectro::eval::Metric,
    /// Found candidates to re-rank with the original floats (rescored recall).
    #[arg(long, default_value_t = 100)]
    pub rerank: usize,
    /// Exit with code 1 if the mean cosine is below this.
    #[arg(long, allow_negative_numbers = true, value_parser = parse_gate)]
    pub min_cosine: Option<f64>,
    /// Exit with code 1 if recall@k is below this for any --k.
    #[arg(long, value_parser = parse_gate)]
    pub min_recall: Option<f64>,
    /// Exit with code 1 if the normalised MSE is above this.
    #[arg(long)]
    pub max_nmse: Option<f64>,
    /// How the neighbours in the compressed data are found.
    #[arg(long, value_enum, default_value_t = EvalSearch::Auto)]
    pub search: EvalSearch,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EvalSearch {
    /// pq/opq: over the codes by ADC, as PQ is searched in practice; others: exact-float.
    Auto,
    /// Exact search over the decoded rows, whatever the codec.
    ExactFloat,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Rows to write.
    #[arg(long, default_value_t = 10_000)]
    pub rows: u64,
    /// Dimensions per row.
    #[arg(long, default_value_t = 384)]
    pub dims: u64,
    /// Number of clusters (topics).
    #[arg(long, default_value_t = 100)]
    pub clusters: usize,
    /// Seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The output .npy (or give it with -o).
    #[arg(value_name = "OUTPUT")]
    pub output_pos: Option<PathBuf>,
    /// Output .npy.
    #[arg(short = 'o', long = "out", value_name = "NPY")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Rows of the generated sample.
    #[arg(long, default_value_t = 20_000)]
    pub rows: u64,
    /// Dimensions of the generated sample.
    #[arg(long, default_value_t = 384)]
    pub dims: u64,
    /// Keep the demo's files in this directory instead of a temporary one.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GetFormat {
    /// A JSON array of {"id": N, "vector": [...]} objects.
    Json,
    /// A float32 .npy of the rows, in the order asked.
    Npy,
    /// A header line `id,d0,d1,...`, then one line a row.
    Csv,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The container.
    pub file: PathBuf,
    /// Rows to decode, numbered from 0 in the whole input (a shard's rows from its first
    /// row): a comma-separated list of N, A..B (B excluded) and A..=B (B included), kept in
    /// the order given, repeats allowed.
    #[arg(
        long,
        value_name = "LIST",
        required_unless_present = "ids",
        conflicts_with = "ids"
    )]
    pub rows: Option<String>,
    /// Rows to decode by their stored id: a comma-separated list of ids (integers for u64
    /// ids; for a container without ids, its global row numbers). Found by a scan of the
    /// ids, in bounded memory; every row carrying an asked-for id is returned.
    #[arg(long, value_name = "LIST")]
    pub ids: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GetFormat::Json)]
    pub format: GetFormat,
    /// Write to this file instead of stdout (`-` is stdout).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing --out.
    #[arg(long)]
    pub force: bool,
    /// No output but errors, besides the rows asked for (get prints no summary).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The container to search.
    pub file: PathBuf,
    /// The queries: a .npy (float32, float16 or float64; rows × the container's dims); `-`
    /// reads it from stdin.
    #[arg(long, value_name = "NPY")]
    pub queries: PathBuf,
    /// Results per query.
    #[arg(long, short, default_value_t = 10)]
    pub k: usize,
    /// How rows are ranked: ip (inner product), cos (cosine) or l2 (squared Euclidean
    /// distance, smallest first).
    #[arg(long, default_value = "cos")]
    pub metric: vectro::search::Metric,
    /// Binary codecs: rank by the Hamming distance between the query's sign bits and the
    /// rows' (XOR + popcount); scores are then distances, unless rescored.
    #[arg(long)]
    pub hamming: bool,
    /// Re-rank the best N candidates with finer rows: those of --rescore-with, else a
    /// tiered file's finest tier, else the container's own decoded rows [default with
    /// --rescore-with or on a tiered file: 100].
    #[arg(long, value_name = "N")]
    pub rescore: Option<usize>,
    /// pq/opq with 4-bit codes: an approximate search that scores in float only the best
    /// R rows of each chunk by the 8-bit fast-scan (at least k), as faiss's fast-scan with
    /// a refine step; 0 searches exactly [default: 0].
    #[arg(long, value_name = "R", default_value_t = 0)]
    pub fast_scan_candidates: usize,
    /// MiB the queries' candidates and scoring tables may take at once; more queries than
    /// fit are searched in blocks, one pass over the container each, with the same results.
    #[arg(long, value_name = "MIB", default_value_t = vectro::search::DEFAULT_MEMORY_BUDGET >> 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub memory: usize,
    /// A container of the same rows with a finer codec (e.g. int8 beside binary), whose
    /// rows re-rank the candidates.
    #[arg(long, value_name = "VECTRO")]
    pub rescore_with: Option<PathBuf>,
    /// Only return these ids: a comma-separated list of N, A..B and A..=B, or @FILE with
    /// one id per line.
    #[arg(long, value_name = "LIST")]
    pub filter_ids: Option<String>,
    /// Output format: json (one {"query", "ids", "scores"} object a line), table, or npy
    /// (needs --out PREFIX: writes PREFIX.ids.npy, int64 with -1 for no result, and
    /// PREFIX.scores.npy, float32).
    #[arg(long, value_enum, default_value_t = SearchFormat::Json)]
    pub format: SearchFormat,
    /// Write to this file (or, for npy, these files) instead of stdout (`-` is stdout).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite an existing --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchFormat {
    /// One JSON object a line: {"query": i, "ids": [...], "scores": [...]}.
    Json,
    /// Aligned text: query, rank, id, score.
    Table,
    /// Two .npy files: PREFIX.ids.npy and PREFIX.scores.npy.
    Npy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One {"id": ID, "vector": [...], PAYLOAD...} object a line.
    Jsonl,
    /// Parquet: id, vector (fixed_size_list<float>), then the payload columns.
    Parquet,
    /// The Python prototype's layout: q (flat int8), scales (float32), dims, and ids. int8 only.
    Npz,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The container.
    pub file: PathBuf,
    /// The output file (or give it with -o).
    #[arg(value_name = "OUTPUT")]
    pub output_pos: Option<PathBuf>,
    /// Output format [default: from the extension of the output: .jsonl (.ndjson), .parquet
    /// (.parq, .pq), .npz; jsonl for -].
    #[arg(long, value_enum)]
    pub format: Option<ExportFormat>,
    /// Output file; `-` streams JSONL to stdout (for piping into an uploader).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// For a container without stored ids: added to each row's number in the whole input
    /// (a shard's rows count from its first row) to make its id.
    #[arg(long, default_value_t = 0)]
    pub id_offset: u64,
    /// With --format parquet: rows per row group, at most [default: about 64 MiB of
    /// vectors].
    #[arg(long, value_name = "N")]
    pub row_group_rows: Option<usize>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    /// Skip fsync before the rename.
    #[arg(long)]
    pub no_fsync: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ImportNpzArgs {
    /// The prototype's .npz (members q, scales, dims).
    pub input: PathBuf,
    /// The output container (or give it with -o).
    #[arg(value_name = "OUTPUT")]
    pub output_pos: Option<PathBuf>,
    /// Output container.
    #[arg(short = 'o', long = "out", value_name = "VECTRO")]
    pub output: Option<PathBuf>,
    /// Rows per chunk [default: about 4 MiB of float32].
    #[arg(long)]
    pub chunk_rows: Option<u32>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    /// Skip fsync before the rename.
    #[arg(long)]
    pub no_fsync: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Benchmark on this input (its first rows read into memory; any form compress reads:
    /// a file, a directory or a quoted glob of them) instead of generated data.
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
    /// Old spelling of INPUT.
    #[arg(long = "in", value_name = "INPUT", hide = true)]
    pub in_flag: Option<PathBuf>,
    /// The Parquet or Arrow column of vectors of INPUT [default: the one column of float vectors].
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,
    /// Rows to generate, or the first rows of INPUT to use [default: 20000 generated; of INPUT, all up to 100000].
    #[arg(long)]
    pub rows: Option<u64>,
    /// Dimensions of the generated data.
    #[arg(long, default_value_t = 384)]
    pub dims: u64,
    /// Codecs to compare: one or more codec strings, spaced or comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        num_args = 1..,
        default_value = "int8,int4,int4:rotate=1,binary,binary:rotate=1,sq:bits=1,sq:bits=2,sq:bits=3,sq:bits=4,f16,bf16"
    )]
    pub codecs: Vec<String>,
    /// Also benchmark this frozen pq, opq, rq or binary-itq codebook (from `vectro train`),
    /// nothing trained; repeat for several.
    #[arg(long, value_name = "VCB")]
    pub codebook: Vec<std::path::PathBuf>,
    /// Rows sampled as queries.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub query_count: usize,
    /// Deprecated spelling of --query-count (a number); a queries file is not taken by bench.
    #[arg(long, value_name = "N", hide = true, conflicts_with = "query_count")]
    pub queries: Option<String>,
    /// The k of recall@k.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Candidates re-ranked with the original floats (rescored recall).
    #[arg(long, default_value_t = 100)]
    pub rerank: usize,
    /// Ranking metric: ip, cos or l2.
    #[arg(long, default_value = "cos")]
    pub metric: vectro::eval::Metric,
    /// Timed runs of encode and decode; the median is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub runs: usize,
    /// Seed of the generated data and the query sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The original input, in any form compress reads (docs/inputs.md), then the
    /// containers compressed from it, compared side by side.
    #[arg(value_name = "PATH", required_unless_present = "orig")]
    pub containers: Vec<PathBuf>,
    /// Old spelling of INPUT (the positionals are then all containers).
    #[arg(long = "orig", value_name = "INPUT", hide = true)]
    pub orig: Option<PathBuf>,
    /// The Parquet or Arrow column of vectors of INPUT [default: the one column of float vectors].
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,
    /// Instead of containers: codecs to try on the first --rows rows of INPUT: one or more
    /// codec strings, spaced or comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub codecs: Vec<String>,
    /// With --codecs: the rows of INPUT they are tried on.
    #[arg(long, default_value_t = 100_000, requires = "codecs")]
    pub rows: u64,
    /// The HTML page to write [default: the first container's path with .report.html in
    /// place of its extension (x.vectro -> x.report.html); with --codecs, --orig's].
    #[arg(short = 'o', long = "out", value_name = "HTML")]
    pub output: Option<PathBuf>,
    /// Also write each figure as a standalone SVG file into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub svg_dir: Option<PathBuf>,
    /// With --svg-dir: also write each figure as a PNG beside its SVG (twice its size).
    #[arg(long, requires = "svg_dir")]
    pub png: bool,
    /// A JSON array of other systems' points for the recall-versus-bytes figure:
    /// [{"name", "bytes_per_vector", "recall", "k"?}] (docs/report.md).
    #[arg(long, value_name = "JSON")]
    pub peers: Option<PathBuf>,
    /// The k of the recall plotted against bytes per vector.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Rows of the original to use as queries (each excluded from its own neighbours).
    #[arg(long, default_value_t = 100)]
    pub sample_queries: usize,
    /// Seed of the query and PCA samples.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Ranking metric of the search: ip, cos or l2.
    #[arg(long, default_value = "cos")]
    pub metric: vectro::eval::Metric,
    /// Found candidates re-ranked with the original floats (rescored recall); also how deep
    /// the movement figure follows the compressed ranking.
    #[arg(long, default_value_t = 100)]
    pub rerank: usize,
    /// Rows drawn in the PCA scatter.
    #[arg(long, default_value_t = 500)]
    pub pca_sample: usize,
    /// Queries shown in the movement figure.
    #[arg(long, default_value_t = 5)]
    pub movement_queries: usize,
    /// Overwrite an existing page or SVG files.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Input to sample the training rows from, in any format compress reads (a directory or
    /// a quoted glob of files is one matrix in natural order, as compress reads it).
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
    /// The output codebook (or give it with -o).
    #[arg(value_name = "OUTPUT")]
    pub output_pos: Option<PathBuf>,
    /// Old spelling of INPUT.
    #[arg(long = "in", value_name = "INPUT", hide = true)]
    pub in_flag: Option<PathBuf>,
    /// The Parquet or Arrow column of vectors [default: the one column of float vectors].
    #[arg(long, value_name = "NAME")]
    pub column: Option<String>,
    /// Codec to train, e.g. pq:m=48, opq:m=48,nbits=4 or binary-itq.
    #[arg(long)]
    pub codec: String,
    /// Output codebook (.vcb).
    #[arg(short = 'o', long = "out", value_name = "VCB")]
    pub output: Option<PathBuf>,
    /// Rows sampled for training [default: min(rows, 65536); binary-itq: min(rows, 20000)].
    #[arg(long)]
    pub train_rows: Option<u64>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: Common,
}

impl Command {
    /// Whether the command writes its data (rows, a container) to stdout, so that a closed
    /// stdout must be an error rather than a silent loss. After [`Command::resolve`].
    pub fn writes_data_to_stdout(&self) -> bool {
        let dash = |p: &std::path::Path| p.as_os_str() == "-";
        match self {
            Command::Compress(a) => a.output.as_deref().is_some_and(dash),
            Command::Decompress(a) => a.output.as_deref().is_some_and(dash),
            Command::Merge(a) => dash(&a.output),
            Command::Export(a) => a.output.as_deref().is_some_and(dash),
            Command::Get(a) => a.output.as_deref().is_none_or(dash),
            Command::Search(a) => a.output.as_deref().is_none_or(dash),
            _ => false,
        }
    }

    /// Whether the command writes binary to stdout (a container, a .npy), which a
    /// terminal must never receive. After [`Command::resolve`].
    pub fn writes_binary_to_stdout(&self) -> Option<&'static str> {
        let dash = |p: &Option<PathBuf>| p.as_deref().is_some_and(|p| p.as_os_str() == "-");
        match self {
            Command::Compress(a) if dash(&a.output) => Some("a container"),
            Command::Decompress(a) if dash(&a.output) => Some("a .npy"),
            Command::Merge(a) if a.output.as_os_str() == "-" => Some("a container"),
            Command::Export(a)
                if dash(&a.output) && a.format.is_some_and(|f| f != ExportFormat::Jsonl) =>
            {
                Some("binary")
            }
            _ => None,
        }
    }

    /// `-q`: no output but errors (serve's `-q` keeps its address line: scripts wait for it).
    pub fn quiet(&self) -> bool {
        self.quiet_json().0
    }

    /// `--json`: summaries, and errors, as JSON.
    pub fn json(&self) -> bool {
        self.quiet_json().1
    }

    /// `(-q, --json)` as the command spells them.
    fn quiet_json(&self) -> (bool, bool) {
        let c = |c: &Common| (c.quiet, c.json);
        match self {
            Command::Compress(a) => c(&a.common),
            Command::Decompress(a) => c(&a.common),
            Command::Eval(a) => c(&a.common),
            Command::Generate(a) => c(&a.common),
            Command::Demo(a) => c(&a.common),
            Command::Export(a) => c(&a.common),
            Command::ImportNpz(a) => c(&a.common),
            Command::Bench(a) => c(&a.common),
            Command::Train(a) => c(&a.common),
            Command::Search(a) => c(&a.common),
            Command::Report(a) => c(&a.common),
            Command::Info(a) => (a.quiet, a.json),
            Command::Merge(a) => (a.quiet, a.json),
            Command::Verify(a) => (a.quiet, a.json),
            Command::Get(a) => (a.quiet, false),
            Command::Serve(_) | Command::Completions(_) | Command::Man => (false, false),
        }
    }

    /// Puts each input and output path in its one place, whichever spelling named it: the
    /// positionals (`compress IN OUT`), `-o/--out`, or the old flags kept as hidden aliases
    /// (`--in`, `--orig`, `--comp`). A flag fills its slot; the positionals fill the
    /// others in order. Checked before any file is touched.
    pub fn resolve(&mut self) -> Result<(), vectro::Error> {
        match self {
            Command::Compress(a) => {
                let [i, o] = place_all(
                    "compress",
                    [a.input.take(), a.output_pos.take()],
                    [("INPUT", a.in_flag.take()), ("OUTPUT", a.output.take())],
                )?;
                (a.input, a.output) = (Some(i), Some(o));
            }
            Command::Decompress(a) => {
                let [i, o] = place_all(
                    "decompress",
                    [a.input.take(), a.output_pos.take()],
                    [("CONTAINER", a.in_flag.take()), ("OUTPUT", a.output.take())],
                )?;
                (a.input, a.output) = (Some(i), Some(o));
            }
            Command::Train(a) => {
                let [i, o] = place_all(
                    "train",
                    [a.input.take(), a.output_pos.take()],
                    [("INPUT", a.in_flag.take()), ("OUTPUT", a.output.take())],
                )?;
                (a.input, a.output) = (Some(i), Some(o));
            }
            Command::Eval(a) => {
                let [i, c] = place_all(
                    "eval",
                    [a.orig_pos.take(), a.comp_pos.take()],
                    [
                        ("INPUT", a.orig_flag.take()),
                        ("CONTAINER", a.comp_flag.take()),
                    ],
                )?;
                (a.orig_pos, a.comp_pos) = (Some(i), Some(c));
            }
            Command::Bench(a) => {
                let [i] = place("bench", [a.input.take()], [("INPUT", a.in_flag.take())])?;
                if i.is_some() && a.dims != 384 {
                    return Err(vectro::Error::Config(
                        "bench: --dims shapes generated data; with an INPUT the dims are its own"
                            .into(),
                    ));
                }
                if i.is_none() && a.column.is_some() {
                    return Err(vectro::Error::Config(
                        "bench: --column names a column of INPUT; give an INPUT".into(),
                    ));
                }
                a.input = i;
            }
            Command::Generate(a) => {
                let [o] = place_all(
                    "generate",
                    [a.output_pos.take()],
                    [("OUTPUT", a.output.take())],
                )?;
                a.output = Some(o);
            }
            Command::Export(a) => {
                let [o] = place_all(
                    "export",
                    [a.output_pos.take()],
                    [("OUTPUT", a.output.take())],
                )?;
                a.output = Some(o);
            }
            Command::ImportNpz(a) => {
                let [o] = place_all(
                    "import-npz",
                    [a.output_pos.take()],
                    [("OUTPUT", a.output.take())],
                )?;
                a.output = Some(o);
            }
            Command::Report(a) => {
                if a.orig.is_none() {
                    if a.containers.is_empty() {
                        return Err(missing("report", "INPUT"));
                    }
                    a.orig = Some(a.containers.remove(0));
                }
                match (a.containers.is_empty(), a.codecs.is_empty()) {
                    (true, true) => {
                        return Err(vectro::Error::Config(
                            "report needs containers to compare, or --codecs to try: \
                             vectro report INPUT CONTAINER... (or INPUT --codecs int8,int4)"
                                .into(),
                        ));
                    }
                    (false, false) => {
                        return Err(vectro::Error::Config(
                            "report takes containers or --codecs, not both".into(),
                        ));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Fills each slot from its flag, else from the next positional; a positional left over is
/// an error.
fn place<const N: usize>(
    cmd: &str,
    positional: [Option<PathBuf>; N],
    flags: [(&str, Option<PathBuf>); N],
) -> Result<[Option<PathBuf>; N], vectro::Error> {
    let mut queue = positional.into_iter().flatten();
    let slots = flags.map(|(_, flag)| flag.or_else(|| queue.next()));
    if let Some(extra) = queue.next() {
        return Err(vectro::Error::Config(format!(
            "{cmd}: unexpected argument '{}': every path it takes is already given",
            extra.display()
        )));
    }
    Ok(slots)
}

/// [`place`], then every slot must be filled: the first empty one is named in the error.
fn place_all<const N: usize>(
    cmd: &str,
    positional: [Option<PathBuf>; N],
    flags: [(&str, Option<PathBuf>); N],
) -> Result<[PathBuf; N], vectro::Error> {
    let names = flags.each_ref().map(|(name, _)| *name);
    let slots = place(cmd, positional, flags)?;
    if let Some((_, name)) = slots.iter().zip(names).find(|(p, _)| p.is_none()) {
        return Err(missing(cmd, name));
    }
    // Every slot is filled, so the default never stands in.
    Ok(slots.map(Option::unwrap_or_default))
}

fn missing(cmd: &str, what: &str) -> vectro::Error {
    let usage = match cmd {
        "compress" => "vectro compress INPUT OUTPUT (or INPUT -o OUTPUT)",
        "decompress" => "vectro decompress CONTAINER OUTPUT (or CONTAINER -o OUTPUT)",
        "train" => "vectro train INPUT OUTPUT --codec pq:m=48",
        "eval" => "vectro eval INPUT CONTAINER",
        "report" => "vectro report INPUT CONTAINER...",
        "generate" => "vectro generate OUTPUT",
        "export" => "vectro export CONTAINER OUTPUT",
        _ => "vectro import-npz NPZ OUTPUT",
    };
    vectro::Error::Config(format!("{cmd} needs {what}: {usage}"))
}

/// The most worker threads `--threads` takes. Memory in flight grows with the thread count
/// (about three chunks per thread), and more threads than this only contend.
pub const MAX_THREADS: usize = 1024;

/// `--threads`: 0 (all cores) up to [`MAX_THREADS`].
fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= MAX_THREADS => Ok(n),
        _ => Err(format!(
            "expected 0 (all cores) to {MAX_THREADS} worker threads, got '{s}'"
        )),
    }
}

/// `--min-cosine`, `--min-recall`: any finite number. NaN and the infinities are refused, since
/// no gate could be met or failed by them; ranges are checked where they apply (compress
/// --codec auto), while eval takes any threshold and reports a gate that cannot pass.
fn parse_gate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("expected a finite number, got '{s}'")),
    }
}
