//! The PyTorch side of `orchestrator bench --against-torch`: the reference script
//! (`scripts/reference/bench_torch_les.py`, built into the binary) run on the engine's own
//! networks and inputs, torch's and numpy's SGEMM, and the environment that caps them to the
//! engine's instruction-set level ([`reference_isa_caps`]).

use anyhow::{Context, Result};
use serde::Serialize;

/// The PyTorch reference (`scripts/reference/bench_torch_les.py`) of one LSTM row.
#[derive(Debug, Serialize)]
pub struct TorchRow {
    /// Networks it ran (the first of the engine's population; its rate is per sequence-step).
    pub networks: usize,
    /// Its fastest setup (`threads`: one process, all intra-op threads; `processes`: one
    /// single-thread process per thread).
    pub best_mode: String,
    pub sequence_steps_per_second: f64,
    /// Every setup it measured: (mode, sequence-steps/s).
    pub modes: Vec<(String, f64)>,
    /// Engine sequence-steps/s over torch's.
    pub engine_over_torch: f64,
    /// Largest difference of a network's mean exponent between the two (both f32), relative
    /// to `max(1, |lambda|)`.
    pub max_exponent_difference: f64,
}

/// SGEMM through the BLAS torch and numpy ship, measured in the same run.
#[derive(Debug, Serialize)]
pub struct BlasSgemm {
    pub torch_version: String,
    pub numpy_version: String,
    /// GFLOP/s by library and threads (`torch_1t`, `torch_2t`, `numpy_2t`, ...), best of
    /// n = 512 and 1024.
    pub gflops: Vec<(String, f64)>,
}

/// When `LE_ENGINE_SIMD` caps this project's kernels below the CPU's widest level: the
/// environment that caps PyTorch's and numpy's kernels to the same level, so that the
/// reference and the SGEMM denominator are those an AVX2-only (or SSE-only) machine would
/// have: MKL's code path (`MKL_ENABLE_INSTRUCTIONS`), ATen's vectorised kernels
/// (`ATEN_CPU_CAPABILITY`), oneDNN (`ONEDNN_MAX_CPU_ISA`) and OpenBLAS, which numpy ships
/// (`OPENBLAS_CORETYPE`), each as this process's environment has it if set there, else at the
/// level's value. Empty when nothing is capped.
pub fn reference_isa_caps() -> Vec<(&'static str, String)> {
    use aelle_support::simd::{Level, level, supported};
    let widest = supported()[0];
    if level() == widest {
        return Vec::new();
    }
    let caps: &[(&'static str, &'static str)] = match level() {
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => &[
            ("MKL_ENABLE_INSTRUCTIONS", "AVX2"),
            ("ATEN_CPU_CAPABILITY", "avx2"),
            ("ONEDNN_MAX_CPU_ISA", "AVX2"),
            ("OPENBLAS_CORETYPE", "Haswell"),
        ],
        #[cfg(target_arch = "x86_64")]
        Level::Baseline => &[
            ("MKL_ENABLE_INSTRUCTIONS", "SSE4_2"),
            ("ATEN_CPU_CAPABILITY", "default"),
            ("ONEDNN_MAX_CPU_ISA", "SSE41"),
            ("OPENBLAS_CORETYPE", "Nehalem"),
        ],
        _ => &[],
    };
    caps.iter().map(|&(k, v)| (k, std::env::var(k).unwrap_or_else(|_| v.to_string()))).collect()
}

/// The PyTorch reference script, built into the binary and written to a temporary file for the
/// run (removed on drop).
pub struct TorchScript {
    dir: std::path::PathBuf,
    /// [`reference_isa_caps`], fixed when the script is written.
    caps: Vec<(&'static str, String)>,
}

/// `(best mode, its sequence-steps/s, every mode)` of one PyTorch run.
pub(super) type TorchRate = (String, f64, Vec<(String, f64)>);

impl TorchScript {
    const SOURCE: &'static str =
        include_str!("../../../../../scripts/reference/bench_torch_les.py");

