use super::*;

fn nets(n: usize) -> Vec<(String, String)> {
    (0..n).map(|i| (format!("n{i:03}"), ["a", "b", "c"][i % 3].to_string())).collect()
}

#[test]
fn folds_are_stratified_balanced_and_seeded() {
    let nets = nets(47);
    let a = stratified_folds(&nets, 5, 1);
    assert_eq!(a, stratified_folds(&nets, 5, 1));
    assert_ne!(a, stratified_folds(&nets, 5, 2));
    assert_eq!(a.len(), 47);
    let sizes: Vec<usize> = (0..5).map(|f| a.values().filter(|&&x| x == f).count()).collect();
    assert!(sizes.iter().all(|&s| s == 9 || s == 10), "{sizes:?}");
    for g in ["a", "b", "c"] {
        let per: Vec<usize> =
            (0..5).map(|f| nets.iter().filter(|(id, gg)| gg == g && a[id] == f).count()).collect();
        let (lo, hi) = (per.iter().min().unwrap(), per.iter().max().unwrap());
        assert!(hi - lo <= 1, "group {g}: {per:?}");
    }
}

#[test]
fn settings_out_of_range_are_rejected() {
    let ok = CrossValidationConfig::default();
    assert!(ok.validate().is_ok());
    for bad in [
        CrossValidationConfig { folds: 1, ..ok.clone() },
        CrossValidationConfig { repeats: 0, ..ok.clone() },
        CrossValidationConfig { inner_validation_fraction: 0.0, ..ok.clone() },
        CrossValidationConfig { inner_validation_fraction: f64::NAN, ..ok.clone() },
        CrossValidationConfig { bootstrap_resamples: 10, ..ok.clone() },
        CrossValidationConfig { confidence: 1.0, ..ok.clone() },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}
