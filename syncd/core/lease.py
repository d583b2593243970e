"""Leader-lease timing: when may the lease holder write, when must it stop, when to try again.

Role: the pure decisions behind ``syncd.engine.coordination``'s leader election, in the spirit
of client-go's ``tools/leaderelection`` (lease 15 s, renew deadline 10 s, retry 2 s). The lease
lives in Redis with a TTL counted by Redis' clock; this module reasons about it with the
holder's own monotonic clock:

* A renewal (or acquisition) *sent* at local time ``t`` and confirmed keeps the key alive until
  at least ``t + lease_s`` on Redis' clock, because Redis set the TTL after it received the
  request. Clocks that run at different rates shrink that, so the holder counts the lease valid
  until ``t + lease_s * (1 - clock_drift)`` only (``valid_until``).
* The holder stops writing at ``stop_at = min(t + renew_deadline_s, valid_until - max_write_s)``:
  either it could not renew for the renew deadline (client-go's rule: stop leading the moment
  you cannot renew), or too little lease is left for the slowest write to reach Genesys Cloud
  before another replica could take over. A write starts only with at least ``max_write_s`` of
  runway before ``stop_at`` and is abandoned at ``stop_at`` — at the ``stop_at`` of its lease as
  renewed meanwhile under the same epoch (``deadline_of``), so a write kept waiting by the
  limiter is not abandoned while the lease it was permitted under goes on.
* A follower tries again after ``retry_s``, or as soon as the current lease runs out if that is
  sooner (Redis tells it the remaining TTL), so a crashed leader is replaced about ``lease_s``
  after its last renewal.

It must not read a clock, sleep or do I/O: every instant is a parameter (seconds of a monotonic
clock), like ``core.pacing``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseTiming:
    """The lease parameters (seconds); ``problems()`` says what is inconsistent."""

    lease_s: float = 15.0
    renew_deadline_s: float = 10.0
    retry_s: float = 2.0
    max_write_s: float = 2.0  # the slowest write: one request's trip to the server
    clock_drift: float = 0.01  # the largest relative rate difference between two clocks

    def problems(self) -> list[str]:
        """Every inconsistency, as ``key: why`` (empty when the timing is usable)."""
        out: list[str] = []
        if not 0 <= self.clock_drift < 0.5:
            out.append(f"clock_drift: must be in [0, 0.5), got {self.clock_drift}")
        if self.retry_s <= 0:
            out.append(f"retry_s: must be > 0, got {self.retry_s}")
        if self.renew_deadline_s <= self.retry_s:
            out.append(
                f"renew_deadline_s: must be greater than retry_s ({self.retry_s}), so a leader"
                f" gets more than one try to renew; got {self.renew_deadline_s}"
            )
        if self.lease_s * (1 - self.clock_drift) <= self.renew_deadline_s:
            out.append(
                f"lease_s: must exceed renew_deadline_s ({self.renew_deadline_s}) by more than the"
                f" clock drift, so a leader stops before its lease can lapse; got {self.lease_s}"
            )
        if self.max_write_s <= 0 or self.max_write_s >= self.renew_deadline_s:
            out.append(
                f"max_write_s: must be > 0 and below renew_deadline_s ({self.renew_deadline_s});"
                f" got {self.max_write_s}"
            )
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Held:
    """A lease this replica holds: its epoch (the fencing token) and its last confirmed renewal,
    stamped with the local time the renewal was *sent*."""

    epoch: int
    renewed_sent_at: float


def valid_until(held: Held, timing: LeaseTiming) -> float:
    """The local instant before which no other replica can hold the lease."""
    return held.renewed_sent_at + timing.lease_s * (1.0 - timing.clock_drift)


def stop_at(held: Held, timing: LeaseTiming) -> float:
    """The local instant at which the holder stops writing and steps down."""
    return min(
        held.renewed_sent_at + timing.renew_deadline_s,
        valid_until(held, timing) - timing.max_write_s,
    )


def is_leading(held: Held | None, timing: LeaseTiming, *, now: float) -> bool:
    """True while the holder may still act as the leader (before ``stop_at``)."""
    return held is not None and now < stop_at(held, timing)


def write_deadline(held: Held | None, timing: LeaseTiming, *, now: float) -> float | None:
    """When a write that starts now must be abandoned; None when it must not start at all
    (not leading, or less than ``max_write_s`` of runway left)."""
    if held is None:
        return None
    end = stop_at(held, timing)
    if now + timing.max_write_s > end:
        return None
    return end


def deadline_of(held: Held | None, timing: LeaseTiming, *, epoch: int | None) -> float | None:
    """Where the deadline of a write permitted under ``epoch`` stands now: ``stop_at`` of the
    lease as renewed since (renewals of one epoch only move it later), or None when this replica
    no longer holds that epoch's lease — a write goes on across its own lease's renewals, never
    into another lease or past a step-down."""
    if held is None or held.epoch != epoch:
        return None
    return stop_at(held, timing)


def renewed(held: Held, *, epoch: int, sent_at: float) -> Held:
    """The lease after a confirmed renewal that was sent at ``sent_at`` (never moves backwards)."""
    if epoch != held.epoch:
        raise ValueError(f"a renewal of epoch {epoch} cannot extend epoch {held.epoch}")
    return Held(epoch=epoch, renewed_sent_at=max(held.renewed_sent_at, sent_at))


def next_attempt_in(
    timing: LeaseTiming, *, leading: bool, remaining_ttl_s: float | None = None
) -> float:
    """Seconds until the next renew (leader) or acquire attempt (follower).

    A leader renews every ``retry_s``. A follower tries every ``retry_s``, or just after the
    holder's remaining TTL when that is sooner, so a dead leader is replaced as soon as its
    lease lapses rather than up to ``retry_s`` later.
    """
    if leading or remaining_ttl_s is None or remaining_ttl_s < 0:
        return timing.retry_s
    return min(timing.retry_s, remaining_ttl_s + 0.005)
