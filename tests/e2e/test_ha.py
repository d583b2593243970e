"""Two replicas, one writer (docs/ha.md): real ``syncd run`` processes, a real ``syncd sim`` and a
real ``redis-server``, all on loopback, each started and stopped here by its PID.

The lease timings are shortened (lease 3 s, renew deadline 2 s, retry 0.5 s) so the scenarios
run in seconds; the 15 s real-time figures are measured by ``python -m bench ha``. Every write is
checked from outside: the simulator's request log (each answer's correlation id) joined with
each replica's audit trail (the correlation id and the lease epoch of every write). Waiting is
polling with a deadline; nothing asserts on how long anything took.
"""

from __future__ import annotations

import datetime as dt
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import (
    AMERICAS_TRUNKS,
    APAC_TRUNKS,
    DaemonProcess,
    SimProcess,
    converged,
    free_port,
    load_grafana_exprs,
    sim_process,
    start_daemon,
    wait_for,
    write_config,
)

from bench import redisproc
from syncd.engine import state

pytestmark = pytest.mark.slow

LEASE_S, RENEW_DEADLINE_S, RETRY_S = 3.0, 2.0, 0.5
OUTAGE_S = 30.0  # the must-show's Redis outage (a scenario length, not an assertion)


def coordination_section(url: str) -> str:
    return (
        "[coordination]\n"
        'backend = "redis"\n'
        f'url = "{url}"\n'
        'key_prefix = "syncd-test"\n'
        f"lease_s = {LEASE_S}\n"
        f"renew_deadline_s = {RENEW_DEADLINE_S}\n"
        f"retry_s = {RETRY_S}\n"
        "max_write_s = 0.5\n"
        "timeout_s = 0.5\n\n"
    )


@dataclass
class Cluster:
    sim: SimProcess
    redis: redisproc.RedisServer
    tmp: Path
    probe: Path
    replicas: list[DaemonProcess] = field(default_factory=list)
    states: list[Path] = field(default_factory=list)

    def start_replica(self, i: int) -> DaemonProcess:
        port = free_port()
        st = self.tmp / f"replica{i}.sqlite3"
        cfg = write_config(
            self.tmp / f"replica{i}.toml",
            self.sim.url,
            state_path=st,
            metrics_port=port,
            replace=(("[metrics]", coordination_section(self.redis.url) + "[metrics]"),),
        )
        d = start_daemon(cfg, self.tmp / f"replica{i}.log", port)
        self.replicas.append(d)
        self.states.append(st)
        return d

    def leaders(self, among: list[DaemonProcess] | None = None) -> list[DaemonProcess]:
        return [
            d
            for d in (self.replicas if among is None else among)
            if d.metric_sum("syncd_leader") == 1
        ]

    def audit(self, i: int) -> list[state.AuditRow]:
        store = state.StateStore(self.states[i])  # a reader beside the running writer
        try:
            return store.history(limit=100_000)
        finally:
            store.close()

    def writes(self) -> list[dict[str, Any]]:
        """Writes of org objects (a notification channel's subscription is none: every
        replica, leader or not, subscribes its own channel)."""
        return [
            r
            for r in self.sim.requests()
            if r["method"] in ("PUT", "PATCH")
            and 200 <= r["status"] < 300
            and not str(r["path"]).startswith("/api/v2/notifications/")
        ]

    def owned(self, writes: list[dict[str, Any]]) -> dict[str, tuple[int, int | None]] | None:
        """Correlation id → (replica, lease epoch) of each of ``writes``, once every one of
        them is in some replica's audit trail; None while one is not (yet).

        A write whose answer syncd had is found by the correlation id the answer carried. A
        write whose answer it never had (abandoned at the lease's end, or lost) has a row that
        says it may have landed, without an id: the server made the id up, and syncd never
        heard it. Such a write is the latest of those rows for the same object begun before
        the server logged the write, each row standing for one write at most."""
        known: dict[str, tuple[int, int | None]] = {}
        unanswered: list[tuple[float, str, int, int | None]] = []
        for i in range(len(self.replicas)):
            for row in self.audit(i):
                if row.request_id:
                    known[row.request_id] = (i, row.epoch)
                elif may_have_landed(row):
                    unanswered.append((row.ts, row.object_id, i, row.epoch))
        out: dict[str, tuple[int, int | None]] = {}
        for w in sorted(writes, key=at):
            if w["request_id"] in known:
                out[w["request_id"]] = known[w["request_id"]]
                continue
            # The log's time is in whole milliseconds; the row's is not.
            rows = [u for u in unanswered if u[0] <= at(w) + 1e-3 and u[1] == object_of(w)]
            if not rows:
                return None
            row = max(rows, key=lambda u: u[0])
            unanswered.remove(row)
            out[w["request_id"]] = (row[2], row[3])
        return out


