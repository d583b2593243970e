"""grafana/syncd.json: made for file provisioning; every query scoped and promtool-clean."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from grafana_exprs import ROOT, load_dashboard, panel_exprs, recording_rules_yaml

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus; .ci/run does)"
)

# Metric names a query may select; each selector must carry the job and instance matchers.
_SELECTOR = re.compile(r"\b(up|process_\w+|syncd_\w+)(\{[^}]*\})?")


def test_dashboard_is_for_file_provisioning() -> None:
    dash = load_dashboard()
    assert "__inputs" not in dash
    assert "__requires" not in dash
    assert dash["uid"] == "syncd"
    assert dash.get("id") is None
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    assert {"job", "instance"} <= set(variables)
    for name in ("job", "instance", "group"):
        assert variables[name]["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_panel_and_target_uses_the_datasource_variable() -> None:
    dash = load_dashboard()
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_query_is_scoped_to_job_and_instance() -> None:
    exprs = panel_exprs()
    assert len(exprs) >= 30
    for e in exprs:
        selectors = _SELECTOR.findall(e.expr)
        assert selectors, e
        for name, matchers in selectors:
            assert 'job=~"$job"' in matchers, (e.panel, name)
            assert 'instance=~"$instance"' in matchers, (e.panel, name)


def test_every_range_uses_rate_interval() -> None:
    for e in panel_exprs():
        for window in re.findall(r"\[([^\]]+)\]", e.expr):
            assert window == "$__rate_interval", e


def test_the_dashboard_covers_what_operators_watch() -> None:
    text = " ".join(e.expr for e in panel_exprs())
    for metric in (
        "syncd_api_rate_limited_total",
        "syncd_api_requests_total",
        "syncd_api_retry_after_seconds_bucket",
        "syncd_api_retry_after_max_seconds",
        "syncd_ratelimit_wait_seconds_bucket",
        "syncd_ratelimit_paused",
        "syncd_api_token_requests_total",
        "syncd_api_quota_requests_per_minute",
        "syncd_trunk_failover_events_total",
        "syncd_trunks_in_failover",
        "syncd_staffed_fte",
        "syncd_desired_lines",
        "syncd_allocated_lines",
        "syncd_writes_total",
        "syncd_version_conflicts_total",
        "syncd_last_successful_reconcile_timestamp_seconds",
        "syncd_config_last_reload_successful",
        # Safety (what syncd holds back rather than writes, and what it contained):
        "syncd_staffing_data_age_seconds",
        "syncd_group_lines_held",
        "syncd_line_drops_total",
        "syncd_trunk_health_unknown_polls",
        "syncd_config_problems",
        "syncd_unexpected_errors_total",
        # High availability (docs/ha.md): who leads, fencing, the backend, the shared budget.
        "syncd_leader",
        "syncd_lease_epoch",
        "syncd_coordination_up",
        "syncd_leader_changes_total",
        "syncd_coordination_errors_total",
        "syncd_shared_budget_wait_seconds_total",
    ):
        assert metric in text, metric
    assert "time() - max by (instance) (syncd_last_successful_reconcile_timestamp_seconds" in text


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in load_dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, panel["title"]
                cells.add((x, y))


@needs_promtool
def test_every_query_parses_with_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text(recording_rules_yaml(panel_exprs()))
    proc = subprocess.run(
        [str(PROMTOOL), "check", "rules", str(rules)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(panel_exprs())} rules found" in proc.stdout


def test_provisioning_examples_point_at_prometheus() -> None:
    ds = (ROOT / "grafana/provisioning/datasources/prometheus.yaml").read_text()
    assert "type: prometheus" in ds
    dashboards = (ROOT / "grafana/provisioning/dashboards/syncd.yaml").read_text()
    assert "type: file" in dashboards
