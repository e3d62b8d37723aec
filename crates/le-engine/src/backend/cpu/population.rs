//! The CPU population loop: spectra of populations of networks.
//!
//! Per network, all `B` driving sequences advance together: one forward GEMM per weight block
//! and step for all sequences, one tangent GEMM `U [Q_1 .. Q_B]` per weight block and step
//! (see `rnn/cells/`), then a Householder QR of each sequence's `Dt x k` block on the steps
//! [`QrSchedule`] names (the standard rule, or the published code's, `WarmupMode`), each step
//! at the input time the schedule names. `Q_0` is [`Network::initial_tangent_basis`]: the
//! identity (or seeded random) basis in PyTorch's state order. Networks run in parallel over rayon's pool when there are at least as
//! many networks as threads; otherwise the networks run one after the other and each one's
//! GEMMs and QRs use all threads.

use aelle_support::simd::{Level, level};
use rayon::prelude::*;

use crate::config::{Orientation, SpectrumConfig};
use crate::engine::CompensatedSum;
use crate::error::{LeError, Result};
use crate::linalg::AlignedBuf;
use crate::linalg::qr::batched::{
    BatchedQrWorkspace, LANES, orthonormalize_blocks, simd_interleaved_pays,
};
use crate::linalg::qr::{
    QrWorkspace, apply_factored_q_right, factor_keeping_reflectors, orthonormalize_in_place,
};
use crate::rnn::cells::{BatchState, CombinedStep, matmul};
use crate::rnn::spectra::check_inputs;
use crate::rnn::{InputSet, LstmState, Network, PopulationSpectra, RnnSpectrumConfig};
use crate::scalar::Real;
use crate::schedule::{QrSchedule, StepPhase, nonfinite_reason};
use crate::spectrum::{Spectrum, SpectrumStats, Status, TracePoint};

/// Spectra of every network of `nets` (same cell kind and sizes) driven by `inputs`.
pub fn population_spectra<T: Real>(
    nets: &[Network<T>],
    inputs: &InputSet<'_, T>,
    cfg: &RnnSpectrumConfig,
) -> Result<PopulationSpectra> {
    check_population(nets, inputs.set_count())?;
    let threads = rayon::current_num_threads();
    let run = |(m, net): (usize, &Network<T>), threading| {
        network_spectra_with(net, inputs.for_network(m), inputs.batch, inputs.steps, cfg, threading)
    };
    let spectra: Vec<Vec<Spectrum>> = if nets.len() >= threads {
        let threading = Threading {
            par: gemm::Parallelism::None,
            parallel_qr: false,
            factored_q: true,
            simd: level(),
        };
        nets.par_iter().enumerate().map(|m_net| run(m_net, threading)).collect::<Result<_>>()?
    } else {
        let threading = Threading {
            par: gemm::Parallelism::Rayon(threads),
            parallel_qr: true,
            factored_q: true,
            simd: level(),
        };
        nets.iter().enumerate().map(|m_net| run(m_net, threading)).collect::<Result<_>>()?
    };
    let stats = spectra.iter().map(|s| SpectrumStats::of(s)).collect();
    Ok(PopulationSpectra { spectra, stats })
}

/// The checks of a population as a whole (the CUDA plan makes the same ones): not empty,
/// `set_count` is 1 or one input set per network, every network of the first one's kind and
/// sizes. Returns the first network.
pub(crate) fn check_population<T: Real>(
    nets: &[Network<T>],
    set_count: usize,
) -> Result<&Network<T>> {
    let Some(first) = nets.first() else {
        return Err(LeError::InvalidConfig {
            field: "networks",
            message: "the population is empty".into(),
        });
    };
    if set_count != 1 && set_count != nets.len() {
        return Err(LeError::InvalidConfig {
            field: "inputs",
            message: format!(
                "{} input sets for {} networks (expected 1 or one per network)",
                set_count,
                nets.len()
            ),
        });
    }
    for (m, net) in nets.iter().enumerate() {
        if net.kind != first.kind
            || net.hidden != first.hidden
            || net.input != first.input
            || net.layers.len() != first.layers.len()
        {
            return Err(LeError::InvalidConfig {
                field: "networks",
                message: format!(
                    "network {m} is a {} with N = {}, I = {}, {} layers; network 0 is a {} with N = {}, I = {}, {} layers",
                    net.kind.name(),
                    net.hidden,
                    net.input,
                    net.layers.len(),
                    first.kind.name(),
                    first.hidden,
                    first.input,
                    first.layers.len()
                ),
            });
        }
    }
    Ok(first)
}

