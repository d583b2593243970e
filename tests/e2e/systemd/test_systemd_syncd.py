"""The real ``syncd run`` as ``systemd/syncd.service`` under a real systemd, against ``syncd sim``.

systemd (PID 1 of fresh namespaces, see systemd_harness.py) gets the shipped unit unchanged;
only ``/usr/local/bin/syncd``, the path the unit calls, is a two-line wrapper running the
checkout's CLI with Debian's /usr/bin/python3 (the venv's interpreter lives under /root, which
a DynamicUser cannot read and ProtectHome= hides). A drop-in only shortens the watchdog and
restart delay so the test does not wait 30 s. The simulator runs on the host's loopback (the
namespaces share the host network); the configuration is config/demo.toml pointed at it, with
``secret_credential = "client-secret"``: the secret reaches the daemon only through the unit's
``LoadCredential=`` from /etc/credstore/syncd.client-secret.

PID 1 logs at debug level, so the journal records every sd_notify message it received
("Got notification message from PID … (READY=1 …)"): the tests assert on what systemd saw.
The host /tmp canary is asserted after the boot and again by the harness after the kill.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from systemd_harness import CHECKOUT_IN_NS, FileSpec, Systemd, boot, unavailable_reason

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "systemd" / "syncd.service"
DEMO_CONFIG = ROOT / "config" / "demo.toml"
SITE_PACKAGES_REL = (
    Path(".venv") / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
)
SITE_PACKAGES = ROOT / SITE_PACKAGES_REL
# Debian's interpreter (3.11, the venv's ABI): readable by a DynamicUser.
SYSTEM_PYTHON = "/usr/bin/python3"
# The simulator accepts this secret and no other: authenticating proves the daemon read it.
SECRET = "systemd-e2e-secret-4b7d1f0c9a"
CONFIG_PATH = "/etc/syncd/syncd.toml"
APAC_CAMPAIGNS = {"265b773d-91e4-4d7f-9a7e-cb449521d8d8", "4466f57c-4ea8-4a37-b613-a7096870e15a"}

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=f"{unavailable_reason()}"),
    pytest.mark.skipif(
        not Path(SYSTEM_PYTHON).exists(), reason=f"{SYSTEM_PYTHON} (Debian python3) missing"
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback http only
        return bytes(resp.read())


def _expected_lines(env: Env, lines_per_agent: float) -> int:
    """What the planner must demand for apac: clamp(ceil(staffed FTE × lines per agent), 2,
    120) (config/demo.toml), from the daemon's own staffed-FTE gauge: the schedules move with
    the clock, so the figure is derived, never hard-coded."""
    fte = env.metric("syncd_staffed_fte", group="apac")
    assert fte is not None
    return max(2, min(120, math.ceil(fte * lines_per_agent - 1e-9)))


def _reload_target(env: Env) -> str:
    """A lines_per_agent the reload must visibly change apac's lines to, from 1.5: the
    schedules move with the clock, and at some hours 1.5 and 2.5 both reach the 120-line cap
    (or the floor of 2), so the value is chosen for the hour the test runs at."""
    before = _expected_lines(env, 1.5)
    for candidate in ("2.5", "0.5", "6.0", "0.25", "12.0"):
        if abs(_expected_lines(env, float(candidate)) - before) > 2:
            return candidate
    raise AssertionError(f"no lines_per_agent moves apac's {before} lines at this hour")


def _wrapper() -> str:
    """/usr/local/bin/syncd, the path the unit calls: the checkout's CLI on Debian python (the
    harness binds the checkout at CHECKOUT_IN_NS, wherever it was cloned)."""
    path = f"{CHECKOUT_IN_NS}:{CHECKOUT_IN_NS / SITE_PACKAGES_REL}"
    return f'#!/bin/sh\nexport PYTHONPATH={path}\nexec {SYSTEM_PYTHON} -m syncd "$@"\n'


def _config(sim_url: str, metrics_port: int, lines_per_agent: str = "1.5") -> str:
    """config/demo.toml for the unit: the simulator, the StateDirectory, the credential."""
    text = DEMO_CONFIG.read_text()
    replacements = {
        'state_path = "/tmp/syncd-demo/state.sqlite3"': (
            'state_path = "/var/lib/syncd/state.sqlite3"'
        ),
        '"http://127.0.0.1:8787"': f'"{sim_url}"',
        'secret_env = "SYNCD_CLIENT_SECRET"': 'secret_credential = "client-secret"',
        'listen = "127.0.0.1:9464"': f'listen = "127.0.0.1:{metrics_port}"',
        "lines_per_agent = 1.5": f"lines_per_agent = {lines_per_agent}",
    }
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _json_lines(journal: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in journal.splitlines() if line.startswith("{")]


def _notifications(sd: Systemd) -> list[str]:
    """The sd_notify messages PID 1 received from the unit, in order."""
    return re.findall(r"Got notification message from PID \d+ \(([^)]*)\)", sd.journal())


@dataclass
class Env:
    sd: Systemd
    sim_url: str
    metrics_port: int
    reload_lines_per_agent: str = "2.5"  # what the reload test chose (see _reload_target)

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of the daemon's /metrics (None when absent or unreachable)."""
        try:
            text = _get(f"http://127.0.0.1:{self.metrics_port}/metrics").decode()
        except OSError:
            return None
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series == (f"{name}{{{want}}}" if labels else name):
                return float(value)
        return None

    def sim_state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(_get(f"{self.sim_url}/_sim/state"))
        return state

    def apac_lines(self) -> int:
        return sum(
            c["outboundLineCount"]
            for c in self.sim_state()["campaigns"]
            if c["id"] in APAC_CAMPAIGNS
        )

    def sim_requests(self) -> list[dict[str, Any]]:
        body = json.loads(_get(f"{self.sim_url}/_sim/requests?limit=10000"))
        requests: list[dict[str, Any]] = body["requests"]
        return requests


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    # The dynamic user must be able to read the checkout from its bind mount inside: o+rx on
    # every directory from the checkout down to the venv's packages (not above: the bind skips
    # those, e.g. a /root that is closed to other users).
    for path in (ROOT, *reversed(SITE_PACKAGES.relative_to(ROOT).parents), SITE_PACKAGES):
        full = ROOT / path if not path.is_absolute() else path
        assert full.stat().st_mode & 0o005 == 0o005, full
    sim_port, metrics_port = _free_port(), _free_port()
    sim_url = f"http://127.0.0.1:{sim_port}"
    log = tmp_path_factory.mktemp("sim") / "sim.log"
    with log.open("wb") as out:
        sim = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "syncd",
                "sim",
                f"--port={sim_port}",
                "--org=small",
                "--seed=1",
                f"--client-secret={SECRET}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _get(f"{sim_url}/_sim/counters")
                break
            except OSError:
                assert sim.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the simulator did not start"
                time.sleep(0.1)
        dropin = (
            "[Service]\n"
            # Faster than production so the test does not wait 30 s for the watchdog.
            "WatchdogSec=3s\n"
            "RestartSec=500ms\n"
            # A watchdog kill is SIGABRT: no core file.
            "LimitCORE=0\n"
        )
        files: dict[str, FileSpec] = {
            "/usr/local/bin/syncd": (_wrapper(), 0o755),
            CONFIG_PATH: _config(sim_url, metrics_port),
            "/etc/credstore/syncd.client-secret": (SECRET + "\n", 0o600),
        }
        with boot(
            UNIT.read_text(),
            files,
            dropins={"test": dropin},
            log_level="debug",
            timeout=30,
            checkout=ROOT,
        ) as sd:
            yield Env(sd=sd, sim_url=sim_url, metrics_port=metrics_port)
    finally:
        sim.terminate()  # our own simulator, by PID
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait(timeout=5)


