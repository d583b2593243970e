"""``engine.daemon.Daemon`` in process, driving a fake ``Work``: no overlapping reconciles and
coalesced triggers, a SIGTERM drain, SIGHUP reloads (refused and applied), sd_notify messages
on a real AF_UNIX datagram socket with a watchdog.

The daemon's timers are off here (``_Daemon._schedule`` sets none): the test is the only
trigger, so counts are exact and nothing waits on the wall clock. Signals are real
(``os.kill`` of this process), delivered through the handlers ``Daemon.run`` installs.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from apscheduler import events as aps_events

from syncd import config as config_mod
from syncd import errors
from syncd.core import health, model
from syncd.engine import daemon

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
TIMEOUT = 5.0


class FakeWork:
    """Records what the daemon asks; a reconcile can be held open until the test lets it go."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.started = False
        self.closed = False
        self.reconciles = 0
        self.finished = 0
        self.cancelled = 0
        self.active = 0
        self.max_active = 0
        self.stop_seen: list[bool] = []
        self.entered: asyncio.Queue[int] = asyncio.Queue()
        self.done: asyncio.Queue[int] = asyncio.Queue()
        self.permits: asyncio.Queue[None] = asyncio.Queue()
        self.applied: list[config_mod.Config] = []
        self.reloads: asyncio.Queue[bool] = asyncio.Queue()
        # What successive reconciles answer (an exception is raised); then None (all done).
        self.results: list[bool | Exception | None] = []
        self.health_known = True
        self.poll_fails = False
        self.polls = 0
        self.polled: asyncio.Queue[int] = asyncio.Queue()
        self.start_gate: asyncio.Event | None = None  # start() waits for it when set
        self.start_entered = asyncio.Event()
        self.start_ended = asyncio.Event()  # start() returned, raised or was cancelled
        # What successive polls / refreshes raise (None: they succeed), and what the daemon
        # counted as unexpected.
        self.poll_errors: list[Exception | None] = []
        self.refresh_errors: list[Exception | None] = []
        self.refreshes: asyncio.Queue[int] = asyncio.Queue()
        self.refresh_count = 0
        self.unexpected: list[str] = []
        self.failover = False  # what failover_pending() answers
        self.on_health_due: Callable[[], None] | None = None  # the daemon sets it
        self.recovery_in: float | None = None  # what recovery_due_in() answers

    async def start(self) -> None:
        self.started = True
        self.start_entered.set()
        try:
            if self.start_gate is not None:
                await self.start_gate.wait()
        finally:
            self.start_ended.set()

    def waiting_for(self) -> str | None:
        return None if self.health_known else "the first trunk health read"

    def failover_pending(self) -> bool:
        return self.failover

    async def poll_health(self) -> bool:
        self.polls += 1
        self.polled.put_nowait(self.polls)
        if self.poll_fails:
            raise errors.ServerError("GET /trunks answered 503")
        if self.poll_errors and (error := self.poll_errors.pop(0)) is not None:
            raise error
        self.health_known = True
        return self.folded()

    def folded(self) -> bool:
        """Health was observed (a poll, or a pushed re-read): tell the daemon, as the engine
        does; True when a trunk's failover state changed."""
        if self.on_health_due is not None:
            self.on_health_due()
        return False

    def recovery_due_in(self) -> float | None:
        return self.recovery_in

    async def refresh_schedules(self) -> bool:
        self.refresh_count += 1
        self.refreshes.put_nowait(self.refresh_count)
        if self.refresh_errors and (error := self.refresh_errors.pop(0)) is not None:
            raise error
        return False

    def observe_unexpected_error(self, where: str) -> None:
        self.unexpected.append(where)

    async def reconcile(self, *, should_stop: Callable[[], bool]) -> bool | None:
        self.reconciles += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        self.entered.put_nowait(self.reconciles)
        try:
            if self.hold:
                await self.permits.get()
            self.stop_seen.append(should_stop())
            self.finished += 1
            self.done.put_nowait(self.finished)
            result = self.results.pop(0) if self.results else None
            if isinstance(result, Exception):
                raise result
            return result
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    def apply_config(self, cfg: config_mod.Config) -> None:
        self.applied.append(cfg)

    def observe_reload(self, *, ok: bool, now: float) -> None:
        self.reloads.put_nowait(ok)

    def status_line(self) -> str:
        return f"{self.reconciles} reconcile(s)"

    async def close(self) -> None:
        self.closed = True


