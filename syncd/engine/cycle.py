"""One reconcile, and the work the daemon schedules: health poll, schedule refresh, reconcile.

``Engine`` ties the reader, the pure planner and the applier together and keeps what must
persist between cycles: the failover state (saved to the state file at every change, so a restart
does not flap routes) and the schedule snapshot. It refuses to plan before it has both a health
observation and a schedule snapshot: planning on an empty snapshot would cut every line count.

A notification is a hint (``engine.push``): ``on_trunk_event`` re-reads that one trunk and
folds it into the same failover state as a poll; ``on_schedule_event`` refreshes that one
business unit. Either answers "reconcile now" like the timers do, so every change goes through
the same planner. A reconcile that follows a failover reads at failover priority, and one that is
writing stops starting lower writes the moment another trunk fails (the follow-up reconcile
plans the failover first).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import orjson

from syncd import config as config_mod
from syncd import errors
from syncd.core import health, model, planner
from syncd.engine import applier as applier_mod
from syncd.engine import ports, reader, state
from syncd.genesys import api as api_mod

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one reconcile did (for ``once``, the demo and tests)."""

    plan: model.Plan
    report: applier_mod.Report | None  # None for a dry run


class HintHandler(Protocol):
    """``Engine.on_trunk_event`` / ``on_schedule_event``: re-read what a notification named."""

    def __call__(self, ident: str, /, *, received_at: float | None = None) -> Awaitable[bool]: ...


