"""`emotion-perception predict IMAGE...`: one JSON line per face found, from the landmark forest or the CNN."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import numpy as np

from emotion_perception.core.errors import ImageError
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.images import read_gray
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.pipeline import EmotionPipeline, FaceAnalyzer
from emotion_perception.core.types import FacePrediction
from emotion_perception.models.shipped import load_classifier, model_kind


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("predict", help="print the emotion of every face in images (JSON lines)")
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--model", default="forest",
                        help="'forest' (the shipped landmark forest, default), 'cnn' (the shipped small ResNet), "
                        "or a model file: .npz forest, .pt CNN")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"), help="CNN device")
    parser.add_argument("--landmark-model", default=None, help="dlib 68-point .dat file")
    parser.add_argument("--upsample", type=int, default=1, help="detector up-sampling steps (0-3)")
    parser.add_argument("--min-face", type=int, default=40, help="smallest face side in pixels")
    parser.add_argument("--landmarks", action="store_true", help="include the landmarks in the output")
    parser.set_defaults(func=run)


def make_predictor(args: argparse.Namespace) -> Callable[[np.ndarray], list[FacePrediction]]:
    """grey image -> predictions, for the model --model names (loaded once)."""
    device = "cpu"
    if model_kind(args.model) == "cnn":
        from emotion_perception.cli.cnn_commands import resolve_device_line

        device = resolve_device_line(args.device)
    analyzer = FaceAnalyzer(FaceDetector(args.upsample, args.min_face), LandmarkPredictor(args.landmark_model))
    return EmotionPipeline(analyzer, load_classifier(args.model, device)).run


def run(args: argparse.Namespace) -> int:
    """Exit status 0 when every image gave at least one face, 1 when an image had none or could not be read
    (the other images are still printed), 2 for a bad model or option (raised)."""
    predict = make_predictor(args)
    failures = 0
    for path in args.images:
        try:
            predictions = predict(read_gray(path))
        except ImageError as error:
            print(f"emotion-perception predict: error: {error}", file=sys.stderr)
            failures += 1
            continue
        if not predictions:
            print(f"emotion-perception predict: {path}: no face found", file=sys.stderr)
            failures += 1
        for index, face in enumerate(predictions):
            print(json.dumps({"image": str(path), "face": index, **face.to_json(args.landmarks)}))
    return 1 if failures else 0
