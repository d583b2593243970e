"""The demo's ``--plain`` view: short lines, and only the ones that say something new."""

from __future__ import annotations

import io

from syncd import demo


def test_plain_view_prints_short_lines_and_only_what_changed() -> None:
    out = io.StringIO()
    view = demo.View(out, live=False)
    screen = [
        "syncd demo — simulator http://127.0.0.1:1 — metrics http://127.0.0.1:2/metrics — 1 s",
        "",
        "apac       staffed  120.0 FTE → 120 lines (shortfall 0)",
        "    Acme Voice BYOC 001                p1  20/20  lines  healthy",
        "    Globex Carrier BYOC 003            p1  20/20  lines  FAILED   <- carrier failure"
        " injected " + "x" * 80,
        "",
        "writes applied 3   HTTP 429s 0   API spend 12/300 requests in the last minute",
    ]
    view.render(screen, now=0.0)
    first = out.getvalue().splitlines()
    assert first == [
        "apac staffed 120.0 FTE → 120 lines (shortfall 0)",
        first[1],
        "writes applied 3 HTTP 429s 0 API spend 12/300 requests in the last minute",
    ]
    assert first[1].startswith("Globex Carrier BYOC 003 p1 20/20 lines FAILED")
    assert all(len(line) <= demo.View.PLAIN_WIDTH for line in first)
    view.render([*screen[:-1], "writes applied 4   HTTP 429s 0   API spend 14/300"], now=5.0)
    assert out.getvalue().splitlines()[3:] == ["writes applied 4 HTTP 429s 0 API spend 14/300"]
