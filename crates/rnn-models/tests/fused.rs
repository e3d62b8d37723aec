//! The fused LSTM / GRU training path (`rnn_models::fused`) against candle autograd:
//!
//! - the loss, correct count and every parameter's gradient of one minibatch, for 1-3
//!   layers, with and without biases, with and without a readout dropout mask, whole batch
//!   and in row parts (f32, `|a - b| <= 2e-5 max(1, max|g|) + 2e-4 |b|`);
//! - whole training epochs (Adam with clipping and dropout, Adam with L2 decay, AdamW, a
//!   population of networks with different seeds, inits and learning rates): the fused
//!   trainer's losses, accuracies, parameters and optimiser moments equal the candle
//!   trainer's to f32 tolerance;
//! - a population trained on the fused path equals each network trained alone on it;
//! - divergence (non-finite loss; f32 overflow of the squared gradient norm with a finite
//!   loss) stops the same network at the same batch as on candle, the others train on;
//! - `TrainBackend::Auto` picks the fused path only where it is supported, and
//!   `TrainBackend::Fused` on an unsupported population is a typed error.

mod common;

use candle_core::{DType, Device, Tensor};
use common::{F32_ABS, F32_REL, TinyTask, assert_close, small_config};
use datasets::{OutputKind, Split};
use le_engine::rnn::CellKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn_models::fused::{FusedCell, FusedDims, ROWS_PER_PART, Workspace, step, step_parts};
use rnn_models::{
    Head, InitScheme, ModelError, ModelShape, NetSpec, OptimizerKind, PopulationModel,
    PopulationTrainer, TrainBackend, TrainConfig,
};

const T: usize = 7;
const I: usize = 3;
const N: usize = 5;
const C: usize = 4;

/// Candle autograd vs `lstm_step` (whole batch) vs `lstm_step_parts` (rows in parts of 64,
/// sequential and parallel: the same bits).
fn gradients_match(arch: CellKind, layers: usize, bias: bool, dropout: bool) {
    gradients_match_rows(arch, layers, bias, dropout, 6);
}

