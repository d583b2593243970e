"""WFM: BU settings, schedule listings and metadata, query and search, downloadUrl + gzip."""

from __future__ import annotations

import gzip
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
from sim_helpers import Client, FakeClock, W, options

from syncd.sim import RunningSim, start_sim


def _bu(state: dict[str, Any], tz: str) -> dict[str, Any]:
    return next(b for b in state["businessUnits"] if b["timeZone"] == tz)


async def test_bu_settings_come_with_expand_only(client: Client, state: dict[str, Any]) -> None:
    bu = _bu(state, "America/Chicago")
    plain = await client.get(f"{W}/businessunits/{bu['id']}")
    assert "settings" not in plain
    full = await client.get(f"{W}/businessunits/{bu['id']}?expand=settings")
    assert full["settings"]["timeZone"] == "America/Chicago"
    assert full["settings"]["startDayOfWeek"] == "Sunday"
    listing = await client.get(f"{W}/businessunits")
    assert {b["id"] for b in listing["entities"]} == {b["id"] for b in state["businessUnits"]}


async def test_activity_codes_use_the_real_categories(
    client: Client, state: dict[str, Any]
) -> None:
    bu = state["businessUnits"][0]
    codes = (await client.get(f"{W}/businessunits/{bu['id']}/activitycodes"))["entities"]
    categories = {c["category"] for c in codes}
    assert categories == {
        "OnQueueWork",
        "Break",
        "Meal",
        "Meeting",
        "OffQueueWork",
        "TimeOff",
        "Training",
        "Unavailable",
    }
    assert sum(1 for c in codes if c["category"] == "OnQueueWork") == 2  # a custom one too


async def test_schedule_listing_and_published_filter(client: Client, state: dict[str, Any]) -> None:
    bu = _bu(state, "America/Chicago")
    current, nxt, draft = bu["schedules"]
    assert current["weekDate"] == "2026-03-08"  # the Sunday starting the anchor's week
    listing = await client.get(f"{W}/businessunits/{bu['id']}/weeks/2026-03-08/schedules")
    assert [s["id"] for s in listing["entities"]] == [current["id"]]
    entity = listing["entities"][0]
    assert entity["metadata"]["version"] == 1
    assert entity["published"] is True
    both = await client.get(f"{W}/businessunits/{bu['id']}/weeks/{nxt['weekDate']}/schedules")
    assert {s["id"] for s in both["entities"]} == {nxt["id"], draft["id"]}
    only = await client.get(
        f"{W}/businessunits/{bu['id']}/weeks/{nxt['weekDate']}/schedules?includeOnlyPublished=true"
    )
    assert [s["id"] for s in only["entities"]] == [nxt["id"]]
    # Any day of the week finds the schedule spanning it.
    mid = await client.get(f"{W}/businessunits/{bu['id']}/weeks/2026-03-11/schedules")
    assert [s["id"] for s in mid["entities"]] == [current["id"]]
    status, _, _ = await client.call(
        "GET", f"{W}/businessunits/{bu['id']}/weeks/03-08-2026/schedules"
    )
    assert status == 400


async def test_dst_week_bounds_in_chicago(client: Client, state: dict[str, Any]) -> None:
    bu = _bu(state, "America/Chicago")
    current = bu["schedules"][0]
    meta = await client.get(
        f"{W}/businessunits/{bu['id']}/weeks/{current['weekDate']}/schedules/{current['id']}"
    )
    unit = meta["managementUnits"][0]
    assert unit["startDate"] == "2026-03-08T06:00:00Z"  # CST midnight
    assert unit["endDate"] == "2026-03-15T05:00:00Z"  # CDT midnight: a 167-hour week
    assert "agents" not in unit
    expanded = await client.get(
        f"{W}/businessunits/{bu['id']}/weeks/{current['weekDate']}/schedules/{current['id']}?expand=managementUnits.agents"
    )
    assert len(expanded["managementUnits"][0]["agents"]) == unit["agentCount"]