    pub(super) fn write() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("aelle-bench-torch-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the scratch folder {}", dir.display()))?;
        let me = Self { dir, caps: reference_isa_caps() };
        std::fs::write(me.script(), Self::SOURCE)
            .with_context(|| format!("writing {}", me.script().display()))?;
        Ok(me)
    }

    fn script(&self) -> std::path::PathBuf {
        self.dir.join("bench_torch_les.py")
    }

    /// The environment every run of the script gets ([`reference_isa_caps`]).
    pub(super) fn isa_caps(&self) -> &[(&'static str, String)] {
        &self.caps
    }

    /// Run the script with `args` (and [`Self::isa_caps`] in its environment); its stdout
    /// parsed as one JSON object.
    fn call(&self, python: &std::path::Path, args: &[&str]) -> Result<serde_json::Value> {
        let out = std::process::Command::new(python)
            .arg(self.script())
            .args(args)
            .envs(self.caps.iter().map(|(k, v)| (k, v)))
            .output()
            .with_context(|| format!("running {} (--against-torch)", python.display()))?;
        anyhow::ensure!(
            out.status.success(),
            "the PyTorch reference failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        serde_json::from_slice(&out.stdout).context("parsing the PyTorch reference's JSON")
    }

    pub(super) fn sgemm(&self, python: &std::path::Path, threads: usize) -> Result<BlasSgemm> {
        let v = self.call(python, &["--sgemm-only", "--threads", &threads.to_string()])?;
        let gflops = v["sgemm_gflops"]
            .as_object()
            .context("the PyTorch reference's JSON has no sgemm_gflops")?
            .iter()
            .filter_map(|(k, g)| g.as_f64().map(|g| (k.clone(), g)))
            .collect();
        Ok(BlasSgemm {
            torch_version: v["torch"].as_str().unwrap_or("?").to_string(),
            numpy_version: v["numpy"].as_str().unwrap_or("?").to_string(),
            gflops,
        })
    }

    /// The reference on `nets` (one-layer LSTMs) and the shared `inputs` `[batch, len, I]`:
    /// its rate and each network's mean sorted exponents.
    pub(super) fn lstm(
        &self,
        python: &std::path::Path,
        nets: &[le_engine::rnn::Network<f32>],
        inputs: &[f32],
        batch: usize,
        len: usize,
        warmup: usize,
    ) -> Result<(TorchRate, Vec<Vec<f64>>)> {
        let (m, n, ni) = (nets.len(), nets[0].hidden, nets[0].input);
        let mut w_ih = Vec::with_capacity(m * 4 * n * ni);
        let mut w_hh = Vec::with_capacity(m * 4 * n * n);
        let mut bias = Vec::with_capacity(m * 4 * n);
        for net in nets {
            let l = &net.layers[0];
            w_ih.extend_from_slice(&l.w_in);
            w_hh.extend_from_slice(&l.w_rec);
            bias.extend(l.b_in.iter().zip(&l.b_rec).map(|(a, b)| a + b));
        }
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (b1, b2, b3, b4) = (bytes(&w_ih), bytes(&w_hh), bytes(&bias), bytes(inputs));
        use safetensors::tensor::{Dtype, TensorView};
        fn view(data: &[u8], shape: Vec<usize>) -> Result<TensorView<'_>> {
            TensorView::new(Dtype::F32, shape, data).context("building a tensor view")
        }
        let tensors = vec![
            ("w_ih", view(&b1, vec![m, 4 * n, ni])?),
            ("w_hh", view(&b2, vec![m, 4 * n, n])?),
            ("b", view(&b3, vec![m, 4 * n])?),
            ("inputs", view(&b4, vec![batch, len, ni])?),
        ];
        let meta = std::collections::HashMap::from([("warmup".to_string(), warmup.to_string())]);
        let file = self.dir.join(format!("lstm{n}.safetensors"));
        safetensors::serialize_to_file(tensors, Some(meta), &file)
            .with_context(|| format!("writing {}", file.display()))?;
        let threads = rayon::current_num_threads().to_string();
        let file_arg = file.to_string_lossy().into_owned();
        let v = self.call(
            python,
            &[
                "--weights",
                &file_arg,
                "--json",
                "--no-sgemm",
                "--threads",
                &threads,
                "--modes",
                // Eager only: forked `processes-compiled` children can hang (`bench_torch_les.py`).
                "processes,threads",
            ],
        )?;
        let rate = |row: &serde_json::Value| row["sequence_steps_per_second"].as_f64();
        let best = &v["best"];
        let modes = v["modes"]
            .as_array()
            .context("the PyTorch reference's JSON has no modes")?
            .iter()
            .filter_map(|r| Some((r["mode"].as_str()?.to_string(), rate(r)?)))
            .collect();
        let lambdas = v["exponents"]
            .as_array()
            .context("the PyTorch reference's JSON has no exponents")?
            .iter()
            .map(|row| {
                row.as_array()
                    .map(|r| r.iter().filter_map(serde_json::Value::as_f64).collect())
                    .context("exponents: expected one array per network")
            })
            .collect::<Result<Vec<Vec<f64>>>>()?;
        anyhow::ensure!(
            lambdas.len() == m,
            "the PyTorch reference returned {} networks, expected {m}",
            lambdas.len()
        );
        let mode = best["mode"].as_str().unwrap_or("?").to_string();
        let best_rate = rate(best).context("the PyTorch reference's JSON has no best rate")?;
        Ok(((mode, best_rate, modes), lambdas))
    }
}

impl Drop for TorchScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use aelle_support::simd::{Level, supported, with_level};

    /// At this CPU's widest level PyTorch and numpy run as they are; below it, each lower level
    /// this CPU has caps MKL, ATen, oneDNN and OpenBLAS to the same instruction set.
    #[test]
    fn blas_caps_follow_the_engine_level() {
        let levels = supported();
        let widest = with_level(levels[0], super::reference_isa_caps).expect("a supported level");
        assert!(widest.is_empty(), "nothing is capped at the widest level: {widest:?}");
        for &level in &levels[1..] {
            let caps = with_level(level, super::reference_isa_caps).expect("a supported level");
            let want = match level {
                #[cfg(target_arch = "x86_64")]
                Level::Avx2Fma => "AVX2",
                _ => "SSE4_2",
            };
            let keys: Vec<&str> = caps.iter().map(|(k, _)| *k).collect();
            assert_eq!(
                keys,
                [
                    "MKL_ENABLE_INSTRUCTIONS",
                    "ATEN_CPU_CAPABILITY",
                    "ONEDNN_MAX_CPU_ISA",
                    "OPENBLAS_CORETYPE"
                ],
                "{}",
                level.name()
            );
            let mkl = std::env::var("MKL_ENABLE_INSTRUCTIONS").unwrap_or_else(|_| want.into());
            assert_eq!(caps[0].1, mkl, "{}", level.name());
        }
    }
}
