"""429s match the models' predictions exactly, with Retry-After and the normalized body."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp
import pytest
from sim_helpers import Client, FakeClock, W

from syncd.sim import RunningSim, ratelimit
from syncd.sim.ratelimit import (
    CountsRejected,
    FixedWindow,
    TokenBucket,
    optimal_duration,
    predict_rejections,
)

PATH = f"{W}/businessunits"


async def _burst(client: Client, n: int) -> list[tuple[int, Any, Any]]:
    # Concurrent requests on one token, the way a naive client would fan out.
    return list(await asyncio.gather(*(client.call("GET", PATH) for _ in range(n))))


def _assert_429(body: dict[str, Any], headers: Any) -> int:
    retry_after = int(headers["Retry-After"])
    assert retry_after >= 1
    assert body == {
        "message": f"Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds",
        "code": "too.many.requests.retry.after",
        "status": 429,
        "contextId": headers["ININ-Correlation-Id"],
        "details": [],
        "errors": [],
    }
    return retry_after


@pytest.mark.parametrize(
    ("model", "retry_after"),
    [("fixed-window", 60), ("token-bucket", 1), ("counts-rejected", 60)],
)
async def test_burst_of_400_gets_exactly_the_predicted_429s(
    client: Client, running: RunningSim, model: Any, retry_after: int
) -> None:
    """The must-show: default quota 300/60 s, one token, 400 requests at once."""
    running.sim.set_ratelimit(model=model)
    results = await _burst(client, 400)
    rejected = [(body, headers) for status, body, headers in results if status == 429]
    expected = predict_rejections(model, 300, 60.0, [(0.0, 400)])
    assert expected == 100
    assert len(rejected) == expected
    assert sum(1 for status, _, _ in results if status == 200) == 300
    for body, headers in rejected:
        # Fake clock: for the window models the whole window is still ahead; the bucket
        # gets a token back every 0.2 s.
        assert _assert_429(body, headers) == retry_after
        assert headers["inin-ratelimit-allowed"] == "300"
    assert running.sim.counters.total_429 == 100


async def test_fixed_window_reopens_after_the_window(client: Client, clock: FakeClock) -> None:
    await _burst(client, 310)
    clock.advance(59.5)
    status, body, headers = await client.call("GET", PATH)
    assert status == 429
    assert _assert_429(body, headers) == 1  # ceil(0.5), never 0
    clock.advance(0.5)
    status, _, headers = await client.call("GET", PATH)
    assert status == 200
    assert headers["inin-ratelimit-count"] == "1"


async def test_token_bucket_matches_prediction(
    client: Client, clock: FakeClock, running: RunningSim
) -> None:
    running.sim.set_ratelimit(model="token-bucket")
    bursts = [(0.0, 400), (10.0, 60), (30.0, 150)]
    got = 0
    last = 0.0
    retry_afters = set()
    for at, n in bursts:
        clock.advance(at - last)
        last = at
        for status, body, headers in await _burst(client, n):
            if status == 429:
                got += 1
                retry_afters.add(_assert_429(body, headers))
    # 400-300 = 100; +50 tokens by t=10 -> 10 rejected; +100 by t=30 -> 50 rejected.
    assert got == predict_rejections("token-bucket", 300, 60.0, bursts) == 160
    assert retry_afters == {1}  # one token comes back every 0.2 s


async def test_counts_rejected_matches_prediction(
    client: Client, clock: FakeClock, running: RunningSim
) -> None:
    running.sim.set_ratelimit(model="counts-rejected")
    bursts = [(0.0, 400), (60.0, 300), (120.0, 300)]
    got = 0
    last = 0.0
    for at, n in bursts:
        clock.advance(at - last)
        last = at
        got += sum(1 for status, _, _ in await _burst(client, n) if status == 429)
    # Window 0: 100 rejected -> window 1 starts 100 used: 200 admitted, 100 rejected -> again.
    assert got == predict_rejections("counts-rejected", 300, 60.0, bursts) == 300
    assert predict_rejections("fixed-window", 300, 60.0, bursts) == 100


async def test_counts_rejected_retry_after_covers_a_debt_that_fills_the_next_window(
    client: Client, running: RunningSim
) -> None:
    running.sim.set_ratelimit(model="counts-rejected", quota=5, window_s=10.0)
    statuses = [(s, h) for s, _, h in await _burst(client, 5 + 5)]
    retry = sorted(int(h["Retry-After"]) for s, h in statuses if s == 429)
    # Debts 1..4 leave room in the next window (wait 10 s); debt 5 fills it (wait 20 s).
    assert retry == [10, 10, 10, 10, 20]


async def test_headers_count_and_can_be_switched_off(client: Client, running: RunningSim) -> None:
    _, _, headers = await client.call("GET", PATH)
    _, _, headers = await client.call("GET", PATH)
    assert headers["inin-ratelimit-count"] == "2"
    assert headers["inin-ratelimit-allowed"] == "300"
    assert headers["inin-ratelimit-reset"] == "60"
    status, _ = await client.control("POST", "ratelimit", {"headers": False})
    assert status == 200
    _, _, headers = await client.call("GET", PATH)
    assert "inin-ratelimit-count" not in headers
    assert "ININ-Correlation-Id" in headers


async def test_tokens_have_separate_budgets_and_oauth_is_free(
    client: Client, running: RunningSim
) -> None:
    running.sim.set_ratelimit(quota=3)
    for _ in range(5):  # token requests do not count against any quota
        await client.login()
    second = client.token
    statuses = [s for s, _, _ in await _burst(client, 4)]
    assert statuses.count(429) == 1
    async with aiohttp.ClientSession() as session:
        other = Client(running, session)
        await other.login()
        assert other.token != second
        assert [s for s, _, _ in await _burst(other, 3)] == [200, 200, 200]


def test_models_agree_with_predictions_over_many_bursts() -> None:
    bursts = [(0.0, 10), (0.5, 3), (1.0, 12), (2.5, 7), (3.0, 30), (5.2, 1), (6.0, 9)]
    for name, cls in (
        ("fixed-window", FixedWindow),
        ("token-bucket", TokenBucket),
        ("counts-rejected", CountsRejected),
    ):
        model = cls(8, 1.0)
        rejected = sum(1 for t, n in bursts for _ in range(n) if not model.hit(t).admitted)
        assert rejected == predict_rejections(name, 8, 1.0, bursts), name  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "n", "expected"),
    [("fixed-window", 300, 0.0), ("fixed-window", 301, 60.0), ("fixed-window", 900, 120.0),
     ("token-bucket", 300, 0.0), ("token-bucket", 600, 60.0), ("counts-rejected", 1000, 180.0)],
)  # fmt: skip
def test_optimal_duration(model: Any, n: int, expected: float) -> None:
    assert optimal_duration(model, n, 300, 60.0) == pytest.approx(expected)


def test_429_message_shape_is_exact() -> None:
    assert re.fullmatch(
        r"Rate limit exceeded the maximum\. Retry the request in \[\d+\] seconds",
        "Rate limit exceeded the maximum. Retry the request in [42] seconds",
    )


def test_tokens_of_one_client_share_its_budget_when_so_configured() -> None:
    shared = ratelimit.Budgets("fixed-window", 3, 60.0, per="client")
    own = ratelimit.Budgets("fixed-window", 3, 60.0, per="token")
    for budgets, admitted in ((shared, 3), (own, 4)):
        got = [
            budgets.hit(0.0, token=tok, client_id="c", method="GET", route="/api/v2/x").admitted
            for tok in ("a", "b", "a", "b")
        ]
        assert sum(got) == admitted


def test_an_endpoint_limit_refuses_without_spending_the_main_budget() -> None:
    budgets = ratelimit.Budgets(
        "fixed-window", 5, 60.0, endpoint_limits=[("PATCH", "/api/v2/outbound/campaigns", 2)]
    )

    def hit(method: str, route: str) -> ratelimit.Decision:
        return budgets.hit(0.0, token="t", client_id="c", method=method, route=route)

    camp = "/api/v2/outbound/campaigns/{campaignId}"
    first = hit("PATCH", camp)
    assert first.admitted
    assert (first.count, first.allowed) == (1, 2)  # the tighter limit speaks in the headers
    assert hit("PATCH", camp).admitted
    refused = hit("PATCH", camp)
    assert not refused.admitted
    assert refused.retry_after == 60
    assert hit("GET", camp).admitted  # another method is not in the family
    # 3 of the main 5 were spent (the refused PATCH was not): 2 more get through.
    assert [hit("GET", "/api/v2/x").admitted for _ in range(3)] == [True, True, False]


async def test_a_client_wide_quota_is_shared_by_every_token_of_the_client() -> None:
    from syncd.sim import SimOptions
    from syncd.sim.org import generate
    from syncd.sim.state import Sim

    sim = Sim(
        generate("small", 1),
        SimOptions(quota=2, window_s=60.0, ratelimit_per="client", clock=lambda: 5.0),
    )
    issued_a = sim.issue_token("demo-client", "demo-secret")
    issued_b = sim.issue_token("demo-client", "demo-secret")
    assert issued_a is not None
    assert issued_b is not None
    a, b = issued_a[0], issued_b[0]
    assert sim.hit(a).admitted
    assert sim.hit(b).admitted
    assert not sim.hit(a).admitted  # the third request of the client, whichever token
    assert not sim.hit(b).admitted
