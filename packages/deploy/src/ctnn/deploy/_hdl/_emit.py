"""Writing a :class:`~ctnn.deploy._hdl._graph.Netlist` as Verilog: the top, ROM files, a testbench.

The top (``ctnn_top``) has a valid/ready stream on each side: one whole sample per
transfer on ``in_data`` (the graph's inputs, element after element, each in its
container's bits) and one on ``out_data`` (the outputs, likewise). It latches a sample,
runs the engines' stages one after another (a stage's operands are combinational logic
over registers that hold still while it runs), latches each result into a register, and
presents the outputs until the consumer takes them. Results whose lifetimes do not
overlap share a register (the same liveness plan as the C arena), which is what keeps
an unrolled recurrent graph from needing one register per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._graph import E, Netlist, Port, Sig, container

INF = 1 << 30


@dataclass
class Phys:
    name: str
    n: int
    width: int


def _hex(value: int, bits: int) -> str:
    return f"{value & ((1 << bits) - 1):0{max(1, -(-bits // 4))}x}"


class Emitter:
    def __init__(self, net: Netlist):
        self.net = net
        self._dead_code()
        self.phys: dict[str, Phys] = {}  # vreg -> physical register
        self.engine_widths: dict[str, dict[str, int]] = {}
        self._allocate()

    def _dead_code(self) -> None:
        """Drop combinational instances nothing reads (e.g. the ops a fused requantization replaced)."""
        live: set[str] = set()
        for _, t in self.net.outputs:
            live |= {e.sig for e in t.elems.reshape(-1) if e.sig is not None}
        for st in self.net.stages:
            for port in st.ports.values():
                live |= {e.sig for e in port.elems if e.sig is not None}
        kept = []
        for inst in reversed(self.net.insts):
            if inst.out in live:
                kept.append(inst)
                for port in inst.ports.values():
                    live |= {e.sig for e in port.elems if e.sig is not None}
        self.net.insts = list(reversed(kept))
        self.net.sigs = {k: v for k, v in self.net.sigs.items() if v.kind != "wire" or k in live}

    # -- liveness and register sharing
    def _deps(self) -> dict[str, set[str]]:
        deps: dict[str, set[str]] = {}
        for inst in self.net.insts:
            d: set[str] = set()
            for port in inst.ports.values():
                d |= self._elem_deps(port.elems, deps)
            deps[inst.out] = d
        return deps

    def _elem_deps(self, elems: list[E], deps: dict[str, set[str]]) -> set[str]:
        out: set[str] = set()
        for sig in {e.sig for e in elems if e.sig is not None}:
            kind = self.net.sigs[sig].kind
            if kind == "vreg":
                out.add(sig)
            elif kind == "wire":
                out |= deps[sig]
        return out

    def _allocate(self) -> None:
        deps = self._deps()
        last: dict[str, int] = {}
        for s, st in enumerate(self.net.stages):
            for port in st.ports.values():
                for v in self._elem_deps(port.elems, deps):
                    last[v] = max(last.get(v, -1), s)
        for _, t in self.net.outputs:
            for v in self._elem_deps(list(t.elems.reshape(-1)), deps):
                last[v] = INF
        pool: list[tuple[Phys, int]] = []  # (register, last use of its current value)
        for s, st in enumerate(self.net.stages):
            v = self.net.sigs[st.out]
            free = next((i for i, (p, lu) in enumerate(pool) if p.n == v.n and lu <= s), None)
            if free is None:
                p = Phys(f"p{len(pool)}", v.n, v.width)
                pool.append((p, last.get(v.name, s)))
            else:
                p = pool[free][0]
                p.width = max(p.width, v.width)
                pool[free] = (p, last.get(v.name, s))
            self.phys[v.name] = p
        self.registers = [p for p, _ in pool]
        for eng in self.net.engines.values():
            widths: dict[str, int] = {}
            for s in eng.stages:
                for k, w in self.net.stages[s].widths.items():
                    widths[k] = max(widths.get(k, 1), w)
            self.engine_widths[eng.name] = widths

    # -- element and vector expressions
    def elem(self, e: E, width: int) -> str:
        if e.sig is None:
            return f"{width}'h{_hex(e.i, width)}"
        sig: Sig = self.net.sigs[e.sig]
        if sig.kind == "vreg":
            p = self.phys[sig.name]
            name, stride = p.name, p.width
        else:
            name, stride = sig.name, sig.width
        ew = sig.width
        lsb = e.i * stride
        if width <= ew:
            return f"{name}[{lsb + width - 1}:{lsb}]" if width > 1 else f"{name}[{lsb}]"
        sign = "1'b0" if sig.is_bool else f"{name}[{lsb + ew - 1}]"
        body = f"{name}[{lsb + ew - 1}:{lsb}]" if ew > 1 else f"{name}[{lsb}]"
        return f"{{{{{width - ew}{{{sign}}}}}, {body}}}"

    def vector(self, port: Port, width: int | None = None) -> str:
        w = port.width if width is None else width
        parts = [self.elem(e, w) for e in reversed(port.elems)]
        return "{" + ", ".join(parts) + "}" if len(parts) > 1 else parts[0]

    # -- the files
    def top(self) -> str:
        net = self.net
        in_w = sum(container(dt)[2] * sig.n for _, sig, dt, _ in net.inputs)
        out_elems = [(e, container(t.dtype)[2] if t.dtype != "bool" else 8) for _, t in net.outputs
                     for e in t.elems.reshape(-1)]  # fmt: skip
        out_w = sum(w for _, w in out_elems)
        n_st = len(net.stages)
        sbits = max(1, (max(n_st, 1) - 1).bit_length())
        L = [
            "// ctnn_top: generated by ctnn-deploy from the TVM-optimized Relax graph. Do not edit.\n",
            "`default_nettype none\n",
            "module ctnn_top (\n  input wire clk, input wire rst,\n",
            f"  input wire in_valid, output wire in_ready, input wire [{in_w - 1}:0] in_data,\n",
            f"  output wire out_valid, input wire out_ready, output wire [{out_w - 1}:0] out_data);\n\n",
            f"  localparam IDLE = 2'd0, RUN = 2'd1, DONE = 2'd2, STAGES = {n_st};\n",
            f"  reg [1:0] state;\n  reg [{sbits - 1}:0] stage;\n  reg kick;\n",
            f"  reg [{in_w - 1}:0] in_reg;\n",
            "  assign in_ready = state == IDLE;\n  assign out_valid = state == DONE;\n\n",
        ]
        # inputs: the latched sample, element by element in container bits
        at = 0
        for name, sig, dtype, _ in net.inputs:
            cmin, _, bits = container(dtype)
            L.append(
                f"  // input {name!r}: {dtype} x {sig.n}\n  wire [{sig.n * sig.width - 1}:0] {sig.name};\n"
            )
            for i in range(sig.n):
                src = f"in_reg[{at + i * bits + bits - 1}:{at + i * bits}]"
                ext = sig.width - bits
                fill = f"in_reg[{at + i * bits + bits - 1}]" if cmin < 0 else "1'b0"
                val = src if ext == 0 else f"{{{{{ext}{{{fill}}}}}, {src}}}"
                L.append(f"  assign {sig.name}[{i * sig.width + sig.width - 1}:{i * sig.width}] = {val};\n")
            at += bits * sig.n
        L.append("\n  // registers holding engine results (shared when their lifetimes do not overlap)\n")
        for p in self.registers:
            L.append(f"  reg [{p.n * p.width - 1}:0] {p.name};\n")
        L.append("\n  // combinational logic: one ctnn_lib module per op\n")
        for k, inst in enumerate(net.insts):
            out = net.sigs[inst.out]
            L.append(f"  wire [{out.n * out.width - 1}:0] {out.name};\n")
            params = ", ".join(f".{k2}({v})" for k2, v in inst.params.items())
            ports = ", ".join(f".{pn}({self.vector(p)})" for pn, p in inst.ports.items())
            L.append(f"  {inst.module} #({params}) u{k} ({ports}, .y({out.name}));\n")
        L.append("\n  // engines, each shared by every stage that uses the same constants\n")
        done_terms, latch = [], []
        for eng in net.engines.values():
            L.extend(self._engine(eng))
            for s in eng.stages:
                done_terms.append(f"      {s}: stage_done = {eng.name}_done;\n")
                st = net.stages[s]
                p = self.phys[st.out]
                outw = self._engine_out_width(eng)
                y = Port([E(f"{eng.name}_y", i) for i in range(p.n)], p.width)
                latch.append((s, p.name, self._vector_raw(y, f"{eng.name}_y", outw, p.width, p.n)))
        L.append("\n  // schedule: IDLE -> stage 0 .. STAGES-1 -> DONE\n")
        L.append("  reg stage_done;\n  always @* begin\n    stage_done = 1'b0;\n")
        if done_terms:
            L.append(
                "    case (stage)\n"
                + "".join(done_terms)
                + "      default: stage_done = 1'b0;\n    endcase\n"
            )
        L.append("  end\n")
        L.append(
            "  always @(posedge clk) begin\n    kick <= 1'b0;\n    if (rst) begin\n      state <= IDLE; stage <= 0;\n"
            "    end else begin\n      case (state)\n"
            "        IDLE: if (in_valid) begin\n          in_reg <= in_data; stage <= 0;\n"
            "          if (STAGES == 0) state <= DONE; else begin state <= RUN; kick <= 1'b1; end\n        end\n"
            "        RUN: if (stage_done) begin\n"
            "          if (stage == STAGES - 1) state <= DONE; else begin stage <= stage + 1; kick <= 1'b1; end\n"
            "        end\n        DONE: if (out_ready) state <= IDLE;\n        default: state <= IDLE;\n"
            "      endcase\n    end\n  end\n"
        )
        if latch:
            L.append("  always @(posedge clk)\n    if (state == RUN && stage_done)\n      case (stage)\n")
            for s, reg, expr in latch:
                L.append(f"        {s}: {reg} <= {expr};\n")
            L.append("        default: ;\n      endcase\n")
        L.append("\n  // outputs: every element in its container's bits\n")
        parts = [self.elem(e, w) for e, w in reversed(out_elems)]
        L.append(
            f"  assign out_data = {{{', '.join(parts)}}};\n"
            if len(parts) > 1
            else f"  assign out_data = {parts[0]};\n"
        )
        L.append("endmodule\n`default_nettype wire\n")
        self.in_width, self.out_width = in_w, out_w
        return "".join(L)

    def _vector_raw(self, port: Port, name: str, ew: int, width: int, n: int) -> str:
        parts = []
        for i in reversed(range(n)):
            lsb = i * ew
            if width <= ew:
                parts.append(f"{name}[{lsb + width - 1}:{lsb}]")
            else:
                parts.append(f"{{{{{width - ew}{{{name}[{lsb + ew - 1}]}}}}, {name}[{lsb + ew - 1}:{lsb}]}}")
        return "{" + ", ".join(parts) + "}"

    def _engine_out_width(self, eng) -> int:
        w = self.engine_widths[eng.name]
        if eng.kind == "dense":
            return w["WACC"]
        return eng.const["WO"] if eng.kind == "lut" else w["WQ"]

    def _mux(self, eng, port: str, width: int) -> str:
        stages = eng.stages
        expr = self.vector(self.net.stages[stages[-1]].ports[port], width)
        for s in reversed(stages[:-1]):
            expr = f"(stage == {s}) ? {self.vector(self.net.stages[s].ports[port], width)} :\n      {expr}"
        return expr

    def _engine(self, eng) -> list[str]:
        w, c = self.engine_widths[eng.name], eng.const
        starts = " || ".join(f"stage == {s}" for s in eng.stages)
        L = [f"  // {eng.name}: {len(eng.stages)} stage(s)\n"]
        L.append(f"  wire {eng.name}_start = kick && ({starts});\n  wire {eng.name}_done;\n")
        if eng.kind == "dense":
            wx, wacc = w["WX"], w["WACC"]
            L.append(f"  wire [{c['K'] * wx - 1}:0] {eng.name}_x = {self._mux(eng, 'x', wx)};\n")
            L.append(f"  wire [{c['N'] * wacc - 1}:0] {eng.name}_y;\n")
            L.append(
                f"  ctnn_dense #(.K({c['K']}), .N({c['N']}), .R({c['R']}), .KC({c['KC']}), .WX({wx}), "
                f'.WW({c["WW"]}), .WACC({wacc}), .ROMFILE("{eng.name}.hex")) {eng.name}_u (.clk(clk), '
                f".rst(rst), .start({eng.name}_start), .x({eng.name}_x), .done({eng.name}_done), .y({eng.name}_y));\n"
            )
        elif eng.kind == "lut":
            wi = w["WI"]
            L.append(f"  wire [{c['E'] * wi - 1}:0] {eng.name}_idx = {self._mux(eng, 'idx', wi)};\n")
            L.append(f"  wire [{c['E'] * c['C'] * c['WO'] - 1}:0] {eng.name}_y;\n")
            L.append(
                f"  ctnn_lut #(.E({c['E']}), .WI({wi}), .D({c['D']}), .C({c['C']}), .WO({c['WO']}), "
                f'.ROMFILE("{eng.name}.hex")) {eng.name}_u (.clk(clk), .rst(rst), .start({eng.name}_start), '
                f".idx({eng.name}_idx), .done({eng.name}_done), .y({eng.name}_y));\n"
            )
        else:
            wa, wb, wq = w["WA"], w["WB"], w["WQ"]
            L.append(f"  wire [{c['E'] * wa - 1}:0] {eng.name}_a = {self._mux(eng, 'a', wa)};\n")
            L.append(f"  wire [{c['E'] * wb - 1}:0] {eng.name}_b = {self._mux(eng, 'b', wb)};\n")
            L.append(f"  wire [{c['E'] * wq - 1}:0] {eng.name}_y;\n")
            L.append(
                f"  ctnn_divider #(.E({c['E']}), .WA({wa}), .WB({wb}), .WQ({wq})) {eng.name}_u (.clk(clk), "
                f".rst(rst), .start({eng.name}_start), .a({eng.name}_a), .b({eng.name}_b), "
                f".done({eng.name}_done), .y({eng.name}_y));\n"
            )
        return L

    def roms(self) -> dict[str, str]:
        """ROM files ($readmemh): one word per line, element 0 in the low bits."""
        files = {}
        for eng in self.net.engines.values():
            c = eng.const
            lines = []
            if eng.kind == "dense":
                w, k, n, r, kc, ww = c["weights"].astype(np.int64), c["K"], c["N"], c["R"], c["KC"], c["WW"]
                pad = np.zeros((r * kc, n), np.int64)
                pad[:k] = w
                for t in range(r):
                    word = 0
                    for nn in range(n):
                        for j in range(kc):
                            word |= (int(pad[t * kc + j, nn]) & ((1 << ww) - 1)) << ((nn * kc + j) * ww)
                    lines.append(_hex(word, n * kc * ww))
            elif eng.kind == "lut":
                wo = c["WO"]
                for row in c["table"].astype(np.int64):
                    word = 0
                    for j, v in enumerate(row):
                        word |= (int(v) & ((1 << wo) - 1)) << (j * wo)
                    lines.append(_hex(word, c["C"] * wo))
            else:
                continue
            files[f"{eng.name}.hex"] = "\n".join(lines) + "\n"
        return files

    def latency(self) -> int:
        """Cycles from the input handshake to out_valid (the schedule is static)."""
        total = 1 if not self.net.stages else 0
        for st in self.net.stages:
            eng = self.net.engines[st.engine]
            c, w = eng.const, self.engine_widths[eng.name]
            if eng.kind == "dense":
                total += 1 + c["R"] + 2
            elif eng.kind == "lut":
                total += 1 + c["E"] + 2
            else:
                total += 1 + c["E"] * (w["WA"] + 2) + 1
        return total + 1

    def resources(self) -> dict[str, int]:
        """What the netlist instantiates, before synthesis."""
        mults = sum(e.const["N"] * e.const["KC"] for e in self.net.engines.values() if e.kind == "dense")
        return {
            "comb_instances": len(self.net.insts),
            "engines": len(self.net.engines),
            "stages": len(self.net.stages),
            "multipliers": mults,
            "register_bits": sum(p.n * p.width for p in self.registers),
        }


def testbench(in_w: int, out_w: int, timeout_cycles: int) -> str:
    return f"""// Self-checking testbench (ctnn-deploy): streams vectors_in.hex through ctnn_top with a
