"""The status board: the day's capacity forecast per group, trunk health, failovers, writes.

Role: keep the capacity forecast (``core.forecast``) of the running daemon and assemble the status
document that ``GET /status.json`` serves and ``obs.statuspage`` renders as ``GET /``.

- The forecast is recomputed when its inputs change: a schedule refresh that changed the
  snapshot, a trunk's failover state, a reload, or when the window it covers no longer reaches
  the horizon (the day rolled over). Never on a timer: the engine marks it stale on those events
  and the reconcile that follows them recomputes it (after its writes, so a failover's route
  change never waits for it). Each reconcile also slides the summaries the metrics show (the
  largest shortfall over the next 2 h and over the horizon, and when it starts).
- Failovers are remembered (the last ``MAX_EVENTS``, in memory) with their reaction time: from
  the health poll that saw the failure to the end of the first reconcile that applied every
  write it planned.

The window of a forecast is whole local days (each group's day in its business unit's zone) from
today to the day the horizon ends in. This module decides nothing about routing and writes
nothing to the API; it reads the audit trail for the last writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import syncd
from syncd import config as config_mod
from syncd.core import forecast, model, planner
from syncd.engine import ports, state

log = logging.getLogger(__name__)

MAX_EVENTS = 20
LAST_WRITES = 12
NEXT_WINDOW_S = 2 * 3600
# Metric label values of the two summary windows (bounded: never per interval).
WINDOWS = ("2h", "horizon")
REFRESH_S = 30  # the page reloads itself this often (meta refresh)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """What the forecast and the document need of the configuration, in core terms."""

    settings: planner.PlannerSettings
    horizon_s: int
    zones: Mapping[str, str]  # group → IANA time zone of its business unit
    labels: Mapping[str, str]  # trunk base id → metric label
    names: Mapping[str, str]  # trunk base id → name as read (label when not read)

    @classmethod
    def of(
        cls, cfg: config_mod.Config, unit_zones: Mapping[str, str], names: Mapping[str, str]
    ) -> Inputs:
        """From a configuration, the management units' zones (``Reader.zones``) and names."""
        zones = {}
        for g in cfg.groups:
            found = [unit_zones[mu] for mu in g.management_units if mu in unit_zones]
            zones[g.name] = _known_zone(found[0]) if found else "UTC"
        labels = cfg.trunk_labels()
        return cls(
            settings=cfg.planner_settings(),
            horizon_s=cfg.schedule.horizon_hours * 3600,
            zones=zones,
            labels=labels,
            names={tb: names.get(tb, label) for tb, label in labels.items()},
        )


def _known_zone(name: str) -> str:
    try:
        forecast.zone(name)
    except ValueError:
        log.warning("The business unit's time zone %r is unknown here; showing UTC.", name)
        return "UTC"
    return name


def window(inputs: Inputs, now: int) -> tuple[int, int]:
    """Whole local days, from each group's today to the day its horizon ends in."""
    starts, ends = [], []
    for group in inputs.settings.groups:
        tz = inputs.zones.get(group.name, "UTC")
        starts.append(forecast.day_window(forecast.local_date(now, tz), tz)[0])
        last = forecast.local_date(now + inputs.horizon_s, tz)
        ends.append(forecast.day_window(last, tz)[1])
    return (min(starts), max(ends)) if starts else (now, now)


def compute(
    inputs: Inputs,
    *,
    schedules: Sequence[model.ManagementUnitSchedule],
    activity_codes: Iterable[model.ActivityCode],
    health_states: Mapping[str, model.TrunkHealth],
    now: int,
    span: tuple[int, int] | None = None,
) -> forecast.Forecast:
    """The forecast over ``span`` (default: ``window(inputs, now)``)."""
    start, end = span or window(inputs, now)
    return forecast.forecast(
        settings=inputs.settings,
        schedules=schedules,
        activity_codes=activity_codes,
        health_states=health_states,
        start=start,
        end=end,
        now=now,
    )


# --------------------------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------------------------


def _hm(instant: float, tz: str) -> str:
    return forecast.local_time(int(instant), tz).strftime("%H:%M")


def _iso(instant: float | None, tz: str) -> str | None:
    if instant is None:
        return None
    return forecast.local_time(int(instant), tz).isoformat(timespec="minutes")


