"""The ``syncd`` command line: run, once, plan, check-config, history, sim, demo.

Parses arguments and hands over to the engine (or the simulator); holds no logic of its own.

Exit codes: 0 success; 1 a runtime failure (the API refused us, the state file is unusable);
2 a usage error; 78 (EX_CONFIG) the configuration is invalid.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

from syncd import config as config_mod
from syncd import errors

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_CONFIG = 78
DEFAULT_CONFIG = "/etc/syncd/syncd.toml"  # where the systemd unit reads it


def _cmd_sim(argv: list[str]) -> int:
    from syncd.sim import cli as sim_cli  # noqa: PLC0415 - only this command needs the simulator

    return sim_cli.main(argv)


def _parse_since(text: str) -> float:
    """``--since``: an ISO-8601 instant, or a duration back from now (``90m``, ``2h``, ``1d``)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return dt.datetime.now(dt.UTC).timestamp() - float(text[:-1]) * units[text[-1]]
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since {text!r}: give an ISO-8601 time (2026-11-23T08:00Z) or a duration (90m, 2h)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def _cmd_check_config(ns: argparse.Namespace) -> int:
    try:
        cfg = config_mod.load(ns.path)
    except errors.ConfigError as exc:
        print(
            f"{ns.path}: invalid configuration ({len(exc.problems)} problem(s)):", file=sys.stderr
        )
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EX_CONFIG
    except OSError as exc:
        print(f"{ns.path}: cannot read the configuration: {exc.strerror}", file=sys.stderr)
        return EX_CONFIG
    groups = ", ".join(g.name for g in cfg.groups)
    print(f"{ns.path}: OK ({len(cfg.groups)} group(s): {groups})")
    try:
        config_mod.check_secrets(cfg)
    except errors.ConfigError as exc:
        # Outside systemd the credential directory is absent: a note, not a verdict. The daemon
        # itself refuses to start (exit 78) when a secret is really missing.
        for problem in exc.problems:
            print(f"note: {problem}", file=sys.stderr)
    return EX_OK


def _cmd_history(ns: argparse.Namespace) -> int:
    from syncd.engine import state  # noqa: PLC0415 - keep start-up of other commands light

    if ns.state:
        path = Path(ns.state)
    else:
        try:
            path = Path(config_mod.load(ns.config).state_path)
        except errors.ConfigError as exc:
            print(str(exc), file=sys.stderr)
            return EX_CONFIG
        except OSError as exc:
            print(f"{ns.config}: cannot read the configuration: {exc.strerror}", file=sys.stderr)
            return EX_CONFIG
    if not path.exists():
        print(f"{path}: no state file yet (the daemon has not written anything)", file=sys.stderr)
        return EX_FAILURE
    try:
        store = state.StateStore(path)
    except errors.StateError as exc:
        print(f"syncd history: {exc}", file=sys.stderr)
        return EX_FAILURE
    try:
        rows = store.history(since=ns.since, limit=ns.limit)
    finally:
        store.close()
    for line in state.format_history(rows):
        print(line)
    if not rows:
        print("no writes recorded in that period", file=sys.stderr)
    return EX_OK


def _cmd_run(ns: argparse.Namespace) -> int:
    from syncd.engine import runner  # noqa: PLC0415

    return asyncio.run(runner.run_daemon(ns.config))


def _cmd_once(ns: argparse.Namespace) -> int:
    from syncd.engine import runner  # noqa: PLC0415

    if ns.json and not ns.dry_run:
        print("syncd once: --json is for --dry-run (a plan to script against)", file=sys.stderr)
        return EX_USAGE
    return asyncio.run(runner.run_once(ns.config, dry_run=ns.dry_run, as_json=ns.json))


def _parse_day(text: str) -> dt.date:
    """``--day``: a calendar date, read in each group's business-unit time zone."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--day {text!r}: give a date as YYYY-MM-DD") from None


def _cmd_plan(ns: argparse.Namespace) -> int:
    from syncd.engine import dayplan  # noqa: PLC0415

    return asyncio.run(dayplan.run_plan(ns.config, day=ns.day, as_json=ns.json))


def _cmd_demo(ns: argparse.Namespace) -> int:
    from syncd import demo  # noqa: PLC0415

    return asyncio.run(
        demo.run_demo(
            duration_s=ns.duration,
            summary_path=ns.summary,
            failover_after_s=ns.failover_after,
            metrics_port=ns.metrics_port,
            plain=ns.plain,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keeps Genesys Cloud outbound trunk routing in step with WFM schedules and "
        "carrier health.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage error, 78 invalid configuration.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the daemon (systemd: Type=notify)")
    p.add_argument("-c", "--config", required=True, help="configuration file (TOML)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("once", help="one reconcile: read, plan, (apply), print the plan")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument(
        "--json",
        action="store_true",
        help='with --dry-run: print {"writes": [...], "held": [...], "problems": [...]}',
    )
    p.set_defaults(func=_cmd_once)

    p = sub.add_parser(
        "plan", help="the day's capacity timeline per group (forecast from live reads)"
    )
    p.add_argument("-c", "--config", required=True)
    p.add_argument(
        "--day", type=_parse_day, help="YYYY-MM-DD (default: today in each group's time zone)"
    )
    p.add_argument("--json", action="store_true", help="print the timelines as JSON")
    p.set_defaults(func=_cmd_plan)

    p = sub.add_parser("check-config", help="validate a configuration file (exit 78 if invalid)")
    p.add_argument("path")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("history", help="print recent writes from the audit trail")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        help=f"read state_path from this configuration (default {DEFAULT_CONFIG})",
    )
    src.add_argument("--state", help="the state file itself")
    p.add_argument("--since", type=_parse_since, help="ISO-8601 time or a duration (90m, 2h, 1d)")
    p.add_argument("--limit", type=int, default=200)
    p.set_defaults(func=_cmd_history)

    sub.add_parser("sim", help="the Genesys Cloud simulator (syncd sim --help)", add_help=False)

    p = sub.add_parser("demo", help="simulator + daemon + live view + an injected failover")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--summary", default=None, help="write a JSON summary here at the end")
    p.add_argument("--failover-after", type=float, default=20.0, help="inject it after S s")
    p.add_argument("--metrics-port", type=int, default=0, help="0 = a free port")
    p.add_argument("--plain", action="store_true", help="log lines instead of the live view")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "sim":
        return _cmd_sim(args[1:])
    ns = build_parser().parse_args(args)
    try:
        code: int = ns.func(ns)
    except KeyboardInterrupt:
        return 130
    return code
