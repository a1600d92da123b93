"""Running queries as Ray tasks: embedded local Ray by default, an existing cluster on request.

One query is one task. The driver pulls queries lazily from a generator, skips the
ones already in the store (looked up in batches), keeps at most ``max_in_flight``
tasks in flight (backpressure: the generator is not advanced while the window is
full), cancels a task that outlives its deadline with ``ray.cancel(force=True)`` (only
a forced cancel interrupts a z3 call; the query is stored as ``status="timeout"``), lets
Ray retry a task whose worker died (``max_retries``) and commits the results of each
round in one transaction. Driver memory is bounded by the window, not the campaign.

A task's deadline runs from the moment it starts on a worker, not from its submission:
each task reports its start to a small actor (``_StartBoard``, no CPU reserved) that the
driver reads at most twice a second, so time spent queued or starting a worker (seconds on
a loaded machine) never counts against a query.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray

from ._store import ResultStore

Progress = Callable[[int, int | None, Counter], None]


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


@dataclass
class Query:
    """One query: a model (an object ref to its ONNX bytes), a sample, a property and its parameters.

    ``meta`` is stored with the result (model name, bit-width, sample index, ...).
    """

    key: str
    prop: str
    model_sha: str
    model_ref: Any
    x: np.ndarray
    label: int | None
    params: dict[str, Any]
    input_range: tuple[int, int] | None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunStats:
    """What one :func:`execute` call did."""

    skipped: int = 0  # already in the store
    submitted: int = 0
    finished: int = 0  # results of this run (stored, or already stored by a duplicate)
    stored: int = 0
    timeouts: int = 0  # cancelled at the driver's deadline
    failed: int = 0  # the worker died more than max_retries times: not stored, a re-run retries them
    first_failure: str = ""
    counts: Counter = field(default_factory=Counter)  # verdicts (or timeout/error) of this run's results
    wall_s: float = 0.0


_MODELS: OrderedDict[str, Any] = OrderedDict()  # per worker: parsed models by sha256


def _model(sha: str, blob: bytes) -> Any:
    import onnx

    if sha not in _MODELS:
        _MODELS[sha] = onnx.load_from_string(blob)
        while len(_MODELS) > 8:
            _MODELS.popitem(last=False)
    return _MODELS[sha]


@ray.remote(num_cpus=0)
class _StartBoard:
    """Where tasks say when they started (a retried task says it again); the driver takes the news."""

    def __init__(self) -> None:
        self._news: dict[str, float] = {}

    def started(self, key: str, t: float) -> None:
        self._news[key] = t

    def take(self) -> dict[str, float]:
        news, self._news = self._news, {}
        return news


@ray.remote(num_cpus=1)
def _query_task(prop: Any, model_sha: str, model_bytes: bytes, x: np.ndarray, label: int | None,
                params: dict[str, Any], timeout_s: float, solver: str, input_range: tuple[int, int] | None,
                board: Any = None, key: str = "") -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    started, t0 = time.time(), time.perf_counter()
    if board is not None:
        board.started.remote(key, started)  # fire and forget: the driver's deadline starts now
    try:
        body = prop.run(_model(model_sha, model_bytes), x, label, params, timeout_s, solver, input_range)
        body.setdefault("status", "ok")
    except Exception as exc:  # a query that cannot be asked is an answer too: stored, not retried
        body = {"verdict": "unknown", "status": "error", "reason": f"{type(exc).__name__}: {exc}"}
    prov = {"host": socket.gethostname(), "pid": os.getpid(), "started": started, "finished": time.time(),
            "wall_s": time.perf_counter() - t0}  # fmt: skip
    return body, prov


def _unstored(
    queries: Iterable[Query], store: ResultStore, stats: RunStats, batch: int = 256
) -> Iterator[Query]:
    """The queries whose key is not stored, looking keys up ``batch`` at a time."""
    it = iter(queries)
    seen_in_batch: set[str] = set()
    while True:
        chunk = [q for _, q in zip(range(batch), it)]
        if not chunk:
            return
        missing = set(store.missing([q.key for q in chunk]))
        seen_in_batch.clear()
        for q in chunk:
            if q.key in missing and q.key not in seen_in_batch:
                seen_in_batch.add(q.key)
                yield q
            else:
                stats.skipped += 1


def _outcome(body: dict[str, Any]) -> str:
    return body.get("verdict", "?") if body.get("status", "ok") == "ok" else body["status"]


def execute(
    queries: Iterable[Query],
    store: ResultStore,
    campaign: str,
    *,
    timeout_s: float,
    grace_s: float = 10.0,
    solver: str = "z3",
    max_in_flight: int = 0,
    max_retries: int = 3,
    provenance: dict[str, Any] | None = None,
    total: int | None = None,
    progress: Progress | None = None,
    lookahead: int = 256,
) -> RunStats:
    """Run every query of ``queries`` that ``store`` lacks, one Ray task each; store each result once.

    ``max_in_flight`` (0: twice the cluster's CPUs) bounds the tasks in flight. A task
    still running ``timeout_s + grace_s`` after it started is force-cancelled and stored
    as ``status="timeout"``. ``progress(done, total, counts)`` is called as results arrive
    (``done`` counts skipped queries too). At most ``lookahead`` queries are pulled from
    ``queries`` ahead of submission, to look their keys up in the store together.
    """
    from ._properties import CAMPAIGN_PROPERTIES

    t_start = time.monotonic()
    stats = RunStats()
    slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
    window = max_in_flight or 2 * slots
    deadline = timeout_s + grace_s
    prov_common = {**(provenance or {}), "driver_host": socket.gethostname(), "campaign": campaign}
    task = _query_task.options(max_retries=max_retries, retry_exceptions=False)
    prop_refs: dict[str, Any] = {}
    # ref -> [query, started (wall clock, as the task reported it; None while queued), cancelled]
    pending: OrderedDict[Any, list] = OrderedDict()
    by_key: dict[str, list] = {}
    todo = _unstored(queries, store, stats, lookahead)
    exhausted = False
    board = _StartBoard.remote()
    last_read = 0.0

    def report() -> None:
        if progress:
            progress(stats.skipped + stats.finished + stats.failed, total, stats.counts)

    def timed_out(q: Query, started: float | None, why: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
        stats.timeouts += 1
        body = {"verdict": "unknown", "status": "timeout",
                "reason": f"cancelled by the driver {deadline:g} s after it started (solver timeout "
                          f"{timeout_s:g} s + grace {grace_s:g} s){why}"}  # fmt: skip
        now = time.time()
        return body, {"host": None, "started": started, "finished": now, "wall_s": now - (started or now)}

    report()
    try:
        while pending or not exhausted:
            while not exhausted and len(pending) < window:
                q = next(todo, None)
                if q is None:
                    exhausted = True
                    break
                if q.prop not in prop_refs:
                    prop_refs[q.prop] = ray.put(CAMPAIGN_PROPERTIES[q.prop])
                ref = task.remote(prop_refs[q.prop], q.model_sha, q.model_ref, q.x, q.label, q.params, timeout_s,
                                  solver, q.input_range, board, q.key)  # fmt: skip
                pending[ref] = by_key[q.key] = [q, None, False]
                stats.submitted += 1
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            if ready:  # take everything that is already finished, not only the first
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            rows = []
            for ref in ready:
                q, started, cancelled = pending.pop(ref)
                by_key.pop(q.key, None)
                try:
                    body, prov = ray.get(ref)
                except ray.exceptions.TaskCancelledError:
                    body, prov = timed_out(q, started)
                except ray.exceptions.RayError as exc:
                    if cancelled:  # cancelled while its worker was being killed: the same timeout
                        body, prov = timed_out(q, started, f" ({type(exc).__name__})")
                    else:
                        stats.failed += 1
                        msg = f"{q.key[:12]}: {type(exc).__name__}: {exc}"
                        stats.first_failure = stats.first_failure or msg[:2000]
                        continue
                body.update(q.meta)
                rows.append((q.key, body, campaign, {**prov, **prov_common}))
                stats.counts[_outcome(body)] += 1
            if rows:
                stats.stored += store.put_many(rows)
                stats.finished += len(rows)
                report()
            now = time.time()
            if pending and now - last_read >= 0.5:  # which tasks started (a retry restarts the clock)
                last_read = now
                try:
                    news = ray.get(board.take.remote(), timeout=30)
                except ray.exceptions.RayError:
                    news = {}
                for key, t in news.items():
                    if key in by_key and not by_key[key][2]:
                        by_key[key][1] = max(t, by_key[key][1] or t)
            for ref, entry in pending.items():
                if entry[1] is not None and not entry[2] and now - entry[1] > deadline:
                    ray.cancel(ref, force=True)  # solver timeouts are soft; this one is not
                    entry[2] = True
    finally:
        ray.kill(board)
    stats.wall_s = time.monotonic() - t_start
    report()
    return stats
