"""Rate-limit arithmetic for one client-credentials token: when may the next request go?

Role: the pure state machines behind ``syncd.genesys.limiter``: parsing ``Retry-After`` and the
``inin-ratelimit-*`` headers, a sliding-window send log (the safe pace when the server says
nothing), header-driven pacing (spend what the server says remains, keep a small reserve that
is spent at the configured rate, wait for the reset when it is gone), the pause after a 429,
AIMD adaptation of the assumed quota, the evidence that blames a 429 without headers on the
token or on an endpoint's own limit (``EndpointEvidence``), full-jitter backoff and
gRPC-style retry budgets (one per class of work, so routine failures cannot spend a failover's
retries).

It must not read a clock, sleep, draw random numbers or do I/O: every instant (``now``, in
seconds of some monotonic clock) and every random draw (``rand`` in [0, 1)) is a parameter, so
the arithmetic is testable exhaustively and the async shell stays thin.

Why two regimes. A server that sends ``inin-ratelimit-count/allowed/reset`` tells us exactly
how much remains; spending exactly that is optimal for fixed windows (a burst per window) and,
with the reserve spent at the quota's rate, for token buckets (a burst, then the refill rate),
without knowing which model the server runs. A server that sends nothing but ``Retry-After``
is paced by a sliding log — at most ``quota`` requests in any ``window_s`` of *response* time —
which no fixed window (whatever its alignment) and no token bucket of that quota can reject.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

from syncd.core import model

# --------------------------------------------------------------------------------------------
# Header parsing
# --------------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now_epoch: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when absent or unreadable.

    Genesys sends integer seconds (docs/genesys-setup.md); RFC 9110 also allows an HTTP date, which
    needs ``now_epoch`` (wall-clock epoch seconds) to become a delay. Negative values are 0.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isnan(seconds):
        if math.isinf(seconds):
            return None
        return max(0.0, seconds)
    if now_epoch is None:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_epoch)


@dataclass(frozen=True, slots=True)
class RateHeaders:
    """The server's view of this token's budget when it answered (docs/genesys-setup.md)."""

    count: int
    allowed: int
    reset_s: float

    @property
    def remaining(self) -> int:
        return max(0, self.allowed - self.count)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in headers.items():
        if key.lower() == lowered:
            return val
    return None


def parse_ratelimit_headers(headers: Mapping[str, str]) -> RateHeaders | None:
    """The ``inin-ratelimit-*`` triple, or None unless all three are present and sane."""
    raw = [_header(headers, f"inin-ratelimit-{n}") for n in ("count", "allowed", "reset")]
    if any(v is None for v in raw):
        return None
    try:
        count, allowed, reset = int(str(raw[0])), int(str(raw[1])), float(str(raw[2]))
    except ValueError:
        return None
    if count < 0 or allowed < 1 or reset < 0 or math.isinf(reset) or math.isnan(reset):
        return None
    return RateHeaders(count=count, allowed=allowed, reset_s=reset)


# --------------------------------------------------------------------------------------------
# Backoff and retry budget
# --------------------------------------------------------------------------------------------


def full_jitter(attempt: int, *, base_s: float, cap_s: float, rand: float) -> float:
    """AWS "full jitter": uniform in [0, min(cap, base * 2**attempt)); ``attempt`` from 0."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    ceiling = min(cap_s, base_s * (2.0 ** min(attempt, 62)))
    return max(0.0, min(1.0, rand)) * ceiling


def retry_after_jitter(retry_after_s: float, *, rand: float, max_jitter_s: float = 1.0) -> float:
    """The small spread added to a Retry-After so waiters on many tokens do not stampede."""
    return max(0.0, min(1.0, rand)) * min(max_jitter_s, 0.05 * max(retry_after_s, 0.0))


