"""The /_sim/ control API: drive and inspect the simulator over HTTP (not part of Genesys).

Role: thin JSON wrappers around the operations of the in-process `Sim` object (state dump,
request log, counters, trunk fail/recover, schedule publish, a person's edit, faults, the hold,
rate-limit settings, the notification service's lifecycle faults), for tests and demos running
the simulator in another process. No authentication, not counted against any token. It must not
contain simulation logic of its own (that lives in state.py and notifications.py, so in-process
callers get exactly the same behaviour) and must not import the rest of syncd.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from syncd.sim import notifications
from syncd.sim.http import get_sim, json_response
from syncd.sim.state import SimError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return json_response({"error": message, "status": status}, status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SimError(400, "the body must be JSON") from None
    if not isinstance(body, dict):
        raise SimError(400, "the body must be a JSON object")
    return body


def _guard(handler: Handler) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except SimError as exc:
            return _error(exc.status, exc.message)

    return wrapped


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise SimError(400, f"{key} must be a string")
    return value


def _opt_int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise SimError(400, f"{key} must be an integer")
    return value


async def state(request: web.Request) -> web.StreamResponse:
    agents = request.query.get("agents", "").lower() == "true"
    return json_response(get_sim(request).state_json(include_agents=agents))


async def requests_log(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("limit")
    limit = int(raw) if raw and raw.isdigit() else None
    return json_response({"requests": get_sim(request).requests_json(limit)})


async def counters(request: web.Request) -> web.StreamResponse:
    return json_response(get_sim(request).counters_json())


async def reset_counters(request: web.Request) -> web.StreamResponse:
    get_sim(request).reset_counters()
    return json_response({"reset": True})


async def trunk_fail(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    sim = get_sim(request)
    return json_response(
        sim.fail_trunk(request.match_info["trunkBaseId"], _opt_str(body, "server"))
    )


async def trunk_recover(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    sim = get_sim(request)
    return json_response(
        sim.recover_trunk(request.match_info["trunkBaseId"], _opt_str(body, "server"))
    )


async def publish(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    result = get_sim(request).publish_schedule(
        _opt_str(body, "businessUnitId"),
        management_unit_id=_opt_str(body, "managementUnitId"),
        week_id=_opt_str(body, "weekId"),
        agents=_opt_int(body, "agents"),
        shift_minutes=_opt_int(body, "shiftMinutes") or 60,
    )
    return json_response(result)


async def human_edit(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    kind, entity_id = _opt_str(body, "kind"), _opt_str(body, "id")
    if kind is None or entity_id is None:
        raise SimError(400, "kind and id are required")
    return json_response(get_sim(request).human_edit(kind, entity_id))


async def set_faults(request: web.Request) -> web.StreamResponse:
    return json_response({"faults": get_sim(request).set_faults(await _body(request))})


async def get_faults(request: web.Request) -> web.StreamResponse:
    config = get_sim(request).faults.config
    return json_response({"faults": config.to_json() if config else None})


async def clear_faults(request: web.Request) -> web.StreamResponse:
    get_sim(request).clear_faults()
    return json_response({"faults": None})


async def set_hold(request: web.Request) -> web.StreamResponse:
    return json_response(get_sim(request).set_hold(await _body(request)))


async def get_hold(request: web.Request) -> web.StreamResponse:
    """``?atLeast=N[&timeout=S]`` waits (default 10 s) until N requests are parked; 408 if not."""
    sim = get_sim(request)
    raw = request.query.get("atLeast")
    if raw is not None:
        timeout = request.query.get("timeout", "10")
        try:
            count, timeout_s = int(raw), float(timeout)
        except ValueError:
            raise SimError(400, "atLeast must be an integer and timeout a number") from None
        if not await sim.hold.wait_held(count, timeout_s):
            raise SimError(408, f"fewer than {count} requests were parked after {timeout_s} s")
    return json_response(sim.hold.to_json())


async def release_hold(request: web.Request) -> web.StreamResponse:
    return json_response(await get_sim(request).release_hold())


async def set_ratelimit(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    unknown = set(body) - {"model", "quota", "window_s", "headers", "limits_status"}
    if unknown:
        raise SimError(400, f"unknown settings {sorted(unknown)}")
    window = body.get("window_s")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int | float)):
        raise SimError(400, "window_s must be a number")
    headers = body.get("headers")
    if headers is not None and not isinstance(headers, bool):
        raise SimError(400, "headers must be a boolean")
    result = get_sim(request).set_ratelimit(
        model=_opt_str(body, "model"),
        quota=_opt_int(body, "quota"),
        window_s=float(window) if window is not None else None,
        headers=headers,
        limits_status=_opt_int(body, "limits_status"),
    )
    return json_response(result)


async def get_ratelimit(request: web.Request) -> web.StreamResponse:
    return json_response(get_sim(request).ratelimit_json())


async def set_permissions(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    client, permissions = body.get("client"), body.get("permissions")
    if not isinstance(client, str) or not isinstance(permissions, list):
        raise SimError(400, 'give {"client": "<id>", "permissions": ["domain:entity:action", ...]}')
    return json_response(get_sim(request).set_permissions(client, permissions))


async def expire_tokens(request: web.Request) -> web.StreamResponse:
    return json_response({"expired": get_sim(request).expire_tokens()})


def _opt_seconds(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SimError(400, f"{key} must be a number of seconds >= 0")
    return float(value)


def _channels(request: web.Request) -> notifications.Channels:
    return request.app[notifications.CHANNELS_KEY]


async def get_notifications(request: web.Request) -> web.StreamResponse:
    return json_response(_channels(request).to_json())


async def set_notifications(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    unknown = set(body) - {"heartbeats", "heartbeat_s", "ttl_s", "missing_permissions"}
    if unknown:
        raise SimError(400, f"unknown settings {sorted(unknown)}")
    heartbeats = body.get("heartbeats")
    if heartbeats is not None and not isinstance(heartbeats, bool):
        raise SimError(400, "heartbeats must be a boolean")
    missing = body.get("missing_permissions")
    if missing is not None and (
        not isinstance(missing, list) or not all(isinstance(p, str) for p in missing)
    ):
        raise SimError(400, "missing_permissions must be a list of strings")
    heartbeat_s = _opt_seconds(body, "heartbeat_s")
    ttl_s = _opt_seconds(body, "ttl_s")
    if heartbeat_s == 0 or ttl_s == 0:
        raise SimError(400, "heartbeat_s and ttl_s must be > 0")
    return json_response(
        _channels(request).settings(
            heartbeats=heartbeats,
            heartbeat_s=heartbeat_s,
            ttl_s=ttl_s,
            missing_permissions=missing,
        )
    )


async def drop_sockets(request: web.Request) -> web.StreamResponse:
    return json_response({"dropped": _channels(request).drop_sockets()})


async def socket_closing(request: web.Request) -> web.StreamResponse:
    grace = _opt_seconds(await _body(request), "grace_s")
    return json_response({"sockets": _channels(request).socket_closing(grace or 0.0)})


async def expire_channels(request: web.Request) -> web.StreamResponse:
    in_s = _opt_seconds(await _body(request), "in_s")
    return json_response({"channels": _channels(request).expire(in_s or 0.0)})


def add_routes(router: web.UrlDispatcher) -> None:
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/_sim/state", state),
        ("POST", "/_sim/permissions", set_permissions),
        ("GET", "/_sim/requests", requests_log),
        ("GET", "/_sim/counters", counters),
        ("POST", "/_sim/reset-counters", reset_counters),
        ("POST", "/_sim/trunks/{trunkBaseId}/fail", trunk_fail),
        ("POST", "/_sim/trunks/{trunkBaseId}/recover", trunk_recover),
        ("POST", "/_sim/schedules/publish", publish),
        ("POST", "/_sim/human-edit", human_edit),
        ("GET", "/_sim/faults", get_faults),
        ("POST", "/_sim/faults", set_faults),
        ("DELETE", "/_sim/faults", clear_faults),
        ("GET", "/_sim/hold", get_hold),
        ("POST", "/_sim/hold", set_hold),
        ("DELETE", "/_sim/hold", release_hold),
        ("GET", "/_sim/ratelimit", get_ratelimit),
        ("POST", "/_sim/ratelimit", set_ratelimit),
        ("POST", "/_sim/tokens/expire", expire_tokens),
        ("GET", "/_sim/notifications", get_notifications),
        ("POST", "/_sim/notifications", set_notifications),
        ("POST", "/_sim/notifications/drop", drop_sockets),
        ("POST", "/_sim/notifications/socket-closing", socket_closing),
        ("POST", "/_sim/notifications/expire", expire_channels),
    ]
    for method, path, handler in routes:
        router.add_route(method, path, _guard(handler))
