"""Pure tests of the rate-limit arithmetic, including a discrete-event run of the pacer
against the simulator's server models (pure state machines as well)."""

from __future__ import annotations

import collections
import functools
import heapq
import itertools
import math
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core import model, pacing
from syncd.sim import ratelimit

# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42", 42.0), (" 1 ", 1.0), ("0", 0.0), ("-3", 0.0), ("1.5", 1.5), ("", None), (None, None),
     ("soon", None), ("inf", None), ("nan", None)],
)  # fmt: skip
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert pacing.parse_retry_after(value) == expected


def test_retry_after_http_date() -> None:
    when = datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC)
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert pacing.parse_retry_after(format_datetime(when, usegmt=True), now_epoch=now) == 30.0
    assert pacing.parse_retry_after(format_datetime(when, usegmt=True)) is None


def test_ratelimit_headers() -> None:
    got = pacing.parse_ratelimit_headers(
        {"ININ-RateLimit-Count": "7", "inin-ratelimit-allowed": "300", "inin-ratelimit-reset": "41"}
    )
    assert got == pacing.RateHeaders(count=7, allowed=300, reset_s=41.0)
    assert got.remaining == 293
    assert pacing.parse_ratelimit_headers({"inin-ratelimit-count": "1"}) is None
    bad = {"inin-ratelimit-count": "x", "inin-ratelimit-allowed": "3", "inin-ratelimit-reset": "1"}
    assert pacing.parse_ratelimit_headers(bad) is None


# --- backoff and budget ----------------------------------------------------------------------


@given(
    attempt=st.integers(0, 200),
    base=st.floats(0.001, 10),
    cap=st.floats(0.001, 100),
    rand=st.floats(0, 1),
)
def test_full_jitter_stays_under_the_capped_exponential(
    attempt: int, base: float, cap: float, rand: float
) -> None:
    delay = pacing.full_jitter(attempt, base_s=base, cap_s=cap, rand=rand)
    assert 0 <= delay <= min(cap, base * 2.0 ** min(attempt, 62)) + 1e-9


def test_full_jitter_examples() -> None:
    assert pacing.full_jitter(0, base_s=0.5, cap_s=30, rand=1.0) == 0.5
    assert pacing.full_jitter(3, base_s=0.5, cap_s=30, rand=0.5) == 2.0
    assert pacing.full_jitter(10, base_s=0.5, cap_s=30, rand=1.0) == 30
    with pytest.raises(ValueError, match="attempt"):
        pacing.full_jitter(-1, base_s=1, cap_s=1, rand=0)


@given(st.lists(st.booleans(), max_size=200))
def test_retry_budget_allows_retries_only_above_half(outcomes: list[bool]) -> None:
    budget = pacing.RetryBudget(10, 0.1)
    for success in outcomes:
        if success:
            budget.on_success()
        else:
            allowed = budget.on_failure()
            assert allowed == (budget.tokens > 5)
        assert 0 <= budget.tokens <= 10


def test_retry_budget_refills_on_success() -> None:
    budget = pacing.RetryBudget(10, 0.5)
    assert [budget.on_failure() for _ in range(6)] == [True] * 4 + [False] * 2
    for _ in range(5):
        budget.on_success()
    assert budget.on_failure() is True


def test_routine_failures_that_spend_their_budget_leave_a_failovers_retries() -> None:
    budgets = pacing.RetryBudgets(20, 0.2)
    routine, health = pacing.RetryClass.ROUTINE, pacing.RetryClass.HEALTH
    # A storm: schedule reads and health polls fail until neither class may retry any more.
    while budgets.on_failure(routine) or budgets.on_failure(health):
        pass
    assert budgets.on_failure(routine) is False
    assert budgets.on_failure(health) is False
    # The failover's first failed read is still retried, and so are the next nine: its class
    # has the whole allowance a single budget used to share with the storm.
    failover = pacing.RetryClass.FAILOVER
    assert [budgets.on_failure(failover) for _ in range(11)] == [True] * 9 + [False] * 2
    # Each class pays only for itself: the failover's failures left the others where they were.
    assert budgets.of(routine).tokens == 0


def test_a_class_is_refilled_by_its_own_successes() -> None:
    budgets = pacing.RetryBudgets(10, 0.5)
    routine, failover = pacing.RetryClass.ROUTINE, pacing.RetryClass.FAILOVER
    for _ in range(6):
        budgets.on_failure(routine)
    assert budgets.of(routine).tokens == 4
    for _ in range(10):
        budgets.on_success(failover)  # successes of another class do not refill this one
    assert budgets.on_failure(routine) is False
    assert budgets.of(routine).tokens == 3
    for _ in range(8):
        budgets.on_success(routine)
    assert budgets.on_failure(routine) is True


@pytest.mark.parametrize(
    ("priority", "expected"),
    [(model.Priority.FAILOVER, pacing.RetryClass.FAILOVER),
     (model.Priority.CAPACITY_CUT, pacing.RetryClass.ROUTINE),
     (model.Priority.STAFFING, pacing.RetryClass.ROUTINE),
     (model.Priority.CALL_RATE, pacing.RetryClass.ROUTINE)],
)  # fmt: skip
def test_a_request_without_a_class_is_classed_by_its_priority(
    priority: model.Priority, expected: pacing.RetryClass
) -> None:
    assert pacing.retry_class_of(priority) is expected


def test_retry_after_jitter_is_small() -> None:
    assert pacing.retry_after_jitter(60, rand=1.0) == 1.0
    assert pacing.retry_after_jitter(1, rand=1.0) == pytest.approx(0.05)
    assert pacing.retry_after_jitter(60, rand=0.0) == 0.0


# --- sliding log ---------------------------------------------------------------------------


@given(st.lists(st.floats(0, 5), min_size=1, max_size=60), st.integers(1, 10))
def test_sliding_log_never_exceeds_its_limit_in_any_window(gaps: list[float], limit: int) -> None:
    log = pacing.SlidingLog(10.0)
    now = 0.0
    sent: list[float] = []
    for gap in gaps:
        now += gap
        when = log.next_free(now, limit)
        assert when is not None  # nothing in flight: a slot always frees eventually
        now = max(now, when)
        log.on_send()
        log.on_done(now)  # answered at once
        sent.append(now)
    for t in sent:
        assert sum(1 for s in sent if t <= s < t + 10.0) <= limit


# --- the pacer against the server models ----------------------------------------------------


