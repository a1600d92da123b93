"""ctnn-pipeline: the end-to-end pipeline, Ray campaigns and the ``ctnn`` command.

>>> from ctnn.pipeline import PipelineConfig, run_pipeline
>>> run_dir = run_pipeline(PipelineConfig(samples=5))        # doctest: +SKIP
>>> from ctnn.pipeline import CampaignSpec, run_campaign
>>> res = run_campaign(CampaignSpec.from_toml("campaign.toml"))   # doctest: +SKIP
"""

from ._campaign import CampaignResult, run_campaign, select_samples
from ._config import ALL_FAMILIES, PipelineConfig
from ._export import export_results
from ._jobs import job_logs, job_status, stop_job, submit_campaign, wait_job
from ._pipeline import STAGES, new_run_dir, run_pipeline
from ._progress import CampaignProgress, print_summary
from ._properties import CAMPAIGN_PROPERTIES, CampaignProperty, register_campaign_property
from ._ray import Query, RunStats, execute, init_ray
from ._report import write_run_report
from ._spec import CampaignSpec
from ._store import ResultStore, query_key
from ._sweep import stage_key, submit_sweep

__version__ = "0.4.1"

__all__ = [
    "PipelineConfig",
    "ALL_FAMILIES",
    "STAGES",
    "new_run_dir",
    "run_pipeline",
    "write_run_report",
    "ResultStore",
    "query_key",
    "CampaignSpec",
    "run_campaign",
    "CampaignResult",
    "select_samples",
    "CAMPAIGN_PROPERTIES",
    "CampaignProperty",
    "register_campaign_property",
    "Query",
    "RunStats",
    "execute",
    "init_ray",
    "submit_sweep",
    "stage_key",
    "CampaignProgress",
    "print_summary",
    "export_results",
    "submit_campaign",
    "job_status",
    "job_logs",
    "wait_job",
    "stop_job",
]
