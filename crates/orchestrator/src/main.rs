//! `orchestrator`: the AeLLE-rs command line. Thin: parse, validate, run, map errors to exit
//! codes in one place (2 = bad input, 1 = anything else).

mod bench;
mod cli;
mod reference_run;
mod spectrum_cmd;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, LogFormat, RunArgs};

/// An error in what the user asked for (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Run(RunArgs::default_args())) {
        Command::Run(args) => reference_run::run(&args),
        Command::Spectrum(args) => {
            let report = spectrum_cmd::run(&args)?;
            if args.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", spectrum_cmd::render_table(&report));
            }
            Ok(())
        }
        Command::Bench(args) => {
            let report = bench::run(&args)?;
            let md = bench::render_markdown(&report);
            if let Some(path) = &args.out {
                std::fs::write(path, &md).map_err(|e| {
                    anyhow::anyhow!("{}: cannot write the report: {e}", path.display())
                })?;
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{md}");
            }
            Ok(())
        }
    }
}

/// Exit code of an error: 2 when the user's input was at fault.
fn exit_code(err: &anyhow::Error) -> u8 {
    let bad_input = err.chain().any(|e| e.is::<UsageError>() || e.is::<le_engine::LeError>());
    if bad_input { 2 } else { 1 }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the context chain joined with ": ".
            eprintln!("error: {err:#}");
            ExitCode::from(exit_code(&err))
        }
    }
}
