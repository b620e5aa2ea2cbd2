"""Square grey face crops for the CNNs.

Two kinds (`CropSpec`, named in a CNN's header): "box", a square around the landmark path's face detector box grown
by a margin; and "aligned", a similarity transform from the 68 landmarks that puts the eye centres at fixed points,
so that faces of every camera, distance and roll reach the CNN in one framing. Crops live in memory only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from emotion_perception.core.faces import FaceBox
from emotion_perception.core.types import Face

DEFAULT_MARGIN = 0.1
# Where an aligned crop puts the eyes, in fractions of its side: FER2013's and CK+48's own framing (their median
# inter-ocular distance is 0.37 of the side, the eye line 0.39 from the top, centred), so that aligning those
# crops barely resamples them and the chin ends at the bottom edge.
EYE_DISTANCE = 0.37
EYE_HEIGHT = 0.39


def crop_square(box: FaceBox, margin: float = DEFAULT_MARGIN) -> tuple[float, float, float]:
    """(left, top, side) of the square crop around a face box: the box's longer side plus `margin` of it on
    each side, centred on the box. Whole-image boxes (face crops where the detector found nothing) get no
    margin: the image already is the face."""
    width, height = box.right - box.left + 1, box.bottom - box.top + 1
    grow = 0.0 if box.source == "whole_image" else margin
    side = max(width, height) * (1 + 2 * grow)
    cx, cy = box.left + width / 2, box.top + height / 2
    return cx - side / 2, cy - side / 2, side


def crop_face(gray: np.ndarray, box: FaceBox, size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The (size, size) uint8 crop of one face; parts outside the image repeat its border pixels."""
    left, top, side = crop_square(box, margin)
    x0, y0, n = round(left), round(top), max(round(side), 1)
    x1, y1 = x0 + n, y0 + n
    h, w = gray.shape[:2]
    pad = (max(0, -y0), max(0, y1 - h), max(0, -x0), max(0, x1 - w))
    region = gray[max(y0, 0) : min(y1, h), max(x0, 0) : min(x1, w)]
    if any(pad):
        region = cv2.copyMakeBorder(region, *pad, cv2.BORDER_REPLICATE)
    shrinking = region.shape[0] > size
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def crop_faces(gray: np.ndarray, boxes: list[FaceBox], size: int, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """(n, size, size) uint8 crops of every box, in the order given."""
    if not boxes:
        return np.zeros((0, size, size), np.uint8)
    return np.stack([crop_face(gray, box, size, margin) for box in boxes])


def landmarks_in_crop(points: np.ndarray, box: FaceBox, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """Image-pixel landmarks (68, 2) -> coordinates in the crop of `box`, 0..1 across the crop."""
    left, top, side = crop_square(box, margin)
    return ((np.asarray(points, np.float64) - (left, top)) / side).astype(np.float32)


def landmarks_from_crop(points: np.ndarray, box: FaceBox, margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """The inverse of `landmarks_in_crop`: crop coordinates 0..1 -> image pixels."""
    left, top, side = crop_square(box, margin)
    return np.asarray(points, np.float64) * side + (left, top)


def align_matrix(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 similarity transform (rotation, uniform scale, shift) from image pixels to an aligned crop of `size`
    that puts the eye centres (landmarks 36-41 and 42-47) at EYE_DISTANCE apart on the line EYE_HEIGHT."""
    points = np.asarray(landmarks, np.float64)
    left, right = points[36:42].mean(axis=0), points[42:48].mean(axis=0)
    delta = right - left
    distance = max(float(np.hypot(*delta)), 1e-6)
    scale = EYE_DISTANCE * size / distance
    cos, sin = scale * delta[0] / distance, scale * delta[1] / distance
    rotation = np.array([[cos, sin], [-sin, cos]])
    centre = (left + right) / 2
    shift = np.array([size / 2, EYE_HEIGHT * size]) - rotation @ centre
    return np.hstack([rotation, shift[:, None]])


def aligned_crop(gray: np.ndarray, landmarks: np.ndarray, size: int) -> np.ndarray:
    """The (size, size) uint8 aligned crop of one face; the image is halved (pyrDown) until the warp shrinks it by
    at most 2, so that large faces are not aliased; parts outside the image repeat its border pixels."""
    points = np.asarray(landmarks, np.float64)
    matrix = align_matrix(points, size)
    height, width = gray.shape[:2]
    halvings = 0
    while np.hypot(*matrix[:, 0]) * 2**halvings < 0.5 and min(height, width) >= 4:
        height, width, halvings = (height + 1) // 2, (width + 1) // 2, halvings + 1
    # crop pixels -> pixels of the halved image (halving by powers of 2 is exact, as the repeated halving was)
    inverse = cv2.invertAffineTransform(align_matrix(points / 2**halvings, size))
    if halvings:  # halve only the window the crop reads (pyrDown's 5 taps reach 2 px a level beyond it)
        gray, origin = _crop_source(gray, inverse, size, halvings)
        for _ in range(halvings):
            gray = cv2.pyrDown(gray)
        inverse[:, 2] -= origin / 2**halvings
    return cv2.warpAffine(gray, inverse, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def _crop_source(gray: np.ndarray, inverse: np.ndarray, size: int, halvings: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of `gray` that an aligned crop of `size` reads after `halvings` pyrDowns (`inverse`: crop pixels ->
    pixels of the halved image), with a margin (also where the crop lies mostly outside the image), its corner on a
    multiple of 2**halvings (so that every halving sees the same pixels as on the whole image), and that corner."""
    step, margin = 2**halvings, 4 * 2**halvings + 2
    corners = step * (np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inverse.T)
    height, width = gray.shape[:2]
    low = np.floor(corners.min(axis=0)).astype(int) - margin
    x0 = min(max(int(low[0]), 0), max(width - margin, 0)) // step * step
    y0 = min(max(int(low[1]), 0), max(height - margin, 0)) // step * step
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + margin
    return gray[y0 : max(int(y1), y0 + 2 * margin), x0 : max(int(x1), x0 + 2 * margin)], np.array([x0, y0], float)


@dataclass(frozen=True)
class CropSpec:
    """How a CNN's input is cut from a grey image: `kind` "box" (the detector box grown by `margin`) or "aligned"
    (on the eyes), `size` pixels square."""

    kind: str = "box"
    size: int = 48
    margin: float = DEFAULT_MARGIN

    def __post_init__(self) -> None:
        if self.kind not in ("box", "aligned"):
            raise ValueError(f"crop kind must be box or aligned, got {self.kind!r}")

    @classmethod
    def from_header(cls, header: dict[str, Any]) -> CropSpec:
        """The spec a CNN file names (files without a kind are box crops)."""
        crop = header.get("crop", {})
        return cls(str(crop.get("kind", "box")), int(header["input_size"]), float(crop.get("margin", DEFAULT_MARGIN)))

    def to_header(self) -> dict[str, Any]:
        if self.kind == "box":
            return {"kind": "box", "margin": self.margin, "detector": "dlib HOG (emotion_perception.core.faces)"}
        return {"kind": "aligned", "eye_distance": EYE_DISTANCE, "eye_height": EYE_HEIGHT,
                "landmarks": "dlib 68 points (emotion_perception.core.landmarks)"}

    def crop(self, gray: np.ndarray, face: Face) -> np.ndarray:
        if self.kind == "aligned":
            return aligned_crop(gray, face.landmarks, self.size)
        return crop_face(gray, face.box, self.size, self.margin)

    def crops(self, gray: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """(n, size, size) uint8 crops of the faces, in the order given."""
        if not faces:
            return np.zeros((0, self.size, self.size), np.uint8)
        return np.stack([self.crop(gray, face) for face in faces])

    def landmarks(self, face: Face) -> np.ndarray:
        """The face's 68 landmarks in its crop, 0..1 across the crop."""
        if self.kind == "aligned":
            matrix = align_matrix(face.landmarks, self.size)
            points = np.asarray(face.landmarks, np.float64) @ matrix[:, :2].T + matrix[:, 2]
            return (points / self.size).astype(np.float32)
        return landmarks_in_crop(face.landmarks, face.box, self.margin)
