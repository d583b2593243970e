"""Coordination of replicas on Redis: one leader lease with fencing epochs, one shared API budget.

Role: the Redis I/O of high availability (docs/ha.md). ``Coordinator`` runs the lease loop
(acquire with ``SET NX PX`` inside a Lua script that also increments the epoch, renew every
``retry_s``, step down when it cannot renew within ``renew_deadline_s``), answers the engine's
``Fence`` (``permit()`` before every write: the epoch to record and the deadline to abandon the
write at; ``deadline_of()`` when that deadline arrives: later if the lease was renewed meanwhile)
and the limiter's ``SharedBudget`` (a GCRA per OAuth client in one atomic Lua script, the
algorithm of redis-cell's ``CL.THROTTLE``, plus a pause that a 429 on any replica publishes for
all). Every timing decision is ``core.lease``'s; this module only talks to Redis, sleeps and
reports.

Faults: any Redis error counts as "cannot renew"; the leader keeps its lease only until
``core.lease.stop_at`` (always within the renew deadline) and then stops writing; the shared
budget falls back to the local pacer alone while Redis is unreachable (reads go on, nobody
writes). It must not decide what to write, touch the audit trail or log the Redis password.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
import redis.exceptions

from syncd import errors
from syncd.core import lease
from syncd.engine import ports

log = logging.getLogger(__name__)

# KEYS: leader, epoch counter, history stream. ARGV: holder, lease ms, epoch floor.
# Returns {epoch, 1} when this call took (or already held) the lease, else {current epoch, pttl}.
ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, ':', 1, true)
  local epoch = tonumber(string.sub(cur, 1, sep - 1))
  if string.sub(cur, sep + 1) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {epoch, -1}
  end
  return {epoch, redis.call('PTTL', KEYS[1])}
end
local epoch = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if epoch <= floor then
  epoch = floor + 1
  redis.call('SET', KEYS[2], epoch)
end
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'PX', ARGV[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 1000, '*', 'epoch', epoch, 'holder', ARGV[1])
return {epoch, -1}
"""

# KEYS: leader. ARGV: "epoch:holder", lease ms. 1 when renewed, 0 when the lease is not ours.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: leader. ARGV: "epoch:holder". Deletes the lease only when it is still ours.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# GCRA as redis-cell's CL.THROTTLE computes it, in microseconds of Redis' clock (or of ARGV[4]
# when given, for tests). KEYS: theoretical arrival time, published pause. ARGV: emission
# interval, delay variation tolerance (= interval * (burst + 1)), quantity, [now].
# Returns {allowed 0/1, wait µs (-1: never), remaining}.
GCRA = """
local now
if ARGV[4] and ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then
  return {0, pause * 1000, 0}
end
local interval = tonumber(ARGV[1])
local dvt = tonumber(ARGV[2])
local increment = interval * tonumber(ARGV[3])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = tonumber(stored) end
local new_tat
if now > tat then new_tat = now + increment else new_tat = tat + increment end
local diff = now - (new_tat - dvt)
local ttl
local allowed = 1
local wait = 0
if diff < 0 then
  allowed = 0
  wait = -1
  if increment <= dvt then wait = -diff end
  ttl = tat - now
else
  ttl = new_tat - now
  local px = math.max(1, math.ceil(ttl / 1000))
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', px)
end
local remaining = 0
local next = dvt - ttl
if next > -interval then remaining = math.floor(next / interval) end
return {allowed, math.ceil(wait), remaining}
"""

