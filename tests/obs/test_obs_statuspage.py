"""The status page on the metrics listener: GET / and GET /status.json, and the HTML itself."""

from __future__ import annotations

import copy
import datetime as dt
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from syncd.obs import metrics as metrics_mod
from syncd.obs import statuspage

PARIS = zoneinfo.ZoneInfo("Europe/Paris")


def _local(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, PARIS)


def _doc(*, day: dt.date = dt.date(2026, 10, 25), shortfall_at: int = 40) -> dict[str, Any]:
    """A status document of one group on Paris's 25-hour day (03:00 → 02:00 in October), the
    first 8 intervals unknown, a shortfall from interval ``shortfall_at`` for 4 intervals."""
    start = int(dt.datetime.combine(day, dt.time(0), PARIS).timestamp())
    end = int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), PARIS).timestamp())
    intervals = []
    for k, t in enumerate(range(start, end, 900)):
        short = 5 if shortfall_at <= k < shortfall_at + 4 else 0
        intervals.append(
            {
                "start": t,
                "end": t + 900,
                "local": _local(t).strftime("%H:%M"),
                "fte": None if k < 8 else 10.0,
                "lines": 0 if k < 8 else 15 + short,
                "capacity": 20 if not short else 15,
                "shortfall": short,
                "allocation": {} if k < 8 else {"carrier-a": 10, "carrier-<b>": 5},
            }
        )
    now = start + 10 * 3600 + 120
    return {
        "generated_at": float(now),
        "version": "9.9",
        "refresh_s": 30,
        "forecast": {"computed_at": now - 60},
        "groups": [
            {
                "name": "east <&>",
                "time_zone": "Europe/Paris",
                "day": day.isoformat(),
                "days": [day.isoformat(), (day + dt.timedelta(days=1)).isoformat()],
                "day_start": start,
                "day_end": end,
                "day_hours": round((end - start) / 3600),
                "now": float(now),
                "now_local": _local(now).strftime("%H:%M"),
                "trunks": [
                    {"id": "a", "label": "carrier-a", "name": "A", "capacity": 10, "priority": 1},
                    {"id": "b", "label": "carrier-<b>", "name": "B", "capacity": 10, "priority": 2},
                ],
                "next_2h": {"shortfall": 0, "start": None, "start_local": None},
                "horizon": {
                    "shortfall": 5,
                    "start": start + shortfall_at * 900,
                    "start_local": _local(start + shortfall_at * 900).isoformat(),
                },
                "intervals": intervals,
            }
        ],
        "trunks": [
            {
                "id": "a",
                "name": "A",
                "label": "carrier-a",
                "group": "east <&>",
                "priority": 1,
                "capacity": 10,
                "lines_now": 10,
                "state": "failed",
                "since_local": _local(now - 400).isoformat(),
                "for_s": 400,
                "failovers": 1,
            }
        ],
        "failovers": [
            {
                "group": "east <&>",
                "trunk": "carrier-a",
                "name": "A",
                "detected_local": _local(now - 400).isoformat(),
                "reaction_s": 1.234,
                "recovered_local": None,
            }
        ],
        "writes": [
            {
                "ts_local": _local(now - 399).isoformat(),
                "outcome": "applied",
                "kind": "route_order",
                "object": "Route 1",
                "field": "externalTrunkBases",
                "before": ["carrier-a", "carrier-<b>"],
                "after": ["carrier-<b>"],
                "reason": "failed trunk moved out of the way",
                "group": "east <&>",
            }
        ],
        "notifications": {
            "channel": "poll",
            "polls": [{"kind": "health", "every_s": 15, "last": now - 3, "age_s": 3.0}],
            "push": None,
        },
        "api": {
            "window_s": 60,
            "tokens": [{"token": "0", "requests": 12, "quota_per_minute": 300}],
        },
    }


def test_a_25_hour_day_is_drawn_as_it_is() -> None:
    page = statuspage.render(_doc())
    ticks = re.findall(r'<text class="tick[^"]*"[^>]*>([^<]+)</text>', page)
    # Every third local hour; 00:00 → 03:00 takes four real hours (02:00 happens twice).
    assert ticks == ["00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"]
    xs = [float(x) for x in re.findall(r'<text class="tick[^"]*" x="([\d.]+)"', page)]
    # A phone shows every sixth hour: 00:00, 06:00, 12:00, 18:00.
    assert re.findall(r'<text class="tick h6"[^>]*>([^<]+)</text>', page) == ticks[::2]
    assert xs[1] - xs[0] > xs[2] - xs[1]
    assert abs((xs[1] - xs[0]) / (xs[2] - xs[1]) - 4 / 3) < 0.01
    assert "25 h day (DST)" in page
    assert page.count('class="iv"') == 100


