//! What the GPU run does, decided on the host before any launch: validated sizes, the step
//! schedule (which steps re-orthonormalise, accumulate, record a trace point) and the assembly
//! of the device's log sums into [`Spectrum`]s. Pure Rust, so it is tested without a GPU; it
//! mirrors the CPU population loop line for line where the CPU backend makes the same
//! decisions, and takes the QR steps from the same [`QrSchedule`].

use crate::backend::cpu::{check_population, check_run};
use crate::backend::{BackendError, PopulationInputs};
use crate::config::{InitialBasis, LogBase, Orientation};
use crate::rnn::{CellKind, LstmState, Network, RnnSpectrumConfig};
use crate::schedule::{QrSchedule, StepPhase, nonfinite_reason};
use crate::spectrum::{Spectrum, Status, TracePoint};

/// Sizes and settings of one population run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub kind: CellKind,
    /// Hidden size `N`.
    pub n: usize,
    /// Input size of layer 0.
    pub input: usize,
    pub layers: usize,
    /// Gate blocks `G`.
    pub gates: usize,
    /// Forward state rows per layer `S` (`N` or `2N`).
    pub state_rows: usize,
    /// Columns of the recurrent matrix `R` (`N`, or `2N` for CoRNN).
    pub rec_cols: usize,
    /// Tangent rows per layer `St`.
    pub tangent_rows: usize,
    /// Tangent dimension `Dt = L St`.
    pub d: usize,
    /// Exponents per sequence.
    pub k: usize,
    pub batch: usize,
    pub steps: usize,
    /// Which loop steps re-orthonormalise and accumulate, at which input time (the CPU's rule).
    pub qr_schedule: QrSchedule,
    pub transpose: bool,
    pub lstm_full: bool,
    pub trace_every: Option<usize>,
    pub log_base: LogBase,
    pub zero_tolerance: f64,
    pub initial_basis: InitialBasis,
    /// `(eps, gamma, dt)` in `f32`, as the CPU uses them (`T::from_f64`).
    pub constants: (f32, f32, f32),
}

/// What loop step `s` does: its input time, and what happens after its tangent step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepAction {
    /// Input time step of the forward step.
    pub input: usize,
    /// Re-orthonormalise the blocks.
    pub qr: bool,
    /// Add `ln R_ii` to the sums (past the warm-up).
    pub accumulate: bool,
    /// Step within the current phase (warm-up or accumulation), from 1.
    pub in_phase: usize,
    /// Record a trace point after the QR.
    pub trace: bool,
}

impl Plan {
    /// Validate `nets`, `inputs` and `cfg` exactly as the CPU backend does and derive the sizes.
    pub fn new(
        nets: &[Network<f32>],
        inputs: &PopulationInputs<'_>,
        cfg: &RnnSpectrumConfig,
    ) -> Result<Self, BackendError> {
        let first = check_population(nets, inputs.set_count())?;
        let (batch, steps) = (inputs.batch, inputs.steps);
        let sets = (0..inputs.set_count()).map(|s| inputs.for_network(s));
        let (d, k) = check_run(first, sets, batch, steps, cfg)?;
        let sc = &cfg.spectrum;
        let lstm = cfg.lstm_state;
        let n = first.hidden;
        let c = first.constants;
        Ok(Self {
            kind: first.kind,
            n,
            input: first.input,
            layers: first.layers.len(),
            gates: first.kind.gates(),
            state_rows: first.layer_state(),
            rec_cols: if first.kind == CellKind::Cornn { 2 * n } else { n },
            tangent_rows: first.tangent_layer_state(lstm),
            d,
            k,
            batch,
            steps,
            qr_schedule: cfg.qr_schedule(steps),
            transpose: sc.orientation == Orientation::JtQ,
            lstm_full: lstm == LstmState::Full,
            trace_every: sc.trace_every,
            log_base: sc.log_base,
            zero_tolerance: sc.zero_tolerance,
            initial_basis: sc.initial_basis,
            constants: (c.eps as f32, c.gamma as f32, c.dt as f32),
        })
    }

    /// The LSTM tangent state.
    pub fn lstm_state(&self) -> LstmState {
        if self.lstm_full { LstmState::Full } else { LstmState::HOnly }
    }

    /// Rows of the gate pre-activations `G N`.
    pub fn gn(&self) -> usize {
        self.gates * self.n
    }

    /// Input size of layer `l`.
    pub fn layer_input(&self, l: usize) -> usize {
        if l == 0 { self.input } else { self.n }
    }

