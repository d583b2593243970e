"""`python -m syncd.sim` prints its URL and credentials, serves, and exits 0 on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request


def test_cli_starts_serves_and_stops_cleanly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd.sim", "--port", "0", "--org", "small", "--seed", "3",
         "--client-id", "me", "--client-secret", "s3cret", "--quota", "50", "--window", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        assert "'me'" in line
        assert "'s3cret'" in line
        with urllib.request.urlopen(f"{match.group(0)}/_sim/state", timeout=10) as resp:  # noqa: S310 - loopback http URL
            assert b'"seed":3' in resp.read()
        with urllib.request.urlopen(f"{match.group(0)}/_sim/ratelimit", timeout=10) as resp:  # noqa: S310 - loopback http URL
            assert b'"quota":50' in resp.read()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
