#!/usr/bin/env python3
"""PyTorch reference for rnn-models: forward, loss, gradients and one Adam step.

What it produces
----------------
``crates/rnn-models/tests/fixtures/torch_step_{name}.safetensors`` for
name in rnn, gru, lstm, asrnn, cornn (2 stacked layers, biases, last-step classification)
and lstm_perstep (1 layer, per-step classification). Each file, all float64:

* parameters under the checkpoint names ``rnn.weight_ih_l0`` ... and ``fc.weight``,
  ``fc.bias`` (docs/checkpoint-format.md), every entry ~ U(-0.5, 0.5);
* ``inputs`` [B=4, T=5, I=3] ~ N(0, 1); ``targets`` [B] (or [B, T]) class ids stored as F64;
* ``hidden`` [B, T, N=6]: top-layer output at every step (h, or y for cornn);
* ``logits`` [B, C=3] (or [B*T, C], batch-major); ``loss`` [1]: mean cross-entropy;
* ``grad.<name>``: d loss / d parameter;
* ``after.<name>``: parameters after one ``torch.optim.Adam(lr=0.01)`` step with
  ``clip_grad_norm_(max_norm=0.001)`` (small enough to clip);
* ``after_adam_wd.<name>``: the same with ``Adam(lr=0.01, weight_decay=0.1)`` (L2 term);
* ``after_adamw.<name>``: two steps of ``AdamW(lr=0.01, weight_decay=0.1)`` on the same batch
  (decoupled decay; the second step exercises the bias corrections at t = 2), same clipping.

rnn/gru/lstm use ``nn.RNN(tanh)``/``nn.GRU``/``nn.LSTM``; asrnn and cornn are written out
below (equations of docs/checkpoint-format.md; asrnn eps=0.01, gamma=0.5;
cornn dt=0.042, gamma=2.7, eps=4.7).

How to run (from the repository root)
-------------------------------------
    pip install torch safetensors numpy
    python3 scripts/reference/rnn_models_step.py

Generated with torch 2.5.1 (CPU), safetensors 0.8.0. Deterministic (torch.manual_seed).
"""

import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

OUT = "crates/rnn-models/tests/fixtures"
B, T, I, N, C = 4, 5, 3, 6, 3
LR, CLIP = 0.01, 0.001


class ASRNN(nn.Module):
    def __init__(self, layers, eps, gamma):
        super().__init__()
        self.layers, self.eps, self.gamma = layers, eps, gamma
        for l in range(layers):
            i = I if l == 0 else N
            setattr(self, f"weight_ih_l{l}", nn.Parameter(torch.empty(N, i)))
            setattr(self, f"weight_hh_l{l}", nn.Parameter(torch.empty(N, N)))
            setattr(self, f"bias_l{l}", nn.Parameter(torch.empty(N)))

    def forward(self, x):
        for l in range(self.layers):
            V, W, b = (getattr(self, f"{k}_l{l}") for k in ("weight_ih", "weight_hh", "bias"))
            A = W - W.T - self.gamma * torch.eye(N, dtype=x.dtype)
            h = torch.zeros(x.shape[0], N, dtype=x.dtype)
            outs = []
            for t in range(x.shape[1]):
                h = h + self.eps * torch.tanh(h @ A.T + x[:, t] @ V.T + b)
                outs.append(h)
            x = torch.stack(outs, 1)
        return x


class CoRNN(nn.Module):
    def __init__(self, layers, dt, gamma, eps):
        super().__init__()
        self.layers, self.dt, self.gamma, self.eps = layers, dt, gamma, eps
        for l in range(layers):
            i = I if l == 0 else N
            setattr(self, f"weight_ih_l{l}", nn.Parameter(torch.empty(N, i)))
            setattr(self, f"weight_hy_l{l}", nn.Parameter(torch.empty(N, N)))
            setattr(self, f"weight_hz_l{l}", nn.Parameter(torch.empty(N, N)))
            setattr(self, f"bias_l{l}", nn.Parameter(torch.empty(N)))

    def forward(self, x):
        for l in range(self.layers):
            V, Wy, Wz, b = (getattr(self, f"{k}_l{l}")
                            for k in ("weight_ih", "weight_hy", "weight_hz", "bias"))
            y = torch.zeros(x.shape[0], N, dtype=x.dtype)
            z = torch.zeros_like(y)
            outs = []
            for t in range(x.shape[1]):
                pre = y @ Wy.T + z @ Wz.T + x[:, t] @ V.T + b
                z = z + self.dt * (torch.tanh(pre) - self.gamma * y - self.eps * z)
                y = y + self.dt * z
                outs.append(y)
            x = torch.stack(outs, 1)
        return x


