//! The fused GRU (PyTorch `nn.GRU`, gates `[r; z; n]`, `n = tanh(a_n + r (U_n h + b_hn))`):
//! the elementwise step kernels (forward, backward; run-time SIMD dispatch) and one layer's
//! recurrence over the sequence, forward and backward.
//!
//! Forward per step `s`: `a_s = x_s W^T + b_ih` is already in `G_s`; `u = h_{s-1} U^T + b_hh`
//! into a scratch (since `r` multiplies `U_n h + b_hn`), then `r, z, n` in place of `a_s`,
//! `u_n` kept, `h = n + z (h_{s-1} - n)`. Backward per step (top down in time):
//! `dh_s = (gradient from above) + dh_{s+1} z_{s+1} + dU_{s+1} U`, then `G_s` becomes the
//! gradient w.r.t. `a_s` and `du` the gradient w.r.t. `u`.

use aelle_support::fastmath::{fast_sigmoid, fast_tanh};
use gemm::Parallelism;

use super::gemm::mm;
use super::workspace::LayerBuffers;

/// `(B, T, N)`: rows, steps, hidden size.
type Sizes = (usize, usize, usize);

/// The forward of one layer over all `T` steps; `lb.gates` holds every step's input
/// projection plus `b_ih` and becomes `[r; z; n]`; writes `lb.c` (`u_n`) and `lb.h`, using
/// `lb.du` as the scratch for `u`.
pub(super) fn forward_sequence(
    lb: &mut LayerBuffers,
    zeros: &[f32],
    w_hh: &[f32],
    b_hh: Option<&[f32]>,
    (b, t, n): Sizes,
    par: Parallelism,
) {
    let g = 3 * n;
    let gates = &mut lb.gates[..t * b * g];
    for s in 0..t {
        let g_s = &mut gates[s * b * g..(s + 1) * b * g];
        let (done, now) = lb.h.split_at_mut(s * b * n);
        let h_prev = if s == 0 { zeros } else { &done[(s - 1) * b * n..] };
        let u = &mut lb.du[s * b * g..(s + 1) * b * g];
        match b_hh {
            Some(b_hh) => {
                for row in u.chunks_exact_mut(g) {
                    row.copy_from_slice(b_hh);
                }
            }
            None => u.fill(0.0),
        }
        if s > 0 {
            mm((b, g, n), u, g, true, (&h_prev[..b * n], n, 1), (w_hh, 1, n), par);
        }
        let un = &mut lb.c[s * b * n..(s + 1) * b * n];
        forward_step(g_s, u, un, &h_prev[..b * n], &mut now[..b * n], n);
    }
}

/// The backward of one layer over all `T` steps (BPTT): `dh` holds the gradient w.r.t.
/// `h_T` from the readout (top layer) and `ext` the gradient w.r.t. every `h_s` from the
/// layer above (other layers); `dc` (`dh z`, the direct part of `dh_{s-1}`) starts at zero.
/// `lb.gates` becomes the gradient w.r.t. the input projection, `lb.du` the one w.r.t.
/// `U h + b_hh`.
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
    let g = 3 * n;
    let gates = &mut lb.gates[..t * b * g];
    let du = &mut lb.du[..t * b * g];
    for s in (0..t).rev() {
        if s + 1 < t {
            // dh_s = (external gradient) + dh_{s+1} z_{s+1} + dU_{s+1} U
            dh.copy_from_slice(dc);
            if let Some(e) = ext {
                for (x, e) in dh.iter_mut().zip(&e[s * b * n..(s + 1) * b * n]) {
                    *x += e;
                }
            }
            let du_next = &du[(s + 1) * b * g..(s + 2) * b * g];
            mm((b, n, g), dh, n, true, (du_next, g, 1), (w_hh, n, 1), par);
        } else if let Some(e) = ext {
            dh.copy_from_slice(&e[s * b * n..(s + 1) * b * n]);
        }
        let h_prev = if s == 0 { zeros } else { &lb.h[(s - 1) * b * n..s * b * n] };
        let g_s = &mut gates[s * b * g..(s + 1) * b * g];
        let un = &lb.c[s * b * n..(s + 1) * b * n];
        backward_step(g_s, un, h_prev, dh, &mut du[s * b * g..(s + 1) * b * g], dc, n);
    }
}

simd_dispatch! {
    /// [`forward_step_impl`] at the widest SIMD level.
    fn forward_step(
        g: &mut [f32],
        u: &[f32],
        un: &mut [f32],
        h_prev: &[f32],
        h: &mut [f32],
        n: usize,
    ) => forward_step_impl;
}

simd_dispatch! {
    /// [`backward_step_impl`] at the widest SIMD level.
    fn backward_step(
        g: &mut [f32],
        un: &[f32],
        h_prev: &[f32],
        dh: &[f32],
        du: &mut [f32],
        dhz: &mut [f32],
        n: usize,
    ) => backward_step_impl;
}

