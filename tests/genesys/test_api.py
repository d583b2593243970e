"""The API calls against the simulator: every page, downloads, conflicts, request ids."""

from __future__ import annotations

import orjson
import pytest
from conftest import Factory

from syncd import errors
from syncd.core import wire
from syncd.genesys import api


async def test_every_page_of_every_listing_is_read(
    make_env: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "PAGE_SIZE", 7)
    monkeypatch.setattr(api, "CAMPAIGN_PAGE_SIZE", 3)
    env = await make_env(org="medium")
    org = env.running.sim.org
    tbs = await env.api.list_trunk_bases()
    trunks = await env.api.list_trunks()
    campaigns = await env.api.list_campaigns()
    assert {tb.id for tb in tbs} == set(org.trunk_bases)
    assert len(trunks) == len(org.trunks)
    assert {c.id for c in campaigns} == set(org.campaigns)
    assert env.running.sim.count(route=api.TRUNK_BASES) == -(-len(org.trunk_bases) // 7)
    assert env.running.sim.count(route=api.CAMPAIGNS) == -(-len(org.campaigns) // 3)
    site_id = next(iter(org.route_site.values()))
    routes = await env.api.list_routes(site_id)
    assert {r.id for r in routes} == {r for r, s in org.route_site.items() if s == site_id}


async def test_large_pages_save_budget(make_env: Factory) -> None:
    env = await make_env(org="medium")
    await env.api.list_trunk_bases()
    await env.api.list_campaigns()
    assert env.running.sim.count(route=api.TRUNK_BASES) == 1
    assert env.running.sim.count(route=api.CAMPAIGNS) == 1


async def _week(env_api: api.GenesysApi) -> tuple[str, str, str]:
    bu = (await env_api.business_units())[0]
    mu = (await env_api.management_units(bu.id))[0]
    return bu.id, mu.id, "recent"


async def test_download_url_is_fetched_without_the_token_and_gunzipped(make_env: Factory) -> None:
    env = await make_env()
    bu_id, mu_id, _ = await _week(env.api)
    bu = next(b for b in env.running.sim.org.bus if b.id == bu_id)
    sched = bu.schedules[0]
    week = sched.week_date.isoformat()
    start = int(wire.parse_instant(f"{week}T00:00:00Z"))
    end = start + 7 * 86400
    inline = await env.api.query_agent_schedules(bu_id, week, sched.id, mu_id, start=start, end=end)
    downloaded = await env.api.query_agent_schedules(
        bu_id, week, sched.id, mu_id, start=start, end=end, force_download=True
    )
    assert downloaded.agents == inline.agents
    assert len(inline.agents) > 0
    # The simulator answers 400 to a presigned download that carries an Authorization header.
    downloads = [e for e in env.running.sim.log if e.path.startswith("/sim-downloads/")]
    assert [e.status for e in downloads] == [200]


async def test_bu_search_returns_published_shifts(make_env: Factory) -> None:
    env = await make_env()
    bu_id, _, _ = await _week(env.api)
    bu = next(b for b in env.running.sim.org.bus if b.id == bu_id)
    week = bu.schedules[0].week_date.isoformat()
    start = int(wire.parse_instant(f"{week}T00:00:00Z"))
    found = await env.api.search_agent_schedules(bu_id, start=start, end=start + 86400)
    via_download = await env.api.search_agent_schedules(
        bu_id, start=start, end=start + 86400, force_download=True
    )
    assert found.agents == via_download.agents
    codes = await env.api.activity_codes(bu_id)
    listing = await env.api.schedule_listing(bu_id, week)
    assert codes
    assert listing


async def test_a_409_is_a_version_conflict(make_env: Factory) -> None:
    env = await make_env()
    route_id, site_id = next(iter(env.running.sim.org.route_site.items()))
    route = await env.api.get_route(site_id, route_id)
    env.running.sim.human_edit("route", route_id)
    with pytest.raises(errors.VersionConflict) as info:
        await env.api.put_route(route, route.raw)
    assert info.value.status == 409
    fresh = await env.api.get_route(site_id, route_id)
    result = await env.api.put_route(fresh, fresh.raw)
    assert result.status == 200
    assert len(result.request_id) == 36


async def test_a_400_version_mismatch_is_a_version_conflict(make_env: Factory) -> None:
    env = await make_env()
    tb_id = next(iter(env.running.sim.org.trunk_bases))
    tb = await env.api.get_trunk_base(tb_id)
    env.running.sim.set_faults({"version_conflict_400_rate": 1.0})
    with pytest.raises(errors.VersionConflict) as info:
        await env.api.put_trunk_base(tb, wire.render_trunk_base_put(tb, {}))
    assert info.value.status == 400
    assert env.running.sim.count(route=api.TRUNK_BASE, method="PUT") == 1  # not retried


async def test_writes_return_the_request_id(make_env: Factory) -> None:
    env = await make_env()
    campaign_id = next(iter(env.running.sim.org.campaigns))
    result = await env.api.patch_campaign_lines(campaign_id, 12)
    assert result.status == 204
    log = [e for e in env.running.sim.log if e.method == "PATCH"]
    assert len(log) == 1
    assert result.request_id
    campaign = await env.api.get_campaign(campaign_id)
    assert campaign.outbound_line_count == 12
    assert orjson.loads(campaign.raw)["outboundLineCount"] == 12


async def test_other_4xx_are_final(make_env: Factory) -> None:
    env = await make_env()
    campaign_id = next(iter(env.running.sim.org.campaigns))
    with pytest.raises(errors.ClientError) as info:
        await env.api.patch_campaign_lines(campaign_id, -5)
    assert info.value.status == 400
    with pytest.raises(errors.NotFound):
        await env.api.get_trunk_base("00000000-0000-0000-0000-000000000000")
