"""`syncd sim`: run the Genesys Cloud simulator in the foreground.

Role: parse the command line, start the simulator on 127.0.0.1 (by default), print one line
with its URL and the credentials to use, and serve until SIGINT/SIGTERM, then exit 0. It must
not import anything from the rest of syncd (the top-level CLI calls `main(argv)`).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import date

from syncd.sim.options import RATE_MODELS, SimOptions
from syncd.sim.org import SIZES
from syncd.sim.server import start_sim


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd sim",
        description="Run a simulated Genesys Cloud org (WFM, BYOC trunks, campaigns) on loopback.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind")
    parser.add_argument("--port", type=int, default=8787, help="port (0 = any free port)")
    parser.add_argument("--org", choices=sorted(SIZES), default="small", help="org size")
    parser.add_argument("--seed", type=int, default=1, help="generator seed (ids depend on it)")
    parser.add_argument(
        "--week-anchor",
        type=date.fromisoformat,
        default=None,
        help="a date (yyyy-mm-dd) in the current schedule week (not set: today)",
    )
    parser.add_argument("--client-id", default="demo-client", help="the OAuth client it accepts")
    parser.add_argument("--client-secret", default="demo-secret", help="that client's secret")
    parser.add_argument(
        "--token-ttl", type=int, default=86400, help="expires_in of tokens, seconds"
    )
    parser.add_argument(
        "--rate-model", choices=RATE_MODELS, default="fixed-window", help="how the quota is counted"
    )
    parser.add_argument("--quota", type=int, default=300, help="requests per window per token")
    parser.add_argument("--window", type=float, default=60.0, help="rate-limit window, seconds")
    parser.add_argument(
        "--inline-max-agents",
        type=int,
        default=500,
        help="above this many agents, schedule query/search answer with a downloadUrl",
    )
    parser.add_argument(
        "--ratelimit-per",
        choices=("token", "client"),
        default="token",
        help="whose budget the quota is: each token's, or each OAuth client's (shared)",
    )
    parser.add_argument(
        "--no-ratelimit-headers", action="store_true", help="do not send inin-ratelimit-* headers"
    )
    return parser


async def _run(args: argparse.Namespace) -> int:
    options = SimOptions(
        clients={args.client_id: args.client_secret},
        token_ttl_s=args.token_ttl,
        rate_model=args.rate_model,
        quota=args.quota,
        window_s=args.window,
        ratelimit_headers=not args.no_ratelimit_headers,
        ratelimit_per=args.ratelimit_per,
        inline_max_agents=args.inline_max_agents,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Signal handlers only set a flag; shutdown happens in the main task.
        loop.add_signal_handler(sig, stop.set)
    running = await start_sim(
        host=args.host,
        port=args.port,
        org=args.org,
        seed=args.seed,
        options=options,
        week_anchor=args.week_anchor,
    )
    print(
        f"syncd sim: {args.org} org (seed {args.seed}) listening on {running.base_url} "
        f"(API and login base URL); client id {args.client_id!r}, client secret "
        f"{args.client_secret!r}; control API at {running.base_url}/_sim/state",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await running.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `syncd sim` and `python -m syncd.sim`."""
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_run(args))
    except OSError as exc:
        print(f"syncd sim: cannot start: {exc}", file=sys.stderr)
        return 1