class _Daemon(daemon.Daemon):
    """The real daemon with its APScheduler timers off (the test triggers everything)."""

    schedules = 0

    def _schedule(self) -> None:
        self.schedules += 1


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "syncd.toml"
    shutil.copyfile(DEMO, path)
    return path


@contextlib.asynccontextmanager
async def running(
    work: FakeWork,
    config_file: Path,
    *,
    drain_timeout_s: float = 20.0,
    retry_base_s: float | None = None,
    load_config: Callable[[str], config_mod.Config] = config_mod.load,
    call_later: daemon.CallLater | None = None,
) -> AsyncIterator[tuple[_Daemon, asyncio.Task[int]]]:
    d = _Daemon(
        config_path=str(config_file),
        config=config_mod.load(config_file),
        work=work,
        drain_timeout_s=drain_timeout_s,
        retry_base_s=retry_base_s,
        load_config=load_config,
        call_later=call_later,
    )
    task = asyncio.create_task(d.run())
    try:
        yield d, task
    finally:
        if not task.done():
            d.request_stop()
            work.hold = False
            work.permits.put_nowait(None)
            await asyncio.wait_for(task, TIMEOUT)


def _put(path: Path, data: bytes | None) -> None:
    """Replace the file's bytes (None: delete it), as an operator's editor would."""
    if data is None:
        path.unlink()
    else:
        path.write_bytes(data)


async def _next(q: asyncio.Queue[int] | asyncio.Queue[bool]) -> object:
    return await asyncio.wait_for(q.get(), TIMEOUT)


async def test_reconciles_never_overlap_and_triggers_coalesce(config_file: Path) -> None:
    work = FakeWork(hold=True)
    async with running(work, config_file) as (d, task):
        assert await _next(work.entered) == 1  # start() is followed by a reconcile at once
        for _ in range(5):
            d.trigger_reconcile()  # a health change, a schedule change, a timer, ...
        work.permits.put_nowait(None)
        assert await _next(work.entered) == 2  # one follow-up for all five
        d.trigger_reconcile()
        work.permits.put_nowait(None)
        assert await _next(work.entered) == 3
        work.permits.put_nowait(None)
        for _ in range(3):
            await _next(work.done)
        d.request_stop()
        assert await asyncio.wait_for(task, TIMEOUT) == 0
    assert work.reconciles == 3
    assert work.max_active == 1
    assert work.started
    assert work.closed


async def test_a_failed_or_incomplete_reconcile_is_retried_soon(config_file: Path) -> None:
    # Without a retry, "the next trigger" was the next interval boundary (up to 15 minutes):
    # a failover whose reconcile hit one bad listing stayed unwritten that long.
    work = FakeWork()
    work.results = [errors.ServerError("GET /routes answered 503"), True, None]
    async with running(work, config_file, retry_base_s=0.01) as (d, task):
        for expected in (1, 2, 3):  # failed -> retried; undone -> retried; clean -> done
            assert await _next(work.entered) == expected
            await _next(work.done)
        d.request_stop()
        assert await asyncio.wait_for(task, TIMEOUT) == 0
    assert work.reconciles == 3


async def test_sigterm_drains_the_in_flight_reconcile_and_exits_0(config_file: Path) -> None:
    work = FakeWork(hold=True)
    async with running(work, config_file, drain_timeout_s=TIMEOUT) as (d, task):
        await _next(work.entered)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(d._stop.wait(), TIMEOUT)
        await asyncio.sleep(0)
        assert not task.done()  # it waits for the write in flight ...
        work.permits.put_nowait(None)
        assert await asyncio.wait_for(task, TIMEOUT) == 0  # ... which finishes, then exit 0
    assert work.finished == 1
    assert work.cancelled == 0
    assert work.stop_seen == [True]  # the reconcile saw the stop: it starts nothing new
    assert work.reconciles == 1
    assert work.closed


