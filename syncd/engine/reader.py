"""Reading what the planner needs, cheaply: schedules with change detection, trunk health, objects.

Reads spend the same API budget as writes, so this module reads no more than the plan needs:

- Schedules: each refresh lists the published schedules of the weeks that overlap
  ``[now, now + horizon]`` (one cheap call per business unit and week) and compares their ids and
  ``metadata.version`` with what was fetched. Agent schedules are fetched again only when that
  fingerprint changed or the horizon moved past the fetched window. They are fetched per
  management unit through the schedule's ``agentschedules/query``: inline for small units, or the
  bulk export (``downloadUrl``) for large ones (``mode = auto|poll|export``).
- Health: one paged listing of EXTERNAL trunks per poll; one trunk when a notification names it.
- Routes and campaigns: one paged listing each per reconcile (routes: per site), kept to the
  configured objects. A site whose route listing fails is returned as such, not raised, so the
  other sites' routes can still be written.

Time zones matter only here, for week boundaries; everything handed on is in UTC epoch seconds.
It makes no decisions (that is ``core``) and writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Protocol, TypeVar

from syncd import config as config_mod
from syncd import errors
from syncd.core import model
from syncd.genesys import api as api_mod

log = logging.getLogger(__name__)

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_T = TypeVar("_T", bound=_HasId)

# A management unit with more agents than this takes the bulk-export path in mode "auto".
EXPORT_THRESHOLD_AGENTS = 500
# Agent schedules are fetched this fraction of the horizon beyond it. Without a margin the
# fetched window ended exactly at the horizon, so on the next refresh (seconds later) the horizon
# had "moved past the fetched window" and every refresh re-fetched every agent schedule (and
# triggered a reconcile). With it, an unchanged schedule is re-fetched at most once per
# ``horizon / 4`` (6 h for a 24 h horizon), at the price of holding 25 % more activities.
LOOKAHEAD_FRACTION = 0.25


def weeks_overlapping(
    start: int, end: int, *, time_zone: str, start_day_of_week: str
) -> tuple[str, ...]:
    """The BU-local week start dates (``yyyy-MM-dd``) of every week overlapping ``[start, end)``.

    Weeks begin at local midnight of the BU's start day, so a DST change moves their UTC instant
    but never which dates they cover."""
    tz = zoneinfo.ZoneInfo(time_zone)
    first_day = DAYS.index(start_day_of_week) if start_day_of_week in DAYS else 0
    local_start = dt.datetime.fromtimestamp(start, tz).date()
    local_end = dt.datetime.fromtimestamp(max(start, end - 1), tz).date()
    week = local_start - dt.timedelta(days=(local_start.weekday() - first_day) % 7)
    out = []
    while week <= local_end:
        out.append(week.isoformat())
        week += dt.timedelta(days=7)
    return tuple(out)


def week_end(week_date: str, week_count: int, *, time_zone: str) -> int:
    """The UTC instant at which a schedule of ``week_count`` weeks from ``week_date`` ends."""
    tz = zoneinfo.ZoneInfo(time_zone)
    day = dt.date.fromisoformat(week_date) + dt.timedelta(days=7 * max(1, week_count))
    return int(dt.datetime.combine(day, dt.time(0), tz).timestamp())


@dataclasses.dataclass(slots=True)
class _BuState:
    time_zone: str
    start_day_of_week: str
    management_units: tuple[str, ...]
    activity_codes: tuple[model.ActivityCode, ...]
    fingerprint: str = ""
    fetched_until: int = 0
    fetched_at: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSnapshot:
    """Everything the planner needs of the schedules, with when it was fetched (wall seconds)."""

    schedules: tuple[model.ManagementUnitSchedule, ...]
    activity_codes: tuple[model.ActivityCode, ...]
    fetched_at: Mapping[str, float]  # business unit id → when its schedules were fetched


class Reader:
    """Reads through the API port; holds the schedule snapshot between refreshes."""

    def __init__(self, api: api_mod.GenesysApiPort, cfg: config_mod.Config) -> None:
        self.api = api
        self.cfg = cfg
        self._bu: dict[str, _BuState] = {}
        self._by_mu: dict[str, model.ManagementUnitSchedule] = {}
        self._mu_agents: dict[str, int] = {}
        self._missing: set[str] = set()  # configured ids already reported missing
        # Business unit → why its last refresh failed (cleared by the next one that succeeds).
        self._bu_error: dict[str, str] = {}
        # Business unit → when its schedules were last checked successfully (wall seconds).
        self._bu_ok_at: dict[str, float] = {}
        # Configuration problems against the org: object id → message (kept while they last).
        self.problems: dict[str, str] = {}

    def apply_config(self, cfg: config_mod.Config) -> None:
        """Swap the configuration. The schedule snapshot stays: it is what the plan has until a
        refresh replaces it, and a unit it does not cover holds its group (``staffing_gaps``).
        Only a change to what is fetched (units, horizon, mode) makes the next refresh fetch
        again; timers and planning settings change nothing that was read."""
        old = self.cfg
        self.cfg = cfg
        fetched = (
            old.schedule.business_units,
            old.schedule.horizon_hours,
            old.schedule.mode,
            _mus(old),
        )
        if fetched != (
            cfg.schedule.business_units,
            cfg.schedule.horizon_hours,
            cfg.schedule.mode,
            _mus(cfg),
        ):
            for bu in self._bu.values():
                bu.fingerprint = ""  # fetch again at the next refresh, keep what is held
            for bu_id in set(self._bu) - set(cfg.schedule.business_units):
                del self._bu[bu_id]
        wanted = _configured_ids(cfg)
        self.problems = {k: v for k, v in self.problems.items() if k in wanted}
        self._missing &= wanted

    def invalidate(self) -> None:
        """Fetch every business unit's schedules again at the next refresh (a re-read that
        confirms or withdraws a suspicious drop), keeping the snapshot until then."""
        for bu in self._bu.values():
            bu.fingerprint = ""

    # -- schedules -----------------------------------------------------------------------

    async def _load_bu(self, bu_id: str) -> _BuState:
        bu = await self.api.business_unit(bu_id)
        mus = await self.api.management_units(bu_id)
        codes = await self.api.activity_codes(bu_id)
        state = _BuState(
            time_zone=bu.time_zone,
            start_day_of_week=bu.start_day_of_week,
            management_units=tuple(mu.id for mu in mus),
            activity_codes=codes,
        )
        self._bu[bu_id] = state
        return state

    async def refresh_schedules(
        self,
        *,
        now: int,
        wall_now: float,
        horizon_s: int | None = None,
        only: str | None = None,
    ) -> bool:
        """Fetch agent schedules where something changed; True when the snapshot changed.
        ``horizon_s`` replaces the configured horizon (``syncd plan`` reads a whole day).
        ``only``: that one business unit (a notification said its schedules changed).

        Each business unit on its own: one that cannot be read (outage, 403, a ``Processing``
        answer, an answer syncd cannot parse) is recorded (``staffing_gaps``) and the others
        still refresh. A business unit or management unit the org does not have is a
        configuration problem (``problems``), reported at once and on every reload."""
        changed = False
        for bu_id in self.cfg.schedule.business_units:
            if only is not None and bu_id != only:
                continue
            try:
                changed |= await self._refresh_bu(
                    bu_id, now=now, wall_now=wall_now, horizon_s=horizon_s
                )
            except errors.NotFound:
                self._bu_error[bu_id] = "it does not exist in the org"
                self._problem(
                    bu_id,
                    f"schedule.business_units: business unit {bu_id} does not exist in the org"
                    " (or this client cannot see it)",
                )
            except (errors.ApiError, ValueError, KeyError) as exc:
                # KeyError/ValueError: an answer that parsed but cannot be used (a time zone
                # zoneinfo does not know); like an outage, it holds, never crashes the daemon.
                self._bu_error[bu_id] = str(exc) or type(exc).__name__
                log.warning(
                    "The schedules of business unit %s could not be read (%s): the line counts"
                    " of its groups are held at their last values until they can; routes still"
                    " follow trunk health.",
                    bu_id,
                    exc,
                    extra={"business_unit": bu_id},
                )
            else:
                self._bu_error.pop(bu_id, None)
                self._bu_ok_at[bu_id] = wall_now
                self.problems.pop(bu_id, None)
        self._check_management_units()
        return changed

    def _problem(self, key: str, message: str) -> None:
        if self.problems.get(key) != message:
            log.error("Configuration problem: %s.", message, extra={"object_id": key})
        self.problems[key] = message

    def report_problems(self) -> None:
        """Say every known configuration problem again (at a reload)."""
        for key, message in sorted(self.problems.items()):
            log.error("Configuration problem: %s.", message, extra={"object_id": key})

    def _check_management_units(self) -> None:
        """Configured units that no configured business unit lists (once all could be read)."""
        configured = self.cfg.schedule.business_units
        if any(bu not in self._bu for bu in configured):
            return  # a unit of an unread business unit is unknown, not missing
        listed = {mu for bu in configured for mu in self._bu[bu].management_units}
        for gi, group in enumerate(self.cfg.groups):
            for mi, mu in enumerate(group.management_units):
                if mu in listed:
                    self.problems.pop(mu, None)
                    continue
                self._problem(
                    mu,
                    f"groups[{gi}].management_units[{mi}]: management unit {mu} of group"
                    f" {group.name} is not in business unit(s) {', '.join(configured)}",
                )

    def staffing_gaps(self) -> dict[str, str]:
        """Configured management unit → why its staffing data cannot be planned on (missing
        from the org, its business unit unreadable, or not read yet); complete ones are absent."""
        owner = {mu: bu_id for bu_id, bu in self._bu.items() for mu in bu.management_units}
        out: dict[str, str] = {}
        for mu in sorted(_mus(self.cfg)):
            bu_id = owner.get(mu)
            if mu in self.problems:
                out[mu] = "not in the configured business units (a configuration problem)"
            elif bu_id is not None and bu_id in self._bu_error:
                out[mu] = (
                    f"its schedules could not be read (business unit {bu_id}:"
                    f" {self._bu_error[bu_id]})"
                )
            elif mu not in self._by_mu or bu_id is None:
                errs = [f"business unit {b}: {e}" for b, e in sorted(self._bu_error.items())]
                out[mu] = (
                    f"its schedules could not be read ({'; '.join(errs)})"
                    if errs
                    else "its schedules have not been read yet"
                )
        return out

    def staffing_read_at(self) -> float | None:
        """When the staffing data were last read for every configured business unit (the
        oldest successful check), None when one was never read."""
        times = [self._bu_ok_at.get(bu) for bu in self.cfg.schedule.business_units]
        return None if any(t is None for t in times) else min(t for t in times if t is not None)

    async def _refresh_bu(
        self, bu_id: str, *, now: int, wall_now: float, horizon_s: int | None
    ) -> bool:
        wanted = _mus(self.cfg)
        if horizon_s is None:
            horizon_s = self.cfg.schedule.horizon_hours * 3600
        horizon_end = now + horizon_s
        bu = self._bu.get(bu_id) or await self._load_bu(bu_id)
        mus = [mu for mu in bu.management_units if mu in wanted]
        weeks = weeks_overlapping(
            now, horizon_end, time_zone=bu.time_zone, start_day_of_week=bu.start_day_of_week
        )
        refs: dict[str, tuple[str, model.ScheduleRef]] = {}
        for week in weeks:
            for ref in await self.api.schedule_listing(bu_id, week):
                if ref.published:
                    refs.setdefault(ref.id, (week, ref))
        fingerprint = ",".join(
            f"{ref.id}@{ref.version}" for _, ref in sorted(refs.values(), key=_ref_key)
        )
        if fingerprint == bu.fingerprint and horizon_end <= bu.fetched_until:
            return False  # unchanged and still covering the horizon: nothing to fetch
        fetch_end = horizon_end + int(horizon_s * LOOKAHEAD_FRACTION)
        per_mu: dict[str, list[model.ManagementUnitSchedule]] = {mu: [] for mu in mus}
        for _, ref in sorted(refs.values(), key=_ref_key):
            for mu in mus:
                per_mu[mu].append(
                    await self.api.query_agent_schedules(
                        bu_id,
                        ref.week_date,
                        ref.id,
                        mu,
                        start=now,
                        end=fetch_end,
                        force_download=self._force_download(mu),
                    )
                )
        for mu, parts in per_mu.items():
            merged = _merge(bu_id, mu, parts, start=now, end=fetch_end)
            self._by_mu[mu] = merged
            self._mu_agents[mu] = len(merged.agents)
        log.info(
            "Fetched the schedules of business unit %s: %d management unit(s), %d agent(s),"
            " published schedules %s.",
            bu_id,
            len(mus),
            sum(len(self._by_mu[mu].agents) for mu in mus),
            fingerprint or "none",
            extra={"business_unit": bu_id, "fingerprint": fingerprint},
        )
        bu.fingerprint = fingerprint
        # Was min(..., horizon_end): always behind the next refresh's horizon (see
        # LOOKAHEAD_FRACTION). Past the published weeks' end, only a newly listed schedule
        # (a fingerprint change) can add data, so the fetched window is what counts.
        bu.fetched_until = fetch_end
        bu.fetched_at = wall_now
        return True

    def _force_download(self, mu: str) -> bool:
        mode = self.cfg.schedule.mode
        if mode == "export":
            return True
        if mode == "poll":
            return False
        return self._mu_agents.get(mu, 0) > EXPORT_THRESHOLD_AGENTS

    def snapshot(self) -> ScheduleSnapshot:
        codes: dict[str, model.ActivityCode] = {}
        for bu in self._bu.values():
            for code in bu.activity_codes:
                codes.setdefault(code.id, code)
        return ScheduleSnapshot(
            schedules=tuple(self._by_mu.values()),
            activity_codes=tuple(codes.values()),
            fetched_at={bu_id: bu.fetched_at for bu_id, bu in self._bu.items()},
        )

    async def unit_zones(self) -> dict[str, str]:
        """``zones()`` after reading the business units not read yet (three calls each)."""
        for bu_id in self.cfg.schedule.business_units:
            if bu_id not in self._bu:
                await self._load_bu(bu_id)
        return self.zones()

    def zones(self) -> dict[str, str]:
        """Management unit id → its business unit's time zone, for the units read so far."""
        return {mu: bu.time_zone for bu in self._bu.values() for mu in bu.management_units}

    def fingerprints(self) -> dict[str, str]:
        return {bu_id: bu.fingerprint for bu_id, bu in self._bu.items()}

    # -- health and objects --------------------------------------------------------------

    async def trunk_statuses(self) -> tuple[model.TrunkStatus, ...]:
        return await self.api.list_trunks(priority=model.Priority.FAILOVER)

    async def trunk_status(self, trunk_id: str) -> model.TrunkStatus:
        """One trunk instance, re-read because a notification named it."""
        return await self.api.get_trunk(trunk_id, priority=model.Priority.FAILOVER)

    async def routes(
        self, *, priority: int = model.Priority.STAFFING
    ) -> tuple[tuple[model.Route, ...], dict[str, errors.ApiError]]:
        """The configured routes, one paged listing per configured site, and the sites whose
        listing failed (site id → error). A site that cannot be read is left out, so one
        site's outage does not keep another site's failover from being written; when no site
        can be read, the first error is raised."""
        configured = [r for g in self.cfg.groups for r in g.routes]
        sites = sorted({r.site_id for r in configured})
        out: list[model.Route] = []
        failed: dict[str, errors.ApiError] = {}
        for site in sites:
            try:
                out.extend(await self.api.list_routes(site, priority=priority))
            except errors.ApiError as exc:
                failed[site] = exc
        if failed and len(failed) == len(sites):
            raise next(iter(failed.values()))
        # Only the routes of the sites read can be found missing from the org.
        wanted = {r.id for r in configured if r.site_id not in failed}
        found = self._found("outbound route", wanted, tuple(r for r in out if r.id in wanted))
        return found, failed

    async def campaigns(
        self, *, priority: int = model.Priority.STAFFING
    ) -> tuple[model.Campaign, ...]:
        wanted = {c.id for g in self.cfg.groups for c in g.campaigns}
        listed = await self.api.list_campaigns(priority=priority)
        return self._found("campaign", wanted, tuple(c for c in listed if c.id in wanted))

    async def trunk_bases(
        self, *, priority: int = model.Priority.STAFFING
    ) -> tuple[model.TrunkBase, ...]:
        wanted = {t.trunk_base_id for g in self.cfg.groups for t in g.trunks}
        listed = await self.api.list_trunk_bases(priority=priority)
        return self._found("trunk base", wanted, tuple(tb for tb in listed if tb.id in wanted))

    def _found(self, kind: str, wanted: set[str], found: tuple[_T, ...]) -> tuple[_T, ...]:
        """``found``, after saying once per id which configured objects the org does not have
        (a typo or a deleted object: the plan leaves them out, so the operator must know)."""
        missing = wanted - {obj.id for obj in found}
        for object_id in sorted(missing):
            self._problem(
                object_id,
                f"the configured {kind} {object_id} does not exist in the org (or this client"
                " cannot see it); syncd leaves it out until it appears",
            )
        for object_id in wanted - missing:
            self.problems.pop(object_id, None)  # found again: may be reported again
        self._missing = (self._missing - wanted) | missing
        return found

    @property
    def absent_trunk_bases(self) -> frozenset[str]:
        """Configured trunk bases the last listing did not have (a configuration problem)."""
        configured = {t.trunk_base_id for g in self.cfg.groups for t in g.trunks}
        return frozenset(self._missing & configured)


