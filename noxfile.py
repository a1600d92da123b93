"""nox sessions: the main job, the tests, and one session per package installed alone.

    nox -s pipeline            # the whole path on real data: train → quantize → verify (Ray) → deploy → report
    nox -s tests               # every package installed together, every test
    nox -s tests-quant         # one package (and only what it declares) in a fresh environment
    nox -s lint

Virtualenvs are reused between runs (installs are then no-ops); every install is
pinned by constraints.txt.
"""

from __future__ import annotations

import nox

nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests"]

PY = "3.11"
C = ("-c", "constraints.txt")
# torch's CPU wheel; an unpinned torch would pull a multi-GB CUDA build
TORCH = "torch==2.13.0"

PACKAGES = {
    "models": ["./packages/models"],
    "quant": ["./packages/models", "./packages/quant[torch,test]"],
    "verify": ["./packages/quant", "./packages/verify[test]"],
    "deploy": ["./packages/quant", "./packages/deploy[test]"],
    "analysis": ["./packages/analysis[test]"],
}
ALL = ["-e", "./packages/models", "-e", "./packages/quant[torch,test]", "-e", "./packages/verify[test]",
       "-e", "./packages/deploy[test]", "-e", "./packages/analysis[test]", "-e", "./integration[test]"]  # fmt: skip
TEST_TOOLS = ["pytest", "hypothesis"]


def _install_all(session: nox.Session) -> None:
    session.install(*C, TORCH)
    session.install(*C, *ALL, *TEST_TOOLS)


@nox.session(python=PY)
def pipeline(session: nox.Session) -> None:
    """The main job: `ctnn pipeline` with the default configuration (pass `-- --config FILE` for another)."""
    _install_all(session)
    session.run("ctnn", "pipeline", *session.posargs)


@nox.session(python=PY)
def tests(session: nox.Session) -> None:
    """Every test of every package, all installed together."""
    _install_all(session)
    session.run("pytest", "-q", "-p", "no:cacheprovider", *(session.posargs or [
        "packages/models/tests", "packages/quant/tests", "packages/verify/tests",
        "packages/deploy/tests", "packages/analysis/tests", "integration/tests"]))  # fmt: skip


@nox.session(python=PY, name="tests-models")
def tests_models(session: nox.Session) -> None:
    _one_package(session, "models")


@nox.session(python=PY, name="tests-quant")
def tests_quant(session: nox.Session) -> None:
    _one_package(session, "quant")


@nox.session(python=PY, name="tests-verify")
def tests_verify(session: nox.Session) -> None:
    _one_package(session, "verify")


@nox.session(python=PY, name="tests-deploy")
def tests_deploy(session: nox.Session) -> None:
    _one_package(session, "deploy")


@nox.session(python=PY, name="tests-analysis")
def tests_analysis(session: nox.Session) -> None:
    _one_package(session, "analysis")


def _one_package(session: nox.Session, pkg: str) -> None:
    """Install one package (non-editable, as a user would) with only what it declares, then test it."""
    if pkg in ("models", "quant"):
        session.install(*C, TORCH)
    # reinstall our own packages so a reused venv never tests a stale build
    session.install(*C, "--force-reinstall", "--no-deps", *PACKAGES[pkg])
    session.install(*C, *PACKAGES[pkg], *TEST_TOOLS)
    forbidden = {"verify": "torch", "deploy": "torch", "analysis": "torch"}.get(pkg)
    if forbidden:  # the design keeps torch out of the hardware side
        session.run("python", "-c", f"import importlib.util as u, sys; sys.exit(u.find_spec('{forbidden}') is not None)")
    session.run("pytest", "-q", "-p", "no:cacheprovider", f"packages/{pkg}/tests", *session.posargs)


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    session.install(*C, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
