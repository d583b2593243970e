"""The large org (20 000 agents, 500 trunks) stays under 1 GiB RSS, even after answering a
full business-unit agent-schedule search for both weeks of every BU (slow: ~15 s)."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from typing import Any

import aiohttp
import psutil
import pytest
from sim_helpers import W, basic

GIB = 1 << 30


@pytest.mark.slow
async def test_large_org_stays_under_one_gib() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "syncd.sim", "--org", "large", "--port", "0",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert match
        base = match.group(0)
        process = psutil.Process(proc.pid)
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{base}/oauth/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic("demo-client", "demo-secret")},
            ) as resp:
                token = (await resp.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(f"{base}/_sim/state") as resp:
                state: dict[str, Any] = await resp.json()
            assert len(state["trunkBases"]) == 500
            for bu in state["businessUnits"]:
                published = [s for s in bu["schedules"] if s["published"]]
                body = {"startDate": published[0]["startDate"], "endDate": published[-1]["endDate"]}
                path = f"{base}{W}/businessunits/{bu['id']}/agentschedules/search"
                async with session.post(path, json=body, headers=headers) as resp:
                    answer = await resp.json()
                async with session.get(answer["downloadUrl"]) as resp:
                    result = await resp.json()
                assert len(result["agentSchedules"]) == bu["agentCount"] == 10000
                del result
                assert process.memory_info().rss < GIB
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