def _summary(worst: forecast.Worst, tz: str) -> dict[str, Any]:
    return {
        "shortfall": worst.lines,
        "start": worst.start,
        "start_local": None if worst.start is None else _iso(worst.start, tz),
    }


def _day_part(
    fc: forecast.Forecast, inputs: Inputs, group: planner.GroupSpec, day: dt.date, tz: str
) -> dict[str, Any]:
    """What a group's timeline of ``day`` holds that does not move with ``now``."""
    day_start, day_end = forecast.day_window(day, tz)
    gf = fc.group(group.name)
    labels = inputs.labels
    return {
        "name": group.name,
        "time_zone": tz,
        "day": day.isoformat(),
        "day_start": day_start,
        "day_end": day_end,
        "day_hours": round((day_end - day_start) / 3600),
        "interval_s": inputs.settings.interval_s,
        "max_lines": group.max_lines,
        "trunks": [
            {
                "id": t.trunk_base_id,
                "label": labels.get(t.trunk_base_id, t.trunk_base_id),
                "name": inputs.names.get(t.trunk_base_id, t.trunk_base_id),
                "capacity": t.capacity,
                "priority": t.priority,
            }
            for t in sorted(group.trunks, key=lambda t: t.priority)
        ],
        "intervals": [
            {
                "start": iv.start,
                "end": iv.end,
                "local": _hm(iv.start, tz),
                "fte": None if iv.staffed_fte is None else round(iv.staffed_fte, 2),
                "lines": iv.lines,
                "capacity": iv.capacity,
                "shortfall": iv.shortfall,
                "allocation": {labels.get(tb, tb): n for tb, n in iv.allocation if n},
            }
            for iv in forecast.within(gf.intervals if gf else (), day_start, day_end)
        ],
    }


def _days(today: dt.date, until: int, tz: str) -> list[str]:
    """The local days from ``today`` that begin before ``until``."""
    out, day = [today.isoformat()], today + dt.timedelta(days=1)
    while forecast.day_window(day, tz)[0] < until:
        out.append(day.isoformat())
        day += dt.timedelta(days=1)
    return out


