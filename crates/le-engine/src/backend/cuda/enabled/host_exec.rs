//! Test-only CPU executor of the device program (`ops.rs`): every buffer is a host vector,
//! every GEMM a naive strided-batched product, every kernel a line-by-line transliteration of
//! its CUDA C (`aelle-kernels/src/cu/*.cu`, themselves checked on the CPU emulator), the QR the
//! engine's own. Its spectra must equal the CPU backend's: that checks the program's buffer
//! sizes, GEMM shapes, leading dimensions, strides and offsets, and the order of operations,
//! which the CUDA executor (`population.rs`) follows op by op.

use super::ops::{Buf, GemmShape, Op, View, buffer_lengths, program};
use super::plan::Plan;
use crate::backend::PopulationInputs;
use crate::linalg::qr::{QrWorkspace, orthonormalize_in_place};
use crate::rnn::{CellKind, Network};
use crate::spectrum::Spectrum;

pub(crate) struct HostRun<'a> {
    plan: &'a Plan,
    m: usize,
    bufs: Vec<Vec<f32>>,
    sums: Vec<f64>,
    comps: Vec<f64>,
    status: Vec<i32>,
    status_step: Vec<i32>,
    status_index: Vec<i32>,
    accumulated: Vec<i32>,
    traces: Vec<(Vec<f64>, Vec<f64>)>,
    shared_inputs: bool,
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl<'a> HostRun<'a> {
    pub fn new(plan: &'a Plan, nets: &[Network<f32>], inputs: &PopulationInputs<'_>) -> Self {
        let m = nets.len();
        let shared_inputs = inputs.is_shared();
        let mut bufs = vec![Vec::new(); Buf::slots(plan.layers)];
        for (buf, len) in buffer_lengths(plan, m, shared_inputs) {
            bufs[buf.slot()] = vec![0.0; len];
        }
        let cat = |f: &dyn Fn(&Network<f32>) -> &[f32]| -> Vec<f32> {
            nets.iter().flat_map(|n| f(n).iter().copied()).collect()
        };
        for l in 0..plan.layers {
            bufs[Buf::WIn(l).slot()] = cat(&|n| &n.layers[l].w_in);
            bufs[Buf::BIn(l).slot()] = cat(&|n| &n.layers[l].b_in);
            bufs[Buf::WRec(l).slot()] = cat(&|n| &n.layers[l].w_rec);
            bufs[Buf::BRec(l).slot()] = cat(&|n| &n.layers[l].b_rec);
        }
        bufs[Buf::Inputs.slot()] = if shared_inputs {
            inputs.for_network(0).to_vec()
        } else {
            (0..m).flat_map(|i| inputs.for_network(i).iter().copied()).collect()
        };
        let (b, d, k) = (plan.batch, plan.d, plan.k);
        let q = &mut bufs[Buf::Q.slot()];
        for i in 0..m {
            for bi in 0..b {
                let at = (i * b + bi) * d * k;
                q[at..at + d * k].copy_from_slice(&nets[0].initial_tangent_basis(
                    plan.lstm_state(),
                    k,
                    plan.initial_basis,
                    bi as u64,
                ));
            }
        }
        if plan.transpose {
            let e = &mut bufs[Buf::Eye.slot()];
            for bi in 0..b {
                for i in 0..d {
                    e[(bi * d + i) * d + i] = 1.0;
                }
            }
        }
        let mb = m * b;
        Self {
            plan,
            m,
            bufs,
            sums: vec![0.0; mb * k],
            comps: vec![0.0; mb * k],
            status: vec![0; mb],
            status_step: vec![0; mb],
            status_index: vec![0; mb],
            accumulated: vec![0; mb],
            traces: Vec::new(),
            shared_inputs,
        }
    }

    pub fn execute(mut self) -> Vec<Vec<Spectrum>> {
        for op in program(self.plan, self.m, self.shared_inputs) {
            self.run(&op);
        }
        self.plan.assemble(
            self.m,
            &self.sums,
            &self.comps,
            &self.status,
            &self.status_step,
            &self.status_index,
            &self.accumulated,
            &self.traces,
        )
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Gemm { shape, a, b, c } => self.gemm(&shape, a, b, c),
            Op::SwapState { layer } => {
                self.bufs.swap(Buf::Old(layer).slot(), Buf::New(layer).slot());
            }
            Op::Forward { layer, step } => self.forward(layer, step),
            Op::Tangent { layer, identity, p_in } => self.tangent(layer, identity, p_in),
            Op::SwapQZ => self.bufs.swap(Buf::Q.slot(), Buf::Z.slot()),
            Op::Qr { step, accumulate, in_phase } => self.qr(step, accumulate, in_phase),
            Op::Trace => self.traces.push((self.sums.clone(), self.comps.clone())),
        }
    }

    fn gemm(&mut self, g: &GemmShape, a: View, b: View, c: View) {
        assert!(c.buf != a.buf && c.buf != b.buf, "GEMM output aliases an input");
        let mut cbuf = std::mem::take(&mut self.bufs[c.buf.slot()]);
        let (abuf, bbuf) = (&self.bufs[a.buf.slot()], &self.bufs[b.buf.slot()]);
        for i in 0..g.batch {
            let (ao, bo, co) =
                (a.offset + i * g.stride_a, b.offset + i * g.stride_b, c.offset + i * g.stride_c);
            for col in 0..g.n {
                for row in 0..g.m {
                    let mut acc = 0.0f64;
                    for l in 0..g.k {
                        let av = if g.transa {
                            abuf[ao + row * g.lda + l]
                        } else {
                            abuf[ao + l * g.lda + row]
                        };
                        acc += av as f64 * bbuf[bo + col * g.ldb + l] as f64;
                    }
                    let at = co + col * g.ldc + row;
                    let v = g.alpha * acc as f32;
                    cbuf[at] = if g.beta == 0.0 { v } else { v + g.beta * cbuf[at] };
                }
            }
        }
        self.bufs[c.buf.slot()] = cbuf;
    }

    /// cells.cu `<cell>_forward_f32`.
    fn forward(&mut self, l: usize, step: i32) {
        let p = self.plan;
        let (n, g, s, bsz) = (p.n, p.gates, p.state_rows, p.batch);
        let gn = g * n;
        let (eps, gamma, dt) = p.constants;
        let mut new = std::mem::take(&mut self.bufs[Buf::New(l).slot()]);
        let mut gates = std::mem::take(&mut self.bufs[Buf::Gates(l).slot()]);
        let mut aux = std::mem::take(&mut self.bufs[Buf::Aux(l).slot()]);
        let pre_in = &self.bufs[Buf::PreIn.slot()];
        let pre_rec = &self.bufs[Buf::PreRec.slot()];
        let b_in = &self.bufs[Buf::BIn(l).slot()];
        let b_rec = &self.bufs[Buf::BRec(l).slot()];
        let old = &self.bufs[Buf::Old(l).slot()];
        for mi in 0..self.m {
            for b in 0..bsz {
                let mb = mi * bsz + b;
                let (gcol, scol) = (mb * gn, mb * s);
                let y = |r: usize| {
                    (pre_in[gcol + r] + b_in[mi * gn + r])
                        + (pre_rec[gcol + r] + b_rec[mi * gn + r])
                };
                let mut finite = true;
                for j in 0..n {
                    match p.kind {
                        CellKind::Rnn => {
                            let h = y(j).tanh();
                            new[scol + j] = h;
                            aux[mb * n + j] = 1.0 - h * h;
                            finite &= h.is_finite();
                        }
                        CellKind::Gru => {
                            let pi = |r: usize| pre_in[gcol + r] + b_in[mi * gn + r];
                            let pr = |r: usize| pre_rec[gcol + r] + b_rec[mi * gn + r];
                            let r = sigmoid(pi(j) + pr(j));
                            let zg = sigmoid(pi(n + j) + pr(n + j));
                            let un = pr(2 * n + j);
                            let nn = (pi(2 * n + j) + r * un).tanh();
                            let h = (1.0 - zg) * nn + zg * old[scol + j];
                            new[scol + j] = h;
                            gates[gcol + j] = r;
                            gates[gcol + n + j] = zg;
                            gates[gcol + 2 * n + j] = nn;
                            aux[mb * n + j] = un;
                            finite &= h.is_finite();
                        }
                        CellKind::Lstm => {
                            let ig = sigmoid(y(j));
                            let fg = sigmoid(y(n + j));
                            let gg = y(2 * n + j).tanh();
                            let og = sigmoid(y(3 * n + j));
                            let c = fg * old[scol + n + j] + ig * gg;
                            let tc = c.tanh();
                            let h = og * tc;
                            new[scol + j] = h;
                            new[scol + n + j] = c;
                            gates[gcol + j] = ig;
                            gates[gcol + n + j] = fg;
                            gates[gcol + 2 * n + j] = gg;
                            gates[gcol + 3 * n + j] = og;
                            aux[mb * n + j] = tc;
                            finite &= h.is_finite() && c.is_finite();
                        }
                        CellKind::Asrnn => {
                            let a = y(j).tanh();
                            let h = old[scol + j] + eps * a;
                            new[scol + j] = h;
                            aux[mb * n + j] = 1.0 - a * a;
                            finite &= h.is_finite();
                        }
                        CellKind::Cornn => {
                            let a = y(j).tanh();
                            let (yy, zs) = (old[scol + j], old[scol + n + j]);
                            let z2 = zs + dt * (a - gamma * yy - eps * zs);
                            let y2 = yy + dt * z2;
                            new[scol + n + j] = z2;
                            new[scol + j] = y2;
                            aux[mb * n + j] = 1.0 - a * a;
                            finite &= y2.is_finite() && z2.is_finite();
                        }
                    }
                }
                if !finite && step >= 0 && self.status[mb] == 0 {
                    self.status[mb] = 1;
                    self.status_step[mb] = step;
                }
            }
        }
        self.bufs[Buf::New(l).slot()] = new;
        self.bufs[Buf::Gates(l).slot()] = gates;
        self.bufs[Buf::Aux(l).slot()] = aux;
    }

    /// cells.cu `<cell>_tangent_f32`.
    fn tangent(&mut self, l: usize, identity: bool, with_p_in: bool) {
        let p = self.plan;
        let (n, g, s, bsz, ld) = (p.n, p.gates, p.state_rows, p.batch, p.d);
        let gn = g * n;
        let k = super::ops::tangent_cols_per_sequence(p, identity);
        let q_net_stride = super::ops::tangent_q_net_stride(p, identity);
        let cols = bsz * k;
        let row_off = l * p.tangent_rows;
        let (eps, gamma, dt) = p.constants;
        let (qb, zb) = if identity { (Buf::Eye, Buf::Jall) } else { (Buf::Q, Buf::Z) };
        let mut z = std::mem::take(&mut self.bufs[zb.slot()]);
        let q = &self.bufs[qb.slot()];
        let pp = &self.bufs[Buf::P.slot()];
        let pin = if with_p_in { Some(&self.bufs[Buf::PIn.slot()]) } else { None };
        let old = &self.bufs[Buf::Old(l).slot()];
        let gates = &self.bufs[Buf::Gates(l).slot()];
        let aux = &self.bufs[Buf::Aux(l).slot()];
        for mi in 0..self.m {
            for c in 0..cols {
                let b = c / k;
                let mb = mi * bsz + b;
                let pc = &pp[(mi * cols + c) * gn..(mi * cols + c + 1) * gn];
                let qc = mi * q_net_stride + c * ld + row_off;
                let zc = (mi * cols + c) * ld + row_off;
                let gt = &gates[mb * gn..(mb + 1) * gn];
                for j in 0..n {
                    match p.kind {
                        CellKind::Rnn => z[zc + j] = aux[mb * n + j] * pc[j],
                        CellKind::Gru => {
                            let (da_r, da_z, da_n) = match pin {
                                Some(pi) => {
                                    let o = (mi * cols + c) * gn;
                                    (pi[o + j], pi[o + n + j], pi[o + 2 * n + j])
                                }
                                None => (0.0, 0.0, 0.0),
                            };
                            let (r, zg, nn, un) =
                                (gt[j], gt[n + j], gt[2 * n + j], aux[mb * n + j]);
                            let h = old[mb * s + j];
                            let dr = r * (1.0 - r) * (da_r + pc[j]);
                            let dz = zg * (1.0 - zg) * (da_z + pc[n + j]);
                            let dn = (1.0 - nn * nn) * (da_n + dr * un + r * pc[2 * n + j]);
                            z[zc + j] = (1.0 - zg) * dn + (h - nn) * dz + zg * q[qc + j];
                        }
                        CellKind::Lstm => {
                            let (ig, fg, gg, og) = (gt[j], gt[n + j], gt[2 * n + j], gt[3 * n + j]);
                            let tc = aux[mb * n + j];
                            let c_old = old[mb * s + n + j];
                            let mut dc = fg * (1.0 - fg) * c_old * pc[n + j]
                                + ig * (1.0 - ig) * gg * pc[j]
                                + ig * (1.0 - gg * gg) * pc[2 * n + j];
                            if p.lstm_full {
                                dc += fg * q[qc + n + j];
                            }
                            let dh =
                                og * (1.0 - og) * tc * pc[3 * n + j] + og * (1.0 - tc * tc) * dc;
                            z[zc + j] = dh;
                            if p.lstm_full {
                                z[zc + n + j] = dc;
                            }
                        }
                        CellKind::Asrnn => z[zc + j] = q[qc + j] + eps * aux[mb * n + j] * pc[j],
                        CellKind::Cornn => {
                            let (dy, dzo) = (q[qc + j], q[qc + n + j]);
                            let dz = dzo + dt * (aux[mb * n + j] * pc[j] - gamma * dy - eps * dzo);
                            z[zc + n + j] = dz;
                            z[zc + j] = dy + dt * dz;
                        }
                    }
                }
            }
        }
        self.bufs[zb.slot()] = z;
    }

    /// qr.cu `householder_qr_*_f32`, with the engine's QR.
    fn qr(&mut self, step: usize, accumulate: bool, in_phase: usize) {
        let (d, k) = (self.plan.d, self.plan.k);
        let mut ws = QrWorkspace::<f32>::new(d, k);
        let mut logs = vec![0.0f64; k];
        let q = &mut self.bufs[Buf::Q.slot()];
        for mb in 0..self.m * self.plan.batch {
            if self.status[mb] != 0 {
                continue;
            }
            let block = &mut q[mb * d * k..(mb + 1) * d * k];
            orthonormalize_in_place(block, &mut logs, &mut ws);
            if let Some(i) = logs.iter().position(|l| !l.is_finite()) {
                self.status[mb] = if logs[i] == f64::NEG_INFINITY { 2 } else { 3 };
                self.status_step[mb] = step as i32;
                self.status_index[mb] = i as i32;
                block.fill(0.0);
                continue;
            }
            if accumulate {
                for (c, &x) in logs.iter().enumerate() {
                    let at = mb * k + c;
                    let (s, t) = (self.sums[at], self.sums[at] + x);
                    if s.abs() >= x.abs() {
                        self.comps[at] += (s - t) + x;
                    } else {
                        self.comps[at] += (x - t) + s;
                    }
                    self.sums[at] = t;
                }
                self.accumulated[mb] = in_phase as i32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sample::{CUDA_VS_CPU_FLOOR, comparison_cases, spectrum_difference};
    use crate::backend::{CpuBackend, SpectrumBackend};
    use crate::spectrum::SpectrumStats;

    /// The device program, executed on the host, gives the CPU backend's spectra on every
    /// comparison case, within the tolerances the GPU must meet.
    #[test]
    fn device_program_on_the_host_matches_the_cpu_backend() {
        for (i, case) in comparison_cases().into_iter().enumerate() {
            let (nets, sets) = case.seeded_population(i);
            let inputs = case.population_inputs(&sets);
            let cpu = CpuBackend.population_spectra(&nets, &inputs, &case.cfg).unwrap();
            let plan = Plan::new(&nets, &inputs, &case.cfg).unwrap();
            let spectra = HostRun::new(&plan, &nets, &inputs).execute();
            let stats = spectra.iter().map(|s| SpectrumStats::of(s)).collect();
            let host = crate::rnn::PopulationSpectra { spectra, stats };
            let diff = spectrum_difference(&cpu, &host, CUDA_VS_CPU_FLOOR)
                .unwrap_or_else(|e| panic!("case `{}`: {e}", case.name));
            assert!(diff.within_tolerance(), "case `{}`: {diff:?}", case.name);
            for (c, h) in cpu.spectra.iter().flatten().zip(host.spectra.iter().flatten()) {
                assert_eq!(c.trace.len(), h.trace.len(), "case `{}`: trace", case.name);
                assert_eq!(c.steps, h.steps, "case `{}`", case.name);
            }
        }
    }
}
