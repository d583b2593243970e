"""``syncd demo``: the simulator and the daemon together, a live view, and an injected failover.

It starts the simulator (small org, seed 1) on a free loopback port, runs the real daemon
(``engine.daemon.Daemon`` over ``engine.runner.open_engine``) against it with ``config/demo.toml``
(URLs, state file and metrics port filled in at run time), serves ``/metrics``, and after a while
fails the carrier trunk that carries the most lines. The view shows, per group, staffed FTE,
lines, allocation and trunk health, the writes, the 429s and the API spend against the quota.

What it reports is measured, not assumed: the failover reaction is the time from the injected
failure until the simulator's own copy of every route of that group no longer lists the trunk;
429s and spend come from the simulator's request log; ``converged`` is a final dry run planning
nothing. This module is part of the command line (only the CLI and the benchmarks may start the
simulator); it holds no planning logic.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

import syncd
from syncd import config as config_mod
from syncd import errors
from syncd.core import model
from syncd.engine import daemon, runner, state
from syncd.obs import logs, metrics
from syncd.sim import server as sim_server

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "config" / "demo.toml"
QUOTA_WINDOW_S = 60.0
TRUNKS_LISTING = "/api/v2/telephony/providers/edges/trunks"


@dataclasses.dataclass(slots=True)
class Failover:
    trunk_base_id: str = ""
    trunk_name: str = ""
    group: str = ""
    injected_at: float | None = None  # monotonic
    reacted_at: float | None = None
    recovered_at: float | None = None
    sim_injected: float = 0.0  # the simulator's clock, to read its request log
    sim_reacted: float = 0.0

    @property
    def reaction_s(self) -> float | None:
        if self.injected_at is None or self.reacted_at is None:
            return None
        return round(self.reacted_at - self.injected_at, 3)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def demo_config(sim_url: str, state_dir: Path, metrics_port: int) -> config_mod.Config:
    """``config/demo.toml`` pointed at this run's simulator, state directory and metrics port."""
    if not DEMO_CONFIG.exists():
        raise errors.ConfigError([f"{DEMO_CONFIG}: the demo configuration is missing"])
    cfg = config_mod.load(DEMO_CONFIG)
    org = cfg.org.model_copy(update={"api_url": sim_url, "login_url": sim_url})
    return cfg.model_copy(
        update={
            "org": org,
            "state_path": str(state_dir / "state.sqlite3"),
            "metrics": cfg.metrics.model_copy(update={"listen": f"127.0.0.1:{metrics_port}"}),
        }
    )


def _pick_trunk(engine: Any, cfg: config_mod.Config) -> tuple[str, str]:
    """The trunk base carrying the most lines (the failover that matters most)."""
    best = ("", "", -1)
    if engine.last is not None:
        for d in engine.last.plan.decisions:
            for tb, lines in d.allocation:
                if lines > best[2]:
                    best = (d.group, tb, lines)
    if best[2] < 0:
        g = cfg.groups[0]
        return g.name, min(g.trunks, key=lambda t: t.priority).trunk_base_id
    return best[0], best[1]


def _routes_without(sim: Any, cfg: config_mod.Config, group: str, tb: str) -> bool:
    g = next(x for x in cfg.groups if x.name == group)
    for ref in g.routes:
        route = sim.org.routes.get(ref.id)
        if route is None:
            continue
        ids = [e.get("id") for e in route.get("externalTrunkBases") or ()]
        removes = g.failed_trunks == "remove" and ref.trunks == "managed"
        if tb in ids and (removes or ids[-1] != tb):
            return False
    return True


def _named(value: model.WriteValue, names: dict[str, str]) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(names.get(v, v) for v in value) + "]"
    return str(value)


def _polls_between(sim: Any, failover: Failover) -> int:
    return sum(
        1
        for e in sim.log
        if e.route == TRUNKS_LISTING
        and e.method == "GET"
        and failover.sim_injected <= e.t <= failover.sim_reacted
    )


def _spend(sim: Any, now: float) -> int:
    """Requests the simulator saw in the last quota window (what the quota is measured on)."""
    return sum(1 for e in sim.log if now - e.t <= QUOTA_WINDOW_S and e.token is not None)


