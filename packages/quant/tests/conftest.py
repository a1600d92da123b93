"""Shared test helpers of ctnn-quant."""

import pytest


@pytest.fixture
def qat_steps():
    """``run(qat, model, X, y, steps)``: a few Adam steps through a QATModel on consecutive batches of 64."""

    def run(qat, model, X, y, steps: int, lr: float = 5e-3) -> None:
        import torch

        opt = torch.optim.Adam(model.parameters(), lr=lr)
        y = torch.as_tensor(y)
        for i in range(steps):
            batch = slice(i * 64, (i + 1) * 64)
            loss = torch.nn.functional.cross_entropy(qat(X[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()

    return run
