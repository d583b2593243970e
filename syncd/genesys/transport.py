"""HTTP to Genesys Cloud: one session, the limiter around every call, errors translated here.

Role: send one API request (path template + path parameters, orjson bytes, explicit timeouts,
TLS verified) with a token of the pool, under the limiter, and turn every outcome into either
a ``Response`` or one ``syncd.errors`` type: 409 / 400 "does not match the current version" →
``VersionConflict``, 404 → ``NotFound``, 401/403 → ``AuthError`` (after one token refresh on a
401), 429 → pause the token and retry (``RateLimited`` / ``RetryAfterTooLong`` when that cannot
work), 502/503/504, timeouts and connection errors → retried with full-jitter backoff within
the retry budget, then ``TransientError`` subtypes, 500/501 → ``ServerError``, other 4xx →
``ClientError``. It also follows presigned ``downloadUrl``s (no bearer token, gzip).

aiohttp, asyncio timeout and OS errors are translated into ``syncd.errors`` here and nowhere
else. It must not parse domain JSON (``core.wire`` does), decide what to write, or put a secret
(client secret, access token) in a log line, an exception or a metric.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from syncd import errors
from syncd.core import model, pacing
from syncd.genesys import auth, limiter, regions

log = logging.getLogger(__name__)

LimiterObserver = limiter.LimiterObserver
NullObserver = limiter.NullObserver

CORRELATION_HEADER = "ININ-Correlation-Id"
VERSION_MISMATCH = "does not match the current version"
TRANSIENT_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class RequestEvent:
    """One HTTP attempt, for metrics: never a raw id in ``endpoint``, never a token."""

    endpoint: str  # the path template, e.g. ".../trunkbasesettings/{trunkBaseSettingsId}"
    method: str
    status: int  # 0 when no response arrived
    duration_s: float
    retry_after_s: float | None
    token: str  # the pool label, e.g. "pool-0"
    request_id: str  # ININ-Correlation-Id, "" when unknown


class RequestHook(Protocol):
    def __call__(self, event: RequestEvent) -> None: ...


def _no_hook(event: RequestEvent) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Response:
    """A successful (2xx) answer."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(repr=False)
    request_id: str
    endpoint: str
    method: str

    def json(self) -> Any:
        """The body as JSON; a 2xx that is not JSON is ``MalformedResponse``."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise errors.MalformedResponse(
                f"{self.method} {self.endpoint} answered {self.status}"
                " with a body that is not JSON.",
                status=self.status,
                endpoint=self.endpoint,
                method=self.method,
                request_id=self.request_id,
            ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConfig:
    """Timeouts, retry limits and backoff of the transport."""

    total_timeout_s: float = 60.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    max_attempts: int = 5  # per request, for 5xx / timeouts / connection errors
    max_throttled: int = 20  # 429s absorbed per request before RateLimited
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0
    default_retry_after_s: float = 3.0  # a 429 without Retry-After (the Java SDK's default)
    max_retry_after_s: float = 180.0  # above it, a 429 fails the request (as the SDKs do)
    retry_budget_tokens: float = 20.0
    retry_budget_ratio: float = 0.2
    connection_limit: int = 32
    user_agent: str = "syncd/0.1 (+aiohttp)"

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(
            total=self.total_timeout_s,
            connect=self.connect_timeout_s,
            sock_read=self.read_timeout_s,
        )


# The bounded set of ``on_retry`` reasons (metric labels): statuses, and these words.
RETRY_REASONS = ("429", "401", "502", "503", "504", "timeout", "connection", "malformed")


def retry_reason(status: int, failure: errors.ApiError) -> str:
    """A short fixed word for why a request is tried again."""
    if isinstance(failure, errors.MalformedResponse):
        return "malformed"
    if isinstance(failure, errors.TimeoutError_):
        return "timeout"
    if not status:
        return "connection"
    return str(status)


def _is_json(payload: bytes) -> bool:
    try:
        orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return True


def render_path(template: str, params: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders with URL-quoted values; every placeholder must be given."""
    path = template
    for name, value in params.items():
        placeholder = "{" + name + "}"
        if placeholder not in path:
            raise ValueError(f"path template {template!r} has no parameter {name!r}")
        path = path.replace(placeholder, quote(str(value), safe=""))
    if "{" in path:
        raise ValueError(f"path template {template!r} has unfilled parameters")
    return path


