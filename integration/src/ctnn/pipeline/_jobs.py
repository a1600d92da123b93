"""Campaigns as Ray Jobs: submit a spec to a cluster's dashboard, follow it, stop it.

The spec's directory is the job's ``working_dir`` (Ray uploads it: the spec, its ONNX
files and sidecars, sample files and plugins must live under it); the entrypoint is
``<python> -m ctnn.pipeline._cli campaign run SPEC --store STORE`` with an absolute
interpreter, because a job runs with the head's PATH. The store is an absolute path as
the head sees it: a shared filesystem on a real cluster, the same disk on one machine.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from ._spec import CampaignSpec

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def _auth_headers() -> dict[str, str]:
    """A bearer token for the dashboard when one is at hand (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).

    Ray 2.60 clusters use token authentication by default; Ray's own client adds the
    token only when RAY_AUTH_MODE=token was set before ray was imported, so it is sent here.
    """
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        return {}
    token = os.environ.get("RAY_AUTH_TOKEN")
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))
    if not token and path.is_file():
        token = path.read_text().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


def job_client(address: str | None = None) -> Any:
    """A JobSubmissionClient for ``address`` (else RAY_API_SERVER_ADDRESS / RAY_ADDRESS), with the auth token."""
    from ray.job_submission import JobSubmissionClient

    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise ValueError(
            "no Ray dashboard address: give --address http://HEAD:8265 (or RAY_API_SERVER_ADDRESS)"
        )
    try:
        return JobSubmissionClient(address, headers=_auth_headers())
    except ConnectionError as exc:
        raise ValueError(f"cannot reach the Ray dashboard at {address}: {exc}") from None


def submit_campaign(
    spec_path: str | os.PathLike[str],
    address: str | None = None,
    store: str | os.PathLike[str] | None = None,
    python: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> str:
    """Submit a campaign as a Ray Job; return its job id.

    >>> job = submit_campaign("campaign.toml", "http://127.0.0.1:8265")   # doctest: +SKIP
    """
    spec = CampaignSpec.from_toml(spec_path)  # a bad spec fails here, not on the cluster
    root = spec.root
    for f in spec.files():
        if not f.is_relative_to(root):
            raise ValueError(f"{spec.path}: {f} is outside the spec's directory {root}; a job ships only that "
                             f"directory (its working_dir): move the file under it")  # fmt: skip
    store_path = Path(store).resolve() if store else spec.store.resolve()
    python = python or sys.executable
    entry = (f"{shlex.quote(python)} -m ctnn.pipeline._cli campaign run {shlex.quote(spec.path.name)} "
             f"--store {shlex.quote(str(store_path))}")  # fmt: skip
    excludes = ["*.sqlite", "*.sqlite-wal", "*.sqlite-shm", "__pycache__", ".git"]
    if spec.artifacts.is_relative_to(root):
        excludes.append(str(spec.artifacts.relative_to(root)))
    runtime_env: dict[str, Any] = {"working_dir": str(root), "excludes": excludes}
    if extra_env:
        runtime_env["env_vars"] = dict(extra_env)
    client = job_client(address)
    return client.submit_job(entrypoint=entry, runtime_env=runtime_env,
                             metadata={"ctnn_campaign": spec.name, "store": str(store_path)})  # fmt: skip


def job_status(job_id: str, address: str | None = None) -> dict[str, Any]:
    """The job's status, message and start/end times."""
    info = job_client(address).get_job_info(job_id)
    return {"job_id": job_id, "status": _name(info.status), "message": info.message,
            "start_time": info.start_time, "end_time": info.end_time, "entrypoint": info.entrypoint}  # fmt: skip


def job_logs(job_id: str, address: str | None = None, follow: bool = False, out: Any = None) -> str:
    """The job's logs; with ``follow``, print them as they come until the job ends."""
    client = job_client(address)
    if not follow:
        return client.get_job_logs(job_id)
    out = out or sys.stdout
    seen = 0
    while True:
        status = _name(client.get_job_status(job_id))
        logs = client.get_job_logs(job_id)
        out.write(logs[seen:])
        out.flush()
        seen = len(logs)
        if status in TERMINAL:
            return status
        time.sleep(1.0)


def wait_job(job_id: str, address: str | None = None, timeout_s: float = 3600.0) -> str:
    """Poll until the job ends; return its final status."""
    client = job_client(address)
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        status = _name(client.get_job_status(job_id))
        if status in TERMINAL:
            return status
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} still {status} after {timeout_s:g} s")


def stop_job(job_id: str, address: str | None = None) -> bool:
    """Ask the cluster to stop the job; True if it was running."""
    return job_client(address).stop_job(job_id)


def _name(status: Any) -> str:
    return getattr(status, "value", str(status))
