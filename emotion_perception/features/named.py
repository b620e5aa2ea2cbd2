"""97 named facial measurements from the 68 landmarks, in inter-ocular units (distances) or radians (angles).

Computed in the eye frame (origin between the eye centres, x along the eye line, y down), so every value is
invariant to translation, scale and in-plane roll, and each reads as a human quantity: "mouth opening",
"right brow height", ... (the subject's right side is on the image's left).

`MEASUREMENTS` is the table of them, in column order: (name, kind, landmark indices or column names). Each
kind is computed for all its rows in one numpy step, so that the node can afford them on every frame.
"""

from __future__ import annotations

import numpy as np

from emotion_perception.core.geometry import eye_frame

# kind -> what the indices mean:
#   dist (i, j): distance; mean_dist (a, b, c, d): mean of the distances a-b and c-d;
#   x (k), y (k): a coordinate; ydiff (i, j): y_i - y_j; ylift (k, i, j): y_k - (y_i + y_j) / 2;
#   angle (a, b, c): signed angle at b between b->a and b->c; slope (i, j): direction of i->j;
#   ratio (name, name): one earlier column over another.
Measurement = tuple[str, str, tuple]


def _eye(side: str, a: int, b: int, c: int, d: int, inner: int, outer: int) -> list[Measurement]:
    return [
        (f"{side} eye opening", "mean_dist", (a, b, c, d)),
        (f"{side} eye openness ratio", "ratio", (f"{side} eye opening", f"{side} eye width")),
        (f"{side} eye width", "dist", (inner, outer)),
    ]


def _dists(*rows: tuple[str, int, int]) -> list[Measurement]:
    return [(name, "dist", (i, j)) for name, i, j in rows]


MEASUREMENTS: list[Measurement] = [
    *_eye("right", 37, 41, 38, 40, 36, 39),
    *_eye("left", 43, 47, 44, 46, 42, 45),
    *[(f"brow point {k} height", "y", (k,)) for k in range(17, 27)],
    *_dists(
        ("right brow outer to eye", 17, 36), ("right brow middle to eye", 19, 37), ("right brow inner to eye", 21, 39),
        ("left brow inner to eye", 22, 42), ("left brow middle to eye", 24, 44), ("left brow outer to eye", 26, 45),
        ("right brow to lower lid", 19, 41), ("left brow to lower lid", 24, 46), ("brow gap", 21, 22),
        ("right brow length", 17, 21), ("left brow length", 22, 26),
    ),
    ("right brow inner x", "x", (21,)),
    ("left brow inner x", "x", (22,)),
    ("right brow arch angle", "angle", (17, 19, 21)),
    ("left brow arch angle", "angle", (22, 24, 26)),
    ("right brow slope", "slope", (17, 21)),
    ("left brow slope", "slope", (22, 26)),
    *_dists(("nose width", 31, 35), ("nose length", 27, 33), ("nose bridge to right wing", 27, 31),
            ("nose bridge to left wing", 27, 35)),
    ("nose tip height", "y", (33,)),
    ("right nose wing height", "y", (31,)),
    ("left nose wing height", "y", (35,)),
    *_dists(("mouth width", 48, 54), ("mouth opening", 51, 57), ("inner mouth opening", 62, 66)),
    ("mouth opening ratio", "ratio", ("mouth opening", "mouth width")),
    ("inner mouth opening ratio", "ratio", ("inner mouth opening", "mouth width")),
    *_dists(
        ("inner mouth width", 60, 64), ("upper lip thickness", 51, 62), ("lower lip thickness", 57, 66),
        ("right lip height", 50, 58), ("left lip height", 52, 56), ("right inner lip gap", 61, 67),
        ("left inner lip gap", 63, 65),
    ),
    ("right mouth corner lift", "ylift", (48, 51, 57)),
    ("left mouth corner lift", "ylift", (54, 51, 57)),
    ("right corner below upper lip", "ydiff", (48, 51)),
    ("left corner below upper lip", "ydiff", (54, 51)),
    ("right corner below lower lip", "ydiff", (48, 57)),
    ("left corner below lower lip", "ydiff", (54, 57)),
    ("right inner corner below lip", "ydiff", (60, 62)),
    ("left inner corner below lip", "ydiff", (64, 62)),
    ("right mouth corner x", "x", (48,)),
    ("left mouth corner x", "x", (54,)),
    *[(name, "y", (k,)) for name, k in (
        ("right mouth corner height", 48), ("left mouth corner height", 54), ("upper lip height", 51),
        ("lower lip height", 57), ("upper inner lip height", 62), ("lower inner lip height", 66),
        ("chin height", 8),
    )],
    ("right mouth corner angle", "angle", (49, 48, 59)),
    ("left mouth corner angle", "angle", (53, 54, 55)),
    ("upper lip angle", "angle", (48, 51, 54)),
    ("lower lip angle", "angle", (48, 57, 54)),
    ("upper inner lip angle", "angle", (60, 62, 64)),
    ("lower inner lip angle", "angle", (60, 66, 64)),
    *_dists(
        ("nose to upper lip", 33, 51), ("nose to right mouth corner", 33, 48), ("nose to left mouth corner", 33, 54),
        ("right wing to mouth corner", 31, 48), ("left wing to mouth corner", 35, 54),
        ("nose to inner upper lip", 33, 62), ("chin to lower lip", 8, 57), ("nose to chin", 33, 8),
        ("face height", 27, 8), ("chin to inner lower lip", 8, 66), ("right eye to mouth corner", 36, 48),
        ("left eye to mouth corner", 45, 54), ("right inner eye to mouth corner", 39, 48),
        ("left inner eye to mouth corner", 42, 54), ("right jaw to mouth corner", 4, 48),
        ("left jaw to mouth corner", 12, 54), ("right cheek to mouth corner", 3, 48),
        ("left cheek to mouth corner", 13, 54), ("face width", 0, 16), ("jaw width", 4, 12),
        ("chin width", 6, 10), ("nose bridge length", 27, 30),
    ),
]
NAMES = [name for name, _, _ in MEASUREMENTS]