class Engine:
    """The daemon's work (``daemon.Work``), also used directly by ``syncd once`` and the demo."""

    def __init__(
        self,
        cfg: config_mod.Config,
        *,
        api: api_mod.GenesysApiPort,
        store: state.StateStore,
        observer: ports.Observer,
        clock: Callable[[], float] = time.time,
        on_config: Callable[[config_mod.Config], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.store = store
        self.observer = observer
        self.clock = clock
        self.reader = reader.Reader(api, cfg)
        self.applier = applier_mod.Applier(api, store, observer, clock=clock)
        self.health: dict[str, model.TrunkHealth] = {}
        self._statuses: dict[str, model.TrunkStatus] = {}  # trunk id → last observation
        self._health_lock = asyncio.Lock()  # observations fold in the order they were read
        self._failover_pending = False  # a trunk failed since the last reconcile planned
        self.health_source = ""  # "push" | "poll": what saw the last failover first
        self._pushed_at: float | None = None  # the hint behind a change not yet reconciled
        self.on_statuses: Callable[[], None] | None = None  # the listed trunks may differ
        self._health_seen = False
        self._schedules_seen = False
        self._names: dict[str, str] = {}
        self._trunk_bases: dict[str, model.TrunkBase] = {}
        self.last: Outcome | None = None
        self.reconciles = 0
        self._on_config = on_config

    @property
    def names(self) -> dict[str, str]:
        """Trunk base id → name, as read (for people: logs, plan tables, the demo)."""
        return dict(self._names)

    # -- daemon.Work ---------------------------------------------------------------------

    async def start(self, *, recover: bool = True) -> None:
        """``recover=False`` (``syncd once --dry-run``) leaves the audit trail alone: a dry run
        beside a running daemon must not mark that daemon's in-flight writes 'interrupted'."""
        now = self.clock()
        interrupted = self.store.mark_interrupted(now=now) if recover else 0
        if interrupted:
            log.warning(
                "%d write(s) were in flight when the daemon last stopped; they are marked"
                " 'interrupted' in the audit trail and the next reconcile re-checks them.",
                interrupted,
            )
        self.health = self.store.load_health()
        try:
            await self._load_trunk_bases()
            await self.poll_health()
            await self.refresh_schedules()
        except errors.AuthError:
            raise  # refused credentials do not heal by waiting: say so and stop
        except errors.ApiError as exc:
            # Keep running: the timers retry; reconcile waits until both inputs exist.
            log.warning("The first reads failed; retrying on the next timers: %s", exc)

    async def poll_health(self) -> bool:
        async with self._health_lock:
            statuses = await self.reader.trunk_statuses()
            self._statuses = {s.trunk_id: s for s in statuses}
            changed = self._fold(source="poll")
        if self.on_statuses is not None:
            self.on_statuses()
        return changed

    async def on_trunk_event(self, trunk_id: str, *, received_at: float | None = None) -> bool:
        """A notification named this trunk: re-read it alone and fold it in like a poll.
        True when a trunk's failover state changed (reconcile now)."""
        if trunk_id not in self._statuses:
            return False  # not a trunk of a managed trunk base (or not listed yet)
        async with self._health_lock:
            status = await self.reader.trunk_status(trunk_id)
            self._statuses[trunk_id] = status
            changed = self._fold(source="push")
        return self._pushed(changed, received_at)

    async def on_schedule_event(
        self, business_unit_id: str, *, received_at: float | None = None
    ) -> bool:
        """A notification said this business unit's schedules changed: refresh it alone.
        True when the staffing input changed (reconcile now)."""
        if business_unit_id not in self.cfg.schedule.business_units:
            return False
        changed = await self.refresh_schedules(only=business_unit_id)
        return self._pushed(changed, received_at)

    def _pushed(self, changed: bool, received_at: float | None) -> bool:
        if changed and self._pushed_at is None:
            self._pushed_at = received_at if received_at is not None else time.monotonic()
        return changed

    def trunk_ids(self) -> tuple[str, ...]:
        """The trunk instances of the managed trunk bases (their notification topics)."""
        managed = {t.trunk_base_id for g in self.cfg.groups for t in g.trunks}
        return tuple(sorted(t for t, s in self._statuses.items() if s.trunk_base_id in managed))

    def _fold(self, *, source: str) -> bool:
        statuses = tuple(self._statuses.values())
        now = int(self.clock())
        ids = [t.trunk_base_id for g in self.cfg.groups for t in g.trunks]
        new = health.observe_all(
            self.health, statuses, ids, now=now, hold_down_s=self.cfg.health.hold_down_s
        )
        changed = [tb for tb in ids if _state(new.get(tb)) != _state(self.health.get(tb))]
        group_of = {t.trunk_base_id: g.name for g in self.cfg.groups for t in g.trunks}
        for tb in changed:
            after = new[tb]
            name = self._names.get(tb, tb)
            if after.state is model.HealthState.FAILED:
                self.observer.observe_failover(group_of[tb], self.cfg.trunk_labels()[tb])
                self._failover_pending = True
                self.health_source = source
                log.warning(
                    "Trunk base %s failed its health check (seen by %s): failing over now.",
                    name,
                    source,
                    extra={"object_id": tb, "group": group_of[tb], "source": source},
                )
            else:
                log.info(
                    "Trunk base %s has been healthy for the hold-down of %d s: it recovers.",
                    name,
                    self.cfg.health.hold_down_s,
                    extra={"object_id": tb, "group": group_of[tb]},
                )
        if new != self.health:
            self.store.save_health(new.values())
        self.health = new
        self._health_seen = True
        return bool(changed)

    async def refresh_schedules(self, *, only: str | None = None) -> bool:
        wall = self.clock()
        changed = await self.reader.refresh_schedules(now=int(wall), wall_now=wall, only=only)
        for bu, fp in self.reader.fingerprints().items():
            self.store.set_fingerprint(f"schedule:{bu}", fp, now=wall)
        self._schedules_seen = True
        return changed

    async def reconcile(self, *, should_stop: Callable[[], bool]) -> bool:
        """True when work is left undone (the daemon retries soon, see daemon._retry_later)."""
        outcome = await self.run_once(dry_run=False, should_stop=should_stop)
        if outcome is None:  # inputs missing: not planned at all
            return True
        report = outcome.report
        return report is not None and (report.failed > 0 or report.skipped_backoff > 0)

    def apply_config(self, cfg: config_mod.Config) -> None:
        pending = config_mod.restart_only_changes(self.cfg, cfg)
        if pending:
            log.warning(
                "The reloaded configuration changes %s: those take effect at the next restart;"
                " groups, schedule and health settings apply now.",
                ", ".join(pending),
                extra={"restart_only": pending},
            )
        self.cfg = cfg
        self.reader.apply_config(cfg)
        if self._on_config is not None:
            self._on_config(cfg)

    def observe_reload(self, *, ok: bool, now: float) -> None:
        self.observer.observe_reload(ok, now)

    def status_line(self) -> str:
        if self.last is None:
            return "waiting for the first reconcile"
        d = self.last.plan.decisions
        lines = ", ".join(
            f"{x.group}: {x.staffed_fte:.1f} FTE → {x.desired_lines} lines" for x in d
        )
        failed = sum(1 for h in self.health.values() if h.state is model.HealthState.FAILED)
        return f"{lines}; {failed} trunk(s) in failover; {self.reconciles} reconcile(s)"

    async def close(self) -> None:
        """Nothing of its own to close: ``runner.open_engine`` owns the transport and store."""

    # -- the reconcile -------------------------------------------------------------------

    async def _load_trunk_bases(self) -> None:
        tbs = await self.reader.trunk_bases()
        self._trunk_bases = {tb.id: tb for tb in tbs}
        self._names.update({tb.id: tb.name for tb in tbs})

    async def run_once(
        self, *, dry_run: bool, should_stop: Callable[[], bool] = lambda: False
    ) -> Outcome | None:
        """Read, plan and (unless ``dry_run``) apply; None when inputs are missing."""
        started = time.monotonic()
        wall = self.clock()
        if not (self._health_seen and self._schedules_seen):
            log.warning(
                "Not planning yet: %s.",
                "no health observation" if not self._health_seen else "no schedule snapshot",
            )
            return None
        # A failover since the last plan: these reads go before lower work waiting for the
        # token, and a newer failover stops this reconcile from starting lower writes.
        failover = self._failover_pending
        if not dry_run:
            self._failover_pending = False
        prio = model.Priority.FAILOVER if failover else model.Priority.STAFFING
        stop = should_stop
        if not dry_run:

            def stop() -> bool:
                return should_stop() or self._failover_pending

        try:
            routes = await self.reader.routes(priority=prio)
            campaigns = await self.reader.campaigns(priority=prio)
            if not self._trunk_bases or any(g.call_rate for g in self.cfg.groups):
                await self._load_trunk_bases()
        except errors.ApiError:
            self._failover_pending = self._failover_pending or failover
            self.observer.observe_reconcile(time.monotonic() - started, False, wall)
            raise
        for route in routes:
            self._names.update(_route_names(route))
        snapshot = self.reader.snapshot()
        settings = self.cfg.planner_settings()
        plan = planner.plan(
            settings=settings,
            schedules=snapshot.schedules,
            activity_codes=snapshot.activity_codes,
            health_states=self.health,
            trunk_bases=self._trunk_bases.values(),
            routes=routes,
            campaigns=campaigns,
            now=int(wall),
        )
        self._observe_plan(plan, snapshot, wall)
        report: applier_mod.Report | None = None
        if not dry_run and plan.writes:
            objects = applier_mod.Objects(
                routes={r.id: r for r in routes},
                campaigns={c.id: c for c in campaigns},
                trunk_bases=self._trunk_bases,
                names=self._names,
            )
            report = await self.applier.apply(plan, objects, settings=settings, should_stop=stop)
            if report.applied and any(
                w.kind is model.WriteKind.TRUNK_CALL_RATE for w in plan.writes
            ):
                await self._load_trunk_bases()  # versions moved on
        ok = report is None or report.failed == 0
        self.observer.observe_reconcile(time.monotonic() - started, ok, wall)
        if not dry_run and self._pushed_at is not None and ok:
            # Event → write: from the notification to the end of the writes it led to.
            self.observer.observe_push_reaction(time.monotonic() - self._pushed_at)
            self._pushed_at = None
        outcome = Outcome(plan=plan, report=report)
        if not dry_run:
            self.last = outcome
            self.reconciles += 1
        return outcome

    def _observe_plan(
        self, plan: model.Plan, snapshot: reader.ScheduleSnapshot, wall: float
    ) -> None:
        counts: dict[str, int] = {k.value: 0 for k in model.WriteKind}
        for w in plan.writes:
            counts[w.kind.value] += 1
        self.observer.set_plan(counts)
        labels = self.cfg.trunk_labels()
        for d in plan.decisions:
            self.observer.observe_group(
                d.group,
                d.staffed_fte,
                d.desired_lines,
                {labels[tb]: n for tb, n in d.allocation},
                d.shortfall,
                {labels[tb]: ok for tb, ok in d.healthy},
            )
            log.info(
                "Group %s: %.2f staffed FTE, %d line(s) demanded, allocated %s, shortfall %d.",
                d.group,
                d.staffed_fte,
                d.desired_lines,
                ", ".join(f"{self._names.get(tb, tb)}={n}" for tb, n in d.allocation) or "none",
                d.shortfall,
                extra={"group": d.group, "shortfall": d.shortfall},
            )
            if d.shortfall:
                log.warning(
                    "Group %s is short of %d line(s): healthy trunks cannot carry the demand.",
                    d.group,
                    d.shortfall,
                    extra={"group": d.group},
                )
        for bu, at in snapshot.fetched_at.items():
            if at:
                self.observer.set_snapshot_age(bu, max(0.0, wall - at))


def _state(h: model.TrunkHealth | None) -> model.HealthState:
    return model.HealthState.HEALTHY if h is None else h.state


def _route_names(route: model.Route) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in orjson.loads(route.raw).get("externalTrunkBases") or ():
        if isinstance(entry, dict) and "id" in entry and "name" in entry:
            out[str(entry["id"])] = str(entry["name"])
    return out
