"""The limiter alone (no HTTP): pauses cover every waiter of a token, priorities overtake,
the pool hands out the token that can send first, over-long pauses fail clearly."""

from __future__ import annotations

import asyncio

import pytest
from conftest import FakeClock, Recorder

from syncd import errors
from syncd.core import model, pacing
from syncd.genesys import limiter
from syncd.sim import ratelimit


def make(
    labels: tuple[str, ...] = ("pool-0",), **kw: float
) -> tuple[limiter.Limiter, FakeClock, Recorder]:
    clock = FakeClock()
    rec = Recorder()
    lim = limiter.Limiter(
        labels,
        pacing.PacingConfig(quota=int(kw.pop("quota", 100)), window_s=kw.pop("window_s", 60.0)),
        max_retry_after_s=kw.pop("max_retry_after_s", 180.0),
        clock=clock,
        sleep=clock.sleep,
        observer=rec,
    )
    return lim, clock, rec


async def test_a_429_pauses_every_waiter_of_the_token() -> None:
    lim, clock, rec = make()
    first = await lim.acquire(2)
    lim.release(first, status=429, headers=None)
    until = lim.throttled(first, retry_after_s=30, jitter_s=0.0, with_headers=False)
    granted: list[float] = []

    async def one() -> None:
        lease = await lim.acquire(2)
        granted.append(clock())
        lim.release(lease, status=200, headers=None)

    await asyncio.gather(*(one() for _ in range(5)))
    assert len(granted) == 5
    assert min(granted) >= until == pytest.approx(1030.0)
    assert rec.named("on_pause")[0] == ("pool-0", True)
    assert ("pool-0", False) in rec.named("on_pause")


async def test_a_failover_write_overtakes_queued_routine_ones() -> None:
    lim, _clock, _rec = make()
    lease = await lim.acquire(2)
    lim.release(lease, status=429, headers=None)
    lim.throttled(lease, retry_after_s=10, jitter_s=0.0, with_headers=False)
    order: list[str] = []

    async def one(name: str, priority: int) -> None:
        got = await lim.acquire(priority)
        order.append(name)
        lim.release(got, status=200, headers=None)

    routine = [asyncio.ensure_future(one(f"routine-{i}", 2)) for i in range(3)]
    await asyncio.sleep(0)
    failover = asyncio.ensure_future(one("failover", 0))
    await asyncio.gather(*routine, failover)
    assert order[0] == "failover"
    assert order[1:] == ["routine-0", "routine-1", "routine-2"]


async def test_the_pool_uses_the_token_that_can_send_first() -> None:
    lim, _clock, _rec = make(("pool-0", "pool-1"))
    a = await lim.acquire(2)
    lim.release(a, status=429, headers=None)
    lim.throttled(a, retry_after_s=60, jitter_s=0.0, with_headers=False)
    labels = []
    for _ in range(4):
        lease = await lim.acquire(2)
        labels.append(lease.label)
        lim.release(lease, status=200, headers=None)
    other = "pool-1" if a.label == "pool-0" else "pool-0"
    assert labels == [other] * 4


async def test_requests_in_flight_spread_over_the_pool() -> None:
    lim, _clock, _rec = make(("pool-0", "pool-1", "pool-2"))
    # A fresh token sends one at a time (nothing is proven yet): three go, one per token.
    first = [await lim.acquire(2) for _ in range(3)]
    assert sorted(lease.label for lease in first) == ["pool-0", "pool-1", "pool-2"]
    for lease in first:
        # The server tells each token its budget: no more one-at-a-time discovery.
        lim.release(lease, status=200, headers=pacing.RateHeaders(count=1, allowed=100, reset_s=60))
    leases = [await lim.acquire(2) for _ in range(6)]
    assert (
        sorted(lease.label for lease in leases) == ["pool-0"] * 2 + ["pool-1"] * 2 + ["pool-2"] * 2
    )


async def test_a_pause_beyond_the_maximum_fails_the_waiters() -> None:
    lim, _clock, rec = make(max_retry_after_s=100)
    lease = await lim.acquire(2)
    lim.release(lease, status=429, headers=None)
    lim.throttled(lease, retry_after_s=3600, jitter_s=0.0, with_headers=False)
    with pytest.raises(errors.RetryAfterTooLong) as info:
        await lim.acquire(2, endpoint="/api/v2/x/{id}")
    assert info.value.retry_after_s == pytest.approx(3600)
    assert rec.named("on_retry_after_too_long") == [("/api/v2/x/{id}", pytest.approx(3600))]
    assert lim.queue_depth == 0


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    lim, _clock, _rec = make()
    lease = await lim.acquire(2)
    lim.release(lease, status=429, headers=None)
    lim.throttled(lease, retry_after_s=10, jitter_s=0.0, with_headers=False)
    task = asyncio.ensure_future(lim.acquire(1))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert lim.queue_depth == 0
    again = await lim.acquire(2)
    assert again.seq == 2


