"""Planner: properties (converges, deterministic, minimal, owned fields only, monotone) and
example tables (failover, hold-down, shortfall, shared route, hysteresis edge, midnight)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core import allocation, model, planner, wire

NOW = 1772611200 + 36000  # 2026-03-04T18:00:00Z
CODES = (
    model.ActivityCode(id="q", name="On Queue Work", category="OnQueueWork"),
    model.ActivityCode(id="br", name="Break", category="Break"),
)
TRUNKS_A = ("a1", "a2", "a3")
TRUNKS_B = ("b1", "b2")
MANAGED, ORDER_ONLY = planner.RouteMembership.MANAGED, planner.RouteMembership.ORDER_ONLY


def group(
    name: str, trunks: tuple[str, ...], caps: tuple[int, ...], prios: tuple[int, ...], **kw: Any
) -> planner.GroupSpec:
    fields: dict[str, Any] = {
        "name": name,
        "management_units": (f"mu-{name}",),
        "campaigns": (
            planner.CampaignSpec(id=f"c-{name}1", weight=2.0),
            planner.CampaignSpec(id=f"c-{name}2", weight=1.0),
        ),
        "routes": (
            planner.RouteSpec(site_id="s1", id="r-shared", trunks=MANAGED),
            planner.RouteSpec(site_id="s1", id=f"r-{name}", trunks=MANAGED),
        ),
        "trunks": tuple(
            allocation.TrunkSpec(trunk_base_id=t, capacity=c, priority=p)
            for t, c, p in zip(trunks, caps, prios, strict=True)
        ),
        "lines_per_agent": 1.5,
        "min_lines": 1,
        "max_lines": 100,
        "hysteresis": 2,
        "call_rate": planner.CallRateSpec(per_line=0.5),
    }
    fields.update(kw)
    return planner.GroupSpec(**fields)


def settings_for(ga: planner.GroupSpec, gb: planner.GroupSpec) -> planner.PlannerSettings:
    return planner.PlannerSettings(groups=(ga, gb), interval_s=900, lead_time_s=120)


def schedule(
    mu: str, agents: int, start: int = NOW - 3600, minutes: int = 180
) -> model.ManagementUnitSchedule:
    return model.ManagementUnitSchedule(
        business_unit_id="bu",
        management_unit_id=mu,
        start=0,
        end=1 << 40,
        agents=tuple(
            model.AgentSchedule(user_id=f"{mu}-{i}", activities=((start, minutes, "q"),))
            for i in range(agents)
        ),
    )


def route(rid: str, order: tuple[str, ...], version: int = 1) -> model.Route:
    obj = {
        "id": rid,
        "name": rid,
        "version": version,
        "distribution": "SEQUENTIAL",
        "classificationTypes": ["National"],
        "externalTrunkBases": [{"id": t, "name": t.upper(), "selfUri": f"/tb/{t}"} for t in order],
        "description": "hands off",
    }
    return wire.parse_route(obj, site_id="s1")


def campaign(cid: str, lines: int | None) -> model.Campaign:
    obj: dict[str, Any] = {
        "id": cid,
        "name": cid,
        "version": 1,
        "site": {"id": "s1"},
        "campaignStatus": "on",
        "dialingMode": "power",
    }
    if lines is not None:
        obj["outboundLineCount"] = lines
    return wire.parse_campaign(obj)


def trunk_base(tb: str, rate: str) -> model.TrunkBase:
    return wire.parse_trunk_base(
        {
            "id": tb,
            "name": tb.upper(),
            "version": 1,
            "trunkType": "EXTERNAL",
            "properties": {
                "trunk_maxCallRate": {
                    "type": "string",
                    "value": {"default": "40/5s", "instance": rate},
                },
                "trunk_label": {
                    "type": "string",
                    "value": {"default": None, "instance": f"label {tb}"},
                },
            },
        }
    )


def failed(tb: str, good_since: int | None = None) -> model.TrunkHealth:
    return model.TrunkHealth(
        trunk_base_id=tb,
        state=model.HealthState.FAILED,
        since=NOW - 60,
        good_since=good_since,
        failovers=1,
    )


@dataclasses.dataclass
class World:
    settings: planner.PlannerSettings
    schedules: list[model.ManagementUnitSchedule]
    health: dict[str, model.TrunkHealth]
    trunk_bases: list[model.TrunkBase]
    routes: list[model.Route]
    campaigns: list[model.Campaign]

    def plan(self, now: int = NOW) -> model.Plan:
        return planner.plan(
            settings=self.settings,
            schedules=self.schedules,
            activity_codes=CODES,
            health_states=self.health,
            trunk_bases=self.trunk_bases,
            routes=self.routes,
            campaigns=self.campaigns,
            now=now,
        )


def apply(world: World, plan: model.Plan) -> World:
    """What the applier does: render each write, as a real PUT/PATCH body, and re-read it."""
    routes = {r.id: r for r in world.routes}
    camps = {c.id: c for c in world.campaigns}
    tbs = {t.id: t for t in world.trunk_bases}
    names = {t: t.upper() for t in (*TRUNKS_A, *TRUNKS_B, "x1", "x2")}
    for w in plan.writes:
        if w.kind is model.WriteKind.ROUTE_ORDER:
            assert isinstance(w.after, tuple)
            body = wire.render_route_put(routes[w.object_id], w.after, names)
            routes[w.object_id] = wire.parse_route(orjson.loads(body), site_id="s1")
        elif w.kind is model.WriteKind.CAMPAIGN_LINES:
            assert isinstance(w.after, int)
            obj = orjson.loads(camps[w.object_id].raw) | orjson.loads(
                wire.render_campaign_patch(w.after)
            )
            camps[w.object_id] = wire.parse_campaign(obj)
        else:
            body = wire.render_trunk_base_put(
                tbs[w.object_id], {w.field.removeprefix("properties."): w.after}
            )
            tbs[w.object_id] = wire.parse_trunk_base(orjson.loads(body))
    return dataclasses.replace(
        world,
        routes=list(routes.values()),
        campaigns=list(camps.values()),
        trunk_bases=list(tbs.values()),
    )


ALL = (*TRUNKS_A, *TRUNKS_B, "x1", "x2")


@st.composite
def worlds(draw: st.DrawFn) -> World:
    caps_a = tuple(draw(st.integers(0, 30)) for _ in TRUNKS_A)
    caps_b = tuple(draw(st.integers(0, 30)) for _ in TRUNKS_B)
    ga = group(
        "A",
        TRUNKS_A,
        caps_a,
        tuple(draw(st.integers(1, 2)) for _ in TRUNKS_A),
        hysteresis=draw(st.integers(0, 3)),
        failed_trunks=draw(st.sampled_from(list(planner.FailedTrunks))),
    )
    gb = group(
        "B",
        TRUNKS_B,
        caps_b,
        tuple(draw(st.integers(1, 2)) for _ in TRUNKS_B),
        hysteresis=draw(st.integers(0, 3)),
        call_rate=draw(st.none() | st.just(planner.CallRateSpec(per_line=1.0))),
    )
    orders = {
        rid: tuple(draw(st.permutations(ALL))[: draw(st.integers(0, len(ALL)))])
        for rid in ("r-shared", "r-A", "r-B")
    }
    health = {}
    for tb in (*TRUNKS_A, *TRUNKS_B):
        kind = draw(st.sampled_from(["none", "healthy", "failed", "recovering"]))
        if kind == "healthy":
            health[tb] = model.TrunkHealth(
                trunk_base_id=tb, state=model.HealthState.HEALTHY, since=0
            )
        elif kind == "failed":
            health[tb] = failed(tb)
        elif kind == "recovering":
            health[tb] = failed(tb, good_since=NOW - 10)
    return World(
        settings=settings_for(ga, gb),
        schedules=[
            schedule("mu-A", draw(st.integers(0, 40))),
            schedule("mu-B", draw(st.integers(0, 40)), minutes=draw(st.integers(1, 300))),
        ],
        health=health,
        trunk_bases=[
            trunk_base(tb, f"{draw(st.integers(1, 20))}/5s") for tb in (*TRUNKS_A, *TRUNKS_B)
        ],
        routes=[route(rid, order) for rid, order in orders.items()],
        campaigns=[
            campaign(c, draw(st.none() | st.integers(0, 60)))
            for c in ("c-A1", "c-A2", "c-B1", "c-B2")
        ],
    )


@settings(max_examples=300, deadline=None)
@given(worlds())
def test_plan_converges_and_is_deterministic(world: World) -> None:
    first = world.plan()
    assert first == world.plan()
    after = apply(world, first)
    assert after.plan().writes == ()
    assert apply(after, after.plan()).plan() == after.plan()


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_plan_is_minimal_and_touches_only_owned_fields(world: World) -> None:
    plan = world.plan()
    routes = {r.id: r for r in world.routes}
    camps = {c.id: c for c in world.campaigns}
    tbs = {t.id: t for t in world.trunk_bases}
    assert len({w.key for w in plan.writes}) == len(plan.writes)
    assert list(plan.writes) == sorted(
        plan.writes, key=lambda w: (w.priority, w.kind.value, w.object_id)
    )
    for w in plan.writes:
        assert w.before != w.after
        if w.kind is model.WriteKind.ROUTE_ORDER:
            assert w.before == routes[w.object_id].trunk_base_ids
            assert isinstance(w.after, tuple)
            before = orjson.loads(routes[w.object_id].raw)
            body = orjson.loads(wire.render_route_put(routes[w.object_id], w.after, {}))
            assert {k: v for k, v in body.items() if k != "externalTrunkBases"} == {
                k: v for k, v in before.items() if k != "externalTrunkBases"
            }
            # Trunk bases of no group keep their relative order.
            foreign = [t for t in w.before if t.startswith("x")]
            assert [t for t in w.after if t.startswith("x")] == foreign
        elif w.kind is model.WriteKind.CAMPAIGN_LINES:
            assert w.before == camps[w.object_id].outbound_line_count
        else:
            tb = tbs[w.object_id]
            assert w.field == "properties.trunk_maxCallRate"
            before = orjson.loads(tb.raw)
            body = orjson.loads(wire.render_trunk_base_put(tb, {"trunk_maxCallRate": w.after}))
            before["properties"]["trunk_maxCallRate"]["value"]["instance"] = w.after
            assert body == before


@settings(max_examples=200, deadline=None)
@given(worlds(), st.integers(1, 10))
def test_more_agents_never_fewer_lines(world: World, extra: int) -> None:
    more = dataclasses.replace(
        world,
        schedules=[
            *world.schedules,
            schedule("mu-A", extra).__class__(
                business_unit_id="bu",
                management_unit_id="mu-A",
                start=0,
                end=1 << 40,
                agents=tuple(
                    model.AgentSchedule(user_id=f"extra-{i}", activities=((NOW - 600, 60, "q"),))
                    for i in range(extra)
                ),
            ),
        ],
    )
    base = {d.group: d for d in world.plan().decisions}
    grown = {d.group: d for d in more.plan().decisions}
    assert grown["A"].staffed_fte > base["A"].staffed_fte
    assert grown["A"].desired_lines >= base["A"].desired_lines
    for d in grown.values():
        healthy = dict(d.healthy)
        caps = {t.trunk_base_id: t.capacity for g in world.settings.groups for t in g.trunks}
        for tb, n in d.allocation:
            assert n <= caps[tb]
            assert healthy[tb] or n == 0


def simple_world(
    *,
    agents_a: int = 10,
    health: dict[str, model.TrunkHealth] | None = None,
    orders: dict[str, tuple[str, ...]] | None = None,
    lines: dict[str, int | None] | None = None,
    caps: tuple[int, int, int] = (20, 20, 20),
    hysteresis: int = 2,
    failed_trunks: planner.FailedTrunks = planner.FailedTrunks.REMOVE,
) -> World:
    ga = group(
        "A",
        TRUNKS_A,
        caps,
        (1, 1, 2),
        hysteresis=hysteresis,
        call_rate=None,
        failed_trunks=failed_trunks,
    )
    gb = group("B", TRUNKS_B, (20, 20), (1, 2), call_rate=None)
    orders = {
        "r-shared": ("a1", "x1", "b1", "a2", "b2", "a3"),
        "r-A": ("a1", "a2", "a3"),
        "r-B": ("b1", "b2"),
    } | (orders or {})
    lines = {"c-A1": 10, "c-A2": 5, "c-B1": 1, "c-B2": 0} | (lines or {})
    return World(
        settings=settings_for(ga, gb),
        schedules=[schedule("mu-A", agents_a), schedule("mu-B", 1)],
        health=health or {},
        trunk_bases=[trunk_base(tb, "1/5s") for tb in (*TRUNKS_A, *TRUNKS_B)],
        routes=[route(r, o) for r, o in orders.items()],
        campaigns=[campaign(c, n) for c, n in lines.items()],
    )


def writes_of(plan: model.Plan) -> dict[tuple[str, str], tuple[Any, Any, model.Priority]]:
    return {(w.kind.value, w.object_id): (w.before, w.after, w.priority) for w in plan.writes}


def test_steady_state_is_empty() -> None:
    # 10 agents × 1.5 = 15 lines = 10 + 5 campaigns; a1+a2 (priority 1) carry them.
    assert simple_world().plan().writes == ()


F, C, S = model.Priority.FAILOVER, model.Priority.CAPACITY_CUT, model.Priority.STAFFING


@pytest.mark.parametrize(
    ("world", "expected"),
    [
        (
            simple_world(health={"a1": failed("a1")}),
            {
                ("route_order", "r-A"): (("a1", "a2", "a3"), ("a2", "a3"), F),
                ("route_order", "r-shared"): (
                    ("a1", "x1", "b1", "a2", "b2", "a3"),
                    ("a2", "x1", "b1", "a3", "b2"),
                    F,
                ),
            },
        ),
        (
            simple_world(health={"a1": failed("a1"), "a2": failed("a2")}, caps=(20, 20, 6)),
            {
                ("route_order", "r-A"): (("a1", "a2", "a3"), ("a3",), F),
                ("route_order", "r-shared"): (
                    ("a1", "x1", "b1", "a2", "b2", "a3"),
                    ("a3", "x1", "b1", "b2"),
                    F,
                ),
                ("campaign_lines", "c-A1"): (10, 4, F),
                ("campaign_lines", "c-A2"): (5, 2, F),
            },
        ),
        (
            simple_world(health={"a1": failed("a1")}, failed_trunks=planner.FailedTrunks.LAST),
            {
                ("route_order", "r-A"): (("a1", "a2", "a3"), ("a2", "a3", "a1"), F),
                ("route_order", "r-shared"): (
                    ("a1", "x1", "b1", "a2", "b2", "a3"),
                    ("a2", "x1", "b1", "a3", "b2", "a1"),
                    F,
                ),
            },
        ),
        (
            simple_world(
                health={"a1": failed("a1", good_since=NOW - 30)},
                orders={"r-A": ("a2", "a3"), "r-shared": ("a2", "x1", "b1", "a3", "b2")},
            ),
            {},
        ),
        (
            simple_world(orders={"r-A": ("a2", "a3"), "r-shared": ("a2", "x1", "b1", "a3", "b2")}),
            {
                ("route_order", "r-A"): (("a2", "a3"), ("a1", "a2", "a3"), S),
                ("route_order", "r-shared"): (
                    ("a2", "x1", "b1", "a3", "b2"),
                    ("a1", "x1", "b1", "a2", "a3", "b2"),
                    S,
                ),
            },
        ),
        (simple_world(agents_a=11, lines={"c-A1": 11, "c-A2": 5}), {}),
        (
            simple_world(agents_a=12),
            {("campaign_lines", "c-A1"): (10, 12, S), ("campaign_lines", "c-A2"): (5, 6, S)},
        ),
        (
            simple_world(agents_a=8),
            {("campaign_lines", "c-A1"): (10, 8, C), ("campaign_lines", "c-A2"): (5, 4, C)},
        ),
        (simple_world(agents_a=12, hysteresis=3), {}),
        (simple_world(lines={"c-A2": None}), {("campaign_lines", "c-A2"): (None, 5, S)}),
        (
            simple_world(agents_a=40, caps=(10, 10, 10)),
            {
                ("campaign_lines", "c-A1"): (10, 20, S),
                ("campaign_lines", "c-A2"): (5, 10, S),
            },
        ),
    ],
    ids=[
        "failover-removes-failed-trunk",
        "failover-cuts-lines-inside-band",
        "failed-trunk-last",
        "hold-down-keeps-it-out",
        "recovered-trunk-back-in-place",
        "hysteresis-edge-no-write",
        "hysteresis-edge-plus-one",
        "capacity-cut",
        "wider-band",
        "unknown-line-count",
        "shortfall-caps-campaigns",
    ],
)
def test_examples(
    world: World, expected: dict[tuple[str, str], tuple[Any, Any, model.Priority]]
) -> None:
    plan = world.plan()
    assert writes_of(plan) == expected
    assert apply(world, plan).plan().writes == ()


def test_shortfall_reported() -> None:
    decision = simple_world(agents_a=40, caps=(10, 10, 10)).plan().decisions[0]
    assert (decision.desired_lines, decision.allocated_lines, decision.shortfall) == (60, 30, 30)
    assert "shortfall 30" in planner.format_plan(
        simple_world(agents_a=40, caps=(10, 10, 10)).plan()
    )


def test_target_interval_uses_lead_time_across_midnight() -> None:
    midnight = 1772668800  # 2026-03-05T00:00:00Z
    s = planner.PlannerSettings(groups=(), interval_s=900, lead_time_s=120)
    assert planner.target_interval(midnight - 60, s) == (midnight, midnight + 900)
    assert planner.target_interval(midnight - 121, s) == (midnight - 900, midnight)


def test_call_rate_in_step_with_lines() -> None:
    world = simple_world()
    ga = dataclasses.replace(world.settings.groups[0], call_rate=planner.CallRateSpec(per_line=0.5))
    world = dataclasses.replace(
        world, settings=dataclasses.replace(world.settings, groups=(ga, world.settings.groups[1]))
    )
    got = writes_of(world.plan())
    # 15 lines over a1/a2 (capacity 20 each, same priority): 8 + 7; a3 standby → minimum.
    assert got == {
        ("trunk_call_rate", "a1"): ("1/5s", "4/5s", model.Priority.CALL_RATE),
        ("trunk_call_rate", "a2"): ("1/5s", "4/5s", model.Priority.CALL_RATE),
    }


def test_replan_after_conflict_respects_a_concurrent_edit() -> None:
    world = simple_world(health={"a1": failed("a1")})
    plan = world.plan()
    write = next(w for w in plan.writes if w.object_id == "r-shared")
    # A person moved x1 to the front meanwhile: it stays there, the failed trunk still goes.
    fresh = route("r-shared", ("x1", "a1", "b1", "a2", "b2", "a3"), version=2)
    again = planner.replan(write, fresh, settings=world.settings, plan=plan)
    assert again is not None
    assert again.after == ("x1", "a2", "b1", "a3", "b2")
    done = route("r-shared", again.after, version=3)
    assert planner.replan(write, done, settings=world.settings, plan=plan) is None


def test_format_plan_lists_every_write() -> None:
    plan = simple_world(health={"a1": failed("a1")}).plan()
    text = planner.format_plan(plan)
    assert text.count("route_order") == 2
    assert "[a1, a2, a3] → [a2, a3]" in text
    assert "no writes" in planner.format_plan(simple_world().plan())


def test_a_route_whose_trunks_all_failed_is_not_emptied() -> None:
    world = simple_world(
        health={tb: failed(tb) for tb in TRUNKS_A},
        orders={"r-A": ("a1", "a2", "a3")},
    )
    writes = writes_of(world.plan())
    # r-A holds only group A's trunks, all failed: an empty route is not written.
    assert ("route_order", "r-A") not in writes
    # A route that keeps other trunks still drops the failed ones.
    _, after, priority = writes[("route_order", "r-shared")]
    assert after == ("x1", "b1", "b2")
    assert priority is model.Priority.FAILOVER


def test_format_plan_fits_100_columns_with_names_and_wide_shows_everything() -> None:
    plan = simple_world(health={"a1": failed("a1")}).plan()
    long_names = {
        tb: f"Carrier {tb} BYOC trunk with a long descriptive name"
        for tb in ("a1", "a2", "a3", "b1", "b2", "x1")
    }
    text = planner.format_plan(plan, names=long_names)
    assert all(len(line) <= 100 for line in text.splitlines())
    assert "route_order" in text
    for w in plan.writes:
        assert f"({w.object_id})" not in text  # names, not ids
    wide = planner.format_plan(plan, names=long_names, wide=True)
    assert max(len(line) for line in wide.splitlines()) > 100
    for w in plan.writes:
        assert w.object_id in wide
        assert w.field in wide
    assert long_names["a2"] in wide


def order_only(world: World, *route_ids: str) -> World:
    """``world`` with group A's listed routes set to order-only."""
    ga, gb = world.settings.groups
    routes = tuple(
        dataclasses.replace(r, trunks=ORDER_ONLY) if r.id in route_ids else r for r in ga.routes
    )
    ga = dataclasses.replace(ga, routes=routes)
    return dataclasses.replace(world, settings=dataclasses.replace(world.settings, groups=(ga, gb)))


