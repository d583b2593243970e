"""A failover waits for nothing but health: the reads it does not need, and the retries that
routine failures spent, never stand between a failed trunk and its route write.

The engine runs in-process against the simulator on loopback (``engine_sim``); faults are
injected through the simulator's fault settings (route prefixes, methods, ``max_faults``), so
which request fails is decided, not drawn.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_sim import CAMPAIGN, ROUTE, converge, lines, route_ids, sim_and_engine

from syncd import errors
from syncd.core import model
from syncd.engine import cycle
from syncd.sim import Sim

EDGES = "/api/v2/telephony/providers/edges"
ROUTE_LISTING = EDGES + "/sites/{siteId}/outboundroutes"
CAMPAIGN_LISTING = "/api/v2/outbound/campaigns"
TRUNK_BASE_LISTING = EDGES + "/trunkbasesettings"
TRUNKS = EDGES + "/trunks"
WFM = "/api/v2/workforcemanagement/"
# The small org, seed 1 (config/demo.toml): an apac trunk on site 001's default route, an
# americas trunk on site 002's.
SITE_001 = "3313a1a7-5ec1-4589-85ee-d7cb9264847d"
SITE_001_DEFAULT = "45b830ee-7ef1-408e-89fc-117fba6b1e78"
SITE_002 = "b978a9e0-a422-4121-86d4-96de58ae049e"
SITE_002_DEFAULT = "4b1cbd89-7eea-4c00-a733-57dfba35934c"
APAC_TRUNK = "da598f9f-47b5-4227-a02e-3b5288064455"
AMERICAS_TRUNK = "2ff07add-8164-4828-ab0c-7850e3e1224e"


def _call_rate(sim: Sim, trunk_base: str) -> object:
    return sim.org.trunk_bases[trunk_base]["properties"]["trunk_maxCallRate"]["value"]["instance"]


async def _fail_over(sim: Sim, engine: cycle.Engine, trunk_base: str) -> None:
    sim.fail_trunk(trunk_base)
    assert await engine.poll_health()
    assert engine.failover_pending()


async def test_a_failover_is_written_while_the_campaign_and_trunk_base_listings_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await converge(engine)
        before = lines(sim)
        sim.set_faults(
            {
                "error_5xx_rate": 1.0,
                "routes": [CAMPAIGN_LISTING, TRUNK_BASE_LISTING],
                "methods": ["GET"],
            }
        )
        await _fail_over(sim, engine, APAC_TRUNK)
        sim.reset_counters()
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        # The route write landed, though the campaign listing failed ...
        assert APAC_TRUNK not in route_ids(sim, SITE_001_DEFAULT)
        assert sim.count(route=ROUTE, method="PUT", status=200) >= 1
        assert sim.count(route=CAMPAIGN_LISTING, status=503) == 1
        # ... and the trunk bases already held were not read again before it.
        assert sim.count(route=TRUNK_BASE_LISTING) == 0
        # What the campaigns dial is unknown: no line count moved, every group is held.
        assert sim.count(route=CAMPAIGN, method="PATCH") == 0
        assert lines(sim) == before
        assert {h.group for h in outcome.plan.held} == {"apac", "americas"}
        assert all("campaign listing could not be read" in h.reason for h in outcome.plan.held)
        assert [what for what, _ in outcome.unread] == ["the campaign listing"]
        # The campaign cut the failover may drive is still owed: it stays pending (the daemon
        # retries at once, at failover priority) ...
        assert engine.failover_pending()
        sim.clear_faults()
        after = await engine.run_once(dry_run=False)
        assert after is not None
        assert after.unread == ()
        assert not engine.failover_pending()
        # ... and once the campaigns could be read, the plan is complete.
        done = await engine.run_once(dry_run=True)
        assert done is not None
        assert done.plan.writes == ()


async def test_a_failing_trunk_base_listing_holds_call_rates_and_not_the_reconcile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await converge(engine)
        assert any(g.call_rate for g in engine.cfg.groups)  # so every pass reads trunk bases
        # A person changes a call rate syncd owns; a dry run reads it and plans it back.
        tb = sim.org.trunk_bases[APAC_TRUNK]
        tb["properties"]["trunk_maxCallRate"]["value"]["instance"] = "1/5s"
        tb["version"] += 1
        seen = await engine.run_once(dry_run=True)
        assert seen is not None
        (seen_rate,) = [w.after for w in seen.plan.writes if w.object_id == APAC_TRUNK]
        sim.set_faults({"error_5xx_rate": 1.0, "routes": [TRUNK_BASE_LISTING], "methods": ["GET"]})
        # A routine reconcile: the listing fails, the rest is planned, and the daemon is told
        # that work is left (it tries again soon) rather than handed an error. No call rate is
        # written on the trunk bases this pass could not read.
        assert await engine.reconcile(should_stop=lambda: False) is True
        assert engine.last is not None
        assert [what for what, _ in engine.last.unread] == ["the trunk base listing"]
        kinds = {w.kind for w in engine.last.plan.writes}
        assert model.WriteKind.TRUNK_CALL_RATE not in kinds
        assert _call_rate(sim, APAC_TRUNK) == "1/5s"
        sim.clear_faults()
        assert await engine.reconcile(should_stop=lambda: False) is False
        assert _call_rate(sim, APAC_TRUNK) == seen_rate


async def test_a_failing_re_read_after_the_writes_does_not_fail_the_failover_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await converge(engine)
        sim.set_faults({"error_5xx_rate": 1.0, "routes": [TRUNK_BASE_LISTING], "methods": ["GET"]})
        await _fail_over(sim, engine, APAC_TRUNK)
        # The failover moves apac's lines to its other trunks, so the pass writes their call
        # rates too and then reads the trunk bases again (their versions moved on): that read
        # fails, the pass does not.
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert outcome.report is not None
        assert outcome.report.failed == 0
        kinds = {w.kind for w in outcome.plan.writes}
        assert model.WriteKind.TRUNK_CALL_RATE in kinds
        assert APAC_TRUNK not in route_ids(sim, SITE_001_DEFAULT)
        assert [what for what, _ in outcome.unread] == ["the trunk base listing"]
        # The next pass reads them again, and there is nothing left to do.
        sim.clear_faults()
        sim.reset_counters()
        assert await engine.reconcile(should_stop=lambda: False) is False
        assert sim.count(route=TRUNK_BASE_LISTING, status=200) >= 1
        done = await engine.run_once(dry_run=True)
        assert done is not None
        assert done.plan.writes == ()


async def test_a_site_whose_route_listing_fails_does_not_hold_back_another_sites_failover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await converge(engine)
        site_002 = ROUTE_LISTING.replace("{siteId}", SITE_002)
        sim.set_faults({"error_5xx_rate": 1.0, "routes": [site_002], "methods": ["GET"]})
        await _fail_over(sim, engine, APAC_TRUNK)
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert APAC_TRUNK not in route_ids(sim, SITE_001_DEFAULT)
        assert [what for what, _ in outcome.unread] == [f"the outbound routes of site {SITE_002}"]
        # Site 002's routes were not planned, nor reported missing from the org.
        assert SITE_002_DEFAULT not in {w.object_id for w in outcome.plan.writes}
        assert SITE_002_DEFAULT not in engine.reader.problems
        assert engine.failover_pending()  # its routes may need the failover too
        sim.clear_faults()
        await _fail_over(sim, engine, AMERICAS_TRUNK)
        assert await engine.run_once(dry_run=False) is not None
        assert AMERICAS_TRUNK not in route_ids(sim, SITE_002_DEFAULT)
        assert not engine.failover_pending()


async def test_a_failover_read_is_retried_after_a_storm_spent_the_routine_and_health_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch, max_attempts=5) as (running, asm):
        sim, engine = running.sim, asm.engine
        backoffs: list[float] = []

        async def no_wait(seconds: float) -> None:
            backoffs.append(seconds)  # the transport's backoff, without the wall-clock wait

        monkeypatch.setattr(asm.transport, "_sleep", no_wait)
        await converge(engine)
        # A storm: every health poll and every schedule read fails, each tried 5 times, until
        # the transport refuses their retries.
        sim.set_faults({"error_5xx_rate": 1.0, "routes": [TRUNKS, WFM]})
        refused = 0
        for _ in range(6):
            try:
                await engine.poll_health()
            except errors.RetryBudgetExhausted:
                refused += 1
            except errors.ApiError:
                pass
            await engine.refresh_schedules()  # holds the line counts; never raises for this
        assert refused > 0
        assert "its schedules could not be read" in " ".join(engine.reader.staffing_gaps().values())
        # Then a trunk fails, and the failover's route listing fails twice before it answers.
        sim.clear_faults()
        await _fail_over(sim, engine, APAC_TRUNK)
        sim.reset_counters()
        sim.set_faults(
            {
                "error_5xx_rate": 1.0,
                "routes": [EDGES + "/sites/"],
                "methods": ["GET"],
                "max_faults": 2,
            }
        )
        outcome = await engine.run_once(dry_run=False)
        assert outcome is not None
        assert sim.count(route=ROUTE_LISTING, status=503) == 2  # both retried, then answered
        assert outcome.unread == ()
        assert APAC_TRUNK not in route_ids(sim, SITE_001_DEFAULT)
        assert not engine.failover_pending()

        def exhausted(retry_class: str) -> float | None:
            return asm.metrics.registry.get_sample_value(
                "syncd_retry_budget_exhausted_total", {"class": retry_class}
            )

        assert (exhausted("health") or 0) >= 1
        assert exhausted("failover") == 0
