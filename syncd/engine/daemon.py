"""The daemon's lifecycle: timers, signals, reload, systemd notification, structured concurrency.

It owns *when* things happen, never *what* they do: the work itself (health poll, schedule
refresh, reconcile, reload) is a ``Work`` object's (``engine.cycle``). APScheduler's
``AsyncIOScheduler`` only fires timers, which set events; long-lived named tasks in one
``asyncio.TaskGroup`` do the work, so every task has an owner. An exception inside one health
poll, schedule refresh or reconcile is contained there: logged once with its traceback, counted
(``Work.observe_unexpected_error``) and tried again after a backoff, so failover keeps working;
only cancellation passes. A task that still dies (a defect in the daemon itself) ends the daemon
with an error and systemd restarts it (``Restart=on-failure``). Signal handlers only set flags. A
reconcile never runs twice at once: triggers that arrive while one runs coalesce into a single
follow-up run.

Readiness: ``READY=1`` once the first trunk health read succeeded (failover is armed from
then on); until then ``STATUS=`` names what it waits for.

With a notification channel (``push``, see ``engine.push``), the channel is one more named
task: its hints trigger reconciles like the timers do, every (re)connect sets the health and
schedule timers' events (one full resync), and while it is up the health poll and the schedule
refresh slow to their resync intervals; the moment it is down they return to their fast ones.
A failed trunk recovers only when health is observed after its hold-down, and one pushed healthy
is pushed once: so a one-shot timer observes health at the end of the earliest hold-down
(``Work.recovery_due_in``, re-armed whenever the work says it may have moved), not at the next
slow resync. Polling, it is at most one extra poll per hold-down.

SIGTERM/SIGINT: start nothing new (during start-up: cancel the start-up reads), drain
in-flight writes within ``drain_timeout_s``, ``STOPPING=1``, exit 0. SIGHUP: ``RELOADING=1``,
read and validate the file, swap the whole configuration or keep the old one and say why (log +
metrics), ``READY=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import time
from collections.abc import Callable
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from syncd import config as config_mod
from syncd import errors
from syncd.obs import sdnotify

log = logging.getLogger(__name__)
# APScheduler logs every job run at INFO ("Running job Event.set ..."): two lines per timer tick,
# which at a 1-15 s health poll drowns the daemon's own lines. Its warnings still come through.
logging.getLogger("apscheduler").setLevel(logging.WARNING)


class Work(Protocol):
    """What the daemon drives; ``engine.cycle.Engine`` is the real one, tests use fakes."""

    # Set by the daemon while it runs; the work calls it whenever ``recovery_due_in`` may have
    # changed (health was observed by a poll or a push, the configuration was swapped).
    on_health_due: Callable[[], None] | None

    async def start(self) -> None:
        """Read what the first reconcile needs (reference data, health, schedules)."""
        ...

    def waiting_for(self) -> str | None:
        """What readiness still waits for, in words (None: ready, send READY=1)."""
        ...

    def failover_pending(self) -> bool:
        """A trunk failed and no reconcile has yet read what it needs to move it off routes."""
        ...

    async def poll_health(self) -> bool:
        """Poll trunk health; True when a trunk's failover state changed (reconcile now)."""
        ...

    def recovery_due_in(self) -> float | None:
        """Seconds until a failed trunk's hold-down ends (<= 0: ended), when one more health
        observation recovers it if it stayed good; None when no trunk is recovering."""
        ...

    async def refresh_schedules(self) -> bool:
        """Refresh schedules if they changed; True when the staffing input changed."""
        ...

    async def reconcile(self, *, should_stop: Callable[[], bool]) -> bool | None:
        """One reconcile; True when something is left undone (inputs missing, a write failed or
        backs off): the daemon then tries again after a backoff instead of waiting for the next
        interval boundary."""
        ...

    def apply_config(self, cfg: config_mod.Config) -> None: ...
    def observe_reload(self, *, ok: bool, now: float) -> None: ...
    def observe_unexpected_error(self, where: str) -> None:
        """An unexpected exception was contained in a work loop (``where``: its name)."""
        ...

    def status_line(self) -> str: ...
    async def close(self) -> None: ...


