//! The two dense primitives of the fused path: a strided row-major GEMM (the `gemm` crate)
//! and column sums (the bias gradients).

use gemm::Parallelism;

/// Row-major `dst[m x n] (+)= A[m x k] B[k x n]` with `A(r, c) = a[r * a_rs + c * a_cs]`,
/// `B(r, c) = b[r * b_rs + c * b_cs]`, `dst(r, c) = dst[r * ld + c]`; `acc` adds to `dst`.
#[allow(clippy::too_many_arguments)]
pub(super) fn mm(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    ld: usize,
    acc: bool,
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(ld >= n && dst.len() > (m - 1) * ld + (n - 1), "gemm: dst too small");
    if k == 0 {
        if !acc {
            for r in 0..m {
                dst[r * ld..r * ld + n].fill(0.0);
            }
        }
        return;
    }
    assert!(a.len() > (m - 1) * a_rs + (k - 1) * a_cs, "gemm: lhs too small");
    assert!(b.len() > (k - 1) * b_rs + (n - 1) * b_cs, "gemm: rhs too small");
    // SAFETY: the asserts above bound every element the strides reach; dst does not alias
    // a or b (a `&mut` and two `&` borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            acc,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Column sums of `rows x cols` row-major `src` into `dst[..cols]` (overwritten).
pub(super) fn column_sums(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    let dst = &mut dst[..cols];
    dst.fill(0.0);
    for row in src[..rows * cols].chunks_exact(cols) {
        for (d, s) in dst.iter_mut().zip(row) {
            *d += s;
        }
    }
}
