"""Reading what the planner needs, cheaply: schedules with change detection, trunk health, objects.

Reads spend the same API budget as writes, so this module reads no more than the plan needs:

- Schedules: each refresh lists the published schedules of the weeks that overlap
  ``[now, now + horizon]`` (one cheap call per business unit and week) and compares their ids and
  ``metadata.version`` with what was fetched. Agent schedules are fetched again only when that
  fingerprint changed or the horizon moved past the fetched window. They are fetched per
  management unit through the schedule's ``agentschedules/query``: inline for small units, or the
  bulk export (``downloadUrl``) for large ones (``mode = auto|poll|export``).
- Health: one paged listing of EXTERNAL trunks per poll; one trunk when a notification names it.
- Routes and campaigns: one paged listing each per reconcile, kept to the configured objects.

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

    def apply_config(self, cfg: config_mod.Config) -> None:
        changed = cfg.schedule != self.cfg.schedule or _mus(cfg) != _mus(self.cfg)
        self.cfg = cfg
        if changed:
            # Another window, other units or another horizon: fetch again at the next refresh.
            self._bu.clear()
            self._by_mu.clear()

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
        self, *, now: int, wall_now: float, only: str | None = None
    ) -> bool:
        """Fetch agent schedules where something changed; True when the snapshot changed.
        ``only``: that one business unit (a notification said its schedules changed)."""
        wanted = _mus(self.cfg)
        horizon_end = now + int(self.cfg.schedule.horizon_hours * 3600)
        changed = False
        for bu_id in self.cfg.schedule.business_units:
            if only is not None and bu_id != only:
                continue
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
                continue  # unchanged and still covering the horizon: nothing to fetch
            fetch_end = horizon_end + int(
                self.cfg.schedule.horizon_hours * 3600 * LOOKAHEAD_FRACTION
            )
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
            changed = True
        return changed

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

    def fingerprints(self) -> dict[str, str]:
        return {bu_id: bu.fingerprint for bu_id, bu in self._bu.items()}

    # -- health and objects --------------------------------------------------------------

    async def trunk_statuses(self) -> tuple[model.TrunkStatus, ...]:
        return await self.api.list_trunks(priority=model.Priority.FAILOVER)

    async def trunk_status(self, trunk_id: str) -> model.TrunkStatus:
        """One trunk instance, re-read because a notification named it."""
        return await self.api.get_trunk(trunk_id, priority=model.Priority.FAILOVER)

    async def routes(self, *, priority: int = model.Priority.STAFFING) -> tuple[model.Route, ...]:
        """The configured routes, one paged listing per configured site."""
        wanted = {r.id for g in self.cfg.groups for r in g.routes}
        sites = sorted({r.site_id for g in self.cfg.groups for r in g.routes})
        out: list[model.Route] = []
        for site in sites:
            out.extend(
                r for r in await self.api.list_routes(site, priority=priority) if r.id in wanted
            )
        return self._found("outbound route", wanted, tuple(out))

    async def campaigns(
        self, *, priority: int = model.Priority.STAFFING
    ) -> tuple[model.Campaign, ...]:
        wanted = {c.id for g in self.cfg.groups for c in g.campaigns}
        listed = await self.api.list_campaigns(priority=priority)
        return self._found("campaign", wanted, tuple(c for c in listed if c.id in wanted))

    async def trunk_bases(self) -> tuple[model.TrunkBase, ...]:
        wanted = {t.trunk_base_id for g in self.cfg.groups for t in g.trunks}
        return self._found(
            "trunk base",
            wanted,
            tuple(tb for tb in await self.api.list_trunk_bases() if tb.id in wanted),
        )

    def _found(self, kind: str, wanted: set[str], found: tuple[_T, ...]) -> tuple[_T, ...]:
        """``found``, after saying once per id which configured objects the org does not have
        (a typo or a deleted object: the plan leaves them out, so the operator must know)."""
        missing = wanted - {obj.id for obj in found}
        for object_id in sorted(missing - self._missing):
            log.warning(
                "The configured %s %s does not exist in the org (or this client cannot see it);"
                " syncd leaves it out until it appears.",
                kind,
                object_id,
                extra={"object_id": object_id},
            )
        self._missing = (self._missing - wanted) | missing  # found again: may warn again
        return found


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
