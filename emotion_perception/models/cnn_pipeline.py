"""Grey image -> faces (the landmark path's detector) -> crops -> CNN scores, all faces of a frame in one batch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from emotion_perception.core.faces import FaceBox, FaceDetector
from emotion_perception.core.pipeline import Face, FacePrediction
from emotion_perception.models.cnn import CnnClassifier, MultiTaskNet
from emotion_perception.models.crops import DEFAULT_MARGIN, crop_faces, landmarks_from_crop

NO_LANDMARKS = np.zeros((0, 2))


class CnnPipeline:
    """A FacePrediction per face, largest first. Landmarks are empty, except for the multitask CNN, whose
    landmark head gives them (mapped back to image pixels)."""

    def __init__(self, detector: FaceDetector | None = None, classifier: CnnClassifier | None = None) -> None:
        self.detector = detector or FaceDetector(upsample=1)
        self.classifier = classifier or CnnClassifier.load()
        self.margin = float(self.classifier.header.get("crop", {}).get("margin", DEFAULT_MARGIN))

    def crops(self, gray: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
        """(n, s, s) uint8 crops of the boxes at the classifier's input size."""
        return crop_faces(gray, boxes, self.classifier.input_size, self.margin)

    def classify(self, gray: np.ndarray, boxes: list[FaceBox]) -> list[FacePrediction]:
        """Scores of the given face boxes of `gray`, one batch."""
        if not boxes:
            return []
        crops = self.crops(gray, boxes)
        proba = self.classifier.predict_proba(crops)
        points = self._landmarks(crops, boxes)
        labels = self.classifier.labels
        return [
            FacePrediction(
                box, pts, labels[int(p.argmax())], float(p.max()), {label: float(v) for label, v in zip(labels, p)}
            )
            for box, pts, p in zip(boxes, points, proba)
        ]

    def run(self, gray: np.ndarray) -> list[FacePrediction]:
        return self.classify(gray, self.detector.detect(gray))

    def classify_faces(self, gray: np.ndarray, faces: list[Face]) -> list[FacePrediction]:
        """Scores of faces found by the landmark path (e.g. its tracker), one batch; the faces' dlib landmarks
        are kept in the predictions (a node can swap `pipeline.classify_faces(model, faces)` for this)."""
        predictions = self.classify(gray, [face.box for face in faces])
        return [replace(p, landmarks=face.landmarks) for p, face in zip(predictions, faces)]

    def _landmarks(self, crops: np.ndarray, boxes: list[FaceBox]) -> list[np.ndarray]:
        model = self.classifier.model
        if not isinstance(model, MultiTaskNet):
            return [NO_LANDMARKS] * len(boxes)
        with torch.inference_mode():
            _, points = model.forward_both(self.classifier.to_tensor(crops).to(self.classifier.device))
        return [landmarks_from_crop(p, box, self.margin) for p, box in zip(points.cpu().numpy(), boxes)]
