//! Autograd gradients of every cell (and head) against central finite differences in f64.
//!
//! Rule: `|g_autograd - g_fd| <= 1e-7 + 1e-6 |g_fd|` with step `h = 1e-6` (the central
//! difference error is O(h^2) ~ 1e-12 times third derivatives, rounding ~ 1e-16 / h ~ 1e-10).

mod common;

use candle_core::{DType, Device, Tensor};
use common::one_network;
use le_engine::rnn::CellKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn_models::init::init_network_values;
use rnn_models::{ConstantOverrides, Head, ModelShape, NetSpec};

const B: usize = 2;
const T: usize = 4;
const I: usize = 2;
const N: usize = 3;

fn loss_of(
    shape: ModelShape,
    spec: &NetSpec,
    values: Vec<Vec<f64>>,
    x: &Tensor,
    y: &Tensor,
) -> f64 {
    let model = one_network(shape, spec, values, DType::F64);
    let out = model.forward(&model.detached_params(), x, None).unwrap();
    model.loss(&out, y).unwrap().0.to_vec1::<f64>().unwrap()[0]
}

fn gradcheck(arch: CellKind, layers: usize, bias: bool, head: Head) {
    let dev = Device::Cpu;
    let shape = ModelShape { arch, input_size: I, hidden_size: N, num_layers: layers, bias, head };
    let mut spec = NetSpec::new("g", arch, N, 0.8, 0.01, 11);
    spec.num_layers = layers;
    spec.bias = bias;
    spec.constants = match arch {
        CellKind::Asrnn => ConstantOverrides { eps: Some(0.4), gamma: Some(0.3), dt: None },
        CellKind::Cornn => ConstantOverrides { eps: Some(0.7), gamma: Some(1.1), dt: Some(0.3) },
        _ => ConstantOverrides::default(),
    };
    let values = init_network_values(&shape, &spec).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let x: Vec<f64> = (0..B * T * I).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
    let x = Tensor::from_vec(x, (1, B, T, I), &dev).unwrap();
    let rows = if head.is_per_step() { B * T } else { B };
    let y = if head.is_classification() {
        let c: Vec<u32> =
            (0..rows).map(|_| rng.random_range(0..head.readout_size() as u32)).collect();
        Tensor::from_vec(c, (1, rows), &dev).unwrap()
    } else {
        let o = head.readout_size();
        let v: Vec<f64> = (0..rows * o).map(|_| rng.random::<f64>()).collect();
        Tensor::from_vec(v, (1, rows, o), &dev).unwrap()
    };
    let model = one_network(shape, &spec, values.clone(), DType::F64);
    let out = model.forward(&model.tracked_params(), &x, None).unwrap();
    let (loss, _) = model.loss(&out, &y).unwrap();
    let grads = loss.sum_all().unwrap().backward().unwrap();
    let h = 1e-6;
    let mut checked = 0;
    for (k, (var, ps)) in model.vars().iter().zip(model.param_specs()).enumerate() {
        let g =
            grads.get(var.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for j in 0..ps.numel() {
            let mut plus = values.clone();
            plus[k][j] += h;
            let mut minus = values.clone();
            minus[k][j] -= h;
            let fd = (loss_of(shape, &spec, plus, &x, &y) - loss_of(shape, &spec, minus, &x, &y))
                / (2.0 * h);
            let tol = 1e-7 + 1e-6 * fd.abs();
            assert!(
                (g[j] - fd).abs() <= tol,
                "{} {:?} {}[{j}]: autograd {} vs finite difference {fd}",
                arch.name(),
                head,
                ps.name,
                g[j]
            );
            checked += 1;
        }
    }
    // A check that cannot fail trivially: the gradient is not all zero.
    let total: f64 = model
        .vars()
        .iter()
        .map(|v| {
            grads
                .get(v.as_tensor())
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_vec0::<f64>()
                .unwrap()
        })
        .sum();
    assert!(
        total > 1e-8 && checked > 20,
        "{}: gradient norm^2 {total}, {checked} entries",
        arch.name()
    );
}

const CLS: Head = Head::LastStepClass { classes: 3 };

#[test]
fn rnn_gradients_match_finite_differences() {
    gradcheck(CellKind::Rnn, 2, true, CLS);
    gradcheck(CellKind::Rnn, 1, false, Head::PerStepValue { outputs: 2 });
}

#[test]
fn gru_gradients_match_finite_differences() {
    gradcheck(CellKind::Gru, 2, true, CLS);
    gradcheck(CellKind::Gru, 1, false, Head::PerStepClass { classes: 3 });
}

#[test]
fn lstm_gradients_match_finite_differences() {
    gradcheck(CellKind::Lstm, 2, true, CLS);
    gradcheck(CellKind::Lstm, 3, false, Head::LastStepValue { outputs: 1 });
}

#[test]
fn asrnn_gradients_match_finite_differences() {
    gradcheck(CellKind::Asrnn, 2, true, CLS);
    gradcheck(CellKind::Asrnn, 1, false, Head::PerStepClass { classes: 2 });
}

#[test]
fn cornn_gradients_match_finite_differences() {
    gradcheck(CellKind::Cornn, 2, true, CLS);
    gradcheck(CellKind::Cornn, 1, false, Head::PerStepValue { outputs: 1 });
}
