"""JSON rendering of the simulated WFM data (business units, schedules, agent shifts).

Role: turn the compact org model into exactly the JSON shapes of api-subset.json
(BusinessUnitResponse, BuScheduleListItem, BuAgentScheduleShift, ...), lazily, one agent at a
time, so a full-BU result of the large org is produced as a stream of small orjson chunks and
never exists as one big tree of Python objects. It must not know about HTTP, tokens or rate
limits, must not mutate the org, and must not import anything from the rest of syncd.
"""

from __future__ import annotations

import zlib
from array import array
from collections.abc import Iterable, Iterator
from datetime import date
from functools import lru_cache

import orjson

from syncd.sim.org import (
    JSON,
    BusinessUnit,
    ManagementUnit,
    Org,
    Schedule,
    derived_uuid,
    iso_s,
    minutes_to_dt,
)

WFM = "/api/v2/workforcemanagement"


def user_ref(user_id: str) -> JSON:
    return {"id": user_id, "selfUri": f"/api/v2/users/{user_id}"}


def bu_uri(bu: BusinessUnit) -> str:
    return f"{WFM}/businessunits/{bu.id}"


def mu_ref(mu: ManagementUnit) -> JSON:
    return {"id": mu.id, "selfUri": f"{WFM}/managementunits/{mu.id}"}


def schedule_uri(bu: BusinessUnit, sched: Schedule) -> str:
    return f"{bu_uri(bu)}/weeks/{sched.week_date.isoformat()}/schedules/{sched.id}"


def metadata(version: int, modified: str, created: str | None = None) -> JSON:
    out: JSON = {"version": version, "dateModified": modified}
    if created is not None:
        out["dateCreated"] = created
    return out


def activity_code_json(bu: BusinessUnit, index: int) -> JSON:
    code = bu.activity_codes[index]
    return {
        "id": code.id,
        "name": code.name,
        "active": True,
        "defaultCode": code.default,
        "category": code.category,
        "lengthInMinutes": 15
        if code.category == "Break"
        else 30
        if code.category == "Meal"
        else 60,
        "countsAsPaidTime": code.paid,
        "countsAsWorkTime": code.work,
        "agentTimeOffSelectable": code.category == "TimeOff",
        "countsTowardShrinkage": code.category not in ("OnQueueWork",),
        "plannedShrinkage": code.category not in ("OnQueueWork", "Unavailable"),
        "interruptible": code.category in ("OffQueueWork", "Training"),
        "secondaryPresences": [],
        "metadata": {"version": 1},
        "selfUri": f"{bu_uri(bu)}/activitycodes/{code.id}",
    }


def bu_settings(bu: BusinessUnit) -> JSON:
    return {
        "startDayOfWeek": bu.start_day,
        "timeZone": bu.time_zone,
        "shortTermForecasting": {"defaultHistoryWeeks": 8},
        "scheduling": {
            "messageSeverities": [],
            "syncTimeOffProperties": [],
            "serviceGoalImpact": {
                "serviceLevel": {"increaseByPercent": 10.0, "decreaseByPercent": 10.0},
                "averageSpeedOfAnswer": {"increaseByPercent": 10.0, "decreaseByPercent": 10.0},
                "abandonRate": {"increaseByPercent": 10.0, "decreaseByPercent": 10.0},
            },
            "allowWorkPlanPerMinuteGranularity": False,
            "activitySmoothingType": "ReduceConcurrentActivitiesAcrossBu",
            "induceScheduleVariability": False,
        },
        "metadata": {"version": 1},
    }


def schedule_list_item(bu: BusinessUnit, sched: Schedule) -> JSON:
    return {
        "id": sched.id,
        "weekDate": sched.week_date.isoformat(),
        "weekCount": sched.week_count,
        "description": sched.description,
        "published": sched.published,
        "generationResults": {"failed": False, "messageCount": 0, "messageSeverityCounts": []},
        "metadata": metadata(sched.version, iso_s(sched.date_modified), iso_s(sched.date_created)),
        "selfUri": schedule_uri(bu, sched),
    }


def schedule_metadata_json(bu: BusinessUnit, sched: Schedule, with_agents: bool) -> JSON:
    out = schedule_list_item(bu, sched)
    self_uri = out.pop("selfUri")
    units = []
    for mu in bu.mus:
        summary: JSON = {
            "managementUnit": mu_ref(mu),
            "agentCount": mu.end_agent - mu.first_agent,
            "startDate": iso_s(sched.start_utc),
            "endDate": iso_s(sched.end_utc),
        }
        if with_agents:
            summary["agents"] = [user_ref(a) for a in bu.agent_ids[mu.first_agent : mu.end_agent]]
        units.append(summary)
    out["managementUnits"] = units
    out["selfUri"] = self_uri
    return out


def iter_shifts(run: array[int]) -> Iterator[tuple[int, int, int, int]]:
    """(position, serial, start minute, length) of each shift in a compact run."""
    pos = 0
    n = len(run)
    while pos < n:
        yield pos, run[pos], run[pos + 1], run[pos + 2]
        pos += 4 + 3 * run[pos + 3]