class PushSource(Protocol):
    """The notification channel (``engine.push.Push``); it calls back the daemon's hooks:
    ``trigger_reconcile``, ``resync`` and ``set_push``."""

    async def run(self, hooks: Daemon) -> None: ...


class Timer(Protocol):
    """A one-shot timer that can be called off (``asyncio.TimerHandle``)."""

    def cancel(self) -> None: ...


# Call back after a delay in seconds of the event loop's monotonic clock (loop.call_later).
CallLater = Callable[[float, Callable[[], None]], Timer]


async def _tick(event: asyncio.Event) -> None:
    """A timer's job. A coroutine, so that APScheduler runs it on the event loop: a plain
    function (``event.set``) it runs in a worker thread, where ``asyncio.Event`` is not safe (a
    set racing the loop's ``wait`` can lose the wakeup for good)."""
    event.set()


def first_reconcile_after(now: float, interval_s: float, lead_time_s: float) -> float:
    """The next instant that is an interval boundary minus the lead time, strictly after now."""
    k = (now + lead_time_s) // interval_s + 1
    return k * interval_s - lead_time_s


class Daemon:
    def __init__(
        self,
        *,
        config_path: str,
        config: config_mod.Config,
        work: Work,
        drain_timeout_s: float = 20.0,
        load_config: Callable[[str], config_mod.Config] = config_mod.load,
        retry_base_s: float | None = None,
        push: PushSource | None = None,
        call_later: CallLater | None = None,
    ) -> None:
        """``call_later``: the one-shot timers (default: the running loop's ``call_later``);
        tests pass fake time."""
        self.config_path = config_path
        self._call_later = call_later
        self.push = push
        self._push_up = False
        self.config = config
        self.work = work
        self.drain_timeout_s = drain_timeout_s
        self._load_config = load_config
        self._stop = asyncio.Event()
        self._reload_requested = False
        self._wake_control = asyncio.Event()
        self._health_due = asyncio.Event()
        self._refresh_due = asyncio.Event()
        self._reconcile_due = asyncio.Event()
        self._scheduler: AsyncIOScheduler | None = None
        # A reconcile that failed or left work undone is retried after retry_base_s (default:
        # the health poll interval), doubling up to the reconcile interval; see _retry_later.
        self._retry_base_s = retry_base_s
        self._retries = 0
        self._retry_handle: asyncio.TimerHandle | None = None
        # One health observation at the end of a recovering trunk's hold-down; see
        # _recovery_due_changed.
        self._recovery_handle: Timer | None = None
        self._recovery_overdue = False
        # Work loop → unexpected failures in a row (health poll, schedule refresh).
        self._unexpected: dict[str, int] = {}
        self._ready = False
        self.exit_code = 0

    # -- signals: flags only ---------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()
        self._wake_control.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake_control.set()

    def trigger_reconcile(self) -> None:
        self._reconcile_due.set()

    def resync(self) -> None:
        """One full read of health and schedules now (a channel came up, or a hint failed)."""
        self._health_due.set()
        self._refresh_due.set()

    def set_push(self, up: bool) -> None:
        """Health and schedules come by push (the polls slow down) or by poll (fast again)."""
        if up == self._push_up:
            return
        self._push_up = up
        if self._scheduler is not None:
            self._schedule()
        if not up:
            self._health_due.set()  # nothing pushes now: look at once, then at the fast pace

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _recovery_due_changed(self) -> None:
        """(Re)arm one health observation at the end of the earliest hold-down (the work
        folded health or swapped its configuration). Recovery is judged only when health is
        observed, and while the channel is up nothing else may observe a healed trunk for
        ``health.resync_s``: its recovery would wait that long. Polling: one extra poll.

        A hold-down that already ended gets one observation now (a reload shortened it, the
        fold took long); if the answer is still 'ended' after that, another poll would change
        nothing (the trunk is not listed), and the regular polls carry on, never a tight loop."""
        due_in = self.work.recovery_due_in()
        if due_in is not None and due_in <= 0:
            if self._recovery_overdue:
                return  # its observation is armed or was made: leave it to the regular polls
            self._recovery_overdue = True
        else:
            self._recovery_overdue = False
        if self._recovery_handle is not None:
            self._recovery_handle.cancel()
            self._recovery_handle = None
        if due_in is None or self.stopping:
            return
        call_later = self._call_later or asyncio.get_running_loop().call_later
        self._recovery_handle = call_later(max(0.0, due_in), self._health_due.set)
        log.debug("A failed trunk's hold-down ends in %.1f s: health is observed then.", due_in)

    # -- timers ----------------------------------------------------------------------------

    def _schedule(self) -> None:
        health_s = self.config.health.poll_s
        refresh_s = self.config.schedule.refresh_s
        if self._push_up:
            health_s = max(health_s, self.config.health.resync_s)
            refresh_s = max(refresh_s, self.config.schedule.resync_s)
        interval_s = self.config.schedule.interval_minutes * 60.0
        lead_s = self.config.schedule.lead_time_s
        if self._scheduler is None:
            self._scheduler = AsyncIOScheduler(timezone=dt.UTC)
            self._scheduler.start()
        sch = self._scheduler
        now = time.time()
        start = dt.datetime.fromtimestamp(first_reconcile_after(now, interval_s, lead_s), tz=dt.UTC)
        # A tick seen late (the loop was busy, the VM paused, the wall clock stepped) still
        # fires, once: APScheduler's default drops a run more than 1 s late, which lost a
        # reconcile boundary until the next one.
        common = {
            "coalesce": True,
            "max_instances": 1,
            "replace_existing": True,
            "misfire_grace_time": None,
        }
        sch.add_job(
            _tick,
            IntervalTrigger(seconds=health_s, timezone=dt.UTC),
            args=(self._health_due,),
            id="health-poll",
            **common,
        )
        sch.add_job(
            _tick,
            IntervalTrigger(seconds=refresh_s, timezone=dt.UTC),
            args=(self._refresh_due,),
            id="schedule-refresh",
            **common,
        )
        sch.add_job(
            _tick,
            IntervalTrigger(seconds=interval_s, start_date=start, timezone=dt.UTC),
            args=(self._reconcile_due,),
            id="reconcile",
            **common,
        )
        log.info(
            "Timers set: health poll every %.0f s, schedule refresh every %.0f s, reconcile at"
            " interval boundaries minus %.0f s lead time, next at %s.",
            health_s,
            refresh_s,
            lead_s,
            start.isoformat(),
        )

    # -- tasks -----------------------------------------------------------------------------

    async def _wait(self, event: asyncio.Event) -> bool:
        """Wait for ``event`` or stop; True when the event fired and we are not stopping."""
        if not event.is_set():
            stop = asyncio.ensure_future(self._stop.wait())
            ev = asyncio.ensure_future(event.wait())
            try:
                await asyncio.wait({stop, ev}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                ev.cancel()
        event.clear()
        return not self.stopping

    def _announce(self) -> None:
        """READY=1 once the work has what it waits for (the first health read: from then on a
        failed trunk leaves its routes); until then ``STATUS=`` names what it waits for."""
        waiting = self.work.waiting_for()
        if waiting is not None:
            sdnotify.status(f"starting: waiting for {waiting}")
            return
        if not self._ready:
            self._ready = True
            sdnotify.ready()
            log.info("syncd is ready: trunk health is known, failover is armed.")
        sdnotify.status(self.work.status_line())

    def _backoff_s(self, failures: int) -> float:
        """The pause after ``failures`` failures in a row: the retry base (default: the health
        poll interval), doubling up to the reconcile interval."""
        interval_s = self.config.schedule.interval_minutes * 60.0
        base = self._retry_base_s if self._retry_base_s is not None else self.config.health.poll_s
        return min(interval_s, base * 2.0 ** min(failures - 1, 16))

    async def _contain(self, where: str, exc: Exception) -> None:
        """An unexpected exception in a work loop (a bug, an answer syncd did not expect): one
        log line with the traceback and a count; the loop carries on after a backoff that
        doubles while it keeps failing. The daemon is not ended for it: failover goes on."""
        failures = self._unexpected.get(where, 0) + 1
        self._unexpected[where] = failures
        delay = self._backoff_s(failures)
        self.work.observe_unexpected_error(where)
        log.error(
            "Unexpected %s in the %s (%d in a row); it is tried again in %.1f s, the daemon"
            " keeps running.",
            type(exc).__name__,
            where.replace("_", " "),
            failures,
            delay,
            exc_info=exc,
            extra={"task": where},
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=delay)

    async def _health_loop(self) -> None:
        while await self._wait(self._health_due):
            try:
                if await self.work.poll_health():
                    self.trigger_reconcile()
            except errors.SyncdError as exc:
                if self._ready:
                    log.warning("Health poll failed; the last known health stands: %s", exc)
                else:
                    log.warning(
                        "Health poll failed and no trunk health is known yet: nothing is"
                        " planned until a poll succeeds: %s",
                        exc,
                    )
            except Exception as exc:  # noqa: BLE001 - contained: see _contain
                await self._contain("health_poll", exc)
            else:
                self._unexpected.pop("health_poll", None)
            if not self._ready:
                self._announce()
                if self._ready:
                    self.trigger_reconcile()  # the first health is known: plan now

    async def _refresh_loop(self) -> None:
        while await self._wait(self._refresh_due):
            try:
                if await self.work.refresh_schedules():
                    self.trigger_reconcile()
            except errors.SyncdError as exc:
                log.warning("Schedule refresh failed; the last snapshot stands: %s", exc)
            except Exception as exc:  # noqa: BLE001 - contained: see _contain
                await self._contain("schedule_refresh", exc)
            else:
                self._unexpected.pop("schedule_refresh", None)

    async def _reconcile_loop(self) -> None:
        # One task does every reconcile, so two never overlap; triggers during a run set the
        # event again and coalesce into one follow-up run.
        while await self._wait(self._reconcile_due):
            try:
                incomplete = await self.work.reconcile(should_stop=lambda: self.stopping)
            except errors.SyncdError as exc:
                log.warning("Reconcile failed; the next trigger tries again: %s", exc)
                incomplete = True
            except Exception as exc:  # a bug or a surprise: logged, counted, retried below
                self.work.observe_unexpected_error("reconcile")
                log.error(
                    "Unexpected %s in the reconcile; it is retried with backoff, the daemon"
                    " keeps running.",
                    type(exc).__name__,
                    exc_info=exc,
                    extra={"task": "reconcile"},
                )
                incomplete = True
            if incomplete and not self.stopping:
                self._retry_later()
            elif not incomplete:
                self._retries = 0
            self._announce()

    def _retry_later(self) -> None:
        # Without this, "the next trigger" after a failed reconcile was the next interval
        # boundary (up to 15 min): a trunk already in failover kept its place in the routes that
        # long when one listing failed, and a write that failed (and backed off) waited as long.
        self._retries += 1
        delay = self._backoff_s(self._retries)
        if self.work.failover_pending():
            # A failover waits for nothing but health: while one is unwritten, a reconcile that
            # failed (a flaky listing) is retried at the first step's pace, never after a
            # backoff that has grown through earlier failures.
            delay = min(delay, self._backoff_s(1))
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        self._retry_handle = asyncio.get_running_loop().call_later(delay, self.trigger_reconcile)
        log.info("The reconcile left work undone; trying again in %.1f s.", delay)

    async def _watchdog_loop(self) -> None:
        # Pings come from the event loop itself: a stalled loop stops them and systemd restarts.
        interval = sdnotify.watchdog_interval_s()
        if interval is None:
            await self._stop.wait()
            return
        while not self.stopping:
            sdnotify.watchdog()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval / 2)

    async def _reload(self) -> None:
        if self._ready:
            sdnotify.reloading()
        now = time.time()
        try:
            new = self._load_config(self.config_path)
        except errors.ConfigError as exc:
            log.error(
                "Reload refused, the running configuration stays: %s",
                "; ".join(exc.problems),
                extra={"problems": list(exc.problems)},
            )
            self.work.observe_reload(ok=False, now=now)
        except OSError as exc:
            log.error("Reload refused, the configuration file could not be read: %s", exc)
            self.work.observe_reload(ok=False, now=now)
        except Exception as exc:  # a bug in reading must not end the daemon
            # The running configuration stays in force, as for any file that does not load.
            log.error(
                "Reload refused: reading the configuration raised an unexpected %s; the"
                " running configuration stays.",
                type(exc).__name__,
                exc_info=exc,
            )
            self.work.observe_reload(ok=False, now=now)
        else:
            self.config = new
            self.work.apply_config(new)
            self._schedule()
            self.work.observe_reload(ok=True, now=now)
            log.info("Configuration reloaded from %s.", self.config_path)
            self.trigger_reconcile()
            self._refresh_due.set()
        if self._ready:
            sdnotify.ready()  # ends RELOADING=1

    async def _control_loop(self, tasks: dict[str, asyncio.Task[None]]) -> None:
        while True:
            await self._wake_control.wait()
            self._wake_control.clear()
            if self.stopping:
                break
            if self._reload_requested:
                self._reload_requested = False
                await self._reload()
        sdnotify.stopping()
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        if self._recovery_handle is not None:
            self._recovery_handle.cancel()
        log.info("Stopping: nothing new starts; in-flight writes get %.0f s.", self.drain_timeout_s)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        for name in ("health", "refresh", "push"):
            if name in tasks:
                tasks[name].cancel()
        reconcile = tasks["reconcile"]
        done, _ = await asyncio.wait({reconcile}, timeout=self.drain_timeout_s)
        if not done:
            log.error(
                "In-flight writes did not finish within %.0f s; abandoning them.",
                self.drain_timeout_s,
            )
            reconcile.cancel()

    async def _start(self) -> bool:
        """``work.start()``, unless a stop arrives first (SIGTERM during start-up is honoured:
        the start-up reads are cancelled, not waited for). False when stopped."""
        sdnotify.status("starting: reading trunk health and schedules")
        start = asyncio.ensure_future(self.work.start())
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({start, stop}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            # Cancelled from outside (the lease loop ended, ^C): the reads end with us, not
            # after the transport and the state file are closed under them.
            start.cancel()
            raise
        finally:
            stop.cancel()
        if not self.stopping:
            start.result()  # raises what start-up raised (refused credentials, ...)
            return True
        start.cancel()
        with contextlib.suppress(asyncio.CancelledError, errors.SyncdError):
            await start
        sdnotify.stopping()
        return False

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        self.work.on_health_due = self._recovery_due_changed
        try:
            if not await self._start():
                log.info("Stopped during start-up, before anything was planned.")
                return self.exit_code
            self._schedule()
            self._announce()
            log.info("syncd is running.")
            # start() read health and schedules; reconcile at once rather than at the boundary.
            self._reconcile_due.set()
            async with asyncio.TaskGroup() as tg:
                tasks: dict[str, asyncio.Task[None]] = {
                    "health": tg.create_task(self._health_loop(), name="health"),
                    "refresh": tg.create_task(self._refresh_loop(), name="schedule-refresh"),
                    "reconcile": tg.create_task(self._reconcile_loop(), name="reconcile"),
                    "watchdog": tg.create_task(self._watchdog_loop(), name="watchdog"),
                }
                if self.push is not None:
                    tasks["push"] = tg.create_task(self.push.run(self), name="push")
                tg.create_task(self._control_loop(tasks), name="control")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            self.work.on_health_due = None
            if self._recovery_handle is not None:
                self._recovery_handle.cancel()
            if self._scheduler is not None and self._scheduler.running:
                self._scheduler.shutdown(wait=False)
            await self.work.close()
        log.info("syncd stopped.")
        return self.exit_code
