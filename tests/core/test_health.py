"""The failover state machine: fail fast, recover after a continuous hold-down."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core import health, model

H, F = model.HealthState.HEALTHY, model.HealthState.FAILED


def run(observations: list[tuple[int, bool]], hold_down: int) -> model.TrunkHealth:
    state = health.initial("tb", 0)
    for now, good in observations:
        state = health.observe(state, good=good, now=now, hold_down_s=hold_down)
    return state


@pytest.mark.parametrize(
    ("observations", "hold_down", "state", "failovers"),
    [
        ([(15, True)], 60, H, 0),
        ([(15, False)], 60, F, 1),
        ([(15, False), (30, True), (45, True)], 60, F, 1),
        ([(15, False), (30, True), (90, True)], 60, H, 1),
        ([(15, False), (30, True), (89, True)], 60, F, 1),
        ([(15, False), (30, True), (60, False), (90, True), (140, True)], 60, F, 1),
        ([(15, False), (30, True), (60, False), (90, True), (150, True)], 60, H, 1),
        ([(15, False), (30, True), (90, True), (105, False)], 60, F, 2),
        ([(15, False), (30, False), (45, False)], 60, F, 1),
        ([(15, False), (30, True)], 0, H, 1),
    ],
    ids=[
        "good-stays-healthy",
        "first-bad-fails",
        "recovering-inside-hold-down",
        "recovered-at-hold-down",
        "one-second-short",
        "bad-restarts-hold-down",
        "recovered-after-restart",
        "second-failover-counted",
        "repeated-bad-one-failover",
        "zero-hold-down",
    ],
)
def test_state_machine(
    observations: list[tuple[int, bool]], hold_down: int, state: model.HealthState, failovers: int
) -> None:
    result = run(observations, hold_down)
    assert result.state is state
    assert result.failovers == failovers


def status(
    base: str, *, connected: bool = True, options: tuple[bool, ...] = (True,)
) -> model.TrunkStatus:
    return model.TrunkStatus(
        trunk_id="t-" + base,
        trunk_base_id=base,
        connected=connected,
        options_ok=options,
        in_service=True,
    )


def test_observe_all_fails_observed_bad_bases_only() -> None:
    polled = [status("a"), status("b", connected=False), status("c", options=(False, False))]
    states = health.observe_all({}, polled, ["a", "b", "c", "d"], now=100, hold_down_s=60)
    # d is not in the listing: unknown, not failed (no failover, no failover event).
    assert {k: v.state for k, v in states.items()} == {"a": H, "b": F, "c": F, "d": H}
    assert states["d"].failovers == 0
    assert health.unobserved(polled, ["a", "b", "c", "d"]) == ("d",)


def test_an_unknown_poll_neither_fails_nor_recovers_a_trunk() -> None:
    failed = health.observe_all({}, [status("a", connected=False)], ["a"], now=0, hold_down_s=60)
    good = health.observe_all(failed, [status("a")], ["a"], now=10, hold_down_s=60)
    # Missing from the next listings: the hold-down does not run on unknown, nothing flips.
    later = health.observe_all(good, [], ["a"], now=500, hold_down_s=60)
    assert later == good
    assert later["a"].state is F


def test_one_answering_sip_server_is_enough() -> None:
    assert health.is_good([status("a", options=(False, True))])
    assert not health.is_good([])


def test_recovery_at_is_the_end_of_the_earliest_hold_down_under_way() -> None:
    healthy = run([(15, True)], 60)
    still_bad = run([(15, False), (30, False)], 60)
    ends_90 = run([(15, False), (30, True)], 60)
    ends_110 = run([(15, False), (30, True), (40, False), (50, True)], 60)
    assert health.recovery_at([], hold_down_s=60) is None
    assert health.recovery_at([healthy, still_bad], hold_down_s=60) is None
    assert health.recovery_at([healthy, ends_110, still_bad, ends_90], hold_down_s=60) == 90
    assert health.recovery_at([ends_110], hold_down_s=60) == 110
    # A reload that changes the hold-down moves the instant with it.
    assert health.recovery_at([ends_90, ends_110], hold_down_s=20) == 50


@given(
    steps=st.lists(st.tuples(st.integers(1, 40), st.booleans()), min_size=1, max_size=12),
    hold_down=st.integers(0, 90),
)
def test_an_observation_at_recovery_at_recovers_and_none_before_it_does(
    steps: list[tuple[int, bool]], hold_down: int
) -> None:
    # Whatever the history, recovery_at is exactly when the next good observation recovers:
    # a scheduler that observes then (and not before) loses no time and wastes no poll.
    now, observations = 0, []
    for gap, good in steps:
        now += gap
        observations.append((now, good))
    state = run(observations, hold_down)
    at = health.recovery_at([state], hold_down_s=hold_down)
    if at is None:
        assert state.state is H or state.good_since is None
        return
    assert state.state is F
    assert at > now  # the last observation left it recovering: its end is still ahead
    on_time = health.observe(state, good=True, now=at, hold_down_s=hold_down)
    early = health.observe(state, good=True, now=at - 1, hold_down_s=hold_down)
    assert on_time.state is H
    assert early.state is F
