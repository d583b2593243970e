"""Real processes for the end-to-end tests: ``syncd sim`` and ``syncd run`` on loopback.

Each process is started here, its PID kept, and stopped by that PID only (SIGTERM, then SIGKILL
after a grace period): never by name. The simulator's URL comes from the first line it prints;
the daemon's configuration is ``config/demo.toml`` pointed at it, with short timers.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.toml"
SYNCD = [sys.executable, "-m", "syncd"]
ENV = {**os.environ, "SYNCD_CLIENT_SECRET": "demo-secret", "PYTHONUNBUFFERED": "1"}
ENV.pop("NOTIFY_SOCKET", None)
ENV.pop("WATCHDOG_USEC", None)

WRITE_METHODS = ("PUT", "PATCH")
TRUNKS = "/api/v2/telephony/providers/edges/trunks"
SCHEDULE_LISTING = (
    "/api/v2/workforcemanagement/businessunits/{businessUnitId}/weeks/{weekId}/schedules"
)
SCHEDULE_QUERY = SCHEDULE_LISTING + "/{scheduleId}/agentschedules/query"
ROUTE_LISTING = "/api/v2/telephony/providers/edges/sites/{siteId}/outboundroutes"
CAMPAIGN_LISTING = "/api/v2/outbound/campaigns"
TRUNK_BASE_LISTING = "/api/v2/telephony/providers/edges/trunkbasesettings"

# Ids of the small org, seed 1 (config/demo.toml)
APAC = "3558d37c-3b2e-4a2b-8c43-13ec34d44fee"
AMERICAS = "bfb21ff9-dd96-4845-8eb6-f7b2601a1e94"
SITE_001 = "3313a1a7-5ec1-4589-85ee-d7cb9264847d"
SITE_001_DEFAULT = "45b830ee-7ef1-408e-89fc-117fba6b1e78"
SITE_002 = "b978a9e0-a422-4121-86d4-96de58ae049e"
SITE_002_DEFAULT = "4b1cbd89-7eea-4c00-a733-57dfba35934c"
APAC_TRUNKS = (
    "da598f9f-47b5-4227-a02e-3b5288064455",
    "0ae54bed-3105-4fc2-bf69-3767037e61fe",
    "1e6ca7f6-5dc5-4025-9052-9e604228915a",
)
AMERICAS_TRUNKS = (
    "2ff07add-8164-4828-ab0c-7850e3e1224e",
    "7ba6f81f-b48f-44e4-abd5-eaffb4a7557b",
)
APAC_CAMPAIGNS = ("265b773d-91e4-4d7f-9a7e-cb449521d8d8", "4466f57c-4ea8-4a37-b613-a7096870e15a")

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy (a process can't be given a fake clock)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or probe}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen[Any], grace: float = 10.0) -> int | None:
    """SIGTERM this PID, SIGKILL it after ``grace``; the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(grace)
    return proc.returncode


