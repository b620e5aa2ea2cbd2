"""Basic geometry of the 68 dlib landmarks: batching, left-right mirroring and the eye frame."""

from __future__ import annotations

import numpy as np

RIGHT_EYE = slice(36, 42)  # the subject's right eye, left in the image
LEFT_EYE = slice(42, 48)
# The landmarks of the face's two regions that the visibility check scores: brows and eyes above; jaw, nose wings
# and mouth below.
REGION_LANDMARKS = {
    "upper": frozenset(range(17, 27)) | frozenset(range(36, 48)),
    "lower": frozenset(range(2, 15)) | frozenset(range(31, 36)) | frozenset(range(48, 68)),
}
# Index of each landmark's mirror partner when the face is flipped left-right.
MIRROR = np.array(
    list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65]
)


def as_batch(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) or (n, 68, 2) -> float64 (n, 68, 2); ValueError for any other shape."""
    points = np.asarray(landmarks, dtype=np.float64)
    if points.ndim == 2:
        points = points[None]
    if points.ndim != 3 or points.shape[1:] != (68, 2):
        raise ValueError(f"expected landmarks of shape (68, 2) or (n, 68, 2), got {points.shape}")
    return points


def mirror_landmarks(landmarks: np.ndarray, width: float) -> np.ndarray:
    """The landmarks of the left-right flipped image (of the given width), in the 68-point order."""
    points = np.array(landmarks, dtype=np.float64)[..., MIRROR, :]
    points[..., 0] = (width - 1) - points[..., 0]
    return points


def eye_frame(landmarks: np.ndarray) -> np.ndarray:
    """(n, 68, 2) landmarks with origin between the eye centres, x along the eye line, unit = eye distance.

    Removes translation, scale and in-plane roll.
    """
    points = as_batch(landmarks)
    right = points[:, RIGHT_EYE].mean(axis=1)
    left = points[:, LEFT_EYE].mean(axis=1)
    axis = left - right
    distance = np.linalg.norm(axis, axis=1)
    cos, sin = axis[:, 0] / distance, axis[:, 1] / distance
    centred = points - ((left + right) / 2)[:, None, :]
    x = centred[..., 0] * cos[:, None] + centred[..., 1] * sin[:, None]
    y = -centred[..., 0] * sin[:, None] + centred[..., 1] * cos[:, None]
    return np.stack([x, y], axis=2) / distance[:, None, None]
