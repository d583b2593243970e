"""Running a plan through the API: by priority, one write in flight per object, conflicts redone.

Each write is recorded in the audit trail before it is sent and finished with its outcome and the
server's request id. A version conflict (409, or the 400 variant) re-reads that one object, asks
the planner to re-derive the owned field against the fresh copy, and tries again, a bounded
number of times: never a blind overwrite. A write whose answer was lost (timeout, dropped
connection, 504) may have landed: it is never re-sent blindly either, but re-read like a
conflict; when the object already holds the desired value the write is ``applied (confirmed by
re-read)``. The retry keeps the write's priority. Any other failure, and any unexpected
exception while re-planning or writing one object, is final for this reconcile: it is reported,
the object backs off (per object, exponentially), and the rest of the plan goes on; only
cancellation propagates. When asked to stop, nothing new starts; writes already in flight
finish.

With replicas (docs/ha.md), every write — every attempt of it — first asks the fence for a
permit: none when this replica is not the leader or its lease is too close to its end (the
write is not sent, and nothing new starts); otherwise the permit's epoch is recorded with the
write and the write is abandoned at the permit's deadline, before the lease can lapse — unless
that lease was renewed meanwhile under the same epoch: then at the renewed lease's deadline, so
a write kept waiting by the limiter across renewals is not given up while its lease goes on.

This module decides nothing about *what* to write (that is ``core.planner``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping

from syncd import errors
from syncd.core import model, planner, wire
from syncd.engine import ports, state
from syncd.genesys import api as api_mod

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Objects:
    """The objects the plan was made from (the reconcile's fresh reads), by id."""

    routes: Mapping[str, model.Route]
    campaigns: Mapping[str, model.Campaign]
    trunk_bases: Mapping[str, model.TrunkBase]
    names: Mapping[str, str]  # trunk base id → name, for new entries in a route


@dataclasses.dataclass(slots=True)
class Report:
    applied: int = 0
    failed: int = 0
    conflicts: int = 0
    superseded: int = 0
    skipped_backoff: int = 0
    not_started: int = 0
    lost_answers: int = 0  # writes whose answer never arrived (timeout, dropped connection)
    confirmed: int = 0  # of ``applied``: a lost answer, but the re-read showed the value
    fenced: int = 0  # not sent: this replica is not (or no longer) the leader


@dataclasses.dataclass(slots=True, kw_only=True)
class _Job:
    """One write being worked: its audit row, the write as last (re-)planned, attempts so far."""

    write: model.Write
    current: model.Write
    row: int | None = None
    attempts: int = 0


@dataclasses.dataclass(slots=True)
class _Backoff:
    failures: int
    not_before: float


class Applier:
    def __init__(
        self,
        api: api_mod.GenesysApiPort,
        store: state.AsyncStateStore,
        observer: ports.Observer,
        *,
        max_conflict_retries: int = 3,
        concurrency: int = 4,
        backoff_base_s: float = 5.0,
        backoff_max_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        fence: ports.Fence | None = None,
    ) -> None:
        self.api = api
        self.fence: ports.Fence = fence or ports.NoFence()
        self.store = store
        self.observer = observer
        self.max_conflict_retries = max_conflict_retries
        self.concurrency = concurrency
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self._backoff: dict[tuple[str, str], _Backoff] = {}
        self._in_flight: set[tuple[str, str]] = set()

    async def apply(
        self,
        plan: model.Plan,
        objects: Objects,
        *,
        settings: planner.PlannerSettings,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Report:
        report = Report()
        sem = asyncio.Semaphore(self.concurrency)
        now = self.clock()
        async with asyncio.TaskGroup() as tg:
            for write in plan.writes:  # already ordered by priority
                if should_stop():
                    report.not_started += 1
                    continue
                if not self.fence.leading():
                    report.fenced += 1
                    continue
                back = self._backoff.get(write.key)
                if (
                    back is not None
                    and back.not_before > now
                    and write.priority is not model.Priority.FAILOVER
                ):
                    report.skipped_backoff += 1
                    continue
                if write.key in self._in_flight:
                    continue  # one in-flight write per object
                await sem.acquire()
                if should_stop():
                    sem.release()
                    report.not_started += 1
                    continue
                self._in_flight.add(write.key)
                tg.create_task(
                    self._run(write, objects, settings, plan, report, sem),
                    name=f"write {write.kind.value} {write.object_id}",
                )
        return report

    async def _run(
        self,
        write: model.Write,
        objects: Objects,
        settings: planner.PlannerSettings,
        plan: model.Plan,
        report: Report,
        sem: asyncio.Semaphore,
    ) -> None:
        job = _Job(write=write, current=write)
        try:
            await self._apply_one(job, objects, settings, plan, report)
        except Exception as exc:  # noqa: BLE001 - one object's surprise must not sink the batch
            # A ValueError from an answer syncd did not expect, a bug: this object fails (audit
            # row, metric, one log line with the traceback, backoff); the other writes go on.
            # Cancellation is not an Exception: it propagates.
            await self._fail_unexpectedly(job, report, exc)
        finally:
            self._in_flight.discard(write.key)
            sem.release()

    async def _apply_one(
        self,
        job: _Job,
        objects: Objects,
        settings: planner.PlannerSettings,
        plan: model.Plan,
        report: Report,
    ) -> None:
        write = job.write
        try:
            permit = self.fence.permit()
        except errors.NotLeader as exc:
            report.fenced += 1
            log.info("Not writing %s %s: %s.", write.kind.value, write.object_name, exc)
            return
        job.row = await self.store.begin_write(write, now=self.clock(), epoch=permit.epoch)
        fresh: model.Route | model.TrunkBase | model.Campaign | None = None
        extra = {"object_id": write.object_id, "kind": write.kind.value, "group": write.group}
        while True:
            job.attempts += 1
            current = job.current
            try:
                if job.attempts > 1:
                    permit = self._permit_again(permit)
                request_id = await self._send_within(permit, current, objects, fresh)
            except errors.NotLeader as exc:
                report.fenced += 1
                await self._finish(job, state.FAILED, report, error=str(exc))
                return
            except TimeoutError:
                # Abandoned at the lease's deadline: the request may or may not have landed.
                error = "abandoned at the end of the leader lease; it may or may not have landed"
                await self._finish(job, state.INTERRUPTED, report, error=error)
                return
            except errors.VersionConflict as exc:
                report.conflicts += 1
                self.observer.observe_conflict(write.kind.value)
                log.info(
                    "Version conflict on %s %s (a concurrent edit); re-reading it to re-apply.",
                    write.kind.value,
                    write.object_name,
                    extra={**extra, "request_id": exc.request_id, "attempt": job.attempts},
                )
                lost = False
                failure: errors.ApiError = exc
            except errors.ApiError as exc:
                if not _answer_lost(exc):
                    await self._finish(
                        job, state.FAILED, report, error=str(exc), request_id=exc.request_id
                    )
                    return
                report.lost_answers += 1
                log.warning(
                    "The answer to the write of %s of %s %s was lost (%s); it may have landed,"
                    " so it is re-read rather than sent again.",
                    write.field,
                    write.kind.value,
                    write.object_name,
                    exc,
                    extra={**extra, "attempt": job.attempts},
                )
                lost = True
                failure = exc
            else:
                await self._finish(job, state.APPLIED, report, request_id=request_id)
                return
            if job.attempts > self.max_conflict_retries:
                outcome = state.FAILED if lost else state.CONFLICT
                await self._finish(job, outcome, report, error=str(failure))
                return
            try:
                fresh = await self._read(current)
            except errors.ApiError as read_exc:
                await self._finish(job, state.FAILED, report, error=str(read_exc))
                return
            again = planner.replan(current, fresh, settings=settings, plan=plan)
            if again is None:
                if lost:
                    await self._finish(job, state.APPLIED, report, note=state.CONFIRMED_BY_REREAD)
                else:
                    error = "the fresh copy already has the desired value"
                    await self._finish(job, state.SUPERSEDED, report, error=error)
                return
            # The retry (and any further re-read) keeps the write's priority: a failover write
            # re-planned against a copy a person touched is still failover work, and must not
            # queue behind the routine writes that were waiting while it was re-read.
            job.current = dataclasses.replace(again, priority=min(again.priority, write.priority))

    async def _fail_unexpectedly(self, job: _Job, report: Report, exc: Exception) -> None:
        try:
            if job.row is None:
                job.row = await self.store.begin_write(job.write, now=self.clock())
            job.attempts = max(job.attempts, 1)
            await self._finish(
                job, state.FAILED, report, error=f"{type(exc).__name__}: {exc}", exc_info=exc
            )
        except Exception:  # the state file failing too: still only this object fails
            log.exception(
                "Could not write %s of %s %s (%s: %s), nor record that in the audit trail.",
                job.write.field,
                job.write.kind.value,
                job.write.object_name,
                type(exc).__name__,
                exc,
                extra={"object_id": job.write.object_id, "kind": job.write.kind.value},
            )
            report.failed += 1

    async def _finish(
        self,
        job: _Job,
        outcome: str,
        report: Report,
        *,
        error: str = "",
        request_id: str = "",
        note: str = "",
        exc_info: BaseException | None = None,
    ) -> None:
        now = self.clock()
        write, attempts = job.current, job.attempts
        if job.row is None:  # unreachable: _apply_one begins the row before anything else
            raise RuntimeError("a write finished before its audit row was begun")
        await self.store.finish_write(
            job.row,
            outcome=outcome,
            now=now,
            request_id=request_id,
            error=error,
            attempts=attempts,
            note=note,
            before=write.before,
            after=write.after,
        )
        self.observer.observe_write(write.kind.value, outcome)
        extra = {
            "object_id": write.object_id,
            "request_id": request_id,
            "kind": write.kind.value,
            "group": write.group,
            "field": write.field,
            "outcome": outcome,
            "attempts": attempts,
        }
        if note:
            extra["note"] = note
        if outcome == state.APPLIED:
            report.applied += 1
            report.confirmed += note == state.CONFIRMED_BY_REREAD
            self._backoff.pop(write.key, None)
            log.info(
                "Wrote %s of %s %s: %s -> %s (%s)%s.",
                write.field,
                write.kind.value,
                write.object_name,
                _show(write.before),
                _show(write.after),
                write.reason,
                f"; {note}" if note else "",
                extra=extra,
            )
        elif outcome == state.SUPERSEDED:
            report.superseded += 1
            self._backoff.pop(write.key, None)
            log.info(
                "Skipped %s of %s %s: %s.",
                write.field,
                write.kind.value,
                write.object_name,
                error,
                extra=extra,
            )
        else:
            report.failed += 1
            back = self._backoff.get(write.key)
            failures = 1 if back is None else back.failures + 1
            delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (failures - 1))
            self._backoff[write.key] = _Backoff(failures, now + delay)
            log.warning(
                "Could not write %s of %s %s (%s); it backs off %.0f s, the rest of the plan"
                " goes on: %s",
                write.field,
                write.kind.value,
                write.object_name,
                outcome,
                delay,
                error,
                extra=extra,
                exc_info=exc_info,
            )

    def _permit_again(self, first: ports.Permit) -> ports.Permit:
        """A permit for a further attempt: under the same epoch as the first, or none."""
        permit = self.fence.permit()
        if permit.epoch != first.epoch:
            raise errors.NotLeader(
                f"the lease epoch changed from {first.epoch} to {permit.epoch} during the write"
            )
        return permit

    async def _send_within(
        self,
        permit: ports.Permit,
        write: model.Write,
        objects: Objects,
        fresh: model.Route | model.TrunkBase | model.Campaign | None,
    ) -> str:
        if permit.deadline is None:
            return await self._send(write, objects, fresh)
        async with asyncio.timeout(None) as bound:
            follow = _FollowLease(self.fence, permit, bound)
            try:
                return await self._send(write, objects, fresh)
            finally:
                follow.stop()

    async def _send(
        self,
        write: model.Write,
        objects: Objects,
        fresh: model.Route | model.TrunkBase | model.Campaign | None,
    ) -> str:
        prio = int(write.priority)
        if write.kind is model.WriteKind.ROUTE_ORDER:
            route = fresh if isinstance(fresh, model.Route) else objects.routes[write.object_id]
            if not isinstance(write.after, tuple):
                raise TypeError("a route write holds the trunk base ids in order")
            body = wire.render_route_put(route, write.after, objects.names)
            return (await self.api.put_route(route, body, priority=prio)).request_id
        if write.kind is model.WriteKind.TRUNK_CALL_RATE:
            tb = (
                fresh
                if isinstance(fresh, model.TrunkBase)
                else objects.trunk_bases[write.object_id]
            )
            prop = write.field.removeprefix("properties.")
            body = wire.render_trunk_base_put(tb, {prop: write.after})
            return (await self.api.put_trunk_base(tb, body, priority=prio)).request_id
        if not isinstance(write.after, int):
            raise TypeError("a campaign write holds a line count")
        result = await self.api.patch_campaign_lines(write.object_id, write.after, priority=prio)
        return result.request_id

    async def _read(self, write: model.Write) -> model.Route | model.TrunkBase | model.Campaign:
        prio = int(write.priority)
        if write.kind is model.WriteKind.ROUTE_ORDER:
            if write.site_id is None:
                raise TypeError("a route write carries its site")
            return await self.api.get_route(write.site_id, write.object_id, priority=prio)
        if write.kind is model.WriteKind.TRUNK_CALL_RATE:
            return await self.api.get_trunk_base(write.object_id, priority=prio)
        return await self.api.get_campaign(write.object_id, priority=prio)


class _FollowLease:
    """Ends a write (its ``bound`` expires: ``TimeoutError``) when the lease it was permitted
    under ends. When the permit's deadline arrives the fence says where that lease's deadline
    stands now: renewed under the same epoch, the write goes on to the new deadline (and so on);
    not renewed, stepped down or another epoch, it ends at once. A write that waits for the
    limiter or the shared budget across renewals is thus not abandoned while its lease lasts,
    and never outlives it: the check runs at each deadline, never after it.

    The event loop's clock is time.monotonic, the clock the fence's deadlines are in.
    """

    def __init__(self, fence: ports.Fence, permit: ports.Permit, bound: asyncio.Timeout) -> None:
        if permit.deadline is None:
            raise ValueError("only a permit with a deadline has a lease to follow")
        self._fence = fence
        self._permit = permit
        self._bound = bound
        self._until = permit.deadline
        self._loop = asyncio.get_running_loop()
        self._check = self._loop.call_at(self._until, self._deadline_arrived)

    def _deadline_arrived(self) -> None:
        now = self._loop.time()
        try:
            until = self._fence.deadline_of(self._permit)
        except Exception:  # a fence that cannot say ends the write: safety before liveness
            log.exception("The fence could not say whether the lease goes on; the write ends.")
            until = None
        if until is None or until <= max(self._until, now):
            self._bound.reschedule(now)  # expires on the next turn of the loop
            return
        self._until = until
        self._check = self._loop.call_at(until, self._deadline_arrived)

    def stop(self) -> None:
        self._check.cancel()


def _answer_lost(exc: errors.ApiError) -> bool:
    """A write that failed this way may have landed: no answer arrived (a timeout, a dropped
    connection), or a gateway gave up waiting for the server that had it (504)."""
    if isinstance(exc, errors.TimeoutError_ | errors.ConnectionFailed):
        return True
    return isinstance(exc, errors.TransientError) and exc.status == 504


def _show(value: model.WriteValue) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return "none" if value is None else str(value)
