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
    "models": ["./packages/models[data,test]"],
    "quant": ["./packages/models[data]", "./packages/quant[torch,test]"],
    "verify": ["./packages/quant", "./packages/verify[test,bitwuzla]"],
    "deploy": ["./packages/quant", "./packages/deploy[test]"],
    "analysis": ["./packages/models[data]", "./packages/analysis[models,test]"],
}
ALL = ["-e", "./packages/models[data,test]", "-e", "./packages/quant[torch,test]", "-e", "./packages/verify[test,bitwuzla]",
       "-e", "./packages/deploy[test]", "-e", "./packages/analysis[models,test]", "-e", "./integration[test]"]  # fmt: skip
TEST_TOOLS = ["pytest", "hypothesis"]
# the root config and conftest.py apply to every run (under CI a skipped test fails the run)
PYTEST = ["-c", "pyproject.toml", "--rootdir", ".", "-q", "-p", "no:cacheprovider"]


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
    session.run("pytest", *PYTEST, *(session.posargs or [
        "packages/models/tests", "packages/quant/tests", "packages/verify/tests",
        "packages/deploy/tests", "packages/analysis/tests", "integration/tests"]))  # fmt: skip


def _one_package(session: nox.Session, pkg: str) -> None:
    """Install one package (non-editable, as a user would) with only what it declares, then test it."""
    if pkg in ("models", "quant", "analysis"):
        session.install(*C, TORCH)
    # reinstall our own packages so a reused venv never tests a stale build
    session.install(*C, "--force-reinstall", "--no-deps", *PACKAGES[pkg])
    session.install(*C, *PACKAGES[pkg], *TEST_TOOLS)
    forbidden = {"verify": "torch", "deploy": "torch"}.get(pkg)
    if forbidden:  # the design keeps torch out of the hardware side
        session.run(
            "python",
            "-c",
            f"import importlib.util as u, sys; sys.exit(u.find_spec('{forbidden}') is not None)",
        )
    session.run("pytest", *PYTEST, f"packages/{pkg}/tests", *session.posargs)


def _package_session(pkg: str) -> None:
    def run(session: nox.Session) -> None:
        _one_package(session, pkg)

    run.__doc__ = f"ctnn-{pkg} installed alone (non-editable, only what it declares), then its tests."
    nox.session(python=PY, name=f"tests-{pkg}")(run)


for _pkg in PACKAGES:
    _package_session(_pkg)


@nox.session(python=PY)
def docs(session: nox.Session) -> None:
    """The documentation site, built with --strict (a broken link or nav entry fails)."""
    session.install(*C, "mkdocs")
    session.run("mkdocs", "build", "--strict", "-d", "site")


@nox.session(python=PY)
def lint(session: nox.Session) -> None:
    session.install(*C, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PY, name="bench-models")
def bench_models(session: nox.Session) -> None:
    """ctnn-models benchmarks: LTC vs ncps (agreement, speed), LEM/Lipschitz speed; `-- accuracy` adds the table."""
    session.install(*C, TORCH)
    session.install(*C, "-e", "./packages/models[data]")
    session.install(*C, "--no-deps", "ncps")  # ncps needs only torch and numpy at import
    session.run("python", "benchmarks/models/ncps_agreement.py")
    session.run("python", "benchmarks/models/ltc_speed.py")
    session.run("python", "benchmarks/models/rnn_speed.py")
    if "accuracy" in session.posargs:
        session.run("python", "benchmarks/models/accuracy_table.py")


@nox.session(python=PY, name="bench-deploy")
def bench_deploy(session: nox.Session) -> None:
    """Deploy benchmarks: host vs onnxruntime, digits MLP on Cortex-M vs emlearn, LTC-16, FPGA synthesis.

    Writes benchmarks/deploy/results.json and docs/results/deploy.md (needs the apt packages of .ci/run);
    `-- --only host|mcu|fpga` runs a part, `-- --render` rewrites the page from the JSON.
    """
    session.install(*C, "./packages/quant", "./packages/deploy[test]", "scikit-learn", "emlearn", "pybind11")
    session.run("python", "benchmarks/deploy/bench_deploy.py", *session.posargs)


@nox.session(python=PY, name="bench-campaign")
def bench_campaign(session: nox.Session) -> None:
    """Ray campaigns: 1000 digits-MLP queries, direct calls vs Ray with 1 and 2 workers; driver memory at 100k queries.

    Writes benchmarks/campaign/results.json and the results section of docs/campaigns.md.
    """
    _install_all(session)
    session.run("python", "benchmarks/campaign/bench_campaign.py", *session.posargs)


@nox.session(python=PY, name="bench-quant")
def bench_quant(session: nox.Session) -> None:
    """Quant benchmarks: QDQ import vs onnxruntime (qdq.json); `-- accuracy [args]` rebuilds docs/results/quant.md."""
    session.install(*C, TORCH)
    session.install(*C, "-e", "./packages/models[data]", "-e", "./packages/quant[torch,test]")
    session.run("python", "benchmarks/quant/qdq.py")
    if session.posargs[:1] == ["accuracy"]:
        session.run("python", "benchmarks/quant/accuracy.py", *session.posargs[1:])


@nox.session(python=PY, name="bench-verify")
def bench_verify(session: nox.Session) -> None:
    """ctnn-verify benchmarks: MNIST 784-64-32-10 (ε = 1..4), optimized vs naive, solvers, digits 8/6/4 bits, targeted, argmax.

    Trains and caches the models (torch), writes benchmarks/verify/results.json and docs/results/verify.md;
    arguments go to bench_verify.py, e.g. `-- --suite mnist --eps 1 2 --samples 20 --render`.
    """
    session.install(*C, TORCH)
    session.install(*C, "-e", "./packages/models[data]", "-e", "./packages/quant[torch]",
                    "-e", "./packages/verify[bitwuzla]", "scikit-learn")  # fmt: skip
    session.run(
        "python", "benchmarks/verify/bench_verify.py", *(session.posargs or ["--suite", "all", "--render"])
    )
