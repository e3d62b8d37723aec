//! The fused LSTM (PyTorch `nn.LSTM`, gates `[i; f; g; o]`): the elementwise step kernels
//! (forward, backward; run-time SIMD dispatch) and one layer's recurrence over the sequence,
//! forward and backward.
//!
//! Forward per step `s`: `G_s += h_{s-1} U^T` (the input projection and both biases are
//! already in `G_s`), then `i, f, o = s(.)`, `g = tanh(.)`, `c = f c_{s-1} + i g`,
//! `h = o tanh(c)`, with the activations kept in place of the pre-activations.
//! Backward per step (top down in time): `dh_s = (gradient from above) + dG_{s+1} U`, then
//! the activations become `dG_s` and `dc` is carried to step `s - 1`.

use aelle_support::fastmath::{fast_sigmoid, fast_tanh};
use gemm::Parallelism;

use super::gemm::mm;
use super::workspace::LayerBuffers;

/// `(B, T, N)`: rows, steps, hidden size.
type Sizes = (usize, usize, usize);

/// The forward of one layer over all `T` steps; `lb.gates` holds every step's input
/// projection plus biases and becomes the activations; writes `lb.c`, `lb.tc`, `lb.h`.
pub(super) fn forward_sequence(
    lb: &mut LayerBuffers,
    zeros: &[f32],
    w_hh: &[f32],
    (b, t, n): Sizes,
    par: Parallelism,
) {
    let g = 4 * n;
    let gates = &mut lb.gates[..t * b * g];
    for s in 0..t {
        let g_s = &mut gates[s * b * g..(s + 1) * b * g];
        let (done, now) = lb.c.split_at_mut(s * b * n);
        let c_prev = if s == 0 { zeros } else { &done[(s - 1) * b * n..] };
        if s > 0 {
            let h_prev = &lb.h[(s - 1) * b * n..s * b * n];
            mm((b, g, n), g_s, g, true, (h_prev, n, 1), (w_hh, 1, n), par);
        }
        let (tc, h) =
            (&mut lb.tc[s * b * n..(s + 1) * b * n], &mut lb.h[s * b * n..(s + 1) * b * n]);
        forward_step(g_s, &c_prev[..b * n], &mut now[..b * n], tc, h, n);
    }
}

/// The backward of one layer over all `T` steps (BPTT): `dh` holds the gradient w.r.t.
/// `h_T` from the readout (top layer) and `ext` the gradient w.r.t. every `h_s` from the
/// layer above (other layers); `dc` starts at zero. `lb.gates` becomes the gradient w.r.t.
/// the pre-activations.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward_sequence(
    lb: &mut LayerBuffers,
    zeros: &[f32],
    w_hh: &[f32],
    ext: Option<&[f32]>,
    dh: &mut [f32],
    dc: &mut [f32],
    (b, t, n): Sizes,
    par: Parallelism,
) {
    let g = 4 * n;
    let gates = &mut lb.gates[..t * b * g];
    for s in (0..t).rev() {
        if s + 1 < t {
            // dh_s = (external gradient) + dG_{s+1} U
            if let Some(e) = ext {
                dh.copy_from_slice(&e[s * b * n..(s + 1) * b * n]);
            }
            let g_next = &gates[(s + 1) * b * g..(s + 2) * b * g];
            mm((b, n, g), dh, n, ext.is_some(), (g_next, g, 1), (w_hh, n, 1), par);
        } else if let Some(e) = ext {
            dh.copy_from_slice(&e[s * b * n..(s + 1) * b * n]);
        }
        let c_prev = if s == 0 { zeros } else { &lb.c[(s - 1) * b * n..s * b * n] };
        let g_s = &mut gates[s * b * g..(s + 1) * b * g];
        backward_step(g_s, c_prev, &lb.tc[s * b * n..(s + 1) * b * n], dh, dc, n);
    }
}

simd_dispatch! {
    /// [`forward_step_impl`] at the widest SIMD level.
    fn forward_step(
        g: &mut [f32],
        c_prev: &[f32],
        c: &mut [f32],
        tc: &mut [f32],
        h: &mut [f32],
        n: usize,
    ) => forward_step_impl;
}

simd_dispatch! {
    /// [`backward_step_impl`] at the widest SIMD level.
    fn backward_step(
        g: &mut [f32],
        c_prev: &[f32],
        tc: &[f32],
        dh: &[f32],
        dc: &mut [f32],
        n: usize,
    ) => backward_step_impl;
}

