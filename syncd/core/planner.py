"""The planner: desired routing state per group, and the minimal ordered plan to reach it.

Role (docs/domain.md, decisions 1-6): for the planning interval current at ``now + lead_time``, per
group: staffed FTE → demanded lines → allocation over healthy trunks → desired route order,
campaign line counts and (opt-in) call-rate property; then a diff against what was read, giving
writes only where an owned value really differs (line counts only beyond the hysteresis band,
unless a failover drives them), each with a priority.

Group settings come in as core-level ``GroupSpec``/``PlannerSettings`` values (``syncd.config``
converts into them; core must not import config). Pure: ``now`` is a parameter; it must not
read clocks, log, do I/O, or render request bodies (that is ``wire``).
"""

from __future__ import annotations

import enum
import math
import textwrap
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from syncd.core import allocation, health, model, staffing, table

# fte × lines_per_agent computed in floats can land a hair above a whole number
# (3 × 0.1 × 10 = 3.0000000000000004); that must not cost an extra line.
_CEIL_SLACK = 1e-9


class FailedTrunks(enum.StrEnum):
    """What a route does with a failed trunk of the group: drop it, or keep it at the end."""

    REMOVE = "remove"
    LAST = "last"


@dataclass(frozen=True, slots=True, kw_only=True)
class CampaignSpec:
    id: str
    weight: float


class RouteMembership(enum.StrEnum):
    """What syncd may do to a route's membership, per group listing it (docs/domain.md, routes).

    ``MANAGED``: the group's healthy trunks are added and its failed ones removed (or put last,
    per ``FailedTrunks``). ``ORDER_ONLY``: only the group's trunks already on the route are
    reordered; a failed one goes to the end; nothing is ever added or removed. ORDER_ONLY is the
    default because it can never put a carrier on a route a person did not put it on."""

    MANAGED = "managed"
    ORDER_ONLY = "order-only"


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteSpec:
    site_id: str
    id: str
    trunks: RouteMembership = RouteMembership.ORDER_ONLY


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRateSpec:
    """Keep a trunk base property (``trunk_maxCallRate``, format ``"<calls>/<period>s"``) in step
    with the trunk's allocated lines: ``max(minimum, ceil(lines × per_line))`` calls per period."""

    property: str = "trunk_maxCallRate"
    per_line: float
    period_s: int = 5
    minimum: int = 1

    def value(self, lines: int) -> str:
        calls = max(self.minimum, math.ceil(lines * self.per_line - _CEIL_SLACK))
        return f"{calls}/{self.period_s}s"


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupSpec:
    """A group ties staffing to capacity (docs/domain.md, Configuration)."""

    name: str
    management_units: tuple[str, ...]
    campaigns: tuple[CampaignSpec, ...]
    routes: tuple[RouteSpec, ...]
    trunks: tuple[allocation.TrunkSpec, ...]
    lines_per_agent: float
    min_lines: int
    max_lines: int
    hysteresis: int = 0
    call_rate: CallRateSpec | None = None
    failed_trunks: FailedTrunks = FailedTrunks.REMOVE


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannerSettings:
    groups: tuple[GroupSpec, ...]
    interval_s: int = 900
    lead_time_s: int = 0
    staffed_categories: tuple[str, ...] = ("OnQueueWork",)


def target_interval(now: int, settings: PlannerSettings) -> tuple[int, int]:
    """``[start, end)`` of the planning interval current at ``now + lead_time``."""
    start = staffing.interval_start(now + settings.lead_time_s, settings.interval_s)
    return start, start + settings.interval_s


def demand(fte: float, group: GroupSpec) -> int:
    """``clamp(ceil(fte × lines_per_agent), min_lines, max_lines)``."""
    raw = math.ceil(fte * group.lines_per_agent - _CEIL_SLACK)
    return max(group.min_lines, min(group.max_lines, raw))


