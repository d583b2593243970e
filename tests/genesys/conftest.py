"""Fixtures for the Genesys client tests: a fake clock shared by the simulator and the client,
and a factory that starts a simulator on loopback and a transport pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest

from syncd.core import pacing
from syncd.genesys import api, auth, regions, transport
from syncd.sim import server
from syncd.sim.options import SimOptions

CLIENT_ID = "test-client"
CLIENT_SECRET = "s3cr3t-Very-Unique-Value-42"


class FakeClock:
    """Monotonic seconds that move only when someone sleeps; sleeps return at once."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        target = self.t + max(0.0, seconds)
        await asyncio.sleep(0)
        self.t = max(self.t, target)


@dataclass
class Recorder:
    """A RequestHook and LimiterObserver that remembers everything."""

    events: list[transport.RequestEvent] = field(default_factory=list)
    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def __call__(self, event: transport.RequestEvent) -> None:
        self.events.append(event)

    def __getattr__(self, name: str) -> Callable[..., None]:
        if not name.startswith("on_"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for n, args in self.calls if n == name]


@dataclass
class Env:
    running: server.RunningSim
    transport: transport.Transport
    api: api.GenesysApi
    clock: FakeClock
    recorder: Recorder


Factory = Callable[..., Coroutine[Any, Any, Env]]


@pytest.fixture
async def make_env() -> AsyncIterator[Factory]:
    envs: list[Env] = []

    async def factory(
        *,
        org: str = "small",
        rate_model: str = "fixed-window",
        quota: int = 300,
        window_s: float = 60.0,
        headers: bool = True,
        client_quota: int | None = None,
        clients: int = 1,
        token_ttl_s: int = 86400,
        config: transport.TransportConfig | None = None,
        rand: float = 0.5,
    ) -> Env:
        clock = FakeClock()
        ids = {f"{CLIENT_ID}-{i}" if i else CLIENT_ID: CLIENT_SECRET for i in range(clients)}
        opts = SimOptions(
            clients=ids,
            rate_model=rate_model,  # type: ignore[arg-type]
            quota=quota,
            window_s=window_s,
            ratelimit_headers=headers,
            token_ttl_s=token_ttl_s,
            clock=clock,
        )
        running = await server.start_sim(org=org, seed=1, options=opts)
        recorder = Recorder()
        t = transport.Transport.create(
            regions.resolve(api_url=running.base_url),
            [auth.Credentials(client_id=i, client_secret=auth.Secret(s)) for i, s in ids.items()],
            pacing_config=pacing.PacingConfig(quota=client_quota or quota, window_s=window_s),
            config=config,
            hook=recorder,
            observer=recorder,
            clock=clock,
            sleep=clock.sleep,
            rand=lambda: rand,
        )
        env = Env(running, t, api.GenesysApi(t), clock, recorder)
        envs.append(env)
        return env

    yield factory
    for env in envs:
        await env.transport.close()
        await env.running.close()