def test_the_default_route_policy_never_adds() -> None:
    assert planner.RouteSpec(site_id="s", id="r").trunks is ORDER_ONLY


def test_order_only_never_adds_a_trunk() -> None:
    # r-A holds only a3 (a person's choice); a1 and a2 carry the lines but stay off it.
    world = order_only(simple_world(orders={"r-A": ("a3",)}), "r-A")
    assert ("route_order", "r-A") not in writes_of(world.plan())
    # Managed, the same route gets the group's healthy trunks added, in words.
    managed = simple_world(orders={"r-A": ("a3",)})
    write = next(w for w in managed.plan().writes if w.object_id == "r-A")
    assert write.after == ("a1", "a2", "a3")
    assert write.reason == "adds a1, a2 to route r-A"


def test_order_only_puts_a_failed_trunk_last_and_keeps_it() -> None:
    world = order_only(
        simple_world(health={"a1": failed("a1")}, orders={"r-A": ("a1", "x1", "a2")}), "r-A"
    )
    plan = world.plan()
    write = next(w for w in plan.writes if w.object_id == "r-A")
    assert write.after == ("x1", "a2", "a1")
    assert write.priority is model.Priority.FAILOVER
    assert write.reason == "moves failed a1 behind the healthy trunks on route r-A"
    assert apply(world, plan).plan().writes == ()


