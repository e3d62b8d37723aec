//! The stage commands: resolve the config and run folder, run the stage, record its timing.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use super::args::{ExperimentArgs, ShardedStageArgs, StageArgs};
use super::config::{ExperimentConfig, Preset, read_resolved, resolve};
use super::pipeline::{Outcome, WorkSelection, interrupted, run_work, runtime, worker_count};
use super::plan::{networks, render_plan, summarize, units_of_shard};
use super::records::{ShardRecord, Timing};
use super::run_folder::RunFolder;
use super::shard::Shard;
use super::status::{check_complete, work_done};
use crate::fs::write_json;

/// A stage to run.
#[derive(Debug, Clone)]
pub enum Stage {
    Sweep(ShardedStageArgs),
    Spectra(ShardedStageArgs),
    Merge(StageArgs),
    Aelle(StageArgs),
    Report(StageArgs),
    Run(StageArgs),
}

/// Exit status of a stage command.
pub use super::pipeline::Outcome as StageOutcome;

/// The resolved experiment and where its run folder is.
fn resolve_experiment(args: &ExperimentArgs) -> Result<(std::path::PathBuf, ExperimentConfig)> {
    let root_for = |name: &str| match &args.run_dir {
        Some(d) => d.clone(),
        None => args.runs_dir.join(name),
    };
    // A stage on an existing folder without experiment flags uses the folder's config.
    if !args.defines_experiment() {
        let name = args.name.clone().unwrap_or_else(|| Preset::Default.config().name);
        let root = root_for(&name);
        let existing = root.join("config.toml");
        if existing.exists() {
            let mut c = read_resolved(&existing)?;
            if let Some(w) = args.workers {
                c.runtime.workers = w;
            }
            // The folder's config goes through the same validation pass as a new one.
            c.validate().map_err(|mut e| {
                e.source_name = existing.display().to_string();
                crate::error::UsageError(e.to_string())
            })?;
            return Ok((root, c));
        }
    }
    let mut c =
        resolve(args.preset.unwrap_or(Preset::Default), args.config.as_deref(), &args.sets)?;
    if let Some(n) = &args.name {
        c.name = n.clone();
    }
    if let Some(n) = args.networks {
        c.population.networks_per_architecture = n;
    }
    if let Some(e) = args.epochs {
        c.training.epochs = e;
    }
    if let Some(h) = args.hidden_size {
        c.population.hidden_size = h;
    }
    if let Some(s) = args.seed {
        c.seed = s;
    }
    if let Some(w) = args.workers {
        c.runtime.workers = w;
    }
    // `task.data = "auto"` becomes what is on disk now, so the folder's config.toml says which
    // data the run used.
    c.task.data = c.task.resolved_data();
    c.validate().map_err(|mut e| {
        e.source_name = "command-line flags".into();
        crate::error::UsageError(e.to_string())
    })?;
    Ok((root_for(&c.name), c))
}

fn record_timing(run: &RunFolder, stage: &str, seconds: f64) -> Result<()> {
    let finished_unix =
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    write_json(&run.timing(stage), &Timing { stage: stage.to_string(), seconds, finished_unix })
}

fn dry_run(args: &ExperimentArgs, shard: Shard) -> Result<Outcome> {
    let (root, config) = resolve_experiment(args)?;
    let run = RunFolder::new(&root);
    if run.config_path().exists() {
        // Same check as a real run: a different experiment is refused.
        let existing = read_resolved(&run.config_path())?;
        if !existing.experiment_differences(&config)?.is_empty() {
            RunFolder::open(&root, &config)?;
        }
    }
    let done = work_done(&run, &config, shard);
    let s =
        summarize(&config, &run.root().display().to_string(), shard, worker_count(&config), &done);
    print!("{}", render_plan(&s));
    Ok(Outcome::Completed)
}

fn sharded_stage(a: &ShardedStageArgs, select: WorkSelection, name: &str) -> Result<Outcome> {
    let shard = match &a.shard {
        Some(s) => Shard::parse(s)?,
        None => Shard::ALL,
    };
    if a.experiment.dry_run {
        return dry_run(&a.experiment, shard);
    }
    let (root, config) = resolve_experiment(&a.experiment)?;
    if select.train {
        probe_training_device(&config)?;
    }
    let tag = shard.tag();
    let run = RunFolder::open_as(&root, &config, (shard.count > 1).then_some(tag.as_str()))?;
    let workers = worker_count(&config);
    let rt = runtime(workers)?;
    let t0 = Instant::now();
    let outcome = run_work(&rt, &run, &config, shard, select, workers)?;
    let secs = t0.elapsed().as_secs_f64();
    if outcome == Outcome::Completed {
        let tag =
            if shard.count > 1 { format!("{name}-{}", shard.tag()) } else { name.to_string() };
        record_timing(&run, &tag, secs)?;
        if shard.count > 1 {
            let nets = units_of_shard(&config, shard)
                .into_iter()
                .flat_map(|u| u.networks.into_iter().map(|n| n.id))
                .collect();
            write_json(
                &run.shard_record(name, &shard.tag()),
                &ShardRecord {
                    stage: name.into(),
                    index: shard.index,
                    count: shard.count,
                    networks: nets,
                    seconds: secs,
                },
            )?;
        }
        tracing::info!(stage = name, shard = %shard, seconds = format!("{secs:.1}"), "stage complete");
    }
    Ok(outcome)
}

