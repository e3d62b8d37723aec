//! `orchestrator`: the AeLLE-rs command line. Thin: parse, validate, run, map errors to exit
//! codes in one place (2 = bad input, 1 = anything else).

mod cli;
mod commands;
mod error;
mod experiment;
mod fs;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, LogFormat, StageArgs};
use experiment::commands::{Stage, StageOutcome, execute};

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(experiment::progress::LogWriter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Exit code of a stage stopped by Ctrl-C (128 + SIGINT).
const INTERRUPTED_EXIT: u8 = 130;

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let stage = |s: Stage| -> anyhow::Result<ExitCode> {
        Ok(match execute(&s)? {
            StageOutcome::Completed => ExitCode::SUCCESS,
            StageOutcome::Interrupted => {
                tracing::warn!(
                    "interrupted: finished work is saved; rerun the same command to continue"
                );
                ExitCode::from(INTERRUPTED_EXIT)
            }
        })
    };
    match cli.command.unwrap_or(Command::Run(StageArgs::default())) {
        Command::Run(a) => stage(Stage::Run(a)),
        Command::Sweep(a) => stage(Stage::Sweep(a)),
        Command::Spectra(a) => stage(Stage::Spectra(a)),
        Command::Merge(a) => stage(Stage::Merge(a)),
        Command::Aelle(a) => stage(Stage::Aelle(a)),
        Command::Report(a) => stage(Stage::Report(a)),
        Command::Transfer(args) => {
            let out = experiment::stages::transfer::run(
                &args.model,
                &args.run_dir,
                args.name.as_deref(),
            )?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckEngine(args) => {
            commands::check_engine::run(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Spectrum(args) => {
            let report = commands::spectrum::run(&args)?;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", commands::spectrum::render_table(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(args) => {
            let report = commands::bench::run(&args)?;
            let md = commands::bench::render_markdown(&report);
            if let Some(path) = &args.out {
                fs::write_atomic(path, md.as_bytes())?;
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{md}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The experiment stages get their parallelism from their worker pool: each worker's
/// training (candle) and spectra (rayon) run on one thread, which on small RNN populations is
/// several times faster than splitting each small GEMM over threads (measured: an LSTM
/// population epoch took 6.0 s with 2 intra-op threads, 2.2 s with 1). An explicit
/// `RAYON_NUM_THREADS` wins.
fn single_threaded_kernels_for_stages(command: &Option<Command>) {
    let is_stage = matches!(
        command,
        None | Some(
            Command::Run(_)
                | Command::Sweep(_)
                | Command::Spectra(_)
                | Command::Merge(_)
                | Command::Aelle(_)
                | Command::Report(_)
        )
    );
    if is_stage && std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: called first thing in main, before any other thread exists, so no thread
        // can read the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    single_threaded_kernels_for_stages(&cli.command);
    init_tracing(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // One line: the context chain joined with ": ".
            eprintln!("error: {err:#}");
            ExitCode::from(error::exit_code(&err))
        }
    }
}
