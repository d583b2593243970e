"""One reconcile, and the work the daemon schedules: health poll, schedule refresh, reconcile.

``Engine`` ties the reader, the pure planner and the applier together and keeps what must
persist between cycles: the failover state (saved to the state file at every change, so a restart
does not flap routes) and the schedule snapshot. It refuses to plan before it has a health
observation. Schedules never gate failover: a group whose staffing data are missing, stale or
misconfigured keeps its line counts (held) while its routes still follow health; planning line
counts on an empty or partial snapshot would cut them. Nor do the other reads of a reconcile:
only the route listings are needed for a route write; a campaign or trunk base listing that
fails holds what it feeds (line counts, call rates) for that pass, and a site whose route
listing fails is left out while the others are planned.

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
from syncd.engine import ports, reader, state, status
from syncd.genesys import api as api_mod

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one reconcile did (for ``once``, the demo and tests)."""

    plan: model.Plan
    report: applier_mod.Report | None  # None for a dry run
    # Inputs this pass could not read (what → why): what they feed was held, not planned.
    unread: tuple[tuple[str, str], ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _LineInputs:
    """What line counts and call rates are planned on, as far as this pass could read it."""

    campaigns: tuple[model.Campaign, ...] | None  # None: the listing could not be read
    trunk_bases: dict[str, model.TrunkBase]  # empty: no call-rate write this pass
    unread: dict[str, str]  # what → why


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
        store: state.AsyncStateStore,
        observer: ports.Observer,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_config: Callable[[config_mod.Config], None] | None = None,
        fence: ports.Fence | None = None,
        prepare: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """``prepare``: awaited first at ``start`` (the runner reads the org's rate limit)."""
        self._prepare = prepare
        self.cfg = cfg
        self.fence: ports.Fence = fence or ports.NoFence()
        self.api = api
        self.store = store
        self.observer = observer
        self.clock = clock
        self.reader = reader.Reader(api, cfg)
        self.applier = applier_mod.Applier(api, store, observer, clock=clock, fence=self.fence)
        self.health: dict[str, model.TrunkHealth] = {}
        self._statuses: dict[str, model.TrunkStatus] = {}  # trunk id → last observation
        self._health_lock = asyncio.Lock()  # observations fold in the order they were read
        self._failover_pending = False  # a trunk failed since the last reconcile planned
        self.health_source = ""  # "push" | "poll": what saw the last failover first
        self._pushed_at: float | None = None  # the hint behind a change not yet reconciled
        self.on_statuses: Callable[[], None] | None = None  # the listed trunks may differ
        # Called when ``recovery_due_in`` may have changed: after every fold of health (a poll
        # or a pushed re-read) and every configuration swap (hold_down_s); the daemon's.
        self.on_health_due: Callable[[], None] | None = None
        self._health_seen = False
        self._names: dict[str, str] = {}
        self._trunk_bases: dict[str, model.TrunkBase] = {}
        self.last: Outcome | None = None
        self.reconciles = 0
        self._on_config = on_config
        # Health time: the wall clock at start, then moved only by the monotonic clock, so a
        # wall-clock step (NTP, a VM resume) neither cuts nor stretches a failover hold-down.
        self._monotonic = monotonic
        self._wall0 = clock()
        self._mono0 = monotonic()
        self._unknown_polls: dict[str, int] = {}
        # Suspicious drops waiting for a re-read of their inputs: group → the total planned.
        self._pending_drops: dict[str, int] = {}
        self._problems_reported: frozenset[str] = frozenset()
        # A reload arriving during a reconcile waits for its end (apply_config).
        self._in_pass = False
        self._deferred_cfg: config_mod.Config | None = None
        # The capacity forecast and the status page's data (engine/status.py).
        self.board = status.Board(observer=observer, store=store.sync, clock=clock)

    @property
    def names(self) -> dict[str, str]:
        """Trunk base id → name, as read (for people: logs, plan tables, the demo)."""
        return dict(self._names)

    # -- daemon.Work ---------------------------------------------------------------------

    async def start(self, *, recover: bool = True) -> None:
        """``recover=False`` (``syncd once --dry-run``) leaves the audit trail alone: a dry run
        beside a running daemon must not mark that daemon's in-flight writes 'interrupted'. A
        read-only state file (a reader beside the daemon) is never recovered."""
        recover = recover and not self.store.read_only
        now = self.clock()
        interrupted = await self.store.mark_interrupted(now=now) if recover else 0
        if interrupted:
            log.warning(
                "%d write(s) were in flight when the daemon last stopped; they are marked"
                " 'interrupted' in the audit trail and the next reconcile re-checks them.",
                interrupted,
            )
        if recover:  # a writer: a dry run beside the daemon leaves its trail alone
            await self._prune_audit(now)
        self.health = await self.store.load_health()
        if self._prepare is not None:
            await self._prepare()  # before the first reads, so that they are paced by it
        try:
            await self._load_trunk_bases()
            await self.poll_health()
        except errors.AuthError:
            raise  # refused credentials do not heal by waiting: say so and stop
        except errors.ApiError as exc:
            # Keep running: the timers retry; reconcile waits for a health observation.
            log.warning("The first reads failed; retrying on the next timers: %s", exc)
        except Exception as exc:  # contained like a failed poll: logged, counted, retried
            self.observer.observe_unexpected_error("health_poll")
            log.error(
                "Unexpected %s in the first health read; the timers retry it.",
                type(exc).__name__,
                exc_info=exc,
            )
        # Schedules are read per business unit; one that cannot be read holds its groups'
        # line counts (reader.staffing_gaps) and never keeps failover from working.
        await self.refresh_schedules()

    def waiting_for(self) -> str | None:
        """What the daemon still waits for before it is ready (None: ready). Ready means the
        first health read succeeded: from then on a failed trunk leaves its routes."""
        return None if self._health_seen else "the first trunk health read"

    def failover_pending(self) -> bool:
        """A trunk failed since the last reconcile that read what it needs to plan for it."""
        return self._failover_pending

    @property
    def health_known(self) -> bool:
        return self._health_seen

    def _health_clock(self) -> float:
        return self._wall0 + (self._monotonic() - self._mono0)

    def _health_now(self) -> int:
        return int(self._health_clock())

    def recovery_due_in(self) -> float | None:
        """Seconds until a failed trunk base's hold-down ends (<= 0: it has ended), in the
        health clock; None when none is recovering. Recovery is judged only when health is
        observed, so the daemon observes it then: a trunk pushed healthy is not pushed again,
        and while the channel is up the next poll may be ``health.resync_s`` away.

        Only trunk bases the last observation listed count: one missing from the listing is
        not observed by a poll either (its state stands), so polling at its hold-down end
        would change nothing, and once that end is past, would poll again and again."""
        cfg = self.cfg
        managed = {t.trunk_base_id for g in cfg.groups for t in g.trunks}
        listed = {s.trunk_base_id for s in self._statuses.values()} & managed
        at = health.recovery_at(
            (h for tb, h in self.health.items() if tb in listed),
            hold_down_s=cfg.health.hold_down_s,
        )
        return None if at is None else at - self._health_clock()

    async def poll_health(self) -> bool:
        cfg = self.cfg  # one configuration for the whole poll, even if a reload lands meanwhile
        ids = [t.trunk_base_id for g in cfg.groups for t in g.trunks]
        async with self._health_lock:
            try:
                statuses = await self.reader.trunk_statuses()
            except errors.ApiError:
                self._observe_unknown(tuple(ids), cfg)  # no listing: every trunk is unknown
                raise
            self._statuses = {s.trunk_id: s for s in statuses}
            now = self._health_now()
            self._observe_unknown(health.unobserved(statuses, ids), cfg)
            changed = await self._fold(now, source="poll", cfg=cfg)
            self.board.note_poll("health", now, cfg.health.poll_s)
        if self.on_statuses is not None:
            self.on_statuses()
        return changed

    async def on_trunk_event(self, trunk_id: str, *, received_at: float | None = None) -> bool:
        """A notification named this trunk: re-read it alone and fold it in like a poll.
        True when a trunk's failover state changed (reconcile now)."""
        if trunk_id not in self._statuses:
            return False  # not a trunk of a managed trunk base (or not listed yet)
        cfg = self.cfg  # as for a poll: one configuration throughout
        async with self._health_lock:
            status = await self.reader.trunk_status(trunk_id)
            self._statuses[trunk_id] = status
            changed = await self._fold(self._health_now(), source="push", cfg=cfg)
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

    async def _fold(self, now: int, *, source: str, cfg: config_mod.Config) -> bool:
        """Fold the latest observation of every trunk into the failover state (``cfg``: the
        configuration the caller read with)."""
        statuses = tuple(self._statuses.values())
        ids = [t.trunk_base_id for g in cfg.groups for t in g.trunks]
        new = health.observe_all(
            self.health, statuses, ids, now=now, hold_down_s=cfg.health.hold_down_s
        )
        changed = [tb for tb in ids if _state(new.get(tb)) != _state(self.health.get(tb))]
        group_of = {t.trunk_base_id: g.name for g in cfg.groups for t in g.trunks}
        for tb in changed:
            after = new[tb]
            name = self._names.get(tb, tb)
            if after.state is model.HealthState.FAILED:
                self.observer.observe_failover(group_of[tb], cfg.trunk_labels()[tb])
                self.board.note_failover(group_of[tb], tb, now)
                self._failover_pending = True
                self.health_source = source
                log.warning(
                    "Trunk base %s failed its health check (seen by %s): failing over now.",
                    name,
                    source,
                    extra={"object_id": tb, "group": group_of[tb], "source": source},
                )
            else:
                self.board.note_recovery(tb, now)
                log.info(
                    "Trunk base %s has been healthy for the hold-down of %d s: it recovers.",
                    name,
                    cfg.health.hold_down_s,
                    extra={"object_id": tb, "group": group_of[tb]},
                )
        if new != self.health and not self.store.read_only:
            # A reader (``syncd plan``, a dry run) keeps what it learned in memory: the state
            # file's failover state is the daemon's.
            await self.store.save_health(new.values())
        self.health = new
        self._health_seen = True
        self.board.note_health(new)
        if changed:
            self.board.mark_stale()
        if self.on_health_due is not None:
            self.on_health_due()
        return bool(changed)

    def _observe_unknown(self, unlisted: tuple[str, ...], cfg: config_mod.Config) -> None:
        """Count the polls in a row that did not list each trunk; warn once it lasts."""
        group_of = {t.trunk_base_id: g.name for g in cfg.groups for t in g.trunks}
        labels = cfg.trunk_labels()
        absent = self.reader.absent_trunk_bases
        for tb, group in group_of.items():
            polls = self._unknown_polls.get(tb, 0) + 1 if tb in unlisted else 0
            self._unknown_polls[tb] = polls
            self.observer.set_health_unknown(group, labels[tb], polls)
            if polls == cfg.safety.unknown_health_polls and tb not in absent:
                log.warning(
                    "Trunk base %s has not been in the trunk listing for %d polls: its health"
                    " is unknown (not failed; it is not failed over for that).",
                    self._names.get(tb, tb),
                    polls,
                    extra={"object_id": tb, "group": group},
                )

    async def refresh_schedules(self, *, only: str | None = None) -> bool:
        """True when the staffing input changed: new schedules, or a group's line counts
        became held or free (the schedules went stale or fresh again). ``only``: that one
        business unit (a notification named it)."""
        wall = self.clock()
        held_before = set(self._hold_reasons(self.cfg))
        changed = await self.reader.refresh_schedules(now=int(wall), wall_now=wall, only=only)
        if not self.store.read_only:
            for bu, fp in self.reader.fingerprints().items():
                await self.store.set_fingerprint(f"schedule:{bu}", fp, now=wall)
        self._observe_staffing_age(wall)
        self.board.note_poll("schedules", wall, self.cfg.schedule.refresh_s)
        if changed:
            self.board.mark_stale()
        return changed or set(self._hold_reasons(self.cfg)) != held_before

    def _observe_staffing_age(self, wall: float) -> None:
        read_at = self.reader.staffing_read_at()
        self.observer.set_staffing_age(wall - (self._wall0 if read_at is None else read_at))

    def problems(self) -> list[str]:
        """Configuration problems found against the org (unknown ids), for people and scripts."""
        return [msg for _, msg in sorted(self.reader.problems.items())]

    async def reconcile(self, *, should_stop: Callable[[], bool]) -> bool:
        """True when work is left undone (the daemon retries soon, see daemon._retry_later):
        inputs missing, a write failed or backs off, or a held drop waits for its re-read.

        A follower (another replica holds the leader lease) does not reconcile: it keeps its
        health and schedules fresh and reconciles the moment it is elected."""
        if not self.fence.leading():
            log.info(
                "Not reconciling: this replica does not hold the leader lease (another replica"
                " leads, or Redis cannot be reached); it keeps reading."
            )
            return False
        await self._prune_audit(self.clock())
        outcome = await self.run_once(dry_run=False, should_stop=should_stop)
        if outcome is None:  # inputs missing: not planned at all
            return True
        report = outcome.report
        failed = report is not None and (report.failed > 0 or report.skipped_backoff > 0)
        return failed or bool(outcome.plan.failures) or self.drops_pending or bool(outcome.unread)

    def apply_config(self, cfg: config_mod.Config) -> None:
        """Swap the configuration, between two reconciles: a reload that arrives while one
        runs takes effect when it ends (the pass plans, observes and writes on one
        configuration, whatever the file says meanwhile)."""
        if self._in_pass:
            self._deferred_cfg = cfg
            log.info("The reloaded configuration takes effect when the running reconcile ends.")
            return
        self._swap_config(cfg)

    def _swap_config(self, cfg: config_mod.Config) -> None:
        pending = config_mod.restart_only_changes(self.cfg, cfg)
        if pending:
            log.warning(
                "The reloaded configuration changes %s: those take effect at the next restart;"
                " groups, schedule and health settings apply now.",
                ", ".join(pending),
                extra={"restart_only": pending},
            )
        # One swap: the configuration and everything derived from it (the reader's view, the
        # metrics' label sets) change together, between two reconciles; the schedule snapshot
        # is kept, so a reload that changes nothing the plan reads plans exactly as before.
        self.cfg = cfg
        self.reader.apply_config(cfg)
        self.board.mark_stale()
        if self._on_config is not None:
            self._on_config(cfg)
        if self.on_health_due is not None:
            self.on_health_due()  # hold_down_s may have changed: so has a recovery's instant
        # A held drop stays pending: the re-read confirms it only if the new configuration
        # plans the very same total, which is then a confirmation like any other.
        self.reader.report_problems()  # an unfixed typo is said again at every reload

    def observe_reload(self, *, ok: bool, now: float) -> None:
        self.observer.observe_reload(ok, now)

    def observe_unexpected_error(self, where: str) -> None:
        self.observer.observe_unexpected_error(where)

    def status_line(self) -> str:
        if self.last is None:
            return "waiting for the first reconcile"
        d = self.last.plan.decisions
        lines = ", ".join(
            f"{x.group}: {x.staffed_fte:.1f} FTE → {x.desired_lines} lines" for x in d
        )
        failed = sum(1 for h in self.health.values() if h.state is model.HealthState.FAILED)
        held = [x.group for x in d if x.held]
        holding = f"; line counts held: {', '.join(held)}" if held else ""
        return f"{lines}; {failed} trunk(s) in failover{holding}; {self.reconciles} reconcile(s)"

    async def close(self) -> None:
        """Nothing of its own to close: ``runner.open_engine`` owns the transport and store."""

    async def _prune_audit(self, now: float) -> None:
        """The audit trail keeps ``audit_retention_days``: pruned at start, then daily."""
        days = self.cfg.audit_retention_days
        pruned = await self.store.prune_if_due(now=now, retention_days=days)
        if pruned:
            log.info("Pruned %d audit trail row(s) older than %d days.", pruned, days)

    # -- the reconcile -------------------------------------------------------------------

    async def _load_trunk_bases(self, *, priority: int = model.Priority.STAFFING) -> None:
        tbs = await self.reader.trunk_bases(priority=priority)
        self._trunk_bases = {tb.id: tb for tb in tbs}
        self._names.update({tb.id: tb.name for tb in tbs})

    async def run_once(
        self, *, dry_run: bool, should_stop: Callable[[], bool] = lambda: False
    ) -> Outcome | None:
        """Read, plan and (unless ``dry_run``) apply; None when no health is known yet.

        Failover never waits for schedules: a group whose staffing data are missing, stale or
        misconfigured has its line counts held and its routes still follow health. A reload
        arriving meanwhile is applied when the pass ends (``apply_config``)."""
        self._in_pass = True
        try:
            return await self._pass(dry_run=dry_run, should_stop=should_stop)
        finally:
            self._in_pass = False
            deferred, self._deferred_cfg = self._deferred_cfg, None
            if deferred is not None:
                self._swap_config(deferred)

    async def _pass(self, *, dry_run: bool, should_stop: Callable[[], bool]) -> Outcome | None:
        started = time.monotonic()
        wall = self.clock()
        cfg = self.cfg  # one snapshot for the whole pass, even if a reload lands meanwhile
        if not self._health_seen:
            log.warning("Not planning yet: no trunk health has been read.")
            return None
        confirm = dict(self._pending_drops)
        if confirm:
            # A held drop is written only if a fresh read of its inputs agrees.
            self.reader.invalidate()
            await self.refresh_schedules()
        # A failover since the last plan: these reads go before lower work waiting for the
        # token, and a newer failover stops this reconcile from starting lower writes.
        failover = self._failover_pending
        if not dry_run:
            self._failover_pending = False
        prio = model.Priority.FAILOVER if failover else model.Priority.STAFFING

        def stop() -> bool:
            return should_stop() or (not dry_run and self._failover_pending)

        try:
            # The routes are all a failover needs besides health: without them nothing can be
            # written. A site whose listing fails is left out; the other sites are planned.
            routes, unread_sites = await self.reader.routes(priority=prio)
        except errors.ApiError:
            self._failover_pending = self._failover_pending or failover
            self.observer.observe_reconcile(time.monotonic() - started, False, wall)
            raise
        inputs = await self._read_line_inputs(cfg, prio, failover=failover)
        unread = {f"the outbound routes of site {s}": str(e) for s, e in unread_sites.items()}
        unread.update(inputs.unread)
        for route in routes:
            self._names.update(_route_names(route))
        snapshot = self.reader.snapshot()
        settings = cfg.planner_settings()
        plan = planner.plan(
            settings=settings,
            schedules=snapshot.schedules,
            activity_codes=snapshot.activity_codes,
            health_states=self.health,
            trunk_bases=inputs.trunk_bases.values(),
            routes=routes,
            campaigns=inputs.campaigns or (),
            now=int(wall),
            hold=self._holds(cfg, campaigns_unread=inputs.campaigns is None),
            absent_trunks=self.reader.absent_trunk_bases,
        )
        if unread:
            log.warning(
                "Not read in this reconcile: %s. What was read is planned (routes follow"
                " health); what the rest feeds is held, and the reconcile is tried again soon.",
                "; ".join(f"{what} ({why})" for what, why in sorted(unread.items())),
                extra={"unread": sorted(unread)},
            )
        plan = self._guard_drops(plan, cfg, confirm, dry_run=dry_run)
        self._report_failures(plan)
        self._observe_plan(plan, snapshot, wall, cfg)
        report: applier_mod.Report | None = None
        if not dry_run and plan.writes:
            # The audit trail names what it changed: syncd history has only the state file.
            await self.store.remember_names(self._names)
            objects = applier_mod.Objects(
                routes={r.id: r for r in routes},
                campaigns={c.id: c for c in inputs.campaigns or ()},
                trunk_bases=inputs.trunk_bases,
                names=self._names,
            )
            report = await self.applier.apply(plan, objects, settings=settings, should_stop=stop)
            if report.applied and any(
                w.kind is model.WriteKind.TRUNK_CALL_RATE for w in plan.writes
            ):
                try:
                    await self._load_trunk_bases()  # versions moved on
                except errors.ApiError as exc:
                    # The writes are done; a failed re-read only means the next pass reads
                    # them (an empty cache is read), not that this one failed as a whole.
                    self._trunk_bases = {}
                    unread["the trunk base listing"] = str(exc)
        if failover and not dry_run and (unread_sites or inputs.campaigns is None):
            # Not every write of the failover could be planned (a route of a site not read,
            # the campaign cut it may drive): it stays pending, so the daemon tries again at
            # once (daemon._retry_later) and the next pass reads at failover priority. Set
            # after the writes: pending, it would stop this pass's lower writes.
            self._failover_pending = True
        ok = (report is None or report.failed == 0) and not plan.failures and not unread
        self.observer.observe_reconcile(time.monotonic() - started, ok, wall)
        if not dry_run and self._pushed_at is not None and ok:
            # Event → write: from the notification to the end of the writes it led to.
            self.observer.observe_push_reaction(time.monotonic() - self._pushed_at)
            self._pushed_at = None
        outcome = Outcome(plan=plan, report=report, unread=tuple(sorted(unread.items())))
        if not dry_run:
            self.last = outcome
            self.reconciles += 1
            complete = _complete(report) and not plan.failures and not unread
            self.board.after_reconcile(plan, complete=complete, at=self.clock())
            await self._update_forecast(snapshot, int(self.clock()))
        return outcome

    @property
    def drops_pending(self) -> bool:
        """A suspicious drop waits for the re-read of its inputs (reconcile again soon)."""
        return bool(self._pending_drops)

    async def _read_line_inputs(
        self, cfg: config_mod.Config, prio: int, *, failover: bool
    ) -> _LineInputs:
        """The campaigns and the trunk bases: what line counts and call rates are planned on,
        not what a failover's route write needs. A listing that cannot be read holds what it
        feeds for this pass (never cut on doubt) instead of failing the whole reconcile. A
        pass that follows a failover does not read the trunk bases again when it has them
        (call rates are planned on those; each write's version check guards against a newer
        one), so only the routes and the campaigns (whose cut a failover may drive) come
        before its writes."""
        unread: dict[str, str] = {}
        campaigns: tuple[model.Campaign, ...] | None
        try:
            campaigns = await self.reader.campaigns(priority=prio)
        except errors.ApiError as exc:
            campaigns = None
            unread["the campaign listing"] = str(exc)
        trunk_bases = self._trunk_bases
        refresh = any(g.call_rate for g in cfg.groups) and not failover
        if not trunk_bases or refresh:
            try:
                await self._load_trunk_bases(priority=prio)
                trunk_bases = self._trunk_bases
            except errors.ApiError as exc:
                trunk_bases = {}  # no call-rate write on trunk bases this pass did not read
                unread["the trunk base listing"] = str(exc)
        return _LineInputs(campaigns=campaigns, trunk_bases=trunk_bases, unread=unread)

    def _holds(self, cfg: config_mod.Config, *, campaigns_unread: bool = False) -> dict[str, str]:
        """``_hold_reasons``, and with ``campaigns_unread`` every group with campaigns (what
        they dial now is unknown), said in the log and the metrics."""
        out = self._hold_reasons(cfg)
        if campaigns_unread:
            why = "the campaign listing could not be read"
            for g in cfg.groups:
                if g.campaigns:
                    held = out.get(g.name, "line counts held at their current values")
                    out[g.name] = f"{held}; {why}" if g.name in out else f"{held}: {why}"
        for g in cfg.groups:
            self.observer.set_group_held(g.name, g.name in out)
            if g.name in out:
                log.warning(
                    "Group %s: %s. Routes still follow trunk health.",
                    g.name,
                    out[g.name],
                    extra={"group": g.name},
                )
        self.observer.set_config_problems(len(self.reader.problems))
        return out

    def _hold_reasons(self, cfg: config_mod.Config) -> dict[str, str]:
        """Group → why its line counts are held: a configured trunk base the org lacks, or
        staffing data that are missing, stale or name a unit the org does not have."""
        gaps = self.reader.staffing_gaps()
        absent = self.reader.absent_trunk_bases
        out: dict[str, str] = {}
        for g in cfg.groups:
            by_reason: dict[str, list[str]] = {}
            for mu in g.management_units:
                if mu in gaps:
                    by_reason.setdefault(gaps[mu], []).append(mu)
            why = [f"management unit {', '.join(mus)}: {r}" for r, mus in by_reason.items()]
            why += [
                f"trunk base {t.metric_label} ({t.trunk_base_id}) does not exist in the org"
                for t in g.trunks
                if t.trunk_base_id in absent
            ]
            if why:
                out[g.name] = "line counts held at their current values: " + "; ".join(why)
        return out

    def _guard_drops(
        self, plan: model.Plan, cfg: config_mod.Config, confirm: dict[str, int], *, dry_run: bool
    ) -> model.Plan:
        guarded, confirmed = planner.guard_drops(
            plan, max_drop_share=cfg.safety.max_drop_share, confirmed=confirm
        )
        held = {h.group: h for h in guarded.held if h.writes}
        if dry_run:
            return guarded
        for g in confirmed:
            log.warning(
                "Group %s: the re-read confirmed the drop to %d line(s); writing it.",
                g,
                confirm[g],
                extra={"group": g},
            )
            self.observer.observe_drop(g, "confirmed")
        for g in set(confirm) - set(confirmed) - set(held):
            log.info("Group %s: the re-read withdrew the held drop.", g, extra={"group": g})
            self.observer.observe_drop(g, "withdrawn")
        for g, h in held.items():
            log.warning("Group %s: a plan %s.", g, h.reason, extra={"group": g})
            self.observer.observe_drop(g, "held")
        totals = {d.group: d.allocated_lines for d in guarded.decisions}
        self._pending_drops = {g: totals[g] for g in held}
        return guarded

    async def _update_forecast(self, snapshot: reader.ScheduleSnapshot, now: int) -> None:
        """After the reconcile's writes: recompute the forecast if its inputs changed (else
        only slide its 2 h and horizon summaries to ``now``)."""
        if not self.board.needs_recompute(now):
            self.board.slide(now)
            return
        await self.board.recompute(
            status.Inputs.of(self.cfg, self.reader.zones(), self._names),
            schedules=snapshot.schedules,
            activity_codes=snapshot.activity_codes,
            health_states=self.health,
            now=now,
        )

    def _report_failures(self, plan: model.Plan) -> None:
        """Each group or route whose planning raised: one log line with the traceback and a
        count; the reconcile reports work left undone, so the daemon retries it with backoff."""
        for f in plan.failures:
            self.observer.observe_unexpected_error(f"plan_{f.scope}")
            log.error(
                "The %s.",
                planner.describe_failure(f),
                exc_info=f.error,
                extra={"object_id": f.object_id, "group": f.group},
            )

    def _observe_plan(
        self,
        plan: model.Plan,
        snapshot: reader.ScheduleSnapshot,
        wall: float,
        cfg: config_mod.Config,
    ) -> None:
        counts: dict[str, int] = {k.value: 0 for k in model.WriteKind}
        for w in plan.writes:
            counts[w.kind.value] += 1
        self.observer.set_plan(counts)
        labels = cfg.trunk_labels()  # the pass's configuration, whatever a reload did since
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


def _complete(report: applier_mod.Report | None) -> bool:
    """Every planned write applied (None: there was nothing to write)."""
    return report is None or (
        report.failed == 0 and report.skipped_backoff == 0 and report.not_started == 0
    )


def _state(h: model.TrunkHealth | None) -> model.HealthState:
    return model.HealthState.HEALTHY if h is None else h.state


def _route_names(route: model.Route) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in orjson.loads(route.raw).get("externalTrunkBases") or ():
        if isinstance(entry, dict) and "id" in entry and "name" in entry:
            out[str(entry["id"])] = str(entry["name"])
    return out
