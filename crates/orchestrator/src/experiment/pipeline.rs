//! Concurrency: a bounded pool of blocking workers on tokio runs training units and spectrum
//! batches, spectra first.
//!
//! One dispatcher loop owns two queues. Whenever a worker is free it starts the next spectrum
//! batch if any, else the next training unit; when a unit finishes training, the spectrum
//! batches of its networks are queued at once. So spectra of finished networks are computed
//! while other networks still train, and no worker ever waits for a stage to end. Ctrl-C
//! (tokio's signal handling) stops the dispatch of new work; running work finishes and is
//! written; a second Ctrl-C exits at once (every file is written atomically, so even then
//! nothing is half-written). A rerun continues where it stopped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Result;
use tokio::runtime::Runtime;
use tokio::sync::{Notify, mpsc};

use super::config::ExperimentConfig;
use super::plan::{NetworkPlan, TrainingUnit, units_of_shard};
use super::progress;
use super::run_folder::RunFolder;
use super::shard::Shard;
use super::stages::spectra::{compute_network_spectra, driving_sequences};
use super::stages::sweep::train_unit;
use super::status::{spectrum_is_complete, trained_network};
use super::task::build_task;
use datasets::Task;

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// All work of the shard is done.
    Completed,
    /// Stopped by Ctrl-C after finishing the running work.
    Interrupted,
}

/// What to do in this call.
#[derive(Debug, Clone, Copy)]
pub struct WorkSelection {
    pub train: bool,
    pub spectra: bool,
}

/// Number of blocking workers: `runtime.workers`, or the number of cores.
pub fn worker_count(config: &ExperimentConfig) -> usize {
    if config.runtime.workers > 0 {
        config.runtime.workers
    } else {
        std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1)
    }
}

enum Event {
    Trained { unit: usize, result: Result<()>, seconds: f64 },
    Spectra { net: String, result: Result<usize> },
    Interrupt,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static NOTIFY: OnceLock<Arc<Notify>> = OnceLock::new();

fn notify() -> Arc<Notify> {
    NOTIFY.get_or_init(|| Arc::new(Notify::new())).clone()
}

/// Whether Ctrl-C was pressed (stages check it between units of work).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The command's runtime: one scheduler thread, blocking workers for the heavy work, and the
/// Ctrl-C listener (first press: finish the running work and stop; second: exit now).
pub fn runtime(workers: usize) -> Result<Runtime> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(workers.max(1) + 1)
        .enable_all()
        .build()?;
    rt.spawn(async {
        let mut presses = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            presses += 1;
            if presses >= 2 {
                tracing::warn!("second interrupt: exiting now (completed files are intact)");
                std::process::exit(130);
            }
            INTERRUPTED.store(true, Ordering::SeqCst);
            notify().notify_one();
            tracing::warn!(
                "interrupt: finishing the running work, then exiting (rerun to continue; Ctrl-C again to exit now)"
            );
        }
    });
    Ok(rt)
}

/// Runs training and/or spectra of `shard` on `workers` blocking workers.
pub fn run_work(
    rt: &Runtime,
    run: &RunFolder,
    config: &ExperimentConfig,
    shard: Shard,
    select: WorkSelection,
    workers: usize,
) -> Result<Outcome> {
    rt.block_on(dispatch(run.clone(), config.clone(), shard, select, workers.max(1)))
}

/// The work left of a shard: training units to train and networks whose spectra to compute
/// (with whether their training diverged), and the counts the progress bars show.
struct WorkLeft {
    train: VecDeque<TrainingUnit>,
    spectra: VecDeque<(NetworkPlan, bool)>,
    networks_to_train: u64,
    spectra_to_compute: u64,
}