// randomly stalling consumer, compares every output with vectors_ref.hex, writes sim_out.hex.
// Run: iverilog -g2012 -o tb ctnn_lib.v ctnn_top.v ctnn_tb.v && vvp tb +N=<vectors>
`timescale 1ns/1ps
`default_nettype none
module ctnn_tb;
  parameter NMAX = 100000;
  localparam IN_W = {in_w}, OUT_W = {out_w};
  reg clk = 1'b0, rst = 1'b1;
  always #5 clk = ~clk;
  reg in_valid = 1'b0, out_ready = 1'b0;
  reg [IN_W-1:0] in_data = 0;
  wire in_ready, out_valid;
  wire [OUT_W-1:0] out_data;
  ctnn_top dut (.clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),
                .out_valid(out_valid), .out_ready(out_ready), .out_data(out_data));
  reg [IN_W-1:0] vin [0:NMAX-1];
  reg [OUT_W-1:0] vref [0:NMAX-1];
  integer n, sent, got, fails, fo, cycle, t_in, lat, lat_min, lat_max;
  reg seen;
  reg [15:0] lfsr;
  initial begin
    n = 0;
    if (!$value$plusargs("N=%d", n)) n = 1;
    $readmemh("vectors_in.hex", vin);
    $readmemh("vectors_ref.hex", vref);
    fo = $fopen("sim_out.hex", "w");
    cycle = 0; sent = 0; got = 0; fails = 0; lat_min = 1 << 30; lat_max = 0; seen = 1'b0; lfsr = 16'hACE1;
    repeat (4) @(posedge clk);
    rst <= 1'b0;
    in_data <= vin[0];
    in_valid <= 1'b1;
  end
  always @(posedge clk) begin
    cycle <= cycle + 1;
    lfsr <= {{lfsr[14:0], lfsr[15] ^ lfsr[13] ^ lfsr[12] ^ lfsr[10]}};
    if (!rst) begin
      out_ready <= lfsr[0] | lfsr[1];  // the consumer stalls a quarter of the cycles
      if (in_valid && in_ready) begin
        t_in <= cycle;
        sent <= sent + 1;
        if (sent + 1 < n) in_data <= vin[sent + 1];
        else in_valid <= 1'b0;
      end
      if (out_valid && !seen) begin
        seen <= 1'b1;
        lat = cycle - t_in;
        if (lat < lat_min) lat_min = lat;
        if (lat > lat_max) lat_max = lat;
      end
      if (out_valid && out_ready) begin
        seen <= 1'b0;
        $fwrite(fo, "%h\\n", out_data);
        if (out_data !== vref[got]) begin
          fails = fails + 1;
          if (fails <= 5) $display("CTNN_MISMATCH vector=%0d got=%h want=%h", got, out_data, vref[got]);
        end
        got <= got + 1;
        if (got + 1 == n) begin
          $display("CTNN_RESULT vectors=%0d fails=%0d latency_min=%0d latency_max=%0d cycles=%0d", n, fails,
                   lat_min, lat_max, cycle);
          $fclose(fo);
          $finish;
        end
      end
      if (cycle > {timeout_cycles} * (n + 1)) begin
        $display("CTNN_TIMEOUT after %0d cycles, %0d of %0d vectors", cycle, got, n);
        $fclose(fo);
        $finish;
      end
    end
  end
