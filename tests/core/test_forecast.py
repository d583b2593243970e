"""core.forecast: intervals of local days (DST: 23 h and 25 h), staffing, capacity, shortfall."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from syncd.core import allocation, forecast, model, planner

ON_QUEUE = model.ActivityCode(id="oq", name="On Queue", category="OnQueueWork")
BREAK = model.ActivityCode(id="br", name="Break", category="Break")
TRUNKS = (
    allocation.TrunkSpec(trunk_base_id="tb-a", capacity=10, priority=1),
    allocation.TrunkSpec(trunk_base_id="tb-b", capacity=10, priority=2),
)


def _settings(**group: object) -> planner.PlannerSettings:
    spec = {
        "name": "g",
        "management_units": ("mu",),
        "campaigns": (),
        "routes": (),
        "trunks": TRUNKS,
        "lines_per_agent": 1.0,
        "min_lines": 0,
        "max_lines": 100,
        **group,
    }
    return planner.PlannerSettings(groups=(planner.GroupSpec(**spec),), interval_s=900)  # type: ignore[arg-type]


def _at(day: dt.date, hh: int, mm: int, tz: str, *, fold: int = 0) -> int:
    local = dt.datetime.combine(day, dt.time(hh, mm, fold=fold), zoneinfo.ZoneInfo(tz))
    return int(local.timestamp())


def _schedule(
    agents: int, start: int, minutes: int, *, window: tuple[int, int], code: str = "oq"
) -> model.ManagementUnitSchedule:
    return model.ManagementUnitSchedule(
        business_unit_id="bu",
        management_unit_id="mu",
        start=window[0],
        end=window[1],
        agents=tuple(
            model.AgentSchedule(user_id=f"u{i}", activities=((start, minutes, code),))
            for i in range(agents)
        ),
    )


def _day(
    day: dt.date,
    tz: str,
    schedules: list[model.ManagementUnitSchedule],
    *,
    health: dict[str, model.TrunkHealth] | None = None,
    **group: object,
) -> tuple[int, int, tuple[forecast.Interval, ...]]:
    start, end = forecast.day_window(day, tz)
    fc = forecast.forecast(
        settings=_settings(**group),
        schedules=schedules,
        activity_codes=(ON_QUEUE, BREAK),
        health_states=health or {},
        start=start,
        end=end,
        now=start,
    )
    group = fc.group("g")
    assert group is not None
    return start, end, group.intervals


@pytest.mark.parametrize(
    ("tz", "day", "hours", "labels_around_change"),
    [
        # Spring forward at 02:00 → 03:00: 01:45 is followed by 03:00.
        ("America/Chicago", dt.date(2026, 3, 8), 23, ["01:30", "01:45", "03:00", "03:15"]),
        # Fall back at 02:00 → 01:00: the hour 01:00-02:00 happens twice.
        ("America/Chicago", dt.date(2026, 11, 1), 25, ["01:45", "01:00", "01:15"]),
        # Paris: 02:00 → 03:00 in March, 03:00 → 02:00 in October.
        ("Europe/Paris", dt.date(2026, 3, 29), 23, ["01:45", "03:00"]),
        ("Europe/Paris", dt.date(2026, 10, 25), 25, ["02:45", "02:00", "02:15"]),
        # Singapore has no DST: every day is 24 h (and it is UTC+8, ahead of the date line's
        # other side: its day starts at 16:00 UTC the day before).
        ("Asia/Singapore", dt.date(2026, 3, 8), 24, ["01:45", "02:00", "02:15"]),
    ],
)
def test_local_day_has_the_right_intervals(
    tz: str, day: dt.date, hours: int, labels_around_change: list[str]
) -> None:
    start, end, intervals = _day(day, tz, [])
    assert end - start == hours * 3600
    assert len(intervals) == hours * 4
    assert [iv.start for iv in intervals] == list(range(start, end, 900))
    labels = [forecast.local_time(iv.start, tz).strftime("%H:%M") for iv in intervals]
    assert labels[0] == "00:00"
    assert labels[-1] == "23:45"
    assert forecast.local_date(intervals[-1].start, tz) == day
    assert forecast.local_date(end, tz) == day + dt.timedelta(days=1)
    text = " ".join(labels)
    assert " ".join(labels_around_change) in text
    # Every local quarter hour that exists that day appears, the repeated hour twice.
    assert len(set(labels)) == min(hours, 24) * 4


def test_singapore_day_starts_the_previous_utc_day() -> None:
    start, end = forecast.day_window(dt.date(2026, 6, 1), "Asia/Singapore")
    assert dt.datetime.fromtimestamp(start, dt.UTC) == dt.datetime(2026, 5, 31, 16, tzinfo=dt.UTC)
    assert end - start == 86400


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        ("America/Chicago", dt.date(2026, 3, 8)),
        ("America/Chicago", dt.date(2026, 11, 1)),
        ("Europe/Paris", dt.date(2026, 3, 29)),
        ("Europe/Paris", dt.date(2026, 10, 25)),
        ("Asia/Singapore", dt.date(2026, 3, 8)),
    ],
)
def test_a_shift_in_local_time_lands_on_its_local_intervals(tz: str, day: dt.date) -> None:
    """Six agents working 08:00-12:00 local on the DST day itself: their lines are needed
    from the 08:00 interval to the 11:45 one, whatever the UTC offset did overnight."""
    shift_start = _at(day, 8, 0, tz)
    window = forecast.day_window(day, tz)
    _, _, intervals = _day(day, tz, [_schedule(6, shift_start, 240, window=window)])
    by_label = {forecast.local_time(iv.start, tz).strftime("%H:%M"): iv for iv in intervals}
    assert by_label["07:45"].staffed_fte == 0.0
    assert by_label["07:45"].lines == 0
    for label in ("08:00", "09:30", "11:45"):
        assert by_label[label].staffed_fte == pytest.approx(6.0)
        assert by_label[label].lines == 6
        assert by_label[label].allocation == (("tb-a", 6), ("tb-b", 0))
    assert by_label["12:00"].lines == 0
    assert sum(1 for iv in intervals if iv.lines) == 16  # 4 h of quarter hours


def test_the_repeated_hour_counts_each_occurrence_once() -> None:
    """On Chicago's fall-back day an agent on 01:00-02:00 CDT (the first 01:00) is staffed in
    the first run of 01:xx intervals only."""
    day = dt.date(2026, 11, 1)
    tz = "America/Chicago"
    first_one = _at(day, 1, 0, tz, fold=0)
    window = forecast.day_window(day, tz)
    _, _, intervals = _day(day, tz, [_schedule(3, first_one, 60, window=window)])
    ones = [iv for iv in intervals if forecast.local_time(iv.start, tz).hour == 1]
    assert len(ones) == 8
    assert [iv.lines for iv in ones] == [3, 3, 3, 3, 0, 0, 0, 0]


def test_shortfall_uses_todays_health_all_day() -> None:
    day = dt.date(2026, 6, 1)
    tz = "Europe/Paris"
    window = forecast.day_window(day, tz)
    failed = {
        "tb-a": model.TrunkHealth(trunk_base_id="tb-a", state=model.HealthState.FAILED, since=0)
    }
    sched = _schedule(15, _at(day, 9, 0, tz), 60, window=window)
    _, _, intervals = _day(day, tz, [sched], health=failed)
    peak = [iv for iv in intervals if iv.lines]
    assert {iv.capacity for iv in intervals} == {10}
    assert [(iv.lines, iv.shortfall) for iv in peak] == [(15, 5)] * 4
    assert peak[0].allocation == (("tb-a", 0), ("tb-b", 10))
    worst = forecast.largest_shortfall(intervals, *window)
    assert worst == forecast.Worst(lines=5, start=_at(day, 9, 0, tz))
    # A window that ends before the peak sees none; one that starts inside it sees it.
    assert forecast.largest_shortfall(intervals, window[0], _at(day, 9, 0, tz)).lines == 0
    inside = forecast.largest_shortfall(intervals, _at(day, 9, 20, tz), window[1])
    assert inside == forecast.Worst(lines=5, start=_at(day, 9, 15, tz))


def test_largest_shortfall_starts_at_the_first_interval_reaching_it() -> None:
    def iv(k: int, shortfall: int) -> forecast.Interval:
        return forecast.Interval(
            start=k * 900,
            end=(k + 1) * 900,
            staffed_fte=1.0,
            lines=10 + shortfall,
            capacity=10,
            allocation=(),
            shortfall=shortfall,
        )

    intervals = [iv(0, 0), iv(1, 2), iv(2, 7), iv(3, 7), iv(4, 3)]
    assert forecast.largest_shortfall(intervals, 0, 5 * 900) == forecast.Worst(lines=7, start=1800)
    assert forecast.largest_shortfall(intervals, 0, 1800) == forecast.Worst(lines=2, start=900)
    assert forecast.largest_shortfall([], 0, 900) == forecast.Worst(lines=0, start=None)


def test_intervals_without_fetched_schedules_are_unknown_not_empty() -> None:
    """The reader fetched from 10:00: earlier intervals are unknown (not 'nobody staffed'),
    and min_lines does not invent demand there."""
    day = dt.date(2026, 6, 1)
    tz = "Asia/Singapore"
    _, end = forecast.day_window(day, tz)
    fetched_from = _at(day, 10, 7, tz)
    sched = _schedule(2, _at(day, 10, 0, tz), 60, window=(fetched_from, end + 86400))
    _, _, intervals = _day(day, tz, [sched], min_lines=1)
    by_label = {forecast.local_time(iv.start, tz).strftime("%H:%M"): iv for iv in intervals}
    assert by_label["09:45"].known is False
    assert by_label["09:45"].staffed_fte is None
    assert (by_label["09:45"].lines, by_label["09:45"].shortfall) == (0, 0)
    # The interval the fetch began in is known (its activities are whole), and after it.
    assert by_label["10:00"].staffed_fte == pytest.approx(2.0)
    assert by_label["14:00"].known is True
    assert by_label["14:00"].lines == 1  # min_lines
    assert sum(1 for iv in intervals if not iv.known) == 40


def test_unknown_time_zone_is_named() -> None:
    with pytest.raises(ValueError, match="Mars/Olympus"):
        forecast.day_window(dt.date(2026, 1, 1), "Mars/Olympus")


def test_forecast_matches_the_planner_for_the_current_interval() -> None:
    """The forecast's interval at now + lead time is what the planner decides (no hysteresis,
    no campaigns: nothing for the planner to hold back)."""
    day = dt.date(2026, 6, 1)
    tz = "Europe/Paris"
    window = forecast.day_window(day, tz)
    sched = _schedule(13, _at(day, 9, 0, tz), 120, window=window)
    settings = _settings(max_lines=50, min_lines=2)
    now = _at(day, 9, 40, tz)
    p = planner.plan(
        settings=settings,
        schedules=[sched],
        activity_codes=[ON_QUEUE],
        health_states={},
        trunk_bases=(),
        routes=(),
        campaigns=(),
        now=now,
    )
    fc = forecast.forecast(
        settings=settings,
        schedules=[sched],
        activity_codes=[ON_QUEUE],
        health_states={},
        start=window[0],
        end=window[1],
        now=now,
    )
    (decision,) = p.decisions
    group = fc.group("g")
    assert group is not None
    (iv,) = [iv for iv in group.intervals if iv.start == decision.interval_start]
    assert (iv.staffed_fte, iv.lines, iv.allocation, iv.shortfall) == (
        decision.staffed_fte,
        decision.desired_lines,
        decision.allocation,
        decision.shortfall,
    )
