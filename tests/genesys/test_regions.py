"""Plain http:// only to loopback: in the endpoints and in the configuration."""

from __future__ import annotations

import pytest

from syncd import config, errors
from syncd.genesys import regions

CONFIG = """
[org]
api_url = "{api}"
login_url = "{login}"
client_id = "cid"
secret_env = "SYNCD_TEST_SECRET"

[schedule]
business_units = ["bu"]

[[groups]]
name = "g1"
management_units = ["mu1"]
campaigns = [{{ id = "c1" }}]
routes = [{{ site_id = "s1", id = "r1" }}]
trunks = [{{ trunk_base_id = "t1", capacity = 10, priority = 1 }}]
lines_per_agent = 1.0
max_lines = 50
"""


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8787",
        "http://localhost:8787",
        "http://[::1]:8787",
        "http://127.9.0.1",
        "https://api.mypurecloud.de",
        "https://sim.example.test:8443",
    ],
)
def test_https_anywhere_and_http_to_loopback_are_accepted(url: str) -> None:
    assert regions.check_url(url, what="api_url") == url
    assert regions.resolve(api_url=url).api_url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://api.mypurecloud.de",
        "http://10.0.0.5:8787",
        "http://localhost.evil.test",
        "http://127.0.0.1.nip.io",
        "ftp://127.0.0.1",
        "https://",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="api_url"):
        regions.check_url(url, what="api_url")
    with pytest.raises(ValueError, match=r"api_url|login_url"):
        regions.resolve(api_url=url)
    with pytest.raises(ValueError, match="login_url"):
        regions.Endpoints(api_url="https://api.mypurecloud.de", login_url=url)


def test_the_configuration_names_the_plain_http_url() -> None:
    good = config.parse(CONFIG.format(api="http://127.0.0.1:8787", login="http://127.0.0.1:8787"))
    assert good.org.api_base == "http://127.0.0.1:8787"
    with pytest.raises(errors.ConfigError) as info:
        config.parse(CONFIG.format(api="http://api.example.test", login="https://l.example.test"))
    text = str(info.value)
    assert "org" in text
    assert "api_url" in text
    assert "clear text" in text
    with pytest.raises(errors.ConfigError, match="login_url"):
        config.parse(CONFIG.format(api="https://api.example.test", login="http://l.example.test"))