def test_start_reaches_active_after_ready_and_reconciles_against_the_sim(env: Env) -> None:
    sd = env.sd
    sd.wait_state("active", timeout=60)
    assert sd.show("NRestarts") == "0"
    # Type=notify: "active" means PID 1 got READY=1 from the main process.
    assert any("READY=1" in n for n in _notifications(sd)), sd.journal()[-3000:]
    journal = sd.journal()
    # ExecStartPre's check-config validated the file first.
    assert "/etc/syncd/syncd.toml: OK (2 group(s): apac, americas)" in journal
    # The first reconcile went through: /metrics answers, and the simulator holds its writes.
    sd.wait_for(
        lambda: (env.metric("syncd_last_successful_reconcile_timestamp_seconds") or 0) > 0,
        timeout=30,
        what="the first reconcile",
    )
    writes = [
        r
        for r in env.sim_requests()
        if r["method"] in {"PUT", "PATCH"} and 200 <= int(r["status"]) < 300
    ]
    assert writes, "the daemon wrote nothing to the simulator"
    expected = _expected_lines(env, 1.5)
    assert env.metric("syncd_desired_lines", group="apac") == expected
    # The campaigns carry the demand, or stay put within the hysteresis band (2 in demo.toml).
    assert abs(env.apac_lines() - expected) <= 2
    assert "syncd is running." in [j.get("msg") for j in _json_lines(journal)]
    assert re.match(r"apac: \d+\.\d FTE → \d+ lines", sd.show("StatusText"))