class Net(nn.Module):
    def __init__(self, arch, layers, per_step):
        super().__init__()
        self.arch, self.per_step = arch, per_step
        if arch == "rnn":
            self.rnn = nn.RNN(I, N, layers, nonlinearity="tanh", batch_first=True)
        elif arch == "gru":
            self.rnn = nn.GRU(I, N, layers, batch_first=True)
        elif arch == "lstm":
            self.rnn = nn.LSTM(I, N, layers, batch_first=True)
        elif arch == "asrnn":
            self.rnn = ASRNN(layers, eps=0.01, gamma=0.5)
        else:
            self.rnn = CoRNN(layers, dt=0.042, gamma=2.7, eps=4.7)
        self.fc = nn.Linear(N, C)

    def forward(self, x):
        h = self.rnn(x)
        if isinstance(h, tuple):
            h = h[0]
        z = h.reshape(-1, N) if self.per_step else h[:, -1]
        return h, self.fc(z)


def make(name, seed):
    torch.manual_seed(seed)
    arch = name.split("_")[0]
    per_step = name.endswith("perstep")
    layers = 1 if per_step else 2
    net = Net(arch, layers, per_step).double()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.5, 0.5)
    x = torch.randn(B, T, I, dtype=torch.float64)
    y = torch.randint(0, C, (B, T) if per_step else (B,))
    tensors = {k: v.detach().clone() for k, v in net.state_dict().items()}
    hidden, logits = net(x)
    loss = nn.functional.cross_entropy(logits, y.reshape(-1))
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    opt.zero_grad()
    loss.backward()
    for k, p in net.named_parameters():
        tensors[f"grad.{k}"] = p.grad.detach().clone()
    torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=CLIP)
    opt.step()
    for k, p in net.named_parameters():
        tensors[f"after.{k}"] = p.detach().clone()
    for tag, make_opt, steps in (
        ("after_adam_wd", lambda ps: torch.optim.Adam(ps, lr=LR, weight_decay=0.1), 1),
        ("after_adamw", lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=0.1), 2),
    ):
        with torch.no_grad():
            for k, p in net.named_parameters():
                p.copy_(tensors[k])
        opt2 = make_opt(net.parameters())
        for _ in range(steps):
            opt2.zero_grad()
            _, lg = net(x)
            nn.functional.cross_entropy(lg, y.reshape(-1)).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=CLIP)
            opt2.step()
        for k, p in net.named_parameters():
            tensors[f"{tag}.{k}"] = p.detach().clone()
    tensors["inputs"] = x
    tensors["targets"] = y.double()
    tensors["hidden"] = hidden.detach()
    tensors["logits"] = logits.detach()
    tensors["loss"] = loss.detach().reshape(1)
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    md = {"arch": arch, "hidden_size": str(N), "input_size": str(I), "num_layers": str(layers),
          "bias": "true", "classes": str(C), "head": "per_step_class" if per_step else "last_step_class",
          "lr": str(LR), "grad_clip": str(CLIP), "torch_version": torch.__version__,
          "generator": "scripts/reference/rnn_models_step.py"}
    if arch == "asrnn":
        md.update(eps="0.01", gamma="0.5")
    if arch == "cornn":
        md.update(dt="0.042", gamma="2.7", eps="4.7")
    return tensors, md


def main():
    os.makedirs(OUT, exist_ok=True)
    for i, name in enumerate(["rnn", "gru", "lstm", "asrnn", "cornn", "lstm_perstep"]):
        tensors, md = make(name, 100 + i)
        path = os.path.join(OUT, f"torch_step_{name}.safetensors")
        save_file(tensors, path, metadata=md)
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
