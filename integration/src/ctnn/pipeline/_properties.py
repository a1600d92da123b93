"""Campaign properties: a registry from a spec's property name to what one query runs.

An entry expands a ``[[properties]]`` table of the spec into parameter sets (a grid)
and runs one query on a worker. Adding a property of ctnn-verify to campaigns is one
entry here; a plugin file named by the spec can register more (tests register a
deliberately slow one that way).
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np


class CampaignProperty:
    """One kind of query. ``grid`` names the parameters a spec lists values for (their product is run)."""

    name: str = ""
    grid: tuple[str, ...] = ()  # keys whose lists are swept (one query per combination)
    fixed: tuple[str, ...] = ()  # keys taken as they are (a list is one value)
    files: tuple[str, ...] = ()  # fixed keys naming files: resolved against the spec's directory
    required: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}
    per_sample: bool = True  # False: one query per model and parameter set (the sample is not used)
    entry_points: tuple[str, ...] = ()  # the ctnn.verify functions it calls (checked for the solver)
    input_quant: bool = False  # True: its params get the model's input quantizer (``input_quant``) if known

    def check_solver(self, solver: str, where: str) -> None:
        """Raise ValueError if an entry point cannot run ``solver`` (before any query is asked)."""
        import ctnn.verify

        for name in self.entry_points:
            try:
                _solver_kwargs(getattr(ctnn.verify, name), solver)
            except ValueError as exc:
                raise ValueError(f"{where}: property {self.name!r}: {exc}") from None

    def check(self, params: dict[str, Any], where: str) -> None:
        """Raise ValueError (naming ``where``, the key and the value) for a bad parameter set."""

    def expand(self, table: dict[str, Any], where: str) -> list[dict[str, Any]]:
        """The parameter sets of one ``[[properties]]`` table: the product of the grid keys' lists."""
        allowed = {"name", *self.grid, *self.fixed, *self.defaults}
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise ValueError(
                f"{where}: unknown keys {unknown} for property {self.name!r}; known: {sorted(allowed)}"
            )
        for k in self.required:
            if k not in table:
                raise ValueError(f"{where}: property {self.name!r} needs {k!r}")
        lists = []
        for k in self.grid:
            v = table.get(k, self.defaults.get(k))
            vals = v if isinstance(v, list) else [v]
            if not vals:
                raise ValueError(f"{where}: {k} = [] (no values) for property {self.name!r}")
            lists.append(vals)
        fixed = {k: table.get(k, v) for k, v in self.defaults.items() if k not in self.grid}
        fixed.update({k: table[k] for k in self.fixed if k in table})
        out = []
        for combo in itertools.product(*lists):
            params = {**fixed, **dict(zip(self.grid, combo))}
            self.check(params, where)
            out.append(params)
        return out

    def run(
        self, model: Any, x: np.ndarray, label: int | None, params: dict[str, Any], timeout_s: float, solver: str,
        input_range: tuple[int, int] | None,
    ) -> dict[str, Any]:  # fmt: skip
        """Run one query on a worker; return a JSON-ready dict with at least ``verdict``."""
        raise NotImplementedError


def _solver_kwargs(fn: Callable, solver: str) -> dict[str, Any]:
    """Pass ``solver`` to a verify entry point that takes one; z3 is what the others use."""
    if "solver" in inspect.signature(fn).parameters:
        return {"solver": solver}
    if solver != "z3":
        raise ValueError(f"this ctnn-verify's {fn.__name__} runs z3 only, not solver {solver!r}")
    return {}


def _nonneg_int(params: dict[str, Any], key: str, where: str) -> None:
    v = params[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"{where}: {key} must be non-negative integers (input codes), got {v!r}")


