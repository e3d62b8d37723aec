//! Tests of the model: training, early stopping, save and load.

use super::network::*;
use super::*;
use crate::matrix::Matrix;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn toy_data(n: usize, l: usize, seed: u64) -> (Matrix, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for _ in 0..n {
        let a: f64 = rng.random_range(-1.0..1.0);
        rows.push(
            (0..l)
                .map(|j| a * (j as f64 / l as f64 - 0.5) + 0.01 * rng.random_range(-1.0..1.0))
                .collect(),
        );
        y.push(0.5 + 0.2 * a);
    }
    (Matrix::from_rows(&rows).unwrap(), y)
}

fn quick_config() -> AutoencoderConfig {
    AutoencoderConfig {
        latent_dim: 4,
        alpha_stages: vec![
            AlphaStage { alpha: 1.0, epochs: 5 },
            AlphaStage { alpha: 2.0, epochs: 10 },
        ],
        batch_size: 16,
        patience: Some(3),
        ..AutoencoderConfig::default()
    }
}

#[test]
fn training_is_deterministic_and_learns() {
    let (x, y) = toy_data(96, 16, 1);
    let (vx, vy) = toy_data(32, 16, 2);
    let cfg = quick_config();
    let (m1, h1) = AutoencoderPredictor::train(&x, &y, &vx, &vy, &cfg, 9).unwrap();
    let (m2, h2) = AutoencoderPredictor::train(&x, &y, &vx, &vy, &cfg, 9).unwrap();
    assert_eq!(h1, h2);
    assert_eq!(m1.predict_final_loss(&vx).unwrap(), m2.predict_final_loss(&vx).unwrap());
    let first = &h1.epochs[0];
    let best = &h1.epochs[h1.best_epoch];
    assert!(best.validation_objective < first.validation_objective, "{h1:?}");
    let (m3, _) = AutoencoderPredictor::train(&x, &y, &vx, &vy, &cfg, 10).unwrap();
    assert_ne!(m1.encode(&vx).unwrap(), m3.encode(&vx).unwrap());
}

