"""The one way ctnn's per-op registries are filled: a decorator that files a rule under op names.

The reference's ops here, and downstream the verifier's encodings and bounds and the HDL
backend's rules, are each a table from op name to rule, filled by a ``register(*ops)`` decorator
made by :func:`registrar`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")


def registrar(table: dict[str, R], what: str, ops: str = "ONNX") -> Callable[..., Callable[[R], R]]:
    """A ``register(*names)`` decorator factory that files the decorated rule in ``table`` under
    each op named. ``what`` says what the rule is and ``ops`` whose ops it covers, for the
    factory's docstring.

    >>> RULES: dict = {}
    >>> register_rule = registrar(RULES, "example rule")
    >>> @register_rule("Add", "Sub")
    ... def _affine(*args):
    ...     return None
    >>> sorted(RULES)
    ['Add', 'Sub']
    """

    def register(*names: str) -> Callable[[R], R]:
        def deco(fn: R) -> R:
            for name in names:
                table[name] = fn
            return fn

        return deco

    register.__doc__ = f"Register the {what} of one or more {ops} ops."
    return register
