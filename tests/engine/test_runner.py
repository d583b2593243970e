"""The assembly of ``runner.open_engine``: a reload re-initialises the metrics' label sets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

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


async def test_the_daemon_paces_by_the_orgs_lower_limit_read_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from syncd.genesys import api

    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        running.sim.set_ratelimit(quota=180)  # the org's limit: 180 a minute, 300 configured
        assert asm.cfg.rate_limit.requests_per_minute == 300
        with caplog.at_level(logging.WARNING, logger="syncd.engine.limits"):
            await asm.engine.start()
        assert asm.engine.waiting_for() is None  # the first health read went through
        assert asm.transport.limiter.config.quota == 180
        assert [p.config.quota for p in asm.transport.limiter.pacers] == [180]
        # Read before anything else, so that every other read is paced by it.
        first = next(e for e in running.sim.log if e.route.startswith("/api/v2/"))
        assert (first.route, first.status) == (api.LIMITS, 200)
        assert 'syncd_api_quota_requests_per_minute{token="pool-0"} 180.0' in (
            asm.metrics.render().decode()
        )
        assert asm.metrics.api_spend()["tokens"][0]["quota_per_minute"] == 180
        assert [r.getMessage() for r in caplog.records if r.name == "syncd.engine.limits"] == [
            "The org's rate limit per token (client.credentials.token.rate.per.minute) is 180"
            " requests per minute, below the configured rate_limit.requests_per_minute (300 per"
            " minute); syncd paces each token at 180 per minute."
        ]
        # A reload re-initialises the metrics: the gauge keeps what the limiter paces by.
        asm.engine.apply_config(asm.cfg.model_copy(update={"groups": asm.cfg.groups[:1]}))
        assert 'syncd_api_quota_requests_per_minute{token="pool-0"} 180.0' in (
            asm.metrics.render().decode()
        )


async def test_the_daemon_starts_when_the_org_limit_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        running.sim.set_ratelimit(quota=180, limits_status=403)
        await asm.engine.start()
        assert asm.engine.waiting_for() is None
        assert asm.transport.limiter.config.quota == 300  # unknown: the configured quota
        assert 'syncd_api_quota_requests_per_minute{token="pool-0"} 300.0' in (
            asm.metrics.render().decode()
        )


async def test_replicas_share_a_budget_lowered_to_the_orgs_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: Any
) -> None:
    from engine_sim import sim_config

    from syncd.engine import runner
    from syncd.sim import start_sim

    monkeypatch.setenv("SYNCD_CLIENT_SECRET", "demo-secret")
    running = await start_sim(org="small", seed=1)
    try:
        cfg = sim_config(running, tmp_path)
        cfg = cfg.model_copy(
            update={
                "coordination": cfg.coordination.model_copy(
                    update={"backend": "redis", "url": redis_server.url}
                )
            }
        )
        running.sim.set_ratelimit(quota=180)
        async with runner.open_engine(cfg) as asm:
            assert asm.coordinator is not None
            before = asm.coordinator.budget
            assert (before.quota, before.window_s, before.burst) == (300, 60.0, 30)
            await asm.engine.start()
            after = asm.coordinator.budget
            assert (after.quota, after.window_s, after.burst) == (180, 60.0, 18)
            assert asm.transport.limiter.config.quota == 180
    finally:
        await running.close()


@pytest.mark.parametrize(
    ("org_per_minute", "burst", "expected"),
    [
        (None, None, (300, 30)),  # unknown: as configured
        (600, None, (300, 30)),  # higher: never raised
        (300, None, (300, 30)),
        (180, None, (180, 18)),  # a tenth of the lowered quota
        (180, 50, (180, 50)),  # a configured burst that still fits is kept
        (30, 50, (30, 28)),  # one that no longer fits stays below the quota minus one
    ],
)
def test_the_shared_budget_follows_a_lower_org_limit(
    org_per_minute: int | None, burst: int | None, expected: tuple[int, int]
) -> None:
    from syncd.core import pacing
    from syncd.engine import coordination, limits

    settings = coordination.BudgetSettings(quota=300, window_s=60.0, burst=30)
    choice = pacing.QuotaChoice(configured=300, window_s=60.0, org_per_minute=org_per_minute)
    got = limits.shared_budget(settings, choice, burst=burst)
    assert (got.quota, got.burst, got.window_s) == (*expected, 60.0)
