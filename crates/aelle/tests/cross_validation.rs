//! Cross-validation, its controls and transfer on the synthetic two-factor population, whose
//! truth is known: the performance factor `f1` alone sets the final loss; the spectrum carries
//! all of `f1`, the hyperparameter `knob` part of it (correlation 0.6).

mod common;

use std::collections::BTreeSet;

use aelle::crossval::{CrossValidationReport, PointSummary, ScoredRow};
use aelle::metrics::auroc;
use aelle::synthetic::{SyntheticConfig, SyntheticPopulation, two_factor_population};
use aelle::{
    AelleConfig, ClassifierKind, CrossValidationConfig, PretrainedAelle, cross_validate, transfer,
};
use common::test_config;

fn population(networks: usize, seed: u64, lengths: (usize, usize)) -> SyntheticPopulation {
    two_factor_population(&SyntheticConfig {
        networks,
        seed,
        groups: vec![("arch-a".into(), lengths.0), ("arch-b".into(), lengths.1)],
        ..SyntheticConfig::default()
    })
    .unwrap()
}

fn config(folds: usize, repeats: usize) -> AelleConfig {
    let mut c = test_config();
    c.cross_validation =
        CrossValidationConfig { folds, repeats, bootstrap_resamples: 500, ..Default::default() };
    c
}

fn auroc_of(p: &PointSummary, k: ClassifierKind) -> aelle::crossval::Estimate {
    p.classifiers[k.index()].auroc.unwrap_or_else(|| panic!("{k:?}: no AUROC"))
}

/// The oracle AUROC: the true factor `-f1` as the score against the population label.
fn oracle_auroc(pop: &SyntheticPopulation, report: &CrossValidationReport) -> f64 {
    let score: Vec<f64> = report.networks.iter().map(|id| -pop.performance_factor[id]).collect();
    let finals: Vec<f64> = report
        .networks
        .iter()
        .map(|id| pop.rows.iter().find(|r| &r.network_id == id).unwrap().final_loss)
        .collect();
    let labels: Vec<bool> = finals.iter().map(|&f| f < report.label_threshold).collect();
    auroc(&score, &labels).unwrap().unwrap()
}

#[test]
fn intervals_cover_the_planted_effect_and_the_control_covers_chance() {
    let pop = population(300, 3, (32, 64));
    let report = cross_validate(&pop.rows, &config(5, 2)).unwrap();
    assert_eq!(report.networks.len(), 300);

    // Every network is held out exactly once per repeat, and scored out of fold once.
    for r in 0..2 {
        let mut seen = BTreeSet::new();
        for f in report.folds.iter().filter(|f| f.repeat == r) {
            assert!((58..=62).contains(&f.held_out.len()), "fold size {}", f.held_out.len());
            assert_eq!(f.fitted_networks, 300 - f.held_out.len());
            for id in &f.held_out {
                assert!(seen.insert(id.clone()), "{id} held out twice in repeat {r}");
            }
        }
        assert_eq!(seen.len(), 300);
        let oof = report.out_of_fold.iter().find(|o| o.repeat == r && o.point_index == 0).unwrap();
        assert!(oof.scores.iter().all(Option::is_some));
    }

    let oracle = oracle_auroc(&pop, &report);
    for p in &report.points {
        let aelle = auroc_of(p, ClassifierKind::AelleLogistic);
        let chance = auroc_of(p, ClassifierKind::ShuffledLabels);
        let hyper = auroc_of(p, ClassifierKind::Hyperparameters);
        eprintln!(
            "{:?}: oracle {oracle:.3}, AeLLE {}, PC1 {}, hyper {}, shuffled {}, loss {}",
            p.point,
            aelle.display(3),
            auroc_of(p, ClassifierKind::AellePc1).display(3),
            hyper.display(3),
            chance.display(3),
            auroc_of(p, ClassifierKind::LossBased).display(3)
        );
        // The spectrum carries f1 itself: AeLLE's interval reaches the oracle's AUROC.
        assert!(aelle.high >= oracle - 0.01 && aelle.low > 0.85, "{aelle:?} vs oracle {oracle}");
        // Chance is inside the shuffled-label control's interval, and the interval is honest
        // (not degenerate).
        assert!(chance.contains(0.5), "{chance:?}");
        assert!(chance.high - chance.low > 0.05, "{chance:?}");
        // knob carries part of f1: better than chance, worse than the spectrum, and the
        // paired difference says so.
        assert!(hyper.low > 0.55 && hyper.value < aelle.value, "{hyper:?}");
        let diff = p
            .comparisons
            .iter()
            .find(|c| {
                c.better == ClassifierKind::AelleLogistic
                    && c.than == ClassifierKind::Hyperparameters
            })
            .unwrap();
        let d = diff.auroc_difference.unwrap();
        assert!(d.low > 0.0, "{d:?}");
        assert!(diff.fraction_at_or_below_zero.unwrap() < 0.025);
        // Within cells the spectrum still ranks networks (f1 varies within each group).
        let within = p.within_cell.pooled[ClassifierKind::AelleLogistic.index()].auroc.unwrap();
        assert!(within.low > 0.8, "{within:?}");
        assert_eq!(p.within_cell.cells.len(), 2);
    }
    assert!(
        report
            .conclusions
            .iter()
            .any(|c| c.contains("AeLLE logistic is better than hyperparameters only")),
        "{:#?}",
        report.conclusions
    );
}

