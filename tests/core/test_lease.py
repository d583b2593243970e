"""core.lease: the leader's timing decisions, time as a parameter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.core import lease

T = lease.LeaseTiming()  # client-go's 15 / 10 / 2


def test_defaults_are_client_go_leaderelection_and_consistent() -> None:
    assert (T.lease_s, T.renew_deadline_s, T.retry_s) == (15.0, 10.0, 2.0)
    assert T.problems() == []


@pytest.mark.parametrize(
    ("timing", "key"),
    [
        (lease.LeaseTiming(lease_s=10.0), "lease_s"),
        (lease.LeaseTiming(renew_deadline_s=2.0), "renew_deadline_s"),
        (lease.LeaseTiming(max_write_s=10.0), "max_write_s"),
        (lease.LeaseTiming(clock_drift=0.6), "clock_drift"),
        (lease.LeaseTiming(retry_s=0.0), "retry_s"),
    ],
)
def test_inconsistent_timings_are_named(timing: lease.LeaseTiming, key: str) -> None:
    assert any(p.startswith(f"{key}:") for p in timing.problems())


def test_a_leader_writes_until_the_renew_deadline_and_not_after() -> None:
    held = lease.Held(epoch=3, renewed_sent_at=100.0)
    assert lease.stop_at(held, T) == 110.0  # the renew deadline, before the lease lapses
    assert lease.write_deadline(held, T, now=100.0) == 110.0
    assert lease.write_deadline(held, T, now=108.0) == 110.0  # exactly max_write_s left
    assert lease.write_deadline(held, T, now=108.01) is None
    assert lease.is_leading(held, T, now=109.99)
    assert not lease.is_leading(held, T, now=110.0)
    assert lease.write_deadline(None, T, now=0.0) is None


def test_a_long_slowest_write_or_drift_moves_the_stop_before_the_renew_deadline() -> None:
    timing = lease.LeaseTiming(max_write_s=6.0, clock_drift=0.1)
    held = lease.Held(epoch=1, renewed_sent_at=0.0)
    assert lease.valid_until(held, timing) == pytest.approx(13.5)
    assert lease.stop_at(held, timing) == pytest.approx(7.5)


def test_renewals_never_move_backwards_and_keep_the_epoch() -> None:
    held = lease.Held(epoch=2, renewed_sent_at=50.0)
    assert lease.renewed(held, epoch=2, sent_at=52.0).renewed_sent_at == 52.0
    assert lease.renewed(held, epoch=2, sent_at=49.0).renewed_sent_at == 50.0
    with pytest.raises(ValueError, match="epoch"):
        lease.renewed(held, epoch=3, sent_at=60.0)


def test_a_write_s_deadline_follows_its_lease_renewals_and_no_other_lease() -> None:
    held = lease.Held(epoch=4, renewed_sent_at=100.0)
    permitted = lease.write_deadline(held, T, now=100.0)
    assert lease.deadline_of(held, T, epoch=4) == permitted == 110.0
    # renewed under the same epoch: the write in flight may go on to the renewed lease's stop
    later = lease.renewed(held, epoch=4, sent_at=103.0)
    assert lease.deadline_of(later, T, epoch=4) == 113.0
    # another epoch (stepped down and won again) or none at all: the write ends now
    assert lease.deadline_of(lease.Held(epoch=5, renewed_sent_at=103.0), T, epoch=4) is None
    assert lease.deadline_of(None, T, epoch=4) is None


def test_a_follower_tries_again_when_the_lease_lapses_if_that_is_sooner() -> None:
    assert lease.next_attempt_in(T, leading=True) == T.retry_s
    assert lease.next_attempt_in(T, leading=False) == T.retry_s
    assert lease.next_attempt_in(T, leading=False, remaining_ttl_s=0.5) == pytest.approx(0.505)
    assert lease.next_attempt_in(T, leading=False, remaining_ttl_s=9.0) == T.retry_s


@given(
    sent=st.floats(0, 1e6),
    lease_s=st.floats(3, 60),
    drift=st.floats(0, 0.2),
    now=st.floats(0, 1e6),
)
def test_no_write_may_run_past_the_lease_another_replica_could_take(
    sent: float, lease_s: float, drift: float, now: float
) -> None:
    timing = lease.LeaseTiming(
        lease_s=lease_s, renew_deadline_s=lease_s / 2, retry_s=lease_s / 8, max_write_s=1.0,
        clock_drift=drift,
    )  # fmt: skip
    held = lease.Held(epoch=1, renewed_sent_at=sent)
    deadline = lease.write_deadline(held, timing, now=now)
    if deadline is not None:
        # the write is abandoned early enough for its last byte to arrive before the lease
        # can be another replica's, in the holder's slowest-running clock
        assert deadline + timing.max_write_s <= lease.valid_until(held, timing) + 1e-9
        assert now + timing.max_write_s <= deadline
        # and as the lease is renewed (same epoch), the deadline moves with it: never past the
        # renewed lease's own margin
        renewed = lease.renewed(held, epoch=1, sent_at=now)
        moved = lease.deadline_of(renewed, timing, epoch=1)
        assert moved is not None
        assert moved >= deadline
        assert moved + timing.max_write_s <= lease.valid_until(renewed, timing) + 1e-9
