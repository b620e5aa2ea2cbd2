#!/usr/bin/env bash
# Cross-dataset table for the README: train one default forest per training mix, test it on the other sets.
# Usage: tools/cross_dataset_table.sh [DATA_DIR] [OUT_DIR]   (defaults: ../shared/data, runs/cross)
# Cells where the same images or people are on both sides are left out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
data=${1:-../shared/data}
out=${2:-runs/cross}
mkdir -p "$out"
declare -A train=(
  [ck48]="--data $data/ck_plus_48"
  [jaffe]="--data $data/jaffe"
  [fer_train]="--data $data/fer2013@train"
  [default_mix]="--data $data/ck_plus_48 --data $data/ck_plus_48_with_neutral:neutral --data $data/jaffe"
)
declare -A test=(
  [ck48]="$data/ck_plus_48"
  [jaffe]="$data/jaffe"
  [yale]="$data/yale_faces_expr"
  [fer_test]="$data/fer2013@test"
)
for t in "${!train[@]}"; do
  [[ -f $out/$t.npz ]] || .venv/bin/emotion-perception train forest ${train[$t]} --quiet --out "$out/$t.npz"
  for s in "${!test[@]}"; do
    [[ $t == "$s" || ($t == default_mix && $s =~ ^(ck48|jaffe)$) ]] && continue
    [[ -f $out/${t}__${s}.json ]] && continue
    .venv/bin/emotion-perception evaluate --model "$out/$t.npz" --data "${test[$s]}" --quiet \
      --json "$out/${t}__${s}.json" | grep -m1 accuracy | sed "s/^/$t -> $s: /"
  done
done
.venv/bin/python - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
cells = {tuple(p.stem.split("__")): json.loads(p.read_text()) for p in out.glob("*__*.json")}
trains = sorted({t for t, _ in cells}); tests = sorted({s for _, s in cells})
print("| train \\ test | " + " | ".join(tests) + " |")
print("|---|" + "---|" * len(tests))
for t in trains:
    row = [f"{cells[(t, s)]['accuracy']:.3f}" if (t, s) in cells else "–" for s in tests]
    print(f"| {t} | " + " | ".join(row) + " |")
PY
