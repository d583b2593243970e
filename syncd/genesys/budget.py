"""The shared API budget port: what the limiter asks after its own pacer, before every request.

Role: a small ``Protocol`` so replicas that share one OAuth client can share its budget (the
Redis GCRA of ``syncd.engine.coordination``) without the limiter knowing about Redis, and the
default that shares nothing (one process: the local pacer alone decides).

It must not do I/O itself, import the engine or know which backend implements it.
"""

from __future__ import annotations

import math
from typing import Protocol


class SharedBudget(Protocol):
    """A budget every process of one OAuth client draws from."""

    async def take(self, label: str, *, max_wait_s: float = math.inf) -> None:
        """Return once the shared budget of the client behind token ``label`` admits one
        request (waiting as long as it says, including a pause another process published);
        raise ``errors.RetryAfterTooLong`` when it says to wait longer than ``max_wait_s``."""
        ...

    def throttled(self, label: str, seconds: float) -> None:
        """A 429 on token ``label``: publish a pause of ``seconds`` to every other process."""
        ...


class Unshared:
    """The embedded default: nothing is shared, the local pacer alone decides."""

    async def take(self, label: str, *, max_wait_s: float = math.inf) -> None:
        return None

    def throttled(self, label: str, seconds: float) -> None:
        return None