/// Scans the run folder for what is left of `units`. Asking for spectra only (no training)
/// of an untrained network is bad input.
fn work_left(
    run: &RunFolder,
    config: &ExperimentConfig,
    units: &[TrainingUnit],
    spectrum_epochs: &[u32],
    shard: Shard,
    select: WorkSelection,
) -> Result<WorkLeft> {
    let mut left = WorkLeft {
        train: VecDeque::new(),
        spectra: VecDeque::new(),
        networks_to_train: 0,
        spectra_to_compute: 0,
    };
    // Trained networks whose spectra may be missing, with whether their training diverged.
    let mut pending_spectra_nets: Vec<(NetworkPlan, bool)> = Vec::new();
    for unit in units {
        let mut unit_done = true;
        for net in &unit.networks {
            match trained_network(run, config, &net.id) {
                Ok(m) => {
                    if select.spectra {
                        pending_spectra_nets.push((net.clone(), m.diverged()));
                    }
                }
                Err(why) => {
                    unit_done = false;
                    if !select.train {
                        let again = if shard.count > 1 {
                            format!(" --shard {shard}")
                        } else {
                            String::new()
                        };
                        return Err(crate::error::usage(format!(
                            "network {} is not trained: {why:#}; run `sweep`{again} first",
                            net.id
                        )));
                    }
                }
            }
        }
        if !unit_done && select.train {
            left.networks_to_train += unit.networks.len() as u64;
            left.train.push_back(unit.clone());
        }
    }
    let spectra_left = |net: &NetworkPlan| {
        spectrum_epochs.iter().filter(|&&e| !spectrum_is_complete(run, &net.id, e)).count() as u64
    };
    // Networks still to train may already have some spectra: only the missing ones count.
    if select.spectra {
        left.spectra_to_compute = units.iter().flat_map(|u| &u.networks).map(spectra_left).sum();
    }
    for (net, diverged) in pending_spectra_nets {
        if spectra_left(&net) > 0 {
            left.spectra.push_back((net, diverged));
        }
    }
    Ok(left)
}

/// The dispatcher's state while work runs: the queues, the number of running tasks, the
/// first error, and the progress.
struct Dispatcher {
    run: Arc<RunFolder>,
    config: Arc<ExperimentConfig>,
    task: Arc<dyn Task + Send + Sync>,
    spectrum_epochs: Arc<Vec<u32>>,
    driving: Option<Arc<datasets::DrivingSequences>>,
    units: Vec<TrainingUnit>,
    select: WorkSelection,
    left: WorkLeft,
    tx: mpsc::UnboundedSender<Event>,
    running: usize,
    cancelled: bool,
    first_error: Option<anyhow::Error>,
    trained_nets: u64,
    computed_spectra: u64,
    started: Instant,
    train_bar: Option<indicatif::ProgressBar>,
    spectra_bar: Option<indicatif::ProgressBar>,
}

impl Dispatcher {
    /// Starts work on free workers, spectra first. Returns whether anything is running.
    fn start_work(&mut self, workers: usize) -> bool {
        while self.running < workers && !self.cancelled {
            if let Some((net, diverged)) = self.left.spectra.pop_front() {
                let (run, config, epochs, driving, tx) = (
                    self.run.clone(),
                    self.config.clone(),
                    self.spectrum_epochs.clone(),
                    self.driving.clone(),
                    self.tx.clone(),
                );
                self.running += 1;
                tokio::task::spawn_blocking(move || {
                    let result = match driving {
                        Some(d) => {
                            compute_network_spectra(&run, &config, &net, &epochs, &d, diverged)
                        }
                        None => Ok(0),
                    };
                    let _ = tx.send(Event::Spectra { net: net.id, result });
                });
            } else if let Some(unit) = self.left.train.pop_front() {
                let (run, config, task, tx) =
                    (self.run.clone(), self.config.clone(), self.task.clone(), self.tx.clone());
                self.running += 1;
                tokio::task::spawn_blocking(move || {
                    let t0 = Instant::now();
                    let result = train_unit(&run, &config, task.as_ref(), &unit);
                    let _ = tx.send(Event::Trained {
                        unit: unit.index,
                        result,
                        seconds: t0.elapsed().as_secs_f64(),
                    });
                });
            } else {
                break;
            }
        }
        self.running > 0
    }

    fn fail(&mut self, e: anyhow::Error) {
        self.first_error.get_or_insert(e);
        self.cancelled = true;
    }

