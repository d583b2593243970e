"""Genesys Cloud regions: enum name → API base URL, and the login URL derived from it.

Role: the region table of docs/genesys-setup.md (``PureCloudRegionHosts`` of the official
SDK) and the rule the SDKs use for the OAuth host (``//api.`` → ``//login.``), plus explicit
URLs for tests and the simulator. It must not do I/O, and it must not accept a plain-HTTP URL
for any host but a loopback one (the simulator on 127.0.0.1): a bearer token or a client
secret sent in clear text to a remote host is a leak, whatever the configuration says.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

REGIONS: dict[str, str] = {
    "us_east_1": "https://api.mypurecloud.com",
    "eu_west_1": "https://api.mypurecloud.ie",
    "ap_southeast_2": "https://api.mypurecloud.com.au",
    "ap_northeast_1": "https://api.mypurecloud.jp",
    "eu_central_1": "https://api.mypurecloud.de",
    "us_west_2": "https://api.usw2.pure.cloud",
    "ca_central_1": "https://api.cac1.pure.cloud",
    "ap_northeast_2": "https://api.apne2.pure.cloud",
    "eu_west_2": "https://api.euw2.pure.cloud",
    "ap_south_1": "https://api.aps1.pure.cloud",
    "us_east_2": "https://api.use2.us-gov-pure.cloud",
    "sa_east_1": "https://api.sae1.pure.cloud",
    "me_central_1": "https://api.mec1.pure.cloud",
    "ap_northeast_3": "https://api.apne3.pure.cloud",
    "eu_central_2": "https://api.euc2.pure.cloud",
    "mx_central_1": "https://api.mxc1.pure.cloud",
    "ap_southeast_1": "https://api.apse1.pure.cloud",
    "eusc_de_east_1": "https://api.edee1.eusc-pure.cloud",
}


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_url(url: str, *, what: str) -> str:
    """``url`` if it is ``https://host…``, or ``http://`` to a loopback host; else ValueError.

    ``what`` names the setting in the message (e.g. ``org.api_url``).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        raise ValueError(f"{what} {url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"{what} {url!r} must be an https:// URL with a host")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(
            f"{what} {url!r} uses plain http:// to a host that is not loopback; tokens and"
            " secrets would travel in clear text: use https://"
        )
    return url


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoints:
    """Where the API and the OAuth token endpoint live (base URLs, no trailing slash)."""

    api_url: str
    login_url: str

    def __post_init__(self) -> None:
        check_url(self.api_url, what="api_url")
        check_url(self.login_url, what="login_url")

    @property
    def token_url(self) -> str:
        return f"{self.login_url}/oauth/token"


def login_url_for(api_url: str) -> str:
    """The SDKs' rule: the login host is the API host with ``api.`` replaced by ``login.``."""
    url = api_url.rstrip("/")
    if "//api." in url:
        return url.replace("//api.", "//login.", 1)
    # A non-Genesys host (the simulator) serves both from one base URL.
    return url


def resolve(
    region: str | None = None, *, api_url: str | None = None, login_url: str | None = None
) -> Endpoints:
    """Endpoints from a region name, or from explicit URLs (which win over the region)."""
    if api_url is None:
        if region is None:
            raise ValueError("either a region or an explicit api_url is required")
        key = region.strip().lower().replace("-", "_")
        if key not in REGIONS:
            raise ValueError(f"unknown region {region!r}; known regions: {', '.join(REGIONS)}")
        api_url = REGIONS[key]
    api = api_url.rstrip("/")
    login = (login_url or login_url_for(api)).rstrip("/")
    return Endpoints(api_url=api, login_url=login)


def host_of(url: str) -> str:
    """The host (and port) of a URL, for error messages: never the path or the query, which for
    a presigned download link carries its signature."""
    return urlsplit(url).netloc or url.split("/", 1)[0]