def _error_fields(body: bytes) -> tuple[str, str]:
    """(code, message) of a Genesys ErrorBody, or empty strings."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", ""
    if not isinstance(data, dict):
        return "", ""
    return str(data.get("code") or "")[:200], str(data.get("message") or "")[:500]


def classify(
    status: int, body: bytes, *, endpoint: str, method: str, request_id: str
) -> errors.ApiError:
    """The error type of a non-2xx answer (429 is the limiter's, but has a type too)."""
    code, message = _error_fields(body)
    what = f"{method} {endpoint} answered {status}"
    text = f"{what}: {message}" if message else f"{what}."
    kw: dict[str, Any] = {
        "status": status,
        "endpoint": endpoint,
        "method": method,
        "code": code,
        "request_id": request_id,
    }
    if status == 409 or (status == 400 and VERSION_MISMATCH in message.lower()):
        return errors.VersionConflict(text, **kw)
    if status == 404:
        return errors.NotFound(text, **kw)
    if status in (401, 403):
        return errors.AuthError(text, **kw)
    if status == 429:
        return errors.RateLimited(text, **kw)
    if status in TRANSIENT_STATUSES:
        return errors.TransientError(text, **kw)
    if status >= 500:
        return errors.ServerError(text, **kw)
    return errors.ClientError(text, **kw)


class Transport:
    """Sends API requests through the limiter with the tokens of a pool."""

    def __init__(
        self,
        endpoints: regions.Endpoints,
        pool: auth.TokenPool,
        limiter_: limiter.Limiter,
        session: aiohttp.ClientSession,
        *,
        config: TransportConfig | None = None,
        hook: RequestHook | None = None,
        observer: LimiterObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        owns_session: bool = False,
    ) -> None:
        if len(pool) != len(limiter_.labels):
            raise ValueError("the limiter must have one pacer per token of the pool")
        self.endpoints = endpoints
        self.pool = pool
        self.limiter = limiter_
        self.session = session
        self.config = config or TransportConfig()
        self.hook: RequestHook = hook or _no_hook
        self.observer: LimiterObserver = observer or NullObserver()
        self.retry_budget = pacing.RetryBudget(
            self.config.retry_budget_tokens, self.config.retry_budget_ratio
        )
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._owns_session = owns_session
        self._timeout = self.config.client_timeout()

    @classmethod
    def create(
        cls,
        endpoints: regions.Endpoints,
        credentials: list[auth.Credentials],
        *,
        pacing_config: pacing.PacingConfig | None = None,
        config: TransportConfig | None = None,
        hook: RequestHook | None = None,
        observer: LimiterObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        session: aiohttp.ClientSession | None = None,
    ) -> Transport:
        """The usual assembly: one session (unless given), a pool, one pacer per token.

        Must be called inside a running event loop (aiohttp sessions belong to one).
        """
        cfg = config or TransportConfig()
        owns = session is None
        if session is None:
            # TLS verification stays at aiohttp's default (on); it is never switched off.
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=cfg.connection_limit),
                headers={"User-Agent": cfg.user_agent},
            )
        pool = auth.TokenPool.create(
            credentials,
            token_url=endpoints.token_url,
            session=session,
            clock=clock,
            timeout=cfg.client_timeout(),
        )
        lim = limiter.Limiter(
            pool.labels,
            pacing_config or pacing.PacingConfig(),
            max_retry_after_s=cfg.max_retry_after_s,
            clock=clock,
            sleep=sleep,
            observer=observer,
        )
        return cls(
            endpoints,
            pool,
            lim,
            session,
            config=cfg,
            hook=hook,
            observer=observer,
            clock=clock,
            sleep=sleep,
            rand=rand,
            owns_session=owns,
        )

    async def close(self) -> None:
        if self._owns_session:
            await self.session.close()

    def _event(
        self,
        *,
        endpoint: str,
        method: str,
        status: int,
        duration_s: float,
        retry_after_s: float | None,
        token: str,
        request_id: str,
    ) -> None:
        try:
            self.hook(
                RequestEvent(endpoint, method, status, duration_s, retry_after_s, token, request_id)
            )
        except Exception:
            # Metrics must never break a request.
            log.exception("The request hook failed; the request itself is unaffected.")

    async def request(
        self,
        method: str,
        template: str,
        *,
        path: Mapping[str, str] | None = None,
        query: Mapping[str, str | int] | list[tuple[str, str | int]] | None = None,
        body: bytes | None = None,
        priority: int = model.Priority.STAFFING,
        token_index: int | None = None,
    ) -> Response:
        """Send one API request with retries; 2xx → ``Response``, anything else raises.
        ``token_index`` pins it to one token of the pool (see ``Limiter.acquire``)."""
        url = self.endpoints.api_url + render_path(template, path or {})
        query_list: list[tuple[str, str]] = [
            (k, str(v)) for k, v in (query.items() if isinstance(query, Mapping) else query or [])
        ]
        transient_attempts = 0
        throttled = 0
        refreshed_for: set[int] = set()
        while True:
            lease = await self.limiter.acquire(priority, endpoint=template, token_index=token_index)
            source = self.pool.sources[lease.index]
            try:
                token, generation = await source.token()
            except BaseException:
                self.limiter.release(lease, status=0, headers=None)
                raise
            headers = {
                "Authorization": f"Bearer {token.reveal()}",
                "Accept": "application/json",
            }
            if body is not None:
                headers["Content-Type"] = "application/json"
            started = self._clock()
            status = 0
            resp_headers: CIMultiDictProxy[str] | CIMultiDict[str] = CIMultiDict()
            payload = b""
            failure: errors.ApiError | None = None
            try:
                async with self.session.request(
                    method,
                    url,
                    params=query_list or None,
                    data=body,
                    headers=headers,
                    timeout=self._timeout,
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
                    resp_headers = resp.headers
            except TimeoutError:
                failure = errors.TimeoutError_(
                    f"{method} {template} got no answer within the timeout.",
                    endpoint=template,
                    method=method,
                )
            except (aiohttp.ClientError, OSError) as exc:
                failure = errors.ConnectionFailed(
                    f"{method} {template} failed to connect or was cut off ({type(exc).__name__}).",
                    endpoint=template,
                    method=method,
                )
            except BaseException:
                self.limiter.release(lease, status=0, headers=None)
                raise
            finished = self._clock()
            request_id = resp_headers.get(CORRELATION_HEADER, "") if status else ""
            rate = pacing.parse_ratelimit_headers(resp_headers) if status else None
            self.limiter.release(lease, status=status, headers=rate, t_recv=finished)
            retry_after = (
                pacing.parse_retry_after(resp_headers.get("Retry-After"), now_epoch=time.time())
                if status == 429
                else None
            )
            self._event(
                endpoint=template,
                method=method,
                status=status,
                duration_s=finished - started,
                retry_after_s=retry_after,
                token=lease.label,
                request_id=request_id,
            )
            if 200 <= status < 300 and method == "GET" and payload and not _is_json(payload):
                # A truncated or garbled read is worth another try (a write is not: it may
                # have landed, and the version check handles the re-read).
                failure = errors.MalformedResponse(
                    f"{method} {template} answered {status} with a body that is not JSON.",
                    status=status,
                    endpoint=template,
                    method=method,
                    request_id=request_id,
                )
            elif 200 <= status < 300:
                self.retry_budget.on_success()
                return Response(status, payload, resp_headers, request_id, template, method)

            if status == 429:
                throttled += 1
                wait = retry_after if retry_after is not None else self.config.default_retry_after_s
                jitter = pacing.retry_after_jitter(wait, rand=self._rand())
                self.limiter.throttled(
                    lease, retry_after_s=wait, jitter_s=jitter, with_headers=rate is not None
                )
                if wait > self.config.max_retry_after_s:
                    self.observer.on_retry_after_too_long(template, wait)
                    raise errors.RetryAfterTooLong(
                        f"{method} {template} was rate limited with Retry-After {wait:.0f} s,"
                        f" above the configured maximum of {self.config.max_retry_after_s:.0f} s;"
                        " the request is abandoned.",
                        retry_after_s=wait,
                        status=429,
                        endpoint=template,
                        method=method,
                        request_id=request_id,
                    )
                if throttled > self.config.max_throttled or not self.retry_budget.on_failure():
                    self.observer.on_retry_budget_exhausted()
                    raise errors.RateLimited(
                        f"{method} {template} stayed rate limited after {throttled} attempts.",
                        status=429,
                        endpoint=template,
                        method=method,
                        request_id=request_id,
                    )
                self.observer.on_retry("429")
                continue

            if status == 401 and generation not in refreshed_for:
                # Expired or revoked token: one refresh, then one more try with the new one.
                refreshed_for.add(generation)
                if len(refreshed_for) == 1:
                    log.info(
                        "The API refused the token of %s (401); fetching a new one.", lease.label
                    )
                    await source.invalidate(generation)
                    self.observer.on_retry("401")
                    continue

            if failure is None:
                failure = classify(
                    status, payload, endpoint=template, method=method, request_id=request_id
                )
            if not failure.retryable:
                raise failure
            transient_attempts += 1
            if transient_attempts >= self.config.max_attempts:
                raise failure
            if not self.retry_budget.on_failure():
                self.observer.on_retry_budget_exhausted()
                raise errors.RetryBudgetExhausted(
                    f"{method} {template} failed ({failure}) and the retry budget is spent.",
                    status=status,
                    endpoint=template,
                    method=method,
                    request_id=request_id,
                ) from failure
            delay = pacing.full_jitter(
                transient_attempts - 1,
                base_s=self.config.backoff_base_s,
                cap_s=self.config.backoff_cap_s,
                rand=self._rand(),
            )
            reason = retry_reason(status, failure)
            self.observer.on_retry(reason)
            log.info(
                "%s %s failed (%s); retry %d in %.2f seconds.",
                method,
                template,
                reason,
                transient_attempts,
                delay,
            )
            await self._sleep(delay)

    async def download(self, url: str, *, endpoint: str = "downloadUrl") -> bytes:
        """GET a presigned URL: no Authorization header (the signature is the credential),
        gzip accepted and decoded; transient failures retried with backoff."""
        attempts = 0
        while True:
            status = 0
            payload = b""
            failure: errors.ApiError | None = None
            try:
                async with self.session.get(
                    url,
                    headers={"Accept-Encoding": "gzip", "Accept": "application/json"},
                    timeout=self._timeout,
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
            except TimeoutError:
                failure = errors.TimeoutError_(
                    "The download of a bulk result timed out.", endpoint=endpoint, method="GET"
                )
            except (aiohttp.ClientError, OSError) as exc:
                failure = errors.ConnectionFailed(
                    f"The download of a bulk result failed ({type(exc).__name__}).",
                    endpoint=endpoint,
                    method="GET",
                )
            if 200 <= status < 300:
                return payload
            if failure is None:
                if status in (403, 404):
                    # An expired or unknown presigned link: the query must be repeated.
                    failure = errors.ClientError(
                        f"The download link answered {status} (expired or unknown).",
                        status=status,
                        endpoint=endpoint,
                        method="GET",
                    )
                else:
                    failure = classify(
                        status, payload, endpoint=endpoint, method="GET", request_id=""
                    )
            attempts += 1
            if not failure.retryable or attempts >= self.config.max_attempts:
                raise failure
            await self._sleep(
                pacing.full_jitter(
                    attempts - 1,
                    base_s=self.config.backoff_base_s,
                    cap_s=self.config.backoff_cap_s,
                    rand=self._rand(),
                )
            )


class Socket:
    """One WebSocket of text messages (a notification channel's ``connectUri``), with aiohttp's
    types and errors kept inside this module: ``receive`` gives the next text message or None
    once the socket is closed; sending on a broken socket is ``ConnectionFailed``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, endpoint: str) -> None:
        self._ws = ws
        self._endpoint = endpoint

    @property
    def closed(self) -> bool:
        return self._ws.closed

    async def receive(self) -> str | None:
        while True:
            try:
                message = await self._ws.receive()
            except (aiohttp.ClientError, OSError, TimeoutError):
                return None
            if message.type is aiohttp.WSMsgType.TEXT:
                return str(message.data)
            if message.type is aiohttp.WSMsgType.BINARY:
                return bytes(message.data).decode("utf-8", "replace")
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return None

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_str(text)
        except (aiohttp.ClientError, OSError, ConnectionError) as exc:
            raise errors.ConnectionFailed(
                f"Sending on the notification socket failed ({type(exc).__name__}).",
                endpoint=self._endpoint,
                method="WS",
            ) from None

    async def close(self) -> None:
        # Closing a socket that is already gone is what we wanted anyway.
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            await self._ws.close()


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def open_socket(transport: Transport, url: str, *, endpoint: str = "connectUri") -> Socket:
    """Connect a WebSocket on the transport's session (TLS verified, like every call); the URL
    must be ``wss://`` unless its host is loopback (the simulator)."""
    if not url.startswith("wss://") and not _is_loopback(url):
        raise errors.ClientError(
            "A notification channel's connectUri must use wss:// (got another scheme).",
            endpoint=endpoint,
            method="WS",
        )
    try:
        ws = await transport.session.ws_connect(
            url,
            timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
            receive_timeout=None,
            autoping=True,
        )
    except TimeoutError:
        raise errors.TimeoutError_(
            "Connecting the notification socket timed out.", endpoint=endpoint, method="WS"
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        raise errors.ConnectionFailed(
            f"Connecting the notification socket failed ({type(exc).__name__}).",
            endpoint=endpoint,
            method="WS",
        ) from None
    return Socket(ws, endpoint=endpoint)
