"""The org limits API over real HTTP on loopback: the typed call (good, malformed, refused) and
the limiter pacing by a lower limit it read from the simulator."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from conftest import Env, Factory

from syncd import errors
from syncd.core import model, pacing
from syncd.engine import limits
from syncd.genesys import api
from syncd.sim import routes_telephony

KEY = pacing.TOKEN_LIMIT_KEY


def _limit_reads(env: Env) -> list[int]:
    """Statuses of the limits reads in the simulator's request log."""
    return [e.status for e in env.running.sim.log if e.route == api.LIMITS]


async def test_the_effective_limits_are_read_per_minute(make_env: Factory) -> None:
    # A time-scaled server, 45 per 0.5 s window: 5400 a minute, as the limits API says.
    env = await make_env(quota=45, window_s=0.5)
    got = await env.api.namespace_limits("platform.api")
    assert got.namespace == "platform.api"
    assert got.unknown_reason == ""
    assert got.limits is not None
    assert model.Limit(namespace="platform.api", key=KEY, value=5400) in got.limits
    assert got.value(KEY) == 5400
    assert got.value("no.such.key") is None
    assert _limit_reads(env) == [200]


async def test_a_malformed_limits_answer_is_an_error_naming_the_entry_and_field(
    make_env: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def wrong(sim: Any, namespace: str, defaults: bool) -> Any:
        return {"entities": [{"key": KEY, "namespace": namespace, "value": "300"}]}

    monkeypatch.setattr(routes_telephony, "_limits", wrong)
    env = await make_env()
    with pytest.raises(errors.MalformedResponse) as info:
        await env.api.namespace_limits("platform.api")
    assert str(info.value) == (
        "GET /api/v2/organizations/limits/namespaces/{namespaceName} answered with an unexpected"
        " body: limits of platform.api.entities[0].value: expected an integer, got str"
    )
    assert info.value.endpoint == api.LIMITS


@pytest.mark.parametrize("status", [403, 404])
async def test_a_refused_limits_read_is_unknown_not_a_failure(
    make_env: Factory, status: int
) -> None:
    env = await make_env()
    env.running.sim.set_ratelimit(limits_status=status)
    got = await env.api.namespace_limits("platform.api")
    assert got.limits is None
    assert got.value(KEY) is None
    assert f"answered {status}" in got.unknown_reason
    assert _limit_reads(env) == [status]
    # The daemon's start keeps the configured quota and says why.
    choice = await limits.adopt_org_limit(
        env.api, env.transport.limiter, configured=300, window_s=60.0
    )
    assert (choice.quota, choice.org_per_minute) == (300, None)
    assert f"answered {status}" in choice.sentence()
    assert env.transport.limiter.config.quota == 300


async def _drain(env: Env, n: int) -> None:
    """``n`` trunk-base reads by 8 workers, as the write benchmark sends its backlog."""
    ids = list(env.running.sim.org.trunk_bases)
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            await env.api.get_trunk_base(ids[i % len(ids)])

    await asyncio.gather(*(worker() for _ in range(8)))


async def test_the_limiter_paces_by_a_lower_limit_it_read(
    make_env: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    """Told 50 per window, the server allows 30 (a token bucket, no headers): read at start,
    the lower limit costs no 429; a control client that does not read it is refused."""
    told = await make_env(rate_model="token-bucket", quota=30, window_s=1.0, headers=False,
                          client_quota=50)  # fmt: skip
    await _drain(told, 120)
    assert told.running.sim.counters.total_429 >= 1  # learning 30 the hard way

    env = await make_env(rate_model="token-bucket", quota=30, window_s=1.0, headers=False,
                         client_quota=50)  # fmt: skip
    quotas: list[int] = []
    with caplog.at_level(logging.INFO, logger=limits.__name__):
        choice = await limits.adopt_org_limit(
            env.api, env.transport.limiter, configured=50, window_s=1.0, on_quota=quotas.append
        )
    assert (choice.org_per_minute, choice.quota) == (1800, 30)
    assert quotas == [30]
    assert env.transport.limiter.config.quota == 30
    assert [p.config.quota for p in env.transport.limiter.pacers] == [30]
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == limits.__name__]
    assert said == [("WARNING", choice.sentence())]
    await _drain(env, 120)
    sim = env.running.sim
    assert sim.counters.total_429 == 0
    assert next(e.route for e in sim.log if e.route.startswith("/api/v2/")) == api.LIMITS
    assert sum(1 for e in sim.log if e.route == api.TRUNK_BASE and e.status == 200) == 120


async def test_a_higher_limit_read_keeps_the_configured_quota(make_env: Factory) -> None:
    env = await make_env(quota=600, client_quota=300)
    choice = await limits.adopt_org_limit(
        env.api, env.transport.limiter, configured=300, window_s=60.0
    )
    assert (choice.org_per_minute, choice.quota) == (600, 300)
    assert env.transport.limiter.config.quota == 300
    assert "raise it to spend more" in choice.sentence()
