"""Staffed FTE: fractional overlaps, categories, UTC instants across midnight and DST."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from syncd.core import model, staffing

CODES = (
    model.ActivityCode(id="q", name="On Queue Work", category="OnQueueWork"),
    model.ActivityCode(id="ob", name="Outbound Dialing", category="OnQueueWork"),
    model.ActivityCode(id="br", name="Break", category="Break"),
)
STAFFED = staffing.staffed_code_ids(CODES, ["OnQueueWork"])


def mu(
    *agents: tuple[tuple[int, int, str], ...], mu_id: str = "mu"
) -> model.ManagementUnitSchedule:
    return model.ManagementUnitSchedule(
        business_unit_id="bu",
        management_unit_id=mu_id,
        start=0,
        end=10**10,
        agents=tuple(
            model.AgentSchedule(user_id=f"u{i}", activities=acts) for i, acts in enumerate(agents)
        ),
    )


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


T0 = epoch("2026-03-04T10:00:00+00:00")


@pytest.mark.parametrize(
    ("activities", "fte"),
    [
        (((T0, 15, "q"),), 1.0),
        (((T0 - 3600, 120, "q"),), 1.0),
        (((T0 + 300, 5, "q"),), 1 / 3),
        (((T0 - 600, 15, "q"),), 1 / 3),
        (((T0, 15, "br"),), 0.0),
        (((T0, 15, "ob"),), 1.0),
        (((T0 + 900, 60, "q"),), 0.0),
        (((T0, 5, "q"), (T0 + 300, 5, "br"), (T0 + 600, 5, "ob")), 2 / 3),
    ],
    ids=[
        "exact",
        "covering",
        "inside-third",
        "tail-third",
        "break-not-staffed",
        "custom-code-by-category",
        "after",
        "mixed",
    ],
)
def test_one_agent_one_interval(activities: tuple[tuple[int, int, str], ...], fte: float) -> None:
    assert staffing.staffed_fte([mu(activities)], STAFFED, T0, T0 + 900) == pytest.approx(fte)


def test_agents_sum_and_duplicates_count_once() -> None:
    a = ((T0, 15, "q"),)
    sched = mu(a, a)
    assert staffing.staffed_fte([sched], STAFFED, T0, T0 + 900) == pytest.approx(2.0)
    # The same agent fetched twice (two overlapping reads) is one agent.
    assert staffing.staffed_fte([sched, sched], STAFFED, T0, T0 + 900) == pytest.approx(2.0)


def test_series_matches_interval_by_interval() -> None:
    sched = mu(
        ((T0 - 400, 47, "q"), (T0 + 2400, 30, "br"), (T0 + 2800, 90, "ob")), ((T0 + 100, 600, "q"),)
    )
    series = staffing.fte_series([sched], STAFFED, T0, 900, 40)
    for k, value in enumerate(series):
        start = T0 + 900 * k
        assert value == pytest.approx(staffing.staffed_fte([sched], STAFFED, start, start + 900))


CHICAGO = ZoneInfo("America/Chicago")


@pytest.mark.parametrize(
    ("local_start", "minutes", "interval_utc", "fte"),
    [
        # 2026-03-08 02:00 CST → 03:00 CDT: a shift from 01:00 local to 04:00 local is 2 hours.
        (datetime(2026, 3, 8, 1, 0, tzinfo=CHICAGO), 120, "2026-03-08T08:45:00+00:00", 1.0),
        (datetime(2026, 3, 8, 1, 0, tzinfo=CHICAGO), 120, "2026-03-08T09:00:00+00:00", 0.0),
        # 2026-11-01 02:00 CDT → 01:00 CST: the repeated hour is two distinct UTC hours.
        (datetime(2026, 11, 1, 1, 0, tzinfo=CHICAGO), 120, "2026-11-01T07:45:00+00:00", 1.0),
        (datetime(2026, 11, 1, 1, 0, tzinfo=CHICAGO), 120, "2026-11-01T08:00:00+00:00", 0.0),
        # Across UTC midnight: 23:50 for 20 minutes covers 10 minutes of the 00:00 interval.
        (datetime(2026, 6, 30, 23, 50, tzinfo=UTC), 20, "2026-07-01T00:00:00+00:00", 2 / 3),
        (datetime(2026, 6, 30, 23, 50, tzinfo=UTC), 20, "2026-06-30T23:45:00+00:00", 2 / 3),
    ],
    ids=[
        "dst-spring-last",
        "dst-spring-after",
        "dst-fall-last",
        "dst-fall-after",
        "midnight-next",
        "midnight-before",
    ],
)
def test_dst_and_midnight_are_plain_utc(
    local_start: datetime, minutes: int, interval_utc: str, fte: float
) -> None:
    start = int(local_start.timestamp())
    sched = mu(((start, minutes, "q"),))
    t = epoch(interval_utc)
    assert staffing.staffed_fte([sched], STAFFED, t, t + 900) == pytest.approx(fte)


def test_interval_start_aligns_to_quarter_hours() -> None:
    assert staffing.interval_start(T0 + 899, 900) == T0
    assert staffing.interval_start(T0 + 900, 900) == T0 + 900
