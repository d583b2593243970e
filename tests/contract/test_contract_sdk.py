"""The official Genesys Cloud Python SDK against the simulator: every endpoint syncd uses,
deserialized by the SDK's own models, and every JSON answer valid against api-subset.json with
unknown properties treated as errors."""

from __future__ import annotations

import asyncio
import gzip
import urllib.request
from datetime import date
from typing import Any

import aiohttp
import orjson
import pytest
from contract_helpers import Spec, ThreadedSim

W = "/api/v2/workforcemanagement"
E = "/api/v2/telephony/providers/edges"
BU = f"{W}/businessunits/{{businessUnitId}}"
SCHED = f"{BU}/weeks/{{weekId}}/schedules/{{scheduleId}}"


@pytest.fixture(scope="module")
def gc() -> Any:
    import PureCloudPlatformClientV2

    return PureCloudPlatformClientV2


@pytest.fixture(scope="module")
def state(threaded_sim: ThreadedSim) -> dict[str, Any]:
    result: dict[str, Any] = threaded_sim.control("GET", "state")
    return result


def _model(cls: Any, **fields: Any) -> Any:
    """SDK models take no constructor arguments; fields are set one by one."""
    obj = cls()
    for name, value in fields.items():
        setattr(obj, name, value)
    return obj


def _raw(api_client: Any) -> Any:
    return orjson.loads(api_client.last_response.data)


def test_token_comes_from_the_sim(api_client: Any) -> None:
    assert api_client.access_token
    assert len(api_client.access_token) >= 32


