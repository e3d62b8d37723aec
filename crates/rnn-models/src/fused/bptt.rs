//! The forward and backward (BPTT) of one network on the rows of one minibatch part, as
//! named steps: time-major inputs, per layer the input projection and the recurrence
//! ([`super::lstm`], [`super::gru`]), the readout and its softmax cross-entropy, then top
//! down the readout gradient, per layer the recurrence backward, the weight gradients over
//! the whole sequence and the gradient for the layer below.

use gemm::Parallelism;

use super::gemm::{column_sums, mm};
use super::workspace::{LayerBuffers, Workspace};
use super::{FusedCell, FusedDims, LayerOffsets, gru, lstm};

/// The forward / backward of `b` rows of a minibatch of `rows` rows: returns the sum of
/// the rows' losses and their correct count; the gradient is that of (sum of these rows'
/// losses) / `rows`.
#[allow(clippy::too_many_arguments)]
pub(super) fn step_rows(
    d: &FusedDims,
    params: &[f32],
    ws: &mut Workspace,
    x: &[f32],
    (b, t): (usize, usize),
    targets: &[u32],
    mask: Option<&[f32]>,
    grad: bool,
    rows: usize,
    par: Parallelism,
) -> (f32, usize) {
    assert!(b > 0 && t > 0, "empty minibatch");
    assert_eq!(x.len(), b * t * d.input, "inputs must be [B, T, I]");
    assert_eq!(targets.len(), b, "one target per row");
    assert_eq!(params.len(), d.num_params(), "parameter count");
    ws.prepare(d, b, t);
    load_time_major(&mut ws.x, x, (b, t), d.input);
    for l in 0..d.layers {
        forward_layer(d, params, ws, l, (b, t), par);
    }
    readout(d, params, ws, (b, t), mask);
    let out = softmax_cross_entropy(d, ws, b, targets, grad, rows);
    if !grad {
        return out;
    }
    backward_readout(d, params, ws, b, mask);
    for l in (0..d.layers).rev() {
        backward_layer(d, params, ws, l, (b, t), par);
    }
    out
}

/// Batch-major inputs `[B, T, I]` into the time-major `xs` `[T, B, I]`.
fn load_time_major(xs: &mut [f32], x: &[f32], (b, t): (usize, usize), i0: usize) {
    for (r, seq) in x.chunks_exact(t * i0).enumerate() {
        for (s, row) in seq.chunks_exact(i0).enumerate() {
            let at = (s * b + r) * i0;
            xs[at..at + i0].copy_from_slice(row);
        }
    }
}

/// Layer `l`'s hidden size `n`, gate rows `g` and parameter offsets.
fn layer_shape(d: &FusedDims, l: usize) -> (usize, usize, LayerOffsets) {
    (d.hidden, d.gates() * d.hidden, d.layer(l))
}

/// The input of layer `below.len()` over all `tb = T B` rows: the time-major inputs for
/// the first layer, else the outputs `h` of the layer below.
fn layer_input<'a>(
    d: &FusedDims,
    xs: &'a [f32],
    below: &'a [LayerBuffers],
    tb: usize,
) -> &'a [f32] {
    match below.last() {
        None => &xs[..tb * d.input],
        Some(lb) => &lb.h[..tb * d.hidden],
    }
}

/// The `(W_ih, W_hh)` slices of a layer (`g` gate rows, hidden size `n`).
fn layer_weights<'p>(
    params: &'p [f32],
    off: &LayerOffsets,
    g: usize,
    n: usize,
) -> (&'p [f32], &'p [f32]) {
    (&params[off.w_ih..off.w_ih + g * off.input], &params[off.w_hh..off.w_hh + g * n])
}

/// The `(bias_ih, bias_hh)` slices of a layer, if the cells have biases.
fn layer_biases<'p>(
    params: &'p [f32],
    off: &LayerOffsets,
    g: usize,
) -> Option<(&'p [f32], &'p [f32])> {
    off.bias.map(|bo| (&params[bo..bo + g], &params[bo + g..bo + 2 * g]))
}