async def test_routine_work_leaves_the_failover_reserve_of_each_window() -> None:
    lim, clock, _rec = make(quota=100, window_s=60.0)
    # The server is known to count in windows (its refill probe was refused long ago).
    lim.pacers[0].refill = "window"
    reserve = lim.config.failover_reserve
    assert reserve == 2
    for _ in range(100 - reserve):
        lease = await lim.acquire(model.Priority.STAFFING)
        lim.release(lease, status=200, headers=None)
    assert clock() == 1000.0  # the routine backlog went at once, up to the reserve
    failover = await lim.acquire(model.Priority.FAILOVER)
    assert clock() == 1000.0  # a failover request finds its reserve: no wait
    lim.release(failover, status=200, headers=None)
    routine = await lim.acquire(model.Priority.CAPACITY_CUT)
    # The next routine request waits for the window: the last slot stays for failover.
    assert clock() >= 1060.0
    lim.release(routine, status=200, headers=None)


async def test_with_headers_routine_work_also_leaves_the_reserve() -> None:
    lim, clock, _rec = make(quota=100, window_s=60.0)
    lease = await lim.acquire(model.Priority.STAFFING)
    # The server says 3 remain of 100 for the next 60 s.
    lim.release(lease, status=200, headers=pacing.RateHeaders(count=97, allowed=100, reset_s=60))
    failover = await lim.acquire(model.Priority.FAILOVER)
    assert clock() == 1000.0
    lim.release(failover, status=200, headers=pacing.RateHeaders(98, 100, 60))
    routine = await lim.acquire(model.Priority.STAFFING)
    assert clock() >= 1060.0  # 2 left, both held for failover work: wait for the reset
    lim.release(routine, status=200, headers=None)


