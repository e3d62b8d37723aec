//! The working buffers of one network's forward / backward: allocated on first use, grown
//! to the largest minibatch part seen, reused for every step (the forward and backward
//! allocate nothing).

use super::{FusedCell, FusedDims};

/// One layer's buffers.
#[derive(Debug, Default)]
pub(super) struct LayerBuffers {
    /// `[T, B, G N]`: pre-activations -> activations (forward) -> gradient w.r.t. the
    /// pre-activations (LSTM) or w.r.t. the input projection `a` (GRU) (backward).
    pub(super) gates: Vec<f32>,
    /// `[T, B, N]`: LSTM `c`; GRU `u_n = U_n h + b_hn`.
    pub(super) c: Vec<f32>,
    /// LSTM `tanh(c)`, `[T, B, N]`.
    pub(super) tc: Vec<f32>,
    /// `[T, B, N]`.
    pub(super) h: Vec<f32>,
    /// GRU: `u = U h + b_hh` of the step (forward scratch), then its gradient `[T, B, 3N]`.
    pub(super) du: Vec<f32>,
}

/// One network's working buffers, allocated on first use and reused for every step.
#[derive(Debug, Default)]
pub struct Workspace {
    /// Inputs, time-major `[T, B, I]`.
    pub(super) x: Vec<f32>,
    pub(super) layers: Vec<LayerBuffers>,
    /// Gradient w.r.t. the current layer's outputs from the layer above, `[T, B, N]`.
    pub(super) d_out: Vec<f32>,
    /// Gradient w.r.t. the current layer's inputs, `[T, B, N]`.
    pub(super) d_in: Vec<f32>,
    /// `dh_t`, `[B, N]`.
    pub(super) dh: Vec<f32>,
    /// LSTM: `dc` carried to the previous step; GRU: `dh z`, the direct part of
    /// `dh_{t-1}`; `[B, N]`.
    pub(super) dc: Vec<f32>,
    /// Zero state, `[B, N]`.
    pub(super) zeros: Vec<f32>,
    /// Readout input `[B, N]`.
    pub(super) z: Vec<f32>,
    /// Logits, then their gradient, `[B, C]`.
    pub(super) logits: Vec<f32>,
    /// Gradient of the loss w.r.t. the parameters (flat, canonical order).
    pub grad: Vec<f32>,
}

fn fit(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

impl Workspace {
    /// Grows the buffers to a part of `b` rows and `t` steps of networks `d`.
    pub(super) fn prepare(&mut self, d: &FusedDims, b: usize, t: usize) {
        let n = d.hidden;
        fit(&mut self.x, t * b * d.input);
        self.layers.resize_with(d.layers, LayerBuffers::default);
        let g = d.gates() * n;
        for lb in &mut self.layers {
            fit(&mut lb.gates, t * b * g);
            fit(&mut lb.c, t * b * n);
            fit(&mut lb.h, t * b * n);
            match d.cell {
                FusedCell::Lstm => fit(&mut lb.tc, t * b * n),
                FusedCell::Gru => fit(&mut lb.du, t * b * g),
            }
        }
        if d.layers > 1 {
            fit(&mut self.d_out, t * b * n);
            fit(&mut self.d_in, t * b * n);
        }
        fit(&mut self.dh, b * n);
        fit(&mut self.dc, b * n);
        fit(&mut self.zeros, b * n);
        fit(&mut self.z, b * n);
        fit(&mut self.logits, b * d.classes);
        fit(&mut self.grad, d.num_params());
    }
}
