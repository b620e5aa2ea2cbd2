#!/usr/bin/env python3
"""False positives of the tamper check (the nodes' check_tampering) on clean faces: per `--data` folder, how many
of its found faces the check flags.

    .venv/bin/python tools/tamper_false_positives.py [--visibility V.npz] [--data DIR[@SPLIT] ...]

Default data: every shared dataset (../shared/data), FER2013's test split (never used to train the check) first.
"""

from __future__ import annotations

import argparse
import json

from emotion_perception.data.datasets import load_datasets
from emotion_perception.data.face_data import with_landmarks
from emotion_perception.data.screening import screen
from emotion_perception.models.tamper import TamperCheck

SHARED = ("fer2013@test", "fer2013@train", "ck_plus_48", "ck_plus_48_with_neutral:neutral", "jaffe",
          "yale_faces_expr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", help="dataset folder (default: every shared dataset)")
    parser.add_argument("--visibility", help="visibility model (.npz); default: the shipped one")
    args = parser.parse_args()
    check = TamperCheck.load(args.visibility)
    rows = {}
    for spec in args.data or [f"../shared/data/{name}" for name in SHARED]:
        data = with_landmarks(load_datasets([spec]), progress=False)
        faces, flagged = int(data.extracted.found.sum()), int(screen(data, check, progress=False).flagged.sum())
        rows[spec] = {"faces": faces, "flagged": flagged, "rate": flagged / max(faces, 1)}
        print(f"{spec}: {flagged} of {faces} clean faces flagged ({100 * rows[spec]['rate']:.2f} %)", flush=True)
    faces, flagged = sum(r["faces"] for r in rows.values()), sum(r["flagged"] for r in rows.values())
    print(json.dumps({"per_dataset": rows, "faces": faces, "flagged": flagged, "rate": flagged / max(faces, 1)}))


if __name__ == "__main__":
    main()
