//! End-to-end checks on the synthetic two-factor population, where the truth is known.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use aelle::metrics::spearman;
use aelle::pipeline::{ClassifierEvaluation, PointEvaluation};
use aelle::synthetic::{SyntheticConfig, SyntheticPopulation, two_factor_population};
use aelle::{
    AelleError, AelleModel, AelleRun, ClassifierKind, EvaluationPoint, ResamplingMethod, Split,
    run_aelle,
};
use common::{default_config, test_config};
use rand::SeedableRng;
use rand::seq::SliceRandom;

const NON_FINITE_ROWS: usize = 7;

fn population() -> &'static SyntheticPopulation {
    static POP: OnceLock<SyntheticPopulation> = OnceLock::new();
    POP.get_or_init(|| {
        two_factor_population(&SyntheticConfig {
            networks: 1000,
            non_finite_rows: NON_FINITE_ROWS,
            seed: 42,
            ..SyntheticConfig::default()
        })
        .unwrap()
    })
}

fn main_run() -> &'static AelleRun {
    static RUN: OnceLock<AelleRun> = OnceLock::new();
    RUN.get_or_init(|| run_aelle(&population().rows, &default_config()).unwrap())
}

fn classifier(point: &PointEvaluation, kind: ClassifierKind) -> &ClassifierEvaluation {
    point.classifiers.iter().find(|c| c.classifier == kind).unwrap()
}

#[test]
fn latent_pc1_recovers_the_performance_factor() {
    let run = main_run();
    let truth = &population().performance_factor;
    let (pc1, factor): (Vec<f64>, Vec<f64>) = run
        .report
        .rows
        .iter()
        .filter(|r| r.split == Split::Test)
        .map(|r| (r.pca[0], truth[&r.network_id]))
        .unzip();
    assert!(pc1.len() > 1000, "test rows: {}", pc1.len());
    let rho = spearman(&pc1, &factor).unwrap().unwrap();
    assert!(rho.abs() >= 0.9, "Spearman(PC1, f1) on test rows = {rho}");
}

#[test]
fn aelle_classifiers_beat_chance_and_the_early_loss_baseline() {
    let run = main_run();
    assert_eq!(run.report.evaluations.len(), 4);
    for point in &run.report.evaluations {
        assert!(point.skipped.is_none(), "{point:?}");
        assert!(point.networks.test >= 290, "{:?}", point.networks);
        for kind in [
            ClassifierKind::AellePc1,
            ClassifierKind::AelleLogistic,
            ClassifierKind::AellePredictorHead,
        ] {
            let c = classifier(point, kind);
            let auroc = c.auroc.unwrap();
            assert!(auroc >= 0.85, "{kind:?} at {:?}: AUROC {auroc}", point.point);
            assert!(c.f1.unwrap() >= 0.7, "{kind:?} at {:?}: {c:?}", point.point);
            assert!(c.spearman_with_final_loss.unwrap() >= 0.7, "{kind:?}: {c:?}");
        }
    }
    // At initialisation the current loss carries no information about the final one, so the
    // AeLLE classifier must beat the loss-based one by a wide margin there.
    let first = &run.report.evaluations[0];
    let loss = classifier(first, ClassifierKind::LossBased).auroc.unwrap();
    let pc1 = classifier(first, ClassifierKind::AellePc1).auroc.unwrap();
    assert!(pc1 - loss >= 0.2, "PC1 {pc1} vs loss-based {loss} at p = 0");
}

#[test]
fn non_finite_spectra_are_excluded_and_counted() {
    let run = main_run();
    assert_eq!(run.report.excluded.len(), NON_FINITE_ROWS);
    assert_eq!(run.report.rows_used + NON_FINITE_ROWS, run.report.rows_in);
    for e in &run.report.excluded {
        assert!(population().rows[e.row].spectrum.iter().any(|v| v.is_nan()));
        assert!(!run.report.rows.iter().any(|r| r.row == e.row));
    }
    let json = serde_json::to_string(&run.report).unwrap();
    assert!(!json.contains("NaN") && !json.contains("inf"));
}

