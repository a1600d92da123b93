"""Quantization studies from result rows: counts, non-monotonicity, disagreements, bias."""

import json

import pytest
from matplotlib import pyplot as plt

from ctnn.analysis import (
    Report,
    Study,
    bias_vs_bits,
    float_integer_disagreements,
    robustness_vs_bits,
)


def _rows(spec):
    """spec: {(bits, eps): "rrv?"} with r=robust, v=vulnerable, t=timeout."""
    names = {"r": "robust", "v": "vulnerable", "t": "timeout"}
    return [{"bits": b, "eps": e, "sample": i, "verdict": names[c]}
            for (b, e), s in spec.items() for i, c in enumerate(s)]  # fmt: skip


def _same_after_json(study) -> bool:
    """A study survives to_dict → JSON → from_dict with the same table (what a resumed pipeline reads)."""
    back = type(study).from_dict(json.loads(json.dumps(study.to_dict())))
    return back.table() == study.table() and back.description() == study.description()


def test_counts_per_bit_width_and_timeout_alias():
    s = robustness_vs_bits(_rows({(2, 1): "rvt", (2, 2): "vv", (8, 1): "rrr", (16, 1): "rrt"}))
    assert s.bits == [2, 8, 16]
    assert s.counts[2] == {"robust": 1, "vulnerable": 3, "unknown": 1}
    assert s.counts[16] == {"robust": 2, "vulnerable": 0, "unknown": 1}
    assert s.fractions[(2, 2)] == 0.0 and s.fractions[(8, 1)] == 1.0 and s.fractions[(2, 1)] == 0.5


def test_non_monotonicity_is_flagged_where_it_occurs():
    # ε=1: 50% → 100% → 25% (drop at 6 bits); ε=2 rises steadily
    s = robustness_vs_bits(_rows({(4, 1): "rrvv", (5, 1): "rrrr", (6, 1): "rvvv",
                                  (4, 2): "vvvv", (5, 2): "rvvv", (6, 2): "rrvv"}))  # fmt: skip
    assert not s.monotone
    assert (1, 5, 6, 1.0, 0.25) in s.drops
    assert all(d[0] != 2 for d in s.drops)
    headers, rows = s.table()
    six = next(r for r in rows if r[0] == 6)
    assert six[headers.index("robust % of decided (ε=1)")] == "25.0 ↓"
    assert six[headers.index("robust % of decided (ε=2)")] == "50.0"
    assert "5→6 bits" in s.description()


def test_timeouts_are_not_evidence_of_a_drop():
    s = robustness_vs_bits(_rows({(4, 1): "rr", (8, 1): "rt", (16, 1): "tt"}))
    assert s.monotone and s.fractions == {(4, 1): 1.0, (8, 1): 1.0}
    headers, rows = s.table()
    assert rows[-1][0] == 16 and rows[-1][headers.index("robust % of decided (ε=1)")] == "–"
    assert rows[-1][headers.index("timeout")] == 2


def test_failed_queries_are_errors_not_timeouts():
    rows = _rows({(4, 1): "rv"}) + [{"bits": 4, "eps": 1, "verdict": "unknown", "status": "error"}]
    s = robustness_vs_bits(rows)
    assert s.counts[4] == {"robust": 1, "vulnerable": 1, "unknown": 0} and s.errors == {4: 1}
    headers, table = s.table()
    assert headers[-1] == "errors" and table[0][-1] == 1 and "1 queries failed" in s.description()


def test_monotone_campaign_has_no_drops():
    s = robustness_vs_bits(_rows({(2, 1): "vv", (4, 1): "rv", (8, 1): "rr"}))
    assert s.monotone and "never drops" in s.description()


def test_bad_rows_are_clear_errors():
    with pytest.raises(ValueError, match="'maybe'"):
        robustness_vs_bits([{"bits": 4, "eps": 1, "verdict": "maybe"}])
    with pytest.raises(ValueError, match="integer 'bits'"):
        robustness_vs_bits([{"eps": 1, "verdict": "robust"}])
    with pytest.raises(ValueError, match="no robustness rows"):
        robustness_vs_bits([])


def test_float_integer_disagreements():
    rows = [
        {"bits": 4, "eps": 1, "sample": 1, "verdict": "vulnerable", "float_verdict": "robust"},  # false claim
        {"bits": 4, "eps": 1, "sample": 2, "verdict": "vulnerable", "float_verdict": "unknown"},  # missed
        {"bits": 4, "eps": 1, "sample": 3, "verdict": "vulnerable", "float_verdict": "vulnerable"},  # agree
        {"bits": 4, "eps": 1, "sample": 4, "verdict": "robust", "float_verdict": "vulnerable"},  # float-only
        {"bits": 8, "eps": 1, "sample": 1, "verdict": "robust", "float_verdict": "robust"},
        {"bits": 8, "eps": 1, "sample": 2, "verdict": "robust"},  # no float analysis: skipped
    ]
    d = float_integer_disagreements(rows)
    assert d.cells[(4, 1)] == {"queries": 4, "int_vulnerable": 3, "missed_attacks": 2,
                               "false_robust_claims": 1, "float_only_attacks": 1}  # fmt: skip
    assert d.cells[(8, 1)]["queries"] == 1 and d.examples == {(4, 1): [1]}
    assert d.totals()["missed_attacks"] == 2
    with pytest.raises(ValueError, match="float_verdict"):
        float_integer_disagreements([{"bits": 4, "eps": 1, "verdict": "robust"}])


def test_bias_vs_bits():
    rows = [{"bits": 4, "gap": 0.2}, {"bits": 4, "gap": 0.5, "bound": 0.7}, {"bits": 4, "gap": 0.1, "bound": 0.6},
            {"bits": 8, "gap": 0.05, "verdict": "timeout"}]  # fmt: skip
    b = bias_vs_bits(rows, float_gap=0.04, unit="normexam")
    assert b.gap == {4: 0.5, 8: 0.05} and b.bound == {4: 0.7, 8: None}
    assert b.queries == {4: 3, 8: 1} and b.timeouts == {4: 0, 8: 1}
    headers, table = b.table()
    assert table[-1][0] == "float" and "normexam" in headers[1]
    assert "at 4 bits" in b.description()
    with pytest.raises(ValueError, match="'gap'"):
        bias_vs_bits([{"bits": 4}])


def test_studies_render_in_a_report(tmp_path):
    rows = _rows({(2, 1): "vvt", (4, 1): "rrv", (8, 1): "rvv"})
    rows += [{**r, "float_verdict": "robust"} for r in rows[:3]]
    studies = [
        robustness_vs_bits(rows),
        float_integer_disagreements(rows),
        bias_vs_bits([{"bits": 2, "gap": 1.0}]),
    ]
    r = Report("bits")
    for k, s in enumerate(studies):
        assert isinstance(s, Study) and _same_after_json(s)
        r.study(s, png_path=tmp_path / f"{k}.png")
    page = r.to_html()
    assert page.count("<figure>") == 3 and page.count("<table>") == 3
    assert "<h2>Robustness vs bits</h2>" in page and "4→8 bits" in page
    assert (tmp_path / "0.png").read_bytes()[:4] == b"\x89PNG"
    assert plt.get_fignums() == []  # Report.study closes what it rendered
