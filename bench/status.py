"""``python -m bench status [--json] [--org large] [--requests 50]``: the status page at scale.

Role: render the simulator's org (default ``large``) to the bodies syncd reads (as ``bench
planner`` does, one group per management unit), parse them, fill an audit trail with writes and
the board with failovers, compute the capacity forecast once (timed: that is the recompute after
a schedule or health change), then serve the real metrics listener on a loopback port and time
``GET /status.json`` (the target: 50 ms) and ``GET /`` over HTTP with a real client, as a
browser or a script would. Figures are wall-clock times on this machine.

It must not be run by the tests (timings are not assertions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import planner as bench_planner
from syncd.core import model, wire
from syncd.engine import state, status
from syncd.obs import metrics

TARGET_MS = 50.0


def _load(directory: Path) -> dict[str, Any]:
    meta = orjson.loads((directory / "meta.json").read_bytes())
    schedules, zones = [], {}
    for name, bu_id, mu_id in meta["mu_files"]:
        body = (directory / name).read_bytes()
        zones[mu_id] = orjson.loads(body)["businessUnitTimeZone"]
        schedules.append(
            wire.parse_agent_schedules(
                body, business_unit_id=bu_id, management_unit_id=mu_id, start=0, end=1 << 40
            )
        )
    codes = [
        c
        for bu in meta["bu_ids"]
        for c in wire.parse_activity_codes((directory / f"codes-{bu}.json").read_bytes())
    ]
    page = wire.parse_page((directory / "trunks.json").read_bytes())
    statuses = [wire.parse_trunk(e) for e in page.entities]
    return {"meta": meta, "schedules": schedules, "zones": zones, "codes": codes, "st": statuses}


def _audit(store: state.StateStore, trunks: list[str], now: float) -> None:
    """Forty writes, as a busy day leaves them (the page shows the last twelve)."""
    for i in range(40):
        write = model.Write(
            kind=model.WriteKind.ROUTE_ORDER,
            object_id=f"route-{i}",
            object_name=f"Route {i}",
            field="externalTrunkBases",
            before=tuple(trunks[i % 5 : i % 5 + 4]),
            after=tuple(trunks[i % 5 + 1 : i % 5 + 4]),
            reason="failed trunk moved out of the way",
            priority=model.Priority.FAILOVER,
            group=f"g{i % 7:03d}",
            site_id="site",
        )
        row = store.begin_write(write, now=now - 600 + i)
        store.finish_write(row, outcome=state.APPLIED, now=now - 599 + i, request_id=f"req-{i}")


async def _time(session: aiohttp.ClientSession, url: str, count: int) -> tuple[list[float], int]:
    for _ in range(3):  # warm-up
        async with session.get(url) as resp:
            await resp.read()
    times, size = [], 0
    for _ in range(count):
        t0 = time.perf_counter()
        async with session.get(url) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{url}: HTTP {resp.status}: {body[:200]!r}")
        times.append((time.perf_counter() - t0) * 1000)
        size = len(body)
    return times, size


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def _run(directory: Path, requests: int) -> dict[str, Any]:
    data = _load(directory)
    meta = data["meta"]
    now = int(meta["now"])
    settings = bench_planner.settings_of(meta)
    trunk_ids = [t.trunk_base_id for g in settings.groups for t in g.trunks]
    labels = {tb: f"tb-{tb[:8]}" for tb in trunk_ids}
    zones = {g.name: data["zones"][g.management_units[0]] for g in settings.groups}
    inputs = status.Inputs(
        settings=settings,
        horizon_s=24 * 3600,
        zones=zones,
        labels=labels,
        names={tb: f"Trunk {tb[:8]}" for tb in trunk_ids},
    )
    health = {
        s.trunk_base_id: model.TrunkHealth(
            trunk_base_id=s.trunk_base_id,
            state=model.HealthState.HEALTHY if s.healthy else model.HealthState.FAILED,
            since=now - 3600,
            failovers=0 if s.healthy else 1,
        )
        for s in data["st"]
    }
    m = metrics.Metrics(process_metrics=False)
    m.configure(
        groups={g.name: [labels[t.trunk_base_id] for t in g.trunks] for g in settings.groups},
        business_units=meta["bu_ids"],
        tokens=["0"],
        kinds=[k.value for k in model.WriteKind],
        quota_per_minute=300,
        max_retry_after_s=60,
    )
    with tempfile.TemporaryDirectory(prefix="syncd-bench-status-") as tmp:
        store = state.StateStore(Path(tmp) / "state.sqlite3")
        _audit(store, trunk_ids, float(now))
        board = status.Board(observer=m, store=store, clock=lambda: float(now) + 0.5)
        board.note_health(health)
        failed = [tb for tb, h in health.items() if h.state is model.HealthState.FAILED]
        for i, tb in enumerate(failed):
            if i == status.MAX_EVENTS:
                break
            board.note_failover(settings.groups[0].name, tb, float(now - 300))
        t0 = time.perf_counter()
        await board.recompute(
            inputs,
            schedules=data["schedules"],
            activity_codes=data["codes"],
            health_states=health,
            now=now,
        )
        recompute_s = time.perf_counter() - t0
        m.set_status_source(board)
        runner = await metrics.start_server(m, port=0)
        try:
            port = runner.addresses[0][1]
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as session:
                json_times, json_bytes = await _time(session, base + "/status.json", requests)
                html_times, html_bytes = await _time(session, base + "/", max(5, requests // 5))
        finally:
            await runner.cleanup()
            store.close()
    assert board.forecast is not None
    return {
        "org": meta.get("org", ""),
        "groups": len(settings.groups),
        "trunks": len(trunk_ids),
        "agents": meta["agents"],
        "intervals_per_group": len(board.forecast.groups[0].intervals),
        "forecast_recompute_s": round(recompute_s, 3),
        "status_json": {**_summary(json_times), "bytes": json_bytes, "requests": requests},
        "status_html": {**_summary(html_times), "bytes": html_bytes},
        "target_ms": TARGET_MS,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench status")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--org", default="large", choices=("small", "medium", "large"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--requests", type=int, default=50)
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="syncd-bench-status-") as tmp:
        t0 = time.perf_counter()
        bench_planner.render(Path(tmp), ns.org, ns.seed)
        render_s = time.perf_counter() - t0
        result = asyncio.run(_run(Path(tmp), ns.requests))
    result["org"] = ns.org
    if not ns.json:
        j, h = result["status_json"], result["status_html"]
        print(f"rendered the {ns.org} org's bodies in {render_s:.1f} s (untimed)", file=sys.stderr)
        print(
            f"{result['groups']} groups, {result['trunks']} trunks: forecast recompute "
            f"{result['forecast_recompute_s']} s; GET /status.json p50 {j['p50_ms']} ms, p95 "
            f"{j['p95_ms']} ms, max {j['max_ms']} ms ({j['bytes']} bytes; target {TARGET_MS} ms);"
            f" GET / p50 {h['p50_ms']} ms ({h['bytes']} bytes)",
            file=sys.stderr,
        )
    print(json.dumps(result))
    return 0