fn gradients_match_rows(arch: CellKind, layers: usize, bias: bool, dropout: bool, rows: usize) {
    #[allow(non_snake_case)]
    let B = rows;
    let dev = Device::Cpu;
    let m = 2;
    let head = Head::LastStepClass { classes: C };
    let shape = ModelShape { arch, input_size: I, hidden_size: N, num_layers: layers, bias, head };
    let specs: Vec<NetSpec> = (0..m)
        .map(|k| {
            let mut s =
                NetSpec::new(format!("n{k}"), arch, N, 0.7 + 0.2 * k as f64, 0.01, 30 + k as u64);
            s.num_layers = layers;
            s.bias = bias;
            s
        })
        .collect();
    let model = PopulationModel::new(shape, &specs, DType::F32, &dev).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9 + layers as u64);
    let x: Vec<f32> = (0..m * B * T * I).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    let y: Vec<u32> = (0..m * B).map(|_| rng.random_range(0..C as u32)).collect();
    let mask: Vec<f32> =
        (0..m * B * N).map(|_| if rng.random::<f64>() < 0.3 { 0.0 } else { 1.0 / 0.7 }).collect();
    let xt = Tensor::from_vec(x.clone(), (m, B, T, I), &dev).unwrap();
    let yt = Tensor::from_vec(y.clone(), (m, B), &dev).unwrap();
    let mt = Tensor::from_vec(mask.clone(), (m, B, N), &dev).unwrap();
    let out = model.forward(&model.tracked_params(), &xt, dropout.then_some(&mt)).unwrap();
    let (loss, hits) = model.loss(&out, &yt).unwrap();
    let losses = loss.to_vec1::<f32>().unwrap();
    let hits = hits.unwrap().to_vec1::<f32>().unwrap();
    let grads = loss.sum_all().unwrap().backward().unwrap();
    let cell = if arch == CellKind::Gru { FusedCell::Gru } else { FusedCell::Lstm };
    let dims = FusedDims { cell, input: I, hidden: N, layers, bias, classes: C };
    let what = format!("{} layers {layers} bias {bias} dropout {dropout} rows {B}", arch.name());
    for k in 0..m {
        let params: Vec<f32> = model.network_values_f32(k).unwrap().concat();
        let mut ws = Workspace::default();
        let r = step(
            &dims,
            &params,
            &mut ws,
            &x[k * B * T * I..(k + 1) * B * T * I],
            (B, T),
            &y[k * B..(k + 1) * B],
            dropout.then(|| &mask[k * B * N..(k + 1) * B * N]),
            true,
            gemm_par(),
        );
        let mut parts = Vec::new();
        let mut parts_par = Vec::new();
        let xk = &x[k * B * T * I..(k + 1) * B * T * I];
        let yk = &y[k * B..(k + 1) * B];
        let mk = dropout.then(|| &mask[k * B * N..(k + 1) * B * N]);
        let rp = step_parts(&dims, &params, &mut parts, xk, (B, T), yk, mk, true, false);
        let rq = step_parts(&dims, &params, &mut parts_par, xk, (B, T), yk, mk, true, true);
        assert_eq!(parts.len(), B.div_ceil(ROWS_PER_PART));
        assert_eq!(rp, rq, "parallel parts must give the same bits");
        assert_eq!(parts[0].grad, parts_par[0].grad, "parallel parts must give the same bits");
        assert_close(
            &format!("{what} parts loss"),
            &[f64::from(rp.loss)],
            &[f64::from(r.loss)],
            1e-6,
            1e-5,
        );
        assert_eq!(rp.correct, r.correct);
        assert_close(
            &format!("{what} net {k} loss"),
            &[f64::from(r.loss)],
            &[f64::from(losses[k])],
            1e-6,
            1e-5,
        );
        assert_eq!(r.correct as f32, hits[k], "{what} net {k} correct");
        let mut offset = 0;
        for (var, ps) in model.vars().iter().zip(model.param_specs()) {
            let g = grads.get(var.as_tensor()).unwrap().get(k).unwrap().flatten_all().unwrap();
            let g: Vec<f64> = g.to_vec1::<f32>().unwrap().into_iter().map(f64::from).collect();
            let ours: Vec<f64> =
                ws.grad[offset..offset + ps.numel()].iter().map(|&v| f64::from(v)).collect();
            let scale = g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            assert!(scale > 0.0, "{what} {}: zero gradient, the test would prove nothing", ps.name);
            assert_close(
                &format!("{what} net {k} grad {}", ps.name),
                &ours,
                &g,
                F32_ABS * scale.max(1.0),
                F32_REL,
            );
            offset += ps.numel();
        }
        assert_eq!(offset, dims.num_params());
    }
}

fn gemm_par() -> gemm::Parallelism {
    gemm::Parallelism::None
}

#[test]
fn gradients_equal_candle_autograd_one_layer() {
    for arch in [CellKind::Lstm, CellKind::Gru] {
        gradients_match(arch, 1, true, false);
        gradients_match(arch, 1, false, false);
        gradients_match(arch, 1, true, true);
    }
}

#[test]
fn gradients_equal_candle_autograd_two_layers() {
    for arch in [CellKind::Lstm, CellKind::Gru] {
        gradients_match(arch, 2, true, false);
        gradients_match(arch, 2, false, true);
    }
}

#[test]
fn gradients_equal_candle_autograd_three_layers() {
    gradients_match(CellKind::Lstm, 3, true, true);
    gradients_match(CellKind::Gru, 3, false, true);
}

#[test]
fn gradients_of_minibatch_parts_equal_candle_autograd() {
    // 150 rows = parts of 50, 50, 50 (`ROWS_PER_PART` = 64)
    gradients_match_rows(CellKind::Lstm, 1, true, true, 150);
    gradients_match_rows(CellKind::Lstm, 2, false, false, 150);
    gradients_match_rows(CellKind::Gru, 2, true, true, 150);
}

