// One time step of a whole population of recurrent networks: forward step and tangent step of
// every cell kind, for all M networks x B driving sequences in one launch.
//
// The exact twin of crates/le-engine/src/rnn/cells/ (the CPU batched backend); the formulas
// below are copied from there and from METHOD.md sections 2-3 (column vectors, s = logistic).
//
// Layouts (column-major blocks, one column per sequence or per tangent vector; network m's
// block follows network m - 1's):
//   state      [M][S x B]       S = N (rnn, gru, asrnn), 2N (lstm [h; c], cornn [y; z])
//   pre_in     [M][G N x B]     W_in x        (no bias; one strided-batched GEMM per step)
//   pre_rec    [M][G N x B]     W_rec state   (no bias; W_rec acts on h, or on (y, z) for cornn)
//   b_in/b_rec [M][G N]         b_ih / b_hh (b_hh is zero for asrnn and cornn)
//   gates      [M][G N x B]     gru (r, z, n); lstm (i, f, g, o); unused by the 1-gate cells
//   aux        [M][N x B]       rnn/asrnn/cornn 1 - tanh^2(pre); gru u_n = U_n h + b_hn;
//                               lstm tanh(c')
//   q, z       [M][Dt x (B k)]  tangent blocks, leading dimension Dt (all layers' rows),
//                               sequence b owning columns b k .. (b + 1) k; this layer's rows
//                               start at row_off (St rows: [h], [h; c] or [y; z])
//   p, p_in    [M][G N x (B k)] P = U_rec Q_rec (+ W_in dIn, accumulated by a second GEMM
//                               except for gru, whose input term p_in is kept apart because
//                               r multiplies only u_n)
//   status     [M B] int        0 finite; 1 = state became non-finite at status_step (forward
//                               kernels; not flagged when step < 0)
//
// Every kernel of one kind has the same signature, so the host launches all cells alike. The
// cell constants (eps, gamma, dt) are ignored by the cells that have none.
//
// Tangent formulas (dIn = previous layer's new output perturbation, zero for layer 0):
//   rnn:   dh' = (1 - h'^2) * P
//   gru:   dr = r(1-r)(da_r + du_r), dz = z(1-z)(da_z + du_z),
//          dn = (1 - n^2)(da_n + dr * u_n + r * du_n), dh' = (1-z) dn + (h - n) dz + z dh
//   lstm:  dc' = f(1-f) c P_f + i(1-i) g P_i + i(1-g^2) P_g + f dc   (last term: full state),
//          dh' = o(1-o) tanh(c') P_o + o (1 - tanh^2 c') dc'
//   asrnn: dh' = dh + eps (1 - tanh^2 pre) * P
//   cornn: dz' = dz + dt((1 - tanh^2 pre) * P - gamma dy - eps dz), dy' = dy + dt dz'

#define FORWARD_ARGS                                                                         \
    const int nets, const int batch, const int n, const float eps, const float gamma,        \
        const float dt, const float *__restrict__ pre_in, const float *__restrict__ pre_rec, \
        const float *__restrict__ b_in, const float *__restrict__ b_rec,                     \
        const float *__restrict__ old_state, float *__restrict__ new_state,                  \
        float *__restrict__ gates, float *__restrict__ aux, int *__restrict__ status,        \
        int *__restrict__ status_step, const int step

#define TANGENT_ARGS                                                                          \
    const int nets, const int batch, const int n, const int k, const int ld,                  \
        const int row_off, const long long q_net_stride, const int full, const float eps,     \
        const float gamma, const float dt, const float *__restrict__ p,                       \
        const float *__restrict__ p_in, const float *__restrict__ q, float *__restrict__ z,   \
        const float *__restrict__ old_state, const float *__restrict__ gates,                 \
        const float *__restrict__ aux

__device__ __forceinline__ float sigmoidf(const float x) { return 1.0f / (1.0f + expf(-x)); }

// Mark sequence mb as diverged at `step` (first writer wins; later steps never overwrite).
// step < 0: a state-only replay step (reference warm-up), which the CPU does not check either.
__device__ __forceinline__ void flag_nonfinite_state(int *status, int *status_step,
                                                     const long long mb, const int step) {
    if (step >= 0 && atomicCAS(&status[mb], 0, 1) == 0) {
        status_step[mb] = step;
    }
}

// Decomposes a flat forward index into (network m, sequence b, unit j).
struct ForwardIndex {
    long long m, b, j, mb;
};

__device__ __forceinline__ ForwardIndex forward_index(const long long idx, const int batch,
                                                      const int n) {
    ForwardIndex f;
    f.j = idx % n;
    f.mb = idx / n;
    f.b = f.mb % batch;
    f.m = f.mb / batch;
    return f;
}

// Decomposes a flat tangent index into (network m, column c of B k, sequence b, unit j).
struct TangentIndex {
    long long m, c, b, j;
};

