"""The request limiter: a priority queue in front of one pacer per token of the pool.

Role: every API request waits here for a send slot. Waiters are served by priority (lower
first, then arrival), so a failover-driven write overtakes queued routine ones, and work below
failover priority leaves a small reserve of each window unspent (``failover_reserve``), so a
failover request finds room even while a backlog drains; the slot goes to the token of the
pool that can send earliest (fewest requests in flight on a tie). Only the head of the queue
watches the clock and the pacers; the others sleep until they become the head, one woken at a
time — except behind a head pinned to one token (a notification channel's call), which holds
back its own token only: the next waiter decides too, on the other tokens. An endpoint with a
limit of its own (found from its headers, or from 429s without them) gets a pacer of its own,
which its requests pass as well. The arithmetic — header-driven pacing, the sliding log, the
429 pause, AIMD, whom a 429 is blamed on — lives in the pure ``syncd.core.pacing``; this module
only waits on it, with an injectable clock and sleep.

It must not perform HTTP, translate errors or know about credentials; it must not let a
request wait longer than the configured maximum Retry-After without failing it clearly.

aiolimiter is not used: it cannot pause, cannot change its rate at run time and starts with a
burst it does not know the server allows; a small scheduler over ``core.pacing`` does all three.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import heapq
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from syncd import errors
from syncd.core import model, pacing
from syncd.genesys import budget

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class LimiterObserver(Protocol):
    """What the limiter and transport report for metrics (``obs.metrics.Metrics`` implements it)."""

    def on_wait(self, token: str, seconds: float) -> None: ...

    def on_pause(self, token: str, paused: bool) -> None: ...

    def on_budget(self, token: str, remaining: float) -> None: ...

    def on_retry(self, reason: str) -> None: ...

    def on_retry_budget_exhausted(self, retry_class: str) -> None: ...

    def on_retry_after_too_long(self, endpoint: str, seconds: float) -> None: ...

    def on_queue_depth(self, depth: int) -> None: ...


class NullObserver:
    """The default observer: reports go nowhere."""

    def on_wait(self, token: str, seconds: float) -> None:
        pass

    def on_pause(self, token: str, paused: bool) -> None:
        pass

    def on_budget(self, token: str, remaining: float) -> None:
        pass

    def on_retry(self, reason: str) -> None:
        pass

    def on_retry_budget_exhausted(self, retry_class: str) -> None:
        pass

    def on_retry_after_too_long(self, endpoint: str, seconds: float) -> None:
        pass

    def on_queue_depth(self, depth: int) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Lease:
    """One granted send slot: which token, and the pacer's number for that send."""

    index: int
    label: str
    seq: int
    granted_at: float
    endpoint: str = ""  # "METHOD template", the key of an endpoint's own limit
    endpoint_seq: int = 0  # the endpoint pacer's number for that send (0: none yet)
    # Sent beyond its endpoint's suspected limit, to test it (``EndpointEvidence.test_due``).
    endpoint_test: bool = False


@dataclass(order=True, slots=True)
class _Waiter:
    """One queued request; ordered by (priority, arrival). ``wake`` is set to rouse it;
    ``token``: the one token of the pool it may use (None: any)."""

    priority: int
    arrival: int
    token: int | None = field(compare=False, default=None)
    wake: asyncio.Event = field(compare=False, default_factory=asyncio.Event)


