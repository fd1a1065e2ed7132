//! Vectro's integration tests, in one binary (as ripgrep and qdrant do): one link instead
//! of one per file, and one helpers module.
//!
//! `cargo test --release --test it` runs them all; `cargo test --release --test it
//! scaleout_slurm -- --ignored` runs the real-Slurm test (scripts/test.sh).

mod helpers;

mod access_cli;
mod access_get;
mod access_jsonl;
mod access_npz;
mod access_stream;
mod cli;
mod cli_codecs;
mod cli_dash_and_pipes;
mod cli_grammar;
mod cli_out_guard;
mod cli_temp_files;
mod codec_pipeline;
mod decompress_dtype;
mod eval_adc;
mod eval_cli;
mod eval_metrics;
mod format_compat;
mod golden;
mod hardening;
mod hardening_every_command;
mod hardening_fuzz_replay;
mod hardening_memory;
mod ids;
mod inputs;
mod int8_parity;
mod itq_cli;
mod memory;
mod payload;
mod pq_cli;
mod reliability_corrupt;
mod reliability_fuzz_replay;
mod reliability_matrix;
mod reliability_resume;
mod reliability_write_faults;
mod report;
mod roundtrip;
mod rq_cli;
mod scaleout_deploy;
mod scaleout_shards;
mod scaleout_slurm;
mod scaleout_stream;
mod search;
mod serve;
mod tiers;
mod train_cli;
