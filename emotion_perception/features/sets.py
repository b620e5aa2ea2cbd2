"""Feature sets: landmarks (and, for appearance sets, the grey image) -> feature vectors.

Every set is invariant to translation and scale of the face; the eye-frame sets also to in-plane roll.
  centroid           Shehu et al.: each landmark's offset from the centroid, divided by the RMS radius (136)
  aligned            landmarks in the eye frame (136)
  aligned_distances  aligned + all 2,278 pairwise landmark distances (2,414)
  named              97 named measurements: eye opening, mouth width, brow raise, ... (named_geometry.py)
  named_hog          named + HOG of a 64x64 crop aligned by eyes and mouth (1,861) -- the default
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from emotion_perception.core.geometry import REGION_LANDMARKS, as_batch, eye_frame, mirror_landmarks
from emotion_perception.features.appearance import aligned_hog, hog_region_columns
from emotion_perception.features.named import measured_landmarks, named_measurements

_PAIRS = np.triu_indices(68, k=1)


def centroid_offsets(landmarks: np.ndarray) -> np.ndarray:
    """Shehu et al.: each landmark's offset from the centroid of all 68, divided by the RMS radius."""
    points = as_batch(landmarks)
    offsets = points - points.mean(axis=1, keepdims=True)
    radius = np.sqrt((offsets**2).sum(axis=2).mean(axis=1))
    return (offsets / radius[:, None, None]).reshape(len(points), -1)


def eye_aligned(landmarks: np.ndarray) -> np.ndarray:
    return eye_frame(landmarks).reshape(len(as_batch(landmarks)), -1)


def aligned_distances(landmarks: np.ndarray) -> np.ndarray:
    points = eye_frame(landmarks)
    deltas = points[:, _PAIRS[0]] - points[:, _PAIRS[1]]
    return np.hstack([points.reshape(len(points), -1), np.sqrt((deltas**2).sum(axis=2))])


def named(landmarks: np.ndarray) -> np.ndarray:
    return named_measurements(landmarks)[1]


GEOMETRY_SETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "centroid": centroid_offsets,
    "aligned": eye_aligned,
    "aligned_distances": aligned_distances,
    "named": named,
}
APPEARANCE_SETS = ("named_hog",)
DEFAULT_FEATURE_SET = "named_hog"
FEATURE_SETS = (*GEOMETRY_SETS, *APPEARANCE_SETS)


def needs_image(name: str) -> bool:
    _check(name)
    return name in APPEARANCE_SETS


def compute(name: str, landmarks: np.ndarray, grays: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Feature matrix of one (68, 2) or many (n, 68, 2) faces; appearance sets need each face's grey image."""
    _check(name)
    points = as_batch(landmarks)
    if name in GEOMETRY_SETS:
        return GEOMETRY_SETS[name](points)
    if grays is None or len(grays) != len(points):
        raise ValueError(f"feature set {name!r} needs one grey image per face ({len(points)} faces)")
    return np.hstack([named(points), aligned_hog(grays, points)])


def mirrored_inputs(
    name: str, landmarks: np.ndarray, grays: Sequence[np.ndarray] | None = None
) -> tuple[np.ndarray, list[np.ndarray] | None]:
    """Landmarks (and, for appearance sets, grey images) of the left-right mirrored faces."""
    points = as_batch(landmarks)
    if not needs_image(name):
        return mirror_landmarks(points, width=0.0), None
    if grays is None or len(grays) != len(points):
        raise ValueError(f"feature set {name!r} needs one grey image per face ({len(points)} faces)")
    flipped = [np.ascontiguousarray(gray[:, ::-1]) for gray in grays]
    return np.stack([mirror_landmarks(p, gray.shape[1]) for p, gray in zip(points, grays)]), flipped


def compute_mirrored(name: str, landmarks: np.ndarray, grays: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Features of the left-right mirrored faces (for training augmentation and test-time averaging)."""
    return compute(name, *mirrored_inputs(name, landmarks, grays))


def compute_with_mirrored(
    name: str, landmarks: np.ndarray, grays: Sequence[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(features, mirrored features) of the faces, computed in one batch."""
    points = as_batch(landmarks)
    mirrored, flipped = mirrored_inputs(name, points, grays)
    both_grays = None if flipped is None else [*grays, *flipped]
    rows = compute(name, np.concatenate([points, mirrored]), both_grays)
    return rows[: len(points)], rows[len(points):]


def feature_names(name: str) -> list[str]:
    """Human-readable names of the columns of a feature set."""
    _check(name)
    coords = [f"{axis}{i}" for i in range(68) for axis in "xy"]
    if name in ("centroid", "aligned"):
        return coords
    if name == "aligned_distances":
        return coords + [f"d{i}_{j}" for i, j in zip(*_PAIRS)]
    names = named_measurements(np.zeros((68, 2)) + np.arange(68)[:, None] * [1.0, 0.5])[0]
    if name == "named":
        return names
    return names + [f"hog{i}" for i in range(1764)]


def region_columns(name: str, region: str) -> np.ndarray:
    """The columns of feature set `name` that read face region `region` ("upper" or "lower", `REGION_LANDMARKS`):
    those computed from any of its landmarks and, for appearance sets, the HOG blocks over it."""
    _check(name)
    if region not in REGION_LANDMARKS:
        raise ValueError(f"unknown face region {region!r}; choose from {', '.join(REGION_LANDMARKS)}")
    landmarks = REGION_LANDMARKS[region]
    coords = [frozenset([k]) for k in range(68) for _ in "xy"]
    reads = {"centroid": coords, "aligned": coords,
             "aligned_distances": coords + [frozenset(pair) for pair in zip(*_PAIRS)]}.get(name) or measured_landmarks()
    columns = np.array([k for k, read in enumerate(reads) if read & landmarks], dtype=np.intp)
    if name in APPEARANCE_SETS:
        columns = np.concatenate([columns, len(reads) + hog_region_columns(region)])
    return columns


def _check(name: str) -> None:
    if name not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {name!r}; choose from {', '.join(FEATURE_SETS)}")
