"""Solvers that read a query as SMT-LIB2 text, in this process or in a child that can be killed.

Both solvers look at their time limit only now and then while they bit-blast a large formula:
measured on a 44,681-element unrolled LEM, a z3 check given 14.1 s returned after 22.5 s. A
query that must end on time therefore runs its solver in a child process (:class:`Child`), which
the parent stops at the deadline.

Run as a script (its argument: the parent's pid), this file is that child: it reads one JSON
command per line on stdin and answers each on stdout. It imports z3 and bitwuzla only, never ``ctnn.verify``, so it starts quickly.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from typing import Any

#: how long past a check's own limit the parent waits for the child's answer before it kills it
GRACE_S = 0.25


def _signed(u: int, w: int) -> int:
    return u - (1 << w) if u >= 1 << (w - 1) else u


class Bitwuzla:
    """bitwuzla on SMT-LIB2 text; goals are checked under their guard's assumption."""

    def __init__(self, text: str, timeout_s: float):
        import bitwuzla as bw

        self._tm = bw.TermManager()  # held: the parser's terms live in it
        opts = bw.Options()
        opts.set(bw.Option.PRODUCE_MODELS, True)
        # the option is exact where the terminator is only polled: both bound the query
        opts.set(bw.Option.TIME_LIMIT_PER, max(1, int(timeout_s * 1000)))
        self._parser = bw.Parser(self._tm, opts)
        err = self._parser.parse("(set-logic QF_BV)\n" + text, True, False)
        if err:
            raise RuntimeError(f"bitwuzla could not read the query: {err}")
        self._funs = {str(f.symbol()): f for f in self._parser.get_declared_funs()}
        self._b = self._parser.bitwuzla()

    def check(self, guard: str, timeout_s: float) -> tuple[str, str]:
        """``(answer, reason)`` for the goal guarded by ``guard``."""
        # bitwuzla's time-limit option is fixed per instance: a terminator bounds each check
        deadline = time.perf_counter() + timeout_s
        self._b.configure_terminator(lambda: time.perf_counter() > deadline)
        r = str(self._b.check_sat(self._funs[guard]))
        return r, "timeout" if r == "unknown" else ""

    def values(self, specs: list[tuple[str, int]]) -> list[int]:
        """Signed values of the ``(name, width)`` bit-vectors in the last model (0 if unconstrained)."""
        out = []
        for name, w in specs:
            f = self._funs.get(name)
            out.append(0 if f is None else _signed(int(self._b.get_value(f).value(10)), w))
        return out


class Z3Text:
    """z3 on SMT-LIB2 text, with the same interface as :class:`Bitwuzla`."""

    def __init__(self, text: str, timeout_s: float):
        import z3

        self._z3 = z3
        self._s = z3.SolverFor("QF_BV")
        self._s.add(z3.parse_smt2_string(text))

    def check(self, guard: str, timeout_s: float) -> tuple[str, str]:
        z3 = self._z3
        self._s.set("timeout", max(1, int(timeout_s * 1000)))
        r = self._s.check(z3.Bool(guard))
        return str(r), self._s.reason_unknown() if r == z3.unknown else ""

    def values(self, specs: list[tuple[str, int]]) -> list[int]:
        m, z3 = self._s.model(), self._z3
        return [m.eval(z3.BitVec(name, w), model_completion=True).as_signed_long() for name, w in specs]


TEXT_SOLVERS = {"z3": Z3Text, "bitwuzla": Bitwuzla}


class ChildError(RuntimeError):
    """The child process failed for a reason other than the deadline."""