def _configured_ids(cfg: config_mod.Config) -> set[str]:
    ids = set(cfg.schedule.business_units) | _mus(cfg)
    for g in cfg.groups:
        ids |= {t.trunk_base_id for t in g.trunks} | {r.id for r in g.routes}
        ids |= {c.id for c in g.campaigns}
    return ids


def _mus(cfg: config_mod.Config) -> frozenset[str]:
    return frozenset(mu for g in cfg.groups for mu in g.management_units)


def _ref_key(item: tuple[str, model.ScheduleRef]) -> tuple[str, str]:
    return (item[1].week_date, item[1].id)


def _merge(
    bu_id: str,
    mu_id: str,
    parts: Iterable[model.ManagementUnitSchedule],
    *,
    start: int,
    end: int,
) -> model.ManagementUnitSchedule:
    """One management unit's agents across the schedules of consecutive weeks."""
    acts: dict[str, list[tuple[int, int, str]]] = {}
    for part in parts:
        for agent in part.agents:
            acts.setdefault(agent.user_id, []).extend(agent.activities)
    agents = tuple(
        model.AgentSchedule(user_id=uid, activities=tuple(sorted(set(a))))
        for uid, a in sorted(acts.items())
    )
    return model.ManagementUnitSchedule(
        business_unit_id=bu_id, management_unit_id=mu_id, start=start, end=end, agents=agents
    )
