"""``syncd discover`` and ``syncd verify`` as a new user runs them: real processes against the
simulator on loopback. discover's output passes check-config and verify as it is, spends the
requests the docs state (counted in the simulator's own log), and plans nothing destructive;
one mistyped character in an id makes verify exit 1 naming the id and its key path."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from syncd import config as config_mod
from syncd.core import model
from syncd.engine import discover, runner, verify
from syncd.sim import RunningSim, start_sim

SECRET_ENV = {"SYNCD_CLIENT_SECRET": "demo-secret"}
DEMO = Path(__file__).resolve().parents[2] / "config" / "demo.toml"


async def syncd(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m syncd ARGS`` as a separate process (the simulator keeps serving meanwhile)."""
    base = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "syncd",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**base, **SECRET_ENV, **(env or {})},
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def api_requests(sim: RunningSim) -> int:
    return sum(1 for e in sim.sim.log if e.route.startswith("/api/v2/"))


def demo_toml(tmp_path: Path) -> Path:
    """config/demo.toml with its state file under ``tmp_path``."""
    cfg = tmp_path / "demo.toml"
    cfg.write_text(
        DEMO.read_text().replace("/tmp/syncd-demo/state.sqlite3", str(tmp_path / "s.db"))
    )
    return cfg


@pytest.fixture
async def small() -> AsyncIterator[RunningSim]:
    running = await start_sim(org="small", seed=1)
    yield running
    await running.close()


