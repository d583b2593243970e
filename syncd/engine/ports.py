"""The observer port the engine reports to (``syncd.obs.metrics.Metrics`` implements it).

The API port is ``syncd.genesys.api.GenesysApiPort``. Tests may pass fakes of either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Observer(Protocol):
    """What the engine reports (``obs.metrics.Metrics``)."""

    def observe_write(self, kind: str, outcome: str) -> None: ...
    def observe_conflict(self, kind: str) -> None: ...
    def set_plan(self, counts: Mapping[str, int]) -> None: ...
    def observe_group(
        self,
        group: str,
        staffed_fte: float,
        desired_lines: int,
        allocation: Mapping[str, int],
        shortfall: int,
        healthy: Mapping[str, bool],
    ) -> None: ...
    def observe_failover(self, group: str, trunk: str) -> None: ...
    def observe_reconcile(self, duration_s: float, ok: bool, now: float) -> None: ...
    def set_snapshot_age(self, bu: str, seconds: float) -> None: ...
    def observe_reload(self, ok: bool, now: float) -> None: ...
    def observe_push_reaction(self, seconds: float) -> None: ...
