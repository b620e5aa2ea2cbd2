"""Occlusion attacks placed from the 68 landmarks: Type A (Shehu et al. 2020) boxes over both eyes, also as a
training-time poisoning of one class (`poison_class`), and Type B, a box over the lower jaw and chin.

Images are uint8, grey (h, w) or colour (h, w, c); results are new arrays (inputs are never modified).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotion_perception.attacks.pixels import check_u8

FILLS = ("black", "white", "mean", "noise")
# 68-point scheme: points 36-41 are the eye on the image's left (the subject's right), 42-47 the other one;
# 4-12 run along the lower jaw from below one cheek over the chin to below the other.
EYE_POINTS = (tuple(range(36, 42)), tuple(range(42, 48)))
JAW_POINTS = tuple(range(4, 13))
EYE_MARGIN = 0.25  # default growth of an eye box, in eye widths
JAW_MARGIN = 0.05  # default growth of the jaw box, in jaw widths

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, x1/y1 exclusive


def landmark_box(points: np.ndarray, indices: Sequence[int], margin: float, shape: tuple[int, ...]) -> Box:
    """The rectangle around `points[indices]` grown by `margin` times the points' width on every side,
    clipped to an image of `shape`; (x0, y0, x1, y1) with exclusive x1/y1, never empty for in-image points."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    selected = np.asarray(points, np.float64)[list(indices)]
    if selected.shape[-1] != 2 or not np.all(np.isfinite(selected)):
        raise ValueError("landmarks must be finite (68, 2) points")
    (x_min, y_min), (x_max, y_max) = selected.min(axis=0), selected.max(axis=0)
    grow = margin * max(x_max - x_min, 1.0)
    h, w = shape[:2]
    x0 = int(np.clip(np.floor(x_min - grow), 0, w))
    y0 = int(np.clip(np.floor(y_min - grow), 0, h))
    x1 = int(np.clip(np.ceil(x_max + grow) + 1, 0, w))
    y1 = int(np.clip(np.ceil(y_max + grow) + 1, 0, h))
    return x0, y0, x1, y1


def eye_rectangles(points: np.ndarray, shape: tuple[int, ...], margin: float = EYE_MARGIN) -> list[Box]:
    """Type A rectangles over both eyes; `margin` is in units of each eye's width."""
    return [landmark_box(points, eye, margin, shape) for eye in EYE_POINTS]


def jaw_rectangle(points: np.ndarray, shape: tuple[int, ...], margin: float = JAW_MARGIN) -> Box:
    """Type B rectangle over the lower jaw and chin (points 4-12); `margin` is in units of its width."""
    return landmark_box(points, JAW_POINTS, margin, shape)


def fill_boxes(image: np.ndarray, boxes: Sequence[Box], fill: str = "black", seed: int = 0) -> np.ndarray:
    """A copy of `image` with every box painted: black, white, the image's mean (per channel) or uniform
    random noise (seeded)."""
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {', '.join(FILLS)}, got {fill!r}")
    out = check_u8(image).copy()
    rng = np.random.default_rng(seed)
    mean = np.round(image.reshape(-1, *image.shape[2:]).mean(axis=0)).astype(np.uint8)
    for x0, y0, x1, y1 in boxes:
        region = out[y0:y1, x0:x1]
        if fill == "black":
            region[...] = 0
        elif fill == "white":
            region[...] = 255
        elif fill == "mean":
            region[...] = mean
        else:
            region[...] = rng.integers(0, 256, region.shape, dtype=np.uint8)
    return out


def apply_eye_boxes(
    image: np.ndarray, landmarks: np.ndarray, margin: float = EYE_MARGIN, fill: str = "black", seed: int = 0
) -> np.ndarray:
    """Type A: both eyes of one face covered (landmarks (68, 2) in image pixels)."""
    return fill_boxes(image, eye_rectangles(landmarks, image.shape, margin), fill, seed)


def apply_jaw_box(
    image: np.ndarray, landmarks: np.ndarray, margin: float = JAW_MARGIN, fill: str = "black", seed: int = 0
) -> np.ndarray:
    """Type B: the lower jaw and chin of one face covered."""
    return fill_boxes(image, [jaw_rectangle(landmarks, image.shape, margin)], fill, seed)


def poison_class(
    images: Sequence[np.ndarray], labels: Sequence[str], landmarks: np.ndarray, target: str,
    margin: float = EYE_MARGIN, fill: str = "black", seed: int = 0,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Type A poisoning: eye boxes on every image labelled `target` that has landmarks (rows of NaN mean no
    face); other images are returned as they are. Returns (images, boolean mask of the poisoned ones)."""
    if len(images) != len(labels) or len(images) != len(landmarks):
        raise ValueError(f"{len(images)} images, {len(labels)} labels and {len(landmarks)} landmark sets")
    if target not in set(labels):
        raise ValueError(f"no image is labelled {target!r}")
    out, poisoned = [], np.zeros(len(images), bool)
    for i, (image, label, points) in enumerate(zip(images, labels, landmarks)):
        if label == target and np.all(np.isfinite(points)):
            out.append(apply_eye_boxes(image, points, margin, fill, seed + i))
            poisoned[i] = True
        else:
            out.append(image)
    return out, poisoned
