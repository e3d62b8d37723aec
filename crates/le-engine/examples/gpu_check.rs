//! GPU check: CUDA against CPU spectra on seeded populations, then timings of LSTM populations.
//!
//! Build here (x86_64, no CUDA toolkit needed), run on a GPU machine (no Rust needed) with
//! `scripts/gpu-check.sh`; see docs/gpu.md.
//!
//! ```text
//! cargo build --release -p le-engine --features cuda --example gpu_check
//! target/release/examples/gpu_check [--skip-timing] [--cpu-budget-s 120] [--sizes 1,32,256,1024]
//! target/release/examples/gpu_check --emit-ptx DIR   # here, with libnvrtc: DIR/<module>.ptx
//! ```
//!
//! With `AELLE_PTX_DIR=DIR` the backend loads the kernels from those PTX files instead of
//! compiling them, so the GPU machine needs only the NVIDIA driver (and libcublas, optional).
//!
//! (a) every case of `le_engine::backend::sample::comparison_cases()` (every cell kind and the
//!     options) on the CPU backend and on the CUDA backend with cuBLAS, with the built-in GEMM
//!     kernel, and in batches of 2 networks: the partial sums of the exponents must agree within
//!     `CUDA_VS_CPU_RTOL` (1e-4 relative, floor 1e-2) and single exponents within 1e-2 (see
//!     `CUDA_VS_CPU_RTOL` for why); exit code 1 otherwise.
//! (b) LSTM populations, N = 64 (full (h, c) state: D = k = 128), B = 15, T = 100, I = 28,
//!     M = 1, 32, 256, 1024: wall time of `population_spectra` on both backends (CUDA: after one
//!     untimed call that compiles the kernels; the call returns only after the device finished
//!     and the results were copied back). The CPU side is time-boxed: a size is run only when
//!     the linear prediction from the previous size fits in the remaining budget, otherwise
//!     its time is extrapolated linearly in M and labelled so.

use std::time::Instant;

use le_engine::backend::sample::{
    CUDA_VS_CPU_FLOOR, CUDA_VS_CPU_RTOL, CUDA_VS_CPU_SINGLE_RTOL, comparison_cases, random_inputs,
    random_population, spectrum_difference,
};
use le_engine::backend::{
    CpuBackend, CudaBackend, CudaOptions, GemmEngine, PopulationInputs, SpectrumBackend,
    compile_module_ptx, kernel_module_names,
};
use le_engine::rnn::{CellKind, RnnSpectrumConfig};

struct Args {
    emit_ptx: Option<std::path::PathBuf>,
    skip_timing: bool,
    cpu_budget_s: f64,
    sizes: Vec<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        emit_ptx: None,
        skip_timing: false,
        cpu_budget_s: 120.0,
        sizes: vec![1, 32, 256, 1024],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--skip-timing" => args.skip_timing = true,
            "--emit-ptx" => {
                args.emit_ptx = Some(it.next().ok_or("--emit-ptx needs a folder")?.into());
            }
            "--cpu-budget-s" => {
                let v = it.next().ok_or("--cpu-budget-s needs a value")?;
                args.cpu_budget_s = v.parse().map_err(|e| format!("--cpu-budget-s: {e}"))?;
            }
            "--sizes" => {
                let v = it.next().ok_or("--sizes needs a value")?;
                args.sizes = v
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().map_err(|e| format!("--sizes: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gpu_check: {e}");
            std::process::exit(2);
        }
    };
    if let Some(dir) = &args.emit_ptx {
        std::process::exit(match emit_ptx(dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("gpu_check: {e}");
                1
            }
        });
    }
    let cuda = match CudaBackend::new(0) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("gpu_check: no CUDA backend: {e}");
            std::process::exit(3);
        }
    };
    println!("device: {}", cuda.description());
    println!("cpu: {} rayon threads", rayon_threads());
    let builtin = CudaBackend::with_options(
        0,
        CudaOptions { gemm: GemmEngine::Builtin, ..CudaOptions::default() },
    )
    .expect("same device");
    // Default GEMM, but at most 2 networks per device batch: exercises the batching of networks.
    let chunked = CudaBackend::with_options(
        0,
        CudaOptions { max_networks_per_batch: Some(2), ..CudaOptions::default() },
    )
    .expect("same device");
    let cublas_ok = if cuda.has_cublas() {
        CudaBackend::with_options(0, CudaOptions { gemm: GemmEngine::Cublas, ..Default::default() })
            .ok()
    } else {
        println!("libcublas not loadable: only the built-in GEMM kernel is checked");
        None
    };

    // (a) numerics
    println!(
        "\n(a) CUDA vs CPU: partial sums of exponents within {CUDA_VS_CPU_RTOL:e} relative, \
         single exponents within {CUDA_VS_CPU_SINGLE_RTOL:e} (floor {CUDA_VS_CPU_FLOOR})"
    );
    let mut failures = 0;
    for (i, case) in comparison_cases().into_iter().enumerate() {
        let (nets, sets) = case.seeded_population(i);
        let inputs = case.population_inputs(&sets);
        let cpu = match CpuBackend.population_spectra(&nets, &inputs, &case.cfg) {
            Ok(r) => r,
            Err(e) => {
                println!("  FAIL {:<28} CPU error: {e}", case.name);
                failures += 1;
                continue;
            }
        };
        let mut engines: Vec<(&str, &CudaBackend)> = vec![("builtin", &builtin)];
        if let Some(b) = cublas_ok.as_ref() {
            engines.insert(0, ("cublas", b));
        }
        engines.push(("chunked", &chunked));
        for (label, backend) in engines {
            let line = match backend.population_spectra(&nets, &inputs, &case.cfg) {
                Ok(gpu) => match spectrum_difference(&cpu, &gpu, CUDA_VS_CPU_FLOOR) {
                    Ok(d) => {
                        let verdict = if d.within_tolerance() { "ok  " } else { "FAIL" };
                        if !d.within_tolerance() {
                            failures += 1;
                        }
                        format!(
                            "  {verdict} {:<28} {label:<8} partial sums {:.2e}  exponents {:.2e}",
                            case.name, d.partial_sums, d.exponents
                        )
                    }
                    Err(e) => {
                        failures += 1;
                        format!("  FAIL {:<28} {label:<8} {e}", case.name)
                    }
                },
                Err(e) => {
                    failures += 1;
                    format!("  FAIL {:<28} {label:<8} CUDA error: {e}", case.name)
                }
            };
            println!("{line}");
        }
    }
    println!(
        "(a) {}",
        if failures == 0 { "PASSED".to_string() } else { format!("FAILED ({failures})") }
    );

    // (b) timings
    if !args.skip_timing {
        timings(&cuda, &args);
    }
    std::process::exit(if failures == 0 { 0 } else { 1 });
}

