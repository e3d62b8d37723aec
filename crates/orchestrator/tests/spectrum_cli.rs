//! `orchestrator spectrum` as a user runs it: JSON output, the Jacobian-file path against the
//! built-in path, and one test per kind of bad input (exit code 2, one-line message naming the
//! file, the tensor and what was expected, no panic).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::fixture;
use le_engine::systems::Henon;
use le_engine::{DiscreteMap, MapWorkspace, save_jacobians};
use safetensors::Dtype;

fn orchestrator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run orchestrator")
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

fn exponents(v: &serde_json::Value) -> Vec<f64> {
    v["exponents"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

/// Runs and expects exit code 2 with a one-line message containing every needle.
fn expect_bad_input(args: &[&str], needles: &[&str]) {
    let out = orchestrator(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "args {args:?}: stderr {stderr}");
    assert!(!stderr.contains("panicked"), "panic for {args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one-line error expected for {args:?}, got: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: `{n}` missing from: {stderr}");
    }
}

#[test]
fn json_output_has_the_documented_fields() {
    let v = json(&orchestrator(&["spectrum", "--system", "henon", "--steps", "200000", "--json"]));
    let e = exponents(&v);
    assert!((e[0] - 0.41922).abs() < 5e-3 && (e[1] + 1.62319).abs() < 5e-3, "{e:?}");
    for key in ["sum", "kaplan_yorke", "n_positive", "entropy_rate", "status", "steps"] {
        assert!(!v[key].is_null(), "missing {key}");
    }
    assert_eq!(v["status"], "finite");
    assert_eq!(v["steps"], 200000);
    assert!((v["sum"].as_f64().unwrap() - 0.3f64.ln()).abs() < 1e-10);

    let v = json(&orchestrator(&[
        "spectrum",
        "--system",
        "lorenz63",
        "--dt",
        "0.01",
        "--steps",
        "20000",
        "--k",
        "2",
        "--log-base",
        "2",
        "--json",
    ]));
    assert_eq!(exponents(&v).len(), 2);
    assert_eq!(v["log_base"], "2");
    // 0.9056 nats per unit time = 1.3065 bits per unit time (short run: loose)
    assert!((exponents(&v)[0] - 0.9056 / 2f64.ln()).abs() < 0.1, "{v}");

    let v = json(&orchestrator(&["spectrum", "--system", "cat", "--batch", "3", "--json"]));
    assert_eq!(v["batch"]["size"], 3);
    assert_eq!(v["batch"]["exponents"].as_array().unwrap().len(), 3);
    assert!((exponents(&v)[0] - 0.9624236501).abs() < 1e-9);
}

#[test]
fn diverging_system_reports_status_not_a_crash() {
    let v = json(&orchestrator(&[
        "spectrum",
        "--system",
        "linear",
        "--matrix",
        "1e300,0;0,1e300",
        "--x0",
        "1e10,1",
        "--json",
    ]));
    assert_eq!(v["status"], "diverged");
    assert_eq!(v["diverged_at_step"], 0);
    assert!(v["exponents"][0].is_null(), "NaN must not print as a number: {v}");
}

/// Dump the Henon Jacobians along the orbit the built-in path follows (x0 = (0.1, 0.1),
/// 1000 warm-up steps + `steps`).
fn dump_henon(path: &Path, warmup: usize, steps: usize) {
    let map = Henon::default();
    let mut ws = MapWorkspace::new();
    let mut x = vec![0.1f64, 0.1];
    let mut next = vec![0.0; 2];
    let total = warmup + steps;
    let mut jac = vec![0.0; total * 4];
    for t in 0..total {
        assert!(map.jacobian(t, &x, &mut jac[t * 4..(t + 1) * 4], &mut ws));
        map.step(t, &x, &mut next, &mut ws);
        std::mem::swap(&mut x, &mut next);
    }
    save_jacobians(path, &jac, 2, 1.0).unwrap();
}

#[test]
fn jacobian_file_matches_built_in_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("henon.safetensors");
    dump_henon(&path, 1000, 50_000);
    let from_system =
        json(&orchestrator(&["spectrum", "--system", "henon", "--steps", "50000", "--json"]));
    let p = path.to_str().unwrap();
    let from_file =
        json(&orchestrator(&["spectrum", "--jacobians", p, "--warmup", "1000", "--json"]));
    assert_eq!(from_file["steps"], 50000);
    for (a, b) in exponents(&from_system).iter().zip(exponents(&from_file)) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    // table output works too
    let out = orchestrator(&["spectrum", "--jacobians", p]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Kaplan-Yorke"));
}

fn write_raw(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, dt, shape, bytes)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(*dt, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn missing_file() {
    expect_bad_input(
        &["spectrum", "--jacobians", "/nonexistent/j.safetensors"],
        &["/nonexistent/j.safetensors"],
    );
}

#[test]
fn not_a_safetensors_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("junk.safetensors");
    std::fs::write(&p, b"\x05\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
    expect_bad_input(
        &["spectrum", "--jacobians", p.to_str().unwrap()],
        &["junk.safetensors", "safetensors"],
    );
}

#[test]
fn missing_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    write_raw(&p, &[("weight_hh_l0", Dtype::F32, vec![2, 2], f32_bytes(&[1.0; 4]))]);
    expect_bad_input(
        &["spectrum", "--jacobians", p.to_str().unwrap()],
        &["w.safetensors", "`jacobians`", "[T, D, D]"],
    );
}

#[test]
fn wrong_rank() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.safetensors");
    write_raw(&p, &[("jacobians", Dtype::F32, vec![4, 4], f32_bytes(&[1.0; 16]))]);
    expect_bad_input(
        &["spectrum", "--jacobians", p.to_str().unwrap()],
        &["r.safetensors", "jacobians", "[4, 4]", "[T, D, D]"],
    );
}

