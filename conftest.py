"""Repository-wide pytest hook: under CI, a skipped test is a failure.

Tests may skip only where an optional tool (a cross-compiler, an emulator, a simulator) is
absent; CI installs every one of them, so a skip there means a missing install step.
"""

import os


def pytest_sessionfinish(session, exitstatus):
    if not os.environ.get("CI") or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        reasons = sorted(
            {str(r.longrepr[-1]) if isinstance(r.longrepr, tuple) else str(r.longrepr) for r in skipped}
        )
        print(f"\nCI: {len(skipped)} test(s) skipped, which CI does not allow: " + "; ".join(reasons))
        session.exitstatus = 1
