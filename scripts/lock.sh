#!/usr/bin/env bash
# Refresh the pinned environment: resolve pyproject.toml's dependencies with every extra of
# `dev` (and the torch/torchvision pair below) to the newest releases that satisfy them, for
# CPython 3.11 on Linux x86_64, and write them with their hashes to
# requirements/py311-linux-x86_64.txt, the file `bash scripts/setup.sh` installs exactly.
# Run the tests (bash scripts/test.sh) before committing a new one.
#
#     bash scripts/lock.sh --upgrade                      # every pin to the newest release allowed
#     bash scripts/lock.sh --upgrade-package jupytext     # one package; the others keep their pins
#     bash scripts/lock.sh                                # after editing pyproject.toml: pins move only where they must
set -euo pipefail
cd "$(dirname "$0")/.."

LOCK=requirements/py311-linux-x86_64.txt
# The tested torch/torchvision pair (a matching pair of builds; pyproject.toml allows a range).
TORCH_PAIR=("torch==2.14.1" "torchvision==0.29.1")
UV_VERSION=0.13.9  # uv writes the file; its version is pinned so a refresh changes pins only
TOOLS=build/lock-tools

PYTHON=${PYTHON:-python3}
if [ ! -x "$TOOLS/bin/uv" ] || [ "$("$TOOLS/bin/uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    "$PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
pair=$(mktemp) constraints=$(mktemp)
trap 'rm -f "$pair" "$constraints"' EXIT
printf '%s\n' "${TORCH_PAIR[@]}" > "$pair"
# uv does not apply the upper bound of a release's Requires-Python: typing 3.10.0.0 (needed
# by cityscapesscripts) declares <3.5, and pip finds no typing 3.10.0.0 for Python 3.11
printf '%s\n' "typing<3.10" > "$constraints"
# Without --upgrade, uv keeps every pin already in $LOCK that still satisfies pyproject.toml.
"$TOOLS/bin/uv" pip compile pyproject.toml "$pair" --constraint "$constraints" --extra dev \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --generate-hashes --no-header --annotation-style line --output-file "$LOCK" "$@"
# the temporary files' names would otherwise appear in the "# via" comments
sed -i -e "s|-r $pair|the torch/torchvision pair of scripts/lock.sh|" -e "s|, -c $constraints||" "$LOCK"
echo "[lock] $(grep -c '^[A-Za-z0-9]' "$LOCK") packages pinned in $LOCK"
