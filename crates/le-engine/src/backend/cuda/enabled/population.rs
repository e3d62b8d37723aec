//! Executes the device program of `ops.rs` with CUDA: `M` networks x `B` sequences advance
//! together, one launch per kernel and step for all of them, and the host synchronises once per
//! batch of networks (after the whole time loop). The same program, executed on the host by the
//! tests (`host_exec.rs`), reproduces the CPU backend's spectra: this file only maps each
//! operation to its launch.

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{CudaSlice, CudaView, CudaViewMut, LaunchConfig, PushKernelArg};

use super::device::{DeviceState, driver_error};
use super::ops::{
    Buf, GemmShape, Op, buffer_lengths, program, tangent_cols_per_sequence, tangent_q_net_stride,
};
use super::plan::Plan;
use super::{CudaOptions, GemmEngine};
use crate::backend::{BackendError, CudaError, PopulationInputs};
use crate::rnn::{CellKind, Network, PopulationSpectra, RnnSpectrumConfig};
use crate::spectrum::{Spectrum, SpectrumStats};

/// Largest `D` the shared-memory QR serves (the block and the reflectors stay in shared memory).
pub(crate) const SHARED_QR_MAX_ROWS: usize = 128;

/// Fraction of the free device memory one batch of networks may use.
const MEMORY_FRACTION: f64 = 0.7;

/// Threads per block of the elementwise kernels.
const ELEMENTWISE_THREADS: u32 = 256;

type DResult<T> = Result<T, CudaError>;

pub(crate) fn population_spectra(
    dev: &DeviceState,
    options: &CudaOptions,
    nets: &[Network<f32>],
    inputs: &PopulationInputs<'_>,
    cfg: &RnnSpectrumConfig,
) -> Result<PopulationSpectra, BackendError> {
    let plan = Plan::new(nets, inputs, cfg)?;
    let gemm = match (options.gemm, dev.blas.is_some()) {
        (GemmEngine::Cublas, false) => {
            return Err(CudaError::LibraryMissing {
                library: "libcublas",
                hint: "put the folder holding libcublas.so.12 and libcublasLt.so.12 on \
                       LD_LIBRARY_PATH, or use GemmEngine::Builtin / Auto",
            }
            .into());
        }
        (GemmEngine::Builtin, _) | (GemmEngine::Auto, false) => GemmKind::Builtin,
        _ => GemmKind::Cublas,
    };
    let per_batch = match options.max_networks_per_batch {
        Some(n) => n.max(1),
        None => {
            let free = dev.free_memory()? as f64 * MEMORY_FRACTION;
            let per = plan.bytes_per_network(!inputs.is_shared()).max(1) as f64;
            ((free / per) as usize).max(1)
        }
    };
    let _run = dev.run_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut spectra: Vec<Vec<Spectrum>> = Vec::with_capacity(nets.len());
    let mut start = 0;
    while start < nets.len() {
        let end = (start + per_batch).min(nets.len());
        let chunk = &nets[start..end];
        let chunk_inputs = inputs.networks(start, end);
        let mut run = Run::new(dev, gemm, &plan, chunk, &chunk_inputs)?;
        spectra.extend(run.execute()?);
        start = end;
    }
    let stats = spectra.iter().map(|s| SpectrumStats::of(s)).collect();
    Ok(PopulationSpectra { spectra, stats })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GemmKind {
    Cublas,
    Builtin,
}

fn as_i32(v: usize, what: &str) -> DResult<i32> {
    i32::try_from(v).map_err(|_| CudaError::Unsupported(format!("{what} = {v} exceeds i32")))
}

fn missing(buf: Buf) -> CudaError {
    CudaError::Unsupported(format!("internal: device buffer {buf:?} is not allocated"))
}

/// A run of one batch of networks on the device: the program's buffers, by slot.
struct Run<'a> {
    dev: &'a DeviceState,
    gemm: GemmKind,
    plan: &'a Plan,
    nets: usize,
    shared_inputs: bool,
    bufs: Vec<Option<CudaSlice<f32>>>,
    sums: CudaSlice<f64>,
    comps: CudaSlice<f64>,
    status: CudaSlice<i32>,
    status_step: CudaSlice<i32>,
    status_index: CudaSlice<i32>,
    accumulated: CudaSlice<i32>,
}

