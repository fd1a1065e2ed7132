//! Exact brute-force search of a block of rows: queries × rows in tiles, one matrix
//! multiply per tile (`matrixmultiply::sgemm`, which picks AVX-512/AVX2+FMA kernels at
//! run time), then each tile's scores go into bounded per-query top-k heaps. The full
//! distance matrix never exists: at most one `QUERY_TILE × ROW_TILE` tile of scores does.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Serialize;

use super::filter::RowFilter;
use super::topk::TopK;
use crate::error::{Error, Result};

/// Queries per tile. Many queries per multiply amortise the packing of each row tile,
/// which matrixmultiply redoes on every call (packing was 16% of the time at 128).
const QUERY_TILE: usize = 1024;
/// Rows per tile: with `QUERY_TILE` one tile of scores is 2 MiB.
const ROW_TILE: usize = 512;

/// How neighbours are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Inner product, greater is closer.
    Ip,
    /// Cosine similarity, greater is closer.
    #[default]
    Cos,
    /// Euclidean distance, smaller is closer.
    L2,
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Metric> {
        match s {
            "ip" => Ok(Metric::Ip),
            "cos" => Ok(Metric::Cos),
            "l2" => Ok(Metric::L2),
            _ => Err(Error::Config(format!(
                "unknown metric '{s}'; use ip, cos or l2"
            ))),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::Ip => "ip",
            Metric::Cos => "cos",
            Metric::L2 => "l2",
        })
    }
}

impl Metric {
    /// The ranking score of a row, greater is closer, from `q·x` and the row's squared
    /// norm. For cosine the query is already unit length; for L2, `2q·x − |x|²` ranks as
    /// `−|q − x|²` does (the `|q|²` term is the same for every row).
    #[inline]
    pub(crate) fn per_row(self, norm_sq: f32) -> (f32, f32) {
        match self {
            Metric::Ip => (1.0, 0.0),
            Metric::Cos if norm_sq > 0.0 => (1.0 / norm_sq.sqrt(), 0.0),
            Metric::Cos => (0.0, 0.0),
            Metric::L2 => (2.0, -norm_sq),
        }
    }

    /// The score of one row for one query, without a matrix multiply (rescoring uses it).
    pub(crate) fn score(self, q: &[f32], x: &[f32]) -> f32 {
        let (dot, nsq) = dot_and_norm(q, x);
        let (mul, add) = self.per_row(nsq);
        dot * mul + add
    }
}

/// The query set, prepared for a metric.
#[derive(Debug, Clone)]
pub struct Queries {
    /// `n × dims`, unit length for cosine.
    data: Vec<f32>,
    dims: usize,
    /// For queries sampled from the data: each query's own row, excluded from its results.
    own: Option<Vec<u64>>,
    metric: Metric,
}

impl Queries {
    /// Prepares `data` (`n × dims`). `own[i]` is the row query `i` was taken from.
    pub fn new(mut data: Vec<f32>, dims: usize, own: Option<Vec<u64>>, metric: Metric) -> Queries {
        if metric == Metric::Cos {
            for q in data.chunks_exact_mut(dims) {
                let n = q.iter().map(|x| x * x).sum::<f32>().sqrt();
                if n > 0.0 {
                    q.iter_mut().for_each(|x| *x /= n);
                }
            }
        }
        Queries {
            data,
            dims,
            own,
            metric,
        }
    }

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dims).unwrap_or(0)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Query `i`, as prepared.
    pub fn get(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The row query `i` came from, if sampled.
    pub fn own(&self, i: usize) -> Option<u64> {
        self.own.as_ref().map(|o| o[i])
    }

    /// Exact top-`k` of every query over `rows` (`n × dims`, row ids from `first_row`),
    /// ignoring candidates below each query's floor in `floors`.
    pub fn scan(&self, rows: &[f32], first_row: u64, k: usize, floors: &Floors) -> Vec<TopK> {
        self.scan_filtered(rows, first_row, k, floors, None)
    }

    /// [`Queries::scan`] over only the rows `filter` allows (all with `None`).
    pub fn scan_filtered(
        &self,
        rows: &[f32],
        first_row: u64,
        k: usize,
        floors: &Floors,
        filter: Option<&RowFilter>,
    ) -> Vec<TopK> {
        let d = self.dims;
        let mut heaps: Vec<TopK> = (0..self.len())
            .map(|i| TopK::with_floor(k, floors.get(i)))
            .collect();
        if k == 0 || self.is_empty() {
            return heaps;
        }
        let mut tile = vec![0f32; QUERY_TILE.min(self.len()) * ROW_TILE];
        let mut mul = Vec::with_capacity(ROW_TILE);
        let mut add = Vec::with_capacity(ROW_TILE);
        for (b, block) in rows.chunks(ROW_TILE * d).enumerate() {
            let n = block.len() / d;
            let base = first_row + (b * ROW_TILE) as u64;
            mul.clear();
            add.clear();
            for x in block.chunks_exact(d) {
                let (m, a) = self.metric.per_row(dot_and_norm(x, x).1);
                mul.push(m);
                add.push(a);
            }
            for q0 in (0..self.len()).step_by(QUERY_TILE) {
                let m = QUERY_TILE.min(self.len() - q0);
                let qs = &self.data[q0 * d..(q0 + m) * d];
                let scores = &mut tile[..m * n];
                dot_tile(qs, block, d, scores);
                for (i, row) in scores.chunks_exact(n).enumerate() {
                    let heap = &mut heaps[q0 + i];
                    let own = self.own(q0 + i);
                    for (j, &s) in row.iter().enumerate() {
                        let id = base + j as u64;
                        if Some(id) != own && filter.is_none_or(|f| f.allows(id)) {
                            heap.push(s * mul[j] + add[j], id);
                        }
                    }
                }
            }
        }
        heaps.iter_mut().for_each(TopK::shrink);
        heaps
    }
}

