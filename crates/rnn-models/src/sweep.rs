//! A resumable sweep: network specs in, `<out>/nets/<id>/epoch-<e>.safetensors` and
//! `<out>/nets/<id>/metrics.json` out.
//!
//! Networks of the same shape that resume from the same epoch train together as one
//! population (at most [`TrainConfig::max_population`] at a time). Per network and epoch `e`
//! the files are written in this order, each through a temporary file + rename:
//! `epoch-<e>.safetensors`, `optimizer-<e>.safetensors` (Adam moments and step count, needed
//! to resume exactly), `metrics.json`; once every network of the population has committed
//! epoch `e`, the `optimizer-<e-1>.safetensors` files are removed. A rerun
//! resumes each network from the last epoch that `metrics.json` lists and whose checkpoint and
//! optimiser state both exist, so a kill at any point loses at most the epoch in progress, and
//! the resumed run writes the same checkpoints; networks of a population that a kill left one
//! epoch apart are realigned, so they retrain together and write the same metrics too
//! (`population_size` included). A network whose loss or gradient turns
//! non-finite is marked `diverged` (its checkpoints so far are kept) and is skipped on reruns;
//! the rest of the sweep goes on.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use datasets::{Split, Task};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    CheckpointRecord, metadata_value, read_checkpoint, read_tensors, serialize_f32,
    write_checkpoint, write_file,
};
use crate::config::{NetSpec, OptimizerKind, TrainConfig};
use crate::error::{ModelError, Result};
use crate::model::{ModelShape, PopulationModel};
use crate::train::{Divergence, EvalResult, PopulationTrainer, shape_for_task};

/// Value of `metrics.json`'s `format`.
pub const METRICS_FORMAT: &str = "aelle-rnn-metrics/1";

/// The training settings that change results (stored with the metrics; a rerun must match).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    /// Minibatch size.
    pub batch_size: usize,
    /// Optimiser.
    pub optimizer: OptimizerKind,
    /// Adam betas.
    pub betas: (f64, f64),
    /// Adam eps.
    pub adam_eps: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Gradient-norm clip.
    pub grad_clip: Option<f64>,
    /// Readout dropout.
    pub readout_dropout: f64,
}

impl From<&TrainConfig> for Recipe {
    fn from(c: &TrainConfig) -> Self {
        Self {
            batch_size: c.batch_size,
            optimizer: c.optimizer,
            betas: c.betas,
            adam_eps: c.adam_eps,
            weight_decay: c.weight_decay,
            grad_clip: c.grad_clip,
            readout_dropout: c.readout_dropout,
        }
    }
}

/// Training state of one network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetStatus {
    /// Epochs remain.
    Running,
    /// All requested epochs done.
    Finished,
    /// Stopped by a non-finite loss or gradient.
    Diverged,
}

/// One epoch's numbers. Losses are nats (cross-entropy) or MSE; `None` = not finite / n.a.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// Epoch (0 = untrained).
    pub epoch: usize,
    /// Mean minibatch training loss (epoch 0: evaluated on the train split, if enabled).
    pub train_loss: Option<f64>,
    /// Training accuracy.
    pub train_accuracy: Option<f64>,
    /// Test loss.
    pub test_loss: Option<f64>,
    /// Test accuracy.
    pub test_accuracy: Option<f64>,
    /// Test bits per character (`test_loss / ln 2`, per-step classification only).
    pub test_bits_per_char: Option<f64>,
    /// Wall time of the epoch (training + evaluation) in seconds, for the whole population.
    pub wall_time_s: f64,
    /// Networks trained together in this epoch.
    pub population_size: usize,
}

/// `metrics.json` of one network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetMetrics {
    /// [`METRICS_FORMAT`].
    pub format: String,
    /// The network.
    pub spec: NetSpec,
    /// Task name.
    pub task: String,
    /// Result-relevant training settings.
    pub recipe: Recipe,
    /// State.
    pub status: NetStatus,
    /// Where it diverged.
    pub diverged_at: Option<Divergence>,
    /// Per-epoch numbers, epoch 0 first.
    pub epochs: Vec<EpochMetrics>,
}

