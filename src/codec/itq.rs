//! `binary-itq`: sign bits after a learned rotation (iterative quantization, Gong &
//! Lazebnik 2011), trained on a sample of the input like PQ.
//!
//! A random rotation spreads the energy of a row evenly, but its sign pattern still loses
//! much of the direction. ITQ centres the data on its mean `μ` and learns the orthogonal
//! `R` that minimises `‖B − (X − μ)R‖²` over sign matrices `B`, alternating `B = sign(..)`
//! with an orthogonal Procrustes step (`R = UVᵀ` from the SVD of `(X − μ)ᵀB`). Rows are
//! then stored exactly as [`Binary`] stores them, in the rotated frame: one sign bit per
//! dimension and one f32 scale `mean|y|` (the least-squares scale for fixed signs), with
//! `y = (x − μ)R`. The reconstruction is `x' = (sign(y) · mean|y|) Rᵀ + μ`.
//!
//! Parameter block (FORMAT.md): `u32` layout (1), `u32` iterations, `u32` training rows,
//! `f32` final quantization loss per row, then `dims` f32 of `μ` and `dims × dims` f32 of
//! `R`, row-major. Payload: as `binary`.

use nalgebra::DMatrix;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use super::binary::Binary;
use super::codebook::{RowSource, TrainOptions, check_cancel, draw_sample};
use super::{Codec, CodecId, CodecSpec, EncodeFault, read_f32};
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Rows ITQ trains on unless `--train-rows` says otherwise: its cost per iteration is
/// `rows × dims²`, and more rows barely move the rotation.
pub const DEFAULT_ITQ_ROWS: u64 = 20_000;
/// Alternations of sign and Procrustes steps.
pub const ITERATIONS: u32 = 50;
const SEED: u64 = 0x17c0_5eed;
const FIXED: usize = 16;

/// The `binary-itq` codec.
#[derive(Debug)]
pub struct Itq {
    dims: usize,
    mean: Vec<f32>,
    /// `dims × dims`, row-major: `y_j = Σ_i (x_i − μ_i) R[i][j]`.
    rot: Vec<f32>,
    /// Rᵀ, row-major, for decoding: `x_i = Σ_j y_j Rᵀ[j][i] + μ_i`.
    rot_t: Vec<f32>,
    inner: Binary,
    params: Vec<u8>,
    iterations: u32,
    train_rows: u32,
    loss: f32,
}

