"""The notification service of the simulator: channels, subscriptions, a WebSocket per channel.

Role: `POST /api/v2/notifications/channels` gives a channel with a `connectUri` on this server
(`ws://…/channels/{id}`, like `wss://streaming.<region>/channels/{id}`); subscriptions add or
replace topics; events the simulator publishes (trunk health, schedule re-publish, campaign
changes) reach every socket of every channel subscribed to the topic, in the real message
envelope, with a heartbeat and an answer to the client's ``{"message":"ping"}``. Limits as
documented: 24 h channels, 20 channels per client (the 21st replaces the oldest), 1000 topics
per channel; a channel whose creating token expires is closed.

The lifecycle faults a client must survive are one call away (``/_sim/notifications/…``): drop
every socket, announce ``v2.system.socket_closing`` and close after a grace, expire channels
early, stop heartbeats (a socket that goes silent), shorten the channel lifetime, and refuse
topics for missing permissions. It must not decide what happens in the org (state.py publishes
the events) and must not import anything from the rest of syncd.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import orjson
from aiohttp import WSMsgType, web

from syncd.sim.http import (
    TOKEN_KEY,
    ApiError,
    bad_request,
    get_sim,
    json_body,
    json_response,
    not_found,
    query_bool,
)
from syncd.sim.org import JSON, iso_ms
from syncd.sim.state import Sim

N = "/api/v2/notifications"
HEARTBEAT_S = 30.0
MAX_CHANNELS_PER_CLIENT = 20
MAX_TOPICS = 1000

# topic template -> (description, permissions), the topics this simulator can publish or accept.
TOPICS: dict[str, tuple[str, list[str]]] = {
    "v2.telephony.providers.edges.trunks.{id}": ("Trunk instance status", ["telephony:plugin:all"]),
    "v2.telephony.providers.edges.trunks.{id}.metrics": ("Trunk metrics", ["telephony:plugin:all"]),
    "v2.telephony.providers.edges.{id}": ("Edge status", ["telephony:plugin:all"]),
    "v2.workforcemanagement.businessunits.{id}.schedules": (
        "Business unit schedule changes",
        ["wfm:schedule:view", "wfm:publishedSchedule:view"],
    ),
    "v2.workforcemanagement.businessunits.{id}.scheduling.runs": (
        "Scheduling runs",
        ["wfm:schedule:view"],
    ),
    "v2.workforcemanagement.managementunits.{id}.schedules": (
        "Management unit schedule changes (legacy)",
        ["wfm:schedule:view"],
    ),
    "v2.outbound.campaigns.{id}": ("Campaign configuration changes", ["outbound:campaign:view"]),
    "v2.outbound.campaigns.{id}.progress": ("Campaign progress", ["outbound:campaign:view"]),
}
_PATTERNS = [
    re.compile("^" + re.escape(t).replace(re.escape("{id}"), r"[A-Za-z0-9-]+") + "$")
    for t in TOPICS
]


CHANNEL_TTL_S = 24 * 3600.0
# Queue sentinels of a socket's writer: close the socket; wake up and look at the deadlines.
_CLOSE = ""
_WAKE = "\x00"
_SOCKET_CLOSING = orjson.dumps(
    {
        "topicName": "v2.system.socket_closing",
        "eventBody": {"message": "The socket is closing; open a new channel and subscribe."},
    }
).decode()


def _metadata(message: str) -> str:
    return orjson.dumps(
        {"topicName": "channel.metadata", "eventBody": {"message": message}}
    ).decode()


_PONG = _metadata("pong")


@dataclass(slots=True)
class Channel:
    id: str
    client: str
    token: str
    created: float
    expires: datetime
    close_at: float  # event-loop time at which the channel expires and its socket closes
    topics: list[str] = field(default_factory=list)
    queues: list[asyncio.Queue[str]] = field(default_factory=list)


class Channels:
    """Every channel of the simulator; a sink of the Sim's events."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.by_id: dict[str, Channel] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.heartbeat_s = HEARTBEAT_S
        self.heartbeats = True  # False: sockets go silent (no heartbeat, no pong)
        self.ttl_s = CHANNEL_TTL_S
        # Permissions the client lacks: topics that need one are Rejected on subscribe.
        self.missing_permissions: set[str] = set()
        self.created = 0  # channels created since start (for tests and benchmarks)
        self.sockets_opened = 0
        self.refuse_sockets = 0  # refuse this many WebSocket upgrades (503) from now on
        self.refused = 0
        self.pongs = 0  # pongs sent; ``pong_sent`` is set at each
        self.pong_sent = asyncio.Event()

    def _loop_time(self) -> float:
        return (self.loop or asyncio.get_event_loop()).time()

    def create(self, client: str, token: str = "") -> Channel:
        mine = sorted(
            (c for c in self.by_id.values() if c.client == client), key=lambda c: c.created
        )
        while len(mine) >= MAX_CHANNELS_PER_CLIENT:
            self.close(mine.pop(0).id)
        channel = Channel(
            id=str(uuid.uuid4()),
            client=client,
            token=token,
            created=self.sim.clock(),
            expires=self.sim.now() + timedelta(seconds=self.ttl_s),
            close_at=self._loop_time() + self.ttl_s,
        )
        self.by_id[channel.id] = channel
        self.created += 1
        return channel

    def close(self, channel_id: str) -> None:
        channel = self.by_id.pop(channel_id, None)
        if channel is not None:
            for queue in channel.queues:
                queue.put_nowait(_CLOSE)

    def _post(self, message: str) -> int:
        """Put ``message`` in every open socket's queue; how many sockets there were."""
        queues = [q for c in self.by_id.values() for q in c.queues]
        for queue in queues:
            queue.put_nowait(message)
        return len(queues)

    # -- lifecycle faults (control API) ----------------------------------------------------

    def drop_sockets(self) -> int:
        """Close every open socket at once, without notice; the channels stay valid."""
        return self._post(_CLOSE)

    def socket_closing(self, grace_s: float) -> int:
        """Send ``v2.system.socket_closing`` on every socket, then close each after ``grace_s``."""
        sockets = self._post(_SOCKET_CLOSING)
        now = self._loop_time()
        for channel in self.by_id.values():
            if channel.queues:
                channel.close_at = min(channel.close_at, now + grace_s)
        self._post(_WAKE)
        return sockets

    def expire(self, in_s: float) -> int:
        """Every channel expires ``in_s`` seconds from now (its socket closes then)."""
        now = self._loop_time()
        for channel in self.by_id.values():
            channel.close_at = min(channel.close_at, now + in_s)
            channel.expires = min(channel.expires, self.sim.now() + timedelta(seconds=in_s))
        self._post(_WAKE)
        return len(self.by_id)

    def settings(
        self,
        *,
        heartbeats: bool | None = None,
        heartbeat_s: float | None = None,
        ttl_s: float | None = None,
        missing_permissions: list[str] | None = None,
    ) -> JSON:
        if heartbeats is not None:
            self.heartbeats = heartbeats
        if heartbeat_s is not None:
            self.heartbeat_s = heartbeat_s
        if ttl_s is not None:
            self.ttl_s = ttl_s
        if missing_permissions is not None:
            self.missing_permissions = set(missing_permissions)
        self._post(_WAKE)
        return self.to_json()

    def to_json(self) -> JSON:
        now = self._loop_time()
        return {
            "heartbeats": self.heartbeats,
            "heartbeatS": self.heartbeat_s,
            "ttlS": self.ttl_s,
            "missingPermissions": sorted(self.missing_permissions),
            "created": self.created,
            "socketsOpened": self.sockets_opened,
            "channels": [
                {
                    "id": c.id,
                    "topics": len(c.topics),
                    "sockets": len(c.queues),
                    "expires": iso_ms(c.expires),
                    "closesInS": round(c.close_at - now, 3),
                }
                for c in self.by_id.values()
            ],
        }

    def sink(self, topic: str, body: JSON) -> None:
        """Called by Sim.notify, possibly from another thread (in-process callers)."""
        message = orjson.dumps(
            {
                "topicName": topic,
                "version": "2",
                "eventBody": body,
                "metadata": {"CorrelationId": str(uuid.uuid4())},
            }
        ).decode()
        targets = [q for c in self.by_id.values() if topic in c.topics for q in c.queues]
        if not targets:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for queue in targets:
            if running is not None and running is self.loop:
                queue.put_nowait(message)
            elif self.loop is not None:
                self.loop.call_soon_threadsafe(queue.put_nowait, message)


