#!/usr/bin/env python3
"""PyTorch CPU timing of the training step that rnn-models' bench_population measures.

LSTM N=64 (nn.LSTM(28, 64, batch_first=True)) + nn.Linear(64, 10) readout on the last step,
cross-entropy, Adam lr 0.01, batch 128, inputs [128, 28, 28] (row-wise sequential MNIST
shape; random data: timing only). Prints samples/s and the implied time of one 8,000-sample
epoch (the embedded MNIST train split), for 1 and 2 intra-op threads.

How to run (from the repository root):
    pip install torch
    python3 scripts/reference/bench_torch_lstm.py [STEPS]

Measured with torch 2.5.1 (CPU execution of the PyPI cu124 wheel).
"""

import sys
import time

import torch
import torch.nn as nn


def bench(threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    lstm = nn.LSTM(28, 64, batch_first=True)
    fc = nn.Linear(64, 10)
    opt = torch.optim.Adam(list(lstm.parameters()) + list(fc.parameters()), lr=0.01)
    x = torch.randn(128, 28, 28)
    y = torch.randint(0, 10, (128,))

    def step():
        opt.zero_grad()
        h, _ = lstm(x)
        loss = nn.functional.cross_entropy(fc(h[:, -1]), y)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    wall = time.perf_counter() - t0
    return steps * 128 / wall


def main():
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(f"torch {torch.__version__}, LSTM N=64, batch 128, T=28, I=28, {steps} steps")
    for threads in (1, 2):
        sps = bench(threads, steps)
        print(f"threads={threads}: {sps:8.0f} samples/s, epoch(8000) {8000 / sps:6.2f} s")


if __name__ == "__main__":
    main()
