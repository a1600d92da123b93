"""ctnn-deploy benchmarks, each against a peer measured in the same run; writes JSON and docs/results/deploy.md.

    python benchmarks/deploy/bench_deploy.py                 # everything (~15 min on 2 cores)
    python benchmarks/deploy/bench_deploy.py --only host mcu   # some sections

Sections:
  host  latency of one inference (batch 1) of the same integer graph: onnxruntime, TVM's
        llvm build (Relax VM) and the generated C (a shared library called through ctypes),
        all from Python in the same process; plus native timings without Python.
  mcu   the digits MLP 64-32-10 on Cortex-M4/M3 under QEMU: ctnn's 8-bit build against
        emlearn's float C generated from the same scikit-learn network; flash/RAM from
        arm-none-eabi-size as the difference from the same firmware without the model,
        instructions per inference (SysTick under -icount, cross-checked by a trace),
        accuracy on the same test images run on the emulated core. Also an LTC with 16 units.
  fpga  yosys resources (iCE40, ECP5, Xilinx 7) and latency for reuse factors 1, 4, 16, and
        nextpnr-ice40 for the smallest model.

Tools: arm-none-eabi-gcc, qemu-system-arm, iverilog, yosys, nextpnr-ice40 (apt-get), and emlearn
(pip; found on sys.path or in $EMLEARN_PATH). A missing one skips its rows and says so.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from digits import accuracy, train  # noqa: E402

#: quoted, not measured here (no TFLM toolchain on Debian): the issue's figures for TensorFlow Lite Micro
TFLM_QUOTED = {"flatbuffer_bytes": 3600, "arena_bytes": "1300-1600", "runtime_flash_bytes": 16000}


def _tool(name: str) -> bool:
    return shutil.which(name) is not None


def _median_us(fn, n: int) -> float:
    for _ in range(min(200, n)):
        fn()
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times) / 1000


# ------------------------------------------------------------------ host latency


def _c_shared_library(build_dir: Path) -> Path:
    lib = build_dir / "libctnn_model.so"
    cmd = [
        "gcc",
        "-O2",
        "-fwrapv",
        "-std=c11",
        "-shared",
        "-fPIC",
        "-I.",
        "-Iinclude",
        "-o",
        lib.name,
        "model.c",
        "kernels.c",
    ]
    subprocess.run(cmd, cwd=build_dir, check=True, capture_output=True)
    return lib


def _c_native_us(build_dir: Path, specs_in, specs_out, n: int) -> float:
    """ctnn_model_run in a C loop (no Python): mean ns per call over n calls."""
    decl = "".join(f"static {s.c_type} b_in{i}[{s.size}];\n" for i, s in enumerate(specs_in))
    decl += "".join(f"static {s.c_type} b_out{i}[{s.size}];\n" for i, s in enumerate(specs_out))
    args = ", ".join(
        [f"b_in{i}" for i in range(len(specs_in))] + [f"b_out{i}" for i in range(len(specs_out))]
    )
    src = f"""#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>
