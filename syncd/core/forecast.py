"""The capacity forecast: every planning interval of a window, per group, with today's health.

Role: for each planning interval of ``[start, end)`` and each group: staffed FTE from the
published schedules, the lines the group needs (``planner.demand``), the healthy trunk capacity
(the trunk health of ``now`` held constant), the lines each trunk would carry
(``allocation.allocate``) and the shortfall. Intervals no fetched schedule covers are marked
unknown (``staffed_fte is None``) rather than shown as an empty floor. Then the summaries the
metrics and the alert need: the largest shortfall in a window and the interval it starts in.

Local days: a group's day runs from local midnight to the next local midnight in its business
unit's time zone, so a DST day has 23 or 25 hours; instants stay UTC epoch seconds, the zone only
places the day's ends and names local times.

Pure, like the planner: ``now`` and the window are parameters. It must not read clocks, log, or do
I/O; when to recompute (schedules or health changed) is the engine's business.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from syncd.core import allocation, health, model, planner, staffing


@dataclass(frozen=True, slots=True, kw_only=True)
class Interval:
    """One planning interval ``[start, end)`` of one group, as forecast."""

    start: int
    end: int
    staffed_fte: float | None  # None: no fetched schedule covers the interval
    lines: int  # lines the group needs (demand after min/max clamping)
    capacity: int  # healthy trunk capacity (today's health held constant)
    allocation: tuple[tuple[str, int], ...]  # (trunk_base_id, lines), priority order
    shortfall: int

    @property
    def known(self) -> bool:
        return self.staffed_fte is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupForecast:
    group: str
    intervals: tuple[Interval, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Forecast:
    """What ``forecast`` computed at ``now`` for ``[start, end)``."""

    now: int
    start: int
    end: int
    groups: tuple[GroupForecast, ...]

    def group(self, name: str) -> GroupForecast | None:
        return next((g for g in self.groups if g.group == name), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Worst:
    """The largest shortfall in a window (0 lines when there is none) and where it begins:
    the start of the first interval that reaches it (None when there is no shortfall)."""

    lines: int
    start: int | None


def _covered(schedules: Sequence[model.ManagementUnitSchedule]) -> tuple[int, int] | None:
    """The window every fetched unit of the group covers (``[latest start, earliest end)``);
    None when nothing was fetched. A configured unit the reader never found counts as no one
    staffed, as in the planner (the reader warns about it)."""
    if not schedules:
        return None
    return max(s.start for s in schedules), min(s.end for s in schedules)


def forecast(
    *,
    settings: planner.PlannerSettings,
    schedules: Sequence[model.ManagementUnitSchedule],
    activity_codes: Iterable[model.ActivityCode],
    health_states: Mapping[str, model.TrunkHealth],
    start: int,
    end: int,
    now: int,
) -> Forecast:
    """Every planning interval overlapping ``[start, end)`` (UTC-aligned, as the planner plans
    them), per group in configuration order.

    Health is the state at ``now`` for every interval: a trunk failed now is forecast failed
    all day, a healthy one healthy; the forecast says what today's carriers can carry."""
    interval_s = settings.interval_s
    first = staffing.interval_start(start, interval_s)
    count = max(0, -(-(end - first) // interval_s))
    staffed = staffing.staffed_code_ids(activity_codes, settings.staffed_categories)
    by_mu = staffing.by_management_unit(schedules)
    groups = []
    for group in settings.groups:
        group_schedules = [s for mu in group.management_units for s in by_mu.get(mu, ())]
        fte = staffing.fte_series(group_schedules, staffed, first, interval_s, count)
        covered = _covered(group_schedules)
        healthy = {
            t.trunk_base_id: health.healthy(health_states.get(t.trunk_base_id))
            for t in group.trunks
        }
        capacity = sum(t.capacity for t in group.trunks if healthy[t.trunk_base_id])
        intervals = []
        for k in range(count):
            t0 = first + k * interval_s
            t1 = t0 + interval_s
            if covered is None or not (covered[0] < t1 and t0 < covered[1]):
                intervals.append(
                    Interval(
                        start=t0,
                        end=t1,
                        staffed_fte=None,
                        lines=0,
                        capacity=capacity,
                        allocation=(),
                        shortfall=0,
                    )
                )
                continue
            lines = planner.demand(fte[k], group)
            alloc = allocation.allocate(lines, group.trunks, healthy)
            intervals.append(
                Interval(
                    start=t0,
                    end=t1,
                    staffed_fte=fte[k],
                    lines=lines,
                    capacity=capacity,
                    allocation=alloc.lines,
                    shortfall=max(0, lines - capacity),
                )
            )
        groups.append(GroupForecast(group=group.name, intervals=tuple(intervals)))
    return Forecast(now=now, start=first, end=first + count * interval_s, groups=tuple(groups))


def largest_shortfall(intervals: Iterable[Interval], start: int, end: int) -> Worst:
    """The largest shortfall among the intervals overlapping ``[start, end)``."""
    worst = Worst(lines=0, start=None)
    for iv in intervals:
        if iv.end > start and iv.start < end and iv.shortfall > worst.lines:
            worst = Worst(lines=iv.shortfall, start=iv.start)
    return worst


def within(intervals: Iterable[Interval], start: int, end: int) -> tuple[Interval, ...]:
    """The intervals overlapping ``[start, end)``."""
    return tuple(iv for iv in intervals if iv.end > start and iv.start < end)


# --------------------------------------------------------------------------------------------
# Local days
# --------------------------------------------------------------------------------------------


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``; ``ValueError`` naming it when unknown (it comes from the API)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def local_date(instant: int, time_zone: str) -> dt.date:
    """The calendar date at ``instant`` in ``time_zone``."""
    return dt.datetime.fromtimestamp(instant, zone(time_zone)).date()


def day_window(day: dt.date, time_zone: str) -> tuple[int, int]:
    """``[start, end)`` of the local calendar day ``day``: 23 h or 25 h long on DST days.

    Where a DST change skips local midnight itself (a few zones change at 00:00), the
    day starts at the first local time that exists (PEP 495: the pre-transition offset)."""
    tz = zone(time_zone)
    start = dt.datetime.combine(day, dt.time(0), tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tz)
    return int(start.timestamp()), int(end.timestamp())


def local_time(instant: int, time_zone: str) -> dt.datetime:
    """``instant`` as an aware local time (for labels: ``.strftime("%H:%M")``, ``isoformat``)."""
    return dt.datetime.fromtimestamp(instant, zone(time_zone))
