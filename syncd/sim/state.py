"""The in-process simulator: org state, tokens, rate limiters, counters, faults, downloads.

Role: the one object behind both the HTTP API and the /_sim/ control API. Tests, the demo and
the benchmarks call its methods directly (fail/recover a trunk, publish a schedule, make a
person's edit, set faults, read counters) and get the same effect as the control API.

It must not know about aiohttp (the HTTP layer translates), must not sleep, must read time only
through the injected clocks, and must not import anything from the rest of syncd.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
from array import array
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from syncd.sim import org as orgmod
from syncd.sim import wfm
from syncd.sim.faults import FaultConfig, Faults, Hold, HoldConfig
from syncd.sim.options import RATE_MODELS, RateModelName, SimOptions
from syncd.sim.org import JSON, Org, iso_ms, iso_s
from syncd.sim.ratelimit import Budgets, Decision


class SimError(Exception):
    """A control operation was asked something impossible (unknown id, bad argument)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Token:
    client_id: str
    fingerprint: str
    issued_at: float
    expires_at: float


@dataclass(slots=True)
class Blob:
    """A presigned download or upload object."""

    body: bytes
    expires_at: float
    signature: str
    content_type: str = "application/json"


@dataclass(slots=True)
class LogEntry:
    t: float
    time: str
    method: str
    route: str
    path: str
    status: int
    token: str | None
    request_id: str = ""  # the ININ-Correlation-Id it answered with

    def to_json(self) -> JSON:
        return {
            "t": self.t,
            "time": self.time,
            "method": self.method,
            "route": self.route,
            "path": self.path,
            "status": self.status,
            "token": self.token,
            "request_id": self.request_id,
        }


@dataclass(slots=True)
class RateSettings:
    model: RateModelName
    quota: int
    window_s: float
    headers: bool
    # What the org limits API answers: 200 (the limits), or 403/404 (an org that does not let
    # this client read them, or does not offer them).
    limits_status: int = 200


@dataclass(slots=True)
class Counters:
    by_route: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    by_token: dict[str, Counter[str]] = field(default_factory=dict)
    total: int = 0
    total_429: int = 0


CAMPAIGN_EVENT_FIELDS = (
    "dialingMode",
    "campaignStatus",
    "abandonRate",
    "callerName",
    "callerAddress",
    "outboundLineCount",
    "id",
    "name",
    "dateCreated",
    "dateModified",
    "version",
)