/// GRU step forward for `B` rows: `g` holds the input projections `a = x W^T + b_ih`
/// (rows `[r; z; n]`) and becomes `[r; z; n]`; `u = h U^T + b_hh`; writes `u_n` and `h`.
#[inline(always)]
fn forward_step_impl(
    g: &mut [f32],
    u: &[f32],
    un: &mut [f32],
    h_prev: &[f32],
    h: &mut [f32],
    n: usize,
) {
    for ((((g, u), un), hp), h) in g
        .chunks_exact_mut(3 * n)
        .zip(u.chunks_exact(3 * n))
        .zip(un.chunks_exact_mut(n))
        .zip(h_prev.chunks_exact(n))
        .zip(h.chunks_exact_mut(n))
    {
        let (gr, rest) = g.split_at_mut(n);
        let (gz, gn) = rest.split_at_mut(n);
        let (ur, rest) = u.split_at(n);
        let (uz, u_n) = rest.split_at(n);
        forward_row(gr, gz, gn, ur, uz, u_n, un, hp, h);
    }
}

/// One row of [`forward_step_impl`] (separate slices, short passes; see
/// `lstm::forward_row`).
#[inline(always)]
// indexed loops over equal-length slices are what vectorises here
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn forward_row(
    gr: &mut [f32],
    gz: &mut [f32],
    gn: &mut [f32],
    ur: &[f32],
    uz: &[f32],
    u_n: &[f32],
    un: &mut [f32],
    hp: &[f32],
    h: &mut [f32],
) {
    let n = gr.len();
    let (gz, gn, ur, uz, u_n, un, hp, h) = (
        &mut gz[..n],
        &mut gn[..n],
        &ur[..n],
        &uz[..n],
        &u_n[..n],
        &mut un[..n],
        &hp[..n],
        &mut h[..n],
    );
    for j in 0..n {
        gr[j] = fast_sigmoid(gr[j] + ur[j]);
        gz[j] = fast_sigmoid(gz[j] + uz[j]);
    }
    un.copy_from_slice(u_n);
    for j in 0..n {
        gn[j] = fast_tanh(gn[j] + gr[j] * u_n[j]);
    }
    for j in 0..n {
        h[j] = gn[j] + gz[j] * (hp[j] - gn[j]);
    }
}

/// GRU step backward: `g` (`[r; z; n]`) becomes the gradient w.r.t. `a`; writes the
/// gradient w.r.t. `u` into `du` and `dh z` into `dhz`.
#[inline(always)]
fn backward_step_impl(
    g: &mut [f32],
    un: &[f32],
    h_prev: &[f32],
    dh: &[f32],
    du: &mut [f32],
    dhz: &mut [f32],
    n: usize,
) {
    for (((((g, un), hp), dh), du), dhz) in g
        .chunks_exact_mut(3 * n)
        .zip(un.chunks_exact(n))
        .zip(h_prev.chunks_exact(n))
        .zip(dh.chunks_exact(n))
        .zip(du.chunks_exact_mut(3 * n))
        .zip(dhz.chunks_exact_mut(n))
    {
        let (gr, rest) = g.split_at_mut(n);
        let (gz, gn) = rest.split_at_mut(n);
        let (dur, rest) = du.split_at_mut(n);
        let (duz, dun) = rest.split_at_mut(n);
        backward_row(gr, gz, gn, dur, duz, dun, un, hp, dh, dhz);
    }
}

/// One row of [`backward_step_impl`] (separate slices, see `lstm::backward_row`).
#[inline(always)]
// indexed loops over equal-length slices are what vectorises here
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn backward_row(
    gr: &mut [f32],
    gz: &mut [f32],
    gn: &mut [f32],
    dur: &mut [f32],
    duz: &mut [f32],
    dun: &mut [f32],
    un: &[f32],
    hp: &[f32],
    dh: &[f32],
    dhz: &mut [f32],
) {
    let n = gr.len();
    let (gz, gn, dur, duz, dun, un, hp, dh, dhz) = (
        &mut gz[..n],
        &mut gn[..n],
        &mut dur[..n],
        &mut duz[..n],
        &mut dun[..n],
        &un[..n],
        &hp[..n],
        &dh[..n],
        &mut dhz[..n],
    );
    for j in 0..n {
        let (r, z, nv, u, h, d) = (gr[j], gz[j], gn[j], un[j], hp[j], dh[j]);
        let dn = d * (1.0 - z);
        let dzv = d * (h - nv);
        let dpn = dn * (1.0 - nv * nv);
        let dr = dpn * u * (r * (1.0 - r));
        let dz = dzv * (z * (1.0 - z));
        gr[j] = dr;
        gz[j] = dz;
        gn[j] = dpn;
        dur[j] = dr;
        duz[j] = dz;
        dun[j] = dpn * r;
        dhz[j] = d * z;
    }
}
