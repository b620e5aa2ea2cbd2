"""Checks and measures shared by the attacks: uint8 images in, the size of a change out."""

from __future__ import annotations

import numpy as np


def change_size(before: np.ndarray, after: np.ndarray) -> dict[str, float]:
    """L-inf and L2 norms of the change on the [0, 1] pixel scale."""
    delta = (after.astype(np.float64) - before.astype(np.float64)) / 255.0
    return {"linf": float(np.abs(delta).max(initial=0.0)), "l2": float(np.sqrt(np.sum(delta**2)))}


def check_u8(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        shape = getattr(image, "shape", None)
        raise ValueError(f"expected a non-empty uint8 grey or colour image, got {type(image).__name__} {shape}")
    return image
