"""Helpers shared by the dashboard tests: every PromQL expression of grafana/syncd.json.

Not a test module. tests/e2e/test_dashboard_live.py loads it by path (the test directories
are not packages).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "syncd.json"

# What Grafana would put in place of the template variables for a single syncd instance.
DEFAULT_SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$job": "syncd",
    "$instance": ".*",
    "$group": ".*",
}


@dataclass(frozen=True)
class PanelExpr:
    panel: str
    ref_id: str
    expr: str


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def panel_exprs(dashboard: dict[str, Any] | None = None) -> list[PanelExpr]:
    """Every target expression of every panel (rows included), in dashboard order."""
    dash = load_dashboard() if dashboard is None else dashboard
    return [
        PanelExpr(panel["title"], target["refId"], target["expr"])
        for panel in _panels(dash["panels"])
        for target in panel.get("targets", [])
        if "expr" in target
    ]


HA_ROW = "High availability"


def ha_exprs(dashboard: dict[str, Any] | None = None) -> list[PanelExpr]:
    """The expressions of the panels under the "High availability" row: their metrics exist
    only with ``[coordination] backend = "redis"`` (tests/e2e/test_ha.py checks them)."""
    dash = load_dashboard() if dashboard is None else dashboard
    out: list[PanelExpr] = []
    under = False
    for panel in dash["panels"]:
        if panel.get("type") == "row":
            under = panel["title"] == HA_ROW
            continue
        if under:
            out.extend(panel_exprs({"panels": [panel]}))
    return out


def metric_names(expr: str) -> set[str]:
    """The syncd metric names an expression reads."""
    return set(re.findall(r"\bsyncd_[a-z_]+\b", expr))


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """``expr`` with Grafana's variables replaced (longest names first: $__rate_interval)."""
    subs = DEFAULT_SUBSTITUTIONS if values is None else values
    for name in sorted(subs, key=len, reverse=True):
        expr = expr.replace(name, subs[name])
    leftover = re.findall(r"\$\{?\w+", expr)
    if leftover:
        raise ValueError(f"unsubstituted variables {leftover} in {expr!r}")
    return expr


def recording_rules_yaml(exprs: list[PanelExpr], values: dict[str, str] | None = None) -> str:
    """A rules file (JSON is YAML) with one recording rule per expression, for promtool."""
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": substitute(e.expr, values)}
        for i, e in enumerate(exprs)
    ]
    return json.dumps({"groups": [{"name": "syncd-dashboard", "rules": rules}]}, indent=1)