async def test_a_reconcile_beyond_the_drain_timeout_is_abandoned(config_file: Path) -> None:
    work = FakeWork(hold=True)
    async with running(work, config_file, drain_timeout_s=0.05) as (d, task):
        await _next(work.entered)
        d.request_stop()  # what the SIGTERM handler does
        assert await asyncio.wait_for(task, TIMEOUT) == 0
    assert work.cancelled == 1
    assert work.finished == 0
    assert work.closed


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(b"[org\nclient_id = ", id="toml-syntax"),
        pytest.param(None, id="invalid-value"),
        pytest.param(b"\xff\xfe not utf-8", id="not-utf8"),
        pytest.param(b"", id="missing-file"),
        # A list written as a number: config.load raised TypeError, which ended the daemon.
        pytest.param(b"campaigns-as-a-number", id="list-of-the-wrong-type"),
    ],
)
async def test_a_broken_reload_keeps_the_running_config_and_says_so(
    config_file: Path, broken: bytes | None
) -> None:
    work = FakeWork()
    good = DEMO.read_bytes()
    if broken is None:
        broken = good.replace(b"lines_per_agent = 1.5", b"lines_per_agent = -3")
    elif broken == b"campaigns-as-a-number":
        broken = good.replace(b"campaigns = [", b"campaigns = 2\nold_campaigns = [", 1)
    async with running(work, config_file) as (d, task):
        await _next(work.entered)
        old = d.config
        _put(config_file, broken or None)
        os.kill(os.getpid(), signal.SIGHUP)
        assert await _next(work.reloads) is False
        assert d.config is old
        assert work.applied == []
        assert not task.done()  # still running
        # A good file then applies, swaps the whole config and reconciles.
        _put(config_file, good.replace(b"lines_per_agent = 1.5", b"lines_per_agent = 1.0", 1))
        os.kill(os.getpid(), signal.SIGHUP)
        assert await _next(work.reloads) is True
        assert d.config is not old
        assert d.config.groups[0].lines_per_agent == 1.0
        assert work.applied == [d.config]
        assert await _next(work.entered) == 2  # a reconcile under the new config
        assert d.schedules == 2  # the timers were set again for the new intervals


