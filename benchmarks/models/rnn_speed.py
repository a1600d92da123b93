"""LEM and Lipschitz RNN training steps: ctnn against a straightforward per-step PyTorch loop.

    python benchmarks/models/rnn_speed.py [--repeats 15] [--rounds 5] [--out results/rnn_speed.json]

The references below follow the papers' public code line by line (LEM's cell applies
its input Linear at every step; the Lipschitz RNN rebuilds A and W at every step).
ctnn computes the same function with the input projections for all steps in one
matmul; the Lipschitz RNN builds A and W once per sequence and fuses the two matmuls
into addmm; LEM runs the whole sequence as one autograd node with a hand-written
backward pass (``ctnn.models._lem_fused``). Same parameters, outputs compared, 32 units,
batch 64, T=100, 4 inputs, one thread. The two sides are timed in interleaved rounds
(the machine is shared): the median over rounds of each round's median is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _ncps_bridge import time_steps  # noqa: E402

CONFIG = {"units": 32, "batch": 64, "seq_len": 100, "in_features": 4}


class RefLEM(nn.Module):
    def __init__(self, ours):
        super().__init__()
        self.m, self.dt = ours, ours.dt

    def forward(self, x):
        m = self.m
        y = z = x.new_zeros(x.shape[0], m.units)
        outs = []
        for t in range(x.shape[1]):
            i_dt1, i_dt2, i_z, i_y = m.inp2hid(x[:, t]).chunk(4, 1)
            h_dt1, h_dt2, h_y = m.hid2hid(y).chunk(3, 1)
            ms_dt_bar = self.dt * torch.sigmoid(i_dt1 + h_dt1)
            ms_dt = self.dt * torch.sigmoid(i_dt2 + h_dt2)
            z = (1.0 - ms_dt) * z + ms_dt * torch.tanh(i_y + h_y)
            y = (1.0 - ms_dt_bar) * y + ms_dt_bar * torch.tanh(m.transform_z(z) + i_z)
            outs.append(y)
        return torch.stack(outs, 1), y


class RefLipschitz(nn.Module):
    def __init__(self, ours):
        super().__init__()
        self.m = ours

    def forward(self, x):
        m = self.m
        eye = torch.eye(m.units)
        h = x.new_zeros(x.shape[0], m.units)
        outs = []
        for t in range(x.shape[1]):
            z = m.U(x[:, t])
            B, C = m.M_A, m.M_W
            A = m.beta * (B - B.T) + (1 - m.beta) * (B + B.T) - m.gamma_a * eye
            W = m.beta * (C - C.T) + (1 - m.beta) * (C + C.T) - m.gamma_w * eye
            h = h + m.eps * torch.matmul(h, A.T) + m.eps * torch.tanh(torch.matmul(h, W.T) + z)
            outs.append(h)
        return torch.stack(outs, 1), h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=HERE / "results" / "rnn_speed.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    from ctnn.models import LEM, LipschitzRNN

    c = CONFIG
    torch.manual_seed(0)
    x = torch.randn(c["batch"], c["seq_len"], c["in_features"])
    target = torch.randn(c["batch"], c["units"])
    results = {}
    for name, ours, ref_cls in [
        ("LEM", LEM(c["in_features"], c["units"]), RefLEM),
        ("Lipschitz RNN (euler)", LipschitzRNN(c["in_features"], c["units"], init_std=6.0), RefLipschitz),
    ]:
        ref = ref_cls(ours)
        with torch.no_grad():
            diff = float((ours(x)[0] - ref(x)[0]).abs().max())
        r_s, o_s = [], []
        for _ in range(args.rounds):  # interleaved
            r_s.append(time_steps(ref, x, target, max(1, args.repeats // args.rounds)))
            o_s.append(time_steps(ours, x, target, max(1, args.repeats // args.rounds)))
        rs, os_ = statistics.median(r_s), statistics.median(o_s)
        results[name] = {
            "reference_seconds": rs,
            "ctnn_seconds": os_,
            "speedup": rs / os_,
            "max_abs_output_diff": diff,
        }
        print(
            f"{name:22s} reference {rs:.4f} s  ctnn {os_:.4f} s  {rs / os_:.2f}x  diff {diff:.1e}", flush=True
        )
    report = {"benchmark": "rnn_training_step", "command": "python benchmarks/models/rnn_speed.py",
              "config": c | {"threads": 1, "repeats": args.repeats, "rounds": args.rounds},
              "results": results}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    from render import render

    render()
    return 0


if __name__ == "__main__":
    sys.exit(main())