__device__ __forceinline__ TangentIndex tangent_index(const long long idx, const int batch,
                                                      const int n, const int k) {
    TangentIndex t;
    const long long cols = (long long)batch * k;
    t.j = idx % n;
    const long long mc = idx / n;
    t.c = mc % cols;
    t.m = mc / cols;
    t.b = t.c / k;
    return t;
}

#define GRID_STRIDE_LOOP(idx, total)                                                 \
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < (total); \
         idx += (long long)blockDim.x * gridDim.x)

// ---------------------------------------------------------------------------------------------
// rnn: h' = tanh(W x + b_ih + U h + b_hh); aux = 1 - h'^2.
extern "C" __global__ void rnn_forward_f32(FORWARD_ARGS) {
    const int g = 1, s = 1;
    GRID_STRIDE_LOOP(idx, (long long)nets * batch * n) {
        const ForwardIndex f = forward_index(idx, batch, n);
        const long long gcol = f.mb * g * n, scol = f.mb * s * n;
        const float pi = pre_in[gcol + f.j] + b_in[f.m * g * n + f.j];
        const float pr = pre_rec[gcol + f.j] + b_rec[f.m * g * n + f.j];
        const float h = tanhf(pi + pr);
        new_state[scol + f.j] = h;
        aux[f.mb * n + f.j] = 1.0f - h * h;
        (void)old_state;
        (void)gates;
        (void)eps;
        (void)gamma;
        (void)dt;
        if (!isfinite(h)) flag_nonfinite_state(status, status_step, f.mb, step);
    }
}

// rnn: dh' = (1 - h'^2) * P.
extern "C" __global__ void rnn_tangent_f32(TANGENT_ARGS) {
    const int g = 1;
    const long long cols = (long long)batch * k;
    GRID_STRIDE_LOOP(idx, (long long)nets * cols * n) {
        const TangentIndex t = tangent_index(idx, batch, n, k);
        const float *pc = p + (t.m * cols + t.c) * g * n;
        const float *ax = aux + (t.m * batch + t.b) * n;
        float *zc = z + (t.m * cols + t.c) * ld + row_off;
        zc[t.j] = ax[t.j] * pc[t.j];
        (void)q;
        (void)q_net_stride;
        (void)p_in;
        (void)old_state;
        (void)gates;
        (void)full;
        (void)eps;
        (void)gamma;
        (void)dt;
    }
}

// ---------------------------------------------------------------------------------------------
// gru (PyTorch, gates [r; z; n]): a = W x + b_ih, u = U h + b_hh, r = s(a_r + u_r),
// z = s(a_z + u_z), n = tanh(a_n + r u_n), h' = (1 - z) n + z h. Caches (r, z, n) and u_n.
extern "C" __global__ void gru_forward_f32(FORWARD_ARGS) {
    const int g = 3, s = 1;
    GRID_STRIDE_LOOP(idx, (long long)nets * batch * n) {
        const ForwardIndex f = forward_index(idx, batch, n);
        const long long gcol = f.mb * g * n, scol = f.mb * s * n;
        const float *pi = pre_in + gcol;
        const float *pr = pre_rec + gcol;
        const float *bi = b_in + f.m * g * n;
        const float *br = b_rec + f.m * g * n;
        const long long j = f.j;
        const float r = sigmoidf((pi[j] + bi[j]) + (pr[j] + br[j]));
        const float zg = sigmoidf((pi[n + j] + bi[n + j]) + (pr[n + j] + br[n + j]));
        const float un = pr[2 * n + j] + br[2 * n + j];
        const float nn = tanhf((pi[2 * n + j] + bi[2 * n + j]) + r * un);
        const float h = (1.0f - zg) * nn + zg * old_state[scol + j];
        new_state[scol + j] = h;
        gates[gcol + j] = r;
        gates[gcol + n + j] = zg;
        gates[gcol + 2 * n + j] = nn;
        aux[f.mb * n + j] = un;
        (void)eps;
        (void)gamma;
        (void)dt;
        if (!isfinite(h)) flag_nonfinite_state(status, status_step, f.mb, step);
    }
}

