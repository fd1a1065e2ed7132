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

use super::search::{Floors, Metric, Queries};
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
    table(book, q, |a, b| (a - b) * (a - b))
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

/// Rows per tile of [`AdcTables::scan`]: their codes (`ROW_TILE × m` bytes, 48 KiB at
/// m = 48) stay in cache while every query's table is swept over them.
const ROW_TILE: usize = 1024;

/// One lookup table per query over a PQ/OPQ codebook, built once per eval and then used
/// on every chunk's codes: eval's search over the compressed rows without decoding them.
///
/// The score of row `x̂` (the decoded row; `ŷ = x̂·R` its rotated form for OPQ, the
/// concatenation of its centroids) for query `q` (unit length for cosine) is greater for
/// closer rows, and is exactly the metric over the reconstruction, up to rounding:
/// - `l2`: `−Σ_s ‖q_s − c_s‖² = −‖qR − ŷ‖² = −‖q − x̂‖²` (tables of squared distances; a
///   rotation preserves distances). It ranks as the float path's `2q·x̂ − ‖x̂‖²` does.
/// - `ip`: `Σ_s q_s·c_s = qR·ŷ = q·x̂` (tables of inner products; a rotation preserves them).
/// - `cos`: the `ip` sum over `‖x̂‖ = ‖ŷ‖ = √(Σ_s ‖c_s‖²)`. The subspaces split the
///   coordinates, so the squared norm has no cross terms: it is `m` lookups in one table of
///   centroid norms shared by all queries, once per row, from the codes alone. A zero
///   reconstruction scores 0, as in the float path.
///
/// Each row's sum runs over the subspaces in order, so scores, and results, are the same
/// for any thread count or chunking. The tables take `queries × m × 2^nbits × 4` bytes
/// (4.9 MB for 100 queries at m = 48, nbits = 8).
#[derive(Debug)]
pub(crate) struct AdcTables {
    m: usize,
    ksub: usize,
    nbits: u8,
    code_bytes: usize,
    metric: Metric,
    /// `queries × m × ksub`.
    tables: Vec<f32>,
    /// `‖c_{s,j}‖²` at `s × ksub + j` (cosine only, else empty).
    norms: Vec<f32>,
}

impl AdcTables {
    /// The tables of every query of `queries` (as prepared for their metric).
    pub(crate) fn new(book: &Codebook, queries: &Queries) -> AdcTables {
        let (d, n) = (book.dims, queries.len());
        let mut q = vec![0f32; n * d];
        for (i, out) in q.chunks_exact_mut(d.max(1)).enumerate() {
            out.copy_from_slice(queries.get(i));
        }
        if let Some(r) = &book.rotation {
            let mut rotated = vec![0f32; q.len()];
            rotate(&q, d, r, &mut rotated);
            q = rotated;
        }
        let metric = queries.metric();
        let tables = q
            .par_chunks_exact(d.max(1))
            .flat_map_iter(|qv| match metric {
                Metric::L2 => distance_table(book, qv),
                Metric::Ip | Metric::Cos => product_table(book, qv),
            })
            .collect();
        let norms = if metric == Metric::Cos {
            book.centroids
                .chunks_exact(book.dsub())
                .map(|c| c.iter().map(|v| v * v).sum())
                .collect()
        } else {
            Vec::new()
        };
        AdcTables {
            m: book.m,
            ksub: book.ksub(),
            nbits: book.nbits,
            code_bytes: book.code_bytes(),
            metric,
            tables,
            norms,
        }
    }

