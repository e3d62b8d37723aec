//! One network driven by one input sequence, as a [`DiscreteMap`]: the slow, obviously-correct
//! twin of the batched path (it re-runs the forward step for every tangent product and runs
//! through the generic engine), and the way to get explicit Jacobians.

use super::cells::BatchState;
use super::{LstmState, Network, to_internal, to_pytorch};
use crate::error::{LeError, Result};
use crate::map::{DiscreteMap, MapWorkspace};
use crate::scalar::Real;

/// `x_{t+1} = f(x_t, u_t)` of `net` with the inputs `u` (`[T, I]` row-major) of one sequence.
/// The state is the full forward state of all layers (`D = L S`) in PyTorch's order (that of
/// [`Network::step_state`]); the tangent map acts on the same state, so LSTM h-only is not
/// available here. Time steps past the end of the sequence
/// reuse its last input (the engine never asks for them when `warmup + steps <= T`).
pub struct SequenceMap<'a, T: Real> {
    net: &'a Network<T>,
    inputs: &'a [T],
    steps: usize,
    /// PyTorch order to the cells' layout (`None`: the same).
    order: Option<Vec<usize>>,
}

impl<'a, T: Real> SequenceMap<'a, T> {
    /// Wrap `net` and one input sequence `inputs` (`[steps, I]`).
    pub fn new(net: &'a Network<T>, inputs: &'a [T], steps: usize) -> Result<Self> {
        if inputs.len() != steps * net.input {
            return Err(LeError::InvalidConfig {
                field: "inputs",
                message: format!(
                    "expected {steps} x {} = {} values, got {}",
                    net.input,
                    steps * net.input,
                    inputs.len()
                ),
            });
        }
        Ok(Self { net, inputs, steps, order: net.state_order() })
    }

    /// The forward step from `x` (PyTorch order), its gate values kept for the tangent.
    fn forward_from(&self, t: usize, x: &[T]) -> BatchState<T> {
        let mut run = BatchState::new(self.net, 1);
        match &self.order {
            Some(perm) => run.set_sequence_state(0, &to_internal(perm, x)),
            None => run.set_sequence_state(0, x),
        }
        run.forward(self.net, self.inputs, self.steps, t.min(self.steps - 1));
        run
    }
}

impl<T: Real> DiscreteMap<T> for SequenceMap<'_, T> {
    fn dim(&self) -> usize {
        self.net.state_dim()
    }

    fn step(&self, t: usize, x: &[T], next: &mut [T], _ws: &mut MapWorkspace<T>) {
        let run = self.forward_from(t, x);
        run.sequence_state(0, next);
        if let Some(perm) = &self.order {
            let public = to_pytorch(perm, next);
            next.copy_from_slice(&public);
        }
    }

    fn tangent(
        &self,
        t: usize,
        x: &[T],
        q: &[T],
        k: usize,
        z: &mut [T],
        _ws: &mut MapWorkspace<T>,
    ) -> bool {
        let mut run = self.forward_from(t, x);
        match &self.order {
            Some(perm) => {
                let mut zi = vec![T::zero(); z.len()];
                run.tangent(self.net, LstmState::Full, &to_internal(perm, q), &mut zi, k);
                z.copy_from_slice(&to_pytorch(perm, &zi));
            }
            None => run.tangent(self.net, LstmState::Full, q, z, k),
        }
        true
    }

    /// The explicit Jacobian, row-major ([`Network::jacobian_at`] at this step's input).
    fn jacobian(&self, t: usize, x: &[T], jac: &mut [T], _ws: &mut MapWorkspace<T>) -> bool {
        let i = self.net.input;
        let t = t.min(self.steps - 1);
        match self.net.jacobian_at(x, &self.inputs[t * i..(t + 1) * i], LstmState::Full) {
            Ok(j) => {
                jac.copy_from_slice(&j);
                true
            }
            Err(_) => false,
        }
    }
}
