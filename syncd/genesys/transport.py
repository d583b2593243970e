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
import logging
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from syncd import errors
from syncd.core import model, pacing
from syncd.genesys import auth, budget, limiter, regions

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
    # Answers larger than this are refused (a clear error naming the endpoint), so a broken
    # or hostile server cannot make the daemon buffer without bound.
    max_response_bytes: int = 32 << 20
    max_download_bytes: int = 256 << 20  # a bulk schedule export, decoded
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
        # One retry budget per class of work (health, failover, routine): a storm of routine
        # failures cannot spend the retries of a failover's reads (core.pacing.RetryBudgets).
        self.retry_budgets = pacing.RetryBudgets(
            self.config.retry_budget_tokens, self.config.retry_budget_ratio
        )
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._owns_session = owns_session
        self._timeout = self.config.client_timeout()
        # aiohttp silently re-sends a PUT or DELETE once when a reused connection drops, which
        # would send a write twice behind the retry policy's back. It has no public switch; its
        # own test client turns the same attribute off.
        if hasattr(session, "_retry_connection"):
            session._retry_connection = False

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
        shared: budget.SharedBudget | None = None,
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
            shared=shared,
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

    # --- the layers of one request, outermost first ------------------------------------
    #
    # request → _send_handling_retries (which failures, how often, the budget)
    #         → _send_handling_auth    (a token for the granted slot; 401 → refresh once)
    #         → _send_paced            (the pacing gate: a slot, the answer fed back, 429 pause)
    #         → _exchange              (one HTTP exchange; aiohttp/OS errors translated)

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
        retry_class: pacing.RetryClass | None = None,
    ) -> Response:
        """Send one API request with retries; 2xx → ``Response``, anything else raises.
        ``token_index`` pins it to one token of the pool (see ``Limiter.acquire``);
        ``retry_class`` is the retry budget it draws from (default: by ``priority``)."""
        call = _Call(
            method=method,
            template=template,
            url=self.endpoints.api_url + render_path(template, path or {}),
            query=[
                (k, str(v))
                for k, v in (query.items() if isinstance(query, Mapping) else query or [])
            ],
            body=body,
            priority=int(priority),
            token_index=token_index,
            retry_class=retry_class or pacing.retry_class_of(priority),
        )
        return await self._send_handling_retries(call)

    async def _send_handling_retries(self, call: _Call) -> Response:
        """The retry policy: 429s through the limiter, transient failures with backoff, both
        within the retry budget of the call's class; a write is never sent twice (it may have
        landed)."""
        throttled = 0
        transient = 0
        while True:
            attempt = await self._send_handling_auth(call)
            failure = attempt.failure
            if failure is None:
                self.retry_budgets.on_success(call.retry_class)
                return attempt.response(call)
            if attempt.status == 429:
                throttled += 1
                self._check_throttled(call, attempt, throttled)
                self.observer.on_retry("429")
                continue
            transient += 1
            await self._back_off(call, attempt, failure, transient)

    def _check_throttled(self, call: _Call, attempt: _Attempt, throttled: int) -> None:
        """Raise unless a throttled request may be tried again (the pause is already set)."""
        wait = attempt.retry_after_s
        if wait > self.config.max_retry_after_s:
            self.observer.on_retry_after_too_long(call.template, wait)
            raise errors.RetryAfterTooLong(
                f"{call.method} {call.template} was rate limited with Retry-After {wait:.0f} s,"
                f" above the configured maximum of {self.config.max_retry_after_s:.0f} s;"
                " the request is abandoned.",
                retry_after_s=wait,
                **attempt.error_fields(call),
            )
        if throttled > self.config.max_throttled:
            raise errors.RateLimited(
                f"{call.method} {call.template} stayed rate limited after {throttled} attempts.",
                **attempt.error_fields(call),
            )
        if not self.retry_budgets.on_failure(call.retry_class):
            # Counted only when the budget refused (running out of attempts is not that).
            self.observer.on_retry_budget_exhausted(call.retry_class)
            raise errors.RateLimited(
                f"{call.method} {call.template} was rate limited and the {call.retry_class}"
                " retry budget is spent.",
                **attempt.error_fields(call),
            )

    async def _back_off(
        self, call: _Call, attempt: _Attempt, failure: errors.ApiError, transient: int
    ) -> None:
        """Sleep before the next try of a retryable failure, or raise it."""
        if not (failure.retryable and call.retry_safe) or transient >= self.config.max_attempts:
            raise failure
        if not self.retry_budgets.on_failure(call.retry_class):
            self.observer.on_retry_budget_exhausted(call.retry_class)
            raise errors.RetryBudgetExhausted(
                f"{call.method} {call.template} failed ({failure}) and the {call.retry_class}"
                " retry budget is spent.",
                **attempt.error_fields(call),
            ) from failure
        delay = pacing.full_jitter(
            transient - 1,
            base_s=self.config.backoff_base_s,
            cap_s=self.config.backoff_cap_s,
            rand=self._rand(),
        )
        reason = retry_reason(attempt.status, failure)
        self.observer.on_retry(reason)
        log.info(
            "%s %s failed (%s); retry %d in %.2f seconds.",
            call.method,
            call.template,
            reason,
            transient,
            delay,
        )
        await self._sleep(delay)

    async def _send_handling_auth(self, call: _Call) -> _Attempt:
        """The auth flow: the granted token's bearer; on a 401, one refresh and one more try."""
        refreshed = False
        while True:
            attempt = await self._send_paced(call)
            if attempt.status != 401 or refreshed:
                return attempt
            # Expired or revoked token: one refresh, then one more try with the new one.
            refreshed = True
            source = self.pool.sources[attempt.lease.index]
            log.info(
                "The API refused the token of %s (401); fetching a new one.", attempt.lease.label
            )
            await source.invalidate(attempt.generation)
            self.observer.on_retry("401")

    async def _send_paced(self, call: _Call) -> _Attempt:
        """The pacing gate: wait for a slot, send with that token, feed the answer back (a
        429 pauses the token for Retry-After + jitter), report the attempt."""
        lease = await self.limiter.acquire(
            call.priority,
            endpoint=call.template,
            method=call.method,
            token_index=call.token_index,
        )
        try:
            token, generation = await self.pool.sources[lease.index].token()
            answer = await self._exchange(call, token)
        except BaseException:
            self.limiter.release(lease, status=0, headers=None)
            raise
        rate = pacing.parse_ratelimit_headers(answer.headers) if answer.status else None
        self.limiter.release(lease, status=answer.status, headers=rate, t_recv=answer.finished)
        retry_after = 0.0
        if answer.status == 429:
            header = answer.headers.get("Retry-After")
            given = pacing.parse_retry_after(header, now_epoch=time.time())
            retry_after = self.config.default_retry_after_s if given is None else given
            jitter = pacing.retry_after_jitter(retry_after, rand=self._rand())
            self.limiter.throttled(
                lease, retry_after_s=retry_after, jitter_s=jitter, with_headers=rate is not None
            )
        self._event(
            endpoint=call.template,
            method=call.method,
            status=answer.status,
            duration_s=answer.finished - answer.started,
            retry_after_s=retry_after if answer.status == 429 else None,
            token=lease.label,
            request_id=answer.request_id,
        )
        return _Attempt(
            answer=answer,
            lease=lease,
            generation=generation,
            retry_after_s=retry_after,
            failure=self._failure(call, answer),
        )

    def _failure(self, call: _Call, answer: _Answer) -> errors.ApiError | None:
        """The error an answer stands for, None for a usable 2xx."""
        if answer.failure is not None:
            return answer.failure
        status = answer.status
        if 200 <= status < 300:
            if call.method == "GET" and answer.payload and not _is_json(answer.payload):
                # A truncated or garbled read is worth another try (a write is not: it may
                # have landed, and the version check handles the re-read).
                return errors.MalformedResponse(
                    f"{call.method} {call.template} answered {status} with a body that is not"
                    " JSON.",
                    status=status,
                    endpoint=call.template,
                    method=call.method,
                    request_id=answer.request_id,
                )
            return None
        return classify(
            status,
            answer.payload,
            endpoint=call.template,
            method=call.method,
            request_id=answer.request_id,
        )

    async def _exchange(self, call: _Call, token: auth.Secret) -> _Answer:
        """One HTTP exchange: a status and a body of at most ``max_response_bytes``, or a
        ``TimeoutError_`` / ``ConnectionFailed`` (status 0) in ``failure``."""
        headers = {"Authorization": f"Bearer {token.reveal()}", "Accept": "application/json"}
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        started = self._clock()
        with _translated(call.method, call.template, host=regions.host_of(call.url)) as outcome:
            async with self.session.request(
                call.method,
                call.url,
                params=call.query or None,
                data=call.body,
                headers=headers,
                timeout=self._timeout,
            ) as resp:
                payload = await read_capped(
                    resp,
                    limit=self.config.max_response_bytes,
                    endpoint=call.template,
                    method=call.method,
                )
                return _Answer(
                    status=resp.status,
                    payload=payload,
                    headers=resp.headers,
                    started=started,
                    finished=self._clock(),
                )
        return _Answer(
            status=0,
            payload=b"",
            headers=CIMultiDict(),
            started=started,
            finished=self._clock(),
            failure=outcome.failure,
        )

    async def download(self, url: str, *, endpoint: str = "downloadUrl") -> bytes:
        """GET a presigned URL: no Authorization header (the signature is the credential),
        HTTPS only (loopback exempt), gzip decoded as it streams, at most
        ``max_download_bytes`` decoded; transient failures retried with backoff."""
        check_download_url(url, endpoint=endpoint)
        attempts = 0
        while True:
            status = 0
            payload = b""
            with _translated(
                "GET", endpoint, host=regions.host_of(url), what="The download of a bulk result"
            ) as outcome:
                async with self.session.get(
                    url,
                    headers={"Accept-Encoding": "gzip", "Accept": "application/json"},
                    timeout=self._timeout,
                ) as resp:
                    status = resp.status
                    if 200 <= status < 300:
                        return await read_capped(
                            resp,
                            limit=self.config.max_download_bytes,
                            endpoint=endpoint,
                            method="GET",
                            what=f"The download of the result of {endpoint}",
                            gunzip=True,
                        )
                    payload = await read_capped(
                        resp,
                        limit=self.config.max_response_bytes,
                        endpoint=endpoint,
                        method="GET",
                        what=f"The download of the result of {endpoint}",
                    )
            failure = outcome.failure or _download_failure(status, payload, endpoint)
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