# KEYS: pause. ARGV: ms. Publishes a pause unless a longer one is already published.
PAUSE = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  return 1
end
return 0
"""

REDIS_ERRORS = (redis.exceptions.RedisError, OSError, TimeoutError)


class CoordinationObserver(Protocol):
    """What the coordinator reports (``obs.metrics.Metrics`` implements it)."""

    def set_coordination(self, *, lease: str, up: bool, leader: bool, epoch: int) -> None: ...
    def on_coordination_error(self, operation: str) -> None: ...
    def on_leadership(self, acquired: bool) -> None: ...
    def on_shared_budget_wait(self, seconds: float) -> None: ...


class NullCoordinationObserver:
    def set_coordination(self, *, lease: str, up: bool, leader: bool, epoch: int) -> None:
        pass

    def on_coordination_error(self, operation: str) -> None:
        pass

    def on_leadership(self, acquired: bool) -> None:
        pass

    def on_shared_budget_wait(self, seconds: float) -> None:
        pass


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetSettings:
    """The shared GCRA of one OAuth client: ``quota`` requests per ``window_s``, ``burst`` of
    them at once. The sustained rate leaves room for the burst, so no window of ``window_s``
    (however aligned) admits more than ``quota``."""

    quota: int
    window_s: float
    burst: int = 0

    @property
    def interval_us(self) -> float:
        return self.window_s * 1e6 / max(1, self.quota - self.burst - 1)

    @property
    def tolerance_us(self) -> float:
        return self.interval_us * (self.burst + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Throttle:
    """One answer of the GCRA script."""

    allowed: bool
    wait_s: float  # how long until one more would be admitted (inf: never)
    remaining: int


def holder_id() -> str:
    """Unique per process start: host, pid and a random suffix (a restarted replica is new)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Coordinator:
    """The leader lease (``ports.Fence``) and the shared budget (``genesys.budget``) on Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        key_prefix: str,
        timing: lease.LeaseTiming,
        budget: BudgetSettings,
        holder: str | None = None,
        epoch_floor: int = 0,
        observer: CoordinationObserver | None = None,
        on_elected: Callable[[], None] | None = None,
        on_epoch: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.prefix = key_prefix
        self.timing = timing
        self.budget = budget
        self.holder = holder or holder_id()
        self.epoch_floor = epoch_floor
        self.observer: CoordinationObserver = observer or NullCoordinationObserver()
        self.on_elected = on_elected
        self.on_epoch = on_epoch
        self._clock = clock
        self._sleep = sleep
        self._held: lease.Held | None = None
        self._up = True
        self._clients: dict[str, str] = {}
        self._budget_down_until = -math.inf
        self._tasks: set[asyncio.Task[None]] = set()
        self._acquire = client.register_script(ACQUIRE)
        self._renew = client.register_script(RENEW)
        self._release = client.register_script(RELEASE)
        self._gcra = client.register_script(GCRA)
        self._pause = client.register_script(PAUSE)

    # -- keys -----------------------------------------------------------------------------

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def leader_key(self) -> str:
        return self.key("leader")

    # -- the fence (engine.ports.Fence) ----------------------------------------------------

    def leading(self) -> bool:
        return lease.is_leading(self._held, self.timing, now=self._clock())

    def permit(self) -> ports.Permit:
        held = self._held
        deadline = lease.write_deadline(held, self.timing, now=self._clock())
        if held is None or deadline is None:
            raise errors.NotLeader(
                "this replica does not hold the leader lease with enough time left for a write"
            )
        return ports.Permit(epoch=held.epoch, deadline=deadline)

    def deadline_of(self, permit: ports.Permit) -> float | None:
        # ``_held`` changes by a renewal of the same epoch (``stop_at`` moves later: the key
        # stayed ours in Redis, nobody else can have written), a step-down (None: the write
        # ends) or an acquisition (a new epoch: the write ends; the same one only when the
        # key was still ours, which again nobody else can have held meanwhile).
        return lease.deadline_of(self._held, self.timing, epoch=permit.epoch)

    @property
    def epoch(self) -> int | None:
        return None if self._held is None else self._held.epoch

    # -- the lease loop --------------------------------------------------------------------

    async def run(self) -> None:
        """Acquire or renew every ``retry_s`` until cancelled; never ends on a Redis error."""
        while True:
            delay = await self.step()
            await self._sleep(delay)

    async def step(self) -> float:
        """One acquire or renew attempt; returns the seconds until the next one."""
        sent = self._clock()
        held = self._held
        if held is not None and not lease.is_leading(held, self.timing, now=sent):
            self._step_down("it could not renew the lease within the renew deadline")
            held = None
        try:
            async with asyncio.timeout(self.timing.retry_s):
                if held is None:
                    return await self._try_acquire(sent)
                return await self._try_renew(held, sent)
        except REDIS_ERRORS as exc:
            self._redis_failed("lease", exc)
            return self.timing.retry_s
        finally:
            self._report()

    async def _try_acquire(self, sent: float) -> float:
        epoch_raw, ttl_raw = await self._acquire(
            keys=[self.leader_key, self.key("epoch"), self.key("leader", "history")],
            args=[self.holder, self._lease_ms(), self.epoch_floor],
        )
        self._redis_ok()
        epoch, ttl_ms = int(epoch_raw), int(ttl_raw)
        self._raise_floor(epoch)
        if ttl_ms >= 0:  # somebody else holds it
            return lease.next_attempt_in(self.timing, leading=False, remaining_ttl_s=ttl_ms / 1e3)
        self._held = lease.Held(epoch=epoch, renewed_sent_at=sent)
        log.info(
            "This replica (%s) is now the leader, epoch %d.",
            self.holder,
            epoch,
            extra={"epoch": epoch, "holder": self.holder},
        )
        self.observer.on_leadership(True)
        if self.on_elected is not None:
            self.on_elected()
        return lease.next_attempt_in(self.timing, leading=True)

    async def _try_renew(self, held: lease.Held, sent: float) -> float:
        ok = await self._renew(keys=[self.leader_key], args=[self._value(held), self._lease_ms()])
        self._redis_ok()
        if not ok:
            self._step_down("the lease in Redis is no longer this replica's")
            return lease.next_attempt_in(self.timing, leading=False)
        self._held = lease.renewed(held, epoch=held.epoch, sent_at=sent)
        return lease.next_attempt_in(self.timing, leading=True)

    def _step_down(self, why: str) -> None:
        held = self._held
        self._held = None
        if held is None:
            return
        log.warning(
            "This replica stops writing and steps down as leader (epoch %d): %s.",
            held.epoch,
            why,
            extra={"epoch": held.epoch, "holder": self.holder},
        )
        self.observer.on_leadership(False)

    async def release(self) -> None:
        """Give the lease back (graceful stop), so a follower takes over without waiting."""
        held = self._held
        self._held = None
        if held is None:
            return
        try:
            async with asyncio.timeout(self.timing.retry_s):
                await self._release(keys=[self.leader_key], args=[self._value(held)])
            log.info("Released the leader lease (epoch %d).", held.epoch)
        except REDIS_ERRORS as exc:
            self._redis_failed("release", exc)
        self.observer.on_leadership(False)
        self._report()

    def _value(self, held: lease.Held) -> str:
        return f"{held.epoch}:{self.holder}"

    def _lease_ms(self) -> int:
        return math.ceil(self.timing.lease_s * 1000)

    def _raise_floor(self, epoch: int) -> None:
        if epoch > self.epoch_floor:
            self.epoch_floor = epoch
            if self.on_epoch is not None:
                self.on_epoch(epoch)

    # -- health of the connection ----------------------------------------------------------

    def _redis_ok(self) -> None:
        if not self._up:
            log.info("Redis answers again; coordination resumes.")
        self._up = True

    def _redis_failed(self, operation: str, exc: BaseException) -> None:
        self.observer.on_coordination_error(operation)
        if self._up:
            # The exception text never holds the password (redis-py does not print it), but
            # only its type is logged, to be sure.
            log.error(
                "Redis cannot be reached (%s during %s): no replica can hold the lease, so"
                " writing stops within the renew deadline; reads go on.",
                type(exc).__name__,
                operation,
                extra={"operation": operation},
            )
        self._up = False

    @property
    def up(self) -> bool:
        return self._up

    def _report(self) -> None:
        self.observer.set_coordination(
            lease=self.prefix,
            up=self._up,
            leader=self.leading(),
            epoch=self.epoch or self.epoch_floor,
        )

    # -- the shared budget (genesys.budget.SharedBudget) -----------------------------------

    def set_clients(self, clients: Mapping[str, str]) -> None:
        """Token label → OAuth client id: replicas of one client share its budget."""
        self._clients = dict(clients)

    async def throttle(self, client_id: str, *, now_us: int | None = None) -> Throttle:
        """One GCRA step for ``client_id`` (``now_us`` only for tests: Redis' clock otherwise)."""
        b = self.budget
        allowed, wait_us, remaining = await self._gcra(
            keys=[self.key("gcra", client_id), self.key("pause", client_id)],
            args=[
                f"{b.interval_us:.3f}",
                f"{b.tolerance_us:.3f}",
                1,
                "" if now_us is None else now_us,
            ],
        )
        wait = math.inf if int(wait_us) < 0 else int(wait_us) / 1e6
        return Throttle(allowed=bool(allowed), wait_s=wait, remaining=int(remaining))

    async def take(self, label: str, *, max_wait_s: float = math.inf) -> None:
        client_id = self._clients.get(label, label)
        waited = 0.0
        while True:
            if self._clock() < self._budget_down_until:
                return  # Redis is unreachable: the local pacer alone decides for now
            try:
                async with asyncio.timeout(min(1.0, self.timing.retry_s)):
                    answer = await self.throttle(client_id)
            except REDIS_ERRORS as exc:
                self._redis_failed("budget", exc)
                self._budget_down_until = self._clock() + self.timing.retry_s
                return
            self._redis_ok()
            if answer.allowed:
                if waited:
                    self.observer.on_shared_budget_wait(waited)
                return
            if answer.wait_s > max_wait_s:
                # A pause another replica published (a long Retry-After): fail now, as the
                # limiter does for its own pauses, rather than hold the request that long.
                raise errors.RetryAfterTooLong(
                    f"The OAuth client {client_id}'s shared budget asks every replica to wait"
                    f" {answer.wait_s:.0f} seconds, longer than the configured maximum of"
                    f" {max_wait_s:.0f} seconds.",
                    retry_after_s=answer.wait_s,
                    status=429,
                )
            wait = min(answer.wait_s, 60.0)
            waited += wait
            await self._sleep(wait)

    def throttled(self, label: str, seconds: float) -> None:
        client_id = self._clients.get(label, label)
        task = asyncio.get_running_loop().create_task(
            self._publish_pause(client_id, seconds), name=f"publish pause {client_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish_pause(self, client_id: str, seconds: float) -> None:
        try:
            async with asyncio.timeout(min(1.0, self.timing.retry_s)):
                await self._pause(keys=[self.key("pause", client_id)], args=[_pause_ms(seconds)])
            log.info(
                "Published a %.1f s rate-limit pause of client %s to every replica.",
                seconds,
                client_id,
            )
        except REDIS_ERRORS as exc:
            self._redis_failed("pause", exc)

    async def close(self) -> None:
        """Release the lease if held and close the connection (the end of the process)."""
        for task in list(self._tasks):
            task.cancel()
        await self.release()
        await self.client.aclose()


# The longest pause published to the other replicas (a week): a broken Retry-After (1e300 s)
# would be a value Redis refuses, and a refusal must not be taken for Redis being down.
MAX_PAUSE_MS = 7 * 24 * 3600 * 1000


def _pause_ms(seconds: float) -> int:
    """A pause in whole milliseconds for Redis (PX): at least 1, at most ``MAX_PAUSE_MS``."""
    if not seconds < MAX_PAUSE_MS / 1000:  # also NaN and inf
        return MAX_PAUSE_MS
    return max(1, math.ceil(seconds * 1000))


def connect(url: str, *, password: str | None, timeout_s: float) -> aioredis.Redis:
    """A client for ``redis://`` or ``rediss://`` (TLS, certificate verified) URLs."""
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "decode_responses": True,
    }
    if password is not None:
        kwargs["password"] = password
    client: aioredis.Redis = aioredis.Redis.from_url(url, **kwargs)
    return client


@contextlib.asynccontextmanager
async def running(coordinator: Coordinator) -> AsyncIterator[Coordinator]:
    """Run the lease loop as a named task for the life of the context; release at the end.

    The loop is a root task like the daemon's own: should it end on anything but a Redis error
    (which it survives), what runs in the context is cancelled and the context raises what
    ended it (in an ``ExceptionGroup``, as a ``TaskGroup`` would), so the daemon ends and
    systemd restarts it, instead of running on without a lease loop (a follower for good,
    watchdog still fed). What the context's body raises itself passes unchanged."""
    body = asyncio.current_task()
    if body is None:
        raise RuntimeError("coordination.running needs a task")
    task = asyncio.get_running_loop().create_task(coordinator.run(), name="leader-lease")
    closing = False
    died = False

    def ended(_: asyncio.Task[None]) -> None:
        nonlocal died
        if not closing and not task.cancelled():
            died = True
            body.cancel()

    task.add_done_callback(ended)
    try:
        yield coordinator
    except asyncio.CancelledError:
        if not died:
            raise
    finally:
        closing = True
        task.cancel()
        await asyncio.wait({task})
        failure: BaseException | None = None
        if died:
            body.uncancel()  # the cancel was ours: it becomes the failure raised below
            failure = task.exception() or RuntimeError("the leader lease loop returned")
            log.error(
                "The leader lease loop ended with an unexpected %s; the daemon ends.",
                type(failure).__name__,
                exc_info=failure,
            )
        await coordinator.release()
    if failure is not None:
        raise BaseExceptionGroup("the leader-lease task ended", [failure])