def fingerprint(token: str) -> str:
    """What logs and counters show instead of a token: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


DEFAULT_PERMISSIONS = (
    "wfm:schedule:view",
    "wfm:publishedSchedule:view",
    "wfm:agent:view",
    "telephony:plugin:all",
    "outbound:campaign:view",
    "outbound:campaign:edit",
    "oauth:client:view",
    "authorization:role:view",
)


class Sim:
    """Simulator state and operations (see module docstring)."""

    def __init__(self, org: Org, options: SimOptions) -> None:
        self.org = org
        self.options = options
        self.rate = RateSettings(
            options.rate_model, options.quota, options.window_s, options.ratelimit_headers
        )
        self.tokens: dict[str, Token] = {}
        self.budgets: Budgets | None = None  # built at the first request, after any change
        self.counters = Counters()
        self.log: deque[LogEntry] = deque(maxlen=options.request_log_size)
        self.faults = Faults(org.seed)
        self.hold = Hold()
        self.blobs: dict[str, Blob] = {}
        self.uploads: dict[str, tuple[str, str, str]] = {}  # key -> (bu id, schedule id, blob key)
        self._sign_key = secrets.token_bytes(16)
        self._edits = 0
        self._publishes = 0
        # Notification sinks (topic, event body): the HTTP layer routes events to channels.
        self.sinks: list[Callable[[str, JSON], None]] = []
        # Each OAuth client's role grants these permissions (domain:entity:action); the
        # default is what syncd needs, plus reading its own client and roles.
        self.permissions: dict[str, tuple[str, ...]] = {}

    def notify(self, topic: str, body: JSON) -> None:
        """Publish a notification event to whoever listens (the channels' WebSockets)."""
        for sink in list(self.sinks):
            sink(topic, body)

    # --- clocks -------------------------------------------------------------------------

    def clock(self) -> float:
        return self.options.clock()

    def now(self) -> datetime:
        return self.options.now()

    # --- OAuth --------------------------------------------------------------------------

    def issue_token(self, client_id: str, secret: str) -> tuple[str, int] | None:
        """A new opaque bearer token for valid client credentials, else None."""
        expected = self.options.clients.get(client_id)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return None
        token = secrets.token_urlsafe(48)
        now = self.clock()
        ttl = self.options.token_ttl_s
        self.tokens[token] = Token(client_id, fingerprint(token), now, now + ttl)
        return token, ttl

    def token(self, token: str) -> Token | None:
        """The live token record, or None if unknown or expired."""
        record = self.tokens.get(token)
        if record is None or self.clock() >= record.expires_at:
            return None
        return record

    def client_permissions(self, client_id: str) -> tuple[str, ...]:
        return self.permissions.get(client_id, DEFAULT_PERMISSIONS)

    def set_permissions(self, client_id: str, permissions: list[str]) -> JSON:
        """Replace the permissions of a client's role (control operation)."""
        if client_id not in self.options.clients:
            raise SimError(404, f"no OAuth client {client_id!r}")
        bad = [p for p in permissions if not isinstance(p, str) or p.count(":") != 2]
        if bad:
            raise SimError(400, f"permissions are domain:entity:action strings, not {bad}")
        self.permissions[client_id] = tuple(permissions)
        return {"client": client_id, "permissions": list(self.permissions[client_id])}

    def expire_tokens(self) -> int:
        """Make every issued token expire now (control operation); returns how many."""
        now = self.clock()
        for record in self.tokens.values():
            record.expires_at = min(record.expires_at, now)
        return len(self.tokens)

    # --- rate limit ---------------------------------------------------------------------

    def hit(self, token: str, method: str = "GET", route: str = "") -> Decision:
        """Count one API request against the rate limits it passes."""
        budgets = self.budgets
        if budgets is None:
            budgets = self.budgets = Budgets(
                self.rate.model,
                self.rate.quota,
                self.rate.window_s,
                per=self.options.ratelimit_per,
                endpoint_limits=self.options.endpoint_limits,
            )
        record = self.tokens.get(token)
        client_id = record.client_id if record is not None else ""
        return budgets.hit(
            self.clock(), token=token, client_id=client_id, method=method, route=route
        )

    def set_ratelimit(
        self,
        *,
        model: str | None = None,
        quota: int | None = None,
        window_s: float | None = None,
        headers: bool | None = None,
        limits_status: int | None = None,
    ) -> JSON:
        """Change the rate-limit settings; every token starts a fresh limiter."""
        if model is not None and model not in RATE_MODELS:
            raise SimError(400, f"unknown rate model {model!r}; use one of {list(RATE_MODELS)}")
        if quota is not None and quota < 1:
            raise SimError(400, "quota must be >= 1")
        if window_s is not None and window_s <= 0:
            raise SimError(400, "window_s must be > 0")
        if limits_status not in (None, 200, 403, 404):
            raise SimError(400, "limits_status must be 200, 403 or 404")
        if model is not None:
            self.rate.model = model  # narrowed by the RATE_MODELS check above
        if quota is not None:
            self.rate.quota = quota
        if window_s is not None:
            self.rate.window_s = window_s
        if headers is not None:
            self.rate.headers = headers
        if limits_status is not None:
            self.rate.limits_status = limits_status
        self.budgets = None
        return self.ratelimit_json()

    def ratelimit_json(self) -> JSON:
        return {
            "model": self.rate.model,
            "quota": self.rate.quota,
            "window_s": self.rate.window_s,
            "headers": self.rate.headers,
            "limits_status": self.rate.limits_status,
        }

    # --- counters and log ---------------------------------------------------------------

    def record(
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        token: str | None,
        request_id: str = "",
    ) -> None:
        fp = fingerprint(token) if token else None
        self.counters.by_route[(route, method, status)] += 1
        self.counters.total += 1
        if status == 429:
            self.counters.total_429 += 1
        if fp is not None:
            per = self.counters.by_token.setdefault(fp, Counter())
            per["requests"] += 1
            if status == 429:
                per["429"] += 1
        self.log.append(
            LogEntry(self.clock(), iso_ms(self.now()), method, route, path, status, fp, request_id)
        )

    def counters_json(self) -> JSON:
        c = self.counters
        return {
            "total": c.total,
            "total429": c.total_429,
            "routes": [
                {"route": r, "method": m, "status": s, "count": n}
                for (r, m, s), n in sorted(c.by_route.items())
            ],
            "tokens": {fp: dict(per) for fp, per in sorted(c.by_token.items())},
        }

    def count(
        self, *, route: str | None = None, method: str | None = None, status: int | None = None
    ) -> int:
        """How many requests matched (convenience for tests and benchmarks)."""
        return sum(
            n
            for (r, m, s), n in self.counters.by_route.items()
            if (route is None or r == route)
            and (method is None or m == method)
            and (status is None or s == status)
        )

    def requests_json(self, limit: int | None = None) -> list[JSON]:
        entries = list(self.log)
        if limit is not None:
            entries = entries[-limit:]
        return [e.to_json() for e in entries]

    def reset_counters(self) -> None:
        self.counters = Counters()
        self.log.clear()

    # --- faults -------------------------------------------------------------------------

    def set_faults(self, settings: dict[str, Any] | FaultConfig) -> JSON:
        try:
            config = (
                settings if isinstance(settings, FaultConfig) else FaultConfig.from_json(settings)
            )
        except ValueError as exc:
            raise SimError(400, str(exc)) from exc
        self.faults.set(config)
        return config.to_json()

    def clear_faults(self) -> None:
        self.faults.clear()

    # --- the hold (park requests until released) ------------------------------------------

    def set_hold(self, settings: dict[str, Any] | HoldConfig) -> JSON:
        """Park every matching /api/v2 request before it is handled, until ``release_hold``."""
        try:
            config = (
                settings if isinstance(settings, HoldConfig) else HoldConfig.from_json(settings)
            )
        except ValueError as exc:
            raise SimError(400, str(exc)) from exc
        self.hold.set(config)
        return self.hold.to_json()

    async def release_hold(self) -> JSON:
        """Stop holding; parked requests are handled (a parked write lands) before this returns."""
        return {"released": await self.hold.release(), "hold": None}

    # --- presigned blobs ----------------------------------------------------------------

    def put_blob(self, body: bytes, content_type: str = "application/json") -> tuple[str, str]:
        """Store a download; returns (key, signature). Expired blobs are dropped on the way."""
        now = self.clock()
        for key in [k for k, b in self.blobs.items() if b.expires_at <= now - 60]:
            del self.blobs[key]
        key = secrets.token_hex(16)
        signature = hmac.new(self._sign_key, key.encode(), hashlib.sha256).hexdigest()
        self.blobs[key] = Blob(body, now + self.options.download_ttl_s, signature, content_type)
        return key, signature

    # --- trunk health -------------------------------------------------------------------

    def _trunk_of(self, trunk_base_id: str) -> orgmod.TrunkHealth:
        trunk_id = self.org.trunk_of_base.get(trunk_base_id)
        if trunk_id is None:
            # Accept a trunk (instance) id too: tests often hold that one.
            if trunk_base_id in self.org.trunks:
                return self.org.trunks[trunk_base_id]
            raise SimError(404, f"no trunk base or trunk with id {trunk_base_id}")
        return self.org.trunks[trunk_id]

    def servers(self, trunk_base_id: str) -> list[str]:
        props = self.org.trunk_bases[trunk_base_id]["properties"]
        value = props.get("trunk_transport_serverProxyList", {}).get("value", {})
        instance = value.get("instance")
        return [s for s in instance if isinstance(s, str)] if isinstance(instance, list) else []

    def fail_trunk(self, trunk_base_id: str, server: str | None = None) -> JSON:
        """The trunk loses its SIP connection and every server fails OPTIONS; or, with
        `server`, only that SIP server fails OPTIONS (the trunk stays connected)."""
        trunk = self._trunk_of(trunk_base_id)
        now = self.now()
        servers = self.servers(trunk.trunk_base_id)
        if server is not None:
            if server not in servers:
                raise SimError(400, f"{server!r} is not one of the trunk's SIP servers {servers}")
            trunk.failed_servers.add(server)
        else:
            if trunk.connected:
                trunk.connected_since = now
            trunk.connected = False
            trunk.failed_servers = set(servers)
        trunk.options_since = now
        self._notify_trunk(trunk)
        return self.trunk_state(trunk)

    def recover_trunk(self, trunk_base_id: str, server: str | None = None) -> JSON:
        """Undo `fail_trunk` (for one server, or entirely)."""
        trunk = self._trunk_of(trunk_base_id)
        now = self.now()
        if server is not None:
            trunk.failed_servers.discard(server)
        else:
            if not trunk.connected:
                trunk.connected_since = now
            trunk.connected = True
            trunk.failed_servers.clear()
        trunk.options_since = now
        self._notify_trunk(trunk)
        return self.trunk_state(trunk)

    def _notify_trunk(self, trunk: orgmod.TrunkHealth) -> None:
        options = []
        for server in self.servers(trunk.trunk_base_id):
            ok = trunk.connected and server not in trunk.failed_servers
            entry: JSON = {
                "proxyAddress": server,
                "optionState": ok,
                "optionStateTime": iso_ms(trunk.options_since),
            }
            if not ok:
                entry["errorInfo"] = {"text": "No response to SIP OPTIONS", "code": "408"}
            options.append(entry)
        self.notify(
            f"v2.telephony.providers.edges.trunks.{trunk.id}",
            {
                "id": trunk.id,
                "connectedStatus": {
                    "connected": trunk.connected,
                    "connectedStateTime": iso_ms(trunk.connected_since),
                },
                "optionsStatus": options,
                "registersStatus": [],
            },
        )

    def notify_schedule(self, bu: orgmod.BusinessUnit, sched: orgmod.Schedule) -> None:
        """The BU schedule topic's Update event, as WFM sends after a (re)publish."""
        self.notify(
            f"v2.workforcemanagement.businessunits.{bu.id}.schedules",
            {
                "status": "Complete",
                "operationId": orgmod.derived_uuid("publish", sched.id, sched.version),
                "eventType": "Update",
                "result": {
                    "id": sched.id,
                    "weekDate": iso_s(
                        datetime(
                            sched.week_date.year,
                            sched.week_date.month,
                            sched.week_date.day,
                            tzinfo=UTC,
                        )
                    ),
                    "weekCount": sched.week_count,
                    "description": sched.description,
                    "published": sched.published,
                    "managementUnits": [
                        {
                            "managementUnit": {"id": mu.id},
                            "startDate": iso_s(sched.start_utc),
                            "endDate": iso_s(sched.end_utc),
                            "agentCount": mu.end_agent - mu.first_agent,
                        }
                        for mu in bu.mus
                    ],
                    "metadata": {
                        "version": sched.version,
                        "dateModified": iso_s(sched.date_modified),
                    },
                },
            },
        )

    def notify_campaign(self, campaign: JSON) -> None:
        """The campaign config topic: the routing-relevant fields of the new campaign."""
        body: JSON = {}
        for key in ("edgeGroup", "site", "contactList", "queue"):
            ref = campaign.get(key)
            if isinstance(ref, dict):
                body[key] = {k: ref[k] for k in ("id", "name") if k in ref}
        for key in CAMPAIGN_EVENT_FIELDS:
            if key in campaign:
                body[key] = campaign[key]
        self.notify(f"v2.outbound.campaigns.{campaign['id']}", body)

    def trunk_state(self, trunk: orgmod.TrunkHealth) -> JSON:
        servers = self.servers(trunk.trunk_base_id)
        return {
            "trunkBaseId": trunk.trunk_base_id,
            "trunkId": trunk.id,
            "connected": trunk.connected,
            "servers": {s: s not in trunk.failed_servers for s in servers},
            "inService": self.trunk_enabled(trunk.trunk_base_id),
        }

    def trunk_enabled(self, trunk_base_id: str) -> bool:
        prop = self.org.trunk_bases[trunk_base_id]["properties"].get("trunk_enabled", {})
        return prop.get("value", {}).get("instance") is True

    # --- schedules ----------------------------------------------------------------------

    def publish_schedule(
        self,
        business_unit_id: str | None = None,
        *,
        management_unit_id: str | None = None,
        week_id: str | None = None,
        agents: int | None = None,
        shift_minutes: int = 60,
    ) -> JSON:
        """Re-publish a schedule with some shifts changed, as a WFM planner would.

        Every `n`-th agent of the BU (or of one MU) gets each shift of the week moved by
        `shift_minutes` and its first queue activity turned into Training; the schedule's
        `metadata.version` goes up by one and `dateModified` becomes now.
        """
        bu = self.org.bu(business_unit_id) if business_unit_id else self.org.bus[0]
        if bu is None:
            raise SimError(404, f"no business unit {business_unit_id}")
        first, end = 0, len(bu.agent_ids)
        if management_unit_id is not None:
            found = self.org.mu(management_unit_id)
            if found is None or found[0] is not bu:
                raise SimError(404, f"no management unit {management_unit_id} in {bu.id}")
            first, end = found[1].first_agent, found[1].end_agent
        week = self._week(bu, week_id)
        sched = next((s for s in bu.schedules if s.week_date == week and s.published), None)
        if sched is None:
            raise SimError(404, f"no published schedule for week {week.isoformat()} in {bu.id}")
        self._publishes += 1
        rng = random.Random(f"syncd-sim:publish:{self.org.seed}:{self._publishes}")
        population = list(range(first, end))
        count = agents if agents is not None else max(1, len(population) // 10)
        chosen = sorted(rng.sample(population, min(count, len(population))))
        training = next(i for i, c in enumerate(bu.activity_codes) if c.category == "Training")
        for index in chosen:
            run = sched.shifts[index]
            new = array("i", run)
            for pos, *_ in wfm.iter_shifts(new):
                new[pos + 1] += shift_minutes
                new[pos + 4 + 2] = training
            sched.shifts[index] = new
        sched.version += 1
        sched.date_modified = self.now()
        self.notify_schedule(bu, sched)
        return {
            "businessUnitId": bu.id,
            "scheduleId": sched.id,
            "weekDate": sched.week_date.isoformat(),
            "version": sched.version,
            "dateModified": iso_s(sched.date_modified),
            "changedAgents": [bu.agent_ids[i] for i in chosen],
        }

    def _week(self, bu: orgmod.BusinessUnit, week_id: str | None) -> date:
        if week_id is None:
            return orgmod.week_start_date(self.org.week_anchor, bu.start_day)
        parsed = wfm.parse_week(week_id)
        if parsed is None:
            raise SimError(400, f"weekId {week_id!r} is not yyyy-MM-dd")
        return orgmod.week_start_date(parsed, bu.start_day)

    # --- a person's concurrent edit -----------------------------------------------------

    def human_edit(self, kind: str, entity_id: str) -> JSON:
        """Change a field syncd does not own, as a person in the admin UI would; bumps the
        version. Returns what changed so a test can check that the edit survives."""
        self._edits += 1
        stamp = f"edited by a person #{self._edits}"
        now = iso_ms(self.now())
        if kind == "route":
            entity = self.org.routes.get(entity_id)
            field_name = "description"
        elif kind == "trunkbase":
            entity = self.org.trunk_bases.get(entity_id)
            field_name = "properties.trunk_label.value.instance"
        elif kind == "campaign":
            entity = self.org.campaigns.get(entity_id)
            field_name = "callerName"
        else:
            raise SimError(400, "kind must be one of route, trunkbase, campaign")
        if entity is None:
            raise SimError(404, f"no {kind} with id {entity_id}")
        if kind == "trunkbase":
            value = entity["properties"]["trunk_label"]["value"]
            before = value.get("instance")
            value["instance"] = after = f"{before or ''} ({stamp})".strip()
        else:
            before = entity.get(field_name)
            after = f"{before or ''} ({stamp})".strip()
            entity[field_name] = after
        entity["version"] += 1
        entity["dateModified"] = now
        if kind == "campaign":
            self.notify_campaign(entity)
        if kind != "campaign":  # Campaign has no modifiedBy property
            entity["modifiedBy"] = "a.person@example.com"
        return {
            "kind": kind,
            "id": entity_id,
            "field": field_name,
            "before": before,
            "after": after,
            "version": entity["version"],
        }

    # --- state dump ---------------------------------------------------------------------

    def state_json(self, include_agents: bool = False) -> JSON:
        org = self.org
        bus = []
        for bu in org.bus:
            item: JSON = {
                "id": bu.id,
                "name": bu.name,
                "timeZone": bu.time_zone,
                "startDayOfWeek": bu.start_day,
                "agentCount": len(bu.agent_ids),
                "managementUnits": [
                    {"id": m.id, "name": m.name, "agentCount": m.end_agent - m.first_agent}
                    for m in bu.mus
                ],
                "activityCodes": [
                    {"id": c.id, "name": c.name, "category": c.category} for c in bu.activity_codes
                ],
                "schedules": [
                    {
                        "id": s.id,
                        "weekDate": s.week_date.isoformat(),
                        "published": s.published,
                        "version": s.version,
                        "dateModified": iso_s(s.date_modified),
                        "startDate": iso_s(s.start_utc),
                        "endDate": iso_s(s.end_utc),
                    }
                    for s in bu.schedules
                ],
            }
            if include_agents:
                item["agents"] = {m.id: bu.agent_ids[m.first_agent : m.end_agent] for m in bu.mus}
            bus.append(item)
        return {
            "org": {"id": org.org_id, "name": org.org_name, "size": org.size, "seed": org.seed},
            "weekAnchor": org.week_anchor.isoformat(),
            "businessUnits": bus,
            "sites": [
                {
                    "id": s.id,
                    "name": s.name,
                    "edgeId": s.edge_id,
                    "edgeGroupId": s.edge_group_id,
                    "outboundRouteIds": [r for r, sid in org.route_site.items() if sid == s.id],
                }
                for s in org.sites
            ],
            "trunkBases": [
                {
                    "id": tb_id,
                    "name": tb["name"],
                    "carrier": org.carriers[tb_id],
                    "trunkId": org.trunk_of_base[tb_id],
                    "siteId": org.trunks[org.trunk_of_base[tb_id]].site_id,
                    "version": tb["version"],
                    **{
                        k: v
                        for k, v in self.trunk_state(org.trunks[org.trunk_of_base[tb_id]]).items()
                        if k not in ("trunkBaseId", "trunkId")
                    },
                }
                for tb_id, tb in org.trunk_bases.items()
            ],
            "routes": [
                {
                    "id": r_id,
                    "name": r["name"],
                    "siteId": org.route_site[r_id],
                    "version": r["version"],
                    "distribution": r.get("distribution"),
                    "externalTrunkBaseIds": [t["id"] for t in r.get("externalTrunkBases", [])],
                }
                for r_id, r in org.routes.items()
            ],
            "campaigns": [
                {
                    "id": c_id,
                    "name": c["name"],
                    "siteId": c.get("site", {}).get("id"),
                    "edgeGroupId": c.get("edgeGroup", {}).get("id"),
                    "outboundLineCount": c.get("outboundLineCount"),
                    "campaignStatus": c.get("campaignStatus"),
                    "version": c["version"],
                }
                for c_id, c in org.campaigns.items()
            ],
            "rateLimit": self.ratelimit_json(),
            "faults": self.faults.config.to_json() if self.faults.config else None,
            "clock": self.clock(),
            "now": iso_ms(self.now()),
        }


def new_sim(
    size: str = "small",
    seed: int = 1,
    options: SimOptions | None = None,
    week_anchor: date | None = None,
) -> Sim:
    """A simulator over a freshly generated org (the anchor defaults to `options.now()`)."""
    opts = options or SimOptions()
    anchor = week_anchor if week_anchor is not None else opts.now().astimezone(UTC).date()
    return Sim(orgmod.generate(size, seed, anchor), opts)
