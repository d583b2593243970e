"""Metrics: own registry, observer methods, pre-created label sets, promtool-clean exposition."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import aiohttp
import prometheus_client
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from syncd.core import pacing
from syncd.obs import metrics as metrics_mod


@dataclass(frozen=True)
class Event:
    endpoint: str
    method: str
    status: int
    duration_s: float
    retry_after_s: float | None
    token: str
    request_id: str


def _configured() -> metrics_mod.Metrics:
    m = metrics_mod.Metrics(version="1.2.3", now=1000.0)
    m.configure(
        groups={"east": ["carrier-a", "carrier-b"], "west": ["carrier-c"]},
        business_units=["bu-1"],
        tokens=["0", "1"],
        kinds=["route_order", "campaign_lines"],
        endpoints=[
            ("GET", "/api/v2/outbound/campaigns"),
            ("patch", "/api/v2/outbound/campaigns/{id}"),
        ],
        quota_per_minute=300,
        max_retry_after_s=60,
    )
    return m


def _samples(m: metrics_mod.Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(m: metrics_mod.Metrics, name: str, **labels: str) -> float | None:
    return _samples(m).get((name, frozenset(labels.items())))


def test_the_retry_budget_classes_are_the_transports() -> None:
    # obs imports nothing of syncd, so it names the classes itself: they must stay the same.
    assert tuple(c.value for c in pacing.RetryClass) == metrics_mod.RETRY_CLASSES


def test_each_instance_has_its_own_registry() -> None:
    a, b = metrics_mod.Metrics(), metrics_mod.Metrics()
    a.on_retry("timeout")
    assert _value(a, "syncd_retries_total", reason="timeout") == 1
    assert _value(b, "syncd_retries_total", reason="timeout") is None
    global_text = prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()
    assert "syncd_" not in global_text


def test_configure_precreates_series_so_rates_are_zero_not_absent() -> None:
    m = _configured()
    assert _value(m, "syncd_api_rate_limited_total", endpoint="/api/v2/outbound/campaigns") == 0
    assert _value(m, "syncd_writes_total", kind="route_order", outcome="failed") == 0
    assert _value(m, "syncd_version_conflicts_total", kind="campaign_lines") == 0
    assert _value(m, "syncd_trunk_failover_events_total", group="east", trunk="carrier-b") == 0
    assert _value(m, "syncd_trunk_healthy", group="west", trunk="carrier-c") == 1
    assert _value(m, "syncd_trunks_in_failover", group="west") == 0
    assert _value(m, "syncd_api_quota_requests_per_minute", token="1") == 300
    assert _value(m, "syncd_ratelimit_budget_remaining", token="1") == 300
    assert _value(m, "syncd_ratelimit_paused", token="0") == 0
    assert _value(m, "syncd_api_retry_after_max_seconds") == 60
    assert _value(m, "syncd_schedule_snapshot_age_seconds", business_unit="bu-1") == 0
    assert _value(m, "syncd_build_info", version="1.2.3") == 1
    assert _value(m, "syncd_config_last_reload_successful") == 1
    assert _value(m, "syncd_config_last_reload_success_timestamp_seconds") == 1000
    assert (
        _value(
            m,
            "syncd_api_request_duration_seconds_count",
            endpoint="/api/v2/outbound/campaigns/{id}",
            method="PATCH",
        )
        == 0
    )


def test_on_request_counts_429s_and_never_labels_ids() -> None:
    m = _configured()
    rid = "req-5f0c1b2e-aaaa-bbbb-cccc-1234567890ab"
    m.on_request(
        Event(
            endpoint="/api/v2/outbound/campaigns/5f0c1b2e-aaaa-bbbb-cccc-1234567890ab?x=1",
            method="patch",
            status=429,
            duration_s=0.2,
            retry_after_s=7.0,
            token="0",
            request_id=rid,
        )
    )
    m.on_request(Event("/api/v2/outbound/campaigns", "GET", 200, 0.05, None, "1", rid))
    m.on_request(Event("/api/v2/outbound/campaigns", "GET", 0, 10.0, None, "1", rid))
    m.on_request(Event("/api/v2/outbound/campaigns", "GET", 429, 0.01, None, "1", rid))
    text = m.render().decode()
    assert rid not in text
    assert "5f0c1b2e" not in text
    ep = "/api/v2/outbound/campaigns/{id}"
    assert _value(m, "syncd_api_requests_total", endpoint=ep, method="PATCH", code="429") == 1
    assert _value(m, "syncd_api_rate_limited_total", endpoint=ep) == 1
    assert _value(m, "syncd_api_rate_limited_total", endpoint="/api/v2/outbound/campaigns") == 1
    assert (
        _value(
            m,
            "syncd_api_requests_total",
            endpoint="/api/v2/outbound/campaigns",
            method="GET",
            code="none",
        )
        == 1
    )
    # Only 429s that carry a Retry-After feed the histogram.
    assert _value(m, "syncd_api_retry_after_seconds_count") == 1
    assert _value(m, "syncd_api_retry_after_seconds_sum") == 7
    assert _value(m, "syncd_api_retry_after_seconds_bucket", le="5.0") == 0
    assert _value(m, "syncd_api_retry_after_seconds_bucket", le="10.0") == 1
    assert _value(m, "syncd_api_token_requests_total", token="0") == 1
    assert _value(m, "syncd_api_token_requests_total", token="1") == 3


def test_limiter_and_retry_observers() -> None:
    m = _configured()
    m.on_wait("0", 0.3)
    m.on_pause("0", True)
    m.on_budget("1", 42)
    m.on_retry("server_error")
    m.on_retry("server_error")
    m.on_retry_budget_exhausted("failover")
    m.on_retry_after_too_long("/api/v2/outbound/campaigns/123", 900.0)
    m.on_queue_depth(17)
    assert _value(m, "syncd_ratelimit_wait_seconds_count", token="0") == 1
    assert _value(m, "syncd_ratelimit_wait_seconds_bucket", token="0", le="0.5") == 1
    assert _value(m, "syncd_ratelimit_paused", token="0") == 1
    assert _value(m, "syncd_ratelimit_budget_remaining", token="1") == 42
    assert _value(m, "syncd_retries_total", reason="server_error") == 2
    assert _value(m, "syncd_retry_budget_exhausted_total", **{"class": "failover"}) == 1
    # Every class is there from the start (a panel or an alert sees 0, not "no data").
    assert _value(m, "syncd_retry_budget_exhausted_total", **{"class": "routine"}) == 0
    assert _value(m, "syncd_retry_budget_exhausted_total", **{"class": "health"}) == 0
    assert (
        _value(m, "syncd_retry_after_too_long_total", endpoint="/api/v2/outbound/campaigns/{id}")
        == 1
    )
    assert _value(m, "syncd_queue_depth") == 17
    m.on_pause("0", False)
    assert _value(m, "syncd_ratelimit_paused", token="0") == 0


def test_a_bearer_token_passed_as_label_is_hashed() -> None:
    m = _configured()
    bearer = "eyJhbGciOiJSUzI1NiJ9." + "x" * 80
    m.on_wait(bearer, 1.0)
    text = m.render().decode()
    assert bearer not in text
    assert 'token="sha256:' in text


def test_engine_observers() -> None:
    m = _configured()
    m.observe_write("route_order", "applied")
    m.observe_conflict("route_order")
    m.set_plan({"campaign_lines": 3})
    m.observe_group(
        "east",
        staffed_fte=12.5,
        desired_lines=25,
        allocation={"carrier-b": 20},
        shortfall=5,
        healthy={"carrier-a": False, "carrier-b": True},
    )
    m.observe_failover("east", "carrier-a")
    m.set_snapshot_age("bu-1", 90)
    m.observe_reconcile(1.5, ok=True, now=2000.0)
    m.observe_reconcile(0.5, ok=False, now=2100.0)
    assert _value(m, "syncd_writes_total", kind="route_order", outcome="applied") == 1
    assert _value(m, "syncd_version_conflicts_total", kind="route_order") == 1
    assert _value(m, "syncd_plan_writes", kind="campaign_lines") == 3
    assert _value(m, "syncd_plan_writes", kind="route_order") == 0
    assert _value(m, "syncd_staffed_fte", group="east") == 12.5
    assert _value(m, "syncd_desired_lines", group="east") == 25
    assert _value(m, "syncd_capacity_shortfall_lines", group="east") == 5
    assert _value(m, "syncd_allocated_lines", group="east", trunk="carrier-a") == 0
    assert _value(m, "syncd_allocated_lines", group="east", trunk="carrier-b") == 20
    assert _value(m, "syncd_trunk_healthy", group="east", trunk="carrier-a") == 0
    assert _value(m, "syncd_trunks_in_failover", group="east") == 1
    assert _value(m, "syncd_trunk_failover_events_total", group="east", trunk="carrier-a") == 1
    assert _value(m, "syncd_schedule_snapshot_age_seconds", business_unit="bu-1") == 90
    # The failed reconcile does not move the success timestamp.
    assert _value(m, "syncd_last_successful_reconcile_timestamp_seconds") == 2000
    assert _value(m, "syncd_reconciles_total", outcome="error") == 1
    assert _value(m, "syncd_reconcile_duration_seconds_count") == 2
    # A later plan without campaign writes resets that kind to 0.
    m.set_plan({})
    assert _value(m, "syncd_plan_writes", kind="campaign_lines") == 0


def test_reload_observer() -> None:
    m = _configured()
    m.observe_reload(ok=False, now=3000.0)
    assert _value(m, "syncd_config_last_reload_successful") == 0
    assert _value(m, "syncd_config_reload_failures_total") == 1
    assert _value(m, "syncd_config_last_reload_success_timestamp_seconds") == 1000
    m.observe_reload(ok=True, now=3100.0)
    assert _value(m, "syncd_config_last_reload_successful") == 1
    assert _value(m, "syncd_config_last_reload_success_timestamp_seconds") == 3100


def test_reconfigure_drops_gauges_of_removed_groups_trunks_and_tokens() -> None:
    m = _configured()
    m.on_pause("1", True)
    m.configure(
        groups={"east": ["carrier-a"]},
        business_units=[],
        tokens=["0"],
        kinds=["route_order"],
        quota_per_minute=600,
        max_retry_after_s=30,
    )
    assert _value(m, "syncd_trunk_healthy", group="east", trunk="carrier-b") is None
    assert _value(m, "syncd_staffed_fte", group="west") is None
    assert _value(m, "syncd_ratelimit_paused", token="1") is None
    assert _value(m, "syncd_schedule_snapshot_age_seconds", business_unit="bu-1") is None
    assert _value(m, "syncd_plan_writes", kind="campaign_lines") is None
    assert _value(m, "syncd_api_quota_requests_per_minute", token="0") == 600
    assert _value(m, "syncd_api_retry_after_max_seconds") == 30
    assert _value(m, "syncd_trunk_healthy", group="east", trunk="carrier-a") == 1


def test_exposition_has_no_created_series_and_declares_every_family() -> None:
    text = _configured().render().decode()
    assert "_created" not in text
    for name in (
        "syncd_api_requests_total",
        "syncd_api_request_duration_seconds",
        "syncd_ratelimit_wait_seconds",
        "syncd_last_successful_reconcile_timestamp_seconds",
        "syncd_config_reload_failures_total",
    ):
        assert f"# HELP {name} " in text


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)"
)
def test_promtool_check_metrics_is_clean() -> None:
    m = _configured()
    m.on_request(Event("/api/v2/outbound/campaigns", "GET", 429, 0.05, 3.0, "0", "r"))
    m.observe_group("east", 1.0, 2, {"carrier-a": 2}, 0, {"carrier-a": True})
    proc = subprocess.run(
        ["promtool", "check", "metrics"], input=m.render(), capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == b""
    assert proc.stderr.strip() == b""


async def test_make_app_serves_metrics() -> None:
    m = _configured()
    async with TestClient(TestServer(metrics_mod.make_app(m))) as client:
        resp = await client.get("/metrics")
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "syncd_build_info" in await resp.text()


async def test_start_server_binds_loopback() -> None:
    runner = await metrics_mod.start_server(_configured(), port=0)
    try:
        host, port = runner.addresses[0][:2]
        assert host == "127.0.0.1"
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            assert resp.status == 200
    finally:
        await runner.cleanup()