/// Spectra of one network for each of the `batch` sequences of `inputs` (`[B, T, I]`),
/// using all threads.
pub fn network_spectra<T: Real>(
    net: &Network<T>,
    inputs: &[T],
    batch: usize,
    steps: usize,
    cfg: &RnnSpectrumConfig,
) -> Result<Vec<Spectrum>> {
    let threads = rayon::current_num_threads();
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let threading = Threading { par, parallel_qr: threads > 1, factored_q: true, simd: level() };
    network_spectra_with(net, inputs, batch, steps, cfg, threading)
}

/// One sequence's running sums of `ln R_ii`, its status and its trace.
struct SequenceAccumulator {
    sums: Vec<CompensatedSum>,
    logs: Vec<f64>,
    status: Status,
    trace: Vec<TracePoint>,
    next_trace: Option<usize>,
    accumulated: usize,
}

impl SequenceAccumulator {
    fn new(k: usize, trace_every: Option<usize>) -> Self {
        Self {
            sums: vec![CompensatedSum::default(); k],
            logs: vec![0.0; k],
            status: Status::Finite,
            trace: Vec::new(),
            next_trace: trace_every,
            accumulated: 0,
        }
    }

    /// Check and accumulate the `ln R_ii` (in `logs`) of this sequence's fresh QR of `qb` at
    /// loop step `s`: a non-finite value marks the sequence diverged (and zeroes its block;
    /// at the QR closing the reference's unnormalised warm-up it is an overflow of the warm-up
    /// product); past the warm-up the logs are added and a trace point recorded when due.
    fn record<T: Real>(
        &mut self,
        qb: &mut [T],
        s: usize,
        phase: StepPhase,
        trace_every: Option<usize>,
        scale: f64,
    ) {
        if !self.status.is_finite() {
            return;
        }
        if let Some(i) = self.logs.iter().position(|l| !l.is_finite()) {
            let reason = if self.logs[i] == f64::NEG_INFINITY {
                format!("tangent vector {i} collapsed to zero (R_ii = 0)")
            } else {
                nonfinite_reason(&phase, i, T::NAME)
            };
            self.status = Status::Diverged { step: s, reason };
            qb.fill(T::zero());
            return;
        }
        if phase.accumulate {
            let in_phase = phase.in_phase;
            for (sum, &l) in self.sums.iter_mut().zip(&self.logs) {
                sum.add(l);
            }
            self.accumulated = in_phase;
            if let (Some(every), Some(at)) = (trace_every, self.next_trace.as_mut())
                && in_phase >= *at
            {
                let norm = scale / in_phase as f64;
                self.trace.push(TracePoint {
                    step: in_phase,
                    exponents: self.sums.iter().map(|v| v.value() * norm).collect(),
                });
                while *at <= in_phase {
                    *at += every;
                }
            }
        }
    }
}

/// How [`network_spectra_with`] spreads and organises its work.
#[derive(Clone, Copy)]
struct Threading {
    /// Threads for the per-step GEMMs.
    par: gemm::Parallelism,
    /// One QR workspace per sequence, sequences in parallel.
    parallel_qr: bool,
    /// Keep `Q` factored where that path applies (always, except in the tests comparing it
    /// with the explicit path).
    factored_q: bool,
    /// The SIMD level of the QR workspaces (and so of the factored-`Q` path): the process's
    /// [`aelle_support::simd::level`], or another supported one in the tests that check each.
    simd: Level,
}