/// Forward of layer `l` over all steps: the input projection of every step, then the
/// recurrence of its cell.
fn forward_layer(
    d: &FusedDims,
    params: &[f32],
    ws: &mut Workspace,
    l: usize,
    (b, t): (usize, usize),
    par: Parallelism,
) {
    let (n, g, off) = layer_shape(d, l);
    let zeros = &ws.zeros[..b * n];
    let (below, rest) = ws.layers.split_at_mut(l);
    let lb = &mut rest[0];
    let input = layer_input(d, &ws.x, below, t * b);
    let (w_ih, w_hh) = layer_weights(params, &off, g, n);
    let biases = layer_biases(params, &off, g);
    input_projection(d.cell, &mut lb.gates[..t * b * g], input, w_ih, biases, g, par);
    match d.cell {
        FusedCell::Lstm => lstm::forward_sequence(lb, zeros, w_hh, (b, t, n), par),
        FusedCell::Gru => {
            gru::forward_sequence(lb, zeros, w_hh, biases.map(|(_, b_hh)| b_hh), (b, t, n), par);
        }
    }
}

/// All steps' input projection `gates = [T B, I] x W_ih^T (+ biases)`: LSTM both biases
/// ride with it, GRU only `b_ih`.
fn input_projection(
    cell: FusedCell,
    gates: &mut [f32],
    input: &[f32],
    w_ih: &[f32],
    biases: Option<(&[f32], &[f32])>,
    g: usize,
    par: Parallelism,
) {
    let i = w_ih.len() / g;
    if let Some((b_ih, b_hh)) = biases {
        let row = &mut gates[..g];
        match cell {
            FusedCell::Lstm => {
                for ((r, x), y) in row.iter_mut().zip(b_ih).zip(b_hh) {
                    *r = x + y;
                }
            }
            FusedCell::Gru => row.copy_from_slice(b_ih),
        }
        let (first, others) = gates.split_at_mut(g);
        for chunk in others.chunks_exact_mut(g) {
            chunk.copy_from_slice(first);
        }
    }
    let rows = gates.len() / g;
    mm((rows, g, i), gates, g, biases.is_some(), (input, i, 1), (w_ih, 1, i), par);
}

/// The readout input `z = h_T (* mask)` and the logits `z W^T + b` into `ws.logits`.
fn readout(
    d: &FusedDims,
    params: &[f32],
    ws: &mut Workspace,
    (b, t): (usize, usize),
    mask: Option<&[f32]>,
) {
    let (n, c_out) = (d.hidden, d.classes);
    let top = &ws.layers[d.layers - 1];
    let h_last = &top.h[(t - 1) * b * n..t * b * n];
    let z = &mut ws.z[..b * n];
    match mask {
        Some(mk) => {
            for ((z, h), m) in z.iter_mut().zip(h_last).zip(&mk[..b * n]) {
                *z = h * m;
            }
        }
        None => z.copy_from_slice(h_last),
    }
    let fc = d.fc();
    let (w_fc, b_fc) =
        (&params[fc..fc + c_out * n], &params[fc + c_out * n..fc + c_out * n + c_out]);
    let logits = &mut ws.logits[..b * c_out];
    for row in logits.chunks_exact_mut(c_out) {
        row.copy_from_slice(b_fc);
    }
    mm((b, c_out, n), logits, c_out, true, (z, n, 1), (w_fc, 1, n), Parallelism::None);
}

/// Log-softmax of the logits: the summed cross-entropy of the `b` rows and their correct
/// count (first maximum, as candle's argmax); with `grad` the logits become the gradient
/// `(softmax - onehot) / rows`.
fn softmax_cross_entropy(
    d: &FusedDims,
    ws: &mut Workspace,
    b: usize,
    targets: &[u32],
    grad: bool,
    rows: usize,
) -> (f32, usize) {
    let c_out = d.classes;
    let logits = &mut ws.logits[..b * c_out];
    let mut loss_sum = 0.0f32;
    let mut correct = 0usize;
    let inv_rows = 1.0 / rows as f32;
    for (row, &y) in logits.chunks_exact_mut(c_out).zip(targets) {
        // first maximum, as candle's argmax
        let (mut best, mut arg) = (row[0], 0usize);
        for (k, &v) in row.iter().enumerate().skip(1) {
            if v > best {
                best = v;
                arg = k;
            }
        }
        correct += usize::from(arg == y as usize);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|&v| (v - max).exp()).sum();
        let lse = sum.ln();
        loss_sum += lse - (row[y as usize] - max);
        if grad {
            for (k, v) in row.iter_mut().enumerate() {
                let p = (*v - max).exp() / sum;
                *v = (p - if k == y as usize { 1.0 } else { 0.0 }) * inv_rows;
            }
        }
    }
    (loss_sum, correct)
}

