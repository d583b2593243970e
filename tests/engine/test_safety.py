"""Safe on a real org (issue 9), in process against the simulator on loopback: a reload never cuts
capacity, failover never waits for schedules, unknown is not failed, a configuration the org does
not match holds line counts, a suspicious drop waits for a re-read, the hold-down survives a
wall-clock step.

Every check is on the simulator's own request log and objects, or on the engine's plan and
metrics; nothing waits on the wall clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import engine_sim
import pytest
from engine_sim import CAMPAIGN, ROUTE, SCHEDULE_QUERY, FakeClock, sim_and_engine

from syncd import config as config_mod
from syncd import errors
from syncd.core import model
from syncd.engine import cycle
from syncd.genesys import api as api_mod

SITE_001_DEFAULT = "45b830ee-7ef1-408e-89fc-117fba6b1e78"
ACME_001 = "da598f9f-47b5-4227-a02e-3b5288064455"
APAC_MU = "125d0553-b5da-4d06-a699-4c077eeb2384"
WFM = "/api/v2/workforcemanagement/"


_lines = engine_sim.lines
_route_ids = engine_sim.route_ids
_converge = engine_sim.converge


def _with_group(cfg: config_mod.Config, index: int, **changes: Any) -> config_mod.Config:
    groups = list(cfg.groups)
    groups[index] = groups[index].model_copy(update=changes)
    return cfg.model_copy(update={"groups": tuple(groups)})


# -- 1. a reload never cuts capacity -------------------------------------------------------------


async def test_a_reload_changing_only_refresh_s_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        sim.reset_counters()
        cfg = engine.cfg
        engine.apply_config(
            cfg.model_copy(update={"schedule": cfg.schedule.model_copy(update={"refresh_s": 7})})
        )
        # The daemon reconciles at once after a reload, before the refresh that follows it.
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert outcome.plan.writes == ()
        assert outcome.plan.held == ()
        await engine.refresh_schedules()
        after = await engine.run_once(dry_run=False)
        assert after is not None
        assert after.plan.writes == ()
        assert sim.count(method="PATCH") == 0
        assert sim.count(method="PUT") == 0
        assert sim.count(route=SCHEDULE_QUERY) == 0  # nothing the plan reads changed


async def test_a_reload_changing_what_is_fetched_keeps_planning_on_the_held_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        lines = _lines(sim)
        cfg = engine.cfg
        engine.apply_config(
            cfg.model_copy(
                update={"schedule": cfg.schedule.model_copy(update={"horizon_hours": 30})}
            )
        )
        before_refresh = await engine.run_once(dry_run=False)
        assert before_refresh is not None
        assert before_refresh.plan.writes == ()
        sim.reset_counters()
        await engine.refresh_schedules()
        assert sim.count(route=SCHEDULE_QUERY) > 0  # the new horizon is fetched ...
        after = await engine.run_once(dry_run=False)
        assert after is not None
        assert after.plan.writes == ()  # ... and the same schedules plan the same lines
        assert _lines(sim) == lines


GLOBEX_015 = "11fc3d16-b9aa-47cb-8465-39dbb4f96381"  # apac's last trunk in the configuration


def _without_globex_015(cfg: config_mod.Config) -> config_mod.Config:
    trunks = tuple(t for t in cfg.groups[0].trunks if t.trunk_base_id != GLOBEX_015)
    return _with_group(cfg, 0, trunks=trunks)


async def test_a_reload_landing_during_a_reconcile_takes_effect_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The daemon's control task applies a reload while the reconcile task awaits a listing:
    # the pass planned on the old configuration must not be observed or written on the new.
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        old = engine.cfg
        sim.set_hold({"methods": ["GET"], "routes": ["/api/v2/outbound/campaigns"]})
        task = asyncio.ensure_future(engine.run_once(dry_run=False))
        assert await sim.hold.wait_held(1, timeout_s=30)
        new = _without_globex_015(old)
        engine.apply_config(new)
        assert engine.cfg is old  # not in the middle of a pass
        await sim.release_hold()
        outcome = await task
        assert outcome is not None
        assert GLOBEX_015 in {tb for d in outcome.plan.decisions for tb, _ in d.allocation}
        assert engine.cfg is new  # applied as the pass ended
        after = await engine.run_once(dry_run=True)
        assert after is not None
        assert GLOBEX_015 not in {tb for d in after.plan.decisions for tb, _ in d.allocation}


async def test_a_reload_landing_during_a_health_poll_does_not_break_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        sim.fail_trunk(GLOBEX_015)
        sim.set_hold({"methods": ["GET"], "routes": ["/api/v2/telephony/providers/edges/trunks"]})
        poll = asyncio.ensure_future(engine.poll_health())
        assert await sim.hold.wait_held(1, timeout_s=30)
        engine.apply_config(_without_globex_015(engine.cfg))  # no reconcile runs: at once
        await sim.release_hold()
        assert await poll is True  # the poll observed the failure on its own configuration
        assert engine.health[GLOBEX_015].state is model.HealthState.FAILED


# -- 2. failover never waits for schedules -------------------------------------------------------


async def test_wfm_down_from_the_start_still_fails_over_and_holds_line_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        sim.set_faults({"error_5xx_rate": 1.0, "routes": [WFM]})
        await engine.start()
        assert engine.waiting_for() is None  # health is known: ready, failover armed
        lines = _lines(sim)
        sim.fail_trunk(ACME_001)
        assert await engine.poll_health()  # the failover is seen on this poll ...
        sim.reset_counters()
        outcome = await engine.run_once(dry_run=False)  # ... and written by its reconcile
        assert outcome is not None
        assert ACME_001 not in _route_ids(sim, SITE_001_DEFAULT)
        assert sim.count(route=ROUTE, method="PUT", status=200) >= 1
        # Line counts hold their values while schedules cannot be read.
        assert sim.count(route=CAMPAIGN, method="PATCH") == 0
        assert _lines(sim) == lines
        assert {h.group for h in outcome.plan.held} == {"apac", "americas"}
        assert all("could not be read" in h.reason for h in outcome.plan.held)
        assert "line counts held: apac, americas" in engine.status_line()  # systemctl status
        text = asm.metrics.render().decode()
        assert 'syncd_group_lines_held{group="apac"} 1.0' in text


async def test_the_staffing_data_age_grows_while_wfm_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        clock = FakeClock(now=time.time())
        engine.clock = clock
        await _converge(engine)

        def age() -> float | None:
            return asm.metrics.registry.get_sample_value("syncd_staffing_data_age_seconds")

        assert age() == 0.0  # just read
        sim.set_faults({"error_5xx_rate": 1.0, "routes": [WFM]})
        clock.advance(600.0)
        await engine.refresh_schedules()
        assert age() == 600.0  # the last successful read was 600 s ago
        clock.advance(60.0)
        await engine.refresh_schedules()
        assert age() == 660.0
        sim.clear_faults()
        await engine.refresh_schedules()
        assert age() == 0.0


async def test_wfm_failing_after_convergence_holds_lines_through_a_deep_failover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        sim.set_faults({"error_5xx_rate": 1.0, "routes": [WFM]})
        await engine.refresh_schedules()  # WFM answers 503: the staffing data go stale
        lines = _lines(sim)
        apac = engine.cfg.groups[0]
        for trunk in apac.trunks[:3]:
            sim.fail_trunk(trunk.trunk_base_id)
        sim.reset_counters()
        assert await engine.poll_health()
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        route = _route_ids(sim, SITE_001_DEFAULT)
        assert not {t.trunk_base_id for t in apac.trunks[:3]} & set(route)
        assert sim.count(route=CAMPAIGN, method="PATCH") == 0
        assert _lines(sim) == lines
        sim.clear_faults()
        await engine.refresh_schedules()  # fresh again: line counts follow the plan again
        fresh = await engine.run_once(dry_run=True)
        assert fresh is not None
        assert fresh.plan.held == ()


# -- 3. unknown is not failed --------------------------------------------------------------------


class HideTrunk:
    """The real API port, but the trunk listing leaves one trunk base out (a listing that
    lost it: eventual consistency, a permissions change, a paging race)."""

    def __init__(self, inner: api_mod.GenesysApiPort, hidden: str) -> None:
        self._inner = inner
        self.hidden = hidden

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_trunks(self, **kw: Any) -> tuple[model.TrunkStatus, ...]:
        listed = await self._inner.list_trunks(**kw)
        return tuple(t for t in listed if t.trunk_base_id != self.hidden)


async def test_a_trunk_missing_from_the_listing_is_unknown_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        engine = asm.engine
        await _converge(engine)
        engine.reader.api = HideTrunk(engine.reader.api, ACME_001)  # type: ignore[assignment]
        caplog.set_level(logging.WARNING)
        for _ in range(engine.cfg.safety.unknown_health_polls):
            assert not await engine.poll_health()
        assert engine.health[ACME_001].state is model.HealthState.HEALTHY
        assert engine.health[ACME_001].failovers == 0
        assert ACME_001 in _route_ids(running.sim, SITE_001_DEFAULT)
        assert any("health is unknown" in r.getMessage() for r in caplog.records)
        text = asm.metrics.render().decode()
        assert 'syncd_trunk_health_unknown_polls{group="apac",trunk="acme-001"} 3.0' in text
        assert 'syncd_trunk_failover_events_total{group="apac",trunk="acme-001"} 0.0' in text


async def test_a_listing_that_changes_between_pages_is_unknown_not_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_mod, "PAGE_SIZE", 5)
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        transport = engine.api.transport  # type: ignore[attr-defined]
        real = transport.request
        # The first trunk listed (by name) disappears after page 1 was read: page 2 starts
        # one later, so a trunk that still exists is in neither page.
        first = sorted(
            sim.org.trunks.values(),
            key=lambda t: sim.org.trunk_bases[t.trunk_base_id]["name"].lower(),
        )[0]

        async def request(method: str, template: str, **kw: Any) -> Any:
            query = dict(kw.get("query") or [])
            if template == api_mod.TRUNKS and query.get("pageNumber") == 2:
                sim.org.trunks.pop(sim.org.trunk_of_base[first.trunk_base_id], None)
            return await real(method, template, **kw)

        monkeypatch.setattr(transport, "request", request)
        with pytest.raises(errors.MalformedResponse, match="changed while it was paged"):
            await engine.poll_health()
        assert all(h.state is model.HealthState.HEALTHY for h in engine.health.values())
        text = asm.metrics.render().decode()
        assert 'syncd_trunk_health_unknown_polls{group="apac",trunk="acme-001"} 1.0' in text


async def test_a_trunk_base_the_org_lacks_is_a_config_problem_not_a_failover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (_, asm):
        typo = ACME_001[:-1] + "6"
        cfg = asm.cfg
        apac = cfg.groups[0]
        trunks = (apac.trunks[0].model_copy(update={"trunk_base_id": typo}), *apac.trunks[1:])
        engine = cycle.Engine(
            _with_group(cfg, 0, trunks=trunks),
            api=asm.engine.api,
            store=asm.store,
            observer=asm.metrics,
        )
        await engine.start()
        outcome = await engine.run_once(dry_run=True)
        assert outcome is not None
        assert any(typo in p and "trunk base" in p for p in engine.problems())
        assert engine.health[typo].failovers == 0
        assert engine.health[typo].state is model.HealthState.HEALTHY
        routes = [w.after for w in outcome.plan.writes if isinstance(w.after, tuple)]
        assert all(typo not in after for after in routes)
        held = {h.group: h.reason for h in outcome.plan.held}
        assert typo in held["apac"]
        assert not any(
            w.group == "apac" and w.kind is model.WriteKind.CAMPAIGN_LINES
            for w in outcome.plan.writes
        )


# -- 4. no silent staffing holes -----------------------------------------------------------------


async def test_an_unknown_management_unit_is_reported_and_holds_its_groups_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        lines = _lines(sim)
        typo = APAC_MU[:-1] + "5"
        mus = tuple(typo if mu == APAC_MU else mu for mu in engine.cfg.groups[0].management_units)
        caplog.set_level(logging.ERROR)
        engine.apply_config(_with_group(engine.cfg, 0, management_units=mus))
        await engine.refresh_schedules()
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert [p for p in engine.problems() if typo in p]
        assert "apac" in {h.group for h in outcome.plan.held}
        # Without the hold the typo halves apac's staffing and the plan cuts its lines.
        assert not any(
            w.group == "apac" and w.kind is model.WriteKind.CAMPAIGN_LINES
            for w in outcome.plan.writes
        )
        apac_campaigns = {c.id for c in engine.cfg.groups[0].campaigns}
        assert {cid: lines[cid] for cid in apac_campaigns} == {
            cid: _lines(sim)[cid] for cid in apac_campaigns
        }
        # Said at start and again at every reload until it is fixed.
        said = sum(typo in r.getMessage() for r in caplog.records)
        engine.apply_config(engine.cfg)
        assert sum(typo in r.getMessage() for r in caplog.records) == said + 1


# -- 5. a suspicious drop is held, not written ---------------------------------------------------


async def test_a_drop_beyond_max_drop_share_waits_for_a_confirming_re_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch, max_drop_share=0.5) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        apac_campaigns = {c.id for c in engine.cfg.groups[0].campaigns}
        total = sum(_lines(sim)[c] for c in apac_campaigns)
        # A third of the lines per agent: the plan would cut apac by two thirds in one step.
        engine.apply_config(_with_group(engine.cfg, 0, lines_per_agent=0.5))
        sim.reset_counters()
        held = await engine.run_once(dry_run=False)
        assert held is not None
        assert sum(_lines(sim)[c] for c in apac_campaigns) == total  # nothing lowered yet
        (hold,) = [h for h in held.plan.held if h.group == "apac"]
        assert "held for one more read" in hold.reason
        assert {w.object_id for w in hold.writes} >= apac_campaigns
        assert engine.drops_pending
        assert sim.count(route=SCHEDULE_QUERY) == 0
        confirmed = await engine.run_once(dry_run=False)
        assert confirmed is not None
        assert sim.count(route=SCHEDULE_QUERY) > 0  # the inputs were read again ...
        assert sum(_lines(sim)[c] for c in apac_campaigns) < total / 2  # ... and agreed
        assert not engine.drops_pending
        text = asm.metrics.render().decode()
        assert 'syncd_line_drops_total{group="apac",outcome="held"} 1.0' in text
        assert 'syncd_line_drops_total{group="apac",outcome="confirmed"} 1.0' in text


# -- 7. one bad object never sinks the batch -----------------------------------------------------

NORTHWIND_002 = "2ff07add-8164-4828-ab0c-7850e3e1224e"
SITE_002_DEFAULT = "4b1cbd89-7eea-4c00-a733-57dfba35934c"


async def test_a_group_whose_planning_raises_fails_alone_and_the_other_groups_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        # apac's line counts are held (a typo in a unit id), and one of its campaigns answers
        # a line count no planner expects: holding "what the campaigns dial now" allocates a
        # negative total, and allocation raises ValueError while apac is planned.
        typo = APAC_MU[:-1] + "5"
        mus = tuple(typo if mu == APAC_MU else mu for mu in engine.cfg.groups[0].management_units)
        engine.apply_config(_with_group(engine.cfg, 0, management_units=mus))
        await engine.refresh_schedules()
        apac_campaign = engine.cfg.groups[0].campaigns[0].id
        sim.org.campaigns[apac_campaign]["outboundLineCount"] = -1000
        # Meanwhile an americas trunk fails: its failover must not wait for apac's bug.
        sim.fail_trunk(NORTHWIND_002)
        assert await engine.poll_health()
        sim.reset_counters()
        caplog.set_level(logging.INFO)

        # The daemon's entry point: it returns (work left undone: the daemon retries with
        # backoff) instead of raising out of the reconcile task and ending the daemon.
        assert await engine.reconcile(should_stop=lambda: False) is True

        outcome = engine.last
        assert outcome is not None
        assert outcome.report is not None
        (failure,) = outcome.plan.failures
        assert (failure.scope, failure.group) == ("group", "apac")
        assert isinstance(failure.error, ValueError)
        assert [d.group for d in outcome.plan.decisions] == ["americas"]
        assert NORTHWIND_002 not in _route_ids(sim, SITE_002_DEFAULT)  # americas failed over
        assert outcome.report.applied == len(outcome.plan.writes) > 0
        assert {w.group for w in outcome.plan.writes} == {"americas"}
        # Nothing of apac's was written.
        writes = [e for e in sim.log if e.method in ("PUT", "PATCH")]
        assert writes
        apac_ids = {c.id for c in engine.cfg.groups[0].campaigns} | {
            r.id for r in engine.cfg.groups[0].routes
        }
        assert not [e for e in writes if any(i in e.path for i in apac_ids)]
        # One log line with the traceback, and a count.
        logged = [r for r in caplog.records if r.exc_info and "group apac" in r.getMessage()]
        assert len(logged) == 1
        assert logged[0].exc_info is not None
        assert logged[0].exc_info[0] is ValueError
        samples = asm.metrics.registry.get_sample_value
        assert samples("syncd_unexpected_errors_total", {"where": "plan_group"}) == 1.0
        assert samples("syncd_reconciles_total", {"outcome": "error"}) == 1.0


class SurprisingListing:
    """The real API port, but the first trunk listing raises what no API error is (a bug)."""

    def __init__(self, inner: api_mod.GenesysApiPort) -> None:
        self._inner = inner
        self.surprises = 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_trunks(self, **kw: Any) -> tuple[model.TrunkStatus, ...]:
        if self.surprises:
            self.surprises -= 1
            raise AttributeError("'NoneType' object has no attribute 'get'")
        return await self._inner.list_trunks(**kw)


async def test_an_unexpected_error_in_the_first_health_read_does_not_end_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (_running, asm):
        api = SurprisingListing(asm.engine.api)
        engine = cycle.Engine(asm.cfg, api=api, store=asm.store, observer=asm.metrics)
        await engine.start()  # contained: the timers poll again
        assert engine.waiting_for() == "the first trunk health read"
        logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is AttributeError]
        assert len(logged) == 1
        samples = asm.metrics.registry.get_sample_value
        assert samples("syncd_unexpected_errors_total", {"where": "health_poll"}) == 1.0
        await engine.poll_health()
        assert engine.waiting_for() is None


# -- 14. the hold-down survives a wall-clock step ------------------------------------------------


class Clocks:
    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 500.0

    def step_wall(self, seconds: float) -> None:
        self.wall += seconds

    def elapse(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.mark.parametrize("step", [3600.0, -3600.0], ids=["forward", "back"])
async def test_the_hold_down_survives_a_wall_clock_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: float
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim = running.sim
        clocks = Clocks()
        engine = cycle.Engine(
            asm.cfg,
            api=asm.engine.api,
            store=asm.store,
            observer=asm.metrics,
            clock=lambda: clocks.wall,
            monotonic=lambda: clocks.mono,
        )
        hold_down = asm.cfg.health.hold_down_s
        await engine.start()
        sim.fail_trunk(ACME_001)
        assert await engine.poll_health()
        sim.recover_trunk(ACME_001)
        clocks.elapse(1)
        assert not await engine.poll_health()  # good again: the hold-down starts
        clocks.step_wall(step)  # NTP, a VM resume: the wall clock jumps
        clocks.elapse(1)
        assert not await engine.poll_health()
        assert engine.health[ACME_001].state is model.HealthState.FAILED
        clocks.elapse(hold_down)
        assert await engine.poll_health()  # recovered after the hold-down, not before
        assert engine.health[ACME_001].state is model.HealthState.HEALTHY


async def test_the_engine_says_when_a_recovering_trunks_hold_down_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Recovery is judged only when health is observed; a trunk pushed healthy is not pushed
    # again, so the daemon observes it when this says (daemon._recovery_due_changed): after
    # every fold, poll or push, and every configuration swap, in the step-proof health clock.
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim = running.sim
        clocks = Clocks()
        engine = cycle.Engine(
            asm.cfg,
            api=asm.engine.api,
            store=asm.store,
            observer=asm.metrics,
            clock=lambda: clocks.wall,
            monotonic=lambda: clocks.mono,
        )
        told: list[float | None] = []
        engine.on_health_due = lambda: told.append(engine.recovery_due_in())
        hold_down = asm.cfg.health.hold_down_s
        await engine.start()
        assert told == [None]  # the first poll: nothing is recovering
        sim.fail_trunk(ACME_001)
        assert await engine.poll_health()
        assert told[-1] is None  # failed and still bad: no hold-down runs
        trunk = next(t for t, st in engine._statuses.items() if st.trunk_base_id == ACME_001)
        sim.recover_trunk(ACME_001)
        clocks.elapse(1)
        assert not await engine.on_trunk_event(trunk)  # pushed healthy: the hold-down starts
        assert told[-1] == hold_down
        clocks.step_wall(3600)  # a wall-clock step moves it neither way
        clocks.elapse(10)
        assert engine.recovery_due_in() == hold_down - 10
        # A reload that shortens the hold-down below what has run: it has ended, say so now.
        told.clear()
        cfg = engine.cfg
        engine.apply_config(
            cfg.model_copy(update={"health": cfg.health.model_copy(update={"hold_down_s": 5})})
        )
        assert told == [-5.0]
        assert await engine.poll_health()  # the observation the daemon makes then recovers it
        assert engine.health[ACME_001].state is model.HealthState.HEALTHY
        assert told[-1] is None
        # A recovering trunk base the listing leaves out is not observed by a poll (its state
        # stands): no instant is given for it, or a daemon would poll in vain, and past its
        # end, in a loop.
        sim.fail_trunk(ACME_001)
        assert await engine.poll_health()
        sim.recover_trunk(ACME_001)
        assert not await engine.poll_health()
        assert told[-1] == 5
        engine.reader.api = HideTrunk(engine.reader.api, ACME_001)  # type: ignore[assignment]
        clocks.elapse(10)
        assert not await engine.poll_health()
        assert engine.health[ACME_001].state is model.HealthState.FAILED
        assert told[-1] is None


async def test_an_unknown_business_unit_is_reported_and_holds_its_groups_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await _converge(engine)
        lines = _lines(sim)
        bus = engine.cfg.schedule.business_units
        typo = bus[0][:-1] + ("0" if bus[0][-1] != "0" else "1")
        cfg = engine.cfg
        schedule = cfg.schedule.model_copy(update={"business_units": (typo, *bus[1:])})
        engine.apply_config(cfg.model_copy(update={"schedule": schedule}))
        sim.reset_counters()
        await engine.refresh_schedules()
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert any(typo in p and "business unit" in p for p in engine.problems())
        assert "apac" in {h.group for h in outcome.plan.held}  # its units are in that BU
        assert sim.count(route=CAMPAIGN, method="PATCH") == 0
        assert _lines(sim) == lines
        text = asm.metrics.render().decode()
        assert "syncd_config_problems 1.0" in text


class BadZone:
    """The real API port, but a business unit answers with a time zone nobody knows."""

    def __init__(self, inner: api_mod.GenesysApiPort) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def business_unit(self, business_unit_id: str, **kw: Any) -> api_mod.BusinessUnitInfo:
        info = await self._inner.business_unit(business_unit_id, **kw)
        return dataclasses.replace(info, time_zone="Mars/Olympus_Mons")


async def test_an_unusable_wfm_answer_holds_lines_and_failover_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim = running.sim
        engine = cycle.Engine(
            asm.cfg, api=BadZone(asm.engine.api), store=asm.store, observer=asm.metrics
        )
        await engine.start()  # does not raise: the schedules are unreadable, health is not
        lines = _lines(sim)
        sim.fail_trunk(ACME_001)
        assert await engine.poll_health()
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert ACME_001 not in _route_ids(sim, SITE_001_DEFAULT)
        assert _lines(sim) == lines
        assert {h.group for h in outcome.plan.held} == {"apac", "americas"}
