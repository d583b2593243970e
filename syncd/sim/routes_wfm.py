"""The /api/v2/workforcemanagement resources of the simulator.

Role: business units, management units, activity codes, schedule listings and metadata, agent
schedule query/search (inline `result` or a presigned gzip `downloadUrl`) and the schedule
update upload flow, with the paths, parameters and JSON of api-subset.json. It must not check
tokens or rate limits (the middleware does) and must not import anything from the rest of syncd.
"""

from __future__ import annotations

import asyncio
import gzip
import uuid
from array import array
from datetime import date, timedelta
from typing import Any

import orjson
from aiohttp import web

from syncd.sim import wfm
from syncd.sim.http import (
    ApiError,
    bad_request,
    get_sim,
    json_object,
    json_response,
    not_found,
    parse_datetime,
    presigned_url,
    query_bool,
    raw_json_response,
)
from syncd.sim.org import (
    JSON,
    BusinessUnit,
    ManagementUnit,
    Schedule,
    derived_uuid,
    dt_to_minutes,
    week_start_date,
)
from syncd.sim.state import Sim

W = "/api/v2/workforcemanagement"


def _bu(sim: Sim, request: web.Request) -> BusinessUnit:
    bu_id = request.match_info["businessUnitId"]
    bu = sim.org.bu(bu_id)
    if bu is None:
        raise not_found("business unit", bu_id)
    return bu


def _mu(sim: Sim, mu_id: str) -> tuple[BusinessUnit, ManagementUnit]:
    found = sim.org.mu(mu_id)
    if found is None:
        raise not_found("management unit", mu_id)
    return found


def _division_ref(sim: Sim) -> JSON:
    return {"id": sim.org.division["id"], "selfUri": sim.org.division["selfUri"]}


def _mu_json(sim: Sim, bu: BusinessUnit, mu: ManagementUnit, expand: bool) -> JSON:
    out: JSON = {
        "id": mu.id,
        "name": mu.name,
        "businessUnit": {"id": bu.id, "selfUri": wfm.bu_uri(bu)},
        "division": _division_ref(sim),
    }
    if expand:
        out["settings"] = {"metadata": {"version": mu.version}}
    out["metadata"] = {"version": mu.version}
    out["selfUri"] = f"{W}/managementunits/{mu.id}"
    return out


