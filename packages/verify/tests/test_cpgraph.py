"""The whole graph as one CP-SAT model (``solver="cpsat"``, and ``"auto"`` on graphs that are not
layered): the model computes what the reference computes, bit for bit, and an op or a graph it
cannot take is named and left to the SMT solver."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ortools.sat.python import cp_model
from verify_helpers import ops_graph, wrap_graph
from verify_recurrent import BUILDERS

from ctnn.quant import random_integer_mlp
from ctnn.verify import UnsupportedError, verify_robustness
from ctnn.verify._cpgraph import CP_OPS, GraphModel, is_var
from ctnn.verify._errors import OutOfTime, WitnessError
from ctnn.verify._network import Network
from ctnn.verify._verify import _robustness_query

GRAPHS = {
    **{
        f"{f}-T3": (lambda f=f: BUILDERS[f](3, units=4, act_bits=4, seed=5).to_onnx(), (-4, 3))
        for f in BUILDERS
    },
    "mlp": (
        lambda: random_integer_mlp([5, 6, 4, 3], weight_bits=4, act_bits=4, in_bits=4, seed=1).to_onnx(),
        (-8, 7),
    ),  # fmt: skip
    "ops": (ops_graph, (-8, 7)),
    "wrap": (wrap_graph, (-128, 127)),
}


def _graph(name: str, x0: np.ndarray, eps: int) -> tuple[GraphModel, Network, np.ndarray, np.ndarray]:
    build, rng_ = GRAPHS[name]
    q, _ = _robustness_query(Network(build(), rng_), x0, eps, None, None)
    q.bound()
    return GraphModel(q.net, q.dtypes, q.bounds, q.lo, q.hi), q.net, q.lo, q.hi


class _Collect(cp_model.CpSolverSolutionCallback):
    """Every solution's output elements."""

    def __init__(self, outputs: np.ndarray) -> None:
        super().__init__()
        self.outputs, self.seen = outputs, []

    def on_solution_callback(self) -> None:
        self.seen.append(tuple(self.value(v) if is_var(v) else int(v) for v in self.outputs))
        if len(set(self.seen)) > 1:  # not a function of the inputs: a second output shows it
            self.stop_search()


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_model_computes_what_the_reference_computes(name):
    """At random points of a box, the model with its inputs fixed has exactly one solution, and its
    outputs are the reference's (every op of the recurrent cells, the MLP, the ops graph and int8
    wrap-around)."""
    net = Network(GRAPHS[name][0](), GRAPHS[name][1])
    lo_, hi_ = net.input_range
    rng = np.random.default_rng(3)
    x0 = rng.integers(lo_, hi_ + 1, size=net.n_features)
    g, net, lo, hi = _graph(name, x0, 40 if name == "wrap" else 2)
    assert any(is_var(v) for v in g.outputs)  # the box leaves the outputs open
    for x in rng.integers(lo, hi + 1, size=(12, len(lo))):
        m = g.model.clone()
        for v, val in zip(g.inputs, x):
            if is_var(v):
                m.add(m.get_int_var_from_proto_index(v.index) == int(val))
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.enumerate_all_solutions = True  # the outputs are a function of the inputs
        collect = _Collect(g.outputs)
        assert solver.solve(m, collect) == cp_model.OPTIMAL
        seen = collect.seen
        ref = np.asarray(net.reference(x)[net.output_name]).ravel().tolist()
        assert set(seen) == {tuple(ref)}, (name, x.tolist(), seen, ref)


def test_an_op_without_a_rule_is_named_and_auto_leaves_the_query_to_smt(monkeypatch):
    build, rng_ = GRAPHS["ltc-T3"]
    model, x0 = build(), np.zeros(6, np.int64)
    monkeypatch.delitem(CP_OPS, "Gather")
    with pytest.raises(UnsupportedError, match=r"node '.*': op 'Gather' has no CP-SAT encoding"):
        verify_robustness(model, x0, 1, input_range=rng_, attack=False, interval=False, solver="cpsat")
    r = verify_robustness(model, x0, 1, input_range=rng_, attack=False, interval=False)
    assert r.method == "smt" and "'Gather' has no CP-SAT encoding" in r.stats["cpsat_unsupported"]
    assert r.verdict in ("robust", "vulnerable")


def test_building_stops_at_the_deadline_and_a_timeout_names_the_open_classes(monkeypatch):
    build, rng_ = GRAPHS["lem-T3"]
    q, _ = _robustness_query(Network(build(), rng_), np.zeros(6, np.int64), 1, None, None)
    q.bound()
    with pytest.raises(OutOfTime):
        GraphModel(q.net, q.dtypes, q.bounds, q.lo, q.hi, deadline=time.perf_counter() - 1)

    def never(self, cond, deadline, workers=1):  # a search that finds nothing in its time
        return "unknown", None, None

    monkeypatch.setattr(GraphModel, "solve", never)
    r = verify_robustness(build(), np.zeros(6, np.int64), 3, input_range=rng_, attack=False, interval=False,
                          solver="cpsat")  # fmt: skip
    assert r.verdict == "unknown" and r.reason == "timeout" and r.method == "cpsat"
    assert r.label not in r.stats["open_classes"] and r.stats["open_classes"]


def test_a_witness_is_replayed_with_the_output_the_model_claims(monkeypatch):
    """CP-SAT's input is run on the reference and in onnxruntime, and the output its model claims for
    that input must be the reference's: a model that is off by one on one output fails loudly."""
    build, rng_ = GRAPHS["lem-T3"]
    x0 = np.array([3, -4, 2, 0, -1, 3])
    kw = {"input_range": rng_, "attack": False, "interval": False, "solver": "cpsat"}
    r = verify_robustness(build(), x0, 2, **kw)
    assert r.vulnerable and r.method == "cpsat"
    solve = GraphModel.solve

    def off_by_one(self, cond, deadline, workers=1):
        verdict, x, y = solve(self, cond, deadline, workers)
        return verdict, x, None if y is None else y + np.eye(len(y), dtype=np.int64)[0]

    monkeypatch.setattr(GraphModel, "solve", off_by_one)
    with pytest.raises(WitnessError, match="solver model's output .* differs from the reference"):
        verify_robustness(build(), x0, 2, **kw)