def test_wfm(
    gc: Any, api_client: Any, spec: Spec, state: dict[str, Any], threaded_sim: ThreadedSim
) -> None:
    wfm = gc.WorkforceManagementApi(api_client)
    bu_state = next(b for b in state["businessUnits"] if b["timeZone"] == "America/Chicago")
    bu_id = bu_state["id"]

    listing = wfm.get_workforcemanagement_businessunits()
    spec.response("GET", f"{W}/businessunits", _raw(api_client))
    assert bu_id in {b.id for b in listing.entities}

    bu = wfm.get_workforcemanagement_businessunit(bu_id, expand=["settings"])
    spec.response("GET", BU, _raw(api_client))
    assert bu.settings.time_zone == "America/Chicago"
    assert bu.settings.start_day_of_week == "Sunday"

    mus = wfm.get_workforcemanagement_businessunit_managementunits(bu_id)
    spec.response("GET", f"{BU}/managementunits", _raw(api_client))
    assert [m.id for m in mus.entities] == [m["id"] for m in bu_state["managementUnits"]]
    mu_id = mus.entities[0].id

    codes = wfm.get_workforcemanagement_businessunit_activitycodes(bu_id)
    spec.response("GET", f"{BU}/activitycodes", _raw(api_client))
    assert {c.category for c in codes.entities} >= {"OnQueueWork", "Break", "Meal", "Training"}

    sched_state = bu_state["schedules"][0]
    week = date.fromisoformat(sched_state["weekDate"])
    schedules = wfm.get_workforcemanagement_businessunit_week_schedules(bu_id, week)
    spec.response("GET", f"{BU}/weeks/{{weekId}}/schedules", _raw(api_client))
    assert schedules.entities[0].id == sched_state["id"]
    assert schedules.entities[0].metadata.version == sched_state["version"]

    meta = wfm.get_workforcemanagement_businessunit_week_schedule(
        bu_id, week, sched_state["id"], expand="managementUnits.agents"
    )
    spec.response("GET", SCHED, _raw(api_client))
    assert meta.management_units[0].agent_count == len(meta.management_units[0].agents)

    query = wfm.post_workforcemanagement_businessunit_week_schedule_agentschedules_query(
        bu_id,
        week,
        sched_state["id"],
        _model(gc.BuQueryAgentSchedulesRequest, management_unit_id=mu_id),
    )
    spec.response("POST", f"{SCHED}/agentschedules/query", _raw(api_client))
    assert query.status == "Complete"
    assert query.result.business_unit_time_zone == "America/Chicago"
    first = query.result.agent_schedules[0]
    assert first.shifts
    assert first.shifts[0].activities[0].activity_code_id in {c.id for c in codes.entities}

    search_body = _model(
        gc.BuSearchAgentSchedulesRequest,
        start_date=sched_state["startDate"],
        end_date=sched_state["endDate"],
    )
    search = wfm.post_workforcemanagement_businessunit_agentschedules_search(bu_id, search_body)
    spec.response(
        "POST", f"{W}/businessunits/{{businessUnitId}}/agentschedules/search", _raw(api_client)
    )
    assert len(search.result.agent_schedules) == bu_state["agentCount"]
    assert search.result.published_schedules[0].id == sched_state["id"]

    download = wfm.post_workforcemanagement_businessunit_agentschedules_search(
        bu_id, search_body, force_download_service=True
    )
    spec.response(
        "POST", f"{W}/businessunits/{{businessUnitId}}/agentschedules/search", _raw(api_client)
    )
    assert download.result is None
    assert download.download_url
    with urllib.request.urlopen(download.download_url, timeout=30) as resp:  # noqa: S310 - loopback http URL
        assert resp.headers["Content-Encoding"] == "gzip"
        downloaded = orjson.loads(gzip.decompress(resp.read()))
    spec.definition("BuAgentSchedulesSearchResponse", downloaded)
    assert len(downloaded["agentSchedules"]) == bu_state["agentCount"]

    all_mus = wfm.get_workforcemanagement_managementunits()
    spec.response("GET", f"{W}/managementunits", _raw(api_client))
    assert mu_id in {m.id for m in all_mus.entities}
    mu = wfm.get_workforcemanagement_managementunit(mu_id)
    spec.response("GET", f"{W}/managementunits/{{managementUnitId}}", _raw(api_client))
    assert mu.business_unit.id == bu_id
    users = wfm.get_workforcemanagement_managementunit_users(mu_id)
    spec.response("GET", f"{W}/managementunits/{{managementUnitId}}/users", _raw(api_client))
    assert len(users.entities) == bu_state["managementUnits"][0]["agentCount"]
    mu_search = wfm.post_workforcemanagement_managementunit_agentschedules_search(
        mu_id, search_body
    )
    spec.response(
        "POST", f"{W}/managementunits/{{managementUnitId}}/agentschedules/search", _raw(api_client)
    )
    assert {a.user.id for a in mu_search.result.agent_schedules} == {u.id for u in users.entities}

    # Schedule update: upload URL, gzip upload, process; the version goes up by one.
    upload = wfm.post_workforcemanagement_businessunit_week_schedule_update_uploadurl(
        bu_id, week, sched_state["id"], _model(gc.UploadUrlRequestBody, content_length_bytes=100)
    )
    spec.response("POST", f"{SCHED}/update/uploadurl", _raw(api_client))
    payload = gzip.compress(
        orjson.dumps({"metadata": {"version": sched_state["version"]}, "agentSchedules": []})
    )
    request = urllib.request.Request(  # noqa: S310 - loopback http URL
        upload.url, data=payload, method="PUT", headers=upload.headers
    )
    with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - loopback http URL
        assert resp.status == 200
    updated = wfm.post_workforcemanagement_businessunit_week_schedule_update(
        bu_id,
        week,
        sched_state["id"],
        _model(gc.ProcessScheduleUpdateUploadRequest, upload_key=upload.upload_key),
    )
    spec.response("POST", f"{SCHED}/update", _raw(api_client))
    assert updated.status == "Complete"
    assert updated.result.metadata.version == sched_state["version"] + 1