# --------------------------------------------------------------------------------------------
# Desired state per group
# --------------------------------------------------------------------------------------------


def _decide(
    group: GroupSpec,
    *,
    fte: float,
    interval_start: int,
    healthy: Mapping[str, bool],
    campaigns: Mapping[str, model.Campaign],
    held: str = "",
) -> model.GroupDecision:
    lines = demand(fte, group)
    healthy_capacity = sum(t.capacity for t in group.trunks if healthy[t.trunk_base_id])
    any_failed = not all(healthy[t.trunk_base_id] for t in group.trunks)
    present = [campaigns[c.id] for c in group.campaigns if c.id in campaigns]
    counts = [c.outbound_line_count for c in present]
    actual_total = (
        sum(n for n in counts if n is not None) if None not in counts and present else None
    )
    # Failover-driven: campaigns dial more lines than the surviving trunks carry. Then the cut is
    # written at once, whatever the hysteresis band. A held group writes no line count at all.
    failover_driven = (
        not held and any_failed and actual_total is not None and actual_total > healthy_capacity
    )
    effective = lines
    if held:
        # The last known allocation: what the campaigns dial now, over the healthy trunks (route
        # order still follows health; nothing is derived from the staffing input).
        effective = actual_total if actual_total is not None else lines
    elif (
        not failover_driven
        and actual_total is not None
        and present
        and abs(lines - actual_total) <= group.hysteresis
    ):
        # Within the band the current total stands, so allocation, campaigns and call rates
        # all agree with what is dialling now, and nothing flaps.
        effective = max(group.min_lines, min(group.max_lines, actual_total))
    alloc = allocation.allocate(effective, group.trunks, healthy)
    return model.GroupDecision(
        group=group.name,
        interval_start=interval_start,
        staffed_fte=fte,
        desired_lines=lines,
        allocation=alloc.lines,
        shortfall=max(0, lines - healthy_capacity),
        healthy=tuple((tb_id, healthy[tb_id]) for tb_id, _ in alloc.lines),
        allocated_lines=alloc.total,
        failover_driven=failover_driven,
        current_lines=actual_total,
        held=held,
    )


def _group_sequence(group: GroupSpec, decision: model.GroupDecision) -> tuple[str, ...]:
    """The group's trunks as the route should list them: healthy with lines (priority order),
    healthy standby, then failed ones if configured to stay last."""
    healthy = dict(decision.healthy)
    active = [tb for tb, n in decision.allocation if n > 0 and healthy[tb]]
    standby = [tb for tb, n in decision.allocation if n == 0 and healthy[tb]]
    failed = [tb for tb, _ in decision.allocation if not healthy[tb]]
    if group.failed_trunks is FailedTrunks.LAST:
        return (*active, *standby, *failed)
    return (*active, *standby)


def _merge(
    order: tuple[str, ...], managed: frozenset[str], sequence: tuple[str, ...]
) -> tuple[str, ...]:
    """Put ``sequence`` into the slots the group's trunks hold in ``order``; trunk bases the
    group does not manage keep their place. Extra trunks go right after the group's last slot
    (at the end when it has none); surplus slots are dropped."""
    slots = [i for i, tb in enumerate(order) if tb in managed]
    if not slots:
        return order + sequence
    out: list[str] = []
    it = iter(sequence)
    last = slots[-1]
    for i, tb in enumerate(order):
        if tb not in managed:
            out.append(tb)
        elif i == last:
            out.extend(it)
        else:
            nxt = next(it, None)
            if nxt is not None:
                out.append(nxt)
    return tuple(out)