/// Compile every kernel module with NVRTC (no GPU needed) into `dir/<module>.ptx`.
fn emit_ptx(dir: &std::path::Path) -> Result<(), String> {
    let names = kernel_module_names();
    if names.is_empty() {
        return Err("built without the `cuda` feature".into());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for name in names {
        let ptx = compile_module_ptx(name).map_err(|e| e.to_string())?;
        let path = dir.join(format!("{name}.ptx"));
        std::fs::write(&path, ptx).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1)
}

struct Row {
    m: usize,
    cpu_s: f64,
    /// `None`: measured; `Some(m0)`: extrapolated linearly from the measured size `m0`.
    cpu_extrapolated_from: Option<usize>,
    cuda_s: Option<f64>,
    cuda_note: String,
}

fn timings(cuda: &CudaBackend, args: &Args) {
    let (n, b, t, i) = (64, 15, 100, 28);
    println!("\n(b) LSTM populations: N = {n} (D = k = {}), B = {b}, T = {t}, I = {i}", 2 * n);
    let cfg = RnnSpectrumConfig::default();
    let x = random_inputs(b, t, i, 2024);
    let inputs = PopulationInputs::shared(&x, b, t);
    // Untimed: compiles and loads the kernels, warms cuBLAS.
    let warm = random_population(CellKind::Lstm, 1, n, i, 1, 1);
    if let Err(e) = cuda.population_spectra(&warm, &inputs, &cfg) {
        println!("  CUDA warm-up failed: {e}");
    }
    let mut rows = Vec::new();
    let mut cpu_left = args.cpu_budget_s;
    let mut last_cpu: Option<(usize, f64)> = None;
    for &m in &args.sizes {
        let nets = random_population(CellKind::Lstm, m, n, i, 1, 7);
        let (cuda_s, cuda_note) = {
            let t0 = Instant::now();
            match cuda.population_spectra(&nets, &inputs, &cfg) {
                Ok(_) => (Some(t0.elapsed().as_secs_f64()), String::new()),
                Err(e) => (None, format!("error: {e}")),
            }
        };
        let predicted = last_cpu.map(|(pm, ps)| ps * m as f64 / pm as f64);
        let (cpu_s, from) = match (predicted, last_cpu) {
            (Some(p), Some((m0, _))) if p > cpu_left => (p, Some(m0)),
            _ => {
                let t0 = Instant::now();
                let r = CpuBackend.population_spectra(&nets, &inputs, &cfg);
                let s = t0.elapsed().as_secs_f64();
                if let Err(e) = r {
                    println!("  CPU error at M = {m}: {e}");
                }
                cpu_left -= s;
                last_cpu = Some((m, s));
                (s, None)
            }
        };
        println!(
            "  M = {m:>5}: CPU {cpu_s:>9.3} s{}  CUDA {}",
            if from.is_none() { "" } else { " (extrapolated)" },
            cuda_s.map(|s| format!("{s:.3} s")).unwrap_or_else(|| cuda_note.clone())
        );
        rows.push(Row { m, cpu_s, cpu_extrapolated_from: from, cuda_s, cuda_note });
    }
    println!("\n| M | CPU (s) | CUDA (s) | speed-up | CUDA networks/s |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        let cpu = match r.cpu_extrapolated_from {
            None => format!("{:.3}", r.cpu_s),
            Some(m0) => format!("{:.1} (extrapolated linearly from M = {m0})", r.cpu_s),
        };
        match r.cuda_s {
            Some(g) => println!(
                "| {} | {cpu} | {g:.3} | {:.1}x | {:.1} |",
                r.m,
                r.cpu_s / g,
                r.m as f64 / g
            ),
            None => println!("| {} | {cpu} | {} | - | - |", r.m, r.cuda_note),
        }
    }
}
