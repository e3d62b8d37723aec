//! Runs the AeLLE pipeline on the synthetic two-factor population and prints the numbers
//! quoted in the crate README.
//!
//! `cargo run -p aelle --release --example synthetic_benchmark [networks] [--defaults]
//! [--shuffled] [--permutation-seed=N] [--test-fraction=F]`
//!
//! `--defaults` uses `AelleConfig::default()` (L = 128, the full alpha schedule, t-SNE on 1000
//! points); otherwise the CI-sized config of the integration tests. `--shuffled` permutes the
//! final losses across networks (the chance-level control; `--permutation-seed=N`, default 99
//! as in the integration test).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use aelle::metrics::spearman;
use aelle::synthetic::{SyntheticConfig, two_factor_population};
use aelle::{AelleConfig, Split, run_aelle};
use rand::SeedableRng;
use rand::seq::SliceRandom;

fn fmt(v: Option<f64>) -> String {
    v.map_or("  -  ".into(), |v| format!("{v:.3}"))
}

/// One row of the results table: precision, recall, F1, AUROC and Spearman, then `tail`.
fn print_row(point: &str, method: &str, [p, r, f1, auroc, rho]: [Option<f64>; 5], tail: &str) {
    println!(
        "{point:<12} | {method:<20} | {} | {}  | {} | {} | {}{tail}",
        fmt(p),
        fmt(r),
        fmt(f1),
        fmt(auroc),
        fmt(rho)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let networks = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1000);
    let defaults = args.iter().any(|a| a == "--defaults");
    let shuffled = args.iter().any(|a| a == "--shuffled");
    let permutation_seed = args
        .iter()
        .find_map(|a| a.strip_prefix("--permutation-seed=").and_then(|v| v.parse().ok()))
        .unwrap_or(99);
    let test_fraction: Option<f64> =
        args.iter().find_map(|a| a.strip_prefix("--test-fraction=").and_then(|v| v.parse().ok()));
    let pop = two_factor_population(&SyntheticConfig {
        networks,
        non_finite_rows: 7,
        seed: 42,
        ..SyntheticConfig::default()
    })?;
    let mut rows = pop.rows.clone();
    if shuffled {
        let ids: Vec<&String> = pop.performance_factor.keys().collect();
        let mut perm = ids.clone();
        perm.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(permutation_seed));
        let finals: BTreeMap<&str, f64> =
            pop.rows.iter().map(|r| (r.network_id.as_str(), r.final_loss)).collect();
        let map: BTreeMap<&str, f64> =
            ids.iter().zip(&perm).map(|(a, b)| (a.as_str(), finals[b.as_str()])).collect();
        for r in &mut rows {
            r.final_loss = map[r.network_id.as_str()];
        }
    }
    let config = if defaults {
        AelleConfig { seed: 7, ..AelleConfig::default() }
    } else {
        common::test_config()
    };
    let mut config = config;
    if let Some(f) = test_fraction {
        config.split.test_fraction = f;
    }
    let start = Instant::now();
    let run = run_aelle(&rows, &config)?;
    let elapsed = start.elapsed();
    let r = &run.report;
    let (pc1, f1): (Vec<f64>, Vec<f64>) = r
        .rows
        .iter()
        .filter(|x| x.split == Split::Test)
        .map(|x| (x.pca[0], pop.performance_factor[&x.network_id]))
        .unzip();
    println!(
        "networks {networks}, rows used {} of {} ({} excluded), wall {:.2} s, epochs run {} (best {}), stopped early {}",
        r.rows_used,
        r.rows_in,
        r.excluded.len(),
        elapsed.as_secs_f64(),
        r.training.epochs.len(),
        r.training.best_epoch,
        r.training.stopped_early
    );
    println!("Spearman(PC1, f1) on test rows: {}", fmt(spearman(&pc1, &f1)?));
    println!("PCA explained variance ratio (first 3): {:?}", &r.pca_explained_variance_ratio[..3]);
    println!("point        | classifier           | prec  | recall | F1    | AUROC | Spearman");
    for p in &r.evaluations {
        let point = format!("{:?}", p.point);
        for c in &p.classifiers {
            let metrics = [c.precision, c.recall, c.f1, c.auroc, c.spearman_with_final_loss];
            print_row(&point, &format!("{:?}", c.classifier), metrics, "");
        }
        for b in &p.baselines {
            let metrics = [b.precision, b.recall, b.f1, b.auroc, b.spearman_with_final_loss];
            let r_squared = format!(" (R^2 {})", fmt(b.r_squared));
            print_row(&point, &format!("{:?}", b.baseline), metrics, &r_squared);
        }
    }
    Ok(())
}
