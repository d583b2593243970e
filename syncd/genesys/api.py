"""The Genesys Cloud calls syncd makes, returning ``core.model`` values.

Role: one method per read and write of docs/domain.md (WFM business units, activity codes, schedule
listings, agent schedules by search or query — inline or via ``downloadUrl`` —, management
units, trunk bases, trunks, site outbound routes, campaigns), each reading EVERY page of a
listing (largest page size the API allows, to save budget) and parsing through ``core.wire``.
Writes return the request id (ININ-Correlation-Id) for the audit trail. ``GenesysApiPort`` is
the Protocol the engine depends on, so tests and dry runs can substitute it.

It must not pace, retry or translate HTTP errors (``transport`` does), must not decide what to
write (the planner does) and must not build request bodies itself (``wire`` renders them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from syncd import errors
from syncd.core import model, pacing, wire
from syncd.genesys import transport

log = logging.getLogger(__name__)

T = TypeVar("T")

WFM = "/api/v2/workforcemanagement"
BU = WFM + "/businessunits/{businessUnitId}"
SCHEDULE = BU + "/weeks/{weekId}/schedules/{scheduleId}"
EDGES = "/api/v2/telephony/providers/edges"
TRUNK_BASES = EDGES + "/trunkbasesettings"
TRUNK_BASE = TRUNK_BASES + "/{trunkBaseSettingsId}"
TRUNKS = EDGES + "/trunks"
TRUNK = TRUNKS + "/{trunkId}"
SITE_ROUTES = EDGES + "/sites/{siteId}/outboundroutes"
SITE_ROUTE = SITE_ROUTES + "/{outboundRouteId}"
CAMPAIGNS = "/api/v2/outbound/campaigns"
CAMPAIGN = CAMPAIGNS + "/{campaignId}"

LIMITS = "/api/v2/organizations/limits/namespaces/{namespaceName}"

ORG_ROUTES = EDGES + "/outboundroutes"
MU_USERS = WFM + "/managementunits/{managementUnitId}/users"
OAUTH_CLIENT = "/api/v2/oauth/clients/{clientId}"
ROLE = "/api/v2/authorization/roles/{roleId}"
TOKEN_INFO = "/api/v2/tokens/me"  # noqa: S105 - a path, not a token

PAGE_SIZE = 500  # telephony listings accept large pages; one request instead of twenty
CAMPAIGN_PAGE_SIZE = 100  # the outbound campaign listing's maximum
MAX_PAGES = 10_000  # a guard against a server whose pageCount never ends

Priority = model.Priority


@dataclass(frozen=True, slots=True, kw_only=True)
class NamedRef:
    """A business unit or management unit: its id and display name."""

    id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessUnitInfo:
    """A business unit's settings that matter here: its time zone and first day of the week."""

    id: str
    name: str
    time_zone: str
    start_day_of_week: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteRoute:
    """An outbound route as the org-wide listing gives it: the route and its site."""

    route: model.Route
    site: NamedRef


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteResult:
    """What a write returns: the server's request id (for the audit trail) and status."""

    request_id: str
    status: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OrgLimits:
    """The org's effective limits of one namespace, or why they are unknown."""

    namespace: str
    limits: tuple[model.Limit, ...] | None  # None: unknown
    unknown_reason: str = ""  # why they are unknown (the API's refusal)

    def value(self, key: str) -> int | None:
        """The limit ``key`` of this namespace; None when unknown or not listed."""
        for limit in self.limits or ():
            if limit.key == key and limit.namespace == self.namespace:
                return limit.value
        return None


