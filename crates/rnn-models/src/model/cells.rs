//! One layer of each cell kind over a whole sequence, on candle tensors (the equations are
//! in the [`super`] module doc): `T` inputs `[M, B, I_l]` -> `T` outputs `[M, B, N]`.

use candle_core::Tensor;

use super::PopulationModel;
use crate::error::Result;
use le_engine::rnn::CellKind;

/// The per-gate weights of a gated cell (rnn, gru, lstm), split off the parameters once per
/// forward: slicing a per-step `[M, B, G N]` product instead would make every step's
/// backward allocate `G` full-size gradients.
struct GatedWeights {
    /// `W_k^T` `[M, I, N]` (layer 0 with biases: `[M, I + 1, N]`, the input-side bias as
    /// the last row).
    w: Vec<Tensor>,
    /// `U_k^T` `[M, N, N]`.
    u: Vec<Tensor>,
    /// Per-gate biases `[M, 1, N]` added per step (`None` without biases, or when folded
    /// into `w`).
    b_in: Option<Vec<Tensor>>,
    /// GRU: `b_hn` `[M, 1, N]`, inside `r * (U_n h + b_hn)`.
    b_hn: Option<Tensor>,
}

/// The input projection of asrnn / cornn: `x V^T (+ b)`; with a column of ones on the input
/// (layer 0 with biases) the bias is the last row of the transposed weight.
struct InputProjection<'p> {
    w_ih_t: Tensor,
    /// The bias added per step (biases without the column of ones).
    bias: Option<&'p Tensor>,
}

impl InputProjection<'_> {
    fn at(&self, x: &Tensor) -> Result<Tensor> {
        let a = x.matmul(&self.w_ih_t)?;
        Ok(match self.bias {
            Some(b) => a.broadcast_add(&b.unsqueeze(1)?)?,
            None => a,
        })
    }
}

impl PopulationModel {
    /// One layer over the whole sequence: `T` inputs `[M, B, I_l]` -> `T` outputs `[M, B, N]`.
    /// With `ones_column`, each input ends in a column of ones (layer 0 with biases): the
    /// input bias is appended to the transposed input weight instead of added per step.
    pub(super) fn layer_forward(
        &self,
        p: &[Tensor],
        xs: &[Tensor],
        ones_column: bool,
    ) -> Result<Vec<Tensor>> {
        match self.shape.arch {
            CellKind::Rnn | CellKind::Gru | CellKind::Lstm => self.gated_layer(p, xs, ones_column),
            CellKind::Asrnn => self.asrnn_layer(p, xs, ones_column),
            CellKind::Cornn => self.cornn_layer(p, xs, ones_column),
        }
    }