fn specs(layers: usize, bias: bool) -> Vec<NetSpec> {
    specs_of(CellKind::Lstm, layers, bias)
}

fn specs_of(arch: CellKind, layers: usize, bias: bool) -> Vec<NetSpec> {
    [(0.3, 0.01), (0.6, 0.003), (0.9, 0.02)]
        .into_iter()
        .enumerate()
        .map(|(k, (p, lr))| {
            let mut s =
                NetSpec::new(format!("{}-{k}", arch.name()), arch, 8, p, lr, 100 + k as u64);
            s.num_layers = layers;
            s.bias = bias;
            s.init = if k == 1 { InitScheme::OrthogonalRecurrent } else { InitScheme::UniformP };
            s
        })
        .collect()
}

fn task() -> TinyTask {
    TinyTask::new(OutputKind::ClassPerSequence { num_classes: 3 }, 36, 12, 5, 3, 7)
}

/// Trains `specs` for 2 epochs with the candle and the fused backend; everything must agree.
fn fused_equals_candle(specs: &[NetSpec], cfg: TrainConfig) {
    fused_equals_candle_on(&task(), specs, cfg);
}

fn fused_equals_candle_on(task: &TinyTask, specs: &[NetSpec], cfg: TrainConfig) {
    let n_train = task.train.len() as f64;
    let trainer = |backend| {
        let cfg = TrainConfig { backend, ..cfg.clone() };
        PopulationTrainer::new(task, specs, &cfg, DType::F32, &Device::Cpu).unwrap()
    };
    let (mut a, mut b) = (trainer(TrainBackend::Candle), trainer(TrainBackend::Fused));
    assert!(!a.uses_fused() && b.uses_fused());
    for e in 1..=2 {
        let ra = a.train_epoch(e).unwrap();
        let rb = b.train_epoch(e).unwrap();
        for (k, (x, y)) in ra.iter().zip(&rb).enumerate() {
            let what = format!("{} epoch {e}", specs[k].id);
            assert_close(
                &format!("{what} loss"),
                &[y.loss.unwrap()],
                &[x.loss.unwrap()],
                F32_ABS,
                F32_REL,
            );
            // accuracy counts can flip on a near-tie; allow one sample
            let (ax, ay) = (x.accuracy.unwrap(), y.accuracy.unwrap());
            assert!((ax - ay).abs() <= 1.0 / n_train + 1e-12, "{what} accuracy {ax} vs {ay}");
            assert_eq!(x.diverged, y.diverged);
        }
    }
    let ea = a.evaluate(Split::Test).unwrap();
    let eb = b.evaluate(Split::Test).unwrap();
    for k in 0..specs.len() {
        assert_close("test loss", &[eb[k].loss], &[ea[k].loss], F32_ABS, F32_REL);
        let (x, y) = (ea[k].accuracy.unwrap(), eb[k].accuracy.unwrap());
        assert!((x - y).abs() <= 1.0 / task.test.len() as f64 + 1e-12, "test accuracy {x} vs {y}");
        let va = a.model().network_values(k).unwrap();
        let vb = b.model().network_values(k).unwrap();
        for ((x, y), ps) in vb.iter().zip(&va).zip(a.model().param_specs()) {
            assert_close(&format!("{} {}", specs[k].id, ps.name), x, y, F32_ABS, F32_REL);
        }
        let (m1a, m2a, sa) = a.optimizer().network_state(k).unwrap();
        let (m1b, m2b, sb) = b.optimizer().network_state(k).unwrap();
        assert_eq!(sa, sb, "step counts");
        let f = |v: &Vec<f32>| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
        for j in 0..m1a.len() {
            // moments are gradient-sized: compare relative to the tensor's scale
            let s1 = m1a[j].iter().fold(1e-3f32, |a, v| a.max(v.abs())) as f64;
            let s2 = m2a[j].iter().fold(1e-6f32, |a, v| a.max(v.abs())) as f64;
            assert_close("m1", &f(&m1b[j]), &f(&m1a[j]), 1e-3 * s1, 1e-3);
            assert_close("m2", &f(&m2b[j]), &f(&m2a[j]), 1e-3 * s2, 1e-3);
        }
    }
}

