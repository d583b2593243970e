"""A real ``redis-server`` on loopback for the coordination tests (never fakeredis)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import redisproc


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[redisproc.RedisServer]:
    if redisproc.REDIS_SERVER is None:
        pytest.skip("redis-server not installed (apt-get install redis-server; .ci/run does)")
    with redisproc.redis_server(tmp_path / "redis") as server:
        yield server