impl<'a> Run<'a> {
    fn new(
        dev: &'a DeviceState,
        gemm: GemmKind,
        plan: &'a Plan,
        nets: &[Network<f32>],
        inputs: &PopulationInputs<'_>,
    ) -> DResult<Self> {
        let s = &dev.stream;
        let m = nets.len();
        let (b, d, k) = (plan.batch, plan.d, plan.k);
        let shared_inputs = inputs.is_shared();
        let mut bufs: Vec<Option<CudaSlice<f32>>> =
            (0..Buf::slots(plan.layers)).map(|_| None).collect();
        for (buf, len) in buffer_lengths(plan, m, shared_inputs) {
            if len > 0 {
                bufs[buf.slot()] = Some(s.alloc_zeros::<f32>(len).map_err(driver_error)?);
            }
        }
        let mut upload = |buf: Buf, v: &[f32]| -> DResult<()> {
            let dst = bufs[buf.slot()].as_mut().ok_or_else(|| missing(buf))?;
            s.memcpy_htod(v, dst).map_err(driver_error)
        };
        for l in 0..plan.layers {
            let cat = |f: &dyn Fn(&Network<f32>) -> &[f32]| -> Vec<f32> {
                nets.iter().flat_map(|net| f(net).iter().copied()).collect()
            };
            upload(Buf::WIn(l), &cat(&|net| &net.layers[l].w_in))?;
            upload(Buf::BIn(l), &cat(&|net| &net.layers[l].b_in))?;
            upload(Buf::WRec(l), &cat(&|net| &net.layers[l].w_rec))?;
            upload(Buf::BRec(l), &cat(&|net| &net.layers[l].b_rec))?;
        }
        let host_inputs: Vec<f32> = if shared_inputs {
            inputs.for_network(0).to_vec()
        } else {
            (0..m).flat_map(|i| inputs.for_network(i).iter().copied()).collect()
        };
        upload(Buf::Inputs, &host_inputs)?;
        if plan.transpose {
            let mut e = vec![0.0f32; d * b * d];
            for bi in 0..b {
                for i in 0..d {
                    e[(bi * d + i) * d + i] = 1.0;
                }
            }
            upload(Buf::Eye, &e)?;
        }
        // Q_0 of sequence b (the CPU's `Network::initial_tangent_basis(.., b)`: PyTorch's
        // state order mapped to the cells' layout), the same for every network.
        let block = d * k;
        let mut basis = Vec::with_capacity(b * block);
        for bi in 0..b {
            basis.extend(nets[0].initial_tangent_basis(
                plan.lstm_state(),
                k,
                plan.initial_basis,
                bi as u64,
            ));
        }
        let basis = s.clone_htod(&basis).map_err(driver_error)?;
        let q = bufs[Buf::Q.slot()].as_mut().ok_or_else(|| missing(Buf::Q))?;
        for i in 0..m {
            let mut dst = q.slice_mut(i * b * block..(i + 1) * b * block);
            s.memcpy_dtod(&basis, &mut dst).map_err(driver_error)?;
        }
        let zeros_f64 = |len: usize| s.alloc_zeros::<f64>(len.max(1)).map_err(driver_error);
        let zeros_i32 = |len: usize| s.alloc_zeros::<i32>(len.max(1)).map_err(driver_error);
        Ok(Self {
            dev,
            gemm,
            plan,
            nets: m,
            shared_inputs,
            bufs,
            sums: zeros_f64(m * b * k)?,
            comps: zeros_f64(m * b * k)?,
            status: zeros_i32(m * b)?,
            status_step: zeros_i32(m * b)?,
            status_index: zeros_i32(m * b)?,
            accumulated: zeros_i32(m * b)?,
        })
    }

    fn buf(&self, buf: Buf) -> DResult<&CudaSlice<f32>> {
        self.bufs[buf.slot()].as_ref().ok_or_else(|| missing(buf))
    }

    fn take(&mut self, buf: Buf) -> DResult<CudaSlice<f32>> {
        self.bufs[buf.slot()].take().ok_or_else(|| missing(buf))
    }

    fn put(&mut self, buf: Buf, slice: CudaSlice<f32>) {
        self.bufs[buf.slot()] = Some(slice);
    }