#[test]
fn fused_training_equals_candle_two_layers_clip_dropout() {
    fused_equals_candle(&specs(2, true), small_config());
}

#[test]
fn fused_training_equals_candle_without_bias_adam_l2() {
    let cfg =
        TrainConfig { weight_decay: 0.05, grad_clip: None, readout_dropout: 0.0, ..small_config() };
    fused_equals_candle(&specs(1, false), cfg);
}

#[test]
fn fused_training_equals_candle_adamw() {
    let cfg = TrainConfig { optimizer: OptimizerKind::AdamW, weight_decay: 0.1, ..small_config() };
    fused_equals_candle(&specs(1, true), cfg);
}

#[test]
fn fused_gru_training_equals_candle() {
    fused_equals_candle(&specs_of(CellKind::Gru, 2, true), small_config());
    let cfg = TrainConfig { optimizer: OptimizerKind::AdamW, weight_decay: 0.1, ..small_config() };
    fused_equals_candle(&specs_of(CellKind::Gru, 1, false), cfg);
}

#[test]
fn fused_training_equals_candle_with_minibatch_parts() {
    // batch 100 = 2 parts of 50 rows; evaluation batches of 90 = 2 parts (64 + 26)
    let task = TinyTask::new(OutputKind::ClassPerSequence { num_classes: 3 }, 300, 180, 5, 3, 8);
    let cfg = TrainConfig { batch_size: 100, eval_batch_size: 90, ..small_config() };
    fused_equals_candle_on(&task, &specs(1, true)[..2], cfg);
}

#[test]
fn fused_population_equals_fused_single_training() {
    population_equals_single(CellKind::Lstm);
    population_equals_single(CellKind::Gru);
}

fn population_equals_single(arch: CellKind) {
    let task = task();
    let specs = specs_of(arch, 2, true);
    let cfg = TrainConfig { backend: TrainBackend::Fused, ..small_config() };
    let dev = Device::Cpu;
    let mut pop = PopulationTrainer::new(&task, &specs, &cfg, DType::F32, &dev).unwrap();
    let pop_train: Vec<_> = (1..=2).map(|e| pop.train_epoch(e).unwrap()).collect();
    for (m, spec) in specs.iter().enumerate() {
        let mut single =
            PopulationTrainer::new(&task, std::slice::from_ref(spec), &cfg, DType::F32, &dev)
                .unwrap();
        for (e, pe) in pop_train.iter().enumerate() {
            let r = single.train_epoch(e + 1).unwrap();
            assert_close(
                "train loss",
                &[r[0].loss.unwrap()],
                &[pe[m].loss.unwrap()],
                F32_ABS,
                F32_REL,
            );
        }
        let a = pop.model().network_values(m).unwrap();
        let b = single.model().network_values(0).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_close(&format!("{} params", spec.id), x, y, F32_ABS, F32_REL);
        }
    }
}

