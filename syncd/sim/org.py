"""Deterministic generator of a simulated Genesys Cloud org, and its in-memory model.

Role: build, from (size, seed, week anchor), the business units, management units, agents,
activity codes, published schedules (compact integer arrays), sites, BYOC carrier trunk bases
and trunks, site outbound routes and outbound campaigns. Same inputs give byte-identical state;
entity ids depend on (size, seed) only, never on the anchor, so a config written for seed 1
keeps working week after week.

It must not know about HTTP, rate limits or faults, must not read clocks (the anchor and every
timestamp come in as parameters), and must not import anything from the rest of syncd.

Shift storage: one ``array('i')`` per agent per schedule, a run of shifts encoded as
``serial, start (UTC epoch minutes), length, n_activities, (offset, length, code index) * n``;
JSON is rendered lazily from it (see ``wfm.py``), which keeps the large org well under 1 GiB.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from array import array
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

JSON = dict[str, Any]

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
BYOC_METABASE_ID = "external_sip_pcv_byoc_carrier.json"
BYOC_METABASE_NAME = "Generic BYOC Carrier"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Creation time of the generated entities: fixed, so state does not depend on the wall clock.
CREATED = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OrgSize:
    """How big a generated org is."""

    agents: int
    mus_per_bu: int
    trunk_bases: int
    sites: int
    campaigns: int


SIZES: dict[str, OrgSize] = {
    "small": OrgSize(agents=300, mus_per_bu=2, trunk_bases=15, sites=2, campaigns=4),
    "medium": OrgSize(agents=3000, mus_per_bu=5, trunk_bases=60, sites=10, campaigns=20),
    "large": OrgSize(agents=20000, mus_per_bu=20, trunk_bases=500, sites=100, campaigns=200),
}

# (name, time zone, start day of week): two BUs on opposite sides of the date line, one with DST.
BU_SPECS = (
    ("APAC Contact Centre", "Asia/Singapore", "Monday"),
    ("Americas Contact Centre", "America/Chicago", "Sunday"),
)

# (name, category, default code, paid, counts as work): the eight default codes of a BU plus
# custom ones, so a client must map codes by category, never by name or id.
ACTIVITY_CODES = (
    ("On Queue Work", "OnQueueWork", True, True, True),
    ("Break", "Break", True, True, False),
    ("Meal", "Meal", True, False, False),
    ("Meeting", "Meeting", True, True, True),
    ("Off Queue Work", "OffQueueWork", True, True, True),
    ("Time Off", "TimeOff", True, True, False),
    ("Training", "Training", True, True, True),
    ("Unavailable", "Unavailable", True, False, False),
    ("Coaching", "Meeting", False, True, True),
    ("Outbound Dialing", "OnQueueWork", False, True, True),
    ("Email Backlog", "OffQueueWork", False, True, True),
)
CODE_ON_QUEUE, CODE_BREAK, CODE_MEAL, CODE_MEETING = 0, 1, 2, 3
CODE_TRAINING, CODE_COACHING, CODE_OUTBOUND = 6, 8, 9

CARRIERS = (
    "Acme Voice",
    "Northwind Telecom",
    "Globex Carrier",
    "Initech SIP",
    "Umbrella Networks",
    "Stark Telco",
)


def iso_ms(moment: datetime) -> str:
    """Telephony/outbound style timestamp: milliseconds and a Z."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def iso_s(moment: datetime) -> str:
    """WFM style timestamp: whole seconds and a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def minutes_to_dt(epoch_minutes: int) -> datetime:
    return EPOCH + timedelta(minutes=epoch_minutes)


def dt_to_minutes(moment: datetime) -> int:
    return int((moment - EPOCH).total_seconds() // 60)


def week_start_date(day: date, start_day: str) -> date:
    """The first day of the WFM week (starting on `start_day`) that contains `day`."""
    return day - timedelta(days=(day.weekday() - DAYS.index(start_day)) % 7)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant of local midnight starting `day` in `tz` (zoneinfo handles DST)."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def derived_uuid(*parts: object) -> str:
    """A stable uuid4-shaped id derived from `parts` (used for per-week and per-shift ids)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


@dataclass(slots=True)
class ActivityCode:
    id: str
    name: str
    category: str
    default: bool
    paid: bool
    work: bool


@dataclass(slots=True)
class ManagementUnit:
    id: str
    name: str
    bu_index: int
    first_agent: int  # agents [first_agent, end_agent) of the BU's agent list
    end_agent: int
    work_plan_id: str
    version: int = 1


