#!/usr/bin/env bash
# Create .venv beside this repository and install panopticlab with everything the book and
# the tests need. Safe to run again: it only installs what is missing or pinned otherwise.
#
# On CPython 3.11 / Linux x86_64 it installs the pinned, hash-checked versions of
# requirements/py311-linux-x86_64.txt (refreshed by `bash scripts/lock.sh`), the set the
# tests ran with. Elsewhere, or with PANOPTICLAB_UNPINNED=1, it installs the newest releases
# that pyproject.toml allows, with TORCH_PACKAGES as the torch/torchvision pair.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
LOCK=requirements/py311-linux-x86_64.txt
PIP_VERSION=26.3  # the pip the pins were tested with
# torch and torchvision must be a matching pair of builds: by default the pair of the lock;
# on aarch64, e.g., TORCH_PACKAGES="torch==2.9.1 torchvision==0.24.1" bash scripts/setup.sh
TORCH_PACKAGES=${TORCH_PACKAGES:-$(grep -oE '^torch(vision)?==[^ ]+' "$LOCK" | tr '\n' ' ')}

if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" "pip==$PIP_VERSION"

platform=$(.venv/bin/python -c 'import platform, sys; print(f"{sys.implementation.name}{sys.version_info[0]}.{sys.version_info[1]}-{platform.system()}-{platform.machine()}")')
if [ "$platform" = "cpython3.11-Linux-x86_64" ] && [ "${PANOPTICLAB_UNPINNED:-0}" != 1 ]; then
    echo "[setup] installing the pinned versions of $LOCK into .venv"
    "${pip[@]}" --require-hashes --no-deps -r "$LOCK"
    "${pip[@]}" --no-deps -e .
else
    [ "${PANOPTICLAB_UNPINNED:-0}" = 1 ] || echo "[setup] $LOCK is for cpython3.11-Linux-x86_64, not $platform: installing the newest releases pyproject.toml allows"
    echo "[setup] installing $TORCH_PACKAGES and panopticlab[dev] (unpinned) into .venv"
    # shellcheck disable=SC2086
    "${pip[@]}" $TORCH_PACKAGES
    "${pip[@]}" -e ".[dev]"
fi
.venv/bin/python -m pip check --disable-pip-version-check >/dev/null || { .venv/bin/python -m pip check; exit 1; }
.venv/bin/python -c "import panopticlab, torch, torchvision; print('[setup] panopticlab', panopticlab.__version__, '| torch', torch.__version__, '| torchvision', torchvision.__version__)"
