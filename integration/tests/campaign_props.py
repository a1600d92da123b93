"""Campaign properties for the tests only, loaded by a spec's ``campaign.plugins``.

``sleep`` answers "robust" after ``seconds`` seconds and ignores the solver timeout,
so a large ``seconds`` is a query that hangs past its deadline.
"""

from __future__ import annotations

import time

from ctnn.pipeline import CampaignProperty, register_campaign_property


class Sleep(CampaignProperty):
    name = "sleep"
    grid = ("seconds",)
    required = ("seconds",)

    def check(self, params, where):
        if not isinstance(params["seconds"], (int, float)) or params["seconds"] < 0:
            raise ValueError(f"{where}: seconds must be >= 0, got {params['seconds']!r}")

    def run(self, model, x, label, params, timeout_s, solver, input_range):
        time.sleep(params["seconds"])
        return {"verdict": "robust", "slept_s": params["seconds"]}


register_campaign_property(Sleep())
