#!/usr/bin/env python3
"""Train a small LSTM on the embedded row-wise sequential MNIST in PyTorch and follow its
Lyapunov spectrum (and, with a trained AeLLE model, its latent and predicted probability of
ending high performing) every epoch with aelle.lyapunov_spectrum and aelle.EpochMonitor.

Data: the 10,000 MNIST digits embedded in the datasets crate
(crates/datasets/data/mnist-10k, gzipped IDX, grouped by label), split 8,000 / 2,000 stratified
by class like ``datasets::mnist_10k_split`` (20 % of each class to test; numpy's generator, so
not the same images as the Rust split), pixels / 255, each image a sequence of 28 rows of 28
pixels.
Driving inputs of the spectra: 15 fixed test images (the same every epoch).

    python examples/python/smnist_lstm_monitor.py [--epochs 3] [--hidden 32]
        [--aelle runs/default] [--csv monitor.csv]

--aelle takes a run folder (orchestrator run) or its aelle/pretrained/model.safetensors.
"""

import argparse
import gzip
import time
from pathlib import Path

import numpy as np
import torch

import aelle

DATA = Path(__file__).resolve().parents[2] / "crates" / "datasets" / "data" / "mnist-10k"


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class Classifier(torch.nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = torch.nn.LSTM(28, hidden, batch_first=True)
        self.readout = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        h, _ = self.lstm(x)
        return self.readout(h[:, -1])


def evaluate(net, x, y):
    with torch.no_grad():
        logits = net(x)
        return torch.nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--aelle", help="run folder or AeLLE model file (optional)")
    ap.add_argument("--csv", help="write the monitor's table here")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    images = read_idx(DATA / "mnist-10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = read_idx(DATA / "mnist-10k-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(20261127)
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):  # the file is grouped by label: a stratified split
        idx = rng.permutation(np.flatnonzero(labels == c))
        test[idx[:round(0.2 * len(idx))]] = True
    x_train, y_train = torch.from_numpy(images[~test]), torch.from_numpy(labels[~test])
    x_test, y_test = torch.from_numpy(images[test]), torch.from_numpy(labels[test])
    driving = x_test[rng.choice(len(x_test), 15, replace=False)]  # [15, 28, 28]: B = 15, T = 28, I = 28

    net = Classifier(args.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    model = aelle.AeLLE.load(args.aelle) if args.aelle else None
    monitor = aelle.EpochMonitor(driving, model=model)

    def record(epoch):
        loss, acc = evaluate(net, x_test, y_test)
        t0 = time.perf_counter()
        row = monitor.record(net.lstm, epoch=epoch, test_loss=loss, test_accuracy=acc)
        took = time.perf_counter() - t0
        extra = f", p(high) {row['p_high']:.3f}" if "p_high" in row else ""
        print(f"epoch {epoch}: test loss {loss:.4f}, accuracy {acc:.3f}; lambda_max {row['lambda_max']:+.4f}, "
              f"sum {row['sum']:+.3f}, KY dim {row['kaplan_yorke']:.2f}{extra} (spectrum {took * 1e3:.0f} ms)")

    record(0)
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(len(x_train))
        for i in range(0, len(x_train), 100):
            idx = perm[i:i + 100]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x_train[idx]), y_train[idx]).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        record(epoch)
    s = monitor.spectra[-1]
    print(f"final spectrum of the (h, c) state: {s.k} exponents ({s.units}), "
          f"top 4 {np.round(s.mean[:4], 4).tolist()}, std over the 15 sequences {np.round(s.std[:4], 4).tolist()}")
    if args.csv:
        monitor.to_csv(args.csv)
        print("wrote", args.csv)


if __name__ == "__main__":
    main()
