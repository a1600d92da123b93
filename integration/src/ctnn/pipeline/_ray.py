"""Running verification queries as Ray tasks: embedded local Ray by default.

One query is one task. The driver keeps a bounded number of tasks in flight,
cancels a task that outlives its deadline (``ray.cancel(force=True)``: only a forced
cancel interrupts a z3 call), and commits every result to the store the moment it
arrives, so an interrupted campaign loses nothing it had finished.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import ray

from ._store import ResultStore


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to ``address`` (or RAY_ADDRESS), else start an embedded local Ray.

    The embedded instance runs without the dashboard and binds to this machine.
    Returns True when this call started Ray (so the caller should shut it down).
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        # address="local" never joins a stale cluster left by an earlier `ray start`
        ray.init(
            address="local", include_dashboard=False, num_cpus=num_cpus,
            object_store_memory=256 * 1024**2, **kwargs,
        )  # fmt: skip
    return True


@ray.remote(max_retries=2)
def _verify_robustness_task(
    model_bytes: bytes, codes: list[int], eps: int, label: int, timeout_s: float, input_range: tuple[int, int]
) -> dict:
    import numpy as np
    import onnx

    from ctnn.verify import verify_robustness

    model = onnx.load_from_string(model_bytes)
    result = verify_robustness(
        model, np.asarray(codes), eps, label=label, timeout_s=timeout_s, input_range=tuple(input_range)
    )
    return result.to_dict()


@dataclass
class Query:
    """One robustness query: a model (as an object ref to its bytes), a sample and ε.

    ``input_range`` is the input codes' range from the sidecar: the box is cut to it.
    """

    key: str
    model_ref: Any
    codes: list[int]
    eps: int
    label: int
    input_range: tuple[int, int]
    meta: dict[str, Any]


def run_robustness_queries(
    queries: Sequence[Query],
    store: ResultStore,
    campaign: str,
    timeout_s: float,
    max_in_flight: int = 8,
    grace_s: float = 30.0,
    progress: Callable[[int, int, Counter], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the queries not yet in ``store``; return every result of the campaign."""
    done = store.done_keys()
    todo = [q for q in queries if q.key not in done]
    counts: Counter = Counter(r.get("verdict") for r in store.results(campaign))
    finished = len(queries) - len(todo)
    if progress:
        progress(finished, len(queries), counts)
    pending: dict[Any, tuple[Query, float]] = {}
    it = iter(todo)
    exhausted = False
    while pending or not exhausted:
        while not exhausted and len(pending) < max_in_flight:
            q = next(it, None)
            if q is None:
                exhausted = True
                break
            ref = _verify_robustness_task.remote(
                q.model_ref, q.codes, q.eps, q.label, timeout_s, q.input_range
            )
            pending[ref] = (q, time.monotonic())
        if not pending:
            break
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        now = time.monotonic()
        for ref in ready:
            q, _t0 = pending.pop(ref)
            try:
                body = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                body = {"verdict": "unknown", "reason": "cancelled at the driver's deadline"}
            body.update(q.meta)
            store.put(q.key, body, campaign)
            counts[body["verdict"]] += 1
            finished += 1
            if progress:
                progress(finished, len(queries), counts)
        for ref, (_q, t0) in list(pending.items()):
            if now - t0 > timeout_s + grace_s:  # solver timeouts are soft; this one is not
                ray.cancel(ref, force=True)
    return list(store.results(campaign))
