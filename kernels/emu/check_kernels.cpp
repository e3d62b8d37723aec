// Runs the kernels of aelle-kernels on the CPU emulator (cuda_emu.h) and checks them:
//   * gemm_strided_batched_f32 against a naive double-precision product (both op(A), beta 0 and
//     not, a zero stride, more batch entries than grid.z);
//   * householder_qr_{shared,global}_f32: Q orthonormal, R = Q^T Z upper triangular with a
//     positive diagonal, the f64 sums equal ln R_ii, divergence codes (R_ii = 0, NaN), blocks
//     already diverged left alone, grid-striding over blocks, several block sizes;
//   * every <cell>_tangent_f32 against central finite differences of <cell>_forward_f32 along
//     the joint direction (state q, input v) -- i.e. Z = J Q + (d/du) V --, embedded at a row
//     offset in a taller tangent block, with the GRU's separate input term p_in; LSTM full and
//     h-only; the forward kernels' non-finite flag.
// Prints one line per check and "ALL PASSED" (exit 0) or the failures (exit 1).
#include "cuda_emu.h"

#include "cells.cu"
#include "gemm.cu"
#include "qr.cu"

#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>

static int failures = 0;

#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (!(cond)) {                                              \
            std::printf("  FAIL (line %d): ", __LINE__);            \
            std::printf(__VA_ARGS__);                               \
            std::printf("\n");                                      \
            ++failures;                                             \
        }                                                           \
    } while (0)

struct Rng {
    std::mt19937_64 g;
    explicit Rng(uint64_t s) : g(s) {}
    float uni(float p) { return std::uniform_real_distribution<float>(-p, p)(g); }
    float normal() { return std::normal_distribution<float>(0.0f, 1.0f)(g); }
    std::vector<float> uniform(size_t n, float p) {
        std::vector<float> v(n);
        for (auto &x : v) x = uni(p);
        return v;
    }
    std::vector<float> normals(size_t n, float scale = 1.0f) {
        std::vector<float> v(n);
        for (auto &x : v) x = scale * normal();
        return v;
    }
};

// ------------------------------------------------------------------------------------------
static void check_gemm() {
    Rng r(1);
    const int m = 19, n = 23, kk = 37, batch = 3;
    for (int transa = 0; transa < 2; ++transa)
        for (int beta_on = 0; beta_on < 2; ++beta_on)
            for (int shared_b = 0; shared_b < 2; ++shared_b) {
                const int lda = transa ? kk + 2 : m + 1;
                const int a_cols = transa ? m : kk;
                const long long stride_a = (long long)lda * a_cols + 5;
                const int ldb = kk + 3;
                const long long stride_b = shared_b ? 0 : (long long)ldb * n + 1;
                const int ldc = m + 2;
                const long long stride_c = (long long)ldc * n + 4;
                auto a = r.uniform(stride_a * batch, 1.0f);
                auto b = r.uniform((shared_b ? ldb * n : stride_b * batch), 1.0f);
                auto c = r.uniform(stride_c * batch, 1.0f);
                if (!beta_on) std::fill(c.begin(), c.end(), NAN);  // must not be read
                auto c0 = c;
                const float alpha = 0.75f, beta = beta_on ? 0.5f : 0.0f;
                emu_launch(dim3{(n + 15) / 16, (m + 15) / 16, 2}, dim3{16, 16, 1},
                           gemm_strided_batched_f32, transa, m, n, kk, alpha, a.data(), lda,
                           stride_a, b.data(), ldb, stride_b, beta, c.data(), ldc, stride_c,
                           batch);
                double worst = 0.0;
                for (int i = 0; i < batch; ++i)
                    for (int col = 0; col < n; ++col)
                        for (int row = 0; row < m; ++row) {
                            double acc = 0.0;
                            for (int l = 0; l < kk; ++l) {
                                const float av = transa ? a[i * stride_a + (long long)row * lda + l]
                                                        : a[i * stride_a + (long long)l * lda + row];
                                acc += (double)av * b[i * stride_b + (long long)col * ldb + l];
                            }
                            const long long at = i * stride_c + (long long)col * ldc + row;
                            double want = alpha * acc;
                            if (beta_on) want += beta * (double)c0[at];
                            worst = std::max(worst, std::fabs(want - (double)c[at]));
                        }
                CHECK(worst < 1e-4, "gemm transa=%d beta=%d shared_b=%d: max error %.3e",
                      transa, beta_on, shared_b, worst);
            }
    std::printf("gemm_strided_batched_f32: checked\n");
}