class Robustness(CampaignProperty):
    """Local robustness in an L∞ box of ``eps`` input codes (:func:`ctnn.verify.verify_robustness`)."""

    name = "robustness"
    entry_points = ("verify_robustness",)
    grid = ("eps",)
    required = ("eps",)
    defaults = {"attack": True, "encoding": "optimized"}

    def check(self, params: dict[str, Any], where: str) -> None:
        _nonneg_int(params, "eps", where)

    def run(self, model, x, label, params, timeout_s, solver, input_range):  # type: ignore[override]
        from ctnn.verify import verify_robustness

        r = verify_robustness(
            model, x, params["eps"], label=label, timeout_s=timeout_s, attack=params["attack"],
            input_range=input_range, encoding=params["encoding"], **_solver_kwargs(verify_robustness, solver),
        )  # fmt: skip
        return r.to_dict()


class Targeted(Robustness):
    """Can the box of ``eps`` codes reach class ``target``? (:func:`ctnn.verify.verify_targeted`)"""

    name = "targeted"
    entry_points = ("verify_targeted",)
    grid = ("eps", "target")
    required = ("eps", "target")

    def check(self, params: dict[str, Any], where: str) -> None:
        _nonneg_int(params, "eps", where)
        _nonneg_int(params, "target", where)

    def run(self, model, x, label, params, timeout_s, solver, input_range):  # type: ignore[override]
        from ctnn.verify import verify_targeted

        if params["target"] == label:  # the sample is already there: nothing to ask
            return {
                "verdict": "unknown",
                "status": "error",
                "reason": f"target {params['target']} is the label",
            }
        r = verify_targeted(
            model, x, params["eps"], params["target"], timeout_s=timeout_s, attack=params["attack"],
            input_range=input_range, encoding=params["encoding"], **_solver_kwargs(verify_targeted, solver),
        )  # fmt: skip
        return r.to_dict()


class Bias(CampaignProperty):
    """The largest output change when only the ``sensitive`` input(s) change (:func:`ctnn.verify.verify_bias`).

    The other inputs range over the box of ``eps`` codes around the sample. Verdict: ``fair``
    when the proved bound is at most ``max_gap`` output codes, ``biased`` when an attained gap
    exceeds it, else ``unknown``.
    """

    name = "bias"
    entry_points = ("verify_bias",)
    grid = ("eps",)
    fixed = ("sensitive", "sensitive_values", "output")
    required = ("eps", "sensitive")
    defaults = {"max_gap": 0, "attack": True, "encoding": "optimized"}

    def check(self, params: dict[str, Any], where: str) -> None:
        _nonneg_int(params, "eps", where)
        s = params["sensitive"]
        if not (isinstance(s, int) or isinstance(s, list) and s and all(isinstance(i, int) for i in s)):
            raise ValueError(f"{where}: sensitive must be an input index or a list of them, got {s!r}")

    def run(self, model, x, label, params, timeout_s, solver, input_range):  # type: ignore[override]
        from ctnn.verify import verify_bias

        r = verify_bias(
            model, params["sensitive"], x, params["eps"], sensitive_values=params.get("sensitive_values"),
            output=params.get("output"), timeout_s=timeout_s, input_range=input_range, attack=params["attack"],
            encoding=params["encoding"], **_solver_kwargs(verify_bias, solver),
        ).to_dict()  # fmt: skip
        limit = params["max_gap"]
        r["verdict"] = "fair" if r["bound"] <= limit else "biased" if r["gap"] > limit else "unknown"
        return r


