"""Genesys Cloud's notification service: channels kept alive, their events handed on as hints.

Role: create a channel (``POST /api/v2/notifications/channels`` → ``connectUri``, ``expires``),
subscribe its topics (``PUT …/channels/{id}/subscriptions?ignoreErrors=true``, at most 1000 per
channel; each topic's ``state`` is checked and a rejected one is reported with its
``rejectionReason`` and ``missingPermissions``), read the channel's WebSocket and hand every
event on to a ``Sink`` as a ``Hint``: which trunk, which business unit. Events are hints, never
data: the engine re-reads what a hint names.

The whole lifecycle (docs/notifications.md): the service sends a heartbeat about every 30 s;
a socket quiet for ``ping_after_s`` gets an application-level ``{"message":"ping"}``, and one
without any sign of life for ``dead_after_s`` is dead (closed, reconnected).
``v2.system.socket_closing``, the channel's ``expires`` coming near and a new access token each
open the *next* channel and subscribe it before the old one goes; events that arrive on both
are de-duplicated. A socket that is lost reconnects after a full-jitter backoff. Every channel
that comes up tells the sink ``on_connected`` (the engine runs one full resync then: whatever
happened while no socket listened is read, not waited for). More than 1000 topics take several
channels; at most ``MAX_CHANNELS_PER_CLIENT`` (20) exist at once, the overlap included.

HTTP goes through ``transport`` (the same limiter, budget, retries and error types as every
other call; the socket too, via ``transport.open_socket``). The channel belongs to the OAuth
client that created it, so one token of the pool (``token_index``) does every call.

It must not decide anything about trunks or schedules, must not read more of an event than the
ids that make it a hint, and must not put a token in a log line or an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final, Protocol

import orjson

from syncd import errors
from syncd.core import model, pacing
from syncd.genesys import transport as transport_mod

log = logging.getLogger(__name__)

CHANNELS = "/api/v2/notifications/channels"
SUBSCRIPTIONS = CHANNELS + "/{channelId}/subscriptions"
TRUNK_TOPIC = "v2.telephony.providers.edges.trunks.{id}"
SCHEDULE_TOPIC = "v2.workforcemanagement.businessunits.{id}.schedules"
MAX_TOPICS_PER_CHANNEL: Final = 1000
MAX_CHANNELS_PER_CLIENT: Final = 20
# Every link may hold two channels while it replaces one: half the client's limit.
MAX_LINKS: Final = MAX_CHANNELS_PER_CLIENT // 2
SOCKET_CLOSING = "v2.system.socket_closing"
METADATA = "channel.metadata"
PING: Final = orjson.dumps({"message": "ping"}).decode()

_TRUNK = re.compile(r"^v2\.telephony\.providers\.edges\.trunks\.([A-Za-z0-9-]+)$")
_SCHEDULE = re.compile(r"^v2\.workforcemanagement\.businessunits\.([A-Za-z0-9-]+)\.schedules$")
_SYSTEM_RESUBSCRIBE = ("v2.system.no_longer_subscribed", "v2.system.token_revoked")
_SEEN_MAX = 4096

# The bounded set of reasons a channel is (re)opened, for metrics and logs.
REASONS = (
    "start",
    "closed",
    "dead",
    "socket_closing",
    "expiring",
    "token",
    "no_longer_subscribed",
    "error",
)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Hint:
    """An event's meaning to syncd: something about this trunk or business unit changed."""

    kind: str  # "trunk" | "schedule"
    id: str


def hint_of(topic: str) -> Hint | None:
    """The hint a topic name carries, or None for a topic syncd does not act on."""
    if m := _TRUNK.match(topic):
        return Hint(kind="trunk", id=m.group(1))
    if m := _SCHEDULE.match(topic):
        return Hint(kind="schedule", id=m.group(1))
    return None


def topics_for(trunk_ids: Iterable[str], business_unit_ids: Iterable[str]) -> tuple[str, ...]:
    """The topics syncd subscribes: every managed trunk (the instance, not the trunk base:
    its ``connectedStatus`` and ``optionsStatus``) and every business unit's schedules."""
    return tuple(
        [TRUNK_TOPIC.format(id=t) for t in sorted(set(trunk_ids))]
        + [SCHEDULE_TOPIC.format(id=b) for b in sorted(set(business_unit_ids))]
    )


