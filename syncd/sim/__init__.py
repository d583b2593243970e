"""A faithful fake of the Genesys Cloud API subset syncd uses (WFM, BYOC trunks, campaigns).

Role: stand in for a real org in tests, the demo and the benchmarks: the same paths, JSON,
paging, versions, 429s and OAuth as the real service, plus a /_sim/ control API. It must not
import anything from the rest of syncd, so it cannot share a bug with the daemon it checks.

Public interface: `start_sim(...) -> RunningSim`, `SimOptions`, `Sim` (the in-process state),
`generate(size, seed, week_anchor)` (the org generator), and `syncd.sim.cli.main(argv)`.
"""

from syncd.sim.options import SimOptions
from syncd.sim.org import generate
from syncd.sim.server import RunningSim, start_sim
from syncd.sim.state import Sim, SimError

__all__ = ["RunningSim", "Sim", "SimError", "SimOptions", "generate", "start_sim"]
