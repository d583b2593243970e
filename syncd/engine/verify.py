"""``syncd verify``: online checks of a configuration before the daemon first runs.

Role: with the configuration's own credentials, read (never write) what the daemon will read
and report, one line per check, ``ok``, ``PROBLEM`` (with what to do) or ``unverified``: the
credentials; each permission the daemon uses (a read of each endpoint; a write permission
counts as verified only where Genesys documents one permission for the read and the write);
every configured id exists and is of the expected kind (by key path); each group's trunks
are on its routes or will be added by its routes' policy; the business units' time zones;
the org's rate limit per token (the limits API; "unverified" with the reason when it cannot be
read) and the quota syncd will pace by; the rate-limit headers seen. The last line counts the
API requests verify itself sent. Exit 0 when nothing is a problem, 1 otherwise, 78 when the
configuration itself is invalid.

It must not write to the org, and it must not plan (the planner does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd import config as config_mod
from syncd import errors
from syncd.core import model, pacing
from syncd.engine import discover, limits, runner
from syncd.genesys import api as api_mod
from syncd.genesys import regions
from syncd.obs import logs

log = logging.getLogger(__name__)

T = TypeVar("T")

EX_OK = 0
EX_PROBLEM = 1
EX_CONFIG = 78

# The permissions the daemon needs per feature (docs/genesys-setup.md, from the SDK docs).
WFM_READ = "wfm:schedule:view or wfm:publishedSchedule:view"
TELEPHONY = "telephony:plugin:all"
CAMPAIGN_VIEW = "outbound:campaign:view"
CAMPAIGN_EDIT = "outbound:campaign:edit"
ROLE_READ = ("oauth:client:view", "authorization:role:view")
RATE_HEADERS = ("inin-ratelimit-allowed", "inin-ratelimit-count", "inin-ratelimit-reset")


class Verdict(enum.StrEnum):
    OK = "ok"
    PROBLEM = "PROBLEM"
    UNVERIFIED = "unverified"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    verdict: Verdict
    subject: str
    detail: str

    def line(self) -> str:
        return f"{self.verdict.value:<10} {self.subject}: {self.detail}"


@dataclasses.dataclass(slots=True)
class Report:
    checks: list[Check] = dataclasses.field(default_factory=list)
    # The API requests verify sent (every attempt, retries included; logins aside).
    requests: discover.RequestCount = dataclasses.field(default_factory=discover.RequestCount)

    def add(self, verdict: Verdict, subject: str, detail: str) -> None:
        self.checks.append(Check(verdict=verdict, subject=subject, detail=detail))

    @property
    def problems(self) -> int:
        return sum(1 for c in self.checks if c.verdict is Verdict.PROBLEM)


def _refused(exc: errors.ApiError, permission: str) -> str:
    status = getattr(exc, "status", 0)
    if status in (401, 403):
        return f"refused (HTTP {status}): give the OAuth client's role {permission}"
    return f"failed: {exc}"


async def _read(
    report: Report, subject: str, permission: str, call: Callable[[], Awaitable[T]]
) -> T | None:
    """One permission check: the read works (ok) or is refused (a problem, with the fix)."""
    try:
        result = await call()
    except errors.AuthError:
        raise
    except errors.ApiError as exc:
        report.add(Verdict.PROBLEM, subject, _refused(exc, permission))
        return None
    report.add(Verdict.OK, subject, f"readable ({permission})")
    return result


@dataclasses.dataclass(slots=True)
class _Index:
    """Every id read, with its kind and name: a configured id of the wrong kind is named."""

    kinds: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)

    def add(self, kind: str, ident: str, name: str) -> None:
        self.kinds.setdefault(ident, (kind, name))

    def missing(self, ident: str, expected: str) -> str:
        found = self.kinds.get(ident)
        if found is not None:
            kind, name = found
            return f"{ident} is {kind} {name!r}, not {expected}"
        return f"{ident} is not {expected} in this org (a typo?)"


async def _check_ids(report: Report, cfg: config_mod.Config, api: api_mod.OnboardingApi) -> None:
    idx = _Index()
    mus: dict[str, str] = {}
    for i, bu_id in enumerate(cfg.schedule.business_units):
        where = f"schedule.business_units[{i}]"
        try:
            info = await api.business_unit(bu_id)
        except errors.NotFound:
            report.add(
                Verdict.PROBLEM, where, f"{bu_id} is not a business unit in this org (a typo?)"
            )
            continue
        except errors.ClientError as exc:
            report.add(Verdict.PROBLEM, where, _refused(exc, WFM_READ))
            continue
        idx.add("business unit", bu_id, info.name)
        try:
            today = dt.datetime.now(ZoneInfo(info.time_zone)).date()
        except (ZoneInfoNotFoundError, ValueError):
            report.add(
                Verdict.PROBLEM,
                where,
                f"business unit {info.name!r} has time zone {info.time_zone!r}, which this"
                " machine's zone database does not know: install tzdata",
            )
            continue
        report.add(
            Verdict.OK,
            where,
            f"business unit {info.name!r}, time zone {info.time_zone}, weeks start on"
            f" {info.start_day_of_week}",
        )
        units = await _read(
            report,
            f"management units of {info.name!r}",
            WFM_READ,
            functools.partial(api.management_units, bu_id),
        )
        for mu in units or ():
            mus[mu.id] = info.name
            idx.add("management unit", mu.id, mu.name)
        await _read(
            report,
            f"activity codes of {info.name!r}",
            WFM_READ,
            functools.partial(api.activity_codes, bu_id),
        )
        week = _week_start(today, info.start_day_of_week).isoformat()
        await _read(
            report,
            f"schedule listing of {info.name!r}",
            WFM_READ,
            functools.partial(api.schedule_listing, bu_id, week),
        )
    tbs = await _read(report, "trunk base settings (read and PUT)", TELEPHONY, api.list_trunk_bases)
    for tb in tbs or ():
        idx.add("trunk base", tb.id, tb.name)
    trunks = await _read(report, "trunk status listing", TELEPHONY, api.list_trunks)
    org_routes = await _read(
        report, "outbound routes (read and PUT)", TELEPHONY, api.list_org_routes
    )
    routes: dict[str, api_mod.SiteRoute] = {}
    for sr in org_routes or ():
        routes[sr.route.id] = sr
        idx.add("outbound route", sr.route.id, sr.route.name)
        idx.add("site", sr.site.id, sr.site.name)
    campaigns: dict[str, model.Campaign] = {}
    if any(g.campaigns for g in cfg.groups):
        found = await _read(report, "campaigns", CAMPAIGN_VIEW, api.list_campaigns)
        campaigns = {c.id: c for c in found or ()}
        for c in campaigns.values():
            idx.add("campaign", c.id, c.name)
    down = {t.trunk_base_id for t in trunks or () if not (t.connected and t.in_service)}
    for gi, g in enumerate(cfg.groups):
        here = f"groups[{gi}]"
        for mi, mu_id in enumerate(g.management_units):
            if mu_id not in mus:
                report.add(
                    Verdict.PROBLEM,
                    f"{here}.management_units[{mi}]",
                    idx.missing(mu_id, "a management unit of the configured business units"),
                )
        for ci, camp in enumerate(g.campaigns):
            if campaigns and camp.id not in campaigns:
                report.add(
                    Verdict.PROBLEM,
                    f"{here}.campaigns[{ci}].id",
                    idx.missing(camp.id, "a campaign"),
                )
        tb_ids = {tb.id for tb in tbs or ()}
        for ti, t in enumerate(g.trunks):
            if tbs is not None and t.trunk_base_id not in tb_ids:
                report.add(
                    Verdict.PROBLEM,
                    f"{here}.trunks[{ti}].trunk_base_id",
                    idx.missing(t.trunk_base_id, "a trunk base"),
                )
            elif t.trunk_base_id in down:
                report.add(
                    Verdict.OK,
                    f"{here}.trunks[{ti}]",
                    f"{idx.kinds[t.trunk_base_id][1]!r} is down now (syncd will route around it)",
                )
        on_routes: set[str] = set()
        for ri, ref in enumerate(g.routes):
            key = f"{here}.routes[{ri}]"
            listed = routes.get(ref.id)
            if org_routes is None:
                continue
            if listed is None:
                report.add(
                    Verdict.PROBLEM,
                    f"{key}.id",
                    idx.missing(ref.id, "an outbound route"),
                )
                continue
            sr = listed
            if sr.site.id != ref.site_id:
                report.add(
                    Verdict.PROBLEM,
                    f"{key}.site_id",
                    f"route {sr.route.name!r} is on site {sr.site.name!r} ({sr.site.id}),"
                    f" not {ref.site_id}",
                )
                continue
            policy = ref.trunks
            members = set(sr.route.trunk_base_ids)
            on_routes |= members
            absent = [t.trunk_base_id for t in g.trunks if t.trunk_base_id not in members]
            if absent and policy == "managed":
                report.add(
                    Verdict.OK,
                    key,
                    f"route {sr.route.name!r}: {len(absent)} trunk(s) of the group will be added"
                    " (policy managed)",
                )
            else:
                report.add(
                    Verdict.OK,
                    key,
                    f"route {sr.route.name!r} on site {sr.site.name!r}, policy {policy}",
                )
        managed = any(r.trunks == "managed" for r in g.routes)
        for ti, t in enumerate(g.trunks):
            if (
                org_routes is not None
                and g.routes
                and not managed
                and t.trunk_base_id not in on_routes
                and t.trunk_base_id in tb_ids  # an unknown id is reported above
            ):
                report.add(
                    Verdict.PROBLEM,
                    f"{here}.trunks[{ti}]",
                    f"{t.trunk_base_id} is on none of the group's routes and no route of the group"
                    ' is managed: add it to a route, or set trunks = "managed" on one',
                )


async def verify(cfg: config_mod.Config, report: Report) -> None:
    """Run every check into ``report`` (the caller prints it)."""
    try:
        creds = runner.credentials_of(cfg)
    except errors.ConfigError as exc:
        for p in exc.problems:
            report.add(Verdict.PROBLEM, "credentials", f"{p}")
        return
    endpoints = regions.Endpoints(api_url=cfg.org.api_base, login_url=cfg.org.login_base)
    for i, cred in enumerate(creds):
        where = "org" if i == 0 else f"org.token_pool[{i - 1}]"
        async with discover.open_api(endpoints, cred, report.requests) as api:
            try:
                resp = await api.token_info()
            except errors.AuthError as exc:
                report.add(
                    Verdict.PROBLEM,
                    f"{where} credentials",
                    f"{exc} Check client_id, its secret and the region.",
                )
                continue
            except errors.ApiError as exc:
                report.add(Verdict.PROBLEM, f"{where} credentials", f"{exc}")
                continue
            body = resp.json()
            client = body.get("OAuthClient", {}) if isinstance(body, dict) else {}
            orgname = (
                body.get("organization", {}).get("name", "?") if isinstance(body, dict) else "?"
            )
            report.add(
                Verdict.OK,
                f"{where} credentials",
                f"accepted: client {client.get('name', cred.client_id)!r} of org {orgname!r}"
                f" at {regions.host_of(cfg.org.api_base)}",
            )
            if i == 0:
                try:
                    quota = await _check_limits(report, cfg, api)
                    seen = {h: resp.headers.get(h) for h in RATE_HEADERS if resp.headers.get(h)}
                    if seen:
                        report.add(
                            Verdict.OK,
                            "rate-limit headers",
                            ", ".join(
                                f"{h.removeprefix('inin-ratelimit-')} {v}" for h, v in seen.items()
                            )
                            + f" (syncd paces at {quota}/min per token)",
                        )
                    else:
                        report.add(
                            Verdict.UNVERIFIED,
                            "rate-limit headers",
                            "none sent; syncd paces by its own count and Retry-After alone",
                        )
                    await _check_roles(report, cfg, api, cred.client_id)
                    await _check_ids(report, cfg, api)
                except errors.ApiError as exc:
                    report.add(Verdict.PROBLEM, "reads", f"stopped: {exc}")


async def _check_limits(report: Report, cfg: config_mod.Config, api: api_mod.OnboardingApi) -> int:
    """The org's rate limit per token (docs/genesys-setup.md, "Rate limits"), as the daemon
    reads it at start; returns the quota per minute syncd will pace each token by."""
    choice = await limits.read_quota(
        api, configured=cfg.rate_limit.requests_per_minute, window_s=60.0
    )
    known = choice.org_per_minute is not None
    report.add(
        Verdict.OK if known else Verdict.UNVERIFIED,
        f"org rate limit ({pacing.LIMITS_NAMESPACE})",
        choice.sentence().removesuffix("."),
    )
    return choice.quota


def granted(permission: str, grants: frozenset[str]) -> bool:
    """Whether ``domain:entity:action`` is among ``grants`` (each part may be ``*``)."""
    want = permission.split(":")
    for grant in grants:
        have = grant.split(":")
        if len(have) == len(want) and all(h in ("*", w) for h, w in zip(have, want, strict=True)):
            return True
    return False


def _needed(cfg: config_mod.Config) -> list[tuple[str, tuple[str, ...]]]:
    """(what for, ANY of these permissions) for every feature this configuration uses."""
    needs = [
        ("WFM schedules (read)", ("wfm:schedule:view", "wfm:publishedSchedule:view")),
        ("trunk bases and routes (read and write)", (TELEPHONY,)),
    ]
    if any(g.campaigns for g in cfg.groups):
        needs += [
            ("campaigns (read)", (CAMPAIGN_VIEW,)),
            ("campaign line counts (write)", (CAMPAIGN_EDIT,)),
        ]
    return needs


async def _check_roles(
    report: Report, cfg: config_mod.Config, api: api_mod.OnboardingApi, client_id: str
) -> None:
    """The write permissions, from the OAuth client's roles when the client may read them."""
    try:
        roles = [await api.role_permissions(r) for r in await api.client_role_ids(client_id)]
    except errors.ApiError as exc:
        if getattr(exc, "status", 0) not in (403, 404):
            raise
        writes = [f"{what}: {' or '.join(p)}" for what, p in _needed(cfg) if "write" in what]
        report.add(
            Verdict.UNVERIFIED,
            "write permissions",
            "the client's roles are not readable (give it "
            + " and ".join(ROLE_READ)
            + " to check them here); check by hand: "
            + "; ".join(writes),
        )
        return
    grants = frozenset(p for _, perms in roles for p in perms)
    names = ", ".join(repr(name) for name, _ in roles) or "none"
    for what, anyof in _needed(cfg):
        hit = next((p for p in anyof if granted(p, grants)), None)
        if hit is not None:
            report.add(Verdict.OK, f"permission for {what}", f"{hit} (roles {names})")
        else:
            report.add(
                Verdict.PROBLEM,
                f"permission for {what}",
                f"no role of client {client_id} ({names}) grants {' or '.join(anyof)}:"
                " add it to the client's role",
            )


DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _week_start(day: dt.date, start_day: str) -> dt.date:
    """The first day of the business unit's week holding ``day`` (the schedule ``weekId``)."""
    first = DAYS.index(start_day) if start_day in DAYS else 0
    return day - dt.timedelta(days=(day.weekday() - first) % 7)


async def run_verify(
    path: str, *, log_level: str = "INFO", endpoints: runner.Overrides = (None, None)
) -> int:
    logs.setup_logging(log_level, stream=sys.stderr)
    try:
        cfg = runner.load_config(path, endpoints)
    except errors.ConfigError as exc:
        print(f"{path}: invalid configuration ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return EX_CONFIG
    except OSError as exc:
        print(f"{path}: cannot read the configuration: {exc.strerror}", file=sys.stderr)
        return EX_CONFIG
    report = Report()
    await verify(cfg, report)
    for check in report.checks:
        print(check.line())
    verdict = "no problems" if not report.problems else f"{report.problems} problem(s)"
    print(
        f"syncd verify: {verdict} in {len(report.checks)} check(s),"
        f" {report.requests.total} API request(s) sent"
    )
    return EX_PROBLEM if report.problems else EX_OK