@dataclass(slots=True)
class Schedule:
    """One BU schedule (one week). `shifts[i]` is the compact run of BU agent i's shifts."""

    id: str
    week_date: date
    week_count: int
    description: str
    published: bool
    version: int
    date_created: datetime
    date_modified: datetime
    start_utc: datetime
    end_utc: datetime
    shifts: list[array[int]]


@dataclass(slots=True)
class BusinessUnit:
    id: str
    name: str
    time_zone: str
    start_day: str
    activity_codes: list[ActivityCode]
    mus: list[ManagementUnit]
    agent_ids: list[str]
    schedules: list[Schedule] = field(default_factory=list)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def week_bounds(self, week_date: date, weeks: int = 1) -> tuple[datetime, datetime]:
        """UTC instants of the start and end of a BU week; 167 or 169 h across DST changes."""
        return (
            local_midnight(week_date, self.tz),
            local_midnight(week_date + timedelta(days=7 * weeks), self.tz),
        )


@dataclass(slots=True)
class Site:
    id: str
    name: str
    location_id: str
    edge_id: str
    edge_group_id: str
    version: int = 1


@dataclass(slots=True)
class TrunkHealth:
    """Mutable health of one trunk instance (the part the control API fails and recovers)."""

    id: str
    trunk_base_id: str
    site_id: str
    logical_interface_id: str
    connected: bool = True
    failed_servers: set[str] = field(default_factory=set)
    connected_since: datetime = CREATED
    options_since: datetime = CREATED
    inbound_calls: int = 0
    outbound_calls: int = 0


@dataclass(slots=True)
class Org:
    """The whole simulated org. Telephony and outbound entities are stored as their JSON."""

    size: str
    seed: int
    week_anchor: date
    org_id: str
    org_name: str
    division: JSON
    bus: list[BusinessUnit]
    sites: list[Site]
    trunk_bases: dict[str, JSON]  # id -> TrunkBase JSON (insertion order = listing order)
    carriers: dict[str, str]  # trunk base id -> carrier name
    trunks: dict[str, TrunkHealth]  # trunk id -> health
    trunk_of_base: dict[str, str]  # trunk base id -> trunk id
    routes: dict[str, JSON]  # id -> OutboundRouteBase JSON
    route_site: dict[str, str]  # route id -> site id
    campaigns: dict[str, JSON]  # id -> Campaign JSON
    next_serial: int = 0

    def bu(self, bu_id: str) -> BusinessUnit | None:
        return next((b for b in self.bus if b.id == bu_id), None)

    def mu(self, mu_id: str) -> tuple[BusinessUnit, ManagementUnit] | None:
        for b in self.bus:
            for m in b.mus:
                if m.id == mu_id:
                    return b, m
        return None

    def site(self, site_id: str) -> Site | None:
        return next((s for s in self.sites if s.id == site_id), None)

    def site_of(self, site_id: str) -> Site:
        """The site an entity of this org refers to (always exists: the generator made both)."""
        site = self.site(site_id)
        if site is None:
            raise LookupError(f"the org has no site {site_id}")
        return site

    def snapshot(self) -> JSON:
        """Everything, including every shift, as plain data: the determinism check."""
        return {
            "size": self.size,
            "seed": self.seed,
            "weekAnchor": self.week_anchor.isoformat(),
            "org": [self.org_id, self.org_name],
            "bus": [
                {
                    "id": b.id,
                    "tz": b.time_zone,
                    "start": b.start_day,
                    "codes": [[c.id, c.name, c.category] for c in b.activity_codes],
                    "mus": [[m.id, m.name, m.first_agent, m.end_agent] for m in b.mus],
                    "agents": b.agent_ids,
                    "schedules": [
                        {
                            "id": s.id,
                            "week": s.week_date.isoformat(),
                            "published": s.published,
                            "version": s.version,
                            "modified": iso_s(s.date_modified),
                            "shifts": [list(a) for a in s.shifts],
                        }
                        for s in b.schedules
                    ],
                }
                for b in self.bus
            ],
            "sites": [[s.id, s.name, s.edge_id, s.edge_group_id] for s in self.sites],
            "trunkBases": self.trunk_bases,
            "trunks": [[t.id, t.trunk_base_id, t.connected] for t in self.trunks.values()],
            "routes": self.routes,
            "campaigns": self.campaigns,
        }


