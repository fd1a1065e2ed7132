//! The first two principal axes of a small sample, by subspace iteration on `Xᵀ X` (never
//! formed: each step is two passes over the sample), so no linear-algebra dependency and
//! no `dims × dims` matrix, whatever the dimension.

/// Two principal axes of a sample and the variance along each.
#[derive(Debug, Clone)]
pub struct Axes {
    /// The sample's mean, which the axes are centred on.
    pub mean: Vec<f64>,
    /// Unit axes, the first of the most variance; each signed so that its largest
    /// component is positive.
    pub axes: [Vec<f64>; 2],
    /// Variance along each axis.
    pub variance: [f64; 2],
    /// Total variance of the sample (the trace of its covariance).
    pub total_variance: f64,
}

impl Axes {
    /// Coordinates of `row` on the two axes.
    pub fn project(&self, row: &[f32]) -> [f64; 2] {
        let mut p = [0f64; 2];
        for (a, pa) in self.axes.iter().zip(&mut p) {
            *pa = row
                .iter()
                .zip(&self.mean)
                .zip(a)
                .map(|((&x, m), w)| (x as f64 - m) * w)
                .sum();
        }
        p
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalise(v: &mut [f64]) -> f64 {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    n
}

/// `Xᵀ X v / n` for the centred rows `x`.
fn cov_times(x: &[Vec<f64>], v: &[f64]) -> Vec<f64> {
    let mut out = vec![0f64; v.len()];
    for row in x {
        let s = dot(row, v);
        for (o, r) in out.iter_mut().zip(row) {
            *o += s * r;
        }
    }
    let n = x.len().max(1) as f64;
    out.iter_mut().for_each(|o| *o /= n);
    out
}

/// The two principal axes of `rows` (each `dims` long). Deterministic: the start vectors
/// are fixed and the iteration count bounded.
pub fn axes(rows: &[&[f32]], dims: usize) -> Axes {
    let n = rows.len().max(1) as f64;
    let mut mean = vec![0f64; dims];
    for r in rows {
        for (m, &x) in mean.iter_mut().zip(*r) {
            *m += x as f64 / n;
        }
    }
    let x: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect())
        .collect();
    let total_variance = x.iter().map(|r| dot(r, r)).sum::<f64>() / n;
    // Fixed, generic start vectors (not orthogonal to any axis in practice).
    let mut a: Vec<f64> = (0..dims).map(|i| 1.0 + (i as f64 * 0.7).sin()).collect();
    let mut b: Vec<f64> = (0..dims).map(|i| (i as f64 * 1.3 + 0.5).cos()).collect();
    normalise(&mut a);
    for _ in 0..500 {
        let mut na = cov_times(&x, &a);
        let mut nb = cov_times(&x, &b);
        normalise(&mut na);
        let p = dot(&nb, &na);
        nb.iter_mut().zip(&na).for_each(|(y, z)| *y -= p * z);
        normalise(&mut nb);
        let moved = 1.0 - dot(&na, &a).abs() + 1.0 - dot(&nb, &b).abs();
        a = na;
        b = nb;
        if moved < 1e-13 {
            break;
        }
    }
    // The pair spans the top-2 subspace; rotate within it to the eigenvectors (a 2 × 2
    // symmetric eigenproblem), so the first axis carries the most variance.
    let (ca, cb) = (cov_times(&x, &a), cov_times(&x, &b));
    let (saa, sab, sbb) = (dot(&a, &ca), dot(&a, &cb), dot(&b, &cb));
    let theta = 0.5 * (2.0 * sab).atan2(saa - sbb);
    let (c, s) = (theta.cos(), theta.sin());
    let mut u: Vec<f64> = a.iter().zip(&b).map(|(p, q)| c * p + s * q).collect();
    let mut w: Vec<f64> = a.iter().zip(&b).map(|(p, q)| -s * p + c * q).collect();
    let var = |v: &[f64]| dot(v, &cov_times(&x, v));
    let (mut vu, mut vw) = (var(&u), var(&w));
    if vw > vu {
        std::mem::swap(&mut u, &mut w);
        std::mem::swap(&mut vu, &mut vw);
    }
    for v in [&mut u, &mut w] {
        let big = v
            .iter()
            .copied()
            .fold(0f64, |m, z| if z.abs() > m.abs() { z } else { m });
        if big < 0.0 {
            v.iter_mut().for_each(|z| *z = -*z);
        }
    }
    Axes {
        mean,
        axes: [u, w],
        variance: [vu, vw],
        total_variance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn finds_the_axes_of_a_known_spread() {
        // Variance 9 along (1,1,0,0)/√2, 4 along (0,0,1,0), 0.25 along e4.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut gauss = || {
            let (u, v): (f64, f64) = (rng.random(), rng.random());
            (-2.0 * (u.max(1e-12)).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
        };
        let rows: Vec<Vec<f32>> = (0..4000)
            .map(|_| {
                let (p, q, r) = (3.0 * gauss(), 2.0 * gauss(), 0.5 * gauss());
                let s = std::f64::consts::FRAC_1_SQRT_2;
                vec![(p * s + 5.0) as f32, (p * s) as f32, q as f32, r as f32]
            })
            .collect();
        let refs: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
        let ax = axes(&refs, 4);
        let s = std::f64::consts::FRAC_1_SQRT_2;
        assert!(dot(&ax.axes[0], &[s, s, 0.0, 0.0]) > 0.999, "{:?}", ax.axes);
        assert!(
            dot(&ax.axes[1], &[0.0, 0.0, 1.0, 0.0]) > 0.999,
            "{:?}",
            ax.axes
        );
        assert!(
            (ax.variance[0] / 9.0 - 1.0).abs() < 0.1,
            "{:?}",
            ax.variance
        );
        assert!(
            (ax.variance[1] / 4.0 - 1.0).abs() < 0.1,
            "{:?}",
            ax.variance
        );
        assert!((ax.mean[0] - 5.0).abs() < 0.2);
        assert!(ax.total_variance > ax.variance[0] + ax.variance[1]);
        // The mean projects to the origin.
        let m: Vec<f32> = ax.mean.iter().map(|&v| v as f32).collect();
        let p = ax.project(&m);
        assert!(p[0].abs() < 1e-5 && p[1].abs() < 1e-5);
    }
}
