"""OAuth client credentials: secrets that never print, cached tokens, and the token pool.

Role: hold each client secret and access token in a ``Secret`` (whose repr and str are
redacted), fetch client-credentials tokens (HTTP Basic, ``grant_type=client_credentials``),
cache them and refresh them before they expire or when the API answers 401. A ``TokenPool``
holds several credentials, each with its own token (and, in the limiter, its own budget).

It must not log, raise or repr a secret or a token (each access token is registered with
``obs.logs.register_secret`` as it arrives, so the log formatter redacts it anywhere); it
must not decide about retries of API calls (the transport does) and it must not pace requests
(the limiter does). Errors of the token endpoint are translated here, into ``syncd.errors``
types, because this module owns that one HTTP exchange; everything else goes through
``transport``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import orjson

from syncd import errors
from syncd.genesys import regions
from syncd.obs import logs

log = logging.getLogger(__name__)


class Secret:
    """A string that must not appear in logs, exceptions or reprs; ``reveal()`` to use it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would write the secret somewhere unexpected; refuse.
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """One OAuth client (client credentials grant)."""

    client_id: str
    client_secret: Secret = field(repr=False)


def refresh_lead_s(expires_in: float) -> float:
    """How long before expiry to refresh: 60 s (as the Go SDK), at most half of a short TTL."""
    return min(60.0, expires_in / 2)


class TokenSource:
    """The cached access token of one credential; refreshes early and on request.

    Concurrent callers share one in-flight fetch (a lock), so an expiry or a burst of 401s
    costs one token request, not one per waiting request.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        token_url: str,
        session: aiohttp.ClientSession,
        label: str,
        clock: Callable[[], float] = time.monotonic,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> None:
        self.credentials = credentials
        self.label = label
        self._token_url = token_url
        self._session = session
        self._clock = clock
        self._timeout = timeout or aiohttp.ClientTimeout(total=30, connect=10)
        self._token: Secret | None = None
        self._refresh_at = -1.0
        self._generation = 0  # bumps on each new token, so a stale 401 refreshes only once
        self._lock = asyncio.Lock()
        self.fetches = 0

    def __repr__(self) -> str:
        return f"TokenSource(label={self.label!r}, client_id={self.credentials.client_id!r})"

    @property
    def generation(self) -> int:
        return self._generation

    async def token(self) -> tuple[Secret, int]:
        """A valid access token and its generation, fetching one if none is fresh."""
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token, self._generation
        async with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                await self._fetch()
            if self._token is None:  # _fetch either sets a token or raises
                raise errors.AuthError(
                    "No access token could be obtained.", endpoint="/oauth/token"
                )
            return self._token, self._generation

    async def invalidate(self, generation: int) -> None:
        """The API refused the token of ``generation``: drop it unless already replaced."""
        async with self._lock:
            if generation == self._generation:
                self._token = None
                self._refresh_at = -1.0

    async def _fetch(self) -> None:
        creds = self.credentials
        basic = base64.b64encode(
            f"{creds.client_id}:{creds.client_secret.reveal()}".encode()
        ).decode("ascii")
        headers = {
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        endpoint = "/oauth/token"
        started = self._clock()
        try:
            async with self._session.post(
                self._token_url,
                data=b"grant_type=client_credentials",
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                body = await resp.read()
                status = resp.status
                request_id = resp.headers.get("ININ-Correlation-Id", "")
        except TimeoutError as exc:
            raise errors.TimeoutError_(
                f"The token request for client {creds.client_id} to"
                f" {regions.host_of(self._token_url)} timed out.",
                endpoint=endpoint,
                method="POST",
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.ConnectionFailed(
                f"The token request for client {creds.client_id} to"
                f" {regions.host_of(self._token_url)} failed: {type(exc).__name__}.",
                endpoint=endpoint,
                method="POST",
            ) from exc
        if status != 200:
            code = _oauth_error_code(body)
            message = (
                f"The login service refused client {creds.client_id} with HTTP {status}"
                f" ({code or 'no error code'})."
            )
            if status in (400, 401, 403):
                raise errors.AuthError(
                    message, status=status, endpoint=endpoint, method="POST", code=code
                )
            if status in (429, 502, 503, 504):
                raise errors.TransientError(
                    message, status=status, endpoint=endpoint, method="POST", code=code
                )
            raise errors.ServerError(
                message, status=status, endpoint=endpoint, method="POST", code=code
            )
        try:
            data = orjson.loads(body)
            access = str(data["access_token"])
            expires_in = float(data.get("expires_in", 86400))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise errors.MalformedResponse(
                f"The login service answered client {creds.client_id} with an unreadable token"
                f" response ({type(exc).__name__}).",
                status=status,
                endpoint=endpoint,
                method="POST",
                request_id=request_id,
            ) from None
        if not access:
            raise errors.MalformedResponse(
                f"The login service answered client {creds.client_id} with an empty token.",
                status=status,
                endpoint=endpoint,
                method="POST",
                request_id=request_id,
            )
        # From here on no log line can carry it, even one that formats a raw header (until
        # many newer tokens have replaced it: the redactor keeps the recent ones).
        logs.register_secret(access, transient=True)
        if not expires_in > 0:  # also refuses NaN
            # Cached for "≤ 0 seconds", every request would fetch a token of its own.
            raise errors.MalformedResponse(
                f"The login service answered client {creds.client_id} with a token that"
                f" expires in {expires_in:g} seconds; a lifetime must be positive.",
                status=status,
                endpoint=endpoint,
                method="POST",
                request_id=request_id,
            )
        self._token = Secret(access)
        self._generation += 1
        self._refresh_at = started + expires_in - refresh_lead_s(expires_in)
        self.fetches += 1
        log.info(
            "Obtained an access token for client %s (%s), valid for %.0f seconds.",
            creds.client_id,
            self.label,
            expires_in,
        )


def _oauth_error_code(body: bytes) -> str:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(data, dict):
        value = data.get("error") or data.get("code") or ""
        return str(value)[:100]
    return ""


class TokenPool:
    """Several credentials, each its own token; labels (``pool-0``…) name them in metrics."""

    def __init__(self, sources: Sequence[TokenSource]) -> None:
        if not sources:
            raise ValueError("a token pool needs at least one credential")
        self.sources = tuple(sources)

    @classmethod
    def create(
        cls,
        credentials: Sequence[Credentials],
        *,
        token_url: str,
        session: aiohttp.ClientSession,
        clock: Callable[[], float] = time.monotonic,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> TokenPool:
        return cls(
            [
                TokenSource(
                    c,
                    token_url=token_url,
                    session=session,
                    label=f"pool-{i}",
                    clock=clock,
                    timeout=timeout,
                )
                for i, c in enumerate(credentials)
            ]
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(s.label for s in self.sources)

    def __len__(self) -> int:
        return len(self.sources)
