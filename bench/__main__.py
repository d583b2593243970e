"""``python -m bench NAME [--json] …``: run one benchmark (writes, planner, status, state, ha,
failover).

Each prints JSON.
"""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = {
    "writes": "bench.writes",  # the write path: syncd's client against the peers, per server model
    "planner": "bench.planner",  # parse + plan on the simulator's large org
    "ha": "bench.ha",  # 3 replicas, leader killed mid-burst, with and without Redis
    "status": "bench.status",  # GET /status.json and GET / on the large org
    "state": "bench.state",  # the event loop while the audit trail is written (and locked)
    "failover": "bench.failover",  # trunk failures under a write backlog, pushed vs polled
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        print(f"usage: python -m bench {{{','.join(BENCHMARKS)}}} [--json] ...", file=sys.stderr)
        return 2
    module = importlib.import_module(BENCHMARKS[argv[0]])
    code: int = module.main(argv[1:])
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