// gru: dr = r(1-r)(da_r + du_r), dz = z(1-z)(da_z + du_z), dn = (1-n^2)(da_n + dr u_n + r du_n),
// dh' = (1-z) dn + (h - n) dz + z dh, with du = P = U Q_h and da = p_in (null for layer 0).
extern "C" __global__ void gru_tangent_f32(TANGENT_ARGS) {
    const int g = 3, s = 1;
    const long long cols = (long long)batch * k;
    GRID_STRIDE_LOOP(idx, (long long)nets * cols * n) {
        const TangentIndex t = tangent_index(idx, batch, n, k);
        const long long j = t.j;
        const float *pc = p + (t.m * cols + t.c) * g * n;
        const float *gt = gates + (t.m * batch + t.b) * g * n;
        const float un = aux[(t.m * batch + t.b) * n + j];
        const float h = old_state[(t.m * batch + t.b) * s * n + j];
        const float *qc = q + t.m * q_net_stride + t.c * ld + row_off;
        float *zc = z + (t.m * cols + t.c) * ld + row_off;
        float da_r = 0.0f, da_z = 0.0f, da_n = 0.0f;
        if (p_in != nullptr) {
            const float *pic = p_in + (t.m * cols + t.c) * g * n;
            da_r = pic[j];
            da_z = pic[n + j];
            da_n = pic[2 * n + j];
        }
        const float r = gt[j], zg = gt[n + j], nn = gt[2 * n + j];
        const float dr = r * (1.0f - r) * (da_r + pc[j]);
        const float dz = zg * (1.0f - zg) * (da_z + pc[n + j]);
        const float dn = (1.0f - nn * nn) * (da_n + dr * un + r * pc[2 * n + j]);
        zc[j] = (1.0f - zg) * dn + (h - nn) * dz + zg * qc[j];
        (void)full;
        (void)eps;
        (void)gamma;
        (void)dt;
    }
}

// ---------------------------------------------------------------------------------------------
// lstm (PyTorch, gates [i; f; g; o]): y = W x + b_ih + U h + b_hh, c' = s(y_f) c + s(y_i) tanh(y_g),
// h' = s(y_o) tanh(c'); state [h; c]. Caches (i, f, g, o) and tanh(c').
extern "C" __global__ void lstm_forward_f32(FORWARD_ARGS) {
    const int g = 4, s = 2;
    GRID_STRIDE_LOOP(idx, (long long)nets * batch * n) {
        const ForwardIndex f = forward_index(idx, batch, n);
        const long long gcol = f.mb * g * n, scol = f.mb * s * n;
        const float *pi = pre_in + gcol;
        const float *pr = pre_rec + gcol;
        const float *bi = b_in + f.m * g * n;
        const float *br = b_rec + f.m * g * n;
        const long long j = f.j;
        const float ig = sigmoidf((pi[j] + bi[j]) + (pr[j] + br[j]));
        const float fg = sigmoidf((pi[n + j] + bi[n + j]) + (pr[n + j] + br[n + j]));
        const float gg = tanhf((pi[2 * n + j] + bi[2 * n + j]) + (pr[2 * n + j] + br[2 * n + j]));
        const float og = sigmoidf((pi[3 * n + j] + bi[3 * n + j]) + (pr[3 * n + j] + br[3 * n + j]));
        const float c = fg * old_state[scol + n + j] + ig * gg;
        const float tc = tanhf(c);
        const float h = og * tc;
        new_state[scol + j] = h;
        new_state[scol + n + j] = c;
        gates[gcol + j] = ig;
        gates[gcol + n + j] = fg;
        gates[gcol + 2 * n + j] = gg;
        gates[gcol + 3 * n + j] = og;
        aux[f.mb * n + j] = tc;
        (void)eps;
        (void)gamma;
        (void)dt;
        if (!isfinite(h) || !isfinite(c)) flag_nonfinite_state(status, status_step, f.mb, step);
    }
}

// lstm: dc' = f(1-f) c P_f + i(1-i) g P_i + i(1-g^2) P_g (+ f dc when full != 0),
// dh' = o(1-o) tanh(c') P_o + o (1 - tanh^2 c') dc'. Full state: rows [dh'; dc']; h-only
// (c frozen inside the step, the published reference): rows [dh'] only.
extern "C" __global__ void lstm_tangent_f32(TANGENT_ARGS) {
    const int g = 4, s = 2;
    const long long cols = (long long)batch * k;
    GRID_STRIDE_LOOP(idx, (long long)nets * cols * n) {
        const TangentIndex t = tangent_index(idx, batch, n, k);
        const long long j = t.j;
        const float *pc = p + (t.m * cols + t.c) * g * n;
        const float *gt = gates + (t.m * batch + t.b) * g * n;
        const float tc = aux[(t.m * batch + t.b) * n + j];
        const float c_old = old_state[(t.m * batch + t.b) * s * n + n + j];
        const float *qc = q + t.m * q_net_stride + t.c * ld + row_off;
        float *zc = z + (t.m * cols + t.c) * ld + row_off;
        const float ig = gt[j], fg = gt[n + j], gg = gt[2 * n + j], og = gt[3 * n + j];
        float dc = fg * (1.0f - fg) * c_old * pc[n + j] + ig * (1.0f - ig) * gg * pc[j] +
                   ig * (1.0f - gg * gg) * pc[2 * n + j];
        if (full) dc += fg * qc[n + j];
        const float dh = og * (1.0f - og) * tc * pc[3 * n + j] + og * (1.0f - tc * tc) * dc;
        zc[j] = dh;
        if (full) zc[n + j] = dc;
        (void)p_in;
        (void)eps;
        (void)gamma;
        (void)dt;
    }
}

