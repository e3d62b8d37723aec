//! The Benettin/QR driver shared by maps, flows and Jacobian sequences.
//!
//! For `s = 0 .. warmup + T`: form `Z = J_s Q` (or `J_s^T Q`), advance the state, and every
//! `T_ons` steps of a phase (and at the last step of each phase) orthonormalise `Z = Q R`,
//! adding `ln R_ii` to the sums once the warm-up is over. Then
//! `lambda_i = sum ln R_ii / (T dt)`, converted to the requested log base.

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::config::{InitialBasis, Orientation, Precision, SpectrumConfig};
use crate::error::{LeError, Result};
use crate::linalg::qr::{QrWorkspace, orthonormalize_in_place};
use crate::linalg::{jacobian_times, log_abs_det};
use crate::map::{DiscreteMap, Flow, MapWorkspace, Rk4};
use crate::scalar::Real;
use crate::schedule::QrSchedule;
use crate::spectrum::{Spectrum, SpectrumStats, Status, TracePoint};

/// One step of a tangent system as seen by the driver.
pub(crate) trait TangentSource<T: Real> {
    fn dim(&self) -> usize;
    /// Form `z = J_s Q` (orientation as configured) at the current state and advance the state.
    /// Returns `ln |det J_s|` when requested and available, or the reason the step went
    /// non-finite.
    fn advance(&mut self, s: usize, q: &[T], k: usize, z: &mut [T]) -> Result<Option<f64>, String>;
}

/// `Q_0` for trajectory `member` of a batch: identity columns or seeded random orthonormal.
pub fn initial_basis<T: Real>(d: usize, k: usize, basis: InitialBasis, member: u64) -> Vec<T> {
    let mut q = vec![T::zero(); d * k];
    match basis {
        InitialBasis::Identity => {
            for c in 0..k {
                q[c * d + c] = T::one();
            }
        }
        InitialBasis::Random { seed } => {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed.wrapping_add(member));
            for v in &mut q {
                let g: f64 = StandardNormal.sample(&mut rng);
                *v = T::from_f64(g);
            }
            let mut ws = QrWorkspace::new(d, k);
            let mut logs = vec![0.0; k];
            orthonormalize_in_place(&mut q, &mut logs, &mut ws);
        }
    }
    q
}

pub(crate) fn check_precision<T: Real>(cfg: &SpectrumConfig) -> Result<()> {
    let want = match cfg.precision {
        Precision::F32 => "f32",
        Precision::F64 => "f64",
    };
    if want != T::NAME {
        return Err(LeError::InvalidConfig {
            field: "precision",
            message: format!(
                "the configuration asks for {want} but the system computes in {}; \
                 build the system in {want} (built-in systems and Jacobian files do this for you)",
                T::NAME
            ),
        });
    }
    Ok(())
}