class RetryBudget:
    """gRPC retry throttling: retries are allowed while ``tokens > max_tokens / 2``.

    Each failure that wants a retry costs one token, each success earns ``token_ratio``; so a
    server failing most requests quickly stops getting retries, and a healthy one refills it.
    """

    __slots__ = ("_tokens", "max_tokens", "token_ratio")

    def __init__(self, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        if max_tokens <= 0 or token_ratio <= 0:
            raise ValueError("max_tokens and token_ratio must be positive")
        self.max_tokens = max_tokens
        self.token_ratio = token_ratio
        self._tokens = max_tokens

    @property
    def tokens(self) -> float:
        return self._tokens

    def on_failure(self) -> bool:
        """Record a retryable failure; True when a retry is still allowed."""
        self._tokens = max(0.0, self._tokens - 1.0)
        return self._tokens > self.max_tokens / 2

    def on_success(self) -> None:
        self._tokens = min(self.max_tokens, self._tokens + self.token_ratio)


class RetryClass(enum.StrEnum):
    """A class of work with a retry budget of its own (``RetryBudgets``); the value is the
    ``class`` label of ``syncd_retry_budget_exhausted_total``."""

    # Trunk status reads: the health poll and a notification's re-read of one trunk. The next
    # poll comes within seconds, so a failing poll is the first to stop being retried.
    HEALTH = "health"
    # Requests at failover priority: the reads and writes of a reconcile that moves a failed
    # trunk (and the campaign cut it drives). Rare, and the ones a retry is worth most to.
    FAILOVER = "failover"
    # Everything else: schedules, reconciles with no failover behind them, discovery.
    ROUTINE = "routine"


def retry_class_of(priority: int) -> RetryClass:
    """The class of a request that names no class: failover priority or routine."""
    return RetryClass.FAILOVER if priority <= model.Priority.FAILOVER else RetryClass.ROUTINE


class RetryBudgets:
    """One ``RetryBudget`` per ``RetryClass``: each class pays for its own retries and is
    refilled by its own successes.

    With one budget for everything, a storm of routine failures (a 45 % fault rate on the
    health poll and the schedule reads) spent the tokens the few failover reads needed, so a
    failover's reads were not retried. Separate budgets keep gRPC throttling's purpose per
    class: a server failing most of a class's requests soon stops getting that class's
    retries, and the ratio bounds the retries of each class by its own first tries.
    """

    __slots__ = ("_budgets",)

    def __init__(self, max_tokens: float = 10.0, token_ratio: float = 0.1) -> None:
        self._budgets = {c: RetryBudget(max_tokens, token_ratio) for c in RetryClass}

    def of(self, retry_class: RetryClass) -> RetryBudget:
        return self._budgets[retry_class]

    def on_failure(self, retry_class: RetryClass) -> bool:
        """Record a retryable failure of that class; True when it may be retried."""
        return self._budgets[retry_class].on_failure()

    def on_success(self, retry_class: RetryClass) -> None:
        self._budgets[retry_class].on_success()


# --------------------------------------------------------------------------------------------
# Pacing of one token
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PacingConfig:
    """The known quota of a token and the knobs of the adaptation."""

    quota: int = 300
    window_s: float = 60.0
    # Header remaining kept back: spent one at a time at the quota's rate, so a token-bucket
    # server keeps answering (and refilling) while a fixed-window one simply runs out.
    reserve: int = 1
    # Slack (in requests) the local bucket must show above the reserve before spending it:
    # the server's bucket lags ours by one round trip of refill.
    probe_margin: float = 1.0
    # AIMD on the assumed quota when 429s arrive without headers.
    decrease_factor: float = 0.7
    min_fraction: float = 0.1
    increase_fraction: float = 0.05
    # Without headers: windows between refill probes once the server showed fixed windows.
    reprobe_windows: float = 30.0
    # Share of each window's quota that only failover work may spend (at least one slot when
    # the quota has room for it): a failover write never waits behind routine work.
    failover_reserve_fraction: float = 0.02
    # Sharing a budget (header regime), the last share of each window in which the failover
    # reserve is spent too when surely spare (a failover arriving then waits at most that
    # long, for the next window).
    reserve_release_fraction: float = 0.05
    # When another consumer shares the budget (header regime): the margin on its expected
    # spending (this window's pace; another window's), the requests kept for refreshing the
    # count, and how long (in windows) the prior pace weighs (see ``ForeignSpend.pace``).
    shared_margin: float = 0.1
    shared_margin_prev: float = 0.3
    shared_refresh: int = 2
    shared_prior: float = 0.2

    @property
    def failover_reserve(self) -> int:
        """Slots of each window of the configured quota held back from lower work."""
        return self.failover_reserve_of(self.quota)

    def failover_reserve_of(self, quota: int) -> int:
        """The failover reserve of a window of ``quota`` (the one the server shows, if any)."""
        if self.failover_reserve_fraction <= 0 or quota < 2:
            return 0
        return min(quota - 1, max(1, math.floor(quota * self.failover_reserve_fraction)))

    def __post_init__(self) -> None:
        if self.quota < 1 or self.window_s <= 0:
            raise ValueError("quota must be >= 1 and window_s > 0")
        if self.reserve < 0 or not 0 < self.decrease_factor < 1:
            raise ValueError("reserve must be >= 0 and decrease_factor in (0, 1)")
        if not 0 <= self.failover_reserve_fraction < 1:
            raise ValueError("failover_reserve_fraction must be in [0, 1)")


# --------------------------------------------------------------------------------------------
# The quota to pace by: configured, or the org's limit read at run time when lower
# --------------------------------------------------------------------------------------------

# The limits API's namespace and key of the per-token limit syncd's client-credentials tokens
# spend (docs/genesys-setup.md, "Rate limits").
LIMITS_NAMESPACE = "platform.api"
TOKEN_LIMIT_KEY = "client.credentials.token.rate.per.minute"  # noqa: S105 - a limit's name


def per_window(per_minute: int, window_s: float) -> int:
    """A per-minute limit as requests per ``window_s`` seconds (rounded down, at least 1): a
    time-scaled configuration (quota per 1 s window) paces 3000/min as 50 per window."""
    return max(1, math.floor(per_minute * window_s / 60.0 + 1e-9))


def _rate(quota: int, window_s: float) -> str:
    if window_s == 60.0:
        return f"{quota} per minute"
    return f"{quota} per {window_s:g} s window, {round(quota * 60.0 / window_s)} per minute"


@dataclass(frozen=True, slots=True, kw_only=True)
class QuotaChoice:
    """The quota a token is paced by, from the configured one and the org's limit as read.

    The configured quota (``rate_limit.requests_per_minute``, per ``window_s``) is the most the
    operator lets syncd spend — other integrations may share the OAuth client — so the org's
    limit lowers it but never raises it: a higher limit is only reported."""

    configured: int  # per window_s
    window_s: float
    org_per_minute: int | None  # the limits API's value; None: unknown
    unknown_reason: str = ""  # why the org's limit is unknown

    @property
    def org(self) -> int | None:
        """The org's limit per ``window_s`` (None: unknown)."""
        if self.org_per_minute is None:
            return None
        return per_window(self.org_per_minute, self.window_s)

    @property
    def quota(self) -> int:
        """What the limiter paces each token by: the lower of configured and org limit."""
        org = self.org
        return self.configured if org is None else min(self.configured, org)

    @property
    def lowered(self) -> bool:
        return self.quota < self.configured

    def sentence(self) -> str:
        """One full sentence for the log and ``syncd verify``."""
        configured = _rate(self.configured, self.window_s)
        if self.org_per_minute is None:
            return (
                f"The org's rate limit per token ({TOKEN_LIMIT_KEY}) is unknown"
                f" ({self.unknown_reason or 'not read'}); syncd paces each token at the"
                f" configured {configured}."
            )
        org = f"{self.org_per_minute} requests per minute"
        if self.lowered:
            return (
                f"The org's rate limit per token ({TOKEN_LIMIT_KEY}) is {org}, below the"
                f" configured rate_limit.requests_per_minute ({configured}); syncd paces each"
                f" token at {_rate(self.quota, self.window_s)}."
            )
        if self.org is not None and self.org > self.configured:
            return (
                f"The org's rate limit per token ({TOKEN_LIMIT_KEY}) is {org}, above the"
                f" configured rate_limit.requests_per_minute ({configured}); syncd keeps to the"
                " configured quota: raise it to spend more."
            )
        return (
            f"The org's rate limit per token ({TOKEN_LIMIT_KEY}) is {org}, the configured"
            f" {configured}; syncd paces each token at it."
        )


# Who a 429 without headers is blamed on (``EndpointEvidence.on_refused``).
Blame = Literal["token", "endpoint", "unsure"]


# --------------------------------------------------------------------------------------------
# The sliding log
# --------------------------------------------------------------------------------------------


class SlidingLog:
    """At most ``limit`` requests in any ``window_s``, counted from each response's arrival.

    A request still in flight holds its slot until its response arrives, then for a whole
    window after: the server saw it at some instant no later than the arrival, so no server
    window of length ``window_s`` (aligned anyhow) can contain more than ``limit`` of them.
    """

    __slots__ = ("_done", "in_flight", "last_answer", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._done: deque[float] = deque()
        self.in_flight = 0
        self.last_answer = -math.inf  # when the latest answer arrived

    def _expire(self, now: float) -> None:
        while self._done and self._done[0] + self.window_s <= now:
            self._done.popleft()

    def used(self, now: float) -> int:
        self._expire(now)
        return len(self._done) + self.in_flight

    def next_free(self, now: float, limit: int) -> float | None:
        """When the next slot frees (``now`` if one is free), None if only a response can."""
        self._expire(now)
        excess = len(self._done) + self.in_flight - limit
        if excess < 0:
            return now
        if excess >= len(self._done):
            return None
        return self._done[excess] + self.window_s

    def answered_since(self, since: float) -> int:
        """Answers that arrived at ``since`` or later (within the window)."""
        return len(self._done) - bisect.bisect_left(self._done, since)

    def on_send(self) -> None:
        self.in_flight += 1

    def on_done(self, t_recv: float) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        # Responses arrive in clock order; keep the deque sorted even if they do not.
        if self._done and t_recv < self._done[-1]:
            t_recv = self._done[-1]
        self._done.append(t_recv)
        self.last_answer = t_recv
        # Answers a window older than this one are in no window with it: dropped as they age,
        # or a token whose budget is never spent (nothing else asks the log) keeps them all.
        self._expire(t_recv)


class ForeignSpend:
    """What another consumer of the same budget spends, as the ``count`` of our answers shows
    it (header regime; docs/client.md, "Another consumer of the same budget"): what the server
    counted beyond our own sends in its current window, at the window's first answer and now,
    and its pace. Pure, like the ``Pacer`` that owns it: time is a parameter.

    Its pace is counted from the first answer a tenth of a window after the start (what it sent
    at the start may be a burst: retries of requests the last window refused) that arrived with
    none of ours in flight (ours in flight may or may not be in the count).
    """

    __slots__ = (
        "_answered",
        "_carry",
        "_config",
        "_first",
        "_first_window",
        "_pace_from",
        "_prev_rate",
        "_probe_until",
        "_shared_until",
        "at_least",
        "seen_at",
    )

    def __init__(self, config: PacingConfig, *, now: float) -> None:
        self._config = config  # its window and shared_* knobs (set_quota changes neither)
        self._answered = 0  # our answers in this window
        self._carry = 0  # our requests in flight when the window began: maybe counted in it
        self._first: int | None = None  # beyond ours at the window's first answer, at most
        self.at_least = 0  # what the server counted beyond our sends, at least
        self.seen_at = now  # when ``at_least`` was last observed: our freshest answer
        self._pace_from: tuple[float, int] | None = None  # (when, ``at_least`` then)
        self._prev_rate: float | None = None  # its pace over the last window
        self._shared_until = -math.inf
        # Until a tenth of a window after the first answer, another consumer is presumed:
        # one that starts with us shows only in the answers after our first burst.
        self._probe_until = math.inf
        # No window has ended since the first answer: whatever the count holds beyond our
        # sends may be another consumer's first requests, not yet a constant from the past.
        self._first_window = True

    def sharing(self, now: float) -> bool:
        """Whether someone else spent this budget lately (two windows after the last sign), or
        may have: a tenth of a window after our first answer, one that starts with us has not
        shown yet (its first requests come after our first burst)."""
        return now < self._shared_until or (self._first_window and now < self._probe_until)

    def new_window(self, *, carry: int, allowed: int) -> None:
        """The server's window restarted, with ``carry`` of our requests in flight."""
        # Its pace in the window just ended: what our answers saw of it over half of it or
        # more; over less, its estimate there (that, weighed against the prior), which is
        # fresher than an older window's pace: a rising pace is then not met with the pace of
        # a window it has since outgrown.
        seen, span = self.seen()
        if span >= self._config.window_s / 2:
            self._prev_rate = seen / span
        elif self._pace_from is not None:
            self._prev_rate = self.pace(allowed)[0]
        self._pace_from = None
        self._first_window = False
        self._answered = 0
        self._carry = carry
        self._first = None
        self.at_least = 0

    def note(
        self, *, count: int, ours_sent: int, t_recv: float, window_start: float, idle: bool
    ) -> None:
        """One answer of this window: its ``count``, with ``ours_sent`` of our requests sent in
        the window so far; ``idle``: none of ours is in flight now."""
        self._answered += 1
        if self._probe_until == math.inf:
            self._probe_until = t_recv + self._config.window_s / 10
        ours_at_most = ours_sent + self._carry
        self.at_least = max(self.at_least, count - ours_at_most)
        self.seen_at = t_recv
        window = self._config.window_s
        if self._pace_from is None and idle and t_recv >= window_start + window / 10:
            # With none of ours in flight the count shows exactly what it spent so far.
            self._pace_from = (t_recv, self.at_least)
        if self._first is None:
            # At most this much was someone else's when the window's first answer came (a
            # restart's or another process's earlier spending is a constant, not a consumer).
            self._first = count - self._answered
        if count - ours_at_most > self._first or (self._first_window and count > ours_at_most):
            # Spending beyond ours grew within the window (a restart's or another process's
            # earlier spending is a constant), or showed in the first window, which has no past
            # to be a constant of: someone else spends this budget. Even one request counts:
            # the last slots of a window are then contested, and a 429 would pause every
            # request for the rest of it.
            self._shared_until = t_recv + 2 * window

    def seen(self) -> tuple[float, float]:
        """What it sent since its pace is counted, and over how long."""
        if self._pace_from is None:
            return 0.0, 0.0
        since, base = self._pace_from
        return float(max(0, self.at_least - base)), max(0.0, self.seen_at - since)

    def pace(self, allowed: int) -> tuple[float, float]:
        """Its expected pace (requests per second) in this window, and the margin to add to
        it. What our answers showed of this window is weighed against the last window's pace
        (or, before any, half of the ``allowed`` budget: a fair share) as if that had been seen
        for ``shared_prior`` of a window: a few requests early on say little, and the margin
        shrinks from ``shared_margin_prev`` to ``shared_margin`` as they add up."""
        config = self._config
        prior = self._prev_rate
        if prior is None:
            prior = allowed / 2 / config.window_s
        weight = config.window_s * config.shared_prior
        seen, elapsed = self.seen()
        share = weight / (weight + elapsed)
        pace = (seen + prior * weight) / (weight + elapsed)
        margin = config.shared_margin + share * (config.shared_margin_prev - config.shared_margin)
        return pace, margin


class Pacer:
    """Everything the limiter knows about one token; all methods take ``now`` explicitly.

    Protocol: ``next_send_at(now)`` says when a request may go (None: only after a response);
    ``on_send(now)`` records one and returns its sequence number; ``on_response(...)`` feeds the
    answer back (headers, status); ``on_throttled(...)`` handles a 429.

    Without headers the pacer starts with the sliding log (safe for any server model), then
    sends one *refill probe* when the log is full but a token bucket of the quota would have
    room: admitted, the server refills continuously and the local bucket paces from then on;
    refused (one 429), the server counts in windows and the log stays. The probe is repeated
    rarely (``reprobe_windows``) in case the server changes.
    """

    def __init__(self, config: PacingConfig, *, now: float) -> None:
        self.config = config
        self.paused_until = -math.inf
        self._quota = float(config.quota)  # AIMD-adapted assumed quota (no-headers regime)
        self._last_increase = now
        self._log = SlidingLog(config.window_s)
        self._bucket = float(config.quota)  # local mirror of a token bucket, may go negative
        self._bucket_at = now
        self._seq = 0  # sends so far; a send's number is the value after increment
        # No-headers regime: what refill the server showed, and the probe in flight.
        self.refill: str | None = None  # None (unknown), "continuous" or "window"
        self._refill_known_at = now
        self._probe_seq = 0
        self._refused_probe = 0
        # Without headers, what the server has shown it admits: the admitted answers of the
        # last window, and the most it ever admitted in one window. Beyond that, one request
        # at a time: a lower real quota then costs one 429, not one per request in flight.
        self._admitted: deque[float] = deque()
        self._proven = 0
        self._penalty = 0  # rejected requests that a counting server charges to the next window
        # A 429 that may have been an endpoint's limit: what the token had admitted in its
        # window then (``on_throttled``, blame "unsure").
        self._unsure: int | None = None
        self._throttled_seq = 0  # sends so far when the latest pause began
        self._penalty_until = -math.inf
        # Header regime: what the freshest answer said remains, and when its count resets.
        self.headers_seen = False
        self._epoch_start = 1  # first send number of the current epoch
        self._epoch_end = math.inf  # when the server's count resets, an upper bound
        self._latest_seq = 0
        self._latest_remaining = config.quota
        self._allowed = config.quota
        self._log_explains = True
        # Another consumer of the same budget: when it spends too, work below failover
        # priority leaves it its share of what remains until the reset (``_next_shared``).
        self._other = ForeignSpend(config, now=now)
        self._sent_after_end = math.inf  # the first send after the window's end (a bound)
        self._window_end = math.inf  # earliest reset any answer of this epoch promised
        self._phase_end = math.inf  # the same, before a send beyond the budget cleared it
        self._count_top = 0
        self._count_top_seq = 0

    # --- derived state ------------------------------------------------------------------

    @property
    def assumed_quota(self) -> float:
        return self._quota

    @property
    def in_flight(self) -> int:
        return self._log.in_flight

    @property
    def other(self) -> ForeignSpend:
        """What another consumer of this budget spends, as far as the answers show it."""
        return self._other

    def _refill_bucket(self, now: float) -> None:
        rate = self._quota / self.config.window_s
        if now > self._bucket_at:
            self._bucket = min(self._quota, self._bucket + (now - self._bucket_at) * rate)
            self._bucket_at = now

    def _bucket_ready_at(self, now: float, level: float) -> float:
        """When the local bucket holds ``level`` tokens — or is full, when ``level`` is more
        than it holds (a quota of 1 or 2, such as an endpoint's own limit, is below the
        reserve and margins the callers ask for: it would never be reached)."""
        self._refill_bucket(now)
        need = min(level, self._quota) - self._bucket
        if need <= 0:
            return now
        return now + need * self.config.window_s / self._quota

    def _roll_epoch(self, now: float) -> None:
        if now >= self._epoch_end:
            # The server's count has reset (that is what ``reset`` promised for the freshest
            # answer); requests still in flight may land in the new window: charge them to it.
            self._epoch_start = self._seq + 1
            self._epoch_end = math.inf
            self._latest_seq = self._seq
            self._latest_remaining = self._allowed - self._log.in_flight
            self._new_window(carry=self._log.in_flight)

    def _new_window(self, *, carry: int) -> None:
        self._other.new_window(carry=carry, allowed=self._allowed)
        self._sent_after_end = math.inf
        # The last window's earliest promised reset is at or after its end (the boundary just
        # crossed), so this window ends a known window length later at the latest.
        last = self._window_end if self._window_end < math.inf else self._phase_end
        self._window_end = last + self.config.window_s
        self._count_top = 0
        self._count_top_seq = self._seq

    def header_available(self, now: float) -> int:
        """Requests the server can still take now, by its last word (header regime)."""
        self._roll_epoch(now)
        return self._latest_remaining - (self._seq - self._latest_seq)

    def _log_limit(self, now: float) -> int:
        penalty = self._penalty if now < self._penalty_until else 0
        return max(1, math.floor(self._quota) - penalty)

    def budget(self, now: float) -> float:
        """Remaining budget for observers: header remaining, else free sliding-log slots."""
        if self.headers_seen:
            return float(max(0, self.header_available(now)))
        return float(max(0, self._log_limit(now) - self._log.used(now)))

    # --- decisions ----------------------------------------------------------------------

    def next_send_at(self, now: float, *, keep_reserve: bool = False) -> float | None:
        """Earliest instant a request may be sent; None means "wait for a response". With
        ``keep_reserve`` (work below failover priority) the failover reserve of the window —
        of the quota the server shows, else of the assumed one — stays unspent."""
        if now < self.paused_until:
            return self.paused_until
        hold = self._held(now) if keep_reserve else 0
        if self.headers_seen:
            return self._next_by_headers(now, hold, spread=keep_reserve)
        return self._next_without_headers(now, hold)

    def _sharing(self, now: float) -> bool:
        return self._other.sharing(now)

    def _held(self, now: float) -> int:
        limit = self._log_limit(now)
        if self.headers_seen:
            limit = min(limit, self._allowed)
        return self.config.failover_reserve_of(limit)

    def _release_at(self) -> float:
        """When the window's last stretch begins (sharing a budget): from then on the failover
        reserve is spent too, when it is surely spare (a failover arriving then waits at most
        that stretch, for the next window). Alone, it is not: the count a burst at the window's
        start saw is stale by then, and someone not yet seen may have spent those slots."""
        return self._window_end - self.config.window_s * self.config.reserve_release_fraction

    def _next_by_headers(self, now: float, hold: int, *, spread: bool) -> float | None:
        if spread and self._sharing(now) and self._window_end < math.inf:
            return self._next_shared(now, hold)
        avail = self.header_available(now) - hold
        if avail > self.config.reserve:
            return now
        if avail > 0:
            # Spend the reserve at the quota's rate: a refilling server answers with room to
            # spare and pacing continues; a fixed window answers "0 left" and we wait below.
            level = self.config.reserve + 1 + self.config.probe_margin + hold
            return self._bucket_ready_at(now, level)
        return self._when_spent(now, hold)

    def _when_spent(self, now: float, hold: int) -> float | None:
        """When a request may go once the header budget is spent."""
        # Out of budget: wait for the reset, or for the sliding log (safe under any model of
        # the known quota) when it frees a slot earlier — ``reset`` is rounded up to seconds.
        by_log = (
            self._log.next_free(now, min(self._log_limit(now), self._allowed) - hold)
            if self._log_explains
            else None
        )
        if self._sharing(now) and self._window_end < self._epoch_end and self._log.in_flight == 0:
            # Spread to the end, the budget runs out there: the earliest reset an answer of
            # this window promised is when a fixed window restarts; one request then shows it
            # (the freshest answer's reset lies up to a whole rounding step later).
            by_log = self._window_end if by_log is None else min(by_log, self._window_end)
        if self._epoch_end < math.inf:
            return self._epoch_end if by_log is None else min(by_log, self._epoch_end)
        if by_log is None and self._log.in_flight == 0:
            # No reset promised, the log cannot vouch, and nothing in flight will bring a
            # fresher count: one request goes a window after our latest answer (a window has
            # restarted by then, a bucket refilled), or the token would never send again.
            return max(now, self._log.last_answer + self.config.window_s)
        return by_log

    def _next_shared(self, now: float, hold: int) -> float | None:
        """Work below failover priority while another consumer spends the same budget.

        What the other consumer will spend until the reset (``ForeignSpend.pace``, with its
        margin), and what it has spent since our freshest answer at the same pace, is left to
        it; the rest is taken at once, so the last batch of a backlog goes at the window's
        start. The failover reserve overlaps that margin (both are kept from routine work), and
        ``shared_refresh`` requests of the rest are kept for refreshing the count. While what
        the count leaves exceeds its expected spending less the margin (or while its pace in
        this window is not known yet), one request at a time goes once our view of the count
        is a tenth of the window old (a twentieth for those kept, which are spare even with the
        margin): the answers show its pace in this window, and what it leaves is taken before
        the reset. In the window's last stretch (``_release_at``) the failover reserve and the
        refresh requests are released, and the view is refreshed a hundredth of a window
        apart."""
        window = self.config.window_s
        left = self._window_end - now
        if left <= 0:
            # The window has ended (this end is a bound, never early), but no answer shows
            # the new count yet: one request finds it out (what remains by the old count
            # says nothing of the new window).
            return now if self._log.in_flight == 0 else None
        avail = self.header_available(now)
        if avail <= 0:
            return self._when_spent(now, hold)
        release_at = self._release_at()
        last_stretch = now >= release_at
        if last_stretch:
            hold = 0
        middle, margin = self._other.pace(self._allowed)
        # What it spent since our freshest answer (in this window: the count restarted), at
        # its pace with the margin: a request sent now is counted now, so an underestimate
        # of this part is a 429 of ours; of the rest of the window, it is one of its own.
        since = (
            middle
            * (1.0 + margin)
            * max(0.0, now - max(self._other.seen_at, self._window_end - window))
        )
        ahead = middle * left
        # Requests kept for refreshing the count, until the last stretch: then nothing is.
        refresh = 0 if last_stretch else self.config.shared_refresh
        # The margin on its pace ahead and the failover reserve are both kept from routine
        # work, and either may serve the other's need: a failover takes from the margin first.
        spare = avail - since - ahead - max(hold, middle * margin * left)
        if spare >= 1 + refresh:
            return now
        if self._log.in_flight:
            return None  # its answer refreshes the count
        # Room by its pace less the margin: maybe it leaves some. While its pace in this window
        # is not known yet, the count alone says so (room for this request and one more, which
        # its answer may show spare). One request refreshes the count once our view is a tenth
        # of the window old (a hundredth in the last stretch), so that what it leaves is taken
        # before the reset and our view is never old when the window ends.
        if self._other.seen()[1] >= window * self.config.shared_prior:
            room = avail - since - hold - middle * (1.0 - margin) * left
        else:
            room = avail - since - hold - 1
        if room < 1:
            # Look again when the failover reserve is released, or when the window ends.
            return self._window_end if last_stretch else release_at
        # A request kept for refreshing (spare even by its pace with the margin) goes twice as
        # soon: only what its answers show can free more.
        due = self._other.seen_at + window / (100 if last_stretch else 20 if spare >= 1 else 10)
        if not last_stretch:
            due = min(due, release_at)
        return max(now, min(due, self._window_end))

    def _next_without_headers(self, now: float, hold: int) -> float | None:
        if self.refill == "continuous":
            if self._log.in_flight > 0 and self._log.used(now) >= self._proven:
                return None  # beyond what the server has shown it admits: one at a time
            return self._bucket_ready_at(now, 1.0 + self.config.probe_margin + hold)
        by_log = self._log.next_free(now, self._log_limit(now) - hold)
        if by_log is not None and by_log <= now:
            if self._log.in_flight > 0 and self._log.used(now) >= self._proven:
                return None  # beyond what the server has shown it admits: one at a time
            return now
        if self.refill == "window" and now - self._refill_known_at >= (
            self.config.reprobe_windows * self.config.window_s
        ):
            self.refill = None  # long enough: find out again
        if (
            self.refill is None
            and self._probe_seq == 0
            and self._log.in_flight == 0
            and self._log.used(now) >= self._log_limit(now) - hold
        ):
            # Probe only with nothing in flight: an answer still on its way may be a 429. Work
            # that holds the failover reserve fills it first, one at a time at the bucket's
            # pace, so that the probe itself is the request beyond the log (``on_send``): one
            # admitted inside the log would prove nothing about refill.
            probe_at = self._bucket_ready_at(now, 1.0 + self.config.probe_margin + hold)
            if by_log is None or probe_at < by_log:
                return probe_at
        return by_log

    def set_quota(self, quota: int, *, now: float) -> None:
        """The token's known quota is ``quota`` per window from ``now`` on (the org's limit,
        read at run time): the assumed quota and the local bucket follow; what the server's
        headers said stays the server's word."""
        self._refill_bucket(now)
        self.config = dataclasses.replace(self.config, quota=quota)
        self._quota = float(quota)
        self._bucket = min(self._bucket, self._quota)
        if not self.headers_seen:
            self._allowed = quota
            self._latest_remaining = min(self._latest_remaining, quota)

    def on_send(self, now: float) -> int:
        """Record one send; returns its number."""
        self._refill_bucket(now)
        if (
            not self.headers_seen
            and self.refill is None
            and self._probe_seq == 0
            and self._log.in_flight == 0
            and self._log.used(now) >= self._log_limit(now)
        ):
            self._probe_seq = self._seq + 1  # this send goes beyond the log: it is the probe
        self._bucket -= 1.0
        self._log.on_send()
        self._seq += 1
        if self._sharing(now) and now >= self._window_end and self._sent_after_end > self._seq:
            # Only while sharing, where the server is taken to count in windows (a token
            # bucket's count does not restart at the promised reset).
            self._sent_after_end = self._seq
        if self.headers_seen and self.header_available(now) < 0:
            # Sent beyond what remained (at a promised reset): its answer says anew when.
            self._phase_end, self._window_end = self._window_end, math.inf
        return self._seq

    def on_response(
        self,
        seq: int,
        *,
        t_recv: float,
        status: int,
        headers: RateHeaders | None,
        headers_elsewhere: bool = False,
    ) -> None:
        """Feed back one answer (status 0: no answer arrived, the server may have counted it).

        ``headers_elsewhere``: the answer had headers, but they describe another limit (an
        endpoint's): it counts as a send here without saying the server stopped sending them.
        """
        self._log.on_done(t_recv)
        if status not in (0, 429):
            self._admitted_in_window(t_recv)
            self._admitted.append(t_recv)
            self._proven = max(self._proven, len(self._admitted))
        # (0 numbers no send of this pacer: an endpoint's pacer made while the request was in
        # flight; it is no probe, though "no probe" is 0 too.)
        if seq != 0 and seq == self._probe_seq:
            self._probe_seq = 0
            if status == 429:
                self._refused_probe = seq
                self.refill = "window"
                self._refill_known_at = t_recv
            elif 200 <= status < 500:
                self.refill = "continuous"
                self._refill_known_at = t_recv
        if status == 0:
            return
        if headers is None:
            if 200 <= status < 300 and not headers_elsewhere:
                # The server stopped (or never started) sending headers: pace by the log.
                self.headers_seen = False
            self._maybe_increase(t_recv, status)
            return
        self.headers_seen = True
        self._allowed = headers.allowed
        # A count below one shown for an earlier send: the server's window has reset (or its
        # bucket refilled) since; this answer is the freshest word, even with some in flight.
        reset_seen = seq > self._count_top_seq and headers.count < self._count_top
        # So has one for a request sent after the window's end (a bound that is never early),
        # whatever its count: in a window we saw little of, the last count may be as low.
        reset_seen = reset_seen or seq >= self._sent_after_end
        if reset_seen:
            self._epoch_start = seq
            self._epoch_end = math.inf
            self._new_window(carry=self._log.in_flight)
            # The server counted this request after the reset, so by this answer at the latest:
            # the new window ends one window after it at the latest.
            self._window_end = min(self._window_end, t_recv + self.config.window_s)
        if seq < self._epoch_start:
            return  # sent before the count reset: says nothing about the current window
        self._note_foreign(seq, t_recv=t_recv, headers=headers)
        # Requests the server may have counted after this answer are those still in flight
        # (they may overtake each other on the way) and those sent from now on. With some in
        # flight the estimate only ever goes down within a window; with none, it is exact and
        # may go up (a refilling server shows its refill).
        pending = self._log.in_flight
        # The sliding log is a safe fallback only while it accounts for everything the server
        # counted (not after a restart, nor when another process shares the token). Only our
        # requests answered since the server's current window began (by its earliest promised
        # end) explain its count: those still in flight may not be counted yet, and those
        # answered before the window are not in it (both could hide someone else's spending).
        # While no answer has promised an end, all our answers of the last window count.
        began = -math.inf
        if self._window_end < math.inf:
            began = self._window_end - self.config.window_s
        answered = self._log.answered_since(began)
        self._log_explains = headers.count <= answered and self._other.at_least == 0
        estimate = headers.remaining - pending
        if pending > 0 and not reset_seen:
            estimate = min(estimate, self.header_available(t_recv))
        self._latest_seq = self._seq
        self._latest_remaining = estimate
        # Only the freshest answer's reset is a promise: on a token bucket, every later
        # request pushes the instant of "full again" further out.
        self._epoch_end = t_recv + headers.reset_s if headers.reset_s > 0 else math.inf

    def _note_foreign(self, seq: int, *, t_recv: float, headers: RateHeaders) -> None:
        """Track what the server counted beyond our own sends in its current window."""
        if headers.count >= self._count_top:
            self._count_top, self._count_top_seq = headers.count, seq
        if headers.reset_s > 0:
            self._window_end = min(self._window_end, t_recv + headers.reset_s)
        self._other.note(
            count=headers.count,
            ours_sent=self._seq - self._epoch_start + 1,
            t_recv=t_recv,
            window_start=self._window_end - self.config.window_s,
            idle=self._log.in_flight == 0,
        )

    def _admitted_in_window(self, now: float) -> int:
        while self._admitted and self._admitted[0] + self.config.window_s <= now:
            self._admitted.popleft()
        return len(self._admitted)

    def _maybe_increase(self, now: float, status: int) -> None:
        if status == 429 or self._quota >= self.config.quota:
            return
        if now - self._last_increase >= self.config.window_s:
            step = max(1.0, self.config.quota * self.config.increase_fraction)
            self._quota = min(float(self.config.quota), self._quota + step)
            self._last_increase = now

    def on_token_limit_shown(self, now: float, *, admitted: int) -> None:
        """A refusal this pacer was unsure of was the token's after all (the endpoint it landed
        on has since admitted more than it had then): the quota is what the token had
        ``admitted`` in that window, held like any limit the server showed."""
        self._unsure = None
        if 0 < admitted < self._quota:
            self._learn(now, float(admitted))

    def refusal_explained(self, seq: int) -> bool:
        """Whether a 429 without headers is explained by this pacer's own venture — its refill
        probe, or pacing as a bucket — rather than by a limit someone must learn."""
        return (seq != 0 and seq == self._refused_probe) or self.refill == "continuous"

    def on_throttled(
        self,
        *,
        now: float,
        retry_after_s: float,
        jitter_s: float,
        with_headers: bool,
        seq: int = 0,
        blame: Blame = "token",
    ) -> float:
        """A 429: pause every request of this token until Retry-After (+ jitter) has passed.

        Without headers, a refused refill probe only teaches the window model (and charges one
        slot of the next window, which a counting server takes as debt); a refusal while paced
        as a bucket falls back to the log; a refusal under the log means the assumed quota is
        too high: it shrinks (multiplicative decrease) and grows back by a few percent per
        clean window. Returns the instant the pause ends.

        ``blame`` (``EndpointEvidence.on_refused``): "endpoint" — an endpoint's own limit
        refused it, the token's quota stays; "unsure" — the token's or an endpoint's: the
        quota stays, but beyond what the token admitted in this window requests go one at a
        time, so that a token limit after all costs one more 429, which then teaches it.
        """
        # What the log saw admitted is a measure of the quota only if no pause cut into it.
        clean_window = now - self.paused_until >= self.config.window_s
        echo = seq != 0 and seq <= self._throttled_seq and now < self.paused_until
        self.paused_until = max(self.paused_until, now + retry_after_s + jitter_s)
        if with_headers:
            return self.paused_until
        if not echo:
            self._throttled_seq = self._seq
        if blame == "endpoint":
            self._unsure = None  # the endpoint explains the refusal it was unsure of
            return self.paused_until
        self._penalty = (self._penalty if now < self._penalty_until else 0) + 1
        self._penalty_until = self.paused_until + 2 * self.config.window_s
        unsure, self._unsure = self._unsure, None
        if echo:
            # Sent before the refusal that paused the token and refused for the same reason:
            # nothing new — unless it shows that a refusal it was unsure of was the token's.
            if blame == "token" and unsure is not None:
                self._learn(now, float(unsure))
            else:
                self._unsure = unsure
            return self.paused_until
        admitted = self._admitted_in_window(now)
        if blame == "unsure":
            self._unsure = admitted if unsure is None else min(unsure, admitted)
            self._proven = min(self._proven, math.floor(admitted * self.config.decrease_factor))
            return self.paused_until
        if seq != 0 and seq == self._refused_probe:
            return self.paused_until
        if self.refill == "continuous":
            # Paced as a bucket and refused: fall back to the log, which no server of the
            # known quota refuses; only a refusal under the log means the quota is wrong.
            self.refill = "window"
            self._refill_known_at = now
            return self.paused_until
        # What the server admitted in the last window is an upper bound of its quota (its
        # window lies inside ours): take it when it is lower than the usual decrease. After a
        # refusal it was unsure of, the token went beyond that count one request at a time:
        # refused there, what it admitted is its quota, though the pause cut into the window.
        if (clean_window or (unsure is not None and unsure <= admitted)) and (
            0 < admitted < self._quota
        ):
            self._learn(now, float(admitted))
        else:
            self._learn(now, self._quota * self.config.decrease_factor)
        return self.paused_until

    def _learn(self, now: float, quota: float) -> None:
        """Assume ``quota`` from now on, and send the top of each window one at a time again."""
        self._quota = max(self.config.quota * self.config.min_fraction, min(self._quota, quota))
        self._proven = min(self._proven, math.floor(self._quota * self.config.decrease_factor))
        # A limit the server has just shown holds for a while: no increase (which would only
        # find it again, one 429 a time) until ``reprobe_windows`` have passed.
        self._last_increase = now + (self.config.reprobe_windows - 1) * self.config.window_s


# --------------------------------------------------------------------------------------------
# Without headers: the token's limit, or an endpoint's own?
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointLimit:
    """An endpoint's own limit as 429s without headers showed it."""

    level: int  # requests per window it admitted when refused
    token_at: int  # what the whole token had admitted in that window
    refused_seq: int  # the token's number of the refused send
    refused_at: float
    # Refused again while the token had shown more room: its 429s pause only it.
    established: bool = False
    # The token's number of the latest send beyond ``level`` that tested a suspected limit
    # (``EndpointEvidence.test_due``; 0: none), and whether its answer is still to come.
    test_seq: int = 0
    testing: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """What a 429 without headers is blamed on, and what it teaches."""

    blame: Blame
    endpoint: str = ""  # the endpoint blamed (or suspected, when "unsure")
    level: int = 0  # its limit per window
    established: bool = False
    dropped: tuple[str, ...] = ()  # endpoints whose suspected limit this 429 disproved


class EndpointEvidence:
    """Per token: what each endpoint ("METHOD template") had admitted in the last window, and
    the endpoint limits that 429s without headers revealed.

    A refusal is the token's or an endpoint's; the answers cannot say. The evidence can:

    * refusals spread over endpoints (another one was refused lately): the token's limit;
    * an endpoint refused below the level it was refused at before, while the token is at the
      most it has shown in a window: the token's;
    * an endpoint refused again at about that level while the token has admitted less than it
      has shown (beyond the requests in flight and a little slack): the endpoint's own limit,
      established — its 429s pause only it;
    * otherwise (an endpoint's first refusal, say) it cannot tell: "unsure" — the endpoint is
      paced at what it admitted, and the token, quota kept, goes one request at a time beyond
      part of what it admitted. An endpoint limit it was then costs nothing more; a token
      limit costs one more 429 — on another endpoint, or on this one below its level — which
      settles it;
    * but the token may never get there: when the suspected limit is what holds its requests
      back (a backlog whose every worker waits on that endpoint), the token stays below what
      it had admitted and no 429 comes to settle it. So while the token is well below that
      (beyond the requests in flight and the slack), and the endpoint's last ``level``
      admissions came within ``burst_fraction`` of a window (so they are most likely all in
      the server's current window, whatever its alignment), one request of the endpoint goes
      beyond its level as a test (``test_due``): admitted, the limit is disproved — the
      refusal was the token's, at what the token had admitted then (``on_tested``); refused, the
      endpoint's own limit is established (``on_refused``: refused at its level while the
      token had room), and only the endpoint pauses.

    Time is a parameter, like everything in this module.
    """

    __slots__ = (
        "_admitted",
        "_all",
        "_limits",
        "_refusals",
        "_top",
        "burst_fraction",
        "memory_s",
        "slack",
        "window_s",
    )

    def __init__(
        self,
        window_s: float,
        *,
        slack: int = 2,
        memory_windows: float = 30.0,
        burst_fraction: float = 0.1,
    ) -> None:
        self.window_s = window_s
        self.slack = slack
        self.burst_fraction = burst_fraction
        self.memory_s = memory_windows * window_s
        self._admitted: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._top = 0  # the most the token admitted in one window
        self._refusals: deque[tuple[float, str]] = deque()
        self._limits: dict[str, EndpointLimit] = {}

    def _expire(self, times: deque[float], now: float) -> int:
        while times and times[0] + self.window_s <= now:
            times.popleft()
        return len(times)

    def limit(self, endpoint: str) -> EndpointLimit | None:
        return self._limits.get(endpoint)

    def admitted_times(self, endpoint: str, now: float) -> tuple[float, ...]:
        """When the endpoint's admitted answers of the last window arrived, oldest first."""
        times = self._admitted.get(endpoint)
        if times is None:
            return ()
        self._expire(times, now)
        return tuple(times)

    def on_answer(self, endpoint: str, *, seq: int, t_recv: float, admitted: bool) -> bool:
        """Record one answer; True when it raised an endpoint's level (an admitted request sent
        before the refusal that set it, answered after: the level missed it)."""
        if not admitted:
            return False
        self._all.append(t_recv)
        self._top = max(self._top, self._expire(self._all, t_recv))
        times = self._admitted.setdefault(endpoint, deque())
        times.append(t_recv)
        self._expire(times, t_recv)
        limit = self._limits.get(endpoint)
        if limit is None or seq > limit.refused_seq or t_recv < limit.refused_at:
            return False
        if t_recv - limit.refused_at >= self.window_s:
            return False
        self._limits[endpoint] = dataclasses.replace(limit, level=limit.level + 1)
        return True

    def test_due(self, endpoint: str, *, now: float, in_flight: int) -> bool:
        """Whether one request to ``endpoint`` may go beyond its suspected (not established)
        limit now, as a test: it has admitted its level in the last window, the last that many
        within ``burst_fraction`` of a window, no test of it is in flight, and the token —
        ``in_flight`` of its requests unanswered — is short of what it had admitted when the
        endpoint was refused by more than the slack. A token limit then cannot refuse it; only
        the endpoint's own can."""
        limit = self._limits.get(endpoint)
        if limit is None or limit.established or limit.testing:
            return False
        times = self._admitted.get(endpoint, deque())
        admitted = self._expire(times, now)
        if admitted < limit.level:
            return False
        # Only the server's current window proves anything: the last ``level`` admissions must
        # have come close together (a burst, as a full log releases them), or some may lie in
        # the server's previous window and the test pass a limit that holds.
        if times[-1] - times[-limit.level] > self.window_s * self.burst_fraction:
            return False
        token = self._expire(self._all, now)
        return token + in_flight + self.slack < limit.token_at

    def on_test(self, endpoint: str, *, seq: int) -> None:
        """The send numbered ``seq`` tests the endpoint's suspected limit (``test_due``)."""
        limit = self._limits.get(endpoint)
        if limit is not None:
            self._limits[endpoint] = dataclasses.replace(limit, test_seq=seq, testing=True)

    def on_tested(self, endpoint: str, *, seq: int, admitted: bool) -> int | None:
        """The answer to a test (``on_test``). Admitted: the endpoint went beyond the level it
        was refused at, so that refusal was the token's; the suspected limit is dropped and
        what the token had admitted then (its quota, as that refusal showed it) is returned.
        Otherwise None: refused, ``on_refused`` weighs it; unanswered, a later test may go."""
        limit = self._limits.get(endpoint)
        if limit is None or limit.test_seq != seq:
            return None
        if not admitted:
            self._limits[endpoint] = dataclasses.replace(limit, testing=False)
            return None
        del self._limits[endpoint]
        return limit.token_at

    def on_refused(self, endpoint: str, *, seq: int, now: float, in_flight: int) -> Verdict:
        """Blame one 429 without headers (not explained by the pacer's own probe)."""
        while self._refusals and self._refusals[0][0] + self.memory_s <= now:
            self._refusals.popleft()
        elsewhere = {
            other
            for _t, other in self._refusals
            if other != endpoint and not self._established(other)
        }
        self._refusals.append((now, endpoint))
        admitted = self._expire(self._admitted.get(endpoint, deque()), now)
        token = self._expire(self._all, now)
        full = token + in_flight + self.slack >= self._top
        limit = self._limits.get(endpoint)
        if elsewhere or admitted == 0 or (full and limit is not None and admitted < limit.level):
            return Verdict(blame="token", dropped=self._drop({*elsewhere, endpoint}))
        if limit is None:
            # A first refusal: the endpoint's at what it admitted, or the token's, landing here.
            self._limits[endpoint] = EndpointLimit(
                level=admitted, token_at=token, refused_seq=seq, refused_at=now
            )
            return Verdict(blame="unsure", endpoint=endpoint, level=admitted)
        if not full and admitted + self.slack >= limit.level:
            # Refused again at about its level while the token had shown more room: the
            # endpoint's own limit, below the level it was paced at when refused there (a
            # window not aligned with the server's overstated it) — or at it, when this was
            # a test beyond it (``test_due``): refused there twice.
            top = limit.level if seq == limit.test_seq else limit.level - 1
            level = max(1, min(admitted, top))
            self._limits[endpoint] = EndpointLimit(
                level=level, token_at=token, refused_seq=seq, refused_at=now, established=True
            )
            return Verdict(blame="endpoint", endpoint=endpoint, level=level, established=True)
        # At its level with the token at its most, or well below it with the token short of
        # its most (a budget someone else spends too): still cannot tell.
        level = min(admitted, limit.level)
        self._limits[endpoint] = dataclasses.replace(limit, level=level)
        return Verdict(blame="unsure", endpoint=endpoint, level=level)

    def _established(self, endpoint: str) -> bool:
        limit = self._limits.get(endpoint)
        return limit is not None and limit.established

    def _drop(self, endpoints: set[str]) -> tuple[str, ...]:
        dropped = tuple(
            sorted(e for e in endpoints if e in self._limits and not self._established(e))
        )
        for endpoint in dropped:
            del self._limits[endpoint]
        return dropped