CHANNELS_KEY: Final = web.AppKey("sim.channels", Channels)


def _channels(request: web.Request) -> Channels:
    return request.app[CHANNELS_KEY]


def _client(request: web.Request) -> str:
    token = get_sim(request).token(request.get(TOKEN_KEY, ""))
    return token.client_id if token is not None else ""


async def create_channel(request: web.Request) -> web.StreamResponse:
    channels = _channels(request)
    channel = channels.create(_client(request), request.get(TOKEN_KEY, ""))
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return json_response(
        {
            "connectUri": f"{scheme}://{request.url.host}:{request.url.port}/channels/{channel.id}",
            "id": channel.id,
            "expires": iso_ms(channel.expires),
        }
    )


def _channel_of(request: web.Request) -> Channel:
    channel_id = request.match_info["channelId"]
    channel = _channels(request).by_id.get(channel_id)
    if channel is None or channel.client != _client(request):
        raise not_found("channel", channel_id)
    return channel


async def _subscribe(request: web.Request, replace: bool) -> web.StreamResponse:
    channel = _channel_of(request)
    body = await json_body(request)
    if not isinstance(body, list) or not all(
        isinstance(t, dict) and isinstance(t.get("id"), str) for t in body
    ):
        raise bad_request("The body must be a list of topics, each with an id.")
    ignore = query_bool(request, "ignoreErrors")
    wanted = [t["id"] for t in body]
    rejected = [t for t in wanted if not any(p.match(t) for p in _PATTERNS)]
    if rejected and not ignore:
        raise ApiError(400, "notification.invalid.topic", f"Invalid topic(s): {rejected}")
    denied = {
        t: missing
        for t in wanted
        if t not in rejected and (missing := _missing(t, _channels(request)))
    }
    if denied and not ignore:
        # docs/genesys-setup.md (notifications): without ignoreErrors one failed permission
        # check fails the whole request.
        raise ApiError(403, "missing.any.permissions", f"Missing permissions for {list(denied)}")
    accepted = [t for t in wanted if t not in rejected and t not in denied]
    topics = (
        accepted if replace else channel.topics + [t for t in accepted if t not in channel.topics]
    )
    if len(topics) > MAX_TOPICS:
        raise bad_request(
            f"A channel may have at most {MAX_TOPICS} topics.", "notification.too.many.topics"
        )
    channel.topics = list(dict.fromkeys(topics))
    entities: list[JSON] = [{"id": t, "state": "Permitted"} for t in channel.topics]
    entities += [
        {"id": t, "state": "Rejected", "rejectionReason": "Unknown topic"} for t in rejected
    ]
    entities += [
        {
            "id": t,
            "state": "Rejected",
            "rejectionReason": "Missing permissions",
            "missingPermissions": missing,
        }
        for t, missing in denied.items()
    ]
    return json_response({"entities": entities})


