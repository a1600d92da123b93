"""Filtering the warnings TVM's C++ logger writes straight to file descriptor 2."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator

#: TVM messages that are expected in ctnn's use and say nothing to a user:
#: the VM's per-function scope messages on export/load, and TOPI's note on Gather's
#: "fast" mode (indices in the integer dialect are in range by definition).
NOISE = ("Scope Saving", "Scope Loaded", "Fast mode segfaults when there are out-of-bounds indices")


@contextlib.contextmanager
def quiet_tvm(noise: tuple[str, ...] = NOISE) -> Iterator[None]:
    """Capture fd 2 while TVM runs; pass on every line that is not one of ``noise``."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines(keepends=True):
                if not any(n in line for n in noise):
                    sys.stderr.write(line)
