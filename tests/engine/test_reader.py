"""The reader's change detection against the simulator: an unchanged schedule listing costs no
agent-schedule query; a published schedule costs one re-fetch of its business unit only."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from engine_sim import SCHEDULE_LISTING, SCHEDULE_QUERY, sim_and_engine

from syncd.engine import reader
from syncd.sim import Sim

APAC = "3558d37c-3b2e-4a2b-8c43-13ec34d44fee"
AMERICAS = "bfb21ff9-dd96-4845-8eb6-f7b2601a1e94"


def _queried_bus(sim: Sim) -> list[str]:
    return [
        e.path.split("/businessunits/")[1].split("/")[0]
        for e in sim.log
        if e.route == SCHEDULE_QUERY
    ]


async def test_unchanged_listing_costs_no_agent_schedule_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await engine.start()
        assert sim.count(route=SCHEDULE_QUERY) >= 4  # the first fetch: 2 BUs x 2 MUs at least
        sim.reset_counters()

        changed = await engine.refresh_schedules()

        assert changed is False
        assert sim.count(route=SCHEDULE_QUERY) == 0
        assert sim.count(route=SCHEDULE_LISTING) >= 2  # one listing per BU and week
        # Nothing but the listings: the fingerprint alone answered the refresh.
        assert {e.route for e in sim.log} == {SCHEDULE_LISTING}


async def test_the_moving_horizon_does_not_refetch_on_every_refresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: the fetched window ended exactly at the horizon, so the next refresh a minute
    # later saw the horizon "past the fetched window" and re-fetched every agent schedule.
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        now = int(time.time())
        assert await engine.reader.refresh_schedules(now=now, wall_now=now) is True
        sim.reset_counters()
        for minutes in (1, 5, 60):
            later = now + 60 * minutes
            changed = await engine.reader.refresh_schedules(now=later, wall_now=later)
            assert changed is False
        assert sim.count(route=SCHEDULE_QUERY) == 0
        # Once the horizon passes the look-ahead, the schedules are fetched again.
        horizon_s = engine.cfg.schedule.horizon_hours * 3600
        later = now + int(horizon_s * reader.LOOKAHEAD_FRACTION) + 60
        assert await engine.reader.refresh_schedules(now=later, wall_now=later) is True
        assert sim.count(route=SCHEDULE_QUERY) > 0


async def test_a_published_schedule_is_fetched_again_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await engine.start()
        before = engine.reader.fingerprints()
        sim.reset_counters()

        published = sim.publish_schedule(AMERICAS)

        assert await engine.refresh_schedules() is True
        # Only the business unit whose schedule changed is fetched again, each of its two
        # management units once per published schedule in the window.
        queried = _queried_bus(sim)
        assert set(queried) == {AMERICAS}
        schedules = {
            e.path.split("/schedules/")[1].split("/")[0]
            for e in sim.log
            if e.route == SCHEDULE_QUERY
        }
        assert published["scheduleId"] in schedules
        assert len(queried) == 2 * len(schedules)
        after = engine.reader.fingerprints()
        assert after[APAC] == before[APAC]
        assert after[AMERICAS] != before[AMERICAS]
        assert f"{published['scheduleId']}@{published['version']}" in after[AMERICAS]
        # The refreshed fingerprint is remembered: the next refresh fetches nothing.
        sim.reset_counters()
        assert await engine.refresh_schedules() is False
        assert sim.count(route=SCHEDULE_QUERY) == 0


async def test_a_configured_object_missing_from_the_org_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (_, asm):
        group = asm.cfg.groups[0]
        typo = group.campaigns[0].model_copy(update={"id": "00000000-0000-0000-0000-00000000dead"})
        cfg = asm.cfg.model_copy(
            update={
                "groups": (
                    group.model_copy(update={"campaigns": (*group.campaigns, typo)}),
                    *asm.cfg.groups[1:],
                )
            }
        )
        rd = reader.Reader(asm.engine.api, cfg)
        with caplog.at_level("WARNING", logger="syncd.engine.reader"):
            first = await rd.campaigns()
            await rd.campaigns()
        assert typo.id not in {c.id for c in first}
        assert len(first) == sum(len(g.campaigns) for g in asm.cfg.groups)
        warned = [r for r in caplog.records if typo.id in r.getMessage()]
        assert len(warned) == 1
        assert "does not exist in the org" in warned[0].getMessage()
