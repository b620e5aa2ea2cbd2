"""A small labelled dataset folder made from the astronaut photo (public domain), for bag tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from face_images import astronaut_bgr, astronaut_gray, face_crop

# file -> what it holds; labels are the folder names (some deliberately not what the face shows)
FILES = ("happy/full.png", "happy/crop_colour.png", "happy/crop_grey.png", "happy/mirrored.png",
         "happy/crop48.png", "surprise/smaller.png", "neutral/blank.png", "neutral/noise.png")


def make_dataset(root: Path) -> Path:
    """8 images in <class>/<image> folders: 6 show the astronaut's face (colour, grey, 48x48...), 2 no face."""
    colour, grey = astronaut_bgr(), astronaut_gray()
    images = {
        "happy/full.png": colour,
        "happy/crop_colour.png": colour[0:300, 100:400],
        "happy/crop_grey.png": grey[20:276, 120:376],
        "happy/mirrored.png": colour[0:300, 100:400][:, ::-1],
        "happy/crop48.png": face_crop(48),
        "surprise/smaller.png": cv2.resize(colour[0:300, 100:400], (240, 240), interpolation=cv2.INTER_AREA),
        "neutral/blank.png": np.full((200, 200), 128, np.uint8),
        "neutral/noise.png": np.random.default_rng(0).integers(0, 256, (180, 240), dtype=np.uint8),
    }
    for name, image in images.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), np.ascontiguousarray(image))
    return root


def expected_pixels(path: Path) -> np.ndarray:
    """What a dataset bag holds for an image file: grey files as mono8, colour as bgr8, crops < 100 px x5."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image.shape[0] < 100:
        image = cv2.resize(image, (image.shape[1] * 5, image.shape[0] * 5), interpolation=cv2.INTER_CUBIC)
    return image
