"""Domain values of syncd: what is read from Genesys Cloud, and what the planner decides.

Frozen, slotted, keyword-only dataclasses; collections are tuples. Times are UTC instants as
integer epoch seconds (``int``), so the hot staffing path does plain integer arithmetic; wall
clocks and time zones are for the edges (week boundaries, display).

Objects that syncd writes back with a full-replacement PUT (routes, trunk bases) keep the exact
JSON they were read as (``raw``, orjson bytes), so that everything syncd does not own goes back
unchanged. This module must not parse or render JSON (that is ``wire``), nor do I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------
# Schedules (WFM)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivityCode:
    """A business unit's activity code; ``category`` is the API's enum (``OnQueueWork``, …)."""

    id: str
    name: str
    category: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSchedule:
    """One agent's published activities in the fetched window.

    ``activities`` holds ``(start_epoch_s, length_minutes, activity_code_id)`` triples: tuples,
    not objects, because a large org has hundreds of thousands of them.
    """

    user_id: str
    activities: tuple[tuple[int, int, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagementUnitSchedule:
    """The agent schedules of one management unit, as fetched for ``[start, end)``."""

    business_unit_id: str
    management_unit_id: str
    start: int
    end: int
    agents: tuple[AgentSchedule, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRef:
    """One entry of a BU's weekly schedule listing; ``version`` drives change detection."""

    id: str
    week_date: str  # yyyy-MM-dd, the BU-local first day of the first week
    week_count: int
    published: bool
    version: int
    date_modified: str


# --------------------------------------------------------------------------------------------
# Telephony
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkBase:
    """A BYOC carrier trunk base (``trunkbasesettings``) as read.

    ``properties`` maps each property key to its ``value.instance`` (decoded JSON value), for
    reading; ``raw`` is the whole object exactly as read, for writing back. Neither is in the
    repr: a trunk base holds the carrier's SIP credentials
    (``trunk_sip_authentication_credentials_*``), which must never reach a log line.
    """

    id: str
    name: str
    version: int
    trunk_type: str
    properties: tuple[tuple[str, object], ...] = field(repr=False)
    raw: bytes = field(repr=False, compare=False)

    def property_instance(self, key: str) -> object:
        """The ``value.instance`` of a property, or None when the property is absent."""
        for k, v in self.properties:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkStatus:
    """Health observation of a trunk instance: SIP connection and OPTIONS per SIP server."""

    trunk_id: str
    trunk_base_id: str
    connected: bool
    options_ok: tuple[bool, ...]  # one per SIP server (``optionsStatus[].optionState``)
    in_service: bool
    # False when the trunk does not send SIP OPTIONS (``optionsEnabledStatus`` DISABLED or
    # NOT_SUPPORTED): then there is no OPTIONS verdict to wait for, only the connection.
    options_monitored: bool = True

    @property
    def healthy(self) -> bool:
        """docs/domain.md: connected, and at least one SIP server answers OPTIONS (where OPTIONS are
        sent at all)."""
        options = any(self.options_ok) if self.options_monitored else True
        return self.connected and self.in_service and options


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """A site outbound route; syncd owns only ``trunk_base_ids`` (``externalTrunkBases`` order)."""

    id: str
    site_id: str
    name: str
    version: int
    distribution: str
    trunk_base_ids: tuple[str, ...]
    raw: bytes = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Campaign:
    """An outbound campaign; syncd owns only ``outbound_line_count``."""

    id: str
    name: str
    version: int
    status: str
    site_id: str | None
    outbound_line_count: int | None
    raw: bytes = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Limit:
    """One effective limit of the org (the limits API's ``Limit``): e.g. namespace
    ``platform.api``, key ``client.credentials.token.rate.per.minute``, value 300."""

    namespace: str
    key: str
    value: int


# --------------------------------------------------------------------------------------------
# Health state (kept across cycles and restarts)
# --------------------------------------------------------------------------------------------


class HealthState(enum.StrEnum):
    HEALTHY = "healthy"
    FAILED = "failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkHealth:
    """Failover state of one trunk base: ``good_since`` is the start of the current run of good
    observations while FAILED (None while none), ``failovers`` counts HEALTHY → FAILED events."""

    trunk_base_id: str
    state: HealthState
    since: int
    good_since: int | None = None
    failovers: int = 0


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------


class WriteKind(enum.StrEnum):
    ROUTE_ORDER = "route_order"
    CAMPAIGN_LINES = "campaign_lines"
    TRUNK_CALL_RATE = "trunk_call_rate"


class Priority(enum.IntEnum):
    """Lower runs first (docs/domain.md: failover first, then capacity cuts, staffing, call
    rates)."""

    FAILOVER = 0
    CAPACITY_CUT = 1
    STAFFING = 2
    CALL_RATE = 3


WriteValue = int | str | tuple[str, ...] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """One owned field of one object to change from ``before`` to ``after``.

    ``object_id`` is the route, campaign or trunk base id; ``site_id`` is set for routes (their
    path needs it). ``field`` names the owned field in API terms (``externalTrunkBases``,
    ``outboundLineCount``, ``properties.trunk_maxCallRate``).
    """

    kind: WriteKind
    object_id: str
    object_name: str
    field: str
    before: WriteValue
    after: WriteValue
    reason: str
    priority: Priority
    group: str
    site_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """At most one write per object and kind is ever planned or in flight."""
        return (self.kind.value, self.object_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupDecision:
    """What the planner decided for one group in the target interval (for logs and metrics)."""

    group: str
    interval_start: int
    staffed_fte: float
    desired_lines: int
    allocation: tuple[tuple[str, int], ...]  # (trunk_base_id, lines), in priority order
    shortfall: int
    healthy: tuple[tuple[str, bool], ...]  # (trunk_base_id, healthy)
    # Lines actually handed out: demand, or the current total when within the hysteresis band,
    # capped by healthy capacity; campaign line counts sum to this.
    allocated_lines: int = 0
    failover_driven: bool = False
    # The campaigns' line total as read (None when a count is unknown or there are none).
    current_lines: int | None = None
    # Why the group's line counts are held at their current values ("" when they are not): its
    # staffing data is missing or stale, or its configuration names what the org lacks.
    held: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """Writes the plan holds back, and why: a group whose line counts are held (its staffing
    input is incomplete, stale or misconfigured: no writes planned), or a suspicious drop waiting
    for one more read of its inputs (the writes it would make)."""

    group: str
    reason: str
    writes: tuple[Write, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanFailure:
    """A group or a route whose planning raised (an answer syncd did not expect, a bug): it has
    no decision and no writes in this plan, and what it controls stays as it is; the rest of the
    plan stands. ``error`` is the exception, for the log's traceback (not compared)."""

    scope: str  # "group" or "route"
    object_id: str  # the group's name, or the route's id
    object_name: str
    group: str  # the group, or the groups listing the route joined with "+"
    error: Exception = field(compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """The ordered, minimal set of writes (by priority, then kind, then object id)."""

    now: int
    writes: tuple[Write, ...]
    decisions: tuple[GroupDecision, ...] = ()
    held: tuple[Held, ...] = ()
    failures: tuple[PlanFailure, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.writes)
