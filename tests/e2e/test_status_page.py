"""The status page of a running ``syncd demo``, loaded by a real browser.

``syncd demo`` (simulator + the real daemon) runs as a subprocess, its own failover injection
pushed beyond the test. After its first reconcile the test fails carrier trunks of group "apac"
through the simulator's control API, as many as it takes for the rest of the day's forecast to
run short of capacity (so the picture is the same at any time of day and no trunk recovers
meanwhile), and waits until the status document shows them failed over, routes written.

Then Debian's ``chromium`` (headless, installed by .ci/run) loads ``GET /``: ``--dump-dom`` for
the DOM the browser built, ``--screenshot`` at a desktop and at a phone width. The DOM must hold
one timeline per group, each with a now-marker and the lines-needed and capacity series, the
shortfall marked where ``GET /status.json`` says, and one row per configured trunk with the
failed ones marked; no script, nothing loaded from elsewhere, no secret. The screenshots are
kept as test artefacts (``$SYNCD_TEST_ARTEFACTS``, default ``build/test-artefacts``);
docs/status-page.png in the README is one of them.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from daemon_helpers import stop_process

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium not installed (apt-get install chromium; .ci/run does)"
    ),
]
ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = Path(os.environ.get("SYNCD_TEST_ARTEFACTS", ROOT / "build" / "test-artefacts"))
DEMO_SECRET = "demo-secret"  # the simulator's well-known demo credential
_URLS = re.compile(
    r"simulator at (http://127\.0\.0\.1:\d+), .*status page at (http://127\.0\.0\.1:\d+/)"
)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


# --------------------------------------------------------------------------- a small DOM
@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node] = field(default_factory=list)
    text: str = ""

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def find_all(self, tag: str, cls: str | None = None) -> list[Node]:
        out = []
        for child in self.children:
            if child.tag == tag and (cls is None or cls in child.classes):
                out.append(child)
            out.extend(child.find_all(tag, cls))
        return out

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(Node("#text", {}, text=data))


def parse_dom(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


# --------------------------------------------------------------------------- the browser
def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # tests may run as root (CI containers); the page is our own
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


# --------------------------------------------------------------------------- the demo
@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    url: str
    sim_url: str
    stdout: Path
    stderr: Path
    failed: list[str] = field(default_factory=list)  # trunk labels the test failed

    def fail_trunk(self, trunk_base_id: str) -> None:
        req = urllib.request.Request(  # noqa: S310 - loopback http only
            f"{self.sim_url}/_sim/trunks/{trunk_base_id}/fail", data=b"{}", method="POST"
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            assert resp.status == 200

    def wait(self, predicate: Any, what: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """The status document once ``predicate`` holds for it (a real process cannot be
        handed a fake clock: its document is polled)."""
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, self.logs()
            try:
                doc = self.status()
                if predicate(doc):
                    return doc
            except OSError:
                pass
            assert time.monotonic() < deadline, f"timed out waiting for {what}\n" + self.logs()
            time.sleep(0.25)

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "status.json", timeout=10) as resp:  # noqa: S310
            doc: dict[str, Any] = orjson.loads(resp.read())
            return doc

    def logs(self) -> str:
        out = self.stdout.read_text(errors="replace")[-2000:]
        err = self.stderr.read_text(errors="replace")[-4000:]
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"


def _planned(doc: dict[str, Any]) -> bool:
    return bool(doc["groups"] and all(g["intervals"] for g in doc["groups"]) and doc["writes"])


def _short_of_capacity(demo: Demo, doc: dict[str, Any]) -> None:
    """Fail apac's trunks, first in priority, until healthy capacity is below the most lines
    the rest of today needs (at worst all of them: min_lines is at least 2)."""
    apac = next(g for g in doc["groups"] if g["name"] == "apac")
    need = max(iv["lines"] for iv in apac["intervals"] if iv["fte"] is not None)
    capacity = sum(t["capacity"] for t in apac["trunks"])
    for trunk in apac["trunks"]:
        if capacity < need:
            break
        demo.fail_trunk(trunk["id"])
        demo.failed.append(trunk["label"])
        capacity -= trunk["capacity"]


def _failovers_handled(demo: Demo, doc: dict[str, Any]) -> bool:
    states = {t["label"]: t["state"] for t in doc["trunks"]}
    apac = next(g for g in doc["groups"] if g["name"] == "apac")
    return (
        all(states[label] == "failed" for label in demo.failed)
        and len(doc["failovers"]) == len(demo.failed)
        and all(f["reaction_s"] is not None for f in doc["failovers"])
        and any(iv["shortfall"] > 0 for iv in apac["intervals"])
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    work = tmp_path_factory.mktemp("status-demo")
    stdout, stderr = work / "stdout.txt", work / "stderr.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "syncd",
                "demo",
                "--plain",
                "--duration=300",  # ample: the test stops it (SIGTERM, by PID) when done
                "--failover-after=100000",  # the test fails trunks itself
            ],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"},
        )
    try:
        deadline = time.monotonic() + 60
        match = None
        while match is None:
            assert process.poll() is None, stdout.read_text() + stderr.read_text()
            assert time.monotonic() < deadline, "the demo printed no status page URL"
            match = _URLS.search(stdout.read_text(errors="replace"))
            time.sleep(0.1)
        d = Demo(
            process=process,
            url=match.group(2),
            sim_url=match.group(1),
            stdout=stdout,
            stderr=stderr,
        )
        _short_of_capacity(d, d.wait(_planned, "the first reconcile"))
        d.wait(lambda doc: _failovers_handled(d, doc), "the failovers handled")
        yield d
    finally:
        stop_process(process, grace=30)


def test_status_page_in_a_real_browser(demo: Demo, tmp_path: Path) -> None:
    doc = demo.status()
    dumped = chromium(tmp_path, "--dump-dom", demo.url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = parse_dom(dumped.stdout)
    # The page was rendered between these two documents (a minute may have turned meanwhile).
    after = demo.status()

    # One timeline per group, each with its chart, a now-marker, needed and capacity series.
    groups = {g["name"]: g for g in doc["groups"]}
    assert set(groups) == {"apac", "americas"}
    figures = dom.find_all("figure", "timeline")
    assert [f.attrs["data-group"] for f in figures] == [g["name"] for g in doc["groups"]]
    later = {g["name"]: g for g in after["groups"]}
    for fig in figures:
        group = groups[fig.attrs["data-group"]]
        (svg,) = fig.find_all("svg", "chart")
        assert len(svg.find_all("line", "now")) == 1, fig.attrs
        (label,) = svg.find_all("text", "now-label")
        assert label.all_text() in {
            f"now {group['now_local']}",
            f"now {later[group['name']]['now_local']}",
        }
        assert svg.find_all("path", "needed")
        assert svg.find_all("path", "capacity")
        assert svg.find_all("path", "alloc"), "no trunk carries lines in the chart"
        # One hover cell per interval of the day, as the document lists them.
        cells = len(svg.find_all("rect", "iv"))
        assert cells in {len(group["intervals"]), len(later[group["name"]]["intervals"])}
        assert cells >= 92
        ticks = [t.all_text() for t in svg.find_all("text", "tick")]
        assert ticks[:2] == ["00:00", "03:00"]

    # The shortfall the document forecasts is marked, interval by interval.
    apac_svg = next(f for f in figures if f.attrs["data-group"] == "apac").find_all("svg")[0]
    short = len(apac_svg.find_all("rect", "shortfall"))
    assert short > 0
    assert short in {
        sum(1 for iv in d["intervals"] if iv["shortfall"] > 0)
        for d in (groups["apac"], later["apac"])
    }

    # One row per configured trunk; those the test failed are marked so, the rest healthy.
    rows = dom.find_all("tr", "trunk")
    assert len(rows) == len(doc["trunks"]) == 15
    states = {r.attrs["data-trunk"]: r.attrs["data-state"] for r in rows}
    assert {label for label, s in states.items() if s == "failed"} == set(demo.failed)
    assert {s for label, s in states.items() if label not in demo.failed} == {"healthy"}
    failovers = dom.find_all("tr", "failover")
    assert len(failovers) == len(doc["failovers"]) == len(demo.failed)
    for event, row in zip(doc["failovers"], failovers, strict=True):
        assert event["trunk"] in row.all_text()
        assert f"{event['reaction_s']:.2f} s" in row.all_text()
    assert dom.find_all("tr", "write")
    assert dom.find_all("p", "token")
    (card,) = [n for n in dom.find_all("div", "card") if n.attrs.get("id") == "notifications"]
    assert f"channel: {doc['notifications']['channel']}" in card.all_text()

    # Self-contained and refreshing: no script, nothing from elsewhere, a meta refresh.
    assert not dom.find_all("script")
    for tag in ("link", "img", "iframe", "object", "embed"):
        assert not [n for n in dom.find_all(tag) if n.attrs.get("src") or n.attrs.get("href")]
    hrefs = [a.attrs.get("href", "") for a in dom.find_all("a")]
    assert hrefs
    assert all("://" not in h and not h.startswith("//") for h in hrefs), hrefs
    metas = {m.attrs.get("http-equiv"): m.attrs.get("content") for m in dom.find_all("meta")}
    assert metas.get("refresh") == str(doc["refresh_s"])
    assert DEMO_SECRET not in dumped.stdout
    assert DEMO_SECRET not in orjson.dumps(doc).decode()

    # Screenshots at a desktop and a phone width, kept as artefacts.
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for name, size in (("status-page.png", (1280, 2200)), ("status-page-phone.png", (390, 1500))):
        shot = ARTEFACTS / name
        shot.unlink(missing_ok=True)
        taken = chromium(
            tmp_path, f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", demo.url
        )
        assert taken.returncode == 0, taken.stderr[-2000:]
        assert png_size(shot) == size
        assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
