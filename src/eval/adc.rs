//! Search over PQ/OPQ codes by asymmetric distance computation (ADC), without decoding.
//!
//! For each query, one table holds the squared distance from each query subvector to each
//! centroid of its subspace (`m × 2^nbits` floats); the distance to a row is then a sum of
//! `m` table lookups. OPQ queries are rotated once, and rotation preserves distances, so
//! the ADC distance is exactly `‖q − x̂‖²` with `x̂` the decoded row, up to rounding.
//!
//! ```
//! # use vectro::codec::{Codebook, Codec, Pq, codebook::TrainingFacts};
//! # use vectro::eval::adc::adc_search;
//! // A codebook as a container's codec parameters hold it, e.g. from
//! // `Codebook::from_params(header.codec.id, &header.codec.params, dims)`.
//! # let book = Codebook { dims: 2, m: 1, nbits: 4, rotation: None,
//! #     centroids: (0..32).map(|i| i as f32).collect(),
//! #     facts: TrainingFacts { sample_rows: 0, kmeans_iterations: 0, opq_iterations: 0,
//! #         distortion: 0.0, seed: 0 } };
//! let codes: Vec<u8> = vec![0, 3, 1]; // rows × code_bytes, the chunk payloads concatenated
//! let queries = [6.0f32, 7.0]; // n_queries × dims
//! let top = adc_search(&book, &codes, &queries, 2);
//! assert_eq!(top, vec![vec![1, 2]]); // row ids of the 2 nearest rows per query, nearest first
//! ```

use rayon::prelude::*;

use super::topk::TopK;
use crate::codec::Codebook;
use crate::codec::opq::rotate;
use crate::codec::pq::get_code;

/// The ids of the `k` rows nearest (squared L2) to each query, nearest first, ties to the
/// smaller id. `codes` holds the rows' codes back to back (`rows × codebook.code_bytes()`,
/// as the chunk payloads are, in row order); `queries` is `n × codebook.dims` floats.
/// Queries run in parallel on the current rayon pool.
///
/// # Panics
/// If `codes` or `queries` is not a whole number of rows.
pub fn adc_search(codebook: &Codebook, codes: &[u8], queries: &[f32], k: usize) -> Vec<Vec<u64>> {
    let (d, cb) = (codebook.dims, codebook.code_bytes());
    assert!(
        codes.len().is_multiple_of(cb) && queries.len().is_multiple_of(d),
        "adc_search: ragged input"
    );
    let rotated;
    let queries = match &codebook.rotation {
        Some(r) => {
            let mut q = vec![0f32; queries.len()];
            rotate(queries, d, r, &mut q);
            rotated = q;
            &rotated[..]
        }
        None => queries,
    };
    queries
        .par_chunks_exact(d)
        .map(|q| {
            let table = distance_table(codebook, q);
            scan(codebook, &table, codes, k)
        })
        .collect()
}

/// `table[s × ksub + j] = ‖q_s − c_{s,j}‖²`.
fn distance_table(book: &Codebook, q: &[f32]) -> Vec<f32> {
    let dsub = book.dsub();
    book.centroids
        .chunks_exact(dsub)
        .enumerate()
        .map(|(i, c)| {
            let s = i / book.ksub();
            let qs = &q[s * dsub..(s + 1) * dsub];
            qs.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum()
        })
        .collect()
}

/// Sums the table lookups of every row and keeps the `k` smallest.
fn scan(book: &Codebook, table: &[f32], codes: &[u8], k: usize) -> Vec<u64> {
    let (ksub, cb) = (book.ksub(), book.code_bytes());
    let mut top = TopK::new(k);
    for (id, code) in codes.chunks_exact(cb).enumerate() {
        let dist: f32 = if book.nbits == 8 {
            code.iter()
                .enumerate()
                .map(|(s, &c)| table[s * ksub + c as usize])
                .sum()
        } else {
            (0..book.m)
                .map(|s| table[s * ksub + get_code(code, s, 4)])
                .sum()
        };
        top.push(-dist, id as u64);
    }
    top.ids(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::pq::{PqParams, train};
    use crate::codec::{Codec, CodecId, Pq};
    use crate::pipeline::NoProgress;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn adc_equals_decode_then_exact_search() {
        let (dims, rows, nq, k) = (16, 600, 20, 10);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let x: Vec<f32> = (0..rows * dims)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        let q: Vec<f32> = (0..nq * dims)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect();
        for (id, text) in [
            (CodecId::Pq, "m=4"),
            (CodecId::Pq, "m=8,nbits=4"),
            (CodecId::Opq, "m=4,opq_iters=2"),
        ] {
            let p = PqParams::parse("pq", text, dims).unwrap();
            let codec = Pq::new(train(id, &p, &x, dims, &NoProgress));
            let mut codes = vec![0u8; codec.encoded_len(rows)];
            codec.encode(&x, &mut codes).unwrap();
            let mut y = vec![0f32; rows * dims];
            codec.decode(&codes, rows, &mut y);
            let got = adc_search(codec.codebook(), &codes, &q, k);
            for (qi, qv) in q.chunks_exact(dims).enumerate() {
                let exact: Vec<f64> = y
                    .chunks_exact(dims)
                    .map(|r| {
                        r.iter()
                            .zip(qv)
                            .map(|(a, b)| f64::from(a - b).powi(2))
                            .sum()
                    })
                    .collect();
                let mut order: Vec<usize> = (0..rows).collect();
                order.sort_by(|&a, &b| exact[a].total_cmp(&exact[b]).then(a.cmp(&b)));
                let want: Vec<u64> = order[..k].iter().map(|&i| i as u64).collect();
                if got[qi] != want {
                    // Only a near-tie, within float rounding, may reorder the answer.
                    for (g, w) in got[qi].iter().zip(&want) {
                        let (a, b) = (exact[*g as usize], exact[*w as usize]);
                        assert!(
                            (a - b).abs() <= 1e-5 * b.max(1.0),
                            "{text} query {qi}: {got:?} vs {want:?}"
                        );
                    }
                }
            }
        }
    }
}
