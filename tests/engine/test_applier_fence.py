"""The applier asks the leader fence before every write (docs/ha.md).

In process against the simulator: a replica that is not the leader sends no write; the lease
epoch goes into the audit trail; a write still in flight at the lease's deadline is abandoned
and recorded as 'interrupted' (it may or may not have landed) — unless that lease was renewed
under the same epoch meanwhile: a write kept waiting by the limiter goes on while its lease does.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from engine_sim import CAMPAIGN, ROUTE, TRUNK_BASE, sim_and_engine

from syncd import errors
from syncd.core import model
from syncd.engine import applier as applier_mod
from syncd.engine import ports, state
from syncd.genesys import api as api_mod
from syncd.sim import Sim


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

    def deadline_of(self, permit: ports.Permit) -> float | None:
        return permit.deadline  # never renewed


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


# --- a write kept waiting by the limiter across its lease's end ------------------------------

FIRST_END_IN = (
    0.05  # a permit's lease ends this soon after the grant: every gated write waits past it
)
LAPSE_AFTER = 1.0  # an unrenewed lease lapses this long after its end (another replica may lead)
HANG_GUARD_S = 60.0  # only against a broken applier that would wait for ever; never reached


class ScriptedLease:
    """A leader lease on the event loop's clock, renewed (or not) as ``script`` says. Each permit
    is granted just after a renewal and ends ``FIRST_END_IN`` s later; when that end arrives the
    applier asks where the lease stands (``deadline_of``), and the script answers:

    * ``renewed``: renewed under the same epoch, another ``FIRST_END_IN`` s on, every time;
    * ``lapsed``: not renewed (the same end); the lease lapses ``LAPSE_AFTER`` s after it;
    * ``new epoch``: halfway to the end, this replica loses the lease and wins epoch 8 (the old
      lease lapses as above). Every permit is granted before that: the applier asks for them
      all at once, in one turn of the event loop, and the change is a timer.

    ``passed`` is set once every write's end has arrived ``renewals`` times; ``lapsed`` once every
    unrenewed lease has lapsed.
    """

    def __init__(self, script: str, *, writes: int, renewals: int = 1) -> None:
        self.script = script
        self.writes = writes
        self.renewals = renewals
        self.epoch = 7
        self.granted: list[ports.Permit] = []
        self.ends_passed: dict[int, int] = {}  # id of a granted permit -> its ends that arrived
        self.passed = asyncio.Event()
        self.lapsed = asyncio.Event()
        self._lapses = 0

    def leading(self) -> bool:
        return True

    def permit(self) -> ports.Permit:
        loop = asyncio.get_running_loop()
        permit = ports.Permit(epoch=self.epoch, deadline=loop.time() + FIRST_END_IN)
        self.granted.append(permit)
        self.ends_passed[id(permit)] = 0
        assert permit.deadline is not None
        if self.script != "renewed":
            loop.call_at(permit.deadline + LAPSE_AFTER, self._lapse)
        if self.script == "new epoch" and len(self.granted) == 1:
            loop.call_at(permit.deadline - FIRST_END_IN / 2, self._new_epoch)
        return permit

    def deadline_of(self, permit: ports.Permit) -> float | None:
        self.ends_passed[id(permit)] += 1
        if len(self.granted) == self.writes and all(
            n >= self.renewals for n in self.ends_passed.values()
        ):
            self.passed.set()
        if self.script == "renewed":
            return asyncio.get_running_loop().time() + FIRST_END_IN
        if permit.epoch != self.epoch:
            return None
        return permit.deadline

    def _new_epoch(self) -> None:
        self.epoch = 8

    def _lapse(self) -> None:
        self._lapses += 1
        if self._lapses == self.writes:
            self.lapsed.set()


class SaturatedLimiter:
    """The real API port behind a stand-in for a limiter with no slot free: every write waits
    until the test opens it (reads pass). It counts the writes given up while they waited
    (never sent) and the writes it let through."""

    def __init__(self, inner: api_mod.GenesysApiPort) -> None:
        self._inner = inner
        self.open = asyncio.Event()
        self.given_up = 0
        self.let_through = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _slot(self) -> None:
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.given_up += 1
            raise
        self.let_through += 1

    async def put_route(
        self, route: model.Route, body: bytes, *, priority: int
    ) -> api_mod.WriteResult:
        await self._slot()
        return await self._inner.put_route(route, body, priority=priority)

    async def put_trunk_base(
        self, trunk_base: model.TrunkBase, body: bytes, *, priority: int
    ) -> api_mod.WriteResult:
        await self._slot()
        return await self._inner.put_trunk_base(trunk_base, body, priority=priority)

    async def patch_campaign_lines(
        self, campaign_id: str, lines: int, *, priority: int
    ) -> api_mod.WriteResult:
        await self._slot()
        return await self._inner.patch_campaign_lines(campaign_id, lines, priority=priority)


async def _first_of(run: asyncio.Future[Any], *events: asyncio.Event) -> None:
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(
            {run, *waiters}, return_when=asyncio.FIRST_COMPLETED, timeout=HANG_GUARD_S
        )
    finally:
        for w in waiters:
            w.cancel()


def _sim_writes(sim: Sim) -> int:
    return sum(
        sim.count(route=route, method=method, status=status)
        for route, method in ((ROUTE, "PUT"), (TRUNK_BASE, "PUT"), (CAMPAIGN, "PATCH"))
        for status in (200, 204)
    )


@dataclasses.dataclass
class GatedRun:
    report: applier_mod.Report
    rows: list[state.AuditRow]
    lease: ScriptedLease
    limiter: SaturatedLimiter
    writes: int  # in the plan
    sent: int  # writes the simulator applied


async def _gated_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, *, renewals: int = 1
) -> GatedRun:
    """The demo org's whole plan, every write in flight at once behind a saturated limiter,
    under a lease that ends while they wait and does what ``script`` says. The limiter opens
    once every write's end has arrived (or the lease lapsed)."""
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        engine = asm.engine
        await engine.start()
        planned = await engine.run_once(dry_run=True)
        assert planned is not None
        writes = len(planned.plan.writes)
        assert writes > 1  # the demo org needs writes: the test is not vacuous
        engine.applier.concurrency = writes  # every write gets its permit at once
        lease = ScriptedLease(script, writes=writes, renewals=renewals)
        limiter = SaturatedLimiter(engine.api)
        engine.applier.fence = lease
        engine.applier.api = limiter  # type: ignore[assignment]

        run = asyncio.ensure_future(engine.run_once(dry_run=False))
        await _first_of(run, lease.passed, lease.lapsed)
        limiter.open.set()
        outcome = await run
        assert outcome is not None
        assert outcome.report is not None
        assert [w.key for w in outcome.plan.writes] == [w.key for w in planned.plan.writes]
        return GatedRun(
            report=outcome.report,
            rows=await asm.store.history(),
            lease=lease,
            limiter=limiter,
            writes=writes,
            sent=_sim_writes(running.sim),
        )


