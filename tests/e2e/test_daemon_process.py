"""The real daemon process against the real simulator process, on loopback.

``syncd sim`` and ``syncd run`` are child processes (PIDs kept, stopped by PID at teardown);
the configuration is ``config/demo.toml`` with short timers (health poll 1 s, schedule refresh
2 s, hold-down 2 s). What is checked comes from outside the daemon: the simulator's request log
and objects, the daemon's /metrics and JSON log lines, ``syncd history`` and
``syncd once --dry-run``. Waiting is polling with a deadline (processes cannot be given a fake
clock); nothing asserts on how long anything took.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from daemon_helpers import (
    AMERICAS_TRUNKS,
    APAC,
    APAC_CAMPAIGNS,
    APAC_TRUNKS,
    CAMPAIGN_LISTING,
    ENV,
    ROUTE_LISTING,
    SCHEDULE_LISTING,
    SCHEDULE_QUERY,
    SITE_001,
    SITE_001_DEFAULT,
    SITE_002,
    SITE_002_DEFAULT,
    TRUNK_BASE_LISTING,
    TRUNKS,
    SimProcess,
    converged,
    daemon_process,
    free_port,
    history,
    sim_process,
    start_daemon,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


@dataclass
class Setup:
    sim: SimProcess
    tmp: Path
    config: Path  # the daemon's
    probe: Path  # the same, with its own state file, for dry runs beside the running daemon
    state: Path
    metrics_port: int


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with sim_process() as sim:
        port = free_port()
        state = tmp_path / "state.sqlite3"
        config = write_config(tmp_path / "syncd.toml", sim.url, state_path=state, metrics_port=port)
        probe = write_config(
            tmp_path / "probe.toml",
            sim.url,
            state_path=tmp_path / "probe.sqlite3",
            metrics_port=free_port(),
        )
        yield Setup(sim, tmp_path, config, probe, state, port)


def _object_id(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[1]


def _route(sim: SimProcess, site: str, route: str) -> dict[str, object]:
    got: dict[str, object] = sim.api_get(
        f"/api/v2/telephony/providers/edges/sites/{site}/outboundroutes/{route}"
    )
    return got


def _trunk_label(sim: SimProcess, trunk_base: str) -> object:
    tb = sim.api_get(f"/api/v2/telephony/providers/edges/trunkbasesettings/{trunk_base}")
    return tb["properties"]["trunk_label"]["value"]["instance"]


def test_kill_9_mid_burst_then_restart_converges_keeps_edits_and_audits_every_write(
    setup: Setup,
) -> None:
    sim = setup.sim
    # A person edits fields syncd does not own, before the first run ...
    edits = [
        sim.control("POST", "human-edit", {"kind": "route", "id": SITE_001_DEFAULT}),
        sim.control("POST", "human-edit", {"kind": "trunkbase", "id": APAC_TRUNKS[0]}),
    ]
    # The demo org starts with ~15 differences (line counts, route orders, call rates): a burst.
    # The simulator parks every campaign and trunk-base write (route writes go through), so the
    # kill lands while writes are recorded as sent and not answered, however loaded the machine.
    sim.control(
        "POST",
        "hold",
        {
            "routes": [
                "/api/v2/outbound/campaigns/",
                "/api/v2/telephony/providers/edges/trunkbasesettings/",
            ]
        },
    )
    first = start_daemon(setup.config, setup.tmp / "run1.log", setup.metrics_port)
    try:
        held = sim.wait_held(1, timeout=60)
        first.kill9()
    finally:
        first.stop()
    assert first.proc.returncode == -signal.SIGKILL
    rows_at_kill = history(setup.state)
    at_kill = Counter(outcome for outcome, _, _ in rows_at_kill)
    # The kill landed mid-burst: the parked writes were recorded as sent but never answered.
    assert at_kill["pending"] >= held, rows_at_kill
    # The parked writes now land, with nobody left to hear the answer (as a write in flight
    # when a process dies may have reached the server).
    released = sim.control("DELETE", "hold")["released"]
    assert released >= held

    # ... and between the runs.
    edits += [
        sim.control("POST", "human-edit", {"kind": "route", "id": SITE_002_DEFAULT}),
        sim.control("POST", "human-edit", {"kind": "trunkbase", "id": APAC_TRUNKS[1]}),
    ]

    with daemon_process(setup.config, setup.tmp / "run2.log", setup.metrics_port) as second:
        wait_for(lambda: converged(setup.probe), timeout=30, interval=0.5, what="convergence")
        assert second.alive()
        messages = second.log_messages()
        assert second.stop() == 0

    # Converged by the daemon's own lights too (its failover state, its state file).
    assert converged(setup.config)
    # The restart said what it found and re-checked it.
    assert any(f"{at_kill['pending']} write(s) were in flight" in m for m in messages), messages

    # No person's edit was clobbered: every edited field still holds what the person wrote.
    for edit in edits:
        if edit["kind"] == "route":
            site = SITE_001 if edit["id"] == SITE_001_DEFAULT else SITE_002
            assert _route(sim, site, edit["id"])["description"] == edit["after"]
    final_labels = {e["id"]: e["after"] for e in edits if e["kind"] == "trunkbase"}
    for tb, label in final_labels.items():
        assert _trunk_label(sim, tb) == label

    # Every write the server acknowledged has its audit row. Per object: every 'applied' row is
    # a 2xx in the server's log, and every 2xx in the log is an 'applied' row or an
    # 'interrupted' one (sent, landed, but the process died before it recorded the answer).
    rows = history(setup.state)
    outcomes = Counter(outcome for outcome, _, _ in rows)
    assert outcomes["pending"] == 0
    assert outcomes["interrupted"] == at_kill["pending"]
    server = Counter(_object_id(w["path"]) for w in sim.writes())
    applied = Counter(obj for outcome, _, obj in rows if outcome == "applied")
    interrupted = Counter(obj for outcome, _, obj in rows if outcome == "interrupted")
    for obj in set(server) | set(applied) | set(interrupted):
        assert applied[obj] <= server[obj] <= applied[obj] + interrupted[obj], (
            obj,
            server[obj],
            applied[obj],
            interrupted[obj],
        )
    # Interrupted rows that did land are the difference; the rest never reached the server.
    # The writes parked at the kill landed when released, with their sender gone.
    landed = sum(server.values()) - sum(applied.values())
    assert held <= landed <= outcomes["interrupted"]
    print(
        "crash:",
        {
            "rows_at_kill": dict(at_kill),
            "parked_at_kill": held,
            "rows_final": dict(outcomes),
            "server_2xx_writes": sum(server.values()),
            "interrupted_that_landed": landed,
        },
    )


FAULTS = {
    "error_5xx_rate": 0.15,
    "timeout_504_rate": 0.1,
    "slow_rate": 0.1,
    "slow_s": 0.5,
    "reset_rate": 0.1,
    "malformed_json_rate": 0.1,
    "version_conflict_400_rate": 0.3,
}


def test_faults_keep_it_running_and_it_converges_when_they_stop(setup: Setup) -> None:
    sim = setup.sim
    with daemon_process(setup.config, setup.tmp / "run.log", setup.metrics_port) as d:
        wait_for(lambda: converged(setup.probe), timeout=30, interval=0.5, what="convergence")
        sim.control("POST", "faults", FAULTS)
        # Things change while the API misbehaves: two carriers fail, a schedule is published.
        sim.control("POST", f"trunks/{APAC_TRUNKS[0]}/fail")
        sim.control("POST", f"trunks/{AMERICAS_TRUNKS[0]}/fail")
        sim.control("POST", "schedules/publish", {"businessUnitId": APAC, "agents": 40})
        mark = len(sim.requests())

        def failed_over() -> bool:
            routes = {r["id"]: r["externalTrunkBaseIds"] for r in sim.state()["routes"]}
            return (
                APAC_TRUNKS[0] not in routes[SITE_001_DEFAULT]
                and AMERICAS_TRUNKS[0] not in routes[SITE_002_DEFAULT]
            )

        # The failover is written through the faults (retries, conflicts re-read) ...
        wait_for(failed_over, timeout=40, interval=0.2, what="the failover under faults")
        wait_for(
            lambda: d.metric_sum("syncd_retries_total") >= 3,
            timeout=30,
            what="retries reported",
        )
        assert d.alive()
        under = sim.requests()[mark:]
        statuses = Counter((r["method"], r["status"]) for r in under)
        print("statuses under faults:", dict(statuses))
        assert sum(n for (_, s), n in statuses.items() if s in (0, 503, 504)) > 0
        warnings = [r for r in d.logs() if r.get("level") in ("warning", "error")]
        assert warnings, "faults were reported in the log"

        sim.control("DELETE", "faults")

        def reconcile_and_check() -> bool:
            d.signal(signal.SIGHUP)  # a good reload reconciles at once
            return converged(setup.probe)

        wait_for(reconcile_and_check, timeout=45, interval=1.0, what="convergence after faults")
        assert d.alive()
        m = d.metrics()
        assert d.stop() == 0
    print(
        "faults:",
        {
            k: v
            for k, v in m.items()
            if k.startswith(
                (
                    "syncd_retries_total",
                    "syncd_retry_budget_exhausted",
                    "syncd_writes_total",
                    "syncd_version_conf",
                )
            )
            and v
        },
    )


def test_sighup_refuses_a_broken_config_and_applies_a_good_one(setup: Setup) -> None:
    sim = setup.sim
    good = setup.config.read_text()
    with daemon_process(setup.config, setup.tmp / "run.log", setup.metrics_port) as d:
        wait_for(lambda: converged(setup.probe), timeout=30, interval=0.5, what="convergence")
        before = d.metric_sum("syncd_desired_lines", group="apac")
        fte = d.metric_sum("syncd_staffed_fte", group="apac")
        assert before > 0

        setup.config.write_text(good.replace("lines_per_agent = 1.5", 'lines_per_agent = "lots"'))
        d.signal(signal.SIGHUP)
        wait_for(
            lambda: d.metric_sum("syncd_config_reload_failures_total") == 1,
            timeout=15,
            what="the refused reload in the metrics",
        )
        assert d.alive()
        assert d.metric_sum("syncd_config_last_reload_successful") == 0
        assert any(m.startswith("Reload refused") for m in d.log_messages())
        assert d.metric_sum("syncd_desired_lines", group="apac") == before  # old config

        # A good one: apac dials 1.0 line per staffed agent instead of 1.5.
        setup.config.write_text(good.replace("lines_per_agent = 1.5", "lines_per_agent = 1.0", 1))
        d.signal(signal.SIGHUP)
        wait_for(
            lambda: d.metric_sum("syncd_config_last_reload_successful") == 1,
            timeout=15,
            what="the applied reload",
        )
        after = wait_for(
            lambda: (
                d.metric_sum("syncd_desired_lines", group="apac") != before
                and d.metric_sum("syncd_desired_lines", group="apac")
            ),
            timeout=15,
            what="the new desired line count",
        )
        fte = d.metric_sum("syncd_staffed_fte", group="apac")
        assert after < before
        assert abs(after - fte * 1.0) <= 2  # ~ staffed FTE x 1.0 (rounding, hysteresis)

        def apac_lines() -> float:
            camps = {c["id"]: c for c in sim.state()["campaigns"]}
            return float(sum(camps[c]["outboundLineCount"] for c in APAC_CAMPAIGNS))

        # The simulator's campaigns now carry the new total.
        wait_for(lambda: apac_lines() == after, timeout=15, what="campaign line counts")
        assert d.metric_sum("syncd_config_reload_failures_total") == 1
        assert d.stop() == 0


def test_idle_costs_only_listings(setup: Setup) -> None:
    sim = setup.sim
    with daemon_process(setup.config, setup.tmp / "run.log", setup.metrics_port) as d:
        wait_for(lambda: converged(setup.probe), timeout=30, interval=0.5, what="convergence")
        wait_for(
            lambda: any("syncd is running" in m for m in d.log_messages()),
            timeout=10,
            what="the daemon running",
        )

        def idle_window() -> list[dict[str, object]] | None:
            reqs = sim.requests()
            routes = Counter(str(r["route"]) for r in reqs)
            # A few health polls and at least two schedule refreshes (2 BUs each).
            return reqs if routes[TRUNKS] >= 4 and routes[SCHEDULE_LISTING] >= 4 else None

        # When the schedule horizon crosses a business unit's week boundary (a new week's
        # schedule is listed: at a fixed hour of the day), or outruns the fetched lookahead
        # (every 6 h), the next refresh fetches the agent schedules and may reconcile: not
        # idle, by design. One window may hold that; the next one cannot (the lookahead
        # covers 6 h), so a second window is taken then and it must be idle.
        for _ in range(2):
            sim.control("POST", "reset-counters")
            idle = wait_for(idle_window, timeout=30, interval=0.2, what="an idle window")
            routes = Counter(str(r["route"]) for r in idle)
            if routes[SCHEDULE_QUERY] == 0:
                break
        # Nothing changed, so: health polls and schedule listings only. No agent schedule
        # query or download, no per-agent call, no write, no object read, no new token.
        reconcile_listings = {ROUTE_LISTING, CAMPAIGN_LISTING, TRUNK_BASE_LISTING}
        assert set(routes) <= {TRUNKS, SCHEDULE_LISTING} | reconcile_listings, routes
        assert routes[SCHEDULE_QUERY] == 0
        assert not any(r["method"] in ("PUT", "PATCH", "POST") for r in idle)
        assert not any(
            "/users" in str(r["path"]) or "/sim-downloads/" in str(r["path"]) for r in idle
        )

        # A reconcile with nothing to do (a reload of the same file) reads the listings only:
        # one route listing per configured site, the campaigns, the trunk bases (call rates).
        sim.control("POST", "reset-counters")
        d.signal(signal.SIGHUP)

        def reconciled() -> Counter[str] | None:
            seen = Counter(str(r["route"]) for r in sim.requests())
            return seen if seen[ROUTE_LISTING] >= 2 and seen[TRUNK_BASE_LISTING] >= 1 else None

        seen = wait_for(reconciled, timeout=15, what="the reconcile after SIGHUP")
        assert seen[ROUTE_LISTING] == 2
        assert seen[CAMPAIGN_LISTING] == 1
        assert seen[TRUNK_BASE_LISTING] == 1
        assert seen[SCHEDULE_QUERY] == 0  # the reload kept the schedule settings: no re-fetch
        assert set(seen) <= {TRUNKS, SCHEDULE_LISTING} | reconcile_listings, seen
        assert d.stop() == 0


def _run_to_exit(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_refused_credentials_and_an_unusable_state_file_stop_the_start_clearly(
    setup: Setup,
) -> None:
    # A wrong secret: the token endpoint refuses it; waiting will not help, so exit 1 with the
    # reason (and never the secret itself) instead of retrying forever.
    wrong = {**os.environ, "SYNCD_CLIENT_SECRET": "not-the-secret-9f3c"}
    wrong.pop("NOTIFY_SOCKET", None)
    done = _run_to_exit(setup.config, wrong)
    assert done.returncode == 1, done.stdout[-2000:]
    assert "refused the credentials" in done.stdout
    assert "not-the-secret-9f3c" not in done.stdout + done.stderr
    # A state file that cannot be created: exit 1 naming the path, no traceback.
    blocker = setup.tmp / "not-a-directory"
    blocker.write_text("")
    bad_state = write_config(
        setup.tmp / "bad-state.toml",
        setup.sim.url,
        state_path=blocker / "state.sqlite3",
        metrics_port=free_port(),
    )
    env = {**os.environ, "SYNCD_CLIENT_SECRET": "demo-secret"}
    env.pop("NOTIFY_SOCKET", None)
    done = _run_to_exit(bad_state, env)
    assert done.returncode == 1, done.stdout[-2000:]
    assert f"cannot open the state file {blocker / 'state.sqlite3'}" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def _once(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", "once", "-c", str(config), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        check=False,
    )


def test_once_refuses_to_write_beside_a_running_daemon_and_a_dry_run_does_not(
    setup: Setup,
) -> None:
    sim = setup.sim
    # The daemon's campaign writes are parked in the simulator: it has writes in flight.
    sim.control("POST", "hold", {"routes": ["/api/v2/outbound/campaigns/"]})
    with daemon_process(setup.config, setup.tmp / "run.log", setup.metrics_port) as d:
        sim.wait_held(1, timeout=60)
        pending = [row for row in history(setup.state) if row[0] == "pending"]
        assert pending

        refused = _once(setup.config)

        assert refused.returncode == 1, refused.stdout[-2000:] + refused.stderr[-2000:]
        assert (
            f"another syncd process (pid {d.pid}) is writing to the state file {setup.state}"
            in refused.stderr
        ), refused.stderr[-2000:]
        # The daemon's writes in flight are still its own: not marked 'interrupted'.
        now = history(setup.state)
        assert [row for row in now if row[0] == "pending"] == pending
        assert not [row for row in now if row[0] == "interrupted"]
        # Reading beside it is fine: a dry run on the very same state file.
        dry = _once(setup.config, "--dry-run")
        assert dry.returncode == 0, dry.stderr[-2000:]
        assert "(dry run: nothing written)" in dry.stdout

        sim.control("DELETE", "hold")
        wait_for(lambda: converged(setup.probe), timeout=30, interval=0.5, what="convergence")
        assert d.alive()
        assert d.stop() == 0
    outcomes = Counter(outcome for outcome, _, _ in history(setup.state))
    assert outcomes["pending"] == outcomes["interrupted"] == 0
    # With the daemon gone, `syncd once` may write again.
    assert _once(setup.config).returncode == 0
