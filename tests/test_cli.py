"""The command line's own behaviour: history output, --since parsing, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import cli
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
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "Campaign 12 (c-12) outboundLineCount: 10 -> 12" in out[0]
    assert "request=req-14" in out[1]
    assert cli.main(["history", "--state", str(db), "--since", "2000-01-01T00:00Z"]) == 0
    (only,) = capsys.readouterr().out.splitlines()
    assert "c-14" in only


def test_history_without_a_state_file_or_config_fails_clearly(tmp_path: Path) -> None:
    assert cli.main(["history", "--state", str(tmp_path / "none.db")]) == 1
    assert cli.main(["history", "-c", str(tmp_path / "none.toml")]) == 78


def test_since_accepts_durations_and_instants() -> None:
    assert cli._parse_since("2026-11-23T08:00:00+00:00") == 1_795_420_800.0
    assert cli._parse_since("2026-11-23T08:00:00") == 1_795_420_800.0  # naive = UTC
    with pytest.raises(Exception, match="ISO-8601"):
        cli._parse_since("banana")
