#!/bin/bash
# By hand: boot a real systemd around UNIT_FILE in fresh namespaces, show start, reload, stop
# and the journal, then kill the namespace (see systemd_harness.py; needs root + CAP_SYS_ADMIN).
# Usage: run.sh UNIT_FILE [--file SRC:DEST[:MODE]]... [--dropin FILE.conf]...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=$here/../../../.venv/bin/python
[ -x "$py" ] || py=python3
exec "$py" "$here/systemd_harness.py" "$@"
