"""ctnn-analysis: studies, plots and self-contained reports of ctnn runs.

Everything imported here is torch-free (reports, the quantization studies read from
result rows, every result type and plot). The analyses that run models —
:func:`trajectory_lengths`, :func:`lipschitz_spectra`, :func:`ltc_ranges`,
:func:`lem_timescales`, :func:`hessian_top_eigenvalue`, :func:`hessian_robustness`,
:func:`continuous_net_study` — need ``pip install ctnn-analysis[models]`` (torch and
ctnn-models) and are imported on first use.

>>> from ctnn.analysis import Report, robustness_vs_bits
"""

from __future__ import annotations

import importlib
from typing import Any

from ._bits import (
    BiasVsBits,
    FloatIntegerDisagreements,
    RobustnessVsBits,
    bias_vs_bits,
    float_integer_disagreements,
    plot_bias_vs_bits,
    plot_disagreements,
    plot_robustness_vs_bits,
    robustness_vs_bits,
)
from ._depth import ContinuousNetStudy, plot_continuous_net
from ._expressivity import TrajectoryLengths, curve_length, pca_2d, plot_trajectory_lengths
from ._hessian import HessianStudy, plot_hessian
from ._report import Report
from ._robustness import VERDICTS, plot_accuracy, plot_family_accuracy, plot_robustness, verdict_counts
from ._stability import (
    LEMTimescales,
    LipschitzSpectra,
    LTCRanges,
    plot_lem_timescales,
    plot_lipschitz_spectra,
    plot_ltc_ranges,
)
from ._study import Study
from ._versions import DEFAULT_DISTRIBUTIONS, DEFAULT_TOOLS, package_versions, tool_version, tool_versions

__version__ = "0.3.0"

#: Model-side analyses (torch + ctnn-models), by public name → private module.
_LAZY = {
    "trajectory_lengths": "expressivity",
    "lipschitz_spectra": "stability",
    "ltc_ranges": "stability",
    "lem_timescales": "stability",
    "hessian_top_eigenvalue": "hessian",
    "hessian_robustness": "hessian",
    "continuous_net_study": "depth",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            module = importlib.import_module(f"._measure.{_LAZY[name]}", __name__)
        except ImportError as e:
            raise ImportError(
                f"ctnn.analysis.{name} runs models and needs torch and ctnn-models: "
                f"pip install 'ctnn-analysis[models]' ({e})"
            ) from e
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "DEFAULT_DISTRIBUTIONS",
    "DEFAULT_TOOLS",
    "VERDICTS",
    "BiasVsBits",
    "ContinuousNetStudy",
    "FloatIntegerDisagreements",
    "HessianStudy",
    "LEMTimescales",
    "LTCRanges",
    "LipschitzSpectra",
    "Report",
    "RobustnessVsBits",
    "Study",
    "TrajectoryLengths",
    "__version__",
    "bias_vs_bits",
    "continuous_net_study",
    "curve_length",
    "float_integer_disagreements",
    "hessian_robustness",
    "hessian_top_eigenvalue",
    "lem_timescales",
    "lipschitz_spectra",
    "ltc_ranges",
    "package_versions",
    "pca_2d",
    "plot_accuracy",
    "plot_family_accuracy",
    "plot_bias_vs_bits",
    "plot_continuous_net",
    "plot_disagreements",
    "plot_hessian",
    "plot_lem_timescales",
    "plot_lipschitz_spectra",
    "plot_ltc_ranges",
    "plot_robustness",
    "plot_robustness_vs_bits",
    "plot_trajectory_lengths",
    "robustness_vs_bits",
    "tool_version",
    "tool_versions",
    "trajectory_lengths",
    "verdict_counts",
]
