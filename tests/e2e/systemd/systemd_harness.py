"""Boot a real systemd (PID 1 of fresh namespaces) around one unit, drive it, and kill it.

Reusable from any test: ``boot(unit_text, files)`` stages the unit and its files, starts
``inner.sh`` under ``unshare --pid --fork --mount --uts --ipc --mount-proc`` (the host network is
shared), waits until systemd answers, and returns a ``Systemd`` handle with ``systemctl()``,
``show()``, ``journal()``, ``write()``, ``wait_for()`` and ``kill()``. It is a context manager;
leaving it kills the namespace's PID 1 (by PID: the kernel then ends every process in it).

Safety: systemd's boot cleanup deletes everything in /tmp unless /tmp is a private tmpfs, which
inner.sh arranges. ``boot`` also drops a canary file in the host /tmp and ``kill`` raises if it
is gone, so a broken isolation cannot go unnoticed.

What the unit sees: the machine's own / with tmpfs over /run, /tmp, /var/{tmp,lib,log,cache}
and /etc/systemd/system, and overlays (tmpfs upper layer) over /etc and /usr/local, so files
may be placed under /etc, /usr/local, /run and /var/lib without touching the host. Files the
service runs must be readable by a DynamicUser: not under /root (mode 0700 here, and hidden by
ProtectHome=) nor /home. That rules out the checkout's .venv interpreter (a symlink into
/root/.pyenv); Debian's /usr/bin/python3 (3.11, same ABI) with PYTHONPATH pointing at the
checkout and the venv's site-packages works.

Not a test module (no test_ prefix); the tests next to it import it. ``run.sh`` drives it by
hand: ``run.sh UNIT_FILE [--file SRC:DEST[:MODE]]... [--dropin FILE]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from types import TracebackType

HERE = Path(__file__).resolve().parent
INNER = HERE / "inner.sh"
SYSTEMD = Path("/lib/systemd/systemd")
ALLOWED_PREFIXES = ("/etc/", "/usr/local/", "/run/", "/var/lib/")
CAP_SYS_ADMIN = 21
TEST_TARGET = "[Unit]\nDescription=harness target\nWants={unit}\n"

FileSpec = str | bytes | tuple[str | bytes, int]


def unavailable_reason() -> str | None:
    """Why a real systemd cannot be booted here, or None when it can."""
    if sys.platform != "linux":
        return "not Linux"
    if os.geteuid() != 0:
        return "needs root"
    if not _has_cap_sys_admin():
        return "needs CAP_SYS_ADMIN"
    if not SYSTEMD.exists():
        return f"{SYSTEMD} not installed"
    for tool in ("unshare", "nsenter", "install"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    return None


def _has_cap_sys_admin() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_ADMIN & 1)
    return False


def _children(pid: int) -> list[int]:
    try:
        raw = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in raw.split()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Systemd:
    """A booted systemd; every command runs inside its namespaces through nsenter."""

    def __init__(
        self, *, unshare: subprocess.Popen[bytes], pid: int, stage: Path, canary: Path, unit: str
    ) -> None:
        self.unshare = unshare
        self.pid = pid  # systemd's PID as seen from the host
        self.stage = stage
        self.canary = canary
        self.unit = unit
        self.boot_log = stage / "boot.log"
        self._killed = False

    # ---------------------------------------------------------------- commands
    def run(
        self, *cmd: str, input: bytes | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the namespaces (as root), capturing text output."""
        proc = subprocess.run(
            ["nsenter", "-t", str(self.pid), "-m", "-p", "-u", "-i", *cmd],
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        return subprocess.CompletedProcess(
            proc.args,
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )

    def systemctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.run("systemctl", "--no-pager", *args, timeout=timeout)

    def show(self, prop: str, unit: str | None = None) -> str:
        return self.systemctl("show", "-P", prop, unit or self.unit).stdout.strip()

    def journal(self, unit: str | None = None, *, output: str = "cat") -> str:
        """The unit's journal (``-o cat``: the messages only)."""
        return self.run("journalctl", "-u", unit or self.unit, "-o", output, "--no-pager").stdout

    def write(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """Create or replace a file inside the namespace (same path rules as ``boot``)."""
        _check_path(path)
        data = content.encode() if isinstance(content, str) else content
        proc = self.run(
            "sh", "-c", f'umask 022 && cat > "$0" && chmod {mode:o} "$0"', path, input=data
        )
        if proc.returncode != 0:
            raise RuntimeError(f"writing {path} failed: {proc.stderr}")

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 20, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise AssertionError(
            f"timed out after {timeout} s waiting for {what}\n"
            f"--- systemctl status ---\n{self.systemctl('status', self.unit).stdout}\n"
            f"--- journal ---\n{self.journal()[-4000:]}"
        )

    def wait_state(self, state: str, unit: str | None = None, timeout: float = 20) -> None:
        self.wait_for(
            lambda: self.show("ActiveState", unit) == state, timeout, f"ActiveState={state}"
        )

    # ---------------------------------------------------------------- teardown
    def kill(self) -> None:
        """Kill the namespace's PID 1 by its PID and check the host /tmp canary survived."""
        if self._killed:
            return
        self._killed = True
        # Never os.kill(0, …): that would signal our own process group.
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        try:
            self.unshare.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.unshare.kill()  # our own unshare process, by PID
            self.unshare.wait(timeout=5)
        alive = self.canary.exists()
        if alive:
            self.canary.unlink()
        shutil.rmtree(self.stage, ignore_errors=True)
        if not alive:
            raise AssertionError(f"host /tmp canary {self.canary} is gone: /tmp was cleaned")

    def __enter__(self) -> Systemd:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()


def _check_path(path: str) -> None:
    if not path.startswith(ALLOWED_PREFIXES) or ".." in Path(path).parts:
        raise ValueError(f"{path}: files go under {', '.join(ALLOWED_PREFIXES)} only")


# Where ``boot(checkout=…)`` shows the checkout inside the namespace.
CHECKOUT_IN_NS = PurePosixPath("/usr/local/lib/syncd-checkout")


def boot(
    unit_text: str,
    files: Mapping[str, FileSpec] | None = None,
    *,
    unit: str = "syncd.service",
    dropins: Mapping[str, str] | None = None,
    timeout: float = 20,
    log_level: str = "notice",
    checkout: Path | None = None,
) -> Systemd:
    """Boot systemd with ``unit_text`` installed as ``unit`` and wanted by the boot target.

    ``files`` maps absolute paths inside the namespace to contents (or ``(contents, mode)``;
    mode 0644 by default); ``dropins`` maps drop-in names to their text
    (``/etc/systemd/system/<unit>.d/<name>.conf``). ``log_level="debug"`` makes PID 1 journal
    every sd_notify message it receives ("Got notification message from PID …"). Returns once
    systemd answers ``systemctl``; the unit may still be starting (``wait_state("active")``).
    """
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"cannot boot systemd: {reason}")
    canary = Path(tempfile.gettempdir()) / f"syncd-systemd-canary-{uuid.uuid4().hex}"
    canary.write_text("systemd must not clean the host /tmp\n")
    stage = Path(tempfile.mkdtemp(prefix="syncd-systemd-"))
    (stage / "files").mkdir()
    every: dict[str, FileSpec] = {
        f"/etc/systemd/system/{unit}": unit_text,
        "/etc/systemd/system/test.target": TEST_TARGET.format(unit=unit),
    }
    for name, text in (dropins or {}).items():
        every[f"/etc/systemd/system/{unit}.d/{name}.conf"] = text
    every.update(files or {})
    manifest = []
    for n, (path, spec) in enumerate(every.items()):
        _check_path(path)
        content, mode = spec if isinstance(spec, tuple) else (spec, 0o644)
        data = content.encode() if isinstance(content, str) else content
        (stage / "files" / str(n)).write_bytes(data)
        manifest.append(f"{n} {mode:o} {path}\n")
    (stage / "manifest").write_text("".join(manifest))
    with (stage / "boot.log").open("wb") as log:
        unshare = subprocess.Popen(
            [
                "unshare",
                "--pid",
                "--fork",
                "--mount",
                "--uts",
                "--ipc",
                "--mount-proc",
                str(INNER),
                str(stage),
                log_level,
                str(checkout or ""),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pid = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not pid:
        if unshare.poll() is not None:
            break
        pid = next((c for c in _children(unshare.pid) if _comm(c) == "systemd"), 0)
        if not pid:
            time.sleep(0.05)
    handle = Systemd(unshare=unshare, pid=pid, stage=stage, canary=canary, unit=unit)
    if not pid:
        log_text = handle.boot_log.read_text(errors="replace")
        handle.pid = 0
        _stop_unshare(unshare)
        handle.kill()
        raise RuntimeError(f"systemd did not start:\n{log_text[-4000:]}")
    try:
        handle.wait_for(
            lambda: (
                handle.systemctl("is-system-running").stdout.strip()
                in {"running", "degraded", "starting"}
            ),
            timeout,
            "systemd to answer",
        )
    except BaseException:
        handle.kill()
        raise
    return handle


def _stop_unshare(unshare: subprocess.Popen[bytes]) -> None:
    if unshare.poll() is None:
        unshare.kill()
        unshare.wait(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """By hand: boot UNIT_FILE, wait until active, reload, stop, print the journal, kill."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("unit_file", type=Path)
    parser.add_argument("--file", action="append", default=[], help="SRC:DEST[:OCTAL_MODE]")
    parser.add_argument("--dropin", action="append", default=[], type=Path)
    args = parser.parse_args(argv)
    files: dict[str, FileSpec] = {}
    for spec in args.file:
        src, dest, *mode = spec.split(":")
        files[dest] = (Path(src).read_bytes(), int(mode[0], 8) if mode else 0o644)
    dropins = {p.stem: p.read_text() for p in args.dropin}
    with boot(args.unit_file.read_text(), files, dropins=dropins) as sd:
        try:
            sd.wait_state("active")
        finally:
            print(sd.systemctl("status", sd.unit).stdout)
        print("reload:", sd.systemctl("reload", sd.unit).returncode)
        print("stop:", sd.systemctl("stop", sd.unit).returncode)
        print(sd.journal())
    return 0


if __name__ == "__main__":
    sys.exit(main())
