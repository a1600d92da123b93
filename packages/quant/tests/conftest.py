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


@pytest.fixture
def assert_exact():
    """``check(q, model, real_codes, seed)``: the numpy program, the reference and onnxruntime agree.

    ``model``: ``q``'s ONNX graph (a ModelProto); compared on 1000 random input codes (both extremes
    among them) and on ``real_codes``, whose outputs must not be degenerate and stay in the output range.
    """
    import numpy as np
    import onnxruntime as ort

    from ctnn.quant import ReferenceInterpreter

    def check(q, model, real_codes, seed: int) -> None:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        ref = ReferenceInterpreter(model)
        lo, hi = q.input.lo, q.input.hi
        rnd = np.random.default_rng(seed).integers(lo, hi + 1, size=(1000, q.input.shape[1]))
        rnd = rnd.astype(q.input.dtype)
        rnd[0], rnd[1] = lo, hi
        for codes in (rnd, real_codes):
            expected = ref.run({"x": codes})["y"]
            got = sess.run(None, {"x": codes})[0]
            assert got.dtype == expected.dtype
            np.testing.assert_array_equal(got, expected)
            np.testing.assert_array_equal(q.forward_codes(codes), expected)
            assert len(np.unique(expected)) > 3  # not degenerate: the test could fail
            assert expected.min() >= q.output.lo and expected.max() <= q.output.hi

    return check
