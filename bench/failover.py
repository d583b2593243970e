"""``python -m bench failover [--json]``: trunk failures under load, pushed vs polled.

For each mode — ``push`` (the notification channel on) and ``poll`` (``[notifications] enabled
= false``, today's health poll) — the real daemon (``engine.daemon.Daemon`` over
``engine.runner.open_engine``, ``config/demo.toml``) runs against its own simulator while:

1. a backlog of lower-priority writes (campaign ``outboundLineCount`` PATCHes at the lowest
   priority, each writing the value the campaign already has, so the plan never fights them)
   drains through the *same* token and limiter, eight at a time, for the whole failure phase
   and at least ``--backlog`` writes;
2. ``--failures`` trunk failures are injected one by one, each on a trunk that is on its
   group's routes at that moment; the reaction is the time until the simulator's own copy of
   every route of that group no longer lists it (``missed`` when not within ``--timeout``); the
   trunk then recovers (hold-down 0) while the next one fails;
3. (push only) a schedule publish is timed until a campaign's line count changes;
4. with the backlog stopped and everything converged, the API requests the simulator sees in
   ``--idle-s`` seconds give the idle spend per minute. The window avoids the planning
   boundary (every ``interval_minutes``, whose reads are the plan's, not the idle spend's).

The quota is time-scaled like ``bench writes`` (``--quota`` requests per ``--window`` seconds,
in the simulator and in the client's limiter) so a backlog that saturates the token drains in
seconds, not minutes; the health poll (``--poll-s``) and every other timer run in real time.
Prints ``{"results": [rows]}``; each row has ``mode``, ``failures``, ``missed``, ``p50_s``,
``p95_s``, ``max_s``, ``backlog_writes``, ``idle_requests_per_min`` and how it was measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MODES = ("push", "poll")


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 3)


async def _until(predicate: Callable[[], bool], within_s: float, step: float = 0.005) -> bool:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    from syncd import demo
    from syncd.core import model
    from syncd.engine import daemon, runner
    from syncd.genesys import api as api_mod
    from syncd.sim import server
    from syncd.sim.options import SimOptions

    os.environ.setdefault("SYNCD_CLIENT_SECRET", "demo-secret")
    started = time.monotonic()
    running = await server.start_sim(
        org="small",
        seed=1,
        options=dataclasses.replace(SimOptions(), quota=args.quota, window_s=args.window),
    )
    sim = running.sim
    state_dir = Path(tempfile.mkdtemp(prefix="syncd-bench-failover-"))
    cfg = demo.demo_config(running.base_url, state_dir, 9)  # metrics are not served here
    cfg = cfg.model_copy(
        update={
            "rate_limit": cfg.rate_limit.model_copy(
                update={"requests_per_minute": args.quota}  # per --window seconds
            ),
            "health": cfg.health.model_copy(update={"poll_s": args.poll_s, "hold_down_s": 0}),
            "notifications": cfg.notifications.model_copy(update={"enabled": mode == "push"}),
        }
    )
    row: dict[str, Any] = {"mode": mode}
    try:
        async with runner.open_engine(cfg, window_s=args.window) as asm:
            engine = asm.engine
            d = daemon.Daemon(
                config_path=str(demo.DEMO_CONFIG),
                config=cfg,
                work=engine,
                push=asm.push,
                load_config=lambda _p: cfg,
            )
            task = asyncio.create_task(d.run(), name="daemon")
            try:
                ready = await _until(
                    lambda: (
                        engine.reconciles >= 1
                        and (asm.push is None or asm.push.up)
                        and not engine.drops_pending
                    ),
                    120.0,
                    0.05,
                )
                if not ready:
                    raise RuntimeError(f"{mode}: the daemon did not converge within 120 s")
                row.update(await _failures(args, cfg, sim, asm, api_mod, model, demo))
                if mode == "push":
                    row["schedule_reaction_s"] = await _schedule_reaction(cfg, sim)
                row.update(await _idle(args, cfg, sim, engine, daemon))
            finally:
                d.request_stop()
                await asyncio.wait_for(task, 60.0)
    finally:
        await running.close()
        shutil.rmtree(state_dir, ignore_errors=True)
    row["health_poll_s"] = args.poll_s
    row["quota"] = f"{args.quota} per {args.window:g} s"
    row["duration_s"] = round(time.monotonic() - started, 1)
    return row


async def _failures(
    args: argparse.Namespace,
    cfg: Any,
    sim: Any,
    asm: Any,
    api_mod: Any,
    model: Any,
    demo: Any,
) -> dict[str, Any]:
    api = api_mod.GenesysApi(asm.transport)
    campaigns = [c.id for g in cfg.groups for c in g.campaigns]
    sent = 0
    failed = 0
    stop = asyncio.Event()

    async def backlog() -> None:
        nonlocal sent, failed
        while not (stop.is_set() and sent >= args.backlog):
            campaign = campaigns[sent % len(campaigns)]
            value = int(sim.org.campaigns[campaign]["outboundLineCount"])
            sent += 1
            try:
                await api.patch_campaign_lines(campaign, value, priority=model.Priority.CALL_RATE)
            except Exception:  # noqa: BLE001  (a failed backlog write is counted, not fatal)
                failed += 1

    def on_routes(group: str, tb: str) -> bool:
        return not demo._routes_without(sim, cfg, group, tb)

    def off_routes(group: str, tb: str) -> bool:
        return bool(demo._routes_without(sim, cfg, group, tb))

    candidates = [(g.name, t.trunk_base_id) for g in cfg.groups for t in g.trunks]
    writers = [asyncio.create_task(backlog()) for _ in range(8)]
    reactions: list[float] = []
    missed = 0
    try:
        # Let the backlog fill the token's window first: the failures meet a busy limiter.
        await _until(lambda: sent >= min(args.backlog, 2 * args.quota), 60.0)
        turn = 0
        for _ in range(args.failures):
            pick = None
            for _ in range(len(candidates)):
                group, tb = candidates[turn % len(candidates)]
                turn += 1
                if on_routes(group, tb):
                    pick = (group, tb)
                    break
            if pick is None:  # every trunk is still recovering: wait for the next one back
                await _until(lambda: any(on_routes(g, t) for g, t in candidates), args.timeout)
                pick = next((g, t) for g, t in candidates if on_routes(g, t))
            group, tb = pick
            sim.fail_trunk(tb)
            t0 = time.monotonic()
            if await _until(functools.partial(off_routes, group, tb), args.timeout):
                reactions.append(time.monotonic() - t0)
            else:
                missed += 1
            sim.recover_trunk(tb)
    finally:
        stop.set()
        await asyncio.gather(*writers)
    # Converged again: every recovered trunk back on its routes.
    await _until(lambda: all(on_routes(g, t) for g, t in candidates), 120.0, 0.05)
    return {
        "failures": args.failures,
        "missed": missed,
        "p50_s": _percentile(reactions, 0.50),
        "p95_s": _percentile(reactions, 0.95),
        "max_s": round(max(reactions), 3) if reactions else None,
        "backlog_writes": sent,
        "backlog_failed": failed,
    }


async def _schedule_reaction(cfg: Any, sim: Any) -> float | None:
    """A publish (a tenth of the unit's agents an hour later) until a campaign's line count
    moves; None when none moved within 30 s."""
    campaigns = [c.id for g in cfg.groups for c in g.campaigns]
    before = {c: sim.org.campaigns[c]["outboundLineCount"] for c in campaigns}
    sim.publish_schedule(cfg.schedule.business_units[0], shift_minutes=60)
    t0 = time.monotonic()
    moved = await _until(
        lambda: any(sim.org.campaigns[c]["outboundLineCount"] != before[c] for c in campaigns),
        30.0,
    )
    return round(time.monotonic() - t0, 3) if moved else None


def _quiet_for(sim: Any, seconds: float) -> bool:
    """No API request in the simulator's log for ``seconds``."""
    last = next((e.t for e in reversed(sim.log) if e.token is not None), None)
    return last is None or sim.clock() - last >= seconds


async def _idle(
    args: argparse.Namespace, cfg: Any, sim: Any, engine: Any, daemon: Any
) -> dict[str, Any]:
    interval_s = cfg.schedule.interval_minutes * 60.0
    boundary = daemon.first_reconcile_after(time.time(), interval_s, cfg.schedule.lead_time_s)
    if boundary - time.time() < args.idle_s + 5:
        # The planning boundary would fall in the window: measure after its reconcile.
        reconciles = engine.reconciles
        await asyncio.sleep(max(0.0, boundary - time.time()))
        await _until(lambda: engine.reconciles > reconciles, 60.0, 0.05)
    # Quiet first: the publish's reconcile (and a held drop's re-read) are not idle spend.
    await _until(lambda: not engine.drops_pending and _quiet_for(sim, 3.0), 60.0, 0.2)
    t0 = sim.clock()
    await asyncio.sleep(args.idle_s)
    t1 = sim.clock()
    requests = sum(1 for e in sim.log if t0 <= e.t <= t1 and e.token is not None)
    return {
        "idle_requests": requests,
        "idle_window_s": args.idle_s,
        "idle_requests_per_min": round(requests * 60.0 / args.idle_s, 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench failover")
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    parser.add_argument("--failures", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=1000)
    parser.add_argument("--quota", type=int, default=50, help="requests per --window seconds")
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--poll-s", type=int, default=5, help="the poll mode's health poll")
    parser.add_argument("--idle-s", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=30.0, help="a failure not seen: missed")
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: a comma-separated list of {', '.join(MODES)}")
    from syncd.obs import logs

    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(os.devnull, "w", encoding="utf-8"))
        logs.setup_logging(stream=log)
        started = time.monotonic()
        rows = [asyncio.run(run_mode(mode, args)) for mode in modes]
    result = {"results": rows, "duration_s": round(time.monotonic() - started, 1)}
    if not args.json:
        for row in rows:
            print(
                f"{row['mode']:>4}: {row['failures']} failures, {row['missed']} missed,"
                f" p50 {row['p50_s']} s, p95 {row['p95_s']} s, max {row['max_s']} s,"
                f" backlog {row['backlog_writes']} writes,"
                f" idle {row['idle_requests_per_min']} requests/min",
                file=sys.stderr,
            )
    print(json.dumps(result))
    return 0
