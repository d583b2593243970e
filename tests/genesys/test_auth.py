"""Secrets never leak; regions resolve as the SDKs do."""

from __future__ import annotations

import asyncio
import logging
import pickle

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from conftest import CLIENT_SECRET, Factory

from syncd import errors
from syncd.genesys import auth, regions
from syncd.obs import logs


def test_secret_is_redacted_everywhere() -> None:
    secret = auth.Secret(CLIENT_SECRET)
    creds = auth.Credentials(client_id="c", client_secret=secret)
    for text in (repr(secret), str(secret), f"{secret}", repr(creds), str(creds)):
        assert CLIENT_SECRET not in text
    assert secret.reveal() == CLIENT_SECRET
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_refresh_lead_is_a_minute_or_half_a_short_ttl() -> None:
    assert auth.refresh_lead_s(86400) == 60
    assert auth.refresh_lead_s(60) == 30


async def test_no_secret_appears_in_any_log_line(
    make_env: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # The client believes 5 (4 for routine work, 1 failover reserve); the server allows 3.
    env = await make_env(quota=3, window_s=60.0, headers=False, client_quota=5, token_ttl_s=600)
    await asyncio.gather(*(env.api.list_trunk_bases() for _ in range(6)))  # 429s and a pause
    env.running.sim.expire_tokens()
    await env.api.list_trunk_bases()  # a 401 and a refresh
    env.running.sim.set_faults({"error_5xx_rate": 1.0, "status_5xx": 503})
    with pytest.raises(errors.TransientError) as info:
        await env.api.list_campaigns()
    env.running.sim.clear_faults()
    env.transport.pool.sources[0].credentials = auth.Credentials(
        client_id="test-client", client_secret=auth.Secret(CLIENT_SECRET + "-wrong")
    )
    await env.transport.pool.sources[0].invalidate(env.transport.pool.sources[0].generation)
    with pytest.raises(errors.AuthError) as refused:
        await env.api.list_trunk_bases()
    tokens = list(env.running.sim.tokens)
    assert len(tokens) >= 2
    secrets = [CLIENT_SECRET, *tokens]
    texts = [r.getMessage() for r in caplog.records]
    texts += [str(r.args) for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    texts += [
        str(info.value),
        repr(info.value),
        str(refused.value),
        repr(env.transport.pool.sources[0]),
    ]
    texts += [repr(e) for e in env.recorder.events]
    assert any("rate limited" in t for t in texts)  # the capture did see the session
    for text in texts:
        for secret in secrets:
            assert secret not in text


def test_regions_resolve_as_the_sdk_does() -> None:
    ep = regions.resolve("eu_central_1")
    assert ep.api_url == "https://api.mypurecloud.de"
    assert ep.token_url == "https://login.mypurecloud.de/oauth/token"
    assert regions.resolve("ap-southeast-2").login_url == "https://login.mypurecloud.com.au"
    assert len(regions.REGIONS) == 18
    sim = regions.resolve(api_url="http://127.0.0.1:8787/")
    assert sim.api_url == sim.login_url == "http://127.0.0.1:8787"
    explicit = regions.resolve("us_east_1", api_url="https://a.test", login_url="https://l.test")
    assert (explicit.api_url, explicit.login_url) == ("https://a.test", "https://l.test")
    with pytest.raises(ValueError, match="unknown region"):
        regions.resolve("mars_north_1")
    with pytest.raises(ValueError, match="required"):
        regions.resolve()


async def _token_server(answer: dict[str, object]) -> tuple[web.AppRunner, str, list[int]]:
    """A login service on loopback that answers every token request with ``answer``."""
    fetched: list[int] = []

    async def token(request: web.Request) -> web.Response:
        fetched.append(1)
        return web.json_response(answer)

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/oauth/token", fetched


@pytest.mark.parametrize("expires_in", [0, -5])
async def test_a_token_that_expires_at_once_is_an_error(expires_in: int) -> None:
    runner, url, fetched = await _token_server(
        {"access_token": "tok-short-lived-0123", "expires_in": expires_in}
    )
    creds = auth.Credentials(client_id="c", client_secret=auth.Secret(CLIENT_SECRET))
    try:
        async with aiohttp.ClientSession() as session:
            source = auth.TokenSource(creds, token_url=url, session=session, label="pool-0")
            with pytest.raises(errors.MalformedResponse, match="expires in") as info:
                await source.token()
            assert "tok-short-lived-0123" not in str(info.value)
            assert len(fetched) == 1
    finally:
        await runner.cleanup()


async def test_each_access_token_is_registered_with_the_log_redactor() -> None:
    token = "tok-registered-Zq81-unique"
    runner, url, _fetched = await _token_server({"access_token": token, "expires_in": 3600})
    creds = auth.Credentials(client_id="c", client_secret=auth.Secret(CLIENT_SECRET))
    try:
        async with aiohttp.ClientSession() as session:
            source = auth.TokenSource(creds, token_url=url, session=session, label="pool-0")
            got, _generation = await source.token()
        assert got.reveal() == token
        record = logging.LogRecord(
            "syncd.test", logging.INFO, __file__, 1, "header was Bearer %s", (token,), None
        )
        line = logs.JsonFormatter().format(record)
        assert token not in line
        assert "Bearer ***" in line
    finally:
        await runner.cleanup()


async def test_the_redactor_keeps_recent_access_tokens_not_every_one_ever_issued() -> None:
    # Each renewal registers the new token with the log redactor, which every log line scans:
    # over months of renewals (a short token lifetime, 401s) it must not grow without bound.
    issued: list[str] = []

    async def token(request: web.Request) -> web.Response:
        issued.append(f"tok-renewed-{len(issued):05d}-unique")
        return web.json_response({"access_token": issued[-1], "expires_in": 300})

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    now = [0.0]
    creds = auth.Credentials(client_id="c", client_secret=auth.Secret(CLIENT_SECRET))
    logs.register_secret(CLIENT_SECRET)
    try:
        async with aiohttp.ClientSession() as session:
            source = auth.TokenSource(
                creds,
                token_url=f"http://127.0.0.1:{port}/oauth/token",
                session=session,
                label="pool-0",
                clock=lambda: now[0],
            )
            before = len(logs._secrets)
            for _ in range(300):  # a renewal every 240 s: 300 of them are 20 hours
                await source.token()
                now[0] += 240.0
    finally:
        await runner.cleanup()
    assert len(issued) == 300
    assert len(logs._secrets) - before <= 64
    line = logs.JsonFormatter().format(
        logging.LogRecord(
            "syncd.test", logging.INFO, __file__, 1, "%s %s %s", (*issued[-2:], CLIENT_SECRET), None
        )
    )
    for secret in (*issued[-2:], CLIENT_SECRET):
        assert secret not in line  # the current token, the one before, the client secret


async def test_an_os_error_of_the_token_request_is_translated() -> None:
    # As for the API calls (test_client_side_failures_are_translated): a reset connection
    # (aiohttp before 3.10 raised ConnectionResetError itself) is ConnectionFailed, not an
    # OSError escaping into the engine.
    url = "https://login.example.test/oauth/token"
    creds = auth.Credentials(client_id="c", client_secret=auth.Secret(CLIENT_SECRET))
    async with aiohttp.ClientSession() as session:
        source = auth.TokenSource(creds, token_url=url, session=session, label="pool-0")
        with aioresponses() as mocked:
            mocked.post(url, exception=ConnectionResetError("reset by peer"))
            with pytest.raises(errors.ConnectionFailed) as info:
                await source.token()
    assert info.value.status == 0
    assert CLIENT_SECRET not in str(info.value)
