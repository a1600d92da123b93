"""The errors ctnn-deploy raises (besides ctnn.quant's DialectError, which passes through)."""

from __future__ import annotations


class DeployError(RuntimeError):
    """A model that cannot be compiled for a target, or a build directory that is unusable."""


class FrontendError(DeployError):
    """TVM could not import or optimise a graph that is inside the integer dialect."""


class ToolchainError(DeployError):
    """A compiler is missing or failed, or a compiled program failed at run time."""