def may_have_landed(row: state.AuditRow) -> bool:
    """A row for a write that was sent and whose answer syncd never had."""
    return not row.request_id and (
        row.outcome in (state.INTERRUPTED, state.FAILED)
        or (row.outcome == state.APPLIED and row.note == state.CONFIRMED_BY_REREAD)
    )


def object_of(entry: dict[str, Any]) -> str:
    """The id of the object a logged write changed (the last segment of its path)."""
    return str(entry["path"]).rstrip("/").rsplit("/", 1)[-1]


def at(entry: dict[str, Any]) -> float:
    """The simulator's wall time of a logged request, as Unix seconds."""
    return dt.datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if redisproc.REDIS_SERVER is None:
        pytest.skip("redis-server not installed (apt-get install redis-server; .ci/run does)")
    with redisproc.redis_server(tmp_path / "redis") as redis, sim_process() as sim:
        probe = write_config(
            tmp_path / "probe.toml",
            sim.url,
            state_path=tmp_path / "probe.sqlite3",
            metrics_port=free_port(),
        )
        c = Cluster(sim, redis, tmp_path, probe)
        try:
            yield c
        finally:
            for d in c.replicas:
                if d.alive():
                    d.signal(signal.SIGCONT)  # a paused one must be able to hear SIGTERM
                d.stop()


def test_redis_down_no_write_without_a_lease_and_convergence_when_it_returns(
    cluster: Cluster,
) -> None:
    a, b = cluster.start_replica(0), cluster.start_replica(1)
    wait_for(lambda: len(cluster.leaders()) == 1, timeout=120, what="one leader")
    wait_for(lambda: converged(cluster.probe), timeout=120, what="the first convergence")
    before = cluster.writes()
    assert before  # the demo org needed writes: the leader made them

    cluster.redis.stop()
    wait_for(
        lambda: all(
            d.metric_sum("syncd_coordination_up") == 0 and d.metric_sum("syncd_leader") == 0
            for d in (a, b)
        ),
        timeout=60,
        what="both replicas to report Redis down and hold no lease",
    )
    fenced_from = max((at(w) for w in cluster.writes()), default=0.0)
    # Carriers fail while nobody can hold the lease: the routes must change, and cannot.
    cluster.sim.control("POST", f"trunks/{APAC_TRUNKS[0]}/fail")
    cluster.sim.control("POST", f"trunks/{AMERICAS_TRUNKS[0]}/fail")
    wait_for(
        lambda: all(
            any("does not hold the leader lease" in m for m in d.log_messages()) for d in (a, b)
        ),
        timeout=60,
        what="both replicas to refuse a reconcile without the lease",
    )
    assert not converged(cluster.probe)  # writes are due ...
    # The outage lasts until each replica has tried (and failed) to reach the lease as many
    # times as it would in OUTAGE_S seconds: the replicas' own attempts are the clock.
    errors = "syncd_coordination_errors_total"
    tries = {d.pid: d.metric_sum(errors, operation="lease") for d in (a, b)}
    wait_for(
        lambda: all(
            d.metric_sum(errors, operation="lease") - tries[d.pid] >= OUTAGE_S / RETRY_S
            for d in (a, b)
        ),
        timeout=OUTAGE_S * 10,
        what="the outage to last its length in lease attempts",
    )
    during = [w for w in cluster.writes() if at(w) > fenced_from]
    assert during == []  # ... and none was made while Redis was down
    assert "Redis cannot be reached" in " ".join(a.log_messages() + b.log_messages())

    cluster.redis.start()  # same port, empty: the epoch must still rise
    wait_for(lambda: len(cluster.leaders()) == 1, timeout=120, what="a leader again")
    wait_for(lambda: converged(cluster.probe), timeout=120, what="convergence after Redis")
    after = [w for w in cluster.writes() if at(w) > fenced_from]
    assert after  # the failovers were written once a lease could be held
    owner = wait_for(lambda: cluster.owned(cluster.writes()), timeout=30, what="audit rows")
    epochs_before = {owner[w["request_id"]][1] for w in before}
    epochs_after = {owner[w["request_id"]][1] for w in after}
    assert None not in epochs_before | epochs_after
    assert min(e for e in epochs_after if e is not None) > max(
        e for e in epochs_before if e is not None
    )


