"""Debug drawing: face boxes, ids, landmarks and emotion labels on a BGR image."""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

from emotion_perception.core.pipeline import FacePrediction

# BGR per box source: detector green, correlation tracker orange, carried by landmarks yellow, whole image teal.
_COLOURS = {"detector": (0, 200, 0), "tracker": (0, 200, 255), "landmarks": (0, 230, 230),
            "whole_image": (200, 200, 0)}


def draw_faces(bgr: np.ndarray, faces: Iterable[tuple[int | None, FacePrediction]]) -> np.ndarray:
    """Draw on `bgr` in place (and return it), boxes coloured by how they were found (see _COLOURS)."""
    for face_id, face in faces:
        box = face.box
        colour = _COLOURS.get(box.source, (255, 255, 255))
        cv2.rectangle(bgr, (box.left, box.top), (box.right, box.bottom), colour, 2)
        for x, y in np.round(face.landmarks).astype(int):
            cv2.circle(bgr, (int(x), int(y)), 1, (255, 255, 0), -1)
        text = f"{'' if face_id is None else f'#{face_id} '}{face.label} {face.confidence:.2f}"
        cv2.putText(bgr, text, (box.left, max(box.top - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1,
                    cv2.LINE_AA)
    return bgr
