"""OAuth client credentials and bearer-token checks, with a fake clock for expiry."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from sim_helpers import Client, FakeClock, W, basic, options

from syncd.sim import start_sim


async def _token(
    session: aiohttp.ClientSession, base: str, auth: str | None, grant: str
) -> tuple[int, Any]:
    headers = {"Authorization": auth} if auth else {}
    async with session.post(
        f"{base}/oauth/token", data={"grant_type": grant}, headers=headers
    ) as resp:
        return resp.status, await resp.json()


async def test_token_shape(client: Client) -> None:
    status, body = await _token(
        client.session, client.base, basic("demo-client", "demo-secret"), "client_credentials"
    )
    assert status == 200
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86400
    assert len(body["access_token"]) >= 32


async def test_bad_credentials_and_bad_grant(client: Client) -> None:
    status, body = await _token(
        client.session, client.base, basic("demo-client", "wrong"), "client_credentials"
    )
    assert status == 401
    assert body["error"] == "invalid_client"
    assert set(body) == {"error", "description", "error_description"}
    status, body = await _token(client.session, client.base, None, "client_credentials")
    assert status == 401
    status, body = await _token(
        client.session, client.base, basic("demo-client", "demo-secret"), "password"
    )
    assert status == 400
    assert body["error"] == "unsupported_grant_type"


async def test_missing_and_unknown_tokens_are_401_with_normalized_body(client: Client) -> None:
    status, body, headers = await client.call("GET", f"{W}/businessunits", headers={})
    assert status == 401
    assert body["code"] == "authentication.required"
    assert body["contextId"] == headers["ININ-Correlation-Id"]
    assert body["details"] == []
    assert body["errors"] == []
    status, body, _ = await client.call(
        "GET", f"{W}/businessunits", headers={"Authorization": "Bearer nope"}
    )
    assert status == 401
    assert body["code"] == "bad.credentials"
    assert body["status"] == 401


async def test_token_expires_on_the_sim_clock(clock: FakeClock) -> None:
    running = await start_sim(options=options(clock, token_ttl_s=300))
    try:
        async with aiohttp.ClientSession() as session:
            client = Client(running, session)
            await client.login()
            assert (await client.call("GET", f"{W}/businessunits"))[0] == 200
            clock.advance(299.9)
            assert (await client.call("GET", f"{W}/businessunits"))[0] == 200
            clock.advance(0.1)
            status, body, _ = await client.call("GET", f"{W}/businessunits")
            assert status == 401
            assert body["code"] == "bad.credentials"
            await client.login()
            assert (await client.call("GET", f"{W}/businessunits"))[0] == 200
    finally:
        await running.close()


async def test_control_api_can_expire_every_token(client: Client) -> None:
    status, body = await client.control("POST", "tokens/expire")
    assert status == 200
    assert body["expired"] == 1
    assert (await client.call("GET", f"{W}/businessunits"))[0] == 401


async def test_tokens_me_names_the_client(client: Client, state: dict[str, Any]) -> None:
    body = await client.get("/api/v2/tokens/me")
    assert body["OAuthClient"]["id"] == "demo-client"
    assert body["OAuthClient"]["authorizedGrantType"] == "CLIENT-CREDENTIALS"
    assert body["organization"]["id"] == state["org"]["id"]


async def test_limits_namespace_reports_the_quota(client: Client, running: Any) -> None:
    body = await client.get("/api/v2/organizations/limits/namespaces/platform.api")
    values = {e["key"]: e["value"] for e in body["entities"]}
    assert values["client.credentials.token.rate.per.minute"] == 300
    # The key says "per minute": a time-scaled quota (50 per 1 s window) is 3000 a minute.
    running.sim.set_ratelimit(quota=50, window_s=1.0)
    body = await client.get("/api/v2/organizations/limits/namespaces/platform.api")
    assert body == {
        "entities": [
            {"key": key, "namespace": "platform.api", "value": value}
            for key, value in (
                ("client.credentials.token.rate.per.minute", 3000),
                ("token.rate.per.minute", 3000),
                ("org.app.user.rate.per.minute", 3000),
            )
        ]
    }
    running.sim.set_ratelimit(quota=45, window_s=0.5)
    body = await client.get("/api/v2/organizations/limits/namespaces/platform.api")
    assert body["entities"][0]["value"] == 5400
    body = await client.get("/api/v2/organizations/limits/namespaces/platform.api/defaults")
    assert {e["key"]: e["value"] for e in body["entities"]}[
        "client.credentials.token.rate.per.minute"
    ] == 300
    status, _, _ = await client.call("GET", "/api/v2/organizations/limits/namespaces/no.such")
    assert status == 404


@pytest.mark.parametrize(("status", "code"), [(403, "not.authorized"), (404, "not.found")])
async def test_the_limits_api_can_be_refused(
    client: Client, running: Any, status: int, code: str
) -> None:
    """An org that does not let the client read its limits (or does not offer them)."""
    assert (await client.control("POST", "ratelimit", {"limits_status": status}))[0] == 200
    for path in ("platform.api", "platform.api/defaults"):
        got, body, _ = await client.call("GET", f"/api/v2/organizations/limits/namespaces/{path}")
        assert (got, body["code"]) == (status, code)
    assert (await client.control("POST", "ratelimit", {"limits_status": 200}))[0] == 200
    assert (await client.get("/api/v2/organizations/limits/namespaces/platform.api"))["entities"]
