"""97 named facial measurements from the 68 landmarks, in inter-ocular units (distances) or radians (angles).

Computed in the eye frame (origin between the eye centres, x along the eye line, y down), so every value is
invariant to translation, scale and in-plane roll, and each reads as a human quantity: "mouth opening",
"right brow height", ... (the subject's right side is on the image's left).
"""

from __future__ import annotations

import numpy as np

from emotion_perception.landmark_geometry import eye_frame


def _distance(points: np.ndarray, i: int, j: int) -> np.ndarray:
    return np.linalg.norm(points[:, i] - points[:, j], axis=-1)


def _angle(points: np.ndarray, a: int, b: int, c: int) -> np.ndarray:
    """Signed angle at b between b->a and b->c."""
    u, v = points[:, a] - points[:, b], points[:, c] - points[:, b]
    return np.arctan2(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0], (u * v).sum(axis=1))


def named_measurements(landmarks: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(names, (n, 97) values) for (n, 68, 2) or (68, 2) landmarks."""
    p = eye_frame(landmarks)
    x, y = p[..., 0], p[..., 1]
    columns: list[tuple[str, np.ndarray]] = []

    def dist(name: str, i: int, j: int) -> None:
        columns.append((name, _distance(p, i, j)))

    for side, (a, b, c, d, inner, outer) in (("right", (37, 41, 38, 40, 36, 39)), ("left", (43, 47, 44, 46, 42, 45))):
        opening = (_distance(p, a, b) + _distance(p, c, d)) / 2
        width = _distance(p, inner, outer)
        columns += [
            (f"{side} eye opening", opening),
            (f"{side} eye openness ratio", opening / width),
            (f"{side} eye width", width),
        ]
    columns += [(f"brow point {k} height", y[:, k]) for k in range(17, 27)]
    for name, i, j in (
        ("right brow outer to eye", 17, 36),
        ("right brow middle to eye", 19, 37),
        ("right brow inner to eye", 21, 39),
        ("left brow inner to eye", 22, 42),
        ("left brow middle to eye", 24, 44),
        ("left brow outer to eye", 26, 45),
        ("right brow to lower lid", 19, 41),
        ("left brow to lower lid", 24, 46),
        ("brow gap", 21, 22),
        ("right brow length", 17, 21),
        ("left brow length", 22, 26),
    ):
        dist(name, i, j)
    columns += [
        ("right brow inner x", x[:, 21]),
        ("left brow inner x", x[:, 22]),
        ("right brow arch angle", _angle(p, 17, 19, 21)),
        ("left brow arch angle", _angle(p, 22, 24, 26)),
        ("right brow slope", np.arctan2(y[:, 21] - y[:, 17], x[:, 21] - x[:, 17])),
        ("left brow slope", np.arctan2(y[:, 26] - y[:, 22], x[:, 26] - x[:, 22])),
    ]
    for name, i, j in (
        ("nose width", 31, 35),
        ("nose length", 27, 33),
        ("nose bridge to right wing", 27, 31),
        ("nose bridge to left wing", 27, 35),
    ):
        dist(name, i, j)
    columns += [
        ("nose tip height", y[:, 33]),
        ("right nose wing height", y[:, 31]),
        ("left nose wing height", y[:, 35]),
    ]
    mouth_width, mouth_opening, inner_opening = _distance(p, 48, 54), _distance(p, 51, 57), _distance(p, 62, 66)
    columns += [
        ("mouth width", mouth_width),
        ("mouth opening", mouth_opening),
        ("inner mouth opening", inner_opening),
        ("mouth opening ratio", mouth_opening / mouth_width),
        ("inner mouth opening ratio", inner_opening / mouth_width),
    ]
    for name, i, j in (
        ("inner mouth width", 60, 64),
        ("upper lip thickness", 51, 62),
        ("lower lip thickness", 57, 66),
        ("right lip height", 50, 58),
        ("left lip height", 52, 56),
        ("right inner lip gap", 61, 67),
        ("left inner lip gap", 63, 65),
    ):
        dist(name, i, j)
    mouth_centre = (y[:, 51] + y[:, 57]) / 2
    columns += [
        ("right mouth corner lift", y[:, 48] - mouth_centre),
        ("left mouth corner lift", y[:, 54] - mouth_centre),
        ("right corner below upper lip", y[:, 48] - y[:, 51]),
        ("left corner below upper lip", y[:, 54] - y[:, 51]),
        ("right corner below lower lip", y[:, 48] - y[:, 57]),
        ("left corner below lower lip", y[:, 54] - y[:, 57]),
        ("right inner corner below lip", y[:, 60] - y[:, 62]),
        ("left inner corner below lip", y[:, 64] - y[:, 62]),
        ("right mouth corner x", x[:, 48]),
        ("left mouth corner x", x[:, 54]),
        ("right mouth corner height", y[:, 48]),
        ("left mouth corner height", y[:, 54]),
        ("upper lip height", y[:, 51]),
        ("lower lip height", y[:, 57]),
        ("upper inner lip height", y[:, 62]),
        ("lower inner lip height", y[:, 66]),
        ("chin height", y[:, 8]),
        ("right mouth corner angle", _angle(p, 49, 48, 59)),
        ("left mouth corner angle", _angle(p, 53, 54, 55)),
        ("upper lip angle", _angle(p, 48, 51, 54)),
        ("lower lip angle", _angle(p, 48, 57, 54)),
        ("upper inner lip angle", _angle(p, 60, 62, 64)),
        ("lower inner lip angle", _angle(p, 60, 66, 64)),
    ]
    for name, i, j in (
        ("nose to upper lip", 33, 51),
        ("nose to right mouth corner", 33, 48),
        ("nose to left mouth corner", 33, 54),
        ("right wing to mouth corner", 31, 48),
        ("left wing to mouth corner", 35, 54),
        ("nose to inner upper lip", 33, 62),
        ("chin to lower lip", 8, 57),
        ("nose to chin", 33, 8),
        ("face height", 27, 8),
        ("chin to inner lower lip", 8, 66),
        ("right eye to mouth corner", 36, 48),
        ("left eye to mouth corner", 45, 54),
        ("right inner eye to mouth corner", 39, 48),
        ("left inner eye to mouth corner", 42, 54),
        ("right jaw to mouth corner", 4, 48),
        ("left jaw to mouth corner", 12, 54),
        ("right cheek to mouth corner", 3, 48),
        ("left cheek to mouth corner", 13, 54),
        ("face width", 0, 16),
        ("jaw width", 4, 12),
        ("chin width", 6, 10),
        ("nose bridge length", 27, 30),
    ):
        dist(name, i, j)
    names = [name for name, _ in columns]
    return names, np.stack([values for _, values in columns], axis=1)
