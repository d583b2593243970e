"""Notification channels: subscribe, then trunk, schedule and campaign events arrive."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
from sim_helpers import Client

N = "/api/v2/notifications"


async def _next_event(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.receive(), 10)
        event: dict[str, Any] = orjson.loads(message.data)
        if event["topicName"] != "channel.metadata":
            return event


async def test_channel_events(client: Client, state: dict[str, Any]) -> None:
    status, channel, _ = await client.call("POST", f"{N}/channels")
    assert status == 200
    assert set(channel) == {"connectUri", "id", "expires"}
    assert channel["expires"] == "2026-03-11T15:00:00.000Z"  # 24 h on the sim's wall clock
    tb = state["trunkBases"][0]
    bu = state["businessUnits"][0]
    camp = state["campaigns"][0]
    topics = [
        f"v2.telephony.providers.edges.trunks.{tb['trunkId']}",
        f"v2.workforcemanagement.businessunits.{bu['id']}.schedules",
        f"v2.outbound.campaigns.{camp['id']}",
    ]
    status, subs, _ = await client.call(
        "PUT", f"{N}/channels/{channel['id']}/subscriptions", json=[{"id": t} for t in topics]
    )
    assert status == 200
    assert [(e["id"], e["state"]) for e in subs["entities"]] == [(t, "Permitted") for t in topics]
    async with client.session.ws_connect(channel["connectUri"]) as ws:
        await client.control("POST", f"trunks/{tb['id']}/fail")
        event = await _next_event(ws)
        assert event["topicName"] == topics[0]
        assert event["eventBody"]["connectedStatus"]["connected"] is False
        assert [o["optionState"] for o in event["eventBody"]["optionsStatus"]] == [False, False]
        await client.control("POST", "schedules/publish", {"businessUnitId": bu["id"]})
        event = await _next_event(ws)
        assert event["topicName"] == topics[1]
        assert event["eventBody"]["eventType"] == "Update"
        assert event["eventBody"]["result"]["metadata"]["version"] == 2
        status, _, _ = await client.call(
            "PATCH", f"/api/v2/outbound/campaigns/{camp['id']}", json={"outboundLineCount": 9}
        )
        assert status == 204
        event = await _next_event(ws)
        assert event["topicName"] == topics[2]
        assert event["eventBody"]["outboundLineCount"] == 9
        # A topic nobody subscribed to is not delivered.
        await client.control("POST", f"trunks/{state['trunkBases'][1]['id']}/fail")
        await client.control("POST", f"trunks/{tb['id']}/recover")
        event = await _next_event(ws)
        assert event["eventBody"]["id"] == tb["trunkId"]
        assert event["eventBody"]["connectedStatus"]["connected"] is True


async def test_heartbeat_and_invalid_topics(client: Client, running: Any) -> None:
    from syncd.sim.notifications import CHANNELS_KEY

    running.runner.app[CHANNELS_KEY].heartbeat_s = 0.01
    _, channel, _ = await client.call("POST", f"{N}/channels")
    path = f"{N}/channels/{channel['id']}/subscriptions"
    status, err, _ = await client.call("POST", path, json=[{"id": "v2.no.such.topic"}])
    assert status == 400
    assert err["code"] == "notification.invalid.topic"
    status, subs, _ = await client.call(
        "POST", f"{path}?ignoreErrors=true", json=[{"id": "v2.no.such.topic"}]
    )
    assert status == 200
    assert subs["entities"] == [
        {"id": "v2.no.such.topic", "state": "Rejected", "rejectionReason": "Unknown topic"}
    ]
    async with client.session.ws_connect(channel["connectUri"]) as ws:
        message = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert message == {
            "topicName": "channel.metadata",
            "eventBody": {"message": "WebSocket Heartbeat"},
        }
    topics = await client.get(f"{N}/availabletopics")
    assert "v2.telephony.providers.edges.trunks.{id}" in {t["id"] for t in topics["entities"]}
