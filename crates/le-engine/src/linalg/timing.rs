//! The reference rate every speed claim of the project is set against: the GEMM of the `gemm`
//! crate (the engine's own GEMM), measured in the same run on the same machine, and the timing
//! rule the benchmarks share.

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use crate::scalar::Real;

/// Best-of-three mean time per call of `f` in seconds, each of the three repetitions running
/// for at least `min` (after one untimed call that warms caches and lazy initialisation).
pub fn time_per_call(min: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        let mut n = 0u64;
        while start.elapsed() < min {
            f();
            n += 1;
        }
        best = best.min(start.elapsed().as_secs_f64() / n as f64);
    }
    best
}

/// `n` standard-normal values in precision `T` (ChaCha8 seeded with `seed`).
pub fn random_normal<T: Real>(n: usize, seed: u64) -> Vec<T> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let g: f64 = StandardNormal.sample(&mut rng);
            T::from_f64(g)
        })
        .collect()
}

/// The GEMM rate in GFLOP/s (`2 n^3` flops per call) of `C += A B` on `n x n` column-major
/// matrices with the given parallelism, timed by [`time_per_call`].
pub fn gemm_rate<T: Real>(n: usize, par: gemm::Parallelism, min: Duration) -> f64 {
    let a = random_normal::<T>(n * n, 1);
    let b = random_normal::<T>(n * n, 2);
    let mut c = vec![T::zero(); n * n];
    let t = time_per_call(min, || unsafe {
        // SAFETY: all three matrices are n x n column-major with the strides given.
        gemm::gemm(
            n,
            n,
            n,
            c.as_mut_ptr(),
            n as isize,
            1,
            false,
            a.as_ptr(),
            n as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            par,
        );
    });
    2.0 * (n as f64).powi(3) / t / 1e9
}