class Child:
    """A :data:`TEXT_SOLVERS` backend in a child process that is killed when a check overruns.

    The child starts at the first check, within that check's time; a check that has not answered
    :data:`GRACE_S` after its own limit ends the child, and the next check starts a new one.
    """

    def __init__(self, backend: str, text: str, timeout_s: float):
        self.backend, self.timeout_s, self._text = backend, timeout_s, text
        self._proc: subprocess.Popen | None = None
        self._path = ""
        self.starts = 0  # children started
        self.stopped = 0  # children killed at a deadline
        self.setup_s = 0.0

    def _start(self, deadline: float) -> dict[str, Any] | str:
        """A new child that has read the query by ``deadline``: its answer, or why it has none."""
        t = time.perf_counter()
        fd, self._path = tempfile.mkstemp(suffix=".smt2", prefix="ctnn-verify-")
        with os.fdopen(fd, "w") as f:  # a file, not the pipe: writing it can never block on the child
            f.write(self._text)
        self._err = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(
            [sys.executable, "-P", __file__, str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
        )  # fmt: skip
        self.starts += 1
        setup = {"backend": self.backend, "path": self._path, "timeout_s": self.timeout_s}
        reply = self._exchange(setup, deadline)
        self.setup_s += time.perf_counter() - t
        return reply

    def check(self, guard: str, timeout_s: float) -> tuple[str, str]:
        """``(answer, reason)``; ``"unknown"`` when the child had to be stopped (reason ``timeout``) or
        was killed by a signal (the kernel's out-of-memory killer, say)."""
        deadline = time.perf_counter() + timeout_s
        reply = self._start(deadline) if self._proc is None else None
        if not isinstance(reply, str):
            msg = {"check": guard, "timeout_s": max(0.001, deadline - time.perf_counter())}
            reply = self._exchange(msg, deadline + GRACE_S)
        if isinstance(reply, str):
            return "unknown", reply
        return reply["answer"], reply["reason"]

    def values(self, specs: list[tuple[str, int]]) -> list[int]:
        """Signed values of the ``(name, width)`` bit-vectors in the child's last model."""
        if self._proc is None:
            raise RuntimeError("no model to read: the solver process has stopped")
        reply = self._exchange({"values": specs}, None)
        if isinstance(reply, str):
            raise ChildError(reply)
        return reply["values"]

    def _exchange(self, msg: dict[str, Any], deadline: float | None) -> dict[str, Any] | str:
        """Send ``msg``, then the child's answer by ``deadline`` (None: no limit), or why none came:
        ``"timeout"`` (the child is killed) or the signal that killed it."""
        try:
            self._proc.stdin.write(json.dumps(msg).encode() + b"\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            return self._ended()
        out = self._proc.stdout
        left = None if deadline is None else max(0.0, deadline - time.perf_counter())
        ready, _, _ = select.select([out], [], [], left)
        if not ready:
            self._stop()
            self.stopped += 1
            return "timeout"
        line = out.readline()
        if not line:
            return self._ended()
        reply = json.loads(line)
        if "error" in reply:
            self._stop()
            raise ChildError(f"the {self.backend} solver process failed: {reply['error']}")
        return reply

    def _ended(self) -> str:
        """The child has gone on its own: killed by a signal, an unknown answer; any other exit, an error."""
        rc = self._proc.wait()
        self._err.seek(0)
        tail = self._err.read().decode(errors="replace")[-2000:]
        self._stop()
        if rc < 0:
            return f"the {self.backend} solver process was killed by signal {-rc}"
        raise ChildError(f"the {self.backend} solver process exited with code {rc}:\n{tail}")

    def _stop(self) -> None:
        """Kill the child: a solver stopped this way frees nothing, which takes z3 seconds."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc.wait()
        for f in (self._proc.stdin, self._proc.stdout, self._err):
            with contextlib.suppress(BrokenPipeError):  # a command still buffered for a dead child
                f.close()
        self._proc = None
        if os.path.exists(self._path):  # the child died before it took the text
            os.unlink(self._path)

    def close(self) -> None:
        """Stop the child now rather than when this object is collected."""
        self._stop()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:  # interpreter shutdown: the child dies with its pipes
            pass


def _die_with(parent: int) -> None:
    """Have the kernel kill this child when its parent dies (on Linux), e.g. a campaign task that was
    cancelled by force, rather than let the solver run its check out."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _serve() -> None:
    """The child's loop: a setup line, then ``check`` and ``values`` commands until end of input."""
    _die_with(int(sys.argv[1]))
    solver = None
    for line in sys.stdin.buffer:
        msg = json.loads(line)
        try:
            if solver is None:
                with open(msg["path"]) as f:
                    text = f.read()
                os.unlink(msg["path"])  # taken: nothing is left behind, whenever the parent dies
                solver = TEXT_SOLVERS[msg["backend"]](text, msg["timeout_s"])
                reply: dict[str, Any] = {"ready": True}
            elif "check" in msg:
                answer, reason = solver.check(msg["check"], msg["timeout_s"])
                reply = {"answer": answer, "reason": reason}
            else:
                reply = {"values": solver.values([(n, w) for n, w in msg["values"]])}
        except Exception as e:  # reported to the parent, which raises it with the backend's name
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