    /// Tangent columns per sequence of the `P` products: `k`, or `Dt` in reference orientation
    /// (the explicit Jacobian is built from identity blocks).
    pub fn product_cols(&self) -> usize {
        if self.transpose { self.d.max(self.k) } else { self.k }
    }

    /// Accumulated steps (the exponents' denominator).
    pub fn accumulated_steps(&self) -> usize {
        self.qr_schedule.accumulated_steps()
    }

    /// Loop steps of the run (warm-up included).
    pub fn total(&self) -> usize {
        self.qr_schedule.total()
    }

    /// The action of loop step `s` ([`QrSchedule::step`], the rule of every backend).
    pub fn action(&self, s: usize) -> StepAction {
        let StepPhase { accumulate, in_phase, qr, input, .. } = self.qr_schedule.step(s);
        StepAction { input, qr, accumulate, in_phase, trace: false }
    }

    /// All actions of the main loop, with the trace points marked (the CPU's `next_trace`
    /// logic, identical for every sequence that stays finite).
    pub fn schedule(&self) -> Vec<StepAction> {
        let mut next = self.trace_every;
        (0..self.total())
            .map(|s| {
                let mut a = self.action(s);
                if a.qr
                    && a.accumulate
                    && let (Some(every), Some(at)) = (self.trace_every, next.as_mut())
                    && a.in_phase >= *at
                {
                    a.trace = true;
                    while *at <= a.in_phase {
                        *at += every;
                    }
                }
                a
            })
            .collect()
    }

    /// Device memory of one network's share of a run, in bytes (weights, states, tangent
    /// blocks, products, sums, trace snapshots), for sizing batches of networks.
    pub fn bytes_per_network(&self, per_network_inputs: bool) -> usize {
        let (gn, b, l, s, n) = (self.gn(), self.batch, self.layers, self.state_rows, self.n);
        let weights: usize =
            (0..l).map(|li| gn * (self.layer_input(li) + self.rec_cols) + 2 * gn).sum();
        let states = l * b * (2 * s + gn + n) + 2 * gn * b;
        let pc = self.product_cols();
        let gru_in = usize::from(self.kind == CellKind::Gru && l > 1);
        let tangent = 2 * self.d * b * self.k + gn * b * pc * (1 + gru_in);
        let jacobians = if self.transpose { self.d * b * self.d } else { 0 };
        let inputs = if per_network_inputs { b * self.steps * self.input } else { 0 };
        let traces = self.schedule().iter().filter(|a| a.trace).count();
        let f32s = weights + states + tangent + jacobians + inputs;
        let f64s = 2 * b * self.k * (1 + traces);
        4 * f32s + 8 * f64s + 16 * b
    }

    /// Turn the device's results for `nets` networks into spectra `[m][b]`.
    ///
    /// `sums`, `comps` `[M B k]` (Neumaier sum and compensation of `ln R_ii`), `status`,
    /// `status_step`, `status_index`, `accumulated` `[M B]`, `traces` one `(sums, comps)` pair
    /// per trace point of [`Plan::schedule`].
    #[allow(clippy::too_many_arguments)]
    pub fn assemble(
        &self,
        nets: usize,
        sums: &[f64],
        comps: &[f64],
        status: &[i32],
        status_step: &[i32],
        status_index: &[i32],
        accumulated: &[i32],
        traces: &[(Vec<f64>, Vec<f64>)],
    ) -> Vec<Vec<Spectrum>> {
        let (b, k) = (self.batch, self.k);
        let scale = self.log_base.from_nats();
        let norm = scale / self.accumulated_steps() as f64;
        let trace_steps: Vec<usize> =
            self.schedule().iter().filter(|a| a.trace).map(|a| a.in_phase).collect();
        (0..nets)
            .map(|m| {
                (0..b)
                    .map(|bi| {
                        let mb = m * b + bi;
                        let value = |s: &[f64], c: &[f64], i: usize| s[mb * k + i] + c[mb * k + i];
                        let status = self.status(status[mb], status_step[mb], status_index[mb]);
                        let acc = accumulated[mb].max(0) as usize;
                        let trace = trace_steps
                            .iter()
                            .zip(traces)
                            .filter(|(step, _)| **step <= acc)
                            .map(|(&step, (ts, tc))| TracePoint {
                                step,
                                exponents: (0..k)
                                    .map(|i| value(ts, tc, i) * scale / step as f64)
                                    .collect(),
                            })
                            .collect();
                        let finite = status.is_finite();
                        let exponents = if finite {
                            (0..k).map(|i| value(sums, comps, i) * norm).collect()
                        } else {
                            vec![f64::NAN; k]
                        };
                        Spectrum::from_exponents(
                            exponents,
                            None,
                            if finite { self.accumulated_steps() } else { acc },
                            1.0,
                            self.log_base,
                            self.zero_tolerance,
                            status,
                            trace,
                        )
                    })
                    .collect()
            })
            .collect()
    }
}

