"""Server-side rate-limit models of the simulator, one class per model, plus predictions.

Role: decide, per access token, whether a request is admitted, and what a 429 says
(`Retry-After`) and what the `inin-ratelimit-*` headers say. Time is always a parameter
(seconds of the injectable monotonic clock), so the models are pure state machines. The
`predict_*` functions compute the expected outcome in closed form, independently of the
classes, so tests and benchmarks can compare what the server did against the theory.

It must not sleep, read a clock, or know anything about HTTP or the daemon.

Models (quota Q, window W seconds):

* ``fixed-window``: windows are aligned to the token's first request, ``[t0 + kW, t0 + (k+1)W)``.
  At most Q requests are admitted per window; rejected requests do not count.
  ``Retry-After = ceil(window end - now)``, at least 1.
* ``token-bucket``: a bucket of capacity Q, full at the first request, refilled continuously at
  Q/W tokens per second; a request takes one token. ``Retry-After = ceil(time until one token)``,
  at least 1.
* ``counts-rejected``: like ``fixed-window`` but every request uses one unit of the window,
  admitted or not. Units used beyond Q in window k (that is: the rejected requests) are a debt
  charged to window k+1 (capped at Q) — a client that hammers during a window shrinks its next
  window. Debt is only charged to the immediately following window; a whole idle window clears it.
  ``Retry-After`` is the wait until the first admissible instant if the client sends nothing
  more: the end of the window, or the end of the next one if the debt alone will fill it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from syncd.sim.options import RateModelName


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one request against a token's limiter."""

    admitted: bool
    retry_after: int  # seconds; meaningful only when not admitted
    count: int  # inin-ratelimit-count
    allowed: int  # inin-ratelimit-allowed
    reset: int  # inin-ratelimit-reset, seconds


class RateModel(Protocol):
    """A per-token limiter: one call per request, `now` in monotonic seconds."""

    def hit(self, now: float) -> Decision: ...

    def peek(self, now: float) -> Decision: ...


def _ceil_s(seconds: float) -> int:
    # Round up with a small tolerance so 2.0000000001 (float noise) is still 2.
    return max(1, math.ceil(seconds - 1e-9))


class FixedWindow:
    """At most `quota` admitted requests per aligned window; rejections are free."""

    def __init__(self, quota: int, window_s: float) -> None:
        self.quota = quota
        self.window_s = window_s
        self._t0: float | None = None
        self._index = 0
        self._used = 0

    def _roll(self, now: float) -> float:
        if self._t0 is None:
            self._t0 = now
        index = math.floor((now - self._t0) / self.window_s)
        if index != self._index:
            self._index = index
            self._used = 0
        return self._t0 + (index + 1) * self.window_s

    def hit(self, now: float) -> Decision:
        end = self._roll(now)
        reset = _ceil_s(end - now)
        if self._used < self.quota:
            self._used += 1
            return Decision(True, 0, self._used, self.quota, reset)
        return Decision(False, reset, self._used, self.quota, reset)

    def peek(self, now: float) -> Decision:
        if self._t0 is None:
            return Decision(True, 0, 0, self.quota, _ceil_s(self.window_s))
        end = self._roll(now)
        reset = _ceil_s(end - now)
        return Decision(self._used < self.quota, reset, self._used, self.quota, reset)


class CountsRejected(FixedWindow):
    """Fixed aligned windows in which rejected requests count and carry over as debt
    (``_used`` holds the units of the current window, debt included)."""

    def _roll(self, now: float) -> float:
        if self._t0 is None:
            self._t0 = now
        index = math.floor((now - self._t0) / self.window_s)
        if index != self._index:
            debt = max(0, self._used - self.quota) if index == self._index + 1 else 0
            self._index = index
            self._used = min(self.quota, debt)
        return self._t0 + (index + 1) * self.window_s

    def hit(self, now: float) -> Decision:
        end = self._roll(now)
        reset = _ceil_s(end - now)
        admitted = self._used < self.quota
        self._used += 1
        if admitted:
            return Decision(True, 0, self._used, self.quota, reset)
        debt = self._used - self.quota
        wait = end - now if debt < self.quota else end - now + self.window_s
        return Decision(False, _ceil_s(wait), self._used, self.quota, reset)


