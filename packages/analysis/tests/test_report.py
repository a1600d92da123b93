"""Reports are self-contained and faithful to the results they are given."""

import base64
import re

import pytest

from ctnn.analysis import Report, plot_accuracy, plot_family_accuracy, plot_robustness, verdict_counts

RESULTS = [
    {"bits": 8, "eps": 1, "verdict": "robust"},
    {"bits": 8, "eps": 1, "verdict": "robust"},
    {"bits": 8, "eps": 2, "verdict": "vulnerable"},
    {"bits": 4, "eps": 1, "verdict": "unknown"},
    {"bits": 4, "eps": 2, "verdict": "vulnerable"},
]


def test_verdict_counts():
    c = verdict_counts(RESULTS)
    assert c[(8, 1)] == {"robust": 2, "vulnerable": 0, "unknown": 0}
    assert c[(4, 2)]["vulnerable"] == 1
    assert list(c) == sorted(c)


def test_unknown_verdict_is_an_error():
    with pytest.raises(ValueError, match="'maybe'"):
        verdict_counts([{"bits": 8, "eps": 1, "verdict": "maybe"}])


def test_report_is_self_contained_with_embedded_png(tmp_path):
    r = Report("demo")
    r.heading("Robustness")
    r.table(["bits", "robust"], [[8, 2], [4, 0]])
    r.figure(plot_robustness(RESULTS), "verdicts", png_path=tmp_path / "rob.png")
    r.figure(plot_accuracy({8: {"float": 0.97, "integer": 0.96}, 4: {"float": 0.97, "integer": 0.9}}), "acc")
    html_path, md_path = r.write(tmp_path)
    page = html_path.read_text()
    imgs = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(imgs) == 2
    assert base64.b64decode(imgs[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http" not in page  # nothing to fetch
    assert "<td class='n'>8</td><td class='n'>2</td>" in page
    md = md_path.read_text()
    assert "| bits | robust |" in md and "![verdicts](rob.png)" in md
    assert (tmp_path / "rob.png").read_bytes()[:4] == b"\x89PNG"


def test_html_escapes_text():
    r = Report("<script>")
    r.paragraph("a < b & c")
    page = r.to_html()
    assert "<script>" not in page.split("<body>")[1] and "a &lt; b &amp; c" in page


def test_versions_configuration_and_stage_times():
    import sys

    from ctnn.analysis import package_versions, tool_version

    r = Report("run")
    r.stage_times({"train": 12.0, "verify": 30.5, "deploy": None})
    r.configuration({"bits": [4, 8], "dataset": "digits", "seed": 0})
    r.versions(
        ["numpy", "no-such-dist-xyz"], tools={sys.executable: "--version", "no-such-tool-xyz": "--version"}
    )
    page = r.to_html()
    assert "<td>deploy</td><td>not run</td>" in page and "<td>total</td><td class='n'>42.5</td>" in page
    assert "<td>dataset</td><td>&quot;digits&quot;</td>" in page and "<td>bits</td><td>[4, 8]</td>" in page
    assert "<td>seed</td><td>0</td>" in page  # configuration values stay left-aligned, numbers too
    import numpy

    assert f"<td>numpy</td><td>{numpy.__version__}</td>" in page
    assert "<td>no-such-dist-xyz</td><td>not installed</td>" in page
    assert f"<td>{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}</td>" in page
    assert "<td>no-such-tool-xyz</td><td>not found</td>" in page
    assert tool_version(sys.executable).startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert package_versions([])[-1][0] == "python"
    with pytest.raises(ValueError, match="'train'"):
        Report("x").stage_times({"train": -1.0})


def test_numbers_are_right_aligned_text_left():
    r = Report("x")
    r.table(["a", "b", "c", "d", "e"], [["lstm", 95.0, "75.0 ↓", "4.51 ± 0.2", "0.27.0.post1"]])
    row = r.to_html().split("<tbody>")[1]
    assert "<td>lstm</td><td class='n'>95</td><td class='n'>75.0 ↓</td><td class='n'>4.51 ± 0.2</td>" in row
    assert "<td>0.27.0.post1</td>" in row  # a version is text


def test_family_accuracy_one_panel_per_data_set():
    rows = [
        {"family": "mlp", "dataset": "digits", "weight_bits": b, "float_accuracy": 0.96, "int_accuracy": a}
        for b, a in [(2, 0.2), (4, 0.93), (8, 0.96)]
    ] + [
        {"family": f, "dataset": "italy", "weight_bits": b, "float_accuracy": 0.95, "int_accuracy": a}
        for f in ("lstm", "gru")
        for b, a in [(4, 0.9), (8, 0.95)]
    ]
    fig = plot_family_accuracy(rows)
    digits, italy = fig.axes
    assert [t.get_text() for t in digits.get_xticklabels()] == ["2", "4", "8", "float"]
    assert [t.get_text() for t in italy.get_xticklabels()] == ["4", "8", "float"]
    assert digits.get_ylim()[0] <= 20 and italy.get_ylim()[0] > 80  # each panel its own range
    lines = {ln.get_label(): ln for ln in italy.get_lines() if not ln.get_label().startswith("_")}
    assert set(lines) == {"LSTM", "GRU"} and list(lines["LSTM"].get_ydata()) == [90.0, 95.0]
    with pytest.raises(ValueError, match="no accuracies"):
        plot_family_accuracy([])


def test_study_rejects_non_studies():
    with pytest.raises(TypeError, match="not a Study"):
        Report("x").study(object())
