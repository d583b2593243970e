"""syncd/core stays pure: no asyncio, aiohttp, async def or clock reads (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "syncd" / "core"
FORBIDDEN_MODULES = {"asyncio", "aiohttp", "time", "socket", "requests", "apscheduler"}
CLOCK_CALLS = {("time", "time"), ("time", "monotonic"), ("datetime", "now"), ("datetime", "today")}
ALLOWED_IMPORTS = {"syncd", "orjson"}


def _violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AsyncFunctionDef):
            found.append(f"async def {node.name}")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
            )
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN_MODULES:
                    found.append(f"import {name}")
                elif top == "syncd" and not (
                    name == "syncd.core" or name.startswith("syncd.core.")
                ):
                    found.append(f"import {name} (outside syncd.core)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if (owner_name, node.func.attr) in CLOCK_CALLS:
                found.append(f"{owner_name}.{node.func.attr}()")
    return found


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    assert _violations(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "from aiohttp import web",
        "async def f(): pass",
        "import time\nx = time.time()",
        "import datetime\nx = datetime.datetime.now()",
        "from syncd import config",
    ],
    ids=["asyncio", "aiohttp", "async-def", "time.time", "datetime.now", "syncd.config"],
)
def test_checker_catches_impurity(source: str) -> None:
    assert _violations(source)