def test_order_only_reorders_by_allocation() -> None:
    # a3 (priority 2, standby) listed before a1: the group's slots follow allocation order.
    world = order_only(simple_world(orders={"r-A": ("a3", "x2", "a1")}), "r-A")
    write = next(w for w in world.plan().writes if w.object_id == "r-A")
    assert write.after == ("a1", "x2", "a3")
    assert write.reason == "reorders route r-A to follow allocation and health"


@given(worlds(), st.sets(st.sampled_from(["r-A", "r-shared"])))
@settings(max_examples=200, deadline=None)
def test_order_only_membership_never_changes(world: World, routes: set[str]) -> None:
    world = order_only(world, *routes)
    plan = world.plan()
    for w in plan.writes:
        if w.kind is model.WriteKind.ROUTE_ORDER and w.object_id == "r-A" and "r-A" in routes:
            assert isinstance(w.before, tuple)
            assert isinstance(w.after, tuple)
            assert sorted(w.before) == sorted(w.after)
    assert apply(world, plan).plan().writes == ()


def test_a_held_group_writes_no_line_count_and_its_routes_follow_health() -> None:
    # Staffing says 2 agents (a cut from 15 lines to 3), but group A is held: no line write.
    world = simple_world(agents_a=2, health={"a1": failed("a1")})
    plan = planner.plan(
        settings=world.settings,
        schedules=world.schedules,
        activity_codes=CODES,
        health_states=world.health,
        trunk_bases=world.trunk_bases,
        routes=world.routes,
        campaigns=world.campaigns,
        now=NOW,
        hold={"A": "staffing data stale"},
    )
    got = writes_of(plan)
    assert not [k for k in got if k[0] != "route_order"]
    assert got[("route_order", "r-A")] == (("a1", "a2", "a3"), ("a2", "a3"), F)
    (decision, _) = plan.decisions
    assert decision.held == "staffing data stale"
    assert decision.allocated_lines == 15  # the last known allocation: what campaigns dial now
    assert [(h.group, h.reason) for h in plan.held] == [("A", "staffing data stale")]