@lru_cache(maxsize=1 << 16)
def iso_minute(epoch_minutes: int) -> str:
    """WFM timestamp of a UTC epoch minute; cached, as shifts start on few distinct minutes."""
    return iso_s(minutes_to_dt(epoch_minutes))


def shift_json(org: Org, bu: BusinessUnit, sched: Schedule, run: array[int], pos: int) -> JSON:
    serial, start, length, count = run[pos], run[pos + 1], run[pos + 2], run[pos + 3]
    activities = []
    for i in range(count):
        offset, minutes, code_index = run[pos + 4 + 3 * i : pos + 7 + 3 * i]
        code = bu.activity_codes[code_index]
        activities.append(
            {
                "startDate": iso_minute(start + offset),
                "lengthMinutes": minutes,
                "description": code.name,
                "activityCodeId": code.id,
                "paid": code.paid,
                "payableMinutes": minutes if code.paid else 0,
            }
        )
    return {
        "id": derived_uuid("shift", org.size, org.seed, serial),
        "startDate": iso_minute(start),
        "lengthMinutes": length,
        "activities": activities,
        "manuallyEdited": False,
        "schedule": {
            "id": sched.id,
            "weekDate": sched.week_date.isoformat(),
            "selfUri": schedule_uri(bu, sched),
        },
    }


def published_overlapping(bu: BusinessUnit, start_min: int, end_min: int) -> list[Schedule]:
    """Published schedules whose week overlaps [start, end) (UTC epoch minutes)."""
    out = []
    for sched in bu.schedules:
        s0 = int(sched.start_utc.timestamp() // 60)
        s1 = int(sched.end_utc.timestamp() // 60)
        # A shift can start late on the last day and run into the next week: widen by a day.
        if sched.published and s0 < end_min and s1 + 1440 > start_min:
            out.append(sched)
    return out


def search_agent_json(
    org: Org,
    bu: BusinessUnit,
    index: int,
    schedules: list[Schedule],
    *,
    start_min: int,
    end_min: int,
) -> JSON:
    """BuAgentScheduleSearchResponse of one agent: the published shifts overlapping the range."""
    shifts = []
    for sched in schedules:
        run = sched.shifts[index]
        for pos, _serial, start, length in iter_shifts(run):
            if start < end_min and start + length > start_min:
                shifts.append(shift_json(org, bu, sched, run, pos))
    return {"user": user_ref(bu.agent_ids[index]), "shifts": shifts, "fullDayTimeOffMarkers": []}


def query_agent_json(
    org: Org, bu: BusinessUnit, mu: ManagementUnit, sched: Schedule, index: int
) -> JSON:
    """BuAgentScheduleQueryResponse of one agent in one schedule."""
    run = sched.shifts[index]
    plan = {
        "id": mu.work_plan_id,
        "managementUnit": mu_ref(mu),
        "selfUri": f"{WFM}/managementunits/{mu.id}/workplans/{mu.work_plan_id}",
    }
    return {
        "user": user_ref(bu.agent_ids[index]),
        "shifts": [shift_json(org, bu, sched, run, pos) for pos, *_ in iter_shifts(run)],
        "fullDayTimeOffMarkers": [],
        "workPlan": plan,
        "workPlansPerWeek": [plan],
        "metadata": metadata(sched.version, iso_s(sched.date_modified)),
    }


def published_refs(bu: BusinessUnit, schedules: list[Schedule]) -> list[JSON]:
    return [
        {
            "id": s.id,
            "weekDate": s.week_date.isoformat(),
            "weekCount": s.week_count,
            "selfUri": schedule_uri(bu, s),
        }
        for s in schedules
    ]


def stream_object(head: JSON, list_key: str, items: Iterable[JSON]) -> Iterator[bytes]:
    """`head` with `list_key` holding `items`, serialized item by item (constant memory)."""
    yield b"{" + orjson.dumps(list_key) + b":["
    first = True
    for item in items:
        if not first:
            yield b","
        first = False
        yield orjson.dumps(item)
    yield b"]"
    for key, value in head.items():
        yield b"," + orjson.dumps(key) + b":" + orjson.dumps(value)
    yield b"}"


def gzip_chunks(chunks: Iterable[bytes]) -> bytes:
    """Gzip a stream of chunks without joining them first."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # speed over size: it is loopback
    out = []
    buffer: list[bytes] = []
    size = 0
    for chunk in chunks:
        buffer.append(chunk)
        size += len(chunk)
        if size >= 1 << 16:
            out.append(compressor.compress(b"".join(buffer)))
            buffer, size = [], 0
    out.append(compressor.compress(b"".join(buffer)))
    out.append(compressor.flush())
    return b"".join(out)


def parse_week(week_id: str) -> date | None:
    try:
        return date.fromisoformat(week_id)
    except ValueError:
        return None
