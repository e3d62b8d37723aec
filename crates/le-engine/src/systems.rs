//! Built-in reference systems with known spectra (`METHOD.md` section 7).
//!
//! | system | map / flow | standard parameters | known exponents (nats) |
//! | --- | --- | --- | --- |
//! | [`LinearMap`] | `x' = A x` | `A = diag(1.1, 0.8)` | `ln |eig A|` for normal `A` (exact) |
//! | [`Logistic`] | `x' = r x (1 - x)` | `r = 4` | `ln 2` |
//! | [`Henon`] | `(x, y)' = (1 - a x^2 + y, b x)` | `a = 1.4, b = 0.3` | `0.41922, -1.62319`, sum `ln b` |
//! | [`CatMap`] | `x' = [[2, 1], [1, 1]] x mod 1` | — | `+-ln((3 + sqrt 5) / 2) = +-0.9624236501` |
//! | [`Lorenz63`] | flow | `sigma = 10, rho = 28, beta = 8/3` | `0.9056, 0, -14.5723` |
//! | [`TanhRnn`] | `h' = tanh(g W h)`, `W ~ N(0, 1/N)` | — | `ln |eig(g W)|` as `h -> 0` for `g < 1` |

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use crate::map::{DiscreteMap, Flow, MapWorkspace};
use crate::scalar::Real;

/// `x' = A x` with a constant `D x D` matrix `A` (row-major).
#[derive(Debug, Clone)]
pub struct LinearMap {
    /// Dimension `D`.
    pub d: usize,
    /// Row-major `D x D`.
    pub a: Vec<f64>,
}

impl LinearMap {
    /// A diagonal map `diag(values)`.
    pub fn diagonal(values: &[f64]) -> Self {
        let d = values.len();
        let mut a = vec![0.0; d * d];
        for (i, &v) in values.iter().enumerate() {
            a[i * d + i] = v;
        }
        Self { d, a }
    }
}

impl<T: Real> DiscreteMap<T> for LinearMap {
    fn dim(&self) -> usize {
        self.d
    }
    fn step(&self, _t: usize, x: &[T], next: &mut [T], _ws: &mut MapWorkspace<T>) {
        for (i, n) in next.iter_mut().enumerate() {
            let mut s = T::zero();
            for (j, &xj) in x.iter().enumerate() {
                s += T::from_f64(self.a[i * self.d + j]) * xj;
            }
            *n = s;
        }
    }
    fn jacobian(&self, _t: usize, _x: &[T], jac: &mut [T], _ws: &mut MapWorkspace<T>) -> bool {
        for (j, &a) in jac.iter_mut().zip(&self.a) {
            *j = T::from_f64(a);
        }
        true
    }
}

/// The logistic map `x' = r x (1 - x)` on `[0, 1]`.
///
/// Guard: at `r = 4` the floating-point orbit can land exactly on 1 (through the critical point
/// 1/2) and then stick at the repelling fixed point 0, which the real orbit never does. A step
/// that lands exactly on 0 or 1 is therefore moved to the nearest interior number (a change of
/// one unit in the last place, far below the noise rounding already adds every step).
#[derive(Debug, Clone, Copy)]
pub struct Logistic {
    /// Growth parameter (4: fully chaotic, exponent `ln 2`).
    pub r: f64,
}

impl Default for Logistic {
    fn default() -> Self {
        Self { r: 4.0 }
    }
}

impl<T: Real> DiscreteMap<T> for Logistic {
    fn dim(&self) -> usize {
        1
    }
    fn step(&self, _t: usize, x: &[T], next: &mut [T], _ws: &mut MapWorkspace<T>) {
        let r = T::from_f64(self.r);
        let mut y = r * x[0] * (T::one() - x[0]);
        if y == T::zero() {
            y = T::epsilon() * T::epsilon();
        } else if y == T::one() {
            y = T::one() - T::epsilon() / T::from_f64(2.0);
        }
        next[0] = y;
    }
    fn jacobian(&self, _t: usize, x: &[T], jac: &mut [T], _ws: &mut MapWorkspace<T>) -> bool {
        jac[0] = T::from_f64(self.r) * (T::one() - T::from_f64(2.0) * x[0]);
        true
    }
}

/// The Henon map `(x, y) -> (1 - a x^2 + y, b x)`; `det J = -b`, so the exponents sum to
/// `ln b` exactly.
#[derive(Debug, Clone, Copy)]
pub struct Henon {
    /// Quadratic coefficient `a`.
    pub a: f64,
    /// Contraction `b` (`det J = -b`).
    pub b: f64,
}

impl Default for Henon {
    fn default() -> Self {
        Self { a: 1.4, b: 0.3 }
    }
}

impl<T: Real> DiscreteMap<T> for Henon {
    fn dim(&self) -> usize {
        2
    }
    fn step(&self, _t: usize, x: &[T], next: &mut [T], _ws: &mut MapWorkspace<T>) {
        let (a, b) = (T::from_f64(self.a), T::from_f64(self.b));
        next[0] = T::one() - a * x[0] * x[0] + x[1];
        next[1] = b * x[0];
    }
    fn jacobian(&self, _t: usize, x: &[T], jac: &mut [T], _ws: &mut MapWorkspace<T>) -> bool {
        let (a, b) = (T::from_f64(self.a), T::from_f64(self.b));
        jac[0] = -T::from_f64(2.0) * a * x[0];
        jac[1] = T::one();
        jac[2] = b;
        jac[3] = T::zero();
        true
    }
}