#[test]
fn thresholds_and_scores_never_see_held_out_networks() {
    // Changing the final losses of the networks held out in one fold must leave that fold's
    // fit (its cuts) and its out-of-fold scores bit for bit unchanged.
    let pop = population(90, 11, (16, 24));
    let mut cfg = config(3, 1);
    cfg.evaluation.points.truncate(2);
    let a = cross_validate(&pop.rows, &cfg).unwrap();
    let fold0 = a.folds.iter().find(|f| f.repeat == 0 && f.fold == 0).unwrap();
    let held: BTreeSet<&String> = fold0.held_out.iter().collect();
    let mut rows = pop.rows.clone();
    for r in rows.iter_mut().filter(|r| held.contains(&r.network_id)) {
        // Reverse the ranking of the held-out networks and move them to another scale.
        r.final_loss = 10.0 / r.final_loss;
    }
    let b = cross_validate(&rows, &cfg).unwrap();
    let fold0_b = b.folds.iter().find(|f| f.repeat == 0 && f.fold == 0).unwrap();
    assert_eq!(fold0.held_out, fold0_b.held_out);
    assert_eq!(fold0.cuts, fold0_b.cuts, "a cut of fold 0 depends on its held-out networks");
    for (oa, ob) in a.out_of_fold.iter().zip(&b.out_of_fold) {
        for (n, id) in a.networks.iter().enumerate() {
            if held.contains(id) {
                assert_eq!(oa.scores[n].map(f64::to_bits), ob.scores[n].map(f64::to_bits), "{id}");
            }
        }
    }
    // The change is real: the other folds, which train on those networks, do change.
    let other =
        |r: &CrossValidationReport| r.folds.iter().find(|f| f.fold == 1).unwrap().cuts.clone();
    assert_ne!(other(&a), other(&b));
}

#[test]
fn a_pretrained_model_transfers_to_another_population_and_size() {
    let cfg = config(5, 1);
    let source = population(200, 21, (32, 64));
    let rows: Vec<&aelle::SpectrumRow> = source.rows.iter().collect();
    let groups = vec!["arch-a".to_string(), "arch-b".to_string()];
    let model = PretrainedAelle::fit(&rows, &groups, &cfg, 5).unwrap();
    // Another seed and other spectrum lengths (a different hidden size).
    let target = population(160, 22, (48, 96));
    let report = transfer(&model, &target.rows, &cfg.cross_validation, &cfg.evaluation, 1).unwrap();
    assert_eq!(report.model_fitted_networks, 200);
    assert_eq!(report.networks.len(), 160);
    assert_eq!(report.points.len(), cfg.evaluation.points.len());
    for p in &report.points {
        let aelle = auroc_of(p, ClassifierKind::AelleLogistic);
        let chance = auroc_of(p, ClassifierKind::ShuffledLabels);
        assert!(aelle.low > 0.85, "{aelle:?}");
        assert!(chance.contains(0.5), "{chance:?}");
        // One repeat: no spread.
        assert_eq!(aelle.repeat_min, aelle.repeat_max);
    }

    // Save and load give the same scores.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    model.save(&path).unwrap();
    let loaded = PretrainedAelle::load(&path).unwrap();
    let view: Vec<ScoredRow<'_>> = target.rows.iter().take(10).map(ScoredRow::of).collect();
    let s1 = model.score(&view, 0).unwrap().unwrap();
    let s2 = loaded.score(&view, 0).unwrap().unwrap();
    for (x, y) in s1.iter().zip(&s2) {
        for (a, b) in x.scores.iter().zip(&y.scores) {
            assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }
    // A readout file that does not match the model is an error naming it.
    std::fs::write(PretrainedAelle::readout_path(&path), "{}").unwrap();
    let err = PretrainedAelle::load(&path).unwrap_err().to_string();
    assert!(err.contains("readout.json"), "{err}");
}
