//! The seeded rotation stage (array→array): a randomized Walsh–Hadamard transform applied to
//! each row before a low-bit codec quantizes it, and inverted after decoding.
//!
//! Why: a few outlier dimensions set the per-vector scale of int4/binary and waste their
//! levels on everything else. An orthogonal transform spreads the energy evenly over the
//! dimensions (QuaRot, RaBitQ, Weaviate RQ) while keeping dot products and norms.
//!
//! The transform is `R` rounds of: flip signs with a seeded ±1 diagonal, then an orthonormal
//! Hadamard transform on the window `[0, w)`, then (when `w < dims`) on the window
//! `[dims − w, dims)`, where `w` is the largest power of two `<= dims`. The two overlapping
//! windows cover every dimension, so nothing is padded: a 384-d vector stays 384-d and int4
//! keeps its 196 bytes (padding to 512 would cost 260). Each round is O(dims log dims).
//!
//! Rotation is per row, so a single row still decodes on its own ([`Rotated::decode_row`]).

use std::cell::RefCell;

use super::{Codec, CodecSpec, EncodeFault};

/// Rounds used when the user does not ask for another number.
pub const DEFAULT_ROUNDS: u32 = 3;
/// The seed used by `rotate=1` without `seed=`.
pub const DEFAULT_SEED: u64 = 0x5eed_5eed;
/// The most rounds a container may ask for (refuses absurd headers).
pub const MAX_ROUNDS: u32 = 16;

/// A seeded orthogonal transform of `dims`-dimensional rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    dims: usize,
    window: usize,
    seed: u64,
    /// `rounds × dims` signs, ±1.0.
    signs: Vec<f32>,
    /// The signs folded into the transform's passes, for [`Rotation::forward`].
    plan: crate::simd::rotate::Plan,
}

impl Rotation {
    /// The rotation for `dims` dimensions, `rounds` rounds, drawn from `seed`.
    ///
    /// # Panics
    /// If `dims` or `rounds` is zero (the registry never builds one).
    pub fn new(dims: usize, rounds: u32, seed: u64) -> Rotation {
        assert!(dims > 0 && rounds > 0, "rotation needs dims and rounds");
        let mut rng = SplitMix64(seed);
        let mut signs = Vec::with_capacity(rounds as usize * dims);
        for _ in 0..rounds {
            let mut word = 0u64;
            for i in 0..dims {
                if i % 64 == 0 {
                    word = rng.next();
                }
                signs.push(if (word >> (i % 64)) & 1 == 1 {
                    -1.0
                } else {
                    1.0
                });
            }
        }
        let window = window_for(dims);
        Rotation {
            dims,
            window,
            seed,
            plan: crate::simd::rotate::Plan::new(&signs, window, dims),
            signs,
        }
    }

    /// The seed the signs were drawn from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of rounds.
    pub fn rounds(&self) -> u32 {
        (self.signs.len() / self.dims) as u32
    }

    /// The Hadamard window: the largest power of two `<= dims`.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The `rounds × dims` signs, ±1.0, round by round.
    pub fn signs(&self) -> &[f32] {
        &self.signs
    }

    /// Rotates one row (`dims` long) in place, with the widest SIMD level this CPU has
    /// (same bits at every level: see [`crate::simd::rotate`]).
    pub fn forward(&self, row: &mut [f32]) {
        let level = crate::simd::Level::detect();
        crate::simd::rotate::forward_planned_at(
            level,
            &self.plan,
            &self.signs,
            &mut row[..self.dims],
        )
    }

    /// [`Rotation::forward`] of the row whose first `src.len()` values (at most `dims`) are
    /// `src − mean` (`src` without a mean; `mean` as long as `src`) and whose others are
    /// zeros, into `row` (`dims` long): the same bits as writing that row and rotating it,
    /// without writing it first where the SIMD level reads the first round straight from
    /// `src` and the mean.
    pub fn forward_centred(&self, src: &[f32], mean: Option<&[f32]>, row: &mut [f32]) {
        let level = crate::simd::Level::detect();
        crate::simd::rotate::forward_planned_centred_at(
            level,
            &self.plan,
            &self.signs,
            src,
            mean,
            &mut row[..self.dims],
        )
    }

    /// Undoes [`Rotation::forward`] in place (up to float rounding), with the widest SIMD
    /// level this CPU has (same bits at every level).
    pub fn inverse(&self, row: &mut [f32]) {
        crate::simd::rotate::inverse(&self.signs, self.window, &mut row[..self.dims])
    }
}

/// The largest power of two `<= dims`.
pub fn window_for(dims: usize) -> usize {
    1 << (usize::BITS - 1 - dims.leading_zeros())
}

/// splitmix64 (Steele, Lea, Flood 2014): tiny, seedable, and easy to reimplement from
/// FORMAT.md, which a reader in another language needs to rebuild the signs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// A quantizing codec behind a [`Rotation`]: rows are rotated, then encoded by `inner`;
/// decoding runs `inner` and rotates back.
#[derive(Debug)]
pub struct Rotated {
    inner: Box<dyn Codec>,
    rotation: Rotation,
    spec: CodecSpec,
}

impl Rotated {
    /// Wraps `inner`; `spec` is what the container records (the inner codec's id, with the
    /// rotation in its parameter block).
    pub fn new(inner: Box<dyn Codec>, rotation: Rotation, spec: CodecSpec) -> Rotated {
        Rotated {
            inner,
            rotation,
            spec,
        }
    }
}

