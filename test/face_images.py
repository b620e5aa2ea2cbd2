"""Freely licensed face images for tests: NASA's astronaut photo (public domain) and frames made from it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def astronaut_bgr() -> np.ndarray:
    """512x512 colour photo of Eileen Collins, smiling (one frontal face, about 90 px wide)."""
    return np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])


def astronaut_gray() -> np.ndarray:
    return cv2.cvtColor(astronaut_bgr(), cv2.COLOR_BGR2GRAY)


def face_crop(size: int = 48) -> np.ndarray:
    """A tight grey crop of the astronaut's face resized to size x size, like the 48x48 datasets."""
    return cv2.resize(astronaut_gray()[70:180, 165:275], (size, size), interpolation=cv2.INTER_AREA)


def two_faces() -> np.ndarray:
    """A grey 640x480 frame holding the astronaut's face twice: full size left, 0.8x right."""
    frame = np.full((480, 640), 120, np.uint8)
    face = astronaut_gray()[30:250, 120:320]
    frame[20:240, 20:220] = face
    small = cv2.resize(face, (160, 176))
    frame[200:376, 400:560] = small
    return frame


def shared_dataset(name: str) -> Path:
    """A folder of ../shared/data, or skip the test when it is not there."""
    import pytest

    path = SHARED_DATA / name
    if not (path / "manifest.csv").is_file():
        pytest.skip(f"research dataset {name} not found at {path} (needs ../shared/data beside the repository)")
    return path


def happy_frame(shift: int = 0) -> np.ndarray:
    """640x480 BGR frame with the smiling astronaut (face ~90 px), `shift` px (up to 64) right of the middle."""
    frame = np.full((480, 640, 3), 120, np.uint8)
    frame[:, 64 + shift : 576 + shift] = astronaut_bgr()[:480]
    return frame
