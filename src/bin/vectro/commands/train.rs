use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;
use vectro::codec::TrainOptions;
use vectro::output::{AtomicOutput, Durability};

use super::{human_bytes, print_json};
use crate::cli::TrainArgs;
use crate::exit_codes;
use crate::progress::Bar;

#[derive(Serialize)]
struct Summary {
    input: String,
    output: String,
    codec: String,
    train_rows: u64,
    kmeans_iterations: u32,
    opq_iterations: u32,
    distortion: f64,
    fingerprint: String,
    bytes: u64,
    seconds: f64,
}

pub fn run(a: TrainArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    vectro::output::check_not_input(&a.output, [a.input.as_path()])?;
    let start = Instant::now();
    let threads = vectro::par::resolve_threads(a.common.threads);
    let pool = vectro::par::pool(threads)?;
    let bar = Bar::new(a.common.quiet || a.common.json, "train");
    let opts = TrainOptions {
        train_rows: a.train_rows,
        cancel: Some(cancel),
    };
    // Created before training: an existing or unwritable output fails at once.
    let out = AtomicOutput::create(&a.output, a.force, Durability::Fsync)?;
    let book = pool.install(|| vectro::pipeline::train::train(&a.input, &a.codec, &opts, &bar))?;
    // Recorded so that `compress --codebook` writes the header a direct training run
    // writes (metadata key `train`).
    let recipe = vectro::codec::training_recipe(&a.codec, book.dims, a.train_rows)?;
    let bytes = book.to_vcb(recipe.as_deref());
    out.commit_bytes(&bytes)?;
    let f = book.facts;
    let s = Summary {
        input: a.input.display().to_string(),
        output: a.output.display().to_string(),
        codec: vectro::Codec::name(&vectro::codec::Pq::new(book.clone())),
        train_rows: f.sample_rows,
        kmeans_iterations: f.kmeans_iterations,
        opq_iterations: f.opq_iterations,
        distortion: f.distortion,
        fingerprint: format!("{:08x}", book.fingerprint()),
        bytes: bytes.len() as u64,
        seconds: start.elapsed().as_secs_f64(),
    };
    if a.common.json {
        print_json(&s)?;
    } else {
        outln!(
            "trained {} on {} rows in {:.2} s: {} k-means iterations{}, distortion {:.6}; wrote {} ({}, codebook {})",
            s.codec,
            s.train_rows,
            s.seconds,
            s.kmeans_iterations,
            if s.opq_iterations > 0 {
                format!(", {} opq rounds", s.opq_iterations)
            } else {
                String::new()
            },
            s.distortion,
            s.output,
            human_bytes(s.bytes),
            s.fingerprint
        );
    }
    Ok(exit_codes::OK)
}