/// The readout's weight and bias gradients, and `dh_T = dlogits W (* mask)` into `ws.dh`.
fn backward_readout(
    d: &FusedDims,
    params: &[f32],
    ws: &mut Workspace,
    b: usize,
    mask: Option<&[f32]>,
) {
    let (n, c_out) = (d.hidden, d.classes);
    let fc = d.fc();
    let w_fc = &params[fc..fc + c_out * n];
    let Workspace { dh, z, logits, grad: gr, .. } = ws;
    let (z, dl) = (&z[..b * n], &logits[..b * c_out]);
    {
        let (_, fc_grad) = gr.split_at_mut(fc);
        let (gw, gb) = fc_grad.split_at_mut(c_out * n);
        mm((c_out, n, b), gw, n, false, (dl, 1, c_out), (z, n, 1), Parallelism::None);
        column_sums(dl, b, c_out, gb);
    }
    let dh = &mut dh[..b * n];
    mm((b, n, c_out), dh, n, false, (dl, c_out, 1), (w_fc, n, 1), Parallelism::None);
    if let Some(mk) = mask {
        for (d, m) in dh.iter_mut().zip(&mk[..b * n]) {
            *d *= m;
        }
    }
}

/// Backward of layer `l` (the layers above done): the recurrence backward of its cell, the
/// weight gradients, and (for `l > 0`) the gradient w.r.t. its inputs, which becomes
/// `ws.d_out` of layer `l - 1`.
fn backward_layer(
    d: &FusedDims,
    params: &[f32],
    ws: &mut Workspace,
    l: usize,
    (b, t): (usize, usize),
    par: Parallelism,
) {
    let (n, g, off) = layer_shape(d, l);
    let top = l + 1 == d.layers;
    let Workspace { x: xs, layers, d_out, d_in, dh, dc, zeros, grad: gr, .. } = ws;
    let (zeros, dh, dc) = (&zeros[..b * n], &mut dh[..b * n], &mut dc[..b * n]);
    let (below, rest) = layers.split_at_mut(l);
    let lb = &mut rest[0];
    let (w_ih, w_hh) = layer_weights(params, &off, g, n);
    dc.fill(0.0);
    let ext = (!top).then(|| &d_out[..t * b * n]);
    match d.cell {
        FusedCell::Lstm => lstm::backward_sequence(lb, zeros, w_hh, ext, dh, dc, (b, t, n), par),
        FusedCell::Gru => gru::backward_sequence(lb, zeros, w_hh, ext, dh, dc, (b, t, n), par),
    }
    let input = layer_input(d, xs, below, t * b);
    weight_gradients(d.cell, lb, input, &off, gr, (b, t, n, g), par);
    if l > 0 {
        let gates = &lb.gates[..t * b * g];
        let below_grad = &mut d_in[..t * b * n];
        mm((t * b, n, g), below_grad, n, false, (gates, g, 1), (w_ih, n, 1), par);
        std::mem::swap(d_out, d_in);
    }
}

/// A layer's weight and bias gradients over the whole sequence from the gate gradients:
/// `dW_ih = dG^T X`, `dW_hh = dU_{1..}^T H_{..T-1}` (LSTM: `dU = dG`), column sums for the
/// biases (LSTM: `b_hh` gets the same as `b_ih`).
fn weight_gradients(
    cell: FusedCell,
    lb: &LayerBuffers,
    input: &[f32],
    off: &LayerOffsets,
    gr: &mut [f32],
    (b, t, n, g): (usize, usize, usize, usize),
    par: Parallelism,
) {
    let gates = &lb.gates[..t * b * g];
    let du_all: &[f32] = match cell {
        FusedCell::Lstm => gates,
        FusedCell::Gru => &lb.du[..t * b * g],
    };
    let gw_ih = &mut gr[off.w_ih..off.w_ih + g * off.input];
    mm((g, off.input, t * b), gw_ih, off.input, false, (gates, 1, g), (input, off.input, 1), par);
    let gw_hh = &mut gr[off.w_hh..off.w_hh + g * n];
    mm((g, n, (t - 1) * b), gw_hh, n, false, (&du_all[b * g..], 1, g), (&lb.h[..], n, 1), par);
    if let Some(bo) = off.bias {
        let (gb_ih, gb_hh) = gr[bo..bo + 2 * g].split_at_mut(g);
        column_sums(gates, t * b, g, gb_ih);
        match cell {
            FusedCell::Lstm => gb_hh.copy_from_slice(gb_ih),
            FusedCell::Gru => column_sums(du_all, t * b, g, gb_hh),
        }
    }
}
