"""Errors of ctnn-verify.

User mistakes (a bad ε, a sample that does not fit the input codes, a graph feature the
encoder does not handle) are :class:`VerifyError`, a ``ValueError``. A graph outside the
integer dialect raises ctnn.quant's :class:`~ctnn.quant.DialectError` (also a ``ValueError``)
unchanged. :class:`WitnessError` is different: it means ctnn-verify itself is wrong.
:func:`check_timeout` is the one check of ``timeout_s`` that every entry point makes;
:class:`OutOfTime` is how a stage that keeps to a deadline gives up.
"""

from __future__ import annotations

import math
import time
from numbers import Real


class VerifyError(ValueError):
    """A query ctnn-verify cannot answer as asked."""


class EpsError(VerifyError):
    """ε is negative, not an integer, or of the wrong shape."""


class SampleError(VerifyError):
    """The sample (or its label) does not fit the graph's input codes (or its outputs)."""


class UnsupportedError(VerifyError):
    """The graph is in the dialect but uses something the encoder does not support yet."""


class OutOfTime(Exception):
    """Internal: a stage passed the query's deadline (caught by the query, which then answers
    ``unknown`` with reason ``timeout``); never raised to a caller."""


class WitnessError(RuntimeError):
    """A counterexample failed its replay: a bug in ctnn-verify, never a reported attack."""


class BoxError(SampleError):
    """An input box (or a sensitive feature, or its values) does not fit the graph's input codes."""


def check_deadline(deadline: float | None, where: str) -> None:
    """Raise :class:`OutOfTime` once ``time.perf_counter()`` is past ``deadline`` (None: never)."""
    if deadline is not None and time.perf_counter() > deadline:
        raise OutOfTime(where)


def check_timeout(timeout_s: object) -> float:
    """``timeout_s`` in seconds, checked: a positive finite number (with none, a query could only say unknown)."""
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, Real) or not 0 < timeout_s < math.inf:
        raise VerifyError(f"timeout_s must be a positive number of seconds, got {timeout_s!r}")
    return float(timeout_s)
