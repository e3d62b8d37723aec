//! `orchestrator bench --out`: the [`BenchReport`] as Markdown.

use super::BenchReport;

/// The report as Markdown.
pub fn render_markdown(r: &BenchReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "CPU: {} ({} threads, kernels: {})\n", r.cpu, r.threads, r.simd);
    let _ = writeln!(
        s,
        "GEMM (gemm crate, n = 256, 1 thread): f64 {:.1} GFLOP/s, f32 {:.1} GFLOP/s; \
         all threads (n = 512): f64 {:.1}, f32 {:.1}\n",
        r.gemm_gflops_f64_1t, r.gemm_gflops_f32_1t, r.gemm_gflops_f64_all, r.gemm_gflops_f32_all
    );
    let _ = writeln!(
        s,
        "| kernel (1 thread, k = D; default QR panel width {}) | prec | D | time | GFLOP/s | of 1-thread GEMM |",
        le_engine::linalg::qr::DEFAULT_PANEL_WIDTH
    );
    let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: |");
    for row in &r.rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} us | {:.1} | {:.0} % |",
            row.kernel,
            row.precision,
            row.d,
            row.seconds_per_call * 1e6,
            row.gflops,
            100.0 * row.fraction_of_gemm
        );
    }
    if !r.rnn.is_empty() {
        let _ = writeln!(
            s,
            "\nRNN populations (f32, full state, k = D, QR every step, B = 16, T = 100 + 20 warm-up, I = 28, all threads), against the all-thread SGEMM rate {:.1} GFLOP/s of the gemm crate (best of the first measurement and two right before these rows, n = 512 and 1024):\n",
            r.sgemm_gflops_for_rnn
        );
        if let Some(b) = &r.blas_sgemm {
            let rates: Vec<String> = b.gflops.iter().map(|(k, g)| format!("{k} {g:.1}")).collect();
            let _ = writeln!(
                s,
                "BLAS SGEMM of the same run (torch {}, numpy {}; GFLOP/s, n = 512 / 1024): {}. \
                 Best SGEMM of the run: {:.1} GFLOP/s (\"of best SGEMM\").\n",
                b.torch_version,
                b.numpy_version,
                rates.join(", "),
                r.best_sgemm_gflops
            );
            if !r.reference_isa_caps.is_empty() {
                let _ = writeln!(
                    s,
                    "This project's kernels are capped at `{}` (`LE_ENGINE_SIMD`), and so are \
                     PyTorch and numpy ({}): \"of best SGEMM\" is against their capped SGEMM \
                     only, since the gemm crate runs this CPU's widest kernels whatever the \
                     cap (\"of gemm-crate SGEMM\").\n",
                    r.simd,
                    r.reference_isa_caps
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        let _ = writeln!(
            s,
            "| cell | N | networks | time | sequence-steps/s | useful GFLOP/s | of gemm-crate SGEMM | of best SGEMM | PyTorch (seq-steps/s, setup, networks) | engine / PyTorch | max exponent diff | naive baseline (seq-steps/s, 1 thread) | speed-up |"
        );
        let _ = writeln!(
            s,
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        );
        let notes = "\nUseful flops per sequence-step: `2 G N^2 k` (tangent, G gates) + \
            `2 D k^2 - 2 k^3 / 3` (QR factorisation), as the issue counts them. The engine does \
            the factorisation and then, instead of forming Q and multiplying the next \
            Jacobian by it, applies the factored Q to the explicit next Jacobian from the \
            right (about 2 D^3 flops; le-engine README, \"Factored Q\"). PyTorch: \
            `scripts/reference/bench_torch_les.py` on the first networks of the same \
            population and the same inputs (analytic tangent map, one GEMM per network, batched \
            `torch.linalg.qr`), best of one process with all threads and one single-thread \
            process per thread, both eager (the threads setup on 2 networks: it is the slow one); \"max \
            exponent diff\": the largest difference of a network's mean exponent between the \
            two, relative to max(1, |lambda|) (both f32).";
        for x in &r.rnn {
            let (torch, ratio, diff) = match &x.torch {
                Some(t) => (
                    format!("{:.0} ({}, {})", t.sequence_steps_per_second, t.best_mode, t.networks),
                    format!("{:.2}x", t.engine_over_torch),
                    format!("{:.1e}", t.max_exponent_difference),
                ),
                None => ("—".into(), "—".into(), "—".into()),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2} s | {:.0} | {:.1} | {:.0} % | {:.0} % | {} | {} | {} | {:.1} | {:.0}x |",
                x.arch,
                x.hidden,
                x.networks,
                x.seconds,
                x.sequence_steps_per_second,
                x.useful_gflops,
                100.0 * x.fraction_of_gemm_all_threads,
                100.0 * x.fraction_of_best_sgemm,
                torch,
                ratio,
                diff,
                x.baseline_sequence_steps_per_second,
                x.speedup_over_baseline
            );
        }
        let _ = writeln!(s, "{notes}");
    }
    s
}
