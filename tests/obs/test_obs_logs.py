"""JSON-lines logging: one object per line with the extra fields, and secrets never written."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest

from syncd.obs import logs

SECRET = "s3cr3t-client-secret-value"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.access"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logs.setup_logging("debug", stream=buf)
    yield buf
    logs.clear_secrets()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _fail(message: str) -> None:
    raise RuntimeError(message)


def _lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buf.getvalue().splitlines()]


def test_one_json_object_per_line_with_extra_fields(stream: io.StringIO) -> None:
    log = logging.getLogger("syncd.test")
    log.info(
        "Wrote %d lines to %s.",
        14,
        "Campaign 1",
        extra={"object_id": "c1", "request_id": "r-1", "group": "east"},
    )
    log.debug("multi\nline")
    (first, second) = _lines(stream)
    assert first["msg"] == "Wrote 14 lines to Campaign 1."
    assert first["level"] == "info"
    assert first["logger"] == "syncd.test"
    assert str(first["ts"]).endswith("+00:00")
    assert (first["object_id"], first["request_id"], first["group"]) == ("c1", "r-1", "east")
    assert second["msg"] == "multi\nline"


def test_registered_secrets_are_redacted_everywhere(stream: io.StringIO) -> None:
    logs.register_secret(SECRET)
    logs.register_secret(TOKEN)
    log = logging.getLogger("syncd.test")
    log.warning(
        "Login with %s failed for token %s",
        SECRET,
        TOKEN,
        extra={"body": {"nested": [f"Bearer {TOKEN}"]}, "detail": f"secret={SECRET}"},
    )
    try:
        _fail(f"boom {SECRET}")
    except RuntimeError:
        log.exception("Failed with %r", {"x": SECRET})
    text = stream.getvalue()
    assert SECRET not in text
    assert TOKEN not in text
    first, second = _lines(stream)
    assert first["msg"] == "Login with *** failed for token ***"
    assert first["body"] == {"nested": ["Bearer ***"]}
    assert first["detail"] == "secret=***"
    assert "boom ***" in str(second["exc"])


def test_credential_named_keys_are_redacted_whole(stream: io.StringIO) -> None:
    log = logging.getLogger("syncd.test")
    log.info(
        "Token response.",
        extra={
            "access_token": "never-registered-token",
            "headers": {"Authorization": "Bearer abc123", "X-Request-Id": "r-2"},
            "form": {"client_secret": "xyz987", "grant_type": "client_credentials"},
            "token": "0",  # a token-pool slot name, not a credential
        },
    )
    (line,) = _lines(stream)
    assert line["access_token"] == logs.REDACTED
    assert line["headers"] == {"Authorization": logs.REDACTED, "X-Request-Id": "r-2"}
    assert line["form"] == {"client_secret": logs.REDACTED, "grant_type": "client_credentials"}
    assert line["token"] == "0"
    assert "abc123" not in stream.getvalue()


def test_unserialisable_values_and_bad_format_strings_do_not_lose_the_line(
    stream: io.StringIO,
) -> None:
    log = logging.getLogger("syncd.test")
    log.info("Object %s.", object(), extra={"when": {1, 2}, "obj": object()})
    (first,) = _lines(stream)
    assert str(first["msg"]).startswith("Object <object object")
    assert sorted(first["when"]) == [1, 2]  # type: ignore[call-overload]
    # Formatted directly: pytest's own capture handler would raise on this record first.
    record = logging.LogRecord("syncd.test", logging.INFO, __file__, 1, "Broken %d", ("x",), None)
    assert "unformattable" in str(orjson.loads(logs.JsonFormatter().format(record))["msg"])


def test_tiny_secrets_are_ignored_so_words_survive(stream: io.StringIO) -> None:
    logs.register_secret("")
    logs.register_secret("a")
    logging.getLogger("syncd.test").info("a cat")
    assert _lines(stream)[0]["msg"] == "a cat"


def test_setup_twice_does_not_double_lines(stream: io.StringIO) -> None:
    logs.setup_logging(logging.INFO, stream=stream)
    logging.getLogger("syncd.test").info("once")
    logging.getLogger("syncd.test").debug("filtered by the new level")
    assert [line["msg"] for line in _lines(stream)] == ["once"]