impl NetMetrics {
    /// Whether training stopped at a non-finite loss or gradient (later epochs are absent).
    pub fn diverged(&self) -> bool {
        self.status == NetStatus::Diverged
    }

    /// Whether every epoch is done.
    pub fn finished(&self) -> bool {
        self.status == NetStatus::Finished
    }

    /// The record of `epoch`.
    pub fn at(&self, epoch: usize) -> Option<&EpochMetrics> {
        self.epochs.iter().find(|m| m.epoch == epoch)
    }

    /// The last epoch's record.
    pub fn last(&self) -> Option<&EpochMetrics> {
        self.epochs.iter().max_by_key(|m| m.epoch)
    }

    /// Test loss at the last epoch; NaN for a diverged network (it has no final loss) or an
    /// undefined one.
    pub fn final_test_loss(&self) -> f64 {
        if self.diverged() {
            return f64::NAN;
        }
        self.last().and_then(|m| m.test_loss).unwrap_or(f64::NAN)
    }

    /// Test accuracy at the last epoch (NaN when undefined).
    pub fn final_test_accuracy(&self) -> f64 {
        self.last().and_then(|m| m.test_accuracy).unwrap_or(f64::NAN)
    }
}

/// What a sweep did for one network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetOutcome {
    /// Network id.
    pub id: String,
    /// Final state.
    pub status: NetStatus,
    /// Epoch it resumed from (`None`: started fresh).
    pub resumed_from: Option<usize>,
    /// Last completed epoch.
    pub last_epoch: Option<usize>,
}

/// Paths of a network's files.
#[derive(Clone, Debug)]
pub struct NetPaths {
    /// `<out>/nets/<id>`.
    pub dir: PathBuf,
}

impl NetPaths {
    /// Paths for network `id` under `out`.
    pub fn new(out: &Path, id: &str) -> Self {
        Self { dir: out.join("nets").join(id) }
    }
    /// `epoch-<e>.safetensors`.
    pub fn checkpoint(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("epoch-{epoch}.safetensors"))
    }
    /// `optimizer-<e>.safetensors`.
    pub fn optimizer(&self, epoch: usize) -> PathBuf {
        self.dir.join(format!("optimizer-{epoch}.safetensors"))
    }
    /// `metrics.json`.
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.json")
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

fn read_metrics(path: &Path) -> Result<Option<NetMetrics>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ModelError::Metrics { path: path.into(), message: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ModelError::io(path, e)),
    }
}

fn write_metrics(path: &Path, metrics: &NetMetrics) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(metrics)
        .map_err(|e| ModelError::Metrics { path: path.into(), message: e.to_string() })?;
    write_file(path, &bytes)
}

fn optimizer_tensor_names(model: &PopulationModel) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    for prefix in ["m1.", "m2."] {
        for ps in model.param_specs() {
            v.push((format!("{prefix}{}", ps.name), ps.shape.clone()));
        }
    }
    v
}

fn write_optimizer(
    path: &Path,
    trainer: &PopulationTrainer<'_>,
    net: usize,
    epoch: usize,
) -> Result<()> {
    let (m1, m2, steps) = trainer.optimizer().network_state(net)?;
    let names = optimizer_tensor_names(trainer.model());
    let tensors: Vec<_> =
        names.into_iter().zip(m1.into_iter().chain(m2)).map(|((n, s), v)| (n, s, v)).collect();
    let mut md = std::collections::HashMap::new();
    md.insert("steps".to_string(), steps.to_string());
    md.insert("epoch".to_string(), epoch.to_string());
    let bytes = serialize_f32(path, &tensors, md)?;
    write_file(path, &bytes)
}

