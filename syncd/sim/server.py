"""Start and stop a simulator on a loopback port.

Role: generate the org, build the aiohttp application and serve it (port 0 picks a free port),
returning a `RunningSim` whose `.sim` is the in-process state object. It must not bind to
anything but the host it is given (127.0.0.1 by default) and must not import the rest of syncd.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date

from aiohttp import web

from syncd.sim.app import build_app
from syncd.sim.options import SimOptions
from syncd.sim.state import Sim, new_sim


@dataclass(slots=True)
class RunningSim:
    """A simulator serving HTTP. `base_url` is both the API and the login base URL."""

    base_url: str
    host: str
    port: int
    sim: Sim
    runner: web.AppRunner

    async def close(self) -> None:
        await self.sim.release_hold()  # parked requests would keep the shutdown waiting
        await self.runner.cleanup()


async def start_sim(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    org: str = "small",
    seed: int = 1,
    options: SimOptions | None = None,
    week_anchor: date | None = None,
) -> RunningSim:
    """Generate an org and serve it; the week anchor defaults to today (options.now())."""
    opts = options or SimOptions()
    anchor = week_anchor if week_anchor is not None else opts.now().astimezone(UTC).date()
    sim = new_sim(org, seed, opts, anchor)
    return await serve(sim, host=host, port=port)


async def serve(sim: Sim, *, host: str = "127.0.0.1", port: int = 0) -> RunningSim:
    """Serve an existing simulator state."""
    runner = web.AppRunner(build_app(sim), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    # With port 0 the OS picks the port; the runner knows which one it got.
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    url_host = f"[{host}]" if ":" in host else host
    return RunningSim(f"http://{url_host}:{bound}", host, bound, sim, runner)