def group_section(
    fc: forecast.Forecast,
    inputs: Inputs,
    group: planner.GroupSpec,
    *,
    now: float,
    day: dt.date | None = None,
    cache: dict[tuple[str, dt.date], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One group's timeline of ``day`` (default: today in its zone) as plain data.

    ``cache`` keeps the parts that do not move with ``now`` (valid for one forecast)."""
    tz = inputs.zones.get(group.name, "UTC")
    today = forecast.local_date(int(now), tz)
    day = day or today
    part = None if cache is None else cache.get((group.name, day))
    if part is None:
        part = _day_part(fc, inputs, group, day, tz)
        if cache is not None and part["intervals"]:  # days the forecast covers: a few
            cache[group.name, day] = part
    gf = fc.group(group.name)
    all_intervals = gf.intervals if gf else ()
    horizon_end = int(now) + inputs.horizon_s
    return {
        **part,
        "days": _days(today, min(horizon_end, fc.end), tz),
        "now": now if part["day_start"] <= now < part["day_end"] else None,
        "now_local": _hm(now, tz),
        "next_2h": _summary(
            forecast.largest_shortfall(all_intervals, int(now), int(now) + NEXT_WINDOW_S), tz
        ),
        "horizon": _summary(forecast.largest_shortfall(all_intervals, int(now), horizon_end), tz),
    }


def groups_document(
    fc: forecast.Forecast,
    inputs: Inputs,
    *,
    now: float,
    day: dt.date | None = None,
    cache: dict[tuple[str, dt.date], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    return [
        group_section(fc, inputs, g, now=now, day=day, cache=cache) for g in inputs.settings.groups
    ]


def _shown(value: object, labels: Mapping[str, str]) -> object:
    """A write's value for people: trunk base ids in a route order become their labels."""
    if isinstance(value, list):
        return [labels.get(str(v), v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# The board
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class FailoverEvent:
    group: str
    trunk_base_id: str
    detected_at: float
    reacted_at: float | None = None
    recovered_at: float | None = None


class Board:
    """The daemon's status: kept by ``cycle.Engine``, read by the metrics listener."""

    def __init__(
        self,
        *,
        observer: ports.Observer,
        store: state.StateStore | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.observer = observer
        self.store = store
        self.clock = clock
        self.inputs: Inputs | None = None
        self.forecast: forecast.Forecast | None = None
        self.stale = True
        self.recomputes = 0
        self._sections: dict[tuple[str, dt.date], dict[str, Any]] = {}
        self.events: deque[FailoverEvent] = deque(maxlen=MAX_EVENTS)
        self.health: Mapping[str, model.TrunkHealth] = {}
        self.lines_now: dict[str, int] = {}
        self.polls: dict[str, float] = {}
        self.poll_every: dict[str, float] = {}
        # Set by the notification channel (runner.open_engine): its state for the page;
        # None when notifications are off and syncd only polls.
        self.push_state: Callable[[], Mapping[str, object]] | None = None

    # -- events from the engine ----------------------------------------------------------

    def mark_stale(self) -> None:
        self.stale = True

    def note_poll(self, kind: str, at: float, every_s: float) -> None:
        self.polls[kind] = at
        self.poll_every[kind] = every_s

    def note_health(self, states: Mapping[str, model.TrunkHealth]) -> None:
        self.health = states

    def note_failover(self, group: str, trunk_base_id: str, at: float) -> None:
        self.events.append(FailoverEvent(group=group, trunk_base_id=trunk_base_id, detected_at=at))

    def note_recovery(self, trunk_base_id: str, at: float) -> None:
        for event in reversed(self.events):
            if event.trunk_base_id == trunk_base_id:
                if event.recovered_at is None:
                    event.recovered_at = at
                return

    def after_reconcile(self, plan: model.Plan, *, complete: bool, at: float) -> None:
        """A reconcile (not a dry run) ended at ``at``; ``complete``: every write it planned
        was applied. Failovers seen before it started have been reacted to."""
        self.lines_now = {tb: n for d in plan.decisions for tb, n in d.allocation}
        if not complete:
            return
        for event in self.events:
            if event.reacted_at is None and event.detected_at <= plan.now:
                event.reacted_at = at

    def needs_recompute(self, now: int) -> bool:
        if self.stale or self.forecast is None or self.inputs is None:
            return True
        start, end = window(self.inputs, now)
        return start < self.forecast.start or end > self.forecast.end

    async def recompute(
        self,
        inputs: Inputs,
        *,
        schedules: Sequence[model.ManagementUnitSchedule],
        activity_codes: Iterable[model.ActivityCode],
        health_states: Mapping[str, model.TrunkHealth],
        now: int,
    ) -> None:
        """Recompute the forecast (in a worker thread: a large org's takes a while, and its
        inputs are immutable) and report its summaries."""
        self.stale = False
        fc = await asyncio.to_thread(
            compute,
            inputs,
            schedules=schedules,
            activity_codes=tuple(activity_codes),
            health_states=dict(health_states),
            now=now,
        )
        self.inputs, self.forecast = inputs, fc
        self._sections = {}
        self.recomputes += 1
        self.observer.observe_forecast_computed(float(now))
        self.slide(now)
        log.info(
            "Capacity forecast recomputed for %d group(s) over %d h.",
            len(fc.groups),
            (fc.end - fc.start) // 3600,
            extra={"forecast_start": fc.start, "forecast_end": fc.end},
        )

    def slide(self, now: int) -> None:
        """Report the largest shortfall of each group over the next 2 h and the horizon."""
        if self.forecast is None or self.inputs is None:
            return
        horizon = self.inputs.horizon_s
        for gf in self.forecast.groups:
            for name, end in zip(WINDOWS, (now + NEXT_WINDOW_S, now + horizon), strict=True):
                worst = forecast.largest_shortfall(gf.intervals, now, end)
                self.observer.observe_forecast(gf.group, name, worst.lines, worst.start or 0)

    # -- the document ----------------------------------------------------------------------

    def status(self, query: Mapping[str, str]) -> dict[str, Any]:
        """The status document (``GET /status.json``); ``query["day"]`` (``YYYY-MM-DD``)
        picks the day of the timelines. ``ValueError`` names a bad query."""
        day = None
        if query.get("day"):
            try:
                day = dt.date.fromisoformat(query["day"])
            except ValueError:
                raise ValueError(f"day={query['day']!r}: give a date as YYYY-MM-DD") from None
        now = self.clock()
        fc, inputs = self.forecast, self.inputs
        push = None if self.push_state is None else dict(self.push_state())
        doc: dict[str, Any] = {
            "generated_at": now,
            "version": syncd.__version__,
            "refresh_s": REFRESH_S,
            "forecast": None
            if fc is None or inputs is None
            else {
                "computed_at": fc.now,
                "start": fc.start,
                "end": fc.end,
                "horizon_s": inputs.horizon_s,
                "interval_s": inputs.settings.interval_s,
                "recomputes": self.recomputes,
            },
            "groups": []
            if fc is None or inputs is None
            else groups_document(fc, inputs, now=now, day=day, cache=self._sections),
            "trunks": self._trunks(now),
            "failovers": self._failovers(),
            "writes": self._writes(),
            "notifications": {
                "channel": "push" if push and push.get("up") else "poll",
                "polls": [
                    {
                        "kind": kind,
                        "every_s": self.poll_every.get(kind),
                        "last": at,
                        "age_s": round(max(0.0, now - at), 1),
                    }
                    for kind, at in sorted(self.polls.items())
                ],
                "push": push,
            },
        }
        return doc

    def _zone_of(self, group: str) -> str:
        return "UTC" if self.inputs is None else self.inputs.zones.get(group, "UTC")

    def _trunks(self, now: float) -> list[dict[str, Any]]:
        if self.inputs is None:
            return []
        out = []
        for group in self.inputs.settings.groups:
            tz = self._zone_of(group.name)
            for t in sorted(group.trunks, key=lambda t: t.priority):
                h = self.health.get(t.trunk_base_id)
                if h is None:
                    status, since = "unknown", None
                elif h.state is model.HealthState.HEALTHY:
                    status, since = "healthy", h.since
                else:
                    status = "failed" if h.good_since is None else "recovering"
                    since = h.since
                out.append(
                    {
                        "id": t.trunk_base_id,
                        "name": self.inputs.names.get(t.trunk_base_id, t.trunk_base_id),
                        "label": self.inputs.labels.get(t.trunk_base_id, t.trunk_base_id),
                        "group": group.name,
                        "time_zone": tz,
                        "priority": t.priority,
                        "capacity": t.capacity,
                        "lines_now": self.lines_now.get(t.trunk_base_id, 0),
                        "state": status,
                        "since": since,
                        "since_local": _iso(since, tz),
                        "for_s": None if since is None else round(max(0.0, now - since)),
                        "good_since": None if h is None else h.good_since,
                        "failovers": 0 if h is None else h.failovers,
                    }
                )
        return out

    def _failovers(self) -> list[dict[str, Any]]:
        labels = {} if self.inputs is None else self.inputs.labels
        names = {} if self.inputs is None else self.inputs.names
        out = []
        for e in reversed(self.events):
            tz = self._zone_of(e.group)
            out.append(
                {
                    "group": e.group,
                    "trunk": labels.get(e.trunk_base_id, e.trunk_base_id),
                    "name": names.get(e.trunk_base_id, e.trunk_base_id),
                    "detected_at": e.detected_at,
                    "detected_local": _iso(e.detected_at, tz),
                    "reacted_at": e.reacted_at,
                    "reaction_s": None
                    if e.reacted_at is None
                    else round(e.reacted_at - e.detected_at, 2),
                    "recovered_at": e.recovered_at,
                    "recovered_local": _iso(e.recovered_at, tz),
                }
            )
        return out

    def _writes(self) -> list[dict[str, Any]]:
        if self.store is None:
            return []
        labels = {} if self.inputs is None else self.inputs.labels
        return [
            {
                "ts": r.ts,
                "ts_local": _iso(r.ts, self._zone_of(r.group.split("+")[0])),
                "outcome": r.outcome,
                "kind": r.kind,
                "object": r.object_name,
                "field": r.field,
                "before": _shown(r.before, labels),
                "after": _shown(r.after, labels),
                "reason": r.reason,
                "group": r.group,
            }
            for r in reversed(self.store.history(limit=LAST_WRITES))
        ]
