"""What the generated C is made of: static memory, const weights, TVM headers only, no TVM library."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from ctnn.quant import initializers

ALLOC = re.compile(r"\b(malloc|calloc|realloc|free|alloca)\s*\(")


def _sources(build_dir):
    return {n: (build_dir / n).read_text() for n in ("model.c", "kernels.c", "main.c", "model.h")}


def test_no_dynamic_allocation(case):
    for name, text in _sources(case.c_build.out_dir).items():
        assert not ALLOC.search(text), f"{name} allocates memory: {ALLOC.search(text).group(0)}"


def test_api_and_types_from_the_graph(case):
    d = case.c_build.out_dir
    header = (d / "model.h").read_text()
    assert "int ctnn_model_run(const int8_t *in, int8_t *out);" in header
    assert re.search(r"#define CTNN_MODEL_IN_SIZE 520\b|#define CTNN_MODEL_IN_SIZE 64\b", header)
    assert "#define CTNN_MODEL_OUT_SIZE 10" in header
    assert case.c_build.info["api"] == "int ctnn_model_run(const int8_t *in, int8_t *out)"


def test_weights_are_const_arrays(case):
    text = (case.c_build.out_dir / "model.c").read_text()
    arrays = re.findall(r"^static (const )?(\w+) (ctnn_c\d+)\[(\d+)\] = \{([^}]*)\};", text, re.M)
    assert arrays and all(const for const, *_ in arrays), "every constant array must be const (flash)"
    # every weight matrix of the graph is in model.c value for value, as int8 (one contiguous row per
    # output: the transpose of the ONNX [in, out] matrix), never widened to int32 by constant folding
    values = {
        name: (ctype, np.array([int(v) for v in body.replace("\n", " ").split(",")]))
        for _, ctype, name, _, body in arrays
    }
    for name, w in initializers(case.model).items():
        if name.endswith("/W"):
            flat = w.T.astype(np.int64).reshape(-1)
            found = [t for t, v in values.values() if v.shape == flat.shape and (v == flat).all()]
            assert found == ["int8_t"], (name, found)
    assert case.c_build.info["const_bytes"] < sum(w.size for w in initializers(case.model).values()) * 2
    # the only writable static data: the I/O tensor descriptors, the arena and the workspace
    for line in re.findall(r"^static (?!const\b).*$", text, re.M):
        name = re.match(r"static (?:_Alignas\(\d+\) )?\w+ (\w+)", line).group(1)
        io = re.fullmatch(r"ctnn_t\d+", name) and re.search(r"/\* (input|output) '", line)
        assert io or name in {"ctnn_arena", "ctnn_workspace", "ctnn_workspace_top", "ctnn_workspace_live"}, (
            line
        )


def test_headers_copied_from_tvm(case):
    d = case.c_build.out_dir
    for h in ("tvm/ffi/c_api.h", "dlpack/dlpack.h", "tvm/runtime/c_backend_api.h"):
        assert (d / "include" / h).is_file()


def test_program_links_without_tvm(gcc, case):
    from ctnn.deploy import compile_c

    mod = compile_c(case.c_build.out_dir)
    cmd = " ".join(mod.command)
    assert "-ltvm" not in cmd and "-L" not in cmd and "tvm_ffi" not in cmd
    if shutil.which("ldd"):
        libs = subprocess.run(["ldd", str(mod.executable)], capture_output=True, text=True).stdout
        assert "tvm" not in libs.lower()
    if shutil.which("nm"):
        undefined = subprocess.run(["nm", "-u", str(mod.executable)], capture_output=True, text=True).stdout
        assert not re.search(r"\b(TVM|__tvm)\w*", undefined), undefined


def test_workspace_arena_matches_the_kernels(gcc, case):
    info = case.c_build.info
    kernels = (case.c_build.out_dir / "kernels.c").read_text()
    model_c = (case.c_build.out_dir / "model.c").read_text()
    if "TVMBackendAllocWorkspace" not in kernels:  # stack buffers only: no arena at all
        assert info["workspace_bytes"] == 0 and "ctnn_workspace[" not in model_c
        return
    assert info["workspace_bytes"] > 0
    model_c = (case.c_build.out_dir / "model.c").read_text()
    assert (
        "void *TVMBackendAllocWorkspace(" in model_c
        and f"ctnn_workspace[{info['workspace_bytes']}]" in model_c
    )


@pytest.mark.parametrize("case", ["3layer-w8"], indirect=True)  # the model whose kernels need a workspace
def test_exhausted_workspace_is_an_error(gcc, case, tmp_path):
    from ctnn.deploy import ToolchainError, compile_c

    assert case.c_build.info["workspace_bytes"] > 0
    d = tmp_path / "small"
    shutil.copytree(case.c_build.out_dir, d)
    text = (d / "model.c").read_text()
    (d / "model.c").write_text(re.sub(r"ctnn_workspace\[\d+\]", "ctnn_workspace[16]", text))
    with pytest.raises(ToolchainError, match=r"ctnn_model_run returned -1 on sample 0"):
        compile_c(d).run(case.x[:3])


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_builds_the_host_program(gcc, case, tmp_path):
    d = tmp_path / "mk"
    shutil.copytree(case.c_build.out_dir, d, ignore=shutil.ignore_patterns("ctnn_model_host*"))
    proc = subprocess.run(["make", "-C", str(d), "CC=gcc"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "-fwrapv" in proc.stdout
    out = subprocess.run([str(d / "ctnn_model_host")], input=case.x[:10].tobytes(), capture_output=True)
    assert np.array_equal(np.frombuffer(out.stdout, np.int8).reshape(10, -1), case.ref[:10])