    /// The whole program, then one synchronisation and the read-back.
    fn execute(&mut self) -> DResult<Vec<Vec<Spectrum>>> {
        let plan = self.plan;
        let qr = self.qr_kernel()?;
        let mut traces: Vec<(CudaSlice<f64>, CudaSlice<f64>)> = Vec::new();
        for op in program(plan, self.nets, self.shared_inputs) {
            match op {
                Op::Gemm { shape, a, b, c } => {
                    let mut cs = self.take(c.buf)?;
                    let result = {
                        let (a_s, b_s) = (self.buf(a.buf)?, self.buf(b.buf)?);
                        gemm_dispatch(
                            self.dev,
                            self.gemm,
                            &shape,
                            &a_s.slice(a.offset..),
                            &b_s.slice(b.offset..),
                            &mut cs.slice_mut(c.offset..),
                        )
                    };
                    self.put(c.buf, cs);
                    result?;
                }
                Op::SwapState { layer } => {
                    self.bufs.swap(Buf::Old(layer).slot(), Buf::New(layer).slot());
                }
                Op::Forward { layer, step } => self.forward(layer, step)?,
                Op::Tangent { layer, identity, p_in } => self.tangent(layer, identity, p_in)?,
                Op::SwapQZ => self.bufs.swap(Buf::Q.slot(), Buf::Z.slot()),
                Op::Qr { step, accumulate, in_phase } => {
                    self.orthonormalize(&qr, step, accumulate, in_phase)?;
                }
                Op::Trace => {
                    let ts = self.sums.try_clone().map_err(driver_error)?;
                    let tc = self.comps.try_clone().map_err(driver_error)?;
                    traces.push((ts, tc));
                }
            }
        }
        let stream = &self.dev.stream;
        stream.synchronize().map_err(driver_error)?;
        let down64 = |v: &CudaSlice<f64>| stream.clone_dtoh(v).map_err(driver_error);
        let down32 = |v: &CudaSlice<i32>| stream.clone_dtoh(v).map_err(driver_error);
        let sums = down64(&self.sums)?;
        let comps = down64(&self.comps)?;
        let status = down32(&self.status)?;
        let status_step = down32(&self.status_step)?;
        let status_index = down32(&self.status_index)?;
        let accumulated = down32(&self.accumulated)?;
        let traces: Vec<(Vec<f64>, Vec<f64>)> =
            traces.iter().map(|(a, c)| Ok((down64(a)?, down64(c)?))).collect::<DResult<_>>()?;
        stream.synchronize().map_err(driver_error)?;
        Ok(plan.assemble(
            self.nets,
            &sums,
            &comps,
            &status,
            &status_step,
            &status_index,
            &accumulated,
            &traces,
        ))
    }

