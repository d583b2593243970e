"""The assembly of ``runner.open_engine``: a reload re-initialises the metrics' label sets."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_sim import sim_and_engine


async def test_a_reload_that_drops_a_group_drops_its_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (_, asm):
        text = asm.metrics.render().decode()
        assert 'syncd_trunk_healthy{group="americas"' in text
        assert 'syncd_writes_total{kind="route_order",outcome="failed"} 0.0' in text
        apac_only = asm.cfg.model_copy(update={"groups": asm.cfg.groups[:1]})
        asm.engine.apply_config(apac_only)
        text = asm.metrics.render().decode()
        # Gauges of the dropped group go (they would show a stale state); counters stay, as
        # the history they count happened.
        assert 'syncd_trunk_healthy{group="americas"' not in text
        assert 'syncd_desired_lines{group="americas"' not in text
        assert 'syncd_trunk_healthy{group="apac"' in text


async def test_a_sighup_during_start_up_is_not_fatal(tmp_path: Path) -> None:
    import signal

    from syncd.engine import runner

    previous = signal.getsignal(signal.SIGHUP)
    try:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        # Start-up stops early here (no such file), after the SIGHUP disposition was set.
        assert await runner.run_daemon(str(tmp_path / "missing.toml")) == runner.EX_CONFIG
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
