"""Face detection with dlib's HOG frontal detector, tuned for both camera frames and tight face crops."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import dlib
import numpy as np


@dataclass(frozen=True)
class FaceBox:
    """An axis-aligned face box in image pixels; `source` says how it was found."""

    left: int
    top: int
    right: int
    bottom: int
    score: float
    source: str  # "detector", "tracker" or "whole_image"

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    def to_dlib(self) -> dlib.rectangle:
        return dlib.rectangle(self.left, self.top, self.right, self.bottom)

    def as_list(self) -> list[int]:
        """[x, y, width, height], the form published in JSON outputs."""
        return [self.left, self.top, self.width, self.height]

    def scaled(self, factor: float) -> FaceBox:
        """The same box in an image resized by `factor`."""
        return FaceBox(
            round(self.left * factor), round(self.top * factor),
            round(self.right * factor), round(self.bottom * factor), self.score, self.source,
        )


def upscale_factor(gray: np.ndarray, small_side: int) -> int:
    """Integer factor that brings an image whose longest side is below `small_side` up to at least twice that.

    dlib's HOG detector finds faces of about 80 px and more; 48x48 dataset crops need this to be found.
    """
    side = max(gray.shape[:2])
    if side >= small_side:
        return 1
    return int(np.ceil(2 * small_side / side))


class FaceDetector:
    """All frontal faces of a grey image, largest first.

    upsample: dlib's pyramid up-sampling steps (finds smaller faces, costs ~4x per step).
    min_size: smallest face side kept, in pixels of the image as searched.
    small_side: images whose longest side is below this are treated as face crops: they are
        upscaled before detection and, where `whole_image_fallback` is set and nothing is found,
        the whole image serves as the face box (source "whole_image").
    """

    def __init__(
        self,
        upsample: int = 0,
        min_size: int = 40,
        small_side: int = 100,
        whole_image_fallback: bool = True,
    ) -> None:
        if not 0 <= upsample <= 3:
            raise ValueError(f"upsample must be 0..3, got {upsample}")
        if min_size < 1:
            raise ValueError(f"min_size must be >= 1, got {min_size}")
        self.upsample = upsample
        self.min_size = min_size
        self.small_side = small_side
        self.whole_image_fallback = whole_image_fallback
        self._detector = dlib.get_frontal_face_detector()

    def __reduce__(self) -> tuple:
        """Pickled as its settings (dlib's detector is made again where it is unpickled)."""
        return FaceDetector, (self.upsample, self.min_size, self.small_side, self.whole_image_fallback)

    def prepare(self, gray: np.ndarray) -> tuple[np.ndarray, int]:
        """The image to search (upscaled if it is a small crop) and the factor applied."""
        factor = upscale_factor(gray, self.small_side)
        if factor == 1:
            return gray, 1
        size = (gray.shape[1] * factor, gray.shape[0] * factor)
        return cv2.resize(gray, size, interpolation=cv2.INTER_CUBIC), factor

    def detect_prepared(self, image: np.ndarray, is_crop: bool) -> list[FaceBox]:
        """Faces in an already prepared image, in its own coordinates, largest first."""
        rects, scores, _ = self._detector.run(image, self.upsample, 0.0)
        boxes = [
            FaceBox(r.left(), r.top(), r.right(), r.bottom(), float(s), "detector")
            for r, s in zip(rects, scores)
            if min(r.width(), r.height()) >= self.min_size
        ]
        if not boxes and is_crop and self.whole_image_fallback:
            h, w = image.shape[:2]
            boxes = [FaceBox(0, 0, w - 1, h - 1, 0.0, "whole_image")]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def detect(self, gray: np.ndarray) -> list[FaceBox]:
        """Faces in original image coordinates, largest first."""
        image, factor = self.prepare(gray)
        boxes = self.detect_prepared(image, is_crop=factor > 1)
        return [box.scaled(1.0 / factor) for box in boxes] if factor > 1 else boxes
