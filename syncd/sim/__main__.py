"""`python -m syncd.sim`: the simulator's command line (see cli.py); nothing else lives here."""

import sys

from syncd.sim.cli import main

sys.exit(main())
