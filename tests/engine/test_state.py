"""The audit trail and failover state survive the process: rows, outcomes, interruption marks."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from syncd import errors
from syncd.core import model
from syncd.engine import state


def _write(**kw: object) -> model.Write:
    base: dict[str, object] = {
        "kind": model.WriteKind.CAMPAIGN_LINES,
        "object_id": "c1",
        "object_name": "Campaign 1",
        "field": "outboundLineCount",
        "before": 10,
        "after": 14,
        "reason": "staffing up",
        "priority": model.Priority.STAFFING,
        "group": "g1",
    }
    base.update(kw)
    return model.Write(**base)  # type: ignore[arg-type]


def test_write_lifecycle_and_history(tmp_path: Path) -> None:
    db = state.StateStore(tmp_path / "s.db")
    rid = db.begin_write(_write(), now=100.0)
    assert [r.outcome for r in db.history()] == [state.PENDING]
    db.finish_write(rid, outcome=state.APPLIED, now=101.0, request_id="req-1")
    route = _write(
        kind=model.WriteKind.ROUTE_ORDER,
        object_id="r1",
        field="externalTrunkBases",
        before=("a", "b"),
        after=("b", "a"),
        priority=model.Priority.FAILOVER,
    )
    rid2 = db.begin_write(route, now=102.0)
    db.finish_write(rid2, outcome=state.CONFLICT, now=103.0, error="409", after=("b",))
    rows = db.history()
    assert [(r.object_id, r.outcome, r.request_id) for r in rows] == [
        ("c1", state.APPLIED, "req-1"),
        ("r1", state.CONFLICT, ""),
    ]
    assert rows[1].before == ["a", "b"]
    assert rows[1].after == ["b"]
    assert [r.object_id for r in db.history(since=101.5)] == ["r1"]
    db.close()


def test_pending_rows_survive_a_crash_and_are_marked_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = state.StateStore(path)
    db.begin_write(_write(), now=1.0)
    # no close(): the process "dies" with the row pending
    del db
    again = state.StateStore(path)
    assert again.mark_interrupted(now=2.0) == 1
    (row,) = again.history()
    assert row.outcome == state.INTERRUPTED
    assert again.mark_interrupted(now=3.0) == 0


def test_health_state_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = state.StateStore(path)
    states = [
        model.TrunkHealth(
            trunk_base_id="t1", state=model.HealthState.FAILED, since=50, good_since=60, failovers=2
        ),
        model.TrunkHealth(trunk_base_id="t2", state=model.HealthState.HEALTHY, since=0),
    ]
    db.save_health(states)
    db.save_health([states[0]])  # an upsert, not a duplicate
    db.close()
    loaded = state.StateStore(path).load_health()
    assert loaded == {s.trunk_base_id: s for s in states}


def test_fingerprints(tmp_path: Path) -> None:
    db = state.StateStore(tmp_path / "s.db")
    assert db.get_fingerprint("bu1") is None
    db.set_fingerprint("bu1", "v3", now=1.0)
    db.set_fingerprint("bu1", "v4", now=2.0)
    assert db.get_fingerprint("bu1") == "v4"


def test_format_history_is_readable(tmp_path: Path) -> None:
    db = state.StateStore(tmp_path / "s.db")
    rid = db.begin_write(_write(), now=0.0)
    db.finish_write(rid, outcome=state.APPLIED, now=1.0, request_id="abc")
    header, line = state.format_history(db.history()).splitlines()
    assert header.startswith("time (UTC)")
    assert line.startswith("1970-01-01 00:00:00  applied")
    assert line.split() == [
        *("1970-01-01", "00:00:00", "applied", "campaign_lines", "Campaign", "1"),
        *("10", "→", "14", "g1:", "staffing", "up"),
    ]
    assert "c1" not in line  # the name, not the id
    wide = state.format_history(db.history(), wide=True)
    for shown in ("abc", "c1", "outboundLineCount"):
        assert shown in wide


def test_history_names_trunk_bases_and_fits_100_columns(tmp_path: Path) -> None:
    db = state.StateStore(tmp_path / "s.db")
    ids = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(6)]
    names = {tb: f"Carrier {n} BYOC" for n, tb in enumerate(ids)}
    db.remember_names(names)
    db.remember_names({ids[0]: "Carrier 0 BYOC renamed"})
    write = _write(
        kind=model.WriteKind.ROUTE_ORDER,
        object_id="r1",
        object_name="Site 001 Default Outbound",
        field="externalTrunkBases",
        before=tuple(ids),
        after=tuple(reversed(ids)),
    )
    db.finish_write(db.begin_write(write, now=0.0), outcome=state.APPLIED, now=1.0)
    text = state.format_history(db.history(), names=db.names())
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "[Carrier 0 BYOC renamed, " in text
    assert ids[1] not in text
    row = orjson.loads(state.history_json(db.history()[0], db.names()))
    assert row["before"] == ids
    assert row["names"][ids[5]] == "Carrier 5 BYOC"
    assert row["object_name"] == "Site 001 Default Outbound"


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_state_file_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "s.db"
    db = state.StateStore(path)
    db.finish_write(db.begin_write(_write(), now=1.0), outcome=state.APPLIED, now=2.0)
    wal, shm = path.with_name("s.db-wal"), path.with_name("s.db-shm")
    assert wal.exists()
    assert shm.exists()
    assert {p.name: _mode(p) for p in (path, wal, shm)} == {
        "s.db": 0o600,
        "s.db-wal": 0o600,
        "s.db-shm": 0o600,
    }
    assert _mode(path.parent) == 0o700
    db.close()


def test_a_state_file_left_readable_by_others_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    state.StateStore(path).close()
    path.chmod(0o644)
    state.StateStore(path).close()
    assert _mode(path) == 0o600


def test_one_writer_per_state_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    daemon = state.StateStore(path, writer=True)
    with pytest.raises(errors.StateError) as refused:
        state.StateStore(path, writer=True)
    assert f"another syncd process (pid {os.getpid()}) is writing to the state file" in str(
        refused.value
    )
    assert str(path) in str(refused.value)
    assert _mode(path.with_name("s.db.lock")) == 0o600
    # A reader (a dry run, `syncd history`) is no writer: it opens beside the daemon.
    reader = state.StateStore(path)
    reader.close()
    daemon.close()
    state.StateStore(path, writer=True).close()  # released with the daemon


def test_a_read_only_store_refuses_every_write(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    daemon = state.StateStore(path, writer=True)
    row = daemon.begin_write(_write(), now=1.0)
    reader = state.StateStore(path, read_only=True)
    try:
        healthy = model.TrunkHealth(trunk_base_id="t1", state=model.HealthState.FAILED, since=1)
        refused = [
            lambda: reader.begin_write(_write(), now=2.0),
            lambda: reader.finish_write(row, outcome=state.APPLIED, now=2.0),
            lambda: reader.mark_interrupted(now=2.0),
            lambda: reader.prune(before=10.0),
            lambda: reader.save_health([healthy]),
            lambda: reader.remember_names({"t1": "Trunk 1"}),
            lambda: reader.set_fingerprint("k", "v", now=2.0),
        ]
        for call in refused:
            with pytest.raises(errors.StateError, match="open read-only"):
                call()
        # SQLite itself refuses a write on the reader's connection too.
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._db.execute("DELETE FROM writes")
        assert [r.outcome for r in reader.history()] == [state.PENDING]  # reads work
    finally:
        reader.close()
        daemon.close()
    with pytest.raises(ValueError, match="not both"):
        state.StateStore(path, writer=True, read_only=True)


def test_the_writer_lock_dies_with_its_process(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from syncd.engine import state\n"
            "state.StateStore(sys.argv[1], writer=True)\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(errors.StateError, match=f"pid {holder.pid}"):
            state.StateStore(path, writer=True)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(30)
    finally:
        if holder.poll() is None:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(30)
        if holder.stdout is not None:
            holder.stdout.close()
    state.StateStore(path, writer=True).close()  # kill -9 leaves no stale lock


def test_a_state_file_from_before_coordination_gains_an_epoch_column(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    added = ",\n    note TEXT NOT NULL DEFAULT '',\n    epoch INTEGER\n"
    old_schema = state.SCHEMA.replace(added, "\n")
    assert "epoch" not in old_schema
    assert "note" not in old_schema
    db = sqlite3.connect(path)
    db.executescript(old_schema)
    db.execute(
        "INSERT INTO writes (ts, kind, object_id, object_name, field, before, after, reason,"
        " grp, priority, outcome) VALUES (1.0, 'campaign_lines', 'c0', 'C0', 'f', '1', '2',"
        " 'r', 'g', 2, 'applied')"
    )
    db.commit()
    db.close()

    store = state.StateStore(path)
    rid = store.begin_write(_write(), now=100.0, epoch=5)
    store.finish_write(rid, outcome=state.APPLIED, now=101.0)
    rows = store.history()
    assert [(r.object_id, r.epoch) for r in rows] == [("c0", None), ("c1", 5)]
    header, _, second = state.format_history(rows, wide=True).splitlines()
    epoch_at = header.index("epoch")
    assert second[epoch_at:].split()[0] == "5"
    assert orjson.loads(state.history_json(rows[1]))["epoch"] == 5
    store.close()
    state.StateStore(path).close()  # opening it again changes nothing