#[test]
fn non_square_jacobians() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ns.safetensors");
    write_raw(&p, &[("jacobians", Dtype::F32, vec![3, 2, 4], f32_bytes(&[1.0; 24]))]);
    expect_bad_input(
        &["spectrum", "--jacobians", p.to_str().unwrap()],
        &["ns.safetensors", "square", "2 x 4"],
    );
}

#[test]
fn wrong_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("i.safetensors");
    write_raw(&p, &[("jacobians", Dtype::I64, vec![1, 1, 1], vec![0; 8])]);
    expect_bad_input(
        &["spectrum", "--jacobians", p.to_str().unwrap()],
        &["i.safetensors", "F32 or F64", "I64"],
    );
}

#[test]
fn nan_entries() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nan.safetensors");
    let mut v = vec![0.5f32; 2 * 3 * 3];
    v[9 + 4] = f32::NAN;
    write_raw(&p, &[("jacobians", Dtype::F32, vec![2, 3, 3], f32_bytes(&v))]);
    expect_bad_input(
        &["spectrum", "--jacobians", p.to_str().unwrap()],
        &["nan.safetensors", "non-finite", "[1, 1, 1]"],
    );
}

#[test]
fn k_larger_than_d() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("k.safetensors");
    write_raw(&p, &[("jacobians", Dtype::F32, vec![5, 2, 2], f32_bytes(&[0.5; 20]))]);
    expect_bad_input(
        &["spectrum", "--jacobians", p.to_str().unwrap(), "--k", "3"],
        &["k.safetensors", "k:", "1..=2", "got 3"],
    );
    expect_bad_input(&["spectrum", "--system", "henon", "--k", "5"], &["1..=2"]);
}

