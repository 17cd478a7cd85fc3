#!/usr/bin/env bash
# Set everything up, then run the book: execute every chapter in the profile given by
# PANOPTICLAB_PROFILE (default: laptop) and write the executed notebooks and an HTML
# version to build/book/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PANOPTICLAB_PROFILE=${PANOPTICLAB_PROFILE:-laptop}
export MPLBACKEND=Agg
# a line per cell while a chapter runs, each chapter's time at the end, times in build/book/timings.json
exec .venv/bin/panopticlab book run --output build/book "$@"
