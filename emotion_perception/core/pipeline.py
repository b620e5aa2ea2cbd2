"""Image -> faces -> landmarks -> emotion scores: the one code path shared by the CLI, experiments and nodes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import NamedTuple

import cv2
import numpy as np

from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.core.types import CheckedFace, Classifier, Face, FaceCheck, FacePrediction


class FaceAnalyzer:
    """Detects all faces of a grey image and places 68 landmarks on each, largest face first."""

    def __init__(self, detector: FaceDetector | None = None, predictor: LandmarkPredictor | None = None):
        self.detector = detector or FaceDetector()
        self.predictor = predictor or LandmarkPredictor()

    def settings(self) -> dict[str, object]:
        """Everything that changes the landmarks this analyzer returns (used as a cache key)."""
        d = self.detector
        return {
            "upsample": d.upsample, "min_size": d.min_size, "small_side": d.small_side,
            "whole_image_fallback": d.whole_image_fallback, "predictor": self.predictor.path.name,
            "predictor_bytes": self.predictor.path.stat().st_size,
        }

    def analyze(self, gray: np.ndarray) -> list[Face]:
        """All faces with landmarks; small crops are upscaled for the predictor and mapped back."""
        image, factor = self.detector.prepare(gray)
        faces = []
        for box in self.detector.detect_prepared(image, is_crop=factor > 1):
            points = self.predictor.predict(image, box)
            if factor > 1:
                box, points = box.scaled(1.0 / factor), points / factor
            faces.append(Face(box, points))
        return faces


def classify_faces(classifier: Classifier, gray: np.ndarray, faces: Sequence[Face],
                   covered: Sequence[Sequence[str]] | None = None) -> list[FacePrediction]:
    """The emotion of each face of one grey image, all faces scored in one call (`covered`: see `Classifier`)."""
    if not faces:
        return []
    proba = classifier.predict_proba(gray, faces, covered)
    labels = classifier.labels
    return [
        FacePrediction(
            face.box, face.landmarks, labels[int(p.argmax())], float(p.max()),
            {label: float(v) for label, v in zip(labels, p)},
        )
        for face, p in zip(faces, proba)
    ]


class EmotionPipeline:
    """Grey image -> a FacePrediction per face, largest first, with any `Classifier`."""

    def __init__(self, analyzer: FaceAnalyzer, classifier: Classifier) -> None:
        self.analyzer = analyzer
        self.classifier = classifier

    def run(self, gray: np.ndarray) -> list[FacePrediction]:
        return classify_faces(self.classifier, gray, self.analyzer.analyze(gray))


class FrameStep(NamedTuple):
    """What a classifier node's step finds in one frame: per face, largest first, its id, its prediction and (with
    a check) the check's result."""

    ids: list[int]
    predictions: list[FacePrediction]
    checks: list[CheckedFace] | None


def classify_camera_frame(
    tracker: FaceTracker, classifier: Classifier, gray: np.ndarray, max_width: int, check: FaceCheck | None = None,
) -> FrameStep:
    """A classifier node's step for one grey camera frame.

    Frames wider than `max_width` are processed downscaled; boxes and landmarks come back in the frame's
    own pixels. With the tracker's `detect_every` = `detect_tiles` = 1 the result depends on this frame only
    (`bag evaluate`). `classifier` scores the followed faces: the forest, the CNN or any `Classifier`. `check`
    (the tamper check) reads each face in the frame's own pixels before it is classified, and the classifier
    takes the regions it found covered from it instead of checking the faces again.
    """
    height, width = gray.shape
    small, factor = gray, 1.0
    if width > max_width:
        factor = max_width / width
        small = cv2.resize(gray, (max_width, max(1, round(height * factor))), interpolation=cv2.INTER_AREA)
    tracked = tracker.update(small)
    faces = [Face(face.box, face.landmarks) for face in tracked]
    full = faces if factor == 1.0 else [Face(f.box.scaled(1 / factor), f.landmarks / factor) for f in faces]
    checks = None if check is None else list(check.assess(gray, full)) if faces else []
    predictions = classify_faces(classifier, small, faces, None if checks is None else [c.covered for c in checks])
    if factor != 1.0:
        predictions = [replace(p, box=f.box, landmarks=f.landmarks) for p, f in zip(predictions, full)]
    return FrameStep([face.id for face in tracked], predictions, checks)