/// One network's run: the configuration as the loop reads it, the forward state, the tangent
/// blocks of all `B` sequences, the QR scratch and each sequence's sums.
struct NetworkRun<'a, T: Real> {
    net: &'a Network<T>,
    inputs: &'a [T],
    steps: usize,
    sc: &'a SpectrumConfig,
    lstm: LstmState,
    threading: Threading,
    batch: usize,
    d: usize,
    k: usize,
    /// `d * k`, one sequence's tangent block.
    block: usize,
    qr_schedule: QrSchedule,
    scale: f64,
    state: BatchState<T>,
    q: AlignedBuf<T>,
    z: AlignedBuf<T>,
    /// Reference orientation: identity blocks and the explicit Jacobians `J_b` (`d x d`,
    /// column `j` = `J e_j`) of all sequences, from the tangent map applied to them.
    transpose: bool,
    eye: Vec<T>,
    jall: Vec<T>,
    workspaces: Vec<QrWorkspace<T>>,
    /// Serial QRs of several blocks: factor them LANES at a time, SIMD across blocks, where
    /// that kernel is faster (f32 with AVX-512).
    interleaved: Option<(BatchedQrWorkspace<T>, Vec<f64>)>,
    acc: Vec<SequenceAccumulator>,
    /// LSTM / GRU: each sequence's tangent block is orthonormalised right after it is
    /// computed, while it is still in cache (same arithmetic as tangent-all-then-QR-all).
    fused: bool,
    /// One-layer LSTM / GRU, full spectrum, a QR every step: keep each sequence's Q in the
    /// factored form its QR left (reflectors, compact-WY T factors, signs) and apply it to the
    /// explicit Jacobian from the right (`J Q`, `linalg::qr::apply_factored_q_right`) instead
    /// of forming Q and multiplying it: fewer flops, all in broadcast-FMA form. The first step
    /// multiplies the explicit Q_0.
    keep_q_factored: bool,
    t_len: usize,
    sign_len: usize,
    t_factors: Vec<T>,
    signs: Vec<T>,
    zeros: Vec<T>,
    rec_cm: Vec<T>,
}

/// Validate one network's run on each of `input_sets` and return `(d, k)` (the CUDA plan
/// validates its whole population's inputs with it).
pub(crate) fn check_run<'i, T: Real + 'i>(
    net: &Network<T>,
    input_sets: impl IntoIterator<Item = &'i [T]>,
    batch: usize,
    steps: usize,
    cfg: &RnnSpectrumConfig,
) -> Result<(usize, usize)> {
    let sc = &cfg.spectrum;
    sc.validate()?;
    crate::engine::check_precision::<T>(sc)?;
    for inputs in input_sets {
        check_inputs(inputs, batch, steps, net.input, "inputs")?;
    }
    let d = net.tangent_dim(cfg.lstm_state);
    let k = sc.resolve_k(d)?;
    cfg.validate_for_steps(steps)?;
    Ok((d, k))
}

impl<'a, T: Real> NetworkRun<'a, T> {
    /// Validate and set up the schedule, `Q_0`, the scratch and the path choices.
    fn new(
        net: &'a Network<T>,
        inputs: &'a [T],
        batch: usize,
        steps: usize,
        cfg: &'a RnnSpectrumConfig,
        threading: Threading,
    ) -> Result<Self> {
        let Threading { par, parallel_qr, factored_q, simd } = threading;
        let (d, k) = check_run(net, [inputs], batch, steps, cfg)?;
        let sc = &cfg.spectrum;
        let lstm = cfg.lstm_state;
        let qr_schedule = cfg.qr_schedule(steps);
        let mut state = BatchState::new(net, batch);
        state.par = par;
        let block = d * k;
        let mut q = AlignedBuf::<T>::zeroed(batch * block);
        for b in 0..batch {
            q[b * block..(b + 1) * block].copy_from_slice(&net.initial_tangent_basis(
                lstm,
                k,
                sc.initial_basis,
                b as u64,
            ));
        }
        let z = AlignedBuf::<T>::zeroed(batch * block);
        let transpose = sc.orientation == Orientation::JtQ;
        let (eye, jall) = if transpose {
            let mut eye = vec![T::zero(); batch * d * d];
            for b in 0..batch {
                for i in 0..d {
                    eye[b * d * d + i * d + i] = T::one();
                }
            }
            (eye, vec![T::zero(); batch * d * d])
        } else {
            (Vec::new(), Vec::new())
        };
        let workspaces: Vec<QrWorkspace<T>> = (0..if parallel_qr { batch } else { 1 })
            .map(|_| QrWorkspace::new(d, k).with_simd_level(simd).expect("a supported level"))
            .collect();
        // The interleaved QR's kernels follow the process level; used only when that and this
        // run's level agree.
        let interleaved =
            (!parallel_qr && batch > 1 && simd == level() && simd_interleaved_pays::<T>(d))
                .then(|| (BatchedQrWorkspace::<T>::new(d, k), vec![0.0f64; LANES * k]));
        let acc: Vec<SequenceAccumulator> =
            (0..batch).map(|_| SequenceAccumulator::new(k, sc.trace_every)).collect();
        let scale = sc.log_base.from_nats();
        let fused = !transpose && interleaved.is_none() && net.kind.has_combined_tangent();
        let keep_q_factored = factored_q
            && fused
            && k == d
            && qr_schedule.qr_every_step()
            && net.layers.len() == 1
            && workspaces[0].supports_factored_q();
        let (t_len, sign_len) =
            if keep_q_factored { (workspaces[0].factored_q_parts().0.len(), k) } else { (1, 1) };
        let rec_cm =
            if keep_q_factored { CombinedStep::recurrent_columns(net) } else { Vec::new() };
        Ok(Self {
            net,
            inputs,
            steps,
            sc,
            lstm,
            threading,
            batch,
            d,
            k,
            block,
            qr_schedule,
            scale,
            state,
            q,
            z,
            transpose,
            eye,
            jall,
            workspaces,
            interleaved,
            acc,
            fused,
            keep_q_factored,
            t_len,
            sign_len,
            t_factors: vec![T::zero(); batch * t_len],
            signs: vec![T::one(); batch * sign_len],
            zeros: vec![T::zero(); d],
            rec_cm,
        })
    }

