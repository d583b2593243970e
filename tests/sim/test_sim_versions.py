"""Versioned full-replacement PUTs: 409 on a stale version, version+1, omitted fields reset."""

from __future__ import annotations

from typing import Any

from sim_helpers import Client, E, FakeClock


async def test_trunk_base_put_bumps_version_and_stale_put_is_409(
    client: Client, state: dict[str, Any], clock: FakeClock
) -> None:
    tb_id = state["trunkBases"][0]["id"]
    body = await client.get(f"{E}/trunkbasesettings/{tb_id}")
    assert body["version"] == 1
    body["properties"]["trunk_maxCallRate"]["value"]["instance"] = "10/5s"
    clock.advance(5)
    status, updated, _ = await client.call("PUT", f"{E}/trunkbasesettings/{tb_id}", json=body)
    assert status == 200
    assert updated["version"] == 2
    assert updated["dateModified"] == "2026-03-10T15:00:05.000Z"
    assert updated["properties"]["trunk_maxCallRate"]["value"]["instance"] == "10/5s"
    assert updated["properties"]["trunk_maxCallRate"]["type"] == "string"  # still fully typed
    status, err, headers = await client.call("PUT", f"{E}/trunkbasesettings/{tb_id}", json=body)
    assert status == 409
    assert err["status"] == 409
    assert err["contextId"] == headers["ININ-Correlation-Id"]
    assert "does not match the current version" in err["message"]
    assert (await client.get(f"{E}/trunkbasesettings/{tb_id}"))["version"] == 2


async def test_trunk_base_put_is_a_full_replacement(client: Client, state: dict[str, Any]) -> None:
    tb_id = state["trunkBases"][1]["id"]
    body = await client.get(f"{E}/trunkbasesettings/{tb_id}")
    label = body["properties"]["trunk_label"]["value"]["instance"]
    assert label
    partial = {k: v for k, v in body.items() if k not in ("description", "inboundSite")}
    partial["properties"] = {
        k: v for k, v in body["properties"].items() if k not in ("trunk_label", "trunk_maxCallRate")
    }
    status, updated, _ = await client.call("PUT", f"{E}/trunkbasesettings/{tb_id}", json=partial)
    assert status == 200
    assert "description" not in updated
    assert "inboundSite" not in updated
    assert updated["properties"]["trunk_label"]["value"]["instance"] is None  # reset to default
    assert updated["properties"]["trunk_maxCallRate"]["value"]["instance"] == "40/5s"
    assert set(updated["properties"]) == set(body["properties"])


async def test_trunk_base_put_rejects_unknown_and_mistyped_properties(
    client: Client, state: dict[str, Any]
) -> None:
    tb_id = state["trunkBases"][2]["id"]
    body = await client.get(f"{E}/trunkbasesettings/{tb_id}")
    bad = dict(
        body, properties=dict(body["properties"], trunk_max_calls={"value": {"instance": 5}})
    )
    status, err, _ = await client.call("PUT", f"{E}/trunkbasesettings/{tb_id}", json=bad)
    assert status == 400
    assert "trunk_max_calls" in err["message"]
    props = dict(body["properties"])
    props["trunk_enabled"] = {"value": {"instance": "false"}}
    status, err, _ = await client.call(
        "PUT", f"{E}/trunkbasesettings/{tb_id}", json=dict(body, properties=props)
    )
    assert status == 400
    assert (await client.get(f"{E}/trunkbasesettings/{tb_id}"))["version"] == 1


async def test_disabling_a_trunk_base_takes_its_trunk_out_of_service(
    client: Client, state: dict[str, Any]
) -> None:
    tb = state["trunkBases"][3]
    body = await client.get(f"{E}/trunkbasesettings/{tb['id']}")
    body["properties"]["trunk_enabled"]["value"]["instance"] = False
    assert (await client.call("PUT", f"{E}/trunkbasesettings/{tb['id']}", json=body))[0] == 200
    assert (await client.get(f"{E}/trunks/{tb['trunkId']}"))["inService"] is False


async def test_route_put(client: Client, state: dict[str, Any]) -> None:
    route = state["routes"][0]
    path = f"{E}/sites/{route['siteId']}/outboundroutes/{route['id']}"
    body = await client.get(path)
    body["externalTrunkBases"] = list(reversed(body["externalTrunkBases"]))
    status, updated, _ = await client.call("PUT", path, json=body)
    assert status == 200
    assert updated["version"] == 2
    assert [t["id"] for t in updated["externalTrunkBases"]] == list(
        reversed(route["externalTrunkBaseIds"])
    )
    assert updated["description"] == body["description"]
    status, _, _ = await client.call("PUT", path, json=body)  # stale version 1
    assert status == 409
    partial = {
        "name": body["name"],
        "classificationTypes": body["classificationTypes"],
        "version": 2,
        "externalTrunkBases": body["externalTrunkBases"],
    }
    status, updated, _ = await client.call("PUT", path, json=partial)
    assert status == 200
    assert "description" not in updated
    assert updated["enabled"] is False  # an omitted boolean is false after a full replacement
    status, _err, _ = await client.call(
        "PUT", path, json=dict(updated, externalTrunkBases=[{"id": "nope"}])
    )
    assert status == 400


async def test_campaign_put_patch_and_conflicts(client: Client, state: dict[str, Any]) -> None:
    camp_id = state["campaigns"][0]["id"]
    path = f"/api/v2/outbound/campaigns/{camp_id}"
    body = await client.get(path)
    status, empty, _ = await client.call("PATCH", path, json={"outboundLineCount": 42})
    assert status == 204
    assert empty is None
    current = await client.get(path)
    assert current["outboundLineCount"] == 42
    assert current["version"] == body["version"] + 1
    status, err, _ = await client.call("PUT", path, json=body)  # version from before the PATCH
    assert status == 409
    assert err["code"] == "invalid.update.wrong.version"
    current["callerName"] = "Changed"
    status, updated, _ = await client.call("PUT", path, json=current)
    assert status == 200
    assert updated["callerName"] == "Changed"
    assert updated["outboundLineCount"] == 42
    status, err, _ = await client.call("PATCH", path, json={"outboundLineCount": -1})
    assert status == 400
    assert err["code"] == "invalid.campaign.outbound.line.count"
    status, err, _ = await client.call(
        "PUT", path, json={k: v for k, v in updated.items() if k != "callerName"}
    )
    assert status == 400


async def test_unknown_ids_are_404(client: Client, state: dict[str, Any]) -> None:
    for path in (
        f"{E}/trunkbasesettings/nope",
        f"{E}/trunks/nope",
        f"{E}/sites/nope",
        "/api/v2/outbound/campaigns/nope",
    ):
        status, err, _ = await client.call("GET", path)
        assert status == 404, path
        assert err["code"] == "not.found"
