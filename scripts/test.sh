#!/usr/bin/env bash
# Set everything up, then run the whole test suite: unit tests, cross-checks against
# independent implementations, and every chapter executed top to bottom in the `ci` profile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PANOPTICLAB_PROFILE=ci
export MPLBACKEND=Agg
exec .venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
