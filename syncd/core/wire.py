"""Wire format: the Genesys Cloud JSON syncd reads and writes, and its mapping to the model.

Role: TypedDicts that document the exact JSON shapes (docs/genesys-setup.md,
api-subset.json), parsers from response bodies to ``syncd.core.model`` values, and renderers
of request bodies. Parsers raise ``WireError`` (a ``ValueError``) naming the object and field
that was wrong; the HTTP client translates that into ``MalformedResponse``.

Full-replacement PUT bodies are rendered from the object exactly as read (``raw``) with only the
owned field changed, so nothing a person configured is ever reset.

This module must not do I/O, read clocks, or import anything outside ``syncd.core``, the
standard library and orjson. ``parse_agent_schedules`` is the hot path of the large-org
benchmark: keep it allocation-light (tuples, interned ids, a timestamp cache).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import msgspec
import orjson

from syncd.core import model

# --------------------------------------------------------------------------------------------
# JSON shapes (documentation and type hints for the renderers; parsers validate on their own)
# --------------------------------------------------------------------------------------------


class EntityRef(TypedDict):
    id: str
    name: NotRequired[str]
    selfUri: NotRequired[str]


class Listing(TypedDict):
    """Paged listing (``…EntityListing``); WFM listings have only ``entities``."""

    entities: list[dict[str, Any]]
    pageSize: NotRequired[int]
    pageNumber: NotRequired[int]
    total: NotRequired[int]
    pageCount: NotRequired[int]
    nextUri: NotRequired[str | None]


class ActivityCodeJson(TypedDict):
    id: str
    name: NotRequired[str]
    category: str
    active: NotRequired[bool]


class WfmMetadata(TypedDict):
    version: int
    dateModified: NotRequired[str]


class ScheduleListItemJson(TypedDict):
    id: str
    weekDate: str
    weekCount: NotRequired[int]
    published: NotRequired[bool]
    metadata: WfmMetadata


class ActivityJson(TypedDict):
    startDate: str
    lengthMinutes: int
    activityCodeId: str
    description: NotRequired[str]


class ShiftJson(TypedDict):
    id: NotRequired[str]
    startDate: NotRequired[str]
    lengthMinutes: NotRequired[int]
    activities: list[ActivityJson]


class AgentScheduleJson(TypedDict):
    user: EntityRef
    shifts: list[ShiftJson]


class AgentSchedulesResultJson(TypedDict):
    agentSchedules: list[AgentScheduleJson]
    businessUnitTimeZone: NotRequired[str]


class AsyncSchedulesJson(TypedDict):
    status: str  # Processing | Complete | Canceled | Error
    operationId: NotRequired[str]
    result: NotRequired[AgentSchedulesResultJson]
    downloadUrl: NotRequired[str]


class PropertyValueJson(TypedDict):
    default: NotRequired[Any]
    instance: NotRequired[Any]


class PropertyJson(TypedDict):
    type: NotRequired[str]
    value: PropertyValueJson


class TrunkBaseJson(TypedDict):
    id: str
    name: str
    version: int
    trunkType: str
    properties: dict[str, PropertyJson]


class TrunkJson(TypedDict):
    id: str
    trunkBase: EntityRef
    inService: NotRequired[bool]
    connectedStatus: NotRequired[dict[str, Any]]  # {connected, connectedStateTime}
    optionsStatus: NotRequired[list[dict[str, Any]]]  # [{proxyAddress, optionState, …}]


class RouteJson(TypedDict):
    id: str
    name: str
    version: int
    distribution: NotRequired[str]
    externalTrunkBases: list[EntityRef]
    site: NotRequired[EntityRef]


class CampaignJson(TypedDict):
    id: str
    name: str
    version: int
    campaignStatus: NotRequired[str]
    site: NotRequired[EntityRef]
    outboundLineCount: NotRequired[int]


class CampaignPatchJson(TypedDict):
    outboundLineCount: int


class LimitJson(TypedDict):
    """``Limit`` (every field optional in the SDK's model; syncd needs key and value)."""

    key: str
    namespace: NotRequired[str]
    value: int


class LimitsListingJson(TypedDict):
    """``LimitsEntityListing``: the org's effective (or default) limits of one namespace."""

    entities: list[LimitJson]


class ScheduleSearchJson(TypedDict):
    startDate: str
    endDate: str
    userIds: NotRequired[list[str]]


class ScheduleQueryJson(TypedDict):
    managementUnitId: str


# --------------------------------------------------------------------------------------------
# Errors and small helpers
# --------------------------------------------------------------------------------------------


class WireError(ValueError):
    """A response body is not the JSON it should be; the message names the object and field."""


def _loads(body: bytes | str, what: str) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"{what}: body is not JSON ({exc})") from exc


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _str(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise WireError(f"{what}.{key}: expected a string, got {_kind(value)}")
    return value


def _int(obj: Mapping[str, Any], key: str, what: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    # bool is an int subclass; a boolean where a number belongs is malformed.
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"{what}.{key}: expected an integer, got {_kind(value)}")
    return value


def _bool(obj: Mapping[str, Any], key: str, what: str, default: bool | None = None) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise WireError(f"{what}.{key}: expected a boolean, got {_kind(value)}")
    return value


def _list(obj: Mapping[str, Any], key: str, what: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise WireError(f"{what}.{key}: expected an array, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _ref_id(obj: Mapping[str, Any], key: str, what: str) -> str:
    return _str(_obj(obj.get(key), f"{what}.{key}"), "id", f"{what}.{key}")


# --------------------------------------------------------------------------------------------
# Timestamps
# --------------------------------------------------------------------------------------------


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm): plain
    integer arithmetic, several times faster than building a datetime per timestamp."""
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_instant(text: str) -> int:
    """ISO-8601 date-time with a zone (``Z`` or ``±hh:mm``) → UTC epoch seconds (fraction
    dropped). Raises ``ValueError`` for a naive or malformed timestamp."""
    if (
        len(text) >= 20
        and text[-1] == "Z"
        and text[4] == "-"
        and text[7] == "-"
        and text[10] == "T"
        and text[13] == ":"
        and text[16] == ":"
        and (len(text) == 20 or text[19] == ".")
    ):
        days = _days_from_civil(int(text[0:4]), int(text[5:7]), int(text[8:10]))
        return days * 86400 + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
    moment = _dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone")
    return int(moment.timestamp())


def render_instant(epoch_s: int) -> str:
    """UTC epoch seconds → ``YYYY-MM-DDTHH:MM:SSZ`` (the WFM request style)."""
    moment = _dt.datetime.fromtimestamp(epoch_s, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# Listings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page of a listing; an unpaged ``{entities}`` listing is page 1 of 1."""

    entities: tuple[dict[str, Any], ...]
    page_number: int
    page_count: int
    total: int
    next_uri: str | None
    total_given: bool = True  # False when the page had no "total" (then it is the page's count)


def parse_page(body: bytes) -> Page:
    obj = _obj(_loads(body, "listing"), "listing")
    entities = _list(obj, "entities", "listing")
    for i, entity in enumerate(entities):
        _obj(entity, f"listing.entities[{i}]")
    next_uri = obj.get("nextUri")
    if next_uri is not None and not isinstance(next_uri, str):
        raise WireError(f"listing.nextUri: expected a string, got {_kind(next_uri)}")
    return Page(
        entities=tuple(entities),
        page_number=_int(obj, "pageNumber", "listing", 1),
        page_count=_int(obj, "pageCount", "listing", 1),
        total=_int(obj, "total", "listing", len(entities)),
        next_uri=next_uri or None,
        total_given="total" in obj,
    )


# --------------------------------------------------------------------------------------------
# WFM
# --------------------------------------------------------------------------------------------


def parse_activity_codes(body: bytes) -> tuple[model.ActivityCode, ...]:
    obj = _obj(_loads(body, "activity codes"), "activity codes")
    out = []
    for i, item in enumerate(_list(obj, "entities", "activity codes")):
        what = f"activity codes.entities[{i}]"
        code = _obj(item, what)
        name = code.get("name", "")
        out.append(
            model.ActivityCode(
                id=_str(code, "id", what),
                name=name if isinstance(name, str) else "",
                category=_str(code, "category", what),
            )
        )
    return tuple(out)


def parse_schedule_listing(body: bytes) -> tuple[model.ScheduleRef, ...]:
    obj = _obj(_loads(body, "schedule listing"), "schedule listing")
    out = []
    for i, item in enumerate(_list(obj, "entities", "schedule listing")):
        what = f"schedule listing.entities[{i}]"
        entry = _obj(item, what)
        meta = _obj(entry.get("metadata"), f"{what}.metadata")
        modified = meta.get("dateModified", "")
        out.append(
            model.ScheduleRef(
                id=_str(entry, "id", what),
                week_date=_str(entry, "weekDate", what),
                week_count=_int(entry, "weekCount", what, 1),
                published=_bool(entry, "published", what, False),
                version=_int(meta, "version", f"{what}.metadata"),
                date_modified=modified if isinstance(modified, str) else "",
            )
        )
    return tuple(out)


def parse_limits(body: bytes, namespace: str) -> tuple[model.Limit, ...]:
    """A ``LimitsEntityListing`` of ``namespace``: each entry needs a string ``key`` and a
    non-negative integer ``value``; an entry's ``namespace``, when given, must be a string
    (absent: the namespace asked for)."""
    what = f"limits of {namespace}"
    obj = _obj(_loads(body, what), what)
    out = []
    for i, item in enumerate(_list(obj, "entities", what)):
        here = f"{what}.entities[{i}]"
        entry = _obj(item, here)
        value = _int(entry, "value", here)
        if value < 0:
            raise WireError(f"{here}.value: expected a limit >= 0, got {value}")
        out.append(
            model.Limit(
                namespace=_str(entry, "namespace", here) if "namespace" in entry else namespace,
                key=_str(entry, "key", here),
                value=value,
            )
        )
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class AsyncSchedules:
    """``BuAsyncAgentSchedules{Query,Search}Response``: a result inline, a download, or pending."""

    status: str
    operation_id: str
    download_url: str | None
    result: dict[str, Any] | None


def parse_async_schedules(body: bytes) -> AsyncSchedules:
    what = "agent schedules response"
    obj = _obj(_loads(body, what), what)
    status = _str(obj, "status", what)
    operation_id = obj.get("operationId", "")
    url = obj.get("downloadUrl")
    result = obj.get("result")
    if url is not None and not isinstance(url, str):
        raise WireError(f"{what}.downloadUrl: expected a string, got {_kind(url)}")
    if result is not None:
        _obj(result, f"{what}.result")
    return AsyncSchedules(
        status=status,
        operation_id=operation_id if isinstance(operation_id, str) else "",
        download_url=url or None,
        result=result,
    )


class _Activity(msgspec.Struct, gc=False):  # no cycles: keep them out of the GC
    startDate: str  # noqa: N815 - the API's field names
    lengthMinutes: int  # noqa: N815
    activityCodeId: str  # noqa: N815


class _Shift(msgspec.Struct, gc=False):
    activities: list[_Activity] = msgspec.field(default_factory=list)


class _User(msgspec.Struct, gc=False):
    id: str


class _AgentSchedule(msgspec.Struct, gc=False):
    user: _User
    shifts: list[_Shift] = msgspec.field(default_factory=list)


class _AgentSchedules(msgspec.Struct, gc=False):
    agentSchedules: list[_AgentSchedule]  # noqa: N815


# Typed decoding reads only the fields the planner needs and skips the rest (descriptions, paid
# minutes, ids, …) without building dicts for them: about 4× faster than a generic JSON parse on
# a large org's week of shifts, which is the reader's worst case after a start.
_SCHEDULES_DECODER = msgspec.json.Decoder(_AgentSchedules)


def parse_agent_schedules(
    body: bytes | dict[str, Any],
    *,
    business_unit_id: str,
    management_unit_id: str,
    start: int,
    end: int,
) -> model.ManagementUnitSchedule:
    """The ``result`` of a schedule query/search → the activities overlapping ``[start, end)``.

    Hot path: typed decoding of only the needed fields, one dict lookup per timestamp string (a
    week has few distinct ones), interned activity code ids, tuples. A malformed body raises a
    ``WireError`` naming the field (``$.agentSchedules[0].shifts[1]…``).
    """
    what = "agent schedules"
    try:
        if isinstance(body, bytes | str):
            decoded = _SCHEDULES_DECODER.decode(body)
        else:
            decoded = msgspec.convert(body, _AgentSchedules)
        agents = _agents_fast(decoded, start, end)
    except msgspec.ValidationError as exc:
        raise WireError(_validation_message(what, str(exc))) from exc
    except msgspec.DecodeError as exc:
        raise WireError(f"{what}: body is not JSON ({exc})") from exc
    return model.ManagementUnitSchedule(
        business_unit_id=business_unit_id,
        management_unit_id=management_unit_id,
        start=start,
        end=end,
        agents=agents,
    )


def _validation_message(what: str, text: str) -> str:
    """msgspec's "… - at `$.a[0].b`" turned into this module's "what.a[0].b.field: problem"."""
    problem, _, at = text.partition(" - at `$")
    path = at.rstrip("`")
    missing = re.fullmatch(r"Object missing required field `(\w+)`", problem)
    if missing:
        return f"{what}{path}.{missing.group(1)}: missing"
    return f"{what}{path}: {problem[0].lower()}{problem[1:]}" if problem else f"{what}: {text}"


def _where(decoded: _AgentSchedules, target: _Activity) -> str:
    """The path of one activity, for an error message (only walked when something is wrong)."""
    for i, entry in enumerate(decoded.agentSchedules):
        for j, shift in enumerate(entry.shifts):
            for k, act in enumerate(shift.activities):
                if act is target:
                    return f"agent schedules.agentSchedules[{i}].shifts[{j}].activities[{k}]"
    return "agent schedules"


def _agents_fast(decoded: _AgentSchedules, start: int, end: int) -> tuple[model.AgentSchedule, ...]:
    """The per-activity loop over typed values (types were checked by the decoder)."""
    stamps: dict[str, int] = {}
    codes: dict[str, str] = {}
    agents: list[model.AgentSchedule] = []
    # Local bindings: this loop runs once per activity (hundreds of thousands in a large org).
    stamp_of = stamps.get
    intern = codes.setdefault
    agent_schedule = model.AgentSchedule
    for entry in decoded.agentSchedules:
        acts: list[tuple[int, int, str]] = []
        keep = acts.append
        for shift in entry.shifts:
            for act in shift.activities:
                stamp = act.startDate
                t0 = stamp_of(stamp)
                if t0 is None:
                    try:
                        t0 = stamps[stamp] = parse_instant(stamp)
                    except ValueError as exc:
                        raise WireError(f"{_where(decoded, act)}.startDate: {exc}") from exc
                minutes = act.lengthMinutes
                if t0 < end and t0 + minutes * 60 > start:
                    code = act.activityCodeId
                    keep((t0, minutes, intern(code, code)))
        acts.sort()
        agents.append(agent_schedule(user_id=entry.user.id, activities=tuple(acts)))
    return tuple(agents)


# --------------------------------------------------------------------------------------------
# Telephony and outbound
# --------------------------------------------------------------------------------------------


def parse_trunk_base(obj: dict[str, Any]) -> model.TrunkBase:
    what = f"trunk base {obj.get('id', '?')}" if isinstance(obj, dict) else "trunk base"
    tb = _obj(obj, what)
    props_obj = tb.get("properties", {})
    props = _obj(props_obj, f"{what}.properties")
    properties = []
    for key, prop in props.items():
        value = _obj(prop, f"{what}.properties.{key}").get("value", {})
        value = _obj(value, f"{what}.properties.{key}.value")
        properties.append((key, value.get("instance")))
    return model.TrunkBase(
        id=_str(tb, "id", what),
        name=_str(tb, "name", what),
        version=_int(tb, "version", what),
        trunk_type=_str(tb, "trunkType", what),
        properties=tuple(properties),
        raw=orjson.dumps(tb),
    )


def parse_trunk(obj: dict[str, Any]) -> model.TrunkStatus:
    what = f"trunk {obj.get('id', '?')}" if isinstance(obj, dict) else "trunk"
    trunk = _obj(obj, what)
    connected_status = trunk.get("connectedStatus") or {}
    connected = _bool(_obj(connected_status, f"{what}.connectedStatus"), "connected", what, False)
    options = []
    for i, item in enumerate(trunk.get("optionsStatus") or []):
        owhat = f"{what}.optionsStatus[{i}]"
        options.append(_bool(_obj(item, owhat), "optionState", owhat, False))
    return model.TrunkStatus(
        trunk_id=_str(trunk, "id", what),
        trunk_base_id=_ref_id(trunk, "trunkBase", what),
        connected=connected,
        options_ok=tuple(options),
        # Absent inService means the API did not say it is out of service.
        in_service=_bool(trunk, "inService", what, True),
        options_monitored=trunk.get("optionsEnabledStatus") not in ("DISABLED", "NOT_SUPPORTED"),
    )


def parse_route(obj: dict[str, Any], *, site_id: str | None = None) -> model.Route:
    what = f"outbound route {obj.get('id', '?')}" if isinstance(obj, dict) else "outbound route"
    route = _obj(obj, what)
    bases = []
    for i, item in enumerate(_list(route, "externalTrunkBases", what)):
        bases.append(_str(_obj(item, f"{what}.externalTrunkBases[{i}]"), "id", what))
    if site_id is None:
        site_id = _ref_id(route, "site", what)
    distribution = route.get("distribution", "")
    return model.Route(
        id=_str(route, "id", what),
        site_id=site_id,
        name=_str(route, "name", what),
        version=_int(route, "version", what),
        distribution=distribution if isinstance(distribution, str) else "",
        trunk_base_ids=tuple(bases),
        raw=orjson.dumps(route),
    )


def parse_campaign(obj: dict[str, Any]) -> model.Campaign:
    what = f"campaign {obj.get('id', '?')}" if isinstance(obj, dict) else "campaign"
    camp = _obj(obj, what)
    site = camp.get("site")
    site_id = _ref_id(camp, "site", what) if site is not None else None
    lines = camp.get("outboundLineCount")
    if lines is not None:
        lines = _int(camp, "outboundLineCount", what)
    status = camp.get("campaignStatus", "")
    return model.Campaign(
        id=_str(camp, "id", what),
        name=_str(camp, "name", what),
        version=_int(camp, "version", what, 0),
        status=status if isinstance(status, str) else "",
        site_id=site_id,
        outbound_line_count=lines,
        raw=orjson.dumps(camp),
    )


# --------------------------------------------------------------------------------------------
# Request bodies
# --------------------------------------------------------------------------------------------


def render_route_put(
    route: model.Route, trunk_base_ids: tuple[str, ...], names: Mapping[str, str]
) -> bytes:
    """The route exactly as read with only ``externalTrunkBases`` replaced: entries already
    present keep their dicts (name, selfUri as read); new ones get ``{"id", "name"}``."""
    obj = orjson.loads(route.raw)
    existing = {entry["id"]: entry for entry in obj.get("externalTrunkBases") or ()}
    entries: list[dict[str, Any]] = []
    for tb_id in trunk_base_ids:
        entry = existing.get(tb_id)
        if entry is None:
            entry = {"id": tb_id}
            if tb_id in names:
                entry["name"] = names[tb_id]
        entries.append(entry)
    obj["externalTrunkBases"] = entries
    return orjson.dumps(obj)


def render_trunk_base_put(tb: model.TrunkBase, instances: Mapping[str, object]) -> bytes:
    """The trunk base exactly as read with only ``properties[key].value.instance`` changed.

    A key the trunk base does not have is an error: syncd never invents a property (its type,
    default and constraints come from the server's template)."""
    obj = orjson.loads(tb.raw)
    props = obj.get("properties") or {}
    for key, instance in instances.items():
        prop = props.get(key)
        if prop is None:
            raise ValueError(f"trunk base {tb.id} has no property {key!r} to set")
        prop.setdefault("value", {})["instance"] = instance
    return orjson.dumps(obj)


def render_campaign_patch(lines: int) -> bytes:
    body: CampaignPatchJson = {"outboundLineCount": lines}
    return orjson.dumps(body)


def render_schedule_search(start: int, end: int, user_ids: tuple[str, ...] = ()) -> bytes:
    body: ScheduleSearchJson = {"startDate": render_instant(start), "endDate": render_instant(end)}
    if user_ids:
        body["userIds"] = list(user_ids)
    return orjson.dumps(body)


def render_schedule_query(management_unit_id: str) -> bytes:
    body: ScheduleQueryJson = {"managementUnitId": management_unit_id}
    return orjson.dumps(body)
