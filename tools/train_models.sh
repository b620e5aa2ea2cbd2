#!/usr/bin/env bash
# The recipes of the shipped models and of their leave-one-dataset-out figures, as run to make them.
# Usage: tools/train_models.sh cnn|cnn-lodo|forest|forest-lodo|visibility [DATA_DIR] [OUT_DIR]
#        (defaults ../shared/data, runs)
# The CNN trainings save their state after every epoch (OUT/<name>/checkpoints) and resume when run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
what=${1:?cnn, cnn-lodo, forest, forest-lodo or visibility}
data=${2:-../shared/data}
out=${3:-runs}
mkdir -p "$out"
ep=.venv/bin/emotion-perception
# Every shared dataset; FER2013 trains with its train split only (its test split is the yardstick).
mix=(--data "$data/fer2013@train" --data "$data/ck_plus_48" --data "$data/ck_plus_48_with_neutral:neutral"
     --data "$data/jaffe" --data "$data/yale_faces_expr")
# The leave-one-dataset-out mix: FER2013 whole (its test split is its held-out part).
lodo=(--data "$data/ck_plus_48" --data "$data/ck_plus_48_with_neutral:neutral" --data "$data/jaffe"
      --data "$data/fer2013" --data "$data/yale_faces_expr")
case $what in
  cnn)
    $ep train cnn "${mix[@]}" --arch small_resnet --epochs 12 --name default-cnn-small-resnet-mix --checkpoints "$out/cnn_shipped/checkpoints" \
      --out "$out/cnn_shipped/default_cnn.pt" ;;
  cnn-lodo)
    $ep evaluate --model-kind cnn "${lodo[@]}" --protocol leave-dataset-out --json "$out/cnn_lodo.json" ;;
  forest)
    $ep train forest "${mix[@]}" --name default-forest --out "$out/forest_shipped/default_forest.npz" ;;
  visibility)
    $ep train visibility --data "$data/fer2013@train" --data "$data/ck_plus_48" \
      --data "$data/ck_plus_48_with_neutral:neutral" --data "$data/jaffe" --data "$data/yale_faces_expr" \
      --out "$out/visibility/default_visibility.npz" ;;
  forest-lodo)
    $ep evaluate "${lodo[@]}" --protocol leave-dataset-out --json "$out/forest_lodo.json" ;;
  *) echo "unknown: $what" >&2; exit 2 ;;
esac
