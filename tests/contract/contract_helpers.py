"""Helpers of the contract tests: strict validation against the vendored spec, and a
simulator running on its own event loop in a background thread (the SDK is blocking).

The spec is the vendored copy `api-subset.json` beside this file (CI has only this repo).
"""

from __future__ import annotations

import asyncio
import re
import threading
import urllib.request
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft4Validator, FormatChecker

from syncd.sim import RunningSim, start_sim

SPEC_PATH = Path(__file__).with_name("api-subset.json")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _date_time(value: object) -> bool:
    if not isinstance(value, str) or not RFC3339.match(value):
        return False
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def _date(value: object) -> bool:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    date.fromisoformat(value)
    return True


FORMATS = FormatChecker()
FORMATS.checks("date-time", raises=ValueError)(_date_time)
FORMATS.checks("date", raises=ValueError)(_date)


def strict_definitions(spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of the definitions in which an unknown property is an error, except in the
    definitions the derivation truncated (x-truncated) and in map types."""
    definitions: dict[str, Any] = orjson.loads(orjson.dumps(spec["definitions"]))
    for definition in definitions.values():
        if definition.get("x-truncated") or "additionalProperties" in definition:
            continue
        if "properties" in definition:
            definition["additionalProperties"] = False
    return definitions


class Spec:
    """Validates JSON answers against the 2xx schema of an operation, strictly."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = orjson.loads(SPEC_PATH.read_bytes())
        self.definitions = strict_definitions(self.raw)
        self.validated: set[tuple[str, str]] = set()

    def validator(self, schema: dict[str, Any]) -> Draft4Validator:
        return Draft4Validator({**schema, "definitions": self.definitions}, format_checker=FORMATS)

    def definition(self, name: str, data: Any) -> None:
        errors = sorted(
            self.validator({"$ref": f"#/definitions/{name}"}).iter_errors(data), key=str
        )
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])

    def response(self, method: str, template: str, data: Any, status: str = "200") -> None:
        schema = self.raw["paths"][template][method.lower()]["responses"][status]["schema"]
        errors = sorted(self.validator(schema).iter_errors(data), key=str)
        assert not errors, f"{method} {template}:\n" + "\n".join(
            f"{list(e.absolute_path)}: {e.message}" for e in errors[:10]
        )
        self.validated.add((method.upper(), template))

    def no_content(self, method: str, template: str, status: int, body: str) -> None:
        """A 204 answer: the spec says so, and there is no body at all."""
        assert "204" in self.raw["paths"][template][method.lower()]["responses"]
        assert status == 204
        assert body == ""
        self.validated.add((method.upper(), template))


class ThreadedSim:
    """A simulator on its own event loop in a daemon thread (the SDK is blocking)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim", daemon=True)
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_sim(org="small", seed=1, week_anchor=date(2026, 3, 10)), self.loop
        )
        self.running: RunningSim = future.result(timeout=60)
        self.base_url = self.running.base_url

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = orjson.dumps(body) if body is not None else None
        url = f"{self.base_url}/_sim/{path}"
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 - loopback http URL
            return orjson.loads(resp.read())

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.running.close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()
