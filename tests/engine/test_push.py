"""The daemon with its notification channel, against the simulator: push, resync, fallback.

The real ``Daemon`` over ``open_engine`` (config/demo.toml) with the polls slowed to an hour, so
only the channel (and the resync every (re)connect runs) can see a change in time:

- chaos: trunk failures injected while the socket is down (dropped), while the channel is being
  replaced (``socket_closing`` with no grace) and while it is expired are all caught — each of
  those events is lost on the wire, so only the resync can catch it — 0 missed;
- a schedule publish reaches the campaigns' line counts by push, with ``refresh_s`` an hour;
- while the channel is up the health poll runs at ``health.resync_s``, and when it is down at
  ``health.poll_s`` again; ``[notifications] enabled = false`` opens no channel at all.

Tests wait on the daemon's own hooks (a queue of ``set_push`` calls) and on the simulator's
state, with a deadline, never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from engine_sim import sim_config

from syncd import config as config_mod
from syncd import demo
from syncd.core import model
from syncd.engine import daemon, runner
from syncd.sim import RunningSim, start_sim
from syncd.sim import notifications as sim_notifications

DEADLINE = 30.0


class _Daemon(daemon.Daemon):
    """Records each change between push and poll."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.modes: asyncio.Queue[bool] = asyncio.Queue()

    def set_push(self, up: bool) -> None:
        super().set_push(up)
        self.modes.put_nowait(up)

    def health_interval(self) -> float:
        assert self._scheduler is not None
        job = self._scheduler.get_job("health-poll")
        return float(job.trigger.interval.total_seconds())

    def refresh_interval(self) -> float:
        assert self._scheduler is not None
        job = self._scheduler.get_job("schedule-refresh")
        return float(job.trigger.interval.total_seconds())


@dataclass
class Run:
    running: RunningSim
    asm: runner.Assembly
    daemon: _Daemon
    cfg: config_mod.Config

    @property
    def channels(self) -> sim_notifications.Channels:
        return self.running.runner.app[sim_notifications.CHANNELS_KEY]


async def until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"not within {DEADLINE} s: {what}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def daemon_with_push(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    enabled: bool = True,
    hold_down_s: int = 0,
) -> AsyncIterator[Run]:
    monkeypatch.setenv("SYNCD_CLIENT_SECRET", "demo-secret")
    running = await start_sim(org="small", seed=1)
    try:
        cfg = sim_config(running, tmp_path, max_attempts=3)
        cfg = cfg.model_copy(
            update={
                # An hour: within a test, only the channel and its resyncs see changes.
                "health": cfg.health.model_copy(
                    update={"poll_s": 3600, "resync_s": 7200, "hold_down_s": hold_down_s}
                ),
                "schedule": cfg.schedule.model_copy(update={"refresh_s": 3600, "resync_s": 7200}),
                "notifications": cfg.notifications.model_copy(update={"enabled": enabled}),
            }
        )
        async with runner.open_engine(cfg) as asm:
            d = _Daemon(
                config_path=str(demo.DEMO_CONFIG),
                config=cfg,
                work=asm.engine,
                push=asm.push,
                load_config=lambda _p: cfg,
                # A held drop is confirmed by the next reconcile: soon, not after poll_s.
                retry_base_s=0.2,
            )
            task = asyncio.create_task(d.run())
            try:
                await until(lambda: asm.engine.reconciles >= 1, "the first reconcile")
                yield Run(running, asm, d, cfg)
            finally:
                d.request_stop()
                await asyncio.wait_for(task, DEADLINE)
    finally:
        await running.close()


def _routed_trunks(run: Run) -> list[tuple[str, str]]:
    """(group, trunk base) pairs that are on one of their group's routes now."""
    out = []
    for g in run.cfg.groups:
        on_routes = {
            e.get("id")
            for ref in g.routes
            for e in run.running.sim.org.routes[ref.id].get("externalTrunkBases") or ()
        }
        out.extend((g.name, t.trunk_base_id) for t in g.trunks if t.trunk_base_id in on_routes)
    return out


async def _next_mode(run: Run, up: bool) -> None:
    while (await asyncio.wait_for(run.daemon.modes.get(), DEADLINE)) is not up:
        pass


async def test_failures_while_the_socket_is_down_or_replaced_are_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with daemon_with_push(tmp_path, monkeypatch) as run:
        await _next_mode(run, True)
        sim = run.running.sim
        candidates = _routed_trunks(run)
        assert len(candidates) >= 3
        faults: list[tuple[str, Callable[[], int]]] = [
            ("dropped socket", run.channels.drop_sockets),
            ("socket_closing without grace", lambda: run.channels.socket_closing(0.0)),
            ("expired channel", lambda: run.channels.expire(0.0)),
        ]
        missed = []
        opened_before = run.channels.created
        for (what, fault), (group, tb) in zip(faults, candidates, strict=False):
            assert fault() >= 1
            # In the same turn of the loop: the event is queued behind the close, so it is
            # lost on the wire, as it is while no socket listens.
            sim.fail_trunk(tb)
            try:
                await until(
                    lambda g=group, t=tb: demo._routes_without(sim, run.cfg, g, t),
                    f"trunk {tb} off the routes of {group} after a {what}",
                )
            except AssertionError:
                missed.append(what)
        assert missed == []
        # Each fault opens a new channel (the resync runs on each reconnect); the last one
        # after a backoff step (the socket it lost was young: genesys.notifications._lost).
        await until(
            lambda: run.channels.created >= opened_before + len(faults), "a channel per fault"
        )


