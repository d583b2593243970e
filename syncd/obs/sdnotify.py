"""sd_notify(3) for the systemd service: readiness, reload, stop, status text and watchdog pings.

Standard library only (no libsystemd binding): one AF_UNIX datagram per message to
``$NOTIFY_SOCKET``. Without ``NOTIFY_SOCKET`` (a terminal, the tests, a container) every call is
a silent no-op, so callers never need to know whether they run under systemd. It must not raise
into the daemon either: a notification that cannot be delivered is logged at debug level only,
because a lost ``STATUS=`` line is not worth ending a reconcile over (systemd itself notices a
missing ``READY=1`` or watchdog ping and acts on it).

Imports nothing of syncd (``obs`` is used by all layers and uses none).
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)

__all__ = [
    "notify",
    "ready",
    "reloading",
    "status",
    "stopping",
    "watchdog",
    "watchdog_interval_s",
]


def _address(raw: str) -> str | bytes:
    # A leading "@" names a socket in the abstract namespace: the kernel wants a NUL byte there.
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


def notify(state: str) -> bool:
    """Send ``state`` (newline-separated ``KEY=VALUE`` pairs); True when a datagram was sent.

    False without ``$NOTIFY_SOCKET`` or when sending failed (never raises).
    """
    raw = os.environ.get("NOTIFY_SOCKET")
    if not raw:
        return False
    if not (raw.startswith(("/", "@"))):
        # systemd ≥254 also allows vsock:...; a daemon on 252 never sees it, so ignore it loudly.
        log.debug("NOTIFY_SOCKET %r is not an AF_UNIX address; not notifying.", raw)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(raw))
            sock.sendall(state.encode())
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", raw, exc)
        return False
    return True


def ready() -> bool:
    """Tell systemd start-up (or a reload) is complete: ``Type=notify`` units become active."""
    return notify("READY=1")


def reloading() -> bool:
    """Tell systemd a reload began; ``ready()`` must follow when it is over.

    ``MONOTONIC_USEC`` is required by ``Type=notify-reload`` (systemd ≥253) to match the reload
    to the request; systemd 252 ignores the unknown field, so sending it is harmless there.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")


def stopping() -> bool:
    """Tell systemd the daemon is shutting down (so a slow drain is not mistaken for a hang)."""
    return notify("STOPPING=1")


def status(text: str) -> bool:
    """A one-line status shown by ``systemctl status`` (newlines would end the field early)."""
    return notify("STATUS=" + " ".join(text.splitlines()))


def watchdog() -> bool:
    """Ping the watchdog (``WatchdogSec=``): the event loop is alive."""
    return notify("WATCHDOG=1")


def watchdog_interval_s() -> float | None:
    """The watchdog timeout in seconds, or None when no watchdog applies to this process.

    Mirrors sd_watchdog_enabled(3): ``$WATCHDOG_USEC`` must be a positive integer and, when
    ``$WATCHDOG_PID`` is set, it must be our PID (a child that inherited the environment must
    not ping on its parent's behalf). Callers ping at half this interval or more often.
    """
    raw = os.environ.get("WATCHDOG_USEC")
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid:
        try:
            if int(pid) != os.getpid():
                return None
        except ValueError:
            return None
    return usec / 1_000_000