    /// The top-`k` of every query over `codes` (the codes of consecutive rows from
    /// `first_row`), each query's own row excluded and candidates below its floor in
    /// `floors` skipped: [`Queries::scan`] on the codes instead of decoded rows.
    pub(crate) fn scan(
        &self,
        queries: &Queries,
        codes: &[u8],
        first_row: u64,
        k: usize,
        floors: &Floors,
    ) -> Vec<TopK> {
        let (m, ksub) = (self.m, self.ksub);
        let nq = queries.len();
        let mut heaps: Vec<TopK> = (0..nq)
            .map(|i| TopK::with_floor(k, floors.get(i)))
            .collect();
        if k == 0 || nq == 0 || self.code_bytes == 0 {
            return heaps;
        }
        // Each tile's codes as table offsets `s × ksub + j`, unpacked once for all queries.
        let mut offsets: Vec<u32> = Vec::with_capacity(ROW_TILE * m);
        let mut inv_norm: Vec<f32> = Vec::with_capacity(ROW_TILE);
        for (b, tile) in codes.chunks(ROW_TILE * self.code_bytes).enumerate() {
            let base = first_row + (b * ROW_TILE) as u64;
            offsets.clear();
            for code in tile.chunks_exact(self.code_bytes) {
                offsets.extend((0..m).map(|s| (s * ksub + get_code(code, s, self.nbits)) as u32));
            }
            if self.metric == Metric::Cos {
                inv_norm.clear();
                inv_norm.extend(offsets.chunks_exact(m).map(|row| {
                    let nsq: f32 = row.iter().map(|&o| self.norms[o as usize]).sum();
                    if nsq > 0.0 { 1.0 / nsq.sqrt() } else { 0.0 }
                }));
            }
            for (qi, heap) in heaps.iter_mut().enumerate() {
                let table = &self.tables[qi * m * ksub..(qi + 1) * m * ksub];
                let own = queries.own(qi);
                for (g, group) in offsets.chunks(LANES * m).enumerate() {
                    let sums = lookup_sums(table, group, m);
                    for (r, &sum) in sums.iter().take(group.len() / m).enumerate() {
                        let j = g * LANES + r;
                        let id = base + j as u64;
                        if Some(id) == own {
                            continue;
                        }
                        let score = match self.metric {
                            Metric::L2 => -sum,
                            Metric::Ip => sum,
                            Metric::Cos => sum * inv_norm[j],
                        };
                        heap.push(score, id);
                    }
                }
            }
        }
        heaps.iter_mut().for_each(TopK::shrink);
        heaps
    }
}

/// Rows summed side by side in [`lookup_sums`].
const LANES: usize = 8;

/// The table sums of up to [`LANES`] rows (`group`: their offsets, `m` per row). Each
/// row's sum is one chain of dependent adds, so `LANES` independent chains run side by
/// side to keep the adder busy; each still adds its subspaces in order from 0, so the
/// result does not depend on the grouping. Missing rows sum to 0.
#[inline]
fn lookup_sums(table: &[f32], group: &[u32], m: usize) -> [f32; LANES] {
    let mut acc = [0f32; LANES];
    let rows = group.len() / m;
    if rows == LANES {
        for s in 0..m {
            for (r, a) in acc.iter_mut().enumerate() {
                *a += table[group[r * m + s] as usize];
            }
        }
    } else {
        for (a, row) in acc.iter_mut().zip(group.chunks_exact(m)) {
            *a = row.iter().fold(0.0, |t, &o| t + table[o as usize]);
        }
    }
    acc
}

/// `table[s × ksub + j] = q_s · c_{s,j}`.
fn product_table(book: &Codebook, q: &[f32]) -> Vec<f32> {
    table(book, q, |a, b| a * b)
}

/// `table[s × ksub + j] = Σ_t term(q_s[t], c_{s,j}[t])`, one entry per centroid.
fn table(book: &Codebook, q: &[f32], term: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    let dsub = book.dsub();
    book.centroids
        .chunks_exact(dsub)
        .enumerate()
        .map(|(i, c)| {
            let s = i / book.ksub();
            let qs = &q[s * dsub..(s + 1) * dsub];
            qs.iter().zip(c).map(|(&a, &b)| term(a, b)).sum()
        })
        .collect()
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