impl Plan {
    /// [`decode_status`], with the wording of the schedule's step: a non-finite block at the QR
    /// that closes the reference's unnormalised warm-up is an overflow of the warm-up product.
    pub fn status(&self, code: i32, step: i32, index: i32) -> Status {
        let at = step.max(0) as usize;
        if code == 3 && at < self.total() {
            let phase = self.qr_schedule.step(at);
            if phase.closes_unnormalised_warmup {
                let reason = nonfinite_reason(&phase, index.max(0) as usize, "f32");
                return Status::Diverged { step: at, reason };
            }
        }
        decode_status(code, step, index)
    }
}

/// The device's status codes as a [`Status`], with the CPU backend's wording.
pub(crate) fn decode_status(code: i32, step: i32, index: i32) -> Status {
    let step = step.max(0) as usize;
    match code {
        0 => Status::Finite,
        1 => Status::Diverged { step, reason: "the network state became non-finite".into() },
        2 => Status::Diverged {
            step,
            reason: format!("tangent vector {index} collapsed to zero (R_ii = 0)"),
        },
        3 => Status::Diverged { step, reason: format!("non-finite tangent vector {index}") },
        other => Status::Diverged { step, reason: format!("unknown device status code {other}") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SpectrumConfig;
    use crate::rnn::{CellConstants, Layer, WarmupMode};

    fn net(kind: CellKind, n: usize, input: usize) -> Network<f32> {
        let g = kind.gates();
        let r = if kind == CellKind::Cornn { 2 * n } else { n };
        let layer = Layer {
            input,
            w_in: vec![0.1; g * n * input],
            b_in: vec![0.0; g * n],
            w_rec: vec![0.05; g * n * r],
            b_rec: vec![0.0; g * n],
        };
        let constants = CellConstants { eps: 0.01, gamma: 2.7, dt: 0.042 };
        Network::from_layers(kind, n, input, true, constants, vec![layer]).unwrap()
    }

    fn cfg(warmup: usize, ons: usize, trace: Option<usize>, mode: WarmupMode) -> RnnSpectrumConfig {
        RnnSpectrumConfig {
            spectrum: SpectrumConfig {
                warmup,
                ons_interval: ons,
                trace_every: trace,
                ..RnnSpectrumConfig::default().spectrum
            },
            warmup_mode: mode,
            ..RnnSpectrumConfig::default()
        }
    }

    #[test]
    fn sizes_follow_the_cell_and_the_lstm_state() {
        let x = vec![0.0f32; 2 * 5 * 3];
        let inputs = PopulationInputs::shared(&x, 2, 5);
        let lstm = [net(CellKind::Lstm, 4, 3)];
        let p = Plan::new(&lstm, &inputs, &RnnSpectrumConfig::default()).unwrap();
        assert_eq!((p.d, p.k, p.gn(), p.state_rows, p.rec_cols), (8, 8, 16, 8, 4));
        let h_only = RnnSpectrumConfig { lstm_state: LstmState::HOnly, ..Default::default() };
        let p = Plan::new(&lstm, &inputs, &h_only).unwrap();
        assert_eq!((p.d, p.tangent_rows, p.lstm_full), (4, 4, false));
        let cornn = [net(CellKind::Cornn, 4, 3)];
        let p = Plan::new(&cornn, &inputs, &RnnSpectrumConfig::default()).unwrap();
        assert_eq!((p.d, p.rec_cols, p.gates), (8, 8, 1));
    }

    #[test]
    fn invalid_requests_are_the_cpu_errors() {
        let x = vec![0.0f32; 2 * 5 * 3];
        let inputs = PopulationInputs::shared(&x, 2, 5);
        assert!(Plan::new(&[], &inputs, &RnnSpectrumConfig::default()).is_err());
        let mixed = [net(CellKind::Rnn, 4, 3), net(CellKind::Gru, 4, 3)];
        assert!(Plan::new(&mixed, &inputs, &RnnSpectrumConfig::default()).is_err());
        let one = [net(CellKind::Rnn, 4, 3)];
        assert!(Plan::new(&one, &inputs, &cfg(5, 1, None, WarmupMode::Tangent)).is_err());
        let short = PopulationInputs::shared(&x[1..], 2, 5);
        assert!(Plan::new(&one, &short, &RnnSpectrumConfig::default()).is_err());
        let mut bad = x.clone();
        bad[7] = f32::NAN;
        let nan = PopulationInputs::shared(&bad, 2, 5);
        assert!(Plan::new(&one, &nan, &RnnSpectrumConfig::default()).is_err());
        let f64_cfg = RnnSpectrumConfig {
            spectrum: SpectrumConfig {
                precision: crate::config::Precision::F64,
                ..RnnSpectrumConfig::default().spectrum
            },
            ..Default::default()
        };
        assert!(Plan::new(&one, &inputs, &f64_cfg).is_err());
    }

    #[test]
    fn schedule_matches_the_cpu_loop() {
        let x = vec![0.0f32; 10 * 3];
        let inputs = PopulationInputs::shared(&x, 1, 10);
        let one = [net(CellKind::Rnn, 4, 3)];
        // warm-up 3, QR every 4 steps, trace every 2 accumulated steps.
        let p = Plan::new(&one, &inputs, &cfg(3, 4, Some(2), WarmupMode::Tangent)).unwrap();
        let sched = p.schedule();
        let qr: Vec<usize> = (0..10).filter(|&s| sched[s].qr).collect();
        // warm-up phase: steps 0..3 (in_phase 1..3): QR at its end (s = 2); accumulation phase
        // in_phase = s - 2: QR at in_phase 4 (s = 6) and at the last step (s = 9).
        assert_eq!(qr, [2, 6, 9]);
        assert!(!sched[2].accumulate && sched[6].accumulate);
        let traces: Vec<usize> = sched.iter().filter(|a| a.trace).map(|a| a.in_phase).collect();
        assert_eq!(traces, [4, 7]);
        assert_eq!(p.accumulated_steps(), 7);
        // reference: 3 unnormalised warm-up steps closed by one QR, then all 10 inputs
        // replayed and accumulated, a QR every step.
        let p = Plan::new(&one, &inputs, &cfg(3, 1, None, WarmupMode::Reference)).unwrap();
        assert_eq!((p.total(), p.accumulated_steps()), (13, 10));
        let sched = p.schedule();
        let inputs_of: Vec<usize> = sched.iter().map(|a| a.input).collect();
        assert_eq!(inputs_of, [0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert!(!sched[0].qr && !sched[1].qr && sched[2].qr && !sched[2].accumulate);
        assert!(sched[3..].iter().all(|a| a.qr && a.accumulate && !a.trace));
        assert!(
            p.status(3, 2, 1)
                .to_string()
                .contains("warm-up product of 3 tangent steps overflowed f32")
        );
        assert_eq!(p.status(3, 4, 1), decode_status(3, 4, 1));
        // reference warm-up >= T is accepted (min(warmup, T) = T)
        let p = Plan::new(&one, &inputs, &cfg(500, 1, None, WarmupMode::Reference)).unwrap();
        assert_eq!((p.total(), p.accumulated_steps()), (20, 10));
    }

    #[test]
    fn assembly_normalises_sums_and_reports_divergence_like_the_cpu() {
        let x = vec![0.0f32; 2 * 4 * 3];
        let inputs = PopulationInputs::shared(&x, 2, 4);
        let one = [net(CellKind::Rnn, 2, 3)];
        let p = Plan::new(&one, &inputs, &cfg(0, 1, Some(2), WarmupMode::Tangent)).unwrap();
        assert_eq!(p.k, 2);
        // sequence 0 finite: sums (-0.4, -0.8) over 4 steps; sequence 1 collapsed at step 2.
        let sums = [-0.4, -0.8 + 1e-17, 0.0, 0.0];
        let comps = [0.0, -1e-17, 0.0, 0.0];
        let traces =
            vec![(vec![-0.2, -0.4, -0.1, -0.3], vec![0.0; 4]), (sums.to_vec(), comps.to_vec())];
        let out = p.assemble(1, &sums, &comps, &[0, 2], &[0, 2], &[0, 1], &[4, 2], &traces);
        let s0 = &out[0][0];
        assert_eq!(s0.exponents_qr_order, [-0.1, -0.2]);
        assert_eq!(s0.steps, 4);
        assert_eq!(s0.trace.len(), 2);
        assert_eq!(s0.trace[0].exponents, [-0.1, -0.2]);
        let s1 = &out[0][1];
        assert!(s1.exponents.iter().all(|v| v.is_nan()));
        assert_eq!(s1.steps, 2);
        assert_eq!(s1.trace.len(), 1);
        assert_eq!(
            s1.status,
            Status::Diverged {
                step: 2,
                reason: "tangent vector 1 collapsed to zero (R_ii = 0)".into()
            }
        );
        assert_eq!(
            decode_status(1, 5, 0).to_string(),
            "diverged at step 5: the network state became non-finite"
        );
    }
}