/// Opens the training device once before any work, so that a missing GPU, driver or CUDA build
/// is one exit-2 message before the run folder is touched, not one error per training unit.
fn probe_training_device(config: &ExperimentConfig) -> Result<()> {
    if config.runtime.device == "cpu" {
        return Ok(());
    }
    config.runtime.candle_device().map(drop).map_err(|e| {
        let first = e.to_string().lines().next().unwrap_or_default().to_string();
        crate::error::UsageError(format!(
            "{first} (the device is opened before any work; see docs/gpu.md for the CUDA build)"
        ))
        .into()
    })
}

fn merge(a: &StageArgs) -> Result<Outcome> {
    let (root, config) = resolve_experiment(&a.experiment)?;
    if !root.join("config.toml").exists() {
        return Err(crate::error::UsageError(format!(
            "{}: not a run folder (no config.toml)",
            root.display()
        ))
        .into());
    }
    let run = RunFolder::open(&root, &config)?;
    check_complete(&run, &config)?;
    let n = networks(&config).len();
    tracing::info!(
        networks = n,
        spectra = n * config.spectrum_epochs().len(),
        "merge: every shard's outputs are present and complete"
    );
    Ok(Outcome::Completed)
}

fn aelle_stage(run: &RunFolder, config: &ExperimentConfig) -> Result<()> {
    check_complete(run, config)?;
    let t0 = Instant::now();
    if super::stages::aelle::run_stage(run, config)? {
        record_timing(run, "aelle", t0.elapsed().as_secs_f64())?;
    }
    Ok(())
}

fn report_stage(run: &RunFolder, config: &ExperimentConfig) -> Result<()> {
    let t0 = Instant::now();
    super::stages::report::run_stage(run, config)?;
    record_timing(run, "report", t0.elapsed().as_secs_f64())?;
    Ok(())
}

fn simple_stage(
    a: &StageArgs,
    f: fn(&RunFolder, &ExperimentConfig) -> Result<()>,
) -> Result<Outcome> {
    if a.experiment.dry_run {
        return dry_run(&a.experiment, Shard::ALL);
    }
    let (root, config) = resolve_experiment(&a.experiment)?;
    let run = RunFolder::open(&root, &config)?;
    f(&run, &config)?;
    // Ctrl-C during the stage: its output may be partial, so the exit code says so.
    if interrupted() {
        return Ok(Outcome::Interrupted);
    }
    Ok(Outcome::Completed)
}

fn run_all(a: &StageArgs) -> Result<Outcome> {
    if a.experiment.dry_run {
        return dry_run(&a.experiment, Shard::ALL);
    }
    let (root, config) = resolve_experiment(&a.experiment)?;
    probe_training_device(&config)?;
    let run = RunFolder::open(&root, &config)?;
    let workers = worker_count(&config);
    tracing::info!(run = %run.root().display(), workers, "running the experiment");
    let rt = runtime(workers)?;
    let t0 = Instant::now();
    let outcome = run_work(
        &rt,
        &run,
        &config,
        Shard::ALL,
        WorkSelection { train: true, spectra: true },
        workers,
    )?;
    if outcome == Outcome::Interrupted {
        return Ok(outcome);
    }
    record_timing(&run, "sweep+spectra", t0.elapsed().as_secs_f64())?;
    aelle_stage(&run, &config)?;
    if interrupted() {
        return Ok(Outcome::Interrupted);
    }
    report_stage(&run, &config)?;
    if interrupted() {
        return Ok(Outcome::Interrupted);
    }
    record_timing(&run, "run-total", t0.elapsed().as_secs_f64())?;
    // Re-render so the report shows the total too (cheap).
    super::stages::report::run_stage(&run, &config)?;
    if interrupted() {
        return Ok(Outcome::Interrupted);
    }
    println!("{}", run.report_dir().join("index.html").display());
    Ok(Outcome::Completed)
}

/// Runs a stage command.
pub fn execute(stage: &Stage) -> Result<Outcome> {
    let args = match stage {
        Stage::Sweep(a) | Stage::Spectra(a) => &a.experiment,
        Stage::Merge(a) | Stage::Aelle(a) | Stage::Report(a) | Stage::Run(a) => &a.experiment,
    };
    if args.print_config {
        let (_, config) = resolve_experiment(args)?;
        print!("{}", config.to_toml()?);
        return Ok(Outcome::Completed);
    }
    match stage {
        Stage::Sweep(a) => sharded_stage(a, WorkSelection { train: true, spectra: false }, "sweep"),
        Stage::Spectra(a) => {
            sharded_stage(a, WorkSelection { train: false, spectra: true }, "spectra")
        }
        Stage::Merge(a) => merge(a),
        Stage::Aelle(a) => simple_stage(a, aelle_stage),
        Stage::Report(a) => simple_stage(a, report_stage),
        Stage::Run(a) => run_all(a),
    }
}