def test_a_group_whose_planning_raises_is_left_out_and_the_rest_is_planned() -> None:
    # Group A is held and one of its campaigns answered a negative line count: holding "what
    # the campaigns dial now" allocates -95 lines, and allocation raises. Group B's failover is
    # planned all the same; A's trunks stay where they are on the route they share.
    world = simple_world(
        health={"a1": failed("a1"), "b1": failed("b1")}, lines={"c-A1": -100, "c-A2": 5}
    )
    plan = planner.plan(
        settings=world.settings,
        schedules=world.schedules,
        activity_codes=CODES,
        health_states=world.health,
        trunk_bases=world.trunk_bases,
        routes=world.routes,
        campaigns=world.campaigns,
        now=NOW,
        hold={"A": "staffing data stale"},
    )
    (failure,) = plan.failures
    assert (failure.scope, failure.object_id, failure.group) == ("group", "A", "A")
    assert isinstance(failure.error, ValueError)
    assert [d.group for d in plan.decisions] == ["B"]
    assert writes_of(plan) == {
        ("route_order", "r-B"): (("b1", "b2"), ("b2",), F),
        ("route_order", "r-shared"): (
            ("a1", "x1", "b1", "a2", "b2", "a3"),
            ("a1", "x1", "b2", "a2", "a3"),
            F,
        ),
    }
    text = planner.format_plan(plan)
    assert "failed: group A could not be planned (ValueError: lines must be >= 0)" in text
    (problem,) = planner.plan_json(plan)["problems"]  # type: ignore[misc]
    assert problem.startswith("group A could not be planned (ValueError")