def _http(method: str, url: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback http
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback test server
        raw = resp.read()
    return json.loads(raw) if raw else None


@dataclass
class SimProcess:
    """``syncd sim`` as a child process, and its control API."""

    proc: subprocess.Popen[str]
    url: str

    def control(self, method: str, path: str, body: object = None) -> Any:
        return _http(method, f"{self.url}/_sim/{path}", body)

    def wait_held(self, count: int, *, timeout: float) -> int:
        """Block until the simulator holds at least ``count`` requests (``/_sim/hold``), by
        long-polling its control API (each poll answers as soon as the count is reached)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                held: int = self.control("GET", f"hold?atLeast={count}&timeout=5")["held"]
            except urllib.error.HTTPError as exc:
                if exc.code != 408 or time.monotonic() > deadline:
                    raise
            else:
                return held

    def requests(self) -> list[dict[str, Any]]:
        reqs: list[dict[str, Any]] = self.control("GET", "requests")["requests"]
        return reqs

    def writes(self) -> list[dict[str, Any]]:
        """The successful PUTs/PATCHes of org objects the server answered (its own request
        log); a notification channel's subscription is not a write of the org."""
        return [
            r
            for r in self.requests()
            if r["method"] in WRITE_METHODS
            and 200 <= r["status"] < 300
            and not str(r["path"]).startswith("/api/v2/notifications/")
        ]

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.control("GET", "state")
        return state

    def api_get(self, path: str) -> Any:
        """GET an /api/v2 object as any client would (a token of its own)."""
        form = b"grant_type=client_credentials"
        req = urllib.request.Request(f"{self.url}/oauth/token", data=form, method="POST")  # noqa: S310
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        basic = base64.b64encode(b"demo-client:demo-secret").decode()
        req.add_header("Authorization", f"Basic {basic}")
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            token = json.loads(resp.read())["access_token"]
        req = urllib.request.Request(f"{self.url}{path}")  # noqa: S310
        req.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            return json.loads(resp.read())


@contextlib.contextmanager
def sim_process() -> Iterator[SimProcess]:
    proc = subprocess.Popen(
        [*SYNCD, "sim", "--port", "0", "--org", "small", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=ENV,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert match, f"the simulator printed {first!r}"
        yield SimProcess(proc, match.group(0))
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def write_config(
    path: Path,
    sim_url: str,
    *,
    state_path: Path,
    metrics_port: int,
    replace: tuple[tuple[str, str], ...] = (),
) -> Path:
    """``config/demo.toml`` for this simulator, with short timers (and any other replacements).

    The safety-net timers that run while the notification channel is up are as short as the
    polls: these tests drive the daemon through its timers, with the channel on as by default."""
    text = DEMO.read_text()
    for old, new in (
        ("http://127.0.0.1:8787", sim_url),
        ("/tmp/syncd-demo/state.sqlite3", str(state_path)),
        ("127.0.0.1:9464", f"127.0.0.1:{metrics_port}"),
        ("poll_s = 15", "poll_s = 1\nresync_s = 1"),
        ("refresh_s = 60", "refresh_s = 2\nresync_s = 2"),
        ("hold_down_s = 60", "hold_down_s = 2"),
        *replace,
    ):
        assert old in text, old
        text = text.replace(old, new)
    # The demo org's own schedules lower a group by more than half at some hours of the day
    # (americas 40 -> 17 lines around 05:00 UTC), which the default max_drop_share holds for a
    # confirming re-read: these tests are not about that hold (tests/engine/test_safety.py is),
    # so they run without it and do not depend on the hour.
    assert "[safety]" not in text
    text += "\n[safety]\nmax_drop_share = 1.0\n"
    path.write_text(text)
    return path


@dataclass
class DaemonProcess:
    """``syncd run`` as a child process; its JSON log lines go to a file."""

    proc: subprocess.Popen[bytes]
    config: Path
    log_path: Path
    metrics_port: int
    _log: Any = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.proc.pid, sig)

    def kill9(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int | None:
        code = stop_process(self.proc)
        if self._log is not None:
            self._log.close()
        return code

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def log_messages(self) -> list[str]:
        return [str(r.get("msg", "")) for r in self.logs()]

    def metrics(self) -> dict[str, float]:
        """The /metrics samples by their full name with labels (``name{a="b"}``)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
        except (urllib.error.URLError, ConnectionError):
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out

    def metric_families(self) -> set[str]:
        """The metric names /metrics declares (``# TYPE`` lines), with samples or not."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}

    def metric_sum(self, name: str, **labels: str) -> float:
        total = 0.0
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            if base == name and all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total += value
        return total


def start_daemon(config: Path, log_path: Path, metrics_port: int) -> DaemonProcess:
    log = log_path.open("ab")
    proc = subprocess.Popen(
        [*SYNCD, "run", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, env=ENV
    )
    return DaemonProcess(proc, config, log_path, metrics_port, log)


@contextlib.contextmanager
def daemon_process(config: Path, log_path: Path, metrics_port: int) -> Iterator[DaemonProcess]:
    d = start_daemon(config, log_path, metrics_port)
    try:
        yield d
    finally:
        d.stop()


def dry_run(config: Path) -> str:
    """``syncd once --dry-run`` output. Give it a config with its own state file: a dry run
    beside a running daemon must not share (and lock) the daemon's audit trail."""
    done = subprocess.run(
        [*SYNCD, "once", "-c", str(config), "--dry-run"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def converged(config: Path) -> bool:
    return "no writes" in dry_run(config)


def history(state_path: Path) -> list[tuple[str, str, str]]:
    """``syncd history --state PATH`` as (outcome, kind, object id) rows, oldest first."""
    done = subprocess.run(
        [*SYNCD, "history", "--state", str(state_path), "--limit", "100000", "--json"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
        check=True,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    return [(r["outcome"], r["kind"], r["object_id"]) for r in rows]


def load_grafana_exprs() -> ModuleType:
    """tests/ops/grafana_exprs.py (the dashboard's expressions), which is not on this path."""
    path = Path(__file__).resolve().parents[1] / "ops" / "grafana_exprs.py"
    spec = importlib.util.spec_from_file_location("grafana_exprs", path)
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules.get("grafana_exprs") or importlib.util.module_from_spec(spec)
    if "grafana_exprs" not in sys.modules:
        sys.modules["grafana_exprs"] = module
        spec.loader.exec_module(module)
    return module
