"""The notification channel's whole lifecycle, each path on a real WebSocket to the simulator.

A ``Link`` subscribes one trunk and one business unit, and the simulator's control operations
produce each path: an event becomes a hint; a dropped socket reconnects; ``socket_closing`` opens
the next channel before the old one closes (and an event delivered on both is handed on once);
an early expiry reconnects; a short channel lifetime is renewed before ``expires``; silenced
heartbeats make a dead socket; a renewed token moves to a new channel; rejected topics are
reported with their missing permissions; more than 1000 topics take several channels. Tests
wait on what the link reports (a queue of sink calls), never on the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from conftest import Env, Factory

from syncd.genesys import notifications
from syncd.sim import notifications as sim_notifications

TIMEOUT = 20.0


@dataclass
class Sink:
    """Every sink call, in order, as a queue the test reads."""

    calls: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    duplicates: asyncio.Queue[None] = field(default_factory=asyncio.Queue)

    def on_hint(self, hint: notifications.Hint) -> None:
        self.calls.put_nowait(("hint", hint))

    def on_connected(self, link: int, reason: str) -> None:
        self.calls.put_nowait(("connected", reason))

    def on_down(self, link: int, reason: str) -> None:
        self.calls.put_nowait(("down", reason))

    # notifications.Observer
    def on_channel_state(self, link: int, up: bool) -> None:
        pass

    def on_channel_open(self, reason: str) -> None:
        pass

    def on_notification(self, kind: str) -> None:
        pass

    def on_duplicate(self) -> None:
        self.duplicates.put_nowait(None)

    def on_topics(self, link: int, permitted: int, rejected: int) -> None:
        pass

    async def next(self) -> tuple[str, Any]:
        return await asyncio.wait_for(self.calls.get(), TIMEOUT)

    async def until(self, kind: str) -> list[tuple[str, Any]]:
        """Calls up to and including the next one of ``kind``."""
        seen = []
        while True:
            call = await self.next()
            seen.append(call)
            if call[0] == kind:
                return seen


@dataclass
class Setup:
    env: Env
    link: notifications.Link
    sink: Sink
    channels: sim_notifications.Channels
    trunk_base_id: str
    trunk_id: str
    bu_id: str


@contextlib.asynccontextmanager
async def running_link(
    make_env: Factory, timing: notifications.Timing | None = None
) -> AsyncIterator[Setup]:
    env = await make_env()
    sim = env.running.sim
    tb_id, trunk_id = next(iter(sim.org.trunk_of_base.items()))
    bu_id = sim.org.bus[0].id
    sink = Sink()
    link = notifications.Link(
        env.transport,
        notifications.topics_for([trunk_id], [bu_id]),
        sink,
        timing=timing or notifications.Timing(),
        observer=sink,
    )
    task = asyncio.create_task(link.run())
    try:
        assert await sink.next() == ("connected", "start")
        yield Setup(
            env,
            link,
            sink,
            env.running.runner.app[sim_notifications.CHANNELS_KEY],
            tb_id,
            trunk_id,
            bu_id,
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _opened(env: Env) -> list[str]:
    return [e.method for e in env.recorder.events if e.endpoint == notifications.CHANNELS]


async def test_events_become_hints_and_subscribing_spends_the_budget(make_env: Factory) -> None:
    async with running_link(make_env) as s:
        s.env.running.sim.fail_trunk(s.trunk_base_id)
        assert await s.sink.next() == ("hint", notifications.Hint(kind="trunk", id=s.trunk_id))
        s.env.running.sim.publish_schedule(s.bu_id)
        assert await s.sink.next() == ("hint", notifications.Hint(kind="schedule", id=s.bu_id))
        # Channel and subscription went through the transport: counted like any request.
        methods = [(e.method, e.endpoint) for e in s.env.recorder.events]
        assert ("POST", notifications.CHANNELS) in methods
        assert ("PUT", notifications.SUBSCRIPTIONS) in methods
        assert s.link.complete


async def test_a_dropped_socket_reconnects_on_a_new_channel(make_env: Factory) -> None:
    async with running_link(make_env) as s:
        assert s.channels.drop_sockets() == 1
        assert await s.sink.until("connected") == [("down", "closed"), ("connected", "closed")]
        assert len(_opened(s.env)) == 2
        s.env.running.sim.fail_trunk(s.trunk_base_id)
        assert await s.sink.next() == ("hint", notifications.Hint(kind="trunk", id=s.trunk_id))


async def test_socket_closing_opens_the_next_channel_first_and_dedupes(make_env: Factory) -> None:
    async with running_link(make_env, notifications.Timing(overlap_s=600.0)) as s:
        # A long grace: the old socket stays open while the new one listens.
        assert s.channels.socket_closing(grace_s=600.0) == 1
        assert await s.sink.next() == ("connected", "socket_closing")  # no "down" before it
        assert sum(len(c.queues) for c in s.channels.by_id.values()) == 2
        s.env.running.sim.fail_trunk(s.trunk_base_id)
        # Delivered on both sockets, handed on once.
        assert await s.sink.next() == ("hint", notifications.Hint(kind="trunk", id=s.trunk_id))
        await asyncio.wait_for(s.sink.duplicates.get(), TIMEOUT)
        assert s.sink.calls.empty()


async def test_an_expired_channel_reconnects(make_env: Factory) -> None:
    async with running_link(make_env) as s:
        assert s.channels.expire(0.0) == 1
        assert await s.sink.until("connected") == [("down", "closed"), ("connected", "closed")]


async def test_a_channel_is_renewed_before_it_expires(make_env: Factory) -> None:
    env = await make_env()
    env.running.runner.app[sim_notifications.CHANNELS_KEY].settings(ttl_s=60.0)
    # 60 s channels, renewed 59.5 s before: the next channel opens half a second in, long
    # before the service would close the first one; no "down" in between.
    timing = notifications.Timing(renew_before_s=59.5)
    sink = Sink()
    sim = env.running.sim
    link = notifications.Link(
        env.transport,
        notifications.topics_for([], [sim.org.bus[0].id]),
        sink,
        timing=timing,
    )
    task = asyncio.create_task(link.run())
    try:
        assert await sink.next() == ("connected", "start")
        assert await sink.next() == ("connected", "expiring")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_silent_socket_is_pinged_then_declared_dead(make_env: Factory) -> None:
    timing = notifications.Timing(ping_after_s=0.2, dead_after_s=0.5)
    async with running_link(make_env, timing) as s:
        s.channels.settings(heartbeats=False)
        assert await s.sink.until("connected") == [("down", "dead"), ("connected", "dead")]


async def test_pong_keeps_a_quiet_socket_alive(make_env: Factory) -> None:
    # Heartbeats every 600 s: only the answers to our pings show the socket lives. Pongs keep
    # coming for twice the dead-socket deadline, and the link never reconnects.
    timing = notifications.Timing(ping_after_s=0.1, dead_after_s=2.0)
    async with running_link(make_env, timing) as s:
        s.channels.settings(heartbeat_s=600.0)
        loop = asyncio.get_running_loop()
        start, pongs = loop.time(), s.channels.pongs
        while s.channels.pongs < pongs + 3 or loop.time() - start < 2 * timing.dead_after_s:
            await asyncio.wait_for(s.channels.pong_sent.wait(), TIMEOUT)
            s.channels.pong_sent.clear()
        assert s.sink.calls.empty()
        assert len(_opened(s.env)) == 1


async def test_a_renewed_token_moves_to_a_new_channel(make_env: Factory) -> None:
    timing = notifications.Timing(token_check_s=0.05)
    async with running_link(make_env, timing) as s:
        source = s.env.transport.pool.sources[0]
        await source.invalidate(source.generation)  # as a 401 elsewhere would
        assert await s.sink.next() == ("connected", "token")
        assert len(_opened(s.env)) == 2  # a channel created with the new token


async def test_an_expired_token_ends_the_channel_and_a_new_token_opens_one(
    make_env: Factory,
) -> None:
    async with running_link(make_env) as s:
        assert s.env.running.sim.expire_tokens() >= 1
        calls = await s.sink.until("connected")
        assert calls[0] == ("down", "closed")
        assert calls[-1][0] == "connected"
        assert s.env.recorder.named("on_retry").count(("401",)) >= 1


async def test_rejected_topics_are_reported_with_missing_permissions(
    make_env: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    env = await make_env()
    channels = env.running.runner.app[sim_notifications.CHANNELS_KEY]
    channels.settings(missing_permissions=["wfm:schedule:view", "wfm:publishedSchedule:view"])
    sim = env.running.sim
    trunk_id = next(iter(sim.org.trunk_of_base.values()))
    bu_topic = notifications.SCHEDULE_TOPIC.format(id=sim.org.bus[0].id)
    sink = Sink()
    link = notifications.Link(
        env.transport, notifications.topics_for([trunk_id], [sim.org.bus[0].id]), sink
    )
    caplog.set_level(logging.ERROR, logger="syncd.genesys.notifications")
    task = asyncio.create_task(link.run())
    try:
        assert await sink.next() == ("connected", "start")
        assert link.rejected == {
            bu_topic: ("Missing permissions", ("wfm:schedule:view", "wfm:publishedSchedule:view"))
        }
        assert not link.complete
        assert any(
            bu_topic in r.getMessage() and "wfm:publishedSchedule:view" in r.getMessage()
            for r in caplog.records
        )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_more_than_1000_topics_take_several_channels(make_env: Factory) -> None:
    env = await make_env()
    sink = Sink()
    many = notifications.Notifications(env.transport, sink)
    trunks = [f"00000000-0000-0000-0000-{i:012d}" for i in range(1500)]
    many.set_topics(notifications.topics_for(trunks, []))
    task = asyncio.create_task(many.run())
    try:
        assert {await sink.next(), await sink.next()} == {("connected", "start")}
        channels = env.running.runner.app[sim_notifications.CHANNELS_KEY]
        assert sorted(c.topics.__len__() for c in channels.by_id.values()) == [500, 1000]
        assert many.up
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_failed_open_backs_off_and_retries(make_env: Factory) -> None:
    env = await make_env()
    channels = env.running.runner.app[sim_notifications.CHANNELS_KEY]
    sink = Sink()
    link = notifications.Link(
        env.transport,
        notifications.topics_for([], [env.running.sim.org.bus[0].id]),
        sink,
        timing=notifications.Timing(backoff_base_s=0.01, backoff_cap_s=0.05),
    )
    channels.refuse_sockets = 2  # the next two WebSocket upgrades are refused
    task = asyncio.create_task(link.run())
    try:
        assert await sink.next() == ("connected", "start")
        assert channels.refused == 2
        assert len(_opened(env)) == 3
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_socket_lost_right_after_it_opened_reconnects_after_a_growing_backoff(
    make_env: Factory,
) -> None:
    # A socket that closes as soon as it opens (a proxy that cuts WebSockets, a service that
    # drops them) must not be reopened in a tight loop: each round is a channel, a subscription
    # (at failover priority, ahead of every other request) and a full resync of the engine.
    # One lost socket is reopened at once; the next ones lost young back off like failed opens
    # (docs/notifications.md), a step more each time; after a socket that lived, afresh.
    env = await make_env()
    channels = env.running.runner.app[sim_notifications.CHANNELS_KEY]
    sink = Sink()
    now = [1000.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)

    link = notifications.Link(
        env.transport,
        notifications.topics_for([], [env.running.sim.org.bus[0].id]),
        sink,
        timing=notifications.Timing(backoff_base_s=0.5, backoff_cap_s=60.0),
        clock=lambda: now[0],
        rand=lambda: 1.0,  # full jitter at its ceiling
        sleep=sleep,
    )
    task = asyncio.create_task(link.run())
    try:
        assert await sink.next() == ("connected", "start")
        for _ in range(3):
            assert channels.drop_sockets() == 1
            assert await sink.until("connected") == [("down", "closed"), ("connected", "closed")]
        assert sleeps == [0.5, 1.0]
        now[0] += 600.0  # this one lives ten minutes
        for _ in range(2):
            assert channels.drop_sockets() == 1
            assert await sink.until("connected") == [("down", "closed"), ("connected", "closed")]
        assert sleeps == [0.5, 1.0, 0.5]
        assert len(_opened(env)) == 6
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
