"""The ports of the engine: the observer it reports to (``syncd.obs.metrics.Metrics``) and the
fence it asks before every write (``syncd.engine.coordination.Coordinator``, or ``NoFence``).

The API port is ``syncd.genesys.api.GenesysApiPort``. Tests may pass fakes of any of them.
"""

from __future__ import annotations

import dataclasses
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
    def set_staffing_age(self, seconds: float) -> None: ...
    def set_group_held(self, group: str, held: bool) -> None: ...
    def observe_drop(self, group: str, outcome: str) -> None: ...
    def set_health_unknown(self, group: str, trunk: str, polls: int) -> None: ...
    def set_config_problems(self, count: int) -> None: ...
    def observe_unexpected_error(self, where: str) -> None: ...
    def observe_forecast(
        self, group: str, window: str, shortfall: int, starts_at: float
    ) -> None: ...
    def observe_forecast_computed(self, now: float) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Permit:
    """Leave to send one write: the fencing epoch to record with it (None without coordination)
    and the event-loop time (``time.monotonic``) by which the write must be done or abandoned,
    unless the lease is renewed under the same epoch meanwhile (``Fence.deadline_of``)."""

    epoch: int | None
    deadline: float | None


class Fence(Protocol):
    """The leader lease as the engine sees it (``engine.coordination.Coordinator``)."""

    def leading(self) -> bool:
        """True while this replica may act as the leader."""
        ...

    def permit(self) -> Permit:
        """Leave to start one write now; ``errors.NotLeader`` when there is none."""
        ...

    def deadline_of(self, permit: Permit) -> float | None:
        """Where the deadline of a write sent under ``permit`` stands now: the end of the same
        lease as renewed since (same epoch; never earlier than before), or None when this
        replica no longer holds that lease. Asked when the deadline arrives, so a write kept
        waiting (the limiter, the shared budget) goes on while its lease does, and not after."""
        ...


class NoFence:
    """The embedded default (one process, no coordination): always the leader, no epoch."""

    def leading(self) -> bool:
        return True

    def permit(self) -> Permit:
        return Permit(epoch=None, deadline=None)

    def deadline_of(self, permit: Permit) -> float | None:
        return permit.deadline