#[test]
fn no_network_appears_in_more_than_one_split() {
    let run = main_run();
    let mut seen: BTreeMap<&str, BTreeSet<Split>> = BTreeMap::new();
    for r in &run.report.rows {
        seen.entry(&r.network_id).or_default().insert(r.split);
    }
    for (id, splits) in &seen {
        assert_eq!(splits.len(), 1, "network {id} in splits {splits:?}");
    }
    let sets: Vec<BTreeSet<String>> = [Split::Train, Split::Validation, Split::Test]
        .iter()
        .map(|s| run.report.split.networks_in(*s).into_iter().collect())
        .collect();
    for a in 0..3 {
        for b in (a + 1)..3 {
            assert!(sets[a].is_disjoint(&sets[b]), "splits {a} and {b} share networks");
        }
    }
    assert_eq!(sets.iter().map(BTreeSet::len).sum::<usize>(), seen.len());
    // Every evaluated network is a test network: the counts match the test set at each point.
    let test_ids = &sets[2];
    for point in &run.report.evaluations {
        let c = classifier(point, ClassifierKind::AellePc1).confusion;
        assert_eq!(c.total(), point.networks.test);
        assert!(point.networks.test <= test_ids.len());
    }
}

#[test]
fn embeddings_cover_rows_for_plotting() {
    let run = main_run();
    let with_tsne = run.report.rows.iter().filter(|r| r.tsne.is_some()).count();
    assert_eq!(with_tsne, 300);
    assert_eq!(run.report.tsne_perplexity, Some(10.0));
    assert!(
        run.report.rows.iter().all(|r| r.pca.len() == 2 && r.pca.iter().all(|v| v.is_finite()))
    );
    let ratio = &run.report.pca_explained_variance_ratio;
    assert!(ratio[0] > ratio[1] && ratio[0] > 0.3, "{ratio:?}");
    assert!(!run.report.training.epochs.is_empty());
}

#[test]
fn save_load_round_trip_gives_identical_predictions() {
    let run = main_run();
    let spectra: Vec<Vec<f64>> = population()
        .rows
        .iter()
        .filter(|r| r.spectrum.iter().all(|v| v.is_finite()))
        .take(500)
        .map(|r| r.spectrum.clone())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    run.model.save(&path).unwrap();
    assert!(AelleModel::config_path(&path).exists());
    let loaded = AelleModel::load(&path).unwrap();
    assert_eq!(loaded.standardizer, run.model.standardizer);
    assert_eq!(loaded.features, run.model.features);
    assert_eq!(
        loaded.predict_final_loss(&spectra).unwrap(),
        run.model.predict_final_loss(&spectra).unwrap()
    );
    assert_eq!(loaded.latent(&spectra).unwrap(), run.model.latent(&spectra).unwrap());
    // The pipeline's reported predictions are the saved model's predictions.
    let first = &run.report.rows[0];
    let again =
        loaded.predict_final_loss(&[population().rows[first.row].spectrum.clone()]).unwrap();
    assert_eq!(again[0], first.predicted_final_loss);

    // A corrupted config is a typed error, not a panic.
    std::fs::write(AelleModel::config_path(&path), "{ not json").unwrap();
    assert!(matches!(AelleModel::load(&path), Err(AelleError::Json { .. })));
    assert!(matches!(
        AelleModel::load(&dir.path().join("missing.safetensors")),
        Err(AelleError::Io { .. })
    ));
}

/// The chance-level control: final losses permuted across networks, so spectra carry no
/// information about the labels. A larger population with 40 % test networks (800) keeps the
/// AUROC's sampling sd near 0.02, so the 0.5 +- 0.1 band is a 5-sd check. Same numbers as
/// `cargo run -p aelle --release --example synthetic_benchmark -- 2000 --defaults --shuffled
/// --test-fraction=0.4`.
#[test]
fn shuffled_labels_give_chance_level_classifiers() {
    let pop = two_factor_population(&SyntheticConfig {
        networks: 2000,
        non_finite_rows: NON_FINITE_ROWS,
        seed: 42,
        ..SyntheticConfig::default()
    })
    .unwrap();
    let ids: Vec<&String> = pop.performance_factor.keys().collect();
    let mut shuffled = ids.clone();
    shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(99));
    let final_of: BTreeMap<&str, f64> =
        pop.rows.iter().map(|r| (r.network_id.as_str(), r.final_loss)).collect();
    let permuted: BTreeMap<&str, f64> =
        ids.iter().zip(&shuffled).map(|(a, b)| (a.as_str(), final_of[b.as_str()])).collect();
    let rows: Vec<_> = pop
        .rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.final_loss = permuted[r.network_id.as_str()];
            r
        })
        .collect();
    let mut config = default_config();
    config.split.test_fraction = 0.4;
    config.embedding.tsne_max_points = 0;
    let run = run_aelle(&rows, &config).unwrap();
    assert_eq!(run.report.tsne_perplexity, None);
    for point in &run.report.evaluations {
        assert!(point.networks.test >= 790, "{:?}", point.networks);
        for kind in [
            ClassifierKind::AellePc1,
            ClassifierKind::AelleLogistic,
            ClassifierKind::AellePredictorHead,
        ] {
            let auroc = classifier(point, kind).auroc.unwrap();
            assert!(
                (auroc - 0.5).abs() <= 0.1,
                "{kind:?} at {:?}: AUROC {auroc} on shuffled labels",
                point.point
            );
        }
    }
}

