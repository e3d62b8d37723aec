//! Householder QR invariants over awkward sizes, f32 and f64, against a slow obviously-correct
//! twin (modified Gram-Schmidt in f64).
//!
//! Tolerance rule (named, not bare numbers): for a backward-stable QR of a `D x k` block in
//! precision `eps`, `||Q^T Q - I||_max <= C D eps` and `||Q R - Z||_max / ||Z||_max <= C D eps`
//! with `C = 4`; comparisons with the twin on well-conditioned blocks (cond < 10) use
//! `C D eps` on `Q` entries and `C D eps` on `ln R_ii`.

use le_engine::Real;
use le_engine::linalg::qr::{QrWorkspace, orthonormalize_in_place, qr_flops};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

const SIZES: &[usize] = &[1, 2, 3, 63, 64, 65, 127, 128, 257];
const C_BACKWARD: f64 = 4.0;

/// Run `f` at every SIMD level this CPU supports (AVX-512, AVX2 + FMA, baseline): each
/// `QrWorkspace` built inside runs that level's kernels.
fn at_every_level(f: impl Fn()) {
    for level in aelle_support::simd::supported() {
        aelle_support::simd::with_level(level, &f).expect("a supported level");
    }
}

fn tol<T: Real>(d: usize) -> f64 {
    C_BACKWARD * d as f64 * T::epsilon().as_f64()
}

fn gaussian(d: usize, k: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..d * k).map(|_| StandardNormal.sample(&mut rng)).collect()
}

/// Gaussian plus `3 sqrt(D)` on the diagonal: condition number below ~3, so Q and R are
/// well determined and can be compared entry by entry with the twin.
fn well_conditioned(d: usize, k: usize, seed: u64) -> Vec<f64> {
    let mut z = gaussian(d, k, seed);
    let shift = 3.0 * (d as f64).sqrt();
    for c in 0..k {
        z[c * d + c] += if c % 2 == 0 { shift } else { -shift };
    }
    z
}

/// Modified Gram-Schmidt in f64: the slow obviously-correct twin. Returns (Q, R) with
/// `R_ii = ||.|| > 0`.
fn mgs(z: &[f64], d: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let mut q = z.to_vec();
    let mut r = vec![0.0; k * k];
    for i in 0..k {
        let norm = q[i * d..(i + 1) * d].iter().map(|v| v * v).sum::<f64>().sqrt();
        r[i * k + i] = norm;
        for v in &mut q[i * d..(i + 1) * d] {
            *v /= norm;
        }
        for j in i + 1..k {
            let dot: f64 = (0..d).map(|t| q[i * d + t] * q[j * d + t]).sum();
            r[i * k + j] = dot;
            for t in 0..d {
                q[j * d + t] -= dot * q[i * d + t];
            }
        }
    }
    (q, r)
}

struct Check {
    orthonormality: f64,
    reconstruction: f64,
    lower_triangle: f64,
    diag_mismatch: f64,
    min_diag: f64,
}

/// Run our QR on `z` in precision `T`, then measure the invariants in f64.
fn check<T: Real>(z64: &[f64], d: usize, k: usize) -> (Vec<f64>, Vec<f64>, Check) {
    let mut a: Vec<T> = z64.iter().map(|&v| T::from_f64(v)).collect();
    let z: Vec<f64> = a.iter().map(|v| v.as_f64()).collect(); // the exact input seen by T
    let mut logs = vec![0.0; k];
    let mut ws = QrWorkspace::<T>::new(d, k);
    orthonormalize_in_place(&mut a, &mut logs, &mut ws);
    let q: Vec<f64> = a.iter().map(|v| v.as_f64()).collect();
    // R = Q^T Z (exact for Z = Q R with orthonormal Q)
    let mut r = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            r[i * k + j] = (0..d).map(|t| q[i * d + t] * z[j * d + t]).sum();
        }
    }
    let zmax = z.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
    let mut orth = 0.0f64;
    for i in 0..k {
        for j in 0..k {
            let dot: f64 = (0..d).map(|t| q[i * d + t] * q[j * d + t]).sum();
            orth = orth.max((dot - if i == j { 1.0 } else { 0.0 }).abs());
        }
    }
    let mut recon = 0.0f64;
    for j in 0..k {
        for t in 0..d {
            let qr: f64 = (0..=j).map(|i| q[i * d + t] * r[i * k + j]).sum();
            recon = recon.max((qr - z[j * d + t]).abs() / zmax);
        }
    }
    let mut lower = 0.0f64;
    let mut diag_mismatch = 0.0f64;
    let mut min_diag = f64::INFINITY;
    for i in 0..k {
        for j in 0..i {
            lower = lower.max(r[i * k + j].abs() / zmax);
        }
        min_diag = min_diag.min(r[i * k + i]);
        diag_mismatch = diag_mismatch.max((logs[i].exp() - r[i * k + i]).abs() / zmax);
    }
    (
        q,
        logs,
        Check {
            orthonormality: orth,
            reconstruction: recon,
            lower_triangle: lower,
            diag_mismatch,
            min_diag,
        },
    )
}

