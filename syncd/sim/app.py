"""The aiohttp application of the simulator: middleware, OAuth, presigned blobs, wiring.

Role: every request passes one middleware that gives it an ININ-Correlation-Id, checks the
bearer token (/api/v2 only), applies the token's rate limit and the injected faults, turns
handler errors into the normalized ErrorBody, adds the inin-ratelimit-* headers and records the
request in the counters and log. The /api/v2 resources live in routes_*.py, the /_sim/ control
API in control.py. It must not import anything from the rest of syncd.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from syncd.sim import control, notifications, routes_authorization, routes_telephony, routes_wfm
from syncd.sim.http import (
    CID_KEY,
    SIM_KEY,
    TOKEN_KEY,
    ApiError,
    error_body,
    error_response,
    get_sim,
    json_response,
)
from syncd.sim.state import Sim

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS_TEXT = {
    500: (
        "internal.server.error",
        "The server encountered an unexpected condition which prevented it from fulfilling "
        "the request.",
    ),
    501: ("not.implemented", "Not implemented."),
    502: (
        "bad.gateway",
        "Bad Gateway - The server received an invalid response from an upstream server.",
    ),
    503: (
        "service.unavailable",
        "Service Unavailable - The server is currently unavailable (because it is overloaded "
        "or down for maintenance).",
    ),
    504: ("gateway.timeout", "The request timed out."),
}


def route_template(request: web.Request) -> str:
    """The route as declared (`.../trunkbasesettings/{trunkBaseSettingsId}`), for counters."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "(unmatched)"


class _ConnectionResetError(Exception):
    """The fault injector closed the connection; the client gets no response.

    ``status`` is what the server did before dropping it (0: nothing; a lost answer records
    the status of the write it applied, so the request log says the write landed)."""

    def __init__(self, status: int = 0) -> None:
        super().__init__(status)
        self.status = status


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sim = get_sim(request)
    cid = str(uuid.uuid4())
    request[CID_KEY] = cid
    path = request.path
    if path.startswith("/_sim/"):
        response = await _call(handler, request, cid)
        response.headers["ININ-Correlation-Id"] = cid
        return response
    route = route_template(request)
    status = 0  # recorded as 0 when the connection was reset
    try:
        if path.startswith("/api/v2/"):
            response = await _api(sim, request, handler, cid)
        else:
            response = await _call(handler, request, cid)
        response.headers["ININ-Correlation-Id"] = cid
        status = response.status
        return response
    except _ConnectionResetError as exc:
        # Nothing is sent: the client sees the connection drop (ServerDisconnectedError).
        status = exc.status
        raise asyncio.CancelledError from None
    finally:
        sim.record(request.method, route, path, status, request.get(TOKEN_KEY), cid)


async def _call(handler: Handler, request: web.Request, cid: str) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, cid, exc.details)
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(404, "not.found", "The requested resource was not found.", cid)
        if exc.status == 405:
            return error_response(405, "method.not.allowed", "HTTP method not allowed.", cid)
        return error_response(exc.status, "bad.request", exc.reason, cid)


def _ratelimit_headers(response: web.StreamResponse, count: int, allowed: int, reset: int) -> None:
    response.headers["inin-ratelimit-count"] = str(count)
    response.headers["inin-ratelimit-allowed"] = str(allowed)
    response.headers["inin-ratelimit-reset"] = str(reset)


async def _api(sim: Sim, request: web.Request, handler: Handler, cid: str) -> web.StreamResponse:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error_response(
            401,
            "authentication.required",
            "No authentication bearer token specified in authorization header.",
            cid,
        )
    token = token.strip()
    if sim.token(token) is None:
        return error_response(401, "bad.credentials", "Invalid login credentials.", cid)
    request[TOKEN_KEY] = token
    decision = sim.hit(token, request.method, route_template(request))
    response: web.StreamResponse
    if not decision.admitted:
        response = json_response(
            error_body(
                429,
                "too.many.requests.retry.after",
                "Rate limit exceeded the maximum. "
                f"Retry the request in [{decision.retry_after}] seconds",
                cid,
            ),
            429,
        )
        response.headers["Retry-After"] = str(decision.retry_after)
    else:
        if sim.hold.matches(request.method, request.path):
            # The whole request is received before it is parked (aiohttp keeps the body), so a
            # released write is handled even when its client has gone meanwhile: a write in
            # flight when a process dies may still land.
            await request.read()
        async with sim.hold.parked(request.method, request.path):
            response = await _faulted(sim, request, handler, cid)
    if sim.rate.headers:
        _ratelimit_headers(response, decision.count, decision.allowed, decision.reset)
    return response


