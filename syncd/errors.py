"""The one error tree of syncd.

Every failure that crosses a layer boundary is one of these types, so callers decide retry or give
up from the type alone. aiohttp and timeout errors are translated into these in
``syncd.genesys.transport`` and nowhere else. This module imports nothing of syncd.
"""

from __future__ import annotations


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """The configuration is invalid; ``problems`` lists every error with its key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class StateError(SyncdError):
    """The state file (audit trail, failover state) cannot be opened or written."""


class ApiError(SyncdError):
    """A Genesys Cloud API call failed.

    ``status`` is the HTTP status (0 when no response arrived), ``endpoint`` the path template,
    ``request_id`` the server's ININ-Correlation-Id when known. Messages never hold secrets.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        endpoint: str = "",
        method: str = "",
        code: str = "",
        request_id: str = "",
    ) -> None:
        self.status = status
        self.endpoint = endpoint
        self.method = method
        self.code = code
        self.request_id = request_id
        super().__init__(message)


class TransientError(ApiError):
    """Worth retrying with backoff: 502/503/504, timeouts, connection errors, malformed bodies."""

    retryable = True


class TimeoutError_(TransientError):  # noqa: N801 - trailing underscore avoids shadowing the builtin
    """No response within the configured timeout."""


class ConnectionFailed(TransientError):
    """The connection could not be made or was reset."""


class MalformedResponse(TransientError):
    """The server answered 2xx with a body that is not the JSON it should be."""


class RateLimited(ApiError):
    """429 that could not be absorbed (retry budget spent)."""


class RetryAfterTooLong(RateLimited):
    """The server asked to wait longer than the configured maximum; the request is abandoned."""

    def __init__(self, message: str, *, retry_after_s: float, **kw: object) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, **kw)  # type: ignore[arg-type]


class RetryBudgetExhausted(ApiError):
    """Retries were needed but the retry budget had nothing left."""


class AuthError(ApiError):
    """Credentials were refused, or a fresh token was refused again (401/403)."""


class VersionConflict(ApiError):
    """409, or 400 saying the version "does not match the current version": re-read and re-apply."""


class NotFound(ApiError):
    """404: the object does not exist (or is not visible to this client)."""


class ClientError(ApiError):
    """Any other 4xx: final for this request."""


class ServerError(ApiError):
    """500/501: a non-recoverable server failure for this request."""


class NotLeader(SyncdError):
    """This replica does not hold the leader lease (or too little of it is left): no write."""


class CoordinationError(SyncdError):
    """The coordination backend (Redis) cannot be reached or refused an operation."""