fn invariants_for<T: Real>() {
    for &d in SIZES {
        let mut ks = vec![d];
        if d > 1 {
            ks.push(d / 2);
            ks.push(1);
        }
        for k in ks {
            let z = gaussian(d, k, (d * 1000 + k) as u64);
            let (_, _, c) = check::<T>(&z, d, k);
            let t = tol::<T>(d);
            let name = format!("{} D={d} k={k} ({})", T::NAME, aelle_support::simd::level_name());
            assert!(c.orthonormality <= t, "{name}: ||Q^TQ - I|| = {:e} > {t:e}", c.orthonormality);
            assert!(c.reconstruction <= t, "{name}: ||QR - Z|| = {:e} > {t:e}", c.reconstruction);
            assert!(
                c.lower_triangle <= t,
                "{name}: R not upper triangular: {:e}",
                c.lower_triangle
            );
            assert!(
                c.diag_mismatch <= t,
                "{name}: exp(log_diag) != diag(Q^T Z): {:e}",
                c.diag_mismatch
            );
            assert!(c.min_diag >= -t, "{name}: negative diag(R): {}", c.min_diag);
        }
    }
}

#[test]
fn qr_invariants_f64() {
    at_every_level(invariants_for::<f64>);
}

#[test]
fn qr_invariants_f32() {
    at_every_level(invariants_for::<f32>);
}

fn matches_twin_for<T: Real>() {
    for &d in SIZES {
        for k in [d, d.div_ceil(3)] {
            let z = well_conditioned(d, k, 7 + d as u64);
            let (q, logs, _) = check::<T>(&z, d, k);
            let zt: Vec<f64> = z.iter().map(|&v| T::from_f64(v).as_f64()).collect();
            let (q_ref, r_ref) = mgs(&zt, d, k);
            let t = 2.0 * tol::<T>(d);
            let qerr = q.iter().zip(&q_ref).fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            let level = aelle_support::simd::level_name();
            assert!(
                qerr <= t,
                "{} D={d} k={k} ({level}): Q differs from MGS by {qerr:e} > {t:e}",
                T::NAME
            );
            for i in 0..k {
                let want = r_ref[i * k + i].ln();
                assert!(
                    (logs[i] - want).abs() <= t,
                    "{} D={d} k={k}: ln R_{i}{i} = {} vs MGS {want}",
                    T::NAME,
                    logs[i]
                );
            }
        }
    }
}

#[test]
fn qr_matches_gram_schmidt_twin_f64() {
    at_every_level(matches_twin_for::<f64>);
}

#[test]
fn qr_matches_gram_schmidt_twin_f32() {
    at_every_level(matches_twin_for::<f32>);
}

#[test]
fn qr_extreme_scales_do_not_overflow() {
    // Entries near the top and bottom of the range exercise the scaled norm.
    for scale in [1e200, 1e-200] {
        let d = 70;
        let z: Vec<f64> = well_conditioned(d, d, 3).iter().map(|v| v * scale).collect();
        let (_, logs, c) = check::<f64>(&z, d, d);
        assert!(c.orthonormality <= tol::<f64>(d), "scale {scale}: {:e}", c.orthonormality);
        let (_, r) = mgs(&z.iter().map(|v| v / scale).collect::<Vec<_>>(), d, d);
        for i in 0..d {
            let want = r[i * d + i].ln() + scale.ln();
            assert!((logs[i] - want).abs() < 1e-10, "scale {scale}: {} vs {want}", logs[i]);
        }
    }
    let d = 33;
    let z: Vec<f64> = well_conditioned(d, d, 4).iter().map(|v| v * 1e25).collect();
    let (_, logs, c) = check::<f32>(&z, d, d);
    assert!(c.orthonormality <= tol::<f32>(d), "f32 at 1e25: {:e}", c.orthonormality);
    assert!(logs.iter().all(|l| l.is_finite()));
}

#[test]
fn qr_reports_dependent_and_non_finite_columns() {
    // Column 1 = 2 * column 0: R_11 = 0 exactly -> ln = -inf (not a panic, not a substitute).
    let d = 5;
    let mut z = gaussian(d, 3, 9);
    for t in 0..d {
        z[d + t] = 2.0 * z[t];
    }
    let mut logs = vec![0.0; 3];
    let mut ws = QrWorkspace::<f64>::new(d, 3);
    orthonormalize_in_place(&mut z, &mut logs, &mut ws);
    assert!(logs[0].is_finite());
    assert!(logs[1] < -30.0, "dependent column must give a (near) zero R_11: {}", logs[1]);

    let mut z = gaussian(d, 2, 10);
    z[3] = f64::NAN;
    let mut logs = vec![0.0; 2];
    let mut ws = QrWorkspace::<f64>::new(d, 2);
    orthonormalize_in_place(&mut z, &mut logs, &mut ws);
    assert!(logs.iter().any(|l| !l.is_finite()), "NaN input must surface: {logs:?}");

    let mut zero = vec![0.0f64; 4];
    let mut logs = vec![0.0; 2];
    let mut ws = QrWorkspace::<f64>::new(2, 2);
    orthonormalize_in_place(&mut zero, &mut logs, &mut ws);
    assert_eq!(logs, vec![f64::NEG_INFINITY, f64::NEG_INFINITY]);
}

