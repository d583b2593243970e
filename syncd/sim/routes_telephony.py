"""The telephony, outbound, token and limits resources of the simulator.

Role: trunk base settings (paged list, get, versioned full-replacement PUT, template,
metabases), trunks and their metrics, sites, outbound routes (paged, versioned PUT), edge
groups, outbound campaigns (paged, versioned PUT, PATCH 204), tokens/me and the limits
namespaces, with the paths, parameters and JSON of api-subset.json. A PUT is a full
replacement, faithfully: what the body leaves out is dropped or reset to its default. It must
not check tokens or rate limits (the middleware does) and must not import the rest of syncd.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from aiohttp import web

from syncd.sim.http import (
    TOKEN_KEY,
    ApiError,
    bad_request,
    get_sim,
    json_object,
    json_response,
    name_matches,
    not_found,
    paged,
    query_list,
    sort_entities,
)
from syncd.sim.org import (
    BYOC_METABASE_ID,
    BYOC_METABASE_NAME,
    CREATED,
    EDGES,
    JSON,
    Site,
    TrunkHealth,
    byoc_template_properties,
    iso_ms,
    ref,
)
from syncd.sim.state import Sim

TEMPLATE_JSON = orjson.dumps(byoc_template_properties())
METABASES = (
    (BYOC_METABASE_ID, BYOC_METABASE_NAME, "EXTERNAL_BYOC_CARRIER"),
    ("external_sip_pcv_byoc_pbx.json", "Generic BYOC PBX", "EXTERNAL_BYOC_PBX"),
)
PLATFORM_LIMITS = ("client.credentials.token.rate.per.minute", "token.rate.per.minute")
# What the limits API answers when the control API refuses it (the swagger's 403/404 texts).
LIMITS_REFUSALS = {
    403: (403, "not.authorized", "You are not authorized to perform the requested action."),
    404: (404, "not.found", "The requested resource was not found."),
}


def _template() -> JSON:
    result: JSON = orjson.loads(TEMPLATE_JSON)
    return result


def _copy(entity: JSON) -> JSON:
    result: JSON = orjson.loads(orjson.dumps(entity))
    return result


def _version_conflict(
    kind: str, sent: Any, current: int, code: str = "general.conflict"
) -> ApiError:
    return ApiError(
        409,
        code,
        f"The version supplied ({sent}) does not match the current version ({current}) "
        f"of the {kind}.",
    )


def _check_version(body: JSON, current: int, kind: str, code: str = "general.conflict") -> None:
    version = body.get("version")
    if version is None:
        raise bad_request(f"A version is required to update the {kind}.")
    if version != current:
        raise _version_conflict(kind, version, current, code)


def _replaced_header(sim: Sim, request: web.Request, current: JSON, body: JSON) -> JSON:
    """The common head of a PUT's full replacement: identity and audit fields kept or bumped,
    ``name`` and ``description`` from the body (an omitted description is dropped)."""
    new: JSON = {"id": current["id"], "name": body["name"], "division": current["division"]}
    if isinstance(body.get("description"), str):
        new["description"] = body["description"]
    new.update(
        {
            "version": current["version"] + 1,
            "dateCreated": current["dateCreated"],
            "dateModified": iso_ms(sim.now()),
            "modifiedBy": _modifier(sim, request),
            "createdBy": current["createdBy"],
            "state": current["state"],
            "modifiedByApp": "",
            "createdByApp": current["createdByApp"],
        }
    )
    return new


def _modifier(sim: Sim, request: web.Request) -> str:
    token = sim.token(request.get(TOKEN_KEY, ""))
    return token.client_id if token is not None else "unknown"


# --- trunk base settings ------------------------------------------------------------------


async def list_trunk_bases(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    name = request.query.get("name")
    managed = request.query.get("managed")
    recording = request.query.get("recordingEnabled")
    items = []
    for tb in sim.org.trunk_bases.values():
        if not name_matches(name, tb["name"]):
            continue
        if managed is not None and str(tb.get("managed", False)).lower() != managed.lower():
            continue
        rec = tb["properties"].get("trunk_recording_enabled", {}).get("value", {}).get("instance")
        if recording is not None and str(bool(rec)).lower() != recording.lower():
            continue
        items.append(tb)
    items = sort_entities(request, items, lambda tb: tb["name"].lower())
    return json_response(paged(request, items, lambda tb: tb))


async def get_trunk_base(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    tb_id = request.match_info["trunkBaseSettingsId"]
    tb = sim.org.trunk_bases.get(tb_id)
    if tb is None:
        raise not_found("trunk base settings", tb_id)
    return json_response(tb)


def _normalize_properties(body_props: Any) -> JSON:
    """The stored properties after a PUT: the body's instances on the metabase's typed
    definitions; every property missing from the body is reset to its default."""
    if not isinstance(body_props, dict):
        raise bad_request("properties must be an object.")
    template = _template()
    unknown = sorted(set(body_props) - set(template))
    if unknown:
        raise bad_request(
            f"Properties {unknown} are not defined by trunk metabase {BYOC_METABASE_ID}."
        )
    out: JSON = {}
    for key, definition in template.items():
        sent = body_props.get(key)
        if sent is None:
            out[key] = definition
            continue
        value = sent.get("value") if isinstance(sent, dict) else None
        if not isinstance(value, dict):
            raise bad_request(f"Property {key} must be an object with a value.")
        instance = value.get("instance", definition["value"]["default"])
        _check_instance(key, definition, instance)
        definition["value"]["instance"] = instance
        out[key] = definition
    servers = out["trunk_transport_serverProxyList"]["value"]["instance"]
    if not servers:
        raise bad_request(
            "Property trunk_transport_serverProxyList is required.", "required.field.missing"
        )
    return out


def _check_instance(key: str, definition: JSON, instance: Any) -> None:
    if instance is None:
        return
    kind = definition["type"]
    ok = {
        "boolean": isinstance(instance, bool),
        "integer": isinstance(instance, int) and not isinstance(instance, bool),
        "string": isinstance(instance, str),
        "array": isinstance(instance, list) and all(isinstance(i, str) for i in instance),
    }.get(kind, True)
    if ok and "enum" in definition and instance not in definition["enum"]:
        ok = False
    if not ok:
        raise bad_request(f"Property {key} has an invalid value {instance!r} for type {kind}.")


async def put_trunk_base(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    tb_id = request.match_info["trunkBaseSettingsId"]
    current = sim.org.trunk_bases.get(tb_id)
    if current is None:
        raise not_found("trunk base settings", tb_id)
    body = await json_object(request)
    for required in ("name", "trunkMetabase", "trunkType"):
        if not body.get(required):
            raise bad_request(f"{required} is required.", "required.field.missing")
    if (body.get("trunkMetabase") or {}).get("id") != current["trunkMetabase"]["id"]:
        raise bad_request("The trunk metabase of a trunk base cannot be changed.")
    if body.get("trunkType") != current["trunkType"]:
        raise bad_request("The trunkType of a trunk base cannot be changed.")
    _check_version(body, current["version"], "trunk base settings")
    properties = _normalize_properties(body.get("properties", {}))
    new = _replaced_header(sim, request, current, body)
    new.update(
        {
            "trunkMetabase": current["trunkMetabase"],
            "properties": properties,
            "trunkType": current["trunkType"],
            "managed": current["managed"],
        }
    )
    for site_field in ("site", "inboundSite"):
        site_ref = body.get(site_field)
        if isinstance(site_ref, dict) and isinstance(site_ref.get("id"), str):
            site = sim.org.site(site_ref["id"])
            if site is None:
                raise bad_request(f"{site_field} {site_ref['id']} does not exist.")
            new[site_field] = ref(site.id, site.name, f"{EDGES}/sites/{site.id}")
    new["selfUri"] = current["selfUri"]
    sim.org.trunk_bases[tb_id] = new
    trunk = sim.org.trunks[sim.org.trunk_of_base[tb_id]]
    trunk.failed_servers &= set(sim.servers(tb_id))
    return json_response(new)


async def trunk_base_template(request: web.Request) -> web.StreamResponse:
    metabase_id = request.query.get("trunkMetabaseId")
    if not metabase_id:
        raise bad_request("trunkMetabaseId is required.")
    if metabase_id != BYOC_METABASE_ID:
        raise not_found("trunk metabase", metabase_id)
    return json_response(
        {
            "name": BYOC_METABASE_NAME,
            "state": "active",
            "trunkMetabase": ref(
                BYOC_METABASE_ID,
                BYOC_METABASE_NAME,
                f"{EDGES}/trunkbasesettings/availablemetabases/{BYOC_METABASE_ID}",
            ),
            "properties": _template(),
            "trunkType": "EXTERNAL",
            "managed": False,
        }
    )


async def available_metabases(request: web.Request) -> web.StreamResponse:
    wanted = request.query.get("type")
    items = [m for m in METABASES if wanted in (None, "", "EXTERNAL")]

    def render(m: tuple[str, str, str]) -> JSON:
        return {
            "id": m[0],
            "name": m[1],
            "state": "active",
            "type": m[2],
            "selfUri": f"{EDGES}/trunkbasesettings/availablemetabases/{m[0]}",
        }

    return json_response(paged(request, items, render))


# --- trunks -------------------------------------------------------------------------------


def trunk_json(sim: Sim, trunk: TrunkHealth) -> JSON:
    tb = sim.org.trunk_bases[trunk.trunk_base_id]
    site = sim.org.site_of(trunk.site_id)
    servers = sim.servers(trunk.trunk_base_id)
    options = []
    for server in servers:
        ok = trunk.connected and server not in trunk.failed_servers
        entry: JSON = {
            "proxyAddress": server,
            "optionState": ok,
            "optionStateTime": iso_ms(trunk.options_since),
        }
        if not ok:
            host = server.rsplit(":", 1)[0]
            entry["errorInfo"] = {
                "text": "No response to SIP OPTIONS",
                "code": "408",
                "details": {"code": "408", "message": "Request Timeout", "hostname": host},
            }
        options.append(entry)
    return {
        "id": trunk.id,
        "name": tb["name"],
        "division": tb["division"],
        "state": "active",
        "version": 1,
        "dateCreated": iso_ms(CREATED),
        "dateModified": tb["dateModified"],
        "trunkType": tb["trunkType"],
        "edge": ref(site.edge_id, f"{site.name} Cloud Edge", f"{EDGES}/{site.edge_id}"),
        "trunkBase": ref(tb["id"], tb["name"], tb["selfUri"]),
        "trunkMetabase": tb["trunkMetabase"],
        "edgeGroup": ref(
            site.edge_group_id,
            f"{site.name} Edge Group",
            f"{EDGES}/edgegroups/{site.edge_group_id}",
        ),
        "inService": sim.trunk_enabled(trunk.trunk_base_id),
        "enabled": True,
        "logicalInterface": ref(
            trunk.logical_interface_id,
            "BYOC Carrier Interface",
            f"{EDGES}/{site.edge_id}/logicalinterfaces/{trunk.logical_interface_id}",
        ),
        "connectedStatus": {
            "connected": trunk.connected,
            "connectedStateTime": iso_ms(trunk.connected_since),
        },
        "optionsStatus": options,
        "registersStatus": [],
        "optionsEnabledStatus": "ENABLED",
        "registersEnabledStatus": "DISABLED",
        "family": 4,
        "proxyAddressList": servers,
        "selfUri": f"{EDGES}/trunks/{trunk.id}",
    }


def trunk_metrics_json(sim: Sim, trunk: TrunkHealth) -> JSON:
    tb = sim.org.trunk_bases[trunk.trunk_base_id]
    site = sim.org.site_of(trunk.site_id)
    healthy = trunk.connected and len(trunk.failed_servers) < len(sim.servers(trunk.trunk_base_id))
    return {
        "eventTime": iso_ms(sim.now()),
        "logicalInterface": ref(
            trunk.logical_interface_id,
            "BYOC Carrier Interface",
            f"{EDGES}/{site.edge_id}/logicalinterfaces/{trunk.logical_interface_id}",
        ),
        "trunk": ref(trunk.id, tb["name"], f"{EDGES}/trunks/{trunk.id}"),
        "calls": {
            "inboundCallCount": trunk.inbound_calls if healthy else 0,
            "outboundCallCount": trunk.outbound_calls if healthy else 0,
        },
        "qos": {"mismatchCount": 0},
    }


def _trunk(sim: Sim, trunk_id: str) -> TrunkHealth:
    trunk = sim.org.trunks.get(trunk_id)
    if trunk is None:
        raise not_found("trunk", trunk_id)
    return trunk


async def list_trunks(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    trunk_type = request.query.get("trunkType")
    if trunk_type not in (None, "", "EXTERNAL", "PHONE", "EDGE"):
        raise bad_request(
            f"The value '{trunk_type}' is not valid for the query parameter 'trunkType'."
        )
    base_id = request.query.get("trunkBase.id")
    edge_id = request.query.get("edge.id")
    items = []
    for trunk in sim.org.trunks.values():
        site = sim.org.site(trunk.site_id)
        if trunk_type and trunk_type != "EXTERNAL":
            continue
        if base_id and trunk.trunk_base_id != base_id:
            continue
        if edge_id and (site is None or site.edge_id != edge_id):
            continue
        items.append(trunk)
    items = sort_entities(
        request, items, lambda t: sim.org.trunk_bases[t.trunk_base_id]["name"].lower()
    )
    return json_response(paged(request, items, lambda t: trunk_json(sim, t)))


async def get_trunk(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    return json_response(trunk_json(sim, _trunk(sim, request.match_info["trunkId"])))


async def trunk_metrics(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    return json_response(trunk_metrics_json(sim, _trunk(sim, request.match_info["trunkId"])))


async def trunks_metrics(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    ids = query_list(request, "trunkIds")
    if not ids:
        raise bad_request("trunkIds is required.")
    if len(ids) > 100:
        raise bad_request("At most 100 trunkIds may be requested at once.")
    return json_response([trunk_metrics_json(sim, _trunk(sim, i)) for i in ids])


# --- sites, routes, edge groups -----------------------------------------------------------


def site_json(sim: Sim, site: Site) -> JSON:
    return {
        "id": site.id,
        "name": site.name,
        "division": sim.org.division,
        "description": f"Cloud site {site.name}",
        "version": site.version,
        "dateCreated": iso_ms(CREATED),
        "dateModified": iso_ms(CREATED),
        "modifiedBy": "system",
        "createdBy": "system",
        "state": "active",
        "primarySites": [],
        "secondarySites": [],
        "primaryEdges": [],
        "secondaryEdges": [],
        "addresses": [],
        "edges": [ref(site.edge_id, f"{site.name} Cloud Edge", f"{EDGES}/{site.edge_id}")],
        "mediaRegionsUseLatencyBased": False,
        "location": {
            "id": site.location_id,
            "name": f"{site.name} Location",
            "selfUri": f"/api/v2/locations/{site.location_id}",
        },
        "managed": False,
        "ntpSettings": {"servers": []},
        "mediaModel": "Cloud",
        "coreSite": False,
        "siteConnections": [],
        "mediaRegions": [],
        "cloudProxyForceTurn": False,
        "selfUri": f"{EDGES}/sites/{site.id}",
    }


def _site(sim: Sim, site_id: str) -> Site:
    site = sim.org.site(site_id)
    if site is None:
        raise not_found("site", site_id)
    return site


async def get_site(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    return json_response(site_json(sim, _site(sim, request.match_info["siteId"])))


def _routes(sim: Sim, request: web.Request, site_id: str | None) -> list[JSON]:
    bases = set(query_list(request, "externalTrunkBases.ids"))
    name = request.query.get("name")
    out = []
    for route_id, route in sim.org.routes.items():
        if site_id is not None and sim.org.route_site[route_id] != site_id:
            continue
        if bases and not bases & {t["id"] for t in route.get("externalTrunkBases", [])}:
            continue
        if not name_matches(name, route["name"]):
            continue
        out.append(route)
    return sort_entities(request, out, lambda r: r["name"].lower())


async def list_site_routes(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    site = _site(sim, request.match_info["siteId"])
    return json_response(paged(request, _routes(sim, request, site.id), lambda r: r))


async def list_routes(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    site_id = request.query.get("site.id") or None

    def render(route: JSON) -> JSON:
        # OutboundRoute (the org-wide listing) embeds the full Site before selfUri.
        out = {k: v for k, v in route.items() if k != "selfUri"}
        site = sim.org.site_of(sim.org.route_site[route["id"]])
        out["site"] = site_json(sim, site)
        out["managed"] = False
        out["selfUri"] = route["selfUri"]
        return out

    return json_response(paged(request, _routes(sim, request, site_id), render))


def _route(sim: Sim, request: web.Request) -> JSON:
    site = _site(sim, request.match_info["siteId"])
    route_id = request.match_info["outboundRouteId"]
    route = sim.org.routes.get(route_id)
    if route is None or sim.org.route_site[route_id] != site.id:
        raise not_found("outbound route", route_id)
    return route


async def get_site_route(request: web.Request) -> web.StreamResponse:
    return json_response(_route(get_sim(request), request))


async def put_site_route(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    current = _route(sim, request)
    body = await json_object(request)
    if not isinstance(body.get("name"), str) or not body["name"]:
        raise bad_request("name is required.", "required.field.missing")
    classes = body.get("classificationTypes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise bad_request("classificationTypes is required.", "required.field.missing")
    _check_version(body, current["version"], "outbound route")
    bases = body.get("externalTrunkBases") or []
    if not isinstance(bases, list):
        raise bad_request("externalTrunkBases must be a list.")
    refs = []
    for item in bases:
        tb_id = item.get("id") if isinstance(item, dict) else None
        tb = sim.org.trunk_bases.get(tb_id) if isinstance(tb_id, str) else None
        if tb is None or tb["trunkType"] != "EXTERNAL":
            raise bad_request(
                f"externalTrunkBases: {tb_id} is not an external trunk base.", "invalid.value"
            )
        refs.append(ref(tb["id"], tb["name"], tb["selfUri"]))
    if len({r["id"] for r in refs}) != len(refs):
        raise bad_request("externalTrunkBases must not repeat a trunk base.", "duplicate.value")
    distribution = body.get("distribution") or "SEQUENTIAL"
    if distribution not in ("SEQUENTIAL", "RANDOM"):
        raise bad_request(f"distribution {distribution!r} must be SEQUENTIAL or RANDOM.")
    new = _replaced_header(sim, request, current, body)
    new.update(
        {
            "classificationTypes": classes,
            # A boolean left out of a full replacement reads as false, as it would server-side.
            "enabled": body.get("enabled") is True,
            "distribution": distribution,
            "externalTrunkBases": refs,
            "selfUri": current["selfUri"],
        }
    )
    sim.org.routes[current["id"]] = new
    return json_response(new)


async def get_edge_group(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    group_id = request.match_info["edgeGroupId"]
    site = next((s for s in sim.org.sites if s.edge_group_id == group_id), None)
    if site is None:
        raise not_found("edge group", group_id)
    return json_response(
        {
            "id": group_id,
            "name": f"{site.name} Edge Group",
            "division": sim.org.division,
            "description": f"Cloud edge group of {site.name}",
            "version": 1,
            "dateCreated": iso_ms(CREATED),
            "dateModified": iso_ms(CREATED),
            "modifiedBy": "system",
            "createdBy": "system",
            "state": "active",
            "managed": True,
            "hybrid": False,
            "edgeTrunkBaseAssignment": {"family": 4},
            "phoneTrunkBases": [],
            "selfUri": f"{EDGES}/edgegroups/{group_id}",
        }
    )


# --- outbound campaigns ---------------------------------------------------------------------

CAMPAIGN_FIELDS = (
    "name", "contactList", "queue", "dialingMode", "script", "edgeGroup", "site", "campaignStatus",
    "phoneColumns", "abandonRate", "dncLists", "callableTimeSet", "callAnalysisResponseSet",
    "callerName", "callerAddress", "outboundLineCount", "ruleSets", "skipPreviewDisabled",
    "previewTimeOutSeconds", "alwaysRunning", "contactSort", "contactSorts", "noAnswerTimeout",
    "callAnalysisLanguage", "priority", "contactListFilters", "division", "agentOwnedColumn",
    "dynamicContactQueueingSettings", "skillColumns", "previewAutoEnd", "maxCallsPerAgent",
    "maxCallsPerAgentDecimal", "callbackAutoAnswer", "dynamicLineBalancingSettings",
    "diagnosticsSettings", "preciseDialingEnabled",
)  # fmt: skip
CAMPAIGN_REQUIRED = (
    "name",
    "contactList",
    "dialingMode",
    "phoneColumns",
    "callerName",
    "callerAddress",
)


def _campaign(sim: Sim, request: web.Request) -> JSON:
    campaign_id = request.match_info["campaignId"]
    campaign = sim.org.campaigns.get(campaign_id)
    if campaign is None:
        raise not_found("campaign", campaign_id)
    return campaign


async def list_campaigns(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    name = request.query.get("name")
    filter_type = (request.query.get("filterType") or "Prefix").lower()
    ids = set(query_list(request, "id"))
    edge_group = request.query.get("edgeGroupId")
    divisions = set(query_list(request, "divisionId"))
    items = []
    for campaign in sim.org.campaigns.values():
        if name:
            cname, wanted = campaign["name"].lower(), name.lower()
            if filter_type == "equals" and cname != wanted:
                continue
            if filter_type == "contains" and wanted not in cname:
                continue
            if filter_type not in ("equals", "contains") and not cname.startswith(wanted):
                continue
        if ids and campaign["id"] not in ids:
            continue
        if edge_group and (campaign.get("edgeGroup") or {}).get("id") != edge_group:
            continue
        if divisions and (campaign.get("division") or {}).get("id") not in divisions:
            continue
        items.append(campaign)
    items = sort_entities(request, items, lambda c: c["name"].lower())
    return json_response(paged(request, items, lambda c: c, max_page_size=100))


async def get_campaign(request: web.Request) -> web.StreamResponse:
    return json_response(_campaign(get_sim(request), request))


def _check_line_count(value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10000:
        raise bad_request(
            f"outboundLineCount {value!r} must be an integer between 0 and 10000.",
            "invalid.campaign.outbound.line.count",
        )


async def put_campaign(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    current = _campaign(sim, request)
    body = await json_object(request)
    for required in CAMPAIGN_REQUIRED:
        if body.get(required) in (None, "", []):
            raise bad_request(f"{required} is required.", "required.field.missing")
    if not body.get("campaignStatus"):
        raise bad_request("campaignStatus is required for updates.", "required.field.missing")
    _check_version(body, current["version"], "campaign", "invalid.update.wrong.version")
    _check_line_count(body.get("outboundLineCount"))
    new: JSON = {
        "id": current["id"],
        "name": body["name"],
        "dateCreated": current["dateCreated"],
        "dateModified": iso_ms(sim.now()),
        "version": current["version"] + 1,
    }
    for key in CAMPAIGN_FIELDS[1:]:
        if key in body and body[key] is not None:
            new[key] = body[key]
    new["errors"] = []
    new["selfUri"] = current["selfUri"]
    sim.org.campaigns[current["id"]] = new
    sim.notify_campaign(new)
    return json_response(new)


async def patch_campaign(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    current = _campaign(sim, request)
    body = await json_object(request)
    allowed = {
        "outboundLineCount",
        "abandonRate",
        "maxCallsPerAgent",
        "dynamicLineBalancingSettings",
        "queue",
    }
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(f"Unrecognized field(s) {unknown} for a campaign patch.")
    _check_line_count(body.get("outboundLineCount"))
    for key, value in body.items():
        if value is not None:
            current[key] = value
    # Any change is a new version: a concurrent PUT holding the old version must get a 409.
    current["version"] += 1
    current["dateModified"] = iso_ms(sim.now())
    sim.notify_campaign(current)
    return web.Response(status=204)


# --- tokens and limits ---------------------------------------------------------------------


async def tokens_me(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    client = _modifier(sim, request)
    org = {"id": sim.org.org_id, "name": sim.org.org_name}
    return json_response(
        {
            "organization": org,
            "homeOrganization": org,
            "authorizedScope": [],
            "OAuthClient": {
                "id": client,
                "name": client,
                "authorizedGrantType": "CLIENT-CREDENTIALS",
                "state": "active",
                "organization": org,
            },
        }
    )


LIMIT_NAMESPACES = frozenset(
    (
        "platform.api", "auth.api", "workforce.management", "telephony.configuration",
        "outbound", "notifications", "organization.notice",
    )
)  # fmt: skip


def per_minute(quota: int, window_s: float) -> int:
    """A quota per ``window_s`` as the limits API states it: requests per (real) minute. A
    time-scaled simulator (50 per 1 s) really admits 3000 a minute, and says so."""
    return max(1, math.floor(quota * 60.0 / window_s + 1e-9))


def _limits(sim: Sim, namespace: str, defaults: bool) -> JSON:
    if namespace not in LIMIT_NAMESPACES:
        raise not_found("limits namespace", namespace)
    if sim.rate.limits_status != 200:
        raise ApiError(*LIMITS_REFUSALS[sim.rate.limits_status])
    if namespace != "platform.api":
        return {"entities": []}
    quota = 300 if defaults else per_minute(sim.rate.quota, sim.rate.window_s)
    values = {
        PLATFORM_LIMITS[0]: quota,
        PLATFORM_LIMITS[1]: quota,
        "org.app.user.rate.per.minute": 3000,
    }
    return {"entities": [{"key": k, "namespace": namespace, "value": v} for k, v in values.items()]}


async def limits(request: web.Request) -> web.StreamResponse:
    return json_response(_limits(get_sim(request), request.match_info["namespaceName"], False))


async def limits_defaults(request: web.Request) -> web.StreamResponse:
    return json_response(_limits(get_sim(request), request.match_info["namespaceName"], True))


def add_routes(router: web.UrlDispatcher) -> None:
    tbs = f"{EDGES}/trunkbasesettings"
    # Literal segments are registered before the {id} routes they would otherwise shadow.
    router.add_get(tbs, list_trunk_bases)
    router.add_get(f"{tbs}/template", trunk_base_template)
    router.add_get(f"{tbs}/availablemetabases", available_metabases)
    router.add_get(f"{tbs}/{{trunkBaseSettingsId}}", get_trunk_base)
    router.add_put(f"{tbs}/{{trunkBaseSettingsId}}", put_trunk_base)
    router.add_get(f"{EDGES}/trunks", list_trunks)
    router.add_get(f"{EDGES}/trunks/metrics", trunks_metrics)
    router.add_get(f"{EDGES}/trunks/{{trunkId}}", get_trunk)
    router.add_get(f"{EDGES}/trunks/{{trunkId}}/metrics", trunk_metrics)
    router.add_get(f"{EDGES}/sites/{{siteId}}", get_site)
    router.add_get(f"{EDGES}/sites/{{siteId}}/outboundroutes", list_site_routes)
    router.add_get(f"{EDGES}/sites/{{siteId}}/outboundroutes/{{outboundRouteId}}", get_site_route)
    router.add_put(f"{EDGES}/sites/{{siteId}}/outboundroutes/{{outboundRouteId}}", put_site_route)
    router.add_get(f"{EDGES}/outboundroutes", list_routes)
    router.add_get(f"{EDGES}/edgegroups/{{edgeGroupId}}", get_edge_group)
    router.add_get("/api/v2/outbound/campaigns", list_campaigns)
    router.add_get("/api/v2/outbound/campaigns/{campaignId}", get_campaign)
    router.add_put("/api/v2/outbound/campaigns/{campaignId}", put_campaign)
    router.add_patch("/api/v2/outbound/campaigns/{campaignId}", patch_campaign)
    router.add_get("/api/v2/tokens/me", tokens_me)
    router.add_get("/api/v2/organizations/limits/namespaces/{namespaceName}", limits)
    router.add_get(
        "/api/v2/organizations/limits/namespaces/{namespaceName}/defaults", limits_defaults
    )