def test_a_route_whose_planning_raises_is_left_out_and_the_rest_is_planned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A defect met on one route only (here: describing route r-B's change raises).
    describe = planner.describe_route_change

    def broken(route_name: str, *args: Any, **kw: Any) -> str:
        if route_name == "r-B":
            raise KeyError("a surprise")
        return describe(route_name, *args, **kw)

    monkeypatch.setattr(planner, "describe_route_change", broken)
    plan = simple_world(health={"b1": failed("b1")}).plan()
    (failure,) = plan.failures
    assert (failure.scope, failure.object_id, failure.group) == ("route", "r-B", "B")
    assert [d.group for d in plan.decisions] == ["A", "B"]
    assert set(writes_of(plan)) == {("route_order", "r-shared")}


def test_an_absent_trunk_base_gets_no_lines_and_is_no_failover() -> None:
    world = simple_world()
    plan = planner.plan(
        settings=world.settings,
        schedules=world.schedules,
        activity_codes=CODES,
        health_states={},
        trunk_bases=world.trunk_bases,
        routes=[route("r-A", ("a2", "a3"))],
        campaigns=world.campaigns,
        now=NOW,
        absent_trunks={"a1"},
    )
    decision = plan.decisions[0]
    assert "a1" not in dict(decision.allocation)
    assert not decision.failover_driven
    assert all(w.priority is not F for w in plan.writes)


@pytest.mark.parametrize(
    ("agents", "share", "held"),
    [(3, 0.5, True), (6, 0.5, False), (3, 0.9, False)],
    ids=["15-to-5-held", "15-to-9-written", "wider-share-written"],
)
def test_a_suspicious_drop_is_held_until_a_re_read_confirms_it(
    agents: int, share: float, held: bool
) -> None:
    plan = simple_world(agents_a=agents).plan()
    guarded, confirmed = planner.guard_drops(plan, max_drop_share=share, confirmed={})
    line_writes = [w for w in guarded.writes if w.group == "A" and w.kind.value != "route_order"]
    assert confirmed == ()
    assert bool(guarded.held) is held
    assert bool(line_writes) is not held
    if held:
        (h,) = guarded.held
        assert {w.object_id for w in h.writes} == {"c-A1", "c-A2"}
        total = planner.suspicious_drops(plan, max_drop_share=share)["A"]
        # The same total read again: confirmed and written.
        again, ok = planner.guard_drops(plan, max_drop_share=share, confirmed={"A": total})
        assert ok == ("A",)
        assert again.writes == plan.writes
        # Another total on the re-read: held again (for that one).
        other, ok = planner.guard_drops(plan, max_drop_share=share, confirmed={"A": total + 1})
        assert ok == ()
        assert other.held


def test_a_held_drop_fits_100_columns_too() -> None:
    # A group named at length, its held writes indented under the reason: every line of the
    # plain table still fits (the reason wraps, the indented table gives up its indent).
    plan = simple_world(agents_a=3).plan()
    guarded, _ = planner.guard_drops(plan, max_drop_share=0.5, confirmed={})
    long_group = "A" * 40
    guarded = dataclasses.replace(
        guarded, held=tuple(dataclasses.replace(h, group=long_group) for h in guarded.held)
    )
    long_names = {c: f"Campaign {c} of the long-named outbound programme" for c in ("c-A1", "c-A2")}
    text = planner.format_plan(guarded, names=long_names)
    assert "held: group " + long_group in text
    assert all(len(line) <= 100 for line in text.splitlines()), text


def test_a_failover_cut_is_never_held() -> None:
    world = simple_world(health={"a1": failed("a1"), "a2": failed("a2")}, caps=(20, 20, 6))
    plan = world.plan()
    guarded, _ = planner.guard_drops(plan, max_drop_share=0.1, confirmed={})
    assert guarded == plan