# --- the values passed between the layers ----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Call:
    """One API request as the caller asked for it."""

    method: str
    template: str
    url: str = field(repr=False)
    query: list[tuple[str, str]]
    body: bytes | None = field(repr=False)
    priority: int
    token_index: int | None = None  # pinned to one token of the pool
    retry_class: pacing.RetryClass = pacing.RetryClass.ROUTINE

    @property
    def retry_safe(self) -> bool:
        # Only a read is tried again after a failure: a write that timed out, was cut off or
        # answered 5xx may have landed; the engine re-reads the object and decides. (A 429 or
        # a 401 refused the write before it ran: those are retried for every method.)
        return self.method in ("GET", "HEAD")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answer:
    """What one HTTP exchange produced (status 0 and a ``failure`` when no answer came)."""

    status: int
    payload: bytes = field(repr=False)
    headers: CIMultiDictProxy[str] | CIMultiDict[str] = field(repr=False)
    started: float
    finished: float
    failure: errors.ApiError | None = None

    @property
    def request_id(self) -> str:
        return self.headers.get(CORRELATION_HEADER, "") if self.status else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Attempt:
    """One paced, authenticated try: its answer, the slot it used, and what it means."""

    answer: _Answer
    lease: limiter.Lease
    generation: int
    retry_after_s: float  # the pause a 429 set (0 otherwise)
    failure: errors.ApiError | None

    @property
    def status(self) -> int:
        return self.answer.status

    def response(self, call: _Call) -> Response:
        a = self.answer
        return Response(a.status, a.payload, a.headers, a.request_id, call.template, call.method)

    def error_fields(self, call: _Call) -> dict[str, Any]:
        return {
            "status": self.status,
            "endpoint": call.template,
            "method": call.method,
            "request_id": self.answer.request_id,
        }