def test_host_tmp_canary_survives_the_boot(env: Env) -> None:
    # systemd's boot cleanup has run by now; the harness checks again after the kill.
    env.sd.wait_state("active", timeout=60)
    assert env.sd.canary.exists()


def test_the_secret_comes_from_the_credential_and_never_reaches_the_journal(env: Env) -> None:
    sd = env.sd
    sd.wait_state("active", timeout=60)
    # The unit's environment holds no secret; the config names the credential, not a variable.
    assert "SYNCD_CLIENT_SECRET" not in sd.show("Environment")
    config = sd.run("cat", CONFIG_PATH).stdout
    assert 'secret_credential = "client-secret"' in config
    assert "secret_env" not in config
    assert SECRET not in config
    # systemd placed it for this service only; the daemon authenticated with it (the sim
    # accepts no other secret) and got a token.
    listed = sd.run("ls", "-l", "/run/credentials/syncd.service/").stdout
    assert "client-secret" in listed, listed
    tokens = [r for r in env.sim_requests() if r["path"].startswith("/oauth/token")]
    assert tokens, "no token request reached the simulator"
    assert all(int(r["status"]) == 200 for r in tokens), tokens
    msgs = [str(j.get("msg")) for j in _json_lines(sd.journal())]
    assert any("Obtained an access token for client demo-client" in m for m in msgs), msgs
    # Never in the journal, in any field of any unit (verbose output shows every field).
    everything = sd.run("journalctl", "-o", "verbose", "--no-pager").stdout
    assert len(everything) > 10_000
    assert SECRET not in everything


