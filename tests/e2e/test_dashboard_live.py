"""Every query of grafana/syncd.json returns data from a real Prometheus scraping syncd metrics.

A real ``prometheus`` binary (Debian's 2.42) on a loopback port scrapes a metrics endpoint, then
each dashboard expression (Grafana variables substituted) must return at least one sample.

For now the endpoint is an in-test aiohttp app serving a ``Metrics`` fed through its observer
methods. TODO(lead): once the daemon exists, point ``start_prometheus`` at a running
``syncd demo`` (its /metrics on 127.0.0.1:9464) instead of ``_fed_metrics()``; the helpers
``start_prometheus(targets, workdir)`` and ``Prometheus.query(expr)`` stay as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest

from syncd.obs import metrics as metrics_mod

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        PROMETHEUS is None, reason="prometheus not installed (apt-get install prometheus)"
    ),
]
SCRAPE_INTERVAL_S = 1
# $__rate_interval stands in for Grafana's max(4 × scrape interval, step): 15 s at 1 s scrapes.
RATE_WINDOW = "15s"


def _load_grafana_exprs() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "ops" / "grafana_exprs.py"
    spec = importlib.util.spec_from_file_location("grafana_exprs", path)
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules.get("grafana_exprs") or importlib.util.module_from_spec(spec)
    if "grafana_exprs" not in sys.modules:
        sys.modules["grafana_exprs"] = module
        spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Prometheus:
    """A running Prometheus started by this test (stopped by its PID, never by name)."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query at now; raises on a query error."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.url}/api/v1/query", data={"query": expr}) as resp,
        ):
            body = orjson.loads(await resp.read())
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def wait_for_scrapes(self, job: str, count: int, timeout_s: float = 60.0) -> None:
        """Until every target of ``job`` is up and has ``count`` samples of ``up``."""
        up = f'up{{job="{job}"}}'
        expr = f"min(count_over_time({up}[5m])) >= {count} and min({up}) == 1"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, AssertionError):
                if await self.query(expr):
                    return
            await asyncio.sleep(0.5)
        raise AssertionError(f"no {count} scrapes of {job} within {timeout_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _launch_prometheus(targets: Sequence[str], workdir: Path, job: str) -> Prometheus:
    assert PROMETHEUS is not None
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_bytes(
        orjson.dumps(
            {
                "global": {
                    "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
                    "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
                },
                "scrape_configs": [
                    {"job_name": job, "static_configs": [{"targets": list(targets)}]}
                ],
            }
        )
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Prometheus(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)


async def start_prometheus(
    targets: Sequence[str], workdir: Path, *, job: str = "syncd", timeout_s: float = 30.0
) -> Prometheus:
    """Start ``prometheus`` on a free loopback port scraping ``targets`` (host:port) as ``job``.

    The caller stops it with ``prom.stop()`` (by its PID).
    """
    prom = _launch_prometheus(targets, workdir, job)
    process, log_path = prom.process, prom.log_path
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited: {log_path.read_text()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{prom.url}/-/ready") as resp:
                    if resp.status == 200:
                        return prom
            await asyncio.sleep(0.2)
    prom.stop()
    raise AssertionError(f"prometheus not ready within {timeout_s} s")


def _fed_metrics() -> metrics_mod.Metrics:
    """A Metrics as a short daemon run would leave it: every observer called at least once."""
    m = metrics_mod.Metrics(version="0.1.0")
    m.configure(
        groups={"east": ["carrier-a", "carrier-b"]},
        business_units=["bu-1"],
        tokens=["0"],
        kinds=["route_order", "campaign_lines", "trunk_call_rate"],
        endpoints=[("PATCH", "/api/v2/outbound/campaigns/{id}")],
        quota_per_minute=300,
        max_retry_after_s=60,
        retry_reasons=["server_error", "rate_limited"],
    )
    for status, retry_after in ((204, None), (429, 5.0), (500, None)):
        m.on_request(
            SimpleNamespace(
                endpoint="/api/v2/outbound/campaigns/{id}",
                method="PATCH",
                status=status,
                duration_s=0.12,
                retry_after_s=retry_after,
                token="0",
                request_id="r-1",
            )
        )
    m.on_wait("0", 0.2)
    m.on_pause("0", False)
    m.on_budget("0", 280)
    m.on_retry("server_error")
    m.on_retry_budget_exhausted()
    m.on_retry_after_too_long("/api/v2/outbound/campaigns/{id}", 900)
    m.on_queue_depth(2)
    m.observe_write("campaign_lines", "applied")
    m.observe_conflict("route_order")
    m.set_plan({"campaign_lines": 1})
    m.observe_group("east", 10.0, 20, {"carrier-a": 20}, 0, {"carrier-a": True, "carrier-b": False})
    m.observe_failover("east", "carrier-b")
    m.set_snapshot_age("bu-1", 30)
    m.observe_reconcile(0.8, ok=True, now=time.time())
    m.observe_reload(ok=True, now=time.time())
    return m


@contextlib.asynccontextmanager
async def _serve(metrics: metrics_mod.Metrics) -> AsyncIterator[str]:
    port = free_port()
    runner = await metrics_mod.start_server(metrics, "127.0.0.1", port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_every_dashboard_query_returns_data(tmp_path: Path) -> None:
    grafana_exprs = _load_grafana_exprs()
    exprs = grafana_exprs.panel_exprs()
    values = {**grafana_exprs.DEFAULT_SUBSTITUTIONS, "$__rate_interval": RATE_WINDOW}
    async with _serve(_fed_metrics()) as target:
        prom = await start_prometheus([target], tmp_path / "prometheus")
        try:
            await prom.wait_for_scrapes("syncd", count=4)
            empty = []
            for e in exprs:
                if not await prom.query(grafana_exprs.substitute(e.expr, values)):
                    empty.append(f"{e.panel} [{e.ref_id}]: {e.expr}")
            assert not empty, "queries without data:\n" + "\n".join(empty)
            # The template variables' own queries find the target as well.
            assert await prom.query('syncd_build_info{job="syncd"}')
            assert await prom.query('syncd_staffed_fte{job="syncd", group="east"}')
        finally:
            prom.stop()