#[test]
fn bad_system_arguments() {
    expect_bad_input(
        &["spectrum", "--system", "henon", "--param", "c=1"],
        &["--param `c`", "a, b"],
    );
    expect_bad_input(&["spectrum", "--system", "henon", "--x0", "0.1"], &["--x0", "2"]);
    expect_bad_input(
        &["spectrum", "--system", "linear", "--matrix", "1,2;3"],
        &["--matrix", "square"],
    );
    expect_bad_input(&["spectrum", "--system", "lorenz63", "--dt=-1"], &["--dt"]);
    expect_bad_input(&["spectrum", "--system", "henon", "--ons", "0"], &["ons_interval"]);
    // clap's own usage errors also exit with 2
    let out = orchestrator(&["spectrum", "--system", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn weights_path_reports_mean_std_and_sequences() {
    let lstm = fixture("torch_lstm_l1_bias.safetensors"); // holds `inputs` [3, 7, 5] too
    let v = json(&orchestrator(&[
        "spectrum",
        "--weights",
        &lstm,
        "--inputs",
        &lstm,
        "--precision",
        "f64",
        "--json",
    ]));
    assert_eq!(v["k"], 16, "LSTM full state: 2N exponents");
    assert_eq!(v["batch"], 3);
    assert_eq!(v["sequences"].as_array().unwrap().len(), 3);
    assert_eq!(v["std"].as_array().unwrap().len(), 16);
    assert_eq!(v["status"], "finite");
    // equals the library called directly
    let net = le_engine::rnn::Network::<f64>::load(&lstm, &Default::default()).unwrap();
    let bytes = std::fs::read(&lstm).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let inputs: Vec<f64> = st
        .tensor("inputs")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let cfg = le_engine::rnn::RnnSpectrumConfig {
        spectrum: le_engine::SpectrumConfig {
            precision: le_engine::Precision::F64,
            ..Default::default()
        },
        ..Default::default()
    };
    let lib = le_engine::rnn::network_spectra(&net, &inputs, 3, 7, &cfg).unwrap();
    let seq0: Vec<f64> =
        v["sequences"][0].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    for (a, b) in seq0.iter().zip(&lib[0].exponents) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    // reference mode: J^T Q, log2, LSTM h-only -> N exponents; a population of two networks
    let v = json(&orchestrator(&[
        "spectrum",
        "--weights",
        &lstm,
        "--weights",
        &lstm,
        "--inputs-random",
        "4,30",
        "--reference-mode",
        "--warmup",
        "5",
        "--json",
    ]));
    let nets = v["networks"].as_array().unwrap();
    assert_eq!(nets.len(), 2);
    assert_eq!(nets[0]["k"], 8);
    assert_eq!(nets[0]["log_base"], "2");
    assert_eq!(nets[0]["orientation"], "JtQ");
    assert_eq!(nets[0]["steps"], 30, "reference mode replays the warm-up inputs");
    assert_eq!(nets[0]["warmup"], 5);
    assert_eq!(nets[0]["exponents"], nets[1]["exponents"]);
    // its default warm-up is the published 500, over min(500, T) = T inputs; --warmup >= T is
    // accepted, and the result is the library's reference mode
    let v = json(&orchestrator(&[
        "spectrum",
        "--weights",
        &lstm,
        "--inputs-random",
        "3,28",
        "--reference-mode",
        "--json",
    ]));
    assert_eq!(v["warmup"], 28);
    assert_eq!(v["steps"], 28);
    let explicit = json(&orchestrator(&[
        "spectrum",
        "--weights",
        &lstm,
        "--inputs-random",
        "3,28",
        "--reference-mode",
        "--warmup",
        "28",
        "--json",
    ]));
    assert_eq!(v["exponents"], explicit["exponents"]);
    let net32 = le_engine::rnn::Network::<f32>::load(
        std::path::Path::new(&lstm),
        &le_engine::rnn::LoadOptions::default(),
    )
    .unwrap();
    // the CLI's --inputs-random: N(0, 1) in f64 from ChaCha8 seeded with --seed (0)
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let inputs: Vec<f32> = (0..3 * 28 * net32.input)
        .map(|_| {
            let x: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng);
            x as f32
        })
        .collect();
    let lib = le_engine::rnn::network_spectra(
        &net32,
        &inputs,
        3,
        28,
        &le_engine::rnn::RnnSpectrumConfig::reference(None, None),
    )
    .unwrap();
    let mean = le_engine::SpectrumStats::of(&lib).mean;
    let cli: Vec<f64> =
        v["exponents"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    aelle_support::tolerance::assert_close(
        "CLI --reference-mode = RnnSpectrumConfig::reference",
        &cli,
        &mean,
        aelle_support::tolerance::Tol::abs(1e-12),
    );

    // the table output
    let out = orchestrator(&[
        "spectrum",
        "--weights",
        &fixture("torch_gru_l2_nobias.safetensors"),
        "--inputs-random",
        "2,20",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("gru network"));
}

#[test]
fn weights_bad_input() {
    let lstm = fixture("torch_lstm_l1_bias.safetensors");
    let gru = fixture("torch_gru_l1_bias.safetensors");
    expect_bad_input(&["spectrum", "--weights", &lstm], &["--inputs"]);
    expect_bad_input(
        &["spectrum", "--weights", &lstm, "--inputs-random", "3"],
        &["--inputs-random", "B,T"],
    );
    expect_bad_input(
        &["spectrum", "--weights", &lstm, "--weights", &gru, "--inputs-random", "2,5"],
        &["population", "gru"],
    );
    expect_bad_input(
        &["spectrum", "--weights", &lstm, "--inputs-random", "2,5", "--k", "17"],
        &["1..=16"],
    );
    expect_bad_input(
        &["spectrum", "--weights", &lstm, "--inputs-random", "2,5", "--param", "foo=1"],
        &["foo"],
    );
    let dir = tempfile::tempdir().unwrap();
    // inputs of the wrong width
    let p = dir.path().join("in.safetensors");
    write_raw(&p, &[("inputs", Dtype::F32, vec![2, 4, 3], f32_bytes(&[0.1; 24]))]);
    expect_bad_input(
        &["spectrum", "--weights", &lstm, "--inputs", p.to_str().unwrap()],
        &["in.safetensors", "input_size = 5"],
    );
    // weights without the recurrent matrix
    let w = dir.path().join("w.safetensors");
    write_raw(&w, &[("weight_ih_l0", Dtype::F32, vec![16, 5], f32_bytes(&[0.1; 80]))]);
    expect_bad_input(
        &["spectrum", "--weights", w.to_str().unwrap(), "--arch", "lstm", "--inputs-random", "2,5"],
        &["w.safetensors", "weight_hh_l0"],
    );
    // warm-up longer than the inputs
    expect_bad_input(
        &["spectrum", "--weights", &lstm, "--inputs", &lstm, "--warmup", "7"],
        &["warm-up"],
    );
}
