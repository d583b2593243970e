"""Wire: parsing API JSON into the model, and full-object renders that change only owned fields."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from syncd.core import model, wire


def activity(start: str, minutes: int, code: str = "q") -> dict[str, Any]:
    return {
        "startDate": start,
        "lengthMinutes": minutes,
        "description": "x",
        "activityCodeId": code,
        "paid": True,
    }


RESULT = {
    "agentSchedules": [
        {
            "user": {"id": "u1", "selfUri": "/u1"},
            "shifts": [
                {
                    "id": "s1",
                    "startDate": "2026-03-04T08:00:00Z",
                    "lengthMinutes": 240,
                    "activities": [
                        activity("2026-03-04T08:00:00Z", 120),
                        activity("2026-03-04T10:00:00.000Z", 15, "br"),
                        activity("2026-03-04T10:15:00+00:00", 105),
                    ],
                }
            ],
            "fullDayTimeOffMarkers": [],
        },
        {"user": {"id": "u2"}, "shifts": []},
    ],
    "businessUnitTimeZone": "America/Chicago",
}
T8 = 1772611200  # 2026-03-04T08:00:00Z


def test_parse_instant_forms() -> None:
    assert wire.parse_instant("2026-03-04T08:00:00Z") == T8
    assert wire.parse_instant("2026-03-04T08:00:00.999Z") == T8
    assert wire.parse_instant("2026-03-04T02:00:00-06:00") == T8
    assert wire.parse_instant("1969-12-31T23:59:59Z") == -1
    with pytest.raises(ValueError, match="time zone"):
        wire.parse_instant("2026-03-04T08:00:00")


def test_agent_schedules_keep_overlapping_activities_sorted() -> None:
    parsed = wire.parse_agent_schedules(
        orjson.dumps(RESULT),
        business_unit_id="bu",
        management_unit_id="mu",
        start=T8 + 7200,
        end=T8 + 9000,
    )
    assert [a.user_id for a in parsed.agents] == ["u1", "u2"]
    assert parsed.agents[0].activities == ((T8 + 7200, 15, "br"), (T8 + 8100, 105, "q"))
    assert parsed.agents[1].activities == ()


def test_agent_schedules_accepts_a_decoded_result() -> None:
    parsed = wire.parse_agent_schedules(
        RESULT, business_unit_id="b", management_unit_id="m", start=0, end=1 << 40
    )
    assert len(parsed.agents[0].activities) == 3


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (
            lambda r: r["agentSchedules"][0]["shifts"][0]["activities"][1].pop("startDate"),
            r"agentSchedules\[0\]\.shifts\[0\]\.activities\[1\]\.startDate",
        ),
        (
            lambda r: r["agentSchedules"][0]["shifts"][0]["activities"][2].update(
                lengthMinutes="15"
            ),
            r"activities\[2\]\.lengthMinutes",
        ),
        (lambda r: r["agentSchedules"][1].update(user={}), r"agentSchedules\[1\]\.user\.id"),
        (
            lambda r: r["agentSchedules"][0]["shifts"][0]["activities"][0].update(
                startDate="yesterday"
            ),
            r"activities\[0\]\.startDate",
        ),
        (lambda r: r.pop("agentSchedules"), r"agent schedules\.agentSchedules: missing"),
    ],
    ids=["missing-start", "string-length", "user-without-id", "bad-timestamp", "no-list"],
)
def test_agent_schedules_errors_name_the_field(mutate: Any, where: str) -> None:
    bad = copy.deepcopy(RESULT)
    mutate(bad)
    with pytest.raises(wire.WireError, match=where):
        wire.parse_agent_schedules(
            orjson.dumps(bad), business_unit_id="b", management_unit_id="m", start=0, end=1 << 40
        )


def test_page_shapes() -> None:
    page = wire.parse_page(
        b'{"entities":[{"id":"a"}],"pageSize":1,"pageNumber":2,"total":3,"pageCount":3,"nextUri":"/x?pageNumber=3"}'
    )
    assert (page.page_number, page.page_count, page.total, page.next_uri) == (
        2,
        3,
        3,
        "/x?pageNumber=3",
    )
    unpaged = wire.parse_page(b'{"entities":[{"id":"a"},{"id":"b"}]}')
    assert (unpaged.page_number, unpaged.page_count, unpaged.total, unpaged.next_uri) == (
        1,
        1,
        2,
        None,
    )
    with pytest.raises(wire.WireError, match=r"listing\.entities\[0\]"):
        wire.parse_page(b'{"entities":[1]}')
    with pytest.raises(wire.WireError, match="not JSON"):
        wire.parse_page(b"<html>")


def test_wfm_listings() -> None:
    codes = wire.parse_activity_codes(
        b'{"entities":[{"id":"c","name":"Outbound Dialing","category":"OnQueueWork"}]}'
    )
    assert codes[0].category == "OnQueueWork"
    refs = wire.parse_schedule_listing(
        b'{"entities":[{"id":"s","weekDate":"2026-03-02","weekCount":1,"published":true,'
        b'"metadata":{"version":4,"dateModified":"2026-03-01T00:00:00Z"}}]}'
    )
    assert (refs[0].version, refs[0].published, refs[0].date_modified) == (
        4,
        True,
        "2026-03-01T00:00:00Z",
    )
    with pytest.raises(wire.WireError, match=r"entities\[0\]\.metadata\.version"):
        wire.parse_schedule_listing(
            b'{"entities":[{"id":"s","weekDate":"2026-03-02","metadata":{}}]}'
        )
    done = wire.parse_async_schedules(
        b'{"status":"Complete","operationId":"op","downloadUrl":"https://dl/x"}'
    )
    assert (done.status, done.operation_id, done.download_url, done.result) == (
        "Complete",
        "op",
        "https://dl/x",
        None,
    )


TRUNK_BASE = {
    "id": "tb1",
    "name": "Acme",
    "version": 7,
    "trunkType": "EXTERNAL",
    "description": "keep me",
    "properties": {
        "trunk_maxCallRate": {
            "type": "string",
            "value": {"default": "40/5s", "instance": "20/5s"},
            "required": False,
        },
        "trunk_media_codec": {
            "type": "array",
            "value": {"default": [], "instance": ["audio/opus"]},
            "items": {"type": "string"},
        },
    },
    "unknownFutureField": {"nested": [1, 2, 3]},
}
ROUTE = {
    "id": "r1",
    "name": "Default",
    "version": 3,
    "distribution": "SEQUENTIAL",
    "classificationTypes": ["National"],
    "externalTrunkBases": [
        {"id": "a", "name": "A", "selfUri": "/a"},
        {"id": "b", "name": "B", "selfUri": "/b"},
    ],
    "enabled": True,
}


def test_trunk_base_put_changes_only_the_instance() -> None:
    tb = wire.parse_trunk_base(TRUNK_BASE)
    assert tb.property_instance("trunk_maxCallRate") == "20/5s"
    body = orjson.loads(wire.render_trunk_base_put(tb, {"trunk_maxCallRate": "30/5s"}))
    expected = copy.deepcopy(TRUNK_BASE)
    expected["properties"]["trunk_maxCallRate"]["value"]["instance"] = "30/5s"
    assert body == expected
    with pytest.raises(ValueError, match="no property"):
        wire.render_trunk_base_put(tb, {"trunk_maxCalls": 3})


def test_route_put_changes_only_the_trunk_list() -> None:
    route = wire.parse_route(ROUTE, site_id="s1")
    assert (route.site_id, route.trunk_base_ids) == ("s1", ("a", "b"))
    body = orjson.loads(wire.render_route_put(route, ("b", "c"), {"c": "C"}))
    expected = copy.deepcopy(ROUTE)
    expected["externalTrunkBases"] = [
        {"id": "b", "name": "B", "selfUri": "/b"},
        {"id": "c", "name": "C"},
    ]
    assert body == expected
    with pytest.raises(wire.WireError, match=r"site"):
        wire.parse_route(ROUTE)


@pytest.mark.parametrize(
    ("enabled", "options", "healthy"),
    [
        ("ENABLED", [], False),  # OPTIONS are sent but none answered yet: not trusted
        ("ENABLED", [{"proxyAddress": "a", "optionState": False}], False),
        ("DISABLED", [], True),  # no OPTIONS at all: the connection is the only signal
        ("NOT_SUPPORTED", [], True),
        (None, [], False),  # not said: treated as sent
    ],
    ids=["enabled-no-answer", "enabled-failing", "disabled", "not-supported", "unspecified"],
)
def test_trunk_health_without_options_monitoring(
    enabled: str | None, options: list[dict[str, object]], healthy: bool
) -> None:
    obj: dict[str, Any] = {
        "id": "t",
        "trunkBase": {"id": "tb"},
        "inService": True,
        "connectedStatus": {"connected": True},
        "optionsStatus": options,
    }
    if enabled is not None:
        obj["optionsEnabledStatus"] = enabled
    assert wire.parse_trunk(obj).healthy is healthy
    obj["connectedStatus"] = {"connected": False}
    assert not wire.parse_trunk(obj).healthy


def test_trunk_and_campaign() -> None:
    trunk = wire.parse_trunk(
        {
            "id": "t",
            "trunkBase": {"id": "tb"},
            "inService": True,
            "connectedStatus": {"connected": True},
            "optionsStatus": [
                {"proxyAddress": "a", "optionState": False},
                {"proxyAddress": "b", "optionState": True},
            ],
        }
    )
    assert trunk.healthy
    assert trunk.options_ok == (False, True)
    assert not wire.parse_trunk(
        {"id": "t", "trunkBase": {"id": "tb"}, "connectedStatus": {"connected": False}}
    ).healthy
    camp = wire.parse_campaign(
        {
            "id": "c",
            "name": "C",
            "version": 2,
            "site": {"id": "s"},
            "outboundLineCount": 5,
            "campaignStatus": "on",
        }
    )
    assert (camp.site_id, camp.outbound_line_count, camp.status) == ("s", 5, "on")
    with pytest.raises(wire.WireError, match=r"campaign c\.outboundLineCount"):
        wire.parse_campaign({"id": "c", "name": "C", "version": 2, "outboundLineCount": "5"})


def test_request_bodies() -> None:
    assert orjson.loads(wire.render_campaign_patch(12)) == {"outboundLineCount": 12}
    assert orjson.loads(wire.render_schedule_search(T8, T8 + 86400, ("u1",))) == {
        "startDate": "2026-03-04T08:00:00Z",
        "endDate": "2026-03-05T08:00:00Z",
        "userIds": ["u1"],
    }
    assert orjson.loads(wire.render_schedule_query("mu")) == {"managementUnitId": "mu"}


# --- org limits (LimitsEntityListing) -------------------------------------------------------


def test_limits_are_parsed_from_the_sdk_listing_shape() -> None:
    body = orjson.dumps(
        {
            "entities": [
                {
                    "key": "client.credentials.token.rate.per.minute",
                    "namespace": "platform.api",
                    "value": 180,
                },
                {"key": "org.app.user.rate.per.minute", "value": 3000},  # namespace left out
            ]
        }
    )
    assert wire.parse_limits(body, "platform.api") == (
        model.Limit(
            namespace="platform.api", key="client.credentials.token.rate.per.minute", value=180
        ),
        model.Limit(namespace="platform.api", key="org.app.user.rate.per.minute", value=3000),
    )
    assert wire.parse_limits(b'{"entities": []}', "outbound") == ()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b"[]", r"^limits of platform\.api: expected an object, got list$"),
        (b"{}", r"^limits of platform\.api\.entities: expected an array, got nothing$"),
        (b'{"entities": [1]}', r"^limits of platform\.api\.entities\[0\]: expected an object"),
        (
            b'{"entities": [{"key": "a", "value": 1}, {"key": "b", "value": "300"}]}',
            r"^limits of platform\.api\.entities\[1\]\.value: expected an integer, got str$",
        ),
        (
            b'{"entities": [{"value": 300}]}',
            r"^limits of platform\.api\.entities\[0\]\.key: expected a string, got nothing$",
        ),
        (
            b'{"entities": [{"key": "a", "value": -1}]}',
            r"^limits of platform\.api\.entities\[0\]\.value: expected a limit >= 0, got -1$",
        ),
        (
            b'{"entities": [{"key": "a", "namespace": 7, "value": 1}]}',
            r"^limits of platform\.api\.entities\[0\]\.namespace: expected a string, got int$",
        ),
        (b'{"entities": [', r"^limits of platform\.api: body is not JSON"),
    ],
    ids=["array", "no-entities", "entity-not-object", "value-str", "no-key", "negative",
         "namespace-int", "not-json"],
)  # fmt: skip
def test_a_malformed_limits_listing_names_the_entry_and_field(body: bytes, where: str) -> None:
    with pytest.raises(wire.WireError, match=where):
        wire.parse_limits(body, "platform.api")