/// Run the Benettin/QR algorithm on `src` for `warmup + steps` steps.
pub(crate) fn run<T: Real, S: TangentSource<T>>(
    src: &mut S,
    cfg: &SpectrumConfig,
    steps: usize,
    dt: f64,
    member: u64,
) -> Result<Spectrum> {
    cfg.validate()?;
    check_precision::<T>(cfg)?;
    let d = src.dim();
    let k = cfg.resolve_k(d)?;
    if steps == 0 {
        return Err(LeError::InvalidConfig {
            field: "steps",
            message: "need at least one accumulated step after the warm-up".into(),
        });
    }
    // A subnormal step would turn finite log sums into infinite exponents.
    if !(dt.is_normal() && dt > 0.0) {
        return Err(LeError::InvalidConfig {
            field: "dt",
            message: format!(
                "time step must be a finite normal number > 0 (at least {:e}), got {dt:e}",
                f64::MIN_POSITIVE
            ),
        });
    }
    let mut q = initial_basis::<T>(d, k, cfg.initial_basis, member);
    let mut z = vec![T::zero(); d * k];
    let mut ws = QrWorkspace::new(d, k);
    let mut logs = vec![0.0f64; k];
    let mut sums = vec![CompensatedSum::default(); k];
    let mut log_det_sum = CompensatedSum::default();
    let mut log_det_steps = 0usize;
    let mut trace = Vec::new();
    let mut next_trace = cfg.trace_every;
    let scale = cfg.log_base.from_nats();
    let warmup = cfg.warmup;
    let Some(total) = warmup.checked_add(steps).filter(|&t| t <= 2 * crate::config::MAX_STEPS)
    else {
        return Err(LeError::InvalidConfig {
            field: "steps",
            message: format!(
                "warmup + steps must be at most {} (got warmup = {warmup}, steps = {steps})",
                2 * crate::config::MAX_STEPS
            ),
        });
    };
    let schedule = QrSchedule::standard(warmup, total, cfg.ons_interval);

    let diverged = |s: usize, reason: String, accumulated: usize, trace: Vec<TracePoint>| {
        Spectrum::from_exponents(
            vec![f64::NAN; k],
            None,
            accumulated,
            dt,
            cfg.log_base,
            cfg.zero_tolerance,
            Status::Diverged { step: s, reason },
            trace,
        )
    };

    for s in 0..total {
        let step = schedule.step(s);
        let accumulate = step.accumulate;
        let accumulated = if accumulate { s - warmup } else { 0 };
        match src.advance(s, &q, k, &mut z) {
            Err(reason) => return Ok(diverged(s, reason, accumulated, trace)),
            Ok(ld) => {
                if accumulate && let Some(ld) = ld {
                    log_det_sum.add(ld);
                    log_det_steps += 1;
                }
            }
        }
        std::mem::swap(&mut q, &mut z);
        let in_phase = step.in_phase;
        if step.qr {
            orthonormalize_in_place(&mut q, &mut logs, &mut ws);
            if let Some(i) = logs.iter().position(|l| !l.is_finite()) {
                let reason = if logs[i] == f64::NEG_INFINITY {
                    format!("tangent vector {i} collapsed to zero (R_ii = 0; singular Jacobian)")
                } else {
                    format!("non-finite tangent vector {i} (ln R_ii = {})", logs[i])
                };
                return Ok(diverged(s, reason, accumulated, trace));
            }
            if accumulate {
                for (acc, &l) in sums.iter_mut().zip(&logs) {
                    acc.add(l);
                }
                let n = in_phase;
                if let (Some(every), Some(at)) = (cfg.trace_every, next_trace.as_mut())
                    && n >= *at
                {
                    let norm = scale / (n as f64 * dt);
                    trace.push(TracePoint {
                        step: n,
                        exponents: sums.iter().map(|v| v.value() * norm).collect(),
                    });
                    while *at <= n {
                        *at += every;
                    }
                }
            }
        }
    }
    let norm = scale / (steps as f64 * dt);
    let exponents: Vec<f64> = sums.iter().map(|v| v.value() * norm).collect();
    let mean_log_abs_det =
        (log_det_steps == steps).then(|| log_det_sum.value() * scale / (steps as f64 * dt));
    // Finite log sums can still give infinite exponents (a tiny `T dt`): never `finite` then.
    let status = match exponents.iter().position(|l| !l.is_finite()) {
        None => Status::Finite,
        Some(i) => Status::Diverged {
            step: total,
            reason: format!(
                "exponent {i} is {} (the log sums over T dt = {:e} do not give a finite rate)",
                exponents[i],
                steps as f64 * dt
            ),
        },
    };
    Ok(Spectrum::from_exponents(
        exponents,
        mean_log_abs_det,
        steps,
        dt,
        cfg.log_base,
        cfg.zero_tolerance,
        status,
        trace,
    ))
}

/// Neumaier (improved Kahan) summation: the long sums of `ln R_ii` (10^6 terms and more) keep
/// full `f64` accuracy instead of losing `~ sqrt(T)` ulps of the running total.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    #[inline]
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.compensation += (self.sum - t) + x;
        } else {
            self.compensation += (x - t) + self.sum;
        }
        self.sum = t;
    }

    #[inline]
    pub(crate) fn value(&self) -> f64 {
        self.sum + self.compensation
    }
}

/// A [`DiscreteMap`] with its state, as a [`TangentSource`].
struct MapSource<'m, T: Real, M: ?Sized> {
    map: &'m M,
    x: Vec<T>,
    next: Vec<T>,
    ws: MapWorkspace<T>,
    jac: Vec<T>,
    lu: Vec<f64>,
    orientation: Orientation,
    log_det: bool,
}

impl<'m, T: Real, M: DiscreteMap<T> + ?Sized> MapSource<'m, T, M> {
    fn new(map: &'m M, x0: &[T], cfg: &SpectrumConfig) -> Result<Self> {
        let d = map.dim();
        if x0.len() != d {
            return Err(LeError::InvalidConfig {
                field: "initial_state",
                message: format!("has {} entries, the system has dimension {d}", x0.len()),
            });
        }
        if let Some(i) = x0.iter().position(|v| !v.is_finite()) {
            return Err(LeError::InvalidConfig {
                field: "initial_state",
                message: format!("entry {i} is not finite"),
            });
        }
        let mut ws = MapWorkspace::new();
        let mut jac = vec![T::zero(); d * d];
        let has_jacobian = map.jacobian(0, x0, &mut jac, &mut ws);
        if cfg.orientation == Orientation::JtQ && !has_jacobian {
            // The map may still implement tangent_transpose itself; probe it once.
            let k = 1;
            let q = vec![T::zero(); d * k];
            let mut z = vec![T::zero(); d * k];
            if !map.tangent_transpose(0, x0, &q, k, &mut z, &mut ws) {
                return Err(LeError::Unsupported(
                    "orientation J^T Q needs the full Jacobian or tangent_transpose, and this map \
                     provides only J Q"
                        .into(),
                ));
            }
        }
        Ok(Self {
            map,
            x: x0.to_vec(),
            next: vec![T::zero(); d],
            ws,
            jac,
            lu: if cfg.log_det && has_jacobian { vec![0.0; d * d] } else { Vec::new() },
            orientation: cfg.orientation,
            log_det: cfg.log_det && has_jacobian,
        })
    }
}