async def test_queued_waiters_are_woken_one_at_a_time() -> None:
    # 5 per minute (4 for routine work): 30 requests wait through several windows.
    lim, clock, _rec = make(quota=5, window_s=60.0)
    waits = 0
    inner = lim._wait

    async def counting(*args: object) -> None:
        nonlocal waits
        waits += 1
        await inner(*args)  # type: ignore[arg-type]

    lim._wait = counting  # type: ignore[method-assign]
    order: list[int] = []

    async def one(i: int) -> None:
        got = await lim.acquire(2)
        order.append(i)
        lim.release(got, status=200, headers=None)

    n = 30
    await asyncio.gather(*(one(i) for i in range(n)))
    assert order == list(range(n))
    assert clock() >= 1000.0 + 60.0 * (n // 5 - 1)  # (on any reserve)
    # Each waiter sleeps once until it is the head, then the head once per window: not
    # every waiter at every grant and release (which would be about n * n wake-ups).
    assert waits <= 2 * n


async def test_an_endpoint_with_a_lower_limit_is_paced_apart_from_the_token() -> None:
    lim, clock, _rec = make(quota=100, window_s=60.0)
    patch = {"endpoint": "/api/v2/outbound/campaigns/{campaignId}", "method": "PATCH"}
    get = {"endpoint": "/api/v2/x", "method": "GET"}
    lease = await lim.acquire(2, **get)
    lim.release(lease, status=200, headers=pacing.RateHeaders(count=1, allowed=100, reset_s=60))
    # The endpoint's answers show its own limit: 3 per window, 2 left.
    lease = await lim.acquire(2, **patch)
    lim.release(lease, status=200, headers=pacing.RateHeaders(count=1, allowed=3, reset_s=60))
    assert list(lim.endpoint_pacers) == [(0, "PATCH " + patch["endpoint"])]
    lease = await lim.acquire(2, **patch)
    # The server counted another one elsewhere: none left.
    lim.release(lease, status=200, headers=pacing.RateHeaders(count=3, allowed=3, reset_s=60))
    assert clock() == 1000.0
    # The endpoint is spent; the token is not: other requests still go at once.
    lease = await lim.acquire(2, **get)
    assert clock() == 1000.0
    lim.release(lease, status=200, headers=pacing.RateHeaders(count=5, allowed=100, reset_s=60))
    lease = await lim.acquire(2, **patch)
    assert clock() >= 1060.0  # the endpoint waits for its own reset
    # A 429 of the endpoint's own limit pauses that endpoint, not the token.
    lim.release(lease, status=429, headers=pacing.RateHeaders(count=3, allowed=3, reset_s=30))
    until = lim.throttled(lease, retry_after_s=30, jitter_s=0.0, with_headers=True)
    assert until == pytest.approx(clock() + 30)
    now = clock()
    lease = await lim.acquire(2, **get)
    assert clock() == now


# --- endpoint limits found without headers (429s are the only word) -------------------------

PATCH = {"endpoint": "/api/v2/outbound/campaigns/{campaignId}", "method": "PATCH"}
GET = {"endpoint": "/api/v2/telephony/providers/edges/trunkbasesettings/{id}", "method": "GET"}
PUT = {"endpoint": "/api/v2/telephony/providers/edges/trunkbasesettings/{id}", "method": "PUT"}
PATCH_KEY = (0, "PATCH " + PATCH["endpoint"])
GET_KEY = (0, "GET " + GET["endpoint"])


async def admit(lim: limiter.Limiter, n: int, where: dict[str, str]) -> None:
    """``n`` requests to ``where``, each answered 200 (no headers) as soon as it is sent."""
    for _ in range(n):
        lease = await lim.acquire(2, **where)
        lim.release(lease, status=200, headers=None)


async def refuse(lim: limiter.Limiter, where: dict[str, str], retry_after_s: float = 10) -> float:
    """One request to ``where`` answered 429 without headers; returns the pause's end."""
    lease = await lim.acquire(2, **where)
    lim.release(lease, status=429, headers=None)
    return lim.throttled(lease, retry_after_s=retry_after_s, jitter_s=0.0, with_headers=False)


async def test_a_429_on_one_endpoint_while_the_token_showed_more_room_paces_that_endpoint() -> None:
    lim, clock, _rec = make(quota=100, window_s=60.0)
    lim.pacers[0].refill = "window"  # the server counts in windows (no refill probe here)
    await admit(lim, 60, GET)  # the token has admitted 60 in one window
    clock.t = 1061.0
    await admit(lim, 5, PATCH)
    await admit(lim, 3, GET)
    # The sixth PATCH of this window is refused while the token has admitted only 8 of the
    # 60 it has shown: the endpoint's own limit, not a lower quota of the token.
    until = await refuse(lim, PATCH)
    assert until == pytest.approx(1071.0)  # its first 429: the whole token pauses anyway
    assert lim.pacers[0].assumed_quota == pytest.approx(100)
    assert lim.endpoint_pacers[PATCH_KEY].config.quota == 5
    lease = await lim.acquire(2, **GET)
    assert clock() == pytest.approx(1071.0)  # other requests go once the pause is over
    lim.release(lease, status=200, headers=None)
    lease = await lim.acquire(2, **PATCH)
    assert clock() >= 1121.0  # the endpoint waits until its 5 of the window have expired
    lim.release(lease, status=200, headers=None)


async def test_an_established_endpoint_limit_pauses_only_that_endpoint() -> None:
    lim, clock, _rec = make(quota=100, window_s=60.0)
    lim.pacers[0].refill = "window"
    await admit(lim, 60, GET)
    clock.t = 1061.0
    await admit(lim, 5, PATCH)
    await refuse(lim, PATCH)  # paced apart from now on, at 5 per window
    clock.t = 1130.0
    await admit(lim, 2, GET)
    await admit(lim, 3, PATCH)
    # Refused again (the server's window is not ours: it had counted more), the token far
    # from its 60: beyond doubt the endpoint's. Only the endpoint pauses, at a lower level.
    until = await refuse(lim, PATCH, retry_after_s=20)
    assert until == pytest.approx(1150.0)
    assert lim.endpoint_pacers[PATCH_KEY].config.quota == 3
    assert lim.pacers[0].paused_until < clock()
    await admit(lim, 1, GET)
    assert clock() == pytest.approx(1130.0)  # the token goes on at once
    lease = await lim.acquire(2, **PATCH)
    assert clock() >= 1150.0  # the endpoint waits for its Retry-After
    lim.release(lease, status=200, headers=None)
    assert lim.pacers[0].assumed_quota == pytest.approx(100)


async def test_429s_spread_over_endpoints_still_lower_the_token_quota() -> None:
    lim, clock, _rec = make(quota=100, window_s=60.0)
    lim.pacers[0].refill = "window"
    await admit(lim, 30, GET)
    await admit(lim, 20, PUT)
    # The first 429 cannot tell the token's limit from the GET endpoint's: the token keeps its
    # quota, the endpoint is paced at its 30, and beyond what the token has now shown, requests
    # go one at a time, so that a token limit costs one more 429 only.
    await refuse(lim, GET)
    assert lim.pacers[0].assumed_quota == pytest.approx(100)
    assert lim.endpoint_pacers[GET_KEY].config.quota == 30
    clock.t = 1070.0
    await admit(lim, 35, PUT)  # (35 = 50 * 0.7: up to there, many at once)
    first = await lim.acquire(2, **PUT)
    assert lim.pacers[0].next_send_at(clock()) is None  # the next one waits for its answer
    lim.release(first, status=200, headers=None)
    await admit(lim, 14, PUT)
    # Refused again at 50, on another endpoint: the token's limit after all.
    await refuse(lim, PUT)
    assert lim.pacers[0].assumed_quota == pytest.approx(50)
    assert lim.endpoint_pacers == {}


async def test_an_answer_that_overtook_the_refusal_raises_the_endpoint_level() -> None:
    lim, clock, _rec = make(quota=100, window_s=60.0)
    lim.pacers[0].refill = "window"
    await admit(lim, 60, GET)
    clock.t = 1061.0
    await admit(lim, 4, PATCH)
    late = await lim.acquire(2, **PATCH)  # the fifth, answered after the sixth's 429
    await refuse(lim, PATCH)
    assert lim.endpoint_pacers[PATCH_KEY].config.quota == 4
    lim.release(late, status=200, headers=None)
    assert lim.endpoint_pacers[PATCH_KEY].config.quota == 5


async def test_a_refused_refill_probe_blames_no_endpoint() -> None:
    lim, clock, _rec = make(quota=10, window_s=60.0)
    await admit(lim, 10, GET)  # the sliding log is full: the next request is the refill probe
    probe = await lim.acquire(2, **PATCH)
    assert clock() < 1060.0
    lim.release(probe, status=429, headers=None)
    lim.throttled(probe, retry_after_s=60, jitter_s=0.0, with_headers=False)
    assert lim.endpoint_pacers == {}
    assert lim.pacers[0].refill == "window"
    assert lim.pacers[0].assumed_quota == pytest.approx(10)


async def drain(
    lim: limiter.Limiter, clock: FakeClock, server: ratelimit.Budgets, backlog: list[dict[str, str]]
) -> tuple[int, float]:
    """Send the backlog one request at a time to the simulator's rate limits (no headers, no
    latency), each refused one again after its pause; (429s, makespan)."""
    refused = 0
    start = clock()
    for where in backlog:
        while True:
            lease = await lim.acquire(2, **where)
            decision = server.hit(
                clock(), token="t", client_id="c", method=where["method"], route=where["endpoint"]
            )
            if decision.admitted:
                lim.release(lease, status=200, headers=None)
                break
            refused += 1
            lim.release(lease, status=429, headers=None)
            lim.throttled(
                lease, retry_after_s=decision.retry_after, jitter_s=0.0, with_headers=False
            )
    return refused, clock() - start


async def drain_fresh(
    told: int, server: ratelimit.Budgets, backlog: list[dict[str, str]]
) -> tuple[limiter.Limiter, int, float]:
    """A fresh limiter, told ``told`` per 60 s window, drains ``backlog`` (``drain``); the
    limiter, the 429s and the makespan."""
    lim, clock, _rec = make(quota=told, window_s=60.0)
    refused, span = await drain(lim, clock, server, backlog)
    return lim, refused, span


# 120 campaign PATCHes among 80 GET/PUTs, evenly mixed (as in the write benchmark).
MIXED = [PATCH if i % 5 in (0, 2, 4) else (GET if i % 5 == 1 else PUT) for i in range(200)]


async def test_without_headers_an_endpoint_limit_is_learned_and_the_token_keeps_its_quota() -> None:
    server = ratelimit.Budgets(
        "fixed-window", 100, 60.0, endpoint_limits=(("PATCH", "/api/v2/outbound/campaigns", 20),)
    )
    lim, refused, span = await drain_fresh(100, server, MIXED)
    # 120 PATCHes at 20 per window: 6 windows, the last one starting 300 s after the first.
    assert refused <= 2
    assert span <= 1.15 * 300.0
    assert lim.pacers[0].assumed_quota == pytest.approx(100)
    assert lim.endpoint_pacers[PATCH_KEY].config.quota == 20


async def test_without_headers_a_wrong_endpoint_guess_costs_at_most_one_429_more() -> None:
    lim, clock, _rec = make(quota=100, window_s=60.0)
    server = ratelimit.Budgets("fixed-window", 40, 60.0)
    refused, span = await drain(lim, clock, server, MIXED)
    # 200 requests at 40 per window: 5 windows, the last one starting 240 s after the first.
    # On this even mix the first 429 cannot tell the token's limit from the endpoint it landed
    # on; pacing that endpoint at its share holds the token at its limit as well.
    assert refused <= 2
    assert span <= 1.15 * 240.0
    # Another mix shows it: one more 429, on another endpoint, teaches the token's quota.
    others = [GET if i % 2 else PUT for i in range(120)]
    more, _span = await drain(lim, clock, server, others)
    assert refused + more <= 3  # (the third: the refill probe, once the log is full)
    assert lim.pacers[0].assumed_quota == pytest.approx(40)
    assert lim.endpoint_pacers == {}


# The first window holds 4 trunk-base PUTs among 30 requests, and a fifth comes next; after it,
# one request in three is such a PUT (the rest GETs and PATCHes). Told 150 per window, the
# limiter does not know the token's limit; the fifth PUT's 429 cannot say whose it is.
PUT_KEY = (0, "PUT " + PUT["endpoint"])
FEW_PUTS_FIRST = (
    [PUT if i % 7 == 3 else GET for i in range(30)]
    + [PUT]
    + [(GET, PATCH, PUT)[i % 3] for i in range(270)]
)


async def test_without_headers_a_wrongly_suspected_endpoint_limit_is_tested_and_dropped() -> None:
    server = ratelimit.Budgets("fixed-window", 30, 60.0)  # the token's limit: 30, not 150
    assert sum(where is PUT for where in FEW_PUTS_FIRST[:30]) == 4
    lim, refused, span = await drain_fresh(150, server, FEW_PUTS_FIRST)
    # Paced at the 4 it had admitted, the PUTs would hold every request back (one in three
    # is a PUT: 12 a window), so the token would never reach its 30 again to show that the
    # limit was its own: 301 requests would take 23 windows instead of 11. With the token that
    # short of what it had admitted, one PUT goes beyond the 4 as a test: admitted, the
    # suspected limit is dropped and the token's quota is the 30 it had admitted then.
    assert lim.endpoint_pacers == {}
    assert lim.evidence[0].limit(PUT_KEY[1]) is None
    assert lim.pacers[0].assumed_quota == pytest.approx(30)
    assert refused <= 2  # the first 429, and the refill probe once the log is full at 30
    assert span <= 1.15 * ratelimit.optimal_duration("fixed-window", 301, 30, 60.0)


async def test_without_headers_a_suspected_limit_that_holds_the_token_back_is_established() -> None:
    # The same backlog, but the PUTs have a limit of their own: 4 per window, the token 150.
    server = ratelimit.Budgets(
        "fixed-window", 150, 60.0, endpoint_limits=(("PUT", "/api/v2/telephony", 4),)
    )
    lim, refused, span = await drain_fresh(150, server, FEW_PUTS_FIRST)
    # The test beyond the 4 is refused while the token has room: the endpoint's own limit,
    # established at one 429 more (its 429s pause only it), at the level refused twice; the
    # token keeps its quota.
    assert refused <= 2
    limit = lim.evidence[0].limit(PUT_KEY[1])
    assert limit is not None
    assert limit.established
    assert limit.level == 4
    assert lim.endpoint_pacers[PUT_KEY].config.quota == 4
    assert lim.pacers[0].assumed_quota == pytest.approx(150)
    # 91 PUTs at 4 per window: the last batch starts 22 windows after the first.
    assert span <= 1.15 * ratelimit.optimal_duration("fixed-window", 91, 4, 60.0)


async def test_a_request_pinned_to_a_paused_token_holds_back_no_other_token() -> None:
    # A notification channel's calls are pinned to the token that created it (at failover
    # priority). While that token is paused, such a request waits at the head of the queue;
    # it must not hold back the requests that another token of the pool can send now.
    lim, clock, _rec = make(("pool-0", "pool-1"))
    lease = await lim.acquire(2, token_index=0)
    lim.release(lease, status=429, headers=None)
    until = lim.throttled(lease, retry_after_s=60, jitter_s=0.0, with_headers=False)
    granted: dict[str, tuple[str, float]] = {}

    async def one(name: str, priority: int, token_index: int | None) -> None:
        got = await lim.acquire(priority, token_index=token_index)
        granted[name] = (got.label, clock())
        lim.release(got, status=200, headers=None)

    pinned = asyncio.ensure_future(one("pinned", model.Priority.FAILOVER, 0))
    await asyncio.sleep(0)
    others = [
        asyncio.ensure_future(one("failover", model.Priority.FAILOVER, None)),
        asyncio.ensure_future(one("routine", model.Priority.STAFFING, None)),
    ]
    await asyncio.gather(pinned, *others)
    assert granted["failover"] == ("pool-1", 1000.0)
    assert granted["routine"] == ("pool-1", 1000.0)
    assert granted["pinned"] == ("pool-0", until)
    assert lim.queue_depth == 0


async def test_behind_a_pinned_head_a_long_pause_elsewhere_fails_nothing() -> None:
    # Token 1 is paused beyond the maximum, token 0 briefly: the request behind the pinned
    # head waits for token 0 after it, as any request behind the head would.
    lim, clock, _rec = make(("pool-0", "pool-1"), max_retry_after_s=100)
    for index, pause in ((0, 10), (1, 300)):
        lease = await lim.acquire(2, token_index=index)
        lim.release(lease, status=429, headers=None)
        lim.throttled(lease, retry_after_s=pause, jitter_s=0.0, with_headers=False)
    order: list[tuple[str, str, float]] = []

    async def one(name: str, token_index: int | None) -> None:
        got = await lim.acquire(model.Priority.FAILOVER, token_index=token_index)
        order.append((name, got.label, clock()))
        lim.release(got, status=200, headers=None)

    pinned = asyncio.ensure_future(one("pinned", 0))
    await asyncio.sleep(0)
    await asyncio.gather(pinned, one("any", None))
    assert order == [("pinned", "pool-0", 1010.0), ("any", "pool-0", 1010.0)]


async def test_an_endpoint_count_far_beyond_its_limit_costs_no_more_than_the_limit() -> None:
    # The endpoint pacer's log starts with what the server counted. A count far beyond the
    # limit (a broken header, a counter gone wrong) says no more than "spent": it must not
    # become that many entries (a count of 2**32 would stop the event loop for hours).
    lim, clock, _rec = make(quota=100, window_s=60.0)
    lease = await lim.acquire(2, **GET)
    lim.release(lease, status=200, headers=pacing.RateHeaders(count=1, allowed=100, reset_s=60))
    lease = await lim.acquire(2, **PATCH)
    lim.release(lease, status=200, headers=pacing.RateHeaders(count=200_000, allowed=3, reset_s=60))
    own = lim.endpoint_pacers[PATCH_KEY]
    assert own._log.used(clock()) <= 3
    lease = await lim.acquire(2, **PATCH)
    assert clock() == pytest.approx(1060.0)  # spent: the endpoint waits for its reset
    lim.release(lease, status=200, headers=None)


async def test_an_answer_sent_before_the_endpoint_was_paced_apart_leaves_its_pacing_alone() -> None:
    # Two PATCHes in flight; the first is refused (the endpoint is paced apart from then on),
    # the second, sent after it, is admitted. Its lease has no number in the endpoint's new
    # pacer (0): that answer must not pass for the answer to a refill probe, which would turn
    # the endpoint's window pacing into a bucket's and let it send beyond its limit.
    lim, clock, _rec = make(quota=100, window_s=60.0)
    lim.pacers[0].refill = "window"
    await admit(lim, 60, GET)
    clock.t = 1061.0
    await admit(lim, 5, PATCH)
    refused = await lim.acquire(2, **PATCH)
    later = await lim.acquire(2, **PATCH)
    assert later.seq > refused.seq
    lim.release(refused, status=429, headers=None)
    lim.throttled(refused, retry_after_s=10, jitter_s=0.0, with_headers=False)
    assert lim.endpoint_pacers[PATCH_KEY].refill == "window"
    lim.release(later, status=200, headers=None)
    assert lim.endpoint_pacers[PATCH_KEY].refill == "window"
    lease = await lim.acquire(2, **PATCH)
    assert clock() >= 1121.0  # its 5 (and the sixth admitted) of the window expire first
    lim.release(lease, status=200, headers=None)