async def test_a_surprise_in_a_pushed_re_read_is_contained_and_the_resync_catches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Not an API error (a bug, an answer syncd did not expect) in the re-read a trunk hint
    # asks for: the channel task lives on, it is logged and counted, and the full resync it
    # asks for instead finds the failure.
    async with daemon_with_push(tmp_path, monkeypatch) as run:
        await _next_mode(run, True)
        engine, sim = run.asm.engine, run.running.sim
        real = engine.on_trunk_event
        surprises: list[str] = []

        async def surprising(trunk_id: str, *, received_at: float | None = None) -> bool:
            if not surprises:
                surprises.append(trunk_id)
                raise TypeError("'NoneType' object is not subscriptable")
            return await real(trunk_id, received_at=received_at)

        monkeypatch.setattr(engine, "on_trunk_event", surprising)
        group, tb = _routed_trunks(run)[0]
        sim.fail_trunk(tb)
        await until(
            lambda: demo._routes_without(sim, run.cfg, group, tb), f"trunk {tb} off the routes"
        )
        assert surprises  # the hint's re-read raised ...
        assert run.asm.push is not None
        assert run.asm.push.up  # ... and the channel lives on
        count = run.asm.metrics.registry.get_sample_value
        assert count("syncd_unexpected_errors_total", {"where": "push"}) == 1.0
        logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is TypeError]
        assert len(logged) == 1


async def test_a_trunk_pushed_healthy_recovers_at_its_hold_down_end_not_the_next_resync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The bench's 300 s convergence: the healed trunk is pushed once, inside its hold-down,
    # and nothing observed it again before the resync (here two hours away). The daemon now
    # observes health when the hold-down (one second here) ends, and plans the recovery.
    async with daemon_with_push(tmp_path, monkeypatch, hold_down_s=1) as run:
        await _next_mode(run, True)
        engine, sim = run.asm.engine, run.running.sim
        group, tb = _routed_trunks(run)[0]
        sim.fail_trunk(tb)
        await until(
            lambda: demo._routes_without(sim, run.cfg, group, tb), f"trunk {tb} off the routes"
        )
        assert engine.health[tb].state is model.HealthState.FAILED
        sim.recover_trunk(tb)
        await until(
            lambda: engine.health[tb].state is model.HealthState.HEALTHY, f"trunk {tb} recovered"
        )
        await until(lambda: (group, tb) in _routed_trunks(run), f"trunk {tb} back on the routes")


async def test_a_schedule_publish_reaches_the_line_counts_by_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with daemon_with_push(tmp_path, monkeypatch) as run:
        await _next_mode(run, True)
        engine = run.asm.engine
        sim = run.running.sim
        bu = run.cfg.schedule.business_units[0]
        before = dict(engine.reader.fingerprints())
        reconciles = engine.reconciles
        dry = await engine.run_once(dry_run=True)
        assert dry is not None
        assert not dry.plan.writes
        # Every agent of the unit moves by four hours: the next interval's staffing changes.
        sim.publish_schedule(bu, agents=10_000, shift_minutes=240)
        campaigns = {c.id for g in run.cfg.groups for c in g.campaigns}

        def campaigns_written() -> bool:
            last = engine.last
            return (
                engine.reconciles > reconciles
                and last is not None
                and last.report is not None
                and last.report.applied > 0
                and any(w.object_id in campaigns for w in last.plan.writes)
            )

        # A drop this large is held for one re-read of the inputs, then written.
        await until(campaigns_written, "the publish pushed, refreshed and wrote line counts")
        assert engine.reader.fingerprints()[bu] != before[bu]
        assert engine.last is not None
        for w in engine.last.plan.writes:
            if w.object_id in campaigns:
                assert sim.org.campaigns[w.object_id]["outboundLineCount"] == w.after


async def test_the_health_poll_slows_while_push_is_up_and_returns_when_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with daemon_with_push(tmp_path, monkeypatch) as run:
        await _next_mode(run, True)
        assert run.daemon.health_interval() == run.cfg.health.resync_s
        assert run.daemon.refresh_interval() == run.cfg.schedule.resync_s
        run.channels.settings(missing_permissions=[])  # no-op setting: sockets stay
        run.channels.drop_sockets()
        await _next_mode(run, False)
        assert run.daemon.health_interval() == run.cfg.health.poll_s
        assert run.daemon.refresh_interval() == run.cfg.schedule.refresh_s
        await _next_mode(run, True)  # and back once the next channel listens


async def test_disabled_notifications_poll_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with daemon_with_push(tmp_path, monkeypatch, enabled=False) as run:
        assert run.asm.push is None
        assert run.channels.created == 0
        assert run.daemon.health_interval() == run.cfg.health.poll_s
