// Batched Householder QR of tangent blocks, with log diag(R) accumulated in double.
//
// For every block mb = m B + b of the population (network m, sequence b) the D x k column-major
// block A (k <= D, leading dimension D, blocks contiguous: block mb starts at mb D k) is
// factored A = Q R with diag(R) >= 0 and overwritten by the explicit Q. ln R_ii is added to
// per-(m, b, i) double sums with Neumaier (compensated) summation, exactly like the CPU backend
// (crates/le-engine/src/linalg/qr/ and backend/cpu/population.rs).
//
// Algorithm (one thread block per (m, b) block; LAPACK dgeqr2 + dorg2r, unblocked):
//   for c = 0 .. k-1:                       reflector H_c = I - tau_c v_c v_c^T, v_c[c] = 1
//     alpha = A[c, c], xnorm^2 = sum_{i > c} A[i, c]^2   (double; no overflow for any float)
//     xnorm = 0:  tau = 0, beta = alpha                   (H_c = I)
//     else:       beta = -sign(alpha) sqrt(alpha^2 + xnorm^2), tau = (beta - alpha) / beta,
//                 v[i] = A[i, c] / (alpha - beta) for i > c       (dlarfg; no cancellation)
//     R_cc = beta; A[c+1.., j] and A[c, j] for j > c get H_c from the left:
//       w_j = A[c, j] + sum_{i > c} v_i A[i, j],  A[i, j] -= tau v_i w_j   (one warp per column)
//   ln|R_cc| (double) for every c; a non-finite one marks the sequence diverged (code 2: R_cc = 0,
//   code 3: non-finite) at `step`, zeroes its block and skips it from then on.
//   Q = H_0 ... H_{k-1} [I_k; 0] in place, backwards (dorg2r):
//     for i = k-1 .. 0: apply H_i to columns i+1 .. k-1 (rows i..D-1); then column i becomes
//     (0, .., 0, 1 - tau_i, -tau_i v_i[i+1..]).
//   Finally column c is negated when R_cc < 0, so that diag(R) >= 0 (the unique such Q).
//
// Two entry points share the algorithm: `householder_qr_shared_f32` copies the block into
// dynamic shared memory (D k + 2 k floats; used for D <= 128 when it fits, with the opt-in
// shared-memory limit raised by the host), `householder_qr_global_f32` works on the block in
// place in global memory (2 k floats of shared memory; any D; slower, not blocked).
//
// Arguments: blocks = M B; status/status_step/status_index [M B] (0 finite, 1 state non-finite
// (set by the forward kernels), 2 R_ii = 0, 3 non-finite tangent vector); sums/comps [M B k]
// (double, running sum and Neumaier compensation of ln R_ii); accumulated [M B] (the in-phase
// step of the last accumulation); accumulate != 0 adds ln R_ii (0 during warm-up).
// Block size: any multiple of 32 (the host uses 128 or 256).

#define QR_ARGS                                                                                \
    const int blocks, const int d, const int k, float *__restrict__ q,                         \
        double *__restrict__ sums, double *__restrict__ comps, int *__restrict__ status,       \
        int *__restrict__ status_step, int *__restrict__ status_index,                         \
        int *__restrict__ accumulated, const int step, const int accumulate, const int in_phase

