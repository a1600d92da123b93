"""Errors of ctnn-verify.

User mistakes (a bad ε, a sample that does not fit the input codes, a graph feature the
encoder does not handle) are :class:`VerifyError`, a ``ValueError``. A graph outside the
integer dialect raises ctnn.quant's :class:`~ctnn.quant.DialectError` (also a ``ValueError``)
unchanged. :class:`WitnessError` is different: it means ctnn-verify itself is wrong.
"""

from __future__ import annotations


class VerifyError(ValueError):
    """A query ctnn-verify cannot answer as asked."""


class EpsError(VerifyError):
    """ε is negative, not an integer, or of the wrong shape."""


class SampleError(VerifyError):
    """The sample (or its label) does not fit the graph's input codes (or its outputs)."""


class UnsupportedError(VerifyError):
    """The graph is in the dialect but uses something the encoder does not support yet."""


class WitnessError(RuntimeError):
    """A counterexample failed its replay: a bug in ctnn-verify, never a reported attack."""


class BoxError(SampleError):
    """An input box (or a sensitive feature, or its values) does not fit the graph's input codes."""
