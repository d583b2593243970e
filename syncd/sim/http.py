"""Small HTTP helpers shared by the simulator's routes: JSON answers, normalized errors, paging.

Role: produce responses in Genesys Cloud's exact conventions (ErrorBody shape, paged listings
with first/self/next/previous/last URIs, query parameter parsing with 400s). It must not hold
state and must not import anything from the rest of syncd.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

import orjson
from aiohttp import web

from syncd.sim.state import Sim

CID_KEY: Final = web.RequestKey("sim.correlation_id", str)
TOKEN_KEY: Final = web.RequestKey("sim.token", str)
SIM_KEY: Final = web.AppKey("sim", Sim)
T = TypeVar("T")


def get_sim(request: web.Request) -> Sim:
    return request.app[SIM_KEY]


def presigned_url(request: web.Request, prefix: str, key: str, signature: str, ttl_s: float) -> str:
    """A URL in the shape of an S3 presigned URL, served by this same simulator."""
    return (
        f"{request.url.origin()}{prefix}/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Expires={int(ttl_s)}&X-Amz-SignedHeaders=host&X-Amz-Signature={signature}"
    )


class ApiError(Exception):
    """Raised by a handler; the middleware answers with the normalized ErrorBody."""

    def __init__(
        self, status: int, code: str, message: str, details: list[Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def raw_json_response(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def error_body(
    status: int, code: str, message: str, context_id: str, details: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "message": message,
        "code": code,
        "status": status,
        "contextId": context_id,
        "details": details or [],
        "errors": [],
    }


def error_response(
    status: int, code: str, message: str, context_id: str, details: list[Any] | None = None
) -> web.Response:
    return json_response(error_body(status, code, message, context_id, details), status)


def not_found(what: str, entity_id: str) -> ApiError:
    return ApiError(404, "not.found", f"Unable to find {what} with id {entity_id}")


def bad_request(message: str, code: str = "bad.request") -> ApiError:
    return ApiError(400, code, message)


def query_int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(
            f"The value '{raw}' is not valid for the query parameter '{name}'."
        ) from None


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise bad_request(f"The value '{raw}' is not valid for the query parameter '{name}'.")


def query_list(request: web.Request, name: str) -> list[str]:
    """A multi-valued parameter, sent either repeated or comma-separated."""
    out: list[str] = []
    for raw in request.query.getall(name, []):
        out.extend(p for p in raw.split(",") if p)
    return out


async def json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise bad_request("The request body is required.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad_request(
            "The request could not be understood by the server due to malformed syntax."
        ) from None


async def json_object(request: web.Request) -> dict[str, Any]:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def parse_datetime(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise bad_request(f"{name} is required and must be an ISO-8601 date-time.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} '{value}' is not an ISO-8601 date-time.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def sort_entities(
    request: web.Request, items: list[T], key: Callable[[T], Any], default_by: str = "name"
) -> list[T]:
    order = (request.query.get("sortOrder") or "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise bad_request(f"The value '{order}' is not valid for the query parameter 'sortOrder'.")
    return sorted(items, key=key, reverse=order == "DESC")


def paged(
    request: web.Request,
    items: Sequence[Any],
    render: Callable[[Any], dict[str, Any]],
    *,
    max_page_size: int = 500,
) -> dict[str, Any]:
    """A Genesys-style page: pageSize (default 25), pageNumber (default 1), total, pageCount,
    and first/self/next/previous/last URIs that keep the other query parameters."""
    size = query_int(request, "pageSize", 25)
    number = query_int(request, "pageNumber", 1)
    if size < 1 or number < 1:
        raise bad_request("pageSize and pageNumber must be positive integers.")
    if size > max_page_size:
        raise bad_request(f"The maximum pageSize is {max_page_size}.", "invalid.page.size")
    total = len(items)
    page_count = math.ceil(total / size)
    extra = [(k, v) for k, v in request.query.items() if k not in ("pageSize", "pageNumber")]

    def uri(n: int) -> str:
        return f"{request.path}?{urlencode([('pageSize', size), ('pageNumber', n), *extra])}"

    out: dict[str, Any] = {
        "entities": [render(item) for item in items[(number - 1) * size : number * size]],
        "pageSize": size,
        "pageNumber": number,
        "total": total,
        "firstUri": uri(1),
        "selfUri": uri(number),
    }
    if number < page_count:
        out["nextUri"] = uri(number + 1)
    if number > 1:
        out["previousUri"] = uri(min(number - 1, max(page_count, 1)))
    out["lastUri"] = uri(max(page_count, 1))
    out["pageCount"] = page_count
    return out


def name_matches(pattern: str | None, name: str) -> bool:
    """Genesys name filters: '*' is a wildcard; otherwise a case-insensitive exact match."""
    if not pattern:
        return True
    if "*" in pattern:
        return fnmatch.fnmatchcase(name.lower(), pattern.lower())
    return name.lower() == pattern.lower()
