"""Shared fixtures: the digits split (loaded once) and a trained digits MLP."""

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from ctnn.models import MLP, load_digits, train_classifier


@contextmanager
def _one_thread() -> Iterator[None]:
    # These models are tiny: one thread is faster than two, and two threads on a busy
    # 2-core machine make run times erratic (3 s vs 10+ s for this suite). Restored
    # afterwards so that other packages' tests in the same session are unaffected.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def one_thread():
    with _one_thread():
        yield


@pytest.fixture(scope="session")
def digits():
    return load_digits(seed=0)


@pytest.fixture(scope="session")
def trained_mlp(digits):
    with _one_thread():
        torch.manual_seed(0)
        model = MLP([64, 32, 10])
        result = train_classifier(model, digits, seed=0, progress=False)
    return model, result
