//! The device program of a population run as plain data: which buffers exist, and the ordered
//! list of operations (strided-batched GEMMs with their shapes and operand offsets, kernel
//! launches, buffer swaps, QRs, trace snapshots). `population.rs` executes it with CUDA; the
//! host executor of the tests (`host_exec.rs`) executes the same list on the CPU and is compared
//! with the CPU backend, so the shapes, strides and offsets are checked without a GPU.
//!
//! Per loop step `s` (at the schedule's input time `t`: `t = s`, or in the reference's replay
//! `t = s - w`), for each layer `l`:
//! 1. swap the layer's old/new state;
//! 2. `pre_in = W_in x_t` (layer 0: the inputs' column `t`, `ld = T I`, stride 0 when shared;
//!    layer `l > 0`: the previous layer's new state) and `pre_rec = W_rec state_{t-1}`:
//!    strided-batched GEMMs over the `M` networks (weights are row-major, so `op(A) = A^T` of
//!    the column-major view);
//! 3. `<cell>_forward_f32`;
//!
//! then for each layer `l` the tangent step:
//! 4. `P = U_rec Q_rec` for all `B k` columns of every network in one GEMM
//!    (`U_m [Q_{m,1} .. Q_{m,B}]`), plus `W_in dIn` for `l > 0` (into `P`, or into `p_in` for
//!    the GRU);
//! 5. `<cell>_tangent_f32`: `Z = J Q`;
//!
//! (reference orientation: 4-5 on identity blocks give the explicit Jacobians, then
//! `Z = J^T Q` is one more GEMM over the `M B` blocks), then `Q <-> Z`, and when the schedule
//! says so the QR (and a snapshot of the sums for a trace point).

use super::plan::Plan;
use crate::rnn::CellKind;

/// An `f32` device buffer of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Buf {
    /// `[B, T, I]` once (shared) or per network.
    Inputs,
    PreIn,
    PreRec,
    Q,
    Z,
    P,
    PIn,
    /// Identity blocks `[Dt x B Dt]`, shared by all networks (reference orientation).
    Eye,
    /// Explicit Jacobians `[M][Dt x B Dt]` (reference orientation).
    Jall,
    WIn(usize),
    BIn(usize),
    WRec(usize),
    BRec(usize),
    Old(usize),
    New(usize),
    Gates(usize),
    Aux(usize),
}

impl Buf {
    /// Slot of this buffer in a run's buffer table.
    pub fn slot(self) -> usize {
        const FIXED: usize = 9;
        match self {
            Buf::Inputs => 0,
            Buf::PreIn => 1,
            Buf::PreRec => 2,
            Buf::Q => 3,
            Buf::Z => 4,
            Buf::P => 5,
            Buf::PIn => 6,
            Buf::Eye => 7,
            Buf::Jall => 8,
            Buf::WIn(l) => FIXED + 8 * l,
            Buf::BIn(l) => FIXED + 8 * l + 1,
            Buf::WRec(l) => FIXED + 8 * l + 2,
            Buf::BRec(l) => FIXED + 8 * l + 3,
            Buf::Old(l) => FIXED + 8 * l + 4,
            Buf::New(l) => FIXED + 8 * l + 5,
            Buf::Gates(l) => FIXED + 8 * l + 6,
            Buf::Aux(l) => FIXED + 8 * l + 7,
        }
    }

    /// Number of slots of a run with `layers` layers.
    pub fn slots(layers: usize) -> usize {
        9 + 8 * layers
    }
}

/// A buffer from an element offset on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct View {
    pub buf: Buf,
    pub offset: usize,
}

fn at(buf: Buf, offset: usize) -> View {
    View { buf, offset }
}

/// One strided-batched GEMM, column-major: `C_i = alpha op(A_i) B_i + beta C_i`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GemmShape {
    pub transa: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub lda: usize,
    pub stride_a: usize,
    pub ldb: usize,
    pub stride_b: usize,
    pub beta: f32,
    pub ldc: usize,
    pub stride_c: usize,
    pub batch: usize,
}

