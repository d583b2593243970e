"""``python -m bench writes [--json]``: drain one write backlog under each server rate model.

The same backlog — trunk-base GET+PUT, site-route GET+PUT and campaign PATCH writes — is sent
by each client to a simulator per (rate model × ``inin-ratelimit-*`` headers on/off), side by
side in one run, and the simulator's own counters say how many requests and 429s it saw.

Clients: ``syncd`` (this package's transport and API), ``genesys-sdk`` (the official Python
SDK as it ships: urllib3 retries, 4 threads like its connection pool), ``fixed-5s`` (retry
every 5 s on a 429, scaled like the quota), ``retry-after-each`` (each request sleeps its own
Retry-After), ``aiolimiter-only`` (aiolimiter at the quota, retry on 429) and ``adaptive``
(botocore's adaptive-mode ``ClientRateLimiter`` + Retry-After).

The quota is time-scaled (``--quota 150 --window 1``: 300/min becomes 150/s) so the run is short;
Retry-After stays integer seconds (at least 1), as the real service sends it. The simulators
run in a child process so the server does not share the client's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson

MODELS = ("fixed-window", "token-bucket", "counts-rejected")
CLIENTS = ("syncd", "genesys-sdk", "fixed-5s", "retry-after-each", "aiolimiter-only", "adaptive")
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"
EDGES = "/api/v2/telephony/providers/edges"


# --------------------------------------------------------------------------------------------
# Server side (child process)
# --------------------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> int:
    from syncd.sim import server
    from syncd.sim.options import SimOptions

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = []
    out = []
    for model in MODELS:
        for headers in (True, False):
            sim = await server.start_sim(
                org=args.org,
                seed=1,
                options=SimOptions(
                    clients={CLIENT_ID: CLIENT_SECRET},
                    rate_model=model,  # type: ignore[arg-type]
                    quota=args.quota,
                    window_s=args.window,
                    ratelimit_headers=headers,
                ),
            )
            running.append(sim)
            out.append({"model": model, "headers": headers, "url": sim.base_url})
    print(json.dumps({"servers": out}), flush=True)
    # The parent closes our stdin when it is done; that, or a signal, ends the run.
    reader = asyncio.ensure_future(loop.run_in_executor(None, sys.stdin.read))
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({reader, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    for sim in running:
        await sim.close()
    return 0


# --------------------------------------------------------------------------------------------
# The backlog
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    kind: str  # "tb", "route", "campaign"
    object_id: str
    site_id: str = ""

    @property
    def requests(self) -> int:
        return 1 if self.kind == "campaign" else 2


async def _discover(url: str, args: argparse.Namespace) -> list[Item]:
    """Read the org once (with its own token) and build the backlog."""
    async with aiohttp.ClientSession() as session:
        token = await _login(session, url)
        hdr = {"Authorization": f"Bearer {token}"}

        async def get(path: str) -> Any:
            async with session.get(url + path, headers=hdr) as resp:
                resp.raise_for_status()
                return orjson.loads(await resp.read())

        tbs = (await get(f"{EDGES}/trunkbasesettings?pageSize=500"))["entities"]
        routes = (await get(f"{EDGES}/outboundroutes?pageSize=500"))["entities"]
        camps = (await get("/api/v2/outbound/campaigns?pageSize=100"))["entities"]
    tb_items = [Item("tb", tb["id"]) for tb in tbs][: args.trunk_bases]
    route_items = [
        Item("route", routes[i % len(routes)]["id"], routes[i % len(routes)]["site"]["id"])
        for i in range(args.routes)
    ]
    camp_items = [Item("campaign", camps[i % len(camps)]["id"]) for i in range(args.campaigns)]
    # Interleave the kinds, so every client sees the same mix all along.
    backlog: list[Item] = []
    queues = [tb_items, route_items, camp_items]
    while any(queues):
        for q in queues:
            if q:
                backlog.append(q.pop(0))
    return backlog


async def _login(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=aiohttp.BasicAuth(CLIENT_ID, CLIENT_SECRET),
    ) as resp:
        resp.raise_for_status()
        token: str = (await resp.json())["access_token"]
        return token


async def _counters(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url + "/_sim/counters") as resp:
        data: dict[str, Any] = await resp.json()
        return data


def _api_requests(counters: dict[str, Any]) -> int:
    return sum(r["count"] for r in counters["routes"] if str(r["route"]).startswith("/api/v2/"))


# --------------------------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Scenario:
    url: str
    model: str
    headers: bool
    backlog: list[Item]
    args: argparse.Namespace


async def _run_workers(
    backlog: list[Item], workers: int, do: Callable[[Item], Awaitable[None]]
) -> tuple[float, int]:
    """Drain the backlog with ``workers`` tasks, one write per object at a time.

    Returns the makespan and the number of writes that failed (given up by the client)."""
    queue: asyncio.Queue[Item] = asyncio.Queue()
    for item in backlog:
        queue.put_nowait(item)
    locks: dict[str, asyncio.Lock] = {}

    async def worker() -> None:
        while not queue.empty():
            item = queue.get_nowait()
            lock = locks.setdefault(item.object_id, asyncio.Lock())
            async with lock:
                try:
                    await do(item)
                except Exception:  # noqa: BLE001 - a client giving up is a figure, not a crash
                    failed.append(item)

    failed: list[Item] = []
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.monotonic() - started, len(failed)


async def run_syncd(sc: Scenario) -> tuple[float, int]:
    from syncd.core import model, pacing
    from syncd.genesys import api, auth, regions, transport

    t = transport.Transport.create(
        regions.resolve(api_url=sc.url),
        [auth.Credentials(client_id=CLIENT_ID, client_secret=auth.Secret(CLIENT_SECRET))],
        pacing_config=pacing.PacingConfig(quota=sc.args.quota, window_s=sc.args.window),
    )
    g = api.GenesysApi(t)
    try:
        await t.pool.sources[0].token()  # log in before the clock starts, like every client

        async def do(item: Item) -> None:
            prio = model.Priority.STAFFING
            if item.kind == "tb":
                tb = await g.get_trunk_base(item.object_id, priority=prio)
                await g.put_trunk_base(tb, tb.raw, priority=prio)
            elif item.kind == "route":
                route = await g.get_route(item.site_id, item.object_id, priority=prio)
                await g.put_route(route, route.raw, priority=prio)
            else:
                await g.patch_campaign_lines(item.object_id, 7, priority=prio)

        return await _run_workers(sc.backlog, sc.args.workers, do)
    finally:
        await t.close()


class RawPolicy:
    """How a plain aiohttp client paces and reacts to a 429 (the baselines)."""

    async def before(self) -> None:
        return None

    async def on_429(self, retry_after: float) -> None:
        return None

    def after(self, status: int) -> None:
        return None


class Fixed5s(RawPolicy):
    def __init__(self, scale: float) -> None:
        self.delay = 5.0 * scale

    async def on_429(self, retry_after: float) -> None:
        await asyncio.sleep(self.delay)


class RetryAfterEach(RawPolicy):
    async def on_429(self, retry_after: float) -> None:
        await asyncio.sleep(retry_after)


class AiolimiterOnly(RawPolicy):
    def __init__(self, quota: int, window: float) -> None:
        from aiolimiter import AsyncLimiter

        self.limiter = AsyncLimiter(quota, window)

    async def before(self) -> None:
        await self.limiter.acquire()


class Adaptive(RawPolicy):
    """botocore's adaptive retry mode: its own ClientRateLimiter (CUBIC + token bucket)."""

    def __init__(self, workers: int) -> None:
        from botocore.retries import adaptive, bucket, standard, throttling

        clock = bucket.Clock()
        self.limiter = adaptive.ClientRateLimiter(
            rate_adjustor=throttling.CubicCalculator(
                starting_max_rate=0, start_time=clock.current_time()
            ),
            rate_clocker=adaptive.RateClocker(clock),
            token_bucket=bucket.TokenBucket(max_rate=1, clock=clock),
            throttling_detector=standard.ThrottlingErrorDetector(
                retry_event_adapter=standard.RetryEventAdapter()
            ),
            clock=clock,
        )
        # botocore's bucket blocks a thread; give each worker one.
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)

    async def before(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.pool, lambda: self.limiter.on_sending_request(None))

    def after(self, status: int) -> None:
        parsed = {"Error": {"Code": "TooManyRequestsException"}} if status == 429 else {}
        self.limiter.on_receiving_response(
            response=(SimpleNamespace(status_code=status, headers={}), parsed),
            attempts=1,
            operation=None,
            caught_exception=None,
            request_dict={"context": {}},
        )

    async def on_429(self, retry_after: float) -> None:
        await asyncio.sleep(retry_after)


