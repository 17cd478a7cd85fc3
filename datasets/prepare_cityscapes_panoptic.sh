#!/usr/bin/env bash
# Unpack Cityscapes (downloaded by hand: it needs an account) into ROOT, write the panoptic
# annotations with cityscapesScripts in label-id and train-id form, then check them.
set -euo pipefail
ROOT=${1:-data/cityscapes}
cd "$ROOT"
for archive in gtFine_trainvaltest.zip leftImg8bit_trainvaltest.zip; do
    [ -f "$archive" ] || { echo "download $archive from cityscapes-dataset.com into $ROOT first" >&2; exit 1; }
done
[ -d gtFine ] || unzip -q gtFine_trainvaltest.zip
[ -d leftImg8bit ] || unzip -q leftImg8bit_trainvaltest.zip
python -c "import cityscapesscripts" 2>/dev/null || pip install cityscapesscripts
export CITYSCAPES_DATASET=$PWD
python -m cityscapesscripts.preparation.createPanopticImgs --dataset-folder gtFine --output-folder gtFine
python -m cityscapesscripts.preparation.createPanopticImgs --dataset-folder gtFine --output-folder gtFine --use-train-id
for split in val train; do
    panopticlab data check --cityscapes . --split "$split"
    panopticlab data check --cityscapes . --split "$split" --train-id
done