// ---------------------------------------------------------------------------------------------
// asrnn: h' = h + eps tanh(M h + V x + b), M = W - W^T - gamma I assembled on the host (it is
// W_rec); aux = 1 - tanh^2(pre).
extern "C" __global__ void asrnn_forward_f32(FORWARD_ARGS) {
    const int g = 1, s = 1;
    GRID_STRIDE_LOOP(idx, (long long)nets * batch * n) {
        const ForwardIndex f = forward_index(idx, batch, n);
        const long long gcol = f.mb * g * n, scol = f.mb * s * n;
        const float pi = pre_in[gcol + f.j] + b_in[f.m * g * n + f.j];
        const float pr = pre_rec[gcol + f.j] + b_rec[f.m * g * n + f.j];
        const float a = tanhf(pi + pr);
        const float h = old_state[scol + f.j] + eps * a;
        new_state[scol + f.j] = h;
        aux[f.mb * n + f.j] = 1.0f - a * a;
        (void)gates;
        (void)gamma;
        (void)dt;
        if (!isfinite(h)) flag_nonfinite_state(status, status_step, f.mb, step);
    }
}

// asrnn: dh' = dh + eps (1 - tanh^2 pre) * P.
extern "C" __global__ void asrnn_tangent_f32(TANGENT_ARGS) {
    const int g = 1;
    const long long cols = (long long)batch * k;
    GRID_STRIDE_LOOP(idx, (long long)nets * cols * n) {
        const TangentIndex t = tangent_index(idx, batch, n, k);
        const float *pc = p + (t.m * cols + t.c) * g * n;
        const float *ax = aux + (t.m * batch + t.b) * n;
        const float *qc = q + t.m * q_net_stride + t.c * ld + row_off;
        float *zc = z + (t.m * cols + t.c) * ld + row_off;
        zc[t.j] = qc[t.j] + eps * ax[t.j] * pc[t.j];
        (void)p_in;
        (void)old_state;
        (void)gates;
        (void)full;
        (void)gamma;
        (void)dt;
    }
}

// ---------------------------------------------------------------------------------------------
// cornn: z' = z + dt (tanh(W_y y + W_z z + V x + b) - gamma y - eps z), y' = y + dt z';
// state [y; z], W_rec = [W_y  W_z] (G N x 2N) acting on the whole state; aux = 1 - tanh^2(pre).
extern "C" __global__ void cornn_forward_f32(FORWARD_ARGS) {
    const int g = 1, s = 2;
    GRID_STRIDE_LOOP(idx, (long long)nets * batch * n) {
        const ForwardIndex f = forward_index(idx, batch, n);
        const long long gcol = f.mb * g * n, scol = f.mb * s * n;
        const float pi = pre_in[gcol + f.j] + b_in[f.m * g * n + f.j];
        const float pr = pre_rec[gcol + f.j] + b_rec[f.m * g * n + f.j];
        const float a = tanhf(pi + pr);
        const float y = old_state[scol + f.j], zs = old_state[scol + n + f.j];
        const float z2 = zs + dt * (a - gamma * y - eps * zs);
        const float y2 = y + dt * z2;
        new_state[scol + n + f.j] = z2;
        new_state[scol + f.j] = y2;
        aux[f.mb * n + f.j] = 1.0f - a * a;
        (void)gates;
        if (!isfinite(y2) || !isfinite(z2)) flag_nonfinite_state(status, status_step, f.mb, step);
    }
}

// cornn: dz' = dz + dt((1 - tanh^2 pre) * P - gamma dy - eps dz), dy' = dy + dt dz', rows
// [dy'; dz'], P = [W_y W_z] [dy; dz].
extern "C" __global__ void cornn_tangent_f32(TANGENT_ARGS) {
    const int g = 1;
    const long long cols = (long long)batch * k;
    GRID_STRIDE_LOOP(idx, (long long)nets * cols * n) {
        const TangentIndex t = tangent_index(idx, batch, n, k);
        const long long j = t.j;
        const float *pc = p + (t.m * cols + t.c) * g * n;
        const float ax = aux[(t.m * batch + t.b) * n + j];
        const float *qc = q + t.m * q_net_stride + t.c * ld + row_off;
        float *zc = z + (t.m * cols + t.c) * ld + row_off;
        const float dy = qc[j], dzo = qc[n + j];
        const float dz = dzo + dt * (ax * pc[j] - gamma * dy - eps * dzo);
        zc[n + j] = dz;
        zc[j] = dy + dt * dz;
        (void)p_in;
        (void)old_state;
        (void)gates;
        (void)full;
    }
}