/// Resume point of a network: the epoch and its (truncated) metrics, or `None` to start.
fn resume_point(
    paths: &NetPaths,
    spec: &NetSpec,
    task: &str,
    recipe: &Recipe,
) -> Result<Option<NetMetrics>> {
    let Some(mut metrics) = read_metrics(&paths.metrics())? else {
        return Ok(None);
    };
    if metrics.spec != *spec || metrics.recipe != *recipe || metrics.task != task {
        return Err(ModelError::Metrics {
            path: paths.metrics(),
            message: format!(
                "network {:?} was trained with another spec, recipe or task; use a new id or output folder",
                spec.id
            ),
        });
    }
    if metrics.status == NetStatus::Diverged {
        return Ok(Some(metrics));
    }
    while let Some(last) = metrics.epochs.last() {
        let e = last.epoch;
        if paths.checkpoint(e).is_file() && (e == 0 || paths.optimizer(e).is_file()) {
            return Ok(Some(metrics));
        }
        metrics.epochs.pop();
    }
    Ok(None)
}

/// A kill while a population commits an epoch leaves some of its networks one epoch ahead
/// of the others. Resuming them apart would train smaller populations (another
/// `population_size`, and float rounding that differs in the last digits), so a network one
/// epoch ahead of the least advanced network of its shape is rolled back by that epoch when
/// its state there is still on disk (the previous optimiser state is removed only after the
/// whole population committed the next epoch): the population then retrains the epoch
/// together and writes what an uninterrupted run writes.
fn align_resume_points(
    task: &dyn Task,
    specs: &[NetSpec],
    out: &Path,
    resumes: &mut [Option<NetMetrics>],
) {
    let last = |m: &Option<NetMetrics>| m.as_ref().and_then(|m| m.epochs.last().map(|e| e.epoch));
    let diverged =
        |m: &Option<NetMetrics>| m.as_ref().is_some_and(|m| m.status == NetStatus::Diverged);
    let shapes: Vec<ModelShape> = specs.iter().map(|s| shape_for_task(task, s)).collect();
    for i in 0..specs.len() {
        if diverged(&resumes[i]) {
            continue;
        }
        let Some(mine) = last(&resumes[i]) else { continue };
        let behind = (0..specs.len())
            .filter(|&j| shapes[j] == shapes[i] && !diverged(&resumes[j]))
            .map(|j| last(&resumes[j]))
            .min()
            .flatten();
        let target = match behind {
            Some(b) if b + 1 == mine => Some(b),
            None if mine == 0
                && (0..specs.len())
                    .any(|j| shapes[j] == shapes[i] && last(&resumes[j]).is_none()) =>
            {
                None
            }
            _ => continue,
        };
        let paths = NetPaths::new(out, &specs[i].id);
        match target {
            None => resumes[i] = None,
            Some(e) => {
                let restorable =
                    paths.checkpoint(e).is_file() && (e == 0 || paths.optimizer(e).is_file());
                if let Some(m) = resumes[i].as_mut()
                    && restorable
                {
                    m.epochs.retain(|x| x.epoch <= e);
                    m.status = NetStatus::Running;
                }
            }
        }
    }
}

/// Networks train together when they share a shape and a resume epoch.
type GroupKey = (ModelShape, Option<usize>);
/// A network of a group, with its metrics so far.
type GroupMember = (NetSpec, Option<NetMetrics>);