async def _faulted(
    sim: Sim, request: web.Request, handler: Handler, cid: str
) -> web.StreamResponse:
    plan = sim.faults.plan(request.method, request.path)
    if plan.delay_s > 0:
        await asyncio.sleep(plan.delay_s)
    if plan.action == "reset":
        _drop(request)
        raise _ConnectionResetError
    if plan.action == "timeout_504":
        code, message = STATUS_TEXT[504]
        return error_response(504, code, message, cid)
    if plan.action == "error_5xx":
        status = sim.faults.config.status_5xx if sim.faults.config else 503
        code, message = STATUS_TEXT.get(status, STATUS_TEXT[500])
        return error_response(status, code, message, cid)
    if plan.action == "conflict_400" and request.match_info.http_exception is None:
        return error_response(
            400,
            "bad.request",
            "The version supplied does not match the current version of the entity.",
            cid,
        )
    response = await _call(handler, request, cid)
    if plan.action == "lost_answer":
        _drop(request)  # the write is done; its answer never leaves
        raise _ConnectionResetError(response.status)
    if plan.malformed and response.status == 200 and isinstance(response, web.Response):
        body = response.body
        if isinstance(body, bytes) and len(body) > 1:
            # A truncated but complete HTTP message: the JSON itself is broken.
            response.body = body[: len(body) // 2]
    return response


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


# --- OAuth ------------------------------------------------------------------------------


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_response(
        {"error": error, "description": description, "error_description": description}, status
    )


async def oauth_token(request: web.Request) -> web.StreamResponse:
    """POST /oauth/token, client credentials grant with HTTP Basic client authentication."""
    sim = get_sim(request)
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    client_id = secret = None
    if scheme.lower() == "basic":
        try:
            client_id, sep, secret = (
                base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
            )
            if not sep:
                client_id = secret = None
        except (binascii.Error, UnicodeDecodeError):
            client_id = secret = None
    form = await request.post()
    if client_id is None:
        # Clients may also send the credentials in the form (RFC 6749 §2.3.1).
        form_id, form_secret = form.get("client_id"), form.get("client_secret")
        if isinstance(form_id, str) and isinstance(form_secret, str):
            client_id, secret = form_id, form_secret
    if client_id is None or secret is None:
        return _oauth_error(401, "invalid_client", "client authentication is required")
    grant = form.get("grant_type")
    if grant != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", f"grant type {grant!r} is not supported")
    issued = sim.issue_token(client_id, secret)
    if issued is None:
        return _oauth_error(401, "invalid_client", "client not found or bad client secret")
    token, ttl = issued
    return json_response({"access_token": token, "token_type": "bearer", "expires_in": ttl})


# --- presigned blobs (the download service, schedule uploads) ----------------------------


def _s3_error(status: int, code: str, message: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>"
    )
    return web.Response(text=body, status=status, content_type="application/xml")


def _check_presigned(sim: Sim, request: web.Request) -> web.Response | None:
    if "Authorization" in request.headers:
        # S3 rejects a presigned URL that also carries an Authorization header.
        return _s3_error(
            400,
            "InvalidArgument",
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
            "Signature query string parameter or the Authorization header should be specified",
        )
    blob = sim.blobs.get(request.match_info["key"])
    if blob is None:
        return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
    if request.query.get("X-Amz-Signature") != blob.signature:
        return _s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    if sim.clock() >= blob.expires_at:
        return _s3_error(403, "AccessDenied", "Request has expired")
    return None


async def download(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    problem = _check_presigned(sim, request)
    if problem is not None:
        return problem
    blob = sim.blobs[request.match_info["key"]]
    return web.Response(
        body=blob.body,
        headers={"Content-Encoding": "gzip", "Content-Type": blob.content_type},
    )


async def upload(request: web.Request) -> web.StreamResponse:
    sim = get_sim(request)
    problem = _check_presigned(sim, request)
    if problem is not None:
        return problem
    blob = sim.blobs[request.match_info["key"]]
    blob.body = await request.read()
    return web.Response(status=200)


def build_app(sim: Sim) -> web.Application:
    """The full application: real API, OAuth, blobs and the /_sim/ control API."""
    app = web.Application(middlewares=[middleware], client_max_size=16 * 1024 * 1024)
    app[SIM_KEY] = sim
    app.router.add_post("/oauth/token", oauth_token)
    app.router.add_get("/sim-downloads/{key}", download)
    app.router.add_put("/sim-uploads/{key}", upload)
    routes_wfm.add_routes(app.router)
    routes_telephony.add_routes(app.router)
    routes_authorization.add_routes(app.router)
    notifications.install(app, sim)
    control.add_routes(app.router)
    return app
