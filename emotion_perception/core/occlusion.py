"""Occluders placed from the 68 landmarks: what covers part of a face in a ward (a surgical mask, a hand, dark
glasses, a blanket over the chin) and the boxes of the robustness literature. Pure geometry and drawing on uint8
grey or colour images; the attacks (`attacks.registry`: mask), the CNN's training augmentation and the tests use
the same shapes.

Polygons are (k, 2) float arrays in image pixels. The 68-point scheme: 0-16 the jaw line from one ear over the chin
to the other, 27-30 the nose bridge, 36-41 and 42-47 the eyes, 48-67 the mouth.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

KINDS = ("surgical_mask", "lower_box", "glasses", "eye_boxes", "hand", "random_box")
# The occluders of each face region (what the visibility check learns, what the covered-face forest trains on).
UPPER_KINDS = ("glasses", "eye_boxes")
LOWER_KINDS = ("surgical_mask", "lower_box", "hand")


def _eye_distance(points: np.ndarray) -> float:
    return float(max(np.linalg.norm(points[42:48].mean(0) - points[36:42].mean(0)), 1.0))


def surgical_mask(points: np.ndarray, height: float = 0.35) -> np.ndarray:
    """A surgical mask: below the jaw line from ear to ear (points 1-15), its upper edge over the nose bridge,
    `height` of the way from the nose tip (30) up to the eyes."""
    p = np.asarray(points, np.float64)
    top = p[30] + height * (p[27] - p[30])
    cheeks = [p[1] + 0.35 * (top - p[1]), p[15] + 0.35 * (top - p[15])]
    return np.vstack([p[1:16], cheeks[1], top, cheeks[0]])


def lower_box(points: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """A box over the lower jaw and chin (points 4-12) grown by `margin` of its width: Type B's jaw box."""
    p = np.asarray(points, np.float64)[4:13]
    (x0, y0), (x1, y1) = p.min(0), p.max(0)
    grow = margin * (x1 - x0)
    return np.array([[x0 - grow, y0 - grow], [x1 + grow, y0 - grow], [x1 + grow, y1 + grow], [x0 - grow, y1 + grow]])


def glasses(points: np.ndarray) -> list[np.ndarray]:
    """Dark glasses: an ellipse over each eye (a little larger than the eye and the brow's lower half) and the
    bridge between them."""
    p = np.asarray(points, np.float64)
    iod = _eye_distance(p)
    shapes = []
    for eye in (p[36:42], p[42:48]):
        centre = eye.mean(0)
        angle = np.degrees(np.arctan2(*(p[45] - p[36])[::-1]))
        ellipse = cv2.ellipse2Poly((int(centre[0]), int(centre[1])), (int(0.32 * iod), int(0.22 * iod)),
                                   int(angle), 0, 360, 10)
        shapes.append(ellipse.astype(np.float64))
    bridge = np.array([p[39], p[42], p[42] + [0, 0.06 * iod], p[39] + [0, 0.06 * iod]])
    return [*shapes, bridge]


def eye_boxes(points: np.ndarray, margin: float = 0.25) -> list[np.ndarray]:
    """Type A: a box over each eye grown by `margin` of the eye's width."""
    p = np.asarray(points, np.float64)
    out = []
    for eye in (p[36:42], p[42:48]):
        (x0, y0), (x1, y1) = eye.min(0), eye.max(0)
        grow = margin * max(x1 - x0, 1.0)
        out.append(np.array([[x0 - grow, y0 - grow], [x1 + grow, y0 - grow], [x1 + grow, y1 + grow],
                             [x0 - grow, y1 + grow]]))
    return out


