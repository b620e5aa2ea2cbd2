"""`emotion-perception predict IMAGE...`: one JSON line per face found."""

from __future__ import annotations

import argparse
import json
import sys

from emotion_perception.classifier import EmotionModel
from emotion_perception.faces import FaceDetector
from emotion_perception.images import ImageError, read_gray
from emotion_perception.landmarks import LandmarkPredictor
from emotion_perception.pipeline import EmotionPipeline, FaceAnalyzer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="print the emotion of every face in images (JSON lines)")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--model", default=None, help="forest model file (.npz); default: the shipped model")
    parser.add_argument("--landmark-model", default=None, help="dlib 68-point .dat file")
    parser.add_argument("--upsample", type=int, default=1, help="detector up-sampling steps (0-3)")
    parser.add_argument("--min-face", type=int, default=40, help="smallest face side in pixels")
    parser.add_argument("--landmarks", action="store_true", help="include the 68 landmarks in the output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    pipeline = EmotionPipeline(
        FaceAnalyzer(FaceDetector(args.upsample, args.min_face), LandmarkPredictor(args.landmark_model)),
        EmotionModel.load(args.model),
    )
    failures = 0
    for path in args.images:
        try:
            predictions = pipeline.run(read_gray(path))
        except ImageError as error:
            print(f"emotion-perception predict: error: {error}", file=sys.stderr)
            failures += 1
            continue
        if not predictions:
            print(f"emotion-perception predict: {path}: no face found", file=sys.stderr)
        for index, face in enumerate(predictions):
            print(json.dumps({"image": str(path), "face": index, **face.to_json(args.landmarks)}))
    return 1 if failures else 0
