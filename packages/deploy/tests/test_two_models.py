"""Two named C builds link into one program (``build(..., name=)``) and both stay bit-exact."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from ctnn.deploy import DeployError, build
from ctnn.deploy._cemit import CFLAGS
from ctnn.quant import ReferenceInterpreter, random_integer_mlp

MAIN = r"""
#include <stdio.h>
#include "wide/model.h"
#include "narrow/model.h"

static int8_t in_w[CTNN_WIDE_IN_SIZE], out_w[CTNN_WIDE_OUT_SIZE];
static int8_t in_n[CTNN_NARROW_IN_SIZE], out_n[CTNN_NARROW_OUT_SIZE];

int main(int argc, char **argv) {
  FILE *fw = fopen(argv[1], "rb"), *fn = fopen(argv[2], "rb"), *out = fopen(argv[3], "wb");
  if (!fw || !fn || !out) return 2;
  while (fread(in_w, 1, sizeof in_w, fw) == sizeof in_w && fread(in_n, 1, sizeof in_n, fn) == sizeof in_n) {
    /* interleaved calls: each model keeps its own arena and workspace */
    if (ctnn_wide_run(in_w, out_w) != 0 || ctnn_narrow_run(in_n, out_n) != 0) return 3;
    fwrite(out_w, 1, sizeof out_w, out);
    fwrite(out_n, 1, sizeof out_n, out);
  }
  return fclose(out) == 0 ? 0 : 2;
}
"""


def test_two_named_builds_link_into_one_program(gcc, tmp_path):
    # both first layers have an int16 scratch row above TVM's 1 KiB stack limit: both use a workspace
    models = {
        "wide": random_integer_mlp([520, 8, 4], weight_bits=8, seed=1).to_onnx(),
        "narrow": random_integer_mlp([600, 6, 3], weight_bits=8, seed=2).to_onnx(),
    }
    rng = np.random.default_rng(0)
    xs = {k: rng.integers(-128, 128, size=(200, 520 if k == "wide" else 600)).astype(np.int8) for k in models}
    sources, includes = [], []
    for name, model in models.items():
        res = build(model, target="c", out_dir=tmp_path / name, name=name)
        assert res.info["api"] == f"int ctnn_{name}_run(const int8_t *in, int8_t *out)"
        assert res.info["workspace_bytes"] > 0
        kernels = (res.out_dir / "kernels.c").read_text()
        assert re.findall(r"^TVM_DLL int32_t __tvm_ffi_(\w+)\(void\* self", kernels, re.M)
        assert all(
            s.startswith(f"ctnn_{name}_k")
            for s in re.findall(r"^TVM_DLL int32_t __tvm_ffi_(\w+)\(void\* self", kernels, re.M)
        )
        sources += [str(res.out_dir / "model.c"), str(res.out_dir / "kernels.c")]
        includes.append(f"-I{res.out_dir / 'include'}")
    (tmp_path / "main.c").write_text(MAIN)
    exe = tmp_path / "two_models"
    cmd = [gcc, *CFLAGS, f"-I{tmp_path}", *includes, "-o", str(exe), str(tmp_path / "main.c"), *sources]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (tmp_path / "w.bin").write_bytes(xs["wide"].tobytes())
    (tmp_path / "n.bin").write_bytes(xs["narrow"].tobytes())
    subprocess.run([str(exe), "w.bin", "n.bin", "out.bin"], cwd=tmp_path, check=True)
    out = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8).reshape(200, 4 + 3)
    for (name, model), got in zip(models.items(), (out[:, :4], out[:, 4:])):
        ref = ReferenceInterpreter(model).run({"x": xs[name]})["y"]
        np.testing.assert_array_equal(got, ref, err_msg=name)


@pytest.mark.parametrize("bad", ["Model", "1x", "a-b", "", "x" * 33])
def test_a_name_that_is_not_a_c_identifier_is_refused(bad, small_model, tmp_path):
    with pytest.raises(DeployError, match="lowercase C identifier"):
        build(small_model, target="c", out_dir=tmp_path / "b", name=bad)
    assert not (tmp_path / "b").exists()
