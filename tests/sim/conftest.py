"""Fixtures of the simulator tests: a fake clock, a small org on a loopback port, a client.

The week anchor is fixed (Tuesday 2026-03-10: the week in which America/Chicago switches to
daylight time on Sunday 2026-03-08), so the generated org is the same on every run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sim_helpers import ANCHOR, Client, FakeClock, options

from syncd.sim import RunningSim, start_sim


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def running(clock: FakeClock) -> AsyncIterator[RunningSim]:
    sim = await start_sim(org="small", seed=1, options=options(clock), week_anchor=ANCHOR)
    yield sim
    await sim.close()


@pytest.fixture
async def client(running: RunningSim) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        c = Client(running, session)
        await c.login()
        yield c


@pytest.fixture
async def state(client: Client) -> dict[str, Any]:
    status, body = await client.control("GET", "state")
    assert status == 200
    result: dict[str, Any] = body
    return result
