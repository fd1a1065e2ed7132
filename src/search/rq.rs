//! Search over `rq` codes by lookup tables, without decoding the rows for the queries.
//!
//! An `rq` row decodes to `x̃ = s · x̂` with `x̂ = Σ_l C_l[c_l]` (one codeword from each of
//! the `m` codebooks, every codebook over all `d` coordinates) and `s` the row's f16 scale
//! (see `crate::codec::rq`). For a query `q`, `q·x̃ = s · Σ_l ⟨q, C_l[c_l]⟩`: one table of
//! `m × 256` inner products per query (`m·256·d` multiply-adds, one matrix multiply of the
//! queries by all the codewords), then `m` lookups and one multiply per row where a decoded
//! row costs `m·d` adds and a `d`-long dot product; the tables are interleaved 16 queries
//! per vector and summed with the pq/opq kernel of [`crate::simd::adc`] ([`block_sums`]).
//!
//! Cosine and L2 also need the decoded row's squared norm `‖x̃‖² = s²‖x̂‖²`, and unlike pq
//! the codebooks overlap, so `‖x̂‖² = Σ_l ‖C_l[c_l]‖² + 2 Σ_{i<j} ⟨C_i[c_i], C_j[c_j]⟩` has
//! `m(m−1)/2` cross terms. A table of them holds `m(m−1)/2 × 256²` floats (31 MB at
//! m = 16, 130 MB at 32), read at random: more memory traffic than summing the row's `m`
//! codewords, which reads `m × d` floats of codebooks that stay in cache. So the norm is
//! the decoded row's own, computed once per row for all queries (faiss's
//! `AdditiveQuantizer` instead stores an encoded norm per row, or reads the cross-term table
//! for small `m`; the scale already stored here makes a second norm redundant). Inner
//! product needs no norm.
//!
//! The ranking is the metric over the decoded rows, as [`Metric`] ranks them: `ip` by
//! `q·x̃`, `cos` by `q·x̃/‖x̃‖` (the query unit length), `l2` by `2q·x̃ − ‖x̃‖²`. Scores
//! equal the brute force over the decoded rows up to float rounding: the table sums add
//! `m` rounded products in another order than a dot product over the decoded row does
//! (a relative error of a few `m·2⁻²⁴` of the magnitudes summed).

use rayon::prelude::*;

use super::exact::{Metric, Queries};
use super::filter::RowFilter;
use super::huge::LanesBuf;
use super::topk::TopK;
use crate::codec::Codec;
use crate::codec::rq::{K, Rq};
use crate::simd::adc::{BLOCK, Lanes, block_sums};

/// Rows summed at a time for one block of queries: their sums take 64 KiB.
const ROW_TILE: usize = 1024;
/// Codebooks whose tables are summed over a row tile at a time: 12 × 16 KiB, within L2
/// beside the sums and the codes.
const GROUP: usize = 12;
/// Query blocks whose tables one matrix multiply computes (64 queries: the products take
/// 1 MiB at m = 16).
const TABLE_BLOCKS: usize = 4;

/// The lookup tables of every query over an `rq` codec, built once per search and used on
/// every chunk's codes.
#[derive(Debug)]
pub struct RqScan {
    codec: Rq,
    metric: Metric,
    /// `⌈queries/16⌉ × m × 256` vectors: `T[b][l][k]` holds `⟨q, C_l[k]⟩` for the 16
    /// queries of block `b`.
    tables: LanesBuf,
    /// Each query's own row (sampled queries), excluded from its results.
    own: Vec<Option<u64>>,
}

impl RqScan {
    /// The tables of the prepared `queries` (unit length for cosine) over `codec`'s
    /// codebooks: one matrix multiply of each group of 64 queries by all the codewords,
    /// groups in parallel on the current rayon pool. The groups are fixed, so the tables
    /// do not depend on the thread count.
    pub fn new(codec: Rq, queries: &Queries) -> RqScan {
        let (d, m, nq) = (codec.dims(), codec.m(), queries.len());
        let per_block = m * K;
        let mut tables = LanesBuf::zeroed(nq.div_ceil(BLOCK) * per_block);
        let books = codec.codebooks();
        tables
            .par_chunks_mut(TABLE_BLOCKS * per_block)
            .enumerate()
            .for_each(|(g, t)| {
                let q0 = g * TABLE_BLOCKS * BLOCK;
                let qn = (TABLE_BLOCKS * BLOCK).min(nq - q0);
                let mut q = Vec::with_capacity(qn * d);
                (q0..q0 + qn).for_each(|i| q.extend_from_slice(queries.get(i)));
                // `prod[i][j] = q_i · codeword j`, codewords in level order.
                let mut prod = vec![0f32; qn * per_block];
                super::exact::dot_tile(&q, books, d, &mut prod);
                for (i, row) in prod.chunks_exact(per_block).enumerate() {
                    let (b, l) = (i / BLOCK, i % BLOCK);
                    let block = &mut t[b * per_block..(b + 1) * per_block];
                    for (e, &v) in block.iter_mut().zip(row) {
                        e.0[l] = v;
                    }
                }
            });
        RqScan {
            codec,
            metric: queries.metric(),
            tables,
            own: (0..nq).map(|i| queries.own(i)).collect(),
        }
    }