/// 16 training and 32 validation rows (L = 16) with random targets unrelated to the
/// inputs: `(x, y, vx, vy)`, on which the predictor overfits.
fn overfitting_data() -> (Matrix, Vec<f64>, Matrix, Vec<f64>) {
    let (x, _) = toy_data(16, 16, 3);
    let (vx, _) = toy_data(32, 16, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let y: Vec<f64> = (0..16).map(|_| rng.random_range(0.0..1.0)).collect();
    let vy: Vec<f64> = (0..32).map(|_| rng.random_range(0.0..1.0)).collect();
    (x, y, vx, vy)
}

#[test]
fn best_weights_are_a_deep_copy_not_the_final_ones() {
    // Few training rows with unrelated targets: the predictor overfits, so the validation
    // objective bottoms out early and the final weights are not the best ones.
    let (x, y, vx, vy) = overfitting_data();
    // No patience: every epoch runs, then the best snapshot is restored.
    let cfg = AutoencoderConfig {
        patience: None,
        learning_rate: 0.01,
        alpha_stages: vec![
            AlphaStage { alpha: 1.0, epochs: 20 },
            AlphaStage { alpha: 2.0, epochs: 100 },
        ],
        ..quick_config()
    };
    let (model, history) = AutoencoderPredictor::train(&x, &y, &vx, &vy, &cfg, 5).unwrap();
    // Recompute the validation objective of the restored weights; it must equal the best
    // recorded one, whichever epoch that was.
    let f = model.forward_matrix(&vx).unwrap();
    let vall: Vec<usize> = (0..vx.rows()).collect();
    let xt = matrix_to_tensor(&vx, &vall).unwrap();
    let yt: Vec<f32> =
        vy.iter().map(|v| ((v - model.target_mean) / model.target_scale) as f32).collect();
    let yt = Tensor::from_vec(yt, vy.len(), &Device::Cpu).unwrap();
    let rec = f64::from(
        norm_loss(&(&f.reconstruction - &xt).unwrap(), LossNorm::L1)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    );
    let pred = f64::from(
        norm_loss(&(&f.prediction - &yt).unwrap(), LossNorm::L2)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
    );
    let objective = rec + 2.0 * pred;
    assert!(
        (objective - history.best_validation_objective).abs() < 1e-9,
        "{objective} vs {}",
        history.best_validation_objective
    );
    // The setup must make the best epoch differ from the last one, otherwise this test
    // could not tell a deep copy from the reference's aliasing bug.
    let last = history.epochs.last().unwrap().validation_objective;
    assert_ne!(history.best_epoch + 1, history.epochs.len());
    assert!((last - objective).abs() > 1e-7, "final {last} vs restored {objective}");
}

#[test]
fn patience_stops_only_in_the_last_stage() {
    // Same overfitting setup as above: the objective stalls early.
    let (x, y, vx, vy) = overfitting_data();
    let cfg = AutoencoderConfig {
        patience: Some(5),
        learning_rate: 0.01,
        alpha_stages: vec![
            AlphaStage { alpha: 1.0, epochs: 60 },
            AlphaStage { alpha: 2.0, epochs: 100 },
        ],
        ..quick_config()
    };
    let (_, h) = AutoencoderPredictor::train(&x, &y, &vx, &vy, &cfg, 5).unwrap();
    assert!(h.stopped_early, "{} epochs", h.epochs.len());
    // The first stage always runs in full, and the last gets at least `patience` epochs.
    assert!(h.epochs.len() >= 60 + 5 && h.epochs.len() < 160, "{}", h.epochs.len());
    assert!(h.epochs[..60].iter().all(|e| e.stage == 0));
}

#[test]
fn host_inference_matches_the_candle_forward_and_is_batch_invariant() {
    let (x, y) = toy_data(64, 16, 5);
    let (model, _) = AutoencoderPredictor::train(&x, &y, &x, &y, &quick_config(), 1).unwrap();
    let fast = model.forward_matrix(&x).unwrap();
    let fast_latent = tensor_to_matrix(&fast.latent).unwrap();
    let fast_recon = tensor_to_matrix(&fast.reconstruction).unwrap();
    let fast_pred: Vec<f32> = fast.prediction.to_vec1().unwrap();
    let (latent, recon, pred) = model.host_forward(&x).unwrap();
    // f32 GEMM vs f64 loops: relative 1e-5 plus absolute 1e-5 (sums of <= 16 terms of O(1)).
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 + 1e-5 * b.abs();
    assert!(latent.data().iter().zip(fast_latent.data()).all(|(a, b)| close(*a, *b)));
    assert!(recon.data().iter().zip(fast_recon.data()).all(|(a, b)| close(*a, *b)));
    assert!(pred.iter().zip(&fast_pred).all(|(a, b)| close(*a, f64::from(*b))));
    // One row alone gives bit-identical results to the same row inside the batch.
    for i in [0, 17, 63] {
        let single = model.predict_final_loss(&x.select_rows(&[i])).unwrap();
        assert_eq!(single[0], model.predict_final_loss(&x).unwrap()[i]);
    }
}

#[test]
fn loss_norms_are_mean_absolute_and_mean_squared_error() {
    let d = Tensor::from_vec(vec![1.0f32, -3.0, 0.0, 2.0], 4, &Device::Cpu).unwrap();
    let l1 = norm_loss(&d, LossNorm::L1).unwrap().to_scalar::<f32>().unwrap();
    let l2 = norm_loss(&d, LossNorm::L2).unwrap().to_scalar::<f32>().unwrap();
    assert_eq!((l1, l2), (1.5, 3.5));
}

#[test]
fn poster_norms_train_and_differ_from_the_code_norms() {
    let (x, y) = toy_data(64, 16, 6);
    let code = quick_config();
    let poster = AutoencoderConfig {
        reconstruction_norm: LossNorm::L2,
        prediction_norm: LossNorm::L1,
        ..quick_config()
    };
    let (_, h_code) = AutoencoderPredictor::train(&x, &y, &x, &y, &code, 2).unwrap();
    let (m, h_poster) = AutoencoderPredictor::train(&x, &y, &x, &y, &poster, 2).unwrap();
    assert_ne!(h_code.epochs[0].validation_objective, h_poster.epochs[0].validation_objective);
    assert!(h_poster.best_validation_objective < h_poster.epochs[0].validation_objective);
    assert!(m.predict_final_loss(&x).unwrap().iter().all(|v| v.is_finite()));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let (x, y) = toy_data(8, 8, 1);
    let cfg = quick_config();
    assert!(matches!(
        AutoencoderPredictor::train(&x, &y[..4], &x, &y, &cfg, 0),
        Err(AelleError::ShapeMismatch { .. })
    ));
    let bad = AutoencoderConfig { dropout: 1.0, ..cfg.clone() };
    assert!(matches!(
        AutoencoderPredictor::train(&x, &y, &x, &y, &bad, 0),
        Err(AelleError::InvalidConfig { .. })
    ));
    let mut yn = y.clone();
    yn[2] = f64::NAN;
    assert!(matches!(
        AutoencoderPredictor::train(&x, &yn, &x, &y, &cfg, 0),
        Err(AelleError::NonFinite { .. })
    ));
    let (model, _) = AutoencoderPredictor::train(&x, &y, &x, &y, &cfg, 0).unwrap();
    assert!(model.encode(&Matrix::zeros(2, 5)).is_err());
}
