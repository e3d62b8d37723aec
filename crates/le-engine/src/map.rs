//! What a user supplies: a discrete map or a flow, with its Jacobian or its tangent products.
//!
//! A **discrete map** `x_{t+1} = f_t(x_t)` provides [`DiscreteMap::step`] and at least one of
//! [`DiscreteMap::jacobian`] (the full `D x D` Jacobian, row-major, rows are outputs) or
//! [`DiscreteMap::tangent`] (`Z = J_t(x) Q` for a column-major `D x k` block `Q`, without forming
//! `J`). A **flow** `dx/dt = F(x)` provides the vector field and its Jacobian (or tangent
//! products); [`Rk4`] turns it into the map "one RK4 step of size `dt`", whose tangent map is
//! integrated with the *same* RK4 stages (the exact Jacobian of the discrete RK4 step), not by
//! Euler.
//!
//! All scratch comes from a caller-owned [`MapWorkspace`] that the engine keeps for the whole
//! run, so implementations can avoid allocating per step (resize on first use only).

use crate::linalg::jacobian_times;
use crate::scalar::Real;

/// Scratch handed to every [`DiscreteMap`] / [`Flow`] call. Implementations may resize and use
/// the buffers freely; contents are not preserved between calls.
#[derive(Debug, Default, Clone)]
pub struct MapWorkspace<T: Real> {
    /// Room for a full Jacobian (used by the default [`DiscreteMap::tangent`]).
    pub jac: Vec<T>,
    /// General-purpose scratch.
    pub work: Vec<T>,
    /// More general-purpose scratch.
    pub extra: Vec<T>,
}

impl<T: Real> MapWorkspace<T> {
    /// An empty workspace (buffers grow on first use).
    pub fn new() -> Self {
        Self { jac: Vec::new(), work: Vec::new(), extra: Vec::new() }
    }
}

fn ensure_len<T: Real>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::zero());
    }
}

/// A (possibly time-dependent) discrete dynamical system `x_{t+1} = f_t(x_t)` on `R^D`.
pub trait DiscreteMap<T: Real>: Sync {
    /// State dimension `D`.
    fn dim(&self) -> usize;

    /// `next = f_t(x)` (`x`, `next`: length `D`).
    fn step(&self, t: usize, x: &[T], next: &mut [T], ws: &mut MapWorkspace<T>);

    /// Write the Jacobian `J_t(x)` into `jac` (row-major `D x D`, `jac[i * D + j] =
    /// d f_i / d x_j`) and return `true`; return `false` if this map only provides
    /// [`DiscreteMap::tangent`]. Needed for `J^T Q` (reference orientation) and `ln |det J|`.
    fn jacobian(&self, _t: usize, _x: &[T], _jac: &mut [T], _ws: &mut MapWorkspace<T>) -> bool {
        false
    }

    /// `z = J_t(x) q` for a column-major `D x k` block `q`; return `false` if unavailable.
    /// The default forms the Jacobian with [`DiscreteMap::jacobian`] and multiplies.
    fn tangent(
        &self,
        t: usize,
        x: &[T],
        q: &[T],
        k: usize,
        z: &mut [T],
        ws: &mut MapWorkspace<T>,
    ) -> bool {
        product_via_jacobian(self, t, x, q, k, z, ws, false)
    }

    /// `z = J_t(x)^T q`, the reference code's orientation. The default uses
    /// [`DiscreteMap::jacobian`]; return `false` if unavailable.
    fn tangent_transpose(
        &self,
        t: usize,
        x: &[T],
        q: &[T],
        k: usize,
        z: &mut [T],
        ws: &mut MapWorkspace<T>,
    ) -> bool {
        product_via_jacobian(self, t, x, q, k, z, ws, true)
    }
}

#[allow(clippy::too_many_arguments)]
fn product_via_jacobian<T: Real, M: DiscreteMap<T> + ?Sized>(
    map: &M,
    t: usize,
    x: &[T],
    q: &[T],
    k: usize,
    z: &mut [T],
    ws: &mut MapWorkspace<T>,
    transpose: bool,
) -> bool {
    let d = map.dim();
    let mut jac = std::mem::take(&mut ws.jac);
    ensure_len(&mut jac, d * d);
    let ok = map.jacobian(t, x, &mut jac[..d * d], ws);
    if ok {
        jacobian_times(&jac[..d * d], d, q, k, z, transpose);
    }
    ws.jac = jac;
    ok
}

/// An autonomous flow `dx/dt = F(x)` on `R^D`.
pub trait Flow<T: Real>: Sync {
    /// State dimension `D`.
    fn dim(&self) -> usize;

    /// `dxdt = F(x)`.
    fn vector_field(&self, x: &[T], dxdt: &mut [T]);

    /// Write `DF(x)` (row-major `D x D`) and return `true`, or return `false` if only
    /// [`Flow::tangent`] is provided.
    fn jacobian(&self, _x: &[T], _jac: &mut [T]) -> bool {
        false
    }

    /// `out = DF(x) q` (`q`, `out` column-major `D x k`). Default: via [`Flow::jacobian`], using
    /// `jac_buf` as room for the matrix.
    fn tangent(&self, x: &[T], q: &[T], k: usize, out: &mut [T], jac_buf: &mut Vec<T>) -> bool {
        let d = self.dim();
        ensure_len(jac_buf, d * d);
        if !self.jacobian(x, &mut jac_buf[..d * d]) {
            return false;
        }
        jacobian_times(&jac_buf[..d * d], d, q, k, out, false);
        true
    }
}

