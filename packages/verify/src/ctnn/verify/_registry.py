"""The one way ctnn-verify's per-op registries are filled: a decorator that files a rule under op names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")


def registrar(table: dict[str, R], what: str) -> Callable[..., Callable[[R], R]]:
    """A ``register(*ops)`` decorator factory that files the decorated rule in ``table`` under each op
    type named (``what`` says what the rule is, for the factory's docstring)."""

    def register(*ops: str) -> Callable[[R], R]:
        def deco(fn: R) -> R:
            for op in ops:
                table[op] = fn
            return fn

        return deco

    register.__doc__ = f"Register the {what} of one or more ONNX ops."
    return register