async def test_a_write_kept_waiting_past_its_lease_end_goes_on_while_the_lease_is_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await _gated_run(tmp_path, monkeypatch, "renewed", renewals=2)
    # Every write waited in the limiter past its lease's first end and the end of a renewal
    # after it, the lease renewed each time under the same epoch: none was given up ...
    assert run.limiter.given_up == 0
    assert [r.outcome for r in run.rows if r.outcome != state.APPLIED] == []
    assert run.lease.passed.is_set()
    # ... each went out once the limiter let it, recorded under the epoch it was permitted under.
    assert run.report.applied == run.writes
    assert run.limiter.let_through == run.sent == run.writes
    assert {r.epoch for r in run.rows} == {7}


async def test_a_write_still_waiting_when_its_lease_is_not_renewed_is_given_up_unsent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await _gated_run(tmp_path, monkeypatch, "lapsed")
    # The limiter opened when the last end arrived unrenewed (at the latest when the lease
    # lapsed): by then every write had been given up, and none went out.
    assert run.limiter.given_up == run.writes
    assert run.limiter.let_through == run.sent == 0
    assert [(r.outcome, r.epoch) for r in run.rows] == [(state.INTERRUPTED, 7)] * run.writes
    assert run.report.applied == 0


async def test_a_write_still_waiting_when_the_epoch_changes_is_given_up_unsent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The replica leads again, under epoch 8: the writes permitted under epoch 7 do not go on
    # into it (a new epoch is a new lease; another replica may have led in between).
    run = await _gated_run(tmp_path, monkeypatch, "new epoch")
    assert run.lease.epoch == 8
    assert run.limiter.given_up == run.writes
    assert run.limiter.let_through == run.sent == 0
    assert [(r.outcome, r.epoch) for r in run.rows] == [(state.INTERRUPTED, 7)] * run.writes
    assert run.report.applied == 0