/// Trains `specs` on `task` for `config.epochs` epochs into `out` (see the module docs).
/// Runs on `device` in `f32`.
pub fn run_sweep(
    task: &dyn Task,
    specs: &[NetSpec],
    config: &TrainConfig,
    out: &Path,
    device: &Device,
) -> Result<Vec<NetOutcome>> {
    config.validate()?;
    let mut ids = HashSet::new();
    for s in specs {
        s.validate()?;
        if !ids.insert(s.id.as_str()) {
            return Err(ModelError::InvalidConfig(format!("network id {:?} appears twice", s.id)));
        }
    }
    let recipe = Recipe::from(config);
    let task_name = task.name();
    let mut outcomes: BTreeMap<String, NetOutcome> = BTreeMap::new();
    // (shape, resume epoch) -> [(spec, metrics)]
    let mut groups: Vec<(GroupKey, Vec<GroupMember>)> = Vec::new();
    let mut resumes: Vec<Option<NetMetrics>> = specs
        .iter()
        .map(|s| resume_point(&NetPaths::new(out, &s.id), s, &task_name, &recipe))
        .collect::<Result<_>>()?;
    align_resume_points(task, specs, out, &mut resumes);
    for (s, metrics) in specs.iter().zip(resumes) {
        let paths = NetPaths::new(out, &s.id);
        let last = metrics.as_ref().and_then(|m| m.epochs.last().map(|e| e.epoch));
        let diverged = metrics.as_ref().is_some_and(|m| m.status == NetStatus::Diverged);
        if diverged || last.is_some_and(|e| e >= config.epochs) {
            if let Some(mut m) = metrics
                && !diverged
                && m.status != NetStatus::Finished
            {
                m.status = NetStatus::Finished;
                write_metrics(&paths.metrics(), &m)?;
            }
            let status = if diverged { NetStatus::Diverged } else { NetStatus::Finished };
            outcomes.insert(
                s.id.clone(),
                NetOutcome { id: s.id.clone(), status, resumed_from: last, last_epoch: last },
            );
            continue;
        }
        let key = (shape_for_task(task, s), last);
        match groups.iter_mut().find(|(k, v)| *k == key && v.len() < config.max_population) {
            Some((_, v)) => v.push((s.clone(), metrics)),
            None => groups.push((key, vec![(s.clone(), metrics)])),
        }
    }
    for ((shape, start), members) in groups {
        for o in train_group(task, &task_name, &recipe, config, out, device, shape, start, members)?
        {
            outcomes.insert(o.id.clone(), o);
        }
    }
    Ok(specs.iter().filter_map(|s| outcomes.remove(&s.id)).collect())
}

#[allow(clippy::too_many_arguments)]
fn train_group(
    task: &dyn Task,
    task_name: &str,
    recipe: &Recipe,
    config: &TrainConfig,
    out: &Path,
    device: &Device,
    shape: ModelShape,
    start: Option<usize>,
    members: Vec<(NetSpec, Option<NetMetrics>)>,
) -> Result<Vec<NetOutcome>> {
    let specs: Vec<NetSpec> = members.iter().map(|(s, _)| s.clone()).collect();
    let paths: Vec<NetPaths> = specs.iter().map(|s| NetPaths::new(out, &s.id)).collect();
    for p in &paths {
        std::fs::create_dir_all(&p.dir).map_err(|e| ModelError::io(&p.dir, e))?;
    }
    let m = specs.len();
    let mut metrics: Vec<NetMetrics> = members
        .into_iter()
        .map(|(s, md)| {
            md.unwrap_or_else(|| NetMetrics {
                format: METRICS_FORMAT.into(),
                spec: s,
                task: task_name.into(),
                recipe: recipe.clone(),
                status: NetStatus::Running,
                diverged_at: None,
                epochs: Vec::new(),
            })
        })
        .collect();
    let mut trainer = match start {
        None => PopulationTrainer::new(task, &specs, config, DType::F32, device)?,
        Some(e) => {
            let values = paths
                .iter()
                .map(|p| Ok(read_checkpoint(&p.checkpoint(e), &shape)?.values))
                .collect::<Result<Vec<_>>>()?;
            let model = PopulationModel::from_values(shape, &specs, values, DType::F32, device)?;
            let mut trainer = PopulationTrainer::from_model(task, model, config)?;
            if e > 0 {
                let names = optimizer_tensor_names(trainer.model());
                let k = trainer.model().param_specs().len();
                for (net, p) in paths.iter().enumerate() {
                    let path = p.optimizer(e);
                    let loaded = read_tensors(&path, &names)?;
                    let steps: u64 = metadata_value(&path, &loaded.metadata, "steps")?;
                    let (m1, m2) = loaded.values.split_at(k);
                    trainer.optimizer_mut().set_network_state(net, m1, m2, steps)?;
                }
            }
            trainer
        }
    };
    let resumed_from = start;
    if start.is_none() {
        let t0 = Instant::now();
        let test = trainer.evaluate(Split::Test)?;
        let train =
            if config.eval_train_at_epoch0 { Some(trainer.evaluate(Split::Train)?) } else { None };
        let wall = t0.elapsed().as_secs_f64();
        for k in 0..m {
            let em = epoch_metrics(0, train.as_ref().map(|t| t[k]), test[k], wall, m, shape);
            commit_epoch(&trainer, k, &paths[k], &mut metrics[k], em, config)?;
        }
    }
    let first = start.map_or(1, |e| e + 1);
    for epoch in first..=config.epochs {
        if !trainer.active().iter().any(|&a| a) {
            break;
        }
        let t0 = Instant::now();
        let was_active = trainer.active().to_vec();
        let train = trainer.train_epoch(epoch)?;
        let test = trainer.evaluate(Split::Test)?;
        let wall = t0.elapsed().as_secs_f64();
        for k in 0..m {
            if !was_active[k] {
                continue;
            }
            if let Some(d) = train[k].diverged {
                metrics[k].status = NetStatus::Diverged;
                metrics[k].diverged_at = Some(d);
                tracing::warn!(network = %specs[k].id, epoch = d.epoch, batch = d.batch, "network diverged");
                write_metrics(&paths[k].metrics(), &metrics[k])?;
                continue;
            }
            let tr = train[k].loss.map(|loss| EvalResult { loss, accuracy: train[k].accuracy });
            let em = epoch_metrics(epoch, tr, test[k], wall, m, shape);
            commit_epoch(&trainer, k, &paths[k], &mut metrics[k], em, config)?;
        }
        // Only now, with the whole population at `epoch`, is the previous optimiser state
        // dropped (see `align_resume_points`).
        if epoch > 1 {
            for p in &paths {
                let old = p.optimizer(epoch - 1);
                match std::fs::remove_file(&old) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ModelError::io(old, e)),
                }
            }
        }
        tracing::info!(epoch, networks = m, wall_time_s = wall, "population epoch done");
    }
    Ok(metrics
        .iter()
        .map(|mt| NetOutcome {
            id: mt.spec.id.clone(),
            status: mt.status,
            resumed_from,
            last_epoch: mt.epochs.last().map(|e| e.epoch),
        })
        .collect())
}