#[test]
fn backend_selection() {
    let task = task();
    let dev = Device::Cpu;
    let auto = small_config();
    let lstm = specs(1, true);
    assert!(PopulationTrainer::new(&task, &lstm, &auto, DType::F32, &dev).unwrap().uses_fused());
    // f64, other cells and other heads train on candle under Auto; Fused refuses them
    assert!(!PopulationTrainer::new(&task, &lstm, &auto, DType::F64, &dev).unwrap().uses_fused());
    let gru: Vec<NetSpec> =
        lstm.iter().map(|s| NetSpec { arch: CellKind::Gru, ..s.clone() }).collect();
    assert!(PopulationTrainer::new(&task, &gru, &auto, DType::F32, &dev).unwrap().uses_fused());
    let rnn: Vec<NetSpec> =
        lstm.iter().map(|s| NetSpec { arch: CellKind::Rnn, ..s.clone() }).collect();
    assert!(!PopulationTrainer::new(&task, &rnn, &auto, DType::F32, &dev).unwrap().uses_fused());
    let per_step = TinyTask::new(OutputKind::ClassPerStep { num_classes: 3 }, 8, 4, 5, 3, 7);
    assert!(
        !PopulationTrainer::new(&per_step, &lstm, &auto, DType::F32, &dev).unwrap().uses_fused()
    );
    let forced = TrainConfig { backend: TrainBackend::Fused, ..auto };
    for r in [
        PopulationTrainer::new(&task, &rnn, &forced, DType::F32, &dev),
        PopulationTrainer::new(&task, &lstm, &forced, DType::F64, &dev),
        PopulationTrainer::new(&per_step, &lstm, &forced, DType::F32, &dev),
    ] {
        assert!(matches!(r, Err(ModelError::InvalidConfig(_))));
    }
    // the field defaults to Auto when absent from a serialised config
    let mut v = serde_json::to_value(TrainConfig::default()).unwrap();
    v.as_object_mut().unwrap().remove("backend");
    let back: TrainConfig = serde_json::from_value(v).unwrap();
    assert_eq!(back.backend, TrainBackend::Auto);
}

/// Divergence behaves as on candle: a network with an infinite learning rate (non-finite loss
/// at batch 1) and one whose gradient's f32 sum of squares overflows while its loss is finite
/// (readout weights times 1e21: gradients ~1e19, loss ~1e20; diverged at batch 0) stop at the
/// same (epoch, batch) on both
/// paths, and the healthy network trains on unchanged.
#[test]
fn divergence_matches_candle() {
    let task = task();
    let dev = Device::Cpu;
    let mut specs = specs(1, true);
    specs[0].lr = 1e300;
    let shape = ModelShape {
        arch: CellKind::Lstm,
        input_size: 3,
        hidden_size: 8,
        num_layers: 1,
        bias: true,
        head: Head::LastStepClass { classes: 3 },
    };
    let base = PopulationModel::new(shape, &specs, DType::F32, &dev).unwrap();
    let mut values: Vec<Vec<Vec<f64>>> = (0..3).map(|k| base.network_values(k).unwrap()).collect();
    let fc = base.param_specs().len() - 2;
    for w in &mut values[2][fc] {
        *w *= 1e21;
    }
    let mut results = Vec::new();
    for backend in [TrainBackend::Candle, TrainBackend::Fused] {
        let model =
            PopulationModel::from_values(shape, &specs, values.clone(), DType::F32, &dev).unwrap();
        let cfg = TrainConfig { backend, ..small_config() };
        let mut tr = PopulationTrainer::from_model(&task, model, &cfg).unwrap();
        let before = tr.evaluate(Split::Test).unwrap();
        assert!(before[2].loss.is_finite(), "{backend:?}: the loss must stay finite");
        let r1 = tr.train_epoch(1).unwrap();
        let r2 = tr.train_epoch(2).unwrap();
        assert_eq!(tr.active(), &[false, true, false], "{backend:?}");
        let d0 = r1[0].diverged.expect("network 0 diverges");
        let d2 = r1[2].diverged.expect("network 2 diverges");
        assert_eq!((d0.epoch, d0.batch, d2.epoch, d2.batch), (1, 1, 1, 0), "{backend:?}");
        assert!(r2[0].loss.is_none() && r2[2].loss.is_none() && r2[1].loss.is_some());
        let ev = tr.evaluate(Split::Test).unwrap();
        assert!(ev[0].loss.is_nan() && ev[2].loss.is_nan() && ev[1].loss.is_finite());
        results.push((r2[1].loss.unwrap(), tr.model().network_values(1).unwrap()));
    }
    assert_close("healthy loss", &[results[1].0], &[results[0].0], F32_ABS, F32_REL);
    for (x, y) in results[1].1.iter().zip(&results[0].1) {
        assert_close("healthy params", x, y, F32_ABS, F32_REL);
    }
}