/// Arnold's cat map `x' = [[2, 1], [1, 1]] x mod 1` on the 2-torus.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatMap;

impl<T: Real> DiscreteMap<T> for CatMap {
    fn dim(&self) -> usize {
        2
    }
    fn step(&self, _t: usize, x: &[T], next: &mut [T], _ws: &mut MapWorkspace<T>) {
        let two = T::from_f64(2.0);
        let u = two * x[0] + x[1];
        let v = x[0] + x[1];
        next[0] = u - u.floor();
        next[1] = v - v.floor();
    }
    fn jacobian(&self, _t: usize, _x: &[T], jac: &mut [T], _ws: &mut MapWorkspace<T>) -> bool {
        jac.copy_from_slice(&[T::from_f64(2.0), T::one(), T::one(), T::one()]);
        true
    }
}

/// The Lorenz-63 flow `x' = sigma (y - x)`, `y' = x (rho - z) - y`, `z' = x y - beta z`.
#[derive(Debug, Clone, Copy)]
pub struct Lorenz63 {
    /// Prandtl number `sigma`.
    pub sigma: f64,
    /// Rayleigh number `rho`.
    pub rho: f64,
    /// Geometry factor `beta`.
    pub beta: f64,
}

impl Default for Lorenz63 {
    fn default() -> Self {
        Self { sigma: 10.0, rho: 28.0, beta: 8.0 / 3.0 }
    }
}

impl<T: Real> Flow<T> for Lorenz63 {
    fn dim(&self) -> usize {
        3
    }
    fn vector_field(&self, x: &[T], dxdt: &mut [T]) {
        let (s, r, b) = (T::from_f64(self.sigma), T::from_f64(self.rho), T::from_f64(self.beta));
        dxdt[0] = s * (x[1] - x[0]);
        dxdt[1] = x[0] * (r - x[2]) - x[1];
        dxdt[2] = x[0] * x[1] - b * x[2];
    }
    fn jacobian(&self, x: &[T], jac: &mut [T]) -> bool {
        let (s, r, b) = (T::from_f64(self.sigma), T::from_f64(self.rho), T::from_f64(self.beta));
        let o = T::one();
        let z = T::zero();
        jac.copy_from_slice(&[-s, s, z, r - x[2], -o, -x[0], x[1], x[0], -b]);
        true
    }
}

/// The random tanh network `h' = tanh(g W h)` with `W_ij ~ N(0, 1/N)` (seeded ChaCha8), the
/// classic model of Sompolinsky, Crisanti and Sommers. For `g < 1` the orbit decays to
/// `h = 0`, where the Jacobian is `g W`, so the spectrum is `ln |eig(g W)|` (sorted).
#[derive(Debug, Clone)]
pub struct TanhRnn {
    /// Units `N`.
    pub n: usize,
    /// Gain `g`.
    pub g: f64,
    /// Row-major `N x N`, already multiplied by `g`.
    pub gw: Vec<f64>,
}

impl TanhRnn {
    /// `W ~ N(0, 1/N)` drawn from ChaCha8 seeded with `seed`.
    pub fn random(n: usize, g: f64, seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0, 1.0 / (n as f64).sqrt()).expect("finite std");
        let gw = (0..n * n).map(|_| g * normal.sample(&mut rng)).collect();
        Self { n, g, gw }
    }

    /// A network with a given `W` (row-major `N x N`).
    pub fn with_weights(n: usize, g: f64, w: &[f64]) -> Self {
        assert_eq!(w.len(), n * n, "W must be N x N");
        Self { n, g, gw: w.iter().map(|v| g * v).collect() }
    }

    /// A seeded initial state `h_0 ~ N(0, 1)` (ChaCha8).
    pub fn random_state(&self, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..self.n).map(|_| rand_distr::StandardNormal.sample(&mut rng)).collect()
    }
}

impl<T: Real> DiscreteMap<T> for TanhRnn {
    fn dim(&self) -> usize {
        self.n
    }
    fn step(&self, _t: usize, x: &[T], next: &mut [T], _ws: &mut MapWorkspace<T>) {
        let n = self.n;
        for (i, out) in next.iter_mut().enumerate() {
            let mut s = T::zero();
            for (j, &xj) in x.iter().enumerate() {
                s += T::from_f64(self.gw[i * n + j]) * xj;
            }
            *out = s.tanh();
        }
    }
    /// `J = diag(1 - h'^2) g W`.
    fn jacobian(&self, _t: usize, x: &[T], jac: &mut [T], _ws: &mut MapWorkspace<T>) -> bool {
        let n = self.n;
        for i in 0..n {
            let mut s = T::zero();
            for (j, &xj) in x.iter().enumerate() {
                s += T::from_f64(self.gw[i * n + j]) * xj;
            }
            let h = s.tanh();
            let gain = T::one() - h * h;
            for j in 0..n {
                jac[i * n + j] = gain * T::from_f64(self.gw[i * n + j]);
            }
        }
        true
    }
}
