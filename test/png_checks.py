"""Checks that a PNG file written by a plot is a real picture: it decodes, has the figure's size, and is not blank."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figure_pixels(width_in: float, height_in: float, dpi: float) -> tuple[int, int]:
    """(width, height) in pixels of a matplotlib figure of this size in inches saved at `dpi`."""
    return round(width_in * dpi), round(height_in * dpi)


def check_png(path: str | Path, size: tuple[int, int] | None = None, min_side: int = 200, min_std: float = 20.0,
              min_colours: int = 50, min_coloured_share: float = 0.01) -> np.ndarray:
    """Assert that `path` is a PNG that decodes to a picture of `size` (width, height; within a pixel) or at
    least `min_side` px each way, that is not blank: its grey levels spread (std > `min_std` of 255), it holds
    at least `min_colours` distinct colours and at least `min_coloured_share` of its pixels are coloured (not
    grey: a heat map). Returns the picture as RGB, over white where it was transparent."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path}: not a PNG (starts {data[:8]!r})"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"{path}: does not decode"
    assert image.dtype == np.uint8, f"{path}: {image.dtype} pixels"
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.shape[2] == 4:  # over white, so that a transparent picture reads as blank
        alpha = image[:, :, 3:].astype(np.float64) / 255
        image = np.round(image[:, :, :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    rgb = np.ascontiguousarray(image[:, :, 2::-1])
    height, width = rgb.shape[:2]
    if size is not None:
        assert abs(width - size[0]) <= 1 and abs(height - size[1]) <= 1, \
            f"{path}: {width}x{height} px, the figure is {size[0]}x{size[1]}"
    assert min(width, height) >= min_side, f"{path}: {width}x{height} px, under {min_side} px"
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    assert grey.std() > min_std, f"{path}: nearly uniform (grey std {grey.std():.1f})"
    pixels = rgb.reshape(-1, 3)
    colours = len(np.unique(pixels, axis=0))
    assert colours >= min_colours, f"{path}: only {colours} distinct colours"
    spread = pixels.max(axis=1).astype(int) - pixels.min(axis=1)
    coloured = float((spread > 40).mean())
    assert coloured >= min_coloured_share, f"{path}: only {coloured:.2%} of the pixels are coloured"
    return rgb