/// The discrete map "one classical Runge-Kutta (RK4) step of size `dt`" of a [`Flow`].
///
/// State: `x' = x + dt/6 (k1 + 2 k2 + 2 k3 + k4)`. Tangent: the same stages applied to the
/// variational equation `dQ/dt = DF(x(t)) Q`, i.e. `K1 = DF(x) Q`, `K2 = DF(x2)(Q + dt/2 K1)`,
/// `K3 = DF(x3)(Q + dt/2 K2)`, `K4 = DF(x4)(Q + dt K3)`, `Z = Q + dt/6 (K1 + 2K2 + 2K3 + K4)`,
/// which is exactly the Jacobian of the RK4 step applied to `Q`. Exponents of the flow are the
/// map's exponents divided by `dt`.
#[derive(Debug, Clone)]
pub struct Rk4<F> {
    /// The flow integrated.
    pub flow: F,
    /// Time step.
    pub dt: f64,
}

impl<F> Rk4<F> {
    /// Wrap `flow` with step `dt`.
    pub fn new(flow: F, dt: f64) -> Self {
        Self { flow, dt }
    }
}

impl<T: Real, F: Flow<T>> DiscreteMap<T> for Rk4<F> {
    fn dim(&self) -> usize {
        self.flow.dim()
    }

    fn step(&self, _t: usize, x: &[T], next: &mut [T], ws: &mut MapWorkspace<T>) {
        let d = self.flow.dim();
        let h = T::from_f64(self.dt);
        let half = T::from_f64(0.5) * h;
        let sixth = h / T::from_f64(6.0);
        let two = T::from_f64(2.0);
        ensure_len(&mut ws.work, 2 * d);
        let (xs, kx) = ws.work[..2 * d].split_at_mut(d);
        // next accumulates x + h/6 (k1 + 2k2 + 2k3 + k4)
        self.flow.vector_field(x, kx);
        for i in 0..d {
            next[i] = x[i] + sixth * kx[i];
            xs[i] = x[i] + half * kx[i];
        }
        // stages 2 and 3, each followed by the next stage's point x + c k
        for c in [half, h] {
            self.flow.vector_field(xs, kx);
            for i in 0..d {
                next[i] += sixth * two * kx[i];
                xs[i] = x[i] + c * kx[i];
            }
        }
        self.flow.vector_field(xs, kx);
        for i in 0..d {
            next[i] += sixth * kx[i];
        }
    }

    fn tangent(
        &self,
        _t: usize,
        x: &[T],
        q: &[T],
        k: usize,
        z: &mut [T],
        ws: &mut MapWorkspace<T>,
    ) -> bool {
        let d = self.flow.dim();
        let dk = d * k;
        let h = T::from_f64(self.dt);
        let half = T::from_f64(0.5) * h;
        let sixth = h / T::from_f64(6.0);
        let two = T::from_f64(2.0);
        ensure_len(&mut ws.work, 2 * d + 2 * dk);
        let (xs, rest) = ws.work[..2 * d + 2 * dk].split_at_mut(d);
        let (kx, rest) = rest.split_at_mut(d);
        let (qs, kq) = rest.split_at_mut(dk);
        let jac = &mut ws.jac;
        // stage 1 at x with Q
        if !self.flow.tangent(x, q, k, kq, jac) {
            return false;
        }
        self.flow.vector_field(x, kx);
        for i in 0..dk {
            z[i] = q[i] + sixth * kq[i];
            qs[i] = q[i] + half * kq[i];
        }
        for i in 0..d {
            xs[i] = x[i] + half * kx[i];
        }
        // stages 2 and 3, each followed by the next stage's point (x + c k, Q + c K)
        for c in [half, h] {
            self.flow.tangent(xs, qs, k, kq, jac);
            self.flow.vector_field(xs, kx);
            for i in 0..dk {
                z[i] += sixth * two * kq[i];
                qs[i] = q[i] + c * kq[i];
            }
            for i in 0..d {
                xs[i] = x[i] + c * kx[i];
            }
        }
        // stage 4
        self.flow.tangent(xs, qs, k, kq, jac);
        for i in 0..dk {
            z[i] += sixth * kq[i];
        }
        true
    }

    /// The RK4 step's Jacobian, obtained by applying [`Rk4::tangent`](DiscreteMap::tangent) to
    /// the identity.
    fn jacobian(&self, t: usize, x: &[T], jac: &mut [T], ws: &mut MapWorkspace<T>) -> bool {
        let d = self.flow.dim();
        let mut eye = std::mem::take(&mut ws.extra);
        ensure_len(&mut eye, d * d);
        for (i, e) in eye[..d * d].iter_mut().enumerate() {
            *e = if i % (d + 1) == 0 { T::one() } else { T::zero() };
        }
        // column-major J (column j = J e_j) ...
        let ok = self.tangent(t, x, &eye[..d * d], d, jac, ws);
        ws.extra = eye;
        if ok {
            // ... transposed in place to row-major
            for i in 0..d {
                for j in i + 1..d {
                    jac.swap(i * d + j, j * d + i);
                }
            }
        }
        ok
    }
    // `tangent_transpose`: the trait's default (through the RK4 step's Jacobian above).
}
