//! When the Benettin loop re-orthonormalises and accumulates: the one step rule of every
//! backend. The generic engine (`engine.rs`), the CPU population loop (`backend::cpu`) and the
//! CUDA plan all ask [`QrSchedule::step`].
//!
//! A run is a sequence of loop steps `s = 0 .. total()`, each one tangent step
//! `Q <- J_s Q` (or `J_s^T Q`) at input time [`StepPhase::input`], in two phases: the warm-up
//! (nothing accumulated) and the accumulation phase. Inside each phase steps are counted from 1
//! ([`StepPhase::in_phase`]). Two rules:
//!
//! * [`QrSchedule::standard`] (steps `0 .. first_accumulated` warm up, input time = loop step):
//!   a QR every `T_ons` steps of a phase and always at the last step of each phase, so the
//!   warm-up hands a fresh orthonormal basis to the accumulation and the last accumulated step
//!   is never left unnormalised. `lambda_i = (1 / (T - w)) sum ln R_ii`.
//! * [`QrSchedule::reference`], the published code's `calc_LEs_an`: a warm-up over the first
//!   `w = min(warmup, T)` inputs with **no** re-orthonormalisation, `Q_w = J_{w-1}^T .. J_0^T Q_0`,
//!   closed by one QR (`Q <- q`, its `R` discarded); then the main loop replays **all** `T`
//!   inputs from the warmed-up state, `t = s - w = 0 .. T`, with a QR exactly where
//!   `t mod T_ons = 0` (`R_t = S r`, `S = sign diag r`) and `R_t = I` elsewhere, no QR forced at
//!   the last step (the stretching after the last QR is dropped), and
//!   `lambda_i = (1 / T) sum_t log (R_t)_ii` whatever `T_ons` is. The unnormalised warm-up
//!   product can leave the floating-point range; the QR that closes it is flagged
//!   ([`StepPhase::closes_unnormalised_warmup`]) so that a non-finite block there is reported
//!   as an overflow of the warm-up product ([`nonfinite_reason`]).

/// Which rule a [`QrSchedule`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// QR every `ons_interval` steps of each phase and at each phase end.
    Standard,
    /// The published code's: unnormalised warm-up closed by one QR, then a QR where
    /// `t mod ons_interval = 0` over the replayed inputs.
    Reference,
}

/// The phase lengths, the re-orthonormalisation interval and the rule of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QrSchedule {
    rule: Rule,
    /// Warm-up loop steps (`w`; reference: `min(warmup, T)`).
    warmup: usize,
    /// Accumulation-phase loop steps (the exponents' denominator).
    accumulated: usize,
    /// `>= 1`, checked by `SpectrumConfig::validate`.
    ons_interval: usize,
}

/// What the schedule says about one loop step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepPhase {
    /// Past the warm-up: the step's `ln R_ii` count (on the steps with a QR).
    pub accumulate: bool,
    /// Step within the current phase (warm-up or accumulation), from 1.
    pub in_phase: usize,
    /// Re-orthonormalise after this step.
    pub qr: bool,
    /// Input time step this loop step consumes.
    pub input: usize,
    /// This QR closes an unnormalised warm-up (reference rule): its `R` is not used, and a
    /// non-finite block means the warm-up product overflowed.
    pub closes_unnormalised_warmup: bool,
}

impl QrSchedule {
    /// The standard rule: `warmup` re-orthonormalised warm-up steps, then `total - warmup`
    /// accumulated ones, input time = loop step (`warmup <= total`).
    pub(crate) fn standard(warmup: usize, total: usize, ons_interval: usize) -> Self {
        Self {
            rule: Rule::Standard,
            warmup,
            accumulated: total.saturating_sub(warmup),
            ons_interval,
        }
    }

    /// The published rule over `steps` inputs: `min(warmup, steps)` unnormalised warm-up steps,
    /// then `steps` replayed ones.
    pub(crate) fn reference(warmup: usize, steps: usize, ons_interval: usize) -> Self {
        Self { rule: Rule::Reference, warmup: warmup.min(steps), accumulated: steps, ons_interval }
    }

    /// Loop steps of the whole run (warm-up included).
    pub(crate) fn total(&self) -> usize {
        self.warmup + self.accumulated
    }

    /// Steps of the accumulation phase: the exponents' denominator.
    pub(crate) fn accumulated_steps(&self) -> usize {
        self.accumulated
    }

