"""The state file as the running engine uses it: SQLite never stalls the event loop, and the
audit trail keeps only ``audit_retention_days`` of history (pruned at start, then daily)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from engine_sim import FakeClock, sim_and_engine
from test_applier import ACME_001
from test_state import _write

from syncd.core import model
from syncd.engine import state
from syncd.genesys import api as api_mod

DAY = 86_400.0


class AfterTrunkListing:
    """The real API port; ``listed`` is set when a trunk listing has been answered."""

    def __init__(self, inner: api_mod.GenesysApiPort) -> None:
        self._inner = inner
        self.listed = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_trunks(self, **kw: Any) -> tuple[model.TrunkStatus, ...]:
        listed = await self._inner.list_trunks(**kw)
        self.listed.set()
        return listed


async def test_a_locked_state_file_does_not_stall_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        engine = asm.engine
        await engine.start()
        probe = AfterTrunkListing(engine.api)
        engine.reader.api = probe
        running.sim.fail_trunk(ACME_001)  # the poll changes failover state: it must be saved
        # Another process holds the database's write lock (a backup, `sqlite3` by hand).
        other = sqlite3.connect(asm.store.path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        try:
            poll = asyncio.ensure_future(engine.poll_health())
            await probe.listed.wait()
            # The poll now saves the failover state and waits for the lock: on a worker thread,
            # while the loop goes on (done here would mean the loop sat in SQLite's busy
            # timeout until it gave up, with every timer and the watchdog frozen meanwhile).
            for _ in range(5):
                await asyncio.sleep(0)
            assert not poll.done()
        finally:
            other.execute("COMMIT")
            other.close()
        assert await poll  # the state changed, and was saved once the lock was free
        assert (await asm.store.load_health())[ACME_001].state is model.HealthState.FAILED


async def test_calls_run_in_the_order_they_were_made(tmp_path: Path) -> None:
    store = state.AsyncStateStore(state.StateStore(tmp_path / "s.db"))
    begun = [asyncio.ensure_future(store.begin_write(_write(after=n), now=n)) for n in range(20)]
    rows = await asyncio.gather(*begun)
    assert rows == sorted(rows)
    await asyncio.gather(*(store.finish_write(r, outcome=state.APPLIED, now=100.0) for r in rows))
    assert [r.after for r in await store.history()] == list(range(20))
    await store.close()


async def test_the_audit_trail_is_pruned_at_start_and_then_daily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (_, asm):
        engine = asm.engine
        clock = FakeClock()
        engine.clock = clock
        engine.applier.clock = clock
        engine.cfg = engine.cfg.model_copy(update={"audit_retention_days": 30})
        now = clock()
        old = asm.store.sync
        for name, age in (("older", 30.5 * DAY), ("younger", 29.6 * DAY)):
            row = old.begin_write(_write(object_id=name), now=now - age)
            old.finish_write(row, outcome=state.APPLIED, now=now - age)

        await engine.start()

        def kept() -> set[str]:
            return {r.object_id for r in old.history(limit=1000)} & {"older", "younger"}

        assert kept() == {"younger"}
        clock.advance(0.5 * DAY)  # "younger" is now past the retention, but a day has not passed
        await engine.reconcile(should_stop=lambda: False)
        assert kept() == {"younger"}
        clock.advance(0.5 * DAY)
        await engine.reconcile(should_stop=lambda: False)
        assert kept() == set()
        # The reconciles' own writes are recent: they stay.
        assert old.history(limit=1000)
