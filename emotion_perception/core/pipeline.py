"""Image -> faces -> landmarks -> emotion scores: the one code path shared by the CLI, experiments and nodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from emotion_perception.core.faces import FaceBox, FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.models.landmark_model import EmotionModel


@dataclass
class Face:
    """One face found in an image: its box and its 68 landmarks (image pixels)."""

    box: FaceBox
    landmarks: np.ndarray


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


@dataclass
class FacePrediction:
    """A face with its emotion: label of the highest score, its confidence, and every class score."""

    box: FaceBox
    landmarks: np.ndarray
    label: str
    confidence: float
    scores: dict[str, float]

    def to_json(self, with_landmarks: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "box": self.box.as_list(), "box_source": self.box.source, "label": self.label,
            "confidence": round(self.confidence, 4),
            "scores": {k: round(v, 4) for k, v in self.scores.items()},
        }
        if with_landmarks:
            out["landmarks"] = np.round(self.landmarks, 1).tolist()
        return out


def classify_faces(model: EmotionModel, faces: list[Face], gray: np.ndarray | None = None) -> list[FacePrediction]:
    """Emotion of each face of one grey image, scored in one forest call.

    `gray` is the image the faces were found in; models with appearance features need it.
    """
    if not faces:
        return []
    grays = [gray] * len(faces) if gray is not None else None
    proba = model.predict_proba(np.stack([face.landmarks for face in faces]), grays)
    labels = model.labels
    return [
        FacePrediction(
            face.box, face.landmarks, labels[int(p.argmax())], float(p.max()),
            {label: float(v) for label, v in zip(labels, p)},
        )
        for face, p in zip(faces, proba)
    ]


class EmotionPipeline:
    """Grey image -> a FacePrediction per face, largest first."""

    def __init__(self, analyzer: FaceAnalyzer | None = None, model: EmotionModel | None = None):
        self.analyzer = analyzer or FaceAnalyzer()
        self.model = model or EmotionModel.load()

    def run(self, gray: np.ndarray) -> list[FacePrediction]:
        return classify_faces(self.model, self.analyzer.analyze(gray), gray)


FaceClassifier = Callable[[np.ndarray, list[Face]], list[FacePrediction]]


def forest_classifier(model: EmotionModel) -> FaceClassifier:
    """(grey image, faces) -> predictions by the landmark forest, for `classify_camera_frame`."""
    return lambda gray, faces: classify_faces(model, faces, gray)


def classify_camera_frame(
    tracker: FaceTracker, classify: FaceClassifier, gray: np.ndarray, max_width: int,
) -> tuple[list[int], list[FacePrediction]]:
    """A classifier node's step for one grey camera frame: (face ids, predictions), largest face first.

    Frames wider than `max_width` are processed downscaled; boxes and landmarks come back in the frame's
    own pixels. With the tracker's `detect_every` = `detect_tiles` = 1 the result depends on this frame only
    (`bag evaluate`). `classify` scores the followed faces: the forest (`forest_classifier`) or the CNN.
    """
    height, width = gray.shape
    factor = 1.0
    if width > max_width:
        factor = max_width / width
        gray = cv2.resize(gray, (max_width, max(1, round(height * factor))), interpolation=cv2.INTER_AREA)
    tracked = tracker.update(gray)
    predictions = classify(gray, [Face(face.box, face.landmarks) for face in tracked])
    if factor != 1.0:
        predictions = [replace(p, box=p.box.scaled(1 / factor), landmarks=p.landmarks / factor) for p in predictions]
    return [face.id for face in tracked], predictions