    /// The input projection of asrnn / cornn (input bias at `p[2]`, cornn `p[3]`).
    fn input_projection<'p>(
        &self,
        p: &'p [Tensor],
        ones_column: bool,
    ) -> Result<InputProjection<'p>> {
        let bias_index = if self.shape.arch == CellKind::Cornn { 3 } else { 2 };
        let w_ih_t = if ones_column {
            Tensor::cat(&[&p[0].t()?, &p[bias_index].unsqueeze(1)?], 1)?.contiguous()?
        } else {
            p[0].t()?.contiguous()?
        };
        let bias = (self.shape.bias && !ones_column).then(|| &p[bias_index]);
        Ok(InputProjection { w_ih_t, bias })
    }

    /// The per-gate weights and biases of a gated layer (see [`GatedWeights`]).
    fn gated_weights(&self, p: &[Tensor], ones_column: bool) -> Result<GatedWeights> {
        let n = self.shape.hidden_size;
        let g = self.shape.arch.gates();
        let block = |t: &Tensor, k: usize| -> candle_core::Result<Tensor> { t.narrow(1, k * n, n) };
        let mut w = (0..g)
            .map(|k| block(&p[0], k)?.t()?.contiguous())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let u = (0..g)
            .map(|k| block(&p[1], k)?.t()?.contiguous())
            .collect::<candle_core::Result<Vec<_>>>()?;
        // Per-gate biases [M, 1, N]: b_ih + b_hh, except GRU's n gate, whose b_hh
        // sits inside r * (U_n h + b_hn).
        let (b_in, b_hn) = if self.shape.bias {
            let mut b_in = Vec::with_capacity(g);
            for k in 0..g {
                let bi = block(&p[2], k)?;
                let bh = block(&p[3], k)?;
                b_in.push(
                    if self.shape.arch == CellKind::Gru && k == 2 { bi } else { (bi + bh)? }
                        .unsqueeze(1)?,
                );
            }
            let b_hn = if self.shape.arch == CellKind::Gru {
                Some(block(&p[3], 2)?.unsqueeze(1)?)
            } else {
                None
            };
            (Some(b_in), b_hn)
        } else {
            (None, None)
        };
        // Layer 0: fold the per-gate input-side biases into W_k^T as an extra row.
        let b_in = match b_in {
            Some(b_in) if ones_column => {
                for (wk, bk) in w.iter_mut().zip(&b_in) {
                    *wk = Tensor::cat(&[&*wk, bk], 1)?.contiguous()?;
                }
                None
            }
            other => other,
        };
        Ok(GatedWeights { w, u, b_in, b_hn })
    }

    /// rnn, gru, lstm: `y_k = x W_k^T + h U_k^T + b_k` per gate, then the cell's update.
    fn gated_layer(&self, p: &[Tensor], xs: &[Tensor], ones_column: bool) -> Result<Vec<Tensor>> {
        let (m, b, _) = xs[0].dims3()?;
        let n = self.shape.hidden_size;
        let zeros = Tensor::zeros((m, b, n), self.dtype, &self.device)?;
        let GatedWeights { w, u, b_in, b_hn } = self.gated_weights(p, ones_column)?;
        let with_bias = |y: Tensor, k: usize| -> candle_core::Result<Tensor> {
            match &b_in {
                Some(b) => y.broadcast_add(&b[k]),
                None => Ok(y),
            }
        };
        let mut out = Vec::with_capacity(xs.len());
        let mut h = zeros.clone();
        let mut c = zeros;
        for x in xs {
            // y_k = x W_k^T + h U_k^T + b_k
            let pre = |k: usize| -> candle_core::Result<Tensor> {
                with_bias((x.matmul(&w[k])? + h.matmul(&u[k])?)?, k)
            };
            h = match self.shape.arch {
                CellKind::Rnn => pre(0)?.tanh()?,
                CellKind::Gru => {
                    let r = candle_nn::ops::sigmoid(&pre(0)?)?;
                    let z = candle_nn::ops::sigmoid(&pre(1)?)?;
                    let mut u_n = h.matmul(&u[2])?;
                    if let Some(b_hn) = &b_hn {
                        u_n = u_n.broadcast_add(b_hn)?;
                    }
                    let nn = (with_bias(x.matmul(&w[2])?, 2)? + (r * u_n)?)?.tanh()?;
                    // (1 - z) n + z h = n + z (h - n)
                    (&nn + (z * (&h - &nn)?)?)?
                }
                _ => {
                    let ig = candle_nn::ops::sigmoid(&pre(0)?)?;
                    let fg = candle_nn::ops::sigmoid(&pre(1)?)?;
                    let gg = pre(2)?.tanh()?;
                    let og = candle_nn::ops::sigmoid(&pre(3)?)?;
                    c = ((fg * &c)? + (ig * gg)?)?;
                    (og * c.tanh()?)?
                }
            };
            out.push(h.clone());
        }
        Ok(out)
    }

    /// asrnn: `h' = h + eps tanh(h (W - W^T - gamma I)^T + x V^T + b)`.
    fn asrnn_layer(&self, p: &[Tensor], xs: &[Tensor], ones_column: bool) -> Result<Vec<Tensor>> {
        let (m, b, _) = xs[0].dims3()?;
        let n = self.shape.hidden_size;
        let project = self.input_projection(p, ones_column)?;
        let zeros = Tensor::zeros((m, b, n), self.dtype, &self.device)?;
        let mut out = Vec::with_capacity(xs.len());
        let w = &p[1];
        let gamma = self.per_net(|c| c.gamma)?;
        let eps = self.per_net(|c| c.eps)?;
        let eye = Tensor::eye(n, self.dtype, &self.device)?.unsqueeze(0)?;
        // (W - W^T - gamma I)^T = W^T - W - gamma I
        let a_t = ((w.t()? - w)?.broadcast_sub(&eye.broadcast_mul(&gamma)?))?.contiguous()?;
        let mut h = zeros;
        for x in xs {
            let pre = (project.at(x)? + h.matmul(&a_t)?)?;
            h = (&h + pre.tanh()?.broadcast_mul(&eps)?)?;
            out.push(h.clone());
        }
        Ok(out)
    }

    /// cornn: `z' = z + dt (tanh(y W_y^T + z W_z^T + x V^T + b) - gamma y - eps z)`,
    /// `y' = y + dt z'`; the output is `y`.
    fn cornn_layer(&self, p: &[Tensor], xs: &[Tensor], ones_column: bool) -> Result<Vec<Tensor>> {
        let (m, b, _) = xs[0].dims3()?;
        let n = self.shape.hidden_size;
        let project = self.input_projection(p, ones_column)?;
        let zeros = Tensor::zeros((m, b, n), self.dtype, &self.device)?;
        let mut out = Vec::with_capacity(xs.len());
        let wy_t = p[1].t()?.contiguous()?;
        let wz_t = p[2].t()?.contiguous()?;
        let dt = self.per_net(|c| c.dt)?;
        let gamma = self.per_net(|c| c.gamma)?;
        let eps = self.per_net(|c| c.eps)?;
        let mut y = zeros.clone();
        let mut z = zeros;
        for x in xs {
            let pre = ((project.at(x)? + y.matmul(&wy_t)?)? + z.matmul(&wz_t)?)?;
            let force = ((pre.tanh()? - y.broadcast_mul(&gamma)?)? - z.broadcast_mul(&eps)?)?;
            z = (&z + force.broadcast_mul(&dt)?)?;
            y = (&y + z.broadcast_mul(&dt)?)?;
            out.push(y.clone());
        }
        Ok(out)
    }
}
