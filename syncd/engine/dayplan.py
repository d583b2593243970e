"""``syncd plan``: the day's capacity timeline per group, from live reads, as a table or JSON.

Reads what the forecast needs and nothing more: the trunk bases (for names), one health poll on
top of the state file's failover state, the business units (for their time zones) and the agent
schedules of the whole local day (from its midnight, so the morning is forecast too). Then the
same forecast and the same per-group document as the daemon's ``GET /status.json``
(``engine.status``), printed as a compact table: runs of equal intervals folded into one row.

It writes nothing: nothing to the API, and nothing to the state file, which it opens read-only
beside the daemon (what its health poll learns stays in memory, as for ``syncd once
--dry-run``).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from syncd import config as config_mod
from syncd import errors
from syncd.core import forecast
from syncd.engine import runner, status
from syncd.obs import logs

TOP_TRUNKS = 3


def _load(path: str) -> config_mod.Config | int:
    try:
        return config_mod.load(path)
    except errors.ConfigError as exc:
        print(str(exc), file=sys.stderr)
    except OSError as exc:
        print(f"{path}: cannot read the configuration: {exc.strerror}", file=sys.stderr)
    return runner.EX_CONFIG


async def read_day(
    cfg: config_mod.Config, *, day: dt.date | None, now: float | None = None
) -> list[dict[str, Any]]:
    """The per-group timelines of ``day`` (default: today in each group's zone), read live."""
    # Not the state file's writer: ``syncd plan`` runs beside the daemon, as a dry run does.
    async with runner.open_engine(cfg, writer=False) as asm:
        engine = asm.engine
        wall = time.time() if now is None else now
        names = {tb.id: tb.name for tb in await engine.reader.trunk_bases()}
        engine.health = await asm.store.load_health()
        await engine.poll_health()
        inputs = status.Inputs.of(cfg, await engine.reader.unit_zones(), names)
        windows = [
            forecast.day_window(day or forecast.local_date(int(wall), tz), tz)
            for tz in inputs.zones.values()
        ]
        start, end = min(w[0] for w in windows), max(w[1] for w in windows)
        await engine.reader.refresh_schedules(now=start, wall_now=wall, horizon_s=end - start)
        snapshot = engine.reader.snapshot()
        fc = status.compute(
            inputs,
            schedules=snapshot.schedules,
            activity_codes=snapshot.activity_codes,
            health_states=engine.health,
            now=int(wall),
            span=(start, end),
        )
        return status.groups_document(fc, inputs, now=wall, day=day)


def _top(allocation: Mapping[str, int]) -> str:
    ranked = sorted(allocation.items(), key=lambda kv: -kv[1])
    shown = ", ".join(f"{label} {n}" for label, n in ranked[:TOP_TRUNKS])
    more = len(ranked) - TOP_TRUNKS
    return shown + (f" +{more} more" if more > 0 else "")


def _row(iv: Mapping[str, Any]) -> tuple[str, ...]:
    if iv["fte"] is None:
        return ("—", "—", str(iv["capacity"]), "—", "no schedule data")
    return (
        f"{iv['fte']:.1f}",
        str(iv["lines"]),
        str(iv["capacity"]),
        str(iv["shortfall"]),
        _top(iv["allocation"]),
    )


def format_timeline(groups: Sequence[Mapping[str, Any]]) -> str:
    """One block per group: a header, then one row per run of intervals that read the same
    (FTE to one decimal, lines, capacity, shortfall, top trunks); ``*`` marks now."""
    out = []
    for g in groups:
        day = dt.date.fromisoformat(g["day"]).strftime("%a %Y-%m-%d")
        worst = g["horizon"]
        short = (
            f"largest shortfall in the horizon: {worst['shortfall']} lines from "
            f"{worst['start_local']}"
            if worst["shortfall"]
            else "no shortfall expected in the horizon"
        )
        out.append(f"{g['name']} · {g['time_zone']} · {day} ({g['day_hours']} h) · {short}")
        rows: list[tuple[str, ...]] = [("time", "FTE", "lines", "capacity", "short", "top trunks")]
        now = g.get("now")
        runs: list[tuple[Mapping[str, Any], Mapping[str, Any], tuple[str, ...], bool]] = []
        for iv in g["intervals"]:
            cells = _row(iv)
            is_now = now is not None and iv["start"] <= now < iv["end"]
            if runs and runs[-1][2] == cells and not is_now and not runs[-1][3]:
                runs[-1] = (runs[-1][0], iv, cells, False)
            else:
                runs.append((iv, iv, cells, is_now))
        tz = g["time_zone"]
        for first, last, cells, is_now in runs:
            span = f"{first['local']}–{forecast.local_time(last['end'], tz).strftime('%H:%M')}"
            rows.append((span + (" *" if is_now else ""), *cells))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            left = r[0].ljust(widths[0])
            nums = "  ".join(c.rjust(widths[i + 1]) for i, c in enumerate(r[1:5]))
            out.append(f"  {left}  {nums}  {r[5]}".rstrip())
        out.append("")
    return "\n".join(out).rstrip() + "\n"


async def run_plan(path: str, *, day: dt.date | None, as_json: bool) -> int:
    """``syncd plan -c FILE [--day DATE] [--json]``."""
    logs.setup_logging(stream=sys.stderr)
    loaded = _load(path)
    if isinstance(loaded, int):
        return loaded
    try:
        groups = await read_day(loaded, day=day)
    except errors.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return runner.EX_CONFIG
    except (errors.ApiError, errors.StateError) as exc:
        print(f"syncd plan: {exc}", file=sys.stderr)
        return runner.EX_FAILURE
    if as_json:
        sys.stdout.write(orjson.dumps({"groups": groups}).decode() + "\n")
    else:
        sys.stdout.write(format_timeline(groups))
    return runner.EX_OK
