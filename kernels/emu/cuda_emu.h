// A tiny CPU emulator of the CUDA features the kernels of this crate use, so that the very
// sources NVRTC compiles can be run and checked on a machine without a GPU (C++20, threads).
//
// Model: blocks run one after another; the threads of a block are real std::threads meeting at
// a std::barrier for __syncthreads(); warps exchange values through a per-warp buffer and
// barrier for __shfl_*_sync; `__shared__` variables are function-level statics (one block at a
// time, so they are per block); `extern __shared__` is rewritten by the test into a pointer to
// emu_dynamic_smem(). Slow, but exact about the synchronisation the kernels rely on: a missing
// __syncthreads() shows up as a data race only probabilistically, a wrong index always.
#pragma once

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static

using std::copysign;
using std::fabs;
using std::isfinite;
using std::isinf;
using std::log;
using std::sqrt;

struct EmuWarp {
    double buf[32];
    std::unique_ptr<std::barrier<>> bar;
};

struct EmuBlock {
    std::unique_ptr<std::barrier<>> bar;
    std::vector<EmuWarp> warps;
};

inline thread_local EmuBlock *emu_block = nullptr;

inline float *emu_dynamic_smem() {
    static std::vector<float> mem(1 << 22);
    return mem.data();
}

inline void __syncthreads() { emu_block->bar->arrive_and_wait(); }

inline unsigned emu_linear_tid() {
    return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}

template <class T>
inline T emu_exchange(T v, int src) {
    const unsigned tid = emu_linear_tid();
    EmuWarp &w = emu_block->warps[tid / 32];
    const int lane = tid % 32;
    w.buf[lane] = (double)v;
    w.bar->arrive_and_wait();
    const T out = (src >= 0 && src < 32) ? (T)w.buf[src] : v;
    w.bar->arrive_and_wait();
    return out;
}

template <class T>
inline T __shfl_down_sync(unsigned, T v, int offset) {
    const int lane = emu_linear_tid() % 32;
    return emu_exchange(v, lane + offset < 32 ? lane + offset : -1);
}

template <class T>
inline T __shfl_sync(unsigned, T v, int src) {
    return emu_exchange(v, src);
}

inline int atomicCAS(int *address, int compare, int val) {
    std::atomic_ref<int> a(*address);
    int expected = compare;
    a.compare_exchange_strong(expected, val);
    return expected;
}

// Launch `kernel(args...)` on grid x block; returns after every block finished.
template <class... P, class... A>
void emu_launch(dim3 grid, dim3 block, void (*kernel)(P...), A... args) {
    gridDim = grid;
    blockDim = block;
    const unsigned nthreads = block.x * block.y * block.z;
    if (nthreads % 32 != 0) {
        std::fprintf(stderr, "emu: block size must be a multiple of 32\n");
        std::abort();
    }
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                EmuBlock blk;
                blk.bar = std::make_unique<std::barrier<>>(nthreads);
                blk.warps.resize(nthreads / 32);
                for (auto &w : blk.warps) w.bar = std::make_unique<std::barrier<>>(32);
                std::vector<std::thread> threads;
                threads.reserve(nthreads);
                for (unsigned tz = 0; tz < block.z; ++tz)
                    for (unsigned ty = 0; ty < block.y; ++ty)
                        for (unsigned tx = 0; tx < block.x; ++tx)
                            threads.emplace_back([&, tx, ty, tz, bx, by, bz] {
                                threadIdx = dim3{tx, ty, tz};
                                blockIdx = dim3{bx, by, bz};
                                emu_block = &blk;
                                kernel(args...);
                            });
                for (auto &t : threads) t.join();
            }
}