def drive(
    model: str,
    *,
    n: int,
    quota: int,
    window: float,
    headers: bool,
    latency: float,
    workers: int,
    told: int | None = None,
    known: int | None = None,
) -> tuple[int, float]:
    """Send n requests through a Pacer to a server model; (429s, makespan). The pacer is told
    ``told`` (default: the server's quota), then ``known`` by ``set_quota`` when given."""
    server = ratelimit.make_model(model, quota, window)  # type: ignore[arg-type]
    pacer = pacing.Pacer(pacing.PacingConfig(quota=told or quota, window_s=window), now=0.0)
    if known is not None:
        pacer.set_quota(known, now=0.0)
    now = 0.0
    done = 0
    rejected = 0
    in_flight: list[tuple[float, int, int, ratelimit.Decision]] = []  # (arrival, seq, tie, d)
    tie = 0
    first = None
    while done < n:
        when = pacer.next_send_at(now) if len(in_flight) < workers else None
        if when is not None and when <= now and done + len(in_flight) < n:
            seq = pacer.on_send(now)
            first = now if first is None else first
            decision = server.hit(now + latency / 2)
            tie += 1
            heapq.heappush(in_flight, (now + latency, seq, tie, decision))
            continue
        candidates = [t for t in (when,) if t is not None and t > now]
        if in_flight:
            candidates.append(in_flight[0][0])
        now = max(now, min(candidates))
        while in_flight and in_flight[0][0] <= now:
            t_recv, seq, _, d = heapq.heappop(in_flight)
            hdr = (
                pacing.RateHeaders(count=d.count, allowed=d.allowed, reset_s=d.reset)
                if headers
                else None
            )
            status = 200 if d.admitted else 429
            pacer.on_response(seq, t_recv=t_recv, status=status, headers=hdr)
            if d.admitted:
                done += 1
            else:
                rejected += 1
                pacer.on_throttled(
                    now=t_recv,
                    retry_after_s=d.retry_after,
                    jitter_s=0.0,
                    with_headers=headers,
                    seq=seq,
                )
    return rejected, now - (first or 0.0)


@pytest.mark.parametrize("model", ["fixed-window", "token-bucket", "counts-rejected"])
@pytest.mark.parametrize("n", [120, 260, 333])
def test_with_headers_no_429_and_near_optimal(model: str, n: int) -> None:
    rejected, span = drive(model, n=n, quota=50, window=1.0, headers=True, latency=0.002, workers=8)
    optimal = ratelimit.optimal_duration(model, n, 50, 1.0)  # type: ignore[arg-type]
    assert rejected == 0
    assert span <= 1.05 * optimal + 0.05


@pytest.mark.parametrize("model", ["fixed-window", "token-bucket", "counts-rejected"])
@pytest.mark.parametrize("n", [260, 333])
def test_without_headers_at_most_one_probe_429_and_near_optimal(model: str, n: int) -> None:
    rejected, span = drive(
        model, n=n, quota=50, window=1.0, headers=False, latency=0.002, workers=8
    )
    optimal = ratelimit.optimal_duration(model, n, 50, 1.0)  # type: ignore[arg-type]
    assert rejected <= 1
    assert span <= 1.15 * optimal + 0.05


@settings(max_examples=30, deadline=None)
@given(
    model=st.sampled_from(["fixed-window", "token-bucket", "counts-rejected"]),
    n=st.integers(1, 200),
    quota=st.integers(3, 40),
    latency=st.floats(0.0001, 0.05),
    workers=st.integers(1, 12),
)
def test_with_headers_the_pacer_is_never_refused(
    model: str, n: int, quota: int, latency: float, workers: int
) -> None:
    rejected, _ = drive(
        model, n=n, quota=quota, window=2.0, headers=True, latency=latency, workers=workers
    )
    assert rejected == 0


def test_a_429_pauses_until_retry_after_plus_jitter() -> None:
    pacer = pacing.Pacer(pacing.PacingConfig(quota=10, window_s=60), now=0.0)
    seq = pacer.on_send(0.0)
    pacer.on_response(seq, t_recv=0.1, status=429, headers=None)
    until = pacer.on_throttled(now=0.1, retry_after_s=42, jitter_s=0.5, with_headers=False, seq=seq)
    assert until == pytest.approx(42.6)
    assert pacer.next_send_at(10.0) == pytest.approx(42.6)
    assert pacer.assumed_quota == pytest.approx(7.0)  # multiplicative decrease


def test_aimd_holds_a_limit_it_was_shown_then_grows_back_one_step_per_clean_window() -> None:
    config = pacing.PacingConfig(quota=100, window_s=10, reprobe_windows=30)
    pacer = pacing.Pacer(config, now=0.0)
    pacer.on_throttled(now=0.0, retry_after_s=1, jitter_s=0, with_headers=False)
    assert pacer.assumed_quota == pytest.approx(70)
    t = 0.0
    for _ in range(29):  # the limit the server just showed holds for reprobe_windows
        t += 10.0
        seq = pacer.on_send(t)
        pacer.on_response(seq, t_recv=t, status=200, headers=None)
    assert pacer.assumed_quota == pytest.approx(70)
    for _ in range(7):
        t += 10.0
        seq = pacer.on_send(t)
        pacer.on_response(seq, t_recv=t, status=200, headers=None)
    assert pacer.assumed_quota == pytest.approx(100)


def test_a_429_under_the_log_learns_what_the_server_admitted() -> None:
    # Told 100 per window, the server admits 30: one 429 teaches the 30.
    pacer = pacing.Pacer(pacing.PacingConfig(quota=100, window_s=10), now=0.0)
    for _ in range(30):
        assert pacer.next_send_at(0.0) == 0.0
        seq = pacer.on_send(0.0)
        pacer.on_response(seq, t_recv=0.0, status=200, headers=None)
    seq = pacer.on_send(0.0)
    pacer.on_response(seq, t_recv=0.0, status=429, headers=None)
    pacer.on_throttled(now=0.0, retry_after_s=10, jitter_s=0, with_headers=False, seq=seq)
    assert pacer.assumed_quota == pytest.approx(30)


def test_beyond_what_the_server_admitted_requests_go_one_at_a_time() -> None:
    pacer = pacing.Pacer(pacing.PacingConfig(quota=100, window_s=10), now=0.0)
    first = pacer.on_send(0.0)
    assert pacer.next_send_at(0.0) is None  # nothing proven yet: wait for the answer
    pacer.on_response(first, t_recv=0.1, status=200, headers=None)
    seqs = []
    for _ in range(3):  # serially, each once the previous one was answered
        assert pacer.next_send_at(0.2) == 0.2
        seqs.append(pacer.on_send(0.2))
        assert pacer.next_send_at(0.2) is None
        pacer.on_response(seqs[-1], t_recv=0.2, status=200, headers=None)
    # A window later the server has shown 4 in one window: 4 may be in flight at once.
    for _ in range(4):
        assert pacer.next_send_at(10.5) == 10.5
        pacer.on_send(10.5)
    assert pacer.next_send_at(10.5) is None


