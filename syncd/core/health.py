"""Failover state machine of trunk bases (docs/domain.md, decision 3).

Role: fold health observations into ``model.TrunkHealth``: HEALTHY → FAILED on the first bad
observation (failover must be fast); FAILED → HEALTHY only after ``hold_down_s`` of continuous
good observations (no flapping); each HEALTHY → FAILED transition counts one failover event.

Pure: state in, state out, ``now`` is a parameter. It must not read clocks, log, or do I/O;
persisting the state across restarts is the engine's business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from syncd.core import model


def initial(trunk_base_id: str, now: int) -> model.TrunkHealth:
    """A trunk base never observed is presumed healthy, so its first bad observation is a
    failover like any other (and is written with failover priority)."""
    return model.TrunkHealth(
        trunk_base_id=trunk_base_id, state=model.HealthState.HEALTHY, since=now
    )


def observe(
    prev: model.TrunkHealth, *, good: bool, now: int, hold_down_s: int
) -> model.TrunkHealth:
    """The state after one observation at ``now``."""
    if prev.state is model.HealthState.HEALTHY:
        if good:
            return prev
        return dataclasses.replace(
            prev,
            state=model.HealthState.FAILED,
            since=now,
            good_since=None,
            failovers=prev.failovers + 1,
        )
    if not good:
        # Any bad observation restarts the hold-down: recovery needs an unbroken good run.
        return prev if prev.good_since is None else dataclasses.replace(prev, good_since=None)
    good_since = prev.good_since if prev.good_since is not None else now
    if now - good_since >= hold_down_s:
        return dataclasses.replace(
            prev, state=model.HealthState.HEALTHY, since=now, good_since=None
        )
    return prev if prev.good_since == good_since else dataclasses.replace(prev, good_since=now)


def recovery_at(states: Iterable[model.TrunkHealth], *, hold_down_s: int) -> int | None:
    """The earliest instant at which one of ``states`` recovers if it stays good: the end of
    the hold-down of a FAILED trunk base already in a good run (``good_since`` set), in the
    clock of its observations. None when none is recovering (healthy, or failed and still bad).

    ``observe`` only recovers a trunk base when an observation is folded, so whoever schedules
    observations must make one happen at this instant: a slow poll (push mode) would otherwise
    hold a healed trunk off its routes until it comes."""
    ends = [
        state.good_since + hold_down_s
        for state in states
        if state.state is model.HealthState.FAILED and state.good_since is not None
    ]
    return min(ends, default=None)


def is_good(statuses: Iterable[model.TrunkStatus]) -> bool:
    """A trunk base is good when any of its trunk instances is healthy; a base with no instance
    at all cannot carry calls, so it is bad."""
    return any(status.healthy for status in statuses)


def observe_all(
    states: Mapping[str, model.TrunkHealth],
    statuses: Iterable[model.TrunkStatus],
    trunk_base_ids: Iterable[str],
    *,
    now: int,
    hold_down_s: int,
) -> dict[str, model.TrunkHealth]:
    """Fold one health poll (every trunk instance listed) into the states of ``trunk_base_ids``.

    Unknown is not failed: a trunk base missing from the poll was not observed at all, so its
    state stands as it was (``unobserved`` names them; the engine warns when that lasts). Only
    an observed bad status fails over. ``now`` must not step back or leap within a process (the
    engine passes a monotonic reading anchored to the wall clock at start)."""
    per_base: dict[str, list[model.TrunkStatus]] = {}
    for status in statuses:
        per_base.setdefault(status.trunk_base_id, []).append(status)
    out: dict[str, model.TrunkHealth] = {}
    for tb_id in trunk_base_ids:
        prev = states.get(tb_id) or initial(tb_id, now)
        seen = per_base.get(tb_id)
        out[tb_id] = (
            prev
            if seen is None
            else observe(prev, good=is_good(seen), now=now, hold_down_s=hold_down_s)
        )
    return out


def unobserved(
    statuses: Iterable[model.TrunkStatus], trunk_base_ids: Iterable[str]
) -> tuple[str, ...]:
    """The trunk bases of ``trunk_base_ids`` that a poll did not list (their health is unknown)."""
    listed = {status.trunk_base_id for status in statuses}
    return tuple(tb for tb in trunk_base_ids if tb not in listed)


def healthy(state: model.TrunkHealth | None) -> bool:
    """Whether the planner may route over the trunk base; no state yet means not known bad."""
    return state is None or state.state is model.HealthState.HEALTHY
