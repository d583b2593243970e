"""``python -m bench planner [--json] [--org large] [--seed 1]``: parse + plan at scale.

Role: render the simulator's org (default ``large``: 20 000 agents × a week of shifts, 500
trunk bases, 100 sites, 200 campaigns) to the raw JSON bodies syncd reads (untimed, in this
process), then, in a fresh child process so the generator's memory does not count, time
``wire`` parsing and ``planner.plan`` separately and report peak RSS. The groups cover the whole
org: one per management unit, each with the sites (trunks, routes, campaigns) dealt to it.

It must not be run by the tests (timings are not assertions) and does not touch the network.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from syncd.core import allocation, model, planner, wire

TARGET_S = 1.0
TARGET_RSS_MB = 400.0


def render(directory: Path, size: str, seed: int) -> None:
    """Write every body the planner needs, as the API would send it, plus the bench settings."""
    from syncd.sim import org as sim_org
    from syncd.sim import wfm

    org = sim_org.generate(size, seed)
    week_start: int | None = None
    mu_files = []
    for bu in org.bus:
        codes = {"entities": [wfm.activity_code_json(bu, i) for i in range(len(bu.activity_codes))]}
        (directory / f"codes-{bu.id}.json").write_bytes(orjson.dumps(codes))
        sched = next(
            s
            for s in bu.schedules
            if s.published and s.start_utc.date() <= org.week_anchor < s.end_utc.date()
        )
        start = int(sched.start_utc.timestamp())
        week_start = start if week_start is None else min(week_start, start)
        for mu in bu.mus:
            result = {
                "agentSchedules": [
                    wfm.query_agent_json(org, bu, mu, sched, i)
                    for i in range(mu.first_agent, mu.end_agent)
                ],
                "businessUnitTimeZone": bu.time_zone,
            }
            name = f"mu-{bu.id}-{mu.id}.json"
            (directory / name).write_bytes(orjson.dumps(result))
            mu_files.append((name, bu.id, mu.id))
    trunks = [
        {
            "id": t.id,
            "name": f"trunk {t.id}",
            "trunkType": "EXTERNAL",
            "trunkBase": {"id": t.trunk_base_id},
            "inService": True,
            "connectedStatus": {"connected": t.connected},
            "optionsStatus": [
                {"proxyAddress": f"sbc{n}", "optionState": f"sbc{n}" not in t.failed_servers}
                for n in (1, 2)
            ],
        }
        for t in org.trunks.values()
    ]
    listings = {
        "trunkbases": list(org.trunk_bases.values()),
        "trunks": trunks,
        "routes": [{**r, "site": {"id": org.route_site[r["id"]]}} for r in org.routes.values()],
        "campaigns": list(org.campaigns.values()),
    }
    for key, entities in listings.items():
        body = {"entities": entities, "pageNumber": 1, "pageCount": 1, "total": len(entities)}
        (directory / f"{key}.json").write_bytes(orjson.dumps(body))

    mus = [(bu.id, mu.id) for bu in org.bus for mu in bu.mus]
    groups: list[dict[str, Any]] = [
        {"name": f"g{g:03d}", "mus": [mu], "sites": [], "trunks": [], "routes": [], "campaigns": []}
        for g, (_, mu) in enumerate(mus)
    ]
    site_group = {s.id: groups[i % len(groups)] for i, s in enumerate(org.sites)}
    for tb_id, tb in org.trunk_bases.items():
        group = site_group[tb["inboundSite"]["id"]]
        group["trunks"].append([tb_id, 30, 1 + len(group["trunks"]) % 3])
    for route_id, site_id in org.route_site.items():
        site_group[site_id]["routes"].append([site_id, route_id])
    for camp_id, camp in org.campaigns.items():
        site_group[camp["site"]["id"]]["campaigns"].append([camp_id, 1.0])
    assert week_start is not None
    meta = {
        "mu_files": mu_files,
        "bu_ids": [bu.id for bu in org.bus],
        "groups": groups,
        # Wednesday 14:00 UTC of the current week: daytime on both sides of the date line.
        "now": week_start + 2 * 86400 + 14 * 3600,
        "agents": sum(len(bu.agent_ids) for bu in org.bus),
        "trunks": len(org.trunk_bases),
    }
    (directory / "meta.json").write_bytes(orjson.dumps(meta))


def settings_of(meta: dict[str, Any]) -> planner.PlannerSettings:
    return planner.PlannerSettings(
        groups=tuple(
            planner.GroupSpec(
                name=g["name"],
                management_units=tuple(g["mus"]),
                campaigns=tuple(planner.CampaignSpec(id=c, weight=w) for c, w in g["campaigns"]),
                routes=tuple(
                    planner.RouteSpec(site_id=s, id=r, trunks=planner.RouteMembership.MANAGED)
                    for s, r in g["routes"]
                ),
                trunks=tuple(
                    allocation.TrunkSpec(trunk_base_id=t, capacity=c, priority=p)
                    for t, c, p in g["trunks"]
                ),
                lines_per_agent=1.2,
                min_lines=1,
                max_lines=2000,
                hysteresis=2,
                call_rate=planner.CallRateSpec(per_line=0.5),
            )
            for g in meta["groups"]
        ),
        lead_time_s=120,
    )


def _child(directory: Path) -> dict[str, Any]:
    """The timed part, in a fresh process."""
    meta = orjson.loads((directory / "meta.json").read_bytes())
    settings = settings_of(meta)
    now = meta["now"]
    parse_s = 0.0
    schedules = []
    for name, bu_id, mu_id in meta["mu_files"]:
        body = (directory / name).read_bytes()
        t0 = time.perf_counter()
        # The whole week as published (the reader's worst case: a fresh start).
        schedules.append(
            wire.parse_agent_schedules(
                body, business_unit_id=bu_id, management_unit_id=mu_id, start=0, end=1 << 40
            )
        )
        parse_s += time.perf_counter() - t0
        del body
    bodies = {
        key: (directory / f"{key}.json").read_bytes()
        for key in ("trunkbases", "trunks", "routes", "campaigns")
    }
    code_bodies = [(directory / f"codes-{bu}.json").read_bytes() for bu in meta["bu_ids"]]
    t0 = time.perf_counter()
    codes = [c for body in code_bodies for c in wire.parse_activity_codes(body)]
    trunk_bases = [wire.parse_trunk_base(e) for e in wire.parse_page(bodies["trunkbases"]).entities]
    statuses = [wire.parse_trunk(e) for e in wire.parse_page(bodies["trunks"]).entities]
    routes = [wire.parse_route(e) for e in wire.parse_page(bodies["routes"]).entities]
    campaigns = [wire.parse_campaign(e) for e in wire.parse_page(bodies["campaigns"]).entities]
    parse_s += time.perf_counter() - t0

    t0 = time.perf_counter()
    health_states = {
        s.trunk_base_id: model.TrunkHealth(
            trunk_base_id=s.trunk_base_id,
            state=model.HealthState.HEALTHY if s.healthy else model.HealthState.FAILED,
            since=now,
        )
        for s in statuses
    }
    result = planner.plan(
        settings=settings,
        schedules=schedules,
        activity_codes=codes,
        health_states=health_states,
        trunk_bases=trunk_bases,
        routes=routes,
        campaigns=campaigns,
        now=now,
    )
    plan_s = time.perf_counter() - t0
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "agents": meta["agents"],
        "trunks": meta["trunks"],
        "activities": sum(len(a.activities) for s in schedules for a in s.agents),
        "writes": len(result.writes),
        "parse_s": round(parse_s, 3),
        "plan_s": round(plan_s, 3),
        "total_s": round(parse_s + plan_s, 3),
        "peak_rss_mb": round(rss_kb / 1024, 1),
        "target_s": TARGET_S,
        "target_rss_mb": TARGET_RSS_MB,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench planner")
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    parser.add_argument("--org", default="large", choices=("small", "medium", "large"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.child:
        print(json.dumps(_child(Path(ns.child))))
        return 0
    with tempfile.TemporaryDirectory(prefix="syncd-bench-planner-") as tmp:
        t0 = time.perf_counter()
        render(Path(tmp), ns.org, ns.seed)
        render_s = time.perf_counter() - t0
        out = subprocess.run(
            [sys.executable, "-m", "bench", "planner", "--child", tmp],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    result = json.loads(out.stdout)
    result["org"] = ns.org
    if not ns.json:
        print(f"rendered the {ns.org} org's bodies in {render_s:.1f} s (untimed)", file=sys.stderr)
        print(
            f"parse {result['parse_s']} s + plan {result['plan_s']} s = {result['total_s']} s "
            f"(target {TARGET_S} s), peak RSS {result['peak_rss_mb']} MB "
            f"(target {TARGET_RSS_MB} MB)",
            file=sys.stderr,
        )
    print(json.dumps(result))
    return 0