def chunks(topics: Sequence[str], size: int = MAX_TOPICS_PER_CHANNEL) -> list[tuple[str, ...]]:
    return [tuple(topics[i : i + size]) for i in range(0, len(topics), size)]


class Sink(Protocol):
    """Who acts on the channel (``engine.push.Push``). Called from the link's task: quick."""

    def on_hint(self, hint: Hint) -> None: ...
    def on_connected(self, link: int, reason: str) -> None: ...
    def on_down(self, link: int, reason: str) -> None: ...


class Observer(Protocol):
    """Metrics of the channel (``obs.metrics.Metrics``)."""

    def on_channel_state(self, link: int, up: bool) -> None: ...
    def on_channel_open(self, reason: str) -> None: ...
    def on_notification(self, kind: str) -> None: ...
    def on_duplicate(self) -> None: ...
    def on_topics(self, link: int, permitted: int, rejected: int) -> None: ...


class NullObserver:
    def on_channel_state(self, link: int, up: bool) -> None:
        pass

    def on_channel_open(self, reason: str) -> None:
        pass

    def on_notification(self, kind: str) -> None:
        pass

    def on_duplicate(self) -> None:
        pass

    def on_topics(self, link: int, permitted: int, rejected: int) -> None:
        pass


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """The lifecycle's clocks (seconds). The service's heartbeat comes about every 30 s."""

    ping_after_s: float = 40.0  # quiet this long: send an application-level ping
    dead_after_s: float = 75.0  # no heartbeat, no pong, no event this long: the socket is dead
    renew_before_s: float = 600.0  # open the next channel this long before ``expires``
    overlap_s: float = 90.0  # an old socket is closed at the latest this long after its successor
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    token_check_s: float = 30.0  # how often the token is asked whether it was renewed

    def __post_init__(self) -> None:
        if not 0 < self.ping_after_s < self.dead_after_s:
            raise ValueError("ping_after_s must be > 0 and below dead_after_s")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    id: str
    connect_uri: str
    expires_at: float  # monotonic seconds


@dataclasses.dataclass(slots=True)
class _Open:
    channel: Channel
    socket: transport_mod.Socket
    pump: asyncio.Task[None]
    generation: int
    last_seen: float
    pinged: bool = False
    close_by: float | None = None  # an old socket, replaced: closed at the latest then


