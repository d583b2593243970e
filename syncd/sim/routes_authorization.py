"""The OAuth client and role resources of the simulator (``syncd verify`` reads them).

Role: ``GET /api/v2/oauth/clients/{clientId}`` (the client, its ``roleDivisions``) and
``GET /api/v2/authorization/roles/{roleId}`` (the role, its ``permissionPolicies``), with the
JSON of api-subset.json. Each client has one role whose permissions the control API sets. A
caller whose own role lacks ``oauth:client:view`` / ``authorization:role:view`` gets a 403, as a
daemon's client without those permissions would. It must not check tokens or rate limits (the
middleware does) and must not import the rest of syncd.
"""

from __future__ import annotations

from aiohttp import web

from syncd.sim.http import TOKEN_KEY, ApiError, get_sim, json_response, not_found
from syncd.sim.org import CREATED, JSON, derived_uuid, iso_ms
from syncd.sim.state import Sim

OAUTH_CLIENTS = "/api/v2/oauth/clients"
ROLES = "/api/v2/authorization/roles"


def role_id(client_id: str) -> str:
    return derived_uuid("role", client_id)


def _caller(sim: Sim, request: web.Request) -> str:
    token = sim.token(request.get(TOKEN_KEY, ""))
    return token.client_id if token is not None else ""


def _require(sim: Sim, request: web.Request, permission: str) -> None:
    if permission not in sim.client_permissions(_caller(sim, request)):
        raise ApiError(
            403,
            "missing.permissions",
            f"You are missing the following permission(s): [{permission}]",
        )


def client_json(sim: Sim, client_id: str) -> JSON:
    return {
        "id": client_id,
        "name": client_id,
        "accessTokenValiditySeconds": sim.options.token_ttl_s,
        "description": "",
        "registeredRedirectUri": [],
        "roleIds": [role_id(client_id)],
        "dateCreated": iso_ms(CREATED),
        "authorizedGrantType": "CLIENT-CREDENTIALS",
        "scope": [],
        "roleDivisions": [{"roleId": role_id(client_id), "divisionId": sim.org.division["id"]}],
        "state": "active",
        "selfUri": f"{OAUTH_CLIENTS}/{client_id}",
    }


def role_json(sim: Sim, client_id: str) -> JSON:
    """The role, its permissions grouped into policies by (domain, entity), as the API does."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for permission in sim.client_permissions(client_id):
        domain, entity, action = permission.split(":")
        grouped.setdefault((domain, entity), []).append(action)
    rid = role_id(client_id)
    return {
        "id": rid,
        "name": f"{client_id} role",
        "description": "The role of an OAuth client (simulated)",
        "permissions": [],
        "permissionPolicies": [
            {
                "domain": domain,
                "entityName": entity,
                "policyName": f"{domain}:{entity}",
                "actionSet": actions,
                "allowConditions": False,
            }
            for (domain, entity), actions in grouped.items()
        ],
        "userCount": 0,
        "default": False,
        "base": False,
        "selfUri": f"{ROLES}/{rid}",
    }


async def get_oauth_client(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    _require(sim, request, "oauth:client:view")
    client_id = request.match_info["clientId"]
    if client_id not in sim.options.clients:
        raise not_found("OAuth client", client_id)
    return json_response(client_json(sim, client_id))


async def get_role(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    _require(sim, request, "authorization:role:view")
    wanted = request.match_info["roleId"]
    client_id = next((c for c in sim.options.clients if role_id(c) == wanted), None)
    if client_id is None:
        raise not_found("role", wanted)
    return json_response(role_json(sim, client_id))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(f"{OAUTH_CLIENTS}/{{clientId}}", get_oauth_client)
    router.add_get(f"{ROLES}/{{roleId}}", get_role)
