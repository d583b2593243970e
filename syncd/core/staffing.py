"""Staffed FTE from published agent activities (docs/domain.md, decision 1).

Role: for an interval ``[start, end)`` of UTC epoch seconds, sum over agents the minutes of
activities whose category counts as staffed that fall inside it, divided by the interval length.
Overlaps are fractional (an activity covering half the interval adds 0.5). Instants are UTC, so a
DST change in a business unit's zone changes nothing here; zones only matter to whoever picks
week boundaries at the reader edge.

It must not read clocks, parse JSON, or do I/O. It is on the planner's hot path for a large org:
plain integer arithmetic over the model's tuples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from syncd.core import model


def staffed_code_ids(
    codes: Iterable[model.ActivityCode], staffed_categories: Iterable[str]
) -> frozenset[str]:
    """Ids of the activity codes whose category counts as staffed (map by category, never by
    name: BUs have custom codes such as "Outbound Dialing" in category OnQueueWork)."""
    wanted = frozenset(staffed_categories)
    return frozenset(code.id for code in codes if code.category in wanted)


def _unique_agents(
    schedules: Iterable[model.ManagementUnitSchedule],
) -> list[tuple[tuple[int, int, str], ...]]:
    """Activities per agent; an agent that appears in several fetched schedules (two weeks, or a
    search and a query overlapping) has its activities merged without double counting."""
    seen: dict[str, int] = {}
    out: list[tuple[tuple[int, int, str], ...]] = []
    for schedule in schedules:
        for agent in schedule.agents:
            index = seen.get(agent.user_id)
            if index is None:
                seen[agent.user_id] = len(out)
                out.append(agent.activities)
            else:
                out[index] = tuple(sorted(set(out[index]) | set(agent.activities)))
    return out


def staffed_fte(
    schedules: Iterable[model.ManagementUnitSchedule],
    staffed: frozenset[str],
    start: int,
    end: int,
) -> float:
    """Staffed FTE in ``[start, end)``: staffed activity seconds inside it / its length."""
    if end <= start:
        raise ValueError(f"empty interval [{start}, {end})")
    total = 0
    for activities in _unique_agents(schedules):
        for t0, minutes, code in activities:
            t1 = t0 + minutes * 60
            if t0 < end and t1 > start and code in staffed:
                total += min(t1, end) - max(t0, start)
    return total / (end - start)


def fte_series(
    schedules: Iterable[model.ManagementUnitSchedule],
    staffed: frozenset[str],
    start: int,
    interval_s: int,
    count: int,
) -> tuple[float, ...]:
    """Staffed FTE of ``count`` consecutive intervals from ``start``, in one pass over the
    activities: each activity is spread over the intervals it overlaps (an interval index),
    instead of scanning every activity once per interval."""
    if interval_s <= 0 or count < 0:
        raise ValueError("interval_s must be > 0 and count >= 0")
    seconds = [0] * count
    end = start + interval_s * count
    for activities in _unique_agents(schedules):
        for t0, minutes, code in activities:
            t1 = t0 + minutes * 60
            if t0 >= end or t1 <= start or code not in staffed:
                continue
            lo, hi = max(t0, start), min(t1, end)
            first = (lo - start) // interval_s
            last = (hi - 1 - start) // interval_s
            for k in range(first, last + 1):
                k0 = start + k * interval_s
                seconds[k] += min(hi, k0 + interval_s) - max(lo, k0)
    return tuple(s / interval_s for s in seconds)


def by_management_unit(
    schedules: Sequence[model.ManagementUnitSchedule],
) -> dict[str, tuple[model.ManagementUnitSchedule, ...]]:
    """Schedules grouped by management unit id (a group sums several units)."""
    out: dict[str, list[model.ManagementUnitSchedule]] = {}
    for schedule in schedules:
        out.setdefault(schedule.management_unit_id, []).append(schedule)
    return {mu: tuple(items) for mu, items in out.items()}


def interval_start(instant: int, interval_s: int) -> int:
    """The start of the planning interval containing ``instant`` (UTC-aligned: every real time
    zone offset is a multiple of 15 minutes, so UTC-aligned quarter hours are local ones too)."""
    return instant - instant % interval_s
