"""The command line's own behaviour: history output, --since parsing, exit codes."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson
import pytest

import syncd
from syncd import cli, errors
from syncd.core import model
from syncd.engine import state


def _audit(path: Path) -> None:
    store = state.StateStore(path)
    for ts, lines in ((1_000.0, 12), (2_000_000_000.0, 14)):
        row = store.begin_write(
            model.Write(
                kind=model.WriteKind.CAMPAIGN_LINES,
                object_id=f"c-{lines}",
                object_name=f"Campaign {lines}",
                field="outboundLineCount",
                before=10,
                after=lines,
                reason="more lines",
                priority=model.Priority.STAFFING,
                group="g",
            ),
            now=ts,
        )
        store.finish_write(row, outcome=state.APPLIED, now=ts, request_id=f"req-{lines}")
    store.close()


def test_history_prints_the_audit_trail_and_filters_by_since(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "state.sqlite3"
    _audit(db)
    assert cli.main(["history", "--state", str(db)]) == 0
    header, *out = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["time", "(UTC)", "outcome"]
    assert len(out) == 2
    assert out[0].split()[3:] == [
        *("campaign_lines", "Campaign", "12", "10", "→", "12", "g:", "more", "lines")
    ]
    assert "c-12" not in out[0]  # names, not ids (ids with --wide)
    assert cli.main(["history", "--state", str(db), "--wide"]) == 0
    wide = capsys.readouterr().out
    for shown in ("req-14", "c-12", "outboundLineCount"):
        assert shown in wide
    assert cli.main(["history", "--state", str(db), "--json"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["object_id"], r["after"], r["request_id"]) for r in rows] == [
        ("c-12", 12, "req-12"),
        ("c-14", 14, "req-14"),
    ]
    assert cli.main(["history", "--state", str(db), "--since", "2000-01-01T00:00Z"]) == 0
    (_, only) = capsys.readouterr().out.splitlines()
    assert "Campaign 14" in only


def test_history_without_a_state_file_or_config_fails_clearly(tmp_path: Path) -> None:
    assert cli.main(["history", "--state", str(tmp_path / "none.db")]) == 1
    assert cli.main(["history", "-c", str(tmp_path / "none.toml")]) == 78


def test_since_accepts_durations_and_instants() -> None:
    assert cli._parse_since("2026-11-23T08:00:00+00:00") == 1_795_420_800.0
    assert cli._parse_since("2026-11-23T08:00:00") == 1_795_420_800.0  # naive = UTC
    with pytest.raises(Exception, match="ISO-8601"):
        cli._parse_since("banana")


def test_version_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"syncd {syncd.__version__}"


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """The option entries of a command's --help: each option string → its whole entry."""
    with pytest.raises(SystemExit) as info:
        cli.main([*argv, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    entries: list[str] = []
    for line in text[text.index("options:") :].splitlines()[1:]:
        if line.startswith("  -"):
            entries.append(line.strip())
        elif line.startswith("   ") and entries:
            entries[-1] += " " + line.strip()  # argparse wraps long help
    out = {}
    for entry in entries:
        head = entry.split("  ", 1)[0]
        for part in head.split(", "):
            out[part.split(" ", 1)[0]] = " ".join(entry.split())
    return out


def test_once_help_shows_every_option_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    entries = _help(["once"], capsys)
    for option, default in [
        ("--dry-run", "(default: off)"),
        ("--wide", "(default: off)"),
        ("--api-url", "(default: not set)"),
        ("--login-url", "(default: derived from --api-url as the SDKs do, api. -> login.)"),
        ("--log-level", "(default: INFO)"),
    ]:
        assert entries[option].endswith(default), entries[option]
    assert "(default" not in entries["--config"]  # required: no default to show


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: p for name, p in sub.choices.items() if name != "sim"}


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_argument_has_help_and_every_option_a_default(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = _commands()[command]
    entries = _help([command], capsys)
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{command} {action.dest} has no help text"
        if action.option_strings and not action.required:
            entry = entries[action.option_strings[-1]]
            assert "(default: " in entry, entry


def test_demo_config_points_at_the_simulators_default_port() -> None:
    from syncd import config as config_mod
    from syncd.sim import cli as sim_cli

    cfg = config_mod.load(Path(cli.__file__).resolve().parents[1] / "config" / "demo.toml")
    port = sim_cli.build_parser().get_default("port")
    assert cfg.org.api_base == cfg.org.login_base == f"http://127.0.0.1:{port}"


def test_api_url_overrides_the_configured_endpoints() -> None:
    from syncd import config as config_mod

    cfg = config_mod.parse(
        '[org]\nregion = "eu_west_1"\nclient_id = "c"\nsecret_env = "S"\n'
        '[schedule]\nbusiness_units = ["b"]\n[[groups]]\nname = "g"\nmanagement_units = ["m"]\n'
        'trunks = [{ trunk_base_id = "t", capacity = 1 }]\nlines_per_agent = 1.0\nmax_lines = 1\n'
    )
    sim = config_mod.override_endpoints(cfg, "http://127.0.0.1:9", None)
    assert (sim.org.api_base, sim.org.login_base) == ("http://127.0.0.1:9", "http://127.0.0.1:9")
    real = config_mod.override_endpoints(cfg, "https://api.mypurecloud.de", None)
    assert real.org.login_base == "https://login.mypurecloud.de"
    assert config_mod.override_endpoints(cfg, None, None) is cfg
    with pytest.raises(errors.ConfigError) as info:
        config_mod.override_endpoints(cfg, "ftp://x", None)
    assert info.value.problems == (
        "--api-url: 'ftp://x' is not an http(s) URL (e.g. https://api.mypurecloud.ie)",
    )
