//! Fuzz suite of the IDX / gzip readers and the driving-sequence file (issue 16): mutated
//! files — bit flips, truncations, rewritten dimensions (up to 2^32 - 1 each), gzip streams
//! cut or corrupted, random bytes — must each decode or give a typed error naming the file,
//! never a panic or an abort, and never allocate beyond the input (the gzip reader stops at
//! `MAX_IDX_BYTES`). 4,500 cases per run with fixed seeds (`PROPTEST_CASES` raises it).

use std::io::Write;
use std::path::Path;

use datasets::DrivingSequences;
use datasets::ImageSet;
use datasets::idx::{gunzip_if_needed, parse_idx_u8};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

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

/// IDX images `[n, rows, cols]` or labels `[n]`.
fn idx(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(payload);
    b
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBits(Vec<(usize, u8)>),
    Truncate(usize),
    /// Dimension `which` (of the header) set to `value`.
    Dimension {
        which: usize,
        value: u32,
    },
    Append(Vec<u8>),
    Random(Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        prop::collection::vec((any::<usize>(), 0u8..8), 1..8).prop_map(Mutation::FlipBits),
        any::<usize>().prop_map(Mutation::Truncate),
        (0usize..3, prop_oneof![any::<u32>(), 0u32..64, Just(u32::MAX)])
            .prop_map(|(which, value)| Mutation::Dimension { which, value }),
        prop::collection::vec(any::<u8>(), 1..64).prop_map(Mutation::Append),
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Mutation::Random),
    ]
}

fn apply(base: &[u8], m: &Mutation) -> Vec<u8> {
    let mut b = base.to_vec();
    match m {
        Mutation::FlipBits(flips) => {
            for &(at, bit) in flips {
                let i = at % b.len();
                b[i] ^= 1 << bit;
            }
        }
        Mutation::Truncate(n) => b.truncate(n % b.len()),
        Mutation::Dimension { which, value } => {
            let at = 4 + 4 * which;
            if at + 4 <= b.len() {
                b[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
        }
        Mutation::Append(extra) => b.extend_from_slice(extra),
        Mutation::Random(bytes) => b = bytes.clone(),
    }
    b
}

#[test]
fn fuzz_idx_image_and_label_files() {
    let ran = std::cell::Cell::new(0u32);
    let images = idx(&[3, 4, 5], &(0..60).map(|i| i as u8).collect::<Vec<_>>());
    let labels = idx(&[3], &[0, 1, 2]);
    let (ip, lp) = (Path::new("img.idx"), Path::new("lab.idx"));
    assert!(ImageSet::from_idx_bytes(images.clone(), ip, labels.clone(), lp, 10).is_ok());
    runner(2000, 3)
        .run(&(mutation(), any::<bool>(), any::<bool>()), |(m, on_images, zipped)| {
            ran.set(ran.get() + 1);
            let (mut img, mut lab) = (images.clone(), labels.clone());
            if on_images {
                img = apply(&img, &m);
            } else {
                lab = apply(&lab, &m);
            }
            if zipped {
                img = gzip(&img);
                lab = gzip(&lab);
            }
            match ImageSet::from_idx_bytes(img, ip, lab, lp, 10) {
                Ok(set) => {
                    prop_assert_eq!(set.images.len(), set.len() * set.rows * set.cols);
                    prop_assert!(set.labels.iter().all(|&l| l < 10));
                }
                Err(e) => {
                    let msg = e.to_string();
                    prop_assert!(msg.contains("img.idx") || msg.contains("lab.idx"), "{}", msg);
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(ran.get(), cases(2000), "cases run");
}

#[test]
fn fuzz_gzip_streams() {
    let ran = std::cell::Cell::new(0u32);
    let plain = idx(&[2, 3, 3], &[7; 18]);
    let zipped = gzip(&plain);
    runner(1500, 4)
        .run(&mutation(), |m| {
            ran.set(ran.get() + 1);
            let bytes = apply(&zipped, &m);
            let p = Path::new("x.gz");
            match gunzip_if_needed(bytes, p) {
                Ok(out) => {
                    prop_assert!(out.len() as u64 <= datasets::idx::MAX_IDX_BYTES);
                    let _ = parse_idx_u8(out, p, 3);
                }
                Err(e) => prop_assert!(e.to_string().contains("x.gz"), "{}", e),
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(ran.get(), cases(1500), "cases run");
}

#[test]
fn fuzz_driving_sequence_files() {
    let ran = std::cell::Cell::new(0u32);
    let d = DrivingSequences {
        inputs: (0..24).map(|i| i as f32 / 7.0).collect(),
        num_sequences: 2,
        seq_len: 3,
        input_size: 4,
        task: "t".into(),
        seed: 5,
        test_indices: vec![3, 1],
    };
    let base = d.to_safetensors_bytes().unwrap();
    assert_eq!(DrivingSequences::from_safetensors_bytes(&base, Path::new("d")).unwrap(), d);
    runner(1000, 5)
        .run(&mutation(), |m| {
            ran.set(ran.get() + 1);
            let bytes = apply(&base, &m);
            match DrivingSequences::from_safetensors_bytes(&bytes, Path::new("driving.st")) {
                Ok(v) => {
                    prop_assert_eq!(v.inputs.len(), v.num_sequences * v.seq_len * v.input_size);
                }
                Err(e) => prop_assert!(e.to_string().contains("driving.st"), "{}", e),
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(ran.get(), cases(1000), "cases run");
}
