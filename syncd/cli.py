"""The ``syncd`` command line: run, once, check-config, history, sim, demo.

Parses arguments and hands over to the engine (or the simulator); holds no logic of its own.
Exit codes: 0 ok, 1 runtime failure, 2 usage error, 78 (EX_CONFIG) invalid configuration.
"""

from __future__ import annotations

import argparse
import sys

EX_CONFIG = 78


def _cmd_sim(argv: list[str]) -> int:
    from syncd.sim import cli as sim_cli  # noqa: PLC0415 - only this command needs the simulator

    return sim_cli.main(argv)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "sim":
        return _cmd_sim(args[1:])
    parser = argparse.ArgumentParser(prog="syncd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("sim", help="run the Genesys Cloud simulator (see docs/simulator.md)")
    ns = parser.parse_args(args)
    parser.error(f"unknown command {ns.command!r}")
    return 2
