"""Fixtures of the campaign tests: a real Ray cluster on this machine (``ray start --head``) and tiny models.

The cluster is stopped by killing exactly the processes it started (the ``ray start``
process group and their descendants, by pid), not with ``ray stop``, which would stop
every Ray process of the user — other test runs' included.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

RAY = str(Path(sys.executable).with_name("ray"))


def free_ports(n: int) -> list[int]:
    """``n`` distinct free loopback ports, from the kernel's ephemeral range (all held open while drawn)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def worker_port_range(width: int = 200) -> tuple[int, int]:
    """A free block of ports just below the ephemeral range, so no port of ``free_ports`` can fall inside it.

    Ray refuses to start when one of its named ports lies in the worker range; a block drawn
    from the ephemeral range (as before) collided now and then.
    """
    lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = np.random.default_rng()
    for _ in range(50):
        start = int(rng.integers(max(1024, lo - 12000), lo - width - 1))
        if all(_bindable(p) for p in range(start, start + width + 1)):
            return start, start + width
    raise RuntimeError(f"no free block of {width + 1} ports below {lo}")


def _procs() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgid) of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            rest = st[st.rindex(")") + 2 :].split()
            out[int(d)] = (int(rest[1]), int(rest[2]))
    return out


def process_tree(pgid: int) -> set[int]:
    """The processes of group ``pgid`` and all their descendants (Ray's workers start their own sessions)."""
    p = _procs()
    tree = {pid for pid, (_, g) in p.items() if g == pgid}
    grew = True
    while grew:
        grew = False
        for pid, (pp, _) in p.items():
            if pp in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


@dataclass
class Cluster:
    address: str  # the GCS, for drivers
    dashboard: str  # http://127.0.0.1:PORT, for Ray Jobs
    pgid: int
    temp_dir: Path
    env: dict[str, str]

    def processes(self) -> set[int]:
        return {p for p in process_tree(self.pgid) if alive(p)}

    def workers_running(self, task: str) -> list[int]:
        return [p for p in self.processes() if cmdline(p).startswith(f"ray::{task}")]


@pytest.fixture(scope="session")
def ray_cluster():
    """A 2-CPU Ray cluster with the dashboard, every port on a free loopback port, in a temp dir."""
    temp = Path(tempfile.mkdtemp(prefix="ctnnray", dir="/tmp"))  # short: Ray's unix sockets live here
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    # `ray start` in token mode needs a token and does not make one: on a fresh machine (no
    # ~/.ray/auth_token yet) it fails, so make one the way Ray's docs say for local clusters
    token = subprocess.run([RAY, "get-auth-token", "--generate"], env=env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert token.returncode == 0, token.stderr[-2000:]
    names = ["--port", "--dashboard-port", "--ray-client-server-port", "--node-manager-port",
             "--object-manager-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
             "--metrics-export-port", "--runtime-env-agent-port"]  # fmt: skip
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    dash = ports["--dashboard-port"]
    wlo, whi = worker_port_range()
    cmd = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
           f"--temp-dir={temp}", "--num-cpus=2", "--object-store-memory=200000000", "--disable-usage-stats",
           f"--min-worker-port={wlo}", f"--max-worker-port={whi}",
           *(f"{k}={v}" for k, v in ports.items())]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    pgid = proc.pid
    cluster = None
    try:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-3000:]
        addr = re.search(r"ray start --address='([^']+)'", out).group(1)
        cluster = Cluster(addr, f"http://127.0.0.1:{dash}", pgid, temp, env)
        yield cluster
    finally:
        _stop(pgid)
        shutil.rmtree(temp, ignore_errors=True)
    leaked = [p for p in process_tree(pgid) if alive(p)]
    assert not leaked, f"Ray processes left behind: {[(p, cmdline(p)[:80]) for p in leaked]}"


def _stop(pgid: int) -> None:
    tree = process_tree(pgid)
    for pid in tree:  # freeze first, so no process starts a new worker while the others are killed
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    tree |= process_tree(pgid)
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    t_end = time.monotonic() + 20
    while any(alive(p) for p in tree) and time.monotonic() < t_end:
        time.sleep(0.1)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random 4-bit MLP 4-6-3 as an ONNX file, and 12 input codes next to it (samples.npz)."""
    import onnx

    from ctnn.quant import random_integer_mlp

    d = tmp_path_factory.mktemp("tiny")
    model = random_integer_mlp([4, 6, 3], weight_bits=4, act_bits=4, in_bits=4, seed=1).to_onnx()
    onnx.save(model, d / "tiny.onnx")
    codes = np.random.default_rng(0).integers(-8, 8, size=(12, 4)).astype(np.int8)
    np.savez(d / "samples.npz", codes=codes)
    return d / "tiny.onnx"