impl Codec for Rotated {
    fn name(&self) -> String {
        // int4's grid defaults to gauss when rotated, so the name says whichever is not
        // the default for a rotated int4.
        let mut n = match self.inner.name().as_str() {
            "int4" => "int4:grid=uniform".to_string(),
            "int4:grid=gauss" => "int4".to_string(),
            other => other.to_string(),
        };
        n.push_str(if n.contains(':') { "," } else { ":" });
        n.push_str("rotate=1");
        if self.rotation.seed() != DEFAULT_SEED {
            n.push_str(&format!(",seed={}", self.rotation.seed()));
        }
        n
    }

    fn spec(&self) -> CodecSpec {
        self.spec.clone()
    }

    fn dims(&self) -> usize {
        self.inner.dims()
    }

    fn encoded_len(&self, rows: usize) -> usize {
        self.inner.encoded_len(rows)
    }

    fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault> {
        let d = self.dims();
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            s.resize(input.len(), 0.0);
            // Each row rotated from the input into the block as it is read (the first
            // round reading the input row itself where the SIMD level can).
            for (r, (row, x)) in s.chunks_exact_mut(d).zip(input.chunks_exact(d)).enumerate() {
                // The next row starts loading while this one is rotated.
                crate::simd::prefetch_floats(input, (r + 1) * d, (r + 2) * d);
                self.rotation.forward_centred(x, None, row);
                // The rotated value is what gets quantized, so it must be finite. A NaN or
                // an infinity in the row makes every value of its windows one (each is a
                // sum of them all), which is how this check stands in for a pass over the
                // input ([`Codec::rejects_non_finite`]); a finite row near f32::MAX can
                // also overflow inside the transform.
                if !crate::simd::any_non_finite(row) {
                    continue;
                }
                // The input's own column when it holds the value that is not finite.
                let col = x
                    .iter()
                    .chain(row.iter())
                    .position(|v| !v.is_finite())
                    .unwrap_or(0)
                    % d;
                return Err(EncodeFault {
                    row: r,
                    col,
                    msg: if x[col].is_finite() {
                        "the row is too large to rotate without overflowing float32; \
                         drop rotate=1 for this data"
                            .into()
                    } else {
                        format!("{} is not a finite number", x[col])
                    },
                });
            }
            self.inner.encode(&s, out)
        })
    }

    fn rejects_non_finite(&self) -> bool {
        // A NaN or an infinity in a row fails the check of its rotated values.
        true
    }

    fn decode(&self, payload: &[u8], rows: usize, out: &mut [f32]) {
        self.inner.decode(payload, rows, out);
        out.chunks_exact_mut(self.dims())
            .for_each(|row| self.rotation.inverse(row));
    }

    fn decode_row(&self, payload: &[u8], rows: usize, row: usize, out: &mut [f32]) {
        self.inner.decode_row(payload, rows, row, out);
        self.rotation.inverse(out);
    }

    fn first_non_finite_row(
        &self,
        payload: &[u8],
        rows: usize,
        scratch: &mut Vec<f32>,
    ) -> Option<usize> {
        // The rotation is orthogonal: a finite row stays finite unless it nears overflow,
        // and only such a row is decoded through it.
        let d = self.dims();
        scratch.resize(rows * d, 0.0);
        self.inner.decode(payload, rows, scratch);
        let mut row = vec![0f32; d];
        super::first_non_finite_row(scratch, d, |_, y| {
            super::rotation_may_overflow(y, 0.0) && {
                row.copy_from_slice(y);
                self.rotation.inverse(&mut row);
                crate::simd::any_non_finite(&row)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_largest_power_of_two() {
        assert_eq!(window_for(1), 1);
        assert_eq!(window_for(384), 256);
        assert_eq!(window_for(512), 512);
        assert_eq!(window_for(513), 512);
    }

    #[test]
    fn is_orthogonal_and_inverts() {
        for d in [1usize, 2, 3, 5, 8, 13, 64, 100, 384] {
            let r = Rotation::new(d, 3, 7);
            let x: Vec<f32> = (0..d).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
            let mut y = x.clone();
            r.forward(&mut y);
            let nx: f64 = x.iter().map(|&v| f64::from(v).powi(2)).sum();
            let ny: f64 = y.iter().map(|&v| f64::from(v).powi(2)).sum();
            assert!((nx - ny).abs() <= 1e-5 * nx.max(1e-30), "norm kept, d={d}");
            r.inverse(&mut y);
            for (a, b) in x.iter().zip(&y) {
                assert!((a - b).abs() <= 1e-5, "d={d}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn spreads_a_spike() {
        let d = 384;
        let mut x = vec![0f32; d];
        x[17] = 1.0;
        Rotation::new(d, 3, 1).forward(&mut x);
        let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max < 0.25, "a one-hot vector is spread out, max {max}");
    }

    #[test]
    fn overflow_inside_the_transform_names_the_row() {
        let codec = crate::codec::parse("int8:rotate=1", 4).unwrap();
        let mut payload = vec![0u8; codec.encoded_len(2)];
        let data = [1.0f32, 2.0, 3.0, 4.0, 3e38, 3e38, 3e38, 3e38];
        let f = codec.encode(&data, &mut payload).unwrap_err();
        assert_eq!(f.row, 1);
        assert!(f.msg.contains("rotate"), "{}", f.msg);
    }

    #[test]
    fn seed_decides_the_signs() {
        assert_eq!(Rotation::new(10, 2, 5), Rotation::new(10, 2, 5));
        assert_ne!(Rotation::new(10, 2, 5), Rotation::new(10, 2, 6));
        // The first draws of splitmix64 from seed 0, as published with the algorithm.
        let mut g = SplitMix64(0);
        assert_eq!(g.next(), 0xe220_a839_7b1d_cdaf);
    }
}
