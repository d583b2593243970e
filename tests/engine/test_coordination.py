"""The Redis coordinator against a real redis-server: lease, epochs, fence, GCRA, shared pause.

Local time is a fake clock where a test needs it (the fence's decisions); Redis' own TTLs are
real, so a test that needs a lease to lapse uses a short one and waits for the event (the key
gone), never for a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3

import pytest
import redis.asyncio as aioredis

from bench import redisproc
from syncd import errors
from syncd.core import lease, model, pacing
from syncd.engine import coordination
from syncd.genesys import limiter

SHORT = lease.LeaseTiming(
    lease_s=1.5, renew_deadline_s=1.0, retry_s=0.2, max_write_s=0.2, clock_drift=0.01
)
BUDGET = coordination.BudgetSettings(quota=12, window_s=1.0, burst=1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(
    server: redisproc.RedisServer,
    *,
    holder: str,
    clock: FakeClock | None = None,
    timing: lease.LeaseTiming = SHORT,
    floor: int = 0,
) -> coordination.Coordinator:
    return coordination.Coordinator(
        coordination.connect(server.url, password=None, timeout_s=0.5),
        key_prefix="test",
        timing=timing,
        budget=BUDGET,
        holder=holder,
        epoch_floor=floor,
        **({"clock": clock} if clock is not None else {}),
    )


async def wait_until_gone(client: aioredis.Redis, key: str) -> None:
    # Redis has no event for "this key lapsed" without keyspace notifications: poll it.
    while await client.exists(key):  # noqa: ASYNC110
        await asyncio.sleep(0.05)


async def test_one_leader_and_each_acquisition_raises_the_epoch(
    redis_server: redisproc.RedisServer,
) -> None:
    a, b = make(redis_server, holder="a"), make(redis_server, holder="b")
    try:
        await a.step()
        await b.step()
        assert a.leading()
        assert not b.leading()
        assert a.permit().epoch == 1
        with pytest.raises(errors.NotLeader):
            b.permit()
        await a.release()  # a graceful stop hands over at once
        await b.step()
        assert b.leading()
        assert b.permit().epoch == 2
        # a crashed leader (no release) is replaced once its key lapses in Redis
        await wait_until_gone(b.client, b.leader_key)
        await a.step()
        assert a.permit().epoch == 3
        history = await a.client.xrange(a.key("leader", "history"))
        assert [(f["epoch"], f["holder"]) for _, f in history] == [
            ("1", "a"),
            ("2", "b"),
            ("3", "a"),
        ]
    finally:
        await a.close()
        await b.close()


async def test_a_renewal_keeps_the_lease_and_a_lost_key_steps_the_leader_down(
    redis_server: redisproc.RedisServer,
) -> None:
    clock = FakeClock()
    a = make(redis_server, holder="a", clock=clock)
    try:
        await a.step()
        first = a.permit()
        clock.now += 0.5
        await a.step()  # renew: the deadline moves with the renewal
        assert a.permit().deadline == pytest.approx(first.deadline + 0.5)
        await a.client.delete(a.leader_key)  # e.g. Redis restarted without its data
        clock.now += 0.1
        await a.step()
        assert not a.leading()
    finally:
        await a.close()


async def test_a_write_s_deadline_follows_renewals_of_its_epoch_and_ends_with_the_lease(
    redis_server: redisproc.RedisServer,
) -> None:
    clock = FakeClock()
    a = make(redis_server, holder="a", clock=clock)
    try:
        await a.step()
        permit = a.permit()
        assert a.deadline_of(permit) == permit.deadline  # not renewed since
        clock.now += 0.5
        await a.step()  # renewed under the same epoch: a write in flight may go on
        assert a.deadline_of(permit) == pytest.approx(permit.deadline + 0.5)
        await a.release()  # stepped down: it ends at once
        assert a.deadline_of(permit) is None
        await a.step()  # leads again, under a new epoch: the old write does not go on in it
        assert a.permit().epoch == permit.epoch + 1  # type: ignore[operator]
        assert a.deadline_of(permit) is None
    finally:
        await a.close()


async def test_redis_down_the_leader_stops_within_the_renew_deadline_and_resumes_after(
    redis_server: redisproc.RedisServer,
) -> None:
    clock = FakeClock()
    a = make(redis_server, holder="a", clock=clock)
    try:
        await a.step()
        assert a.permit().epoch == 1
        redis_server.stop()
        clock.now += SHORT.retry_s
        await a.step()  # cannot renew
        assert not a.up
        # still inside the renew deadline (minus the slowest write): it may finish writing
        clock.now += SHORT.renew_deadline_s - SHORT.retry_s - SHORT.max_write_s - 0.01
        assert a.permit().epoch == 1
        # past it: no more writes, before any other Redis call told it anything
        clock.now += SHORT.max_write_s + 0.02
        with pytest.raises(errors.NotLeader):
            a.permit()
        assert not a.leading()
        # Redis comes back empty (no persistence): the epoch still rises, from a's floor
        redis_server.start()
        await a.step()
        assert a.up
        assert a.permit().epoch == 2
    finally:
        await a.close()


async def test_the_epoch_floor_survives_a_redis_that_lost_its_data(
    redis_server: redisproc.RedisServer,
) -> None:
    seen: list[int] = []
    a = make(redis_server, holder="a", floor=41)
    a.on_epoch = seen.append
    try:
        await a.step()
        assert a.permit().epoch == 42
        assert seen == [42]
    finally:
        await a.close()


async def test_a_lease_loop_that_dies_ends_what_runs_under_it(
    redis_server: redisproc.RedisServer,
) -> None:
    # The lease loop was a task nobody owned: one that ended on anything but a Redis error
    # (here the state file refusing the new epoch floor) left the daemon running without it,
    # a follower for good (or a leader until its renew deadline), watchdog still fed. Like any
    # root task's, its end ends what runs under it, with its exception.
    def unwritable(epoch: int) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    a = make(redis_server, holder="a")
    a.on_epoch = unwritable
    entered = asyncio.Event()

    async def replica() -> None:
        async with coordination.running(a):
            entered.set()
            await asyncio.Event().wait()  # the daemon: runs until something ends it

    task = asyncio.create_task(replica())
    try:
        done, _ = await asyncio.wait({task}, timeout=5.0)
        assert entered.is_set()
        assert task in done, "the replica went on without its lease loop"
        failure = task.exception()
        assert isinstance(failure, BaseExceptionGroup)
        assert [type(e) for e in failure.exceptions] == [sqlite3.OperationalError]
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await a.close()


async def test_what_runs_under_the_lease_loop_raises_passes_unchanged(
    redis_server: redisproc.RedisServer,
) -> None:
    # The runner tells refused credentials, a bad file and a locked state file apart by type.
    a = make(redis_server, holder="a")
    try:
        with pytest.raises(errors.AuthError):
            async with coordination.running(a):
                raise errors.AuthError("refused")
    finally:
        await a.close()


async def test_gcra_is_redis_cells_throttle(redis_server: redisproc.RedisServer) -> None:
    # 12 per second with a burst of 1: the rate leaves room for the burst, 1 per 100 ms.
    a = make(redis_server, holder="a")
    try:
        t0 = 1_700_000_000_000_000
        interval = int(BUDGET.interval_us)
        assert interval == 100_000
        first = await a.throttle("client", now_us=t0)
        second = await a.throttle("client", now_us=t0)
        third = await a.throttle("client", now_us=t0)
        assert (first.allowed, first.remaining) == (True, 1)
        assert (second.allowed, second.remaining) == (True, 0)
        assert not third.allowed
        assert third.wait_s == pytest.approx(0.1)
        later = await a.throttle("client", now_us=t0 + interval)
        assert later.allowed
        # in any one second, at most quota requests pass, whatever the arrival pattern
        admitted = 0
        for i in range(100):
            answer = await a.throttle("other", now_us=t0 + i * 10_000)
            admitted += answer.allowed
        assert admitted <= BUDGET.quota
        assert admitted >= BUDGET.quota - BUDGET.burst - 1
    finally:
        await a.close()


async def test_a_429_on_one_replica_pauses_every_replica(
    redis_server: redisproc.RedisServer,
) -> None:
    a, b = make(redis_server, holder="a"), make(redis_server, holder="b")
    a.set_clients({"pool-0": "client-x"})
    b.set_clients({"pool-0": "client-x"})
    try:
        a.throttled("pool-0", 2.0)
        await asyncio.gather(*a._tasks)  # the publication itself
        answer = await b.throttle("client-x")
        assert not answer.allowed
        assert 1.0 < answer.wait_s <= 2.0
        other = await b.throttle("client-y")  # another OAuth client is not paused
        assert other.allowed
    finally:
        await a.close()
        await b.close()


async def test_take_waits_for_the_shared_budget_and_falls_back_when_redis_is_down(
    redis_server: redisproc.RedisServer,
) -> None:
    slept: list[float] = []
    waited = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        waited.set()
        await asyncio.sleep(0)

    a = coordination.Coordinator(
        coordination.connect(redis_server.url, password=None, timeout_s=0.5),
        key_prefix="test",
        timing=SHORT,
        budget=coordination.BudgetSettings(quota=3, window_s=3600.0, burst=1),
        holder="a",
        sleep=sleep,
    )
    try:
        await a.take("pool-0")
        await a.take("pool-0")
        assert slept == []
        a.throttled("pool-0", 0.5)
        await asyncio.gather(*a._tasks)
        task = asyncio.ensure_future(a.take("pool-0"))
        await waited.wait()
        assert 0 < slept[0] <= 0.5  # waits out the published pause
        redis_server.stop()
        await task  # the fallback: the local pacer alone decides while Redis is down
        assert not a.up
        assert all(math.isfinite(s) for s in slept)
    finally:
        await a.close()


async def test_a_shared_pause_longer_than_the_maximum_fails_the_request_clearly(
    redis_server: redisproc.RedisServer,
) -> None:
    # Another replica got a 429 with an hour's Retry-After and published it. This replica's
    # own pacer knows nothing of it: the request must fail as the limiter promises for any wait
    # beyond its maximum, not wait the hour out in the shared budget.
    async def sleep(seconds: float) -> None:
        raise AssertionError(f"waited {seconds:.0f} s in the shared budget instead of failing")

    a, b = make(redis_server, holder="a"), make(redis_server, holder="b")
    b._sleep = sleep
    a.set_clients({"pool-0": "client-x"})
    b.set_clients({"pool-0": "client-x"})
    lim = limiter.Limiter(
        ["pool-0"], pacing.PacingConfig(quota=12, window_s=1.0), shared=b, max_retry_after_s=180
    )
    try:
        a.throttled("pool-0", 3600.0)
        await asyncio.gather(*a._tasks)
        with pytest.raises(errors.RetryAfterTooLong) as caught:
            await lim.acquire(model.Priority.FAILOVER, endpoint="/api/v2/x", method="GET")
        assert caught.value.retry_after_s > 180
        assert lim.pacers[0].in_flight == 0  # its slot went back
    finally:
        await a.close()
        await b.close()


async def test_an_absurd_pause_is_published_capped_and_redis_stays_up(
    redis_server: redisproc.RedisServer,
) -> None:
    a, b = make(redis_server, holder="a"), make(redis_server, holder="b")
    a.set_clients({"pool-0": "client-x"})
    try:
        a.throttled("pool-0", 1e300)  # a broken Retry-After, parsed as a number
        await asyncio.gather(*a._tasks)
        assert a.up  # Redis refusing the value is not Redis being down
        answer = await b.throttle("client-x")
        assert not answer.allowed  # every replica is paused all the same
    finally:
        await a.close()
        await b.close()
