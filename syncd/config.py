"""Configuration: a TOML file → one frozen ``Config`` snapshot, every error at once.

Role: parse (tomllib), validate (pydantic v2 models, ``extra="forbid"``, frozen) and cross-check
the operator's file; report every problem with its key path (``groups[1].trunks[0].capacity:
…``), TOML syntax errors with line and column, as one ``errors.ConfigError``. Convert the groups
into the planner's core-level values (``Config.planner_settings()``).

Secrets never live in the file: the file names a systemd credential
(``$CREDENTIALS_DIRECTORY/<name>``) or an environment variable; ``resolve_secret`` reads it
separately, so ``check-config`` can verify it is reachable. This module must not log secrets,
touch the network, or import the engine.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from syncd import errors
from syncd.core import allocation, lease, planner
from syncd.genesys import regions

# docs/genesys-setup.md "Regions" (the SDK's PureCloudRegionHosts); the login host is the API
# host with api. → login. The region table lives with the client that uses it.
REGIONS = regions.REGIONS

# Scalars are strict (TOML is typed: "20" where a number belongs is a mistake to report);
# arrays are lax so TOML arrays become tuples.
PositiveInt = Annotated[int, Field(gt=0, strict=True)]
NonNegInt = Annotated[int, Field(ge=0, strict=True)]
Name = Annotated[str, Field(min_length=1, strict=True)]


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"{value!r} is not an http(s) URL (e.g. https://api.mypurecloud.ie)")
    return value


def _host_port(value: str) -> str:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) with a port from 1 to 65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: port {int(port)} is outside 1-65535")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not bare or not re.fullmatch(r"[0-9A-Za-z.:-]+", bare):
        raise ValueError(f"{value!r}: {host!r} is not a host name or IP address")
    return value


def _label(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", value):
        raise ValueError(
            f"{value!r} is not a metric label (1-64 letters, digits or the characters _ . : -)"
        )
    return value


HttpUrl = Annotated[str, Field(strict=True), AfterValidator(_http_url)]
HostPort = Annotated[str, Field(strict=True), AfterValidator(_host_port)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Credential(_Model):
    """One client-credentials pair; the secret is named, never written here."""

    client_id: Name
    secret_credential: Name | None = None  # file name under $CREDENTIALS_DIRECTORY
    secret_env: Name | None = None  # environment variable holding the secret

    @model_validator(mode="after")
    def _one_secret_source(self) -> Credential:
        if (self.secret_credential is None) == (self.secret_env is None):
            raise ValueError("set exactly one of secret_credential or secret_env")
        return self


class Org(_Model):
    region: Literal[tuple(REGIONS)] | None = None  # type: ignore[valid-type]
    api_url: HttpUrl | None = None
    login_url: HttpUrl | None = None
    client_id: Name
    secret_credential: Name | None = None
    secret_env: Name | None = None
    # Extra tokens, each with its own rate budget (docs/domain.md: the API budget).
    token_pool: tuple[Credential, ...] = ()

    @model_validator(mode="after")
    def _where(self) -> Org:
        if self.region is None and (self.api_url is None or self.login_url is None):
            raise ValueError("set region, or both api_url and login_url")
        if self.region is not None and (self.api_url is not None or self.login_url is not None):
            raise ValueError("set region or api_url/login_url, not both")
        if (self.secret_credential is None) == (self.secret_env is None):
            raise ValueError("set exactly one of secret_credential or secret_env")
        for what, url in (("api_url", self.api_url), ("login_url", self.login_url)):
            if url is not None:
                regions.check_url(url, what=what)
        return self

    @property
    def api_base(self) -> str:
        return self.api_url.rstrip("/") if self.api_url else REGIONS[str(self.region)]

    @property
    def login_base(self) -> str:
        if self.login_url:
            return self.login_url.rstrip("/")
        return REGIONS[str(self.region)].replace("//api.", "//login.", 1)

    @property
    def credentials(self) -> tuple[Credential, ...]:
        """The main credential first, then the pool."""
        main = Credential(
            client_id=self.client_id,
            secret_credential=self.secret_credential,
            secret_env=self.secret_env,
        )
        return (main, *self.token_pool)


class RateLimit(_Model):
    requests_per_minute: PositiveInt = 300
    max_retry_after_s: PositiveInt = 60
    # Retries may add at most this fraction of the first tries (a retry budget, not a count;
    # one per class of work, docs/client.md). 0 was accepted here and then refused by the
    # transport at start-up: a budget that never refills is not one.
    retry_budget: Annotated[float, Field(gt=0, le=1, strict=True)] = 0.2
    max_attempts: PositiveInt = 5
    timeout_s: Annotated[float, Field(gt=0, strict=True)] = 30.0


class Schedule(_Model):
    business_units: tuple[Name, ...] = Field(min_length=1)
    interval_minutes: Annotated[int, Field(gt=0, le=60, strict=True)] = 15
    horizon_hours: PositiveInt = 24
    lead_time_s: NonNegInt = 120
    staffed_categories: tuple[
        Literal[
            "OnQueueWork",
            "Break",
            "Meal",
            "Meeting",
            "OffQueueWork",
            "TimeOff",
            "Training",
            "Unavailable",
        ],
        ...,
    ] = Field(default=("OnQueueWork",), min_length=1)
    mode: Literal["auto", "poll", "export"] = "auto"
    refresh_s: PositiveInt = 300
    # While the notification channel pushes schedule publishes, the refresh is a safety net
    # (below the 30 minutes after which SyncdStaffingDataStale calls the schedules unread).
    resync_s: PositiveInt = 900

    @field_validator("interval_minutes")
    @classmethod
    def _interval_divides_hour(cls, value: int) -> int:
        if 60 % value:
            raise ValueError(
                f"must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60), got {value}"
            )
        return value


class Health(_Model):
    poll_s: PositiveInt = 15
    hold_down_s: NonNegInt = 120
    # While the notification channel pushes trunk changes, the poll is only a safety net.
    resync_s: PositiveInt = 300


class Notifications(_Model):
    """The notification channel (docs/notifications.md): push instead of poll."""

    enabled: bool = True
    ping_after_s: Annotated[float, Field(gt=0, strict=True)] = 40.0
    dead_after_s: Annotated[float, Field(gt=0, strict=True)] = 75.0
    renew_before_s: Annotated[float, Field(gt=0, strict=True)] = 600.0

    @model_validator(mode="after")
    def _ping_before_dead(self) -> Notifications:
        if self.ping_after_s >= self.dead_after_s:
            raise ValueError("ping_after_s must be below dead_after_s")
        return self


class Safety(_Model):
    # A plan lowering a group's line total by more than this share in one step (a failover
    # aside) is held for one more read of its inputs and written only if that read agrees.
    max_drop_share: Annotated[float, Field(gt=0, le=1, strict=True)] = 0.5
    # Health polls in a row that may miss a trunk (unknown, not failed) before syncd warns.
    unknown_health_polls: PositiveInt = 3


class Metrics(_Model):
    listen: HostPort = "127.0.0.1:9464"


class Coordination(_Model):
    """High availability (docs/ha.md): ``none`` (one process, the default) or ``redis`` (a leader
    lease and a shared API budget on Redis). The password is named, never written here."""

    backend: Literal["none", "redis"] = "none"
    url: Annotated[str, Field(pattern=r"^rediss?://[^/?#]+(/\d*)?$")] | None = None
    password_credential: Name | None = None  # file name under $CREDENTIALS_DIRECTORY
    password_env: Name | None = None  # environment variable holding the password
    key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:{}-]{1,64}$", strict=True)] = "syncd"
    lease_s: Annotated[float, Field(gt=0, strict=False)] = 15.0
    renew_deadline_s: Annotated[float, Field(gt=0, strict=False)] = 10.0
    retry_s: Annotated[float, Field(gt=0, strict=False)] = 2.0
    max_write_s: Annotated[float, Field(gt=0, strict=False)] = 2.0
    clock_drift: Annotated[float, Field(ge=0, lt=0.5, strict=False)] = 0.01
    timeout_s: Annotated[float, Field(gt=0, strict=False)] = 1.0  # one Redis command
    # Requests of the shared budget that may go at once (default: a tenth of the quota).
    budget_burst: NonNegInt | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Coordination:
        problems: list[str] = []
        if self.backend == "redis" and self.url is None:
            problems.append('url: required with backend = "redis"')
        if self.url is not None and urlsplit(self.url).password is not None:
            problems.append(
                "url: holds a password; name it with password_credential or password_env instead"
            )
        if self.password_credential is not None and self.password_env is not None:
            problems.append("set at most one of password_credential or password_env")
        problems.extend(self.timing().problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def timing(self) -> lease.LeaseTiming:
        return lease.LeaseTiming(
            lease_s=self.lease_s,
            renew_deadline_s=self.renew_deadline_s,
            retry_s=self.retry_s,
            max_write_s=self.max_write_s,
            clock_drift=self.clock_drift,
        )


class CampaignRef(_Model):
    id: Name
    weight: Annotated[float, Field(gt=0, strict=True)] = 1.0


class RouteRef(_Model):
    site_id: Name
    id: Name
    # What syncd may do to the route's membership for this group: "managed" adds the group's
    # healthy trunks and removes its failed ones; "order-only" (the default: it can never put a
    # carrier on a route) only reorders the group's trunks already on it, a failed one last.
    trunks: Literal["managed", "order-only"] = "order-only"


# A metric label: short, stable, Prometheus-friendly (the trunk base id when not given).
Label = Annotated[str, Field(strict=True), AfterValidator(_label)]


class Trunk(_Model):
    trunk_base_id: Name
    capacity: PositiveInt
    priority: NonNegInt = 1
    label: Label | None = None

    @property
    def metric_label(self) -> str:
        return self.label or self.trunk_base_id


class CallRate(_Model):
    property: Name = "trunk_maxCallRate"
    per_line: Annotated[float, Field(gt=0, strict=True)]
    period_s: PositiveInt = 5
    minimum: PositiveInt = 1


class Group(_Model):
    name: Name
    management_units: tuple[Name, ...] = Field(min_length=1)
    campaigns: tuple[CampaignRef, ...] = ()
    routes: tuple[RouteRef, ...] = ()
    trunks: tuple[Trunk, ...] = Field(min_length=1)
    lines_per_agent: Annotated[float, Field(gt=0, strict=True)]
    min_lines: NonNegInt = 0
    max_lines: PositiveInt
    hysteresis: NonNegInt = 0
    call_rate: CallRate | None = None
    failed_trunks: Literal["remove", "last"] = "remove"

    def spec(self) -> planner.GroupSpec:
        return planner.GroupSpec(
            name=self.name,
            management_units=self.management_units,
            campaigns=tuple(planner.CampaignSpec(id=c.id, weight=c.weight) for c in self.campaigns),
            routes=tuple(
                planner.RouteSpec(
                    site_id=r.site_id, id=r.id, trunks=planner.RouteMembership(r.trunks)
                )
                for r in self.routes
            ),
            trunks=tuple(
                allocation.TrunkSpec(
                    trunk_base_id=t.trunk_base_id,
                    capacity=t.capacity,
                    priority=t.priority,
                    label=t.metric_label,
                )
                for t in self.trunks
            ),
            lines_per_agent=self.lines_per_agent,
            min_lines=self.min_lines,
            max_lines=self.max_lines,
            hysteresis=self.hysteresis,
            call_rate=None
            if self.call_rate is None
            else planner.CallRateSpec(
                property=self.call_rate.property,
                per_line=self.call_rate.per_line,
                period_s=self.call_rate.period_s,
                minimum=self.call_rate.minimum,
            ),
            failed_trunks=planner.FailedTrunks(self.failed_trunks),
        )


class Config(_Model):
    """The whole configuration snapshot; replaced as a whole on reload, never mutated."""

    state_path: Name = "/var/lib/syncd/state.sqlite3"
    audit_retention_days: PositiveInt = 90  # audit trail rows older than this are pruned daily
    org: Org
    rate_limit: RateLimit = RateLimit()
    schedule: Schedule
    health: Health = Health()
    notifications: Notifications = Notifications()
    safety: Safety = Safety()
    metrics: Metrics = Metrics()
    coordination: Coordination = Coordination()
    groups: tuple[Group, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _burst_below_quota(self) -> Config:
        burst = self.coordination.budget_burst
        if burst is not None and burst >= self.rate_limit.requests_per_minute - 1:
            raise ValueError(
                f"coordination.budget_burst: must be below rate_limit.requests_per_minute - 1"
                f" ({self.rate_limit.requests_per_minute - 1}), got {burst}"
            )
        return self

    def shared_burst(self) -> int:
        """The shared budget's burst: as configured, or a tenth of the quota."""
        burst = self.coordination.budget_burst
        return self.rate_limit.requests_per_minute // 10 if burst is None else burst

    def trunk_labels(self) -> dict[str, str]:
        """Trunk base id → its metric label."""
        return {t.trunk_base_id: t.metric_label for g in self.groups for t in g.trunks}

    def planner_settings(self) -> planner.PlannerSettings:
        return planner.PlannerSettings(
            groups=tuple(g.spec() for g in self.groups),
            interval_s=self.schedule.interval_minutes * 60,
            lead_time_s=self.schedule.lead_time_s,
            staffed_categories=tuple(self.schedule.staffed_categories),
        )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith(("function-", "literal[", "tagged-union[")):
            out += f".{part}" if out else part
    return out or "(top level)"