__device__ __forceinline__ double warp_sum_double(double v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_sum_float(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_down_sync(0xffffffffu, v, offset);
    return __shfl_sync(0xffffffffu, v, 0);
}

// Householder QR of the d x k block `a` (generic pointer: shared or global memory), in place.
// `tau` and `rdiag` are k floats of shared memory. Returns (in every thread) whether the block
// stayed finite; on return `a` holds Q (finite) or zeros (diverged).
__device__ void orthonormalize_block(float *a, const int d, const int k, float *tau, float *rdiag,
                                     const long long mb, double *sums, double *comps, int *status,
                                     int *status_step, int *status_index, int *accumulated,
                                     const int step, const int accumulate, const int in_phase) {
    __shared__ float s_scale;
    __shared__ int s_bad;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;

    // Factorisation A = H_0 .. H_{k-1} R.
    for (int c = 0; c < k; ++c) {
        float *col = a + (long long)c * d;
        if (warp == 0) {
            double x2 = 0.0;
            for (int i = c + 1 + lane; i < d; i += 32) {
                const double v = (double)col[i];
                x2 += v * v;
            }
            x2 = warp_sum_double(x2);
            if (lane == 0) {
                const double alpha = (double)col[c];
                if (x2 == 0.0) {
                    tau[c] = 0.0f;
                    rdiag[c] = (float)alpha;
                    s_scale = 1.0f;
                } else {
                    const double beta = -copysign(sqrt(alpha * alpha + x2), alpha);
                    tau[c] = (float)((beta - alpha) / beta);
                    rdiag[c] = (float)beta;
                    s_scale = (float)(1.0 / (alpha - beta));
                }
            }
        }
        __syncthreads();
        const float tc = tau[c];
        if (tc != 0.0f) {
            const float scale = s_scale;
            for (int i = c + 1 + (int)threadIdx.x; i < d; i += blockDim.x) col[i] *= scale;
        }
        __syncthreads();
        if (tc != 0.0f) {
            for (int j = c + 1 + warp; j < k; j += nwarps) {
                float *cj = a + (long long)j * d;
                // Read the head before the shuffles: lane 0 rewrites it after them (no lane may
                // read it late; lanes of a warp are not in lockstep since Volta).
                const float head = cj[c];
                float w = 0.0f;
                for (int i = c + 1 + lane; i < d; i += 32) w += col[i] * cj[i];
                w = warp_sum_float(w) + head;
                const float tw = tc * w;
                for (int i = c + 1 + lane; i < d; i += 32) cj[i] -= tw * col[i];
                if (lane == 0) cj[c] -= tw;
            }
        }
        __syncthreads();
    }

    // ln |R_cc|: the first non-finite one marks the sequence diverged.
    if (threadIdx.x == 0) {
        s_bad = 0;
        for (int c = 0; c < k; ++c) {
            const double l = log(fabs((double)rdiag[c]));
            if (!isfinite(l)) {
                status[mb] = (isinf(l) && l < 0.0) ? 2 : 3;
                status_step[mb] = step;
                status_index[mb] = c;
                s_bad = 1;
                break;
            }
        }
    }
    __syncthreads();
    if (s_bad) {
        for (long long i = threadIdx.x; i < (long long)d * k; i += blockDim.x) a[i] = 0.0f;
        __syncthreads();
        return;
    }
    if (accumulate) {
        for (int c = threadIdx.x; c < k; c += blockDim.x) {
            const double x = log(fabs((double)rdiag[c]));
            const long long at = mb * k + c;
            const double s = sums[at];
            const double t = s + x;
            double comp = comps[at];
            if (fabs(s) >= fabs(x)) {
                comp += (s - t) + x;
            } else {
                comp += (x - t) + s;
            }
            sums[at] = t;
            comps[at] = comp;
        }
        if (threadIdx.x == 0) accumulated[mb] = in_phase;
    }

    // Q = H_0 .. H_{k-1} [I_k; 0], backwards and in place.
    for (int i = k - 1; i >= 0; --i) {
        float *vi = a + (long long)i * d;
        const float ti = tau[i];
        if (ti != 0.0f) {
            for (int j = i + 1 + warp; j < k; j += nwarps) {
                float *cj = a + (long long)j * d;
                const float head = cj[i];  // before the shuffles, as above
                float w = 0.0f;
                for (int r = i + 1 + lane; r < d; r += 32) w += vi[r] * cj[r];
                w = warp_sum_float(w) + head;
                const float tw = ti * w;
                for (int r = i + 1 + lane; r < d; r += 32) cj[r] -= tw * vi[r];
                if (lane == 0) cj[i] -= tw;
            }
        }
        __syncthreads();
        for (int r = threadIdx.x; r < d; r += blockDim.x) {
            if (r < i) {
                vi[r] = 0.0f;
            } else if (r == i) {
                vi[r] = 1.0f - ti;
            } else {
                vi[r] = -ti * vi[r];
            }
        }
        __syncthreads();
    }

    // diag(R) >= 0: negate the columns whose R_cc is negative.
    for (long long e = threadIdx.x; e < (long long)d * k; e += blockDim.x) {
        if (rdiag[e / d] < 0.0f) a[e] = -a[e];
    }
    __syncthreads();
}

extern "C" __global__ void householder_qr_shared_f32(QR_ARGS) {
    extern __shared__ float smem[];
    float *a = smem;
    float *tau = smem + (long long)d * k;
    float *rdiag = tau + k;
    for (long long mb = blockIdx.x; mb < blocks; mb += gridDim.x) {
        if (status[mb] != 0) continue;  // uniform over the thread block
        float *g = q + mb * d * k;
        for (long long e = threadIdx.x; e < (long long)d * k; e += blockDim.x) a[e] = g[e];
        __syncthreads();
        orthonormalize_block(a, d, k, tau, rdiag, mb, sums, comps, status, status_step,
                             status_index, accumulated, step, accumulate, in_phase);
        for (long long e = threadIdx.x; e < (long long)d * k; e += blockDim.x) g[e] = a[e];
        __syncthreads();
    }
}

extern "C" __global__ void householder_qr_global_f32(QR_ARGS) {
    extern __shared__ float smem[];
    float *tau = smem;
    float *rdiag = smem + k;
    for (long long mb = blockIdx.x; mb < blocks; mb += gridDim.x) {
        if (status[mb] != 0) continue;
        orthonormalize_block(q + mb * d * k, d, k, tau, rdiag, mb, sums, comps, status,
                             status_step, status_index, accumulated, step, accumulate, in_phase);
    }
}