class Limiter:
    """Priority-ordered admission over the pacers of a token pool."""

    def __init__(
        self,
        labels: Sequence[str],
        config: pacing.PacingConfig,
        *,
        max_retry_after_s: float = 180.0,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        observer: LimiterObserver | None = None,
        shared: budget.SharedBudget | None = None,
    ) -> None:
        if not labels:
            raise ValueError("the limiter needs at least one token")
        self.labels = tuple(labels)
        self.config = config
        self.max_retry_after_s = max_retry_after_s
        self._clock = clock
        self._sleep = sleep
        self._observer: LimiterObserver = observer or NullObserver()
        # Replicas of one OAuth client draw from a shared budget after the local pacer.
        self._shared: budget.SharedBudget = shared or budget.Unshared()
        now = clock()
        self.pacers = [pacing.Pacer(config, now=now) for _ in self.labels]
        self._paused = [False] * len(self.labels)
        self._queue: list[_Waiter] = []
        self._counter = itertools.count()
        # Endpoints with a limit of their own, below the token's (docs/genesys-setup.md: some
        # have one): a pacer per (token, endpoint), found from the headers of their answers
        # (an ``allowed`` below the largest the token has shown). A request passes both.
        self._top_allowed = [0] * len(self.labels)
        self.endpoint_pacers: dict[tuple[int, str], pacing.Pacer] = {}
        self._endpoint_429: set[Lease] = set()
        self._in_flight: collections.Counter[tuple[int, str]] = collections.Counter()
        # Without headers, 429s are the only word: per token, what each endpoint had admitted
        # when one came, to tell an endpoint's own limit from the token's.
        self.evidence = [pacing.EndpointEvidence(config.window_s) for _ in self.labels]

    def set_quota(self, quota: int, *, token_index: int | None = None) -> None:
        """A token's known quota per window (every token's when ``token_index`` is None), e.g.
        the org's limit read at start: its pacer paces by it from now on."""
        now = self._clock()
        for index in range(len(self.pacers)) if token_index is None else (token_index,):
            self.pacers[index].set_quota(quota, now=now)
        if token_index is None:
            self.config = dataclasses.replace(self.config, quota=quota)
        self._wake_head()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def _wake_head(self) -> None:
        # Only the deciders (``_tokens_for``) look; everyone else sleeps until one leaves.
        if not self._queue:
            return
        head = self._queue[0]
        head.wake.set()
        if head.token is None:
            return
        for waiter in sorted(self._queue)[1:]:
            waiter.wake.set()
            if waiter.token is None:
                return

    def _tokens_for(self, waiter: _Waiter) -> tuple[int, ...]:
        """The tokens ``waiter`` may be granted now (empty: it must wait to be woken).

        The head decides on every token it may use. A waiter behind heads pinned to one token
        each (a notification channel's calls) decides too, on the tokens none of them holds: a
        pinned head waiting for its token (paused, spent) must not hold back the others. Any
        waiter behind an unpinned one waits: that one goes first on every token.
        """
        every = range(len(self.pacers))
        if self._queue[0] is waiter:
            return tuple(every) if waiter.token is None else (waiter.token,)
        if self._queue[0].token is None:
            return ()
        held: set[int] = set()
        for ahead in sorted(self._queue):
            if ahead is waiter:
                break
            if ahead.token is None:
                return ()
            held.add(ahead.token)
        if waiter.token is not None:
            return () if waiter.token in held else (waiter.token,)
        return tuple(i for i in every if i not in held)

    async def _wait(self, waiter: _Waiter, delay: float | None) -> None:
        """Until ``waiter`` is woken, or ``delay`` seconds have passed."""
        if delay is None:
            await waiter.wake.wait()
        else:
            woken = asyncio.ensure_future(waiter.wake.wait())
            sleeper = asyncio.ensure_future(self._sleep(max(0.0, delay)))
            try:
                await asyncio.wait({woken, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
                sleeper.cancel()
        waiter.wake.clear()

    def _pick(
        self, now: float, keep_reserve: bool, endpoint: str, tokens: Sequence[int]
    ) -> tuple[int, float | None, bool]:
        """The token of ``tokens`` to send on, when (None: only after an answer), and whether
        the send tests its endpoint's suspected limit (goes beyond it: ``_by_endpoint``)."""
        best: tuple[float, int, int, bool] | None = None
        for index in tokens:
            pacer = self.pacers[index]
            when = pacer.next_send_at(now, keep_reserve=keep_reserve)
            test = False
            if when is not None:
                when, test = self._by_endpoint(index, endpoint, now, when)
            key = (math.inf if when is None else max(when, now), pacer.in_flight, index, test)
            if best is None or key < best:
                best = key
        if best is None:  # unreachable: callers pick among one token at least
            raise RuntimeError("no token to pick from")
        return best[2], None if best[0] == math.inf else best[0], best[3]

    def _by_endpoint(
        self, index: int, endpoint: str, now: float, when: float
    ) -> tuple[float | None, bool]:
        """When the token ``index`` (ready at ``when``) may send to ``endpoint`` by the
        endpoint's own pacer too, and whether that send is a test of its suspected limit: when
        the token is ready now but the endpoint's pacer holds it back, and the evidence says a
        test is due (``EndpointEvidence.test_due``), it goes now — else a suspected limit that
        holds every request back keeps the token short of the level that would settle it."""
        own = self.endpoint_pacers.get((index, endpoint))
        if own is None:
            return when, False
        # The failover reserve is the token's; an endpoint's own limit is spent whole.
        by_endpoint = own.next_send_at(now)
        if by_endpoint is not None and by_endpoint <= now:
            return max(when, now), False
        if (
            when <= now
            and now >= own.paused_until
            and not own.headers_seen
            and self.evidence[index].test_due(
                endpoint, now=now, in_flight=self.pacers[index].in_flight
            )
        ):
            return now, True
        return None if by_endpoint is None else max(when, by_endpoint), False

    async def acquire(
        self,
        priority: int,
        *,
        endpoint: str = "",
        method: str = "",
        token_index: int | None = None,
    ) -> Lease:
        """Wait for a send slot (the local pacer, then the shared budget); lower ``priority``
        values are served first. ``token_index`` pins the request to one token of the pool (a
        notification channel belongs to the OAuth client that created it, so its
        subscriptions must use that client's token)."""
        if token_index is not None and not 0 <= token_index < len(self.pacers):
            raise ValueError(f"token {token_index} is not in the pool of {len(self.pacers)}")
        lease = await self._acquire_local(
            priority, endpoint=endpoint, method=method, token_index=token_index
        )
        try:
            await self._shared.take(lease.label, max_wait_s=self.max_retry_after_s)
        except errors.RetryAfterTooLong as exc:
            # A pause another replica published, longer than the maximum: fail as for our own.
            self.release(lease, status=0, headers=None)
            self._observer.on_retry_after_too_long(endpoint, exc.retry_after_s)
            raise
        except BaseException:
            self.release(lease, status=0, headers=None)
            raise
        return lease

    async def _acquire_local(
        self, priority: int, *, endpoint: str, method: str, token_index: int | None = None
    ) -> Lease:
        key = f"{method} {endpoint}"
        waiter = _Waiter(int(priority), next(self._counter), token_index)
        heapq.heappush(self._queue, waiter)
        self._observer.on_queue_depth(len(self._queue))
        enqueued = self._clock()
        # Work below failover priority leaves the failover reserve of each window unspent.
        keep_reserve = waiter.priority > model.Priority.FAILOVER
        granted = False
        try:
            while True:
                tokens = self._tokens_for(waiter)
                if not tokens:
                    await self._wait(waiter, None)
                    continue
                now = self._clock()
                index, when, test = self._pick(now, keep_reserve, key, tokens)
                if when is not None and when <= now:
                    if self._queue[0] is waiter:
                        heapq.heappop(self._queue)
                    else:
                        self._queue.remove(waiter)
                        heapq.heapify(self._queue)
                    granted = True
                    return self._grant(index, now, enqueued, key, test=test)
                if self._queue[0] is not waiter:
                    # Behind a pinned head, on the other tokens: only the head gives up. This
                    # one looks again when they can send, or when it is woken — by the head
                    # leaving, which it does within the maximum: no longer wait is its own.
                    far = when is None or when - now > self.max_retry_after_s
                    await self._wait(waiter, None if when is None or far else when - now)
                    continue
                if when is not None and when - now > self.max_retry_after_s:
                    self._observer.on_retry_after_too_long(endpoint, when - now)
                    raise errors.RetryAfterTooLong(
                        f"Every token is paused for {when - now:.0f} seconds, longer than the"
                        f" configured maximum of {self.max_retry_after_s:.0f} seconds.",
                        retry_after_s=when - now,
                        status=429,
                        endpoint=endpoint,
                    )
                await self._wait(waiter, None if when is None else when - now)
        finally:
            if not granted:
                # Cancelled or failed while queued: leave the queue and let the next one in.
                try:
                    self._queue.remove(waiter)
                    heapq.heapify(self._queue)
                except ValueError:
                    pass
            self._wake_head()
            self._observer.on_queue_depth(len(self._queue))

    def _grant(
        self, index: int, now: float, enqueued: float, endpoint: str, *, test: bool = False
    ) -> Lease:
        pacer = self.pacers[index]
        own = self.endpoint_pacers.get((index, endpoint))
        endpoint_seq = own.on_send(now) if own is not None else 0
        self._in_flight[(index, endpoint)] += 1
        label = self.labels[index]
        if self._paused[index] and now >= pacer.paused_until:
            self._paused[index] = False
            self._observer.on_pause(label, False)
            log.info("Token %s resumes sending after its rate-limit pause.", label)
        seq = pacer.on_send(now)
        if test:
            self.evidence[index].on_test(endpoint, seq=seq)
        self._observer.on_wait(label, max(0.0, now - enqueued))
        return Lease(
            index=index,
            label=label,
            seq=seq,
            granted_at=now,
            endpoint=endpoint,
            endpoint_seq=endpoint_seq,
            endpoint_test=test,
        )

    def release(
        self,
        lease: Lease,
        *,
        status: int,
        headers: pacing.RateHeaders | None,
        t_recv: float | None = None,
    ) -> None:
        """Feed back the answer to a leased request (status 0: none arrived)."""
        now = self._clock() if t_recv is None else t_recv
        pacer = self.pacers[lease.index]
        own, own_seq = self._endpoint_limit(lease, headers, now)
        self._in_flight[(lease.index, lease.endpoint)] -= 1
        if (
            own is not None
            and headers is not None
            and headers.allowed < self._top_allowed[lease.index]
        ):
            # The headers are the endpoint's: they feed its pacer; the token counts the send.
            pacer.on_response(
                lease.seq, t_recv=now, status=status, headers=None, headers_elsewhere=True
            )
            own.on_response(own_seq, t_recv=now, status=status, headers=headers)
            if status == 429:
                self._endpoint_429.add(lease)
        else:
            pacer.on_response(lease.seq, t_recv=now, status=status, headers=headers)
            if own is not None:
                own.on_response(
                    own_seq, t_recv=now, status=status, headers=None, headers_elsewhere=True
                )
        if lease.endpoint:
            evidence = self.evidence[lease.index]
            admitted = status not in (0, 429)
            if evidence.on_answer(lease.endpoint, seq=lease.seq, t_recv=now, admitted=admitted):
                self._learn_endpoint(lease.index, lease.endpoint, now)
            if lease.endpoint_test:
                self._tested(lease, admitted=admitted, now=now)
        self._observer.on_budget(lease.label, pacer.budget(now))
        self._wake_head()

    def _tested(self, lease: Lease, *, admitted: bool, now: float) -> None:
        """The answer to a test of an endpoint's suspected limit: admitted beyond it, the limit
        is disproved — the 429 that suggested it was the token's, whose quota it shows."""
        shown = self.evidence[lease.index].on_tested(
            lease.endpoint, seq=lease.seq, admitted=admitted
        )
        if shown is None:
            return
        self.endpoint_pacers.pop((lease.index, lease.endpoint), None)
        self.pacers[lease.index].on_token_limit_shown(now, admitted=shown)
        log.info(
            "%s is no longer paced apart: it admitted more than the level it was refused at,"
            " so the token's limit (%d per window) it was.",
            lease.endpoint,
            shown,
        )

    def _learn_endpoint(self, index: int, endpoint: str, now: float) -> pacing.Pacer | None:
        """(Re)make the pacer of an endpoint whose own limit 429s without headers showed, at
        the level the evidence holds; None when it holds none (or headers pace it)."""
        limit = self.evidence[index].limit(endpoint)
        old = self.endpoint_pacers.get((index, endpoint))
        if limit is None or (old is not None and old.headers_seen):
            return old
        if old is not None and old.config.quota == limit.level:
            return old
        config = dataclasses.replace(self.config, quota=limit.level)
        own = pacing.Pacer(config, now=now)
        # The server's windows are the token's: no refill probe of its own (it would cost the
        # endpoint a 429 and a pause to learn what the token's pacer knows or will find out).
        own.refill = self.pacers[index].refill or "window"
        # Its log starts with what the endpoint admitted in the window, then what is in flight.
        for t_recv in self.evidence[index].admitted_times(endpoint, now):
            own.on_response(own.on_send(t_recv), t_recv=t_recv, status=200, headers=None)
        for _ in range(self._in_flight[(index, endpoint)]):
            own.on_send(now)
        if old is not None:
            own.paused_until = old.paused_until
        else:
            log.info(
                "%s seems to have a rate limit of its own (%d per window: 429s without rate-limit"
                " headers showed it); it is paced separately.",
                endpoint,
                limit.level,
            )
        self.endpoint_pacers[(index, endpoint)] = own
        return own

    def _endpoint_limit(
        self, lease: Lease, headers: pacing.RateHeaders | None, now: float
    ) -> tuple[pacing.Pacer | None, int]:
        """The lease's endpoint pacer (made when its headers first show a lower limit than
        the token's), and the number of this send in it."""
        key = (lease.index, lease.endpoint)
        own = self.endpoint_pacers.get(key)
        if headers is None or not lease.endpoint:
            return own, lease.endpoint_seq
        top = self._top_allowed[lease.index] = max(self._top_allowed[lease.index], headers.allowed)
        if own is None and headers.allowed < top:
            config = dataclasses.replace(self.config, quota=headers.allowed)
            own = self.endpoint_pacers[key] = pacing.Pacer(config, now=now)
            log.info(
                "%s has a rate limit of its own (%d per window, below the token's %d);"
                " it is paced separately.",
                lease.endpoint,
                headers.allowed,
                top,
            )
            # Its log starts with what the server counted already (answered before we knew),
            # then the requests still in flight; this one last. A count beyond the limit says
            # "spent" and no more: it is not taken for that many entries (a broken header's
            # count of billions would stop the event loop).
            for _ in range(min(headers.count, headers.allowed) - 1):
                own.on_response(own.on_send(now), t_recv=now, status=200, headers=None)
            for _ in range(self._in_flight[key] - 1):
                own.on_send(now)
            return own, own.on_send(now)
        return own, lease.endpoint_seq

    def throttled(
        self, lease: Lease, *, retry_after_s: float, jitter_s: float, with_headers: bool
    ) -> float:
        """A 429 on the lease's token: pause every request of that token — or, when the
        endpoint's own limit refused it, every request of that endpoint. Returns the end."""
        now = self._clock()
        if lease in self._endpoint_429:
            self._endpoint_429.discard(lease)
            own = self.endpoint_pacers[(lease.index, lease.endpoint)]
            return self._pause_endpoint(own, lease, now, retry_after_s, jitter_s)
        pacer = self.pacers[lease.index]
        blame: pacing.Blame = "token"
        if not with_headers and lease.endpoint and not pacer.refusal_explained(lease.seq):
            verdict = self.evidence[lease.index].on_refused(
                lease.endpoint, seq=lease.seq, now=now, in_flight=pacer.in_flight
            )
            for endpoint in verdict.dropped:
                if self.endpoint_pacers.pop((lease.index, endpoint), None) is not None:
                    log.info("%s is no longer paced apart: the token's limit it was.", endpoint)
            blame = verdict.blame
            if blame != "token":
                was_paced = (lease.index, lease.endpoint) in self.endpoint_pacers
                learned = self._learn_endpoint(lease.index, lease.endpoint, now)
                if learned is not None and was_paced and blame == "endpoint":
                    # Shown beyond doubt, and paced apart already: pause that endpoint only.
                    return self._pause_endpoint(learned, lease, now, retry_after_s, jitter_s)
        until = pacer.on_throttled(
            now=now,
            retry_after_s=retry_after_s,
            jitter_s=jitter_s,
            with_headers=with_headers,
            seq=lease.seq,
            blame=blame,
        )
        if not self._paused[lease.index]:
            self._paused[lease.index] = True
            self._observer.on_pause(lease.label, True)
        self._shared.throttled(lease.label, until - now)
        log.warning(
            "Token %s was rate limited; all its requests pause for %.2f seconds"
            " (assumed quota now %.0f per %.0f seconds).",
            lease.label,
            until - now,
            pacer.assumed_quota,
            self.config.window_s,
        )
        self._wake_head()
        return until

    def _pause_endpoint(
        self, own: pacing.Pacer, lease: Lease, now: float, retry_after_s: float, jitter_s: float
    ) -> float:
        """A 429 of an endpoint's own limit: pause that endpoint's requests only."""
        until = own.on_throttled(
            now=now,
            retry_after_s=retry_after_s,
            jitter_s=jitter_s,
            with_headers=own.headers_seen,
            blame="endpoint",
        )
        log.warning(
            "%s was rate limited by its own limit; its requests pause for %.2f seconds.",
            lease.endpoint,
            until - now,
        )
        self._wake_head()
        return until