// ------------------------------------------------------------------------------------------
static void check_qr(bool shared, int d, int k, int threads) {
    Rng r(100 + d * 7 + k);
    const int blocks = 5;
    const long long bs = (long long)d * k;
    auto q = r.normals(blocks * bs);
    const auto z = q;
    std::vector<double> sums(blocks * k, 0.0), comps(blocks * k, 0.0);
    std::vector<int> status(blocks, 0), status_step(blocks, 0), status_index(blocks, 0),
        accumulated(blocks, 0);
    // block 1: a zero column -> R_jj = 0; block 2: NaN -> non-finite; block 3: already diverged.
    const int zero_col = std::min(1, k - 1);
    for (int i = 0; i < d; ++i) q[1 * bs + (long long)zero_col * d + i] = 0.0f;
    q[2 * bs + 0] = NAN;
    status[3] = 1;
    const auto before = q;
    const int step = 7, in_phase = 5;
    if (shared) {
        emu_launch(dim3{2, 1, 1}, dim3{(unsigned)threads, 1, 1}, householder_qr_shared_f32,
                   blocks, d, k, q.data(), sums.data(), comps.data(), status.data(),
                   status_step.data(), status_index.data(), accumulated.data(), step, 1,
                   in_phase);
    } else {
        emu_launch(dim3{2, 1, 1}, dim3{(unsigned)threads, 1, 1}, householder_qr_global_f32,
                   blocks, d, k, q.data(), sums.data(), comps.data(), status.data(),
                   status_step.data(), status_index.data(), accumulated.data(), step, 1,
                   in_phase);
    }
    const char *name = shared ? "shared" : "global";
    for (int blk : {0, 4}) {
        const float *Q = q.data() + blk * bs;
        const float *Z = z.data() + blk * bs;
        double orth = 0.0, lower = 0.0, logerr = 0.0, znorm = 0.0;
        bool positive = true;
        for (long long e = 0; e < bs; ++e) znorm = std::max(znorm, (double)std::fabs(Z[e]));
        for (int i = 0; i < k; ++i)
            for (int j = 0; j < k; ++j) {
                double qq = 0.0, rij = 0.0;
                for (int t = 0; t < d; ++t) {
                    qq += (double)Q[i * d + t] * Q[j * d + t];
                    rij += (double)Q[i * d + t] * Z[j * d + t];  // R = Q^T Z
                }
                orth = std::max(orth, std::fabs(qq - (i == j ? 1.0 : 0.0)));
                if (i > j) lower = std::max(lower, std::fabs(rij) / znorm);
                if (i == j) {
                    positive = positive && rij > 0.0;
                    logerr = std::max(
                        logerr, std::fabs(sums[blk * k + i] + comps[blk * k + i] - std::log(rij)));
                }
            }
        CHECK(status[blk] == 0 && accumulated[blk] == in_phase, "qr %s d=%d k=%d block %d status %d",
              name, d, k, blk, status[blk]);
        CHECK(orth < 2e-5 * std::max(1, d / 16), "qr %s d=%d k=%d: |Q^T Q - I| = %.3e", name, d,
              k, orth);
        CHECK(lower < 2e-5 * std::max(1, d / 16), "qr %s d=%d k=%d: R not triangular (%.3e)", name,
              d, k, lower);
        CHECK(positive, "qr %s d=%d k=%d: diag(R) not positive", name, d, k);
        CHECK(logerr < 1e-4, "qr %s d=%d k=%d: ln R_ii off by %.3e", name, d, k, logerr);
    }
    CHECK(status[1] == 2 && status_step[1] == step && status_index[1] == zero_col,
          "qr %s d=%d k=%d: zero column gave status %d step %d index %d", name, d, k, status[1],
          status_step[1], status_index[1]);
    bool zeroed = true;
    for (long long e = 0; e < bs; ++e) zeroed = zeroed && q[1 * bs + e] == 0.0f;
    CHECK(zeroed && sums[1 * k] == 0.0 && accumulated[1] == 0, "qr %s: diverged block not cleared",
          name);
    CHECK(status[2] == 3 && status_index[2] == 0, "qr %s d=%d k=%d: NaN gave status %d index %d",
          name, d, k, status[2], status_index[2]);
    bool untouched = true;
    for (long long e = 0; e < bs; ++e) untouched = untouched && q[3 * bs + e] == before[3 * bs + e];
    CHECK(untouched && status[3] == 1 && sums[3 * k] == 0.0, "qr %s: diverged block was touched",
          name);
    std::printf("householder_qr_%s_f32 d=%d k=%d threads=%d: checked\n", name, d, k, threads);
}