def measured_landmarks() -> list[frozenset[int]]:
    """Per column, the landmarks its value reads (a ratio: those of the two columns it divides)."""
    column = {name: k for k, name in enumerate(NAMES)}
    reads = [frozenset(() if kind == "ratio" else args) for _, kind, args in MEASUREMENTS]
    for k, (_, kind, args) in enumerate(MEASUREMENTS):
        if kind == "ratio":
            reads[k] = reads[column[args[0]]] | reads[column[args[1]]]
    return reads


def _plan() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """kind -> (output columns, index array) for every kind of the table."""
    column = {name: k for k, name in enumerate(NAMES)}
    rows: dict[str, list[tuple[int, tuple]]] = {}
    for k, (_, kind, args) in enumerate(MEASUREMENTS):
        rows.setdefault(kind, []).append((k, tuple(column[a] for a in args) if kind == "ratio" else args))
    return {kind: (np.array([k for k, _ in entries]), np.array([a for _, a in entries]))
            for kind, entries in rows.items()}


PLAN = _plan()


def named_measurements(landmarks: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(names, (n, 97) values) for (n, 68, 2) or (68, 2) landmarks."""
    p = eye_frame(landmarks)
    x, y = p[..., 0], p[..., 1]
    out = np.empty((len(p), len(NAMES)))

    def dist(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.hypot(x[:, i] - x[:, j], y[:, i] - y[:, j])

    for kind, (cols, idx) in PLAN.items():
        if kind == "dist":
            out[:, cols] = dist(idx[:, 0], idx[:, 1])
        elif kind == "mean_dist":
            out[:, cols] = (dist(idx[:, 0], idx[:, 1]) + dist(idx[:, 2], idx[:, 3])) / 2
        elif kind in ("x", "y"):
            out[:, cols] = (x if kind == "x" else y)[:, idx[:, 0]]
        elif kind == "ydiff":
            out[:, cols] = y[:, idx[:, 0]] - y[:, idx[:, 1]]
        elif kind == "ylift":
            out[:, cols] = y[:, idx[:, 0]] - (y[:, idx[:, 1]] + y[:, idx[:, 2]]) / 2
        elif kind == "slope":
            out[:, cols] = np.arctan2(y[:, idx[:, 1]] - y[:, idx[:, 0]], x[:, idx[:, 1]] - x[:, idx[:, 0]])
        elif kind == "angle":
            ux, uy = x[:, idx[:, 0]] - x[:, idx[:, 1]], y[:, idx[:, 0]] - y[:, idx[:, 1]]
            vx, vy = x[:, idx[:, 2]] - x[:, idx[:, 1]], y[:, idx[:, 2]] - y[:, idx[:, 1]]
            out[:, cols] = np.arctan2(ux * vy - uy * vx, ux * vx + uy * vy)
    ratio_cols, ratio_idx = PLAN["ratio"]  # after the columns they divide
    out[:, ratio_cols] = out[:, ratio_idx[:, 0]] / out[:, ratio_idx[:, 1]]
    return list(NAMES), out
