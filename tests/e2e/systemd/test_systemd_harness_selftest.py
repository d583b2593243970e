"""Harness self-test: systemd/syncd.service under a real systemd, around a stand-in daemon.

NOT a test of syncd: the daemon here is a small stand-in written below that speaks the unit's
contract (``check-config PATH``, ``run -c PATH``, sd_notify through ``syncd.obs.sdnotify``,
metrics through ``syncd.obs.metrics``, JSON logs through ``syncd.obs.logs``). It proves the
harness and the unit: start → READY=1, reload → ExecReload's check-config ran and READY=1 came
back, a refused reload keeps the daemon, a stalled event loop → watchdog restart, stop →
STOPPING=1 and exit 0, the credential read from $CREDENTIALS_DIRECTORY, the sandbox
(DynamicUser, MemoryDenyWriteExecute, the syscall filter, PrivateUsers) compatible with CPython
+ aiohttp + orjson + prometheus_client.

TODO(lead): once ``syncd run`` exists, install a /usr/local/bin/syncd wrapper that runs the real
CLI (see ``_wrapper``) and assert on the real daemon the same way.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from systemd_harness import FileSpec, Systemd, boot, unavailable_reason

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "systemd" / "syncd.service"
SITE_PACKAGES = ROOT / ".venv" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
SECRET = "harness-selftest-client-secret-0f9e8d7c"
# Debian's interpreter: the venv's python is a symlink into /root/.pyenv, unreadable to a
# DynamicUser (/root is 0700 and ProtectHome=yes hides it anyway).
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.slow,
    pytest.mark.skipif(unavailable_reason() is not None, reason=f"{unavailable_reason()}"),
    pytest.mark.skipif(
        not Path(SYSTEM_PYTHON).exists(), reason=f"{SYSTEM_PYTHON} (Debian python3) missing"
    ),
]

SELFTEST_DAEMON = r'''#!/usr/bin/python3
"""Harness self-test stand-in for syncd (NOT syncd): check-config PATH | run -c PATH."""
import asyncio
import hashlib
import logging
import os
import pathlib
import signal
import sys
import time

from syncd.obs import logs, metrics, sdnotify


def check_config(path):
    text = pathlib.Path(path).read_text()
    if "broken" in text:
        print(f"selftest check-config FAILED: {path}", flush=True)
        return 78
    print(f"selftest check-config ok: {path}", flush=True)
    return 0


async def run(path):
    logs.setup_logging("info")
    log = logging.getLogger("selftest")
    cred_dir = os.environ["CREDENTIALS_DIRECTORY"]
    secret = pathlib.Path(cred_dir, "client-secret").read_text().strip()
    logs.register_secret(secret)
    log.info(
        "Credential read; this line names it as %s.", secret,
        extra={"credential_sha256": hashlib.sha256(secret.encode()).hexdigest()[:16],
               "credentials_directory": cred_dir, "uid": os.getuid()},
    )
    state = pathlib.Path(os.environ["STATE_DIRECTORY"])
    (state / "started").write_text(str(time.time()))
    m = metrics.Metrics(version="selftest")
    m.configure(groups={"g": ["t"]}, business_units=[], tokens=["0"], kinds=["route_order"],
                quota_per_minute=300, max_retry_after_s=60)
    runner = await metrics.start_server(m, port=int(os.environ["SELFTEST_METRICS_PORT"]))
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    flags = set()
    for sig, flag in ((signal.SIGTERM, "stop"), (signal.SIGHUP, "reload"),
                      (signal.SIGUSR1, "stall")):
        loop.add_signal_handler(sig, lambda f=flag: (flags.add(f), wake.set()))
    sdnotify.ready()
    sdnotify.status("selftest running")
    interval = sdnotify.watchdog_interval_s()
    log.info("Running.", extra={"watchdog_s": interval, "config": path})
    reloads = 0
    while "stop" not in flags:
        if "stall" in flags:
            log.info("Stalling the event loop on purpose.")
            time.sleep(3600)
        if "reload" in flags:
            flags.discard("reload")
            sdnotify.reloading()
            check_config(path)
            reloads += 1
            m.observe_reload(True, time.time())
            sdnotify.ready()
            sdnotify.status(f"reloaded {reloads}")
            log.info("Reload complete.", extra={"reloads": reloads})
        if interval:
            sdnotify.watchdog()
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), timeout=(interval or 10) / 4)
        except asyncio.TimeoutError:
            pass
    delivered = sdnotify.stopping()
    log.info("Stopping.", extra={"stopping_delivered": delivered})
    await runner.cleanup()
    return 0


def main(argv):
    if argv[:1] == ["check-config"]:
        return check_config(argv[1])
    if argv[:2] == ["run", "-c"]:
        return asyncio.run(run(argv[2]))
    print(f"usage: check-config PATH | run -c PATH (got {argv})", file=sys.stderr)
    return 2


sys.exit(main(sys.argv[1:]))
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wrapper(daemon: str) -> str:
    """/usr/local/bin/syncd as the unit calls it: the checkout on PYTHONPATH, Debian python."""
    return (
        "#!/bin/sh\n"
        f"export PYTHONPATH={ROOT}:{SITE_PACKAGES / 'site-packages'}\n"
        f'exec {SYSTEM_PYTHON} {daemon} "$@"\n'
    )


def _json_lines(journal: str) -> list[dict[str, object]]:
    out = []
    for line in journal.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def sd(metrics_port: int) -> Iterator[Systemd]:
    for path in (ROOT, SITE_PACKAGES):
        # The dynamic user must be able to reach the checkout: o+rx on every directory.
        assert all(p.stat().st_mode & 0o005 == 0o005 for p in (path, *path.parents)), path
    dropin = (
        "[Service]\n"
        # Faster than production so the test does not wait 30 s for the watchdog.
        "WatchdogSec=3s\n"
        "RestartSec=500ms\n"
        # A watchdog kill is SIGABRT: no core file in the state directory.
        "LimitCORE=0\n"
        f"Environment=SELFTEST_METRICS_PORT={metrics_port}\n"
    )
    files: dict[str, FileSpec] = {
        "/usr/local/lib/syncd-selftest/daemon.py": (SELFTEST_DAEMON, 0o755),
        "/usr/local/bin/syncd": (_wrapper("/usr/local/lib/syncd-selftest/daemon.py"), 0o755),
        "/etc/syncd/syncd.toml": "# harness self-test configuration\n",
        "/etc/credstore/syncd.client-secret": (SECRET + "\n", 0o600),
    }
    with boot(UNIT.read_text(), files, dropins={"harness": dropin}) as handle:
        yield handle


def test_start_reaches_active_after_ready(sd: Systemd, metrics_port: int) -> None:
    sd.wait_state("active")
    assert sd.systemctl("is-active", "syncd").stdout.strip() == "active"
    assert sd.show("StatusText") == "selftest running"
    assert sd.show("NRestarts") == "0"
    journal = sd.journal()
    assert "selftest check-config ok: /etc/syncd/syncd.toml" in journal  # ExecStartPre ran
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        assert b'syncd_build_info{version="selftest"} 1.0' in resp.read()


def test_host_tmp_canary_survives_the_boot(sd: Systemd) -> None:
    # systemd's boot cleanup has run by now; the harness checks again after the kill.
    sd.wait_state("active")
    assert sd.canary.exists()
    assert sd.canary.parent == Path("/tmp") or sd.canary.parent.exists()


def test_credential_read_from_credentials_directory_and_never_logged(sd: Systemd) -> None:
    sd.wait_state("active")
    journal = sd.journal()
    assert SECRET not in journal
    (line,) = [j for j in _json_lines(journal) if "credential_sha256" in j][:1]
    assert line["credential_sha256"] == hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    assert str(line["credentials_directory"]).startswith("/run/credentials/syncd.service")
    assert line["msg"] == "Credential read; this line names it as ***."
    # DynamicUser: neither root nor a fixed system user.
    assert int(str(line["uid"])) >= 61184


def test_reload_runs_check_config_then_ready_returns(sd: Systemd) -> None:
    sd.wait_state("active")
    before = sd.journal().count("selftest check-config ok")
    result = sd.systemctl("reload", "syncd")
    assert result.returncode == 0, result.stderr
    sd.wait_for(lambda: sd.show("StatusText") == "reloaded 1", what="StatusText=reloaded 1")
    sd.wait_state("active")
    # ExecReload's check-config, then the daemon's own re-read after SIGHUP.
    assert sd.journal().count("selftest check-config ok") == before + 2
    assert any(j.get("msg") == "Reload complete." for j in _json_lines(sd.journal()))


def test_refused_reload_keeps_the_running_daemon(sd: Systemd) -> None:
    sd.wait_state("active")
    pid = sd.show("MainPID")
    sd.write("/etc/syncd/syncd.toml", "broken = \n")
    try:
        result = sd.systemctl("reload", "syncd")
        assert result.returncode != 0
        assert "selftest check-config FAILED" in sd.journal()
        assert sd.show("ActiveState") == "active"
        assert sd.show("MainPID") == pid
    finally:
        sd.write("/etc/syncd/syncd.toml", "# harness self-test configuration\n")


def test_stalled_event_loop_is_restarted_by_the_watchdog(sd: Systemd) -> None:
    sd.wait_state("active")
    pid = sd.show("MainPID")
    restarts = int(sd.show("NRestarts"))
    sd.systemctl("kill", "--kill-who=main", "-s", "SIGUSR1", "syncd")
    sd.wait_for(
        lambda: int(sd.show("NRestarts")) == restarts + 1, timeout=30, what="a watchdog restart"
    )
    sd.wait_state("active")
    assert sd.show("MainPID") != pid
    assert "Watchdog timeout" in sd.journal()


def test_stop_sends_stopping_and_exits_zero(sd: Systemd) -> None:
    sd.wait_state("active")
    result = sd.systemctl("stop", "syncd")
    assert result.returncode == 0, result.stderr
    assert sd.show("ActiveState") == "inactive"
    assert sd.show("Result") == "success"
    assert sd.show("ExecMainStatus") == "0"
    stopping = [j for j in _json_lines(sd.journal()) if j.get("msg") == "Stopping."]
    assert stopping
    assert stopping[-1]["stopping_delivered"] is True