    /// A training unit finished: count it and queue its networks' spectra.
    fn on_trained(&mut self, unit: usize, result: Result<()>, seconds: f64) {
        self.running -= 1;
        if let Err(e) = result {
            tracing::error!(unit, error = format!("{e:#}"), "training unit failed");
            self.fail(e);
            return;
        }
        let nets: Vec<NetworkPlan> = self
            .units
            .iter()
            .find(|u| u.index == unit)
            .map(|u| u.networks.clone())
            .unwrap_or_default();
        self.trained_nets += nets.len() as u64;
        if let Some(b) = &self.train_bar {
            b.inc(nets.len() as u64);
        }
        let eta = eta(self.started, self.trained_nets, self.left.networks_to_train);
        tracing::info!(
            unit,
            seconds = format!("{seconds:.1}"),
            trained = self.trained_nets,
            of = self.left.networks_to_train,
            eta,
            "training unit done"
        );
        if self.select.spectra {
            for net in nets {
                match trained_network(&self.run, &self.config, &net.id) {
                    Ok(m) => self.left.spectra.push_back((net, m.diverged())),
                    Err(e) => self.fail(e),
                }
            }
        }
    }

    /// A network's spectra finished.
    fn on_spectra(&mut self, net: String, result: Result<usize>) {
        self.running -= 1;
        match result {
            Ok(n) => {
                self.computed_spectra += n as u64;
                if let Some(b) = &self.spectra_bar {
                    b.inc(n as u64);
                }
                tracing::debug!(network = %net, spectra = n, "spectra done");
            }
            Err(e) => {
                tracing::error!(network = %net, error = format!("{e:#}"), "spectra failed");
                self.fail(e);
            }
        }
    }
}

async fn dispatch(
    run: RunFolder,
    config: ExperimentConfig,
    shard: Shard,
    select: WorkSelection,
    workers: usize,
) -> Result<Outcome> {
    let task: Arc<dyn Task + Send + Sync> = Arc::from(build_task(&config)?);
    let spectrum_epochs = Arc::new(config.spectrum_epochs());
    let units = units_of_shard(&config, shard);
    let left = work_left(&run, &config, &units, &spectrum_epochs, shard, select)?;
    tracing::info!(
        shard = %shard,
        workers,
        networks_to_train = left.networks_to_train,
        spectra_to_compute = left.spectra_to_compute,
        "starting"
    );
    // The driving sequences are computed (and their file checked, rewritten when it differs)
    // even when every spectrum exists: a rerun checks what it skips.
    let driving = if select.spectra {
        Some(Arc::new(driving_sequences(&config, &run, task.as_ref())?))
    } else {
        None
    };
    if left.train.is_empty() && left.spectra.is_empty() {
        return Ok(Outcome::Completed);
    }
    if interrupted() {
        return Ok(Outcome::Interrupted);
    }

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let forward = {
        let tx = tx.clone();
        tokio::spawn(async move {
            notify().notified().await;
            let _ = tx.send(Event::Interrupt);
        })
    };
    let mut d = Dispatcher {
        run: Arc::new(run),
        config: Arc::new(config),
        task,
        spectrum_epochs,
        driving,
        units,
        select,
        train_bar: (left.networks_to_train > 0)
            .then(|| progress::bar(left.networks_to_train, "training")),
        spectra_bar: (left.spectra_to_compute > 0)
            .then(|| progress::bar(left.spectra_to_compute, "spectra")),
        left,
        tx,
        running: 0,
        cancelled: interrupted(),
        first_error: None,
        trained_nets: 0,
        computed_spectra: 0,
        started: Instant::now(),
    };
    while d.start_work(workers) {
        let Some(ev) = rx.recv().await else { break };
        match ev {
            Event::Interrupt => {
                tracing::info!(running = d.running, "waiting for the running work");
                d.cancelled = true;
            }
            Event::Trained { unit, result, seconds } => d.on_trained(unit, result, seconds),
            Event::Spectra { net, result } => d.on_spectra(net, result),
        }
    }
    forward.abort();
    for b in [d.train_bar.take(), d.spectra_bar.take()].into_iter().flatten() {
        b.finish_and_clear();
    }
    tracing::info!(
        trained = d.trained_nets,
        spectra = d.computed_spectra,
        seconds = format!("{:.1}", d.started.elapsed().as_secs_f64()),
        "work finished"
    );
    if let Some(e) = d.first_error {
        return Err(e);
    }
    Ok(if d.cancelled { Outcome::Interrupted } else { Outcome::Completed })
}

fn eta(started: Instant, done: u64, total: u64) -> String {
    if done == 0 || done >= total {
        return "0s".into();
    }
    let per = started.elapsed().as_secs_f64() / done as f64;
    format!("{:.0}s", per * (total - done) as f64)
}