def test_reload_applies_the_new_configuration(env: Env) -> None:
    sd = env.sd
    sd.wait_state("active", timeout=60)
    pid = sd.show("MainPID")
    before = _expected_lines(env, 1.5)
    assert env.metric("syncd_desired_lines", group="apac") == before
    assert abs(env.apac_lines() - before) <= 2  # within the hysteresis band
    target = env.reload_lines_per_agent = _reload_target(env)
    after = _expected_lines(env, float(target))
    assert abs(after - before) > 2  # beyond the hysteresis band: the reload must show
    sd.write(CONFIG_PATH, _config(env.sim_url, env.metrics_port, lines_per_agent=target))
    result = sd.systemctl("reload", "syncd")
    assert result.returncode == 0, result.stderr + sd.journal()[-3000:]
    # The daemon re-planned with the new lines per agent and wrote the campaigns.
    sd.wait_for(
        lambda: (
            env.metric("syncd_desired_lines", group="apac") == _expected_lines(env, float(target))
        ),
        timeout=30,
        what=f"syncd_desired_lines{{group=apac}} {before} -> {after}",
    )
    sd.wait_for(
        lambda: env.apac_lines() == _expected_lines(env, float(target)),
        timeout=30,
        what="the sim's apac lines in step",
    )
    assert sd.show("MainPID") == pid
    assert sd.show("ActiveState") == "active"
    notes = _notifications(sd)
    reloading = max(i for i, n in enumerate(notes) if "RELOADING=1" in n)
    assert any("READY=1" in n for n in notes[reloading:]), notes
    assert "Configuration reloaded from /etc/syncd/syncd.toml." in [
        j.get("msg") for j in _json_lines(sd.journal())
    ]
    assert env.metric("syncd_config_last_reload_successful") == 1


def test_a_broken_reload_is_refused_and_the_daemon_keeps_running(env: Env) -> None:
    sd = env.sd
    sd.wait_state("active", timeout=60)
    pid = sd.show("MainPID")
    good = sd.run("cat", CONFIG_PATH).stdout
    reloads_seen = sum("RELOADING=1" in n for n in _notifications(sd))
    reloaded = env.reload_lines_per_agent
    broken = good.replace(f"lines_per_agent = {reloaded}", "lines_per_agent = -1")
    assert broken != good
    sd.write(CONFIG_PATH, broken)
    try:
        result = sd.systemctl("reload", "syncd")
        assert result.returncode != 0
        # ExecReload's check-config refused it, so the daemon was never signalled.
        assert "lines_per_agent" in sd.journal()
        assert sum("RELOADING=1" in n for n in _notifications(sd)) == reloads_seen
        assert sd.show("ActiveState") == "active"
        assert sd.show("MainPID") == pid
        assert env.metric("syncd_config_last_reload_successful") == 1
        assert env.metric("syncd_desired_lines", group="apac") == _expected_lines(
            env, float(reloaded)
        )
    finally:
        sd.write(CONFIG_PATH, good)


def test_a_stalled_daemon_is_restarted_by_the_watchdog(env: Env) -> None:
    sd = env.sd
    sd.wait_state("active", timeout=60)
    pid = sd.show("MainPID")
    restarts = int(sd.show("NRestarts"))
    # Freeze the main process: its event loop stops pinging WATCHDOG=1.
    result = sd.systemctl("kill", "--kill-who=main", "-s", "SIGSTOP", "syncd")
    assert result.returncode == 0, result.stderr
    sd.wait_for(
        lambda: int(sd.show("NRestarts")) == restarts + 1, timeout=60, what="a watchdog restart"
    )
    sd.wait_state("active", timeout=60)
    assert sd.show("MainPID") != pid
    assert "Watchdog timeout" in sd.journal()
    # The restarted daemon is back in business on the same state.
    sd.wait_for(
        lambda: (
            env.metric("syncd_desired_lines", group="apac")
            == _expected_lines(env, float(env.reload_lines_per_agent))
        ),
        timeout=30,
        what="the restarted daemon's metrics",
    )


def test_stop_sends_stopping_and_exits_zero(env: Env) -> None:
    sd = env.sd
    sd.wait_state("active", timeout=60)
    pid = sd.show("MainPID")
    result = sd.systemctl("stop", "syncd", timeout=60)
    assert result.returncode == 0, result.stderr
    assert sd.show("ActiveState") == "inactive"
    assert sd.show("Result") == "success"
    assert sd.show("ExecMainStatus") == "0"
    journal = sd.journal()
    assert re.search(rf"Got notification message from PID {pid} \([^)]*STOPPING=1", journal)
    msgs = [j.get("msg") for j in _json_lines(journal)]
    assert "syncd stopped." in msgs
    assert SECRET not in sd.run("journalctl", "-o", "verbose", "--no-pager").stdout