// ------------------------------------------------------------------------------------------
using ForwardFn = void (*)(int, int, int, float, float, float, const float *, const float *,
                           const float *, const float *, const float *, float *, float *, float *,
                           int *, int *, int);
using TangentFn = void (*)(int, int, int, int, int, int, long long, int, float, float, float,
                           const float *, const float *, const float *, float *, const float *,
                           const float *, const float *);

struct CellSpec {
    const char *name;
    ForwardFn forward;
    TangentFn tangent;
    int gates, state_mult, rec_mult;
    bool full;     // LSTM (h, c) tangent (else h-only); other cells: tangent = state
    bool gru;      // input term kept apart (p_in)
    float eps, gamma, dt;
};

struct Population {
    int M, B, N, I, G, S, R;
    std::vector<float> w_in, w_rec, b_in, b_rec;
};

struct ForwardOut {
    std::vector<float> next, gates, aux;
    std::vector<int> status, status_step;
};

static ForwardOut run_forward(const CellSpec &c, const Population &p, const std::vector<float> &x,
                              const std::vector<float> &u, int step) {
    const int GN = p.G * p.N;
    std::vector<float> pre_in((size_t)p.M * p.B * GN), pre_rec((size_t)p.M * p.B * GN);
    for (int m = 0; m < p.M; ++m)
        for (int b = 0; b < p.B; ++b)
            for (int row = 0; row < GN; ++row) {
                double ai = 0.0, ar = 0.0;
                for (int i = 0; i < p.I; ++i)
                    ai += (double)p.w_in[((size_t)m * GN + row) * p.I + i] * u[((size_t)m * p.B + b) * p.I + i];
                for (int j = 0; j < p.R; ++j)
                    ar += (double)p.w_rec[((size_t)m * GN + row) * p.R + j] * x[((size_t)m * p.B + b) * p.S + j];
                pre_in[((size_t)m * p.B + b) * GN + row] = (float)ai;
                pre_rec[((size_t)m * p.B + b) * GN + row] = (float)ar;
            }
    ForwardOut o;
    o.next.assign((size_t)p.M * p.B * p.S, 0.0f);
    o.gates.assign((size_t)p.M * p.B * GN, 0.0f);
    o.aux.assign((size_t)p.M * p.B * p.N, 0.0f);
    o.status.assign(p.M * p.B, 0);
    o.status_step.assign(p.M * p.B, 0);
    emu_launch(dim3{2, 1, 1}, dim3{64, 1, 1}, c.forward, p.M, p.B, p.N, c.eps, c.gamma, c.dt,
               (const float *)pre_in.data(), (const float *)pre_rec.data(),
               (const float *)p.b_in.data(), (const float *)p.b_rec.data(), x.data(),
               o.next.data(), o.gates.data(), o.aux.data(), o.status.data(),
               o.status_step.data(), step);
    return o;
}

