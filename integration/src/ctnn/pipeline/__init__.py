"""ctnn-pipeline: the end-to-end pipeline, Ray campaigns and the ``ctnn`` command.

>>> from ctnn.pipeline import PipelineConfig, run_pipeline
>>> run_dir = run_pipeline(PipelineConfig(samples=5))        # doctest: +SKIP
"""

from ._config import PipelineConfig
from ._pipeline import STAGES, new_run_dir, run_pipeline
from ._report import write_run_report
from ._store import ResultStore, query_key

__version__ = "0.1.0"

__all__ = [
    "PipelineConfig",
    "STAGES",
    "new_run_dir",
    "run_pipeline",
    "write_run_report",
    "ResultStore",
    "query_key",
]
