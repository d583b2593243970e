"""Run-time options of the Genesys Cloud simulator.

Role: one frozen value that says how a simulator instance behaves (credentials, token lifetime,
rate-limit model, inline/download threshold, clocks). It must not hold state and must not import
anything from the rest of syncd: the simulator shares no code with the daemon it tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

RateModelName = Literal["fixed-window", "token-bucket", "counts-rejected"]
RATE_MODELS: tuple[RateModelName, ...] = ("fixed-window", "token-bucket", "counts-rejected")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _default_clients() -> dict[str, str]:
    return {"demo-client": "demo-secret"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SimOptions:
    """How one simulator instance behaves; every field has the documented default."""

    clients: dict[str, str] = field(default_factory=_default_clients)
    token_ttl_s: int = 86400
    rate_model: RateModelName = "fixed-window"
    quota: int = 300
    window_s: float = 60.0
    ratelimit_headers: bool = True
    # Whose budget the quota is: each access token's (the documented per-token limit) or each
    # OAuth client's, shared by every token it issued (replicas of one client, docs/ha.md).
    ratelimit_per: Literal["token", "client"] = "token"
    # Lower limits on endpoint families, each (method, path-template prefix, quota per window),
    # counted per budget like the main one; a request must pass both.
    endpoint_limits: tuple[tuple[str, str, int], ...] = ()
    # Above this many agents a schedule query/search answers with a downloadUrl, like the real
    # service does for "too large to pass directly" results (the real threshold is unpublished).
    inline_max_agents: int = 500
    # Presigned download links stop working after this many seconds of the sim clock.
    download_ttl_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = _utc_now
    request_log_size: int = 10000

    def __post_init__(self) -> None:
        if self.rate_model not in RATE_MODELS:
            raise ValueError(f"unknown rate model {self.rate_model!r}; use one of {RATE_MODELS}")
        if self.quota < 1 or self.window_s <= 0:
            raise ValueError("quota must be >= 1 and window_s > 0")
        if self.ratelimit_per not in ("token", "client"):
            raise ValueError(
                f"ratelimit_per must be 'token' or 'client', not {self.ratelimit_per!r}"
            )
        if any(quota < 1 for _method, _prefix, quota in self.endpoint_limits):
            raise ValueError("every endpoint limit's quota must be >= 1")
        if self.token_ttl_s < 1:
            raise ValueError("token_ttl_s must be >= 1")