async def list_bus(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    return json_response(
        {
            "entities": [
                {
                    "id": bu.id,
                    "name": bu.name,
                    "authorized": True,
                    "division": _division_ref(sim),
                    "selfUri": wfm.bu_uri(bu),
                }
                for bu in sim.org.bus
            ]
        }
    )


async def get_bu(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu = _bu(sim, request)
    out: JSON = {"id": bu.id, "name": bu.name}
    # As in the real API, settings (time zone, start day of week) come only with expand=settings.
    expand = [e for raw in request.query.getall("expand", []) for e in raw.split(",")]
    if any(e == "settings" or e.startswith("settings.") for e in expand):
        out["settings"] = wfm.bu_settings(bu)
    out["division"] = _division_ref(sim)
    out["selfUri"] = wfm.bu_uri(bu)
    return json_response(out)


async def bu_mus(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu = _bu(sim, request)
    return json_response({"entities": [_mu_json(sim, bu, mu, False) for mu in bu.mus]})


async def list_mus(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    # Paging parameters are accepted and ignored: "Deprecated, paging is not supported".
    return json_response(
        {"entities": [_mu_json(sim, bu, mu, False) for bu in sim.org.bus for mu in bu.mus]}
    )


async def get_mu(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu, mu = _mu(sim, request.match_info["managementUnitId"])
    expand = [e for raw in request.query.getall("expand", []) for e in raw.split(",")]
    return json_response(_mu_json(sim, bu, mu, any(e.startswith("settings") for e in expand)))


async def mu_users(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu, mu = _mu(sim, request.match_info["managementUnitId"])
    return json_response(
        {"entities": [wfm.user_ref(a) for a in bu.agent_ids[mu.first_agent : mu.end_agent]]}
    )


async def activity_codes(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu = _bu(sim, request)
    listing = {"entities": [wfm.activity_code_json(bu, i) for i in range(len(bu.activity_codes))]}
    if query_bool(request, "forceDownloadService"):
        return json_response({"downloadUrl": _store(sim, request, orjson.dumps(listing))})
    return json_response(listing)


def _store(sim: Sim, request: web.Request, body: bytes, *, gzipped: bool = False) -> str:
    data = body if gzipped else wfm.gzip_chunks([body])
    key, signature = sim.put_blob(data)
    return presigned_url(request, "/sim-downloads", key, signature, sim.options.download_ttl_s)


def _week(request: web.Request) -> date | None:
    """The weekId path parameter: a date, or None for `recent`."""
    raw = request.match_info["weekId"]
    if raw == "recent":
        return None
    parsed = wfm.parse_week(raw)
    if parsed is None:
        raise bad_request(f"weekId '{raw}' must be a date in yyyy-MM-dd format or 'recent'.")
    return parsed


def _overlaps(sched: Schedule, first: date, last_exclusive: date) -> bool:
    end = sched.week_date + timedelta(days=7 * sched.week_count)
    return sched.week_date < last_exclusive and end > first


async def list_schedules(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu = _bu(sim, request)
    week = _week(request)
    if week is None:
        # `recent`: up to 26 weeks either side, or the given earliest/latest week dates.
        anchor = week_start_date(sim.now().date(), bu.start_day)
        first = _date_param(request, "earliestWeekDate") or anchor - timedelta(weeks=26)
        last = (_date_param(request, "latestWeekDate") or anchor + timedelta(weeks=26)) + timedelta(
            days=7
        )
    else:
        first = week_start_date(week, bu.start_day)
        last = first + timedelta(days=7)
    only_published = query_bool(request, "includeOnlyPublished")
    entities = [
        wfm.schedule_list_item(bu, s)
        for s in bu.schedules
        if _overlaps(s, first, last) and (s.published or not only_published)
    ]
    return json_response({"entities": entities})


def _date_param(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if not raw:
        return None
    parsed = wfm.parse_week(raw)
    if parsed is None:
        raise bad_request(f"{name} '{raw}' must be a date in yyyy-MM-dd format.")
    return parsed


def _schedule(sim: Sim, request: web.Request) -> tuple[BusinessUnit, Schedule]:
    bu = _bu(sim, request)
    sched_id = request.match_info["scheduleId"]
    sched = next((s for s in bu.schedules if s.id == sched_id), None)
    week = _week(request)
    if sched is None or (
        week is not None and week_start_date(week, bu.start_day) != sched.week_date
    ):
        raise not_found("schedule", sched_id)
    return bu, sched


async def get_schedule(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu, sched = _schedule(sim, request)
    expand = request.query.get("expand", "")
    return json_response(wfm.schedule_metadata_json(bu, sched, "managementUnits.agents" in expand))


def _complete(
    operation: str, *, result: bytes | None = None, url: str | None = None
) -> web.Response:
    """`{status, operationId, result|downloadUrl}` around a pre-rendered result (no re-parse)."""
    head = b'{"status":"Complete","operationId":' + orjson.dumps(operation)
    if url is not None:
        return raw_json_response(head + b',"downloadUrl":' + orjson.dumps(url) + b"}")
    return raw_json_response(head + b',"result":' + (result or b"null") + b"}")


async def _answer(
    sim: Sim, request: web.Request, agent_count: int, head: JSON, items: Any
) -> web.StreamResponse:
    operation = str(uuid.uuid4())
    if query_bool(request, "forceAsync"):
        # The result would arrive on a user-scoped topic, which a client-credentials token has no
        # user for; the simulator never sends it.
        return json_response({"status": "Processing", "operationId": operation, "progress": 0})
    if agent_count > sim.options.inline_max_agents or query_bool(request, "forceDownloadService"):
        body = await asyncio.to_thread(
            lambda: wfm.gzip_chunks(wfm.stream_object(head, "agentSchedules", items))
        )
        return _complete(operation, url=_store(sim, request, body, gzipped=True))
    return _complete(operation, result=b"".join(wfm.stream_object(head, "agentSchedules", items)))


async def query_schedule(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu, sched = _schedule(sim, request)
    body = await json_object(request)
    mu_id = body.get("managementUnitId")
    if not isinstance(mu_id, str):
        raise bad_request("managementUnitId is required.")
    mu = next((m for m in bu.mus if m.id == mu_id), None)
    if mu is None:
        raise bad_request(f"Management unit {mu_id} is not in business unit {bu.id}.")
    if body.get("teamIds"):
        raise bad_request(
            "The requested teams are empty or have no members in the management unit.",
            "wfm.team.empty.or.no.members.in.management.unit",
        )
    indexes = _agent_indexes(bu, range(mu.first_agent, mu.end_agent), body.get("userIds"))
    head = {"businessUnitTimeZone": bu.time_zone}
    items = (wfm.query_agent_json(sim.org, bu, mu, sched, i) for i in indexes)
    return await _answer(sim, request, len(indexes), head, items)


def _agent_indexes(bu: BusinessUnit, scope: range, user_ids: Any) -> list[int]:
    if user_ids is None:
        return list(scope)
    if not isinstance(user_ids, list) or not all(isinstance(u, str) for u in user_ids):
        raise bad_request("userIds must be a list of user ids.")
    wanted = set(user_ids)
    return [i for i in scope if bu.agent_ids[i] in wanted]


async def _search(request: web.Request, bu: BusinessUnit, scope: range) -> web.StreamResponse:
    sim = get_sim(request)
    body = await json_object(request)
    start = parse_datetime(body.get("startDate"), "startDate")
    end = parse_datetime(body.get("endDate"), "endDate")
    if end <= start:
        raise bad_request("endDate must be after startDate.")
    indexes = _agent_indexes(bu, scope, body.get("userIds"))
    start_min, end_min = dt_to_minutes(start), dt_to_minutes(end) + (1 if end.second else 0)
    schedules = wfm.published_overlapping(bu, start_min, end_min)
    head = {
        "businessUnitTimeZone": bu.time_zone,
        "publishedSchedules": wfm.published_refs(bu, schedules),
    }
    items = (
        wfm.search_agent_json(sim.org, bu, i, schedules, start_min=start_min, end_min=end_min)
        for i in indexes
    )
    return await _answer(sim, request, len(indexes), head, items)


async def bu_search(request: web.Request) -> web.StreamResponse:
    bu = _bu(get_sim(request), request)
    return await _search(request, bu, range(len(bu.agent_ids)))


async def mu_search(request: web.Request) -> web.StreamResponse:
    bu, mu = _mu(get_sim(request), request.match_info["managementUnitId"])
    return await _search(request, bu, range(mu.first_agent, mu.end_agent))


# --- schedule update: upload URL, then process the upload --------------------------------


async def update_upload_url(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu, sched = _schedule(sim, request)
    body = await json_object(request)
    length = body.get("contentLengthBytes")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise bad_request("contentLengthBytes is required and must be a positive integer.")
    key, signature = sim.put_blob(b"")
    sim.uploads[key] = (bu.id, sched.id, key)
    return json_response(
        {
            "uploadKey": key,
            "url": presigned_url(
                request, "/sim-uploads", key, signature, sim.options.download_ttl_s
            ),
            "headers": {"Content-Type": "application/json", "Content-Encoding": "gzip"},
        }
    )


async def update_schedule(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    bu, sched = _schedule(sim, request)
    body = await json_object(request)
    key = body.get("uploadKey")
    if not isinstance(key, str) or sim.uploads.get(key, ("", "", ""))[1] != sched.id:
        raise bad_request("uploadKey is required and must come from this schedule's uploadurl.")
    blob = sim.blobs.get(key)
    if blob is None or not blob.body:
        raise bad_request("Nothing was uploaded for this uploadKey.")
    # aiohttp already inflated a body sent with Content-Encoding: gzip; a raw gzip body is
    # recognised by its magic number.
    raw = gzip.decompress(blob.body) if blob.body[:2] == b"\x1f\x8b" else blob.body
    try:
        upload = orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError, EOFError):
        raise bad_request("The uploaded body must be gzip-encoded JSON.") from None
    if not isinstance(upload, dict):
        raise bad_request("The uploaded body must be a JSON object.")
    version = (upload.get("metadata") or {}).get("version")
    if version != sched.version:
        raise ApiError(
            409,
            "wfm.schedule.version.mismatch",
            f"The version supplied ({version}) does not match the current version "
            f"({sched.version}) of the schedule.",
        )
    _apply_upload(sim, bu, sched, upload)
    del sim.uploads[key]
    sched.version += 1
    sched.date_modified = sim.now()
    if isinstance(upload.get("published"), bool):
        sched.published = upload["published"]
    if isinstance(upload.get("description"), str):
        sched.description = upload["description"]
    sim.notify_schedule(bu, sched)
    return json_response(
        {
            "status": "Complete",
            "operationId": str(uuid.uuid4()),
            "result": wfm.schedule_metadata_json(bu, sched, False),
        }
    )


def _apply_upload(sim: Sim, bu: BusinessUnit, sched: Schedule, upload: JSON) -> None:
    index_of = {a: i for i, a in enumerate(bu.agent_ids)}
    code_index = {c.id: i for i, c in enumerate(bu.activity_codes)}
    for agent in upload.get("agentSchedules") or []:
        i = index_of.get(agent.get("userId"))
        if i is None:
            raise bad_request(f"User {agent.get('userId')} is not in business unit {bu.id}.")
        if agent.get("delete"):
            sched.shifts[i] = array("i")
            continue
        shifts: dict[str, list[int]] = {}
        run = sched.shifts[i]
        for pos, serial, _start, _length in wfm.iter_shifts(run):
            count = run[pos + 3]
            shifts[derived_uuid("shift", sim.org.size, sim.org.seed, serial)] = list(
                run[pos : pos + 4 + 3 * count]
            )
        for shift in agent.get("shifts") or []:
            shift_id = shift.get("id")
            if shift.get("delete"):
                shifts.pop(shift_id, None)
                continue
            start = dt_to_minutes(parse_datetime(shift.get("startDate"), "shift startDate"))
            flat: list[int] = []
            for act in shift.get("activities") or []:
                code = code_index.get(act.get("activityCodeId"))
                if code is None:
                    raise bad_request(f"Unknown activityCodeId {act.get('activityCodeId')}.")
                act_start = dt_to_minutes(
                    parse_datetime(act.get("startDate"), "activity startDate")
                )
                flat.extend((act_start - start, int(act.get("lengthMinutes", 0)), code))
            existing = shifts.get(shift_id) if isinstance(shift_id, str) else None
            serial = existing[0] if existing is not None else sim.org.next_serial
            if existing is None:
                sim.org.next_serial += 1
                shift_id = derived_uuid("shift", sim.org.size, sim.org.seed, serial)
            shifts[str(shift_id)] = [
                serial,
                start,
                int(shift.get("lengthMinutes", 0)),
                len(flat) // 3,
                *flat,
            ]
        new: array[int] = array("i")
        for encoded in sorted(shifts.values(), key=lambda e: e[1]):
            new.extend(encoded)
        sched.shifts[i] = new


def add_routes(router: web.UrlDispatcher) -> None:
    bu = f"{W}/businessunits/{{businessUnitId}}"
    sched = f"{bu}/weeks/{{weekId}}/schedules/{{scheduleId}}"
    router.add_get(f"{W}/businessunits", list_bus)
    router.add_get(bu, get_bu)
    router.add_get(f"{bu}/managementunits", bu_mus)
    router.add_get(f"{bu}/activitycodes", activity_codes)
    router.add_get(f"{bu}/weeks/{{weekId}}/schedules", list_schedules)
    router.add_get(sched, get_schedule)
    router.add_post(f"{sched}/agentschedules/query", query_schedule)
    router.add_post(f"{sched}/update/uploadurl", update_upload_url)
    router.add_post(f"{sched}/update", update_schedule)
    router.add_post(f"{bu}/agentschedules/search", bu_search)
    router.add_get(f"{W}/managementunits", list_mus)
    router.add_get(f"{W}/managementunits/{{managementUnitId}}", get_mu)
    router.add_get(f"{W}/managementunits/{{managementUnitId}}/users", mu_users)
    router.add_post(f"{W}/managementunits/{{managementUnitId}}/agentschedules/search", mu_search)