#include "model.h"
{decl}
int main(void) {{
  struct timespec a, b; long i;
  for (i = 0; i < 1000; ++i) ctnn_model_run({args});
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (i = 0; i < {n}; ++i) ctnn_model_run({args});
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%f\\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / {n} / 1000.0);
  return 0;
}}
"""
    (build_dir / "bench_native.c").write_text(src)
    subprocess.run(["gcc", "-O2", "-fwrapv", "-std=c11", "-I.", "-Iinclude", "-o", "bench_native", "bench_native.c",
                    "model.c", "kernels.c"], cwd=build_dir, check=True, capture_output=True)  # fmt: skip
    out = subprocess.run([str(build_dir / "bench_native")], capture_output=True, text=True, check=True).stdout
    return float(out.strip())


def host_latency(models: dict, work: Path, calls: int) -> list[dict]:
    import onnxruntime as ort
    import tvm

    from ctnn.deploy import build, build_host, compile_c
    from ctnn.quant import ReferenceInterpreter

    rows = []
    for name, model in models.items():
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
        x = np.random.default_rng(0).integers(-128, 128, size=(64, *dims)).astype(np.int8)
        ref = ReferenceInterpreter(model).run({"x": x})
        # onnxruntime, one thread as for the others
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        x1 = x[:1]
        assert all(
            np.array_equal(a, ref[o.name][:1]) for a, o in zip(sess.run(None, {"x": x1}), sess.get_outputs())
        )
        t_ort = _median_us(lambda s=sess, x=x1: s.run(None, {"x": x}), calls)
        # TVM llvm through the Relax VM
        host = build_host(model)
        f, dev = host._main, host._dev
        t1 = tvm.runtime.tensor(x1, device=dev)
        one = len(host.outputs) == 1
        t_tvm = _median_us(
            lambda f=f, t=t1, one=one: f(t).numpy() if one else [r.numpy() for r in f(t)], calls
        )
        t_tvm_native = host._vm.time_evaluator("main", dev, number=2000, repeat=5)(t1).median * 1e6
        got = host.run(x)
        got = got if isinstance(got, dict) else {host.outputs[0].name: got}
        assert all(np.array_equal(got[k], v) for k, v in ref.items())
        # the generated C as a shared library, called through ctypes
        res = build(model, target="c", out_dir=work / f"host-{name}")
        got = compile_c(res.out_dir).run(x)
        got = got if isinstance(got, dict) else {res.outputs[0].name: got}
        assert all(np.array_equal(got[k], v) for k, v in ref.items())
        lib = ctypes.CDLL(str(_c_shared_library(res.out_dir)))
        bufs_in = [np.ascontiguousarray(x1.reshape(s.shape).astype(s.dtype)) for s in res.inputs]
        bufs_out = [np.empty(s.shape, dtype=s.dtype) for s in res.outputs]
        ptrs = [b.ctypes.data_as(ctypes.c_void_p) for b in bufs_in + bufs_out]
        run = lib.ctnn_model_run
        t_c = _median_us(lambda run=run, ptrs=ptrs: run(*ptrs), calls)
        t_c_native = _c_native_us(res.out_dir, res.inputs, res.outputs, 20000)
        rows.append({
            "model": name, "onnxruntime_us": t_ort, "tvm_llvm_us": t_tvm, "c_ctypes_us": t_c,
            "tvm_llvm_native_us": t_tvm_native, "c_native_us": t_c_native,
            "tvm_llvm_vs_ort": t_tvm / t_ort, "c_vs_ort": t_c / t_ort,
        })  # fmt: skip
        print(f"host {name}: ort {t_ort:.2f} us, tvm {t_tvm:.2f} us, C {t_c:.2f} us", flush=True)
    return rows


# ------------------------------------------------------------------ microcontroller


def _emlearn_firmware(mlp, core: str, out_dir: Path) -> Path:
    """emlearn's C for the same float network, in the same firmware harness as ctnn's builds."""
    import emlearn

    from ctnn.deploy._firmware import CORES, compile_firmware, write_firmware_sources
    from ctnn.deploy._manifest import write_manifest
    from ctnn.deploy._spec import TensorSpec

    out_dir.mkdir(parents=True, exist_ok=True)
    emlearn.convert(mlp, method="loadable").save(file=str(out_dir / "eml_digits.h"), name="digits")
    inc = Path(emlearn.__file__).parent
    for h in inc.glob("eml_*.h"):
        shutil.copyfile(h, out_dir / h.name)
    api = "int ctnn_model_run(const float *in, int32_t *out)"
    (out_dir / "model.h").write_text(
        f"#include <stdint.h>\n#define CTNN_MODEL_IN_SIZE 64\n#define CTNN_MODEL_OUT_SIZE 1\n{api};\n"
    )
    (out_dir / "model.c").write_text(
        '#include "model.h"\n#include "eml_digits.h"\n'
        f"{api} {{\n  out[0] = digits_predict(in, 64);\n  return 0;\n}}\n"
    )
    (out_dir / "kernels.c").write_text("/* emlearn: everything is in model.c */\n")
    c = CORES[core]
    ins, outs = (TensorSpec("x", "float32", (1, 64)),), (TensorSpec("y", "int32", (1, 1)),)
    write_firmware_sources(out_dir, ins, outs, api, c, c.flash_bytes, c.ram_bytes)
    size = compile_firmware(out_dir, c, c.flash_bytes, c.ram_bytes)
    write_manifest(out_dir, {
        "target": core, "inputs": [s.to_dict() for s in ins], "outputs": [s.to_dict() for s in outs],
        "files": [], "info": {"size": size, "elf": "model.elf", "baseline_elf": "baseline.elf"},
    })  # fmt: skip
    return out_dir


def mcu(work: Path, runs: int) -> dict:
    from ctnn.deploy import QemuModule, build
    from ctnn.deploy._testing import ltc_cell
    from ctnn.quant import ReferenceInterpreter

    d = train()
    model = d.int_model.to_onnx("ctnn_digits")
    ref_logits = ReferenceInterpreter(model).run({"x": d.codes_test})["y"]
    out = {
        "dataset": "sklearn digits (8x8), 25% test split",
        "test_images": int(len(d.y_test)),
        "float_accuracy_sklearn": accuracy(d.float_model.predict(d.x_test), d.y_test),
        "int8_accuracy_reference": accuracy(ref_logits.argmax(1), d.y_test),
        "ctnn": {}, "emlearn": {}, "tflm_quoted": TFLM_QUOTED,
    }  # fmt: skip
    have_emlearn = True
    try:
        import emlearn  # noqa: F401
    except ImportError:
        have_emlearn = False
        out["emlearn"] = {"skipped": "emlearn is not installed (pip install emlearn==0.23.2)"}
    for core in ("cortex-m4", "cortex-m3"):
        res = build(model, target=core, out_dir=work / f"digits-{core}")
        q = res.load()
        logits = q.run(d.codes_test)
        assert np.array_equal(logits, ref_logits), f"{core}: the emulated core differs from the reference"
        t = q.timing(d.codes_test[:1], runs=runs, trace=core == "cortex-m4")
        out["ctnn"][core] = {
            **{k: v for k, v in res.info["size"].items() if k.startswith("model_")},
            "instructions": t.instructions, "traced_instructions": t.traced_instructions,
            "instructions_per_tick": t.instructions_per_tick, "stack_bytes_measured": t.stack_bytes,
            "accuracy_on_core": accuracy(logits.argmax(1), d.y_test), "const_bytes": res.info["const_bytes"],
        }  # fmt: skip
        print(f"mcu ctnn {core}: {out['ctnn'][core]}", flush=True)
        if have_emlearn:
            fw = _emlearn_firmware(d.float_model, core, work / f"emlearn-{core}")
            qe = QemuModule(fw)
            pred = qe.run(d.x_test.astype(np.float32)).reshape(-1)
            te = qe.timing(d.x_test[:1].astype(np.float32), runs=max(10, runs // 10), trace=False)
            size = json.loads((fw / "ctnn_build.json").read_text())["info"]["size"]
            out["emlearn"][core] = {
                **{k: v for k, v in size.items() if k.startswith("model_")},
                "instructions": te.instructions, "stack_bytes_measured": te.stack_bytes,
                "accuracy_on_core": accuracy(pred, d.y_test),
            }  # fmt: skip
            print(f"mcu emlearn {core}: {out['emlearn'][core]}", flush=True)
    if have_emlearn:
        c4, e4 = out["ctnn"]["cortex-m4"], out["emlearn"]["cortex-m4"]
        out["ratios_m4_emlearn_over_ctnn"] = {
            "flash": e4["model_flash_bytes"] / c4["model_flash_bytes"],
            "ram": e4["model_ram_bytes"] / c4["model_ram_bytes"],
            "instructions": e4["instructions"] / c4["instructions"],
        }
    # an LTC with 16 units (the hand-built integer graph; ctnn-quant's LTC export comes later)
    ltc = ltc_cell(units=16, features=8, classes=4, steps=8, unfolds=6, seed=0)
    x = np.random.default_rng(0).integers(-128, 128, size=(50, 8, 8)).astype(np.int8)
    ref = ReferenceInterpreter(ltc).run({"x": x})["y"]
    out["ltc16"] = {
        "graph": "ltc_cell(units=16, features=8, classes=4, steps=8, unfolds=6)",
        "nodes": len(ltc.graph.node),
    }
    for core in ("cortex-m4", "cortex-m3"):
        res = build(ltc, target=core, out_dir=work / f"ltc16-{core}")
        q = res.load()
        assert np.array_equal(q.run(x), ref)
        t = q.timing(x[:1], runs=max(5, runs // 20))
        out["ltc16"][core] = {
            **{k: v for k, v in res.info["size"].items() if k.startswith("model_")},
            "instructions": t.instructions, "kernel_calls": res.info["calls"], "kernels": len(res.info["kernels"]),
        }  # fmt: skip
        print(f"mcu ltc16 {core}: {out['ltc16'][core]}", flush=True)
    return out


# ------------------------------------------------------------------ FPGA


def fpga(work: Path, timeout_s: int, only: list[str] | None = None, old: dict | None = None) -> dict:
    """Synthesis rows for every (model, reuse, family); ``only`` (``MODEL:REUSE`` items) re-measures
    those rows and keeps the other rows of ``old`` (each row records its own date), pnr included."""
    from ctnn.deploy import build, place_and_route_ice40, synthesize
    from ctnn.quant import random_integer_mlp

    d = train()
    models = {
        "mlp16-8-4": random_integer_mlp([16, 8, 4], weight_bits=8, seed=3).to_onnx(),
        "digits64-32-10": d.int_model.to_onnx("ctnn_digits"),
    }
    rows = []
    keep = {(x["model"], x["reuse"], x["family"]): x for x in (old or {}).get("synthesis", [])}
    for name, model in models.items():
        # the digits MLP at reuse 1 has 2,368 multipliers: a yosys run may hit --synth-timeout (reported)
        for reuse in (1, 4, 16):
            if only is not None and f"{name}:{reuse}" not in only:
                rows += [
                    keep[name, reuse, fam]
                    for fam in ("ice40", "ecp5", "xilinx")
                    if (name, reuse, fam) in keep
                ]
                continue
            res = build(model, target="fpga", out_dir=work / f"fpga-{name}-r{reuse}", reuse=reuse)
            for fam in ("ice40", "ecp5", "xilinx"):
                row = {"model": name, "reuse": reuse, "family": fam, "latency_cycles": res.info["latency_cycles"],
                       "multipliers": res.info["netlist"]["multipliers"], "date": time.strftime("%Y-%m-%d"),
                       "ctnn_deploy": _deploy_version()}  # fmt: skip
                t0 = time.time()
                try:
                    row.update(_with_timeout(lambda d=res.out_dir, fam=fam: synthesize(d, fam), timeout_s))
                except Exception as exc:  # noqa: BLE001 - a report row, not a failure
                    row["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                row["synth_seconds"] = round(time.time() - t0, 1)
                rows.append(row)
                print(f"fpga {row}", flush=True)
    if only is not None and "pnr" not in only and old and "pnr_smallest" in old:
        return {"synthesis": rows, "pnr_smallest": old["pnr_smallest"]}
    res = build(models["mlp16-8-4"], target="fpga", out_dir=work / "fpga-pnr", reuse=16)
    pnr = (
        place_and_route_ice40(res.out_dir) if _tool("nextpnr-ice40") else {"skipped": "nextpnr-ice40 missing"}
    )
    pnr.pop("synth", None)
    pnr.update(date=time.strftime("%Y-%m-%d"), ctnn_deploy=_deploy_version())
    return {"synthesis": rows, "pnr_smallest": {"model": "mlp16-8-4", "reuse": 16, **pnr}}


def _deploy_version() -> str:
    import ctnn.deploy

    return ctnn.deploy.__version__


def _with_timeout(fn, timeout_s: int):
    import ctnn.deploy._hdl._sim as sim

    old = sim.TIMEOUT
    sim.TIMEOUT = timeout_s
    try:
        return fn()
    finally:
        sim.TIMEOUT = old


# ------------------------------------------------------------------ report


def _f(v, nd=1):
    return "–" if v is None else (f"{v:,.{nd}f}" if isinstance(v, float) else f"{v:,}")


def markdown(r: dict) -> str:
    L = ["# ctnn-deploy: measured results\n\n",
         f"Generated by `python benchmarks/deploy/bench_deploy.py` on {r['meta']['date']} "
         f"({r['meta']['machine']}; ctnn-deploy {r['meta']['ctnn_deploy']}, TVM {r['meta']['tvm']}, "
         f"onnxruntime {r['meta']['onnxruntime']}, {r['meta']['arm_gcc']}, {r['meta']['qemu']}, {r['meta']['yosys']}). "
         "Do not edit by hand: rerun the benchmark. Raw numbers: `benchmarks/deploy/results.json`.\n"]  # fmt: skip
    if "host" in r:
        L.append("\n## Host latency, batch 1 (same integer graph, same process)\n\n")
        L.append("One inference called from Python, median over many calls; onnxruntime with one thread. "
                 "*native*: the same call without Python (TVM's `time_evaluator`; a C loop around `ctnn_model_run`).\n\n")  # fmt: skip
        L.append(
            "| model | onnxruntime µs | TVM llvm µs | ratio | generated C µs | ratio | TVM native µs | C native µs |\n"
        )
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|\n")
        for x in r["host"]:
            L.append(f"| {x['model']} | {_f(x['onnxruntime_us'], 2)} | {_f(x['tvm_llvm_us'], 2)} | "
                     f"{_f(x['tvm_llvm_vs_ort'], 2)}× | {_f(x['c_ctypes_us'], 2)} | {_f(x['c_vs_ort'], 2)}× | "
                     f"{_f(x['tvm_llvm_native_us'], 2)} | {_f(x['c_native_us'], 3)} |\n")  # fmt: skip
    if "mcu" in r:
        m = r["mcu"]
        L.append("\n## Cortex-M: the digits MLP 64-32-10\n\n")
        L.append(f"{m['dataset']}, {m['test_images']} test images. Accuracy: float (scikit-learn) "
                 f"{m['float_accuracy_sklearn']:.4f}, 8-bit integer reference {m['int8_accuracy_reference']:.4f}. "
                 "Flash = text + rodata + data, RAM = data + bss + stack, each the model's own: the firmware minus "
                 "the same firmware without the model (`arm-none-eabi-size`; stack from `-fstack-usage`). "
                 "Instructions per inference: SysTick under `qemu-system-arm -icount shift=0` (40 instructions "
                 "per tick, calibrated in the same run), averaged, minus the firmware without the model; "
                 "the M4 row is cross-checked against an exact `-singlestep -d exec,nochain` trace.\n\n")  # fmt: skip
        L.append(
            "| build | core | flash B | RAM B | stack B | instructions | accuracy on the core |\n|---|---|---:|---:|---:|---:|---:|\n"
        )
        for who in ("ctnn", "emlearn"):
            for core, v in m.get(who, {}).items():
                if not isinstance(v, dict):
                    continue
                tr = f" (trace: {v['traced_instructions']:,})" if v.get("traced_instructions") else ""
                label = "ctnn int8 (TVM + ctnn_dot.h)" if who == "ctnn" else "emlearn 0.23 float (peer)"
                L.append(f"| {label} | {core} | {_f(v['model_flash_bytes'])} | {_f(v['model_ram_bytes'])} | "
                         f"{_f(v.get('model_stack_bytes_static', v.get('stack_bytes_measured')))} | "
                         f"{_f(v['instructions'], 0)}{tr} | {v['accuracy_on_core']:.4f} |\n")  # fmt: skip
        if "skipped" in m.get("emlearn", {}):
            L.append(f"\nemlearn: {m['emlearn']['skipped']}\n")
        if "ratios_m4_emlearn_over_ctnn" in m:
            q = m["ratios_m4_emlearn_over_ctnn"]
            L.append(f"\nOn Cortex-M4 emlearn needs {q['flash']:.1f}× the flash, {q['ram']:.1f}× the RAM and "
                     f"{q['instructions']:.1f}× the instructions of ctnn's 8-bit build. Targets for ctnn "
                     "(issue): ≤4 KB flash, ≤512 B RAM, ≤5k instructions on M4.\n")  # fmt: skip
        t = m["tflm_quoted"]
        L.append(f"\nTensorFlow Lite Micro (quoted from the issue, not measured here): a {t['flatbuffer_bytes']:,} B "
                 f"flatbuffer, a {t['arena_bytes']} B arena and ~{t['runtime_flash_bytes']:,} B of runtime.\n")  # fmt: skip
        if "ltc16" in m:
            lt = m["ltc16"]
            L.append(f"\n### An LTC with 16 units\n\n`{lt['graph']}` ({lt['nodes']} ONNX nodes, unrolled): "
                     "sigmoid lookup tables, MatMul/MatMulInteger, an integer Div per solver step.\n\n")  # fmt: skip
            L.append(
                "| core | flash B | RAM B | instructions | kernel calls | distinct kernels |\n|---|---:|---:|---:|---:|---:|\n"
            )
            for core in ("cortex-m4", "cortex-m3"):
                v = lt.get(core)
                if v:
                    L.append(f"| {core} | {_f(v['model_flash_bytes'])} | {_f(v['model_ram_bytes'])} | "
                             f"{_f(v['instructions'], 0)} | {v['kernel_calls']} | {v['kernels']} |\n")  # fmt: skip
    if "fpga" in r:
        f = r["fpga"]
        L.append("\n## FPGA: yosys synthesis and latency\n\n")
        L.append("`ctnn-deploy build --target fpga --reuse R`, then `yosys synth_ice40` / `synth_ecp5` / "
                 "`synth_xilinx -family xc7` on `ctnn_top` (LUT4s on iCE40/ECP5, LUT1–6 on Xilinx; iCE40 "
                 "without `-dsp`, so its multipliers are LUTs). Latency: cycles from the input handshake to "
                 "`out_valid`, the same in simulation.\n\n")  # fmt: skip
        L.append(
            "| model | reuse | multipliers | latency cycles | family | LUT | FF | DSP | BRAM | synth s | measured with |\n"
        )
        L.append("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|\n")
        for x in f["synthesis"]:
            if "error" in x:
                L.append(f"| {x['model']} | {x['reuse']} | {x['multipliers']} | {x['latency_cycles']} | {x['family']} "
                         f"| {x['error'][:60]} | | | | {x['synth_seconds']} | {_measured(x)} |\n")  # fmt: skip
            else:
                L.append(f"| {x['model']} | {x['reuse']} | {x['multipliers']} | {x['latency_cycles']} | {x['family']} "
                         f"| {_f(x['lut'])} | {_f(x['ff'])} | {x['dsp']} | {x['bram']} | {x['synth_seconds']} "
                         f"| {_measured(x)} |\n")  # fmt: skip
        p = f["pnr_smallest"]
        L.append(f"\nnextpnr-ice40, {p['model']} at reuse {p['reuse']} on {p.get('device', '?')}: ")
        if p.get("fits"):
            lc = p["utilisation"].get("ICESTORM_LC", ("?", "?"))
            L.append(f"fits ({lc[0]}/{lc[1]} logic cells), **{p['fmax_mhz']:.1f} MHz** achieved; "
                     f"{p['latency_cycles']} cycles = {p['latency_cycles'] / p['fmax_mhz']:.2f} µs per inference.\n")  # fmt: skip
        else:
            L.append(f"does not fit: {p.get('error', p.get('skipped', '?'))}\n")
        L.append(f"(place-and-route measured with ctnn-deploy {_measured(p)}.)\n")
        L.append(_ice40_fit(f["synthesis"]))
    return "".join(L)


def _measured(row: dict) -> str:
    # rows written before rows carried their own date come from the 0.2.0 run of 2026-11-22
    return f"{row.get('ctnn_deploy', '0.2.0')}, {row.get('date', '2026-11-22')}"


#: logic cells (one LUT4 + one FF each) of the largest iCE40 parts
ICE40_CELLS = {"iCE40 HX8K/LP8K": 7680, "iCE40 UP5K": 5280}


def _ice40_fit(rows: list[dict]) -> str:
    """Which models fit an iCE40 at all: LUT4s (or FFs) against the largest part's logic cells."""
    out = []
    for model in dict.fromkeys(x["model"] for x in rows):
        ok = [x for x in rows if x["model"] == model and x["family"] == "ice40" and "error" not in x]
        if not ok:
            continue
        best = min(ok, key=lambda x: max(x["lut"], x["ff"]))
        need, (part, cells) = max(best["lut"], best["ff"]), max(ICE40_CELLS.items(), key=lambda kv: kv[1])
        verdict = "fits" if need <= cells else f"does not fit ({need / cells:.1f}× the part)"
        out.append(f"{model} at reuse {best['reuse']} (its smallest iCE40 netlist) needs {need:,} logic cells "
                   f"({best['lut']:,} LUT4s, {best['ff']:,} FFs); the largest iCE40, {part}, has {cells:,}: "
                   f"{verdict}")  # fmt: skip
    return ("\niCE40 capacity: " + "; ".join(out) + ".\n") if out else ""


