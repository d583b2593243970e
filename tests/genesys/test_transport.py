"""The transport against the simulator on loopback (aioresponses only where a server cannot
misbehave that way): 429 pauses, Retry-After, token refresh, backoff, the token pool."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aioresponses import aioresponses
from conftest import CLIENT_SECRET, Factory

from syncd import errors
from syncd.core import model
from syncd.genesys import api, auth, regions, transport

TB = api.TRUNK_BASES


def api_log(env_running: object) -> list[object]:
    return [e for e in env_running.sim.log if e.route.startswith("/api/v2/")]  # type: ignore[attr-defined]


async def test_one_429_pauses_every_request_of_the_token_and_retry_after_is_honoured(
    make_env: Factory,
) -> None:
    # The server allows 2 per minute; the client believes 5, of which routine work spends 4
    # (one is the failover reserve): the third request is refused.
    env = await make_env(quota=2, window_s=60.0, headers=False, client_quota=5, rand=0.0)
    results = await asyncio.gather(*(env.api.list_trunk_bases() for _ in range(6)))
    assert all(len(r) == 15 for r in results)
    log = api_log(env.running)
    first_429 = next(e for e in log if e.status == 429)
    retry_after = 60  # ceil(window end - now) at the window's first instant
    later = [e for e in log if e.t > first_429.t]
    # Nothing was sent while the token was paused, and the pause ended on the second.
    assert later
    assert min(e.t for e in later) >= first_429.t + retry_after
    assert min(e.t for e in later) < first_429.t + retry_after + 1
    assert sum(1 for e in log if e.status == 429 and e.t == first_429.t) == 1
    events = [e for e in env.recorder.events if e.status == 429]
    assert events[0].retry_after_s == retry_after
    assert events[0].endpoint == TB
    assert events[0].token == "pool-0"


async def test_with_headers_the_client_never_gets_a_429(make_env: Factory) -> None:
    env = await make_env(quota=5, window_s=60.0, headers=True)
    await asyncio.gather(*(env.api.list_trunk_bases() for _ in range(12)))
    assert env.running.sim.counters.total_429 == 0
    assert env.running.sim.count(route=TB, status=200) == 12


async def test_an_over_limit_retry_after_fails_clearly(make_env: Factory) -> None:
    env = await make_env(quota=1, window_s=7200.0, headers=False, client_quota=5)
    await env.api.list_trunk_bases()
    with pytest.raises(errors.RetryAfterTooLong) as info:
        await env.api.list_trunk_bases()
    assert info.value.retry_after_s == 7200
    assert info.value.endpoint == TB
    assert env.recorder.named("on_retry_after_too_long") == [(TB, 7200.0)]


async def test_a_401_refreshes_the_token_once(make_env: Factory) -> None:
    env = await make_env()
    await env.api.list_trunk_bases()
    source = env.transport.pool.sources[0]
    assert source.fetches == 1
    env.running.sim.expire_tokens()
    await env.api.list_trunk_bases()
    assert source.fetches == 2
    assert env.running.sim.count(route=TB, status=401) == 1
    assert ("401",) in env.recorder.named("on_retry")


async def test_the_token_is_refreshed_before_it_expires(make_env: Factory) -> None:
    env = await make_env(token_ttl_s=600)
    await env.api.list_trunk_bases()
    env.clock.t += 600 - 30  # inside the last minute of the token's life
    await env.api.list_trunk_bases()
    assert env.transport.pool.sources[0].fetches == 2
    assert env.running.sim.count(route=TB, status=401) == 0


async def test_a_second_401_is_an_auth_error() -> None:
    # A server whose API refuses every token (revoked role): one refresh, then AuthError.
    fetched = []

    async def token(request: web.Request) -> web.Response:
        fetched.append(1)
        return web.json_response({"access_token": f"tok-{len(fetched)}", "expires_in": 3600})

    async def refuse(request: web.Request) -> web.Response:
        return web.json_response(
            {"message": "Invalid login credentials.", "status": 401}, status=401
        )

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    app.router.add_get(TB, refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    t = transport.Transport.create(
        regions.resolve(api_url=f"http://127.0.0.1:{port}"),
        [auth.Credentials(client_id="c", client_secret=auth.Secret(CLIENT_SECRET))],
    )
    try:
        with pytest.raises(errors.AuthError) as info:
            await t.request("GET", TB)
        assert info.value.status == 401
        assert len(fetched) == 2
    finally:
        await t.close()
        await runner.cleanup()


async def test_bad_credentials_are_an_auth_error(make_env: Factory) -> None:
    env = await make_env()
    env.transport.pool.sources[0].credentials = auth.Credentials(
        client_id="test-client", client_secret=auth.Secret("wrong")
    )
    with pytest.raises(errors.AuthError) as info:
        await env.api.list_trunk_bases()
    assert "wrong" not in str(info.value)


@pytest.mark.parametrize(
    ("faults", "error", "status"),
    [
        ({"error_5xx_rate": 1.0, "status_5xx": 503}, errors.TransientError, 503),
        ({"timeout_504_rate": 1.0}, errors.TransientError, 504),
        ({"reset_rate": 1.0}, errors.ConnectionFailed, 0),
    ],
)
async def test_transient_failures_back_off_with_full_jitter(
    make_env: Factory, faults: dict[str, object], error: type[Exception], status: int
) -> None:
    config = transport.TransportConfig(max_attempts=4, backoff_base_s=1.0, backoff_cap_s=30.0)
    env = await make_env(config=config, rand=0.75)
    env.running.sim.set_faults(faults)
    with pytest.raises(error) as info:
        await env.api.get_trunk_base(next(iter(env.running.sim.org.trunk_bases)))
    assert getattr(info.value, "status", None) == status
    # Three retries after four attempts, each sleeping rand × min(cap, base × 2^k).
    assert env.clock.sleeps[-3:] == [0.75, 1.5, 3.0]
    assert list(env.recorder.named("on_retry")) == [(str(status) if status else "connection",)] * 3


async def test_transient_failures_are_retried_until_success(make_env: Factory) -> None:
    env = await make_env()
    env.running.sim.set_faults({"error_5xx_rate": 0.3, "status_5xx": 502})
    tbs = [await env.api.get_trunk_base(tb) for tb in env.running.sim.org.trunk_bases]
    assert len(tbs) == 15
    assert env.running.sim.count(status=502) > 0


@pytest.mark.parametrize(
    ("exception", "error"),
    [
        (ConnectionResetError("reset by peer"), errors.ConnectionFailed),
        (aiohttp.ClientConnectorError(None, OSError("refused")), errors.ConnectionFailed),  # type: ignore[arg-type]
        (TimeoutError(), errors.TimeoutError_),
    ],
)
async def test_client_side_failures_are_translated(
    make_env: Factory, exception: Exception, error: type[Exception]
) -> None:
    # Failures no server can produce on demand: the login goes to the simulator, the API
    # calls to a mocked host that raises.
    env = await make_env()
    config = transport.TransportConfig(max_attempts=3, backoff_base_s=1.0)
    t = transport.Transport.create(
        regions.resolve(api_url="https://api.example.test", login_url=env.running.base_url),
        [auth.Credentials(client_id="test-client", client_secret=auth.Secret(CLIENT_SECRET))],
        config=config,
        clock=env.clock,
        sleep=env.clock.sleep,
        rand=lambda: 1.0,
    )
    try:
        with aioresponses(passthrough=[env.running.base_url]) as mocked:
            mocked.get(
                re.compile(r"https://api\.example\.test/.*"), exception=exception, repeat=True
            )
            with pytest.raises(error) as info:
                await t.request("GET", TB)
        assert getattr(info.value, "status", None) == 0
        assert env.clock.sleeps[-2:] == [1.0, 2.0]  # full jitter at its ceiling (rand = 1)
    finally:
        await t.close()


async def test_500_is_a_server_error_and_not_retried(make_env: Factory) -> None:
    env = await make_env()
    env.running.sim.set_faults({"error_5xx_rate": 1.0, "status_5xx": 500})
    with pytest.raises(errors.ServerError):
        await env.api.list_trunk_bases()
    assert env.running.sim.count(route=TB) == 1


async def test_malformed_json_is_malformed_response(make_env: Factory) -> None:
    env = await make_env()
    env.running.sim.set_faults({"malformed_json_rate": 1.0})
    with pytest.raises(errors.MalformedResponse):
        await env.api.list_trunk_bases()


async def test_a_garbled_read_is_retried(make_env: Factory) -> None:
    env = await make_env()
    clean = await env.api.list_trunk_bases()
    env.running.sim.set_faults({"malformed_json_rate": 0.5})
    for _ in range(5):
        # Every call still returns the whole listing: garbled pages were read again.
        assert await env.api.list_trunk_bases() == clean
    reasons = [args[0] for args in env.recorder.named("on_retry")]
    assert "malformed" in reasons
    env.running.sim.set_faults({"malformed_json_rate": 1.0})
    before = len(env.recorder.events)
    with pytest.raises(errors.MalformedResponse):
        await env.api.list_trunk_bases()
    assert len(env.recorder.events) - before == env.transport.config.max_attempts


@pytest.mark.parametrize(
    ("faults", "error"),
    [
        ({"reset_rate": 1.0}, errors.ConnectionFailed),
        ({"error_5xx_rate": 1.0, "status_5xx": 503}, errors.TransientError),
        ({"timeout_504_rate": 1.0}, errors.TransientError),
    ],
)
async def test_a_write_is_not_retried(
    make_env: Factory, faults: dict[str, object], error: type[errors.ApiError]
) -> None:
    # A write whose answer was lost (or that failed on the way back) may have landed: the
    # transport sends it once and raises; the engine re-reads the object and decides.
    env = await make_env()
    tb_id = next(iter(env.running.sim.org.trunk_bases))
    tb = await env.api.get_trunk_base(tb_id)
    env.running.sim.set_faults(faults)
    with pytest.raises(error):
        await env.api.put_trunk_base(tb, tb.raw)
    with pytest.raises(error):
        await env.api.patch_campaign_lines(next(iter(env.running.sim.org.campaigns)), 3)
    assert env.running.sim.count(route=api.TRUNK_BASE, method="PUT") == 1
    assert env.running.sim.count(method="PATCH") == 1
    assert env.recorder.named("on_retry") == []
    assert env.clock.sleeps == []


async def test_a_429_on_a_write_is_retried(make_env: Factory) -> None:
    # A 429 refused the write before it ran: trying it again cannot double it. (The server
    # allows 2 per minute; the client spends 3: 4 less the failover reserve.)
    env = await make_env(quota=2, window_s=60.0, headers=False, client_quota=4, rand=0.0)
    tb_id = next(iter(env.running.sim.org.trunk_bases))
    tb = await env.api.get_trunk_base(tb_id)
    await env.api.get_trunk_base(tb_id)
    await env.api.put_trunk_base(tb, tb.raw)
    assert env.running.sim.count(route=api.TRUNK_BASE, method="PUT", status=429) == 1
    assert env.running.sim.count(route=api.TRUNK_BASE, method="PUT", status=200) == 1


async def test_an_answer_over_the_size_cap_is_refused_by_name(make_env: Factory) -> None:
    env = await make_env(config=transport.TransportConfig(max_response_bytes=20_000))
    await env.api.get_trunk_base(next(iter(env.running.sim.org.trunk_bases)))  # small: fine
    with pytest.raises(errors.ServerError, match="more than 20000 bytes") as info:
        await env.api.list_trunk_bases()
    assert info.value.endpoint == TB
    assert "GET" in str(info.value)
    assert TB in str(info.value)
    assert env.running.sim.count(route=TB) == 1  # not retried: it would be as large again


async def test_a_token_pool_spreads_the_load(make_env: Factory) -> None:
    env = await make_env(clients=3)
    await asyncio.gather(*(env.api.list_trunk_bases() for _ in range(30)))
    per_token = env.running.sim.counters.by_token
    assert len(per_token) == 3
    assert all(c["requests"] >= 5 for c in per_token.values())
    assert {e.token for e in env.recorder.events} == {"pool-0", "pool-1", "pool-2"}


async def test_request_events_name_templates_and_request_ids(make_env: Factory) -> None:
    env = await make_env()
    tb_id = next(iter(env.running.sim.org.trunk_bases))
    await env.api.get_trunk_base(tb_id, priority=model.Priority.FAILOVER)
    event = env.recorder.events[-1]
    assert event.endpoint == api.TRUNK_BASE
    assert tb_id not in event.endpoint
    assert event.method == "GET"
    assert event.status == 200
    assert len(event.request_id) == 36


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed: connecting is refused)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("side", ["api", "login"])
async def test_a_connection_error_names_the_host_it_tried(make_env: Factory, side: str) -> None:
    env = await make_env()
    dead = f"http://127.0.0.1:{_closed_port()}"
    urls = {"api_url": dead, "login_url": env.running.base_url}
    if side == "login":
        urls = {"api_url": env.running.base_url, "login_url": dead}
    t = transport.Transport.create(
        regions.resolve(**urls),
        [auth.Credentials(client_id="test-client", client_secret=auth.Secret(CLIENT_SECRET))],
        config=transport.TransportConfig(max_attempts=1),
        clock=env.clock,
        sleep=env.clock.sleep,
    )
    try:
        with pytest.raises(errors.ConnectionFailed) as info:
            await t.request("GET", TB)
    finally:
        await t.close()
    assert dead.removeprefix("http://") in str(info.value)


async def _blob_server(body: bytes, headers: dict[str, str]) -> tuple[web.AppRunner, str]:
    """A loopback object store serving ``body`` as-is at /blob."""

    async def blob(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=headers)

    app = web.Application()
    app.router.add_get("/blob", blob)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/blob"


@pytest.mark.parametrize(
    "url",
    [
        "http://downloads.example.test/result.json.gz?X-Amz-Signature=abc",
        "ftp://127.0.0.1/result",
        "https:///no-host",
    ],
)
async def test_a_download_link_not_over_https_is_refused(make_env: Factory, url: str) -> None:
    env = await make_env()
    with aioresponses() as mocked:
        with pytest.raises(errors.ServerError, match="https://") as info:
            await env.transport.download(url, endpoint="/api/v2/x/search")
        assert not mocked.requests  # nothing was sent
    assert "X-Amz-Signature" not in str(info.value)  # the presigned signature is a credential
    assert info.value.endpoint == "/api/v2/x/search"


async def test_a_gzip_object_is_decoded_as_it_streams(make_env: Factory) -> None:
    env = await make_env()
    document = b'{"result": [' + b",".join(b'{"n": %d}' % i for i in range(20000)) + b"]}"
    runner, url = await _blob_server(gzip.compress(document), {"Content-Type": "application/gzip"})
    try:
        assert await env.transport.download(url) == document
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("encoded", [True, False])
async def test_a_download_that_inflates_past_the_cap_is_refused(
    make_env: Factory, encoded: bool
) -> None:
    config = transport.TransportConfig(max_download_bytes=1 << 20)
    env = await make_env(config=config)
    bomb = gzip.compress(b"0" * (64 << 20))  # 64 MiB of zeros in about 64 KiB
    assert len(bomb) < 1 << 20
    headers = {"Content-Encoding": "gzip"} if encoded else {"Content-Type": "application/gzip"}
    runner, url = await _blob_server(bomb, headers)
    try:
        with pytest.raises(errors.ServerError, match=f"more than {1 << 20} bytes"):
            await env.transport.download(url, endpoint="/api/v2/x/search")
    finally:
        await runner.cleanup()


async def test_a_corrupt_gzip_download_is_a_malformed_response(make_env: Factory) -> None:
    # A gzip object whose deflate data is garbage: zlib's own error must not escape the
    # transport (the engine decides from syncd.errors types alone).
    env = await make_env()
    whole = gzip.compress(b'{"result": []}' * 1000)
    corrupt = whole[:10] + b"\x00garbage-in-the-deflate-stream" + whole[40:]
    runner, url = await _blob_server(corrupt, {"Content-Type": "application/gzip"})
    try:
        with pytest.raises(errors.MalformedResponse, match="gzip") as info:
            await env.transport.download(url, endpoint="/api/v2/x/search")
        assert info.value.endpoint == "/api/v2/x/search"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("storm_route", "storm"),
    [
        # Routine reads (a campaign listing of a staffing reconcile) failing until refused ...
        (api.CAMPAIGNS, lambda a: a.list_campaigns()),
        # ... or health polls, which go at failover priority but are not a failover's work.
        (api.TRUNKS, lambda a: a.list_trunks(priority=model.Priority.FAILOVER)),
    ],
    ids=["routine-reads", "health-polls"],
)
async def test_failures_that_spend_routine_retries_leave_a_failovers_read_its_retry(
    make_env: Factory, storm_route: str, storm: Any
) -> None:
    env = await make_env()
    sim = env.running.sim
    sim.set_faults({"error_5xx_rate": 1.0, "routes": [storm_route]})

    async def until_refused() -> None:
        for _ in range(20):  # each call fails every attempt; the budget refuses within 4 calls
            with contextlib.suppress(errors.TransientError):
                await storm(env.api)

    with pytest.raises(errors.RetryBudgetExhausted):
        await until_refused()
    refused = env.recorder.named("on_retry_budget_exhausted")
    assert len(refused) == 1
    # Now a trunk fails, and the failover reconcile's route listing fails once (a 503).
    site = sim.org.sites[0].id
    routes = api.SITE_ROUTES.replace("{siteId}", site)
    sim.set_faults({"error_5xx_rate": 1.0, "routes": [routes], "max_faults": 1})
    listed = await env.api.list_routes(site, priority=model.Priority.FAILOVER)
    assert listed
    assert sim.count(route=api.SITE_ROUTES, status=503) == 1  # retried once, within its budget
    assert env.recorder.named("on_retry_budget_exhausted") == refused
