"""The status page: the status document (``GET /status.json``) rendered as one HTML page.

Role: turn the plain data of the status document into server-rendered HTML with inline SVG: per
group a timeline of the day (x = local time of the group's business unit, linear in real time so
a 23 h or 25 h day is drawn as it is; y = lines): lines needed against healthy capacity, the
lines of each trunk stacked, shortfalls and unknown intervals marked, "now" marked; then trunk
health, the last failovers, the last writes, the notification channel and the API spend.

The page has no JavaScript, loads nothing from elsewhere (works offline), fits a phone's width,
and reloads itself (``<meta http-equiv="refresh">``). Every text from the document is escaped.
It must not import anything of syncd (``obs``) and holds no logic beyond presentation: what the
document says is what it shows.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Mapping, Sequence
from typing import Any

# Muted, distinguishable trunk colours (red is kept for shortfalls).
PALETTE = (
    "#4e79a7",
    "#59a14f",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#9c755f",
    "#f28e2b",
    "#a0cbe8",
    "#8cd17d",
    "#79706e",
    "#d4a6c8",
    "#bab0ac",
)

# The chart's user space (the SVG scales to the page's width).
W, H = 640.0, 280.0
LEFT, RIGHT, TOP, BOTTOM = 40.0, 10.0, 22.0, 26.0

CSS = """
:root{--ink:#1f2933;--mute:#616e7c;--line:#d9e2ec;--bg:#f5f7fa;--card:#fff;--bad:#d64545;
--ok:#2f8132;--warn:#b7791f;--accent:#243b53}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:var(--bg)}
header{background:var(--accent);color:#fff;padding:12px 16px}
header h1{margin:0;font-size:20px;font-weight:650;letter-spacing:.02em}
header p{margin:2px 0 0;color:#d9e2ec;font-size:13px}
header a{color:#fff}
main{max-width:1280px;margin:0 auto;padding:12px}
h2{font-size:16px;margin:18px 4px 8px;color:var(--accent)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:10px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card h3{margin:0 0 4px;font-size:15px}
.card p{margin:2px 0}
.big{font-size:22px;font-weight:650}
.mute{color:var(--mute);font-size:13px}
.bad{color:var(--bad);font-weight:600}
.ok{color:var(--ok)}
.timelines{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,560px),1fr));gap:10px}
figure.timeline{margin:0;background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:8px 10px}
figure.timeline figcaption{font-weight:600;margin-bottom:4px}
figure.timeline figcaption span{font-weight:400;color:var(--mute);font-size:13px}
svg.chart{display:block;width:100%;height:auto}
svg.chart text{font-size:12px;fill:#52606d}
svg.chart .grid{stroke:#e4e7eb;stroke-width:1}
svg.chart .axis{stroke:#9aa5b1;stroke-width:1}
svg.chart .needed{fill:none;stroke:#1f2933;stroke-width:2.2}
svg.chart .capacity{fill:none;stroke:#243b53;stroke-width:1.6;stroke-dasharray:6 4}
svg.chart .shortfall{fill:rgba(214,69,69,.35);stroke:#d64545;stroke-width:1}
svg.chart .past{fill:rgba(245,247,250,.55)}
svg.chart .now{stroke:#d64545;stroke-width:2}
svg.chart text.now-label{fill:#d64545;font-weight:600}
svg.chart .iv{fill:transparent}
.legend{display:flex;flex-wrap:wrap;gap:4px 12px;font-size:12px;color:var(--mute);margin-top:4px}
.legend i{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:-1px;
border-radius:2px}
.legend i.l-needed{height:3px;background:#1f2933;vertical-align:3px}
.legend i.l-capacity{height:0;border-top:2px dashed #243b53;vertical-align:3px}
.legend i.l-shortfall{background:rgba(214,69,69,.45);border:1px solid #d64545}
.legend i.l-nodata{background:repeating-linear-gradient(45deg,#cbd2d9 0 2px,#f5f7fa 2px 5px)}
nav.days{margin:6px 4px;font-size:14px}
nav.days a{margin-right:10px}
.scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-size:14px;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;text-align:left;border-bottom:1px solid var(--line);white-space:nowrap}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--mute);
background:#f0f4f8}
tr:last-child td{border-bottom:0}
td.num{text-align:right}
td.wrap{white-space:normal;min-width:220px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.b-healthy,.b-applied{background:#e3f9e5;color:#207227}
.b-failed,.b-conflict{background:#ffe3e3;color:#a61b1b}
.b-recovering,.b-superseded,.b-pending,.b-interrupted{background:#fff3c4;color:#8d5b0a}
.b-unknown{background:#e4e7eb;color:#52606d}
.meter{display:inline-block;width:90px;height:8px;background:#e4e7eb;border-radius:4px;
vertical-align:middle;margin-right:6px;overflow:hidden}
.meter b{display:block;height:100%;background:#4e79a7}
.empty{color:var(--mute);padding:10px 12px;margin:0}
footer{color:var(--mute);font-size:12px;text-align:center;padding:16px}
@media (max-width:600px){body{font-size:14px}main{padding:8px}th,td{padding:5px 7px}
svg.chart text{font-size:20px}svg.chart text.tick:not(.h6){display:none}}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(iso: str | None, *, seconds: bool = False) -> str:
    """A local time from the document (ISO with offset) as "Wed 14:05"."""
    if not iso:
        return "—"
    t = dt.datetime.fromisoformat(iso)
    return t.strftime("%a %H:%M:%S" if seconds else "%a %H:%M")


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def _nice_max(value: float) -> tuple[float, float]:
    """A round top for the y axis and its grid step."""
    value = max(value, 4.0)
    for step in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if value / step <= 5:
            top = step * -(-value // step)
            return float(top), float(step)
    step = 10 ** len(str(int(value)))
    return float(step), float(step / 5)


# --------------------------------------------------------------------------------------------
# The timeline chart
# --------------------------------------------------------------------------------------------


class _Axes:
    def __init__(self, day_start: float, day_end: float, top: float) -> None:
        self.t0, self.t1, self.top = day_start, day_end, top
        self.pw = W - LEFT - RIGHT
        self.ph = H - TOP - BOTTOM

    def x(self, t: float) -> float:
        t = min(max(t, self.t0), self.t1)
        return round(LEFT + (t - self.t0) / (self.t1 - self.t0) * self.pw, 2)

    def y(self, v: float) -> float:
        return round(TOP + self.ph - v / self.top * self.ph, 2)


def _runs(intervals: Sequence[Mapping[str, Any]]) -> list[list[Mapping[str, Any]]]:
    """Contiguous runs of known intervals (unknown ones break lines and areas)."""
    runs: list[list[Mapping[str, Any]]] = []
    prev_end = None
    for iv in intervals:
        if iv["fte"] is None:
            prev_end = None
            continue
        if prev_end is None or iv["start"] != prev_end:
            runs.append([])
        runs[-1].append(iv)
        prev_end = iv["end"]
    return runs


class _Run:
    """One contiguous run of known intervals, its x edges computed once (a large org draws
    thousands of stepped paths: each is one join over precomputed coordinates)."""

    def __init__(self, ax: _Axes, run: Sequence[Mapping[str, Any]]) -> None:
        self.ax = ax
        self.run = run
        self.x0 = f"{ax.x(run[0]['start']):g}"
        self.edges = [f"{ax.x(iv['end']):g}" for iv in run]  # x of each interval's end

    def _ys(self, values: Sequence[float]) -> list[str]:
        base, scale = TOP + self.ax.ph, self.ax.ph / self.ax.top
        return [f"{base - v * scale:.2f}" for v in values]

    def step(self, values: Sequence[float]) -> str:
        ys = self._ys(values)
        head = f"M{self.x0},{ys[0]}H{self.edges[0]}"
        return head + "".join(f"V{y}H{x}" for y, x in zip(ys[1:], self.edges[1:], strict=True))

    def band(self, lower: Sequence[float], upper: Sequence[float]) -> str:
        """A stepped area between two series."""
        starts = [self.x0, *self.edges[:-1]]
        back = "".join(
            f"V{y}H{x}" for y, x in zip(reversed(self._ys(lower)), reversed(starts), strict=True)
        )
        return self.step(upper) + back + "Z"


def _colours(group: Mapping[str, Any]) -> dict[str, str]:
    return {t["label"]: PALETTE[i % len(PALETTE)] for i, t in enumerate(group["trunks"])}


def _chart(group: Mapping[str, Any], index: int) -> str:
    intervals = group["intervals"]
    top_value = (
        max([float(iv["capacity"]) for iv in intervals] + [float(iv["lines"]) for iv in intervals])
        if intervals
        else 0.0
    )
    top, step = _nice_max(top_value * 1.05)
    ax = _Axes(group["day_start"], group["day_end"], top)
    colours = _colours(group)
    out = [
        f'<svg class="chart" viewBox="0 0 {W:g} {H:g}" role="img" '
        f'aria-label="Lines needed and healthy capacity of {_e(group["name"])} on '
        f'{_e(group["day"])}" data-group="{_e(group["name"])}">',
        f'<defs><pattern id="nodata-{index}" width="6" height="6" '
        'patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        '<rect width="6" height="6" fill="#f5f7fa"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#cbd2d9" stroke-width="2.5"/></pattern></defs>',
    ]
    # y grid and labels
    v = 0.0
    while v <= top + 1e-9:
        y = ax.y(v)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{W - RIGHT}" y1="{y}" y2="{y}"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end">{v:g}</text>')
        v += step
    # x grid: every local hour, labelled every three (a 25 h day labels its repeated hour twice)
    for iv in intervals:
        if iv["local"].endswith(":00") and iv["start"] >= group["day_start"]:
            x = ax.x(iv["start"])
            out.append(f'<line class="grid" x1="{x}" x2="{x}" y1="{TOP}" y2="{H - BOTTOM}"/>')
            hour = int(iv["local"][:2])
            if hour % 3 == 0:
                six = " h6" if hour % 6 == 0 else ""  # a phone shows every sixth hour only
                out.append(
                    f'<text class="tick{six}" x="{x}" y="{H - BOTTOM + 16}" '
                    f'text-anchor="middle">{_e(iv["local"])}</text>'
                )
    # unknown intervals (no schedule fetched for them)
    for iv in intervals:
        if iv["fte"] is None:
            x0, x1 = ax.x(iv["start"]), ax.x(iv["end"])
            out.append(
                f'<rect class="nodata" x="{x0}" y="{TOP}" width="{round(x1 - x0, 2)}" '
                f'height="{ax.ph}" fill="url(#nodata-{index})"/>'
            )
    runs = [_Run(ax, run) for run in _runs(intervals)]
    # the allocation per trunk, stacked in priority order
    for r in runs:
        lower = [0.0] * len(r.run)
        for trunk in group["trunks"]:
            label = trunk["label"]
            values = [float(iv["allocation"].get(label, 0)) for iv in r.run]
            if not any(values):
                continue
            upper = [lo + n for lo, n in zip(lower, values, strict=True)]
            out.append(
                f'<path class="alloc" data-trunk="{_e(label)}" fill="{colours[label]}" '
                f'fill-opacity=".85" d="{r.band(lower, upper)}"/>'
            )
            lower = upper
    # shortfall: between capacity and the lines needed
    for iv in intervals:
        if iv["shortfall"] > 0:
            x0, x1 = ax.x(iv["start"]), ax.x(iv["end"])
            y0, y1 = ax.y(iv["lines"]), ax.y(iv["capacity"])
            out.append(
                f'<rect class="shortfall" x="{x0}" y="{y0}" width="{round(x1 - x0, 2)}" '
                f'height="{round(y1 - y0, 2)}"><title>{_e(iv["local"])}: short of '
                f"{iv['shortfall']} line(s)</title></rect>"
            )
    for r in runs:
        out.append(f'<path class="capacity" d="{r.step([iv["capacity"] for iv in r.run])}"/>')
        out.append(f'<path class="needed" d="{r.step([iv["lines"] for iv in r.run])}"/>')
    out.append(
        f'<line class="axis" x1="{LEFT}" x2="{W - RIGHT}" y1="{H - BOTTOM}" y2="{H - BOTTOM}"/>'
    )
    # hover details per interval
    for iv in intervals:
        x0, x1 = ax.x(iv["start"]), ax.x(iv["end"])
        detail = (
            "no schedule data"
            if iv["fte"] is None
            else f"{iv['fte']:g} FTE, {iv['lines']} lines needed, capacity {iv['capacity']}"
            + (f", short {iv['shortfall']}" if iv["shortfall"] else "")
        )
        out.append(
            f'<rect class="iv" x="{x0}" y="{TOP}" width="{round(x1 - x0, 2)}" '
            f'height="{ax.ph}"><title>{_e(iv["local"])} {_e(detail)}</title></rect>'
        )
    now = group.get("now")
    if now is not None:
        x = ax.x(now)
        out.append(
            f'<rect class="past" x="{LEFT}" y="{TOP}" width="{round(x - LEFT, 2)}" '
            f'height="{ax.ph}"/>'
        )
        out.append(f'<line class="now" x1="{x}" x2="{x}" y1="{TOP - 4}" y2="{H - BOTTOM}"/>')
        anchor = "end" if x > W - 90 else "start"
        dx = -4 if anchor == "end" else 4
        out.append(
            f'<text class="now-label" x="{x + dx}" y="{TOP - 8}" text-anchor="{anchor}">'
            f"now {_e(group['now_local'])}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _legend(group: Mapping[str, Any]) -> str:
    colours = _colours(group)
    used = {label for iv in group["intervals"] for label, n in iv["allocation"].items() if n}
    items = [
        '<span><i class="l-needed"></i>lines needed</span>',
        '<span><i class="l-capacity"></i>healthy capacity</span>',
        '<span><i class="l-shortfall"></i>shortfall</span>',
    ]
    if any(iv["fte"] is None for iv in group["intervals"]):
        items.append('<span><i class="l-nodata"></i>no schedule data</span>')
    items += [
        f'<span><i style="background:{colours[t["label"]]}"></i>{_e(t["label"])}</span>'
        for t in group["trunks"]
        if t["label"] in used
    ]
    return '<div class="legend">' + "".join(items) + "</div>"


def _timeline(group: Mapping[str, Any], index: int) -> str:
    hours = group["day_hours"]
    dst = f" · {hours} h day (DST)" if hours != 24 else ""
    day = dt.date.fromisoformat(group["day"]).strftime("%a %d %b %Y")
    body = (
        _chart(group, index) + _legend(group)
        if group["intervals"]
        else '<p class="empty">No forecast for this day (beyond the schedule horizon).</p>'
    )
    return (
        f'<figure class="timeline" id="timeline-{_e(group["name"])}" '
        f'data-group="{_e(group["name"])}"><figcaption>{_e(group["name"])} '
        f"<span>{_e(day)} · {_e(group['time_zone'])}{dst}</span></figcaption>{body}</figure>"
    )


def _summary_card(group: Mapping[str, Any]) -> str:
    now = group.get("now")
    current = next(
        (iv for iv in group["intervals"] if now is not None and iv["start"] <= now < iv["end"]),
        None,
    )
    if current is None or current["fte"] is None:
        head = '<p class="mute">no forecast for the current interval</p>'
    else:
        head = (
            f'<p><span class="big">{current["lines"]}</span> lines needed · capacity '
            f"{current['capacity']} · {current['fte']:g} FTE</p>"
        )

    def line(title: str, s: Mapping[str, Any]) -> str:
        if not s["shortfall"]:
            return f'<p>{title}: <span class="ok">no shortfall expected</span></p>'
        return (
            f'<p>{title}: <span class="bad">short {s["shortfall"]} line(s) from '
            f"{_e(_when(s['start_local']))}</span></p>"
        )

    return (
        f'<div class="card group-card" data-group="{_e(group["name"])}">'
        f'<h3>{_e(group["name"])} <span class="mute">{_e(group["time_zone"])} · '
        f"now {_e(group['now_local'])}</span></h3>{head}"
        f"{line('Next 2 h', group['next_2h'])}{line('Horizon', group['horizon'])}</div>"
    )


# --------------------------------------------------------------------------------------------
# Tables and cards
# --------------------------------------------------------------------------------------------


def _table(head: Sequence[str], rows: Sequence[str], empty: str) -> str:
    if not rows:
        return f'<div class="scroll"><p class="empty">{_e(empty)}</p></div>'
    ths = "".join(f"<th>{_e(h)}</th>" for h in head)
    return (
        f'<div class="scroll"><table><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _trunks(doc: Mapping[str, Any]) -> str:
    rows = []
    for t in doc["trunks"]:
        share = min(100.0, 100.0 * t["lines_now"] / t["capacity"]) if t["capacity"] else 0.0
        since = _when(t["since_local"])
        ago = _duration(t["for_s"])
        rows.append(
            f'<tr class="trunk" data-trunk="{_e(t["label"])}" data-state="{_e(t["state"])}">'
            f'<td>{_e(t["name"])}<br><span class="mute">{_e(t["label"])}</span></td>'
            f'<td>{_e(t["group"])}</td><td class="num">{t["priority"]}</td>'
            f'<td><span class="meter"><b style="width:{share:.0f}%"></b></span>'
            f"{t['lines_now']} / {t['capacity']}</td>"
            f'<td><span class="badge b-{_e(t["state"])}">{_e(t["state"])}</span></td>'
            f"<td>{_e(since)}{f' <span class=mute>({_e(ago)})</span>' if ago else ''}</td>"
            f'<td class="num">{t["failovers"]}</td></tr>'
        )
    return _table(
        ("trunk", "group", "prio", "lines / capacity", "health", "since", "failovers"),
        rows,
        "No trunk health observed yet.",
    )


def _failovers(doc: Mapping[str, Any]) -> str:
    rows = []
    for f in doc["failovers"]:
        reaction = (
            '<span class="mute">routes not written yet</span>'
            if f["reaction_s"] is None
            else f"{f['reaction_s']:.2f} s"
        )
        rows.append(
            f'<tr class="failover"><td>{_e(f["name"])}<br><span class="mute">'
            f"{_e(f['trunk'])}</span></td><td>{_e(f['group'])}</td>"
            f"<td>{_e(_when(f['detected_local'], seconds=True))}</td><td>{reaction}</td>"
            f"<td>{_e(_when(f['recovered_local'], seconds=True))}</td></tr>"
        )
    return _table(
        ("trunk", "group", "failed (detected)", "reaction: routes written", "recovered"),
        rows,
        "No failover since the daemon started.",
    )


def _value(value: object) -> str:
    if isinstance(value, list):
        text = "[" + ", ".join(str(v) for v in value) + "]"
    else:
        text = "∅" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "…"


def _writes(doc: Mapping[str, Any]) -> str:
    rows = [
        f'<tr class="write"><td>{_e(_when(w["ts_local"], seconds=True))}</td>'
        f'<td><span class="badge b-{_e(w["outcome"])}">{_e(w["outcome"])}</span></td>'
        f'<td>{_e(w["object"])}<br><span class="mute">{_e(w["field"])}</span></td>'
        f'<td class="wrap">{_e(_value(w["before"]))} → {_e(_value(w["after"]))}</td>'
        f'<td class="wrap">{_e(w["group"])}: {_e(w["reason"])}</td></tr>'
        for w in doc["writes"]
    ]
    return _table(
        ("time", "outcome", "object", "change", "why"), rows, "No writes in the audit trail yet."
    )


def _notifications(doc: Mapping[str, Any]) -> str:
    n = doc["notifications"]
    pushed = n["channel"] == "push"
    polls = "".join(
        f"<p>{_e(p['kind'])} poll: "
        + ("" if pushed or p["every_s"] is None else f"every {p['every_s']:g} s, ")
        + f"last {_e(_duration(p['age_s']))} ago</p>"
        for p in n["polls"]
    )
    push = n.get("push")
    if not push:
        detail = '<p class="mute">push notifications: off</p>'
    elif {"up", "channels", "channels_up", "topics"} <= set(push):
        state = "up" if push["up"] else "down"
        detail = (
            f"<p>push: {state} · {push['channels_up']} of {push['channels']} channel(s) "
            f"listening · {push['topics']} topics</p>"
        )
    else:
        detail = "".join(f"<p>{_e(k)}: {_e(v)}</p>" for k, v in push.items())
    why = "notifications; the polls are the safety net" if pushed else "polling"
    return (
        f'<div class="card" id="notifications"><h3>Change detection</h3>'
        f'<p>channel: <b>{_e(n["channel"])}</b> <span class="mute">({why})</span></p>'
        f"{detail}{polls}</div>"
    )


def _spend(doc: Mapping[str, Any]) -> str:
    api = doc.get("api") or {"tokens": [], "window_s": 60}
    rows = []
    for t in api["tokens"]:
        quota = t["quota_per_minute"] or 0
        share = min(100.0, 100.0 * t["requests"] / quota) if quota else 0.0
        rows.append(
            f'<p class="token">token {_e(t["token"])}: <span class="meter">'
            f'<b style="width:{share:.0f}%"></b></span>{t["requests"]} / {quota:g} requests</p>'
        )
    return (
        '<div class="card" id="api"><h3>API spend</h3>'
        f'<p class="mute">requests in the last {api["window_s"]:g} s against the quota per '
        f"minute</p>{''.join(rows) or '<p class=mute>no token yet</p>'}</div>"
    )


def _days(doc: Mapping[str, Any]) -> str:
    days = sorted({d for g in doc["groups"] for d in g["days"]})
    if len(days) < 2:
        return ""
    links = "".join(f'<a href="?day={_e(d)}">{_e(d)}</a>' for d in days)
    return f'<nav class="days">Day: <a href="./">today</a>{links}</nav>'


def render(doc: Mapping[str, Any]) -> str:
    """The whole page for one status document."""
    groups = doc["groups"]
    fc = doc.get("forecast")
    computed = (
        f" · forecast computed {_utc(fc['computed_at'])[11:16]} UTC"
        if fc and fc.get("computed_at")
        else ""
    )
    if groups:
        cards = '<div class="cards">' + "".join(_summary_card(g) for g in groups) + "</div>"
        timelines = (
            _days(doc)
            + '<div class="timelines">'
            + "".join(_timeline(g, i) for i, g in enumerate(groups))
            + "</div>"
        )
    else:
        cards = ""
        timelines = (
            '<div class="scroll"><p class="empty">The forecast follows the first reconcile; '
            "this page refreshes itself.</p></div>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{int(doc.get("refresh_s", 30))}">'
        f"<title>syncd status</title><style>{CSS}</style></head><body>"
        f"<header><h1>syncd · capacity and routing</h1><p>{_e(_utc(doc['generated_at']))}"
        f"{_e(computed)} · version {_e(doc['version'])} · refreshes every "
        f'{int(doc.get("refresh_s", 30))} s · <a href="status.json">status.json</a> · '
        '<a href="metrics">metrics</a></p></header><main>'
        f'<section id="groups"><h2>The day ahead</h2>{cards}{timelines}</section>'
        f'<section id="trunks"><h2>Trunks</h2>{_trunks(doc)}</section>'
        f'<section id="failovers"><h2>Last failovers</h2>{_failovers(doc)}</section>'
        f'<section id="ops"><h2>API and change detection</h2><div class="cards">'
        f"{_spend(doc)}{_notifications(doc)}</div></section>"
        f'<section id="writes"><h2>Last writes</h2>{_writes(doc)}</section>'
        "</main><footer>syncd · served by the daemon on its metrics listener · no scripts, "
        "nothing loaded from elsewhere</footer></body></html>"
    )