# --- helpers of the exchange -------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    """Where ``_translated`` leaves the error an exchange ended with."""

    failure: errors.ApiError | None = None


@contextlib.contextmanager
def _translated(method: str, endpoint: str, *, host: str, what: str = "") -> Iterator[_Outcome]:
    """Translate aiohttp, asyncio-timeout and OS errors of one exchange (httpcore's
    ``map_exceptions``): the block's failure lands in the yielded ``_Outcome``. A connection
    failure names the host it tried (never the path or query: a presigned link's signature)."""
    outcome = _Outcome()
    subject = what or f"{method} {endpoint}"
    try:
        yield outcome
    except TimeoutError:
        outcome.failure = errors.TimeoutError_(
            f"{subject} got no answer within the timeout.", endpoint=endpoint, method=method
        )
    except (aiohttp.ClientError, OSError) as exc:
        outcome.failure = errors.ConnectionFailed(
            f"{subject} failed to connect to {host} or was cut off ({type(exc).__name__}).",
            endpoint=endpoint,
            method=method,
        )


GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16


async def read_capped(
    resp: aiohttp.ClientResponse,
    *,
    limit: int,
    endpoint: str,
    method: str,
    what: str = "",
    gunzip: bool = False,
) -> bytes:
    """The body of ``resp``, read as it streams, refused beyond ``limit`` bytes (decoded).

    aiohttp decodes a ``Content-Encoding: gzip`` body on the way; with ``gunzip`` a body that
    is gzip itself (magic bytes, no Content-Encoding, as object stores serve ``.gz``) is
    decoded here, chunk by chunk, so a small compressed answer cannot inflate past the cap.
    """
    subject = what or f"{method} {endpoint}"

    def too_large() -> errors.ServerError:
        return errors.ServerError(
            f"{subject} answered more than {limit} bytes; the answer is refused"
            " (the transport's size cap).",
            status=resp.status,
            endpoint=endpoint,
            method=method,
        )

    def malformed(what: str) -> errors.MalformedResponse:
        return errors.MalformedResponse(
            f"{subject} {what}.", status=resp.status, endpoint=endpoint, method=method
        )

    if resp.content_length is not None and resp.content_length > limit:
        raise too_large()
    body = _CappedBody(limit, gunzip=gunzip)
    async for chunk in resp.content.iter_chunked(_CHUNK):
        try:
            fits = body.feed(chunk)
        except zlib.error:
            # zlib's error is translated here like any other failure of the exchange.
            raise malformed("is not a valid gzip stream") from None
        if not fits:
            raise too_large()
    if not body.complete:
        raise malformed("ended inside its gzip stream")
    return body.value()