static void check_cell(const CellSpec &c, bool with_input_term) {
    Rng r(7 + c.gates * 13 + c.state_mult + (c.full ? 1 : 0));
    Population p;
    p.M = 2, p.B = 3, p.N = 5, p.I = 4, p.G = c.gates, p.S = c.state_mult * p.N,
    p.R = c.rec_mult * p.N;
    const int GN = p.G * p.N;
    p.w_in = r.uniform((size_t)p.M * GN * p.I, 0.6f);
    p.w_rec = r.uniform((size_t)p.M * GN * p.R, 0.6f);
    p.b_in = r.uniform((size_t)p.M * GN, 0.3f);
    p.b_rec = r.uniform((size_t)p.M * GN, 0.3f);
    const int St = c.full ? p.S : p.N;  // tangent rows of the layer
    const int k = 3, row_off = 2, ld = St + 4, cols = p.B * k;
    auto x = r.normals((size_t)p.M * p.B * p.S, 0.5f);
    auto u = r.normals((size_t)p.M * p.B * p.I, 1.0f);
    const ForwardOut base = run_forward(c, p, x, u, 0);
    auto q = r.normals((size_t)p.M * ld * cols, 1.0f);
    std::vector<float> v((size_t)p.M * cols * p.I, 0.0f);
    if (with_input_term) v = r.normals(v.size(), 1.0f);
    // P = U_rec Q_rec (+ W_in V unless kept apart), p_in = W_in V.
    std::vector<float> P((size_t)p.M * cols * GN), Pin((size_t)p.M * cols * GN);
    for (int m = 0; m < p.M; ++m)
        for (int col = 0; col < cols; ++col)
            for (int row = 0; row < GN; ++row) {
                double a = 0.0, ai = 0.0;
                for (int j = 0; j < p.R; ++j)
                    a += (double)p.w_rec[((size_t)m * GN + row) * p.R + j] *
                         q[((size_t)m * cols + col) * ld + row_off + j];
                for (int i = 0; i < p.I; ++i)
                    ai += (double)p.w_in[((size_t)m * GN + row) * p.I + i] * v[((size_t)m * cols + col) * p.I + i];
                const size_t at = ((size_t)m * cols + col) * GN + row;
                P[at] = (float)(c.gru ? a : a + ai);
                Pin[at] = (float)ai;
            }
    std::vector<float> z((size_t)p.M * ld * cols, 12345.0f);
    const float *p_in = (c.gru && with_input_term) ? Pin.data() : nullptr;
    emu_launch(dim3{3, 1, 1}, dim3{64, 1, 1}, c.tangent, p.M, p.B, p.N, k, ld, row_off,
               (long long)ld * cols, c.full ? 1 : 0, c.eps, c.gamma, c.dt,
               (const float *)P.data(), p_in, (const float *)q.data(), z.data(), x.data(),
               (const float *)base.gates.data(), (const float *)base.aux.data());
    // Central differences along (q column, v column), all (m, b) at once per local column j.
    const float h = 1e-2f;
    double worst = 0.0;
    bool others_untouched = true;
    for (int j = 0; j < k; ++j) {
        std::vector<float> fd[2];
        for (int sgn = 0; sgn < 2; ++sgn) {
            const float s = sgn == 0 ? h : -h;
            auto xs = x;
            auto us = u;
            for (int m = 0; m < p.M; ++m)
                for (int b = 0; b < p.B; ++b) {
                    const int col = b * k + j;
                    for (int t = 0; t < St; ++t)
                        xs[((size_t)m * p.B + b) * p.S + t] += s * q[((size_t)m * cols + col) * ld + row_off + t];
                    for (int i = 0; i < p.I; ++i)
                        us[((size_t)m * p.B + b) * p.I + i] += s * v[((size_t)m * cols + col) * p.I + i];
                }
            fd[sgn] = run_forward(c, p, xs, us, 0).next;
        }
        for (int m = 0; m < p.M; ++m)
            for (int b = 0; b < p.B; ++b) {
                const int col = b * k + j;
                for (int t = 0; t < St; ++t) {
                    const size_t si = ((size_t)m * p.B + b) * p.S + t;
                    const double want = ((double)fd[0][si] - fd[1][si]) / (2.0 * h);
                    const double got = z[((size_t)m * cols + col) * ld + row_off + t];
                    worst = std::max(worst, std::fabs(got - want) / (1.0 + std::fabs(want)));
                }
                for (int t = 0; t < ld; ++t)
                    if (t < row_off || t >= row_off + St)
                        others_untouched = others_untouched &&
                                           z[((size_t)m * cols + col) * ld + t] == 12345.0f;
            }
    }
    CHECK(worst < 3e-3, "%s%s: tangent vs finite differences, max error %.3e", c.name,
          with_input_term ? " (+input term)" : "", worst);
    CHECK(others_untouched, "%s: rows outside the layer were written", c.name);
    bool status_ok = true;
    for (int s : base.status) status_ok = status_ok && s == 0;
    CHECK(status_ok, "%s: finite forward step flagged", c.name);
    std::printf("%s%s: tangent vs central differences max error %.2e\n", c.name,
                with_input_term ? " (+input term)" : "", worst);
}