class GenesysApiPort(Protocol):
    """The calls the engine makes; ``GenesysApi`` is the real one."""

    async def business_units(self, *, priority: int = ...) -> tuple[NamedRef, ...]: ...

    async def business_unit(
        self, business_unit_id: str, *, priority: int = ...
    ) -> BusinessUnitInfo: ...

    async def activity_codes(
        self, business_unit_id: str, *, priority: int = ...
    ) -> tuple[model.ActivityCode, ...]: ...

    async def schedule_listing(
        self, business_unit_id: str, week_id: str, *, priority: int = ...
    ) -> tuple[model.ScheduleRef, ...]: ...

    async def search_agent_schedules(
        self,
        business_unit_id: str,
        *,
        start: int,
        end: int,
        user_ids: tuple[str, ...] = (),
        force_download: bool = False,
        priority: int = ...,
    ) -> model.ManagementUnitSchedule: ...

    async def query_agent_schedules(
        self,
        business_unit_id: str,
        week_id: str,
        schedule_id: str,
        management_unit_id: str,
        *,
        start: int,
        end: int,
        force_download: bool = False,
        priority: int = ...,
    ) -> model.ManagementUnitSchedule: ...

    async def management_units(
        self, business_unit_id: str, *, priority: int = ...
    ) -> tuple[NamedRef, ...]: ...

    async def list_trunk_bases(self, *, priority: int = ...) -> tuple[model.TrunkBase, ...]: ...

    async def get_trunk_base(
        self, trunk_base_id: str, *, priority: int = ...
    ) -> model.TrunkBase: ...

    async def put_trunk_base(
        self, trunk_base: model.TrunkBase, body: bytes, *, priority: int = ...
    ) -> WriteResult: ...

    async def list_trunks(self, *, priority: int = ...) -> tuple[model.TrunkStatus, ...]: ...

    async def get_trunk(self, trunk_id: str, *, priority: int = ...) -> model.TrunkStatus: ...

    async def list_routes(
        self, site_id: str, *, priority: int = ...
    ) -> tuple[model.Route, ...]: ...

    async def get_route(
        self, site_id: str, route_id: str, *, priority: int = ...
    ) -> model.Route: ...

    async def put_route(
        self, route: model.Route, body: bytes, *, priority: int = ...
    ) -> WriteResult: ...

    async def list_campaigns(self, *, priority: int = ...) -> tuple[model.Campaign, ...]: ...

    async def get_campaign(self, campaign_id: str, *, priority: int = ...) -> model.Campaign: ...

    async def patch_campaign_lines(
        self, campaign_id: str, lines: int, *, priority: int = ...
    ) -> WriteResult: ...


def _parsed(response: transport.Response, parse: Callable[[bytes], T]) -> T:
    """Parse a 2xx body; a body the parser rejects is the server's fault: MalformedResponse."""
    try:
        return parse(response.body)
    except (ValueError, TypeError) as exc:
        raise errors.MalformedResponse(
            f"{response.method} {response.endpoint} answered with an unexpected body: {exc}",
            status=response.status,
            endpoint=response.endpoint,
            method=response.method,
            request_id=response.request_id,
        ) from None


def _entity(response: transport.Response, parse: Callable[[dict[str, Any]], T]) -> T:
    """One JSON object parsed by ``parse``; anything else is MalformedResponse."""
    data = response.json()

    def whole(_: bytes) -> T:
        if not isinstance(data, dict):
            raise TypeError("expected a JSON object")
        return parse(data)

    return _parsed(response, whole)


def _refs(response: transport.Response) -> tuple[NamedRef, ...]:
    def parse(body: bytes) -> tuple[NamedRef, ...]:
        page = wire.parse_page(body)
        out = []
        for entity in page.entities:
            ident, name = entity.get("id"), entity.get("name", "")
            if not isinstance(ident, str):
                raise TypeError("an entity has no string id")
            out.append(NamedRef(id=ident, name=name if isinstance(name, str) else ""))
        return tuple(out)

    return _parsed(response, parse)