def expected_requests(running: RunningSim) -> int:
    """What discover should cost: per business unit its settings, management units and
    activity codes; one agent listing per management unit; one page each of trunk bases,
    trunks and the org-wide route listing (≤ 500 per page); campaigns in pages of 100."""
    org = running.sim.org
    mus = sum(len(bu.mus) for bu in org.bus)
    pages = [len(org.trunk_bases), len(org.trunks), len(org.routes)]
    return (
        1
        + 3 * len(org.bus)
        + mus
        + sum(-(-n // 500) for n in pages)
        + max(1, -(-len(org.campaigns) // 100))
    )


async def discover_check_verify(running: RunningSim, out: Path, *extra: str) -> tuple[int, str]:
    before = api_requests(running)
    code, _, err = await syncd(
        "discover", "--client-id", "demo-client", "--api-url", running.base_url, "-o", str(out),
        *extra,
    )  # fmt: skip
    assert code == 0, err
    spent = api_requests(running) - before
    # discover counts its own requests; the simulator's log agrees.
    assert re.search(rf"read with {spent} request\(s\)", err), err
    code, text, err = await syncd("check-config", str(out))
    assert code == 0, text + err
    code, text, err = await syncd("verify", "-c", str(out))
    assert code == 0, text + err
    assert "PROBLEM" not in text
    return spent, text


async def test_small_org_discover_passes_check_config_and_verify(
    small: RunningSim, tmp_path: Path
) -> None:
    out = tmp_path / "c.toml"
    spent, report = await discover_check_verify(small, out)
    assert spent == expected_requests(small) == 15
    cfg = config_mod.load(out)
    org = small.sim.org
    # One group per business unit, with every management unit and the sites' routes.
    assert [g.management_units for g in cfg.groups] == [
        tuple(m.id for m in bu.mus) for bu in org.bus
    ]
    assert sorted(r.id for g in cfg.groups for r in g.routes) == sorted(org.routes)
    text = out.read_text()
    for tb_id, tb in org.trunk_bases.items():
        line = next(x for x in text.splitlines() if tb_id in x)
        assert "# TODO: carrier capacity" in line
        assert tb["name"] in line
    for mu in (m for bu in org.bus for m in bu.mus):
        assert re.search(rf'"{mu.id}",  # {mu.name}: {mu.end_agent - mu.first_agent} agents', text)
    assert {r.trunks for g in cfg.groups for r in g.routes} == {discover.DEFAULT_POLICY}
    assert "time zone Asia/Singapore" in report
    assert "time zone America/Chicago" in report


async def test_group_by_site(small: RunningSim, tmp_path: Path) -> None:
    out = tmp_path / "c.toml"
    await discover_check_verify(small, out, "--group-by", "site")
    cfg = config_mod.load(out)
    assert [g.name for g in cfg.groups] == ["site-001", "site-002"]
    assert {r.site_id for r in cfg.groups[0].routes} == {small.sim.org.sites[0].id}


@pytest.mark.slow
async def test_large_org_discover_passes_check_config_and_verify(tmp_path: Path) -> None:
    running = await start_sim(org="large", seed=1)
    try:
        spent, _ = await discover_check_verify(running, tmp_path / "c.toml")
        assert spent == expected_requests(running) == 52
    finally:
        await running.close()


async def test_one_mistyped_character_is_named_with_its_key_path(
    small: RunningSim, tmp_path: Path
) -> None:
    out = tmp_path / "c.toml"
    await discover_check_verify(small, out)
    cfg = config_mod.load(out)
    good = cfg.groups[1].trunks[2].trunk_base_id
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    out.write_text(out.read_text().replace(good, bad))
    code, text, err = await syncd("verify", "-c", str(out))
    assert code == 1, text + err
    problems = [line for line in text.splitlines() if line.startswith("PROBLEM")]
    assert problems == [
        f"PROBLEM    groups[1].trunks[2].trunk_base_id: {bad} is not a trunk base in this org"
        " (a typo?)"
    ]
    # An id of the wrong kind is named for what it is.
    route = cfg.groups[0].routes[0].id
    out.write_text(out.read_text().replace(bad, route, 1))
    code, text, _ = await syncd("verify", "-c", str(out))
    assert code == 1
    assert f"groups[1].trunks[2].trunk_base_id: {route} is outbound route 'Site 001" in text


async def test_verify_exits_78_on_an_invalid_configuration(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[org]\nclient_id = "x"\n')
    code, _, err = await syncd("verify", "-c", str(bad))
    assert code == 78
    assert "org: set region, or both api_url and login_url" in err


async def test_verify_names_refused_credentials(small: RunningSim, tmp_path: Path) -> None:
    out = tmp_path / "c.toml"
    await discover_check_verify(small, out)
    code, report, _ = await syncd(
        "verify", "-c", str(out), env={"SYNCD_CLIENT_SECRET": "not-the-secret"}
    )
    assert code == 1
    assert report.splitlines()[0].startswith(
        "PROBLEM    org credentials: The login service refused client demo-client with HTTP 401"
    )
    assert "not-the-secret" not in report


async def test_discovered_config_plans_nothing_destructive(
    small: RunningSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "c.toml"
    await discover_check_verify(small, out)
    text = out.read_text().replace("/var/lib/syncd/state.sqlite3", f"{tmp_path}/s.db")
    cfg = config_mod.parse(text)
    monkeypatch.setenv("SYNCD_CLIENT_SECRET", "demo-secret")
    async with runner.open_engine(cfg) as asm:
        await asm.engine.start(recover=False)
        outcome = await asm.engine.run_once(dry_run=True)
    assert outcome is not None
    writes = outcome.plan.writes
    # Only route reorders, each keeping exactly the trunks the route has: no campaign line
    # count, no trunk property, no trunk added or dropped. In the small org that is the one
    # route listing two trunks in the opposite order to the site's default route.
    assert [w.kind for w in writes] == [model.WriteKind.ROUTE_ORDER]
    for w in writes:
        assert isinstance(w.before, tuple)
        assert isinstance(w.after, tuple)
        assert sorted(w.before) == sorted(w.after)
        assert w.object_name == "Site 001 International"


async def test_once_and_verify_point_demo_toml_at_a_simulator_on_another_port(
    small: RunningSim, tmp_path: Path
) -> None:
    cfg = demo_toml(tmp_path)
    assert f":{small.port}" not in cfg.read_text()
    urls = ("--api-url", small.base_url)
    code, out, err = await syncd("once", "-c", str(cfg), "--dry-run", *urls)
    assert code == 0, err
    assert out.splitlines()[0].startswith("group apac: ")
    assert all(len(line) <= 100 for line in out.splitlines())
    code, out, err = await syncd("verify", "-c", str(cfg), *urls)
    assert code == 0, out + err
    assert f"at 127.0.0.1:{small.port}" in out
    assert (
        "ok         permission for campaign line counts (write): outbound:campaign:edit"
        " (roles 'demo-client role')"
    ) in out


async def test_verify_reads_the_write_permissions_from_the_clients_roles(
    small: RunningSim, tmp_path: Path
) -> None:
    cfg = demo_toml(tmp_path)
    everything = small.sim.client_permissions("demo-client")
    # The role lacks the campaign write: a problem, named with what to do.
    small.sim.set_permissions(
        "demo-client", [p for p in everything if p != "outbound:campaign:edit"]
    )
    code, out, _ = await syncd("verify", "-c", str(cfg), "--api-url", small.base_url)
    assert code == 1
    assert [line for line in out.splitlines() if line.startswith("PROBLEM")] == [
        "PROBLEM    permission for campaign line counts (write): no role of client demo-client"
        " ('demo-client role') grants outbound:campaign:edit: add it to the client's role"
    ]
    # A client that may not read its own roles: the writes are unverified, not a problem.
    small.sim.set_permissions("demo-client", [p for p in everything if p != "oauth:client:view"])
    code, out, _ = await syncd("verify", "-c", str(cfg), "--api-url", small.base_url)
    assert code == 0, out
    assert (
        "unverified write permissions: the client's roles are not readable (give it"
        " oauth:client:view and authorization:role:view to check them here); check by hand:"
        " trunk bases and routes (read and write): telephony:plugin:all; campaign line counts"
        " (write): outbound:campaign:edit"
    ) in out


def test_a_wildcard_grant_covers_a_permission() -> None:
    grants = frozenset({"telephony:*:*", "outbound:campaign:view"})
    assert verify.granted("telephony:plugin:all", grants)
    assert verify.granted("outbound:campaign:view", grants)
    assert not verify.granted("outbound:campaign:edit", grants)


async def test_discover_reuses_a_configurations_org_section(
    small: RunningSim, tmp_path: Path
) -> None:
    cfg = tmp_path / "demo.toml"
    cfg.write_text(DEMO.read_text())
    out = tmp_path / "c.toml"
    code, _, err = await syncd(
        "discover", "-c", str(cfg), "--api-url", small.base_url, "-o", str(out)
    )
    assert code == 0, err
    org = config_mod.load(out).org
    assert (org.client_id, org.secret_env, org.api_base) == (
        "demo-client",
        "SYNCD_CLIENT_SECRET",
        small.base_url,
    )


async def test_discover_says_what_is_missing(tmp_path: Path) -> None:
    code, _, err = await syncd("discover", "-o", str(tmp_path / "c.toml"))
    assert code == 78
    assert err.splitlines() == [
        "syncd discover: --client-id is required (or -c FILE)",
        "syncd discover: --region or --api-url is required (or -c FILE)",
    ]
    assert not (tmp_path / "c.toml").exists()
    code, _, err = await syncd(
        "discover", "--client-id", "x", "--region", "eu_west_1", env={"SYNCD_CLIENT_SECRET": ""}
    )
    assert code == 78
    assert "environment variable SYNCD_CLIENT_SECRET is not set" in err


async def test_verify_reports_the_orgs_rate_limit_and_its_own_request_count(
    small: RunningSim, tmp_path: Path
) -> None:
    cfg = demo_toml(tmp_path)
    small.sim.set_ratelimit(quota=180)  # the org's limit, below the configured 300
    before = api_requests(small)
    code, out, err = await syncd("verify", "-c", str(cfg), "--api-url", small.base_url)
    assert code == 0, out + err
    spent = api_requests(small) - before  # the simulator's own count
    assert re.fullmatch(
        rf"syncd verify: no problems in \d+ check\(s\), {spent} API request\(s\) sent",
        out.splitlines()[-1],
    ), out
    assert (
        "ok         org rate limit (platform.api): The org's rate limit per token"
        " (client.credentials.token.rate.per.minute) is 180 requests per minute, below the"
        " configured rate_limit.requests_per_minute (300 per minute); syncd paces each token at"
        " 180 per minute\n"
    ) in out
    assert "rate-limit headers: allowed 180, count 1, reset 60 (syncd paces at 180/min" in out
    # An org that does not let the client read its limits: unverified (with the reason), not
    # a problem.
    small.sim.set_ratelimit(limits_status=403)
    code, out, err = await syncd("verify", "-c", str(cfg), "--api-url", small.base_url)
    assert code == 0, out + err
    assert (
        "unverified org rate limit (platform.api): The org's rate limit per token"
        " (client.credentials.token.rate.per.minute) is unknown (GET"
        " /api/v2/organizations/limits/namespaces/{namespaceName} answered 403: You are not"
        " authorized to perform the requested action.); syncd paces each token at the configured"
        " 300 per minute\n"
    ) in out