async def run_raw(sc: Scenario, policy: RawPolicy) -> tuple[float, int]:
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=sc.args.workers)
    ) as session:
        token = await _login(session, sc.url)
        hdr = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

        deadline = time.monotonic() + sc.args.deadline

        async def call(method: str, path: str, body: bytes | None = None) -> bytes:
            while time.monotonic() < deadline:
                await policy.before()
                async with session.request(method, sc.url + path, data=body, headers=hdr) as resp:
                    payload = await resp.read()
                    status = resp.status
                    retry_after = float(resp.headers.get("Retry-After", "1"))
                policy.after(status)
                if status == 429:
                    await policy.on_429(retry_after)
                    continue
                if status >= 400:
                    raise RuntimeError(f"{method} {path} answered {status}")
                return payload
            raise RuntimeError(f"{method} {path} did not get through before the deadline")

        async def do(item: Item) -> None:
            if item.kind == "tb":
                path = f"{EDGES}/trunkbasesettings/{item.object_id}"
                await call("PUT", path, await call("GET", path))
            elif item.kind == "route":
                path = f"{EDGES}/sites/{item.site_id}/outboundroutes/{item.object_id}"
                await call("PUT", path, await call("GET", path))
            else:
                body = b'{"outboundLineCount": 7}'
                await call("PATCH", f"/api/v2/outbound/campaigns/{item.object_id}", body)

        return await _run_workers(sc.backlog, sc.args.workers, do)


