//! The work of an experiment, as pure functions of the config: which networks (ids, init
//! scales, seeds), grouped into training units, which checkpoints get a spectrum, and the time
//! estimate of what is left (`--dry-run`; what is done comes from `status::work_done`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use le_engine::rnn::CellKind;

use super::config::ExperimentConfig;
use super::shard::Shard;

/// One network of the population.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NetworkPlan {
    /// `<arch>-<index:03>`, e.g. `lstm-007`.
    pub id: String,
    pub arch: CellKind,
    /// Index within its cell, 0-based.
    pub index: usize,
    /// Initialisation scale.
    pub p: f64,
    /// Seed of its weights and data order.
    pub seed: u64,
}

/// Networks trained together (same cell; one batched population): the unit of work of
/// `sweep`, and of sharding.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingUnit {
    /// Position in plan order (what `--shard` slices).
    pub index: usize,
    pub networks: Vec<NetworkPlan>,
}

/// SplitMix64 of `(seed, stream)`: independent seeds per network.
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed.wrapping_add(stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed stream of a cell: fixed numbers (not the enum's order), so that a network's seed
/// never depends on how the cell vocabulary is declared. These are the values every run
/// folder so far was made with.
fn seed_stream(kind: CellKind) -> u64 {
    match kind {
        CellKind::Lstm => 0,
        CellKind::Gru => 1,
        CellKind::Rnn => 2,
        CellKind::Asrnn => 3,
        CellKind::Cornn => 4,
    }
}

/// Every network, cell by cell in config order, p ascending within a cell.
pub fn networks(config: &ExperimentConfig) -> Vec<NetworkPlan> {
    let pop = &config.population;
    let n = pop.networks_per_architecture;
    let mut out = Vec::with_capacity(n * pop.architectures.len());
    for &arch in &pop.architectures {
        let arch_stream = seed_stream(arch);
        for i in 0..n {
            let t = if n > 1 { i as f64 / (n - 1) as f64 } else { 0.0 };
            let p = pop.p_min + (pop.p_max - pop.p_min) * t;
            out.push(NetworkPlan {
                id: format!("{}-{i:03}", arch.name()),
                arch,
                index: i,
                p,
                seed: derive_seed(config.seed, (arch_stream << 32) | i as u64),
            });
        }
    }
    out
}

/// The networks grouped into training units of at most `runtime.networks_per_unit`.
pub fn training_units(config: &ExperimentConfig) -> Vec<TrainingUnit> {
    let per = config.runtime.networks_per_unit.max(1);
    let mut units = Vec::new();
    for &arch in &config.population.architectures {
        let of_arch: Vec<NetworkPlan> =
            networks(config).into_iter().filter(|n| n.arch == arch).collect();
        for chunk in of_arch.chunks(per) {
            units.push(TrainingUnit { index: units.len(), networks: chunk.to_vec() });
        }
    }
    units
}

/// The units of a shard.
pub fn units_of_shard(config: &ExperimentConfig, shard: Shard) -> Vec<TrainingUnit> {
    training_units(config).into_iter().filter(|u| shard.owns(u.index)).collect()
}

/// What a run folder already holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Progress {
    pub networks_total: usize,
    pub networks_trained: usize,
    pub spectra_total: usize,
    pub spectra_done: usize,
    pub aelle_done: bool,
    pub report_done: bool,
}

/// Counts of the whole plan and an estimate of its cost.
#[derive(Debug, Clone, Serialize)]
pub struct PlanSummary {
    pub run_folder: String,
    pub shard: String,
    pub architectures: Vec<String>,
    pub networks: usize,
    pub training_units: usize,
    pub epochs: u32,
    pub checkpoints: usize,
    pub spectrum_epochs: Vec<u32>,
    pub spectra: usize,
    pub aelle_rows: usize,
    pub workers: usize,
    pub progress: Progress,
    /// Training multiply-adds of what is left (forward + backward), all networks.
    pub training_macs: f64,
    /// Tangent-map flops of the spectra left.
    pub spectrum_flops: f64,
    pub estimated_seconds: f64,
}

/// Effective rates on the 2-core development machine, fitted to the default experiment's
/// measured 61.7 s of training + spectra (docs/orchestrator.md, 2026-11-27; per training unit
/// of 4 networks: LSTM 1.8 s, GRU 1.5 s, RNN 2.7 s, ASRNN 3.1 s, CoRNN 4.9 s): training
/// multiply-adds per second per worker (one thread each) on rnn-models' fused CPU path (LSTM,
/// GRU) and on candle (the other cells, and every cell on a GPU device, where these CPU rates
/// mean little), and spectrum flops per second per worker (f64).
const FUSED_TRAIN_MACS_PER_SECOND: f64 = 3.0e10;
const CANDLE_TRAIN_MACS_PER_SECOND: f64 = 5.5e9;
const SPECTRUM_FLOPS_PER_SECOND: f64 = 1.8e10;
/// AeLLE (15 cross-validation fits, the pre-trained and the single-split model) + report:
/// 17 s for the default (200 networks) on the 2-core development machine.
const ANALYSIS_SECONDS: f64 = 15.0;

/// A per-step head (`char-lm`) trains on candle with small batches, where the cost of a
/// recurrent step of one training unit (its networks batched) is mostly fixed per-operation
/// overhead, not multiply-adds: seconds per step of a unit (forward + backward + Adam share),
/// LSTM / GRU / other cells. Fitted, together with the multiply-add term, to one `char-lm`
/// preset training unit (4 networks, 10 epochs of 9 batches of 100 steps) per cell measured as
/// CPU time with one worker on the 2-core development machine (2026-12-07; the machine was
/// shared, so CPU rather than wall time): LSTM 2.4 s, GRU 2.2 s, RNN 1.25 s
/// (docs/orchestrator.md). The SMNIST rates above were fitted without this term.
const PER_STEP_HEAD_STEP_SECONDS: [f64; 3] = [1.1e-4, 1.1e-4, 6.5e-5];

fn step_seconds(arch: CellKind) -> f64 {
    match arch {
        CellKind::Lstm => PER_STEP_HEAD_STEP_SECONDS[0],
        CellKind::Gru => PER_STEP_HEAD_STEP_SECONDS[1],
        _ => PER_STEP_HEAD_STEP_SECONDS[2],
    }
}

/// Seconds of training one network, its share of its unit's fixed per-step cost included
/// (see [`PER_STEP_HEAD_STEP_SECONDS`]).
fn train_seconds_per_network(config: &ExperimentConfig, arch: CellKind) -> f64 {
    let compute = train_macs_per_network(config, arch) / train_rate(config, arch);
    let rnn_models::Head::PerStepClass { .. } = config.task.kind.head() else {
        return compute;
    };
    let (t, _) = task_shape(config);
    let (train, test) = config.example_counts();
    let epochs = config.training.epochs as f64;
    let eval_batch = rnn_models::TrainConfig::default().eval_batch_size;
    let train_batches = train.div_ceil(config.training.batch_size.max(1)) as f64;
    let eval_batches = test.div_ceil(eval_batch.max(1)) as f64;
    // An evaluation step is a forward pass only: about a third of a training step.
    let steps = t as f64 * (epochs * train_batches + (epochs + 1.0) * eval_batches / 3.0);
    let per_unit = config
        .runtime
        .networks_per_unit
        .clamp(1, config.population.networks_per_architecture.max(1)) as f64;
    compute + steps * step_seconds(arch) / per_unit
}

/// Training multiply-adds per second per worker for `arch` (see the rates above).
fn train_rate(config: &ExperimentConfig, arch: CellKind) -> f64 {
    let head = config.task.kind.head();
    // The sweep trains in F32 (`stages::sweep`); a GPU device never takes the fused path.
    let fused = config.runtime.device == "cpu"
        && rnn_models::fused_path_applies(
            arch,
            head,
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        );
    if fused { FUSED_TRAIN_MACS_PER_SECOND } else { CANDLE_TRAIN_MACS_PER_SECOND }
}

/// Sequence length and input size of the task.
pub fn task_shape(config: &ExperimentConfig) -> (usize, usize) {
    let (t, i, _) = config.task.kind.shape();
    (t, i)
}

fn train_macs_per_network(config: &ExperimentConfig, arch: CellKind) -> f64 {
    let (t, i) = task_shape(config);
    let n = config.population.hidden_size as f64;
    let gates = match arch {
        CellKind::Lstm => 4.0,
        CellKind::Gru => 3.0,
        CellKind::Cornn => 2.0,
        CellKind::Rnn | CellKind::Asrnn => 1.0,
    };
    let layers = config.population.num_layers as f64;
    // The readout counts where it runs at every step (char-lm: N x V logits per character);
    // a last-step readout is one step in T and left out.
    let readout = match config.task.kind.head() {
        rnn_models::Head::PerStepClass { classes } => n * classes as f64,
        _ => 0.0,
    };
    let per_step = gates * n * (i as f64 + n) * layers + readout;
    let (examples_train, examples_test) = config.example_counts();
    let epochs = config.training.epochs as f64;
    // forward + backward = 3 forward passes on training data; one forward on test data per
    // checkpoint.
    per_step
        * t as f64
        * (3.0 * examples_train as f64 * epochs + examples_test as f64 * (epochs + 1.0))
}

fn spectrum_flops_per_checkpoint(config: &ExperimentConfig, arch: CellKind) -> f64 {
    let (t, _) = task_shape(config);
    let n = config.population.hidden_size;
    let d =
        (arch.tangent_blocks(config.spectra.lstm_state) * n * config.population.num_layers) as f64;
    let k = config.spectra.k.map(|k| k as f64).unwrap_or(d);
    let gates = match arch {
        CellKind::Lstm => 4.0,
        CellKind::Gru => 3.0,
        _ => 1.0,
    };
    let steps = (t + config.spectra.warmup) as f64;
    config.spectra.driving_sequences as f64
        * steps
        * (2.0 * gates * n as f64 * d * k + 2.0 * d * k * k)
}

/// What a run folder already holds (found by `status::work_done`), by network id.
#[derive(Debug, Clone, Default)]
pub struct WorkDone {
    /// Networks whose training is complete.
    pub trained: BTreeSet<String>,
    /// `(network id, epoch)` pairs whose spectrum record is complete.
    pub spectra: BTreeSet<(String, u32)>,
    /// `aelle/metrics.json` exists.
    pub aelle: bool,
    /// `report/index.html` exists.
    pub report: bool,
}

/// Prices what is left of the shard's work, given what is done.
pub fn summarize(
    config: &ExperimentConfig,
    run_folder: &str,
    shard: Shard,
    workers: usize,
    done: &WorkDone,
) -> PlanSummary {
    let units = units_of_shard(config, shard);
    let nets: Vec<&NetworkPlan> = units.iter().flat_map(|u| &u.networks).collect();
    let epochs_sp = config.spectrum_epochs();
    let mut progress = Progress { networks_total: nets.len(), ..Default::default() };
    let mut macs = 0.0;
    let mut train_seconds = 0.0;
    let mut flops = 0.0;
    for net in &nets {
        if done.trained.contains(&net.id) {
            progress.networks_trained += 1;
        } else {
            macs += train_macs_per_network(config, net.arch);
            train_seconds += train_seconds_per_network(config, net.arch);
        }
        for &e in &epochs_sp {
            progress.spectra_total += 1;
            if done.spectra.contains(&(net.id.clone(), e)) {
                progress.spectra_done += 1;
            } else {
                flops += spectrum_flops_per_checkpoint(config, net.arch);
            }
        }
    }
    progress.aelle_done = done.aelle;
    progress.report_done = done.report;
    let w = workers.max(1) as f64;
    let mut secs = train_seconds / w + flops / SPECTRUM_FLOPS_PER_SECOND / w;
    if !progress.report_done {
        secs += ANALYSIS_SECONDS;
    }
    PlanSummary {
        run_folder: run_folder.to_string(),
        shard: shard.to_string(),
        architectures: config
            .population
            .architectures
            .iter()
            .map(|a| a.name().to_string())
            .collect(),
        networks: nets.len(),
        training_units: units.len(),
        epochs: config.training.epochs,
        checkpoints: nets.len() * (config.training.epochs as usize + 1),
        spectrum_epochs: epochs_sp.clone(),
        spectra: nets.len() * epochs_sp.len(),
        aelle_rows: nets.len() * epochs_sp.len(),
        workers,
        progress,
        training_macs: macs,
        spectrum_flops: flops,
        estimated_seconds: secs,
    }
}

/// Human-readable plan (`--dry-run`).
pub fn render_plan(s: &PlanSummary) -> String {
    let est = Duration::from_secs_f64(s.estimated_seconds.max(0.0));
    format!(
        "plan for {folder} (shard {shard}, {workers} workers)\n\
         \x20 cells            {archs}\n\
         \x20 networks         {nets} in {units} training units ({trained} already trained)\n\
         \x20 checkpoints      {ckpt} (epochs 0..={epochs})\n\
         \x20 spectra          {spectra} at epochs {sp_ep:?} ({sp_done} already computed)\n\
         \x20 AeLLE rows       {rows}\n\
         \x20 left to compute  {macs:.2e} training multiply-adds, {flops:.2e} spectrum flops\n\
         \x20 estimated time   {mins}m{secs:02}s (from rates measured on a 2-core machine)\n",
        folder = s.run_folder,
        shard = s.shard,
        workers = s.workers,
        archs = s.architectures.join(", "),
        nets = s.networks,
        units = s.training_units,
        trained = s.progress.networks_trained,
        ckpt = s.checkpoints,
        epochs = s.epochs,
        spectra = s.spectra,
        sp_ep = s.spectrum_epochs,
        sp_done = s.progress.spectra_done,
        rows = s.aelle_rows,
        macs = s.training_macs,
        flops = s.spectrum_flops,
        mins = est.as_secs() / 60,
        secs = est.as_secs() % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::config::Preset;

    #[test]
    fn networks_cover_the_p_range_with_distinct_ids_and_seeds() {
        let c = ExperimentConfig::default();
        let nets = networks(&c);
        assert_eq!(nets.len(), 5 * 40);
        let lstm: Vec<_> = nets.iter().filter(|n| n.arch == CellKind::Lstm).collect();
        assert_eq!(lstm.first().unwrap().p, c.population.p_min);
        assert!((lstm.last().unwrap().p - c.population.p_max).abs() < 1e-12);
        let mut ids: Vec<_> = nets.iter().map(|n| &n.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), nets.len());
        let mut seeds: Vec<_> = nets.iter().map(|n| n.seed).collect();
        seeds.sort_unstable();
        seeds.dedup();
        assert_eq!(seeds.len(), nets.len());
    }

    #[test]
    fn units_hold_one_cell_and_shards_partition_them() {
        let c = Preset::Tiny.config();
        let units = training_units(&c);
        assert!(units.iter().all(|u| u.networks.iter().all(|n| n.arch == u.networks[0].arch)));
        let total: usize =
            (0..3).map(|i| units_of_shard(&c, Shard { index: i, count: 3 }).len()).sum();
        assert_eq!(total, units.len());
    }
}
