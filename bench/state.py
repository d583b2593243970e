"""``python -m bench state [--json] [--writes 200] [--lock-ms 500]``: the event loop while the
audit trail is written, with SQLite's write lock held by another process part of the time.

Role: write the same audit rows (``begin_write`` + ``finish_write`` per write, as the applier
does) two ways, side by side in one run: ``in-loop`` calls ``StateStore`` on the event loop
thread (what the daemon did before), ``worker`` goes through ``AsyncStateStore`` (one worker
thread, call order kept). Meanwhile a second connection holds an exclusive lock on the file for
``--lock-ms`` (a backup, ``sqlite3`` by hand) and a ticker task measures how late the loop
wakes it (every 5 ms): the lag is what every timer, health poll and the watchdog would see.
Figures are wall-clock times on this machine.

It must not be run by the tests (timings are not assertions).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from syncd.core import model
from syncd.engine import state

TICK_S = 0.005


def _write(i: int) -> model.Write:
    return model.Write(
        kind=model.WriteKind.CAMPAIGN_LINES,
        object_id=f"campaign-{i % 20}",
        object_name=f"Campaign {i % 20}",
        field="outboundLineCount",
        before=i,
        after=i + 1,
        reason="bench",
        priority=model.Priority.STAFFING,
        group="bench",
    )


async def _ticker(stop: asyncio.Event, lags: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + TICK_S
        await asyncio.sleep(TICK_S)
        lags.append(max(0.0, loop.time() - due))


def _hold_lock(path: Path, seconds: float, taken: threading.Event) -> None:
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    taken.set()
    time.sleep(seconds)
    other.execute("COMMIT")
    other.close()


async def _run(mode: str, directory: Path, writes: int, lock_s: float) -> dict[str, Any]:
    store = state.StateStore(directory / f"{mode}.sqlite3")
    worker = state.AsyncStateStore(store)
    begin: Callable[[model.Write, float], Awaitable[int]]
    finish: Callable[[int, float], Awaitable[None]]
    if mode == "worker":

        async def begin(w: model.Write, now: float) -> int:
            return await worker.begin_write(w, now=now)

        async def finish(row: int, now: float) -> None:
            await worker.finish_write(row, outcome=state.APPLIED, now=now)
    else:

        async def begin(w: model.Write, now: float) -> int:
            return store.begin_write(w, now=now)

        async def finish(row: int, now: float) -> None:
            store.finish_write(row, outcome=state.APPLIED, now=now)

    stop = asyncio.Event()
    lags: list[float] = []
    ticker = asyncio.create_task(_ticker(stop, lags))
    taken = threading.Event()
    locker = threading.Thread(target=_hold_lock, args=(store.path, lock_s, taken))
    started = time.perf_counter()
    for i in range(writes):
        if i == writes // 4:  # a quarter in, someone takes the lock
            locker.start()
            taken.wait()
        row = await begin(_write(i), time.time())
        await finish(row, time.time())
        await asyncio.sleep(0)  # the applier awaits HTTP between writes
    elapsed = time.perf_counter() - started
    stop.set()
    await ticker
    locker.join()
    await worker.close()
    ordered = sorted(lags)
    return {
        "mode": mode,
        "writes": writes,
        "seconds": round(elapsed, 3),
        "ticks": len(lags),
        "loop_lag_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "loop_lag_p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
        "loop_lag_max_ms": round(ordered[-1] * 1000, 2),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench state")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--lock-ms", type=float, default=500.0)
    ns = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="syncd-bench-state-") as tmp:
        runs = [
            asyncio.run(_run(mode, Path(tmp), ns.writes, ns.lock_ms / 1000))
            for mode in ("in-loop", "worker")
        ]
    result = {"lock_ms": ns.lock_ms, "tick_ms": TICK_S * 1000, "runs": runs}
    if not ns.json:
        for r in runs:
            print(
                f"{r['mode']:>8}: {r['writes']} audited writes in {r['seconds']} s; loop lag p50"
                f" {r['loop_lag_p50_ms']} ms, p99 {r['loop_lag_p99_ms']} ms, max"
                f" {r['loop_lag_max_ms']} ms (lock held {ns.lock_ms:.0f} ms)",
                file=sys.stderr,
            )
    print(json.dumps(result))
    return 0
