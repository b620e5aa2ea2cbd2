"""`emotion-perception extract`: landmarks (or feature vectors) of images or dataset folders, to CSV or JSON lines."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from emotion_perception import features
from emotion_perception.cli.common import add_analyzer_args, add_data_args, make_analyzer, make_cache, output_file
from emotion_perception.core.atomic import atomic_path
from emotion_perception.core.errors import CommandError, ImageError
from emotion_perception.core.images import read_gray
from emotion_perception.data.datasets import load_datasets
from emotion_perception.data.face_data import with_landmarks


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("extract", help="68 landmarks (or features) per image: CSV for folders")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="images: one JSON line per face")
    add_data_args(parser, required=False)
    parser.add_argument("--out", default=None, type=output_file,
                        help="CSV file for --data (path, label, subject, found, values)")
    parser.add_argument("--feature-set", default=None, choices=sorted(features.FEATURE_SETS),
                        help="write this feature vector instead of raw landmarks")
    add_analyzer_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if bool(args.images) == bool(args.data):
        raise CommandError("give either IMAGE arguments or --data folders")
    if args.images:
        return extract_images(args)
    if not args.out:
        raise CommandError("--data needs --out FILE.csv")
    data = with_landmarks(load_datasets(args.data), make_analyzer(args), make_cache(args), not args.quiet)
    found = data.extracted.found
    values = data.extracted.landmarks.reshape(len(found), -1).astype(np.float64)
    names = [f"{axis}{i}" for i in range(68) for axis in "xy"]
    if args.feature_set:
        names = features.feature_names(args.feature_set)
        values = data.feature_rows(args.feature_set, mirror=False).x
    dataset = data.dataset
    out = Path(args.out)
    with atomic_path(out) as partial, partial.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "subject", "found", "whole_image", *names])
        for i, path in enumerate(dataset.paths):
            subject = "" if dataset.subjects is None or dataset.subjects[i] is None else dataset.subjects[i]
            row = [f"{v:.6g}" for v in values[i]] if found[i] else [""] * len(names)
            writer.writerow([str(path), dataset.labels[i], subject, int(found[i]),
                             int(data.extracted.whole_image[i]), *row])
    print(f"wrote {out}: {len(found)} images, faces found in {int(found.sum())}")
    for error in data.extracted.errors:
        print(f"emotion-perception extract: skipped: {error}", file=sys.stderr)
    return 1 if data.extracted.errors else 0


def extract_images(args: argparse.Namespace) -> int:
    analyzer = make_analyzer(args)
    failures = 0
    for path in args.images:
        try:
            gray = read_gray(path)
            faces = analyzer.analyze(gray)
        except ImageError as error:
            print(f"emotion-perception extract: error: {error}", file=sys.stderr)
            failures += 1
            continue
        for index, face in enumerate(faces):
            payload = {"image": str(path), "face": index, "box": face.box.as_list(), "box_source": face.box.source,
                       "landmarks": np.round(face.landmarks, 2).tolist()}
            if args.feature_set:
                row = features.compute(args.feature_set, face.landmarks, [gray])[0]
                payload["features"] = np.round(row, 5).tolist()
            print(json.dumps(payload))
    return 1 if failures else 0