class _CappedBody:
    """A body gathered chunk by chunk up to ``limit`` bytes, gunzipped on the way if asked
    and the first bytes are gzip's magic."""

    def __init__(self, limit: int, *, gunzip: bool) -> None:
        self.limit = limit
        self._sniffing = gunzip  # still waiting for enough bytes to see the magic
        self._pending = b""
        self._decoder: Any = None  # zlib's decompress object (it has no public type)
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> bool:
        """Take one chunk; False once the decoded body is over the limit."""
        if self._sniffing:
            self._pending += data
            if len(self._pending) < len(GZIP_MAGIC):
                return True
            data, self._pending, self._sniffing = self._pending, b"", False
            if data.startswith(GZIP_MAGIC):
                self._decoder = zlib.decompressobj(wbits=31)
        if self._decoder is not None:
            # At most one byte past the cap is inflated: a bomb stops here, not in memory.
            data = self._decoder.decompress(data, self.limit - self._size + 1)
        self._size += len(data)
        self._parts.append(data)
        return self._size <= self.limit

    @property
    def complete(self) -> bool:
        return self._decoder is None or bool(self._decoder.eof)

    def value(self) -> bytes:
        return b"".join([*self._parts, self._pending])


def check_download_url(url: str, *, endpoint: str) -> None:
    """A presigned link is a credential: only over HTTPS (a loopback simulator excepted)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        parts, host = None, ""
    if (
        parts is not None
        and host
        and (parts.scheme == "https" or (parts.scheme == "http" and regions.is_loopback(host)))
    ):
        return
    raise errors.ServerError(
        f"The downloadUrl answered by {endpoint} is not an https:// URL (host {host or '?'!r});"
        " a bulk result is never fetched in clear text, nor from a link without a host.",
        endpoint=endpoint,
        method="GET",
    )


def _download_failure(status: int, payload: bytes, endpoint: str) -> errors.ApiError:
    if status in (403, 404):
        # An expired or unknown presigned link: the query must be repeated.
        return errors.ClientError(
            f"The download link answered {status} (expired or unknown).",
            status=status,
            endpoint=endpoint,
            method="GET",
        )
    return classify(status, payload, endpoint=endpoint, method="GET", request_id="")


# --- the notification channel's socket ---------------------------------------------


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


async def open_socket(transport: Transport, url: str, *, endpoint: str = "connectUri") -> Socket:
    """Connect a WebSocket on the transport's session (TLS verified, like every call); the URL
    must be ``wss://`` unless its host is loopback (the simulator)."""
    if not url.startswith("wss://") and not regions.is_loopback(urlsplit(url).hostname or ""):
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