def _message(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    ctx = err.get("ctx") or {}
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than_equal": "<="}
    if kind in bounds:
        limit = next(iter(ctx.values()), "?")
        return f"must be {bounds[kind]} {limit}, got {err.get('input')!r}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '?')}, got {err.get('input')!r}"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if kind.endswith(("_type", "_parsing")):
        # A wrong type: show what was written (short; a whole table would be long).
        shown = repr(err.get("input"))
        return f"{msg}, got {shown if len(shown) <= 60 else shown[:57] + '...'}"
    return msg


def _list(value: object) -> list[Any]:
    """A list of the raw data, or none: a list written as another type (``trunks = 3``) is
    the model's problem to name; the checks across groups must not raise on it."""
    return value if isinstance(value, list) else []


def _cross_checks(data: Any) -> list[str]:
    """Checks across groups, on the raw data so they run even when a field elsewhere is bad."""
    problems: list[str] = []
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        return problems
    names: dict[str, int] = {}
    owners: dict[str, dict[str, str]] = {"trunk": {}, "label": {}, "campaign": {}}

    def claim(kind: str, value: object, where: str, clash: str) -> None:
        """A value that must be unique across groups: the second holder is a problem."""
        if not isinstance(value, str):
            return
        seen = owners[kind]
        if value in seen:
            problems.append(clash.format(where=where, value=value, first=seen[value]))
        seen.setdefault(value, where.rsplit(".", 1)[0])

    for gi, group in enumerate(groups):
        if not isinstance(group, dict):
            continue
        here = f"groups[{gi}]"
        name = group.get("name")
        if isinstance(name, str):
            if name in names:
                problems.append(
                    f"{here}.name: duplicate group name {name!r} (groups[{names[name]}])"
                )
            names.setdefault(name, gi)
        lo, hi = group.get("min_lines"), group.get("max_lines")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            problems.append(f"{here}.min_lines: {lo} is greater than max_lines {hi}")
        for ti, trunk in enumerate(_list(group.get("trunks"))):
            if not isinstance(trunk, dict):
                continue
            claim(
                "trunk",
                trunk.get("trunk_base_id"),
                f"{here}.trunks[{ti}].trunk_base_id",
                "{where}: {value} already belongs to {first} (a trunk belongs to one group)",
            )
            claim(
                "label",
                trunk.get("label"),
                f"{here}.trunks[{ti}].label",
                "{where}: {value!r} is already the label of {first}"
                " (labels tell trunks apart in the metrics)",
            )
        seen_routes: dict[str, int] = {}
        for ri, ref in enumerate(_list(group.get("routes"))):
            rid = ref.get("id") if isinstance(ref, dict) else None
            if isinstance(rid, str) and rid in seen_routes:
                problems.append(
                    f"{here}.routes[{ri}].id: {rid} is already listed as {here}.routes"
                    f"[{seen_routes[rid]}] (one membership policy per route and group)"
                )
            if isinstance(rid, str):
                seen_routes.setdefault(rid, ri)
        for ci, camp in enumerate(_list(group.get("campaigns"))):
            if isinstance(camp, dict):
                claim(
                    "campaign",
                    camp.get("id"),
                    f"{here}.campaigns[{ci}].id",
                    "{where}: {value} already belongs to {first} (a campaign belongs to one group)",
                )
    return problems


def parse(text: str, source: str = "<config>") -> Config:
    """Validate TOML text; raises ``errors.ConfigError`` listing every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line L, column C)".
        raise errors.ConfigError([f"{source}: TOML syntax error: {exc}"]) from exc
    problems: list[str] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except pydantic.ValidationError as exc:
        found = exc.errors()
        locs = [tuple(e["loc"]) for e in found]
        for e in found:
            loc = tuple(e["loc"])
            # A list whose items failed is also "too short" after validation: noise, drop it.
            if e["type"] == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs):
                continue
            problems.append(f"{_path(loc)}: {_message(e)}")
    problems.extend(_cross_checks(data))
    if problems or config is None:
        raise errors.ConfigError(problems)
    return config


# Sections a running daemon cannot swap on SIGHUP: they are bound to open connections, the open
# state file, the bound metrics socket, the coordination backend and the notification channel.
# Everything else (groups, schedule, health) reloads.
RESTART_ONLY = ("org", "rate_limit", "state_path", "metrics", "coordination", "notifications")


def restart_only_changes(old: Config, new: Config) -> list[str]:
    """The sections that differ between two snapshots but take effect only at a restart."""
    return [name for name in RESTART_ONLY if getattr(old, name) != getattr(new, name)]


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a file (``OSError`` when it cannot be read; a file that is not UTF-8
    text is a ``ConfigError`` like any other invalid content, with the byte offset)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise errors.ConfigError(
            [f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})"]
        ) from None
    return parse(text, source=str(path))


# --------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------


def resolve_secret(cred: Credential, environ: Mapping[str, str] | None = None) -> str:
    """The client secret of one credential, from ``$CREDENTIALS_DIRECTORY/<name>`` (systemd) or
    the named environment variable; ``errors.ConfigError`` (without the value) when absent."""
    return _read_secret(
        f"secret of client {cred.client_id}", cred.secret_credential, cred.secret_env, environ
    )


def resolve_redis_password(
    coord: Coordination, environ: Mapping[str, str] | None = None
) -> str | None:
    """The Redis password (None when none is named), read like a client secret."""
    if coord.password_credential is None and coord.password_env is None:
        return None
    return _read_secret(
        "coordination password", coord.password_credential, coord.password_env, environ
    )


def _read_secret(
    what: str, credential: str | None, env_name: str | None, environ: Mapping[str, str] | None
) -> str:
    env = os.environ if environ is None else environ
    if env_name is not None:
        value = env.get(env_name, "")
        if not value:
            raise errors.ConfigError([f"{what}: environment variable {env_name} is not set"])
        return value
    directory = env.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        raise errors.ConfigError(
            [
                f"{what}: CREDENTIALS_DIRECTORY is not set "
                f"(run under systemd with LoadCredential={credential})"
            ]
        )
    try:
        value = (Path(directory) / str(credential)).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise errors.ConfigError(
            [f"{what}: cannot read credential {credential}: {exc.strerror}"]
        ) from exc
    if not value:
        raise errors.ConfigError([f"{what}: credential is empty"])
    return value


def check_secrets(config: Config, environ: Mapping[str, str] | None = None) -> None:
    """Every secret of the token pool reachable, or one ``ConfigError`` listing the others."""
    problems: list[str] = []
    for i, cred in enumerate(config.org.credentials):
        try:
            resolve_secret(cred, environ)
        except errors.ConfigError as exc:
            where = "org" if i == 0 else f"org.token_pool[{i - 1}]"
            problems.extend(f"{where}: {p}" for p in exc.problems)
    if config.coordination.backend == "redis":
        try:
            resolve_redis_password(config.coordination, environ)
        except errors.ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise errors.ConfigError(problems)


# --------------------------------------------------------------------------------------------
# Command-line overrides
# --------------------------------------------------------------------------------------------


def override_endpoints(config: Config, api_url: str | None, login_url: str | None) -> Config:
    """The configuration pointed at other API/login base URLs (``--api-url``/``--login-url``,
    e.g. a simulator started by hand); the region is then unused. Given only ``api_url``, the
    login URL follows the SDKs' rule (``api.`` → ``login.``, else the same host)."""
    if api_url is None and login_url is None:
        return config
    api = api_url or config.org.api_base
    login = login_url or (regions.login_url_for(api) if api_url else config.org.login_base)
    data = config.org.model_dump()
    data.update(region=None, api_url=api, login_url=login)
    try:
        org = Org.model_validate(data)
    except pydantic.ValidationError as exc:
        # A login URL derived from a bad --api-url is bad for the same reason: say it once.
        given = {"api_url": api_url, "login_url": login_url}
        raise errors.ConfigError(
            [
                f"--{_path(tuple(e['loc'])).replace('_', '-')}: {_message(e)}"
                for e in exc.errors()
                if not e["loc"] or given.get(str(e["loc"][0]), "") is not None
            ]
        ) from None
    return config.model_copy(update={"org": org})