class Link:
    """One chain of channels for up to 1000 topics: the socket that listens now, and while
    it is being replaced, the one before it."""

    def __init__(
        self,
        transport: transport_mod.Transport,
        topics: Sequence[str],
        sink: Sink,
        *,
        index: int = 0,
        token_index: int = 0,
        timing: Timing | None = None,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if len(topics) > MAX_TOPICS_PER_CHANNEL:
            raise ValueError(f"a channel takes at most {MAX_TOPICS_PER_CHANNEL} topics")
        self.transport = transport
        self.topics = tuple(topics)
        self.sink = sink
        self.index = index
        self.token_index = token_index
        self.timing = timing or Timing()
        self.observer: Observer = observer or NullObserver()
        self._clock = clock
        self._wall = wall
        self._rand = rand
        self._sleep = sleep
        self._inbox: asyncio.Queue[tuple[int, str | None]] = asyncio.Queue()
        self._open: dict[int, _Open] = {}
        self._current: int | None = None
        self._serials = itertools.count(1)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._topics_changed = False
        self._retry_at = 0.0  # a failed replacement is tried again then
        self._failures = 0  # failed opens and repeated young losses: the backoff's step
        self._losses = 0  # sockets lost in a row, each within ``dead_after_s`` of the last
        self._listening_since = 0.0  # when the current socket opened
        self._next_token_check = 0.0
        self.complete = False  # every topic permitted on the current channel
        self.rejected: dict[str, tuple[str, tuple[str, ...]]] = {}

    # -- state -----------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._current is not None

    def set_topics(self, topics: Sequence[str]) -> None:
        """New topics: the current channel's subscription is replaced at the next turn."""
        if len(topics) > MAX_TOPICS_PER_CHANNEL:
            raise ValueError(f"a channel takes at most {MAX_TOPICS_PER_CHANNEL} topics")
        if tuple(topics) != self.topics:
            self.topics = tuple(topics)
            self._topics_changed = True
            self._inbox.put_nowait((0, ""))  # wake the loop

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a channel open until cancelled."""
        reason = "start"
        try:
            while True:
                if self._current is None:
                    if not await self._connect(reason):
                        continue
                    reason = "closed"
                timeout = max(0.0, self._next_deadline() - self._clock())
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                    # that arrives as the queue hands over a message, and the link never ends.
                    async with asyncio.timeout(timeout):
                        serial, text = await self._inbox.get()
                except TimeoutError:
                    pass
                else:
                    closed_reason = await self._on_message(serial, text)
                    if closed_reason is not None:
                        reason = closed_reason
                        continue
                reason = await self._on_tick() or reason
        finally:
            for serial in list(self._open):
                await self._close(serial)

    async def _connect(self, reason: str) -> bool:
        """Open the first channel (or the next after a loss), waiting out a backoff first when
        the previous attempt failed. True when a socket listens."""
        if self._failures:
            delay = pacing.full_jitter(
                self._failures - 1,
                base_s=self.timing.backoff_base_s,
                cap_s=self.timing.backoff_cap_s,
                rand=self._rand(),
            )
            await self._sleep(delay)
        try:
            await self._open_next(reason)
        except errors.SyncdError as exc:
            self._failures += 1
            log.warning(
                "The notification channel could not be opened (%s); trying again after a"
                " backoff. Health is polled meanwhile.",
                exc,
                extra={"link": self.index, "attempt": self._failures},
            )
            return False
        # The step is kept until a socket has lived (``_lost``): one that dies at once must
        # not be reopened in a tight loop.
        return True

    def _next_deadline(self) -> float:
        now = self._clock()
        deadlines = [self._next_token_check]
        current = self._open.get(self._current) if self._current is not None else None
        if current is not None:
            quiet = self.timing.dead_after_s if current.pinged else self.timing.ping_after_s
            deadlines.append(current.last_seen + quiet)
            deadlines.append(
                max(current.channel.expires_at - self.timing.renew_before_s, self._retry_at)
            )
        deadlines.extend(o.close_by for o in self._open.values() if o.close_by is not None)
        if self._topics_changed:
            deadlines.append(now)
        return max(now, min(deadlines))

    async def _on_message(self, serial: int, text: str | None) -> str | None:
        """One message from socket ``serial`` (None: it closed). Returns why the current
        socket is gone, when it is."""
        if serial == 0:
            return None  # a wake-up
        opened = self._open.get(serial)
        if opened is None:
            return None
        if text is None:
            self._open.pop(serial, None)
            if serial != self._current:
                return None  # a replaced socket closed, as it should
            self._current = None
            self._lost("closed")
            return "closed"
        opened.last_seen = self._clock()
        opened.pinged = False
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            log.warning("A notification message was not JSON; ignored.", extra={"link": self.index})
            return None
        if not isinstance(message, dict):
            return None
        topic = str(message.get("topicName") or "")
        if topic == METADATA:
            return None  # heartbeat or pong: the socket lives
        if topic == SOCKET_CLOSING:
            if serial == self._current:
                log.info(
                    "The notification service is closing the socket; opening the next channel.",
                    extra={"link": self.index},
                )
                await self._replace("socket_closing")
            return None
        if topic.startswith(_SYSTEM_RESUBSCRIBE):
            if serial == self._current:
                await self._drop(serial, "no_longer_subscribed")
                return "no_longer_subscribed"
            return None
        hint = hint_of(topic)
        if hint is None or self._duplicate(message, topic, text):
            return None
        self.observer.on_notification(hint.kind)
        self.sink.on_hint(hint)
        return None

    def _duplicate(self, message: dict[str, Any], topic: str, text: str) -> bool:
        """True for an event already handed on (both sockets of an overlap deliver it)."""
        metadata = message.get("metadata")
        key = None
        if isinstance(metadata, dict):
            key = metadata.get("CorrelationId") or metadata.get("correlationId")
        key = f"{topic}|{key}" if key else text
        if key in self._seen:
            self.observer.on_duplicate()
            return True
        self._seen[key] = None
        if len(self._seen) > _SEEN_MAX:
            self._seen.popitem(last=False)
        return False

    async def _on_tick(self) -> str | None:
        """Deadlines: pings, dead sockets, renewal, a new token, old sockets, new topics."""
        now = self._clock()
        for old, opened in list(self._open.items()):
            if old != self._current and opened.close_by is not None and now >= opened.close_by:
                await self._close(old)
        serial = self._current
        current = self._open.get(serial) if serial is not None else None
        if serial is None or current is None:
            return None
        quiet = now - current.last_seen
        if quiet >= self.timing.dead_after_s:
            log.warning(
                "The notification socket showed no sign of life for %.0f s; it is dead.",
                quiet,
                extra={"link": self.index},
            )
            await self._drop(serial, "dead")
            return "dead"
        if quiet >= self.timing.ping_after_s and not current.pinged:
            current.pinged = True
            # A socket too broken to send on: its pump sees it close.
            with contextlib.suppress(errors.ConnectionFailed):
                await current.socket.send(PING)
        if now >= self._retry_at and now >= current.channel.expires_at - self.timing.renew_before_s:
            await self._replace("expiring")
            return None
        if now >= self._next_token_check:
            self._next_token_check = now + self.timing.token_check_s
            generation = await self._generation()
            if generation is not None and generation != current.generation:
                log.info(
                    "The access token was renewed; moving to a channel created with the new one.",
                    extra={"link": self.index},
                )
                await self._replace("token")
                return None
        if self._topics_changed:
            self._topics_changed = False
            try:
                await self._subscribe(current.channel)
            except errors.SyncdError as exc:
                log.warning(
                    "Changing the channel's topics failed (%s); opening a new channel.", exc
                )
                await self._drop(serial, "error")
                return "error"
        return None

    # -- opening and closing ---------------------------------------------------------------

    async def _generation(self) -> int | None:
        source = self.transport.pool.sources[self.token_index]
        try:
            await source.token()  # renews an expiring token, like any call would
        except errors.SyncdError:
            return None
        return source.generation

    async def _open_next(self, reason: str) -> None:
        """Create, subscribe and connect a channel; it becomes the current one."""
        generation = await self._generation()
        channel = await self._create()
        await self._subscribe(channel)
        socket = await transport_mod.open_socket(self.transport, channel.connect_uri)
        serial = next(self._serials)
        pump = asyncio.create_task(self._pump(serial, socket), name=f"notifications-{serial}")
        now = self._clock()
        self._open[serial] = _Open(
            channel=channel,
            socket=socket,
            pump=pump,
            generation=generation if generation is not None else -1,
            last_seen=now,
        )
        self._current = serial
        self._listening_since = now
        self._next_token_check = now + self.timing.token_check_s
        self._topics_changed = False
        self.observer.on_channel_open(reason)
        self.observer.on_channel_state(self.index, True)
        log.info(
            "Notification channel %s is listening to %d topic(s) (%s).",
            channel.id,
            len(self.topics),
            reason,
            extra={"link": self.index, "channel": channel.id, "reason": reason},
        )
        self.sink.on_connected(self.index, reason)

    async def _replace(self, reason: str) -> None:
        """The next channel first, then let the old one go (overlap; events de-duplicated)."""
        old = self._current
        try:
            await self._open_next(reason)
        except errors.SyncdError as exc:
            delay = pacing.full_jitter(
                min(self._failures, 6),
                base_s=self.timing.backoff_base_s,
                cap_s=self.timing.backoff_cap_s,
                rand=self._rand(),
            )
            self._failures += 1
            self._retry_at = self._clock() + max(delay, self.timing.backoff_base_s)
            log.warning(
                "Opening the next notification channel failed (%s); the current one stays"
                " while it lasts, and the next try is in %.1f s.",
                exc,
                delay,
                extra={"link": self.index},
            )
            return
        self._failures = 0
        self._retry_at = 0.0
        if old is not None and old in self._open:
            previous = self._open[old]
            if reason == "socket_closing":
                # The service closes it; keep reading what it still delivers until then.
                previous.close_by = self._clock() + self.timing.overlap_s
            else:
                await self._close(old)

    async def _drop(self, serial: int, reason: str) -> None:
        await self._close(serial)
        if serial == self._current:
            self._current = None
            self._lost(reason)

    def _lost(self, reason: str) -> None:
        # One lost socket is reconnected at once; the next lost within ``dead_after_s`` of
        # opening backs off (``_connect``), a step more each time. Cut as soon as it opens and
        # reopened at once, each round would cost a channel, a subscription at failover
        # priority and a full resync, in a tight loop. A socket that lived starts afresh.
        if self._clock() - self._listening_since >= self.timing.dead_after_s:
            self._failures = self._losses = 0
        self._losses += 1
        if self._losses > 1:
            self._failures += 1
        self.observer.on_channel_state(self.index, False)
        log.warning(
            "The notification socket is gone (%s); reconnecting. Health is polled meanwhile.",
            reason,
            extra={"link": self.index, "reason": reason},
        )
        self.sink.on_down(self.index, reason)

    async def _close(self, serial: int) -> None:
        opened = self._open.pop(serial, None)
        if opened is None:
            return
        await opened.socket.close()
        opened.pump.cancel()
        # asyncio.wait, not ``await pump``: a cancellation of *this* task must go through.
        await asyncio.wait({opened.pump})

    async def _pump(self, serial: int, socket: transport_mod.Socket) -> None:
        try:
            while (text := await socket.receive()) is not None:
                self._inbox.put_nowait((serial, text))
        finally:
            self._inbox.put_nowait((serial, None))

    # -- the two HTTP calls ------------------------------------------------------------------

    async def _create(self) -> Channel:
        resp = await self.transport.request(
            "POST", CHANNELS, priority=model.Priority.FAILOVER, token_index=self.token_index
        )
        data = resp.json()
        if not isinstance(data, dict):
            raise _malformed(resp, "a channel must be a JSON object")
        ident, uri = data.get("id"), data.get("connectUri")
        if not isinstance(ident, str) or not isinstance(uri, str) or not ident or not uri:
            raise _malformed(resp, "a channel needs an id and a connectUri")
        return Channel(id=ident, connect_uri=uri, expires_at=self._expires(data.get("expires")))

    def _expires(self, value: object) -> float:
        """``expires`` (ISO-8601) as a monotonic instant; 24 h when absent or unreadable."""
        remaining = 24 * 3600.0
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
                if when.tzinfo is not None:
                    remaining = when.timestamp() - self._wall()
        return self._clock() + remaining

    async def _subscribe(self, channel: Channel) -> None:
        """Replace the channel's topics; report each rejected one with what it lacks."""
        resp = await self.transport.request(
            "PUT",
            SUBSCRIPTIONS,
            path={"channelId": channel.id},
            query={"ignoreErrors": "true"},
            body=orjson.dumps([{"id": t} for t in self.topics]),
            priority=model.Priority.FAILOVER,
            token_index=self.token_index,
        )
        data = resp.json()
        entities = data.get("entities") if isinstance(data, dict) else None
        if not isinstance(entities, list):
            raise _malformed(resp, "a subscription answer needs entities")
        states: dict[str, dict[str, Any]] = {
            str(e.get("id")): e for e in entities if isinstance(e, dict)
        }
        rejected: dict[str, tuple[str, tuple[str, ...]]] = {}
        for topic in self.topics:
            entity = states.get(topic)
            if entity is None:
                rejected[topic] = ("not in the answer", ())
            elif entity.get("state") != "Permitted":
                missing = entity.get("missingPermissions") or ()
                rejected[topic] = (
                    str(entity.get("rejectionReason") or entity.get("state") or "rejected"),
                    tuple(str(p) for p in missing) if isinstance(missing, list) else (),
                )
        for topic, (why, missing) in sorted(rejected.items()):
            if self.rejected.get(topic) != (why, missing):
                log.error(
                    "The notification topic %s was rejected (%s%s): its changes are polled,"
                    " not pushed.",
                    topic,
                    why,
                    f"; missing permissions: {', '.join(missing)}" if missing else "",
                    extra={"topic": topic, "missing_permissions": list(missing)},
                )
        self.rejected = rejected
        self.complete = not rejected
        self.observer.on_topics(self.index, len(self.topics) - len(rejected), len(rejected))


def _malformed(resp: transport_mod.Response, what: str) -> errors.MalformedResponse:
    return errors.MalformedResponse(
        f"{resp.method} {resp.endpoint} answered with an unexpected body: {what}.",
        status=resp.status,
        endpoint=resp.endpoint,
        method=resp.method,
        request_id=resp.request_id,
    )


class Notifications:
    """Every link the topics need (1000 topics per channel), run together."""

    def __init__(
        self,
        transport: transport_mod.Transport,
        sink: Sink,
        *,
        token_index: int = 0,
        timing: Timing | None = None,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.transport = transport
        self.sink = sink
        self.token_index = token_index
        self.timing = timing or Timing()
        self.observer: Observer = observer or NullObserver()
        self._clock = clock
        self._rand = rand
        self._sleep = sleep
        self.links: list[Link] = []
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._topics: tuple[str, ...] = ()
        self.overflow: tuple[str, ...] = ()  # topics beyond what the channel limit allows

    @property
    def up(self) -> bool:
        """Every topic is pushed: each link listens and none of its topics was rejected."""
        return (
            bool(self.links)
            and not self.overflow
            and all(link.up and link.complete for link in self.links)
        )

    def set_topics(self, topics: Sequence[str]) -> None:
        topics = tuple(topics)
        if topics == self._topics:
            return
        self._topics = topics
        parts = chunks(topics)
        if len(parts) > MAX_LINKS:
            self.overflow = tuple(t for part in parts[MAX_LINKS:] for t in part)
            log.error(
                "%d notification topics need more than %d channels (the client's limit of %d,"
                " with room to replace each): %d topic(s) are polled, not pushed.",
                len(topics),
                MAX_LINKS,
                MAX_CHANNELS_PER_CLIENT,
                len(self.overflow),
            )
            parts = parts[:MAX_LINKS]
        else:
            self.overflow = ()
        for i, part in enumerate(parts):
            if i < len(self.links):
                self.links[i].set_topics(part)
            else:
                self.links.append(
                    Link(
                        self.transport,
                        part,
                        self.sink,
                        index=i,
                        token_index=self.token_index,
                        timing=self.timing,
                        observer=self.observer,
                        clock=self._clock,
                        rand=self._rand,
                        sleep=self._sleep,
                    )
                )
        del self.links[len(parts) :]
        self._changed.set()

    async def run(self) -> None:
        """Run every link until cancelled; links come and go with the topics."""
        try:
            while True:
                wanted = {link.index for link in self.links}
                for index in set(self._tasks) - wanted:
                    self._tasks.pop(index).cancel()
                    self.observer.on_channel_state(index, False)
                for link in self.links:
                    if link.index not in self._tasks:
                        self._tasks[link.index] = asyncio.create_task(
                            link.run(), name=f"notifications-link-{link.index}"
                        )
                self._changed.clear()
                waiter = asyncio.ensure_future(self._changed.wait())
                try:
                    await asyncio.wait(
                        {waiter, *self._tasks.values()}, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    waiter.cancel()
                for index, task in list(self._tasks.items()):
                    if task.done():
                        del self._tasks[index]
                        task.result()  # a link never ends on its own: re-raise what ended it
        finally:
            for task in self._tasks.values():
                task.cancel()
            if self._tasks:
                await asyncio.wait(set(self._tasks.values()))
            self._tasks.clear()