impl Itq {
    /// Learns μ and R on a seeded sample of `source`.
    ///
    /// # Errors
    /// [`Error::Config`] for `--train-rows 0`; errors reading the sample;
    /// [`Error::Training`] if the SVD is handed a non-finite matrix or does not converge;
    /// [`Error::Cancelled`] once `opts.cancel` is set (polled every iteration).
    pub fn train(
        source: &dyn RowSource,
        opts: &TrainOptions,
        progress: &dyn Progress,
    ) -> Result<Itq> {
        let d = source.dims();
        let opts = TrainOptions {
            train_rows: Some(opts.train_rows.unwrap_or(DEFAULT_ITQ_ROWS)),
            ..*opts
        };
        let sample = draw_sample(source, &opts, SEED, 1, progress)?;
        let n = sample.len() / d;
        let mut x = DMatrix::<f32>::from_row_slice(n, d, &sample);
        let mean: Vec<f32> = (0..d).map(|j| x.column(j).mean()).collect();
        for (j, &m) in mean.iter().enumerate() {
            x.column_mut(j).add_scalar_mut(-m);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(SEED);
        let g = DMatrix::<f32>::from_fn(d, d, |_, _| StandardNormal.sample(&mut rng));
        let mut r = g.qr().q();
        let mut loss = 0f32;
        progress.stage("itq iterations", u64::from(ITERATIONS));
        for _ in 0..ITERATIONS {
            check_cancel(opts.flag())?;
            let v = &x * &r;
            let b = v.map(|y| if y >= 0.0 { 1.0f32 } else { -1.0 });
            loss = (&b - &v).norm_squared() / n as f32;
            let c = x.transpose() * &b;
            super::opq::check_finite(&c, "ITQ cross-product")?;
            let svd = c
                .try_svd(true, true, f32::EPSILON, 1000 + 100 * d)
                .ok_or_else(|| super::opq::not_converged("SVD of the ITQ cross-product"))?;
            let (Some(u), Some(vt)) = (svd.u, svd.v_t) else {
                return Err(super::opq::not_converged("SVD of the ITQ cross-product"));
            };
            r = u * vt;
            progress.step(1);
        }
        let rot: Vec<f32> = (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| r[(i, j)])
            .collect();
        Ok(Itq::from_parts(d, mean, rot, ITERATIONS, n as u32, loss))
    }

    fn from_parts(
        dims: usize,
        mean: Vec<f32>,
        rot: Vec<f32>,
        iterations: u32,
        train_rows: u32,
        loss: f32,
    ) -> Itq {
        let mut params = Vec::with_capacity(FIXED + 4 * (dims + dims * dims));
        for v in [1u32, iterations, train_rows] {
            params.extend_from_slice(&v.to_le_bytes());
        }
        params.extend_from_slice(&loss.to_le_bytes());
        params.extend(mean.iter().chain(&rot).flat_map(|v| v.to_le_bytes()));
        let mut rot_t = vec![0f32; rot.len()];
        for (i, row) in rot.chunks_exact(dims).enumerate() {
            for (j, &v) in row.iter().enumerate() {
                rot_t[j * dims + i] = v;
            }
        }
        Itq {
            dims,
            mean,
            rot,
            rot_t,
            inner: Binary::new(dims),
            params,
            iterations,
            train_rows,
            loss,
        }
    }

    /// Rebuilds the codec from a container's parameter block.
    ///
    /// # Errors
    /// [`Error::Config`] when the block is not one for `dims`.
    pub fn from_params(params: &[u8], dims: usize) -> Result<Itq> {
        let want = FIXED + 4 * (dims + dims * dims);
        if params.len() != want || params[0..4] != 1u32.to_le_bytes() {
            return Err(Error::Config(format!(
                "binary-itq parameters are {} bytes, {dims} dims need {want} with layout 1",
                params.len()
            )));
        }
        let u = |at: usize| {
            u32::from_le_bytes([params[at], params[at + 1], params[at + 2], params[at + 3]])
        };
        let floats: Vec<f32> = (FIXED..want)
            .step_by(4)
            .map(|at| read_f32(params, at))
            .collect();
        if floats.iter().any(|v| !v.is_finite()) {
            return Err(Error::Config(
                "binary-itq parameters hold a non-finite value".into(),
            ));
        }
        let (mean, rot) = floats.split_at(dims);
        Ok(Itq::from_parts(
            dims,
            mean.to_vec(),
            rot.to_vec(),
            u(4),
            u(8),
            read_f32(params, 12),
        ))
    }

    /// Alternations of training (informational, from the parameter block).
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Rows of the training sample (informational).
    pub fn train_rows(&self) -> u32 {
        self.train_rows
    }

    /// The final quantization loss `‖B − (X − μ)R‖² / rows` on the sample.
    pub fn loss(&self) -> f32 {
        self.loss
    }

    /// The mean `μ` subtracted before rotating (`dims` values).
    pub fn mean(&self) -> &[f32] {
        &self.mean
    }

    /// The rotation `R`, `dims × dims`, row-major: `y_j = Σ_i (x_i − μ_i) R[i][j]`.
    pub fn rotation(&self) -> &[f32] {
        &self.rot
    }

    /// One row of `y = (x − μ)R`, the plain reference for the sgemm in `encode`.
    #[cfg(test)]
    fn forward(&self, x: &[f32], y: &mut [f32]) {
        y.fill(0.0);
        for ((&xi, &mi), r) in x
            .iter()
            .zip(&self.mean)
            .zip(self.rot.chunks_exact(self.dims))
        {
            let c = xi - mi;
            y.iter_mut().zip(r).for_each(|(yj, &rij)| *yj += c * rij);
        }
    }

    /// One row of `x = yRᵀ + μ`, the plain reference for `inverse_block`.
    #[cfg(test)]
    fn inverse(&self, y: &[f32], x: &mut [f32]) {
        for ((xi, &mi), r) in x
            .iter_mut()
            .zip(&self.mean)
            .zip(self.rot.chunks_exact(self.dims))
        {
            *xi = r.iter().zip(y).map(|(&rij, &yj)| rij * yj).sum::<f32>() + mi;
        }
    }

    /// X = Y·Rᵀ + μ for a block of rows, each output adding its `d` products in order
    /// (the order of the one-row reference, `inverse` in the tests, so files decode to the same
    /// bits as they always have), in the tiled SIMD kernel OPQ's rotation uses. decode and
    /// decode_row both come here.
    fn inverse_block(&self, y: &[f32], out: &mut [f32]) {
        crate::simd::opq::rotate(y, self.dims, &self.rot_t, out);
        for row in out.chunks_exact_mut(self.dims) {
            row.iter_mut().zip(&self.mean).for_each(|(x, m)| *x += m);
        }
    }
}

impl Codec for Itq {
    fn name(&self) -> String {
        "binary-itq".into()
    }

    fn spec(&self) -> CodecSpec {
        CodecSpec {
            id: CodecId::BinaryItq,
            params: self.params.clone(),
        }
    }

    fn dims(&self) -> usize {
        self.dims
    }

    fn encoded_len(&self, rows: usize) -> usize {
        self.inner.encoded_len(rows)
    }