    /// The number of queries.
    pub(crate) fn queries(&self) -> usize {
        self.own.len()
    }

    /// Offers every row of `payload` (`n` rows from `first_row`, as the codec encoded
    /// them) that `filter` allows to each query's heap in `heaps` (one per query), each
    /// query's own row excluded.
    pub(crate) fn scan(
        &self,
        payload: &[u8],
        n: usize,
        first_row: u64,
        heaps: &mut [TopK],
        filter: Option<&RowFilter>,
    ) {
        let (d, m) = (self.codec.dims(), self.codec.m());
        let rb = self.codec.row_bytes();
        if n == 0 || heaps.is_empty() {
            return;
        }
        // The chunk's codes back to back (the kernels' layout), scales and norms, once for
        // all queries.
        let mut codes = vec![0u8; n * m];
        let mut scales = vec![0f32; n];
        let mut nsq = vec![0f32; n];
        let mut row = vec![0f32; d];
        for (j, p) in payload[..n * rb].chunks_exact(rb).enumerate() {
            codes[j * m..(j + 1) * m].copy_from_slice(&p[..m]);
            scales[j] = half::f16::from_le_bytes([p[m], p[m + 1]]).to_f32();
            if self.metric != Metric::Ip {
                self.codec.decode(p, 1, &mut row);
                nsq[j] = row.iter().map(|v| v * v).sum();
            }
        }
        let per_row: Vec<(f32, f32)> = nsq.iter().map(|&v| self.metric.per_row(v)).collect();
        let per_block = m * K;
        let mut sums = vec![Lanes::default(); ROW_TILE.min(n)];
        for (b, block) in heaps.chunks_mut(BLOCK).enumerate() {
            let table = &self.tables[b * per_block..(b + 1) * per_block];
            let own = &self.own[b * BLOCK..];
            for t0 in (0..n).step_by(ROW_TILE) {
                let tn = ROW_TILE.min(n - t0);
                let sums = &mut sums[..tn];
                sums.fill(Lanes::default());
                let tile = &codes[t0 * m..(t0 + tn) * m];
                for s0 in (0..m).step_by(GROUP) {
                    block_sums(table, tile, m, 8, s0..(s0 + GROUP).min(m), sums);
                }
                for (j, s) in sums.iter().enumerate() {
                    let r = t0 + j;
                    let id = first_row + r as u64;
                    let (scale, (mul, add)) = (scales[r], per_row[r]);
                    for (l, heap) in block.iter_mut().enumerate() {
                        let score = scale * s.0[l] * mul + add;
                        // The floor test first: most rows fail it.
                        if score >= heap.floor()
                            && own[l] != Some(id)
                            && filter.is_none_or(|f| f.allows(id))
                        {
                            heap.push(score, id);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::codebook::TrainOptions;
    use crate::codec::rq::RqParams;
    use crate::progress::NoProgress;
    use crate::test_rng::Rng;

    /// Rows around 10 centres, in `d` dimensions.
    fn clustered(rng: &mut Rng, n: usize, d: usize) -> Vec<f32> {
        let mut u = || rng.below(20001) as f32 / 10000.0 - 1.0;
        let centres: Vec<f32> = (0..10 * d).map(|_| u()).collect();
        (0..n * d)
            .map(|i| centres[(i / d) % 10 * d + i % d] + 0.5 * u())
            .collect()
    }

    fn trained(x: &[f32], d: usize, m: usize) -> Rq {
        let p = RqParams::parse_keys(&format!("m={m},beam=4,iters=4,refine=1")).unwrap();
        let src = crate::codec::codebook::MemRows::new(x.to_vec(), d);
        Rq::train(&p, &src, &TrainOptions::default(), &NoProgress).unwrap()
    }

    /// Every row's score for every query equals the brute-force metric over the decoded
    /// row within 1e-5 of the largest magnitude, for each metric; and the top-k ids are
    /// the brute force's wherever the brute-force scores around the cut are not near-ties.
    #[test]
    fn table_scores_equal_brute_force_over_the_decoded_rows() {
        let mut rng = Rng(0x5eed_0019);
        let (d, n, nq, k) = (40, 900, 21, 10);
        let x = clustered(&mut rng, n, d);
        let q = clustered(&mut rng, nq, d);
        for m in [4, 8] {
            let rq = trained(&x, d, m);
            let mut payload = vec![0u8; rq.encoded_len(n)];
            rq.encode(&x, &mut payload).unwrap();
            let mut y = vec![0f32; n * d];
            rq.decode(&payload, n, &mut y);
            for metric in [Metric::Ip, Metric::Cos, Metric::L2] {
                let queries = Queries::new(q.clone(), d, None, metric);
                let scan = RqScan::new(rq.clone(), &queries);
                // Every row kept: the heaps hold every score.
                let mut all: Vec<TopK> = vec![TopK::new(n); nq];
                scan.scan(&payload, n, 0, &mut all, None);
                let mut top: Vec<TopK> = vec![TopK::new(k); nq];
                scan.scan(&payload, n, 0, &mut top, None);
                let mut near_ties = 0;
                for i in 0..nq {
                    let qi = queries.get(i);
                    let want: Vec<f64> = y
                        .chunks_exact(d)
                        .map(|r| {
                            let dot: f64 = r.iter().zip(qi).map(|(a, b)| f64::from(a * b)).sum();
                            let nsq: f64 = r.iter().map(|a| f64::from(a * a)).sum();
                            match metric {
                                Metric::Ip => dot,
                                Metric::Cos => dot / nsq.sqrt(),
                                Metric::L2 => 2.0 * dot - nsq,
                            }
                        })
                        .collect();
                    let scale = want.iter().fold(1f64, |a, v| a.max(v.abs()));
                    let got = all[i].sorted();
                    assert_eq!(got.len(), n);
                    for e in &got {
                        let w = want[e.id as usize];
                        assert!(
                            (f64::from(e.score) - w).abs() <= 1e-5 * scale,
                            "m={m} {metric} query {i} row {}: {} vs {w}",
                            e.id,
                            e.score
                        );
                    }
                    let mut order: Vec<usize> = (0..n).collect();
                    order.sort_by(|&a, &b| want[b].total_cmp(&want[a]).then(a.cmp(&b)));
                    // Ids are compared where no two of the first k + 1 are within the
                    // tolerance (a near-tie may swap under rounding).
                    let gaps_ok = order[..=k]
                        .windows(2)
                        .all(|w| want[w[0]] - want[w[1]] > 1e-4 * scale);
                    let ids: Vec<u64> = top[i].sorted().iter().map(|e| e.id).collect();
                    if gaps_ok {
                        let exp: Vec<u64> = order[..k].iter().map(|&r| r as u64).collect();
                        assert_eq!(ids, exp, "m={m} {metric} query {i}");
                    } else {
                        near_ties += 1;
                    }
                }
                assert!(near_ties * 4 < nq, "m={m} {metric}: {near_ties} near-ties");
            }
        }
    }

    /// Own rows and the filter are honoured; a row split across two scans (two chunks)
    /// gives the heaps of one scan.
    #[test]
    fn own_rows_filter_and_chunks() {
        let mut rng = Rng(0x0019_0019);
        let (d, n, nq, k) = (24, 500, 18, 7);
        let x = clustered(&mut rng, n, d);
        let rq = trained(&x, d, 4);
        let mut payload = vec![0u8; rq.encoded_len(n)];
        rq.encode(&x, &mut payload).unwrap();
        let own: Vec<u64> = (0..nq as u64).map(|i| i * 13).collect();
        let q: Vec<f32> = own
            .iter()
            .flat_map(|&r| x[r as usize * d..(r as usize + 1) * d].to_vec())
            .collect();
        let allow: Vec<u64> = (0..n as u64).filter(|r| r % 3 != 1).collect();
        let filter = RowFilter::new(&allow, n as u64);
        for metric in [Metric::Ip, Metric::Cos, Metric::L2] {
            let queries = Queries::new(q.clone(), d, Some(own.clone()), metric);
            let scan = RqScan::new(rq.clone(), &queries);
            let mut one = vec![TopK::new(k); nq];
            scan.scan(&payload, n, 0, &mut one, Some(&filter));
            let mut two = vec![TopK::new(k); nq];
            let cut = 217;
            let rb = rq.row_bytes();
            scan.scan(&payload[..cut * rb], cut, 0, &mut two, Some(&filter));
            scan.scan(
                &payload[cut * rb..],
                n - cut,
                cut as u64,
                &mut two,
                Some(&filter),
            );
            for i in 0..nq {
                let a = one[i].sorted();
                let b = two[i].sorted();
                let bits = |v: &[crate::search::topk::Entry]| -> Vec<(u32, u64)> {
                    v.iter().map(|e| (e.score.to_bits(), e.id)).collect()
                };
                assert_eq!(bits(&a), bits(&b), "{metric} query {i}");
                assert_eq!(a.len(), k);
                for e in &a {
                    assert_ne!(e.id, own[i], "{metric}: own row returned");
                    assert_ne!(e.id % 3, 1, "{metric}: filtered row returned");
                }
            }
        }
    }
}
