"""``ctnn-deploy``: build an integer ONNX graph for a target, run a build on integer codes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ctnn.quant import DialectError, read_arrays, read_codes

from ._errors import DeployError


def _build(args: argparse.Namespace) -> int:
    from ._build import build
    from ._toolchain import compile_c

    options = {k: v for k, v in (("flash_kb", args.flash_kb), ("ram_kb", args.ram_kb)) if v is not None}
    if args.reuse is not None:
        options["reuse"] = args.reuse
    if args.name is not None:
        options["name"] = args.name
    res = build(args.model, target=args.target, out_dir=args.out, **options)
    print(f"built {res.target} model in {res.out_dir} ({res.seconds:.1f} s)")
    for key in ("api", "arena_bytes", "workspace_bytes", "const_bytes", "top", "latency_cycles"):
        if key in res.info:
            print(f"  {key}: {res.info[key]}")
    size = res.info.get("size")
    if size:
        print(
            f"  {size['core']} ({size['machine']}): the model's own flash {size['model_flash_bytes']} B "
            f"(text+rodata {size['model_text_bytes']}, data {size['model_data_bytes']}), RAM {size['model_ram_bytes']} B "
            f"(data+bss {size['model_data_bytes'] + size['model_bss_bytes']}, stack {size['model_stack_bytes_static']})"
        )
    if args.compile and res.target == "c":
        mod = compile_c(res.out_dir)
        print(f"  host program: {mod.executable}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from ._build import BuildResult

    res = BuildResult.from_dir(args.build_dir)
    if len(res.inputs) == 1:  # a .npy, or an .npz by the input's name, `codes` (ctnn-quant codes) or alone
        feeds = {res.inputs[0].name: read_codes(args.input, name=res.inputs[0].name)}
    else:
        feeds = read_arrays(args.input)
        missing = [i.name for i in res.inputs if i.name not in feeds]
        if missing:
            raise DeployError(
                f"{args.input}: no array for the graph's inputs {missing}; it holds {list(feeds)}"
            )
    out = res.load().run(feeds)
    outs = out if isinstance(out, dict) else {res.outputs[0].name: out}
    if args.output:
        if len(outs) == 1:
            np.save(args.output, next(iter(outs.values())))
        else:
            np.savez(args.output, **outs)
        print(f"wrote {args.output}")
    else:
        for name, a in outs.items():
            print(f"# {name}: {a.dtype} {list(a.shape)}")
            np.savetxt(sys.stdout, a.reshape(a.shape[0], -1) if a.ndim > 1 else a[None], fmt="%d")
    if args.check:
        from ctnn.quant import ReferenceInterpreter

        ref = ReferenceInterpreter(res.out_dir / "model.onnx").run(feeds)
        bad = {k: int(np.sum(np.any((ref[k] != v).reshape(len(v), -1), axis=1))) for k, v in outs.items()}
        n = len(next(iter(outs.values())))
        for k, nb in bad.items():
            print(f"check {k}: {n - nb}/{n} samples equal to the reference", file=sys.stderr)
        return 1 if any(bad.values()) else 0
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ctnn-deploy",
        description="Compile integer ONNX graphs for a target (c, host, cortex-m3, cortex-m4, fpga) and run the builds.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="compile an integer ONNX graph into a build directory")
    b.add_argument("model", type=Path, help="integer ONNX graph (.onnx)")
    b.add_argument(
        "--target",
        default="c",
        help="c (standalone C), host/llvm (TVM + LLVM), cortex-m3/cortex-m4 (firmware, run under QEMU), "
        "fpga (Verilog, simulated with iverilog)",
    )
    b.add_argument(
        "--out", type=Path, required=True, help="build directory (replaced if it is an earlier build)"
    )
    b.add_argument(
        "--compile", action="store_true", help="also compile the host test program (C target, gcc)"
    )
    b.add_argument(
        "--flash-kb", type=float, help="cortex-m*: flash of the part (default: the QEMU board's 4096)"
    )
    b.add_argument("--ram-kb", type=float, help="cortex-m*: RAM of the part (default: the QEMU board's 4096)")
    b.add_argument(
        "--name",
        help="c, cortex-m*: model name prefixing the C symbols (ctnn_<name>_run, CTNN_<NAME>_*), so that "
        "several models link into one program (default: model)",
    )
    b.add_argument(
        "--reuse", type=int, help="fpga: reuse factor of the dense layers (multiplications per multiplier)"
    )
    b.set_defaults(fn=_build)
    r = sub.add_parser(
        "run",
        help="run a build directory on integer codes (host program, QEMU for cortex-m*, iverilog for fpga)",
    )
    r.add_argument("build_dir", type=Path)
    r.add_argument(
        "--input",
        type=Path,
        required=True,
        help="integer codes [N, ...]: .npy, or .npz keyed by input name (one input: or its `codes` array)",
    )
    r.add_argument("--output", type=Path, help="write the outputs here (.npy) instead of printing them")
    r.add_argument(
        "--check", action="store_true", help="compare with ctnn-quant's reference; exit 1 on a mismatch"
    )
    r.set_defaults(fn=_run)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (DialectError, DeployError, FileNotFoundError, ValueError, TypeError, KeyError) as exc:
        print(f"ctnn-deploy: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