# --- a further attempt under another epoch ---------------------------------------------------


class NewEpochAfter:
    """Epoch 7 for the first ``grants`` permits, epoch 8 after them (the replica lost the lease
    and won it again in between); deadlines far off, never renewed."""

    def __init__(self, grants: int) -> None:
        self.grants = grants
        self.given: list[int | None] = []

    def leading(self) -> bool:
        return True

    def permit(self) -> ports.Permit:
        epoch = 7 if len(self.given) < self.grants else 8
        self.given.append(epoch)
        return ports.Permit(epoch=epoch, deadline=asyncio.get_running_loop().time() + 3600)

    def deadline_of(self, permit: ports.Permit) -> float | None:
        return permit.deadline


class EditBeforePut:
    """The real API port, but a person edits route ``route_id`` just before syncd's first PUT of
    it reaches the server: that PUT carries a stale version and meets a 409."""

    def __init__(self, inner: api_mod.GenesysApiPort, sim: Sim, route_id: str) -> None:
        self._inner = inner
        self._sim = sim
        self._route_id = route_id
        self.edited = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def put_route(
        self, route: model.Route, body: bytes, *, priority: int
    ) -> api_mod.WriteResult:
        if route.id == self._route_id and not self.edited:
            self.edited = True
            self._sim.human_edit("route", route.id)
        return await self._inner.put_route(route, body, priority=priority)


async def test_a_conflict_retry_under_a_new_epoch_is_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        await engine.start()
        planned = await engine.run_once(dry_run=True)
        assert planned is not None
        writes = len(planned.plan.writes)
        route = next(w for w in planned.plan.writes if w.kind is model.WriteKind.ROUTE_ORDER)
        engine.applier.concurrency = writes  # every first attempt gets its permit at once
        fence = NewEpochAfter(writes)
        engine.applier.fence = fence
        editor = EditBeforePut(engine.api, sim, route.object_id)
        engine.applier.api = editor  # type: ignore[assignment]
        engine.reader.api = editor  # type: ignore[assignment]

        outcome = await engine.run_once(dry_run=False)

        assert outcome is not None
        assert outcome.report is not None
        assert editor.edited
        assert sim.count(route=ROUTE, method="PUT", status=409) == 1
        # The conflict was re-read and re-planned, but the retry's permit came under epoch 8:
        # it was not sent (the 409 is the only PUT of that route), and says why.
        assert fence.given[writes:] == [8]
        row = next(r for r in await asm.store.history() if r.object_id == route.object_id)
        assert (row.outcome, row.epoch, row.attempts) == (state.FAILED, 7, 2)
        assert "epoch changed from 7 to 8" in row.error
        assert outcome.report.fenced == 1
        assert outcome.report.applied == writes - 1
        puts = [
            r
            for r in sim.requests_json()
            if r["method"] == "PUT" and str(r["path"]).endswith(route.object_id)
        ]
        assert [r["status"] for r in puts] == [409]
