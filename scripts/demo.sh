#!/usr/bin/env bash
# Set up a virtualenv and run the demo of the main job on the embedded mock hypervisor.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VIRTABSTRACT_VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q -e '.[cli]'
exec "$VENV/bin/python" examples/demo.py "$@"