def test_headers_spend_exactly_what_remains_then_wait_for_the_reset() -> None:
    pacer = pacing.Pacer(pacing.PacingConfig(quota=300, window_s=60, reserve=0), now=0.0)
    seq = pacer.on_send(0.0)
    pacer.on_response(seq, t_recv=0.01, status=200, headers=pacing.RateHeaders(298, 300, 30))
    assert pacer.header_available(0.02) == 2
    for _ in range(2):
        assert pacer.next_send_at(0.02) == 0.02
        pacer.on_send(0.02)
    # The server counted requests this pacer never sent: only the reset can help now.
    assert pacer.next_send_at(0.02) == pytest.approx(30.01)
    pacer.on_response(2, t_recv=0.03, status=200, headers=pacing.RateHeaders(300, 300, 30))
    pacer.on_response(3, t_recv=0.03, status=200, headers=pacing.RateHeaders(300, 300, 30))
    # Spent. In a first window, what the count holds beyond our sends may as well be another
    # consumer's: the earliest reset an answer promised (30.01, a bound never early) ends it.
    assert pacer.next_send_at(0.04) == pytest.approx(30.01)
    assert pacer.header_available(30.03) == 300
    assert pacer.next_send_at(30.03) == 30.03


def drive_shared(
    *, n: int, quota: int, offset: float, latency: float, workers: int = 8
) -> tuple[int, dict[int, int], float, float]:
    """Send n requests through a Pacer (headers on) to a fixed-window server whose budget
    another consumer shares: in its own window k (``offset`` after ours) it sends 10-40 % of
    the quota evenly spread, and retries a refused request 1/12 of a window later (a script's
    5 s retry at 60 s windows). Returns (our 429s, its refusals per server window, our
    makespan, the optimum that leaves it all it asks)."""
    window = 1.0
    server = ratelimit.make_model("fixed-window", quota, window)

    def demand(k: int) -> int:
        return max(1, round(quota * (0.25 + 0.15 * math.sin(2 * math.pi * k / 7))))

    config = pacing.PacingConfig(quota=quota, window_s=window)
    pacer = pacing.Pacer(config, now=0.0)
    events: list[tuple[float, int, str, int]] = []  # (time, tie, kind, seq)
    ties = itertools.count()
    for k in range(40):
        for j in range(demand(k)):
            heapq.heappush(events, (offset + (k + j / demand(k)) * window, next(ties), "other", 0))
    refused: collections.Counter[int] = collections.Counter()
    rejected = done = in_flight = 0
    left, now = n, 0.0
    decisions: dict[int, ratelimit.Decision] = {}
    heapq.heappush(events, (0.0, next(ties), "wake", 0))
    while done < n:
        now, _, kind, seq = heapq.heappop(events)
        if kind == "other":
            decision = server.hit(now)
            if not decision.admitted:
                refused[math.floor(now / window)] += 1  # the server's t0 is our first send
                heapq.heappush(events, (now + window / 12, next(ties), "other", 0))
            continue
        if kind == "arrive":
            decisions[seq] = server.hit(now)
            heapq.heappush(events, (now + latency / 2, next(ties), "answer", seq))
            continue
        if kind == "answer":
            d = decisions.pop(seq)
            in_flight -= 1
            hdr = pacing.RateHeaders(count=d.count, allowed=d.allowed, reset_s=d.reset)
            pacer.on_response(seq, t_recv=now, status=200 if d.admitted else 429, headers=hdr)
            if d.admitted:
                done += 1
            else:
                rejected += 1
                left += 1
                pacer.on_throttled(
                    now=now, retry_after_s=d.retry_after, jitter_s=0.0, with_headers=True, seq=seq
                )
        while left and in_flight < workers:
            when = pacer.next_send_at(now, keep_reserve=True)
            if when is None:
                break
            if when > now:
                heapq.heappush(events, (when, next(ties), "wake", 0))
                break
            left -= 1
            in_flight += 1
            heapq.heappush(events, (now + latency / 2, next(ties), "arrive", pacer.on_send(now)))
    # The fair optimum: window k leaves the backlog what the other consumer does not ask for.
    need, k = n, 0
    while need > quota - demand(k):
        need -= quota - demand(k)
        k += 1
    return rejected, dict(refused), now, float(k)


@pytest.mark.parametrize("offset", [0.0, 0.3, 0.65, 0.8])
@pytest.mark.parametrize("latency", [0.001, 0.003, 0.008])
def test_sharing_a_budget_neither_consumer_is_refused_once_the_other_shows(
    offset: float, latency: float
) -> None:
    rejected, refused, span, optimal = drive_shared(
        n=780, quota=150, offset=offset, latency=latency
    )
    assert rejected == 0
    # Our bursts may fill the windows before our answers show it (the first, and the second
    # when it starts after our first burst), and its retries of those refusals spill into the
    # next; from then on it finds all it asks for.
    assert {k: v for k, v in refused.items() if k >= 3} == {}
    # The goal with headers: within 5 % of the optimum that leaves it everything. That
    # optimum has 7 requests to spare in all, so a window that ends with a few of its slots
    # unused (a stale count, the failover reserve, the margin on its pace) costs a window more.
    assert span <= 1.05 * optimal


