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
use super::spectra::{compute_network_spectra, driving_sequences, spectrum_is_complete};
use super::sweep::{network_is_complete, train_unit};
use super::task::build_task;

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
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
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

async fn dispatch(
    run: RunFolder,
    config: ExperimentConfig,
    shard: Shard,
    select: WorkSelection,
    workers: usize,
) -> Result<Outcome> {
    let task = Arc::new(build_task(&config)?);
    let config = Arc::new(config);
    let run = Arc::new(run);
    let spectrum_epochs = Arc::new(config.spectrum_epochs());
    let units = units_of_shard(&config, shard);

    // What is left.
    let mut train_queue: VecDeque<TrainingUnit> = VecDeque::new();
    let mut spectra_queue: VecDeque<(NetworkPlan, bool)> = VecDeque::new();
    let mut nets_left = 0u64;
    let mut pending_spectra_nets: Vec<NetworkPlan> = Vec::new();
    for unit in &units {
        let mut unit_done = true;
        for net in &unit.networks {
            match network_is_complete(&run, &config, &net.id) {
                Ok(m) => {
                    if select.spectra {
                        pending_spectra_nets.push(net.clone());
                        let _ = m;
                    }
                }
                Err(why) => {
                    unit_done = false;
                    if !select.train {
                        return Err(crate::error::UsageError(format!(
                            "network {} is not trained: {why:#}; run `sweep`{} first",
                            net.id,
                            if shard.count > 1 {
                                format!(" --shard {shard}")
                            } else {
                                String::new()
                            }
                        ))
                        .into());
                    }
                }
            }
        }
        if !unit_done && select.train {
            nets_left += unit.networks.len() as u64;
            train_queue.push_back(unit.clone());
        }
    }
    let spectra_left = |net: &NetworkPlan| {
        spectrum_epochs.iter().filter(|&&e| !spectrum_is_complete(&run, &net.id, e)).count() as u64
    };
    let mut spectra_total: u64 = units
        .iter()
        .flat_map(|u| &u.networks)
        .map(|n| if select.spectra { spectra_left(n) } else { 0 })
        .sum();
    for net in pending_spectra_nets {
        if spectra_left(&net) > 0 {
            let diverged =
                network_is_complete(&run, &config, &net.id).map(|m| m.diverged).unwrap_or(false);
            spectra_queue.push_back((net, diverged));
        }
    }
    // Networks in the training queue may already have some spectra: counted above.
    if !select.spectra {
        spectra_total = 0;
    }
    tracing::info!(
        shard = %shard,
        workers,
        networks_to_train = nets_left,
        spectra_to_compute = spectra_total,
        "starting"
    );
    if train_queue.is_empty() && spectra_queue.is_empty() {
        return Ok(Outcome::Completed);
    }
    if interrupted() {
        return Ok(Outcome::Interrupted);
    }

    let driving = if select.spectra {
        Some(Arc::new(driving_sequences(&config, &run, task.as_ref())?))
    } else {
        None
    };

    let train_bar = (nets_left > 0).then(|| progress::bar(nets_left, "training"));
    let spectra_bar = (spectra_total > 0).then(|| progress::bar(spectra_total, "spectra"));

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let forward = {
        let tx = tx.clone();
        tokio::spawn(async move {
            notify().notified().await;
            let _ = tx.send(Event::Interrupt);
        })
    };

    let started = Instant::now();
    let mut running = 0usize;
    let mut cancelled = interrupted();
    let mut first_error: Option<anyhow::Error> = None;
    let mut trained_nets = 0u64;
    let mut computed_spectra = 0u64;
    loop {
        while running < workers && !cancelled {
            if let Some((net, diverged)) = spectra_queue.pop_front() {
                let (run, config, epochs, driving, tx) = (
                    run.clone(),
                    config.clone(),
                    spectrum_epochs.clone(),
                    driving.clone(),
                    tx.clone(),
                );
                running += 1;
                tokio::task::spawn_blocking(move || {
                    let result = match driving {
                        Some(d) => {
                            compute_network_spectra(&run, &config, &net, &epochs, &d, diverged)
                        }
                        None => Ok(0),
                    };
                    let _ = tx.send(Event::Spectra { net: net.id, result });
                });
            } else if let Some(unit) = train_queue.pop_front() {
                let (run, config, task, tx) =
                    (run.clone(), config.clone(), task.clone(), tx.clone());
                running += 1;
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
        if running == 0 {
            break;
        }
        let Some(ev) = rx.recv().await else { break };
        match ev {
            Event::Interrupt => {
                tracing::info!(running, "waiting for the running work");
                cancelled = true;
            }
            Event::Trained { unit, result, seconds } => {
                running -= 1;
                match result {
                    Ok(()) => {
                        let nets: Vec<NetworkPlan> = units
                            .iter()
                            .find(|u| u.index == unit)
                            .map(|u| u.networks.clone())
                            .unwrap_or_default();
                        trained_nets += nets.len() as u64;
                        if let Some(b) = &train_bar {
                            b.inc(nets.len() as u64);
                        }
                        let eta = eta(started, trained_nets, nets_left);
                        tracing::info!(
                            unit,
                            seconds = format!("{seconds:.1}"),
                            trained = trained_nets,
                            of = nets_left,
                            eta,
                            "training unit done"
                        );
                        if select.spectra {
                            for net in nets {
                                match network_is_complete(&run, &config, &net.id) {
                                    Ok(m) => spectra_queue.push_back((net, m.diverged)),
                                    Err(e) => {
                                        first_error.get_or_insert(e);
                                        cancelled = true;
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(unit, error = format!("{e:#}"), "training unit failed");
                        first_error.get_or_insert(e);
                        cancelled = true;
                    }
                }
            }
            Event::Spectra { net, result } => {
                running -= 1;
                match result {
                    Ok(n) => {
                        computed_spectra += n as u64;
                        if let Some(b) = &spectra_bar {
                            b.inc(n as u64);
                        }
                        tracing::debug!(network = %net, spectra = n, "spectra done");
                    }
                    Err(e) => {
                        tracing::error!(network = %net, error = format!("{e:#}"), "spectra failed");
                        first_error.get_or_insert(e);
                        cancelled = true;
                    }
                }
            }
        }
    }
    forward.abort();
    for b in [train_bar, spectra_bar].into_iter().flatten() {
        b.finish_and_clear();
    }
    tracing::info!(
        trained = trained_nets,
        spectra = computed_spectra,
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "work finished"
    );
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(if cancelled { Outcome::Interrupted } else { Outcome::Completed })
}

fn eta(started: Instant, done: u64, total: u64) -> String {
    if done == 0 || done >= total {
        return "0s".into();
    }
    let per = started.elapsed().as_secs_f64() / done as f64;
    format!("{:.0}s", per * (total - done) as f64)
}