def test_chart_marks_now_shortfall_and_unknown_intervals() -> None:
    page = statuspage.render(_doc())
    assert page.count('<line class="now"') == 1
    assert "now 09:02" in page  # ten real hours after midnight on a 25-hour day
    assert page.count('class="shortfall"') == 4
    assert page.count('class="nodata"') == 8
    assert page.count('class="alloc"') == 2  # one stacked band per trunk that carries lines
    assert 'class="needed"' in page
    assert 'class="capacity"' in page
    # A day without now (tomorrow) has no marker; one without intervals says so.
    doc = _doc()
    doc["groups"][0]["now"] = None
    assert '<line class="now"' not in statuspage.render(doc)
    doc["groups"][0]["intervals"] = []
    assert "No forecast for this day" in statuspage.render(doc)


def test_page_is_self_contained_refreshing_and_escaped() -> None:
    page = statuspage.render(_doc())
    assert page.startswith("<!doctype html>")
    assert '<meta http-equiv="refresh" content="30">' in page
    assert 'name="viewport"' in page
    assert "<script" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "east &lt;&amp;&gt;" in page
    assert "carrier-&lt;b&gt;" in page
    assert "<b>" not in page.replace("<b>poll</b>", "")
    assert "1.23 s" in page
    assert 'data-state="failed"' in page
    assert "12 / 300 requests" in page


def test_change_detection_card_says_push_or_poll() -> None:
    doc = _doc()
    page = statuspage.render(doc)
    assert "push notifications: off" in page
    assert "health poll: every 15 s, last 3 s ago" in page
    doc["notifications"]["channel"] = "push"
    doc["notifications"]["push"] = {"up": True, "channels": 2, "channels_up": 1, "topics": 1500}
    page = statuspage.render(doc)
    assert "push: up · 1 of 2 channel(s) listening · 1500 topics" in page
    assert "health poll: last 3 s ago" in page  # the poll interval slows while push is up


def test_empty_document_before_the_first_reconcile() -> None:
    doc = _doc()
    doc.update(groups=[], trunks=[], failovers=[], writes=[], forecast=None)
    page = statuspage.render(doc)
    assert "The forecast follows the first reconcile" in page
    assert "No failover since the daemon started." in page


@dataclass
class _Source:
    doc: dict[str, Any]
    queries: list[dict[str, str]]

    def status(self, query: Mapping[str, str]) -> dict[str, Any]:
        self.queries.append(dict(query))
        if query.get("day") == "bad":
            raise ValueError("day='bad': give a date as YYYY-MM-DD")
        return copy.deepcopy(self.doc)


async def test_listener_serves_the_page_and_the_document() -> None:
    m = metrics_mod.Metrics(process_metrics=False)
    m.configure(
        groups={"east": ["carrier-a"]},
        business_units=["bu"],
        tokens=["0"],
        kinds=["route_order"],
        quota_per_minute=300,
        max_retry_after_s=60,
    )
    async with TestClient(TestServer(metrics_mod.make_app(m))) as client:
        resp = await client.get("/status.json")
        assert resp.status == 503  # no source yet: the daemon is starting
        source = _Source(doc=_doc(), queries=[])
        m.set_status_source(source)
        resp = await client.get("/status.json")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/json")
        assert resp.headers["Cache-Control"] == "no-store"
        body = orjson.loads(await resp.read())
        assert body["groups"][0]["name"] == "east <&>"
        # The listener adds the API spend it counts itself.
        assert body["api"] == {
            "window_s": 60.0,
            "tokens": [{"token": "0", "requests": 0, "quota_per_minute": 300}],
        }
        resp = await client.get("/", params={"day": "2026-10-26"})
        assert resp.status == 200
        assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "<svg" in await resp.text()
        assert source.queries[-1] == {"day": "2026-10-26"}
        resp = await client.get("/", params={"day": "bad"})
        assert resp.status == 400
        assert "YYYY-MM-DD" in await resp.text()
        assert (await client.get("/metrics")).status == 200


def test_api_spend_counts_the_last_minute_per_token() -> None:
    m = metrics_mod.Metrics(process_metrics=False)
    m.configure(
        groups={},
        business_units=[],
        tokens=["0", "1"],
        kinds=[],
        quota_per_minute=120,
        max_retry_after_s=60,
    )

    @dataclass(frozen=True)
    class Event:
        endpoint: str = "/api/v2/outbound/campaigns"
        method: str = "GET"
        status: int = 200
        duration_s: float = 0.01
        retry_after_s: float | None = None
        token: str = "0"
        request_id: str = ""

    for _ in range(3):
        m.on_request(Event())
    m.on_request(Event(token="1"))
    spend = m.api_spend()
    assert spend["tokens"] == [
        {"token": "0", "requests": 3, "quota_per_minute": 120},
        {"token": "1", "requests": 1, "quota_per_minute": 120},
    ]
    # A minute later those requests have left the window.
    later = m.api_spend(now=max(max(d) for d in m._sent.values()) + 61)
    assert [t["requests"] for t in later["tokens"]] == [0, 0]