impl<T: Real, M: DiscreteMap<T> + ?Sized> TangentSource<T> for MapSource<'_, T, M> {
    fn dim(&self) -> usize {
        self.map.dim()
    }

    fn advance(&mut self, s: usize, q: &[T], k: usize, z: &mut [T]) -> Result<Option<f64>, String> {
        let d = self.map.dim();
        let transpose = self.orientation == Orientation::JtQ;
        let mut ld = None;
        if self.log_det {
            if !self.map.jacobian(s, &self.x, &mut self.jac, &mut self.ws) {
                return Err(format!("the map stopped providing its Jacobian at step {s}"));
            }
            ld = Some(log_abs_det(&self.jac, d, &mut self.lu));
            jacobian_times(&self.jac, d, q, k, z, transpose);
        } else {
            let ok = if transpose {
                self.map.tangent_transpose(s, &self.x, q, k, z, &mut self.ws)
            } else {
                self.map.tangent(s, &self.x, q, k, z, &mut self.ws)
            };
            if !ok {
                return Err("the map provides neither its Jacobian nor tangent products".into());
            }
        }
        self.map.step(s, &self.x, &mut self.next, &mut self.ws);
        if let Some(i) = self.next.iter().position(|v| !v.is_finite()) {
            return Err(format!("state component {i} became {:?}", self.next[i]));
        }
        std::mem::swap(&mut self.x, &mut self.next);
        Ok(ld)
    }
}

/// A sequence of Jacobians `[T, D, D]` as a [`TangentSource`].
struct SequenceSource<'a, T: Real> {
    jacobians: &'a [T],
    d: usize,
    lu: Vec<f64>,
    transpose: bool,
    log_det: bool,
}

impl<T: Real> TangentSource<T> for SequenceSource<'_, T> {
    fn dim(&self) -> usize {
        self.d
    }

    fn advance(&mut self, s: usize, q: &[T], k: usize, z: &mut [T]) -> Result<Option<f64>, String> {
        let dd = self.d * self.d;
        let jac = &self.jacobians[s * dd..(s + 1) * dd];
        jacobian_times(jac, self.d, q, k, z, self.transpose);
        Ok(self.log_det.then(|| log_abs_det(jac, self.d, &mut self.lu)))
    }
}

/// Lyapunov spectrum of the map `map` from the initial state `x0`, with `cfg.warmup` warm-up
/// steps and `cfg.steps` accumulated steps (exponents per step). `T` must match
/// `cfg.precision`.
pub fn map_spectrum<T: Real, M: DiscreteMap<T> + ?Sized>(
    map: &M,
    x0: &[T],
    cfg: &SpectrumConfig,
) -> Result<Spectrum> {
    map_spectrum_member(map, x0, cfg, 0)
}

fn map_spectrum_member<T: Real, M: DiscreteMap<T> + ?Sized>(
    map: &M,
    x0: &[T],
    cfg: &SpectrumConfig,
    member: u64,
) -> Result<Spectrum> {
    let mut src = MapSource::new(map, x0, cfg)?;
    run(&mut src, cfg, cfg.steps, 1.0, member)
}

/// Lyapunov spectrum of the flow `flow` (exponents per unit time), integrated with RK4 of step
/// `dt` (state and tangent dynamics share the RK4 stages). `cfg.steps` RK4 steps are
/// accumulated, i.e. a time span of `steps * dt`.
pub fn flow_spectrum<T: Real, F: Flow<T>>(
    flow: &F,
    x0: &[T],
    dt: f64,
    cfg: &SpectrumConfig,
) -> Result<Spectrum> {
    flow_spectrum_member(flow, x0, dt, cfg, 0)
}

fn flow_spectrum_member<T: Real, F: Flow<T>>(
    flow: &F,
    x0: &[T],
    dt: f64,
    cfg: &SpectrumConfig,
    member: u64,
) -> Result<Spectrum> {
    let map = Rk4 { flow, dt };
    let mut src = MapSource::new(&map, x0, cfg)?;
    run(&mut src, cfg, cfg.steps, dt, member)
}

