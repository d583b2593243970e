"""The notification service of the simulator: channels, subscriptions, a WebSocket per channel.

Role: `POST /api/v2/notifications/channels` gives a channel with a `connectUri` on this server
(`ws://…/channels/{id}`, like `wss://streaming.<region>/channels/{id}`); subscriptions add or
replace topics; events the simulator publishes (trunk health, schedule re-publish, campaign
changes) reach every socket of every channel subscribed to the topic, in the real message
envelope, with a heartbeat. Limits as documented: 24 h channels, 20 channels per client (the
21st replaces the oldest), 1000 topics per channel. It must not decide what happens in the org
(state.py publishes the events) and must not import anything from the rest of syncd.
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


@dataclass(slots=True)
class Channel:
    id: str
    client: str
    created: float
    expires: datetime
    topics: list[str] = field(default_factory=list)
    queues: list[asyncio.Queue[str]] = field(default_factory=list)


class Channels:
    """Every channel of the simulator; a sink of the Sim's events."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.by_id: dict[str, Channel] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.heartbeat_s = HEARTBEAT_S

    def create(self, client: str) -> Channel:
        mine = sorted(
            (c for c in self.by_id.values() if c.client == client), key=lambda c: c.created
        )
        while len(mine) >= MAX_CHANNELS_PER_CLIENT:
            self.close(mine.pop(0).id)
        channel = Channel(
            id=str(uuid.uuid4()),
            client=client,
            created=self.sim.clock(),
            expires=self.sim.now() + timedelta(hours=24),
        )
        self.by_id[channel.id] = channel
        return channel

    def close(self, channel_id: str) -> None:
        channel = self.by_id.pop(channel_id, None)
        if channel is not None:
            for queue in channel.queues:
                queue.put_nowait("")  # an empty message closes the socket

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
    channel = channels.create(_client(request))
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
    accepted = [t for t in wanted if t not in rejected]
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
    return json_response({"entities": entities})


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
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue()
    channel.queues.append(queue)
    reader = asyncio.create_task(_drain_client(ws))
    heartbeat = orjson.dumps(
        {"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}
    ).decode()
    try:
        while not ws.closed and not reader.done():
            try:
                message = await asyncio.wait_for(queue.get(), channels.heartbeat_s)
            except TimeoutError:
                message = heartbeat
            if not message:
                break
            await ws.send_str(message)
    finally:
        with contextlib.suppress(ValueError):
            channel.queues.remove(queue)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await ws.close()
    return ws


async def _drain_client(ws: web.WebSocketResponse) -> None:
    """Read (and ignore) what the client sends, so a close from its side is noticed."""
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return


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
