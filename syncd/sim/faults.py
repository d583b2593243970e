"""Fault injection for the simulator: which request gets which failure, and which waits.

Role: hold the current fault settings and draw, from a seeded RNG, the fault (if any) for one
request, so a run with the same seed and the same request sequence fails the same way; and the
hold, a gate that parks matching requests until a test releases them (so "a write is in flight
now" is a state a test can wait for, not a race it hopes to win). It must not perform the faults
itself (the HTTP layer does) and must not import the rest of syncd.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any, Literal

Action = Literal["reset", "error_5xx", "timeout_504", "conflict_400", "lost_answer"]

WRITE_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})


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
    # Writes only: the write is applied, then the connection drops without an answer (a
    # gateway timing out after forwarding, a reset after the server committed).
    lost_answer_rate: float = 0.0
    routes: tuple[str, ...] = ()  # path prefixes; empty = every /api/v2 path
    methods: tuple[str, ...] = ()  # HTTP methods; empty = every method
    max_faults: int = 0  # faults stop after this many faulted requests; 0 = no limit

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultConfig:
        """Build from the control API body; unknown keys and bad values raise ValueError."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("routes", "methods"):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"{key} must be a list of strings")
                kwargs[key] = tuple(v.upper() for v in value) if key == "methods" else tuple(value)
            elif key == "max_faults":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError("max_faults must be a non-negative integer")
                kwargs[key] = value
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
        out["methods"] = list(self.methods)
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
        # Faults added later draw from streams of their own: the sequences above stay the same.
        self._lost_rng = random.Random(f"syncd-sim:faults:lost:{seed}")
        self.config: FaultConfig | None = None
        self.faulted = 0  # requests faulted since the settings were set (for max_faults)

    def set(self, config: FaultConfig) -> None:
        self.config = config
        self.faulted = 0
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
        if cfg.methods and method not in cfg.methods:
            return NO_FAULT
        if cfg.max_faults and self.faulted >= cfg.max_faults:
            return NO_FAULT
        plan = self._draw(cfg, method)
        if plan != NO_FAULT:
            self.faulted += 1
        return plan

    def _draw(self, cfg: FaultConfig, method: str) -> FaultPlan:
        # Always draw every number, so one setting does not shift the sequence of another.
        draws = [self._rng.random() for _ in range(6)]
        draws.append(self._lost_rng.random())
        delay = cfg.slow_s if draws[0] < cfg.slow_rate else 0.0
        if draws[1] < cfg.reset_rate:
            return FaultPlan("reset", delay)
        if draws[2] < cfg.timeout_504_rate:
            return FaultPlan("timeout_504", delay + cfg.timeout_s)
        if draws[3] < cfg.error_5xx_rate:
            return FaultPlan("error_5xx", delay)
        if method == "PUT" and draws[4] < cfg.version_conflict_400_rate:
            return FaultPlan("conflict_400", delay)
        if method in WRITE_METHODS and draws[6] < cfg.lost_answer_rate:
            return FaultPlan("lost_answer", delay)
        return FaultPlan(None, delay, draws[5] < cfg.malformed_json_rate)


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldConfig:
    """Which /api/v2 requests the hold parks: methods (default: writes) and path prefixes."""

    methods: tuple[str, ...] = tuple(sorted(WRITE_METHODS))
    routes: tuple[str, ...] = ()  # path prefixes; empty = every /api/v2 path

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HoldConfig:
        unknown = set(data) - {"methods", "routes"}
        if unknown:
            raise ValueError(f"unknown hold settings: {sorted(unknown)}")
        kwargs: dict[str, tuple[str, ...]] = {}
        for key in ("methods", "routes"):
            value = data.get(key)
            if value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{key} must be a list of strings")
            kwargs[key] = tuple(v.upper() for v in value) if key == "methods" else tuple(value)
        return cls(**kwargs)

    def matches(self, method: str, path: str) -> bool:
        if method not in self.methods:
            return False
        return not self.routes or any(path.startswith(prefix) for prefix in self.routes)

    def to_json(self) -> dict[str, Any]:
        return {"methods": list(self.methods), "routes": list(self.routes)}


class Hold:
    """Parks matching requests (before they are handled) until ``release``.

    ``held`` counts requests parked now; ``wait_held(n)`` returns once at least n are. Release
    lets every parked request go on (a write then lands, whether or not its client is still
    there) and ``release`` returns once they have all been handled.
    """

    def __init__(self) -> None:
        self.config: HoldConfig | None = None
        self.held = 0
        self._busy = 0  # parked, or released and still being handled
        self._gate = asyncio.Event()
        self._changed = asyncio.Event()

    def set(self, config: HoldConfig) -> None:
        self.config = config
        if self._gate.is_set():  # requests parked earlier stay parked on the same gate
            self._gate = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def matches(self, method: str, path: str) -> bool:
        return self.config is not None and self.config.matches(method, path)

    @contextlib.asynccontextmanager
    async def parked(self, method: str, path: str) -> AsyncIterator[None]:
        """Around the handling of one request: wait at the gate first if the hold matches."""
        if not self.matches(method, path):
            yield
            return
        gate = self._gate
        self.held += 1
        self._busy += 1
        self._notify()
        try:
            try:
                await gate.wait()
            finally:
                self.held -= 1
                self._notify()
            yield
        finally:
            self._busy -= 1
            self._notify()

    async def wait_held(self, count: int, timeout_s: float) -> bool:
        """True once at least ``count`` requests are parked; False after ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self.held < count:
                    await self._changed.wait()
        return self.held >= count

    async def release(self, timeout_s: float = 10.0) -> int:
        """Stop holding; every parked request goes on. Returns how many were parked."""
        released = self.held
        self.config = None
        self._gate.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._busy:
                    await self._changed.wait()
        return released

    def to_json(self) -> dict[str, Any]:
        return {"hold": self.config.to_json() if self.config else None, "held": self.held}
