//! [`AlignedBuf`]: scratch and tangent blocks that start on a cache line.

/// A zero-initialised buffer of `len` scalars whose first element sits on a 64-byte boundary.
/// Blocks handed to [`crate::linalg::qr::orthonormalize_in_place`] in such a buffer (with `D` a
/// multiple of 16 for f32, 8 for f64) let the AVX-512 kernels' full-width loads stay inside
/// cache lines (`orchestrator bench` measures the QR on such a block next to the same block one
/// element off). Dereferences to a slice; a clone is aligned again.
#[derive(Debug)]
pub struct AlignedBuf<T> {
    buf: Vec<T>,
    off: usize,
    len: usize,
}

impl<T: Copy + Default> AlignedBuf<T> {
    /// `len` zeros, the first on a 64-byte boundary (when the allocator allows it).
    pub fn zeroed(len: usize) -> Self {
        let slack = 64 / std::mem::size_of::<T>().max(1);
        let buf = vec![T::default(); len + slack];
        let off = buf.as_ptr().align_offset(64);
        let off = if off <= slack { off } else { 0 };
        Self { buf, off, len }
    }
}

impl<T: Copy + Default> Clone for AlignedBuf<T> {
    fn clone(&self) -> Self {
        let mut c = Self::zeroed(self.len);
        c.copy_from_slice(self);
        c
    }
}

impl<T> std::ops::Deref for AlignedBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[self.off..self.off + self.len]
    }
}

impl<T> std::ops::DerefMut for AlignedBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_and_their_clones_start_on_a_cache_line() {
        for len in [1usize, 7, 64, 1000] {
            let mut a = AlignedBuf::<f32>::zeroed(len);
            assert_eq!(a.len(), len);
            assert!(a.iter().all(|&x| x == 0.0));
            assert_eq!(a.as_ptr() as usize % 64, 0, "len {len}");
            a[len - 1] = 3.0;
            let b = a.clone();
            assert_eq!(b.as_ptr() as usize % 64, 0, "clone, len {len}");
            assert_eq!(&b[..], &a[..]);
            let c = AlignedBuf::<f64>::zeroed(len);
            assert_eq!(c.as_ptr() as usize % 64, 0, "f64, len {len}");
        }
    }
}
