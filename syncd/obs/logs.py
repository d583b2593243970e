"""JSON-lines logging for journald, with secrets redacted from every message and field.

``setup_logging(level)`` makes the root logger write one JSON object per line to stdout
(``ts``, ``level``, ``logger``, ``msg``, then the record's extra fields such as ``object_id``,
``request_id``, ``group``), which journald stores as-is and ``journalctl -o cat | jq`` reads
back. Extra fields come from ``log.info("…", extra={"object_id": …})``.

Redaction happens in the formatter, after %-interpolation, so a secret passed as an argument is
caught as well as one pasted into the message: values registered with ``register_secret()`` are
replaced by ``***`` wherever they appear (message, extra fields, nested containers, exception
text), and the values of keys that name credentials (``Authorization``, ``access_token``,
``client_secret``, …) are replaced whole. Secrets are registered at runtime (the client secret
once read from the credential directory, each access token as it is issued; of those,
which expire, the most recent are kept).

Must not import anything of syncd; must never let a log call raise (a value orjson cannot
serialise is logged through ``str``).
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
from collections.abc import Mapping
from typing import IO, Any

import orjson

__all__ = [
    "REDACTED",
    "JsonFormatter",
    "clear_secrets",
    "redact",
    "register_secret",
    "setup_logging",
]

REDACTED = "***"

# Keys whose value is a credential whatever it looks like (compared case-insensitively, with
# "-" and "_" treated alike so "X-Access-Token" and "access_token" both match). Plain "token"
# is not one: the HTTP client logs its token-pool slot name under it.
_SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "password",
        "secret",
        "cookie",
        "set_cookie",
        "x_access_token",
    }
)
# Values this short would redact ordinary words; a real secret is never this short.
_MIN_SECRET_LEN = 4

# The attributes every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

# Short-lived secrets (access tokens) kept for redaction: the most recent this many. Every
# renewal issues one, for the life of the daemon; kept all, every log line would scan them all.
MAX_TRANSIENT_SECRETS = 64

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_lasting: set[str] = set()
_transient: dict[str, None] = {}  # oldest first


def register_secret(value: str | None, *, transient: bool = False) -> None:
    """Redact ``value`` from every log line from now on (empty or tiny values are ignored).

    ``transient``: a secret that expires (an access token): only the most recent
    ``MAX_TRANSIENT_SECRETS`` of those are kept; a lasting one (a client secret, a password)
    is kept for good."""
    global _secrets  # noqa: PLW0603 - one process-wide set, read lock-free by every log call
    if not value or len(value) < _MIN_SECRET_LEN:
        return
    with _lock:
        if transient:
            if value in _lasting:
                return
            _transient.pop(value, None)
            _transient[value] = None
            while len(_transient) > MAX_TRANSIENT_SECRETS:
                del _transient[next(iter(_transient))]
        else:
            _lasting.add(value)
            _transient.pop(value, None)
        # Longest first, so a secret containing another is replaced whole.
        _secrets = tuple(sorted((*_lasting, *_transient), key=len, reverse=True))


def clear_secrets() -> None:
    """Forget every registered secret (tests only)."""
    global _secrets  # noqa: PLW0603 - see register_secret
    with _lock:
        _lasting.clear()
        _transient.clear()
        _secrets = ()


def _is_secret_key(key: str) -> bool:
    return key.lower().replace("-", "_") in _SECRET_KEYS


def _redact_str(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact(value: Any) -> Any:
    """A copy of ``value`` with registered secrets and credential-named keys redacted."""
    if isinstance(value, str):
        return _redact_str(value)
    if isinstance(value, bytes):
        return _redact_str(value.decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {str(k): REDACTED if _is_secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Anything else (exceptions, dataclasses, enums) is logged as its text, redacted.
    return _redact_str(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, extra fields, exc (if any)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            msg = record.getMessage()
        except Exception as exc:  # noqa: BLE001 - a bad format string must not lose the line
            msg = f"{record.msg!r} (unformattable with {record.args!r}: {exc})"
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _redact_str(msg),
        }
        for key, value in vars(record).items():
            if key in _STANDARD_ATTRS or key.startswith("_") or key in out:
                continue
            out[key] = REDACTED if _is_secret_key(key) else redact(value)
        if record.exc_info:
            out["exc"] = _redact_str(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = _redact_str(record.exc_text)
        if record.stack_info:
            out["stack"] = _redact_str(self.formatStack(record.stack_info))
        return orjson.dumps(out, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def setup_logging(level: int | str = logging.INFO, stream: IO[str] | None = None) -> None:
    """Route every logger through one JSON-lines handler on ``stream`` (stdout by default).

    Replaces the root logger's handlers, so calling it again (tests, reload) does not double
    lines. Stdout rather than stderr: under systemd both go to the journal, and stdout keeps
    the daemon's lines apart from Python's own last-resort tracebacks on stderr.
    """
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # aiohttp's access log would log every request line with its query string: not wanted.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