def test_telephony(
    gc: Any, api_client: Any, spec: Spec, state: dict[str, Any], threaded_sim: ThreadedSim
) -> None:
    tel = gc.TelephonyProvidersEdgeApi(api_client)
    ApiException = gc.rest.ApiException  # noqa: N806 - the SDK's class

    page = tel.get_telephony_providers_edges_trunkbasesettings(page_size=10, page_number=1)
    spec.response("GET", f"{E}/trunkbasesettings", _raw(api_client))
    assert page.total == 15
    assert len(page.entities) == 10
    assert page.next_uri
    page2 = tel.get_telephony_providers_edges_trunkbasesettings(page_size=10, page_number=2)
    assert len({t.id for t in page.entities} | {t.id for t in page2.entities}) == 15

    tb_state = state["trunkBases"][0]
    tb = tel.get_telephony_providers_edges_trunkbasesetting(tb_state["id"])
    spec.response("GET", f"{E}/trunkbasesettings/{{trunkBaseSettingsId}}", _raw(api_client))
    assert tb.trunk_type == "EXTERNAL"
    assert tb.trunk_metabase.id == "external_sip_pcv_byoc_carrier.json"
    assert tb.properties["trunk_enabled"]["value"]["instance"] is True

    # A GET -> PUT round trip through the SDK's models keeps everything and bumps the version.
    tb.properties["trunk_maxCallRate"]["value"]["instance"] = "25/5s"
    put = tel.put_telephony_providers_edges_trunkbasesetting(tb.id, tb)
    spec.response("PUT", f"{E}/trunkbasesettings/{{trunkBaseSettingsId}}", _raw(api_client))
    assert put.version == tb.version + 1
    assert put.description == tb.description
    assert put.inbound_site.id == tb.inbound_site.id
    assert put.properties["trunk_label"] == tb.properties["trunk_label"]
    with pytest.raises(ApiException) as stale:
        tel.put_telephony_providers_edges_trunkbasesetting(tb.id, tb)
    assert stale.value.status == 409
    spec.definition("ErrorBody", orjson.loads(stale.value.body))

    template = tel.get_telephony_providers_edges_trunkbasesettings_template(
        "external_sip_pcv_byoc_carrier.json"
    )
    spec.response("GET", f"{E}/trunkbasesettings/template", _raw(api_client))
    assert "trunk_transport_serverProxyList" in template.properties
    metabases = tel.get_telephony_providers_edges_trunkbasesettings_availablemetabases(
        type="EXTERNAL"
    )
    spec.response("GET", f"{E}/trunkbasesettings/availablemetabases", _raw(api_client))
    assert "external_sip_pcv_byoc_carrier.json" in {m.id for m in metabases.entities}

    threaded_sim.control("POST", f"trunks/{tb_state['id']}/fail")
    trunks = tel.get_telephony_providers_edges_trunks(trunk_type="EXTERNAL", page_size=100)
    spec.response("GET", f"{E}/trunks", _raw(api_client))
    assert trunks.total == 15
    trunk = tel.get_telephony_providers_edges_trunk(tb_state["trunkId"])
    spec.response("GET", f"{E}/trunks/{{trunkId}}", _raw(api_client))
    assert trunk.trunk_base.id == tb_state["id"]
    assert trunk.connected_status.connected is False
    assert [o.option_state for o in trunk.options_status] == [False, False]
    threaded_sim.control("POST", f"trunks/{tb_state['id']}/recover")
    assert (
        tel.get_telephony_providers_edges_trunk(tb_state["trunkId"]).connected_status.connected
        is True
    )

    ids = [t["trunkId"] for t in state["trunkBases"][:3]]
    metrics = tel.get_telephony_providers_edges_trunks_metrics(",".join(ids))
    spec.response("GET", f"{E}/trunks/metrics", _raw(api_client))
    assert [m.trunk.id for m in metrics] == ids
    one = tel.get_telephony_providers_edges_trunk_metrics(ids[0])
    spec.response("GET", f"{E}/trunks/{{trunkId}}/metrics", _raw(api_client))
    assert one.qos.mismatch_count == 0

    site_state = state["sites"][0]
    site = tel.get_telephony_providers_edges_site(site_state["id"])
    spec.response("GET", f"{E}/sites/{{siteId}}", _raw(api_client))
    assert site.name == site_state["name"]
    routes = tel.get_telephony_providers_edges_site_outboundroutes(site_state["id"])
    spec.response("GET", f"{E}/sites/{{siteId}}/outboundroutes", _raw(api_client))
    assert {r.id for r in routes.entities} == set(site_state["outboundRouteIds"])
    route = tel.get_telephony_providers_edges_site_outboundroute(
        site_state["id"], routes.entities[0].id
    )
    spec.definition("OutboundRouteBase", _raw(api_client))
    route.external_trunk_bases = list(reversed(route.external_trunk_bases))
    put_route = tel.put_telephony_providers_edges_site_outboundroute(
        site_state["id"], route.id, route
    )
    spec.response(
        "PUT", f"{E}/sites/{{siteId}}/outboundroutes/{{outboundRouteId}}", _raw(api_client)
    )
    assert put_route.version == route.version + 1
    assert [t.id for t in put_route.external_trunk_bases] == [
        t.id for t in route.external_trunk_bases
    ]
    assert put_route.description == route.description
    assert put_route.enabled is True
    with pytest.raises(ApiException) as stale:
        tel.put_telephony_providers_edges_site_outboundroute(site_state["id"], route.id, route)
    assert stale.value.status == 409

    all_routes = tel.get_telephony_providers_edges_outboundroutes(site_id=site_state["id"])
    spec.response("GET", f"{E}/outboundroutes", _raw(api_client))
    assert all(r.site.id == site_state["id"] for r in all_routes.entities)
    group = tel.get_telephony_providers_edges_edgegroup(site_state["edgeGroupId"])
    spec.response("GET", f"{E}/edgegroups/{{edgeGroupId}}", _raw(api_client))
    assert group.id == site_state["edgeGroupId"]