static void check_nonfinite_flag(const CellSpec &c) {
    Rng r(99);
    Population p;
    p.M = 2, p.B = 2, p.N = 3, p.I = 2, p.G = c.gates, p.S = c.state_mult * p.N,
    p.R = c.rec_mult * p.N;
    const int GN = p.G * p.N;
    p.w_in = r.uniform((size_t)p.M * GN * p.I, 0.5f);
    p.w_rec = r.uniform((size_t)p.M * GN * p.R, 0.5f);
    p.b_in.assign((size_t)p.M * GN, 0.0f);
    p.b_rec.assign((size_t)p.M * GN, 0.0f);
    auto x = r.normals((size_t)p.M * p.B * p.S, 0.5f);
    auto u = r.normals((size_t)p.M * p.B * p.I, 1.0f);
    u[(1 * p.B + 0) * p.I + 1] = NAN;  // network 1, sequence 0
    const ForwardOut o = run_forward(c, p, x, u, 4);
    CHECK(o.status[2] == 1 && o.status_step[2] == 4 && o.status[0] == 0 && o.status[1] == 0 &&
              o.status[3] == 0,
          "%s: non-finite state not flagged at the right sequence", c.name);
    const ForwardOut replay = run_forward(c, p, x, u, -1);
    CHECK(replay.status[2] == 0, "%s: replay step (step < 0) flagged", c.name);
}

int main() {
    check_gemm();
    const int sizes[][2] = {{1, 1}, {5, 3}, {5, 5}, {33, 3}, {33, 33}, {64, 64}, {128, 7}, {128, 128}};
    for (const auto &s : sizes) {
        check_qr(true, s[0], s[1], s[0] <= 64 ? 128 : 256);
        check_qr(false, s[0], s[1], 64);
    }
    check_qr(false, 150, 40, 128);
    check_qr(true, 20, 20, 32);  // a single warp
    const CellSpec cells[] = {
        {"rnn", rnn_forward_f32, rnn_tangent_f32, 1, 1, 1, true, false, 0.0f, 0.0f, 0.0f},
        {"gru", gru_forward_f32, gru_tangent_f32, 3, 1, 1, true, true, 0.0f, 0.0f, 0.0f},
        {"lstm", lstm_forward_f32, lstm_tangent_f32, 4, 2, 1, true, false, 0.0f, 0.0f, 0.0f},
        {"lstm h-only", lstm_forward_f32, lstm_tangent_f32, 4, 2, 1, false, false, 0.0f, 0.0f,
         0.0f},
        {"asrnn", asrnn_forward_f32, asrnn_tangent_f32, 1, 1, 1, true, false, 0.1f, 0.5f, 0.0f},
        {"cornn", cornn_forward_f32, cornn_tangent_f32, 1, 2, 2, true, false, 4.7f, 2.7f,
         0.042f},
    };
    for (const auto &c : cells) {
        check_cell(c, false);
        check_cell(c, true);
        check_nonfinite_flag(c);
    }
    if (failures == 0) {
        std::printf("ALL PASSED\n");
        return 0;
    }
    std::printf("%d FAILURES\n", failures);
    return 1;
}
