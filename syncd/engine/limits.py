"""The org's rate limit, read at start: pace by it when it is below the configured quota.

Role: read ``platform.api`` from the limits API (``GenesysApi.namespace_limits``), weigh the
per-token limit against the configured quota (``core.pacing.QuotaChoice``: the lower one wins,
a higher one is only reported), say so in one log line, and set the limiter's quota (and the
replicas' shared budget, ``shared_budget``). Used by the daemon's start (``runner.open_engine``),
``syncd verify`` and the write benchmark.

A limit that cannot be read is unknown, never a reason to stop: only refused credentials
(``AuthError`` after the token refresh) propagate, as they would from any other read. It must
not decide anything else about pacing (``core.pacing`` and the limiter do).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from syncd import errors
from syncd.core import pacing
from syncd.engine import coordination
from syncd.genesys import api as api_mod
from syncd.genesys import limiter as limiter_mod

log = logging.getLogger(__name__)


async def read_quota(
    api: api_mod.GenesysApi, *, configured: int, window_s: float
) -> pacing.QuotaChoice:
    """The org's per-token limit weighed against ``configured`` (per ``window_s``)."""
    try:
        limits = await api.namespace_limits(pacing.LIMITS_NAMESPACE)
    except errors.AuthError:
        raise
    except errors.ApiError as exc:  # unreachable, malformed, rate limited: unknown this time
        return pacing.QuotaChoice(
            configured=configured, window_s=window_s, org_per_minute=None, unknown_reason=str(exc)
        )
    value = limits.value(pacing.TOKEN_LIMIT_KEY)
    reason = limits.unknown_reason
    if value is None and limits.limits is not None:
        reason = f"the limits API lists no {pacing.TOKEN_LIMIT_KEY} in {limits.namespace}"
    return pacing.QuotaChoice(
        configured=configured, window_s=window_s, org_per_minute=value, unknown_reason=reason
    )


async def adopt_org_limit(
    api: api_mod.GenesysApi,
    limiter: limiter_mod.Limiter,
    *,
    configured: int,
    window_s: float,
    on_quota: Callable[[int], None] | None = None,
) -> pacing.QuotaChoice:
    """Read the org's limit, log what syncd paces by, and set it on every token's pacer.
    ``on_quota`` receives the effective quota per window (the metrics gauge)."""
    choice = await read_quota(api, configured=configured, window_s=window_s)
    log.log(logging.WARNING if choice.lowered else logging.INFO, "%s", choice.sentence())
    if choice.quota != limiter.config.quota:
        limiter.set_quota(choice.quota)
    if on_quota is not None:
        on_quota(choice.quota)
    return choice


def shared_budget(
    settings: coordination.BudgetSettings, choice: pacing.QuotaChoice, *, burst: int | None
) -> coordination.BudgetSettings:
    """The replicas' shared budget (``[coordination] backend = "redis"``) under the org's limit
    when that is lower: replicas of one OAuth client spend one per-client budget, so it must
    not admit more than the org allows. ``burst``: the configured ``budget_burst`` (None: a
    tenth of the quota, as ``Config.shared_burst``)."""
    if choice.org_per_minute is None:
        return settings
    quota = min(settings.quota, pacing.per_window(choice.org_per_minute, settings.window_s))
    if quota == settings.quota:
        return settings
    # The GCRA keeps room for the burst: it stays below the quota minus one.
    lowered = quota // 10 if burst is None else min(burst, max(0, quota - 2))
    return dataclasses.replace(settings, quota=quota, burst=lowered)
