"""Allocation: priority water-fill, proportional within a tier, shortfall reported."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core import allocation

T = allocation.TrunkSpec


@pytest.mark.parametrize(
    ("lines", "trunks", "healthy", "expected", "shortfall"),
    [
        (
            10,
            [
                T(trunk_base_id="a", capacity=20, priority=1),
                T(trunk_base_id="b", capacity=20, priority=2),
            ],
            {},
            {"a": 10, "b": 0},
            0,
        ),
        (
            30,
            [
                T(trunk_base_id="a", capacity=20, priority=1),
                T(trunk_base_id="b", capacity=20, priority=2),
            ],
            {},
            {"a": 20, "b": 10},
            0,
        ),
        (
            50,
            [
                T(trunk_base_id="a", capacity=20, priority=1),
                T(trunk_base_id="b", capacity=20, priority=2),
            ],
            {},
            {"a": 20, "b": 20},
            10,
        ),
        (
            10,
            [
                T(trunk_base_id="a", capacity=20, priority=1),
                T(trunk_base_id="b", capacity=20, priority=2),
            ],
            {"a": False},
            {"a": 0, "b": 10},
            0,
        ),
        (
            9,
            [
                T(trunk_base_id="a", capacity=10, priority=1),
                T(trunk_base_id="b", capacity=20, priority=1),
            ],
            {},
            {"a": 3, "b": 6},
            0,
        ),
        (
            10,
            [
                T(trunk_base_id="b", capacity=10, priority=1),
                T(trunk_base_id="a", capacity=10, priority=1),
                T(trunk_base_id="c", capacity=10, priority=1),
            ],
            {},
            {"a": 4, "b": 3, "c": 3},
            0,
        ),
        (5, [T(trunk_base_id="a", capacity=10, priority=1)], {"a": False}, {"a": 0}, 5),
    ],
    ids=[
        "first-tier",
        "spill-to-second",
        "shortfall",
        "failed-skipped",
        "proportional",
        "remainder-by-id",
        "all-failed",
    ],
)
def test_examples(
    lines: int,
    trunks: list[allocation.TrunkSpec],
    healthy: dict[str, bool],
    expected: dict[str, int],
    shortfall: int,
) -> None:
    result = allocation.allocate(lines, trunks, healthy)
    assert dict(result.lines) == expected
    assert result.shortfall == shortfall


trunk_lists = st.lists(
    st.builds(
        T,
        trunk_base_id=st.sampled_from("abcdefgh"),
        capacity=st.integers(0, 50),
        priority=st.integers(0, 3),
    ),
    max_size=8,
    unique_by=lambda t: t.trunk_base_id,
)


@given(lines=st.integers(0, 300), trunks=trunk_lists, failed=st.sets(st.sampled_from("abcdefgh")))
def test_never_over_capacity_never_on_failed_and_conserves(
    lines: int, trunks: list[allocation.TrunkSpec], failed: set[str]
) -> None:
    healthy = {t.trunk_base_id: t.trunk_base_id not in failed for t in trunks}
    result = allocation.allocate(lines, trunks, healthy)
    caps = {t.trunk_base_id: t.capacity for t in trunks}
    for tb, n in result.lines:
        assert 0 <= n <= caps[tb]
        if tb in failed:
            assert n == 0
    assert result.total + result.shortfall == lines
    healthy_cap = sum(c for tb, c in caps.items() if tb not in failed)
    assert result.shortfall == max(0, lines - healthy_cap)


@given(lines=st.integers(0, 300), trunks=trunk_lists)
def test_lower_priority_only_used_when_higher_full(
    lines: int, trunks: list[allocation.TrunkSpec]
) -> None:
    result = dict(allocation.allocate(lines, trunks, {}).lines)
    for low in trunks:
        if result[low.trunk_base_id] > 0:
            for high in trunks:
                if high.priority < low.priority:
                    assert result[high.trunk_base_id] == high.capacity


@given(total=st.integers(0, 500), weights=st.lists(st.floats(0.1, 10), min_size=1, max_size=6))
def test_split_by_weight_sums_and_is_fair(total: int, weights: list[float]) -> None:
    items = [(f"c{i}", w) for i, w in enumerate(weights)]
    split = dict(allocation.split_by_weight(total, items))
    assert sum(split.values()) == total
    wsum = sum(weights)
    for key, w in items:
        assert abs(split[key] - total * w / wsum) < 1 + 1e-9