def _missing(topic: str, channels: Channels) -> list[str]:
    """The permissions the topic needs that the client lacks (any one of them suffices)."""
    for template, pattern in zip(TOPICS, _PATTERNS, strict=True):
        if pattern.match(topic):
            needed = TOPICS[template][1]
            if all(p in channels.missing_permissions for p in needed):
                return list(needed)
            return []
    return []


async def add_subscriptions(request: web.Request) -> web.StreamResponse:
    return await _subscribe(request, replace=False)


async def replace_subscriptions(request: web.Request) -> web.StreamResponse:
    return await _subscribe(request, replace=True)


async def available_topics(request: web.Request) -> web.StreamResponse:
    return json_response(
        {
            "entities": [
                {
                    "description": description,
                    "id": topic,
                    "requiresPermissions": permissions,
                    "enforced": True,
                    "visibility": "Public",
                    "transports": ["All"],
                    "topicParameters": ["id"],
                }
                for topic, (description, permissions) in TOPICS.items()
            ]
        }
    )


async def websocket(request: web.Request) -> web.StreamResponse:
    """The channel's connectUri: events and heartbeats, no bearer token (the id is the key)."""
    channels = _channels(request)
    channel = channels.by_id.get(request.match_info["channelId"])
    if channel is None:
        raise web.HTTPNotFound
    if channels.refuse_sockets > 0:
        channels.refuse_sockets -= 1
        channels.refused += 1
        raise web.HTTPServiceUnavailable
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue()
    channel.queues.append(queue)
    channels.sockets_opened += 1
    reader = asyncio.create_task(_read_client(ws, queue, channels))
    loop = asyncio.get_running_loop()
    next_beat = loop.time() + channels.heartbeat_s
    try:
        while not ws.closed and not reader.done():
            now = loop.time()
            if now >= channel.close_at or not _token_alive(channels, channel):
                channels.close(channel.id)  # expired, or its token did: the channel ends
                break
            timeout = max(0.0, min(next_beat, channel.close_at) - now)
            # A channel's token may expire at any time: look again at least once a second.
            try:
                async with asyncio.timeout(min(timeout, 1.0)):  # not wait_for: see genesys
                    message = await queue.get()
            except TimeoutError:
                if loop.time() < next_beat:
                    continue
                next_beat = loop.time() + channels.heartbeat_s
                if not channels.heartbeats:
                    continue
                message = _metadata("WebSocket Heartbeat")
            if message == _CLOSE:
                break
            if message == _WAKE:
                continue
            await ws.send_str(message)
            if message == _PONG:
                channels.pongs += 1
                channels.pong_sent.set()
    finally:
        with contextlib.suppress(ValueError):
            channel.queues.remove(queue)
        reader.cancel()
        await asyncio.wait({reader})  # not ``await reader``: our own cancellation goes through
        await ws.close()
    return ws