async def test_search_returns_published_shifts_in_range(
    client: Client, state: dict[str, Any]
) -> None:
    bu = _bu(state, "America/Chicago")
    body = {"startDate": "2026-03-10T14:00:00Z", "endDate": "2026-03-10T22:00:00Z"}
    status, answer, _ = await client.call(
        "POST", f"{W}/businessunits/{bu['id']}/agentschedules/search", json=body
    )
    assert status == 200
    assert answer["status"] == "Complete"
    assert "downloadUrl" not in answer
    result = answer["result"]
    assert result["businessUnitTimeZone"] == "America/Chicago"
    assert [p["id"] for p in result["publishedSchedules"]] == [bu["schedules"][0]["id"]]
    assert len(result["agentSchedules"]) == bu["agentCount"]
    codes = {c["id"]: c["category"] for c in bu["activityCodes"]}
    tz = ZoneInfo("America/Chicago")
    shifts = [s for a in result["agentSchedules"] for s in a["shifts"]]
    assert shifts
    for shift in shifts:
        start = datetime.fromisoformat(shift["startDate"])
        assert start.timestamp() < datetime.fromisoformat(body["endDate"]).timestamp()
        assert sum(a["lengthMinutes"] for a in shift["activities"]) == shift["lengthMinutes"]
        assert {codes[a["activityCodeId"]] for a in shift["activities"]} <= set(codes.values())
        # After the DST switch, local start times are still on the quarter hour in CDT.
        assert start.astimezone(tz).minute % 15 == 0
    one = result["agentSchedules"][0]["user"]["id"]
    status, answer, _ = await client.call(
        "POST",
        f"{W}/businessunits/{bu['id']}/agentschedules/search",
        json=dict(body, userIds=[one]),
    )
    assert [a["user"]["id"] for a in answer["result"]["agentSchedules"]] == [one]


async def test_query_and_mu_search(client: Client, state: dict[str, Any]) -> None:
    bu = state["businessUnits"][0]
    mu = bu["managementUnits"][0]
    sched = bu["schedules"][0]
    schedule = f"{W}/businessunits/{bu['id']}/weeks/{sched['weekDate']}/schedules/{sched['id']}"
    path = f"{schedule}/agentschedules/query"
    status, answer, _ = await client.call("POST", path, json={"managementUnitId": mu["id"]})
    assert status == 200
    agents = answer["result"]["agentSchedules"]
    assert len(agents) == mu["agentCount"]
    assert all(len(a["shifts"]) == 5 for a in agents)  # two days off a week
    assert agents[0]["metadata"]["version"] == 1
    status, _err, _ = await client.call("POST", path, json={"managementUnitId": "nope"})
    assert status == 400
    users = await client.get(f"{W}/managementunits/{mu['id']}/users")
    assert len(users["entities"]) == mu["agentCount"]
    status, answer, _ = await client.call(
        "POST",
        f"{W}/managementunits/{mu['id']}/agentschedules/search",
        json={"startDate": sched["startDate"], "endDate": sched["endDate"]},
    )
    assert len(answer["result"]["agentSchedules"]) == mu["agentCount"]


async def test_download_url_is_gzip_and_rejects_authorization(
    client: Client, state: dict[str, Any], clock: FakeClock
) -> None:
    bu = state["businessUnits"][1]
    body = {"startDate": bu["schedules"][0]["startDate"], "endDate": bu["schedules"][1]["endDate"]}
    path = f"{W}/businessunits/{bu['id']}/agentschedules/search"
    _, inline, _ = await client.call("POST", path, json=body)
    status, answer, _ = await client.call("POST", f"{path}?forceDownloadService=true", json=body)
    assert status == 200
    assert answer["status"] == "Complete"
    assert "result" not in answer
    url = answer["downloadUrl"]
    async with aiohttp.ClientSession(auto_decompress=False) as raw:
        async with raw.get(url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Encoding"] == "gzip"
            data = orjson.loads(gzip.decompress(await resp.read()))
        assert data["agentSchedules"] == inline["result"]["agentSchedules"]
        assert data["businessUnitTimeZone"] == inline["result"]["businessUnitTimeZone"]
        async with raw.get(url, headers=client.headers()) as resp:
            assert resp.status == 400  # like S3: a presigned URL plus an Authorization header
            assert "InvalidArgument" in await resp.text()
        clock.advance(600)
        async with raw.get(url) as resp:
            assert resp.status == 403  # expired
        async with raw.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0")) as resp:
            assert resp.status == 403


async def test_large_results_go_to_the_download_service(clock: FakeClock) -> None:
    running: RunningSim = await start_sim(options=options(clock, inline_max_agents=100))
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(running, session)
            await client.login()
            bu = running.sim.org.bus[0]
            sched = bu.schedules[0]
            path = f"{W}/businessunits/{bu.id}/agentschedules/search"
            body = {"startDate": sched.start_utc.isoformat(), "endDate": sched.end_utc.isoformat()}
            _, answer, _ = await client.call("POST", path, json=body)
            assert set(answer) == {"status", "operationId", "downloadUrl"}
            async with session.get(answer["downloadUrl"]) as resp:  # aiohttp un-gzips
                assert len((await resp.json())["agentSchedules"]) == 150
            _, answer, _ = await client.call(
                "POST", path, json=dict(body, userIds=bu.agent_ids[:100])
            )
            assert len(answer["result"]["agentSchedules"]) == 100
    finally:
        await running.close()
