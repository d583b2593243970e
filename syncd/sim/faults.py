"""Fault injection for the simulator: which request gets which failure.

Role: hold the current fault settings and draw, from a seeded RNG, the fault (if any) for one
request, so a run with the same seed and the same request sequence fails the same way. It must
not perform the faults itself (the HTTP layer does) and must not import the rest of syncd.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any, Literal

Action = Literal["reset", "error_5xx", "timeout_504", "conflict_400"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultConfig:
    """Probabilities (0..1) of each fault per matching /api/v2 request."""

    error_5xx_rate: float = 0.0
    status_5xx: int = 503
    timeout_504_rate: float = 0.0
    timeout_s: float = 0.0  # how long a 504 takes to arrive (a gateway timing out is slow)
    slow_rate: float = 0.0
    slow_s: float = 2.0
    reset_rate: float = 0.0
    malformed_json_rate: float = 0.0
    version_conflict_400_rate: float = 0.0  # PUT only: the 400 flavour of a version conflict
    routes: tuple[str, ...] = ()  # path prefixes; empty = every /api/v2 path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        """Build from the control API body; unknown keys and bad values raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == "routes":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError("routes must be a list of path prefixes")
                kwargs[key] = tuple(value)
            elif key == "status_5xx":
                if not isinstance(value, int) or not 500 <= value <= 599:
                    raise ValueError("status_5xx must be an integer 500..599")
                kwargs[key] = value
            else:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{key} must be a number")
                if key.endswith("_rate") and not 0.0 <= float(value) <= 1.0:
                    raise ValueError(f"{key} must be between 0 and 1")
                if float(value) < 0:
                    raise ValueError(f"{key} must not be negative")
                kwargs[key] = float(value)
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["routes"] = list(self.routes)
        return out


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to do to one request: an action replacing the answer, a delay, a broken body."""

    action: Action | None = None
    delay_s: float = 0.0
    malformed: bool = False


NO_FAULT = FaultPlan()


class Faults:
    """Current fault settings plus the seeded RNG that decides which request fails."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._rng = random.Random(f"syncd-sim:faults:{seed}")
        self.config: FaultConfig | None = None

    def set(self, config: FaultConfig) -> None:
        self.config = config
        # Re-seed so the same settings on the same request sequence give the same faults.
        self._rng = random.Random(f"syncd-sim:faults:{self._seed}")

    def clear(self) -> None:
        self.config = None

    def plan(self, method: str, path: str) -> FaultPlan:
        cfg = self.config
        if cfg is None:
            return NO_FAULT
        if cfg.routes and not any(path.startswith(prefix) for prefix in cfg.routes):
            return NO_FAULT
        # Always draw every number, so one setting does not shift the sequence of another.
        draws = [self._rng.random() for _ in range(6)]
        delay = cfg.slow_s if draws[0] < cfg.slow_rate else 0.0
        if draws[1] < cfg.reset_rate:
            return FaultPlan("reset", delay)
        if draws[2] < cfg.timeout_504_rate:
            return FaultPlan("timeout_504", delay + cfg.timeout_s)
        if draws[3] < cfg.error_5xx_rate:
            return FaultPlan("error_5xx", delay)
        if method == "PUT" and draws[4] < cfg.version_conflict_400_rate:
            return FaultPlan("conflict_400", delay)
        return FaultPlan(None, delay, draws[5] < cfg.malformed_json_rate)