/// Each query's best known floor: the worst score of its merged top-k once full. Workers
/// read it to skip candidates that cannot win; only the (single) sink raises it.
#[derive(Debug)]
pub struct Floors(Vec<AtomicU32>);

impl Floors {
    /// `n` floors at −∞.
    pub fn new(n: usize) -> Floors {
        Floors(
            (0..n)
                .map(|_| AtomicU32::new(f32::NEG_INFINITY.to_bits()))
                .collect(),
        )
    }

    /// Query `i`'s floor (−∞ past the end, e.g. for an empty set).
    pub fn get(&self, i: usize) -> f32 {
        self.0.get(i).map_or(f32::NEG_INFINITY, |a| {
            f32::from_bits(a.load(Ordering::Relaxed))
        })
    }

    /// Raises query `i`'s floor to `v` if higher.
    pub fn raise(&self, i: usize, v: f32) {
        if v > self.get(i) {
            self.0[i].store(v.to_bits(), Ordering::Relaxed);
        }
    }
}

/// `(q·x, x·x)` in f32, over eight lanes so that it vectorises.
fn dot_and_norm(q: &[f32], x: &[f32]) -> (f32, f32) {
    let (mut dot, mut nsq) = ([0f32; 8], [0f32; 8]);
    let (cq, cx) = (q.chunks_exact(8), x.chunks_exact(8));
    let tail: (f32, f32) = cq
        .remainder()
        .iter()
        .zip(cx.remainder())
        .fold((0.0, 0.0), |(d, n), (a, b)| (d + a * b, n + b * b));
    for (a, b) in cq.zip(cx) {
        for t in 0..8 {
            dot[t] += a[t] * b[t];
            nsq[t] += b[t] * b[t];
        }
    }
    (
        dot.iter().sum::<f32>() + tail.0,
        nsq.iter().sum::<f32>() + tail.1,
    )
}

/// `out[i][j] = q_i · x_j` for `m` queries and `n` rows, both row-major with `d` columns.
pub(crate) fn dot_tile(q: &[f32], x: &[f32], d: usize, out: &mut [f32]) {
    let m = q.len() / d;
    let n = x.len() / d;
    assert!(q.len() == m * d && x.len() == n * d && out.len() == m * n);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: A is `q` viewed as m×d (row stride d), B is `x` viewed as d×n (column j is
    // row j of `x`: row stride 1, column stride d), C is `out` as m×n (row stride n). The
    // assert above proves each view lies inside its slice, and `out` aliases neither
    // input. With beta = 0, C need not be initialised.
    unsafe {
        matrixmultiply::sgemm(
            m,
            d,
            n,
            1.0,
            q.as_ptr(),
            d as isize,
            1,
            x.as_ptr(),
            1,
            d as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemm_tile_matches_plain_dot_products() {
        let d = 13;
        let q: Vec<f32> = (0..5 * d).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
        let x: Vec<f32> = (0..9 * d).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
        let mut out = vec![0f32; 5 * 9];
        dot_tile(&q, &x, d, &mut out);
        for i in 0..5 {
            for j in 0..9 {
                let want: f32 = (0..d).map(|t| q[i * d + t] * x[j * d + t]).sum();
                assert_eq!(out[i * 9 + j], want, "({i}, {j})");
            }
        }
    }

    #[test]
    fn metric_names_round_trip() {
        for m in [Metric::Ip, Metric::Cos, Metric::L2] {
            assert_eq!(m.to_string().parse::<Metric>().unwrap(), m);
        }
        assert!(
            "dot"
                .parse::<Metric>()
                .unwrap_err()
                .to_string()
                .contains("ip, cos or l2")
        );
    }
}