def test_outbound(
    gc: Any, api_client: Any, spec: Spec, state: dict[str, Any], threaded_sim: ThreadedSim
) -> None:
    out = gc.OutboundApi(api_client)
    listing = out.get_outbound_campaigns(page_size=100)
    spec.response("GET", "/api/v2/outbound/campaigns", _raw(api_client))
    assert listing.total == 4
    camp_state = state["campaigns"][1]
    campaign = out.get_outbound_campaign(camp_state["id"])
    spec.response("GET", "/api/v2/outbound/campaigns/{campaignId}", _raw(api_client))
    assert campaign.outbound_line_count == camp_state["outboundLineCount"]
    out.patch_outbound_campaign(
        campaign.id, _model(gc.CampaignPatchRequest, outbound_line_count=33)
    )
    last = api_client.last_response
    spec.no_content("PATCH", "/api/v2/outbound/campaigns/{campaignId}", last.status, last.data)
    patched = out.get_outbound_campaign(campaign.id)
    assert patched.outbound_line_count == 33
    assert patched.version == campaign.version + 1
    edit = threaded_sim.control("POST", "human-edit", {"kind": "campaign", "id": campaign.id})
    with pytest.raises(gc.rest.ApiException) as stale:
        out.put_outbound_campaign(campaign.id, patched)
    assert stale.value.status == 409
    fresh = out.get_outbound_campaign(campaign.id)
    assert fresh.caller_name == edit["after"]
    fresh.outbound_line_count = 12
    put = out.put_outbound_campaign(campaign.id, fresh)
    spec.response("PUT", "/api/v2/outbound/campaigns/{campaignId}", _raw(api_client))
    assert put.outbound_line_count == 12
    assert put.caller_name == edit["after"]


def test_tokens_and_limits(gc: Any, api_client: Any, spec: Spec, state: dict[str, Any]) -> None:
    me = gc.TokensApi(api_client).get_tokens_me()
    spec.response("GET", "/api/v2/tokens/me", _raw(api_client))
    assert me.organization.id == state["org"]["id"]
    org_api = gc.OrganizationApi(api_client)
    limits = org_api.get_organizations_limits_namespace("platform.api")
    spec.response(
        "GET", "/api/v2/organizations/limits/namespaces/{namespaceName}", _raw(api_client)
    )
    assert {x.key: x.value for x in limits.entities}[
        "client.credentials.token.rate.per.minute"
    ] == 300
    org_api.get_organizations_limits_namespace_defaults("platform.api")
    spec.response(
        "GET", "/api/v2/organizations/limits/namespaces/{namespaceName}/defaults", _raw(api_client)
    )


