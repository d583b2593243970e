"""Fixtures of the contract tests: a simulator in a background thread, the official SDK
pointed at it (with its config-file watcher neutralised), and strict spec validation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from contract_helpers import Spec, ThreadedSim


@pytest.fixture(scope="session")
def spec() -> Spec:
    return Spec()


@pytest.fixture(scope="session")
def threaded_sim() -> Iterator[ThreadedSim]:
    sim = ThreadedSim()
    yield sim
    sim.close()


@pytest.fixture(scope="session")
def sdk_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """HOME points at an empty directory whose SDK config turns live reload off, so the
    singleton `Configuration` reads no user file and starts no watchdog thread."""
    home = tmp_path_factory.mktemp("home")
    config_dir = home / ".genesyscloudpython"
    config_dir.mkdir()
    (config_dir / "config").write_text("[general]\nlive_reload_config = false\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def api_client(threaded_sim: ThreadedSim, sdk_home: Path) -> Any:
    from PureCloudPlatformClientV2 import ApiClient, Configuration

    configuration = Configuration()
    configuration.live_reload_config = False
    client = ApiClient(host=threaded_sim.base_url)
    client.get_client_credentials_token("demo-client", "demo-secret")
    return client
