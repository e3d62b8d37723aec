//! When the Benettin loop re-orthonormalises: the one QR-step rule of every backend.
//!
//! A run has two phases, the warm-up (steps `0 .. first_accumulated`, the basis is
//! re-orthonormalised but `ln R_ii` is not accumulated) and the accumulation phase (steps
//! `first_accumulated .. total`). Inside each phase steps are counted from 1 (`in_phase`); a
//! QR happens every `ons_interval` steps of the phase and always at the last step of each
//! phase, so the warm-up hands a fresh orthonormal basis to the accumulation and the last
//! accumulated step is never left unnormalised. The generic engine (`engine.rs`), the CPU
//! population loop (`backend::cpu`) and the CUDA plan all ask [`QrSchedule::step`].

/// The phase lengths and the re-orthonormalisation interval of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QrSchedule {
    /// First main-loop step whose `ln R_ii` is accumulated (the warm-up length).
    pub first_accumulated: usize,
    /// Steps of the main loop (warm-up included).
    pub total: usize,
    /// QR every this many steps of a phase (`>= 1`, checked by `SpectrumConfig::validate`).
    pub ons_interval: usize,
}

/// What the schedule says about one main-loop step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StepPhase {
    /// Past the warm-up: the step's `ln R_ii` count.
    pub accumulate: bool,
    /// Step within the current phase (warm-up or accumulation), from 1.
    pub in_phase: usize,
    /// Re-orthonormalise after this step.
    pub qr: bool,
}

impl QrSchedule {
    /// The phase of main-loop step `s` and whether a QR follows it.
    #[inline]
    pub(crate) fn step(&self, s: usize) -> StepPhase {
        let accumulate = s >= self.first_accumulated;
        let in_phase = if accumulate { s - self.first_accumulated + 1 } else { s + 1 };
        let phase_end = (!accumulate && s + 1 == self.first_accumulated) || s + 1 == self.total;
        let qr = in_phase.is_multiple_of(self.ons_interval) || phase_end;
        StepPhase { accumulate, in_phase, qr }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_every_interval_and_at_each_phase_end() {
        let sched = QrSchedule { first_accumulated: 3, total: 10, ons_interval: 4 };
        let qr: Vec<usize> = (0..10).filter(|&s| sched.step(s).qr).collect();
        // warm-up: in_phase 1..3, QR at its end (s = 2); accumulation: in_phase = s - 2, QR at
        // in_phase 4 (s = 6) and at the last step (s = 9).
        assert_eq!(qr, [2, 6, 9]);
        assert_eq!(sched.step(2), StepPhase { accumulate: false, in_phase: 3, qr: true });
        assert_eq!(sched.step(3), StepPhase { accumulate: true, in_phase: 1, qr: false });
        let every = QrSchedule { first_accumulated: 0, total: 5, ons_interval: 1 };
        assert!((0..5).all(|s| every.step(s).qr && every.step(s).accumulate));
    }
}
