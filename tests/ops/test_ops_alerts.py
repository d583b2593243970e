"""prometheus/alerts.yml: valid rules, and their unit tests (alerts_test.yml) pass in promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; .ci/run does)"
)

EXPECTED_ALERTS = {
    "SyncdDown",
    "SyncdAbsent",
    "SyncdRestarting",
    "SyncdHigh429Ratio",
    "SyncdRetryAfterAboveMaximum",
    "SyncdReconcileLag",
    "SyncdTrunkInFailover",
    "SyncdCapacityShortfall",
    "SyncdCapacityShortfallExpected",
    "SyncdRetryBudgetExhausted",
    "SyncdConfigReloadFailed",
    "SyncdScheduleSnapshotStale",
    "SyncdStaffingDataStale",
    "SyncdLineCountsHeld",
    "SyncdConfigProblems",
    "SyncdUnexpectedErrors",
    "SyncdNotificationChannelDown",
    "SyncdCoordinationDown",
    "SyncdNoLeader",
    "SyncdSeveralLeaders",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROMTOOL), *args], capture_output=True, text=True, cwd=ROOT / "prometheus"
    )


def test_check_rules() -> None:
    proc = _promtool("check", "rules", "alerts.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in proc.stdout


def test_rule_unit_tests_pass() -> None:
    proc = _promtool("test", "rules", "alerts_test.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_is_unit_tested_and_has_a_severity() -> None:
    rules = (ROOT / "prometheus/alerts.yml").read_text()
    tests = (ROOT / "prometheus/alerts_test.yml").read_text()
    for name in EXPECTED_ALERTS:
        assert f"alert: {name}\n" in rules
        assert f"alertname: {name}\n" in tests, f"{name} has no promtool test"
    assert rules.count("severity:") == len(EXPECTED_ALERTS)
