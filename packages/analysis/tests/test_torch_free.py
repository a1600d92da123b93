"""`import ctnn.analysis` must never load torch; the model-side names load it only when used."""

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )


def test_import_and_torch_free_studies_do_not_import_torch():
    p = _run("""
        import sys
        import ctnn.analysis as A
        rows = [{"bits": b, "eps": 1, "verdict": "robust"} for b in (2, 4)]
        r = A.Report("t")
        r.study(A.robustness_vs_bits(rows))
        r.study(A.bias_vs_bits([{"bits": 4, "gap": 0.1}]))
        r.to_html()
        assert "torch" not in sys.modules, "torch was imported"
        print("ok")
    """)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_model_side_names_are_lazy():
    p = _run("""
        import sys, importlib.util
        import ctnn.analysis as A
        assert "torch" not in sys.modules
        assert "trajectory_lengths" in A.__all__
        if importlib.util.find_spec("torch") is None:
            try:
                A.trajectory_lengths
            except ImportError as e:
                assert "ctnn-analysis[models]" in str(e)
                print("lazy-error")
        else:
            A.trajectory_lengths
            assert "torch" in sys.modules
            print("lazy-import")
        try:
            A.no_such_name
        except AttributeError:
            pass
    """)
    assert p.returncode == 0 and p.stdout.strip() in ("lazy-error", "lazy-import"), p.stderr
