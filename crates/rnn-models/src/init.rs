//! Seeded weight initialisation (host side, `f64`).
//!
//! Network `m` draws all its parameters, in [`ModelShape::param_specs`] order, from one
//! `ChaCha8Rng::seed_from_u64(spec.seed)` (stream 0), so a network's initial weights do not
//! depend on the population it is trained in.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::config::{InitScheme, NetSpec};
use crate::error::Result;
use crate::model::{ModelShape, NetworkValues, ParamRole};

/// `n` draws from `U(-a, a)` (all zeros for `a = 0`).
fn uniform(rng: &mut ChaCha8Rng, n: usize, a: f64) -> Vec<f64> {
    (0..n).map(|_| a * (2.0 * rng.random::<f64>() - 1.0)).collect()
}

/// A random `n x n` orthogonal matrix (row-major): modified Gram-Schmidt on the columns of a
/// standard Gaussian matrix, i.e. the `Q` of its QR factorisation with `diag(R) > 0`
/// (Haar-distributed).
pub fn random_orthogonal(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    loop {
        let a: Vec<f64> = (0..n * n).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        // columns as vectors
        let mut cols: Vec<Vec<f64>> =
            (0..n).map(|j| (0..n).map(|i| a[i * n + j]).collect()).collect();
        let mut ok = true;
        for j in 0..n {
            for k in 0..j {
                let (done, rest) = cols.split_at_mut(j);
                let dot: f64 = done[k].iter().zip(rest[0].iter()).map(|(x, y)| x * y).sum();
                for (x, q) in rest[0].iter_mut().zip(done[k].iter()) {
                    *x -= dot * q;
                }
            }
            let norm = cols[j].iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm.is_nan() || norm <= 1e-10 {
                ok = false;
                break;
            }
            cols[j].iter_mut().for_each(|x| *x /= norm);
        }
        if ok {
            let mut q = vec![0.0; n * n];
            for (j, col) in cols.iter().enumerate() {
                for (i, v) in col.iter().enumerate() {
                    q[i * n + j] = *v;
                }
            }
            return q;
        }
    }
}

/// Initial values of one network (per parameter, flat, canonical order).
///
/// - [`InitScheme::UniformP`]: cell parameters `U(-p, p)`; readout `U(-1/sqrt(N), 1/sqrt(N))`.
/// - [`InitScheme::PytorchDefault`]: everything `U(-1/sqrt(N), 1/sqrt(N))`.
/// - [`InitScheme::OrthogonalRecurrent`]: recurrent `N x N` blocks orthogonal, the rest as
///   PyTorch's default.
pub fn init_network_values(shape: &ModelShape, spec: &NetSpec) -> Result<NetworkValues> {
    spec.validate()?;
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let k = 1.0 / (shape.hidden_size as f64).sqrt();
    let n = shape.hidden_size;
    Ok(shape
        .param_specs()
        .iter()
        .map(|ps| match (ps.role, spec.init) {
            (ParamRole::ReadoutWeight | ParamRole::ReadoutBias, _) => {
                uniform(&mut rng, ps.numel(), k)
            }
            (_, InitScheme::UniformP) => uniform(&mut rng, ps.numel(), spec.p),
            (ParamRole::RecurrentWeight { blocks }, InitScheme::OrthogonalRecurrent) => {
                (0..blocks).flat_map(|_| random_orthogonal(&mut rng, n)).collect()
            }
            _ => uniform(&mut rng, ps.numel(), k),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Head;
    use le_engine::rnn::CellKind;

    #[test]
    fn random_orthogonal_is_orthogonal_at_awkward_sizes() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [1usize, 2, 3, 17, 64] {
            let q = random_orthogonal(&mut rng, n);
            for i in 0..n {
                for j in 0..n {
                    let dot: f64 = (0..n).map(|k| q[k * n + i] * q[k * n + j]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((dot - want).abs() < 1e-12, "n={n} Q^T Q[{i},{j}] = {dot}");
                }
            }
        }
    }

    fn shape(arch: CellKind) -> ModelShape {
        ModelShape {
            arch,
            input_size: 3,
            hidden_size: 4,
            num_layers: 2,
            bias: true,
            head: Head::LastStepClass { classes: 2 },
        }
    }

    #[test]
    fn init_is_seeded_and_scaled() {
        let mut spec = NetSpec::new("a", CellKind::Gru, 4, 0.3, 0.01, 9);
        spec.num_layers = 2;
        let a = init_network_values(&shape(CellKind::Gru), &spec).unwrap();
        let b = init_network_values(&shape(CellKind::Gru), &spec).unwrap();
        assert_eq!(a, b);
        spec.seed = 10;
        let c = init_network_values(&shape(CellKind::Gru), &spec).unwrap();
        assert_ne!(a, c);
        let specs = shape(CellKind::Gru).param_specs();
        for (v, ps) in a.iter().zip(&specs) {
            assert_eq!(v.len(), ps.numel());
            let bound = if ps.name.starts_with("fc.") { 0.5 } else { 0.3 };
            assert!(v.iter().all(|x| x.abs() <= bound), "{}", ps.name);
            assert!(v.iter().any(|x| x.abs() > bound / 4.0), "{} looks degenerate", ps.name);
        }
        spec.p = 0.0;
        let zero = init_network_values(&shape(CellKind::Gru), &spec).unwrap();
        assert!(zero[0].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn orthogonal_init_makes_each_gate_block_orthogonal() {
        let mut spec = NetSpec::new("o", CellKind::Lstm, 4, 0.3, 0.01, 2);
        spec.num_layers = 2;
        spec.init = InitScheme::OrthogonalRecurrent;
        let s = shape(CellKind::Lstm);
        let v = init_network_values(&s, &spec).unwrap();
        let k = s.param_specs().iter().position(|p| p.name == "rnn.weight_hh_l0").unwrap();
        let n = 4;
        for g in 0..4 {
            let blk = &v[k][g * n * n..(g + 1) * n * n];
            for i in 0..n {
                let norm: f64 = (0..n).map(|c| blk[i * n + c] * blk[i * n + c]).sum();
                assert!((norm - 1.0).abs() < 1e-12);
            }
        }
    }
}
