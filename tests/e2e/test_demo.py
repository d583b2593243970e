"""``syncd demo`` end to end, as a user runs it: simulator + daemon + an injected failover.

The README's main command is the demo; this runs it as a real process with a duration and a
summary file, and checks what the issue asks of it: it converges (a final dry run plans
nothing), the failover route change comes from the notification channel with no health poll
between the failure and the route change (counted in the simulator's own request log, not
timed: the reaction time itself is a figure in the summary), and no request was refused
(0 × 429). It also checks that the metrics URL it prints serves the daemon's metrics while it
runs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_converges_fails_over_in_time_and_sees_no_429(tmp_path: Path) -> None:
    summary_path = tmp_path / "summary.json"
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "syncd",
            "demo",
            "--duration",
            "30",
            "--failover-after",
            "5",
            "--plain",
            "--summary",
            str(summary_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", first)
        assert match, first
        metrics_text = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            body = urllib.request.urlopen(match.group(1), timeout=5).read().decode()  # noqa: S310
            if re.search(r"^syncd_last_successful_reconcile_timestamp_seconds [1-9]", body, re.M):
                metrics_text = body
                break
            time.sleep(0.5)
        assert "syncd_desired_lines{" in metrics_text
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-2000:]
    summary = json.loads(summary_path.read_text())
    assert summary["converged"] is True, summary
    assert summary["http_429"] == 0, summary
    assert summary["errors"] == 0, summary
    assert summary["writes_applied"] > 0, summary
    assert summary["failover_reaction_s"] is not None, summary
    # The notification channel saw the failure: the route change needed no health poll at all.
    assert summary["health_source"] == "push", summary
    assert summary["health_polls_to_react"] == 0, summary
    assert "syncd demo summary:" in out