endmodule
`default_nettype wire
"""


def write_hdl(net: Netlist, out_dir: Path) -> dict:
    """Write ctnn_lib.v, ctnn_top.v, the ROM files and ctnn_tb.v; return facts for the manifest."""
    from importlib.resources import files

    em = Emitter(net)
    top = em.top()
    lat = em.latency()
    texts = {
        "ctnn_lib.v": (files("ctnn.deploy") / "_hdl" / "ctnn_lib.v").read_text(),
        "ctnn_top.v": top,
        "ctnn_tb.v": testbench(em.in_width, em.out_width, lat * 4 + 100),
        **em.roms(),
    }
    for name, text in texts.items():
        (out_dir / name).write_text(text)
    outputs = []
    for name, t in net.outputs:
        outputs.append({"name": name, "dtype": t.dtype, "elements": int(t.elems.size),
                        "bits": container(t.dtype)[2] if t.dtype != "bool" else 8})  # fmt: skip
    return {
        "top": "ctnn_top",
        "files": sorted(texts),
        "in_bits": em.in_width,
        "out_bits": em.out_width,
        "inputs": [
            {"name": n, "dtype": dt, "elements": s.n, "bits": container(dt)[2]} for n, s, dt, _ in net.inputs
        ],
        "outputs": outputs,
        "latency_cycles": lat,
        "reuse": net.reuse,
        "netlist": em.resources(),
    }
