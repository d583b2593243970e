"""The applier against the simulator: conflicts are re-read and re-planned, never overwritten;
one failed write does not stop the rest; a failed object backs off (per object, exponentially).

Everything runs in process: ``start_sim`` on a loopback port, the real engine from
``runner.open_engine`` (transport, API client, planner, applier, SQLite audit trail).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from engine_sim import CAMPAIGN, ROUTE, TRUNK_BASE, FakeClock, sim_and_engine

from syncd.core import model
from syncd.engine import state
from syncd.genesys import api as api_mod
from syncd.sim import Sim

SITES = "/api/v2/telephony/providers/edges/sites"
SITE_001 = "3313a1a7-5ec1-4589-85ee-d7cb9264847d"
SITE_001_DEFAULT = "45b830ee-7ef1-408e-89fc-117fba6b1e78"
ACME_001 = "da598f9f-47b5-4227-a02e-3b5288064455"
CAMPAIGN_001 = "265b773d-91e4-4d7f-9a7e-cb449521d8d8"


class EditAfterRead:
    """The real API port, but once armed a person edits some objects right after syncd's last
    listing of a reconcile (the trunk bases, read after routes and campaigns): the race a version
    check exists for, since syncd's PUTs then carry stale versions."""

    def __init__(self, inner: api_mod.GenesysApiPort, sim: Sim, edits: list[tuple[str, str]]):
        self._inner = inner
        self._sim = sim
        self._edits = edits
        self.armed = False
        self.done: list[dict[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_trunk_bases(self, **kw: Any) -> tuple[model.TrunkBase, ...]:
        listed = await self._inner.list_trunk_bases(**kw)
        if self.armed:
            self.done.extend(self._sim.human_edit(kind, i) for kind, i in self._edits)
            self._edits = []
        return listed


def _route(sim: Sim, route_id: str) -> dict[str, Any]:
    route: dict[str, Any] = sim.org.routes[route_id]
    return route


async def test_version_conflict_rereads_replans_and_keeps_the_human_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        editor = EditAfterRead(
            engine.api, sim, [("route", SITE_001_DEFAULT), ("trunkbase", ACME_001)]
        )
        engine.reader.api = editor
        engine.applier.api = editor
        await engine.start()
        editor.armed = True

        outcome = await engine.run_once(dry_run=False)

        assert outcome is not None
        assert outcome.report is not None
        route_edit, tb_edit = editor.done
        # Both stale PUTs were refused (409), re-read, re-planned and sent again.
        assert outcome.report.conflicts == 2
        assert outcome.report.failed == 0
        assert sim.count(route=ROUTE, method="PUT", status=409) == 1
        assert sim.count(route=TRUNK_BASE, method="PUT", status=409) == 1
        assert sim.count(route=ROUTE, method="GET", status=200) == 1  # the re-read
        # The person's fields survive; syncd's owned fields hold the planned values.
        route = _route(sim, SITE_001_DEFAULT)
        assert route["description"] == route_edit["after"]
        planned = next(w for w in outcome.plan.writes if w.object_id == SITE_001_DEFAULT)
        assert tuple(t["id"] for t in route["externalTrunkBases"]) == planned.after
        tb = sim.org.trunk_bases[ACME_001]
        assert tb["properties"]["trunk_label"]["value"]["instance"] == tb_edit["after"]
        rate = next(w for w in outcome.plan.writes if w.object_id == ACME_001)
        assert tb["properties"]["trunk_maxCallRate"]["value"]["instance"] == rate.after
        # The audit trail says what happened: applied on the second attempt.
        rows = {r.object_id: r for r in asm.store.history()}
        assert rows[SITE_001_DEFAULT].outcome == state.APPLIED
        assert rows[SITE_001_DEFAULT].attempts == 2
        assert rows[ACME_001].outcome == state.APPLIED
        assert rows[ACME_001].attempts == 2
        # And nothing is left to do.
        again = await engine.run_once(dry_run=True)
        assert again is not None
        assert again.plan.writes == ()


async def test_400_version_conflicts_never_end_in_a_blind_overwrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await engine.start()
        sim.set_faults(
            {
                "version_conflict_400_rate": 1.0,
                "routes": [f"{SITES}/{SITE_001}/outboundroutes/{SITE_001_DEFAULT}"],
            }
        )
        before = list(_route(sim, SITE_001_DEFAULT)["externalTrunkBases"])

        outcome = await engine.run_once(dry_run=False)

        assert outcome is not None
        assert outcome.report is not None
        # 1 + max_conflict_retries PUTs, each followed (but the last) by a fresh read; then the
        # write is given up as a conflict, and the rest of the plan still went through.
        retries = engine.applier.max_conflict_retries
        assert sim.count(route=ROUTE, method="PUT", status=400) == retries + 1
        assert outcome.report.failed == 1
        assert outcome.report.applied == len(outcome.plan.writes) - 1
        assert _route(sim, SITE_001_DEFAULT)["externalTrunkBases"] == before
        row = next(r for r in asm.store.history() if r.object_id == SITE_001_DEFAULT)
        assert row.outcome == state.CONFLICT
        assert row.attempts == retries + 1


async def test_one_failed_write_is_reported_the_rest_go_on_and_it_backs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        clock = FakeClock()
        engine.applier.clock = clock
        await engine.start()
        sim.set_faults(
            {"error_5xx_rate": 1.0, "routes": [f"/api/v2/outbound/campaigns/{CAMPAIGN_001}"]}
        )

        def patches() -> int:
            return sim.count(route=CAMPAIGN, method="PATCH")

        first = await engine.run_once(dry_run=False)

        assert first is not None
        assert first.report is not None
        assert first.report.failed == 1
        assert first.report.applied == len(first.plan.writes) - 1
        assert patches() == 4  # all four campaigns were tried; one answered 503
        assert sim.count(route=CAMPAIGN, method="PATCH", status=503) == 1
        row = next(r for r in asm.store.history() if r.object_id == CAMPAIGN_001)
        assert row.outcome == state.FAILED
        assert "503" in row.error or row.error

        # Within the backoff (5 s after one failure) the object is not tried again ...
        clock.advance(4.0)
        second = await engine.run_once(dry_run=False)
        assert second is not None
        assert second.report is not None
        assert [w.object_id for w in second.plan.writes] == [CAMPAIGN_001]
        assert second.report.skipped_backoff == 1
        assert patches() == 4
        # ... after it, it is (and fails again: the backoff doubles to 10 s).
        clock.advance(2.0)
        third = await engine.run_once(dry_run=False)
        assert third is not None
        assert third.report is not None
        assert third.report.failed == 1
        assert patches() == 5
        clock.advance(9.0)
        fourth = await engine.run_once(dry_run=False)
        assert fourth is not None
        assert fourth.report is not None
        assert fourth.report.skipped_backoff == 1
        assert patches() == 5
        # The fault is gone and the backoff over: it lands, and the plan is empty after.
        sim.clear_faults()
        clock.advance(2.0)
        fifth = await engine.run_once(dry_run=False)
        assert fifth is not None
        assert fifth.report is not None
        assert fifth.report.applied == 1
        final = await engine.run_once(dry_run=True)
        assert final is not None
        assert final.plan.writes == ()
        outcomes = [r.outcome for r in asm.store.history() if r.object_id == CAMPAIGN_001]
        assert outcomes == [state.FAILED, state.FAILED, state.APPLIED]
