"""The applier against the simulator: conflicts are re-read and re-planned, never overwritten;
one failed write does not stop the rest; a failed object backs off (per object, exponentially).

Everything runs in process: ``start_sim`` on a loopback port, the real engine from
``runner.open_engine`` (transport, API client, planner, applier, SQLite audit trail).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
        rows = {r.object_id: r for r in (await asm.store.history())}
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
        row = next(r for r in (await asm.store.history()) if r.object_id == SITE_001_DEFAULT)
        assert row.outcome == state.CONFLICT
        assert row.attempts == retries + 1


async def test_one_failed_write_is_reported_the_rest_go_on_and_it_backs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        clock = FakeClock()
        engine.applier.clock = clock
        # No hysteresis band: within it the plan keeps the campaigns' current total, and the
        # failed write changes that total, so the next plan re-decides the others too (at
        # staffing whose demand lay within the band of the total, as at 12:45 UTC). This test
        # is about the failed write's backoff, not about the band.
        groups = tuple(g.model_copy(update={"hysteresis": 0}) for g in engine.cfg.groups)
        engine.cfg = engine.cfg.model_copy(update={"groups": groups})
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
        # Every campaign the plan writes was tried (how many differ depends on the hour's
        # staffing: 4 at some hours, 3 at others); one answered 503.
        tried = sum(1 for w in first.plan.writes if w.kind is model.WriteKind.CAMPAIGN_LINES)
        assert tried >= 2
        assert CAMPAIGN_001 in {w.object_id for w in first.plan.writes}
        assert patches() == tried
        assert sim.count(route=CAMPAIGN, method="PATCH", status=503) == 1
        row = next(r for r in (await asm.store.history()) if r.object_id == CAMPAIGN_001)
        assert row.outcome == state.FAILED
        assert "503" in row.error or row.error

        # Within the backoff (5 s after one failure) the object is not tried again ...
        clock.advance(4.0)
        second = await engine.run_once(dry_run=False)
        assert second is not None
        assert second.report is not None
        assert [w.object_id for w in second.plan.writes] == [CAMPAIGN_001]
        assert second.report.skipped_backoff == 1
        assert patches() == tried
        # ... after it, it is (and fails again: the backoff doubles to 10 s).
        clock.advance(2.0)
        third = await engine.run_once(dry_run=False)
        assert third is not None
        assert third.report is not None
        assert third.report.failed == 1
        assert patches() == tried + 1
        clock.advance(9.0)
        fourth = await engine.run_once(dry_run=False)
        assert fourth is not None
        assert fourth.report is not None
        assert fourth.report.skipped_backoff == 1
        assert patches() == tried + 1
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
        outcomes = [r.outcome for r in (await asm.store.history()) if r.object_id == CAMPAIGN_001]
        assert outcomes == [state.FAILED, state.FAILED, state.APPLIED]


# --- a write whose answer was lost -------------------------------------------------------------


def _writes_to(sim: Sim, path_end: str, method: str) -> list[int]:
    """The statuses of the requests the simulator received for one object (0 = no answer)."""
    return [
        int(r["status"])
        for r in sim.requests_json()
        if r["method"] == method and str(r["path"]).endswith(path_end)
    ]


@pytest.mark.parametrize(
    ("object_id", "method", "route", "path"),
    [
        (CAMPAIGN_001, "PATCH", CAMPAIGN, f"/api/v2/outbound/campaigns/{CAMPAIGN_001}"),
        # A PUT carries the version it was read at: sent again blindly it would meet a 409
        # (the first one landed), so "no second write" is checked on a versioned write too.
        (
            SITE_001_DEFAULT,
            "PUT",
            ROUTE,
            f"{SITES}/{SITE_001}/outboundroutes/{SITE_001_DEFAULT}",
        ),
    ],
    ids=["campaign-patch", "route-put"],
)
async def test_a_lost_answer_that_landed_is_confirmed_by_a_re_read_not_sent_again(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    object_id: str,
    method: str,
    route: str,
    path: str,
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await engine.start()
        # The server applies the write, then the connection drops without an answer.
        sim.set_faults({"lost_answer_rate": 1.0, "methods": [method], "routes": [path]})

        outcome = await engine.run_once(dry_run=False)

        assert outcome is not None
        assert outcome.report is not None
        planned = next(w for w in outcome.plan.writes if w.object_id == object_id)
        # Sent once and applied once (the log records the status the server produced) ...
        assert len(_writes_to(sim, object_id, method)) == 1
        assert sim.count(route=route, method="GET") == 1  # ... then re-read, not re-sent.
        assert outcome.report.failed == 0
        assert outcome.report.lost_answers == 1
        assert outcome.report.confirmed == 1
        assert outcome.report.applied == len(outcome.plan.writes)
        (row,) = [r for r in (await asm.store.history()) if r.object_id == object_id]
        assert row.outcome == state.APPLIED
        assert row.shown_outcome == "applied (confirmed by re-read)"
        audited = list(planned.after) if isinstance(planned.after, tuple) else planned.after
        assert row.after == audited  # the audit trail holds JSON: a route's order is a list
        assert "applied (confirmed by re-read)" in state.format_history([row])
        # The trail keeps the trunk bases' names, for `syncd history` (which has no API).
        kept = asm.store.sync.names()
        assert {tb: kept[tb] for tb in sim.org.trunk_bases} == {
            tb: body["name"] for tb, body in sim.org.trunk_bases.items()
        }
        again = await engine.run_once(dry_run=True)
        assert again is not None
        assert again.plan.writes == ()


def _campaign_path(campaign_id: str) -> str:
    return f"/api/v2/outbound/campaigns/{campaign_id}"


async def test_a_write_dropped_before_it_landed_is_re_planned_and_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await engine.start()
        # The first PATCH to the campaign is cut off before the server handles it.
        sim.set_faults(
            {
                "reset_rate": 1.0,
                "methods": ["PATCH"],
                "routes": [_campaign_path(CAMPAIGN_001)],
                "max_faults": 1,
            }
        )

        outcome = await engine.run_once(dry_run=False)

        assert outcome is not None
        assert outcome.report is not None
        planned = next(w for w in outcome.plan.writes if w.object_id == CAMPAIGN_001)
        # Re-read: the old value still stands, so the re-planned write is sent (once more).
        assert _writes_to(sim, CAMPAIGN_001, "PATCH") == [0, 204]
        assert sim.count(route=CAMPAIGN, method="GET") == 1
        assert sim.org.campaigns[CAMPAIGN_001]["outboundLineCount"] == planned.after
        assert outcome.report.lost_answers == 1
        assert outcome.report.confirmed == 0
        assert outcome.report.failed == 0
        (row,) = [r for r in (await asm.store.history()) if r.object_id == CAMPAIGN_001]
        assert (row.outcome, row.note, row.attempts) == (state.APPLIED, "", 2)


class EditBeforeReRead:
    """The real API port, but a person sets a campaign's line count just before syncd re-reads
    it (after a write whose answer was lost): the re-read shows neither old nor desired."""

    def __init__(self, inner: api_mod.GenesysApiPort, sim: Sim, lines: int) -> None:
        self._inner = inner
        self._sim = sim
        self._lines = lines

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def get_campaign(self, campaign_id: str, **kw: Any) -> model.Campaign:
        entity = self._sim.org.campaigns[campaign_id]
        entity["outboundLineCount"] = self._lines
        entity["version"] += 1
        return await self._inner.get_campaign(campaign_id, **kw)


async def test_a_lost_answer_changed_meanwhile_is_re_planned_from_the_fresh_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await engine.start()
        engine.applier.api = EditBeforeReRead(engine.api, sim, lines=3)
        sim.set_faults(
            {
                "lost_answer_rate": 1.0,
                "methods": ["PATCH"],
                "routes": [_campaign_path(CAMPAIGN_001)],
                "max_faults": 1,
            }
        )

        outcome = await engine.run_once(dry_run=False)

        assert outcome is not None
        assert outcome.report is not None
        planned = next(w for w in outcome.plan.writes if w.object_id == CAMPAIGN_001)
        assert planned.after != 3
        # The first PATCH landed (answer lost), the person changed it, the re-plan wrote again.
        assert _writes_to(sim, CAMPAIGN_001, "PATCH") == [204, 204]
        assert sim.org.campaigns[CAMPAIGN_001]["outboundLineCount"] == planned.after
        assert (outcome.report.lost_answers, outcome.report.confirmed) == (1, 0)
        (row,) = [r for r in (await asm.store.history()) if r.object_id == CAMPAIGN_001]
        assert (row.outcome, row.note, row.attempts) == (state.APPLIED, "", 2)
        assert (row.before, row.after) == (3, planned.after)  # what the second PATCH changed


# --- one bad object never sinks the batch ------------------------------------------------------


class DropPropertyAfterRead:
    """The real API port, but right after syncd's trunk-base listing a person's tool replaces a
    trunk base without its ``trunk_maxCallRate`` property: syncd's PUT then meets a 409 and its
    re-read a trunk base it cannot render the call rate into (a ValueError, not an ApiError)."""

    def __init__(self, inner: api_mod.GenesysApiPort, sim: Sim, trunk_base_id: str) -> None:
        self._inner = inner
        self._sim = sim
        self._id = trunk_base_id
        self.armed = False
        self.removed: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_trunk_bases(self, **kw: Any) -> tuple[model.TrunkBase, ...]:
        listed = await self._inner.list_trunk_bases(**kw)
        if self.armed:
            self.armed = False
            entity = self._sim.org.trunk_bases[self._id]
            self.removed = entity["properties"].pop("trunk_maxCallRate")
            entity["version"] += 1
        return listed


async def test_an_unexpected_error_fails_that_object_alone_and_it_backs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        clock = FakeClock()
        engine.applier.clock = clock
        tool = DropPropertyAfterRead(engine.api, sim, ACME_001)
        engine.reader.api = tool
        engine.applier.api = tool
        await engine.start()
        tool.armed = True

        # What the daemon's reconcile task calls: it returns (work left undone, so the daemon
        # retries soon) instead of raising out of the task and ending the daemon.
        assert await engine.reconcile(should_stop=lambda: False) is True
        first = engine.last

        assert first is not None
        assert first.report is not None
        assert any(w.object_id == ACME_001 for w in first.plan.writes)
        assert first.report.failed == 1
        assert first.report.applied == len(first.plan.writes) - 1  # the others all landed
        (row,) = [r for r in (await asm.store.history()) if r.object_id == ACME_001]
        assert row.outcome == state.FAILED
        assert row.error.startswith("ValueError: ")
        failed = asm.metrics.registry.get_sample_value(
            "syncd_writes_total", {"kind": "trunk_call_rate", "outcome": "failed"}
        )
        assert failed == 1.0
        # One log line for it, with the traceback.
        with_tb = [r for r in caplog.records if r.exc_info and "Acme Voice BYOC 001" in r.message]
        assert len(with_tb) == 1
        assert with_tb[0].exc_info is not None
        assert with_tb[0].exc_info[0] is ValueError

        # The property is back: the write is planned again, but the object backs off first.
        sim.org.trunk_bases[ACME_001]["properties"]["trunk_maxCallRate"] = tool.removed
        clock.advance(1.0)
        second = await engine.run_once(dry_run=False)
        assert second is not None
        assert second.report is not None
        assert [w.object_id for w in second.plan.writes] == [ACME_001]
        assert second.report.skipped_backoff == 1
        clock.advance(10.0)
        third = await engine.run_once(dry_run=False)
        assert third is not None
        assert third.report is not None
        assert third.report.applied == 1


async def test_cancellation_still_propagates_through_the_applier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await engine.start()
        sim.set_hold({"routes": ["/api/v2/outbound/campaigns/"]})
        task = asyncio.ensure_future(engine.run_once(dry_run=False))
        assert await sim.hold.wait_held(1, timeout_s=30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The writes cut short stay 'pending' (the next start marks them interrupted).
        assert state.PENDING in {r.outcome for r in (await asm.store.history())}
        await sim.release_hold()


# --- failover work keeps its priority through a conflict ---------------------------------------


class OneAtATime:
    """The real API port behind a stand-in for a saturated limiter: one call at a time, the
    lowest priority value first (arrival order within a priority), as ``genesys.limiter``
    serves its queue. It opens once ``opens_at`` calls wait, so every write the applier has in
    flight is queued before the first is served; the next call is picked only after the caller
    of the previous one has run on (``call_soon``), so a retry it sends at once is in the queue.
    """

    def __init__(self, inner: api_mod.GenesysApiPort, *, opens_at: int) -> None:
        self._inner = inner
        self._opens_at = opens_at
        self._open = False
        self._busy = False
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0
        self.served: list[tuple[str, str, int]] = []  # (call, object id, priority)
        self.before_put_route: Callable[[model.Route], None] = lambda route: None

    def _dispatch(self) -> None:
        if self._busy or not self._queue or not (self._open or len(self._queue) >= self._opens_at):
            return
        self._open = True
        self._queue.sort()
        _, _, turn = self._queue.pop(0)
        self._busy = True
        turn.set_result(None)

    async def _call(self, name: str, object_id: str, priority: int, call: Any) -> Any:
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((priority, self._seq, turn))
        self._seq += 1
        self._dispatch()
        await turn
        self.served.append((name, object_id, priority))
        try:
            return await call()
        finally:
            self._busy = False
            asyncio.get_running_loop().call_soon(self._dispatch)

    async def get_route(self, site_id: str, route_id: str, *, priority: int) -> model.Route:
        return await self._call(  # type: ignore[no-any-return]
            "get_route",
            route_id,
            priority,
            lambda: self._inner.get_route(site_id, route_id, priority=priority),
        )

    async def put_route(
        self, route: model.Route, body: bytes, *, priority: int
    ) -> api_mod.WriteResult:
        self.before_put_route(route)
        return await self._call(  # type: ignore[no-any-return]
            "put_route",
            route.id,
            priority,
            lambda: self._inner.put_route(route, body, priority=priority),
        )

    async def patch_campaign_lines(
        self, campaign_id: str, lines: int, *, priority: int
    ) -> api_mod.WriteResult:
        return await self._call(  # type: ignore[no-any-return]
            "patch_campaign_lines",
            campaign_id,
            priority,
            lambda: self._inner.patch_campaign_lines(campaign_id, lines, priority=priority),
        )

    async def put_trunk_base(
        self, trunk_base: model.TrunkBase, body: bytes, *, priority: int
    ) -> api_mod.WriteResult:
        return await self._call(  # type: ignore[no-any-return]
            "put_trunk_base",
            trunk_base.id,
            priority,
            lambda: self._inner.put_trunk_base(trunk_base, body, priority=priority),
        )


async def test_a_failover_write_keeps_its_priority_through_a_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        sim.fail_trunk(ACME_001)
        await engine.start()
        plan = await engine.run_once(dry_run=True)
        assert plan is not None
        first = plan.plan.writes[0]
        assert (first.object_id, first.priority) == (SITE_001_DEFAULT, model.Priority.FAILOVER)
        assert any(w.priority > model.Priority.FAILOVER for w in plan.plan.writes[1:4])
        desired = first.after
        assert isinstance(desired, tuple)

        gate = OneAtATime(engine.api, opens_at=engine.applier.concurrency)

        def a_person_pulls_the_failed_trunk(route: model.Route) -> None:
            # As syncd sends its failover PUT, an administrator removes the failed trunk by hand
            # and leaves the others in another order: syncd's PUT meets a 409, and the re-plan
            # against the fresh copy moves no failed trunk any more.
            gate.before_put_route = lambda route: None
            entity = _route(sim, route.id)
            by_id = {t["id"]: t for t in entity["externalTrunkBases"]}
            entity["externalTrunkBases"] = [by_id[tb] for tb in reversed(desired)]
            entity["version"] += 1

        gate.before_put_route = a_person_pulls_the_failed_trunk
        engine.applier.api = gate  # type: ignore[assignment]

        outcome = await engine.run_once(dry_run=False)

        assert outcome is not None
        assert outcome.report is not None
        assert outcome.report.conflicts == 1
        assert outcome.report.failed == 0
        # The re-read and the retry went first, at failover priority, ahead of the lower-priority
        # writes that were queued all along.
        failover = int(model.Priority.FAILOVER)
        assert gate.served[:3] == [
            ("put_route", SITE_001_DEFAULT, failover),
            ("get_route", SITE_001_DEFAULT, failover),
            ("put_route", SITE_001_DEFAULT, failover),
        ]
        assert tuple(t["id"] for t in _route(sim, SITE_001_DEFAULT)["externalTrunkBases"]) == (
            desired
        )
        row = next(r for r in (await asm.store.history()) if r.object_id == SITE_001_DEFAULT)
        assert (row.outcome, row.attempts) == (state.APPLIED, 2)
