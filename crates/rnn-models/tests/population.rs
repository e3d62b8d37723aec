//! Training networks together as one batched population equals training each alone (same
//! seed), to f32 tolerance: same parameters after two epochs, same losses. Also: a network
//! that diverges inside a population stops alone and does not disturb the others.

mod common;

use candle_core::{DType, Device};
use common::{F32_ABS, F32_REL, TinyTask, assert_close, small_config};
use datasets::{OutputKind, Split};
use le_engine::rnn::CellKind;
use rnn_models::{InitScheme, NetSpec, PopulationTrainer};

fn specs(arch: CellKind) -> Vec<NetSpec> {
    let mut out = Vec::new();
    for (k, (p, lr)) in [(0.3, 0.01), (0.6, 0.003), (0.9, 0.02)].into_iter().enumerate() {
        let mut s = NetSpec::new(format!("{}-{k}", arch.name()), arch, 8, p, lr, 100 + k as u64);
        s.num_layers = 2;
        s.init = if k == 1 { InitScheme::OrthogonalRecurrent } else { InitScheme::UniformP };
        out.push(s);
    }
    out
}

fn population_equals_single(arch: CellKind, kind: OutputKind) {
    let task = TinyTask::new(kind, 36, 12, 5, 3, 7);
    let specs = specs(arch);
    let cfg = small_config();
    let dev = Device::Cpu;
    let mut pop = PopulationTrainer::new(&task, &specs, &cfg, DType::F32, &dev).unwrap();
    let mut pop_train = Vec::new();
    for e in 1..=cfg.epochs {
        pop_train.push(pop.train_epoch(e).unwrap());
    }
    let pop_eval = pop.evaluate(Split::Test).unwrap();
    for (m, spec) in specs.iter().enumerate() {
        let mut single =
            PopulationTrainer::new(&task, std::slice::from_ref(spec), &cfg, DType::F32, &dev)
                .unwrap();
        for (e, pop_epoch) in pop_train.iter().enumerate() {
            let r = single.train_epoch(e + 1).unwrap();
            assert_close(
                &format!("{} epoch {} train loss", spec.id, e + 1),
                &[r[0].loss.unwrap()],
                &[pop_epoch[m].loss.unwrap()],
                F32_ABS,
                F32_REL,
            );
        }
        let ev = single.evaluate(Split::Test).unwrap();
        assert_close(
            &format!("{} test loss", spec.id),
            &[ev[0].loss],
            &[pop_eval[m].loss],
            F32_ABS,
            F32_REL,
        );
        let a = pop.model().network_values(m).unwrap();
        let b = single.model().network_values(0).unwrap();
        for ((x, y), ps) in a.iter().zip(&b).zip(pop.model().param_specs()) {
            assert_close(&format!("{} {}", spec.id, ps.name), x, y, F32_ABS, F32_REL);
        }
    }
    // The networks really differ (different seeds, p and lr): a test that can fail.
    let v0 = pop.model().network_values(0).unwrap();
    let v1 = pop.model().network_values(1).unwrap();
    assert!(v0[0].iter().zip(&v1[0]).any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn lstm_population_equals_single_training() {
    population_equals_single(CellKind::Lstm, OutputKind::ClassPerSequence { num_classes: 3 });
}

#[test]
fn gru_population_equals_single_training() {
    population_equals_single(CellKind::Gru, OutputKind::ClassPerStep { num_classes: 3 });
}

#[test]
fn rnn_population_equals_single_training() {
    population_equals_single(CellKind::Rnn, OutputKind::ValuePerStep { output_size: 1 });
}

#[test]
fn asrnn_population_equals_single_training() {
    population_equals_single(CellKind::Asrnn, OutputKind::ClassPerSequence { num_classes: 3 });
}

#[test]
fn cornn_population_equals_single_training() {
    population_equals_single(CellKind::Cornn, OutputKind::ValuePerSequence { output_size: 1 });
}

#[test]
fn a_diverging_network_stops_alone() {
    let task = TinyTask::new(OutputKind::ClassPerSequence { num_classes: 3 }, 36, 12, 5, 3, 7);
    let mut specs = specs(CellKind::Lstm);
    specs[1].lr = 1e300; // inf in f32: the first update makes the weights non-finite
    let cfg = small_config();
    let dev = Device::Cpu;
    let mut pop = PopulationTrainer::new(&task, &specs, &cfg, DType::F32, &dev).unwrap();
    let r1 = pop.train_epoch(1).unwrap();
    let r2 = pop.train_epoch(2).unwrap();
    let d = r1[1].diverged.expect("network 1 must diverge");
    assert_eq!((d.epoch, d.batch), (1, 1));
    assert!(r1[1].loss.is_none() && r2[1].diverged.is_none() && r2[1].loss.is_none());
    assert_eq!(pop.active(), &[true, false, true]);
    let ev = pop.evaluate(Split::Test).unwrap();
    assert!(ev[1].loss.is_nan() && ev[0].loss.is_finite() && ev[2].loss.is_finite());
    for m in [0usize, 2] {
        let mut single =
            PopulationTrainer::new(&task, &specs[m..m + 1], &cfg, DType::F32, &dev).unwrap();
        single.train_epoch(1).unwrap();
        single.train_epoch(2).unwrap();
        let a = pop.model().network_values(m).unwrap();
        let b = single.model().network_values(0).unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert_close(&format!("healthy network {m}"), x, y, F32_ABS, F32_REL);
        }
    }
}