#[test]
fn runs_are_deterministic_and_seed_dependent() {
    let pop = two_factor_population(&SyntheticConfig {
        networks: 120,
        fractions: vec![0.0, 0.5, 1.0],
        seed: 3,
        ..SyntheticConfig::default()
    })
    .unwrap();
    let mut config = test_config();
    config.features.resampling = ResamplingMethod::MidpointDoubling; // 32 and 64 -> 64
    config.embedding.tsne_max_points = 100;
    let a = run_aelle(&pop.rows, &config).unwrap();
    let b = run_aelle(&pop.rows, &config).unwrap();
    let json = |r: &AelleRun| serde_json::to_string(&r.report).unwrap();
    assert_eq!(json(&a), json(&b));
    config.seed += 1;
    let c = run_aelle(&pop.rows, &config).unwrap();
    assert_ne!(json(&a), json(&c));
    assert_ne!(a.report.split, c.report.split);
}

#[test]
fn bad_tables_and_configs_are_typed_errors() {
    let pop = two_factor_population(&SyntheticConfig {
        networks: 30,
        fractions: vec![0.0, 1.0],
        seed: 1,
        ..SyntheticConfig::default()
    })
    .unwrap();
    let mut config = test_config();
    // 32 -> 96 is not a power-of-two multiple.
    config.features.length = 96;
    config.features.resampling = ResamplingMethod::MidpointDoubling;
    assert!(matches!(
        run_aelle(&pop.rows, &config),
        Err(AelleError::NotPowerOfTwoMultiple { from: 32, to: 96 })
    ));
    assert!(matches!(run_aelle(&[], &test_config()), Err(AelleError::TooFew { .. })));
    let mut rows = pop.rows.clone();
    rows[1].group = "other".into();
    assert!(matches!(run_aelle(&rows, &test_config()), Err(AelleError::InvalidRow { .. })));
    let mut config = test_config();
    config.autoencoder.alpha_stages.clear();
    assert!(matches!(run_aelle(&pop.rows, &config), Err(AelleError::InvalidConfig { .. })));
    // Every spectrum non-finite: nothing to learn from, reported as an error.
    let all_nan: Vec<_> = pop
        .rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.spectrum[0] = f64::NAN;
            r
        })
        .collect();
    assert!(run_aelle(&all_nan, &test_config()).is_err());
}

#[test]
fn epoch_points_and_missing_checkpoints_are_reported_not_fatal() {
    let pop = two_factor_population(&SyntheticConfig {
        networks: 150,
        fractions: vec![0.0, 0.1, 0.5, 1.0],
        seed: 5,
        ..SyntheticConfig::default()
    })
    .unwrap();
    let mut config = test_config();
    config.embedding.tsne_max_points = 0;
    config.evaluation.points = vec![
        EvaluationPoint::Epoch(1),
        EvaluationPoint::Fraction(0.12), // nearest checkpoint 0.1, within 0.05
        EvaluationPoint::Fraction(0.3),  // no checkpoint within 0.05
        EvaluationPoint::Epoch(9),       // no such epoch
    ];
    let run = run_aelle(&pop.rows, &config).unwrap();
    let e = &run.report.evaluations;
    assert!(e[0].skipped.is_none() && e[1].skipped.is_none());
    // Epoch 1 is fraction 0.1: both points select the same rows, so the same numbers.
    assert_eq!(e[0].networks, e[1].networks);
    assert_eq!(e[0].classifiers, e[1].classifiers);
    for missing in &e[2..] {
        assert_eq!(missing.networks.test, 0);
        assert!(missing.skipped.as_deref().is_some_and(|s| s.contains("expected")));
        assert!(missing.classifiers.is_empty());
    }
}
