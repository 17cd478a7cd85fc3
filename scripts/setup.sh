#!/usr/bin/env bash
# Create .venv beside this repository and install panopticlab with everything the book
# and the tests need. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# torch and torchvision must be a matching pair of builds; override for another platform,
# e.g. TORCH_PACKAGES="torch==2.9.1 torchvision==0.24.1" on aarch64.
TORCH_PACKAGES=${TORCH_PACKAGES:-"torch==2.14.1 torchvision==0.29.1"}

if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
echo "[setup] installing torch, torchvision and panopticlab[dev] into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet --disable-pip-version-check $TORCH_PACKAGES
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
.venv/bin/python -c "import panopticlab, torch, torchvision; print('[setup] panopticlab', panopticlab.__version__, '| torch', torch.__version__, '| torchvision', torchvision.__version__)"