_SDK_LOCK = threading.Lock()


def _sdk_client(url: str) -> Any:
    from PureCloudPlatformClientV2 import ApiClient, Configuration

    with _SDK_LOCK:
        # The singleton Configuration would watch ~/.genesyscloudpython with a watchdog
        # thread; HOME points at a config that turns live reload off (set in main()).
        Configuration().live_reload_config = False
        client = ApiClient(host=url)
    client.get_client_credentials_token(CLIENT_ID, CLIENT_SECRET)
    return client


def run_sdk_sync(sc: Scenario) -> tuple[float, int]:
    from PureCloudPlatformClientV2 import OutboundApi, TelephonyProvidersEdgeApi
    from PureCloudPlatformClientV2.models import (
        campaign_patch_request,
    )

    client = _sdk_client(sc.url)
    tel = TelephonyProvidersEdgeApi(client)
    out = OutboundApi(client)
    locks: dict[str, threading.Lock] = {}
    lock_guard = threading.Lock()

    def do(item: Item) -> None:
        with lock_guard:
            lock = locks.setdefault(item.object_id, threading.Lock())
        with lock:
            if item.kind == "tb":
                tb = tel.get_telephony_providers_edges_trunkbasesetting(item.object_id)
                tel.put_telephony_providers_edges_trunkbasesetting(item.object_id, tb)
            elif item.kind == "route":
                r = tel.get_telephony_providers_edges_site_outboundroute(
                    item.site_id, item.object_id
                )
                tel.put_telephony_providers_edges_site_outboundroute(
                    item.site_id, item.object_id, r
                )
            else:
                body = campaign_patch_request.CampaignPatchRequest()
                body.outbound_line_count = 7
                out.patch_outbound_campaign(item.object_id, body)

    failed = 0
    started = time.monotonic()
    # 4 threads: the SDK's urllib3 pool has 4 connections and blocks beyond them.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for f in [pool.submit(do, item) for item in sc.backlog]:
            try:
                f.result()
            except Exception:  # noqa: BLE001 - ApiException once urllib3 gives up
                failed += 1
    return time.monotonic() - started, failed


async def run_client(name: str, sc: Scenario) -> tuple[float, int]:
    scale = sc.args.window / 60.0  # the quota's time scale: 60 s became window_s
    if name == "syncd":
        return await run_syncd(sc)
    if name == "genesys-sdk":
        return await asyncio.to_thread(run_sdk_sync, sc)
    if name == "fixed-5s":
        return await run_raw(sc, Fixed5s(scale))
    if name == "retry-after-each":
        return await run_raw(sc, RetryAfterEach())
    if name == "aiolimiter-only":
        return await run_raw(sc, AiolimiterOnly(sc.args.quota, sc.args.window))
    if name == "adaptive":
        return await run_raw(sc, Adaptive(sc.args.workers))
    raise ValueError(f"unknown client {name!r}")


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def optimal_s(model: str, requests: int, quota: int, window: float) -> float:
    """Shortest drain time of ``requests`` with zero 429s on a fresh token.

    Fixed windows (and counts-rejected, which equals it when nothing is rejected): ``quota``
    per window from the first request, the last batch at the start of its window, so
    ``(ceil(n / quota) - 1) * window``. Token bucket (capacity = quota, full at start, refill
    quota/window per second): the first ``quota`` at once, then one per refill interval:
    ``(n - quota) * window / quota``. The simulator's ``optimal_duration`` says the same.
    """
    if requests <= 0:
        return 0.0
    if model == "token-bucket":
        return max(0.0, (requests - quota) * window / quota)
    return (math.ceil(requests / quota) - 1) * window


