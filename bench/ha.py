"""``python -m bench ha [--json]``: three replicas against one simulator, with and without Redis.

Two rows, side by side in one run, each with fresh processes (``syncd sim`` rate-limiting per
OAuth client, three ``syncd run`` replicas of the demo configuration, health poll 1 s):

* ``redis``: the replicas share a ``redis-server`` (loopback, no persistence) for the leader
  lease (the production timings: lease 15 s, renew deadline 10 s, retry 2 s) and the API budget.
  ``--kills`` times: a carrier fails (and the previous one recovers), the leader starts writing,
  and at a random moment of that write burst it is killed with SIGKILL; the next leader takes
  over, converges, and the killed replica is started again as a follower.
* ``none``: the same three replicas without coordination, the same bursts, nobody killed.

Every successful write in the simulator's request log is joined, by its correlation id, to the
audit row of the replica that sent it (epoch included); Redis' lease history (epoch, holder, the
instant Redis granted it) says who led when. Figures:

* ``takeover_p95_s``: from the SIGKILL to the instant Redis granted the next epoch;
* ``writes_by_non_leader``: writes sent without the lease of their instant (no epoch, an epoch
  another process held, or after the next epoch began);
* ``double_writes``: the same object written successfully more than once in one burst;
* ``http_429``: 429 answers the simulator gave; ``converged``: a dry run plans no write at the end.

``--outage 30`` runs another scenario instead: Redis is stopped for 30 s while a carrier fails,
then started again (empty); the row counts writes made after the renew deadline while Redis was
down (``writes_without_lease``) and times the last write that made the routes right again after
Redis returned (``converged_after_s``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import redis

from bench import redisproc

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config" / "demo.toml"
SYNCD = [sys.executable, "-m", "syncd"]
ENV = {**os.environ, "SYNCD_CLIENT_SECRET": "demo-secret", "PYTHONUNBUFFERED": "1"}
ENV.pop("NOTIFY_SOCKET", None)
ENV.pop("WATCHDOG_USEC", None)
# APAC trunk bases of the small org (seed 1): each failure re-orders two routes, re-allocates
# lines and call rates — a burst of writes.
TRUNKS = (
    "da598f9f-47b5-4227-a02e-3b5288064455",
    "0ae54bed-3105-4fc2-bf69-3767037e61fe",
    "1e6ca7f6-5dc5-4025-9052-9e604228915a",
)
PREFIX = "bench-ha"
LATENCY_S = 0.2
T = TypeVar("T")


def wait(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    return redisproc.free_port()


def http(method: str, url: str) -> Any:
    req = urllib.request.Request(url, method=method)  # noqa: S310 - loopback only
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        raw = resp.read()
    return json.loads(raw) if raw else None


def wall(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(entry["time"]).replace("Z", "+00:00")).timestamp()


def stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM this PID (SIGKILL after 15 s)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(15)


@contextlib.contextmanager
def simulator(quota: int) -> Iterator[str]:
    proc = subprocess.Popen(
        [*SYNCD, "sim", "--port", "0", "--ratelimit-per", "client", "--quota", str(quota)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())
        if match is None:
            raise RuntimeError("the simulator did not print its URL")
        url = match.group(0)
        # Genesys answers in a few hundred milliseconds, not in one: replicas' reconciles overlap
        # as they would against the real service.
        req = urllib.request.Request(  # noqa: S310 - loopback only
            f"{url}/_sim/faults",
            data=json.dumps({"slow_rate": 1.0, "slow_s": LATENCY_S}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req, timeout=30).close()  # noqa: S310
        yield url
    finally:
        stop(proc)


def config_text(sim: str, state: Path, port: int, coordination: str, quota: int) -> str:
    text = re.sub(r'^(api_url|login_url) = "[^"]*"', rf'\1 = "{sim}"', DEMO.read_text(), flags=re.M)
    for old, new in (
        ("requests_per_minute = 300", f"requests_per_minute = {quota}"),
        ("/tmp/syncd-demo/state.sqlite3", str(state)),  # noqa: S108 - the demo's placeholder
        ("127.0.0.1:9464", f"127.0.0.1:{port}"),
        ("poll_s = 15", "poll_s = 2"),
        ("refresh_s = 60", "refresh_s = 10"),
        ("hold_down_s = 60", "hold_down_s = 2"),
        ("[metrics]", coordination + "[metrics]"),
    ):
        if old not in text:
            raise RuntimeError(f"config/demo.toml no longer holds {old!r}")
        text = text.replace(old, new)
    return text


@dataclass
class Replica:
    index: int
    config: Path
    state: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*SYNCD, "run", "-c", str(self.config)], stdout=out, stderr=out, env=ENV
            )
        self.pids.append(self.proc.pid)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(15)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@dataclass
class Run:
    backend: str
    sim: str
    tmp: Path
    redis_url: str = ""
    replicas: list[Replica] = field(default_factory=list)
    bursts: list[float] = field(default_factory=list)  # wall time each burst was triggered

    def setup(self, n: int, quota: int) -> None:
        coordination = ""
        if self.backend == "redis":
            coordination = (
                f'[coordination]\nbackend = "redis"\nurl = "{self.redis_url}"\n'
                f'key_prefix = "{PREFIX}"\n\n'
            )
        for i in range(n):
            state = self.tmp / f"{self.backend}-{i}.sqlite3"
            cfg = self.tmp / f"{self.backend}-{i}.toml"
            cfg.write_text(config_text(self.sim, state, free_port(), coordination, quota))
            self.replicas.append(Replica(i, cfg, state, self.tmp / f"{self.backend}-{i}.log"))
        probe = self.tmp / f"{self.backend}-probe.toml"
        # The probe's dry runs use the same OAuth client: they draw from the shared budget too.
        probe_state = self.tmp / "probe.sqlite3"
        probe.write_text(config_text(self.sim, probe_state, free_port(), coordination, quota))
        self.probe = probe

    def converged(self) -> bool:
        done = subprocess.run(
            [*SYNCD, "once", "-c", str(self.probe), "--dry-run"],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
            check=False,
        )
        return done.returncode == 0 and "no writes" in done.stdout

    def requests(self) -> list[dict[str, Any]]:
        reqs: list[dict[str, Any]] = http("GET", f"{self.sim}/_sim/requests")["requests"]
        return reqs

    def writes(self) -> list[dict[str, Any]]:
        """The org writes that landed: a notification channel's subscription is a PUT too, made
        by every replica (followers keep their caches warm by push), and is not one."""
        return [
            r
            for r in self.requests()
            if r["method"] in ("PUT", "PATCH")
            and 200 <= r["status"] < 300
            and not r["path"].startswith("/api/v2/notifications/")
        ]

    def burst(self, k: int) -> None:
        """Carrier k fails; the one failed before recovers."""
        self.bursts.append(time.time())
        if k > 0:
            http("POST", f"{self.sim}/_sim/trunks/{TRUNKS[(k - 1) % len(TRUNKS)]}/recover")
        http("POST", f"{self.sim}/_sim/trunks/{TRUNKS[k % len(TRUNKS)]}/fail")

    def audit(self) -> dict[str, tuple[int, int | None, str]]:
        """Correlation id → (replica, epoch, value written) of every write any replica
        recorded."""
        from syncd.engine import state

        out: dict[str, tuple[int, int | None, str]] = {}
        for r in self.replicas:
            store = state.StateStore(r.state)
            try:
                for row in store.history(limit=1_000_000):
                    if row.request_id:
                        out[row.request_id] = (r.index, row.epoch, json.dumps(row.after))
            finally:
                store.close()
        return out

    def unanswered(self) -> list[tuple[int, int | None, str, float]]:
        """(replica, epoch, object id, ts) of writes sent but never answered (a kill landed
        while they were in flight): the simulator logged them, the audit has no request id."""
        from syncd.engine import state

        out = []
        for r in self.replicas:
            store = state.StateStore(r.state)
            try:
                out += [
                    (r.index, row.epoch, row.object_id, row.ts)
                    for row in store.history(limit=1_000_000)
                    if not row.request_id and row.outcome in (state.PENDING, state.INTERRUPTED)
                ]
            finally:
                store.close()
        return out

    def double_writes(self, writes: list[dict[str, Any]]) -> int:
        """Writes that set an object to the value an earlier write of the same burst had
        already set it to (by whichever replica)."""
        owner = self.audit()
        edges = [*self.bursts, float("inf")]
        doubles = 0
        for lo, hi in zip([0.0, *edges[:-1]], edges, strict=True):
            same = Counter(
                (w["path"], owner[w["request_id"]][2] if w["request_id"] in owner else "?")
                for w in writes
                if lo <= wall(w) < hi
            )
            doubles += sum(n - 1 for n in same.values())
        return doubles


def leader_index(run: Run, client: redis.Redis) -> int | None:
    value = client.get(f"{PREFIX}:leader")
    if value is None:
        return None
    holder = str(value).split(":", 1)[1]
    pid = int(holder.split("/")[1])
    for r in run.replicas:
        if r.proc is not None and r.proc.pid == pid and r.proc.poll() is None:
            return r.index
    return None


def lease_history(client: redis.Redis) -> list[tuple[float, int, int]]:
    """(granted at, epoch, holder pid) of every acquisition, in order (Redis' clock)."""
    out = []
    entries: list[tuple[str, dict[str, str]]] = client.xrange(f"{PREFIX}:leader:history") or []  # type: ignore[assignment]
    for entry_id, fields in entries:
        ms = int(str(entry_id).split("-")[0])
        out.append((ms / 1000.0, int(fields["epoch"]), int(str(fields["holder"]).split("/")[1])))
    return out


def non_leader_writes(
    run: Run, writes: list[dict[str, Any]], history: list[tuple[float, int, int]]
) -> int:
    owner = {rid: (i, epoch) for rid, (i, epoch, _) in run.audit().items()}
    for w in writes:
        if w["request_id"] not in owner:
            # Its sender was killed before the answer came: the audit row it began says who.
            sent = [
                (ts, i, epoch)
                for i, epoch, object_id, ts in run.unanswered()
                if object_id in w["path"] and ts <= wall(w)
            ]
            if sent:
                _, i, epoch = max(sent)
                owner[w["request_id"]] = (i, epoch)
    pid_of_epoch = {epoch: pid for _, epoch, pid in history}
    start_of = {epoch: at for at, epoch, _ in history}
    starts = sorted(start_of.items(), key=lambda kv: kv[1])
    bad = 0
    for w in writes:
        who = owner.get(w["request_id"])
        epoch = None if who is None else who[1]
        if who is None or epoch is None:
            bad += 1
            continue
        index = who[0]
        if pid_of_epoch.get(epoch) not in run.replicas[index].pids:
            bad += 1
            continue
        later = [at for e, at in starts if e > epoch]
        if later and wall(w) >= min(later):
            bad += 1
    return bad


def run_backend(
    backend: str, tmp: Path, *, kills: int, replicas: int, quota: int, rng: random.Random
) -> dict[str, Any]:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        redis_url = ""
        client: redis.Redis | None = None
        if backend == "redis":
            server = stack.enter_context(redisproc.redis_server(tmp / "redis"))
            redis_url = server.url
            client = redis.Redis.from_url(redis_url, decode_responses=True)
        sim = stack.enter_context(simulator(quota))
        run = Run(backend, sim, tmp, redis_url)
        run.setup(replicas, quota)
        for r in run.replicas:
            r.start()
            stack.callback(r.stop)
        wait(run.converged, timeout=300, what="the first convergence")
        takeovers: list[float] = []
        for k in range(kills):
            seen = len(run.writes())
            run.burst(k)
            wait(lambda s=seen: len(run.writes()) > s, timeout=120, what="the burst's first write")  # type: ignore[misc]
            if client is not None:
                time.sleep(rng.uniform(0.0, 0.5))  # a random moment of the burst
                victim = leader_index(run, client)
                if victim is None:
                    raise RuntimeError("no live leader to kill")
                epochs = len(lease_history(client))
                killed_at = time.time()
                run.replicas[victim].kill9()
                history = wait(
                    lambda n=epochs: (h := lease_history(client)) and len(h) > n and h,  # type: ignore[misc]
                    timeout=120,
                    what="the next leader",
                )
                takeovers.append(history[-1][0] - killed_at)
                run.replicas[victim].start()  # back as a follower
            wait(run.converged, timeout=300, what=f"convergence after burst {k + 1}")
        # The end state: a dry run plans nothing (within a bound: a recovered carrier comes
        # back only after its hold-down).
        try:
            converged = wait(run.converged, timeout=120, what="the final convergence")
        except RuntimeError:
            converged = False
        writes = run.writes()
        history = lease_history(client) if client is not None else []
        counters = http("GET", f"{sim}/_sim/counters")
        row: dict[str, Any] = {
            "backend": backend,
            "replicas": replicas,
            "quota_per_min": quota,
            "bursts": kills,
            "takeovers": len(takeovers),
            "takeover_p95_s": _p95(takeovers),
            "takeover_max_s": round(max(takeovers), 2) if takeovers else None,
            "writes": len(writes),
            # without coordination no writer holds a lease: every write is a non-leader's
            "writes_by_non_leader": (
                non_leader_writes(run, writes, history) if client is not None else len(writes)
            ),
            "double_writes": run.double_writes(writes),
            "http_429": int(counters["total429"]),
            "converged": converged,
            "runtime_s": round(time.monotonic() - started, 1),
        }
        if client is not None:
            client.close()
        return row


def run_outage(tmp: Path, *, replicas: int, quota: int, down_s: float) -> dict[str, Any]:
    """Redis stopped for ``down_s`` while a carrier fails; then Redis returns (empty)."""
    started = time.monotonic()
    renew_deadline_s = 10.0  # the default the replicas run with
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(redisproc.redis_server(tmp / "redis"))
        sim = stack.enter_context(simulator(quota))
        run = Run("redis", sim, tmp, server.url)
        run.setup(replicas, quota)
        for r in run.replicas:
            r.start()
            stack.callback(r.stop)
        wait(run.converged, timeout=300, what="the first convergence")
        server.stop()
        down_at = time.time()
        # Past the renew deadline nobody may hold the lease: then a carrier fails.
        time.sleep(renew_deadline_s + 2.0)
        run.burst(0)
        time.sleep(max(0.0, down_at + down_s - time.time()))  # the rest of the outage
        server.start()  # same port, no data
        up_at = time.time()
        wait(run.converged, timeout=300, what="convergence after Redis returned")
        writes = run.writes()
        fenced = [w for w in writes if down_at + renew_deadline_s < wall(w) < up_at]
        after = [wall(w) for w in writes if wall(w) >= up_at]
        return {
            "scenario": f"redis down {down_s:.0f} s",
            "replicas": replicas,
            "writes_without_lease": len(fenced),
            "converged": True,
            # from Redis' return to the last write that made the routes right again
            "converged_after_s": round(max(after) - up_at, 2) if after else None,
            "runtime_s": round(time.monotonic() - started, 1),
        }


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 2)
    return round(statistics.quantiles(values, n=20, method="inclusive")[-1], 2)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench ha")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--kills", type=int, default=5, help="write bursts (leader kills)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--quota", type=int, default=180, help="requests per minute of the one OAuth client"
    )
    parser.add_argument(
        "--outage",
        type=float,
        default=0.0,
        help="instead: stop Redis this many seconds while a carrier fails, time the recovery",
    )
    ns = parser.parse_args(argv)
    if redisproc.REDIS_SERVER is None:
        print(
            "bench ha: redis-server is not installed (apt-get install redis-server)",
            file=sys.stderr,
        )
        return 2
    rng = random.Random(ns.seed)
    rows = []
    started = time.monotonic()
    if ns.outage:
        with tempfile.TemporaryDirectory(prefix="syncd-bench-ha-outage-") as tmp:
            rows.append(
                run_outage(Path(tmp), replicas=ns.replicas, quota=ns.quota, down_s=ns.outage)
            )
        print(json.dumps({"results": rows, "runtime_s": round(time.monotonic() - started, 1)}))
        return 0
    for backend in ("redis", "none"):
        with tempfile.TemporaryDirectory(prefix=f"syncd-bench-ha-{backend}-") as tmp:
            row = run_backend(
                backend, Path(tmp), kills=ns.kills, replicas=ns.replicas, quota=ns.quota, rng=rng
            )
        rows.append(row)
        if not ns.json:
            print(json.dumps(row), file=sys.stderr)
    result = {"results": rows, "runtime_s": round(time.monotonic() - started, 1)}
    print(json.dumps(result))
    return 0