def _reorder_only(
    order: tuple[str, ...], group: GroupSpec, decision: model.GroupDecision
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """ORDER_ONLY: the group's healthy trunks already on the route take their slots in
    allocation order; membership never changes. Also returns the group's failed trunks on the
    route, which the caller moves to the end once every group has had its turn (so another
    group adding its trunks cannot put them after a failed one)."""
    healthy = dict(decision.healthy)
    mine = frozenset(t.trunk_base_id for t in group.trunks) & frozenset(order)
    usable = frozenset(tb for tb in mine if healthy[tb])
    sequence = tuple(tb for tb, _ in decision.allocation if tb in usable)
    return _merge(order, usable, sequence), tuple(tb for tb in mine if not healthy[tb])


def _spec_of(group: GroupSpec, route_id: str) -> RouteSpec | None:
    return next((r for r in group.routes if r.id == route_id), None)


def _desired_route(
    route: model.Route,
    settings: PlannerSettings,
    decisions: Mapping[str, model.GroupDecision],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(desired order, failed trunks of the groups involved); groups listing the route are
    applied in configuration order, each touching only its own trunks, as its membership
    policy for that route allows."""
    order = route.trunk_base_ids
    failed: list[str] = []
    last: set[str] = set()
    for group in settings.groups:
        decision = decisions.get(group.name)
        spec = _spec_of(group, route.id)
        if decision is None or spec is None:
            continue
        if spec.trunks is RouteMembership.MANAGED:
            managed = frozenset(t.trunk_base_id for t in group.trunks)
            order = _merge(order, managed, _group_sequence(group, decision))
        else:
            order, to_end = _reorder_only(order, group, decision)
            last.update(to_end)
        failed.extend(tb for tb, ok in decision.healthy if not ok)
    if last:
        # Failed trunks of order-only groups go to the end, in the order they had.
        order = tuple(tb for tb in order if tb not in last) + tuple(
            tb for tb in order if tb in last
        )
    if not order and route.trunk_base_ids:
        # Every trunk of the route failed: removing them all would leave a route with no trunk
        # base, which the API does not take and which dials nothing anyway. Keep them as they
        # were (they come back in order once healthy); the shortfall is reported elsewhere.
        order = route.trunk_base_ids
    return order, tuple(failed)


def _route_write(
    route: model.Route,
    settings: PlannerSettings,
    decisions: Mapping[str, model.GroupDecision],
) -> model.Write | None:
    desired, failed = _desired_route(route, settings, decisions)
    if desired == route.trunk_base_ids:
        return None
    before = route.trunk_base_ids

    def position(order: tuple[str, ...], tb: str) -> int | None:
        return order.index(tb) if tb in order else None

    moved_failed = [tb for tb in failed if position(before, tb) != position(desired, tb)]
    priority = model.Priority.FAILOVER if moved_failed else model.Priority.STAFFING
    reason = describe_route_change(
        route.name, before, desired, failed=frozenset(failed), labels=trunk_labels(settings)
    )
    return model.Write(
        kind=model.WriteKind.ROUTE_ORDER,
        object_id=route.id,
        object_name=route.name,
        field="externalTrunkBases",
        before=route.trunk_base_ids,
        after=desired,
        reason=reason,
        priority=priority,
        group=_route_groups(route.id, settings),
        site_id=route.site_id,
    )


def trunk_labels(settings: PlannerSettings) -> dict[str, str]:
    """Trunk base id → the label people know it by (its id when it has none)."""
    return {t.trunk_base_id: t.label or t.trunk_base_id for g in settings.groups for t in g.trunks}


def describe_route_change(
    route_name: str,
    before: Sequence[str],
    after: Sequence[str],
    *,
    failed: frozenset[str] = frozenset(),
    labels: Mapping[str, str],
) -> str:
    """A route write in words: "adds X to route R; removes failed Y from route R; …"."""

    def named(tbs: Iterable[str]) -> str:
        return ", ".join(labels.get(tb, tb) for tb in tbs)

    added = [tb for tb in after if tb not in before]
    removed = [tb for tb in before if tb not in after]
    kept = [tb for tb in after if tb in before]
    moved_last = [tb for tb in kept if tb in failed and after.index(tb) != before.index(tb)]
    parts = []
    if added:
        parts.append(f"adds {named(added)} to route {route_name}")
    removed_failed = [tb for tb in removed if tb in failed]
    removed_other = [tb for tb in removed if tb not in failed]
    if removed_failed:
        parts.append(f"removes failed {named(removed_failed)} from route {route_name}")
    if removed_other:
        parts.append(f"removes {named(removed_other)} from route {route_name}")
    if moved_last:
        parts.append(
            f"moves failed {named(moved_last)} behind the healthy trunks on route {route_name}"
        )
    rest = [tb for tb in kept if tb not in moved_last]
    if not parts or [tb for tb in before if tb in rest] != rest:
        parts.append(f"reorders route {route_name} to follow allocation and health")
    return "; ".join(parts)


def _campaign_writes(
    group: GroupSpec, decision: model.GroupDecision, campaigns: Mapping[str, model.Campaign]
) -> list[model.Write]:
    present = [c for c in group.campaigns if c.id in campaigns]
    split = allocation.split_by_weight(
        decision.allocated_lines, [(c.id, c.weight) for c in present]
    )
    diffs = [(campaigns[cid], n) for cid, n in split if campaigns[cid].outbound_line_count != n]
    # Beyond the band: the group total moved more than the hysteresis, or one campaign drifted
    # from its share by more than it (weights changed, a hand edit), or a count is unknown.
    actual_total = sum(campaigns[c.id].outbound_line_count or 0 for c in present)
    beyond_band = abs(decision.allocated_lines - actual_total) > group.hysteresis or any(
        camp.outbound_line_count is None or abs(n - camp.outbound_line_count) > group.hysteresis
        for camp, n in diffs
    )
    if not diffs or not (beyond_band or decision.failover_driven):
        return []
    # All differing campaigns are written together, so the group total lands exactly on the
    # allocation and the next plan is empty.
    out = []
    for camp, n in diffs:
        before = camp.outbound_line_count
        if decision.failover_driven:
            priority, why = model.Priority.FAILOVER, "healthy trunk capacity fell (failover)"
        elif before is not None and n < before:
            priority, why = model.Priority.CAPACITY_CUT, "fewer lines"
        else:
            priority, why = model.Priority.STAFFING, "more lines"
        reason = (
            f"{why}: {decision.staffed_fte:.2f} FTE → {decision.desired_lines} lines demanded, "
            f"{decision.allocated_lines} allocated"
        )
        out.append(
            model.Write(
                kind=model.WriteKind.CAMPAIGN_LINES,
                object_id=camp.id,
                object_name=camp.name,
                field="outboundLineCount",
                before=before,
                after=n,
                reason=reason,
                priority=priority,
                group=group.name,
            )
        )
    return out


def _call_rate_writes(
    group: GroupSpec, decision: model.GroupDecision, trunk_bases: Mapping[str, model.TrunkBase]
) -> list[model.Write]:
    spec = group.call_rate
    if spec is None:
        return []
    out = []
    for tb_id, lines in decision.allocation:
        tb = trunk_bases.get(tb_id)
        # Never invent a property: a trunk base without it (or not read yet) is left alone.
        if tb is None or all(key != spec.property for key, _ in tb.properties):
            continue
        current = tb.property_instance(spec.property)
        desired = spec.value(lines)
        if current == desired:
            continue
        out.append(
            model.Write(
                kind=model.WriteKind.TRUNK_CALL_RATE,
                object_id=tb_id,
                object_name=tb.name,
                field=f"properties.{spec.property}",
                before=current if isinstance(current, str | int) else None,
                after=desired,
                reason=f"call rate in step with {lines} allocated lines",
                priority=model.Priority.CALL_RATE,
                group=group.name,
            )
        )
    return out


def _sort_key(write: model.Write) -> tuple[int, str, str]:
    return (write.priority.value, write.kind.value, write.object_id)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def plan(
    *,
    settings: PlannerSettings,
    schedules: Sequence[model.ManagementUnitSchedule],
    activity_codes: Iterable[model.ActivityCode],
    health_states: Mapping[str, model.TrunkHealth],
    trunk_bases: Iterable[model.TrunkBase],
    routes: Iterable[model.Route],
    campaigns: Iterable[model.Campaign],
    now: int,
    hold: Mapping[str, str] | None = None,
    absent_trunks: Collection[str] = (),
) -> model.Plan:
    """The decisions of every group for the target interval, and the minimal ordered plan.

    A trunk base with no health state yet counts as healthy (not known bad); a configured
    campaign, route or trunk base that was not read is left out of the plan. ``hold`` maps a
    group to why its line counts are held: it gets no line-count or call-rate write, and its
    routes follow health over its current lines. ``absent_trunks`` are configured trunk bases
    the org does not have: no capacity, no place on a route, and not a failover. A group or a
    route whose planning raises is left out and named in ``Plan.failures``."""
    hold = hold or {}
    absent = frozenset(absent_trunks)
    if absent:
        settings = replace(
            settings,
            groups=tuple(
                replace(g, trunks=tuple(t for t in g.trunks if t.trunk_base_id not in absent))
                for g in settings.groups
            ),
        )
    start, end = target_interval(now, settings)
    staffed = staffing.staffed_code_ids(activity_codes, settings.staffed_categories)
    by_mu = staffing.by_management_unit(schedules)
    campaign_by_id = {c.id: c for c in campaigns}
    tb_by_id = {tb.id: tb for tb in trunk_bases}

    decisions: dict[str, model.GroupDecision] = {}
    writes: list[model.Write] = []
    failures: list[model.PlanFailure] = []
    # One group's or one route's surprise (an answer syncd did not expect, a bug) fails that
    # group or route alone: it gets no writes, the others are planned as usual. A group that
    # failed has no decision, so the routes it shares leave its trunks where they are.
    for group in settings.groups:
        try:
            group_schedules = [s for mu in group.management_units for s in by_mu.get(mu, ())]
            fte = staffing.staffed_fte(group_schedules, staffed, start, end)
            healthy = {
                t.trunk_base_id: health.healthy(health_states.get(t.trunk_base_id))
                for t in group.trunks
            }
            decision = _decide(
                group,
                fte=fte,
                interval_start=start,
                healthy=healthy,
                campaigns=campaign_by_id,
                held=hold.get(group.name, ""),
            )
            group_writes = (
                []
                if decision.held
                else [
                    *_campaign_writes(group, decision, campaign_by_id),
                    *_call_rate_writes(group, decision, tb_by_id),
                ]
            )
        except Exception as exc:  # noqa: BLE001 - reported in the plan, see above
            failures.append(
                model.PlanFailure(
                    scope="group",
                    object_id=group.name,
                    object_name=group.name,
                    group=group.name,
                    error=exc,
                )
            )
            continue
        decisions[group.name] = decision
        writes.extend(group_writes)

    controlled = {r.id for g in settings.groups for r in g.routes}
    for route in routes:
        if route.id in controlled:
            try:
                write = _route_write(route, settings, decisions)
            except Exception as exc:  # noqa: BLE001 - reported in the plan, see above
                failures.append(
                    model.PlanFailure(
                        scope="route",
                        object_id=route.id,
                        object_name=route.name,
                        group=_route_groups(route.id, settings),
                        error=exc,
                    )
                )
                continue
            if write is not None:
                writes.append(write)

    return model.Plan(
        now=now,
        writes=tuple(sorted(writes, key=_sort_key)),
        decisions=tuple(decisions[g.name] for g in settings.groups if g.name in decisions),
        held=tuple(
            model.Held(group=g.name, reason=hold[g.name]) for g in settings.groups if g.name in hold
        ),
        failures=tuple(failures),
    )


def _route_groups(route_id: str, settings: PlannerSettings) -> str:
    """The groups listing a route, in configuration order, joined with "+"."""
    return "+".join(g.name for g in settings.groups if any(r.id == route_id for r in g.routes))


def _is_line_write(write: model.Write) -> bool:
    return write.kind in {model.WriteKind.CAMPAIGN_LINES, model.WriteKind.TRUNK_CALL_RATE}


def suspicious_drops(plan: model.Plan, *, max_drop_share: float) -> dict[str, int]:
    """Groups whose plan lowers their line total by more than ``max_drop_share`` of it in one
    step for a reason other than a failover: group → the total the plan would leave."""
    out: dict[str, int] = {}
    for d in plan.decisions:
        current = d.current_lines
        if d.held or d.failover_driven or not current:
            continue
        lowers = any(
            w.group == d.group and w.kind is model.WriteKind.CAMPAIGN_LINES for w in plan.writes
        )
        if lowers and current - d.allocated_lines > max_drop_share * current:
            out[d.group] = d.allocated_lines
    return out


def guard_drops(
    plan: model.Plan, *, max_drop_share: float, confirmed: Mapping[str, int]
) -> tuple[model.Plan, tuple[str, ...]]:
    """Hold the line writes of every suspicious drop (``suspicious_drops``) unless ``confirmed``
    (what the previous read of the inputs planned, group → total) shows the same total: a drop
    is written only when a second read of its inputs agrees. Returns the guarded plan and the
    groups whose drop was confirmed now."""
    drops = suspicious_drops(plan, max_drop_share=max_drop_share)
    passed = tuple(g for g, total in drops.items() if confirmed.get(g) == total)
    held_groups = {g: total for g, total in drops.items() if g not in passed}
    if not held_groups:
        return plan, passed
    current = {d.group: d.current_lines for d in plan.decisions}
    held = tuple(
        model.Held(
            group=g,
            reason=(
                f"would lower group {g}'s lines from {current[g]} to {total}, more than"
                f" {max_drop_share:.0%} in one step: held for one more read of its inputs"
            ),
            writes=tuple(w for w in plan.writes if w.group == g and _is_line_write(w)),
        )
        for g, total in held_groups.items()
    )
    kept = tuple(w for w in plan.writes if not (w.group in held_groups and _is_line_write(w)))
    return replace(plan, writes=kept, held=plan.held + held), passed


def replan(
    write: model.Write,
    fresh: model.Route | model.TrunkBase | model.Campaign,
    *,
    settings: PlannerSettings,
    plan: model.Plan,
) -> model.Write | None:
    """Re-plan one object re-read after a version conflict: the owned field re-derived against
    the fresh object (a person may have reordered other groups' trunks meanwhile); None when
    the fresh object already has the desired value."""
    if write.kind is model.WriteKind.ROUTE_ORDER:
        if not isinstance(fresh, model.Route):
            raise TypeError("a route write needs a fresh Route")
        decisions = {d.group: d for d in plan.decisions}
        return _route_write(fresh, settings, decisions)
    if write.kind is model.WriteKind.TRUNK_CALL_RATE:
        if not isinstance(fresh, model.TrunkBase):
            raise TypeError("a call-rate write needs a fresh TrunkBase")
        prop = write.field.removeprefix("properties.")
        current = fresh.property_instance(prop)
        if current == write.after:
            return None
        before = current if isinstance(current, str | int) else None
        return replace(write, before=before)
    if not isinstance(fresh, model.Campaign):
        raise TypeError("a campaign write needs a fresh Campaign")
    if fresh.outbound_line_count == write.after:
        return None
    return replace(write, before=fresh.outbound_line_count)


def _show(value: model.WriteValue, names: Mapping[str, str]) -> str:
    if value is None:
        return "∅"
    if isinstance(value, tuple):
        return "[" + ", ".join(names.get(v, v) for v in value) + "]"
    return str(value)


def format_plan(
    plan: model.Plan, names: Mapping[str, str] | None = None, *, wide: bool = False
) -> str:
    """A table a person can read: one row per write (object, field, current → desired,
    reason), after one summary row per group. ``names`` shows trunk bases by name; the table
    fits 100 columns (objects by name) unless ``wide`` (every cell whole, ids added)."""
    names = names or {}
    lines = []
    for d in plan.decisions:
        lines.append(
            f"group {d.group}: {d.staffed_fte:.2f} FTE, {d.desired_lines} lines demanded, "
            f"{d.allocated_lines} allocated, shortfall {d.shortfall}"
            + (", failover" if d.failover_driven else "")
        )
    lines.extend(f"failed: {describe_failure(f)}" for f in plan.failures)
    if not plan.writes and not plan.held:
        lines.append(
            "no writes" if plan.failures else "no writes: actual state matches desired state"
        )
        return "\n".join(lines)
    if plan.writes:
        lines.extend(_table(plan.writes, names, wide=wide))
    else:
        lines.append("no writes")
    for h in plan.held:
        held = f"held: group {h.group}: {h.reason}"
        if wide:
            lines.append(held)
        else:
            lines.extend(textwrap.wrap(held, table.TERMINAL_WIDTH, subsequent_indent="  "))
        indent = "  "
        lines.extend(
            indent + row
            for row in _table(h.writes, names, wide=wide, width=table.TERMINAL_WIDTH - len(indent))
            if h.writes
        )
    return "\n".join(lines)


def _table(
    writes: Sequence[model.Write],
    names: Mapping[str, str],
    *,
    wide: bool = False,
    width: int = table.TERMINAL_WIDTH,
) -> list[str]:
    """Objects by name, 100 columns; ``wide``: every cell whole, the field and the id added
    (the kind, campaign_lines or route_order, already says which field)."""
    rows = [
        (
            w.priority.name.lower(),
            f"{w.kind.value} {w.object_name}",
            f"{_show(w.before, names)} → {_show(w.after, names)}",
            w.reason,
            *((w.field, w.object_id) if wide else ()),
        )
        for w in writes
    ]
    header: tuple[str, ...] = ("priority", "object", "current → desired", "reason")
    if wide:
        header += ("field", "object id")
    return table.render(header, rows, width=None if wide else width, keep=(0,))


def _json_value(value: model.WriteValue) -> object:
    return list(value) if isinstance(value, tuple) else value


def _json_write(w: model.Write) -> dict[str, object]:
    return {
        "object": w.object_id,
        "name": w.object_name,
        "kind": w.kind.value,
        "field": w.field,
        "current": _json_value(w.before),
        "desired": _json_value(w.after),
        "reason": w.reason,
        "priority": w.priority.name.lower(),
        "group": w.group,
    }


def describe_failure(failure: model.PlanFailure) -> str:
    """A planning failure in words (for the plan table, the JSON's problems and the log)."""
    what = (
        f"group {failure.object_name}"
        if failure.scope == "group"
        else f"route {failure.object_name} (groups {failure.group})"
    )
    error = failure.error
    return (
        f"{what} could not be planned ({type(error).__name__}: {error}); nothing of it is"
        " written this pass, the rest of the plan stands"
    )


def plan_json(plan: model.Plan, problems: Sequence[str] = ()) -> dict[str, object]:
    """The plan for scripts (``syncd once --dry-run --json``): writes, held writes and groups,
    and the problems: found in the configuration against the org, and planning failures."""
    return {
        "writes": [_json_write(w) for w in plan.writes],
        "held": [
            {"group": h.group, "reason": h.reason, "writes": [_json_write(w) for w in h.writes]}
            for h in plan.held
        ],
        "problems": [*problems, *(describe_failure(f) for f in plan.failures)],
    }
