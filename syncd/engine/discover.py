"""``syncd discover``: read an org once and write a starting configuration for it.

Role: with read-only calls (``OnboardingApi``), collect the business units (time zone, week
start), their management units with agent counts and activity codes, the outbound routes of
every site with their BYOC trunk bases, each trunk's current status, and the campaigns with
their site and line count; then render one TOML file that ``syncd check-config`` accepts as it
is, each id followed by a comment with its name, every guess marked ``TODO``.

The rendered file is safe before anyone edits it (docs/genesys-setup.md says what ``syncd once
--dry-run`` plans on it): trunk priorities repeat the order each trunk holds on its route now,
failed trunks stay on their routes (``failed_trunks = "last"``), routes keep their members
(policy ``order-only``), campaigns are listed but commented out (syncd changes no line count
until the operator opts in), and no call rate is managed.

It must not write to the org, and it must not plan (the planner does).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson

from syncd import config as config_mod
from syncd import errors
from syncd.core import model, pacing
from syncd.genesys import api as api_mod
from syncd.genesys import auth, regions, transport
from syncd.obs import logs

log = logging.getLogger(__name__)

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_CONFIG = 78

PLACEHOLDER_CAPACITY = 10  # lines per trunk until the operator writes the carrier's figure
PLACEHOLDER_LINES_PER_AGENT = 1.0
DEFAULT_POLICY = "order-only"  # a discovered route keeps its members; syncd only reorders them


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DiscoverArgs:
    region: str | None = None
    client_id: str | None = None
    secret_env: str = "SYNCD_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret
    config: str | None = None
    api_url: str | None = None
    login_url: str | None = None
    output: str | None = None
    group_by: str = "bu"
    log_level: str = "INFO"


# --------------------------------------------------------------------------------------------
# What the org holds
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ManagementUnit:
    id: str
    name: str
    agents: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BusinessUnit:
    id: str
    name: str
    time_zone: str
    start_day_of_week: str
    management_units: tuple[ManagementUnit, ...]
    activity_codes: tuple[model.ActivityCode, ...]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TrunkBase:
    id: str
    name: str
    servers: tuple[str, ...]  # the carrier's SIP servers (trunk_transport_serverProxyList)
    status: str  # "connected", "disconnected", "no trunk" (not deployed on an edge)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Inventory:
    business_units: tuple[BusinessUnit, ...]
    routes: tuple[api_mod.SiteRoute, ...]
    trunk_bases: dict[str, TrunkBase]
    campaigns: tuple[model.Campaign, ...]


def _servers(tb: model.TrunkBase) -> tuple[str, ...]:
    props = dict(tb.properties)
    value = props.get("trunk_transport_serverProxyList")
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()


def _status(trunks: list[model.TrunkStatus]) -> str:
    if not trunks:
        return "no trunk"
    up = sum(1 for t in trunks if t.connected and t.in_service)
    return "connected" if up == len(trunks) else f"{len(trunks) - up} of {len(trunks)} down"


async def read_org(api: api_mod.OnboardingApi) -> Inventory:
    """Everything discover needs, read once (a few requests: see docs/genesys-setup.md)."""
    bus = []
    for ref in await api.business_units():
        info = await api.business_unit(ref.id)
        mus = []
        for mu in await api.management_units(ref.id):
            agents = await api.management_unit_agents(mu.id)
            mus.append(ManagementUnit(id=mu.id, name=mu.name, agents=len(agents)))
        bus.append(
            BusinessUnit(
                id=ref.id,
                name=info.name or ref.name,
                time_zone=info.time_zone,
                start_day_of_week=info.start_day_of_week,
                management_units=tuple(mus),
                activity_codes=await api.activity_codes(ref.id),
            )
        )
    by_base: dict[str, list[model.TrunkStatus]] = {}
    for trunk in await api.list_trunks():
        by_base.setdefault(trunk.trunk_base_id, []).append(trunk)
    trunk_bases = {
        tb.id: TrunkBase(
            id=tb.id, name=tb.name, servers=_servers(tb), status=_status(by_base.get(tb.id, []))
        )
        for tb in await api.list_trunk_bases()
    }
    return Inventory(
        business_units=tuple(bus),
        routes=await api.list_org_routes(),
        trunk_bases=trunk_bases,
        campaigns=await api.list_campaigns(),
    )


# --------------------------------------------------------------------------------------------
# Groups
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Group:
    name: str
    heading: list[str]
    management_units: list[tuple[ManagementUnit, BusinessUnit]]
    sites: list[api_mod.NamedRef]
    routes: list[api_mod.SiteRoute] = dataclasses.field(default_factory=list)
    trunks: list[str] = dataclasses.field(default_factory=list)
    campaigns: list[model.Campaign] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def _slug(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "group"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _sites(inv: Inventory) -> list[api_mod.NamedRef]:
    """Every site that has an outbound route or a campaign, by name."""
    names: dict[str, str] = {}
    for sr in inv.routes:
        names.setdefault(sr.site.id, sr.site.name)
    for camp in inv.campaigns:
        if camp.site_id is not None:
            names.setdefault(camp.site_id, "")
    return sorted(
        (api_mod.NamedRef(id=i, name=n) for i, n in names.items()), key=lambda s: (s.name, s.id)
    )


def _groups(inv: Inventory, group_by: str) -> list[_Group]:
    """Business units and sites, tied the only way the API allows: it has no link between a
    business unit's agents and the site they dial through, so sites are dealt to business
    units in turn (by name) and every group says so in a TODO."""
    sites = _sites(inv)
    bus = list(inv.business_units)
    taken: set[str] = set()
    groups: list[_Group] = []
    if not bus:
        return groups
    dealt: dict[str, list[api_mod.NamedRef]] = {bu.id: [] for bu in bus}
    for i, site in enumerate(sites):
        dealt[bus[i % len(bus)].id].append(site)
    if group_by == "site":
        for bu in bus:
            own = dealt[bu.id]
            for i, site in enumerate(own):
                mus = [(mu, bu) for mu in bu.management_units[i :: len(own)]]
                groups.append(
                    _Group(
                        name=_slug(site.name or site.id, taken),
                        heading=[
                            f"Site {site.name} ({site.id}), with management units of business"
                            f" unit {bu.name}.",
                        ],
                        management_units=mus,
                        sites=[site],
                    )
                )
    else:
        for bu in bus:
            groups.append(
                _Group(
                    name=_slug(bu.name or bu.id, taken),
                    heading=[
                        f"Business unit {bu.name} ({bu.id}): time zone {bu.time_zone},"
                        f" weeks start on {bu.start_day_of_week}.",
                    ],
                    management_units=[(mu, bu) for mu in bu.management_units],
                    sites=dealt[bu.id],
                )
            )
    claimed: dict[str, str] = {}
    for g in groups:
        site_ids = {s.id for s in g.sites}
        g.routes = [sr for sr in inv.routes if sr.site.id in site_ids]
        for sr in g.routes:
            for tb in sr.route.trunk_base_ids:
                owner = claimed.setdefault(tb, g.name)
                if owner == g.name and tb not in g.trunks:
                    g.trunks.append(tb)
                elif owner != g.name:
                    g.notes.append(
                        f"{_name(inv, tb)} ({tb}) on {sr.route.name} belongs to group {owner}"
                        " (a trunk belongs to one group)."
                    )
        g.campaigns = [c for c in inv.campaigns if c.site_id in site_ids]
    return groups


def _name(inv: Inventory, tb_id: str) -> str:
    tb = inv.trunk_bases.get(tb_id)
    return tb.name if tb is not None else "an unknown trunk base"


# --------------------------------------------------------------------------------------------
# TOML
# --------------------------------------------------------------------------------------------


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return orjson.dumps(text).decode()


def _c(text: str) -> str:
    """Text safe inside a TOML comment (one line, no control characters)."""
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)


def _org_lines(org: dict[str, object]) -> Iterator[str]:
    yield "[org]"
    for key in ("region", "api_url", "login_url", "client_id", "secret_credential", "secret_env"):
        value = org.get(key)
        if isinstance(value, str):
            yield f"{key} = {_q(value)}"
    if org.get("token_pool"):
        yield "# (the token pool of the configuration discover read was not copied)"


def _group_lines(g: _Group, inv: Inventory) -> Iterator[str]:
    agents = sum(mu.agents for mu, _ in g.management_units)
    usable = bool(g.management_units) and bool(g.trunks)
    p = "" if usable else "# "
    yield ""
    for line in g.heading:
        yield f"# {_c(line)}"
    yield (
        "# TODO: check that these agents dial through "
        + (", ".join(_c(s.name or s.id) for s in g.sites) or "no site")
        + " (the API does not link business units to sites; discover dealt sites in turn)."
    )
    if not usable:
        missing = "management unit" if not g.management_units else "trunk on an outbound route"
        yield f"# Commented out: no {missing} for this group. Give it one, then uncomment."
    for note in g.notes:
        yield f"# Note: {_c(note)}"
    yield f"{p}[[groups]]"
    yield f"{p}name = {_q(g.name)}"
    yield f"{p}management_units = ["
    for mu, bu in g.management_units:
        yield f"{p}  {_q(mu.id)},  # {_c(mu.name)}: {mu.agents} agents ({_c(bu.name)})"
    yield f"{p}]"
    if g.campaigns:
        yield "# Campaigns dialling from these sites. syncd changes no line count until you"
        yield "# uncomment them (weight = each campaign's share of the group's lines):"
        yield "# campaigns = ["
        for c in g.campaigns:
            yield (
                f"#   {{ id = {_q(c.id)}, weight = 1 }},  # {_c(c.name)}: status {_c(c.status)},"
                f" {c.outbound_line_count if c.outbound_line_count is not None else 'no'}"
                " lines now"
            )
        yield "# ]"
    yield f"{p}routes = ["
    for sr in g.routes:
        policy = f", trunks = {_q(DEFAULT_POLICY)}"
        yield (
            f"{p}  {{ site_id = {_q(sr.site.id)}, id = {_q(sr.route.id)}{policy} }},"
            f"  # {_c(sr.route.name)} ({_c(sr.site.name)}, {len(sr.route.trunk_base_ids)}"
            " trunk bases)"
        )
    yield f"{p}]"
    yield f"{p}trunks = ["
    labels: set[str] = set()
    for priority, tb_id in enumerate(g.trunks, start=1):
        tb = inv.trunk_bases.get(tb_id)
        name = tb.name if tb is not None else tb_id
        label = _slug(name, labels)[:64]
        where = f", {_c(tb.servers[0])}" if tb is not None and tb.servers else ""
        status = tb.status if tb is not None else "not readable"
        yield (
            f"{p}  {{ trunk_base_id = {_q(tb_id)}, capacity = {PLACEHOLDER_CAPACITY},"
            f" priority = {priority}, label = {_q(label)} }},"
            f"  # TODO: carrier capacity. {_c(name)}{where}; {status}"
        )
    yield f"{p}]"
    yield f"{p}lines_per_agent = {PLACEHOLDER_LINES_PER_AGENT}  # TODO: lines a staffed agent needs"
    yield f"{p}min_lines = 0"
    max_lines = max(1, math.ceil(agents * PLACEHOLDER_LINES_PER_AGENT))
    yield f"{p}max_lines = {max_lines}  # {agents} agents x lines_per_agent"
    yield f'{p}failed_trunks = "last"  # a failed trunk stays on its route, last; "remove" drops it'


def render(inv: Inventory, *, org: dict[str, object], group_by: str) -> str:
    """The starting configuration as TOML text."""
    groups = _groups(inv, group_by)
    used_bus = [
        bu
        for bu in inv.business_units
        if any(
            b.id == bu.id
            for g in groups
            if g.management_units and g.trunks
            for _, b in g.management_units
        )
    ] or list(inv.business_units)
    out = [
        "# syncd configuration written by `syncd discover`: a starting point, not a finished file.",
        "# Fill in every TODO (carrier capacities first), then:",
        "#   syncd check-config FILE && syncd verify -c FILE && syncd once -c FILE --dry-run",
        "",
        "# SQLite audit trail and failover state (systemd's StateDirectory=syncd).",
        f"state_path = {_q(config_mod.Config.model_fields['state_path'].default)}",
        "",
        *_org_lines(org),
        "",
        "[schedule]",
        "business_units = [",
        *(
            f"  {_q(bu.id)},  # {_c(bu.name)}: {_c(bu.time_zone)}, weeks start on"
            f" {_c(bu.start_day_of_week)}"
            for bu in used_bus
        ),
        "]",
        "# Activity-code categories counted as staffed (codes of these business units:",
    ]
    cats: dict[str, list[str]] = {}
    for bu in used_bus:
        for code in bu.activity_codes:
            cats.setdefault(code.category, [])
            if code.name not in cats[code.category]:
                cats[code.category].append(code.name)
    out += [f"#   {_c(cat)}: {_c(', '.join(names))}" for cat, names in sorted(cats.items())]
    out += [
        "# ).",
        'staffed_categories = ["OnQueueWork"]',
    ]
    for g in groups:
        out.extend(_group_lines(g, inv))
    unrouted = sorted(
        tb.name + f" ({tb.id})"
        for tb in inv.trunk_bases.values()
        if not any(tb.id in sr.route.trunk_base_ids for sr in inv.routes)
    )
    if unrouted:
        out += ["", "# Trunk bases on no outbound route (syncd leaves them alone):"]
        out += [f"#   {_c(t)}" for t in unrouted]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def _where(args: DiscoverArgs) -> tuple[regions.Endpoints, auth.Credentials, dict[str, object]]:
    """Endpoints, the credential and the [org] section to write; ``ConfigError`` if unusable."""
    if args.config:
        cfg = config_mod.override_endpoints(
            config_mod.load(args.config), args.api_url, args.login_url
        )
        cred = cfg.org.credentials[0]
        secret = config_mod.resolve_secret(cred)
        org = cfg.org.model_dump()
        endpoints = regions.Endpoints(api_url=cfg.org.api_base, login_url=cfg.org.login_base)
    else:
        problems = []
        if not args.client_id:
            problems.append("--client-id is required (or -c FILE)")
        if not args.region and not args.api_url:
            problems.append("--region or --api-url is required (or -c FILE)")
        if problems:
            raise errors.ConfigError(problems)
        try:
            endpoints = regions.resolve(args.region, api_url=args.api_url, login_url=args.login_url)
        except ValueError as exc:
            raise errors.ConfigError([str(exc)]) from None
        cred = config_mod.Credential(client_id=str(args.client_id), secret_env=args.secret_env)
        secret = config_mod.resolve_secret(cred)
        org = {"client_id": args.client_id, "secret_env": args.secret_env}
        if args.api_url:
            org.update(api_url=endpoints.api_url, login_url=endpoints.login_url)
        else:
            org["region"] = args.region
    logs.register_secret(secret)
    return (
        endpoints,
        auth.Credentials(client_id=cred.client_id, client_secret=auth.Secret(secret)),
        org,
    )


@dataclasses.dataclass(slots=True)
class RequestCount:
    """Counts the API requests discover sends (its cost, reported at the end)."""

    total: int = 0

    def __call__(self, event: transport.RequestEvent) -> None:
        self.total += 1


@contextlib.asynccontextmanager
async def open_api(
    endpoints: regions.Endpoints, cred: auth.Credentials, hook: transport.RequestHook
) -> AsyncIterator[api_mod.OnboardingApi]:
    tr = transport.Transport.create(
        endpoints,
        [cred],
        pacing_config=pacing.PacingConfig(quota=300, window_s=60.0),
        hook=hook,
    )
    try:
        yield api_mod.OnboardingApi(tr)
    finally:
        await tr.close()


async def run_discover(args: DiscoverArgs) -> int:
    logs.setup_logging(args.log_level, stream=sys.stderr)
    try:
        endpoints, cred, org = _where(args)
    except errors.ConfigError as exc:
        for problem in exc.problems:
            print(f"syncd discover: {problem}", file=sys.stderr)
        return EX_CONFIG
    except OSError as exc:
        print(f"syncd discover: cannot read {args.config}: {exc.strerror}", file=sys.stderr)
        return EX_CONFIG
    count = RequestCount()
    try:
        async with open_api(endpoints, cred, count) as api:
            inv = await read_org(api)
    except errors.AuthError as exc:
        print(
            f"syncd discover: {exc} Check the client id, its secret and the region"
            " (docs/genesys-setup.md).",
            file=sys.stderr,
        )
        return EX_FAILURE
    except errors.ApiError as exc:
        hint = (
            " The OAuth client lacks a permission (docs/genesys-setup.md)."
            if getattr(exc, "status", 0) == 403
            else ""
        )
        print(f"syncd discover: {exc}{hint}", file=sys.stderr)
        return EX_FAILURE
    text = render(inv, org=org, group_by=args.group_by)
    if args.output:
        try:
            await asyncio.to_thread(Path(args.output).write_text, text, encoding="utf-8")
        except OSError as exc:
            print(f"syncd discover: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return EX_FAILURE
    else:
        sys.stdout.write(text)
    print(
        f"syncd discover: {len(inv.business_units)} business unit(s), {len(inv.routes)} route(s),"
        f" {len(inv.trunk_bases)} trunk base(s), {len(inv.campaigns)} campaign(s) read with"
        f" {count.total} request(s)" + (f"; written to {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return EX_OK