class View:
    """The live terminal view (ANSI redraw on a terminal); otherwise (``--plain``, or not a
    terminal) short lines: every few seconds, the lines of the view that changed, each cut to
    ``PLAIN_WIDTH`` columns, without the per-trunk detail unless a trunk failed."""

    PLAIN_WIDTH = 100

    def __init__(self, out: TextIO, *, live: bool) -> None:
        self.out = out
        self.live = live
        self._last_plain = -math.inf
        self._shown: dict[str, str] = {}

    def render(self, lines: list[str], *, now: float) -> None:
        if self.live:
            self.out.write("\x1b[H\x1b[2J" + "\n".join(lines) + "\n")
            self.out.flush()
        elif now - self._last_plain >= 5.0:
            self._last_plain = now
            fresh = [text for key, text in self._plain(lines) if self._changed(key, text)]
            if fresh:
                self.out.write("\n".join(fresh) + "\n")
                self.out.flush()

    def _plain(self, lines: list[str]) -> list[tuple[str, str]]:
        """(key, short line) per line worth showing; the key (what the line is about: a group,
        a trunk, the totals) is the text before the first wide gap."""
        out = []
        for line in lines[2:]:
            detail = line.startswith("    ")
            text = " ".join(line.split())
            if not text or (detail and "FAILED" not in text):
                continue
            if len(text) > self.PLAIN_WIDTH:
                text = text[: self.PLAIN_WIDTH - 1] + "…"
            out.append((line.strip().split("  ", 1)[0], text))
        return out

    def _changed(self, key: str, text: str) -> bool:
        """Print a line again only when it says something new."""
        if self._shown.get(key) == text:
            return False
        self._shown[key] = text
        return True


def _screen(
    *,
    engine: Any,
    cfg: config_mod.Config,
    sim: Any,
    sim_url: str,
    metrics_url: str,
    elapsed: float,
    failover: Failover,
    applied: int,
    quota: int,
    push_up: bool,
) -> list[str]:
    names = engine._names
    lines = [
        f"syncd demo — simulator {sim_url} — metrics {metrics_url} — status page"
        f" {metrics_url.removesuffix('metrics')} — {elapsed:5.1f} s",
        "",
    ]
    decisions = {d.group: d for d in engine.last.plan.decisions} if engine.last else {}
    for g in cfg.groups:
        d = decisions.get(g.name)
        if d is None:
            lines.append(f"{g.name:<10} waiting for the first reconcile")
            continue
        lines.append(
            f"{g.name:<10} staffed {d.staffed_fte:6.1f} FTE → {d.desired_lines:3d} lines"
            f" (shortfall {d.shortfall})"
        )
        alloc = dict(d.allocation)
        for t in g.trunks:
            h = engine.health.get(t.trunk_base_id)
            if h is None or h.state is model.HealthState.HEALTHY:
                mark = "healthy"
            elif h.good_since is not None:
                mark = "FAILED (good again, in hold-down)"
            else:
                mark = "FAILED"
            if t.trunk_base_id == failover.trunk_base_id and failover.recovered_at is None:
                mark += "   <- carrier failure injected"
            lines.append(
                f"    {names.get(t.trunk_base_id, t.trunk_base_id)[:34]:<34} p{t.priority}"
                f" {alloc.get(t.trunk_base_id, 0):3d}/{t.capacity:<3d} lines  {mark}"
            )
    now = sim.clock()
    lines += [
        "",
        f"writes applied {applied}   HTTP 429s {sim.counters.total_429}   API spend"
        f" {_spend(sim, now)}/{quota} requests in the last minute",
        "health: by push (notification channel up; the poll is a"
        f" {cfg.health.resync_s} s safety net)"
        if push_up
        else f"health: by poll every {cfg.health.poll_s} s (no notification channel)",
    ]
    if failover.injected_at is None:
        lines.append("failover: not injected yet")
    else:
        react = failover.reaction_s
        lines.append(
            f"failover: {failover.trunk_name} of {failover.group} failed; "
            + (f"routes updated {react:.2f} s later" if react is not None else "reacting…")
            + (
                "; trunk healthy again (hold-down before it returns)"
                if failover.recovered_at
                else ""
            )
        )
    return lines


