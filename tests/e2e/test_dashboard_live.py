"""The dashboard and the metrics endpoint against a real, running ``syncd demo``.

``syncd demo`` (simulator + the real daemon in one process, a trunk failover injected after
``--failover-after`` seconds) runs as a subprocess for the whole module; its ``/metrics`` is

* checked by ``promtool check metrics`` once the first reconcile is done and again at the end,
* scraped every second by a real ``prometheus`` (Debian's 2.42) on a loopback port; every
  expression of grafana/syncd.json (Grafana variables substituted) must return data, and must
  have had a real (non-NaN) value during the run.

Panels that only show something when something goes wrong get that from the real run: the
demo's own failover, and 429s (with their retries) and version conflicts driven through the
simulator's control API (``POST /_sim/ratelimit``, ``POST /_sim/faults``). Those panels must
have been above zero at some point (``max_over_time`` over the run), not merely present.
Left at 0 (pre-created series, legitimately): a Retry-After above the configured maximum, an
exhausted retry budget and a refused reload (the systemd test refuses a reload for real).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from daemon_helpers import load_grafana_exprs, stop_process
from prometheus_client.parser import text_string_to_metric_families

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


# --------------------------------------------------------------------------- the running demo
ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")
DEMO_DURATION_S = 90  # ample: the test stops it (SIGTERM, by PID) once it is done
FAILOVER_AFTER_S = 5
# Retry-After stays well under the configured 60 s maximum: the requests wait and go through.
STRICT_RATELIMIT = {"model": "fixed-window", "quota": 2, "window_s": 4, "headers": False}
NORMAL_RATELIMIT = {"quota": 300, "window_s": 60, "headers": True}
# Every PUT of an outbound route answers with the 400 flavour of a version conflict: the
# failover's route write (the demo fails a trunk of "americas", whose one route must drop it)
# is re-read and retried until the applier gives up. Certain, so the test cannot be unlucky.
FAULTS = {"version_conflict_400_rate": 1.0, "routes": ["/api/v2/telephony/providers/edges/sites/"]}
# Northwind Telecom BYOC 002 (config/demo.toml): priority 1 in americas, always on its route.
AMERICAS_TRUNK = "2ff07add-8164-4828-ab0c-7850e3e1224e"
# Panels that read above zero only after a failover, a 429, a retry or a version conflict.
EVENT_PANELS = {
    "429 responses per second",
    "429 ratio",
    "Retry-After distribution",
    "Retries by reason [A]",
    "Failover events",
    "Trunks in failover",
    "Version conflicts",
    "Retry-After p99 vs configured maximum [A]",
}
_SIM_URL = re.compile(r"simulator at (http://127\.0\.0\.1:\d+), metrics at (http://\S+/metrics)")


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    sim_url: str
    metrics_url: str
    target: str
    stdout: Path
    stderr: Path
    started: float

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as resp:  # noqa: S310
            return str(resp.read().decode())

    def sample_sum(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` (optionally restricted to ``labels``) on /metrics."""
        total = 0.0
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The simulator's control API (/_sim/...)."""
        data = orjson.dumps(body) if body is not None else None
        req = urllib.request.Request(  # noqa: S310 - loopback http only
            f"{self.sim_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310
            return orjson.loads(resp.read())

    def wait(self, predicate: Any, what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"syncd demo exited early:\n{self.logs()}")
            with contextlib.suppress(OSError):
                if predicate():
                    return
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}\n{self.logs()}")

    def logs(self) -> str:
        out = self.stdout.read_text(errors="replace")[-2000:]
        err = self.stderr.read_text(errors="replace")[-4000:]
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def stop(self) -> int:
        """SIGTERM by PID; the daemon drains and exits 0."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    work = tmp_path_factory.mktemp("demo")
    port = free_port()
    stdout, stderr = work / "stdout.txt", work / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "syncd",
                "demo",
                "--plain",
                f"--duration={DEMO_DURATION_S}",
                f"--failover-after={FAILOVER_AFTER_S}",
                f"--metrics-port={port}",
                f"--summary={work / 'summary.json'}",
            ],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
    started = time.monotonic()
    try:
        match = None
        deadline = time.monotonic() + 30
        while match is None and time.monotonic() < deadline and process.poll() is None:
            match = _SIM_URL.search(stdout.read_text(errors="replace"))
            time.sleep(0.1)
        assert match, f"no simulator URL on the demo's first line:\n{stdout.read_text()}"
        d = Demo(
            process=process,
            sim_url=match.group(1),
            metrics_url=match.group(2),
            target=f"127.0.0.1:{port}",
            stdout=stdout,
            stderr=stderr,
            started=started,
        )
        d.wait(
            lambda: d.sample_sum("syncd_last_successful_reconcile_timestamp_seconds") > 0,
            "the first reconcile",
        )
        yield d
    finally:
        stop_process(process, grace=30)


def _promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
def test_promtool_check_metrics_on_the_running_daemon(demo: Demo) -> None:
    text = demo.metrics_text()
    assert "syncd_reconciles_total" in text
    proc = _promtool_check_metrics(text)
    # promtool prints nothing and exits 0 on clean metrics; any lint finding is a failure.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == ""


def _drive_events(demo: Demo) -> float:
    """429s and version conflicts, for real, while the demo's failover happens.

    Returns the number of reconciles before; the wait ends once the failover's reconcile is
    done (it finishes after the faults, having waited out the 429s and re-read the conflicts).
    """
    reconciles = demo.sample_sum("syncd_reconcile_duration_seconds_count")
    demo.control("POST", "/_sim/faults", FAULTS)
    demo.control("POST", "/_sim/ratelimit", STRICT_RATELIMIT)
    # The notification channel keeps the daemon quiet; a dropped socket makes it open the
    # next channel and resync (a health listing, schedule listings) into the strict quota.
    demo.control("POST", "/_sim/notifications/drop")
    try:
        # 429s first (the resync's and the failover's reads run into the quota of 2 per 4 s);
        # then the quota goes back to normal so the failover's reconcile is not slowed further.
        demo.wait(
            lambda: (
                demo.sample_sum("syncd_api_rate_limited_total") > 0
                and demo.sample_sum("syncd_retries_total", reason="429") > 0
                and demo.sample_sum("syncd_api_retry_after_seconds_count") > 0
            ),
            "429s (and their retries) in the daemon's metrics",
            timeout_s=60,
        )
    finally:
        demo.control("POST", "/_sim/ratelimit", NORMAL_RATELIMIT)
    # A failover under the faults: with the channel pushing it, the demo's own failover was
    # done long before the faults were set, so fail a trunk on americas' one route now.
    demo.control("POST", f"/_sim/trunks/{AMERICAS_TRUNK}/fail")
    try:
        demo.wait(
            lambda: (
                demo.sample_sum("syncd_trunk_failover_events_total") > 0
                and demo.sample_sum("syncd_version_conflicts_total") > 0
                and demo.sample_sum("syncd_reconcile_duration_seconds_count") > reconciles
            ),
            "the failover, its version conflicts and its reconcile in the daemon's metrics",
            timeout_s=60,
        )
    finally:
        demo.control("DELETE", "/_sim/faults")
    return reconciles


async def test_every_dashboard_query_returns_data(demo: Demo, tmp_path: Path) -> None:
    grafana_exprs = load_grafana_exprs()
    # The demo runs alone, without Redis: the high-availability row's metrics exist only with
    # a coordination backend, and tests/e2e/test_ha.py checks that replicas expose them.
    ha = set(grafana_exprs.ha_exprs())
    exprs = [e for e in grafana_exprs.panel_exprs() if e not in ha]
    assert ha
    assert exprs
    values = {**grafana_exprs.DEFAULT_SUBSTITUTIONS, "$__rate_interval": RATE_WINDOW}
    prom = await start_prometheus([demo.target], tmp_path / "prometheus")
    try:
        await prom.wait_for_scrapes("syncd", count=2)
        reconciles = await asyncio.to_thread(_drive_events, demo)
        # The events are on /metrics; let Prometheus scrape them (and a few samples after).
        deadline = time.monotonic() + 30
        while not await prom.query(
            'sum(syncd_version_conflicts_total{job="syncd"}) > 0'
            ' and sum(syncd_trunk_failover_events_total{job="syncd"}) > 0'
            f' and sum(syncd_reconcile_duration_seconds_count{{job="syncd"}}) > {reconciles}'
        ):
            assert time.monotonic() < deadline, "Prometheus did not scrape the events"
            await asyncio.sleep(0.5)
        await asyncio.sleep(3 * SCRAPE_INTERVAL_S)

        empty, never_valued, never_positive = [], [], []
        for e in exprs:
            name = f"{e.panel} [{e.ref_id}]"
            expr = grafana_exprs.substitute(e.expr, values)
            if not await prom.query(expr):
                empty.append(f"{name}: {expr}")
            # Over the whole run (1 s resolution): a real value at some point, not only NaN
            # (a quantile of no observations); event panels must have been above zero.
            over_run = f"max_over_time(({expr})[5m:1s])"
            if not await prom.query(f"{over_run} == {over_run}"):
                never_valued.append(f"{name}: {expr}")
            if (e.panel in EVENT_PANELS or name in EVENT_PANELS) and not await prom.query(
                f"{over_run} > 0"
            ):
                never_positive.append(f"{name}: {expr}")
        assert not empty, "queries without data:\n" + "\n".join(empty)
        assert not never_valued, "queries never with a value:\n" + "\n".join(never_valued)
        assert not never_positive, "event panels never above 0:\n" + "\n".join(never_positive)
        # The template variables' own queries find the target and the configured groups.
        assert await prom.query('syncd_build_info{job="syncd"}')
        groups = await prom.query('count by (group) (syncd_staffed_fte{job="syncd"})')
        assert {r["metric"]["group"] for r in groups} == {"apac", "americas"}
    finally:
        prom.stop()
    # After all that (429s, retries, conflicts, a failover) the exposition is still clean.
    if PROMTOOL is not None:
        proc = _promtool_check_metrics(demo.metrics_text())
        assert (proc.returncode, proc.stdout + proc.stderr) == (0, ""), proc.stdout + proc.stderr
    assert demo.stop() == 0, demo.logs()
