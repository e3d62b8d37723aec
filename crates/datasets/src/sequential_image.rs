//! Sequential image classification: an image fed to an RNN one row or one pixel per step.
//!
//! For an image `x` of `R x C` pixels (MNIST: 28 x 28) and label `y`:
//! - [`PixelOrder::RowWise`]: `T = R`, `I = C`, input at step `t` is row `t` (the published
//!   sequential-MNIST setting of the Lyapunov-spectrum papers, `T = 28, I = 28`);
//! - [`PixelOrder::PixelWise`]: `T = R * C`, `I = 1`, pixels in raster order (`T = 784`);
//! - [`PixelOrder::PermutedPixelWise`]: as pixel-wise, but step `t` shows pixel `pi(t)` of one
//!   fixed permutation `pi` drawn from the seed (Fisher-Yates, `ChaCha8Rng::seed_from_u64`), the
//!   same for every image, split and epoch.
//!
//! The target is the class label `y` (one per sequence). Pixels are scaled by
//! [`PixelNormalization`].

use crate::error::{DatasetError, Result};
use crate::idx::ImageSet;
use crate::mnist::ImageSplit;
use crate::task::{Batch, OutputKind, Split, Targets, Task, check_indices, shuffled_indices};

/// MNIST training-set pixel mean after /255 (the usual constant).
pub const MNIST_PIXEL_MEAN: f32 = 0.1307;
/// MNIST training-set pixel standard deviation after /255 (the usual constant).
pub const MNIST_PIXEL_STD: f32 = 0.3081;

/// How a pixel byte `p` becomes an input value. Config files name it in kebab case
/// (`"unit-range"`, `"mnist-standardized"`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PixelNormalization {
    /// `p / 255`, in `[0, 1]` (default; what the published sequential-MNIST runs use).
    #[default]
    UnitRange,
    /// `(p / 255 - 0.1307) / 0.3081`, roughly zero mean and unit variance on MNIST.
    MnistStandardized,
}

impl PixelNormalization {
    /// The input value of pixel byte `p`.
    pub fn apply(self, p: u8) -> f32 {
        let x = f32::from(p) / 255.0;
        match self {
            Self::UnitRange => x,
            Self::MnistStandardized => (x - MNIST_PIXEL_MEAN) / MNIST_PIXEL_STD,
        }
    }

    fn table(self) -> [f32; 256] {
        std::array::from_fn(|p| self.apply(p as u8))
    }
}

/// In which order an image's pixels are presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelOrder {
    /// One row per step: `T = rows`, `I = cols`.
    RowWise,
    /// One pixel per step in raster order: `T = rows * cols`, `I = 1`.
    PixelWise,
    /// One pixel per step in a fixed seeded permutation of the raster order.
    PermutedPixelWise { seed: u64 },
}

/// Sequential image classification over an [`ImageSplit`] (see the module docs).
#[derive(Clone, Debug)]
pub struct SequentialImageTask {
    data: ImageSplit,
    order: PixelOrder,
    normalization: PixelNormalization,
    table: [f32; 256],
    /// Pixel shown at step `t` (pixel orders only; empty for row-wise).
    permutation: Vec<usize>,
}

impl SequentialImageTask {
    /// A task over `data` presented in `order`, pixels scaled by `normalization`. Errors if the
    /// train and test images differ in size or either split is empty.
    pub fn new(
        data: ImageSplit,
        order: PixelOrder,
        normalization: PixelNormalization,
    ) -> Result<Self> {
        let (train, test) = (&data.train, &data.test);
        if (train.rows, train.cols) != (test.rows, test.cols) || train.is_empty() || test.is_empty()
        {
            return Err(DatasetError::InvalidConfig {
                task: data.name.clone(),
                message: format!(
                    "train has {} images of {}x{}, test {} of {}x{}; need non-empty splits of one size ({})",
                    train.len(),
                    train.rows,
                    train.cols,
                    test.len(),
                    test.rows,
                    test.cols,
                    data.source
                ),
            });
        }
        let pixels = data.train.pixels_per_image();
        let permutation = match order {
            PixelOrder::RowWise => Vec::new(),
            PixelOrder::PixelWise => (0..pixels).collect(),
            // Stream 0 of the seed: independent of the epoch streams used for shuffling.
            PixelOrder::PermutedPixelWise { seed } => shuffled_indices(pixels, seed, 0),
        };
        Ok(Self { data, order, normalization, table: normalization.table(), permutation })
    }

    /// The default: embedded MNIST 10k, 8,000 / 2,000 stratified split, pixels `/255`.
    pub fn mnist_10k(order: PixelOrder) -> Result<Self> {
        Self::new(crate::mnist::mnist_10k_split()?, order, PixelNormalization::UnitRange)
    }

    /// The pixel (raster index) presented at each step, length `T` (empty for row-wise).
    pub fn permutation(&self) -> &[usize] {
        &self.permutation
    }

    /// The underlying images.
    pub fn data(&self) -> &ImageSplit {
        &self.data
    }

    /// Pixel order.
    pub fn order(&self) -> PixelOrder {
        self.order
    }

    /// Pixel normalisation.
    pub fn normalization(&self) -> PixelNormalization {
        self.normalization
    }

    fn set(&self, split: Split) -> &ImageSet {
        match split {
            Split::Train => &self.data.train,
            Split::Test => &self.data.test,
        }
    }
}

impl Task for SequentialImageTask {
    fn name(&self) -> String {
        let order = match self.order {
            PixelOrder::RowWise => "row".to_string(),
            PixelOrder::PixelWise => "pixel".to_string(),
            PixelOrder::PermutedPixelWise { seed } => format!("permuted-pixel-seed{seed}"),
        };
        format!("{}-{order}", self.data.name)
    }

    fn num_train(&self) -> usize {
        self.data.train.len()
    }

    fn num_test(&self) -> usize {
        self.data.test.len()
    }

    fn seq_len(&self) -> usize {
        match self.order {
            PixelOrder::RowWise => self.data.train.rows,
            _ => self.data.train.pixels_per_image(),
        }
    }

    fn input_size(&self) -> usize {
        match self.order {
            PixelOrder::RowWise => self.data.train.cols,
            _ => 1,
        }
    }

    fn output_kind(&self) -> OutputKind {
        OutputKind::ClassPerSequence { num_classes: self.data.train.num_classes }
    }

    /// Inputs `[B, T, I]` as in the module docs, targets `[B]` class labels.
    fn batch(&self, split: Split, indices: &[usize]) -> Result<Batch> {
        let set = self.set(split);
        check_indices(&|| self.name(), split, indices, set.len())?;
        let per_image = set.pixels_per_image();
        let mut inputs = Vec::with_capacity(indices.len() * per_image);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            let image = set.image(i);
            match self.order {
                // Row-major [rows, cols] is already [T, I] for row-wise input.
                PixelOrder::RowWise => inputs.extend(image.iter().map(|&p| self.table[p as usize])),
                _ => inputs.extend(self.permutation.iter().map(|&k| self.table[image[k] as usize])),
            }
            labels.push(u32::from(set.labels[i]));
        }
        Ok(Batch::of_examples(
            indices,
            inputs,
            Targets::ClassPerSequence(labels),
            (self.seq_len(), self.input_size()),
            self.output_kind(),
        ))
    }
}
