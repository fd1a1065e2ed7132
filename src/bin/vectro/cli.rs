//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Compress embedding vectors: streaming, out of core, checksummed.
#[derive(Debug, Parser)]
#[command(name = "vectro", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compress a float .npy (rows, dims) into a .vectro container.
    Compress(CompressArgs),
    /// Decode a .vectro container back into a float32 .npy.
    Decompress(DecompressArgs),
    /// Show what a container holds.
    Info(InfoArgs),
    /// Measure what compression cost: reconstruction error and recall@k.
    Eval(EvalArgs),
    /// Write synthetic, embedding-like data (clustered, anisotropic) to a .npy.
    Generate(GenerateArgs),
    /// Generate a sample, compress, evaluate and decompress it, and report.
    Demo(DemoArgs),
    /// Train a pq/opq codebook on a sample of a .npy and write it as a reusable .vcb.
    Train(TrainArgs),
}

#[derive(Debug, Args)]
pub struct Common {
    /// Worker threads [default: available cores].
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    pub threads: usize,
    /// Hide the progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompressArgs {
    /// Input .npy (float32, float16 or float64; C order; 2-D).
    #[arg(long = "in", value_name = "NPY")]
    pub input: PathBuf,
    /// Output container.
    #[arg(long = "out", value_name = "VECTRO")]
    pub output: PathBuf,
    /// Codec and parameters, e.g. int8, pq:m=48, opq:m=48,nbits=4.
    #[arg(long, default_value = "int8")]
    pub codec: String,
    /// Encode with this frozen pq/opq codebook (from `vectro train`) instead of training.
    #[arg(long, value_name = "VCB")]
    pub codebook: Option<PathBuf>,
    /// Rows sampled to train pq/opq [default: min(rows, 65536)].
    #[arg(long)]
    pub train_rows: Option<u64>,
    /// Rows per chunk [default: about 4 MiB of input].
    #[arg(long)]
    pub chunk_rows: Option<u32>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    /// Skip fsync before the rename (scratch outputs only: a crash may lose the file).
    #[arg(long)]
    pub no_fsync: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct DecompressArgs {
    /// Input container.
    #[arg(long = "in", value_name = "VECTRO")]
    pub input: PathBuf,
    /// Output .npy (float32).
    #[arg(long = "out", value_name = "NPY")]
    pub output: PathBuf,
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
    /// The container.
    pub file: PathBuf,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The original .npy.
    #[arg(long)]
    pub orig: PathBuf,
    /// Its container.
    #[arg(long)]
    pub comp: PathBuf,
    /// The k of recall@k (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 10, 100])]
    pub k: Vec<usize>,
    /// Rows of the original to use as queries.
    #[arg(long, default_value_t = 100)]
    pub sample_queries: usize,
    /// Seed of the query sample.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub common: Common,
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
    /// Output .npy.
    #[arg(long = "out", value_name = "NPY")]
    pub output: PathBuf,
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

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Input .npy to sample the training rows from.
    #[arg(long = "in", value_name = "NPY")]
    pub input: PathBuf,
    /// Codec to train, e.g. pq:m=48 or opq:m=48,nbits=4.
    #[arg(long)]
    pub codec: String,
    /// Output codebook (.vcb).
    #[arg(long = "out", value_name = "VCB")]
    pub output: PathBuf,
    /// Rows sampled for training [default: min(rows, 65536)].
    #[arg(long)]
    pub train_rows: Option<u64>,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: Common,
}