    /// Whether every step re-orthonormalises (what keeping `Q` factored needs).
    pub(crate) fn qr_every_step(&self) -> bool {
        self.ons_interval == 1 && (self.rule == Rule::Standard || self.warmup <= 1)
    }

    /// The phase of loop step `s` and whether a QR follows it.
    #[inline]
    pub(crate) fn step(&self, s: usize) -> StepPhase {
        let accumulate = s >= self.warmup;
        let in_phase = if accumulate { s - self.warmup + 1 } else { s + 1 };
        match self.rule {
            Rule::Standard => {
                let phase_end = (!accumulate && s + 1 == self.warmup) || s + 1 == self.total();
                let qr = in_phase.is_multiple_of(self.ons_interval) || phase_end;
                StepPhase { accumulate, in_phase, qr, input: s, closes_unnormalised_warmup: false }
            }
            Rule::Reference => {
                let closes = !accumulate && s + 1 == self.warmup;
                let qr = if accumulate {
                    (in_phase - 1).is_multiple_of(self.ons_interval)
                } else {
                    closes
                };
                let input = if accumulate { s - self.warmup } else { s };
                StepPhase { accumulate, in_phase, qr, input, closes_unnormalised_warmup: closes }
            }
        }
    }
}

/// The divergence reason for tangent vector `index` found non-finite at the QR of `phase`,
/// computing in `precision` (`f32`, `f64`): the one wording of every backend.
pub(crate) fn nonfinite_reason(phase: &StepPhase, index: usize, precision: &str) -> String {
    if phase.closes_unnormalised_warmup {
        format!(
            "the unnormalised warm-up product of {} tangent steps overflowed {precision} \
             (tangent vector {index} is non-finite at the QR that closes the warm-up)",
            phase.in_phase
        )
    } else {
        format!("non-finite tangent vector {index}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_every_interval_and_at_each_phase_end() {
        let sched = QrSchedule::standard(3, 10, 4);
        let qr: Vec<usize> = (0..10).filter(|&s| sched.step(s).qr).collect();
        // warm-up: in_phase 1..3, QR at its end (s = 2); accumulation: in_phase = s - 2, QR at
        // in_phase 4 (s = 6) and at the last step (s = 9).
        assert_eq!(qr, [2, 6, 9]);
        let at = |accumulate, in_phase, qr, input| StepPhase {
            accumulate,
            in_phase,
            qr,
            input,
            closes_unnormalised_warmup: false,
        };
        assert_eq!(sched.step(2), at(false, 3, true, 2));
        assert_eq!(sched.step(3), at(true, 1, false, 3));
        assert_eq!((sched.total(), sched.accumulated_steps()), (10, 7));
        let every = QrSchedule::standard(0, 5, 1);
        assert!((0..5).all(|s| every.step(s).qr && every.step(s).accumulate));
        assert!(every.qr_every_step());
    }

    #[test]
    fn reference_rule_is_the_published_one() {
        // T = 10 inputs, warm-up 4 (unnormalised, one QR at its end), then all 10 replayed with
        // a QR at t = 0, 3, 6, 9; the denominator is T.
        let sched = QrSchedule::reference(4, 10, 3);
        assert_eq!((sched.total(), sched.accumulated_steps()), (14, 10));
        let qr: Vec<usize> = (0..14).filter(|&s| sched.step(s).qr).collect();
        assert_eq!(qr, [3, 4, 7, 10, 13]);
        let inputs: Vec<usize> = (0..14).map(|s| sched.step(s).input).collect();
        assert_eq!(inputs, [0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let close = sched.step(3);
        assert!(close.closes_unnormalised_warmup && !close.accumulate);
        assert!(
            (4..14).all(|s| sched.step(s).accumulate && !sched.step(s).closes_unnormalised_warmup)
        );
        assert!(
            nonfinite_reason(&close, 2, "f32")
                .contains("warm-up product of 4 tangent steps overflowed f32")
        );
        // no QR forced at the last step: T = 8, T_ons = 3 -> QR at t = 0, 3, 6 only
        let sched = QrSchedule::reference(0, 8, 3);
        let qr: Vec<usize> = (0..8).filter(|&s| sched.step(s).qr).collect();
        assert_eq!(qr, [0, 3, 6]);
        // warm-up >= T uses min(warmup, T)
        let sched = QrSchedule::reference(500, 28, 1);
        assert_eq!((sched.total(), sched.step(27).qr, sched.step(28).input), (56, true, 0));
        assert!(!sched.qr_every_step() && !sched.step(0).qr);
        assert!(QrSchedule::reference(0, 28, 1).qr_every_step());
    }
}