async def run_demo(
    *,
    duration_s: float | None,
    summary_path: str | None,
    failover_after_s: float = 20.0,
    metrics_port: int = 0,
    plain: bool = False,
    out: TextIO | None = None,
    log_level: str = "INFO",
) -> int:
    out = out or sys.stdout
    live = not plain and out.isatty()
    if live:
        # The live view owns the terminal; logs go to a file the summary points at.
        log_dir = Path(tempfile.mkdtemp(prefix="syncd-demo-logs-"))
        log_stream: TextIO = (log_dir / "syncd.log").open("a", encoding="utf-8")
    else:
        log_dir = None
        log_stream = sys.stderr
    logs.setup_logging(log_level, stream=log_stream)
    os.environ.setdefault("SYNCD_CLIENT_SECRET", "demo-secret")
    running = await sim_server.start_sim(org="small", seed=1)
    sim = running.sim
    state_dir = Path(tempfile.mkdtemp(prefix="syncd-demo-"))
    port = metrics_port or _free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    status_url = f"http://127.0.0.1:{port}/"
    try:
        cfg = demo_config(running.base_url, state_dir, port)
    except errors.ConfigError as exc:
        await running.close()
        print(str(exc), file=sys.stderr)
        return runner.EX_CONFIG
    m = metrics.Metrics(version=syncd.__version__)
    metrics_runner = await metrics.start_server(m, host="127.0.0.1", port=port)
    print(
        f"syncd demo: simulator at {running.base_url}, metrics at {metrics_url},"
        f" status page at {status_url}",
        file=out,
    )
    if log_dir is not None:
        print(f"syncd demo: daemon logs in {log_dir / 'syncd.log'}", file=out)
    failover = Failover()
    view = View(out, live=live)
    started = time.monotonic()
    summary: dict[str, Any] = {}
    code = 0
    try:
        async with runner.open_engine(cfg, m=m) as asm:
            engine = asm.engine
            d = daemon.Daemon(
                config_path=str(DEMO_CONFIG),
                config=cfg,
                work=engine,
                # A reload re-reads demo.toml but keeps this run's URLs, state and port.
                load_config=lambda _p: demo_config(running.base_url, state_dir, port),
                push=asm.push,
            )
            task = asyncio.create_task(d.run(), name="daemon")
            while not task.done():
                now = time.monotonic()
                elapsed = now - started
                if duration_s is not None and elapsed >= duration_s:
                    d.request_stop()
                    break
                if failover.injected_at is None and elapsed >= failover_after_s and engine.last:
                    failover.group, failover.trunk_base_id = _pick_trunk(engine, cfg)
                    failover.trunk_name = engine._names.get(
                        failover.trunk_base_id, failover.trunk_base_id
                    )
                    sim.fail_trunk(failover.trunk_base_id)
                    failover.injected_at = time.monotonic()
                    failover.sim_injected = sim.clock()
                if (
                    failover.injected_at is not None
                    and failover.reacted_at is None
                    and _routes_without(sim, cfg, failover.group, failover.trunk_base_id)
                ):
                    failover.reacted_at = time.monotonic()
                    failover.sim_reacted = sim.clock()
                if (
                    failover.reacted_at is not None
                    and failover.recovered_at is None
                    and now - failover.reacted_at >= 15.0
                ):
                    sim.recover_trunk(failover.trunk_base_id)
                    failover.recovered_at = now
                trail = await asm.store.history(limit=100000)
                applied = sum(1 for r in trail if r.outcome == state.APPLIED)
                view.render(
                    _screen(
                        engine=engine,
                        cfg=cfg,
                        sim=sim,
                        sim_url=running.base_url,
                        metrics_url=metrics_url,
                        elapsed=elapsed,
                        failover=failover,
                        applied=applied,
                        quota=cfg.rate_limit.requests_per_minute,
                        push_up=asm.push is not None and asm.push.up,
                    ),
                    now=now,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), timeout=0.1)
            code = await task
            # Converged = a final dry run over fresh reads plans nothing.
            await engine.poll_health()
            await engine.refresh_schedules()
            final = await engine.run_once(dry_run=True)
            rows = await asm.store.history(limit=100000)
            summary = {
                "converged": final is not None and not final.plan.writes,
                "failover_reaction_s": failover.reaction_s,
                # What saw the failure first: a notification ("push") or a health poll.
                "health_source": engine.health_source or None,
                "health_poll_s": cfg.health.poll_s,
                # Health polls the simulator answered between the failure and the route
                # change: 1 means the daemon reacted to the first poll that could see it.
                "health_polls_to_react": _polls_between(sim, failover)
                if failover.reaction_s is not None
                else None,
                "http_429": sim.counters.total_429,
                "writes_applied": sum(1 for r in rows if r.outcome == state.APPLIED),
                "errors": sum(1 for r in rows if r.outcome in (state.FAILED, state.CONFLICT)),
                "api_requests": sim.counters.total,
                "duration_s": round(time.monotonic() - started, 1),
            }
            if final is not None and final.plan.writes:
                names = engine.names
                summary["pending_writes"] = [
                    f"{w.kind.value} {w.object_name} {w.field}: {_named(w.before, names)}"
                    f" -> {_named(w.after, names)} ({w.reason})"
                    for w in final.plan.writes
                ]
    finally:
        await metrics_runner.cleanup()
        await running.close()
        shutil.rmtree(state_dir, ignore_errors=True)
        if log_stream is not sys.stderr:
            log_stream.close()
    print("syncd demo summary: " + orjson.dumps(summary).decode(), file=out)
    if summary_path:
        blob = orjson.dumps(summary, option=orjson.OPT_INDENT_2)
        await asyncio.to_thread(Path(summary_path).write_bytes, blob)
    return code