/// One operation of the device program.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Gemm {
        shape: GemmShape,
        a: View,
        b: View,
        c: View,
    },
    /// Swap the old and new state of a layer.
    SwapState {
        layer: usize,
    },
    /// `<cell>_forward_f32` of a layer; `step` is the loop step a divergence is recorded at
    /// (`< 0`: none recorded).
    Forward {
        layer: usize,
        step: i32,
    },
    /// `<cell>_tangent_f32` of a layer: `q = Q, z = Z` (`k` columns per sequence) or
    /// `q = Eye, z = Jall` (`Dt` columns, `identity`); `p_in` when the GRU keeps the input apart.
    Tangent {
        layer: usize,
        identity: bool,
        p_in: bool,
    },
    SwapQZ,
    Qr {
        step: usize,
        accumulate: bool,
        in_phase: usize,
    },
    /// Snapshot of the log sums for a trace point.
    Trace,
}

/// Element counts of the `f32` buffers of a run of `nets` networks (0: absent).
pub(crate) fn buffer_lengths(plan: &Plan, nets: usize, shared_inputs: bool) -> Vec<(Buf, usize)> {
    let (m, b, gn, n, d, k) = (nets, plan.batch, plan.gn(), plan.n, plan.d, plan.k);
    let pc = plan.product_cols();
    let inputs = b * plan.steps * plan.input * if shared_inputs { 1 } else { m };
    let gru_input = plan.kind == CellKind::Gru && plan.layers > 1;
    let mut v = vec![
        (Buf::Inputs, inputs),
        (Buf::PreIn, m * gn * b),
        (Buf::PreRec, m * gn * b),
        (Buf::Q, m * b * d * k),
        (Buf::Z, m * b * d * k),
        (Buf::P, m * gn * b * pc),
        (Buf::PIn, if gru_input { m * gn * b * pc } else { 0 }),
        (Buf::Eye, if plan.transpose { d * b * d } else { 0 }),
        (Buf::Jall, if plan.transpose { m * d * b * d } else { 0 }),
    ];
    for l in 0..plan.layers {
        let il = plan.layer_input(l);
        v.extend([
            (Buf::WIn(l), m * gn * il),
            (Buf::BIn(l), m * gn),
            (Buf::WRec(l), m * gn * plan.rec_cols),
            (Buf::BRec(l), m * gn),
            (Buf::Old(l), m * plan.state_rows * b),
            (Buf::New(l), m * plan.state_rows * b),
            (Buf::Gates(l), m * gn * b),
            (Buf::Aux(l), m * n * b),
        ]);
    }
    v
}

/// The whole device program of a run of `nets` networks: every loop step of the schedule
/// (warm-up included).
pub(crate) fn program(plan: &Plan, nets: usize, shared_inputs: bool) -> Vec<Op> {
    let mut ops = Vec::new();
    for (s, action) in plan.schedule().into_iter().enumerate() {
        forward_ops(&mut ops, plan, nets, shared_inputs, action.input, s as i32);
        if plan.transpose {
            tangent_ops(&mut ops, plan, nets, true);
            let (d, k) = (plan.d, plan.k);
            ops.push(Op::Gemm {
                shape: GemmShape {
                    transa: true,
                    m: d,
                    n: k,
                    k: d,
                    alpha: 1.0,
                    lda: d,
                    stride_a: d * d,
                    ldb: d,
                    stride_b: d * k,
                    beta: 0.0,
                    ldc: d,
                    stride_c: d * k,
                    batch: nets * plan.batch,
                },
                a: at(Buf::Jall, 0),
                b: at(Buf::Q, 0),
                c: at(Buf::Z, 0),
            });
        } else {
            tangent_ops(&mut ops, plan, nets, false);
        }
        ops.push(Op::SwapQZ);
        if action.qr {
            ops.push(Op::Qr { step: s, accumulate: action.accumulate, in_phase: action.in_phase });
            if action.trace {
                ops.push(Op::Trace);
            }
        }
    }
    ops
}