class GenesysApi:
    """The real ``GenesysApiPort`` over a ``transport.Transport``."""

    def __init__(self, transport_: transport.Transport) -> None:
        self.transport = transport_

    async def _all_pages(
        self,
        template: str,
        *,
        path: dict[str, str] | None = None,
        query: list[tuple[str, str | int]] | None = None,
        page_size: int | None = None,
        priority: int,
        retry_class: pacing.RetryClass | None = None,
    ) -> list[dict[str, Any]]:
        """Every entity of a paged listing: pages 1..pageCount (or while nextUri is given)."""
        entities: list[dict[str, Any]] = []
        number = 1
        total: int | None = None
        while number <= MAX_PAGES:
            q: list[tuple[str, str | int]] = [
                *(query or []),
                ("pageSize", page_size or PAGE_SIZE),
                ("pageNumber", number),
            ]
            resp = await self.transport.request(
                "GET", template, path=path, query=q, priority=priority, retry_class=retry_class
            )
            page = _parsed(resp, wire.parse_page)
            if total is not None and page.total != total:
                # Entities were added or removed between pages, so the pages overlap or leave
                # a gap: the listing as a whole says nothing reliable (read it again later).
                raise errors.MalformedResponse(
                    f"GET {template} changed while it was paged (total {total} on page 1,"
                    f" {page.total} on page {page.page_number}).",
                    endpoint=template,
                    method="GET",
                )
            total = page.total if page.total_given else None
            entities.extend(page.entities)
            if page.page_number >= page.page_count and page.next_uri is None:
                return entities
            if not page.entities:
                return entities  # a server promising more pages but sending none: stop
            number = page.page_number + 1
        raise errors.MalformedResponse(
            f"GET {template} claimed more than {MAX_PAGES} pages.", endpoint=template, method="GET"
        )

    # --- WFM ---------------------------------------------------------------------------------

    async def business_units(self, *, priority: int = Priority.STAFFING) -> tuple[NamedRef, ...]:
        resp = await self.transport.request("GET", WFM + "/businessunits", priority=priority)
        return _refs(resp)

    async def business_unit(
        self, business_unit_id: str, *, priority: int = Priority.STAFFING
    ) -> BusinessUnitInfo:
        """``GET …/businessunits/{id}?expand=settings`` (settings come only with the expand)."""
        resp = await self.transport.request(
            "GET",
            BU,
            path={"businessUnitId": business_unit_id},
            query=[("expand", "settings")],
            priority=priority,
        )

        def parse(obj: dict[str, Any]) -> BusinessUnitInfo:
            settings = obj.get("settings")
            if not isinstance(settings, dict):
                raise TypeError("business unit without settings (expand=settings was asked)")
            tz, day = settings.get("timeZone"), settings.get("startDayOfWeek")
            if not isinstance(tz, str) or not isinstance(day, str):
                raise TypeError("business unit settings lack timeZone or startDayOfWeek")
            return BusinessUnitInfo(
                id=str(obj.get("id", business_unit_id)),
                name=str(obj.get("name", "")),
                time_zone=tz,
                start_day_of_week=day,
            )

        return _entity(resp, parse)

    async def activity_codes(
        self, business_unit_id: str, *, priority: int = Priority.STAFFING
    ) -> tuple[model.ActivityCode, ...]:
        resp = await self.transport.request(
            "GET",
            BU + "/activitycodes",
            path={"businessUnitId": business_unit_id},
            priority=priority,
        )
        return _parsed(resp, wire.parse_activity_codes)

    async def schedule_listing(
        self, business_unit_id: str, week_id: str, *, priority: int = Priority.STAFFING
    ) -> tuple[model.ScheduleRef, ...]:
        resp = await self.transport.request(
            "GET",
            BU + "/weeks/{weekId}/schedules",
            path={"businessUnitId": business_unit_id, "weekId": week_id},
            priority=priority,
        )
        return _parsed(resp, wire.parse_schedule_listing)

    async def management_units(
        self, business_unit_id: str, *, priority: int = Priority.STAFFING
    ) -> tuple[NamedRef, ...]:
        resp = await self.transport.request(
            "GET",
            BU + "/managementunits",
            path={"businessUnitId": business_unit_id},
            priority=priority,
        )
        return _refs(resp)

    async def _agent_schedules(
        self,
        resp: transport.Response,
        *,
        business_unit_id: str,
        management_unit_id: str,
        start: int,
        end: int,
    ) -> model.ManagementUnitSchedule:
        answer = _parsed(resp, wire.parse_async_schedules)
        if answer.result is not None:
            result: bytes | dict[str, Any] = answer.result
        elif answer.download_url is not None:
            # The bulk export link is presigned: fetched without our bearer token.
            result = await self.transport.download(answer.download_url, endpoint=resp.endpoint)
        else:
            raise errors.TransientError(
                f"{resp.method} {resp.endpoint} answered {answer.status!r} without a result;"
                " the query must be repeated.",
                status=resp.status,
                endpoint=resp.endpoint,
                method=resp.method,
                request_id=resp.request_id,
            )

        def parse(_: bytes) -> model.ManagementUnitSchedule:
            return wire.parse_agent_schedules(
                result,
                business_unit_id=business_unit_id,
                management_unit_id=management_unit_id,
                start=start,
                end=end,
            )

        return _parsed(resp, parse)

    async def search_agent_schedules(
        self,
        business_unit_id: str,
        *,
        start: int,
        end: int,
        user_ids: tuple[str, ...] = (),
        force_download: bool = False,
        priority: int = Priority.STAFFING,
    ) -> model.ManagementUnitSchedule:
        """Published shifts of a whole BU overlapping ``[start, end)`` (management unit "")."""
        query: list[tuple[str, str | int]] | None = (
            [("forceDownloadService", "true")] if force_download else None
        )
        resp = await self.transport.request(
            "POST",
            BU + "/agentschedules/search",
            path={"businessUnitId": business_unit_id},
            query=query,
            body=wire.render_schedule_search(start, end, user_ids),
            priority=priority,
        )
        return await self._agent_schedules(
            resp, business_unit_id=business_unit_id, management_unit_id="", start=start, end=end
        )

    async def query_agent_schedules(
        self,
        business_unit_id: str,
        week_id: str,
        schedule_id: str,
        management_unit_id: str,
        *,
        start: int,
        end: int,
        force_download: bool = False,
        priority: int = Priority.STAFFING,
    ) -> model.ManagementUnitSchedule:
        query: list[tuple[str, str | int]] | None = (
            [("forceDownloadService", "true")] if force_download else None
        )
        resp = await self.transport.request(
            "POST",
            SCHEDULE + "/agentschedules/query",
            path={
                "businessUnitId": business_unit_id,
                "weekId": week_id,
                "scheduleId": schedule_id,
            },
            query=query,
            body=wire.render_schedule_query(management_unit_id),
            priority=priority,
        )
        return await self._agent_schedules(
            resp,
            business_unit_id=business_unit_id,
            management_unit_id=management_unit_id,
            start=start,
            end=end,
        )

    # --- telephony -----------------------------------------------------------------------------

    async def list_trunk_bases(
        self, *, priority: int = Priority.STAFFING
    ) -> tuple[model.TrunkBase, ...]:
        items = await self._all_pages(TRUNK_BASES, priority=priority)
        return tuple(_parse_each(items, wire.parse_trunk_base, TRUNK_BASES))

    async def get_trunk_base(
        self, trunk_base_id: str, *, priority: int = Priority.STAFFING
    ) -> model.TrunkBase:
        resp = await self.transport.request(
            "GET", TRUNK_BASE, path={"trunkBaseSettingsId": trunk_base_id}, priority=priority
        )
        return _entity(resp, wire.parse_trunk_base)

    async def put_trunk_base(
        self, trunk_base: model.TrunkBase, body: bytes, *, priority: int = Priority.STAFFING
    ) -> WriteResult:
        """PUT the whole trunk base (``wire.render_trunk_base_put``); 409/400-version → conflict."""
        resp = await self.transport.request(
            "PUT",
            TRUNK_BASE,
            path={"trunkBaseSettingsId": trunk_base.id},
            body=body,
            priority=priority,
        )
        return WriteResult(request_id=resp.request_id, status=resp.status)

    async def list_trunks(
        self, *, priority: int = Priority.STAFFING
    ) -> tuple[model.TrunkStatus, ...]:
        """Every EXTERNAL trunk instance's status: a health read, paid from the health retry
        budget whatever its priority (a failing poll never spends a failover's retries)."""
        items = await self._all_pages(
            TRUNKS,
            query=[("trunkType", "EXTERNAL")],
            priority=priority,
            retry_class=pacing.RetryClass.HEALTH,
        )
        return tuple(_parse_each(items, wire.parse_trunk, TRUNKS))

    async def get_trunk(
        self, trunk_id: str, *, priority: int = Priority.STAFFING
    ) -> model.TrunkStatus:
        """One trunk instance's status (what a notification on its topic asks to re-read); a
        health read, like ``list_trunks``."""
        resp = await self.transport.request(
            "GET",
            TRUNK,
            path={"trunkId": trunk_id},
            priority=priority,
            retry_class=pacing.RetryClass.HEALTH,
        )
        return _entity(resp, wire.parse_trunk)

    async def list_routes(
        self, site_id: str, *, priority: int = Priority.STAFFING
    ) -> tuple[model.Route, ...]:
        items = await self._all_pages(SITE_ROUTES, path={"siteId": site_id}, priority=priority)
        return tuple(
            _parse_each(items, lambda o: wire.parse_route(o, site_id=site_id), SITE_ROUTES)
        )

    async def get_route(
        self, site_id: str, route_id: str, *, priority: int = Priority.STAFFING
    ) -> model.Route:
        resp = await self.transport.request(
            "GET",
            SITE_ROUTE,
            path={"siteId": site_id, "outboundRouteId": route_id},
            priority=priority,
        )
        return _entity(resp, lambda o: wire.parse_route(o, site_id=site_id))

    async def put_route(
        self, route: model.Route, body: bytes, *, priority: int = Priority.STAFFING
    ) -> WriteResult:
        resp = await self.transport.request(
            "PUT",
            SITE_ROUTE,
            path={"siteId": route.site_id, "outboundRouteId": route.id},
            body=body,
            priority=priority,
        )
        return WriteResult(request_id=resp.request_id, status=resp.status)

    # --- organization ----------------------------------------------------------------------

    async def namespace_limits(
        self, namespace: str, *, priority: int = Priority.STAFFING
    ) -> OrgLimits:
        """``GET /api/v2/organizations/limits/namespaces/{namespace}``: the org's effective
        limits there (docs/genesys-setup.md, "Rate limits"). A 403 (the client may not read
        them) or 404 (not offered) makes them unknown, not an error; a malformed answer is
        ``MalformedResponse`` naming the entry and field."""
        try:
            resp = await self.transport.request(
                "GET", LIMITS, path={"namespaceName": namespace}, priority=priority
            )
        except (errors.AuthError, errors.NotFound) as exc:
            if exc.status not in (403, 404):
                raise  # 401: the credentials themselves were refused
            return OrgLimits(namespace=namespace, limits=None, unknown_reason=str(exc))
        return OrgLimits(
            namespace=namespace,
            limits=_parsed(resp, lambda body: wire.parse_limits(body, namespace)),
        )

    # --- outbound ------------------------------------------------------------------------------

    async def list_campaigns(
        self, *, priority: int = Priority.STAFFING
    ) -> tuple[model.Campaign, ...]:
        items = await self._all_pages(CAMPAIGNS, page_size=CAMPAIGN_PAGE_SIZE, priority=priority)
        return tuple(_parse_each(items, wire.parse_campaign, CAMPAIGNS))

    async def get_campaign(
        self, campaign_id: str, *, priority: int = Priority.STAFFING
    ) -> model.Campaign:
        resp = await self.transport.request(
            "GET", CAMPAIGN, path={"campaignId": campaign_id}, priority=priority
        )
        return _entity(resp, wire.parse_campaign)

    async def patch_campaign_lines(
        self, campaign_id: str, lines: int, *, priority: int = Priority.STAFFING
    ) -> WriteResult:
        resp = await self.transport.request(
            "PATCH",
            CAMPAIGN,
            path={"campaignId": campaign_id},
            body=wire.render_campaign_patch(lines),
            priority=priority,
        )
        return WriteResult(request_id=resp.request_id, status=resp.status)