class TokenBucket:
    """Capacity `quota`, refilled continuously at quota/window_s tokens per second."""

    def __init__(self, quota: int, window_s: float) -> None:
        self.quota = quota
        self.rate = quota / window_s
        self._tokens = float(quota)
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(float(self.quota), self._tokens + (now - self._last) * self.rate)
        if self._last is None or now > self._last:
            self._last = now

    def _decision(self, admitted: bool, retry_after: int) -> Decision:
        used = self.quota - math.floor(self._tokens + 1e-9)
        reset = _ceil_s((self.quota - self._tokens) / self.rate) if used > 0 else 0
        return Decision(admitted, retry_after, used, self.quota, reset)

    def hit(self, now: float) -> Decision:
        self._refill(now)
        if self._tokens >= 1.0 - 1e-9:
            self._tokens -= 1.0
            return self._decision(True, 0)
        return self._decision(False, _ceil_s((1.0 - self._tokens) / self.rate))

    def peek(self, now: float) -> Decision:
        self._refill(now)
        return self._decision(self._tokens >= 1.0 - 1e-9, 0)


def make_model(name: RateModelName, quota: int, window_s: float) -> RateModel:
    """A fresh limiter of the named model."""
    if name == "fixed-window":
        return FixedWindow(quota, window_s)
    if name == "token-bucket":
        return TokenBucket(quota, window_s)
    return CountsRejected(quota, window_s)


class Budgets:
    """Every rate limit a request passes: the budget it spends (its token's, or its OAuth
    client's when tokens share one) and the endpoint limit whose family it belongs to.

    A request refused by its endpoint limit does not spend the main budget (the real service
    answers before the call is counted; an assumption, documented in docs/simulator.md). The
    ``inin-ratelimit-*`` headers of an admitted request describe the tighter of the two.
    """

    def __init__(
        self,
        model: RateModelName,
        quota: int,
        window_s: float,
        *,
        per: str = "token",
        endpoint_limits: Sequence[tuple[str, str, int]] = (),
    ) -> None:
        self.model = model
        self.quota = quota
        self.window_s = window_s
        self.per = per
        self.endpoint_limits = tuple(endpoint_limits)
        self._models: dict[tuple[str, int], RateModel] = {}

    def _limiter(self, key: str, slot: int, quota: int) -> RateModel:
        found = self._models.get((key, slot))
        if found is None:
            found = make_model(self.model, quota, self.window_s)
            self._models[(key, slot)] = found
        return found

    def _endpoint(self, method: str, route: str) -> int | None:
        for index, (m, prefix, _quota) in enumerate(self.endpoint_limits):
            if m == method and route.startswith(prefix):
                return index
        return None

    def hit(self, now: float, *, token: str, client_id: str, method: str, route: str) -> Decision:
        """Count one request against every limit it passes; the decision the client sees."""
        key = client_id if self.per == "client" else token
        main = self._limiter(key, -1, self.quota)
        index = self._endpoint(method, route)
        if index is None:
            return main.hit(now)
        endpoint = self._limiter(key, index, self.endpoint_limits[index][2])
        if not endpoint.peek(now).admitted:
            return endpoint.hit(now)
        first = main.hit(now)
        if not first.admitted:
            return first
        second = endpoint.hit(now)
        return min(first, second, key=lambda d: (d.allowed - d.count, -d.reset))


# --- predictions (closed form, independent of the classes above) -------------------------


def predict_rejections(
    model: RateModelName, quota: int, window_s: float, bursts: Sequence[tuple[float, int]]
) -> int:
    """Number of 429s a fresh token gets for `bursts` of (time offset from first request, n).

    Bursts are instantaneous (all n requests at the same instant) and in time order; the first
    burst must be at offset 0. This is the theory the tests hold the server to.
    """
    if model == "token-bucket":
        rate = quota / window_s
        tokens = float(quota)
        last = 0.0
        rejected = 0
        for t, n in bursts:
            tokens = min(float(quota), tokens + (t - last) * rate)
            last = t
            take = min(n, math.floor(tokens + 1e-9))
            tokens -= take
            rejected += n - take
        return rejected
    per_window: dict[int, int] = {}
    for t, n in bursts:
        k = math.floor(t / window_s)
        per_window[k] = per_window.get(k, 0) + n
    if model == "fixed-window":
        return sum(max(0, n - quota) for n in per_window.values())
    rejected = 0
    carry = 0
    previous: int | None = None
    for k in sorted(per_window):
        # Debt is charged only to the window right after the one that ran it up.
        debt = carry if previous is not None and k == previous + 1 else 0
        used = min(quota, debt) + per_window[k]
        rejected += min(per_window[k], max(0, used - quota))
        carry = max(0, used - quota)
        previous = k
    return rejected


def optimal_duration(model: RateModelName, n: int, quota: int, window_s: float) -> float:
    """Shortest time (seconds from the first request) in which one token can get `n` requests
    admitted with zero 429s: the benchmark's theoretical optimum."""
    if n <= 0:
        return 0.0
    if model == "token-bucket":
        return max(0.0, (n - quota) * window_s / quota)
    # Both window models admit Q per window; the last batch goes at the start of its window.
    return (math.ceil(n / quota) - 1) * window_s
