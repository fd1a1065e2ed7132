//! The coordinate-descent step of anisotropic PQ encoding (see the codec's `aniso`): the
//! centroid of least loss `e(c) + w·(rest + p(c))²` in one subspace.
//!
//! The scalar reference is [`step_scalar`]. The operations are element-wise and the same
//! at every level, and ties go to the lowest index, so every level agrees with it bit for
//! bit.

#[cfg(target_arch = "x86_64")]
mod x86;

use super::Level;

/// What a subspace's loss terms are computed from, so that they need not be stored:
/// `e(c) = ‖x_j‖² + s(c)` (the squared error) and `p(c) = ‖x_j‖² + (s(c) − ‖c‖²)/2`
/// (the error's inner product with `x_j`).
#[derive(Debug, Clone, Copy)]
pub struct Terms<'a> {
    /// The scores `s(c) = ‖c‖² − 2·x_j·c` of the subspace's centroids.
    pub s: &'a [f32],
    /// `‖c‖²` of each centroid.
    pub norms: &'a [f32],
    /// `‖x_j‖²`.
    pub xj2: f32,
}

impl Terms<'_> {
    /// The squared error of centroid `c`.
    #[inline(always)]
    pub fn e(&self, c: usize) -> f32 {
        self.xj2 + self.s[c]
    }

    /// The error's inner product with `x_j` for centroid `c`.
    #[inline(always)]
    pub fn p(&self, c: usize) -> f32 {
        self.xj2 + 0.5 * (self.s[c] - self.norms[c])
    }

    /// The loss of centroid `c`: `e(c) + w·(rest + p(c))²`.
    #[inline(always)]
    pub fn loss(&self, c: usize, rest: f32, w: f32) -> f32 {
        let a = rest + self.p(c);
        self.e(c) + w * (a * a)
    }
}

/// The centroid `c` of least [`Terms::loss`] (the lowest index on ties) and that loss,
/// dispatched to the widest instruction set the CPU has. The operations are element-wise
/// and the same in every variant, so all agree bit for bit with [`step_scalar`].
#[inline]
pub fn step(t: Terms, rest: f32, w: f32) -> (usize, f32) {
    // SAFETY: `Level::detect` only returns levels this CPU runs.
    unsafe { step_on(Level::detect(), t, rest, w) }
}

/// [`step`] at a given level; a level this CPU lacks runs the scalar reference.
#[inline]
pub fn step_at(level: Level, t: Terms, rest: f32, w: f32) -> (usize, f32) {
    let level = if level.runs_here() {
        level
    } else {
        Level::Scalar
    };
    // SAFETY: `runs_here` checked at run time that the CPU has `level`'s features.
    unsafe { step_on(level, t, rest, w) }
}

/// [`step`] at `level`, which this CPU must run.
///
/// # Safety
/// This CPU has `level`'s features ([`Level::runs_here`]).
#[inline(always)]
unsafe fn step_on(level: Level, t: Terms, rest: f32, w: f32) -> (usize, f32) {
    #[cfg(target_arch = "x86_64")]
    match level {
        // SAFETY: the caller guarantees the CPU has AVX-512 F/BW/VL.
        Level::Avx512 => return unsafe { x86::step_avx512(t, rest, w) },
        // SAFETY: the caller guarantees the CPU has AVX2.
        Level::Avx2 => return unsafe { x86::step_avx2(t, rest, w) },
        _ => {}
    }
    let _ = level;
    step_scalar(t, rest, w)
}

/// The reference for [`step`]: the first minimum in index order.
pub fn step_scalar(t: Terms, rest: f32, w: f32) -> (usize, f32) {
    scan_from((usize::MAX, f32::INFINITY), t, rest, w, 0)
}

/// `best` (a loss and its centroid) against the centroids from `from` on: the smallest
/// loss, then the lowest index. All-NaN or infinite losses give centroid 0, as
/// [`super::kmeans::argmin`] does.
fn scan_from(mut best: (usize, f32), t: Terms, rest: f32, w: f32, from: usize) -> (usize, f32) {
    for c in from..t.s.len() {
        let v = t.loss(c, rest, w);
        if v < best.1 || (v == best.1 && c < best.0) {
            best = (c, v);
        }
    }
    if best.0 == usize::MAX {
        let v = if t.s.is_empty() {
            f32::INFINITY
        } else {
            t.loss(0, rest, w)
        };
        return (0, v);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::kmeans::argmin;
    use crate::test_rng::Rng;

    #[test]
    fn step_matches_the_scalar_reference_on_every_level() {
        let mut rng = Rng(13);
        let (xj2, rest, w) = (0.8, 0.3, 0.05);
        for k in [16, 256, 7, 33, 48, 100] {
            let mut sc: Vec<f32> = (0..k).map(|_| rng.centred().abs() + 0.1).collect();
            let mut norms: Vec<f32> = (0..k).map(|_| rng.centred().abs()).collect();
            // A tie at the minimum (the same terms at two centroids): the lower index must
            // win in every variant, whichever lane each falls in.
            if k > 20 {
                for i in [5, 17, k - 1] {
                    (sc[i], norms[i]) = (-1.0, 0.25);
                }
            }
            let t = Terms {
                s: &sc,
                norms: &norms,
                xj2,
            };
            let want = step_scalar(t, rest, w);
            let got = step(t, rest, w);
            assert_eq!(
                (got.0, got.1.to_bits()),
                (want.0, want.1.to_bits()),
                "k={k}"
            );
            if k > 20 {
                assert_eq!(want.0, 5);
            }
            for l in Level::available() {
                let got = step_at(l, t, rest, w);
                assert_eq!(
                    (got.0, got.1.to_bits()),
                    (want.0, want.1.to_bits()),
                    "{} k={k}",
                    l.name()
                );
            }
            // And the same as an argmin over the losses written out.
            let loss: Vec<f32> = (0..k)
                .map(|c| {
                    let (e, p) = (xj2 + sc[c], xj2 + 0.5 * (sc[c] - norms[c]));
                    e + w * ((rest + p) * (rest + p))
                })
                .collect();
            let (i, v) = argmin(&loss);
            assert_eq!((i, v.to_bits()), (want.0, want.1.to_bits()), "k={k}");
        }
    }
}
