"""Allocation of a group's lines over its trunks (docs/domain.md, decision 4).

Role: fill ``lines`` into the healthy trunks in priority order (lower number first), each up to
its capacity; trunks of equal priority share in proportion to capacity, in whole lines, the
remainder going by largest fractional remainder, then trunk base id (deterministic). Failed
trunks get 0. What healthy capacity cannot carry is reported as the shortfall, never hidden.

Pure integer arithmetic; it must not read clocks, log, or do I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import groupby


@dataclass(frozen=True, slots=True, kw_only=True)
class TrunkSpec:
    """One trunk base of a group: the carrier's capacity (concurrent lines) and its priority."""

    trunk_base_id: str
    capacity: int
    priority: int
    label: str = ""  # what people call it (logs, plan tables); the id when empty


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """Lines per trunk base of the group, every trunk listed in priority order (then id)."""

    lines: tuple[tuple[str, int], ...]
    shortfall: int

    @property
    def total(self) -> int:
        return sum(n for _, n in self.lines)

    def of(self, trunk_base_id: str) -> int:
        for tb_id, n in self.lines:
            if tb_id == trunk_base_id:
                return n
        return 0


def ordered(trunks: Sequence[TrunkSpec]) -> tuple[TrunkSpec, ...]:
    """Priority order: priority, then id, so equal priorities have a stable order."""
    return tuple(sorted(trunks, key=lambda t: (t.priority, t.trunk_base_id)))


def allocate(lines: int, trunks: Sequence[TrunkSpec], healthy: Mapping[str, bool]) -> Allocation:
    """Water-fill ``lines`` by priority tier; ``healthy`` maps trunk base id → usable (absent
    means usable)."""
    if lines < 0:
        raise ValueError("lines must be >= 0")
    given: dict[str, int] = {}
    remaining = lines
    for _, tier_iter in groupby(ordered(trunks), key=lambda t: t.priority):
        tier = [t for t in tier_iter if healthy.get(t.trunk_base_id, True) and t.capacity > 0]
        capacity = sum(t.capacity for t in tier)
        if remaining >= capacity:
            for t in tier:
                given[t.trunk_base_id] = t.capacity
            remaining -= capacity
            continue
        # Proportional share in exact integers: floor(r*c/C), then the leftover lines one each
        # to the largest remainders. r < C keeps every share within its capacity.
        shares = {t.trunk_base_id: divmod(remaining * t.capacity, capacity) for t in tier}
        for tb_id, (whole, _) in shares.items():
            given[tb_id] = whole
        leftover = remaining - sum(whole for whole, _ in shares.values())
        by_remainder = sorted(shares, key=lambda tb: (-shares[tb][1], tb))
        for tb_id in by_remainder[:leftover]:
            given[tb_id] += 1
        remaining = 0
    return Allocation(
        lines=tuple((t.trunk_base_id, given.get(t.trunk_base_id, 0)) for t in ordered(trunks)),
        shortfall=remaining,
    )


def split_by_weight(
    total: int, weights: Sequence[tuple[str, float]]
) -> tuple[tuple[str, int], ...]:
    """``total`` split over ``(id, weight)`` in proportion to weight; whole numbers summing to
    ``total`` (largest remainder, then id). Weights must be > 0 (config checks it)."""
    if not weights:
        return ()
    exact = [(key, Fraction(weight)) for key, weight in weights]
    weight_sum = sum(w for _, w in exact)
    quotas = {key: total * w / weight_sum for key, w in exact}
    out = {key: int(q) for key, q in quotas.items()}
    leftover = total - sum(out.values())
    for key in sorted(quotas, key=lambda k: (-(quotas[k] - out[k]), k))[:leftover]:
        out[key] += 1
    return tuple((key, out[key]) for key, _ in weights)
