//! The portable (baseline x86-64, no FMA) kernels give the same QR as the dispatched
//! AVX-512/AVX2 ones. A separate test binary, because the instruction-set choice is made once
//! per process from `LE_ENGINE_SIMD`.

use aelle_support::simd::level_name;
use le_engine::linalg::qr::{QrWorkspace, orthonormalize_in_place};

#[test]
fn baseline_kernels_match_the_reference_result() {
    // SAFETY: the only test of this binary, run before any other thread reads the environment.
    unsafe { std::env::set_var("LE_ENGINE_SIMD", "baseline") };
    assert_eq!(level_name(), "baseline");
    for &(d, k) in &[(3usize, 3usize), (64, 64), (130, 70)] {
        // deterministic, well-conditioned input
        let mut z: Vec<f64> =
            (0..d * k).map(|i| (((i * 7919) % 1009) as f64 / 1009.0) - 0.5).collect();
        for c in 0..k {
            z[c * d + c] += 2.0 * (d as f64).sqrt();
        }
        let mut a = z.clone();
        let mut logs = vec![0.0; k];
        let mut ws = QrWorkspace::<f64>::new(d, k);
        orthonormalize_in_place(&mut a, &mut logs, &mut ws);
        // Q^T Q = I and Q^T Z upper triangular with diagonal exp(logs)
        for i in 0..k {
            for j in 0..k {
                let qq: f64 = (0..d).map(|t| a[i * d + t] * a[j * d + t]).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((qq - want).abs() < 1e-12, "D={d}: Q^TQ[{i},{j}] = {qq}");
                let r: f64 = (0..d).map(|t| a[i * d + t] * z[j * d + t]).sum();
                if i > j {
                    assert!(r.abs() < 1e-11, "D={d}: R[{i},{j}] = {r}");
                } else if i == j {
                    assert!(
                        (r - logs[i].exp()).abs() < 1e-11 * r.abs().max(1.0),
                        "D={d}: R[{i},{i}]"
                    );
                }
            }
        }
    }
}
