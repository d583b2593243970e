"""``python -m syncd`` is the ``syncd`` command."""

import sys

from syncd import cli

sys.exit(cli.main())