def _version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except Exception:  # noqa: BLE001
        return f"{cmd[0]} missing"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="*", choices=["host", "mcu", "fpga"], default=["host", "mcu", "fpga"])
    p.add_argument("--json", type=Path, default=HERE / "results.json")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "results" / "deploy.md")
    p.add_argument("--calls", type=int, default=3000, help="host: calls per latency median")
    p.add_argument("--runs", type=int, default=200, help="mcu: inferences timed per SysTick measurement")
    p.add_argument("--synth-timeout", type=int, default=600, help="fpga: seconds per yosys run")
    p.add_argument(
        "--fpga-rows",
        nargs="*",
        metavar="MODEL:REUSE",
        help="fpga: re-measure only these rows (e.g. digits64-32-10:1; 'pnr' for place-and-route), "
        "keeping the others from the JSON",
    )
    p.add_argument("--render", action="store_true", help="only rewrite the page from the JSON")
    args = p.parse_args(argv)
    if args.render:
        args.doc.write_text(markdown(json.loads(args.json.read_text())))
        print(f"wrote {args.doc}")
        return 0
    if os.environ.get("EMLEARN_PATH"):
        sys.path.insert(0, os.environ["EMLEARN_PATH"])

    import onnxruntime
    import tvm

    import ctnn.deploy
    from ctnn.deploy._testing import gated_rnn, ltc_cell
    from ctnn.quant import random_integer_mlp

    results = json.loads(args.json.read_text()) if args.json.is_file() else {}
    results["meta"] = {
        "date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "ctnn_deploy": ctnn.deploy.__version__, "tvm": tvm.__version__, "onnxruntime": onnxruntime.__version__,
        "arm_gcc": _version(["arm-none-eabi-gcc", "--version"]), "qemu": _version(["qemu-system-arm", "--version"]),
        "yosys": _version(["yosys", "-V"]),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ctnn-bench-") as tmp:
        work = Path(tmp)
        if "host" in args.only:
            models = {
                "digits 64-32-10": train().int_model.to_onnx("ctnn_digits"),
                "mlp 256-128-64-10": random_integer_mlp([256, 128, 64, 10], seed=0).to_onnx(),
                "gated RNN (5 steps)": gated_rnn(),
                "LTC 16 units": ltc_cell(units=16, steps=8, unfolds=6),
            }
            results["host"] = host_latency(models, work, args.calls)
        if "mcu" in args.only:
            if _tool("arm-none-eabi-gcc") and _tool("qemu-system-arm"):
                results["mcu"] = mcu(work, args.runs)
            else:
                print(
                    "mcu: skipped (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
                )
        if "fpga" in args.only:
            if _tool("yosys"):
                results["fpga"] = fpga(work, args.synth_timeout, args.fpga_rows, results.get("fpga"))
            else:
                print("fpga: skipped (apt-get install yosys nextpnr-ice40)")
    args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(markdown(results))
    print(f"wrote {args.json} and {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