#[test]
fn qr_of_upper_triangular_block_keeps_it() {
    // Already triangular with a negative diagonal entry: Q must be diag(+-1) and R_ii = |.|.
    let d = 3;
    let z = vec![2.0, 0.0, 0.0, 1.0, -3.0, 0.0, 5.0, 1.0, 0.5];
    let mut a = z.clone();
    let mut logs = vec![0.0; 3];
    let mut ws = QrWorkspace::<f64>::new(d, d);
    orthonormalize_in_place(&mut a, &mut logs, &mut ws);
    let want = [2.0f64.ln(), 3.0f64.ln(), 0.5f64.ln()];
    for i in 0..3 {
        assert!((logs[i] - want[i]).abs() < 1e-15);
    }
    assert_eq!(a, vec![1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]);
}

#[test]
fn flop_count_formula() {
    assert_eq!(qr_flops(3, 3), 2.0 * 27.0 - 2.0 * 27.0 / 3.0);
}

#[test]
fn every_panel_width_gives_the_same_factorisation() {
    at_every_level(every_panel_width_at_this_level);
}

fn every_panel_width_at_this_level() {
    // Panel widths select different code paths (column-wise trailing update vs compact-WY GEMM,
    // and at width 8 the tiled kernels); all must agree with each other to rounding.
    for &(d, k) in &[(1usize, 1usize), (5, 5), (63, 40), (128, 128), (257, 100)] {
        let z = well_conditioned(d, k, 11 + d as u64);
        let mut results = Vec::new();
        for nb in [1usize, 3, 8, 16, 64] {
            let mut a = z.clone();
            let mut logs = vec![0.0; k];
            let mut ws = QrWorkspace::<f64>::with_panel_width(d, k, nb);
            orthonormalize_in_place(&mut a, &mut logs, &mut ws);
            results.push((nb, a, logs));
        }
        let (_, a0, l0) = &results[0];
        for (nb, a, l) in &results[1..] {
            let qerr = a.iter().zip(a0).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            let lerr = l.iter().zip(l0).fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                qerr <= tol::<f64>(d) && lerr <= tol::<f64>(d),
                "D={d} k={k} nb={nb} ({}): {qerr:e} {lerr:e}",
                aelle_support::simd::level_name()
            );
        }
    }
}

#[test]
fn batched_qr_matches_one_block_at_a_time() {
    use le_engine::linalg::qr::batched::{BatchedQrWorkspace, LANES, orthonormalize_blocks};
    fn run<T: Real>() {
        for &(d, k, n) in &[
            (1usize, 1usize, 1usize),
            (5, 5, 3),
            (17, 9, 16),
            (64, 64, 16),
            (130, 70, 7),
            (128, 128, 16),
        ] {
            assert!(n <= LANES);
            let z: Vec<f64> =
                (0..n).flat_map(|b| well_conditioned(d, k, 1000 + (d * 31 + b) as u64)).collect();
            let mut batched: Vec<T> = z.iter().map(|&v| T::from_f64(v)).collect();
            let mut logs = vec![0.0; n * k];
            let mut ws = BatchedQrWorkspace::<T>::new(d, k);
            orthonormalize_blocks(&mut batched, &mut logs, &mut ws);
            for b in 0..n {
                let mut one: Vec<T> =
                    z[b * d * k..(b + 1) * d * k].iter().map(|&v| T::from_f64(v)).collect();
                let mut l1 = vec![0.0; k];
                let mut w1 = QrWorkspace::<T>::new(d, k);
                orthonormalize_in_place(&mut one, &mut l1, &mut w1);
                let t = 2.0 * tol::<T>(d);
                let qerr = one
                    .iter()
                    .zip(&batched[b * d * k..(b + 1) * d * k])
                    .fold(0.0f64, |m, (x, y)| m.max((x.as_f64() - y.as_f64()).abs()));
                let lerr = l1
                    .iter()
                    .zip(&logs[b * k..(b + 1) * k])
                    .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
                assert!(
                    qerr <= t && lerr <= t,
                    "{} D={d} k={k} block {b} ({}): Q {qerr:e}, logs {lerr:e}",
                    T::NAME,
                    aelle_support::simd::level_name()
                );
            }
        }
    }
    at_every_level(|| {
        run::<f64>();
        run::<f32>();
    });
}