    /// Loop step `s`: forward step at the schedule's input time, divergence check, tangent
    /// step and (on the schedule's steps) the QRs.
    fn step(&mut self, s: usize) {
        let phase = self.qr_schedule.step(s);
        self.state.forward(self.net, self.inputs, self.steps, phase.input);
        for (b, a) in self.acc.iter_mut().enumerate() {
            if a.status.is_finite() && !self.state.sequence_is_finite(b) {
                a.status = Status::Diverged {
                    step: s,
                    reason: "the network state became non-finite".into(),
                };
            }
        }
        if self.fused {
            self.fused_step(s, phase);
        } else {
            self.explicit_step(s, phase);
        }
    }

    /// The LSTM / GRU step, sequence by sequence: `z_b = J_b Q_b`, then its QR (the
    /// factorisation only when `Q` is kept factored, its T factors and signs kept per sequence).
    fn fused_step(&mut self, s: usize, phase: StepPhase) {
        let (d, k, block, t_len) = (self.d, self.k, self.block, self.t_len);
        let (keep_q_factored, trace_every, scale) =
            (self.keep_q_factored, self.sc.trace_every, self.scale);
        let (ctx, scratch) = self.state.combined_parts(self.net, self.lstm, &self.q, k);
        let q_prev: &[T] = &self.q;
        let (rec_cm, zeros) = (&self.rec_cm, &self.zeros);
        let step_sequence = |b: usize,
                             zb: &mut [T],
                             sc: &mut [T],
                             a: &mut SequenceAccumulator,
                             ws: &mut QrWorkspace<T>,
                             tb: &mut [T],
                             sb: &mut [T]| {
            if keep_q_factored && s > 0 {
                ctx.jacobian(b, zb, sc, rec_cm);
                let qb = &q_prev[b * block..(b + 1) * block];
                apply_factored_q_right(ws.simd_level(), d, zb, qb, tb, sb, zeros);
            } else {
                ctx.run(b, zb, sc);
            }
            if !phase.qr {
                return;
            }
            if !keep_q_factored {
                qr_one(zb, a, ws, s, phase, trace_every, scale);
            } else if a.status.is_finite() {
                factor_keeping_reflectors(zb, &mut a.logs, ws);
                let (tf, sg) = ws.factored_q_parts();
                tb.copy_from_slice(&tf[..t_len]);
                sb.copy_from_slice(&sg[..k]);
                a.record(zb, s, phase, trace_every, scale);
            }
        };
        let batch = self.batch;
        let sign_len = self.sign_len;
        if self.threading.parallel_qr {
            self.z[..batch * block]
                .par_chunks_mut(block)
                .zip(scratch.par_iter_mut())
                .zip(self.acc.par_iter_mut())
                .zip(self.workspaces.par_iter_mut())
                .zip(self.t_factors.par_chunks_mut(t_len).zip(self.signs.par_chunks_mut(sign_len)))
                .enumerate()
                .for_each(|(b, ((((zb, sc), a), ws), (tb, sb)))| {
                    step_sequence(b, zb, sc, a, ws, tb, sb);
                });
        } else {
            let ws = &mut self.workspaces[0];
            for (b, (((zb, sc), a), (tb, sb))) in self.z[..batch * block]
                .chunks_mut(block)
                .zip(scratch.iter_mut())
                .zip(self.acc.iter_mut())
                .zip(self.t_factors.chunks_mut(t_len).zip(self.signs.chunks_mut(sign_len)))
                .enumerate()
            {
                step_sequence(b, zb, sc, a, ws, tb, sb);
            }
        }
        std::mem::swap(&mut self.q, &mut self.z);
    }

