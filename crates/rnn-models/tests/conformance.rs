//! The checkpoint contract: one trained checkpoint per cell kind, loaded by candle
//! (`rnn-models`) and by `le-engine`, gives the same top-layer hidden sequence (f32).
//!
//! Tolerance: `|a - b| <= 2e-5 + 2e-4 |b|` (f32 rounding of two evaluation orders of the same
//! recurrence over a few steps).

mod common;

use candle_core::{DType, Device, Tensor};
use common::{F32_ABS, F32_REL, TinyTask, assert_close, one_network};
use datasets::OutputKind;
use le_engine::rnn::CellKind;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rnn_models::{NetSpec, TrainConfig, read_checkpoint, run_sweep, shape_for_task};

const B: usize = 3;
const T: usize = 6;
const I: usize = 4;

#[test]
fn candle_and_le_engine_agree_on_every_cell_kind() {
    let task = TinyTask::new(OutputKind::ClassPerSequence { num_classes: 3 }, 24, 8, T, I, 9);
    let mut specs = Vec::new();
    for (k, arch) in le_engine::rnn::CellKind::ALL.into_iter().enumerate() {
        let mut s = NetSpec::new(format!("{}-2l", arch.name()), arch, 7, 0.6, 0.02, 40 + k as u64);
        s.num_layers = 2;
        specs.push(s);
    }
    let mut no_bias = NetSpec::new("lstm-3l-nobias", CellKind::Lstm, 5, 0.6, 0.02, 50);
    no_bias.num_layers = 3;
    no_bias.bias = false;
    specs.push(no_bias);
    let mut cornn_1l = NetSpec::new("cornn-1l-nobias", CellKind::Cornn, 5, 0.6, 0.02, 51);
    cornn_1l.bias = false;
    specs.push(cornn_1l);

    let dir = tempfile::tempdir().unwrap();
    let config =
        TrainConfig { epochs: 1, batch_size: 8, eval_batch_size: 8, ..TrainConfig::default() };
    run_sweep(&task, &specs, &config, dir.path(), &Device::Cpu).unwrap();

    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let inputs: Vec<f32> = (0..B * T * I).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
    for spec in &specs {
        let path = dir.path().join("nets").join(&spec.id).join("epoch-1.safetensors");
        // candle side
        let shape = shape_for_task(&task, spec);
        let values = read_checkpoint(&path, &shape).unwrap().values;
        let model = one_network(shape, spec, values, DType::F32);
        let x = Tensor::from_vec(inputs.clone(), (1, B, T, I), &Device::Cpu).unwrap();
        let hidden = model.forward_hidden(&model.detached_params(), &x).unwrap();
        let ours: Vec<f64> = Tensor::stack(&hidden, 2)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .into_iter()
            .map(f64::from)
            .collect();
        // le-engine side
        let net =
            le_engine::rnn::Network::<f32>::load(&path, &le_engine::rnn::LoadOptions::default())
                .unwrap_or_else(|e| panic!("le-engine cannot load {}: {e}", path.display()));
        let theirs: Vec<f64> =
            net.forward_top_hidden(&inputs, B, T).unwrap().into_iter().map(f64::from).collect();
        assert_eq!(ours.len(), B * T * spec.hidden_size);
        assert_close(&format!("{} hidden", spec.id), &ours, &theirs, F32_ABS, F32_REL);
        // not a vacuous comparison: the states move
        assert!(ours.iter().any(|v| v.abs() > 1e-3), "{}: hidden states are all ~0", spec.id);
    }
}
