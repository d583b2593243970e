"""The org generator: deterministic by seed, ids independent of the week, DST-correct weeks."""

from __future__ import annotations

from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest

from syncd.sim import generate
from syncd.sim.org import SIZES, dt_to_minutes, minutes_to_dt
from syncd.sim.wfm import iter_shifts


def test_same_seed_and_anchor_give_byte_identical_state() -> None:
    a = orjson.dumps(generate("small", 1, date(2026, 3, 10)).snapshot())
    b = orjson.dumps(generate("small", 1, date(2026, 3, 10)).snapshot())
    assert a == b
    assert a != orjson.dumps(generate("small", 2, date(2026, 3, 10)).snapshot())


def test_ids_do_not_depend_on_the_anchor() -> None:
    a = generate("small", 1, date(2026, 3, 10))
    b = generate("small", 1, date(2026, 7, 1))
    assert list(a.trunk_bases) == list(b.trunk_bases)
    assert list(a.campaigns) == list(b.campaigns)
    assert [bu.id for bu in a.bus] == [bu.id for bu in b.bus]
    assert a.bus[0].agent_ids == b.bus[0].agent_ids
    assert a.bus[0].schedules[0].id != b.bus[0].schedules[0].id  # schedules are per week


@pytest.mark.parametrize("size", ["small", "medium"])
def test_sizes(size: str) -> None:
    org = generate(size, 1, date(2026, 3, 10))
    spec = SIZES[size]
    assert sum(len(bu.agent_ids) for bu in org.bus) == spec.agents
    assert len(org.trunk_bases) == len(org.trunks) == spec.trunk_bases
    assert len(org.sites) == spec.sites
    assert len(org.campaigns) == spec.campaigns
    for tb in org.trunk_bases.values():
        assert tb["trunkType"] == "EXTERNAL"
        assert tb["trunkMetabase"]["id"] == "external_sip_pcv_byoc_carrier.json"
        assert len(tb["properties"]["trunk_transport_serverProxyList"]["value"]["instance"]) == 2
    assert all(r["distribution"] == "SEQUENTIAL" for r in org.routes.values())


def test_chicago_week_across_dst_is_167_hours_and_shifts_keep_local_times() -> None:
    org = generate("small", 1, date(2026, 3, 10))
    chicago = next(bu for bu in org.bus if bu.time_zone == "America/Chicago")
    tz = ZoneInfo("America/Chicago")
    sched = chicago.schedules[0]
    assert sched.week_date == date(2026, 3, 8)  # Sunday
    assert sched.end_utc - sched.start_utc == timedelta(hours=167)
    nxt = chicago.schedules[1]
    assert nxt.end_utc - nxt.start_utc == timedelta(hours=168)
    assert nxt.start_utc == sched.end_utc
    singapore = next(bu for bu in org.bus if bu.time_zone == "Asia/Singapore")
    assert singapore.schedules[0].week_date == date(2026, 3, 9)  # Monday
    # An agent's local start time is the same (up to jitter) before and after the switch.
    for run in chicago.schedules[0].shifts[:50]:
        local = [minutes_to_dt(start).astimezone(tz) for _, _, start, _ in iter_shifts(run)]
        minutes = [t.hour * 60 + t.minute for t in local]
        assert max(minutes) - min(minutes) <= 45 or min(minutes) < 60  # late shifts wrap


def test_realistic_shapes() -> None:
    org = generate("small", 1, date(2026, 3, 10))
    crossing_midnight = crossing_week = 0
    for bu in org.bus:
        tz = ZoneInfo(bu.time_zone)
        for sched in bu.schedules:
            end_min = dt_to_minutes(sched.end_utc)
            for run in sched.shifts:
                for _, _, start, length in iter_shifts(run):
                    assert length in (495, 510, 525, 540) or 480 <= length <= 540
                    s, e = (
                        minutes_to_dt(start).astimezone(tz),
                        minutes_to_dt(start + length).astimezone(tz),
                    )
                    crossing_midnight += s.date() != e.date()
                    crossing_week += start < end_min < start + length
    assert crossing_midnight > 0
    assert crossing_week > 0


def test_week_start_is_utc_instant_of_local_midnight() -> None:
    org = generate("small", 1, date(2026, 3, 10))
    for bu in org.bus:
        for sched in bu.schedules:
            local = sched.start_utc.astimezone(ZoneInfo(bu.time_zone))
            assert (local.hour, local.minute) == (0, 0)
            assert local.strftime("%A") == bu.start_day
            assert sched.start_utc.tzinfo == UTC