    fn encode(&self, input: &[f32], out: &mut [u8]) -> Result<(), EncodeFault> {
        let d = self.dims;
        let n = input.len() / d;
        // Y = (X − μ)R as one matrix product: a per-row loop is d² scalar multiply-adds a
        // row, sgemm runs the same arithmetic in cache-blocked SIMD tiles.
        let centred: Vec<f32> = input
            .chunks_exact(d)
            .flat_map(|x| x.iter().zip(&self.mean).map(|(v, m)| v - m))
            .collect();
        let mut y = vec![0f32; input.len()];
        // SAFETY: `centred` is n × d and `rot` d × d, both row-major, and `y` is n × d,
        // exactly the shapes and strides given; the three buffers do not overlap. With
        // beta = 0, `y` need not be initialised.
        unsafe {
            matrixmultiply::sgemm(
                n,
                d,
                d,
                1.0,
                centred.as_ptr(),
                d as isize,
                1,
                self.rot.as_ptr(),
                d as isize,
                1,
                0.0,
                y.as_mut_ptr(),
                d as isize,
                1,
            );
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(EncodeFault {
                row: i / self.dims,
                col: i % self.dims,
                msg: "the row is too large to rotate without overflowing float32; use binary"
                    .into(),
            });
        }
        self.inner.encode(&y, out)
    }

    fn decode_row(&self, payload: &[u8], rows: usize, row: usize, out: &mut [f32]) {
        let mut y = vec![0f32; self.dims];
        self.inner.decode_row(payload, rows, row, &mut y);
        self.inverse_block(&y, out);
    }

    fn decode(&self, payload: &[u8], rows: usize, out: &mut [f32]) {
        let mut y = vec![0f32; rows * self.dims];
        self.inner.decode(payload, rows, &mut y);
        self.inverse_block(&y, out);
    }

    fn first_non_finite_row(
        &self,
        payload: &[u8],
        rows: usize,
        scratch: &mut Vec<f32>,
    ) -> Option<usize> {
        // R is orthogonal and μ finite: a finite row stays finite unless it nears overflow.
        let d = self.dims;
        scratch.resize(rows * d, 0.0);
        self.inner.decode(payload, rows, scratch);
        let offset = self.mean.iter().fold(0f32, |m, x| m.max(x.abs()));
        let mut x = vec![0f32; d];
        super::first_non_finite_row(scratch, d, |_, y| {
            super::rotation_may_overflow(y, offset) && {
                self.inverse_block(y, &mut x);
                crate::simd::any_non_finite(&x)
            }
        })
    }

    fn facts(&self) -> Vec<(String, String)> {
        vec![
            ("train rows".into(), self.train_rows.to_string()),
            ("itq iterations".into(), self.iterations.to_string()),
            (
                "itq loss".into(),
                format!("{:.6} (squared sign error per row)", self.loss),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::codebook::MemRows;
    use crate::codec::harness::round_trip;
    use crate::progress::NoProgress;

    fn data(rows: usize, d: usize) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        (0..rows * d)
            .map(|i| {
                let z: f32 = StandardNormal.sample(&mut rng);
                // Anisotropic with an offset, so centring and the rotation both matter.
                z / (1.0 + (i % d) as f32) + 0.3
            })
            .collect()
    }

    #[test]
    fn reconstruction_is_the_rotated_binary_code_and_params_round_trip() {
        let (n, d) = (400, 12);
        let x = data(n, d);
        let src = MemRows::new(x.clone(), d);
        let itq = Itq::train(&src, &TrainOptions::default(), &NoProgress).unwrap();
        let back = round_trip(&itq, &x);
        for (row, rec) in x.chunks(d).zip(back.chunks(d)) {
            let mut y = vec![0f32; d];
            itq.forward(row, &mut y);
            let scale = y.iter().map(|v| v.abs()).sum::<f32>() / d as f32;
            let s: Vec<f32> = y
                .iter()
                .map(|&v| if v >= 0.0 { scale } else { -scale })
                .collect();
            let mut want = vec![0f32; d];
            itq.inverse(&s, &mut want);
            for (a, b) in rec.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
        let again = Itq::from_params(&itq.spec().params, d).unwrap();
        assert_eq!(
            round_trip(&again, &x),
            back,
            "the stored parameters decode the same"
        );
        assert!(Itq::from_params(&itq.spec().params[1..], d).is_err());
    }

    #[test]
    fn training_is_deterministic_and_beats_a_random_rotation() {
        let (n, d) = (600, 16);
        let x = data(n, d);
        let src = MemRows::new(x.clone(), d);
        let a = Itq::train(&src, &TrainOptions::default(), &NoProgress).unwrap();
        let b = Itq::train(&src, &TrainOptions::default(), &NoProgress).unwrap();
        assert_eq!(a.spec(), b.spec());
        // Squared reconstruction error against plain sign bits of the centred rows under
        // the starting (random) rotation: ITQ must do better on its training data.
        let err = |codec: &dyn Codec| -> f64 {
            let r = round_trip(codec, &x);
            x.iter()
                .zip(&r)
                .map(|(u, v)| ((u - v) as f64).powi(2))
                .sum()
        };
        let random = Itq::from_parts(
            d,
            a.mean.clone(),
            {
                let mut rng = ChaCha8Rng::seed_from_u64(SEED);
                let g = DMatrix::<f32>::from_fn(d, d, |_, _| StandardNormal.sample(&mut rng));
                let q = g.qr().q();
                (0..d)
                    .flat_map(|i| (0..d).map(move |j| (i, j)))
                    .map(|(i, j)| q[(i, j)])
                    .collect()
            },
            0,
            0,
            0.0,
        );
        assert!(err(&a) < err(&random), "{} vs {}", err(&a), err(&random));
    }
}