def test_a_stale_leader_resumed_after_its_lease_makes_no_write(cluster: Cluster) -> None:
    a, b = cluster.start_replica(0), cluster.start_replica(1)
    wait_for(lambda: len(cluster.leaders()) == 1, timeout=120, what="one leader")
    wait_for(lambda: converged(cluster.probe), timeout=120, what="the first convergence")
    (stale,) = cluster.leaders()
    other = b if stale is a else a
    stale_i = cluster.replicas.index(stale)

    stale.signal(signal.SIGSTOP)
    wait_for(
        lambda: other.metric_sum("syncd_leader") == 1,
        timeout=60,
        what="the other replica to take over after the paused leader's lease lapsed",
    )
    taken = other.metric_sum("syncd_lease_epoch")
    cluster.sim.control("POST", f"trunks/{APAC_TRUNKS[1]}/fail")
    wait_for(lambda: converged(cluster.probe), timeout=120, what="the new leader's failover")
    resumed_from = max(at(w) for w in cluster.writes())

    stale.signal(signal.SIGCONT)
    wait_for(
        lambda: any("steps down" in m for m in stale.log_messages()),
        timeout=60,
        what="the resumed replica to notice it lost the lease",
    )
    # More work after the resume: whoever leads does it, and it is not the stale replica.
    cluster.sim.control("POST", f"trunks/{AMERICAS_TRUNKS[1]}/fail")
    wait_for(lambda: converged(cluster.probe), timeout=120, what="convergence after resume")
    wait_for(
        lambda: stale.metric_sum("syncd_leader") == 0 or None,
        timeout=30,
        what="the resumed replica's metrics",
    )

    late = [w for w in cluster.writes() if at(w) > resumed_from]
    assert late  # writes happened after the resume: the check below is not vacuous
    owner = wait_for(lambda: cluster.owned(late), timeout=30, what="audit rows")
    assert [w for w in late if owner[w["request_id"]][0] == stale_i] == []
    assert all(owner[w["request_id"]][1] >= taken for w in late)  # type: ignore[operator]
    # Nothing the stale replica recorded after its pause was sent under its old epoch.
    stale_rows = [r for r in cluster.audit(stale_i) if r.ts > resumed_from]
    assert [r for r in stale_rows if r.outcome == state.APPLIED] == []


def test_a_write_whose_answer_never_came_back_is_attributed_to_its_lease(
    cluster: Cluster,
) -> None:
    cluster.start_replica(0)
    cluster.start_replica(1)
    wait_for(lambda: len(cluster.leaders()) == 1, timeout=120, what="one leader")
    wait_for(lambda: converged(cluster.probe), timeout=120, what="the first convergence")
    before = {w["request_id"] for w in cluster.writes()}
    # Every metric the dashboard's high-availability row reads is on each replica's /metrics.
    grafana_exprs = load_grafana_exprs()
    wanted = {m for e in grafana_exprs.ha_exprs() for m in grafana_exprs.metric_names(e.expr)}
    assert len(wanted) >= 6
    for replica in cluster.replicas:
        declared = replica.metric_families()
        assert wanted <= declared, wanted - declared

    # The server applies the next write and its answer never reaches syncd (as when syncd
    # abandons it at the lease's deadline after the server answered): the request log holds
    # its correlation id, which syncd never saw. Only a write of the org's objects: a replica's
    # notification channel re-subscribing (a PUT too) must not take the one fault.
    faults = {
        "lost_answer_rate": 1.0,
        "methods": ["PUT", "PATCH"],
        "routes": ["/api/v2/telephony/providers/edges/", "/api/v2/outbound/campaigns/"],
        "max_faults": 1,
    }
    cluster.sim.control("POST", "faults", faults)
    cluster.sim.control("POST", f"trunks/{APAC_TRUNKS[0]}/fail")
    wait_for(lambda: converged(cluster.probe), timeout=120, what="the failover")

    landed = [w for w in cluster.writes() if w["request_id"] not in before]
    assert landed
    owner = wait_for(lambda: cluster.owned(landed), timeout=30, what="audit rows")
    unanswered = [
        r for i in range(2) for r in cluster.audit(i) if not r.request_id and may_have_landed(r)
    ]
    assert unanswered  # the lost answer's row: it has no correlation id to be matched by
    attributed = {owner[w["request_id"]] for w in landed}
    assert None not in {epoch for _, epoch in attributed}