class Equivalence(CampaignProperty):
    """Do the model and ``other`` (an ONNX file) agree within ``delta`` output codes on the box?

    (:func:`ctnn.verify.verify_equivalence`; ``delta = "argmax"`` asks
    :func:`ctnn.verify.verify_argmax_equivalence` instead: the same predicted class.) Where the
    model's sidecar and ``other``'s give input quantizers that differ (8 against 6 bits), the two
    are compared on every real input that the model quantizes into the box.
    """

    name = "equivalence"
    entry_points = ("verify_equivalence", "verify_argmax_equivalence")
    grid = ("eps",)
    fixed = ("other",)
    files = ("other",)
    required = ("eps", "other")
    defaults = {"delta": 0, "attack": True, "encoding": "optimized"}
    input_quant = True

    def check(self, params: dict[str, Any], where: str) -> None:
        _nonneg_int(params, "eps", where)
        d = params["delta"]
        if d != "argmax" and (isinstance(d, bool) or not isinstance(d, (int, float)) or d < 0):
            raise ValueError(f'{where}: delta must be >= 0 or "argmax", got {d!r}')

    def run(self, model, x, label, params, timeout_s, solver, input_range):  # type: ignore[override]
        from ctnn.verify import verify_argmax_equivalence, verify_equivalence

        quant = params.get("input_quant")
        if quant is None:
            _same_input_codes(params["other"], input_range)
        # the path: ctnn-verify loads and checks the graph, and reads its sidecar's input quantizer
        other = params["other"]
        kw = dict(
            timeout_s=timeout_s, input_range=input_range, attack=params["attack"], encoding=params["encoding"],
            input_quants=(quant, None),
        )  # fmt: skip
        if params["delta"] == "argmax":
            kw.update(_solver_kwargs(verify_argmax_equivalence, solver))
            return verify_argmax_equivalence(model, other, x, params["eps"], **kw).to_dict()
        kw.update(_solver_kwargs(verify_equivalence, solver))
        return verify_equivalence(model, other, x, params["eps"], delta=params["delta"], **kw).to_dict()


def _same_input_codes(other: str, input_range: tuple[int, int] | None) -> None:
    """Without the model's input quantizer (no sidecar), both graphs read the model's codes:
    refuse an ``other`` whose sidecar reads inputs on another code range."""
    from ctnn.quant import read_sidecar, sidecar_path

    if input_range is None or not sidecar_path(other).is_file():
        return
    q = read_sidecar(other).input
    if (int(q.lo), int(q.hi)) != tuple(input_range):
        raise ValueError(
            f"{other}: its inputs are codes in [{q.lo}, {q.hi}], the model's in [{input_range[0]}, "
            f"{input_range[1]}], and the model has no sidecar to say how real inputs become its codes"
        )


class Vnnlib(CampaignProperty):
    """A VNNLIB property file decided on the model (:func:`ctnn.verify.verify_vnnlib`); not per sample.

    ``units = "codes"`` (default) reads X and Y as integer codes; ``"real"`` needs the
    model's sidecar scales, which a worker (holding the graph's bytes) does not have.
    """

    name = "vnnlib"
    entry_points = ("verify_vnnlib",)
    fixed = ("spec",)
    files = ("spec",)
    required = ("spec",)
    defaults = {"units": "codes", "attack": True, "encoding": "optimized"}
    per_sample = False

    def check(self, params: dict[str, Any], where: str) -> None:
        if params["units"] != "codes":
            raise ValueError(
                f"{where}: units = {params['units']!r}: campaigns decide VNNLIB files in codes only"
            )

    def run(self, model, x, label, params, timeout_s, solver, input_range):  # type: ignore[override]
        from ctnn.verify import verify_vnnlib

        r = verify_vnnlib(
            model, params["spec"], timeout_s=timeout_s, units="codes", input_range=input_range,
            attack=params["attack"], encoding=params["encoding"], **_solver_kwargs(verify_vnnlib, solver),
        )  # fmt: skip
        return r.to_dict() if hasattr(r, "to_dict") else {"verdict": str(r)}


CAMPAIGN_PROPERTIES: dict[str, CampaignProperty] = {}


def register_campaign_property(prop: CampaignProperty) -> CampaignProperty:
    """Add (or replace) a property campaigns can name; returns it.

    >>> class Echo(CampaignProperty):
    ...     name, grid, required = "echo", ("eps",), ("eps",)
    ...     def run(self, model, x, label, params, timeout_s, solver, input_range):
    ...         return {"verdict": "robust"}
    >>> register_campaign_property(Echo()).name
    'echo'
    """
    if not prop.name:
        raise ValueError(f"{type(prop).__name__}: a campaign property needs a name")
    CAMPAIGN_PROPERTIES[prop.name] = prop
    return prop


for _prop in (Robustness(), Targeted(), Bias(), Equivalence(), Vnnlib()):
    register_campaign_property(_prop)
