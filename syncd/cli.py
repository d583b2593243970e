"""The ``syncd`` command line: run, once, plan, check-config, verify, discover, history, sim, demo.

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

import syncd
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
        store = state.StateStore(path, read_only=True)  # beside the daemon: only reads
    except errors.StateError as exc:
        print(f"syncd history: {exc}", file=sys.stderr)
        return EX_FAILURE
    try:
        rows = store.history(since=ns.since, limit=ns.limit)
        names = store.names()
    finally:
        store.close()
    if ns.json:
        for row in rows:
            print(state.history_json(row, names))
    elif rows:
        print(state.format_history(rows, names=names, wide=ns.wide))
    if not rows:
        print("no writes recorded in that period", file=sys.stderr)
    return EX_OK


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option shows its default; an option without one says so instead of "None", and a
    required option or a positional argument shows none."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "(default: " in text or action.default is argparse.SUPPRESS:
            return text
        if action.required or not action.option_strings:
            return text
        if action.default is None:
            return text + " (default: not set)"
        if isinstance(action.default, bool) and not action.default:
            return text + " (default: off)"
        return text + " (default: %(default)s)"


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r}: choose one of {', '.join(LOG_LEVELS)}")
    return level


def _add_log_level(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-level",
        type=_log_level,
        default="INFO",
        metavar="LEVEL",
        help="lowest level logged (JSON lines): " + ", ".join(LOG_LEVELS),
    )


def _add_endpoints(p: argparse.ArgumentParser, *, what: str) -> None:
    p.add_argument(
        "--api-url",
        metavar="URL",
        help=f"API base URL instead of {what} (e.g. a simulator: http://127.0.0.1:8787)",
    )
    p.add_argument(
        "--login-url",
        metavar="URL",
        help="OAuth base URL (default: derived from --api-url as the SDKs do, api. -> login.)",
    )


def _endpoints(ns: argparse.Namespace) -> tuple[str | None, str | None]:
    return ns.api_url, ns.login_url


def _cmd_run(ns: argparse.Namespace) -> int:
    from syncd.engine import runner  # noqa: PLC0415

    return asyncio.run(
        runner.run_daemon(ns.config, log_level=ns.log_level, endpoints=_endpoints(ns))
    )


def _cmd_once(ns: argparse.Namespace) -> int:
    from syncd.engine import runner  # noqa: PLC0415

    if ns.json and not ns.dry_run:
        print("syncd once: --json is for --dry-run (a plan to script against)", file=sys.stderr)
        return EX_USAGE
    return asyncio.run(
        runner.run_once(
            ns.config,
            dry_run=ns.dry_run,
            as_json=ns.json,
            log_level=ns.log_level,
            endpoints=_endpoints(ns),
            wide=ns.wide,
        )
    )


def _parse_day(text: str) -> dt.date:
    """``--day``: a calendar date, read in each group's business-unit time zone."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--day {text!r}: give a date as YYYY-MM-DD") from None


def _cmd_plan(ns: argparse.Namespace) -> int:
    from syncd.engine import dayplan  # noqa: PLC0415

    return asyncio.run(dayplan.run_plan(ns.config, day=ns.day, as_json=ns.json))


def _cmd_verify(ns: argparse.Namespace) -> int:
    from syncd.engine import verify  # noqa: PLC0415

    return asyncio.run(
        verify.run_verify(ns.config, log_level=ns.log_level, endpoints=_endpoints(ns))
    )


def _cmd_discover(ns: argparse.Namespace) -> int:
    from syncd.engine import discover  # noqa: PLC0415

    return asyncio.run(
        discover.run_discover(
            discover.DiscoverArgs(
                region=ns.region,
                client_id=ns.client_id,
                secret_env=ns.secret_env,
                config=ns.config,
                api_url=ns.api_url,
                login_url=ns.login_url,
                output=ns.output,
                group_by=ns.group_by,
                log_level=ns.log_level,
            )
        )
    )


