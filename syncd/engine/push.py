"""The notification channel as the engine's informer: hints in, targeted re-reads out.

Role: own the daemon's ``genesys.notifications.Notifications`` and act on what it says, the way
a Kubernetes informer uses a watch:

- a trunk hint → ``Engine.on_trunk_event`` (one GET of that trunk, folded into the failover
  state like a poll) → a reconcile when a trunk's failover state changed;
- a schedule hint → ``Engine.on_schedule_event`` (that business unit's listing, agent
  schedules only if it changed) → a reconcile when staffing changed;
- a channel that comes up → one full resync through the daemon's own health and schedule
  loops (whatever happened while nothing listened is read, not waited for);
- push up or down → the daemon's safety-net polls run at ``health.resync_s`` /
  ``schedule.resync_s`` or back at ``health.poll_s`` / ``schedule.refresh_s``.

Hints are coalesced: a trunk named twice while its re-read waits is re-read once (a set, like
client-go's workqueue). A failed re-read asks for a full health poll instead. It must not plan,
write or judge health itself: the engine does, through the same path as the timers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from syncd import errors
from syncd.engine import cycle
from syncd.genesys import notifications, transport

log = logging.getLogger(__name__)


class Hooks(Protocol):
    """What the channel asks of the daemon (``engine.daemon.Daemon``)."""

    def trigger_reconcile(self) -> None: ...
    def resync(self) -> None: ...
    def set_push(self, up: bool) -> None: ...


class Observer(notifications.Observer, Protocol):
    def on_push(self, up: bool) -> None: ...


class Push:
    """The sink of the notification channel; ``run`` lives as long as the daemon."""

    def __init__(
        self,
        engine: cycle.Engine,
        transport_: transport.Transport,
        *,
        timing: notifications.Timing | None = None,
        observer: Observer | None = None,
        token_index: int = 0,
    ) -> None:
        self.engine = engine
        self.observer = observer
        self.channel = notifications.Notifications(
            transport_, self, token_index=token_index, timing=timing, observer=observer
        )
        self._trunks: set[str] = set()
        self._units: set[str] = set()
        self._received: float | None = None  # when the oldest waiting hint arrived
        self._wake = asyncio.Event()
        self._hooks: Hooks | None = None
        self.up = False
        engine.on_statuses = self.sync_topics

    def sync_topics(self) -> None:
        """Subscribe the trunks the engine manages and every configured business unit."""
        cfg = self.engine.cfg
        self.channel.set_topics(
            notifications.topics_for(self.engine.trunk_ids(), cfg.schedule.business_units)
        )

    async def run(self, hooks: Hooks) -> None:
        self._hooks = hooks
        self.sync_topics()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.channel.run(), name="notifications")
            tg.create_task(self._work(), name="notification-hints")

    # -- notifications.Sink ----------------------------------------------------------------

    def on_hint(self, hint: notifications.Hint) -> None:
        (self._trunks if hint.kind == "trunk" else self._units).add(hint.id)
        if self._received is None:
            self._received = time.monotonic()
        self._wake.set()

    def on_connected(self, link: int, reason: str) -> None:
        if self._hooks is not None:
            self._hooks.resync()  # every (re)connect: one full resync
        self._update()

    def on_down(self, link: int, reason: str) -> None:
        self._update()

    def _update(self) -> None:
        up = self.channel.up
        if up != self.up:
            self.up = up
            if self.observer is not None:
                self.observer.on_push(up)
            if self._hooks is not None:
                self._hooks.set_push(up)
            log.info(
                "Trunk health and schedule changes now come by %s.",
                "push (the health poll slows to its resync interval)"
                if up
                else "poll (the notification channel is down)",
            )

    # -- the re-reads ----------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            trunks, self._trunks = self._trunks, set()
            units, self._units = self._units, set()
            received, self._received = self._received, None
            changed = False
            for trunk_id in sorted(trunks):
                changed |= await self._reread(self.engine.on_trunk_event, trunk_id, received)
            for unit in sorted(units):
                changed |= await self._reread(self.engine.on_schedule_event, unit, received)
            if changed and self._hooks is not None:
                self._hooks.trigger_reconcile()
            self._update()  # a subscription may have changed what is pushed

    async def _reread(self, read: cycle.HintHandler, ident: str, received: float | None) -> bool:
        try:
            return await read(ident, received_at=received)
        except errors.ApiError as exc:
            log.warning(
                "Re-reading %s after its notification failed (%s); a full resync follows.",
                ident,
                exc,
                extra={"object_id": ident},
            )
        except Exception as exc:  # a bug or a surprise: contained, or the channel task dies
            self.engine.observe_unexpected_error("push")
            log.error(
                "Unexpected %s while re-reading %s after its notification; a full resync follows.",
                type(exc).__name__,
                ident,
                exc_info=exc,
                extra={"object_id": ident},
            )
        if self._hooks is not None:
            self._hooks.resync()
        return False
