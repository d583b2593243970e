"""Trunk-base property values syncd does not own (the carrier's SIP credentials live there)
never reach a log line, a repr, the audit trail or the state file.

The simulator's trunk bases carry ``trunk_sip_authentication_credentials_*`` values. One
reconcile writes call rates to trunk bases (so their whole bodies are read, re-read after a
conflict and PUT back), with one of them failing unexpectedly, all with DEBUG logging on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from engine_sim import sim_and_engine
from test_applier import ACME_001, DropPropertyAfterRead, EditAfterRead

from syncd.core import model
from syncd.engine import state
from syncd.obs import logs

CREDENTIALS = "trunk_sip_authentication_credentials_"
GLOBEX_003 = "0ae54bed-3105-4fc2-bf69-3767037e61fe"


async def test_sip_credentials_never_reach_logs_reprs_or_the_state_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with sim_and_engine(tmp_path, monkeypatch) as (running, asm):
        sim, engine = running.sim, asm.engine
        secrets = {
            str(tb["properties"][CREDENTIALS + key]["value"]["instance"])
            for tb in sim.org.trunk_bases.values()
            for key in ("username", "password")
        }
        assert len(secrets) == 2 * len(sim.org.trunk_bases)
        # One trunk base is edited by a person after syncd read it (409, re-read, PUT again);
        # another loses its call-rate property (re-read, then a ValueError fails it).
        editor = EditAfterRead(engine.api, sim, [("trunkbase", GLOBEX_003)])
        tool = DropPropertyAfterRead(editor, sim, ACME_001)
        engine.reader.api = tool
        engine.applier.api = tool
        await engine.start()
        editor.armed = tool.armed = True

        outcome = await engine.run_once(dry_run=False)

        assert outcome is not None
        assert outcome.report is not None
        assert outcome.report.conflicts >= 2
        assert outcome.report.failed == 1
        rates = [w for w in outcome.plan.writes if w.kind is model.WriteKind.TRUNK_CALL_RATE]
        assert rates
        read = list(await asm.engine.api.list_trunk_bases())
        assert any(CREDENTIALS + "password" in dict(tb.properties) for tb in read)
        shown = {
            "reprs": repr(read) + repr(outcome) + repr(outcome.plan),
            "history": state.format_history(await asm.store.history(), wide=True),
            "audit rows": repr(await asm.store.history()),
            "log lines": "\n".join(logs.JsonFormatter().format(r) for r in caplog.records),
        }
        assert shown["log lines"]
        files = [asm.store.path, asm.store.path.with_name(asm.store.path.name + "-wal")]
        for f in files:
            shown[f.name] = f.read_bytes().decode("latin-1")
        for where, text in shown.items():
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"SIP credentials in the {where}"
