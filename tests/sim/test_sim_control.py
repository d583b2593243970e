"""The /_sim/ control API and the same operations on the in-process object."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
from sim_helpers import Client, E, FakeClock, W

from syncd.sim import RunningSim


async def test_fail_and_recover_a_trunk(client: Client, state: dict[str, Any]) -> None:
    tb = state["trunkBases"][0]
    trunk = await client.get(f"{E}/trunks/{tb['trunkId']}")
    assert trunk["connectedStatus"]["connected"] is True
    assert [o["optionState"] for o in trunk["optionsStatus"]] == [True, True]
    status, body = await client.control("POST", f"trunks/{tb['id']}/fail")
    assert status == 200
    assert body["connected"] is False
    trunk = await client.get(f"{E}/trunks/{tb['trunkId']}")
    assert trunk["connectedStatus"]["connected"] is False
    assert [o["optionState"] for o in trunk["optionsStatus"]] == [False, False]
    assert all("errorInfo" in o for o in trunk["optionsStatus"])
    metrics = await client.get(f"{E}/trunks/metrics?trunkIds={tb['trunkId']}")
    assert metrics[0]["trunk"]["id"] == tb["trunkId"]
    await client.control("POST", f"trunks/{tb['id']}/recover")
    trunk = await client.get(f"{E}/trunks/{tb['trunkId']}")
    assert trunk["connectedStatus"]["connected"] is True
    assert [o["optionState"] for o in trunk["optionsStatus"]] == [True, True]


async def test_fail_one_sip_server(client: Client, state: dict[str, Any]) -> None:
    tb = state["trunkBases"][1]
    server = next(iter(tb["servers"]))
    status, _ = await client.control("POST", f"trunks/{tb['id']}/fail", {"server": server})
    assert status == 200
    trunk = await client.get(f"{E}/trunks/{tb['trunkId']}")
    assert trunk["connectedStatus"]["connected"] is True
    assert {o["proxyAddress"]: o["optionState"] for o in trunk["optionsStatus"]} == {
        s: s != server for s in tb["servers"]
    }
    status, _ = await client.control("POST", f"trunks/{tb['id']}/fail", {"server": "nope:5060"})
    assert status == 400
    status, _ = await client.control("POST", "trunks/nope/fail")
    assert status == 404


async def test_publish_bumps_the_schedule_version(
    client: Client, state: dict[str, Any], clock: FakeClock
) -> None:
    bu = state["businessUnits"][0]
    sched = bu["schedules"][0]
    listing_path = f"{W}/businessunits/{bu['id']}/weeks/{sched['weekDate']}/schedules"
    before = (await client.get(listing_path))["entities"][0]["metadata"]
    search = {"startDate": sched["startDate"], "endDate": sched["endDate"]}
    _, old, _ = await client.call(
        "POST", f"{W}/businessunits/{bu['id']}/agentschedules/search", json=search
    )
    clock.advance(30)
    status, result = await client.control(
        "POST", "schedules/publish", {"businessUnitId": bu["id"], "agents": 3}
    )
    assert status == 200
    assert len(result["changedAgents"]) == 3
    after = (await client.get(listing_path))["entities"][0]["metadata"]
    assert after["version"] == before["version"] + 1
    assert after["dateModified"] == "2026-03-10T15:00:30Z" != before["dateModified"]
    _, new, _ = await client.call(
        "POST", f"{W}/businessunits/{bu['id']}/agentschedules/search", json=search
    )
    changed = {
        a["user"]["id"]
        for a, b in zip(
            old["result"]["agentSchedules"], new["result"]["agentSchedules"], strict=True
        )
        if a != b
    }
    assert changed == set(result["changedAgents"])


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("route", "description"),
        ("trunkbase", "properties.trunk_label.value.instance"),
        ("campaign", "callerName"),
    ],
)
async def test_human_edit_bumps_version(
    client: Client, state: dict[str, Any], kind: str, field: str
) -> None:
    entity = {
        "route": state["routes"][0],
        "trunkbase": state["trunkBases"][0],
        "campaign": state["campaigns"][0],
    }[kind]
    path = {
        "route": f"{E}/sites/{entity.get('siteId')}/outboundroutes/{entity['id']}",
        "trunkbase": f"{E}/trunkbasesettings/{entity['id']}",
        "campaign": f"/api/v2/outbound/campaigns/{entity['id']}",
    }[kind]
    before = await client.get(path)
    status, edit = await client.control("POST", "human-edit", {"kind": kind, "id": entity["id"]})
    assert status == 200
    assert edit["field"] == field
    assert edit["version"] == before["version"] + 1
    after = await client.get(path)
    value: Any = after
    for part in field.split("."):
        value = value[part]
    assert value == edit["after"] != edit["before"]
    status, _, _ = await client.call("PUT", path, json=before)  # a writer holding the old version
    assert status == 409


async def test_faults(client: Client, running: RunningSim) -> None:
    status, _ = await client.control(
        "POST", "faults", {"error_5xx_rate": 1.0, "status_5xx": 502, "routes": [E]}
    )
    assert status == 200
    status, body, _ = await client.call("GET", f"{E}/trunks")
    assert status == 502
    assert body["status"] == 502
    assert (await client.call("GET", f"{W}/businessunits"))[0] == 200  # other routes unaffected
    running.sim.set_faults({"timeout_504_rate": 1.0})
    assert (await client.call("GET", f"{W}/businessunits"))[0] == 504
    running.sim.set_faults({"version_conflict_400_rate": 1.0})
    assert (await client.call("GET", "/api/v2/outbound/campaigns"))[0] == 200  # PUT only
    campaign = running.sim.org.campaigns[next(iter(running.sim.org.campaigns))]
    status, body, _ = await client.call("PUT", campaign["selfUri"], json=campaign)
    assert status == 400
    assert "does not match the current version" in body["message"]
    running.sim.set_faults({"malformed_json_rate": 1.0})
    async with client.session.get(
        f"{client.base}{W}/businessunits", headers=client.headers()
    ) as resp:
        assert resp.status == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(await resp.read())
    running.sim.set_faults({"reset_rate": 1.0})
    with pytest.raises(aiohttp.ClientError):
        await client.call("GET", f"{W}/businessunits")
    status, _ = await client.control("DELETE", "faults")
    assert status == 200
    assert (await client.call("GET", f"{W}/businessunits"))[0] == 200
    status, body = await client.control("POST", "faults", {"error_5xx_rate": 2})
    assert status == 400
    status, body = await client.control("POST", "faults", {"nonsense": 1})
    assert status == 400


async def test_fault_draws_are_seeded(running: RunningSim) -> None:
    running.sim.set_faults({"error_5xx_rate": 0.3})
    first = [running.sim.faults.plan("GET", "/api/v2/x").action for _ in range(50)]
    running.sim.set_faults({"error_5xx_rate": 0.3})
    second = [running.sim.faults.plan("GET", "/api/v2/x").action for _ in range(50)]
    assert first == second
    assert 5 < first.count("error_5xx") < 30


async def test_counters_and_request_log_never_show_tokens(client: Client) -> None:
    await client.get(f"{W}/businessunits")
    await client.call("GET", f"{E}/trunkbasesettings/nope")
    status, counters = await client.control("GET", "counters")
    assert status == 200
    rows = {(r["route"], r["method"], r["status"]): r["count"] for r in counters["routes"]}
    assert rows[(f"{W}/businessunits", "GET", 200)] == 1
    assert rows[(f"{E}/trunkbasesettings/{{trunkBaseSettingsId}}", "GET", 404)] == 1
    assert rows[("/oauth/token", "POST", 200)] == 1
    status, log = await client.control("GET", "requests")
    assert [e["path"] for e in log["requests"]][-2:] == [
        f"{W}/businessunits",
        f"{E}/trunkbasesettings/nope",
    ]
    dumped = orjson.dumps([counters, log]).decode()
    assert client.token not in dumped
    assert log["requests"][-1]["token"] in counters["tokens"]
    await client.control("POST", "reset-counters")
    status, counters = await client.control("GET", "counters")
    assert counters["total"] == 0


async def test_ratelimit_settings_at_runtime(client: Client) -> None:
    status, body = await client.control(
        "POST", "ratelimit", {"model": "token-bucket", "quota": 50, "window_s": 1.0}
    )
    assert status == 200
    assert body == {
        "model": "token-bucket",
        "quota": 50,
        "window_s": 1.0,
        "headers": True,
        "limits_status": 200,
    }
    _, _, headers = await client.call("GET", f"{W}/businessunits")
    assert headers["inin-ratelimit-allowed"] == "50"
    status, _ = await client.control("POST", "ratelimit", {"model": "leaky"})
    assert status == 400


async def test_state_dump_lists_the_ids(state: dict[str, Any]) -> None:
    assert len(state["trunkBases"]) == 15
    assert len(state["sites"]) == 2
    assert len(state["campaigns"]) == 4
    assert sum(b["agentCount"] for b in state["businessUnits"]) == 300
    assert {b["timeZone"] for b in state["businessUnits"]} == {"Asia/Singapore", "America/Chicago"}
    assert all(len(tb["servers"]) == 2 for tb in state["trunkBases"])


async def test_a_lost_answer_applies_the_write_and_drops_the_connection(
    client: Client, running: RunningSim
) -> None:
    campaign_id = next(iter(running.sim.org.campaigns))
    path = f"/api/v2/outbound/campaigns/{campaign_id}"
    before = running.sim.org.campaigns[campaign_id]["outboundLineCount"]
    status, _ = await client.control("POST", "faults", {"lost_answer_rate": 1.0, "routes": [path]})
    assert status == 200
    assert (await client.call("GET", path))[0] == 200  # a read is never a lost write
    with pytest.raises(aiohttp.ClientError):
        await client.call("PATCH", path, json={"outboundLineCount": before + 7})
    # The write landed, and the request log says so (200), though no answer left the server.
    assert running.sim.org.campaigns[campaign_id]["outboundLineCount"] == before + 7
    _, log = await client.control("GET", "requests")
    assert [(r["method"], r["status"]) for r in log["requests"][-2:]] == [
        ("GET", 200),
        ("PATCH", 204),
    ]


async def test_faults_limited_by_method_and_count(client: Client, running: RunningSim) -> None:
    campaign_id = next(iter(running.sim.org.campaigns))
    path = f"/api/v2/outbound/campaigns/{campaign_id}"
    running.sim.set_faults({"reset_rate": 1.0, "methods": ["patch"], "max_faults": 1})
    assert (await client.call("GET", path))[0] == 200  # not a PATCH: untouched
    with pytest.raises(aiohttp.ClientError):
        await client.call("PATCH", path, json={"outboundLineCount": 3})
    # The one fault is spent: the next PATCH goes through (and this one did not land).
    assert (await client.call("PATCH", path, json={"outboundLineCount": 4}))[0] == 204
    assert running.sim.org.campaigns[campaign_id]["outboundLineCount"] == 4
    status, _ = await client.control("POST", "faults", {"max_faults": -1})
    assert status == 400
    status, _ = await client.control("POST", "faults", {"methods": "PUT"})
    assert status == 400


async def test_the_hold_parks_writes_until_released(client: Client, running: RunningSim) -> None:
    campaign_id = next(iter(running.sim.org.campaigns))
    path = f"/api/v2/outbound/campaigns/{campaign_id}"
    status, body = await client.control("POST", "hold", {"routes": ["/api/v2/outbound/"]})
    assert status == 200
    assert body == {
        "hold": {"methods": ["DELETE", "PATCH", "POST", "PUT"], "routes": ["/api/v2/outbound/"]},
        "held": 0,
    }
    assert (await client.call("GET", path))[0] == 200  # reads are not held
    patch = asyncio.ensure_future(client.call("PATCH", path, json={"outboundLineCount": 9}))
    status, body = await client.control("GET", "hold?atLeast=1&timeout=30")
    assert status == 200
    assert body["held"] == 1
    assert not patch.done()
    assert running.sim.org.campaigns[campaign_id]["outboundLineCount"] != 9  # not applied yet
    status, body = await client.control("DELETE", "hold")
    assert status == 200
    assert body == {"released": 1, "hold": None}
    # The release returns once the parked write was handled.
    assert running.sim.org.campaigns[campaign_id]["outboundLineCount"] == 9
    assert (await patch)[0] == 204
    status, body = await client.control("GET", "hold?atLeast=1&timeout=0")
    assert status == 408
    status, _ = await client.control("POST", "hold", {"verbs": ["PUT"]})
    assert status == 400
