"""Writes the bundled demo sequence (demo_*.jpg + manifest.csv) beside this script.

A short 640x480 "clip" made from scikit-image's astronaut photo (NASA, public domain: see PROVENANCE.md):
the smiling face drifts, zooms and tilts a little from frame to frame, and one frame in the middle shows
no face (the flag and the shuttle model). Run `python emotion_perception/assets/make_demo_frames.py`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import skimage.data

HERE = Path(__file__).resolve().parent
SIZE = (640, 480)
FACE_CENTRE = (220.0, 125.0)  # (x, y) of the astronaut's face in the 512x512 photo
# (dx, dy, scale, degrees) per frame; None is the frame without a face
MOTION: list[tuple[float, float, float, float] | None] = [
    (0, 0, 1.00, 0.0), (6, 2, 1.02, 1.0), (12, 4, 1.04, 2.0), (18, 5, 1.06, 3.0), (22, 6, 1.08, 3.0),
    None,
    (14, 0, 1.10, 1.0), (8, -4, 1.12, -1.0), (2, -6, 1.14, -2.0), (-4, -6, 1.16, -3.0), (-8, -4, 1.18, -3.0),
]
BACKGROUND = (96, 92, 88)


def face_frame(photo: np.ndarray, dx: float, dy: float, scale: float, degrees: float) -> np.ndarray:
    """The photo's upper part rotated and scaled about the face, the face near the frame's upper centre.

    The lower part (name badges that dlib mistakes for small faces) is left out.
    """
    matrix = cv2.getRotationMatrix2D(FACE_CENTRE, degrees, scale)
    matrix[:, 2] += (SIZE[0] / 2 + dx - FACE_CENTRE[0], 190 + dy - FACE_CENTRE[1])
    return cv2.warpAffine(photo[:330], matrix, SIZE, flags=cv2.INTER_LINEAR, borderValue=BACKGROUND)


def no_face_frame(photo: np.ndarray) -> np.ndarray:
    """The photo's flag and shuttle model side by side (no face), centred on the plain background."""
    scene = np.hstack([photo[0:330, 0:130], photo[0:330, 380:512]])
    scene = cv2.resize(scene, None, fx=1.4, fy=1.4, interpolation=cv2.INTER_LINEAR)
    frame = np.empty((SIZE[1], SIZE[0], 3), np.uint8)
    frame[:] = BACKGROUND
    top, left = (SIZE[1] - scene.shape[0]) // 2, (SIZE[0] - scene.shape[1]) // 2
    frame[top:top + scene.shape[0], left:left + scene.shape[1]] = scene
    return frame


def main(out: Path = HERE) -> None:
    photo = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])
    rows = []
    for index, motion in enumerate(MOTION):
        name = f"demo_{index:02d}.jpg"
        frame = no_face_frame(photo) if motion is None else face_frame(photo, *motion)
        cv2.imwrite(str(out / name), frame, [cv2.IMWRITE_JPEG_QUALITY, 82])
        rows.append({"path": name, "label": "" if motion is None else "happy", "subject": "astronaut"})
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "subject"])
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