def _cmd_demo(ns: argparse.Namespace) -> int:
    from syncd import demo  # noqa: PLC0415

    return asyncio.run(
        demo.run_demo(
            duration_s=ns.duration,
            summary_path=ns.summary,
            failover_after_s=ns.failover_after,
            metrics_port=ns.metrics_port,
            plain=ns.plain,
            log_level=ns.log_level,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Keeps Genesys Cloud outbound trunk routing in step with WFM schedules and "
        "carrier health.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage error, 78 invalid configuration.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"syncd {syncd.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=text, description=text, formatter_class=_HelpFormatter)

    p = command("run", "run the daemon (systemd: Type=notify; SIGHUP reloads)")
    p.add_argument("-c", "--config", required=True, help="configuration file (TOML)")
    _add_endpoints(p, what="the configuration's [org]")
    _add_log_level(p)
    p.set_defaults(func=_cmd_run)

    p = command("once", "one reconcile: read, plan, (apply), print the plan")
    p.add_argument("-c", "--config", required=True, help="configuration file (TOML)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument(
        "--wide",
        action="store_true",
        help="every column in full, ids included (else the table fits 100 columns)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='with --dry-run: print {"writes": [...], "held": [...], "problems": [...]}',
    )
    _add_endpoints(p, what="the configuration's [org]")
    _add_log_level(p)
    p.set_defaults(func=_cmd_once)

    p = command("plan", "the day's capacity timeline per group (forecast from live reads)")
    p.add_argument("-c", "--config", required=True, help="configuration file (TOML)")
    p.add_argument(
        "--day", type=_parse_day, help="YYYY-MM-DD (not set: today in each group's time zone)"
    )
    p.add_argument("--json", action="store_true", help="print the timelines as JSON")
    p.set_defaults(func=_cmd_plan)

    p = command("check-config", "validate a configuration file (exit 78 if invalid)")
    p.add_argument("path", help="configuration file (TOML)")
    p.set_defaults(func=_cmd_check_config)

    p = command(
        "verify",
        "online checks of a configuration against the org before the first run (exit 0 all ok,"
        " 1 a problem, 78 invalid configuration)",
    )
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="configuration file (TOML)")
    _add_endpoints(p, what="the configuration's [org]")
    _add_log_level(p)
    p.set_defaults(func=_cmd_verify)

    p = command(
        "discover",
        "read the org (read-only) and write a starting configuration: ids with their names,"
        " capacities to fill in",
    )
    where = p.add_argument_group("where and who (or -c to take both from a configuration)")
    where.add_argument("--region", help="Genesys Cloud region, e.g. eu_west_1")
    where.add_argument("--client-id", help="OAuth client id (client credentials grant)")
    where.add_argument(
        "--secret-env",
        default="SYNCD_CLIENT_SECRET",
        metavar="NAME",
        help="environment variable holding the client secret",
    )
    where.add_argument("-c", "--config", help="reuse the [org] section of this configuration")
    _add_endpoints(p, what="the region's")
    p.add_argument("-o", "--output", help="write the configuration here (not set: stdout)")
    p.add_argument(
        "--group-by",
        choices=("bu", "site"),
        default="bu",
        help="one group per business unit, or one per site",
    )
    _add_log_level(p)
    p.set_defaults(func=_cmd_discover)

    p = command("history", "print recent writes from the audit trail")
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "-c", "--config", default=DEFAULT_CONFIG, help="read state_path from this configuration"
    )
    src.add_argument("--state", help="the state file itself (instead of -c)")
    p.add_argument(
        "--since", type=_parse_since, help="ISO-8601 time or a duration back from now (90m, 2h, 1d)"
    )
    p.add_argument("--limit", type=int, default=200, help="at most this many writes")
    shape = p.add_mutually_exclusive_group()
    shape.add_argument(
        "--wide", action="store_true", help="every column in full: ids, request id, error"
    )
    shape.add_argument("--json", action="store_true", help="one JSON object per write")
    p.set_defaults(func=_cmd_history)

    sub.add_parser("sim", help="the Genesys Cloud simulator (syncd sim --help)", add_help=False)

    p = command("demo", "simulator + daemon + live view + an injected failover")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--summary", default=None, help="write a JSON summary to this file at the end")
    p.add_argument(
        "--failover-after", type=float, default=20.0, help="inject the failure after S seconds"
    )
    p.add_argument("--metrics-port", type=int, default=0, help="metrics port (0: a free port)")
    p.add_argument(
        "--plain", action="store_true", help="one short status line at a time, no live view"
    )
    _add_log_level(p)
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