    fn elementwise_config(&self, total: usize) -> LaunchConfig {
        let blocks = total.div_ceil(ELEMENTWISE_THREADS as usize).max(1);
        let cap = self.dev.sm_count as usize * 32;
        LaunchConfig {
            grid_dim: (blocks.min(cap) as u32, 1, 1),
            block_dim: (ELEMENTWISE_THREADS, 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// `<cell>_forward_f32` of layer `l` (FORWARD_ARGS of cells.cu).
    fn forward(&mut self, l: usize, step: i32) -> DResult<()> {
        let plan = self.plan;
        let (m, b, n) = (self.nets, plan.batch, plan.n);
        let f = self.dev.function(forward_entry(plan.kind))?;
        let (eps, gamma, dt) = plan.constants;
        let (nets_i, b_i, n_i) = (as_i32(m, "M")?, as_i32(b, "B")?, as_i32(n, "N")?);
        let cfg = self.elementwise_config(m * b * n);
        let mut new = self.take(Buf::New(l))?;
        let mut gates = self.take(Buf::Gates(l))?;
        let mut aux = self.take(Buf::Aux(l))?;
        let result = (|| -> DResult<()> {
            let mut launch = self.dev.stream.launch_builder(&f);
            launch
                .arg(&nets_i)
                .arg(&b_i)
                .arg(&n_i)
                .arg(&eps)
                .arg(&gamma)
                .arg(&dt)
                .arg(self.buf(Buf::PreIn)?)
                .arg(self.buf(Buf::PreRec)?)
                .arg(self.buf(Buf::BIn(l))?)
                .arg(self.buf(Buf::BRec(l))?)
                .arg(self.buf(Buf::Old(l))?)
                .arg(&mut new)
                .arg(&mut gates)
                .arg(&mut aux)
                .arg(&self.status)
                .arg(&self.status_step)
                .arg(&step);
            // SAFETY: the argument list matches FORWARD_ARGS of cells.cu; every buffer holds the
            // extents of `ops::buffer_lengths`, which the kernel indexes.
            unsafe { launch.launch(cfg) }.map(|_| ()).map_err(driver_error)
        })();
        self.put(Buf::New(l), new);
        self.put(Buf::Gates(l), gates);
        self.put(Buf::Aux(l), aux);
        result
    }

    /// `<cell>_tangent_f32` of layer `l` (TANGENT_ARGS of cells.cu): `z = J q`, or the explicit
    /// Jacobians from the identity blocks.
    fn tangent(&mut self, l: usize, identity: bool, with_p_in: bool) -> DResult<()> {
        let plan = self.plan;
        let (m, b, n, d) = (self.nets, plan.batch, plan.n, plan.d);
        let kc = tangent_cols_per_sequence(plan, identity);
        let q_net_stride = tangent_q_net_stride(plan, identity) as i64;
        let f = self.dev.function(tangent_entry(plan.kind))?;
        let (eps, gamma, dt) = plan.constants;
        let ints = (
            as_i32(m, "M")?,
            as_i32(b, "B")?,
            as_i32(n, "N")?,
            as_i32(kc, "k")?,
            as_i32(d, "D")?,
            as_i32(l * plan.tangent_rows, "row offset")?,
            i32::from(plan.lstm_full),
        );
        let cfg = self.elementwise_config(m * b * kc * n);
        let (qb, zb) = if identity { (Buf::Eye, Buf::Jall) } else { (Buf::Q, Buf::Z) };
        let mut z = self.take(zb)?;
        let null: u64 = 0;
        let result = (|| -> DResult<()> {
            let mut launch = self.dev.stream.launch_builder(&f);
            launch
                .arg(&ints.0)
                .arg(&ints.1)
                .arg(&ints.2)
                .arg(&ints.3)
                .arg(&ints.4)
                .arg(&ints.5)
                .arg(&q_net_stride)
                .arg(&ints.6)
                .arg(&eps)
                .arg(&gamma)
                .arg(&dt)
                .arg(self.buf(Buf::P)?);
            if with_p_in {
                launch.arg(self.buf(Buf::PIn)?);
            } else {
                launch.arg(&null);
            }
            launch
                .arg(self.buf(qb)?)
                .arg(&mut z)
                .arg(self.buf(Buf::Old(l))?)
                .arg(self.buf(Buf::Gates(l))?)
                .arg(self.buf(Buf::Aux(l))?);
            // SAFETY: the argument list matches TANGENT_ARGS of cells.cu (a null `p_in` is the
            // 8-byte zero); extents as in `ops::buffer_lengths`.
            unsafe { launch.launch(cfg) }.map(|_| ()).map_err(driver_error)
        })();
        self.put(zb, z);
        result
    }

    /// The QR kernel for this run's block size (shared memory when `D <= 128` and it fits).
    fn qr_kernel(&self) -> DResult<QrKernel> {
        let (d, k) = (self.plan.d, self.plan.k);
        let shared_bytes = (d * k + 2 * k) * 4;
        let static_margin = 64;
        let threads = if d <= 64 { 128 } else { 256 };
        if d <= SHARED_QR_MAX_ROWS && shared_bytes + static_margin <= self.dev.max_shared_optin {
            let f = self.dev.function("householder_qr_shared_f32")?;
            if shared_bytes > 48 * 1024 {
                self.dev.allow_shared_memory(&f, shared_bytes)?;
            }
            Ok(QrKernel { f, shared_bytes, threads })
        } else {
            let bytes = 2 * k * 4;
            if bytes + static_margin > 48 * 1024 {
                return Err(CudaError::Unsupported(format!(
                    "k = {k} exponents per sequence (the QR keeps 2k floats in shared memory; \
                     at most {} fit)",
                    (48 * 1024 - static_margin) / 8
                )));
            }
            let f = self.dev.function("householder_qr_global_f32")?;
            Ok(QrKernel { f, shared_bytes: bytes, threads })
        }
    }

    /// The batched QR of Q (QR_ARGS of qr.cu).
    fn orthonormalize(
        &mut self,
        qr: &QrKernel,
        step: usize,
        accumulate: bool,
        in_phase: usize,
    ) -> DResult<()> {
        let blocks = self.nets * self.plan.batch;
        let cfg = LaunchConfig {
            grid_dim: (blocks.min(i32::MAX as usize) as u32, 1, 1),
            block_dim: (qr.threads, 1, 1),
            shared_mem_bytes: qr.shared_bytes as u32,
        };
        let ints = (
            as_i32(blocks, "M B")?,
            as_i32(self.plan.d, "D")?,
            as_i32(self.plan.k, "k")?,
            as_i32(step, "step")?,
            i32::from(accumulate),
            as_i32(in_phase, "step")?,
        );
        let mut q = self.take(Buf::Q)?;
        let mut launch = self.dev.stream.launch_builder(&qr.f);
        launch
            .arg(&ints.0)
            .arg(&ints.1)
            .arg(&ints.2)
            .arg(&mut q)
            .arg(&mut self.sums)
            .arg(&mut self.comps)
            .arg(&mut self.status)
            .arg(&mut self.status_step)
            .arg(&mut self.status_index)
            .arg(&mut self.accumulated)
            .arg(&ints.3)
            .arg(&ints.4)
            .arg(&ints.5);
        // SAFETY: matches QR_ARGS of qr.cu; q holds M B blocks of D k, the others M B (k).
        let result = unsafe { launch.launch(cfg) }.map(|_| ()).map_err(driver_error);
        drop(launch);
        self.put(Buf::Q, q);
        result
    }
}

struct QrKernel {
    f: cudarc::driver::CudaFunction,
    shared_bytes: usize,
    threads: u32,
}

fn forward_entry(kind: CellKind) -> &'static str {
    match kind {
        CellKind::Rnn => "rnn_forward_f32",
        CellKind::Gru => "gru_forward_f32",
        CellKind::Lstm => "lstm_forward_f32",
        CellKind::Asrnn => "asrnn_forward_f32",
        CellKind::Cornn => "cornn_forward_f32",
    }
}

fn tangent_entry(kind: CellKind) -> &'static str {
    match kind {
        CellKind::Rnn => "rnn_tangent_f32",
        CellKind::Gru => "gru_tangent_f32",
        CellKind::Lstm => "lstm_tangent_f32",
        CellKind::Asrnn => "asrnn_tangent_f32",
        CellKind::Cornn => "cornn_tangent_f32",
    }
}

/// cuBLAS `cublasSgemmStridedBatched`, or the built-in kernel `gemm_strided_batched_f32`.
fn gemm_dispatch(
    dev: &DeviceState,
    kind: GemmKind,
    g: &GemmShape,
    a: &CudaView<'_, f32>,
    b: &CudaView<'_, f32>,
    c: &mut CudaViewMut<'_, f32>,
) -> DResult<()> {
    if g.m == 0 || g.n == 0 || g.batch == 0 {
        return Ok(());
    }
    match (kind, dev.blas.as_ref()) {
        (GemmKind::Cublas, Some(blas)) => {
            let cfg = StridedBatchedConfig {
                gemm: GemmConfig {
                    transa: if g.transa {
                        cublasOperation_t::CUBLAS_OP_T
                    } else {
                        cublasOperation_t::CUBLAS_OP_N
                    },
                    transb: cublasOperation_t::CUBLAS_OP_N,
                    m: as_i32(g.m, "gemm m")?,
                    n: as_i32(g.n, "gemm n")?,
                    k: as_i32(g.k, "gemm k")?,
                    alpha: g.alpha,
                    lda: as_i32(g.lda, "lda")?,
                    ldb: as_i32(g.ldb, "ldb")?,
                    beta: g.beta,
                    ldc: as_i32(g.ldc, "ldc")?,
                },
                batch_size: as_i32(g.batch, "gemm batch")?,
                stride_a: g.stride_a as i64,
                stride_b: g.stride_b as i64,
                stride_c: g.stride_c as i64,
            };
            // SAFETY: the shapes, leading dimensions and strides were derived from the buffer
            // extents allocated in `Run::new`.
            unsafe { blas.gemm_strided_batched(cfg, a, b, c) }
                .map_err(|e| CudaError::Blas(e.to_string()))
        }
        _ => {
            let f = dev.function("gemm_strided_batched_f32")?;
            let cfg = LaunchConfig {
                grid_dim: (
                    as_i32(g.n.div_ceil(16), "gemm grid")? as u32,
                    as_i32(g.m.div_ceil(16), "gemm grid")? as u32,
                    g.batch.min(65535) as u32,
                ),
                block_dim: (16, 16, 1),
                shared_mem_bytes: 0,
            };
            let ints = (
                i32::from(g.transa),
                as_i32(g.m, "gemm m")?,
                as_i32(g.n, "gemm n")?,
                as_i32(g.k, "gemm k")?,
                as_i32(g.lda, "lda")?,
                as_i32(g.ldb, "ldb")?,
                as_i32(g.ldc, "ldc")?,
                as_i32(g.batch, "gemm batch")?,
            );
            let strides = (g.stride_a as i64, g.stride_b as i64, g.stride_c as i64);
            let mut launch = dev.stream.launch_builder(&f);
            launch
                .arg(&ints.0)
                .arg(&ints.1)
                .arg(&ints.2)
                .arg(&ints.3)
                .arg(&g.alpha)
                .arg(a)
                .arg(&ints.4)
                .arg(&strides.0)
                .arg(b)
                .arg(&ints.5)
                .arg(&strides.1)
                .arg(&g.beta)
                .arg(c)
                .arg(&ints.6)
                .arg(&strides.2)
                .arg(&ints.7);
            // SAFETY: matches the signature of gemm.cu; extents as for cuBLAS above.
            unsafe { launch.launch(cfg) }.map_err(driver_error)?;
            Ok(())
        }
    }
}
