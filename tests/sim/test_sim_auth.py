"""OAuth client credentials and bearer-token checks, with a fake clock for expiry."""

from __future__ import annotations

from typing import Any

import aiohttp
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
    running.sim.set_ratelimit(quota=50, window_s=1.0)
    body = await client.get("/api/v2/organizations/limits/namespaces/platform.api")
    values = {e["key"]: e["value"] for e in body["entities"]}
    assert values["client.credentials.token.rate.per.minute"] == 50
    body = await client.get("/api/v2/organizations/limits/namespaces/platform.api/defaults")
    assert {e["key"]: e["value"] for e in body["entities"]}[
        "client.credentials.token.rate.per.minute"
    ] == 300
    status, _, _ = await client.call("GET", "/api/v2/organizations/limits/namespaces/no.such")
    assert status == 404
