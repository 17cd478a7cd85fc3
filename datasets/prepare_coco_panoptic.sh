#!/usr/bin/env bash
# Download and unpack COCO panoptic 2017 into ROOT (default data/coco), then check it.
# Run on your own machine: about 19 GB of downloads.
set -euo pipefail
ROOT=${1:-data/coco}
mkdir -p "$ROOT" && cd "$ROOT"
for archive in train2017.zip val2017.zip; do
    [ -d "${archive%.zip}" ] || { curl -fLO "http://images.cocodataset.org/zips/$archive"; unzip -q "$archive"; }
done
if [ ! -f annotations/panoptic_val2017.json ]; then
    curl -fLO http://images.cocodataset.org/annotations/panoptic_annotations_trainval2017.zip
    unzip -q panoptic_annotations_trainval2017.zip
fi
# the PNGs come zipped inside the annotation archive
for split in train2017 val2017; do
    [ -d "annotations/panoptic_$split" ] || unzip -q "annotations/panoptic_$split.zip" -d annotations
done
for split in val2017 train2017; do
    panopticlab data check "annotations/panoptic_$split.json" --image-folder "$split"
done
