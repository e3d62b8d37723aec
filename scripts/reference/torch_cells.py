#!/usr/bin/env python3
"""PyTorch reference fixtures for le-engine's cell forward passes.

What it produces
----------------
Six safetensors files under ``crates/le-engine/tests/fixtures/``:

    torch_{rnn,gru,lstm}_l1_bias.safetensors     (num_layers=1, bias=True)
    torch_{rnn,gru,lstm}_l2_nobias.safetensors   (num_layers=2, bias=False)

Each holds, all in float64:

* the module's parameters under ``module.state_dict()`` names with the prefix ``rnn.``
  (``rnn.weight_ih_l0``, ``rnn.weight_hh_l0``, ``rnn.bias_ih_l0``, ``rnn.bias_hh_l0``,
  ``..._l1``), every entry drawn from U(-0.5, 0.5) (PyTorch's own init is overwritten so
  that the dynamics are non-trivial);
* ``inputs`` [B=3, T=7, I=5] ~ N(0, 1);
* ``output`` [3, 7, 8]: the module's output (top-layer h at every step), zero initial state;
* ``h_n`` [layers, 3, 8]: final hidden state of every layer;
* ``c_n`` [layers, 3, 8]: final cell state of every layer (lstm only).

Modules: rnn -> ``nn.RNN(nonlinearity="tanh")``, gru -> ``nn.GRU``, lstm -> ``nn.LSTM``,
hidden_size=8, input_size=5, batch_first=True. Gate orders are PyTorch's (GRU r,z,n;
LSTM i,f,g,o). ``__metadata__``: arch, hidden_size, input_size, num_layers, bias
("true"/"false"), torch_version, generator.

How to run (from the repository root)
-------------------------------------
    pip install torch safetensors numpy
    python3 scripts/reference/torch_cells.py [--out crates/le-engine/tests/fixtures]

Deterministic: one ``torch.manual_seed`` per file (seed = 1234 + file index), CPU, float64.
Generated with torch 2.5.1 (CPU execution of the PyPI cu124 wheel), safetensors 0.8.0.
"""

import argparse
import os

import torch
from safetensors.torch import save_file

HIDDEN = 8
INPUT = 5
BATCH = 3
STEPS = 7
INIT_SCALE = 0.5
ARCHS = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}
SETTINGS = [(1, True), (2, False)]


def make_fixture(arch: str, layers: int, bias: bool, seed: int) -> dict:
    torch.manual_seed(seed)
    cls = ARCHS[arch]
    kwargs = dict(input_size=INPUT, hidden_size=HIDDEN, num_layers=layers, bias=bias,
                  batch_first=True)
    if arch == "rnn":
        kwargs["nonlinearity"] = "tanh"
    module = cls(**kwargs).double()
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-INIT_SCALE, INIT_SCALE)
    inputs = torch.randn(BATCH, STEPS, INPUT, dtype=torch.float64)
    with torch.no_grad():
        if arch == "lstm":
            output, (h_n, c_n) = module(inputs)
        else:
            output, h_n = module(inputs)
            c_n = None
    tensors = {f"rnn.{k}": v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    tensors["inputs"] = inputs.contiguous()
    tensors["output"] = output.detach().contiguous()
    tensors["h_n"] = h_n.detach().contiguous()
    if c_n is not None:
        tensors["c_n"] = c_n.detach().contiguous()
    assert all(t.dtype == torch.float64 for t in tensors.values())
    return tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="crates/le-engine/tests/fixtures")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    index = 0
    for layers, bias in SETTINGS:
        for arch in ARCHS:
            tensors = make_fixture(arch, layers, bias, seed=1234 + index)
            index += 1
            tag = "bias" if bias else "nobias"
            path = os.path.join(args.out, f"torch_{arch}_l{layers}_{tag}.safetensors")
            metadata = {
                "arch": arch,
                "hidden_size": str(HIDDEN),
                "input_size": str(INPUT),
                "num_layers": str(layers),
                "bias": "true" if bias else "false",
                "torch_version": torch.__version__,
                "generator": "scripts/reference/torch_cells.py",
            }
            save_file(tensors, path, metadata=metadata)
            print(f"wrote {path} ({os.path.getsize(path)} bytes, {len(tensors)} tensors)")


if __name__ == "__main__":
    main()
