#!/usr/bin/env bash
# Set up everything and run the whole test suite, lint, type checks and the docs build.
#
# Usage: bash scripts/test.sh [extra pytest args]
# On Debian 12 as root it first installs the system packages the real-component tests
# need (libvirtd + QEMU, Go for vcsim). Without root those tests skip with a reason.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -eq 0 && -x /usr/bin/apt-get ]]; then
    bash .ci/install-system-packages.sh
fi

VENV=${VIRTABSTRACT_VENV:-.venv}
PYTHON=${PYTHON:-python3}
if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -r requirements-dev.txt

"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check virtabstract backends
mapfile -t BACKEND_PACKAGES < <(dirname backends/*/virtabstract_*/__init__.py)
"$VENV/bin/mypy" --strict virtabstract "${BACKEND_PACKAGES[@]}"
"$VENV/bin/python" -m sphinx -W --keep-going -q -b html docs docs/_build/html
"$VENV/bin/python" -m pytest -p no:cacheprovider --durations=25 "$@"
