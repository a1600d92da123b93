"""Fixtures of ctnn-verify's tests; helpers live in verify_helpers.py (importable from the tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # --import-mode=importlib: make verify_helpers importable

from ctnn.quant import random_integer_mlp  # noqa: E402


@pytest.fixture(scope="session")
def tiny_nets():
    """(model, in_bits, sizes, seed) for a spread of tiny MLPs whose boxes can be enumerated."""
    nets = []
    for seed in range(12):
        sizes = [[3, 4, 3], [2, 3, 2], [3, 5, 4, 3], [4, 3, 3]][seed % 4]
        in_bits = 3 + seed % 2
        net = random_integer_mlp(sizes, weight_bits=4, act_bits=4, in_bits=in_bits, seed=seed)
        nets.append((net.to_onnx(), in_bits, sizes, seed))
    return nets