async def _drive(args: argparse.Namespace, servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    backlog = await _discover(servers[0]["url"], args)
    writes = len(backlog)
    planned = sum(item.requests for item in backlog)
    results: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as control:
        for client in args.clients:
            for s in servers:
                async with control.post(s["url"] + "/_sim/reset-counters") as resp:
                    resp.raise_for_status()
            scenarios = [
                Scenario(s["url"], s["model"], s["headers"], backlog, args) for s in servers
            ]
            # Every server model of one client at once: the sims live in the child process.
            spans = await asyncio.gather(*(run_client(client, sc) for sc in scenarios))
            for sc, (span, failed) in zip(scenarios, spans, strict=True):
                counters = await _counters(control, sc.url)
                results.append(
                    {
                        "client": client,
                        "server_model": sc.model,
                        "headers": sc.headers,
                        "writes": writes,
                        "requests": _api_requests(counters),
                        "http_429": int(counters["total429"]),
                        "makespan_s": round(span, 3),
                        "optimal_s": round(
                            optimal_s(sc.model, planned, args.quota, args.window), 3
                        ),
                        "failed_writes": failed,
                    }
                )
            if not args.json:
                for r in results[-len(scenarios) :]:
                    print(r, file=sys.stderr, flush=True)
    return results


def _check(results: list[dict[str, Any]]) -> list[str]:
    """The targets for syncd; a miss is reported, never hidden."""
    misses = []
    for r in results:
        if r["client"] != "syncd":
            continue
        ratio = r["makespan_s"] / r["optimal_s"] if r["optimal_s"] else 1.0
        if r["headers"]:
            ok = r["http_429"] == 0 and ratio <= 1.05 and r["failed_writes"] == 0
        else:
            ok = r["http_429"] <= 0.01 * r["writes"] and ratio <= 1.15 and not r["failed_writes"]
        if not ok:
            misses.append(f"{r['server_model']} headers={r['headers']}: ratio {ratio:.3f}")
    return misses


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench writes", description=__doc__)
    p.add_argument("--json", action="store_true", help="print only the JSON result")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    # 1 000 writes (1 450 requests) at 300/min time-scaled to 150/s: every client's six
    # scenarios run at once in about 2 minutes on 2 cores.
    p.add_argument("--quota", type=int, default=150, help="requests per window per token")
    p.add_argument("--window", type=float, default=1.0, help="window seconds (60 s scaled)")
    p.add_argument("--org", default="large")
    p.add_argument("--workers", type=int, default=8, help="concurrent writers per client")
    p.add_argument("--trunk-bases", type=int, default=300, help="trunk-base GET+PUT writes")
    p.add_argument("--routes", type=int, default=150, help="route GET+PUT writes")
    p.add_argument("--campaigns", type=int, default=550, help="campaign PATCH writes")
    p.add_argument(
        "--deadline", type=float, default=40.0, help="seconds before a baseline gives up"
    )
    p.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=CLIENTS)
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.serve:
        return asyncio.run(_serve(args))
    with tempfile.TemporaryDirectory() as home:
        # The SDK's Configuration singleton reads ~/.genesyscloudpython/config: make that a
        # config that switches its file watcher off, for the SDK in this process only.
        os.makedirs(os.path.join(home, ".genesyscloudpython"))
        with open(os.path.join(home, ".genesyscloudpython", "config"), "w") as f:
            f.write("[general]\nlive_reload_config = false\n")
        os.environ["HOME"] = home
        child = subprocess.Popen(
            [sys.executable, "-m", "bench", "writes", "--serve", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            servers = json.loads(child.stdout.readline())["servers"]
            results = asyncio.run(_drive(args, servers))
        finally:
            if child.stdin is not None:
                child.stdin.close()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
    print(json.dumps({"results": results}, indent=None if args.json else 2))
    misses = _check(results)
    if misses:
        print("syncd missed a target: " + "; ".join(misses), file=sys.stderr)
        return 1
    return 0