impl<T: Real, F: Flow<T>> Flow<T> for &F {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn vector_field(&self, x: &[T], dxdt: &mut [T]) {
        (**self).vector_field(x, dxdt);
    }
    fn jacobian(&self, x: &[T], jac: &mut [T]) -> bool {
        (**self).jacobian(x, jac)
    }
    fn tangent(&self, x: &[T], q: &[T], k: usize, out: &mut [T], jac_buf: &mut Vec<T>) -> bool {
        (**self).tangent(x, q, k, out, jac_buf)
    }
}

/// Lyapunov spectrum of a given sequence of Jacobians `jacobians` (`[T, D, D]`, row-major,
/// `J_t[i][j] = d x_{t+1,i} / d x_{t,j}`, `J_t` applied at step `t`). The first `cfg.warmup`
/// Jacobians are the warm-up; the remaining `T - warmup` are accumulated (`cfg.steps` is not
/// used). Exponents are per `dt` (pass 1 for per step).
pub fn jacobian_sequence_spectrum<T: Real>(
    jacobians: &[T],
    d: usize,
    dt: f64,
    cfg: &SpectrumConfig,
) -> Result<Spectrum> {
    jacobian_sequence_member(jacobians, d, dt, cfg, 0)
}

fn jacobian_sequence_member<T: Real>(
    jacobians: &[T],
    d: usize,
    dt: f64,
    cfg: &SpectrumConfig,
    member: u64,
) -> Result<Spectrum> {
    if d == 0 || !jacobians.len().is_multiple_of(d * d) {
        return Err(LeError::InvalidConfig {
            field: "jacobians",
            message: format!(
                "{} values do not form a [T, D, D] sequence with D = {d}",
                jacobians.len()
            ),
        });
    }
    let t_len = jacobians.len() / (d * d);
    if t_len <= cfg.warmup {
        return Err(LeError::InvalidConfig {
            field: "warmup",
            message: format!(
                "the sequence has {t_len} Jacobians, the warm-up takes {}; none would be accumulated",
                cfg.warmup
            ),
        });
    }
    let mut src = SequenceSource {
        jacobians,
        d,
        lu: if cfg.log_det { vec![0.0; d * d] } else { Vec::new() },
        transpose: cfg.orientation == Orientation::JtQ,
        log_det: cfg.log_det,
    };
    run(&mut src, cfg, t_len - cfg.warmup, dt, member)
}

/// Spectra of a batch of trajectories with their statistics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BatchSpectra {
    /// One spectrum per member, in input order.
    pub members: Vec<Spectrum>,
    /// Mean and standard deviation over the finite members.
    pub stats: SpectrumStats,
}

impl BatchSpectra {
    fn collect(members: Vec<Spectrum>) -> Self {
        let stats = SpectrumStats::of(&members);
        Self { members, stats }
    }

    /// The spectra `member(item, b)` of every item `b`, computed in parallel (rayon).
    fn of_members<I: Sync>(
        items: &[I],
        member: impl Fn(&I, u64) -> Result<Spectrum> + Sync + Send,
    ) -> Result<Self> {
        let members = items
            .par_iter()
            .enumerate()
            .map(|(b, item)| member(item, b as u64))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::collect(members))
    }
}

/// Spectra of `map` from each initial state in `x0s`, computed in parallel (rayon). With a
/// random initial basis, member `b` uses seed `seed + b`.
pub fn map_spectra_batch<T: Real, M: DiscreteMap<T> + ?Sized>(
    map: &M,
    x0s: &[Vec<T>],
    cfg: &SpectrumConfig,
) -> Result<BatchSpectra> {
    BatchSpectra::of_members(x0s, |x0, b| map_spectrum_member(map, x0, cfg, b))
}

/// Spectra of `flow` from each initial state in `x0s` (RK4 step `dt`), in parallel.
pub fn flow_spectra_batch<T: Real, F: Flow<T>>(
    flow: &F,
    x0s: &[Vec<T>],
    dt: f64,
    cfg: &SpectrumConfig,
) -> Result<BatchSpectra> {
    BatchSpectra::of_members(x0s, |x0, b| flow_spectrum_member(flow, x0, dt, cfg, b))
}

/// Spectra of several Jacobian sequences (each `[T_b, D, D]`), in parallel.
pub fn jacobian_sequences_batch<T: Real>(
    sequences: &[&[T]],
    d: usize,
    dt: f64,
    cfg: &SpectrumConfig,
) -> Result<BatchSpectra> {
    BatchSpectra::of_members(sequences, |seq, b| jacobian_sequence_member(seq, d, dt, cfg, b))
}