def test_oauth_client_and_its_role(gc: Any, api_client: Any, spec: Spec) -> None:
    client = gc.OAuthApi(api_client).get_oauth_client("demo-client")
    spec.response("GET", "/api/v2/oauth/clients/{clientId}", _raw(api_client))
    assert client.authorized_grant_type == "CLIENT-CREDENTIALS"
    (grant,) = client.role_divisions
    role = gc.AuthorizationApi(api_client).get_authorization_role(grant.role_id)
    spec.response("GET", "/api/v2/authorization/roles/{roleId}", _raw(api_client))
    granted = {
        f"{p.domain}:{p.entity_name}:{action}"
        for p in role.permission_policies
        for action in p.action_set
    }
    assert {"telephony:plugin:all", "outbound:campaign:edit"} <= granted


def test_notifications(
    gc: Any, api_client: Any, spec: Spec, state: dict[str, Any], threaded_sim: ThreadedSim
) -> None:
    notes = gc.NotificationsApi(api_client)
    topics = notes.get_notifications_availabletopics()
    spec.response("GET", "/api/v2/notifications/availabletopics", _raw(api_client))
    templates = {t.id for t in topics.entities}
    assert templates <= set(spec.raw["x-notification-topics"])
    channel = notes.post_notifications_channels()
    spec.response("POST", "/api/v2/notifications/channels", _raw(api_client))
    tb, bu, camp = state["trunkBases"][2], state["businessUnits"][1], state["campaigns"][2]
    wanted = {
        f"v2.telephony.providers.edges.trunks.{tb['trunkId']}": (
            "v2.telephony.providers.edges.trunks.{id}"
        ),
        f"v2.workforcemanagement.businessunits.{bu['id']}.schedules": (
            "v2.workforcemanagement.businessunits.{id}.schedules"
        ),
        f"v2.outbound.campaigns.{camp['id']}": "v2.outbound.campaigns.{id}",
    }
    path = "/api/v2/notifications/channels/{channelId}/subscriptions"
    first = list(wanted)[:1]
    added = notes.post_notifications_channel_subscriptions(
        channel.id, [_model(gc.ChannelTopic, id=t) for t in first]
    )
    spec.response("POST", path, _raw(api_client))
    assert [t.id for t in added.entities] == first
    replaced = notes.put_notifications_channel_subscriptions(
        channel.id, [_model(gc.ChannelTopic, id=t) for t in wanted]
    )
    spec.response("PUT", path, _raw(api_client))
    assert {t.state for t in replaced.entities} == {"Permitted"}

    async def collect() -> list[dict[str, Any]]:
        control = threaded_sim.control
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(channel.connect_uri) as ws,
        ):
            await asyncio.to_thread(control, "POST", f"trunks/{tb['id']}/fail")
            publish = {"businessUnitId": bu["id"]}
            await asyncio.to_thread(control, "POST", "schedules/publish", publish)
            edit = {"kind": "campaign", "id": camp["id"]}
            await asyncio.to_thread(control, "POST", "human-edit", edit)
            events = []
            while len(events) < 3:
                message = orjson.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                if message["topicName"] != "channel.metadata":
                    events.append(message)
            return events

    events = asyncio.run(collect())
    assert {e["topicName"] for e in events} == set(wanted)
    for event in events:
        payload = spec.raw["x-notification-topics"][wanted[event["topicName"]]]["payload"]
        spec.definition(payload["$ref"].rsplit("/", 1)[1], event["eventBody"])


def test_every_operation_in_the_spec_was_validated(spec: Spec) -> None:
    """Runs last in this module: every operation of the spec got a validated answer."""
    expected = {
        (method.upper(), path)
        for path, operations in spec.raw["paths"].items()
        for method in operations
        if method != "parameters"
    }
    assert expected - spec.validated == set()


def test_strict_validation_catches_a_typo(spec: Spec) -> None:
    with pytest.raises(AssertionError):
        spec.definition("TrunkConnectedStatus", {"connected": True, "conected": False})
    with pytest.raises(AssertionError):
        spec.definition(
            "TrunkConnectedStatus", {"connected": True, "connectedStateTime": "2026-03-10 10:00"}
        )