def hand(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A hand-sized blob over the mouth, a cheek or the chin: a rotated ellipse about one eye distance by 1.6."""
    p = np.asarray(points, np.float64)
    iod = _eye_distance(p)
    centre = [p[48:68].mean(0), p[3:6].mean(0), p[11:14].mean(0), p[7:10].mean(0)][int(rng.integers(4))]
    centre = centre + rng.normal(0, 0.15 * iod, 2)
    axes = (int(rng.uniform(0.6, 1.0) * iod), int(rng.uniform(0.35, 0.6) * iod))
    return cv2.ellipse2Poly((int(centre[0]), int(centre[1])), axes, int(rng.uniform(0, 180)), 0, 360, 12).astype(
        np.float64)


def random_box(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A box of 15-45 % of the face's width and height somewhere on the face."""
    p = np.asarray(points, np.float64)
    (x0, y0), (x1, y1) = p.min(0), p.max(0)
    w, h = (x1 - x0) * rng.uniform(0.15, 0.45), (y1 - y0) * rng.uniform(0.15, 0.45)
    left, top = rng.uniform(x0, max(x1 - w, x0)), rng.uniform(y0, max(y1 - h, y0))
    return np.array([[left, top], [left + w, top], [left + w, top + h], [left, top + h]])


def shapes(kind: str, points: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """The polygons of occluder `kind` (one of KINDS) on a face."""
    if kind == "surgical_mask":
        return [surgical_mask(points, rng.uniform(0.15, 0.6))]
    if kind == "lower_box":
        return [lower_box(points, rng.uniform(0.0, 0.15))]
    if kind == "glasses":
        return glasses(points)
    if kind == "eye_boxes":
        return eye_boxes(points, rng.uniform(0.1, 0.4))
    if kind == "hand":
        return [hand(points, rng)]
    if kind == "random_box":
        return [random_box(points, rng)]
    raise ValueError(f"unknown occluder {kind!r}; choose from {', '.join(KINDS)}")


def draw(image: np.ndarray, polygons: Sequence[np.ndarray], fill: str | int, rng: np.random.Generator) -> np.ndarray:
    """A copy of a uint8 image with the polygons filled: a grey level (int), "noise", "texture" (smooth noise, as
    cloth), or "folds" (a light level with darker horizontal pleats, as a surgical mask)."""
    out = image.copy()
    mask = np.zeros(image.shape[:2], np.uint8)
    for polygon in polygons:
        cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 255)
    covered = mask > 0
    if not covered.any():
        return out
    shape = image.shape[:2]
    if isinstance(fill, int):
        layer = np.full(shape, fill, np.float64)
    elif fill == "noise":
        layer = rng.integers(0, 256, shape).astype(np.float64)
    elif fill == "texture":
        sigma = max(shape) / 40
        layer = cv2.GaussianBlur(rng.normal(0, 1, shape), (0, 0), sigma)
        layer = rng.uniform(60, 200) + 40 * layer / max(layer.std(), 1e-6)
    elif fill == "folds":
        rows = np.arange(shape[0])[:, None] * np.ones((1, shape[1]))
        period = max(shape[0] / rng.uniform(8, 14), 2.0)
        layer = rng.uniform(170, 235) - 25 * (np.sin(2 * np.pi * rows / period) > 0.6)
    else:
        raise ValueError(f"unknown fill {fill!r}")
    layer = np.clip(layer, 0, 255).astype(np.uint8)
    if out.ndim == 3:
        layer = np.repeat(layer[:, :, None], out.shape[2], axis=2)
    out[covered] = layer[covered]
    return out


def occlude(image: np.ndarray, points: np.ndarray, kind: str, rng: np.random.Generator,
            fill: str | int | None = None) -> np.ndarray:
    """`image` with occluder `kind` on the face whose landmarks are `points`; `fill` drawn at random when None
    (surgical masks light with folds or plain, hands a skin grey, others any)."""
    if fill is None:
        if kind == "surgical_mask":
            fill = "folds" if rng.random() < 0.5 else int(rng.integers(150, 240))
        elif kind == "hand":
            fill = int(rng.integers(90, 200)) if rng.random() < 0.7 else "texture"
        else:
            fill = [int(rng.integers(0, 256)), "noise", "texture"][int(rng.integers(3))]
    return draw(image, shapes(kind, points, rng), fill, rng)


def occlude_lower(image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`image` with an occluder of the lower face (a surgical mask, a box or a hand, one of LOWER_KINDS at random)
    and a random fill."""
    return occlude(image, points, LOWER_KINDS[int(rng.integers(len(LOWER_KINDS)))], rng)
