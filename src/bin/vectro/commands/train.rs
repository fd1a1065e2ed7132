use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;
use vectro::codec::{TrainOptions, Trained};
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
    /// binary-itq only: alternations of the rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    itq_iterations: Option<u32>,
    /// pq and opq: mean squared reconstruction error per row on the sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    distortion: Option<f64>,
    /// binary-itq: the squared sign error `‖B − (X − μ)R‖²` per row on the sample.
    #[serde(skip_serializing_if = "Option::is_none")]
    itq_loss: Option<f64>,
    fingerprint: String,
    output_bytes: u64,
    seconds: f64,
}

pub fn run(a: TrainArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let (input_path, output) = (
        a.input.clone().expect("resolved"),
        a.output.clone().expect("resolved"),
    );
    vectro::output::check_not_input(&output, [input_path.as_path()])?;
    let start = Instant::now();
    let threads = vectro::par::resolve_threads(a.common.threads);
    let pool = vectro::par::pool(threads)?;
    let bar = Bar::new(a.common.quiet || a.common.json, "train");
    let opts = TrainOptions {
        train_rows: a.train_rows,
        cancel: Some(cancel),
    };
    // Created before training: an existing or unwritable output fails at once.
    let out = AtomicOutput::create(&output, a.force, Durability::Fsync)?;
    let input = vectro::source::InputOptions {
        column: a.column.clone(),
    };
    let trained = pool.install(|| {
        vectro::pipeline::train::train_with(&input_path, &input, &a.codec, &opts, &bar)
    });
    // The bar is cleared before anything else is printed, on success or not.
    vectro::Progress::finish(&bar);
    let trained = trained?;
    // Recorded so that `compress --codebook` writes the header a direct training run
    // writes (metadata key `train`).
    let recipe = vectro::codec::training_recipe(&a.codec, trained.dims(), a.train_rows)?;
    let bytes = trained.to_vcb(recipe.as_deref());
    out.commit_bytes(&bytes)?;
    let mut s = Summary {
        input: input_path.display().to_string(),
        output: output.display().to_string(),
        codec: trained.name(),
        train_rows: 0,
        kmeans_iterations: 0,
        opq_iterations: 0,
        itq_iterations: None,
        distortion: None,
        itq_loss: None,
        fingerprint: format!("{:08x}", trained.fingerprint()),
        output_bytes: bytes.len() as u64,
        seconds: start.elapsed().as_secs_f64(),
    };
    match &trained {
        Trained::Pq(book) => {
            let f = book.facts;
            s.train_rows = f.sample_rows;
            s.kmeans_iterations = f.kmeans_iterations;
            s.opq_iterations = f.opq_iterations;
            s.distortion = Some(f.distortion);
        }
        Trained::Rq(rq) => {
            let f = rq.facts();
            s.train_rows = f.sample_rows;
            s.kmeans_iterations = f.kmeans_iterations;
            s.distortion = Some(f.distortion);
        }
        Trained::Sq(sq) => s.train_rows = sq.mean_rows(),
        Trained::Itq(itq) => {
            s.train_rows = u64::from(itq.train_rows());
            s.itq_iterations = Some(itq.iterations());
            s.itq_loss = Some(f64::from(itq.loss()));
        }
    }
    if a.common.json {
        print_json(&s)?;
    } else {
        let how = match (s.itq_iterations, s.distortion) {
            _ if matches!(trained, Trained::Sq(_)) => "the mean of the sample".to_string(),
            (Some(it), _) => format!(
                "{it} itq iterations, loss {:.6}",
                s.itq_loss.unwrap_or_default()
            ),
            (None, d) => format!(
                "{} k-means iterations{}, distortion {:.6}",
                s.kmeans_iterations,
                if s.opq_iterations > 0 {
                    format!(", {} opq rounds", s.opq_iterations)
                } else {
                    String::new()
                },
                d.unwrap_or_default()
            ),
        };
        outln!(
            "trained {} on {} rows in {:.2} s: {how}; wrote {} ({}, codebook {})",
            s.codec,
            s.train_rows,
            s.seconds,
            s.output,
            human_bytes(s.output_bytes),
            s.fingerprint
        );
    }
    Ok(exit_codes::OK)
}
