"""engine/status.py: the forecast follows schedule, health and configuration changes (not the
clock), failovers are remembered with their reaction time, and the status document says it all.

The engine runs in-process against the simulator on loopback (small org, seed 1).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from engine_sim import sim_and_engine

from syncd.core import forecast, model
from syncd.engine import status


def _gauge(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + ("{" if labels else " ")):
            head, _, value = line.rpartition(" ")
            if not labels or all(f'{k}="{v}"' in head for k, v in labels.items()):
                return float(value)
    raise AssertionError(f"no sample {name}{{{want}}}")


def _capacity_now(doc: dict[str, Any], group: str) -> int:
    g = next(g for g in doc["groups"] if g["name"] == group)
    return int(g["intervals"][-1]["capacity"])


async def test_forecast_is_recomputed_on_changes_not_on_a_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        engine, board = asm.engine, asm.engine.board
        await engine.start()
        assert board.forecast is None  # nothing before the first reconcile
        await engine.run_once(dry_run=False)
        assert board.recomputes == 1
        text = asm.metrics.render().decode()
        assert _gauge(text, "syncd_forecast_computed_timestamp_seconds") > 0
        assert _gauge(text, "syncd_forecast_shortfall_max_lines", group="apac", window="2h") == 0

        # Nothing changed: reconciles, health polls and refreshes do not recompute it.
        await engine.poll_health()
        await engine.refresh_schedules()
        await engine.run_once(dry_run=False)
        assert board.recomputes == 1

        # A trunk fails: the next reconcile recomputes it with that trunk's capacity gone.
        before = board.status({})
        trunk = next(t for t in asm.cfg.groups[0].trunks if t.priority == 1)
        running.sim.fail_trunk(trunk.trunk_base_id)
        assert await engine.poll_health() is True
        await engine.run_once(dry_run=False)
        assert board.recomputes == 2
        after = board.status({})
        assert _capacity_now(after, "apac") == _capacity_now(before, "apac") - trunk.capacity
        assert _capacity_now(after, "americas") == _capacity_now(before, "americas")
        (event,) = after["failovers"]
        assert event["trunk"] == trunk.label
        assert event["group"] == "apac"
        assert event["reaction_s"] is not None
        assert event["reaction_s"] >= 0
        row = next(t for t in after["trunks"] if t["id"] == trunk.trunk_base_id)
        assert (row["state"], row["failovers"], row["lines_now"]) == ("failed", 1, 0)

        # A re-published schedule: recomputed again.
        running.sim.publish_schedule(asm.cfg.schedule.business_units[0], agents=5)
        assert await engine.refresh_schedules() is True
        await engine.run_once(dry_run=False)
        assert board.recomputes == 3

        # A reload: recomputed, and the dropped group's forecast series go with it.
        engine.apply_config(asm.cfg.model_copy(update={"groups": asm.cfg.groups[:1]}))
        await engine.run_once(dry_run=False)
        assert board.recomputes == 4
        assert [g["name"] for g in board.status({})["groups"]] == ["apac"]
        text = asm.metrics.render().decode()
        assert 'syncd_forecast_shortfall_max_lines{group="americas"' not in text
        assert 'syncd_forecast_shortfall_max_lines{group="apac",window="horizon"}' in text


async def test_status_document_covers_the_local_day_of_each_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (_, asm):
        await asm.engine.start()
        await asm.engine.run_once(dry_run=False)
        doc = asm.engine.board.status({})
        assert doc["forecast"]["recomputes"] == 1
        zones = asm.engine.reader.zones()
        for g, spec in zip(doc["groups"], asm.cfg.groups, strict=True):
            assert g["time_zone"] == zones[spec.management_units[0]]
            day = dt.date.fromisoformat(g["day"])
            assert day == forecast.local_date(int(doc["generated_at"]), g["time_zone"])
            assert (g["day_start"], g["day_end"]) == forecast.day_window(day, g["time_zone"])
            assert len(g["intervals"]) == g["day_hours"] * 4
            assert g["intervals"][0]["local"] == "00:00"
            assert g["day_start"] <= g["now"] < g["day_end"]
            # Schedules are fetched from the first refresh on: earlier intervals are unknown,
            # the rest of the day is forecast, lines within the configured bounds.
            known = [iv for iv in g["intervals"] if iv["fte"] is not None]
            assert known
            assert known[-1]["end"] == g["day_end"]
            assert all(spec.min_lines <= iv["lines"] <= spec.max_lines for iv in known)
            assert all(sum(iv["allocation"].values()) <= iv["lines"] for iv in known)
            assert g["next_2h"] == {"shortfall": 0, "start": None, "start_local": None}
        assert len(doc["trunks"]) == sum(len(g.trunks) for g in asm.cfg.groups)
        assert {t["state"] for t in doc["trunks"]} == {"healthy"}
        assert doc["writes"]
        assert {w["outcome"] for w in doc["writes"]} == {"applied"}
        polls = {p["kind"]: p for p in doc["notifications"]["polls"]}
        assert polls["health"]["every_s"] == asm.cfg.health.poll_s
        assert polls["schedules"]["every_s"] == asm.cfg.schedule.refresh_s
        # The demo configuration has a notification channel; nothing runs it here, so it is
        # down and changes are seen by polling.
        assert doc["notifications"]["channel"] == "poll"
        push = doc["notifications"]["push"]
        assert push["up"] is False
        assert push["topics"] >= len(asm.cfg.schedule.business_units)

        # Tomorrow (in the first group's zone) is within the 24 h horizon.
        tomorrow = dt.date.fromisoformat(doc["groups"][0]["day"]) + dt.timedelta(days=1)
        later = asm.engine.board.status({"day": tomorrow.isoformat()})
        assert later["groups"][0]["day"] == tomorrow.isoformat()
        assert later["groups"][0]["now"] is None
        assert later["groups"][0]["intervals"]
        with pytest.raises(ValueError, match="day='tomorrow'"):
            asm.engine.board.status({"day": "tomorrow"})
        # A day beyond the forecast has no intervals, and asking for many such days does not
        # grow what the board keeps between requests.
        kept = len(asm.engine.board._sections)
        for year in range(2030, 2040):
            far = asm.engine.board.status({"day": f"{year}-01-01"})
            assert all(not g["intervals"] for g in far["groups"])
        assert len(asm.engine.board._sections) == kept
        # Repeated requests give the same timelines (the cached part is not mutated).
        assert (
            asm.engine.board.status({})["groups"][0]["intervals"] == doc["groups"][0]["intervals"]
        )


class _Observer:
    def __init__(self) -> None:
        self.forecasts: dict[tuple[str, str], tuple[int, float]] = {}
        self.computed: list[float] = []

    def observe_forecast(self, group: str, window: str, shortfall: int, starts_at: float) -> None:
        self.forecasts[group, window] = (shortfall, starts_at)

    def observe_forecast_computed(self, now: float) -> None:
        self.computed.append(now)


def _inputs() -> status.Inputs:
    from syncd.core import allocation, planner

    group = planner.GroupSpec(
        name="g",
        management_units=("mu",),
        campaigns=(),
        routes=(),
        trunks=(allocation.TrunkSpec(trunk_base_id="tb", capacity=10, priority=1),),
        lines_per_agent=1.0,
        min_lines=0,
        max_lines=100,
    )
    return status.Inputs(
        settings=planner.PlannerSettings(groups=(group,)),
        horizon_s=6 * 3600,
        zones={"g": "Europe/Paris"},
        labels={"tb": "tb-label"},
        names={"tb": "Trunk"},
    )


async def test_summaries_slide_with_time_and_the_window_follows_the_day() -> None:
    """A peak 3 h ahead is outside the 2 h window now, inside it an hour later (the summary
    slides at each reconcile without a recompute); when the day rolls over, a recompute is due."""
    day = dt.date(2026, 6, 1)
    tz = "Europe/Paris"
    start, end = forecast.day_window(day, tz)
    nine = start + 9 * 3600
    agents = tuple(
        model.AgentSchedule(user_id=f"u{i}", activities=((nine + 3 * 3600, 60, "oq"),))
        for i in range(14)
    )
    schedule = model.ManagementUnitSchedule(
        business_unit_id="bu", management_unit_id="mu", start=start, end=end, agents=agents
    )
    observer = _Observer()
    clock = {"now": float(nine)}
    board = status.Board(observer=observer, clock=lambda: clock["now"])  # type: ignore[arg-type]
    await board.recompute(
        _inputs(),
        schedules=(schedule,),
        activity_codes=(model.ActivityCode(id="oq", name="On Queue", category="OnQueueWork"),),
        health_states={},
        now=nine,
    )
    assert observer.forecasts["g", "2h"] == (0, 0)
    assert observer.forecasts["g", "horizon"] == (4, nine + 3 * 3600)
    board.slide(nine + 3600 + 60)
    assert observer.forecasts["g", "2h"] == (4, nine + 3 * 3600)
    assert len(observer.computed) == 1
    assert board.needs_recompute(nine + 3600) is False
    assert board.needs_recompute(end + 60) is True  # tomorrow: the window moved
    board.mark_stale()
    assert board.needs_recompute(nine + 3600) is True

    # The change-detection card: polling, until a notification channel is up.
    assert board.status({})["notifications"]["channel"] == "poll"
    state = {"up": False, "topics": 3}
    board.push_state = lambda: state
    assert board.status({})["notifications"] == {
        "channel": "poll",
        "polls": [],
        "push": {"up": False, "topics": 3},
    }
    state["up"] = True
    assert board.status({})["notifications"]["channel"] == "push"
