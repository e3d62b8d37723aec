// Strided-batched single-precision GEMM, column-major, cuBLAS semantics:
//
//   C_i = alpha op(A_i) B_i + beta C_i,   i = 0 .. batch-1,
//   op(A) = A (m x kk, leading dimension lda) when transa == 0,
//   op(A) = A^T (A stored kk x m, leading dimension lda) when transa != 0,
//   B_i (kk x n, ldb), C_i (m x n, ldc); X_i = X + i stride_x (a stride may be 0: shared operand).
//   beta == 0 never reads C (so C may hold NaN or garbage), as in cuBLAS.
//
// The slow, obviously correct twin of cublasSgemmStridedBatched that le-engine uses when
// libcublas cannot be loaded (and in the CUDA tests as a cross-check): 16 x 16 output tiles,
// operands staged through shared memory, one tile of one batch entry per 16 x 16 thread block;
// grid (ceil(n / 16), ceil(m / 16), min(batch, 65535)), grid-striding over the batch.

#define GEMM_TILE 16

extern "C" __global__ void gemm_strided_batched_f32(
    const int transa, const int m, const int n, const int kk, const float alpha,
    const float *__restrict__ a, const int lda, const long long stride_a,
    const float *__restrict__ b, const int ldb, const long long stride_b, const float beta,
    float *__restrict__ c, const int ldc, const long long stride_c, const int batch) {
    __shared__ float ta[GEMM_TILE][GEMM_TILE + 1];  // ta[r][l] = op(A)[row0 + r, l0 + l]
    __shared__ float tb[GEMM_TILE][GEMM_TILE + 1];  // tb[l][cc] = B[l0 + l, col0 + cc]
    const int tx = threadIdx.x;                     // 0 .. 15: column within the tile
    const int ty = threadIdx.y;                     // 0 .. 15: row within the tile
    const int row0 = blockIdx.y * GEMM_TILE;
    const int col0 = blockIdx.x * GEMM_TILE;
    const int row = row0 + ty, col = col0 + tx;
    for (long long i = blockIdx.z; i < batch; i += gridDim.z) {
        const float *ai = a + i * stride_a;
        const float *bi = b + i * stride_b;
        float acc = 0.0f;
        for (int l0 = 0; l0 < kk; l0 += GEMM_TILE) {
            // op(A) tile: thread (ty, tx) loads op(A)[row0 + ty, l0 + tx].
            {
                const int r = row0 + ty, l = l0 + tx;
                float v = 0.0f;
                if (r < m && l < kk) {
                    v = transa ? ai[(long long)r * lda + l] : ai[(long long)l * lda + r];
                }
                ta[ty][tx] = v;
            }
            // B tile: thread (ty, tx) loads B[l0 + ty, col0 + tx].
            {
                const int l = l0 + ty, cc = col0 + tx;
                tb[ty][tx] = (l < kk && cc < n) ? bi[(long long)cc * ldb + l] : 0.0f;
            }
            __syncthreads();
            for (int l = 0; l < GEMM_TILE; ++l) acc += ta[ty][l] * tb[l][tx];
            __syncthreads();
        }
        if (row < m && col < n) {
            float *ci = c + i * stride_c + (long long)col * ldc + row;
            *ci = (beta == 0.0f) ? alpha * acc : alpha * acc + beta * *ci;
        }
    }
}
