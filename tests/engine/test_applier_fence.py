"""The applier asks the leader fence before every write (docs/ha.md).

In process against the simulator: a replica that is not the leader sends no write; the lease
epoch goes into the audit trail; a write still in flight at the lease's deadline is abandoned
and recorded as 'interrupted' (it may or may not have landed).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from engine_sim import CAMPAIGN, sim_and_engine

from syncd import errors
from syncd.engine import ports, state


class ScriptedFence:
    """Grants ``grants`` permits (epoch 7, deadline ``deadline_in`` s from now), then refuses."""

    def __init__(self, grants: int, *, deadline_in: float | None = None) -> None:
        self.grants = grants
        self.deadline_in = deadline_in
        self.asked = 0

    def leading(self) -> bool:
        return self.asked < self.grants

    def permit(self) -> ports.Permit:
        self.asked += 1
        if self.asked > self.grants:
            raise errors.NotLeader("the test took the lease away")
        deadline = (
            None
            if self.deadline_in is None
            else asyncio.get_running_loop().time() + self.deadline_in
        )
        return ports.Permit(epoch=7, deadline=deadline)


def _writes(sim_log: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in sim_log if r["method"] in ("PUT", "PATCH")]


async def test_a_follower_sends_no_write_and_reports_them_fenced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        engine = asm.engine
        engine.applier.fence = ScriptedFence(0)
        await engine.start()
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert outcome.report is not None
        assert outcome.plan.writes  # the demo org needs writes: the test is not vacuous
        assert outcome.report.fenced == len(outcome.plan.writes)
        assert outcome.report.applied == 0
        assert _writes(running.sim.requests_json()) == []
        assert (await asm.store.history()) == []


async def test_the_leader_records_its_epoch_and_stops_the_moment_the_fence_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        engine = asm.engine
        engine.applier.fence = ScriptedFence(1)
        await engine.start()
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert outcome.report is not None
        assert len(outcome.plan.writes) > 1
        assert outcome.report.applied == 1
        assert outcome.report.fenced == len(outcome.plan.writes) - 1
        assert len(_writes(running.sim.requests_json())) == 1
        rows = await asm.store.history()
        assert [(r.outcome, r.epoch) for r in rows] == [(state.APPLIED, 7)]


async def test_a_write_in_flight_at_the_lease_deadline_is_abandoned_as_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        engine = asm.engine
        await engine.start()
        plan = await engine.run_once(dry_run=True)
        assert plan is not None
        campaign_writes = [w for w in plan.plan.writes if w.kind.value == "campaign_lines"]
        assert campaign_writes
        running.sim.set_faults(
            {"slow_rate": 1.0, "slow_s": 3.0, "routes": ["/api/v2/outbound/campaigns/"]}
        )
        engine.applier.fence = ScriptedFence(1000, deadline_in=0.3)
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert outcome.report is not None
        interrupted = [r for r in (await asm.store.history()) if r.outcome == state.INTERRUPTED]
        assert {r.object_id for r in interrupted} == {w.object_id for w in campaign_writes}
        assert all(r.epoch == 7 for r in interrupted)
        assert running.sim.count(route=CAMPAIGN, method="PATCH", status=204) == 0