class _Ids:
    """Sequential uuid4s from a seeded stream: the order of calls defines the ids."""

    def __init__(self, seed: int, size: str) -> None:
        self._rng = random.Random(f"syncd-sim:ids:{size}:{seed}")

    def __call__(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


def ref(entity_id: str, name: str | None, self_uri: str) -> JSON:
    out: JSON = {"id": entity_id}
    if name is not None:
        out["name"] = name
    out["selfUri"] = self_uri
    return out


EDGES = "/api/v2/telephony/providers/edges"


def _prop(kind: str, default: Any, instance: Any, *, required: bool = False, **extra: Any) -> JSON:
    out: JSON = {"type": kind, "value": {"default": default, "instance": instance}}
    out.update(extra)
    out["required"] = required
    return out


def byoc_template_properties() -> JSON:
    """The typed property set of a Generic BYOC Carrier trunk base (docs/genesys-setup.md)."""
    strings = {"type": "string"}
    return {
        "trunk_type": _prop("string", "external.pcv.byoc.carrier", "external.pcv.byoc.carrier"),
        "trunk_label": _prop("string", None, None),
        "trunk_enabled": _prop("boolean", True, True),
        "trunk_language": _prop("string", "en-US", "en-US"),
        "trunk_transport_serverProxyList": _prop(
            "array", None, None, required=True, items=strings, uniqueItems=True
        ),
        "trunk_transport_protocolVariant": _prop(
            "string", "udp", "udp", enum=["udp", "tcp", "tls"]
        ),
        "trunk_transport_retryableReasonCodes": _prop("string", "500-599", "500-599"),
        "trunk_transport_retryableCauseCodes": _prop(
            "string",
            "1-5,25,27,28,31,34,38,41,42,44,46,62,63,79,91,96,97,99,100,103",
            "1-5,25,27,28,31,34,38,41,42,44,46,62,63,79,91,96,97,99,100,103",
        ),
        "trunk_transport_sipDscpValue": _prop("integer", 24, 24),
        "trunk_sip_termination_uri": _prop("string", None, None),
        "trunk_sip_conversationHeader": _prop("string", None, None),
        # Digest credentials towards the carrier: values syncd must never log, audit or show.
        "trunk_sip_authentication_credentials_realm": _prop("string", None, None),
        "trunk_sip_authentication_credentials_username": _prop("string", None, None),
        "trunk_sip_authentication_credentials_password": _prop("string", None, None),
        "trunk_access_acl_allowList": _prop("array", [], [], items=strings, uniqueItems=True),
        "trunk_access_acl_denyList": _prop("array", [], [], items=strings, uniqueItems=True),
        "trunk_outboundIdentity_callingAddress": _prop("string", None, None),
        "trunk_outboundIdentity_callingAddress_overrideMethod": _prop(
            "string", "Unassigned DID", "Unassigned DID", enum=["Always", "Unassigned DID"]
        ),
        "trunk_outboundIdentity_callingName": _prop("string", None, None),
        "trunk_outboundIdentity_callingName_overrideMethod": _prop(
            "string", "Unassigned DID", "Unassigned DID", enum=["Always", "Unassigned DID"]
        ),
        "trunk_outboundIdentity_callingAddress_omitPlusPrefix": _prop("boolean", False, False),
        "trunk_outboundIdentity_calledAddress_omitPlusPrefix": _prop("boolean", False, False),
        "trunk_maxDialTimeout": _prop("string", "2m", "2m"),
        "trunk_maxCallRate": _prop("string", "40/5s", "40/5s"),
        "trunk_media_codec": _prop(
            "array",
            ["audio/opus", "audio/pcmu", "audio/pcma"],
            ["audio/opus", "audio/pcmu", "audio/pcma"],
            items=strings,
            uniqueItems=True,
        ),
        "trunk_media_disconnectOnIdleRTP": _prop("boolean", True, True),
        "trunk_recording_enabled": _prop("boolean", False, False),
        "trunk_consult_recording_enabled": _prop("boolean", False, False),
        "trunk_sip_uuiEnabled": _prop("boolean", False, False),
        "trunk_transfer_takeback_enabled": _prop("boolean", False, False),
        "trunk_rlt_enabled": _prop("boolean", False, False),
    }


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-")


def _gen_shifts(
    rng: random.Random,
    org: Org,
    bu: BusinessUnit,
    week_date: date,
    profiles: list[tuple[int, int, int, int]],
) -> list[array[int]]:
    """One week of shifts per agent from its profile (local start minute, length, first day
    off, flavour). Local wall-clock times are converted with zoneinfo, so a DST week is right."""
    tz = bu.tz
    # Every shift starts between 05:00 and 23:00 local, after any DST switch (02:00-03:00), so
    # the UTC offset at local noon of a day is the offset of every shift start of that day.
    day_base: list[int] = []
    for d in range(7):
        day = week_date + timedelta(days=d)
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=tz)
        offset = noon.utcoffset()
        offset_min = int(offset.total_seconds() // 60) if offset is not None else 0
        naive_midnight = dt_to_minutes(datetime(day.year, day.month, day.day, tzinfo=UTC))
        day_base.append(naive_midnight - offset_min)
    out: list[array[int]] = []
    serial = org.next_serial
    jitters = (0, 0, 0, 15, -15, 30)
    for start_local, length, first_off, flavour in profiles:
        run: array[int] = array("i")
        for d in range(7):
            if d == first_off or d == (first_off + 1) % 7:
                continue
            start = day_base[d] + start_local + jitters[rng.randrange(6)]
            acts = _activities(rng, length, flavour)
            run.extend((serial, start, length, len(acts) // 3))
            run.extend(acts)
            serial += 1
        out.append(run)
    org.next_serial = serial
    return out


def _activities(rng: random.Random, length: int, flavour: int) -> list[int]:
    """A realistic day: queue time, two 15-minute breaks, a meal, sometimes a training or
    meeting hour; activities cover the shift end to end. Flat (offset, length, code) triples."""
    work = CODE_OUTBOUND if flavour == 1 else CODE_ON_QUEUE
    meal = 60 if length >= 540 else 30
    marks = [(0, work), (120, CODE_BREAK), (135, work), (240, CODE_MEAL), (240 + meal, work)]
    if rng.random() < 0.15:
        extra = rng.choice((CODE_TRAINING, CODE_MEETING, CODE_COACHING))
        marks += [(300 + meal, extra), (360 + meal, work)]
    marks += [(length - 105, CODE_BREAK), (length - 90, work)]
    flat: list[int] = []
    for i, (offset, code) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else length
        flat.extend((offset, end - offset, code))
    return flat


def _profiles(rng: random.Random, count: int) -> list[tuple[int, int, int, int]]:
    """Per-agent shift pattern: local start minute, length, first day off, flavour."""
    starts = (360, 420, 480, 480, 510, 540, 540, 600, 720, 780, 840, 900, 1320)
    return [
        (
            rng.choice(starts),
            rng.choice((510, 510, 540)),
            rng.randrange(7),
            1 if rng.random() < 0.2 else 0,
        )
        for _ in range(count)
    ]


def generate(size: str = "small", seed: int = 1, week_anchor: date | None = None) -> Org:
    """Build the org. `week_anchor` (default: today, UTC) picks the current schedule week."""
    if size not in SIZES:
        raise ValueError(f"unknown org size {size!r}; use one of {sorted(SIZES)}")
    spec = SIZES[size]
    anchor = week_anchor if week_anchor is not None else datetime.now(UTC).date()
    ids = _Ids(seed, size)
    org_id = ids()
    division_id = ids()
    division = ref(division_id, "Home", f"/api/v2/authorization/divisions/{division_id}")
    org = Org(
        size=size,
        seed=seed,
        week_anchor=anchor,
        org_id=org_id,
        org_name=f"Simulated Org ({size}, seed {seed})",
        division=division,
        bus=[],
        sites=[],
        trunk_bases={},
        carriers={},
        trunks={},
        trunk_of_base={},
        routes={},
        route_site={},
        campaigns={},
    )
    _gen_wfm_entities(org, spec, ids)
    _gen_telephony(org, spec, ids)
    _gen_campaigns(org, spec, ids)
    _gen_schedules(org, seed)
    return org


def _gen_wfm_entities(org: Org, spec: OrgSize, ids: _Ids) -> None:
    per_bu = spec.agents // len(BU_SPECS)
    for b, (name, tz, start_day) in enumerate(BU_SPECS):
        bu_id = ids()
        codes = [
            ActivityCode(ids(), n, cat, dflt, paid, work)
            for n, cat, dflt, paid, work in ACTIVITY_CODES
        ]
        agents = [ids() for _ in range(per_bu)]
        mus = []
        per_mu = per_bu // spec.mus_per_bu
        for m in range(spec.mus_per_bu):
            end = per_bu if m == spec.mus_per_bu - 1 else (m + 1) * per_mu
            mus.append(
                ManagementUnit(
                    id=ids(),
                    name=f"{name.split()[0]} MU {m + 1:02d}",
                    bu_index=b,
                    first_agent=m * per_mu,
                    end_agent=end,
                    work_plan_id=ids(),
                )
            )
        org.bus.append(BusinessUnit(bu_id, name, tz, start_day, codes, mus, agents))


def _gen_schedules(org: Org, seed: int) -> None:
    """Published schedules for the anchor's week and the next, plus an unpublished draft of the
    next week (a client must read only published schedules)."""
    for b, bu in enumerate(org.bus):
        profiles = _profiles(
            random.Random(f"syncd-sim:profiles:{org.size}:{seed}:{b}"), len(bu.agent_ids)
        )
        current = week_start_date(org.week_anchor, bu.start_day)
        for w, published in ((0, True), (1, True), (1, False)):
            week = current + timedelta(days=7 * w)
            start_utc, end_utc = bu.week_bounds(week)
            modified = start_utc - timedelta(days=4 - w)
            if published:
                rng = random.Random(f"syncd-sim:shifts:{org.size}:{seed}:{b}:{week.isoformat()}")
                shifts = _gen_shifts(rng, org, bu, week, profiles)
            else:
                shifts = [array("i") for _ in bu.agent_ids]
            bu.schedules.append(
                Schedule(
                    id=derived_uuid("schedule", org.size, seed, bu.id, week.isoformat(), published),
                    week_date=week,
                    week_count=1,
                    description=(
                        f"Week of {week.isoformat()}"
                        if published
                        else f"Draft - week of {week.isoformat()}"
                    ),
                    published=published,
                    version=1,
                    date_created=modified - timedelta(days=3),
                    date_modified=modified,
                    start_utc=start_utc,
                    end_utc=end_utc,
                    shifts=shifts,
                )
            )


def _gen_telephony(org: Org, spec: OrgSize, ids: _Ids) -> None:
    for s in range(spec.sites):
        org.sites.append(Site(ids(), f"Site {s + 1:03d}", ids(), ids(), ids()))
    template = byoc_template_properties()
    site_bases: dict[str, list[str]] = {site.id: [] for site in org.sites}
    for t in range(spec.trunk_bases):
        carrier = CARRIERS[t % len(CARRIERS)]
        site = org.sites[t % spec.sites]
        tb_id = ids()
        name = f"{carrier} BYOC {t + 1:03d}"
        slug = _slug(carrier)
        props: JSON = {k: {**v, "value": dict(v["value"])} for k, v in template.items()}
        servers = [f"sbc{n}-pop{t + 1:03d}.{slug}.example.net:5061" for n in (1, 2)]
        props["trunk_transport_serverProxyList"]["value"]["instance"] = servers
        props["trunk_transport_protocolVariant"]["value"]["instance"] = "tls"
        props["trunk_label"]["value"]["instance"] = f"{carrier} POP {t + 1:03d}"
        props["trunk_sip_termination_uri"]["value"]["instance"] = f"{slug}-{t + 1:03d}"
        props["trunk_outboundIdentity_callingAddress"]["value"]["instance"] = (
            f"+1555010{t % 10000:04d}"
        )
        props["trunk_outboundIdentity_callingName"]["value"]["instance"] = org.org_name[:15]
        props["trunk_maxCallRate"]["value"]["instance"] = f"{20 + 10 * (t % 5)}/5s"
        creds = "trunk_sip_authentication_credentials_"
        props[creds + "realm"]["value"]["instance"] = f"{slug}.example.net"
        props[creds + "username"]["value"]["instance"] = f"pop{t + 1:03d}"
        # Derived from the ids, not drawn from the RNG: adding it changed no generated id.
        secret = hashlib.sha256(f"sip-password:{org.seed}:{tb_id}".encode()).hexdigest()[:24]
        props[creds + "password"]["value"]["instance"] = secret
        created = CREATED + timedelta(hours=t)
        org.trunk_bases[tb_id] = {
            "id": tb_id,
            "name": name,
            "division": dict(org.division),
            "description": f"{carrier} carrier trunk for {site.name}",
            "version": 1,
            "dateCreated": iso_ms(created),
            "dateModified": iso_ms(created),
            "modifiedBy": "system",
            "createdBy": "system",
            "state": "active",
            "modifiedByApp": "",
            "createdByApp": "",
            "trunkMetabase": ref(
                BYOC_METABASE_ID,
                BYOC_METABASE_NAME,
                f"{EDGES}/trunkbasesettings/availablemetabases/{BYOC_METABASE_ID}",
            ),
            "properties": props,
            "trunkType": "EXTERNAL",
            "managed": False,
            "inboundSite": ref(site.id, site.name, f"{EDGES}/sites/{site.id}"),
            "selfUri": f"{EDGES}/trunkbasesettings/{tb_id}",
        }
        org.carriers[tb_id] = carrier
        trunk_id = ids()
        org.trunks[trunk_id] = TrunkHealth(trunk_id, tb_id, site.id, ids())
        org.trunk_of_base[tb_id] = trunk_id
        site_bases[site.id].append(tb_id)
    for s, site in enumerate(org.sites):
        bases = site_bases[site.id]
        routes = [("Default Outbound", ["National", "Mobile", "Toll Free"], bases)]
        if s == 0 and len(bases) >= 2:
            # A second route sharing trunk bases with the first: a trunk base can be in many routes.
            routes.append(("International", ["International"], list(reversed(bases[-2:]))))
        for r_name, classes, members in routes:
            route_id = ids()
            org.routes[route_id] = {
                "id": route_id,
                "name": f"{site.name} {r_name}",
                "division": dict(org.division),
                "description": f"{r_name} calls from {site.name}",
                "version": 1,
                "dateCreated": iso_ms(CREATED),
                "dateModified": iso_ms(CREATED),
                "modifiedBy": "system",
                "createdBy": "system",
                "state": "active",
                "modifiedByApp": "",
                "createdByApp": "",
                "classificationTypes": classes,
                "enabled": True,
                "distribution": "SEQUENTIAL",
                "externalTrunkBases": [
                    ref(m, org.trunk_bases[m]["name"], f"{EDGES}/trunkbasesettings/{m}")
                    for m in members
                ],
                "selfUri": f"{EDGES}/sites/{site.id}/outboundroutes/{route_id}",
            }
            org.route_site[route_id] = site.id


def _gen_campaigns(org: Org, spec: OrgSize, ids: _Ids) -> None:
    modes = ("agentless", "progressive", "power", "predictive")
    for c in range(spec.campaigns):
        site = org.sites[c % spec.sites]
        camp_id = ids()
        contact_list = ids()
        queue = ids()
        response_set = ids()
        name = f"Campaign {c + 1:03d}"
        org.campaigns[camp_id] = {
            "id": camp_id,
            "name": name,
            "dateCreated": iso_ms(CREATED),
            "dateModified": iso_ms(CREATED),
            "version": 1,
            "contactList": ref(
                contact_list, f"{name} contacts", f"/api/v2/outbound/contactlists/{contact_list}"
            ),
            "queue": ref(queue, f"{name} queue", f"/api/v2/routing/queues/{queue}"),
            "dialingMode": modes[c % len(modes)],
            "edgeGroup": ref(
                site.edge_group_id,
                f"{site.name} Edge Group",
                f"{EDGES}/edgegroups/{site.edge_group_id}",
            ),
            "site": ref(site.id, site.name, f"{EDGES}/sites/{site.id}"),
            "campaignStatus": "off" if c % 4 == 3 else "on",
            "phoneColumns": [
                {"columnName": "Cell", "type": "cell"},
                {"columnName": "Home", "type": "home"},
            ],
            "abandonRate": 5.0,
            "dncLists": [],
            "callAnalysisResponseSet": ref(
                response_set,
                "Default response set",
                f"/api/v2/outbound/callanalysisresponsesets/{response_set}",
            ),
            "errors": [],
            "callerName": "Sim Outbound",
            "callerAddress": f"+1555020{c % 10000:04d}",
            "outboundLineCount": 10 + 5 * (c % 7),
            "ruleSets": [],
            "skipPreviewDisabled": False,
            "previewTimeOutSeconds": 0,
            "alwaysRunning": False,
            "contactSorts": [],
            "noAnswerTimeout": 30,
            "callAnalysisLanguage": "en-US",
            "priority": 5,
            "contactListFilters": [],
            "division": dict(org.division),
            "skillColumns": [],
            "previewAutoEnd": False,
            "callbackAutoAnswer": False,
            "dynamicLineBalancingSettings": {"enabled": False, "relativeWeight": 50},
            "preciseDialingEnabled": False,
            "selfUri": f"/api/v2/outbound/campaigns/{camp_id}",
        }