fn epoch_metrics(
    epoch: usize,
    train: Option<EvalResult>,
    test: EvalResult,
    wall: f64,
    population: usize,
    shape: ModelShape,
) -> EpochMetrics {
    let per_step_class = shape.head.is_classification() && shape.head.is_per_step();
    EpochMetrics {
        epoch,
        train_loss: train.and_then(|t| finite(t.loss)),
        train_accuracy: train.and_then(|t| t.accuracy),
        test_loss: finite(test.loss),
        test_accuracy: test.accuracy,
        test_bits_per_char: if per_step_class {
            finite(test.loss / std::f64::consts::LN_2)
        } else {
            None
        },
        wall_time_s: wall,
        population_size: population,
    }
}

/// Writes checkpoint, optimiser state and metrics of network `k` for one finished epoch.
fn commit_epoch(
    trainer: &PopulationTrainer<'_>,
    k: usize,
    paths: &NetPaths,
    metrics: &mut NetMetrics,
    em: EpochMetrics,
    config: &TrainConfig,
) -> Result<()> {
    let model = trainer.model();
    let epoch = em.epoch;
    let record = CheckpointRecord {
        epoch,
        train_loss: em.train_loss,
        test_loss: em.test_loss,
        test_accuracy: em.test_accuracy,
    };
    write_checkpoint(
        &paths.checkpoint(epoch),
        model.shape(),
        &model.specs()[k],
        model.param_specs(),
        &model.network_values_f32(k)?,
        &record,
    )?;
    if epoch > 0 {
        write_optimizer(&paths.optimizer(epoch), trainer, k, epoch)?;
    }
    metrics.epochs.retain(|e| e.epoch < epoch);
    metrics.epochs.push(em);
    metrics.status = if epoch >= config.epochs { NetStatus::Finished } else { NetStatus::Running };
    write_metrics(&paths.metrics(), metrics)?;
    Ok(())
}