/// LSTM step forward for `B` rows: `g` holds the pre-activations (rows `[i; f; g; o]`)
/// and becomes the activations; writes `c`, `tanh(c)` and `h`.
#[inline(always)]
fn forward_step_impl(
    g: &mut [f32],
    c_prev: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h: &mut [f32],
    n: usize,
) {
    for ((((g, cp), c), tc), h) in g
        .chunks_exact_mut(4 * n)
        .zip(c_prev.chunks_exact(n))
        .zip(c.chunks_exact_mut(n))
        .zip(tc.chunks_exact_mut(n))
        .zip(h.chunks_exact_mut(n))
    {
        let (gi, rest) = g.split_at_mut(n);
        let (gf, rest) = rest.split_at_mut(n);
        let (gg, go) = rest.split_at_mut(n);
        forward_row(gi, gf, gg, go, cp, c, tc, h);
    }
}

/// One row of [`forward_step_impl`], in short passes over separate slice arguments (so
/// LLVM knows they do not overlap, see [`backward_row`]).
#[inline(always)]
// indexed loops over equal-length slices are what vectorises here
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn forward_row(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    cp: &[f32],
    c: &mut [f32],
    tc: &mut [f32],
    h: &mut [f32],
) {
    let n = gi.len();
    let (gf, gg, go, cp, c, tc, h) = (
        &mut gf[..n],
        &mut gg[..n],
        &mut go[..n],
        &cp[..n],
        &mut c[..n],
        &mut tc[..n],
        &mut h[..n],
    );
    for j in 0..n {
        gi[j] = fast_sigmoid(gi[j]);
        gf[j] = fast_sigmoid(gf[j]);
        go[j] = fast_sigmoid(go[j]);
    }
    for j in 0..n {
        gg[j] = fast_tanh(gg[j]);
    }
    for j in 0..n {
        c[j] = gf[j] * cp[j] + gi[j] * gg[j];
    }
    for j in 0..n {
        tc[j] = fast_tanh(c[j]);
    }
    for j in 0..n {
        h[j] = go[j] * tc[j];
    }
}

/// LSTM step backward: `g` (the activations) becomes the gradient w.r.t. the
/// pre-activations; `dc` (the gradient w.r.t. `c` from the step after) becomes the one
/// carried to the step before.
#[inline(always)]
fn backward_step_impl(
    g: &mut [f32],
    c_prev: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    n: usize,
) {
    for ((((g, cp), tc), dh), dc) in g
        .chunks_exact_mut(4 * n)
        .zip(c_prev.chunks_exact(n))
        .zip(tc.chunks_exact(n))
        .zip(dh.chunks_exact(n))
        .zip(dc.chunks_exact_mut(n))
    {
        let (gi, rest) = g.split_at_mut(n);
        let (gf, rest) = rest.split_at_mut(n);
        let (gg, go) = rest.split_at_mut(n);
        backward_row(gi, gf, gg, go, cp, tc, dh, dc);
    }
}

/// One row of [`backward_step_impl`]. The gate blocks arrive as separate slice arguments
/// so that LLVM knows they do not overlap (sliced out of one row inside the caller, or
/// passed in an array, the loop did not vectorise).
#[inline(always)]
// indexed loops over equal-length slices are what vectorises here
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn backward_row(
    gi: &mut [f32],
    gf: &mut [f32],
    gg: &mut [f32],
    go: &mut [f32],
    cp: &[f32],
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
) {
    let n = gi.len();
    let (gf, gg, go, cp, tc, dh, dc) =
        (&mut gf[..n], &mut gg[..n], &mut go[..n], &cp[..n], &tc[..n], &dh[..n], &mut dc[..n]);
    for j in 0..n {
        let (i, f, gv, o, t, d) = (gi[j], gf[j], gg[j], go[j], tc[j], dh[j]);
        let dcv = dc[j] + d * o * (1.0 - t * t);
        gi[j] = dcv * gv * (i * (1.0 - i));
        gf[j] = dcv * cp[j] * (f * (1.0 - f));
        gg[j] = dcv * i * (1.0 - gv * gv);
        go[j] = d * t * (o * (1.0 - o));
        dc[j] = dcv * f;
    }
}
