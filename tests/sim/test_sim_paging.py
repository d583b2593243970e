"""Paging is the real API's: a reader of page one alone misses entities; nextUri reads all."""

from __future__ import annotations

from typing import Any

from sim_helpers import Client, E


async def _walk(client: Client, first: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    page = await client.get(first)
    assert "previousUri" not in page
    while True:
        seen.extend(page["entities"])
        if "nextUri" not in page:
            assert page["pageNumber"] == page["pageCount"]
            return seen
        page = await client.get(page["nextUri"])
        assert "previousUri" in page


async def test_page_one_misses_entities_and_next_uri_chain_reads_all(client: Client) -> None:
    page_one = await client.get(f"{E}/trunkbasesettings?pageSize=4")
    assert page_one["total"] == 15
    assert page_one["pageCount"] == 4
    assert len(page_one["entities"]) == 4
    assert page_one["nextUri"] == f"{E}/trunkbasesettings?pageSize=4&pageNumber=2"
    assert page_one["lastUri"] == f"{E}/trunkbasesettings?pageSize=4&pageNumber=4"
    everything = await _walk(client, f"{E}/trunkbasesettings?pageSize=4")
    ids = [tb["id"] for tb in everything]
    assert len(ids) == 15 == len(set(ids))
    assert set(ids) - {tb["id"] for tb in page_one["entities"]}  # page one alone misses some


async def test_defaults_are_page_size_25_page_number_1(client: Client) -> None:
    page = await client.get(f"{E}/trunks")
    assert page["pageSize"] == 25
    assert page["pageNumber"] == 1
    assert page["total"] == 15
    assert "nextUri" not in page
    assert "previousUri" not in page
    assert page["selfUri"] == f"{E}/trunks?pageSize=25&pageNumber=1"


async def test_uris_keep_filters(client: Client, state: dict[str, Any]) -> None:
    page = await client.get(f"{E}/trunks?trunkType=EXTERNAL&pageSize=2&pageNumber=2")
    assert page["previousUri"] == f"{E}/trunks?pageSize=2&pageNumber=1&trunkType=EXTERNAL"
    assert page["nextUri"] == f"{E}/trunks?pageSize=2&pageNumber=3&trunkType=EXTERNAL"
    base = state["trunkBases"][3]
    page = await client.get(f"{E}/trunks?trunkBase.id={base['id']}")
    assert [t["id"] for t in page["entities"]] == [base["trunkId"]]


async def test_past_the_last_page_is_empty(client: Client) -> None:
    page = await client.get(f"{E}/trunkbasesettings?pageSize=10&pageNumber=5")
    assert page["entities"] == []
    assert page["total"] == 15


async def test_campaign_page_size_is_capped_at_100(client: Client) -> None:
    status, body, _ = await client.call("GET", "/api/v2/outbound/campaigns?pageSize=101")
    assert status == 400
    assert body["status"] == 400
    page = await client.get("/api/v2/outbound/campaigns?pageSize=100")
    assert page["total"] == 4


async def test_outbound_route_filters(client: Client, state: dict[str, Any]) -> None:
    site = state["sites"][0]
    page = await client.get(f"{E}/outboundroutes?site.id={site['id']}")
    assert {r["id"] for r in page["entities"]} == set(site["outboundRouteIds"])
    assert all(r["site"]["id"] == site["id"] for r in page["entities"])
    shared = state["routes"][1]["externalTrunkBaseIds"][0]
    page = await client.get(f"{E}/outboundroutes?externalTrunkBases.ids={shared}")
    assert page["total"] == 2  # the trunk base is in the default and the international route