fn forward_ops(
    ops: &mut Vec<Op>,
    plan: &Plan,
    nets: usize,
    shared_inputs: bool,
    t: usize,
    step: i32,
) {
    let (m, b, gn, sr, rc) = (nets, plan.batch, plan.gn(), plan.state_rows, plan.rec_cols);
    for l in 0..plan.layers {
        ops.push(Op::SwapState { layer: l });
        let il = plan.layer_input(l);
        let (x, ldb, stride_b) = if l == 0 {
            let i = plan.input;
            let stride = if shared_inputs { 0 } else { b * plan.steps * i };
            (at(Buf::Inputs, t * i), plan.steps * i, stride)
        } else {
            (at(Buf::New(l - 1), 0), sr, sr * b)
        };
        ops.push(Op::Gemm {
            shape: GemmShape {
                transa: true,
                m: gn,
                n: b,
                k: il,
                alpha: 1.0,
                lda: il,
                stride_a: gn * il,
                ldb,
                stride_b,
                beta: 0.0,
                ldc: gn,
                stride_c: gn * b,
                batch: m,
            },
            a: at(Buf::WIn(l), 0),
            b: x,
            c: at(Buf::PreIn, 0),
        });
        ops.push(Op::Gemm {
            shape: GemmShape {
                transa: true,
                m: gn,
                n: b,
                k: rc,
                alpha: 1.0,
                lda: rc,
                stride_a: gn * rc,
                ldb: sr,
                stride_b: sr * b,
                beta: 0.0,
                ldc: gn,
                stride_c: gn * b,
                batch: m,
            },
            a: at(Buf::WRec(l), 0),
            b: at(Buf::Old(l), 0),
            c: at(Buf::PreRec, 0),
        });
        ops.push(Op::Forward { layer: l, step });
    }
}

fn tangent_ops(ops: &mut Vec<Op>, plan: &Plan, nets: usize, identity: bool) {
    let (m, b, gn, n, d) = (nets, plan.batch, plan.gn(), plan.n, plan.d);
    let kc = if identity { d } else { plan.k };
    let cols = b * kc;
    let st = plan.tangent_rows;
    let (q, z) = if identity { (Buf::Eye, Buf::Jall) } else { (Buf::Q, Buf::Z) };
    let q_net_stride = if identity { 0 } else { d * cols };
    let gru_input = plan.kind == CellKind::Gru && plan.layers > 1;
    for l in 0..plan.layers {
        let rc = plan.rec_cols;
        ops.push(Op::Gemm {
            shape: GemmShape {
                transa: true,
                m: gn,
                n: cols,
                k: rc,
                alpha: 1.0,
                lda: rc,
                stride_a: gn * rc,
                ldb: d,
                stride_b: q_net_stride,
                beta: 0.0,
                ldc: gn,
                stride_c: gn * cols,
                batch: m,
            },
            a: at(Buf::WRec(l), 0),
            b: at(q, l * st),
            c: at(Buf::P, 0),
        });
        if l > 0 {
            ops.push(Op::Gemm {
                shape: GemmShape {
                    transa: true,
                    m: gn,
                    n: cols,
                    k: n,
                    alpha: 1.0,
                    lda: n,
                    stride_a: gn * n,
                    ldb: d,
                    stride_b: d * cols,
                    beta: if gru_input { 0.0 } else { 1.0 },
                    ldc: gn,
                    stride_c: gn * cols,
                    batch: m,
                },
                a: at(Buf::WIn(l), 0),
                b: at(z, (l - 1) * st),
                c: at(if gru_input { Buf::PIn } else { Buf::P }, 0),
            });
        }
        ops.push(Op::Tangent { layer: l, identity, p_in: gru_input && l > 0 });
    }
}

/// The `q` stride between networks of a tangent launch (0 for the shared identity blocks).
pub(crate) fn tangent_q_net_stride(plan: &Plan, identity: bool) -> usize {
    if identity { 0 } else { plan.d * plan.batch * plan.k }
}

/// Columns per sequence of a tangent launch.
pub(crate) fn tangent_cols_per_sequence(plan: &Plan, identity: bool) -> usize {
    if identity { plan.d } else { plan.k }
}
