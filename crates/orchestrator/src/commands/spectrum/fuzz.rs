//! Fuzz suite of the `spectrum` command's numeric arguments (issue 16): random values of
//! `--steps`, `--warmup`, `--k`, `--batch`, `--ons`, `--trace-every` and `--inputs-random`
//! (any `u64`, the extremes, small values, non-numbers) through clap and the validation that
//! runs before any work. Each case must be refused as bad input (clap's usage error or exit
//! code 2) or accepted with every size within its bound and every memory estimate within the
//! machine's memory; never a panic. 3,000 cases per run with a fixed seed.

use clap::Parser;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::network::parse_inputs_random;
use super::options::config_from_args;
use super::system::check_batch_memory;
use crate::cli::{Cli, Command};

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("18446744073709551615".to_string()),
        Just("18446744073709551616".to_string()),
        Just("9223372036854775807".to_string()),
        Just("1099511627776".to_string()),
        Just("1099511627777".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e9".to_string()),
        Just("abc".to_string()),
        any::<u64>().prop_map(|v| v.to_string()),
        (0u64..5000).prop_map(|v| v.to_string()),
    ]
}

#[test]
fn fuzz_spectrum_sizes_are_refused_or_bounded() {
    let ran = std::cell::Cell::new(0u32);
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let mut runner = TestRunner::new_with_rng(
        Config { cases, failure_persistence: None, ..Config::default() },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]),
    );
    let flags = ["--steps", "--warmup", "--k", "--batch", "--ons", "--trace-every"];
    let strategy = (
        prop::collection::vec((0..flags.len(), number()), 0..5),
        prop::option::of((number(), number())),
        1usize..4,
    );
    let limit = aelle_support::mem::memory_limit_bytes();
    runner
        .run(&strategy, |(args, random, dim)| {
            ran.set(ran.get() + 1);
            let mut argv = vec![
                "orchestrator".to_string(),
                "spectrum".into(),
                "--system".into(),
                "henon".into(),
            ];
            for (f, v) in &args {
                argv.push(flags[*f].into());
                argv.push(v.clone());
            }
            let Ok(cli) = Cli::try_parse_from(&argv) else {
                return Ok(()); // clap's usage error (exit 2)
            };
            let Some(Command::Spectrum(a)) = cli.command else {
                return Err(TestCaseError::fail("not the spectrum command"));
            };
            let cfg = config_from_args(&a, false);
            if cfg.validate().is_ok() {
                prop_assert!(cfg.steps <= le_engine::config::MAX_STEPS);
                prop_assert!(cfg.warmup.checked_add(cfg.steps).is_some());
                if let Ok(bytes) = check_batch_memory(a.batch, dim, &cfg) {
                    prop_assert!(bytes <= limit);
                }
            }
            if let Some((b, t)) = random {
                let spec = format!("{b},{t}");
                match parse_inputs_random(&spec, 28) {
                    Ok((b, t)) => {
                        prop_assert!(t <= le_engine::config::MAX_STEPS);
                        let bytes = (b as u128) * (t as u128) * 28 * 16;
                        prop_assert!(bytes <= u128::from(limit));
                    }
                    Err(e) => {
                        prop_assert_eq!(crate::error::exit_code(&e), 2);
                        prop_assert!(e.to_string().contains("--inputs-random"));
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(ran.get(), cases, "cases run");
}