    /// The step of the other cells and paths: the tangent step of all sequences (or, in the
    /// reference orientation, `J_b^T Q_b` from the explicit Jacobians), then the QRs.
    fn explicit_step(&mut self, s: usize, phase: StepPhase) {
        let (d, k, block, batch) = (self.d, self.k, self.block, self.batch);
        let (net, lstm) = (self.net, self.lstm);
        if self.transpose {
            self.state.tangent(net, lstm, &self.eye, &mut self.jall, d);
            for b in 0..batch {
                // J_b^T as a row-major matrix is J_b's column-major storage.
                matmul(
                    d,
                    k,
                    d,
                    &self.jall[b * d * d..(b + 1) * d * d],
                    d,
                    &self.q[b * block..],
                    d,
                    &mut self.z[b * block..],
                    d,
                    false,
                    self.threading.par,
                );
            }
        } else {
            self.state.tangent(net, lstm, &self.q, &mut self.z, k);
        }
        std::mem::swap(&mut self.q, &mut self.z);
        if !phase.qr {
            return;
        }
        let (trace_every, scale) = (self.sc.trace_every, self.scale);
        if let Some((bws, blogs)) = self.interleaved.as_mut() {
            for (qg, ag) in self.q.chunks_mut(LANES * block).zip(self.acc.chunks_mut(LANES)) {
                let n = ag.len();
                orthonormalize_blocks(qg, &mut blogs[..n * k], bws);
                for (lane, a) in ag.iter_mut().enumerate() {
                    a.logs.copy_from_slice(&blogs[lane * k..(lane + 1) * k]);
                    a.record(
                        &mut qg[lane * block..(lane + 1) * block],
                        s,
                        phase,
                        trace_every,
                        scale,
                    );
                }
            }
        } else if self.threading.parallel_qr {
            self.q
                .par_chunks_mut(block)
                .zip(self.acc.par_iter_mut())
                .zip(self.workspaces.par_iter_mut())
                .for_each(|((qb, a), ws)| qr_one(qb, a, ws, s, phase, trace_every, scale));
        } else {
            let ws = &mut self.workspaces[0];
            for (qb, a) in self.q.chunks_mut(block).zip(self.acc.iter_mut()) {
                qr_one(qb, a, ws, s, phase, trace_every, scale);
            }
        }
    }

    /// Each sequence's spectrum (NaN exponents for a diverged one).
    fn finish(self) -> Vec<Spectrum> {
        let (k, sc) = (self.k, self.sc);
        let accumulated_steps = self.qr_schedule.accumulated_steps();
        let norm = self.scale / accumulated_steps as f64;
        self.acc
            .into_iter()
            .map(|a| {
                let exponents = if a.status.is_finite() {
                    a.sums.iter().map(|v| v.value() * norm).collect()
                } else {
                    vec![f64::NAN; k]
                };
                Spectrum::from_exponents(
                    exponents,
                    None,
                    if a.status.is_finite() { accumulated_steps } else { a.accumulated },
                    1.0,
                    sc.log_base,
                    sc.zero_tolerance,
                    a.status,
                    a.trace,
                )
            })
            .collect()
    }
}

/// Orthonormalise one sequence's block and record its `ln R_ii` (nothing for a sequence that
/// has diverged).
fn qr_one<T: Real>(
    qb: &mut [T],
    a: &mut SequenceAccumulator,
    ws: &mut QrWorkspace<T>,
    s: usize,
    phase: StepPhase,
    trace_every: Option<usize>,
    scale: f64,
) {
    if !a.status.is_finite() {
        return;
    }
    orthonormalize_in_place(qb, &mut a.logs, ws);
    a.record(qb, s, phase, trace_every, scale);
}

fn network_spectra_with<T: Real>(
    net: &Network<T>,
    inputs: &[T],
    batch: usize,
    steps: usize,
    cfg: &RnnSpectrumConfig,
    threading: Threading,
) -> Result<Vec<Spectrum>> {
    let mut run = NetworkRun::new(net, inputs, batch, steps, cfg, threading)?;
    for s in 0..run.qr_schedule.total() {
        run.step(s);
    }
    Ok(run.finish())
}

#[cfg(test)]
mod tests;
