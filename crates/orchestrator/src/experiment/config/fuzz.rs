//! Fuzz suite of the config (issue 16): random `--set` overrides — every key of the resolved
//! config, misspelled and nested unknown keys, and values of every TOML type including the
//! extremes (`u64::MAX`, `2^63 - 1`, `-1`, `nan`, `inf`, `1e308`, empty and nested arrays and
//! tables) — resolved through the one validation pass. Each case must resolve or give a
//! one-line error naming a key, never a panic; a config that is accepted must round-trip
//! through `config.toml` unchanged (so no NaN slips through a field without a range), fit the
//! machine's memory by its own estimates, and keep every size the stages allocate from within
//! its documented bound. 3,000 cases per run with a fixed seed (`PROPTEST_CASES` raises it).

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::{ExperimentConfig, Preset, resolve};

/// Every dotted leaf key of the default and tiny configs (and of their array-of-table
/// entries), plus a few that do not exist.
fn keys() -> Vec<String> {
    fn walk(prefix: &str, v: &toml::Value, out: &mut Vec<String>) {
        match v {
            toml::Value::Table(t) => {
                for (k, x) in t {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, x, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    for p in [Preset::Default, Preset::Tiny] {
        walk("", &toml::Value::try_from(p.config()).unwrap(), &mut out);
    }
    out.extend(
        [
            "training.epoch",
            "aelle.autoencoder.zzz",
            "spectra.k",
            "aelle.autoencoder.hidden_width",
            "aelle.embedding.tsne.learning_rate",
            "zzz",
            "population.zzz.deeper",
        ]
        .map(String::from),
    );
    out.sort();
    out.dedup();
    out
}

fn value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("18446744073709551615".to_string()),
        Just("9223372036854775807".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1".to_string()),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("1e308".to_string()),
        Just("5e-324".to_string()),
        Just("true".to_string()),
        Just("\"lstm\"".to_string()),
        Just("\"\"".to_string()),
        (0u64..100_000).prop_map(|v| v.to_string()),
        (-10.0f64..10.0).prop_map(|v| format!("{v:e}")),
        "[a-z]{1,8}".prop_map(|s| format!("\"{s}\"")),
    ];
    prop_oneof![
        4 => scalar.clone(),
        1 => Just("[]".to_string()),
        1 => prop::collection::vec(scalar.clone(), 1..4).prop_map(|v| format!("[{}]", v.join(","))),
        1 => (scalar.clone(), scalar.clone()).prop_map(|(a, b)| format!("[{{alpha={a},epochs={b}}}]")),
        1 => (prop_oneof![Just("epoch"), Just("fraction"), Just("zzz")], scalar.clone())
            .prop_map(|(k, v)| format!("[{{{k}={v}}}]")),
        1 => scalar.prop_map(|v| format!("{{zzz={v}}}")),
    ]
}

#[test]
fn fuzz_config_overrides_resolve_or_name_the_key() {
    let ran = std::cell::Cell::new(0u32);
    let keys = keys();
    let n = keys.len();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let mut runner = TestRunner::new_with_rng(
        Config { cases, failure_persistence: None, ..Config::default() },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = (
        prop::collection::vec((0..n, value()), 1..4),
        prop_oneof![Just(Preset::Tiny), Just(Preset::Default)],
    );
    let accepted = std::cell::Cell::new(0u32);
    runner
        .run(&strategy, |(sets, preset)| {
            ran.set(ran.get() + 1);
            let sets: Vec<String> = sets.iter().map(|(k, v)| format!("{}={v}", keys[*k])).collect();
            match resolve(preset, None, &sets) {
                Ok(c) => {
                    accepted.set(accepted.get() + 1);
                    check_accepted(&c)?;
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    prop_assert!(!msg.contains('\n'), "not one line: {}", msg);
                    prop_assert!(msg.contains("--set") || msg.contains("preset"), "{}", msg);
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(ran.get(), cases, "cases run");
    // The generator also produces valid overrides (a small integer or float in range).
    assert!(accepted.get() > 0);
}

/// What an accepted config promises the stages.
fn check_accepted(c: &ExperimentConfig) -> Result<(), TestCaseError> {
    let text = c.to_toml().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: ExperimentConfig =
        toml::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, c, "does not round-trip: {}", text);
    prop_assert!(c.validate().is_ok());
    let (train, _) = c.example_counts();
    prop_assert!(c.training.batch_size <= train);
    prop_assert!(c.training.learning_rate.is_finite() && c.training.learning_rate <= 1.0);
    prop_assert!(c.aelle.embedding.tsne.iterations <= aelle::tsne::MAX_TSNE_ITERATIONS);
    prop_assert!(c.aelle.embedding.tsne.perplexity.is_finite());
    prop_assert!(!c.aelle.evaluation.points.is_empty());
    prop_assert!(c.spectra.warmup < c.task.kind.shape().0);
    let rows = c.population.architectures.len()
        * c.population.networks_per_architecture
        * c.spectrum_epochs().len();
    prop_assert!(c.aelle.check_memory(rows).is_ok());
    Ok(())
}
