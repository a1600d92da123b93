"""ctnn-analysis: studies, plots and self-contained reports of ctnn runs.

>>> from ctnn.analysis import Report, plot_robustness
"""

from ._report import Report
from ._robustness import VERDICTS, plot_accuracy, plot_robustness, verdict_counts

__version__ = "0.1.0"

__all__ = ["Report", "VERDICTS", "plot_accuracy", "plot_robustness", "verdict_counts"]
