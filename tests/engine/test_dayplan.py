"""``syncd plan``: the day's timeline per group from live reads (the simulator on loopback)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import orjson
import pytest

from syncd import cli, config, demo
from syncd.core import forecast, model
from syncd.engine import dayplan, runner, state
from syncd.sim import RunningSim, start_sim


def _config_file(running: RunningSim, tmp_path: Path) -> Path:
    text = demo.DEMO_CONFIG.read_text()
    text = text.replace("http://127.0.0.1:8787", running.base_url)
    text = text.replace("/tmp/syncd-demo/state.sqlite3", str(tmp_path / "state.sqlite3"))
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


async def _plan(
    path: Path, capsys: pytest.CaptureFixture[str], *, day: dt.date | None, as_json: bool
) -> str:
    code = await dayplan.run_plan(str(path), day=day, as_json=as_json)
    out = capsys.readouterr().out
    assert code == 0, out
    return out


async def test_plan_prints_the_whole_local_day_from_live_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNCD_CLIENT_SECRET", "demo-secret")
    running = await start_sim(org="small", seed=1)
    try:
        path = _config_file(running, tmp_path)
        doc = orjson.loads(await _plan(path, capsys, day=None, as_json=True))
        groups: list[dict[str, Any]] = doc["groups"]
        assert [g["name"] for g in groups] == ["apac", "americas"]
        for g in groups:
            assert g["day"] == forecast.local_date(int(g["now"]), g["time_zone"]).isoformat()
            assert len(g["intervals"]) == g["day_hours"] * 4
            assert g["intervals"][0]["local"] == "00:00"
            # Read from local midnight: the whole day is forecast, the morning included.
            assert all(iv["fte"] is not None for iv in g["intervals"])
            assert any(iv["lines"] > 2 for iv in g["intervals"])
            assert {iv["capacity"] for iv in g["intervals"]} == {
                160 if g["name"] == "apac" else 140
            }
        # Read only: nothing was written to the org.
        assert not [
            e
            for e in running.sim.log
            if e.method in ("PUT", "PATCH", "POST")
            and "agentschedules/query" not in e.route
            and "oauth" not in e.route
        ]

        table = await _plan(path, capsys, day=None, as_json=False)
        blocks = table.strip().split("\n\n")
        assert len(blocks) == 2
        for block, g in zip(blocks, groups, strict=True):
            lines = block.splitlines()
            assert lines[0].startswith(f"{g['name']} · {g['time_zone']} · ")
            assert lines[1].split() == [
                "time",
                "FTE",
                "lines",
                "capacity",
                "short",
                "top",
                "trunks",
            ]
            rows = lines[2:]
            assert rows[0].strip().startswith("00:00–")
            assert rows[-1].split()[0].endswith("–00:00")
            assert sum(1 for r in rows if r.split()[1] == "*") == 1  # now
            # Runs of equal intervals are folded: fewer rows than intervals.
            assert len(rows) < len(g["intervals"])

        tomorrow = dt.date.fromisoformat(groups[0]["day"]) + dt.timedelta(days=1)
        later = orjson.loads(await _plan(path, capsys, day=tomorrow, as_json=True))
        for g in later["groups"]:
            assert g["day"] == tomorrow.isoformat()
            assert g["now"] is None
            assert all(iv["fte"] is not None for iv in g["intervals"])
    finally:
        await running.close()


def _contents(store: state.StateStore) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table of the state file (what a reader must leave as it was)."""
    db = store._db
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}  # noqa: S608 - table names from sqlite_master


async def test_readers_beside_the_daemon_never_write_its_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `syncd plan` and `syncd once --dry-run` run beside the daemon on its state file: their
    # health poll sees a trunk fail (which a writer saves as failover state) and they read the
    # schedules (whose fingerprints a writer saves), yet the daemon's file stays as it was.
    monkeypatch.setenv("SYNCD_CLIENT_SECRET", "demo-secret")
    running = await start_sim(org="small", seed=1)
    try:
        path = _config_file(running, tmp_path)
        cfg = config.load(path)
        daemon = state.StateStore(cfg.state_path, writer=True)  # the daemon holds the file
        try:
            tb = cfg.groups[0].trunks[0].trunk_base_id
            daemon.save_health(
                [
                    model.TrunkHealth(
                        trunk_base_id=tb, state=model.HealthState.HEALTHY, since=1, failovers=0
                    )
                ]
            )
            daemon.set_fingerprint("schedule:daemon", "v1", now=1.0)
            before = _contents(daemon)
            running.sim.fail_trunk(tb)

            await _plan(path, capsys, day=None, as_json=True)
            assert _contents(daemon) == before
            assert await runner.run_once(str(path), dry_run=True, as_json=True) == 0
            capsys.readouterr()
            assert _contents(daemon) == before
        finally:
            daemon.close()
    finally:
        await running.close()


async def test_once_with_an_unreadable_campaign_listing_prints_the_plan_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The routes are planned (a failover would be written), the line counts held; a script
    # running `syncd once` learns from the exit code and stderr that the pass was partial.
    monkeypatch.setenv("SYNCD_CLIENT_SECRET", "demo-secret")
    running = await start_sim(org="small", seed=1)
    try:
        path = _config_file(running, tmp_path)
        running.sim.set_faults(
            {"error_5xx_rate": 1.0, "routes": ["/api/v2/outbound/campaigns"], "methods": ["GET"]}
        )
        assert await runner.run_once(str(path), dry_run=True, as_json=True) == 1
        out, err = capsys.readouterr()
        plan = orjson.loads(out)
        assert {h["group"] for h in plan["held"]} == {"apac", "americas"}
        assert "the campaign listing could not be read; what it feeds is held" in err
    finally:
        await running.close()


async def test_plan_with_a_bad_configuration_exits_78(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[org]\nregion = 1\n")
    assert await dayplan.run_plan(str(bad), day=None, as_json=False) == 78
    assert "org.region" in capsys.readouterr().err
    assert await dayplan.run_plan(str(tmp_path / "none.toml"), day=None, as_json=False) == 78


def test_plan_day_must_be_a_date(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["plan", "-c", "x.toml", "--day", "monday"])
    assert exc.value.code == 2
    assert "--day 'monday': give a date as YYYY-MM-DD" in capsys.readouterr().err
    ns = cli.build_parser().parse_args(["plan", "-c", "x.toml", "--day", "2026-03-08", "--json"])
    assert (ns.day, ns.json) == (dt.date(2026, 3, 8), True)