def test_another_consumer_is_left_a_fair_share_until_its_pace_is_known() -> None:
    config = pacing.PacingConfig(quota=300, window_s=60, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    pacer.on_response(
        pacer.on_send(0.0), t_recv=0.01, status=200, headers=pacing.RateHeaders(1, 300, 60)
    )
    # Nothing foreign at the window's first answer; then the count runs 10 ahead of our sends.
    pacer.on_response(
        pacer.on_send(0.01), t_recv=0.02, status=200, headers=pacing.RateHeaders(12, 300, 60)
    )
    assert pacer.header_available(0.02) == 288
    # Its pace is not known yet: half the budget's pace (2.5/s) plus 30 % is left to it until
    # the window ends (60.01), and two requests for refreshing the count; the rest goes now.
    sent = 0
    while pacer.next_send_at(0.02, keep_reserve=True) == 0.02:
        pacer.on_send(0.02)
        sent += 1
    left_to_it = 2.5 * 1.3 * (60.01 - 0.02)
    assert sent == 288 - math.ceil(left_to_it + 3) + 1
    # A failover write does not wait for that.
    assert pacer.next_send_at(0.02) == 0.02


def test_a_burst_at_the_window_start_is_not_taken_for_the_other_consumers_pace() -> None:
    config = pacing.PacingConfig(quota=100, window_s=1.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    answer = _answerer(pacer)
    answer(0.0, 0.01, count=1)
    answer(0.01, 0.02, count=3)  # one beyond ours: someone else
    # A new window: 30 of its requests at once (retries of those the last one refused), then
    # one every 0.05 s (20/s).
    answer(1.001, 1.002, count=1)
    answer(1.02, 1.03, count=33)
    for i in range(1, 9):
        t = 1.1 + 0.05 * i
        answer(t, t + 0.001, count=33 + i + i)  # ours and its one in each step
    pace, margin = pacer.other.pace(100)
    # Counted from the first answer a tenth of the window in (1.151): its 7 requests in the
    # 0.35 s after (not the 30 at the start: 300/s), weighed against half the budget's pace
    # (50/s: no earlier window showed one) as if seen for 0.2 s.
    assert pace == pytest.approx((7 + 50 * 0.2) / (0.35 + 0.2))
    assert margin < 0.3


def test_the_first_burst_leaves_a_consumer_that_starts_with_us_its_share() -> None:
    config = pacing.PacingConfig(quota=100, window_s=1.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    answer = _answerer(pacer)
    # The first answer counts only ours. Another consumer that starts with us would show only
    # in the answers after our first burst: for a tenth of a window it is presumed, and half
    # the budget's pace (50/s) plus 30 % until the reset (1.01) is left to it, and two
    # requests kept for refreshing the count.
    answer(0.0, 0.01, count=1)
    burst = []
    while pacer.next_send_at(0.01, keep_reserve=True) == 0.01 and len(burst) < 100:
        burst.append(pacer.on_send(0.01))
    assert len(burst) == 99 - math.ceil(50 * 1.3 * 1.0 + 3) + 1
    for count, seq in enumerate(burst, start=2):
        pacer.on_response(seq, t_recv=0.02, status=200, headers=pacing.RateHeaders(count, 100, 1))
    # A tenth of a window after the first answer, the answers showed no one else: the rest
    # of the budget goes at once.
    rest = 0
    while pacer.next_send_at(0.12, keep_reserve=True) == 0.12 and rest < 100:
        pacer.on_send(0.12)
        rest += 1
    assert 1 + len(burst) + rest == 100


def test_a_count_beyond_ours_in_the_first_window_leaves_another_consumer_its_share() -> None:
    config = pacing.PacingConfig(quota=100, window_s=1.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    answer = _answerer(pacer)
    # The very first answer counts one request that was not ours: another consumer's first,
    # or a restart's last (it cannot tell yet). Nothing of the budget has a past to compare.
    answer(0.0, 0.01, count=2)
    # Half a window later (the first tenth, when one is presumed anyway, is over) the count is
    # still one beyond ours: no growth, but the first window has no past that the offset could
    # be a constant of.
    answer(0.49, 0.5, count=3)
    sent = 0
    while pacer.next_send_at(0.5, keep_reserve=True) == 0.5 and sent < 100:
        pacer.on_send(0.5)
        sent += 1
    # Its pace unknown, half the budget's pace (50/s) plus 30 % until the reset (1.01) is left
    # to it, and two requests are kept for refreshing the count: not all 97 that remain go.
    assert sent == 97 - math.ceil(50 * 1.3 * (1.01 - 0.5) + 3) + 1
    # A failover write does not wait for that.
    assert pacer.next_send_at(0.5) == 0.5


def test_requests_in_flight_cannot_hide_another_consumer_from_the_sliding_log() -> None:
    config = pacing.PacingConfig(quota=10, window_s=1.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    # The first answer counts someone else's request too: 2 for our 1.
    pacer.on_response(
        pacer.on_send(0.0), t_recv=0.01, status=200, headers=pacing.RateHeaders(2, 10, 1)
    )
    sent = [pacer.on_send(0.01) for _ in range(8)]
    for count, seq in enumerate(sent[:7], start=3):
        pacer.on_response(seq, t_recv=0.02, status=200, headers=pacing.RateHeaders(count, 10, 1))
    # 9 counted, ours still in flight makes 10 at most: the window is spent. The count (9) is
    # no more than our own sends in the last second (9, one in flight), but that no longer
    # means the sliding log accounts for everything: a 10th of ours would be refused, and its
    # Retry-After would pause every request. Nothing goes before the window resets.
    when = pacer.next_send_at(0.02)
    assert when is not None
    assert when >= 1.01


def test_a_count_ahead_of_our_answered_requests_is_not_explained_by_the_log() -> None:
    config = pacing.PacingConfig(quota=10, window_s=1.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    sent = [pacer.on_send(0.0) for _ in range(9)]
    # Someone else spent one: 7 answers count 2..8, two of ours still on their way. The count
    # never exceeds our sends, so nothing shows who the extra one was: two of ours not yet
    # counted, or one of them and one of someone else's.
    for count, seq in enumerate(sent[:7], start=2):
        pacer.on_response(seq, t_recv=0.01, status=200, headers=pacing.RateHeaders(count, 10, 1))
    # By the headers nothing is left (10 - 8, less the 2 in flight); the sliding log of our
    # own requests (9 in the last second) would vouch for a 10th, which the server refuses.
    when = pacer.next_send_at(0.02)
    assert when is not None
    assert when >= 1.01


def _answerer(pacer: pacing.Pacer) -> Callable[..., None]:
    def answer(
        t_send: float, t_recv: float, *, count: int, allowed: int = 100, reset: float = 1
    ) -> None:
        seq = pacer.on_send(t_send)
        pacer.on_response(
            seq, t_recv=t_recv, status=200, headers=pacing.RateHeaders(count, allowed, reset)
        )

    return answer


def test_a_count_that_went_down_shows_the_reset_even_with_requests_in_flight() -> None:
    pacer = pacing.Pacer(pacing.PacingConfig(quota=10, window_s=1, reserve=0), now=0.0)
    sent = [pacer.on_send(0.0) for _ in range(8)]
    for count, seq in enumerate(sent, start=1):
        pacer.on_response(seq, t_recv=0.01, status=200, headers=pacing.RateHeaders(count, 10, 1))
    late, last = pacer.on_send(0.02), pacer.on_send(0.02)
    assert pacer.next_send_at(0.02) != 0.02  # the window is spent
    # The later send's answer shows a fresh window while the earlier one is still on its way.
    pacer.on_response(last, t_recv=1.005, status=200, headers=pacing.RateHeaders(1, 10, 1))
    assert pacer.header_available(1.005) == 8
    assert pacer.next_send_at(1.005) == 1.005
    assert late < last


def test_sharing_a_spent_window_waits_for_its_earliest_promised_reset_a_window_apart() -> None:
    config = pacing.PacingConfig(quota=10, window_s=1.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    answers = [(1, 0.01), (5, 0.02), (10, 0.5)]  # the count runs ahead of our 3 sends
    for count, t_recv in answers:
        pacer.on_response(
            pacer.on_send(t_recv - 0.005),
            t_recv=t_recv,
            status=200,
            headers=pacing.RateHeaders(count, 10, 1),
        )
    # Spent: the earliest promised reset (0.01 + 1), not the freshest one (0.5 + 1).
    assert pacer.next_send_at(0.6) == pytest.approx(1.01)
    probe = pacer.on_send(1.01)
    pacer.on_response(probe, t_recv=1.3, status=200, headers=pacing.RateHeaders(9, 10, 1))
    # A fresh window (its count went down), 8 already spent by the other consumer: the last
    # one is left to it, and this window ends at the last one's end plus the window (2.01),
    # not at this late answer's 1.3 + 1. It looks again when the last stretch of the window
    # begins (1.96, when a failover reserve would be released), and again nothing is spare.
    assert pacer.next_send_at(1.3, keep_reserve=True) == pytest.approx(1.96)
    assert pacer.next_send_at(1.96, keep_reserve=True) == pytest.approx(2.01)


# --- another consumer of the same budget: one rule at a time ----------------------------------
# drive_shared above tests these rules together; each test below fails when its rule alone is
# removed from pacing.py.


@pytest.mark.parametrize(("fraction", "expected"), [(0.02, 102), (0.2, 87)])
def test_the_failover_reserve_is_kept_inside_the_margin_left_to_another_consumer(
    fraction: float, expected: int
) -> None:
    config = pacing.PacingConfig(
        quota=300, window_s=60, reserve=0, failover_reserve_fraction=fraction
    )
    pacer = pacing.Pacer(config, now=0.0)
    answer = _answerer(pacer)
    answer(0.0, 0.01, count=1, allowed=300, reset=60)
    # A consumer that starts with us is presumed, its pace unknown: half the budget's pace
    # (2.5/s) until the reset (60.01) is left to it, 150, and a margin of 30 %, 45 more. The
    # failover reserve (6 of 300; 60 with a fifth) is kept from routine work as well, but
    # inside that margin: either serves the other's need. Of the 299 that remain, 2 more are
    # kept for refreshing the count and the rest goes at once: 299 - (150 + 45 + 2) = 102, or
    # 299 - (150 + 60 + 2) = 87 when the reserve is the larger. On top of the margin, the
    # reserve would leave its slots of every shared window unused (96 and 42 would go).
    sent = 0
    while pacer.next_send_at(0.01, keep_reserve=True) == 0.01 and sent < 300:
        pacer.on_send(0.01)
        sent += 1
    assert sent == expected
    # A failover write takes from the margin.
    assert pacer.next_send_at(0.01) == 0.01


def test_a_backlog_after_a_quiet_spell_leaves_what_the_other_consumer_spent_meanwhile() -> None:
    config = pacing.PacingConfig(quota=300, window_s=60, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    answer = _answerer(pacer)
    answer(0.0, 0.01, count=1, allowed=300, reset=60)
    answer(6.0, 6.01, count=12, allowed=300, reset=54)  # 10 beyond ours: someone else
    assert pacer.header_available(6.01) == 288
    # Nothing of ours for 24 s; then a backlog. Our view of the count is 24 s old, and the other
    # consumer kept spending meanwhile: what it spent since is counted now, so an underestimate
    # of it is a 429 of ours. At its expected pace (2.5/s: nothing seen since its pace is
    # counted, half the budget's as the prior) with the margin (30 %), 3.25/s from the freshest
    # answer (6.01) to the reset (60.01) is left to it, and 2 requests for refreshing the count.
    sent = 0
    while pacer.next_send_at(30.0, keep_reserve=True) == 30.0 and sent < 300:
        pacer.on_send(30.0)
        sent += 1
    assert sent == 288 - math.ceil(3.25 * (60.01 - 6.01) + 3) + 1  # 110
    # Not counting the 24 s (78 requests) would send 188; counting them without the margin, 128.


def test_what_a_consumer_that_stopped_leaves_is_found_by_refreshing_the_count() -> None:
    config = pacing.PacingConfig(quota=300, window_s=60, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    answer = _answerer(pacer)
    answer(0.0, 0.01, count=1, allowed=300, reset=60)
    # A tenth of a window in, the other consumer has spent 250 (a burst at the window's start);
    # then it spends nothing more. 48 remain: by its expected pace (2.5/s, before its pace in
    # this window is known) it would spend 135 more until the reset (60.01), so none is spare.
    answer(6.0, 6.01, count=252, allowed=300, reset=54)
    sent: list[float] = []
    now, count = 6.01, 252
    while len(sent) < 3:
        when = pacer.next_send_at(now, keep_reserve=True)
        assert when is not None
        count += 1
        answer(when, when + 0.01, count=count, allowed=300, reset=60.0 - when)
        sent.append(when)
        now = when + 0.01
    # One request refreshes the count a tenth of a window after the freshest answer while the
    # count alone leaves room, its pace in this window not yet known (12.01, 18.02); then
    # while its pace less the margin does (seen for a fifth of a window: 0 in 12 s, weighed
    # 1.25/s, margin 20 %: 42 of the 46 until the reset; by its pace alone, 52): 24.03. Without
    # refreshing, nothing would go before the window's last stretch (57.01), and what it left
    # would be lost.
    assert sent == pytest.approx([12.01, 18.02, 24.03])


def test_the_last_requests_of_a_backlog_go_a_twentieth_of_a_window_after_the_count() -> None:
    config = pacing.PacingConfig(quota=300, window_s=60, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    answer = _answerer(pacer)
    answer(0.0, 0.01, count=2, allowed=300, reset=60)  # one not ours: someone else
    burst = []
    while pacer.next_send_at(0.01, keep_reserve=True) == 0.01 and len(burst) < 300:
        burst.append(pacer.on_send(0.01))
    # Its pace unknown, 2.5/s plus 30 % until the reset (60.01) is left to it, and 2 of the 298
    # that remain are kept for refreshing the count: 101 go.
    assert len(burst) == 298 - math.ceil(2.5 * 1.3 * 60 + 3) + 1
    for count, seq in enumerate(burst, start=3):
        pacer.on_response(seq, t_recv=0.02, status=200, headers=pacing.RateHeaders(count, 300, 60))
    # The backlog's last two requests are the two kept, spare even with the margin: only what
    # the answers show can free more, so the first goes a twentieth of a window after the
    # freshest answer (3.02), not a tenth (6.02). Its answer shows that the other consumer
    # spent nothing since, and the last one goes at once.
    first = pacer.next_send_at(0.02, keep_reserve=True)
    assert first == pytest.approx(0.02 + 60 / 20)
    answer(first, first + 0.01, count=len(burst) + 3, allowed=300, reset=60.0 - first)
    assert pacer.next_send_at(first + 0.01, keep_reserve=True) == pytest.approx(first + 0.01)


def test_a_rising_pace_is_not_met_with_the_pace_of_a_window_it_has_outgrown() -> None:
    config = pacing.PacingConfig(quota=100, window_s=1.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    answer = _answerer(pacer)
    # A window our answers saw whole: the other consumer at 10/s (2 by 0.21, 9 by 0.91).
    answer(0.0, 0.01, count=1)
    answer(0.2, 0.21, count=2 + 2)
    answer(0.9, 0.91, count=3 + 9)
    # The next (its count went down): it rises to 40/s, and our answers see only 0.3 s of it.
    answer(1.01, 1.02, count=1)
    answer(1.2, 1.21, count=2 + 8)
    answer(1.5, 1.51, count=3 + 20)
    # The one after: the window seen for less than half passes on its estimate (its 12 in
    # 0.3 s weighed against the 10/s before as if seen for 0.2 s: 28/s), not the pace of the
    # window before it (10/s).
    answer(2.01, 2.02, count=1)
    assert pacer.other.pace(100)[0] == pytest.approx((12 + 10 * 0.2) / (0.3 + 0.2))
    sent = 0
    while pacer.next_send_at(2.02, keep_reserve=True) == 2.02 and sent < 100:
        pacer.on_send(2.02)
        sent += 1
    # 28/s plus 30 % until the reset (3.01) is left to it, and 2 kept for refreshing: 60 go,
    # not 84 (which would leave a consumer asking 40/s 15 of this window).
    assert sent == 99 - math.ceil(28 * 1.3 * 0.99 + 3) + 1


def test_our_answers_from_before_the_window_cannot_hide_another_consumer_from_the_log() -> None:
    config = pacing.PacingConfig(quota=10, window_s=1.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    # The server counts 10 in each window from 0: five of ours at the end of the first.
    late = [pacer.on_send(0.955) for _ in range(5)]
    for count, seq in enumerate(late, start=1):
        pacer.on_response(seq, t_recv=0.96, status=200, headers=pacing.RateHeaders(count, 10, 0.04))
    # In the next, another consumer's 2 requests come first, then 8 of ours: 6 answers count 3
    # to 8 while two of ours are on their way, so the count never shows more than our sends.
    sent = [pacer.on_send(1.002) for _ in range(8)]
    for count, seq in enumerate(sent[:6], start=3):
        pacer.on_response(seq, t_recv=1.01, status=200, headers=pacing.RateHeaders(count, 10, 0.99))
    # Spent (10 - 8, less the 2 in flight). Our 11 answers of the last second would explain the
    # count, and the log would free a slot a window after the first of them (1.96): inside the
    # server's window, which holds 10 — refused. Only the 6 answered since the window began
    # (at 1.0, a window before its promised end) count, and they do not explain it.
    assert pacer.next_send_at(1.01) == pytest.approx(2.0)


def test_our_requests_answered_after_the_reset_let_the_log_vouch_before_a_late_reset() -> None:
    config = pacing.PacingConfig(quota=10, window_s=10.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    answer = _answerer(pacer)
    # The server counts 10 in each window of 10 s from 0; its reset is rounded up to seconds.
    answer(0.0, 0.01, count=1, allowed=10, reset=10)
    for count in (2, 3, 4):
        answer(9.5, 9.51, count=count, allowed=10, reset=1)
    # Three of ours go just after the server's window ended (10.0), before its late promised
    # reset (10.51), when this token charges them to the new window as maybe counted there.
    carried = [pacer.on_send(10.45) for _ in range(3)]
    assert pacer.next_send_at(10.55) == 10.55
    for count, seq in enumerate(carried, start=1):
        pacer.on_response(seq, t_recv=10.6, status=200, headers=pacing.RateHeaders(count, 10, 10))
    for count in range(4, 11):
        answer(10.7, 10.8, count=count, allowed=10, reset=10)
    # Spent. All 10 counted are ours answered since the window began (10.01 at the latest),
    # the three carried ones too: the log vouches for a slot a window after the fourth of its
    # answers (20.6), not only at the freshest answer's late reset (20.8). The server's window
    # began at 20.0.
    assert pacer.next_send_at(10.8) == pytest.approx(20.6)


def test_a_spent_budget_whose_answers_promise_no_reset_is_paced_by_the_log() -> None:
    config = pacing.PacingConfig(quota=10, window_s=1.0, reserve=0, failover_reserve_fraction=0)
    pacer = pacing.Pacer(config, now=0.0)
    # Answers that promise no reset (0): the count says what remains, never when it returns.
    for i in range(10):
        now = 0.1 * i
        assert pacer.next_send_at(now) == now
        seq = pacer.on_send(now)
        headers = pacing.RateHeaders(i + 1, 10, 0)
        pacer.on_response(seq, t_recv=now + 0.01, status=200, headers=headers)
    # Spent, nothing in flight, no reset to wait for. While no answer has promised the window's
    # end, our answers of the last window explain the count: the log vouches for a slot a
    # window after the first of them. Were none counted, the token would wait for an answer
    # that never comes, and never send again.
    assert pacer.in_flight == 0
    assert pacer.next_send_at(0.92) == pytest.approx(1.01)


# --- the quota to pace by: configured, or the org's limit when lower --------------------------


@pytest.mark.parametrize(
    ("per_minute", "window_s", "expected"),
    [(300, 60.0, 300), (180, 60.0, 180), (5400, 1.0, 90), (3000, 1.0, 50), (9000, 0.5, 75),
     (90000, 0.1, 150), (59, 1.0, 1), (0, 60.0, 1), (301, 30.0, 150)],
)  # fmt: skip
def test_a_per_minute_limit_as_requests_per_window(
    per_minute: int, window_s: float, expected: int
) -> None:
    assert pacing.per_window(per_minute, window_s) == expected


def test_the_org_limit_lowers_the_configured_quota_and_says_so() -> None:
    choice = pacing.QuotaChoice(configured=300, window_s=60.0, org_per_minute=180)
    assert (choice.quota, choice.org, choice.lowered) == (180, 180, True)
    assert choice.sentence() == (
        "The org's rate limit per token (client.credentials.token.rate.per.minute) is 180"
        " requests per minute, below the configured rate_limit.requests_per_minute (300 per"
        " minute); syncd paces each token at 180 per minute."
    )
    # Time-scaled (the demo and benchmarks: 150 per 1 s window stands for 300/min).
    scaled = pacing.QuotaChoice(configured=150, window_s=1.0, org_per_minute=5400)
    assert (scaled.quota, scaled.lowered) == (90, True)
    assert scaled.sentence().endswith(
        "is 5400 requests per minute, below the configured rate_limit.requests_per_minute (150"
        " per 1 s window, 9000 per minute); syncd paces each token at 90 per 1 s window, 5400"
        " per minute."
    )


def test_a_higher_org_limit_never_raises_the_quota_but_is_reported() -> None:
    choice = pacing.QuotaChoice(configured=300, window_s=60.0, org_per_minute=600)
    assert (choice.quota, choice.lowered) == (300, False)
    assert choice.sentence() == (
        "The org's rate limit per token (client.credentials.token.rate.per.minute) is 600"
        " requests per minute, above the configured rate_limit.requests_per_minute (300 per"
        " minute); syncd keeps to the configured quota: raise it to spend more."
    )
    same = pacing.QuotaChoice(configured=300, window_s=60.0, org_per_minute=300)
    assert (same.quota, same.lowered) == (300, False)
    assert same.sentence().endswith("is 300 requests per minute, the configured 300 per minute;"
                                    " syncd paces each token at it.")  # fmt: skip


def test_an_unknown_org_limit_keeps_the_configured_quota_and_says_why() -> None:
    choice = pacing.QuotaChoice(
        configured=300, window_s=60.0, org_per_minute=None, unknown_reason="HTTP 403"
    )
    assert (choice.quota, choice.org, choice.lowered) == (300, None, False)
    assert choice.sentence() == (
        "The org's rate limit per token (client.credentials.token.rate.per.minute) is unknown"
        " (HTTP 403); syncd paces each token at the configured 300 per minute."
    )


@pytest.mark.parametrize("model", ["fixed-window", "token-bucket", "counts-rejected"])
def test_a_pacer_told_too_much_is_refused_until_it_is_given_the_known_quota(model: str) -> None:
    """The pacer is told 50 per window, the server allows 30, no headers: set_quota(30) spares
    the 429 that learning the lower quota costs (a fixed window still refuses the refill probe)."""
    run = functools.partial(
        drive, model, n=200, quota=30, window=1.0, headers=False, latency=0.002, workers=8,
        told=50,
    )  # fmt: skip
    told_rejected, _ = run()
    known_rejected, span = run(known=30)
    probe = 0 if model == "token-bucket" else 1
    assert told_rejected > probe
    assert known_rejected <= probe
    assert span <= 1.15 * ratelimit.optimal_duration(model, 200, 30, 1.0) + 0.05  # type: ignore[arg-type]


# --- the token's limit or an endpoint's (no headers) ----------------------------------------


def evidence_after(answers: list[tuple[str, float]]) -> pacing.EndpointEvidence:
    """Evidence with one admitted answer per (endpoint, time), numbered in order."""
    evidence = pacing.EndpointEvidence(10.0)
    for seq, (endpoint, t_recv) in enumerate(answers, start=1):
        evidence.on_answer(endpoint, seq=seq, t_recv=t_recv, admitted=True)
    return evidence


def test_an_endpoint_refused_again_at_its_level_while_the_token_had_room_is_established() -> None:
    evidence = evidence_after([("GET a", 0.0)] * 40 + [("PATCH b", 20.0)] * 5 + [("GET a", 20.0)])
    # A first refusal: paced at its 5, the token's quota kept, the token careful.
    verdict = evidence.on_refused("PATCH b", seq=47, now=20.0, in_flight=0)
    assert verdict == pacing.Verdict(blame="unsure", endpoint="PATCH b", level=5)
    # Refused again at about that level while the token had admitted far less than the 41 it
    # has shown in a window: established, its 429s pause only it.
    for seq in range(48, 52):
        evidence.on_answer("PATCH b", seq=seq, t_recv=35.0, admitted=True)
    again = evidence.on_refused("PATCH b", seq=52, now=35.0, in_flight=0)
    assert again == pacing.Verdict(blame="endpoint", endpoint="PATCH b", level=4, established=True)


def test_a_first_refusal_at_the_tokens_most_is_unsure_a_second_elsewhere_is_the_tokens() -> None:
    evidence = evidence_after([("GET a", 0.0)] * 30 + [("PUT a", 0.0)] * 20)
    first = evidence.on_refused("GET a", seq=51, now=0.0, in_flight=0)
    assert first == pacing.Verdict(blame="unsure", endpoint="GET a", level=30)
    assert evidence.limit("GET a") is not None
    second = evidence.on_refused("PUT a", seq=52, now=11.0, in_flight=0)
    assert second == pacing.Verdict(blame="token", dropped=("GET a",))
    assert evidence.limit("GET a") is None


def test_an_endpoint_refused_below_its_level_while_the_token_is_at_its_most_is_the_tokens() -> None:
    evidence = evidence_after([("GET a", 0.0)] * 30 + [("PUT a", 0.0)] * 20)
    evidence.on_refused("GET a", seq=51, now=0.0, in_flight=0)
    # Long after (the first refusal is forgotten), the token at its 50 again, GET at 20 only.
    later = evidence
    t = 400.0
    for seq in range(60, 110):
        later.on_answer("GET a" if seq < 80 else "PUT a", seq=seq, t_recv=t, admitted=True)
    verdict = later.on_refused("GET a", seq=110, now=t, in_flight=0)
    assert verdict == pacing.Verdict(blame="token", dropped=("GET a",))


def refused_unsure(pacer: pacing.Pacer, admitted: int, now: float) -> None:
    """``admitted`` requests admitted at ``now``, then one refused, blamed "unsure"."""
    for _ in range(admitted):
        pacer.on_response(pacer.on_send(now), t_recv=now, status=200, headers=None)
    seq = pacer.on_send(now)
    pacer.on_response(seq, t_recv=now, status=429, headers=None)
    pacer.on_throttled(
        now=now, retry_after_s=1, jitter_s=0, with_headers=False, seq=seq, blame="unsure"
    )


def test_the_pacer_keeps_its_quota_for_an_endpoint_and_is_careful_when_unsure() -> None:
    pacer = pacing.Pacer(pacing.PacingConfig(quota=100, window_s=10), now=0.0)
    for _ in range(40):
        pacer.on_response(pacer.on_send(0.0), t_recv=0.0, status=200, headers=None)
    seq = pacer.on_send(0.0)
    pacer.on_response(seq, t_recv=0.0, status=429, headers=None)
    until = pacer.on_throttled(
        now=0.0, retry_after_s=10, jitter_s=0, with_headers=False, seq=seq, blame="endpoint"
    )
    assert until == 10.0  # paused all the same
    assert pacer.assumed_quota == pytest.approx(100)
    # Unsure: the quota stays; beyond 28 (40 * 0.7) in a window, one request at a time.
    refused_unsure(pacer, 40, 20.0)
    assert pacer.assumed_quota == pytest.approx(100)
    for _ in range(28):
        assert pacer.next_send_at(31.0) == 31.0
        pacer.on_send(31.0)
    assert pacer.next_send_at(31.0) is None


def test_a_burst_of_refusals_sent_before_the_first_teaches_once() -> None:
    # Told 100, the server admits 50: 60 requests in flight come back 50 admitted, 10 refused.
    pacer = pacing.Pacer(pacing.PacingConfig(quota=100, window_s=10), now=0.0)
    pacer.on_response(pacer.on_send(0.0), t_recv=0.0, status=200, headers=None)
    seqs = [pacer.on_send(1.0) for _ in range(59)]
    for seq in seqs[:49]:
        pacer.on_response(seq, t_recv=1.1, status=200, headers=None)
    for seq in seqs[49:]:
        pacer.on_response(seq, t_recv=1.1, status=429, headers=None)
        pacer.on_throttled(now=1.1, retry_after_s=9, jitter_s=0, with_headers=False, seq=seq)
    assert pacer.assumed_quota == pytest.approx(50)  # not 50 * 0.7 ** 9


def put_suspected_then_short() -> pacing.EndpointEvidence:
    """26 GETs and 4 PUTs admitted, the fifth PUT refused (unsure: PUT suspected at 4); a
    window later, 4 PUTs again but only 8 GETs: the token well short of its 30."""
    evidence = evidence_after([("GET a", 0.0)] * 26 + [("PUT a", 0.0)] * 4)
    first = evidence.on_refused("PUT a", seq=31, now=0.0, in_flight=0)
    assert first == pacing.Verdict(blame="unsure", endpoint="PUT a", level=4)
    assert not evidence.test_due("PUT a", now=0.0, in_flight=0)  # the token at its 30
    for seq in range(32, 44):
        evidence.on_answer("PUT a" if seq < 36 else "GET a", seq=seq, t_recv=11.0, admitted=True)
    return evidence


def test_a_suspected_endpoint_limit_is_tested_only_while_the_token_is_well_short() -> None:
    evidence = put_suspected_then_short()
    assert evidence.test_due("PUT a", now=11.0, in_flight=0)
    assert not evidence.test_due("GET a", now=11.0, in_flight=0)  # no limit suspected there
    # Not while the requests in flight could bring the token to what it had admitted.
    assert not evidence.test_due("PUT a", now=11.0, in_flight=16)
    evidence.on_test("PUT a", seq=44)
    assert not evidence.test_due("PUT a", now=11.0, in_flight=0)  # one test at a time
    # Unanswered: it says nothing, a later test may go.
    assert evidence.on_tested("PUT a", seq=44, admitted=False) is None
    assert evidence.test_due("PUT a", now=11.0, in_flight=0)
    evidence.on_test("PUT a", seq=45)
    evidence.on_answer("PUT a", seq=45, t_recv=11.0, admitted=True)
    # Admitted beyond the 4: the refusal was the token's, at the 30 it had admitted then.
    assert evidence.on_tested("PUT a", seq=45, admitted=True) == 30
    assert evidence.limit("PUT a") is None


def test_a_refused_test_establishes_the_endpoint_limit_at_its_level() -> None:
    evidence = put_suspected_then_short()
    evidence.on_test("PUT a", seq=44)
    assert evidence.on_tested("PUT a", seq=44, admitted=False) is None
    verdict = evidence.on_refused("PUT a", seq=44, now=11.0, in_flight=0)
    # Refused beyond 4 a second time while the token had room: its own limit, at 4 (not 3,
    # as when refused while paced at its level).
    assert verdict == pacing.Verdict(blame="endpoint", endpoint="PUT a", level=4, established=True)
    assert not evidence.test_due("PUT a", now=11.0, in_flight=0)


def test_a_refusal_shown_to_be_the_tokens_teaches_the_pacer_its_quota() -> None:
    pacer = pacing.Pacer(pacing.PacingConfig(quota=150, window_s=10), now=0.0)
    refused_unsure(pacer, 30, 0.0)
    assert pacer.assumed_quota == pytest.approx(150)
    pacer.on_token_limit_shown(11.0, admitted=30)
    assert pacer.assumed_quota == pytest.approx(30)
    # Held like any limit the server showed: no increase after a clean window.
    pacer.on_response(pacer.on_send(30.0), t_recv=30.0, status=200, headers=None)
    assert pacer.assumed_quota == pytest.approx(30)


def test_a_suspected_limit_is_not_tested_when_its_admissions_were_spread_out() -> None:
    evidence = evidence_after([("GET a", 0.0)] * 26 + [("PUT a", 0.0)] * 4)
    evidence.on_refused("PUT a", seq=31, now=0.0, in_flight=0)
    # A window later the token is as short as before, but the 4 PUTs came over 3 s of the
    # 10 s window: some may lie in the server's previous window (its alignment is unknown),
    # so a fifth admitted would not show that the limit is not the endpoint's.
    for seq, t_recv in enumerate((11.0, 12.0, 13.0, 14.0), start=32):
        evidence.on_answer("PUT a", seq=seq, t_recv=t_recv, admitted=True)
    for seq in range(36, 44):
        evidence.on_answer("GET a", seq=seq, t_recv=14.0, admitted=True)
    assert not evidence.test_due("PUT a", now=14.0, in_flight=0)
    # The same 4 within a tenth of the window: most likely all in the server's current one.
    evidence.on_answer("PUT a", seq=44, t_recv=14.5, admitted=True)
    evidence.on_answer("PUT a", seq=45, t_recv=14.6, admitted=True)
    evidence.on_answer("PUT a", seq=46, t_recv=14.6, admitted=True)
    evidence.on_answer("PUT a", seq=47, t_recv=14.9, admitted=True)
    assert evidence.test_due("PUT a", now=14.9, in_flight=0)


@pytest.mark.parametrize("allowed", [1, 2])
def test_a_quota_below_the_reserve_and_margin_is_still_spent(allowed: int) -> None:
    # An endpoint's own limit of 1 or 2 per window, shown by its headers: after each reset
    # the reserve (1) and the probe margin (1) ask the local bucket for 3, which a bucket of
    # 1 or 2 never holds: the pacer must send when its bucket is full, not wait for ever.
    pacer = pacing.Pacer(pacing.PacingConfig(quota=allowed, window_s=60), now=0.0)
    counts: collections.Counter[int] = collections.Counter()  # a fixed window's count
    sent: list[float] = []
    now = 0.0
    while now < 600:
        when = pacer.next_send_at(now)
        assert when is not None
        if when > now:
            now = when
            continue
        seq = pacer.on_send(now)
        window = math.floor(now / 60)
        counts[window] += 1
        assert counts[window] <= allowed  # never refused
        headers = pacing.RateHeaders(
            count=counts[window], allowed=allowed, reset_s=(window + 1) * 60 - now
        )
        pacer.on_response(seq, t_recv=now, status=200, headers=headers)
        sent.append(now)
    # Something sent in each of the ten windows.
    assert {math.floor(t / 60) for t in sent} == set(range(10))
