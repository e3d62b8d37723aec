//! IDX reader (the MNIST file format), plain or gzipped.
//!
//! An IDX file is a big-endian `u32` magic `0x0000_TTNN` (type code `TT`, number of dimensions
//! `NN`), then `NN` big-endian `u32` dimensions, then the row-major payload. Only the unsigned
//! byte type (`TT = 0x08`) is used by MNIST and Fashion-MNIST, so only it is accepted: images
//! are magic `0x0803` with dimensions `[n, rows, cols]`, labels magic `0x0801` with `[n]`.
//!
//! Every malformed input (bad magic, truncated header or payload, trailing bytes, corrupt gzip,
//! count mismatch between images and labels, labels out of range) is an [`IdxError`] naming
//! the file; the parser never panics and never allocates more than the input's size.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::IdxError;

/// IDX type code of unsigned bytes.
pub const IDX_TYPE_U8: u32 = 0x08;
/// Magic of an IDX file of `u8` labels, dimensions `[n]`.
pub const IDX_LABELS_MAGIC: u32 = (IDX_TYPE_U8 << 8) | 1;
/// Magic of an IDX file of `u8` images, dimensions `[n, rows, cols]`.
pub const IDX_IMAGES_MAGIC: u32 = (IDX_TYPE_U8 << 8) | 3;
/// Largest decompressed file accepted (guards against gzip bombs): 1 GiB, 20x full MNIST.
pub const MAX_IDX_BYTES: u64 = 1 << 30;

/// A decoded IDX array of bytes: `data` is row-major with shape `dims`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[n, 28, 28]`).
    pub dims: Vec<usize>,
    /// Row-major payload, `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

/// Whether `bytes` start with the gzip magic `1f 8b`.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Returns `bytes` decompressed when they are gzip (detected by magic, not by file name),
/// unchanged otherwise. `path` only names the source in errors.
pub fn gunzip_if_needed(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>, IdxError> {
    if !is_gzip(&bytes) {
        return Ok(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(MAX_IDX_BYTES as usize));
    let decoder = flate2::read::GzDecoder::new(bytes.as_slice());
    decoder
        .take(MAX_IDX_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|source| IdxError::Gzip { path: path.to_path_buf(), source })?;
    if out.len() as u64 > MAX_IDX_BYTES {
        return Err(IdxError::TooLarge { path: path.to_path_buf(), limit: MAX_IDX_BYTES });
    }
    Ok(out)
}

/// Reads a file and decompresses it if it is gzip.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, IdxError> {
    let bytes = aelle_support::fs::read_input_file(path)
        .map_err(|source| IdxError::Io { path: path.to_path_buf(), source })?;
    gunzip_if_needed(bytes, path)
}

/// Parses an IDX `u8` array with `expected_ndims` dimensions from (already decompressed)
/// bytes. The expected magic is `0x0800 | expected_ndims`. The payload must have exactly
/// `prod(dims)` bytes.
pub fn parse_idx_u8(
    mut bytes: Vec<u8>,
    path: &Path,
    expected_ndims: u8,
) -> Result<IdxArray, IdxError> {
    let path_buf = || path.to_path_buf();
    if bytes.len() < 4 {
        return Err(IdxError::HeaderTruncated {
            path: path_buf(),
            found: bytes.len(),
            expected: 4,
        });
    }
    let expected_magic = (IDX_TYPE_U8 << 8) | u32::from(expected_ndims);
    let magic = read_be_u32(&bytes, 0);
    if magic != expected_magic {
        return Err(IdxError::BadMagic {
            path: path_buf(),
            found: magic,
            expected: expected_magic,
        });
    }
    let ndims = usize::from(expected_ndims);
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(IdxError::HeaderTruncated {
            path: path_buf(),
            found: bytes.len(),
            expected: header,
        });
    }
    let dims: Vec<usize> = (0..ndims).map(|d| read_be_u32(&bytes, 4 + 4 * d) as usize).collect();
    let payload = bytes.len() - header;
    let Some(expected) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return Err(IdxError::BadDimensions {
            path: path_buf(),
            found: dims,
            expected: "a product that fits in memory".to_string(),
        });
    };
    if payload != expected {
        return Err(IdxError::PayloadLength { path: path_buf(), dims, found: payload, expected });
    }
    bytes.drain(..header);
    Ok(IdxArray { dims, data: bytes })
}

fn read_be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// A labelled set of single-channel `u8` images (MNIST layout).
///
/// `images` is row-major `[len, rows, cols]`, values 0..=255 (0 = background);
/// `labels` is `[len]`, each `< num_classes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    /// Pixels, shape `[len, rows, cols]`, row-major.
    pub images: Vec<u8>,
    /// Class labels, shape `[len]`.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
    /// Number of classes (labels are `0..num_classes`).
    pub num_classes: usize,
}

impl ImageSet {
    /// Decodes an images/labels pair of IDX files (each plain or gzip) into a checked set.
    /// The paths only name the sources in errors.
    pub fn from_idx_bytes(
        images: Vec<u8>,
        images_path: &Path,
        labels: Vec<u8>,
        labels_path: &Path,
        num_classes: usize,
    ) -> Result<Self, IdxError> {
        let images = parse_idx_u8(gunzip_if_needed(images, images_path)?, images_path, 3)?;
        let labels = parse_idx_u8(gunzip_if_needed(labels, labels_path)?, labels_path, 1)?;
        let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
        if rows == 0 || cols == 0 {
            return Err(IdxError::BadDimensions {
                path: images_path.to_path_buf(),
                found: images.dims,
                expected: "[n, rows > 0, cols > 0]".to_string(),
            });
        }
        if labels.dims[0] != n {
            return Err(IdxError::CountMismatch {
                images: images_path.to_path_buf(),
                num_images: n,
                labels: labels_path.to_path_buf(),
                num_labels: labels.dims[0],
            });
        }
        if let Some((index, &label)) =
            labels.data.iter().enumerate().find(|&(_, &l)| usize::from(l) >= num_classes)
        {
            return Err(IdxError::LabelOutOfRange {
                path: labels_path.to_path_buf(),
                index,
                label,
                num_classes,
            });
        }
        Ok(Self { images: images.data, labels: labels.data, rows, cols, num_classes })
    }

    /// Reads an images/labels pair of IDX files from disk (each plain or `.gz`).
    pub fn from_idx_files(
        images_path: &Path,
        labels_path: &Path,
        num_classes: usize,
    ) -> Result<Self, IdxError> {
        let read = |p: &Path| {
            aelle_support::fs::read_input_file(p)
                .map_err(|source| IdxError::Io { path: PathBuf::from(p), source })
        };
        Self::from_idx_bytes(
            read(images_path)?,
            images_path,
            read(labels_path)?,
            labels_path,
            num_classes,
        )
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels per image, `rows * cols`.
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `index`, shape `[rows, cols]` row-major. Panics if out of range
    /// (callers index with `0..len()`).
    pub fn image(&self, index: usize) -> &[u8] {
        let p = self.pixels_per_image();
        &self.images[index * p..(index + 1) * p]
    }

    /// Number of images of each class, length `num_classes`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// A new set holding the images at `indices`, in that order. Panics on an index out of
    /// range (indices come from the split functions of this crate).
    pub fn select(&self, indices: &[usize]) -> Self {
        let p = self.pixels_per_image();
        let mut images = Vec::with_capacity(indices.len() * p);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Self { images, labels, rows: self.rows, cols: self.cols, num_classes: self.num_classes }
    }
}
