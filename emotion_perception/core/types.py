"""Types shared by every layer: a face (box and landmarks), a face's prediction, the `Classifier` protocol
that the landmark forest, the CNN and any fusion of them honour, so that pipelines, nodes, evaluation and
trials never branch on the model kind, and the `FaceCheck` protocol of the tamper check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from emotion_perception.core.faces import FaceBox


@dataclass
class Face:
    """One face found in an image: its box and its 68 landmarks (image pixels)."""

    box: FaceBox
    landmarks: np.ndarray

    @classmethod
    def from_landmarks(cls, landmarks: np.ndarray) -> Face:
        """A face known by its landmarks alone (e.g. from the landmark cache); its box bounds them."""
        points = np.asarray(landmarks)
        (left, top), (right, bottom) = np.floor(points.min(axis=0)), np.ceil(points.max(axis=0))
        return cls(FaceBox(int(left), int(top), int(right), int(bottom), 0.0, "landmarks"), points)


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


class Classifier(Protocol):
    """Scores the faces of a grey image: (n faces) -> (n, len(labels)) class probabilities."""

    @property
    def labels(self) -> list[str]:
        """The classes, in the order of the probability columns."""
        ...

    @property
    def name(self) -> str:
        """A short name for outputs (`emotion/detail`'s model field, reports)."""
        ...

    def predict_proba(self, gray: np.ndarray, faces: Sequence[Face],
                      covered: Sequence[Sequence[str]] | None = None) -> np.ndarray:
        """Probabilities of the faces (found in the uint8 grey image `gray`), one row per face. `covered`: per
        face, the regions ("upper", "lower") a `FaceCheck` already found covered; a classifier that routes on
        them checks the faces itself when it is None."""
        ...


class CheckedFace(Protocol):
    """What a `FaceCheck` says of one face; `covered` lists the regions it found covered."""

    covered: list[str]


class FaceCheck(Protocol):
    """A per-face check of the picture (the tamper check, `models.tamper.TamperCheck`)."""

    def assess(self, gray: np.ndarray, faces: Sequence[Face]) -> Sequence[CheckedFace]:
        """One result per face (found in the uint8 grey image `gray`)."""
        ...
