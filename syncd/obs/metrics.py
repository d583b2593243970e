"""Prometheus metrics of the daemon: one ``Metrics`` object over its own registry.

Every layer reports through the observer methods of one ``Metrics`` instance (duck-typed: the
HTTP client calls ``on_request``/``on_wait``/…, the engine ``observe_*``/``set_*``), so nothing
outside this module knows metric names or label sets. The registry is private to the instance
(never prometheus_client's global ``REGISTRY``): tests build as many as they like and the
exposition holds exactly what syncd declares, plus the process and platform collectors.

Conventions: ``syncd_`` prefix, base units (seconds, lines), ``_total`` counters, bounded labels
only. Trunk, group, business-unit and token labels come from the configuration, so they are
bounded; request ids, agent ids and object ids never become labels. Endpoint labels are path
templates: ids that slip into a path are folded into ``{id}`` here, as a last line of defence
against a cardinality explosion. ``configure()`` pre-creates the label sets the configuration
declares so that a rate is 0 rather than absent (alerts on absent series never fire).

Must not import anything of syncd (``obs`` is used by all layers and uses none) and must never
raise into a caller: an observer that fails would turn a metric into an outage.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import orjson
from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric

from syncd.obs import statuspage

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_RETRY_REASONS",
    "DEFAULT_WRITE_OUTCOMES",
    "DROP_OUTCOMES",
    "FORECAST_WINDOWS",
    "RETRY_CLASSES",
    "UNEXPECTED_ERROR_SITES",
    "Metrics",
    "RequestEvent",
    "StatusSource",
    "make_app",
    "start_server",
]

DEFAULT_PORT = 9464
# The audit trail's outcomes (engine/state.py); pre-created so "failed" is 0, not absent.
DEFAULT_WRITE_OUTCOMES: tuple[str, ...] = ("applied", "failed", "conflict", "superseded")
# The retry reasons the HTTP client always uses (genesys/transport.py: a 429 waited out, a 401
# answered with a fresh token); pre-created so "Retries by reason" reads 0, not absent, before
# the first retry. Other reasons (a 5xx status, an exception name) appear when they happen.
DEFAULT_RETRY_REASONS: tuple[str, ...] = ("429", "401")
# The classes of work with a retry budget of their own (``core.pacing.RetryClass``; obs imports
# nothing of syncd, and a test keeps the two lists equal).
RETRY_CLASSES: tuple[str, ...] = ("health", "failover", "routine")
# A suspicious drop's outcomes (engine/cycle.py); pre-created so the drop panels read 0.
DROP_OUTCOMES: tuple[str, ...] = ("held", "confirmed", "withdrawn")
# Where an unexpected exception (not an API error: a bug, an answer syncd did not expect) was
# caught and contained: planning one group or one route, one of the daemon's work loops, or a
# re-read after a notification.
UNEXPECTED_ERROR_SITES: tuple[str, ...] = (
    "plan_group",
    "plan_route",
    "health_poll",
    "schedule_refresh",
    "reconcile",
    "push",
)
# The capacity forecast's summary windows: the next 2 hours, and the whole horizon.
FORECAST_WINDOWS: tuple[str, ...] = ("2h", "horizon")
# API spend on the status page: requests sent in this trailing window, against the quota.
SPEND_WINDOW_S = 60.0


# Buckets sized for what each histogram measures (Genesys answers in tens to hundreds of ms;
# Retry-After is whole seconds, usually under a minute; the limiter waits up to a pause).
_API_DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_RETRY_AFTER_BUCKETS = (1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_PUSH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_RECONCILE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

_ID_SEGMENT = re.compile(
    r"^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\d+)$"
)
_MAX_TOKEN_LABEL = 32


class RequestEvent(Protocol):
    """What the HTTP client reports per request (``request_id`` is deliberately never a label)."""

    @property
    def endpoint(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def status(self) -> int: ...  # 0 = no response (timeout, connection failure)
    @property
    def duration_s(self) -> float: ...
    @property
    def retry_after_s(self) -> float | None: ...
    @property
    def token(self) -> str: ...
    @property
    def request_id(self) -> str: ...


class StatusSource(Protocol):
    """What serves the status page's data (``engine.status.Board``): plain JSON-able data;
    ``ValueError`` for a bad query (answered 400 with its message)."""

    def status(self, query: Mapping[str, str]) -> dict[str, Any]: ...


def endpoint_label(endpoint: str) -> str:
    """A bounded endpoint label: no query string, id-like path segments folded into ``{id}``."""
    path = endpoint.split("?", 1)[0]
    return "/".join("{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/"))


def token_label(token: str) -> str:
    """A token-pool slot name as a label; anything long enough to be a credential is hashed.

    The client is meant to pass slot names ("0", "primary"); a bearer token passed by mistake
    must not end up in a scrape, so long values become a short digest.
    """
    if len(token) <= _MAX_TOKEN_LABEL:
        return token
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


def _code_label(status: int) -> str:
    return str(status) if status > 0 else "none"


def _package_version() -> str:
    try:
        return importlib.metadata.version("syncd")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    """All of syncd's metrics, their observer methods and their exposition."""

    # prometheus_client ≥0.22 announces text format "1.0.0" (UTF-8 names); every name here is
    # a classic one, and 0.0.4 is what Debian 12's Prometheus 2.42 and any other scraper know.
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(
        self,
        *,
        version: str | None = None,
        now: float | None = None,
        process_metrics: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        if process_metrics:
            # process_* (RSS, fds, start time) and python_info: the basics every exporter has.
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)

        # --- HTTP client -------------------------------------------------------------------
        self.api_requests = Counter(
            "syncd_api_requests_total",
            "Requests sent to the Genesys Cloud API, by endpoint template, method and status "
            'code ("none" when no response arrived).',
            ["endpoint", "method", "code"],
            registry=r,
        )
        self.api_token_requests = Counter(
            "syncd_api_token_requests_total",
            "Requests sent per token of the pool: the API spend, to compare with the quota.",
            ["token"],
            registry=r,
        )
        self.api_duration = Histogram(
            "syncd_api_request_duration_seconds",
            "Time from sending a request to its response (or failure).",
            ["endpoint", "method"],
            buckets=_API_DURATION_BUCKETS,
            registry=r,
        )
        self.api_rate_limited = Counter(
            "syncd_api_rate_limited_total",
            "Responses with status 429 (Too Many Requests).",
            ["endpoint"],
            registry=r,
        )
        self.api_retry_after = Histogram(
            "syncd_api_retry_after_seconds",
            "Retry-After values received with 429 responses.",
            buckets=_RETRY_AFTER_BUCKETS,
            registry=r,
        )
        self.api_retry_after_max = Gauge(
            "syncd_api_retry_after_max_seconds",
            "The configured largest Retry-After the daemon waits before giving up and alerting.",
            registry=r,
        )
        self.retry_after_too_long = Counter(
            "syncd_retry_after_too_long_total",
            "429 responses whose Retry-After exceeded the configured maximum.",
            ["endpoint"],
            registry=r,
        )
        self.api_quota = Gauge(
            "syncd_api_quota_requests_per_minute",
            "Request quota per token the limiter paces by (requests per minute): the configured"
            " one, or the org's limit read from the limits API at start when that is lower.",
            ["token"],
            registry=r,
        )
        self.ratelimit_wait = Histogram(
            "syncd_ratelimit_wait_seconds",
            "Time a request waited in the client-side limiter before being sent.",
            ["token"],
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.ratelimit_paused = Gauge(
            "syncd_ratelimit_paused",
            "1 while every request on the token is paused after a 429, else 0.",
            ["token"],
            registry=r,
        )
        self.ratelimit_budget = Gauge(
            "syncd_ratelimit_budget_remaining",
            "Requests left in the token's current window (server headers or the local bucket).",
            ["token"],
            registry=r,
        )
        self.retries = Counter(
            "syncd_retries_total",
            "Requests retried, by reason.",
            ["reason"],
            registry=r,
        )
        self.retry_budget_exhausted = Counter(
            "syncd_retry_budget_exhausted_total",
            "Retries refused because the retry budget of their class of work was spent.",
            ["class"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "syncd_queue_depth",
            "Writes queued and not yet applied.",
            registry=r,
        )

        # --- engine ------------------------------------------------------------------------
        self.version_conflicts = Counter(
            "syncd_version_conflicts_total",
            "Writes that met a version conflict (409 or version mismatch) and were re-planned.",
            ["kind"],
            registry=r,
        )
        self.writes = Counter(
            "syncd_writes_total",
            "Writes finished, by kind and outcome.",
            ["kind", "outcome"],
            registry=r,
        )
        self.plan_writes = Gauge(
            "syncd_plan_writes",
            "Writes in the latest plan, by kind.",
            ["kind"],
            registry=r,
        )
        self.trunk_healthy = Gauge(
            "syncd_trunk_healthy",
            "1 when the trunk is considered healthy (after hold-down), else 0.",
            ["group", "trunk"],
            registry=r,
        )
        self.failover_events = Counter(
            "syncd_trunk_failover_events_total",
            "HEALTHY → FAILED transitions of a trunk.",
            ["group", "trunk"],
            registry=r,
        )
        self.trunks_in_failover = Gauge(
            "syncd_trunks_in_failover",
            "Trunks of the group currently failed over.",
            ["group"],
            registry=r,
        )
        self.capacity_shortfall = Gauge(
            "syncd_capacity_shortfall_lines",
            "Lines the group needs beyond its healthy trunk capacity.",
            ["group"],
            registry=r,
        )
        self.staffed_fte = Gauge(
            "syncd_staffed_fte",
            "Staffed full-time equivalents in the group's target interval.",
            ["group"],
            registry=r,
        )
        self.desired_lines = Gauge(
            "syncd_desired_lines",
            "Lines the group should have (demand after min/max clamping).",
            ["group"],
            registry=r,
        )
        self.allocated_lines = Gauge(
            "syncd_allocated_lines",
            "Lines allocated to each trunk of the group.",
            ["group", "trunk"],
            registry=r,
        )
        self.snapshot_age = Gauge(
            "syncd_schedule_snapshot_age_seconds",
            "Age of the schedule data the planner used, per business unit.",
            ["business_unit"],
            registry=r,
        )
        # Safety (issue 9): held line counts, suspicious drops, unknown health, config problems.
        self.staffing_age = Gauge(
            "syncd_staffing_data_age_seconds",
            "Seconds since the schedules of every business unit were last read successfully"
            " (since start when one never was); line counts are held while they cannot be read.",
            registry=r,
        )
        self.group_held = Gauge(
            "syncd_group_lines_held",
            "1 while the group's line counts are held at their last values (staffing data"
            " missing or stale, or a configuration problem), else 0.",
            ["group"],
            registry=r,
        )
        self.drops = Counter(
            "syncd_line_drops_total",
            "Plans lowering a group's lines by more than max_drop_share in one step: held, then"
            " confirmed (written) or withdrawn by the re-read of their inputs.",
            ["group", "outcome"],
            registry=r,
        )
        self.health_unknown = Gauge(
            "syncd_trunk_health_unknown_polls",
            "Consecutive health polls that did not list the trunk (unknown, not failed).",
            ["group", "trunk"],
            registry=r,
        )
        self.config_problems = Gauge(
            "syncd_config_problems",
            "Configured objects the org does not have (business units, management units,"
            " trunk bases, routes, campaigns).",
            registry=r,
        )
        self.unexpected_errors = Counter(
            "syncd_unexpected_errors_total",
            "Unexpected exceptions (a bug, an answer syncd did not expect) contained where they"
            " happened: planning one group or route, a health poll, a schedule refresh, a"
            " reconcile, a re-read after a notification (push). Each is logged once with its"
            " traceback; the daemon keeps running.",
            ["where"],
            registry=r,
        )
        for where in UNEXPECTED_ERROR_SITES:
            self.unexpected_errors.labels(where)
        self.last_reconcile_ok = Gauge(
            "syncd_last_successful_reconcile_timestamp_seconds",
            "Unix time of the end of the last successful reconcile (0 = none yet).",
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "syncd_reconcile_duration_seconds",
            "Duration of reconcile cycles (successful or not).",
            buckets=_RECONCILE_BUCKETS,
            registry=r,
        )
        self.reconciles = Counter(
            "syncd_reconciles_total",
            'Reconcile cycles, by outcome ("ok" or "error").',
            ["outcome"],
            registry=r,
        )
        self.reload_ok = Gauge(
            "syncd_config_last_reload_successful",
            "1 when the last configuration (re)load succeeded, 0 when it was refused.",
            registry=r,
        )
        self.reload_ok_ts = Gauge(
            "syncd_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful configuration (re)load.",
            registry=r,
        )
        self.reload_failures = Counter(
            "syncd_config_reload_failures_total",
            "Configuration reloads refused (the running configuration stayed).",
            registry=r,
        )
        # --- notification channel ----------------------------------------------------------
        self.notifications_enabled = Gauge(
            "syncd_notification_enabled",
            "1 when the notification channel is configured ([notifications] enabled), else 0.",
            registry=r,
        )
        self.push_up = Gauge(
            "syncd_notification_push_up",
            "1 while every trunk and schedule topic is pushed (health by push, the poll at its"
            " resync interval), 0 while health comes by poll.",
            registry=r,
        )
        self.channel_up = Gauge(
            "syncd_notification_channel_up",
            "1 while every notification channel has a listening socket, else 0.",
            registry=r,
        )
        self.channel_opens = Counter(
            "syncd_notification_channel_opens_total",
            "Notification channels opened, by reason (start, closed, dead, socket_closing,"
            " expiring, token, no_longer_subscribed, error).",
            ["reason"],
            registry=r,
        )
        self.notification_events = Counter(
            "syncd_notification_events_total",
            "Notification events handed on as hints, by topic kind (trunk, schedule);"
            " duplicates from an overlap are not counted.",
            ["kind"],
            registry=r,
        )
        self.notification_duplicates = Counter(
            "syncd_notification_duplicates_total",
            "Notification events dropped as duplicates (delivered on both sockets of an"
            " overlap while a channel was being replaced).",
            registry=r,
        )
        self.notification_topics = Gauge(
            "syncd_notification_topics",
            'Subscribed notification topics by state ("permitted", "rejected").',
            ["state"],
            registry=r,
        )
        self.push_reaction = Histogram(
            "syncd_notification_reaction_seconds",
            "From a notification that changed an input to the end of the reconcile that"
            " followed it (event → write).",
            buckets=_PUSH_BUCKETS,
            registry=r,
        )

        # High availability (docs/ha.md): created when a coordination backend is configured, so
        # a single embedded process exposes none of them and no HA alert can fire for it.
        self.coordination_up = Gauge(
            "syncd_coordination_up",
            "1 while the coordination backend (Redis) answers, 0 while it cannot be reached;"
            " lease is the key prefix the replicas of one org share.",
            ["lease"],
            registry=r,
        )
        self.leader = Gauge(
            "syncd_leader",
            "1 while this replica holds the leader lease (it alone writes), else 0.",
            ["lease"],
            registry=r,
        )
        self.lease_epoch = Gauge(
            "syncd_lease_epoch",
            "The fencing epoch of the lease this replica holds, or the latest it has seen.",
            ["lease"],
            registry=r,
        )
        self.leader_changes = Counter(
            "syncd_leader_changes_total",
            'Leadership changes of this replica ("acquired" or "lost").',
            ["change"],
            registry=r,
        )
        self.coordination_errors = Counter(
            "syncd_coordination_errors_total",
            "Operations on the coordination backend that failed, by operation.",
            ["operation"],
            registry=r,
        )
        self.shared_budget_wait = Counter(
            "syncd_shared_budget_wait_seconds_total",
            "Time requests waited for the API budget shared with the other replicas.",
            registry=r,
        )
        self.forecast_shortfall = Gauge(
            "syncd_forecast_shortfall_max_lines",
            "Largest capacity shortfall the forecast expects for the group within the window"
            ' ("2h": the next two hours, "horizon": the schedule horizon), with today\'s trunk'
            " health held constant.",
            ["group", "window"],
            registry=r,
        )
        self.forecast_shortfall_start = Gauge(
            "syncd_forecast_shortfall_start_timestamp_seconds",
            "Unix time the interval with that largest expected shortfall starts (0 = none).",
            ["group", "window"],
            registry=r,
        )
        self.forecast_computed = Gauge(
            "syncd_forecast_computed_timestamp_seconds",
            "Unix time of the last forecast recomputation (schedules, health or config changed).",
            registry=r,
        )
        self.build_info = Gauge(
            "syncd_build_info",
            "Always 1; the version label says which syncd is running.",
            ["version"],
            registry=r,
        )

        self.build_info.labels(version or _package_version()).set(1)
        # The daemon only starts with a configuration that passed check-config, so the initial
        # load counts as a successful one.
        self.reload_ok.set(1)
        self.reload_ok_ts.set(time.time() if now is None else now)
        self.reconciles.labels("ok")
        self.reconciles.labels("error")
        for retry_class in RETRY_CLASSES:
            self.retry_budget_exhausted.labels(retry_class)
        for kind in ("trunk", "schedule"):
            self.notification_events.labels(kind)
        for state in ("permitted", "rejected"):
            self.notification_topics.labels(state)
        self._links_up: dict[int, bool] = {}
        self._link_topics: dict[int, tuple[int, int]] = {}
        self._groups: dict[str, tuple[str, ...]] = {}
        self._bus: tuple[str, ...] = ()
        self._tokens: tuple[str, ...] = ()
        self._kinds: tuple[str, ...] = ()
        self._quota = 0.0
        self._sent: dict[str, collections.deque[float]] = {}
        self.status_source: StatusSource | None = None

    # ------------------------------------------------------------------ configuration
    def configure(
        self,
        *,
        groups: Mapping[str, Sequence[str]],
        business_units: Sequence[str],
        tokens: Sequence[str],
        kinds: Sequence[str],
        endpoints: Iterable[tuple[str, str]] = (),
        quota_per_minute: float,
        max_retry_after_s: float,
        outcomes: Sequence[str] = DEFAULT_WRITE_OUTCOMES,
        retry_reasons: Sequence[str] = DEFAULT_RETRY_REASONS,
        channel_reasons: Sequence[str] = (),
    ) -> None:
        """Pre-create the label sets the configuration declares; call again on every reload.

        ``groups`` maps each group to its trunk labels; ``endpoints`` are ``(method, endpoint
        template)`` pairs known up front. Gauges of groups, trunks, business units, tokens and
        kinds that a reload removed are dropped (a stale gauge would keep alerting); counters
        are kept, since removing one would only look like a reset.
        """
        new_groups = {g: tuple(ts) for g, ts in groups.items()}
        for group, trunks in self._groups.items():
            kept = new_groups.get(group)
            if kept is None:
                for gauge in (
                    self.trunks_in_failover,
                    self.capacity_shortfall,
                    self.staffed_fte,
                    self.desired_lines,
                    self.group_held,
                ):
                    _remove(gauge, group)
                for window in FORECAST_WINDOWS:
                    _remove(self.forecast_shortfall, group, window)
                    _remove(self.forecast_shortfall_start, group, window)
            for trunk in trunks:
                if kept is None or trunk not in kept:
                    _remove(self.trunk_healthy, group, trunk)
                    _remove(self.allocated_lines, group, trunk)
                    _remove(self.health_unknown, group, trunk)
        for bu in set(self._bus) - set(business_units):
            _remove(self.snapshot_age, bu)
        new_tokens = tuple(token_label(t) for t in tokens)
        for token in set(self._tokens) - set(new_tokens):
            for gauge in (self.api_quota, self.ratelimit_paused, self.ratelimit_budget):
                _remove(gauge, token)
        for kind in set(self._kinds) - set(kinds):
            _remove(self.plan_writes, kind)

        self._groups = new_groups
        self._bus = tuple(business_units)
        self._tokens = new_tokens
        self._kinds = tuple(kinds)

        for group, trunks in new_groups.items():
            self.trunks_in_failover.labels(group)
            self.capacity_shortfall.labels(group)
            self.staffed_fte.labels(group)
            self.desired_lines.labels(group)
            self.group_held.labels(group)
            for outcome in DROP_OUTCOMES:
                self.drops.labels(group, outcome)
            for window in FORECAST_WINDOWS:
                self.forecast_shortfall.labels(group, window)
                self.forecast_shortfall_start.labels(group, window)
            for trunk in trunks:
                self.health_unknown.labels(group, trunk)
                self.failover_events.labels(group, trunk)
                self.allocated_lines.labels(group, trunk)
                # Unknown health reads as healthy until the first poll says otherwise: a
                # restart must not page about failovers that nobody observed.
                if (group, trunk) not in _children(self.trunk_healthy):
                    self.trunk_healthy.labels(group, trunk).set(1)
        for bu in business_units:
            self.snapshot_age.labels(bu)
        for token in new_tokens:
            self.api_quota.labels(token).set(quota_per_minute)
            self.api_token_requests.labels(token)
            self.ratelimit_paused.labels(token)
            if (token,) not in _children(self.ratelimit_budget):
                # Before the first response says otherwise, the window holds the full quota.
                self.ratelimit_budget.labels(token).set(quota_per_minute)
            self.ratelimit_wait.labels(token)
        for kind in kinds:
            self.plan_writes.labels(kind)
            self.version_conflicts.labels(kind)
            for outcome in outcomes:
                self.writes.labels(kind, outcome)
        for method, endpoint in endpoints:
            ep = endpoint_label(endpoint)
            self.api_duration.labels(ep, method.upper())
            self.api_rate_limited.labels(ep)
            self.retry_after_too_long.labels(ep)
        for reason in retry_reasons:
            self.retries.labels(reason)
        for reason in channel_reasons:
            self.channel_opens.labels(reason)
        self.api_retry_after_max.set(max_retry_after_s)
        self._quota = quota_per_minute

    def set_api_quota(self, quota_per_minute: float) -> None:
        """The quota each token is paced by changed (the org's limit, read at start)."""
        self._quota = quota_per_minute
        for token in self._tokens:
            self.api_quota.labels(token).set(quota_per_minute)

    # ------------------------------------------------------------------ HTTP client observers
    def on_request(self, event: Any) -> None:
        """One request finished (``event``: see ``RequestEvent``); ``request_id`` is ignored."""
        ep = endpoint_label(str(event.endpoint))
        method = str(event.method).upper()
        status = int(event.status)
        self.api_requests.labels(ep, method, _code_label(status)).inc()
        token = token_label(str(event.token))
        self.api_token_requests.labels(token).inc()
        sent = self._sent.setdefault(token, collections.deque())
        sent.append(time.time())
        _trim(sent, sent[-1] - SPEND_WINDOW_S)
        self.api_duration.labels(ep, method).observe(max(0.0, float(event.duration_s)))
        if status == 429:
            self.api_rate_limited.labels(ep).inc()
            retry_after = event.retry_after_s
            if retry_after is not None:
                self.api_retry_after.observe(max(0.0, float(retry_after)))

    def on_wait(self, token: str, seconds: float) -> None:
        """A request waited ``seconds`` in the limiter for ``token``."""
        self.ratelimit_wait.labels(token_label(token)).observe(max(0.0, seconds))

    def on_pause(self, token: str, paused: bool) -> None:
        """The token's requests were paused (after a 429) or resumed."""
        self.ratelimit_paused.labels(token_label(token)).set(1 if paused else 0)

    def on_budget(self, token: str, remaining: float) -> None:
        """Requests left in the token's current window."""
        self.ratelimit_budget.labels(token_label(token)).set(remaining)

    def on_retry(self, reason: str) -> None:
        """A request is being retried (reason: a short fixed word from the client)."""
        self.retries.labels(reason).inc()

    def on_retry_budget_exhausted(self, retry_class: str) -> None:
        """A retry was refused because the retry budget of its class (``RETRY_CLASSES``) is
        spent."""
        self.retry_budget_exhausted.labels(retry_class).inc()

    def on_retry_after_too_long(self, endpoint: str, seconds: float) -> None:
        """A 429 asked to wait longer than the configured maximum (``seconds`` is logged by
        the caller; the value itself is already in the Retry-After histogram)."""
        del seconds
        self.retry_after_too_long.labels(endpoint_label(endpoint)).inc()

    def on_queue_depth(self, depth: int) -> None:
        """Writes currently queued."""
        self.queue_depth.set(depth)

    # ------------------------------------------------------------------ engine observers
    def observe_write(self, kind: str, outcome: str) -> None:
        """A write finished with ``outcome`` (the audit trail's words)."""
        self.writes.labels(kind, outcome).inc()

    def observe_conflict(self, kind: str) -> None:
        """A write met a version conflict and is re-read / re-planned."""
        self.version_conflicts.labels(kind).inc()

    def set_plan(self, counts: Mapping[str, int]) -> None:
        """Writes in the latest plan by kind; kinds absent from ``counts`` are 0."""
        for kind in {*self._kinds, *_children_1(self.plan_writes)} - set(counts):
            self.plan_writes.labels(kind).set(0)
        for kind, n in counts.items():
            self.plan_writes.labels(kind).set(n)

    def observe_group(  # the engine's agreed observer signature (PLR0917 is off)
        self,
        group: str,
        staffed_fte: float,
        desired_lines: int,
        allocation: Mapping[str, int],
        shortfall: int,
        healthy: Mapping[str, bool],
    ) -> None:
        """One group's decision for the target interval (``GroupDecision`` in core.model)."""
        self.staffed_fte.labels(group).set(staffed_fte)
        self.desired_lines.labels(group).set(desired_lines)
        self.capacity_shortfall.labels(group).set(shortfall)
        # Configured trunks that got no lines are 0, not left at their previous value.
        for trunk in {*self._groups.get(group, ()), *allocation}:
            self.allocated_lines.labels(group, trunk).set(allocation.get(trunk, 0))
        for trunk, ok in healthy.items():
            self.trunk_healthy.labels(group, trunk).set(1 if ok else 0)
        self.trunks_in_failover.labels(group).set(sum(1 for ok in healthy.values() if not ok))

    def observe_failover(self, group: str, trunk: str) -> None:
        """A trunk went HEALTHY → FAILED."""
        self.failover_events.labels(group, trunk).inc()
        self.trunk_healthy.labels(group, trunk).set(0)

    def observe_reconcile(self, duration_s: float, ok: bool, now: float) -> None:
        """A reconcile cycle ended at ``now`` (Unix time)."""
        self.reconcile_duration.observe(max(0.0, duration_s))
        self.reconciles.labels("ok" if ok else "error").inc()
        if ok:
            self.last_reconcile_ok.set(now)

    def set_snapshot_age(self, bu: str, seconds: float) -> None:
        """Age of the schedule snapshot the planner used for business unit ``bu``."""
        self.snapshot_age.labels(bu).set(max(0.0, seconds))

    def set_staffing_age(self, seconds: float) -> None:
        self.staffing_age.set(max(0.0, seconds))

    def set_group_held(self, group: str, held: bool) -> None:
        self.group_held.labels(group).set(1 if held else 0)

    def observe_drop(self, group: str, outcome: str) -> None:
        """A suspicious drop was ``held``, ``confirmed`` (written) or ``withdrawn``."""
        self.drops.labels(group, outcome).inc()

    def set_health_unknown(self, group: str, trunk: str, polls: int) -> None:
        self.health_unknown.labels(group, trunk).set(polls)

    def set_config_problems(self, count: int) -> None:
        self.config_problems.set(count)

    def observe_unexpected_error(self, where: str) -> None:
        """An unexpected exception was contained at ``where`` (``UNEXPECTED_ERROR_SITES``)."""
        self.unexpected_errors.labels(where).inc()

    def observe_reload(self, ok: bool, now: float) -> None:
        """A configuration reload at ``now`` (Unix time) succeeded or was refused."""
        self.reload_ok.set(1 if ok else 0)
        if ok:
            self.reload_ok_ts.set(now)
        else:
            self.reload_failures.inc()

    # ------------------------------------------------------------------ notification channel
    def on_channel_state(self, link: int, up: bool) -> None:
        """A channel's socket listens (or no longer does); ``link`` numbers the channels."""
        self._links_up[link] = up
        self.channel_up.set(1 if self._links_up and all(self._links_up.values()) else 0)

    def on_channel_open(self, reason: str) -> None:
        """A channel was opened (``reason``: a short fixed word of the client)."""
        self.channel_opens.labels(reason).inc()

    def on_notification(self, kind: str) -> None:
        """An event was handed on as a hint (``kind``: trunk or schedule)."""
        self.notification_events.labels(kind).inc()

    def on_duplicate(self) -> None:
        """An event arrived a second time (overlap of two sockets) and was dropped."""
        self.notification_duplicates.inc()

    def on_topics(self, link: int, permitted: int, rejected: int) -> None:
        """A channel's subscription was answered: how many topics each way."""
        self._link_topics[link] = (permitted, rejected)
        self.notification_topics.labels("permitted").set(
            sum(p for p, _ in self._link_topics.values())
        )
        self.notification_topics.labels("rejected").set(
            sum(r for _, r in self._link_topics.values())
        )

    def set_notifications_enabled(self, enabled: bool) -> None:
        """Whether the daemon runs a notification channel at all (the alert needs to know)."""
        self.notifications_enabled.set(1 if enabled else 0)

    def on_push(self, up: bool) -> None:
        """Health comes by push (True) or by poll (False)."""
        self.push_up.set(1 if up else 0)

    def observe_push_reaction(self, seconds: float) -> None:
        """A notification's change was reconciled ``seconds`` after it arrived."""
        self.push_reaction.observe(max(0.0, seconds))

    # ------------------------------------------------------------------ coordination
    def set_coordination(self, *, lease: str, up: bool, leader: bool, epoch: int) -> None:
        """The replica's view of the lease after each attempt (engine/coordination.py)."""
        self.coordination_up.labels(lease).set(1 if up else 0)
        self.leader.labels(lease).set(1 if leader else 0)
        self.lease_epoch.labels(lease).set(epoch)

    def on_coordination_error(self, operation: str) -> None:
        self.coordination_errors.labels(operation).inc()

    def on_leadership(self, acquired: bool) -> None:
        self.leader_changes.labels("acquired" if acquired else "lost").inc()

    def on_shared_budget_wait(self, seconds: float) -> None:
        self.shared_budget_wait.inc(max(0.0, seconds))

    # ------------------------------------------------------------------ forecast
    def observe_forecast(self, group: str, window: str, shortfall: int, starts_at: float) -> None:
        """The forecast's largest shortfall for ``group`` within ``window`` (one of
        ``FORECAST_WINDOWS``) and the Unix time it starts (0 when there is none)."""
        self.forecast_shortfall.labels(group, window).set(shortfall)
        self.forecast_shortfall_start.labels(group, window).set(starts_at)

    def observe_forecast_computed(self, now: float) -> None:
        """The forecast was recomputed at ``now`` (Unix time)."""
        self.forecast_computed.set(now)

    # ------------------------------------------------------------------ status page
    def set_status_source(self, source: StatusSource | None) -> None:
        """Serve ``GET /`` and ``GET /status.json`` from ``source`` (503 while None)."""
        self.status_source = source

    def api_spend(self, now: float | None = None) -> dict[str, Any]:
        """Requests sent per token in the last ``SPEND_WINDOW_S`` against the quota."""
        now = time.time() if now is None else now
        tokens = []
        for token in sorted({*self._tokens, *self._sent}):
            sent = self._sent.get(token)
            if sent is not None:
                _trim(sent, now - SPEND_WINDOW_S)
            tokens.append(
                {"token": token, "requests": len(sent or ()), "quota_per_minute": self._quota}
            )
        return {"window_s": SPEND_WINDOW_S, "tokens": tokens}

    def status_document(self, query: Mapping[str, str]) -> dict[str, Any] | None:
        """The status source's document with the API spend added; None while there is none.
        ``ValueError`` for a bad query."""
        source = self.status_source
        if source is None:
            return None
        doc = source.status(query)
        doc["api"] = self.api_spend()
        return doc

    # ------------------------------------------------------------------ exposition
    def render(self) -> bytes:
        """The Prometheus text exposition (format 0.0.4) of this registry.

        Without the ``*_created`` series prometheus_client adds to counters and histograms:
        they double the series count, no query here uses them, and turning them off
        library-wide (``disable_created_metrics``) would reach into other registries.
        """
        return generate_latest(_WithoutCreated(self.registry))


class _WithoutCreated:
    """A registry view whose ``collect()`` drops the ``*_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            if metric.type in ("counter", "histogram", "summary"):
                created = metric.name + "_created"
                metric.samples = [s for s in metric.samples if s.name != created]
            yield metric


def _children(metric: Gauge) -> set[tuple[str, ...]]:
    # prometheus_client has no public way to list a metric's label sets; _metrics is stable
    # across releases and only read here.
    return {tuple(labels) for labels in metric._metrics}


def _children_1(metric: Gauge) -> set[str]:
    return {labels[0] for labels in _children(metric)}


def _trim(sent: collections.deque[float], before: float) -> None:
    while sent and sent[0] < before:
        sent.popleft()


def _remove(metric: Gauge, *labels: str) -> None:
    if tuple(labels) in _children(metric):
        metric.remove(*labels)


def make_app(metrics: Metrics) -> web.Application:
    """An aiohttp application serving ``GET /metrics`` from ``metrics``, and the status page:
    ``GET /`` (HTML) and ``GET /status.json`` from its status source."""

    async def handle(request: web.Request) -> web.Response:
        del request
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})

    def document(request: web.Request) -> dict[str, Any] | web.Response:
        try:
            doc = metrics.status_document(request.query)
        except ValueError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        if doc is None:
            return web.Response(
                status=503, text="syncd is starting: no status yet\n", headers=_NO_STORE
            )
        return doc

    async def status_json(request: web.Request) -> web.Response:
        doc = document(request)
        if isinstance(doc, web.Response):
            return doc
        return web.Response(
            body=orjson.dumps(doc), content_type="application/json", headers=_NO_STORE
        )

    async def status_html(request: web.Request) -> web.Response:
        doc = document(request)
        if isinstance(doc, web.Response):
            return doc
        return web.Response(
            text=statuspage.render(doc),
            content_type="text/html",
            charset="utf-8",
            headers=_NO_STORE,
        )

    app = web.Application()
    app.router.add_get("/metrics", handle)
    app.router.add_get("/status.json", status_json)
    app.router.add_get("/", status_html)
    return app


_NO_STORE = {"Cache-Control": "no-store"}


async def start_server(
    metrics: Metrics, host: str = "127.0.0.1", port: int = DEFAULT_PORT
) -> web.AppRunner:
    """Serve ``/metrics`` and the status page on ``host:port``; the caller owns the runner
    (``await runner.cleanup()``).

    Loopback by default: the exposition is not secret, but nothing outside the host needs it
    unless the operator says so (a Prometheus on another host: bind 0.0.0.0 behind a firewall).
    """
    runner = web.AppRunner(make_app(metrics), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
