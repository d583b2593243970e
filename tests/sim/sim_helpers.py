"""Helpers of the simulator tests: a fake clock, sim options, an HTTP client with a token.

The week anchor is fixed (Tuesday 2026-03-10: the week in which America/Chicago switches to
daylight time on Sunday 2026-03-08), so the generated org is the same on every run.
"""

from __future__ import annotations

import base64
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp

from syncd.sim import RunningSim, SimOptions

ANCHOR = date(2026, 3, 10)
WALL_START = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
E = "/api/v2/telephony/providers/edges"
W = "/api/v2/workforcemanagement"


class FakeClock:
    """Monotonic seconds that only move when a test says so; `now` follows it."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def now(self) -> datetime:
        return WALL_START + timedelta(seconds=self.t - 1000.0)


def options(clock: FakeClock, **overrides: Any) -> SimOptions:
    return SimOptions(clock=clock, now=clock.now, **overrides)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class Client:
    """A thin aiohttp client holding one bearer token (tests speak HTTP, like the daemon)."""

    def __init__(self, running: RunningSim, session: aiohttp.ClientSession) -> None:
        self.running = running
        self.base = running.base_url
        self.session = session
        self.token = ""

    async def login(self, client_id: str = "demo-client", secret: str = "demo-secret") -> str:  # noqa: S107
        async with self.session.post(
            f"{self.base}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(client_id, secret)},
        ) as resp:
            assert resp.status == 200, await resp.text()
            self.token = (await resp.json())["access_token"]
        return self.token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        """(status, parsed JSON body or None, headers)."""
        headers = kwargs.pop("headers", self.headers())
        async with self.session.request(
            method, f"{self.base}{path}", headers=headers, **kwargs
        ) as resp:
            raw = await resp.read()
            body = await resp.json(content_type=None) if raw else None
            return resp.status, body, resp.headers

    async def get(self, path: str, **kwargs: Any) -> Any:
        status, body, _ = await self.call("GET", path, **kwargs)
        assert status == 200, body
        return body

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.base}/_sim/{path}", json=body) as resp:
            return resp.status, await resp.json()
