"""Durable state of the daemon: audit trail of writes, failover state, snapshot fingerprints.

SQLite (standard library) in WAL mode at the configured path. Every write is recorded twice: as
``pending`` just before the request goes out, then with its outcome and request id as soon as the
API answers. A process killed in between leaves a ``pending`` row, which the next start marks
``interrupted``, so the trail never loses a write that may have been acknowledged. This module
does no HTTP and makes no decisions; rows are small and committed at once (a process crash after
the commit loses nothing; WAL with ``synchronous=NORMAL`` is durable against process death).

The event loop never waits on SQLite: the daemon uses ``AsyncStateStore``, which runs every call
on one dedicated worker thread in the order the calls were made (a commit's fsync, or a
``busy_timeout`` wait on a lock another process holds, would otherwise stall every timer and
the watchdog). The audit trail keeps ``audit_retention_days`` of history: older finished rows
are pruned at start and then once a day.

The file (and SQLite's ``-wal``/``-shm`` beside it, which take its mode) is readable by its owner
only: 0600. One process writes a state file at a time: ``WriterLock`` (an exclusive ``flock``
on ``<state file>.lock``), held by the daemon for its lifetime and by ``syncd once`` while it
writes; readers beside them (a dry run, ``syncd plan``, ``syncd history``) open it read-only
and never write it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import orjson

from syncd import errors
from syncd.core import model, table

SCHEMA = """
CREATE TABLE IF NOT EXISTS writes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    object_name TEXT NOT NULL,
    field TEXT NOT NULL,
    before TEXT NOT NULL,
    after TEXT NOT NULL,
    reason TEXT NOT NULL,
    grp TEXT NOT NULL,
    priority INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 1,
    finished_ts REAL,
    note TEXT NOT NULL DEFAULT '',
    epoch INTEGER
);
CREATE INDEX IF NOT EXISTS writes_ts ON writes (ts);
CREATE TABLE IF NOT EXISTS health (
    trunk_base_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    since INTEGER NOT NULL,
    good_since INTEGER,
    failovers INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprints (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    ts REAL NOT NULL
);
"""

PENDING = "pending"
APPLIED = "applied"
FAILED = "failed"
CONFLICT = "conflict"
INTERRUPTED = "interrupted"
SUPERSEDED = "superseded"

# The note of an applied write whose answer was lost but whose object, re-read, holds the value.
CONFIRMED_BY_REREAD = "confirmed by re-read"

# Columns added after the first release, with their definitions: added to older files on open.
# ``epoch``: the leader lease's fencing epoch (docs/ha.md); NULL for rows written without one.
_ADDED_COLUMNS = (("note", "TEXT NOT NULL DEFAULT ''"), ("epoch", "INTEGER"))


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AuditRow:
    """One write as the audit trail holds it (``before``/``after`` decoded from JSON)."""

    id: int
    ts: float
    kind: str
    object_id: str
    object_name: str
    field: str
    before: object
    after: object
    reason: str
    group: str
    outcome: str
    request_id: str
    error: str
    attempts: int
    note: str = ""
    epoch: int | None = None  # the leader lease's fencing epoch; None without coordination

    @property
    def shown_outcome(self) -> str:
        """The outcome as people read it, e.g. ``applied (confirmed by re-read)``."""
        return f"{self.outcome} ({self.note})" if self.note else self.outcome


P = ParamSpec("P")
R = TypeVar("R")

DAY_S = 86_400.0


def _serialized(
    method: Callable[Concatenate[StateStore, P], R],
) -> Callable[Concatenate[StateStore, P], R]:
    """One call at a time on the store's connection, whichever thread makes it (the worker of
    ``AsyncStateStore``, or the loop thread for a status page or a test reading the trail)."""

    @functools.wraps(method)
    def locked(store: StateStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with store._mutex:
            return method(store, *args, **kwargs)

    return locked


def _mutating(
    method: Callable[Concatenate[StateStore, P], R],
) -> Callable[Concatenate[StateStore, P], R]:
    """A call that writes the file: refused on a read-only store (a reader beside the daemon
    must not change the daemon's audit trail, failover state or fingerprints)."""

    @functools.wraps(method)
    def checked(store: StateStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if store.read_only:
            raise errors.StateError(
                f"the state file {store.path} is open read-only (beside its writer):"
                f" {method.__name__} would write it"
            )
        return method(store, *args, **kwargs)

    return checked


def _json(value: model.WriteValue) -> str:
    return orjson.dumps(list(value) if isinstance(value, tuple) else value).decode()


class WriterLock:
    """The one-writer rule of a state file: an exclusive ``flock`` on ``<state file>.lock``.

    The kernel drops the lock when its holder exits, ``kill -9`` included, so a stale lock
    cannot outlive a process. The file keeps the holder's pid for the refusal message; it is
    never deleted (deleting a lock file lets two processes lock two different files).
    """

    def __init__(self, state_path: str | Path) -> None:
        self.state_path = Path(state_path)
        self.path = self.state_path.with_name(self.state_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise ``StateError`` naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f" (pid {holder})" if holder.isdigit() else ""
            raise errors.StateError(
                f"another syncd process{who} is writing to the state file {self.state_path}:"
                " one writer per state file. A daemon is probably running on it; `syncd once"
                " --dry-run` can run beside it, `syncd once` only when it is stopped."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _create_private(path: Path) -> None:
    """Create the state file 0600 before SQLite opens it (SQLite gives its -wal and -shm files
    the database file's mode), and tighten a file left wider by an older version."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if each.stat().st_mode & 0o077:
                each.chmod(0o600)


class StateStore:
    """The SQLite file; one per daemon. ``writer=True`` takes the state file's ``WriterLock``
    first (and refuses with ``StateError`` when another process holds it). ``read_only=True``
    is a reader beside a writer (``syncd plan``, ``syncd once --dry-run``, ``syncd history``):
    every call that would write the file raises ``StateError``, and SQLite refuses any write
    on its connection (``query_only``)."""

    def __init__(self, path: str | Path, *, writer: bool = False, read_only: bool = False) -> None:
        if writer and read_only:
            raise ValueError("a state store is the writer or read-only, not both")
        self.path = Path(path)
        self.read_only = read_only
        memory = str(path) == ":memory:"
        self._lock = WriterLock(self.path) if writer and not memory else None
        self._mutex = threading.RLock()
        try:
            if not memory:
                _create_private(self.path)
            if self._lock is not None:
                self._lock.acquire()
            # Used from the AsyncStateStore worker and, for reads, the loop thread: the mutex
            # above serializes them.
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            have = {r[1] for r in self._db.execute("PRAGMA table_info(writes)")}
            for column, definition in _ADDED_COLUMNS:
                if column not in have:
                    self._db.execute(f"ALTER TABLE writes ADD COLUMN {column} {definition}")
            if read_only:
                self._db.execute("PRAGMA query_only=ON")
        except (OSError, sqlite3.Error) as exc:
            if self._lock is not None:
                self._lock.release()
            raise errors.StateError(
                f"cannot open the state file {path}: {exc} (check state_path and that the"
                " directory is writable, e.g. systemd's StateDirectory=)"
            ) from exc

    @_serialized
    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.release()

    # -- audit trail -------------------------------------------------------------------------

    @_serialized
    @_mutating
    def begin_write(self, write: model.Write, *, now: float, epoch: int | None = None) -> int:
        """Record a write about to be sent (with the lease epoch it is sent under, if any);
        returns the row id to finish it with."""
        cur = self._db.execute(
            "INSERT INTO writes (ts, kind, object_id, object_name, field, before, after, reason,"
            " grp, priority, outcome, epoch) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                now,
                write.kind.value,
                write.object_id,
                write.object_name,
                write.field,
                _json(write.before),
                _json(write.after),
                write.reason,
                write.group,
                int(write.priority),
                PENDING,
                epoch,
            ),
        )
        row_id = cur.lastrowid
        assert row_id is not None  # noqa: S101 - sqlite always sets it after an INSERT
        return row_id

    @_serialized
    @_mutating
    def finish_write(
        self,
        row_id: int,
        *,
        outcome: str,
        now: float,
        request_id: str = "",
        error: str = "",
        attempts: int = 1,
        note: str = "",
        before: model.WriteValue | object = dataclasses.MISSING,
        after: model.WriteValue | object = dataclasses.MISSING,
    ) -> None:
        """Set the outcome (and, after a re-plan, the before/after actually sent)."""
        sets = ["outcome=?", "request_id=?", "error=?", "attempts=?", "finished_ts=?", "note=?"]
        args: list[object] = [outcome, request_id, error, attempts, now, note]
        if before is not dataclasses.MISSING:
            sets.append("before=?")
            args.append(_json(before))  # type: ignore[arg-type]
        if after is not dataclasses.MISSING:
            sets.append("after=?")
            args.append(_json(after))  # type: ignore[arg-type]
        args.append(row_id)
        self._db.execute(f"UPDATE writes SET {', '.join(sets)} WHERE id=?", args)  # noqa: S608 - fixed column names

    @_serialized
    @_mutating
    def mark_interrupted(self, *, now: float) -> int:
        """At start-up: writes left pending by a killed process may or may not have landed."""
        cur = self._db.execute(
            "UPDATE writes SET outcome=?, finished_ts=?, error=? WHERE outcome=?",
            (INTERRUPTED, now, "the daemon stopped before the answer was recorded", PENDING),
        )
        return cur.rowcount

    @_serialized
    def history(self, *, since: float | None = None, limit: int = 200) -> list[AuditRow]:
        """Recent writes, oldest first."""
        rows = self._db.execute(
            "SELECT id, ts, kind, object_id, object_name, field, before, after, reason, grp,"
            " outcome, request_id, error, attempts, note, epoch FROM writes WHERE ts >= ?"
            " ORDER BY id DESC LIMIT ?",
            (since if since is not None else 0.0, limit),
        ).fetchall()
        return [
            AuditRow(
                id=r[0],
                ts=r[1],
                kind=r[2],
                object_id=r[3],
                object_name=r[4],
                field=r[5],
                before=orjson.loads(r[6]),
                after=orjson.loads(r[7]),
                reason=r[8],
                group=r[9],
                outcome=r[10],
                request_id=r[11],
                error=r[12],
                attempts=r[13],
                note=r[14],
                epoch=r[15],
            )
            for r in reversed(rows)
        ]

    @_serialized
    @_mutating
    def prune(self, *, before: float) -> int:
        """Delete finished audit rows written before ``before``; how many went."""
        cur = self._db.execute(
            "DELETE FROM writes WHERE ts < ? AND outcome != ?", (before, PENDING)
        )
        return cur.rowcount

    # -- failover state ----------------------------------------------------------------------

    @_serialized
    def load_health(self) -> dict[str, model.TrunkHealth]:
        rows = self._db.execute(
            "SELECT trunk_base_id, state, since, good_since, failovers FROM health"
        ).fetchall()
        return {
            r[0]: model.TrunkHealth(
                trunk_base_id=r[0],
                state=model.HealthState(r[1]),
                since=r[2],
                good_since=r[3],
                failovers=r[4],
            )
            for r in rows
        }

    @_serialized
    @_mutating
    def save_health(self, states: Iterable[model.TrunkHealth]) -> None:
        """Persist the failover state in one transaction, so a restart does not flap routes."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO health (trunk_base_id, state, since, good_since, failovers)"
                " VALUES (?,?,?,?,?) ON CONFLICT(trunk_base_id) DO UPDATE SET"
                " state=excluded.state, since=excluded.since, good_since=excluded.good_since,"
                " failovers=excluded.failovers",
                [
                    (h.trunk_base_id, h.state.value, h.since, h.good_since, h.failovers)
                    for h in states
                ],
            )

    # -- snapshot fingerprints ---------------------------------------------------------------

    # -- names (so the audit trail can be read without the API) ------------------------------

    @_serialized
    @_mutating
    def remember_names(self, names: Mapping[str, str]) -> None:
        """Keep the display name of each id (trunk bases, routes): ``syncd history`` shows
        names, and the state file is all it has."""
        with self._transaction():
            self._db.executemany(
                "INSERT INTO names (id, name) VALUES (?, ?)"
                " ON CONFLICT(id) DO UPDATE SET name=excluded.name WHERE name != excluded.name",
                list(names.items()),
            )

    @_serialized
    def names(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT id, name FROM names").fetchall())

    @_serialized
    def get_fingerprint(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM fingerprints WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @_serialized
    @_mutating
    def set_fingerprint(self, key: str, value: str, *, now: float) -> None:
        self._db.execute(
            "INSERT INTO fingerprints (key, value, ts) VALUES (?,?,?) ON CONFLICT(key)"
            " DO UPDATE SET value=excluded.value, ts=excluded.ts",
            (key, value, now),
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


class AsyncStateStore:
    """The state store as the event loop uses it: each call runs on one dedicated worker thread,
    in the order the calls were made (a single worker keeps a write's ``pending`` row before its
    outcome, and health saves in order). ``sync`` is the ``StateStore`` underneath."""

    def __init__(self, store: StateStore) -> None:
        self.sync = store
        self.path = store.path
        self.read_only = store.read_only
        self._worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="syncd-state"
        )
        self._pruned_at: float | None = None

    async def _call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, functools.partial(fn, *args, **kwargs))

    async def close(self) -> None:
        """Finish the calls already made, then close the file (and its writer lock)."""
        await asyncio.get_running_loop().run_in_executor(None, self._worker.shutdown)
        self.sync.close()

    async def begin_write(self, write: model.Write, *, now: float, epoch: int | None = None) -> int:
        return await self._call(self.sync.begin_write, write, now=now, epoch=epoch)

    async def finish_write(
        self,
        row_id: int,
        *,
        outcome: str,
        now: float,
        request_id: str = "",
        error: str = "",
        attempts: int = 1,
        note: str = "",
        before: model.WriteValue | object = dataclasses.MISSING,
        after: model.WriteValue | object = dataclasses.MISSING,
    ) -> None:
        await self._call(
            self.sync.finish_write,
            row_id,
            outcome=outcome,
            now=now,
            request_id=request_id,
            error=error,
            attempts=attempts,
            note=note,
            before=before,
            after=after,
        )

    async def mark_interrupted(self, *, now: float) -> int:
        return await self._call(self.sync.mark_interrupted, now=now)

    async def history(self, *, since: float | None = None, limit: int = 200) -> list[AuditRow]:
        return await self._call(self.sync.history, since=since, limit=limit)

    async def load_health(self) -> dict[str, model.TrunkHealth]:
        return await self._call(self.sync.load_health)

    async def save_health(self, states: Iterable[model.TrunkHealth]) -> None:
        await self._call(self.sync.save_health, tuple(states))

    async def set_fingerprint(self, key: str, value: str, *, now: float) -> None:
        await self._call(self.sync.set_fingerprint, key, value, now=now)

    async def remember_names(self, names: Mapping[str, str]) -> None:
        await self._call(self.sync.remember_names, dict(names))

    async def prune(self, *, now: float, retention_days: float) -> int:
        """Drop audit rows older than the retention (finished ones: a pending row stays)."""
        self._pruned_at = now
        return await self._call(self.sync.prune, before=now - retention_days * DAY_S)

    async def prune_if_due(self, *, now: float, retention_days: float) -> int:
        """``prune`` once a day: on the first call, then when a day has passed since the last."""
        if self._pruned_at is not None and 0 <= now - self._pruned_at < DAY_S:
            return 0
        return await self.prune(now=now, retention_days=retention_days)


def _show(value: object, names: Mapping[str, str]) -> str:
    if isinstance(value, list):
        return (
            "[" + ", ".join(names.get(v, v) if isinstance(v, str) else str(v) for v in value) + "]"
        )
    return "∅" if value is None else str(value)


def format_history(
    rows: Iterable[AuditRow], *, names: Mapping[str, str] | None = None, wide: bool = False
) -> str:
    """``syncd history`` as a table: objects and trunk bases by name, 100 columns unless
    ``wide`` (then ids, the request id and the error too, every cell whole)."""
    import datetime as dt  # noqa: PLC0415 - display only

    names = names or {}
    # The kind (campaign_lines, route_order, …) says which field; --wide shows it anyway.
    header = ["time (UTC)", "outcome", "object", "before → after", "group: reason"]
    if wide:
        header += ["field", "object id", "request id", "epoch", "error"]
    out = []
    for r in rows:
        when = dt.datetime.fromtimestamp(r.ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        cells = [
            when,
            r.shown_outcome,
            f"{r.kind} {r.object_name}",
            f"{_show(r.before, names)} → {_show(r.after, names)}",
            f"{r.group}: {r.reason}" + (f" ({r.error})" if r.error and not wide else ""),
        ]
        if wide:
            cells += [
                r.field,
                r.object_id,
                r.request_id,
                "" if r.epoch is None else str(r.epoch),
                r.error,
            ]
        out.append(cells)
    lines = table.render(header, out, width=None if wide else table.TERMINAL_WIDTH, keep=(0, 1))
    return "\n".join(lines)


def history_json(row: AuditRow, names: Mapping[str, str] | None = None) -> str:
    """One write as a JSON object (every column, and the names of the ids it mentions)."""
    data = dataclasses.asdict(row)
    mentioned = [v for v in (row.before, row.after) if isinstance(v, list)]
    data["names"] = {
        v: (names or {})[v]
        for vs in mentioned
        for v in vs
        if isinstance(v, str) and v in (names or {})
    }
    return orjson.dumps(data).decode()
