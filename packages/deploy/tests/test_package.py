"""Package hygiene: a torch-free, cheap import and a small public surface."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import ctnn.deploy


def test_import_pulls_neither_torch_nor_tvm():
    code = "import sys, ctnn.deploy; print('torch' in sys.modules, 'tvm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_public_api():
    # the version is written once, in the package: the installed metadata reads it from there
    assert ctnn.deploy.__version__ == importlib.metadata.version("ctnn-deploy")
    for name in ctnn.deploy.__all__:
        assert hasattr(ctnn.deploy, name), name
    assert {"c", "llvm", "host", "cortex-m3", "cortex-m4", "fpga"} <= set(ctnn.deploy.TARGETS)
    assert ctnn.deploy.get_target("host") is ctnn.deploy.get_target("llvm")
    assert isinstance(ctnn.deploy.get_target("c"), ctnn.deploy.Target)


def test_docstring_examples_run(gcc):
    import doctest

    from ctnn.deploy import _build, _frontend, _toolchain
    from ctnn.deploy._targets import _llvm

    for mod in (_frontend, _build, _toolchain, _llvm):
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0, mod.__name__