async def test_a_reload_whose_reading_raises_unexpectedly_keeps_the_running_config(
    config_file: Path,
) -> None:
    # Reading the file may fail in a way nobody foresaw (a bug in the checks): the reload is
    # refused like any other broken file, never the end of the running daemon.
    def load(path: str) -> config_mod.Config:
        if calls.pop(0):
            raise RuntimeError("a check that did not expect this file")
        return config_mod.load(path)

    calls = [True, False]
    work = FakeWork()
    async with running(work, config_file, load_config=load) as (d, task):
        await _next(work.entered)
        old = d.config
        d.request_reload()
        assert await _next(work.reloads) is False
        assert d.config is old
        assert work.applied == []
        assert not task.done()
        d.request_reload()  # the next reload reads the file as usual
        assert await _next(work.reloads) is True
        assert work.applied == [d.config]


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    # AF_UNIX paths are short (108 bytes): a fresh directory under /tmp, not pytest's tmp_path.
    directory = tempfile.mkdtemp(prefix="syncd-notify-", dir="/tmp")
    path = os.path.join(directory, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # 0.1 s: a ping every 0.05 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield sock
    finally:
        sock.close()
        shutil.rmtree(directory, ignore_errors=True)


async def test_notify_ready_watchdog_reloading_stopping(
    config_file: Path, notify_socket: socket.socket
) -> None:
    loop = asyncio.get_running_loop()
    messages: list[str] = []

    async def until(predicate: Callable[[list[str]], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not predicate(messages):
                messages.append((await loop.sock_recv(notify_socket, 4096)).decode())

    work = FakeWork()
    async with running(work, config_file) as (d, task):
        await until(lambda m: m.count("WATCHDOG=1") >= 3)
        assert messages[0].startswith("STATUS=starting")
        assert next(m for m in messages if not m.startswith("STATUS=")) == "READY=1"
        d.request_reload()
        await until(lambda m: any(x.startswith("RELOADING=1") for x in m) and m[-1] == "READY=1")
        d.request_stop()
        await until(lambda m: "STOPPING=1" in m)
        assert await asyncio.wait_for(task, TIMEOUT) == 0
    reloading = next(i for i, m in enumerate(messages) if m.startswith("RELOADING=1"))
    assert "MONOTONIC_USEC=" in messages[reloading]
    assert "READY=1" in messages[reloading + 1 :]
    assert any(m.startswith("STATUS=") for m in messages)
    assert await _next(work.reloads) is True


async def test_ready_only_once_trunk_health_is_known_and_status_says_what_it_waits_for(
    config_file: Path, notify_socket: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    messages: list[str] = []

    async def until(predicate: Callable[[list[str]], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not predicate(messages):
                messages.append((await loop.sock_recv(notify_socket, 4096)).decode())

    work = FakeWork()
    work.health_known = False
    work.poll_fails = True
    async with running(work, config_file) as (d, task):
        await until(lambda m: "STATUS=starting: waiting for the first trunk health read" in m)
        d._health_due.set()  # a health poll: it fails
        assert await _next(work.polled) == 1
        work.poll_fails = False
        d._health_due.set()  # it succeeds: ready now
        await until(lambda m: "READY=1" in m)
        assert work.polls == 2  # READY=1 came only after the successful poll
        logged = [r.getMessage() for r in caplog.records]
        assert any("no trunk health is known yet" in m for m in logged)
        assert not any("the last known health stands" in m for m in logged)
        d.request_stop()
        assert await asyncio.wait_for(task, TIMEOUT) == 0


async def test_an_unexpected_exception_in_a_work_loop_is_contained_and_retried(
    config_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A bug or an answer syncd did not expect (not an API error) in a health poll, a schedule
    # refresh or a reconcile: logged with its traceback, counted, tried again; the daemon lives.
    work = FakeWork()
    work.poll_errors = [RuntimeError("poll bug"), RuntimeError("poll bug")]
    work.refresh_errors = [KeyError("refresh bug")]
    work.results = [ValueError("reconcile bug"), None]
    async with running(work, config_file, retry_base_s=0.01) as (d, task):
        for expected in (1, 2):  # the failing reconcile is retried after its backoff
            assert await _next(work.entered) == expected
            await _next(work.done)
        for expected in (1, 2, 3):  # two polls fail, the third succeeds
            d._health_due.set()
            assert await _next(work.polled) == expected
        for expected in (1, 2):
            d._refresh_due.set()
            assert await _next(work.refreshes) == expected
        assert not task.done()
        d.request_stop()
        assert await asyncio.wait_for(task, TIMEOUT) == 0
    assert sorted(work.unexpected) == sorted(
        ["reconcile", "health_poll", "health_poll", "schedule_refresh"]
    )
    tracebacks = [r.exc_info[0] for r in caplog.records if r.exc_info]
    assert sorted(t.__name__ for t in tracebacks if t) == sorted(
        ["ValueError", "RuntimeError", "RuntimeError", "KeyError"]
    )
    # The backoff counts the failures in a row (it doubles with each).
    assert any("health poll (2 in a row)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("failover", [False, True])
async def test_a_pending_failover_is_retried_at_the_first_pace_not_a_grown_backoff(
    config_file: Path, caplog: pytest.LogCaptureFixture, *, failover: bool
) -> None:
    # Reads that keep failing (a flaky listing) grew the retry delay 1, 2, 4 ... up to the
    # reconcile interval, and a failover waited behind it: failover waits for health alone.
    caplog.set_level(logging.INFO, logger="syncd.engine.daemon")
    work = FakeWork()
    work.failover = failover
    work.results = [True, True, True, True, None]
    async with running(work, config_file, retry_base_s=0.01) as (d, task):
        for expected in range(1, 6):
            assert await _next(work.entered) == expected
            await _next(work.done)
        d.request_stop()
        assert await asyncio.wait_for(task, TIMEOUT) == 0
    delays = [
        r.args[0]
        for r in caplog.records
        if r.getMessage().startswith("The reconcile left work undone") and r.args
    ]
    assert delays == ([0.01] * 4 if failover else [0.01, 0.02, 0.04, 0.08])


async def test_sigterm_during_start_up_is_honoured(config_file: Path) -> None:
    work = FakeWork()
    work.start_gate = asyncio.Event()  # the start-up reads hang (a slow or silent API)
    async with running(work, config_file) as (_, task):
        await asyncio.wait_for(work.start_entered.wait(), TIMEOUT)
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, TIMEOUT) == 0
    assert work.reconciles == 0
    assert work.closed


async def test_a_daemon_cancelled_during_start_up_cancels_the_start_up_reads(
    config_file: Path,
) -> None:
    # What runs the daemon may cancel it (its leader lease loop ended, asyncio.run at ^C):
    # the start-up reads were a task of their own that nobody then owned, left reading
    # through a transport and a state file being closed under them.
    work = FakeWork()
    work.start_gate = asyncio.Event()  # the start-up reads hang (a slow or silent API)
    async with running(work, config_file) as (_, task):
        await asyncio.wait_for(work.start_entered.wait(), TIMEOUT)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, TIMEOUT)
        assert task.cancelled()
        await asyncio.wait_for(work.start_ended.wait(), TIMEOUT)
    assert work.reconciles == 0
    assert work.closed


@pytest.mark.parametrize(
    ("now", "interval_s", "lead_s", "expected"),
    [
        (0.0, 900.0, 120.0, 780.0),  # 00:13 for the 00:15 interval
        (779.0, 900.0, 120.0, 780.0),
        (780.0, 900.0, 120.0, 1680.0),  # strictly after now: the next one
        (890.0, 900.0, 0.0, 900.0),
        (86399.0, 900.0, 120.0, 86280.0 + 900.0),  # across midnight
    ],
    ids=["start", "just-before", "exactly-at", "no-lead", "midnight"],
)
def test_reconciles_align_to_interval_boundaries_minus_the_lead_time(
    now: float, interval_s: float, lead_s: float, expected: float
) -> None:
    assert daemon.first_reconcile_after(now, interval_s, lead_s) == expected


class _ThreadNoted(asyncio.Event):
    """An event that notes which thread set it."""

    def __init__(self) -> None:
        super().__init__()
        self.set_by: list[int] = []

    def set(self) -> None:
        self.set_by.append(threading.get_ident())
        super().set()


@contextlib.contextmanager
def real_timers(config_file: Path) -> Iterator[daemon.Daemon]:
    """A daemon with its real APScheduler timers set (not run: the test fires one timer)."""
    d = daemon.Daemon(
        config_path=str(config_file), config=config_mod.load(config_file), work=FakeWork()
    )
    d._health_due = _ThreadNoted()
    d._reconcile_due = _ThreadNoted()
    d._schedule()
    try:
        yield d
    finally:
        assert d._scheduler is not None
        d._scheduler.shutdown(wait=False)


def _fire(d: daemon.Daemon, job_id: str, *, late_s: float) -> asyncio.Queue[int]:
    """Make a timer due ``late_s`` seconds ago (what the scheduler sees after the loop was busy,
    the VM paused or the wall clock stepped); the queue gets the job's executed/missed event."""
    sch = d._scheduler
    assert sch is not None
    outcome: asyncio.Queue[int] = asyncio.Queue()
    sch.add_listener(
        lambda e: outcome.put_nowait(e.code) if e.job_id == job_id else None,
        aps_events.EVENT_JOB_EXECUTED | aps_events.EVENT_JOB_MISSED | aps_events.EVENT_JOB_ERROR,
    )
    sch.modify_job(job_id, next_run_time=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=late_s))
    sch.wakeup()
    return outcome


async def test_a_timer_sets_its_event_on_the_event_loop_thread(config_file: Path) -> None:
    # asyncio.Event is not thread-safe. APScheduler runs a plain function in a worker thread:
    # Event.set there races the loop's Event.wait (set between its check and its append of
    # the waiter, the wakeup is lost, and every later set finds the event already set: the
    # health loop waits for good while the watchdog is still fed).
    with real_timers(config_file) as d:
        outcome = _fire(d, "health-poll", late_s=0.0)
        assert await _next(outcome) == aps_events.EVENT_JOB_EXECUTED
        await asyncio.wait_for(d._health_due.wait(), TIMEOUT)
        assert isinstance(d._health_due, _ThreadNoted)
        assert d._health_due.set_by == [threading.get_ident()]


async def test_a_timer_that_comes_due_late_still_fires(config_file: Path) -> None:
    # APScheduler's default misfire grace is 1 s: a reconcile boundary the scheduler saw more
    # than a second late (the loop busy planning, a VM paused, the wall clock stepped) was
    # dropped, and the interval's line counts waited for the next boundary (15 min later).
    with real_timers(config_file) as d:
        outcome = _fire(d, "reconcile", late_s=10.0)
        assert await _next(outcome) == aps_events.EVENT_JOB_EXECUTED
        await asyncio.wait_for(d._reconcile_due.wait(), TIMEOUT)


class FakeTimers:
    """``Daemon(call_later=...)`` on a fake clock (``now``, shared with the work): a timer
    fires only when the test says so, after moving the clock to its instant."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.armed: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> daemon.Timer:
        entry = (self.now + delay, callback)
        self.armed.append(entry)
        timers = self

        class _Handle:
            def cancel(self) -> None:
                if entry in timers.armed:
                    timers.armed.remove(entry)

        return _Handle()

    def pending(self) -> list[float]:
        return sorted(at for at, _ in self.armed)

    def fire_next(self) -> None:
        entry = min(self.armed, key=lambda e: e[0])
        self.armed.remove(entry)
        self.now = max(self.now, entry[0])
        entry[1]()


class RecoveringWork(FakeWork):
    """One trunk base folded by the real ``core.health`` on a fake health clock, observed by
    polls (``poll_health``) and by pushed re-reads (``push``), like ``engine.cycle.Engine``."""

    def __init__(self, clock: FakeTimers, *, hold_down_s: int) -> None:
        super().__init__()
        self.clock = clock
        self.hold_down_s = hold_down_s
        self.good = True
        self.state = health.initial("tb", int(clock.now))

    def folded(self) -> bool:
        before = self.state.state
        self.state = health.observe(
            self.state, good=self.good, now=int(self.clock.now), hold_down_s=self.hold_down_s
        )
        super().folded()
        return self.state.state is not before

    def push(self, *, good: bool) -> bool:
        """A notification named the trunk and its re-read says ``good``."""
        self.good = good
        return self.folded()

    def recovery_due_in(self) -> float | None:
        at = health.recovery_at([self.state], hold_down_s=self.hold_down_s)
        return None if at is None else at - self.clock.now


async def test_with_push_up_a_trunk_pushed_healthy_recovers_at_its_hold_down_end(
    config_file: Path,
) -> None:
    # The bench's 300 s convergence: a trunk that turned healthy is pushed once, and recovery
    # is judged only when health is observed. With the channel up the next poll is the slow
    # resync (here: none at all, the daemon's interval timers are off), so the recovery
    # waited for it. The daemon observes health at the end of the hold-down instead.
    timers = FakeTimers(1000.0)
    work = RecoveringWork(timers, hold_down_s=60)
    async with running(work, config_file, call_later=timers) as (d, _):
        assert await _next(work.entered) == 1
        d.set_push(True)
        polls = work.polls
        assert work.push(good=False)  # a failover: nothing is recovering, nothing is armed
        assert work.state.state is model.HealthState.FAILED
        assert timers.pending() == []
        timers.now = 1010.0
        assert not work.push(good=True)  # pushed healthy: its hold-down ends at 1070
        assert timers.pending() == [1070.0]
        timers.now = 1030.0
        work.push(good=False)  # bad again: the hold-down restarts, and so does the timer
        assert timers.pending() == []
        timers.now = 1040.0
        work.push(good=True)
        assert timers.pending() == [1100.0]
        timers.fire_next()
        assert await _next(work.polled) == polls + 1  # one observation, at 1100
        assert work.state.state is model.HealthState.HEALTHY
        assert work.state.since == 1100
        assert timers.pending() == []  # recovered: nothing more to observe
        assert await _next(work.entered) == 2  # and the recovery is planned at once


async def test_a_hold_down_that_already_ended_gets_one_observation_not_a_poll_loop(
    config_file: Path,
) -> None:
    # A recovery due in the past (a reload shortened the hold-down; a trunk base the listing
    # leaves out, whose state stands however often it is polled) is observed once at once;
    # if the work still says 'past' after that, the regular polls carry on, never a tight loop.
    timers = FakeTimers(1000.0)
    work = FakeWork()
    async with running(work, config_file, call_later=timers) as (d, _):
        assert await _next(work.entered) == 1
        d.set_push(True)
        polls = work.polls
        work.recovery_in = -5.0
        work.folded()
        assert timers.pending() == [1000.0]  # one observation, now
        timers.fire_next()
        assert await _next(work.polled) == polls + 1
        assert timers.pending() == []  # that observation said 'past' again: no more
        work.folded()  # nor after any later fold that still says so
        assert timers.pending() == []
        work.recovery_in = 30.0
        work.folded()  # a hold-down ahead again is armed as usual
        assert timers.pending() == [1030.0]
        d._health_due.set()  # the daemon's own loop still polls when asked
        assert await _next(work.polled) == polls + 2