class OnboardingApi(GenesysApi):
    """Reads only ``syncd discover`` and ``syncd verify`` make (the daemon never does): the
    org-wide route listing (one request for every site's routes), the agents of a management
    unit, and the token's own description. Same rules as ``GenesysApi``: every page, no retry
    or error translation here."""

    async def list_org_routes(self, *, priority: int = Priority.STAFFING) -> tuple[SiteRoute, ...]:
        items = await self._all_pages(ORG_ROUTES, priority=priority)

        def parse(obj: dict[str, Any]) -> SiteRoute:
            route = wire.parse_route(obj)  # the listing embeds the site
            site = obj.get("site")
            name = site.get("name") if isinstance(site, dict) else None
            return SiteRoute(
                route=route,
                site=NamedRef(id=route.site_id, name=name if isinstance(name, str) else ""),
            )

        return tuple(_parse_each(items, parse, ORG_ROUTES))

    async def management_unit_agents(
        self, management_unit_id: str, *, priority: int = Priority.STAFFING
    ) -> tuple[NamedRef, ...]:
        resp = await self.transport.request(
            "GET", MU_USERS, path={"managementUnitId": management_unit_id}, priority=priority
        )
        return _refs(resp)

    async def client_role_ids(
        self, client_id: str, *, priority: int = Priority.STAFFING
    ) -> tuple[str, ...]:
        """The roles granted to an OAuth client (``roleDivisions[].roleId``)."""
        resp = await self.transport.request(
            "GET", OAUTH_CLIENT, path={"clientId": client_id}, priority=priority
        )

        def parse(obj: dict[str, Any]) -> tuple[str, ...]:
            grants = obj.get("roleDivisions") or []
            ids = [g.get("roleId") for g in grants if isinstance(g, dict)]
            ids += [r for r in obj.get("roleIds") or [] if isinstance(r, str)]
            return tuple(dict.fromkeys(i for i in ids if isinstance(i, str)))

        return _entity(resp, parse)

    async def role_permissions(
        self, role_id: str, *, priority: int = Priority.STAFFING
    ) -> tuple[str, tuple[str, ...]]:
        """A role's name and its permissions as ``domain:entity:action`` (``*`` allowed)."""
        resp = await self.transport.request(
            "GET", ROLE, path={"roleId": role_id}, priority=priority
        )

        def parse(obj: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
            granted = []
            for policy in obj.get("permissionPolicies") or []:
                if not isinstance(policy, dict):
                    raise TypeError("a permission policy is not an object")
                domain, entity = policy.get("domain"), policy.get("entityName")
                for action in policy.get("actionSet") or []:
                    granted.append(f"{domain}:{entity}:{action}")
            granted += [p for p in obj.get("permissions") or [] if isinstance(p, str)]
            return str(obj.get("name", role_id)), tuple(granted)

        return _entity(resp, parse)

    async def token_info(self, *, priority: int = Priority.STAFFING) -> transport.Response:
        """``GET /api/v2/tokens/me``: the raw answer (its JSON names the org and the OAuth
        client; its headers carry the rate-limit state)."""
        return await self.transport.request("GET", TOKEN_INFO, priority=priority)


def _parse_each(
    items: list[dict[str, Any]], parse: Callable[[dict[str, Any]], T], endpoint: str
) -> list[T]:
    try:
        return [parse(item) for item in items]
    except ValueError as exc:
        raise errors.MalformedResponse(
            f"GET {endpoint} listed an entity syncd cannot read: {exc}",
            endpoint=endpoint,
            method="GET",
        ) from None