def _token_alive(channels: Channels, channel: Channel) -> bool:
    return not channel.token or channels.sim.token(channel.token) is not None


async def _read_client(
    ws: web.WebSocketResponse, queue: asyncio.Queue[str], channels: Channels
) -> None:
    """Answer the client's ``{"message":"ping"}`` with a pong (unless the socket is silenced);
    read and ignore anything else, so a close from its side is noticed."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return
        if message.type is WSMsgType.TEXT and channels.heartbeats:
            with contextlib.suppress(orjson.JSONDecodeError):
                body = orjson.loads(message.data)
                if isinstance(body, dict) and body.get("message") == "ping":
                    queue.put_nowait(_PONG)


async def _attach(app: web.Application) -> None:
    channels = app[CHANNELS_KEY]
    channels.loop = asyncio.get_running_loop()
    channels.sim.sinks.append(channels.sink)


async def _detach(app: web.Application) -> None:
    channels = app[CHANNELS_KEY]
    with contextlib.suppress(ValueError):
        channels.sim.sinks.remove(channels.sink)
    for channel_id in list(channels.by_id):
        channels.close(channel_id)


def install(app: web.Application, sim: Sim) -> None:
    app[CHANNELS_KEY] = Channels(sim)
    app.on_startup.append(_attach)
    app.on_shutdown.append(_detach)
    app.router.add_get(f"{N}/availabletopics", available_topics)
    app.router.add_post(f"{N}/channels", create_channel)
    app.router.add_post(f"{N}/channels/{{channelId}}/subscriptions", add_subscriptions)
    app.router.add_put(f"{N}/channels/{{channelId}}/subscriptions", replace_subscriptions)
    app.router.add_get("/channels/{channelId}", websocket)
