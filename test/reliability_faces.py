"""Phantom faces: ids published for something that is not a face, counted over long runs of the classifier nodes'
per-frame step (`pipeline.classify_camera_frame` with a `FaceTracker` at the node defaults; no DDS needed).

A frame's real faces are those dlib finds in the whole frame with a score of at least 0.5; a published face that
overlaps none of them is a phantom. A weak, intermittent false detection like the one reported on the demo frames
(score 0.08 in about a quarter of the frames) can be added with `PhantomTracker`, since dlib does not make one on
every machine. Used by test/test_reliability_stream.py (bounded) and tools/reliability.py (full figures).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dlib
import numpy as np

from emotion_perception.core.faces import FaceBox, FaceDetector
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.tracking import FaceTracker, Region, iou
from emotion_perception.core.types import Classifier

# Where the added false detection appears (the plain background left of the face in the demo frames).
PHANTOM = FaceBox(40, 300, 130, 390, 0.08, "detector")


class PhantomTracker(FaceTracker):
    """A FaceTracker whose detector also reports PHANTOM, with its weak score, in a `rate` share of the searches
    that cover it (a fault dlib shows on some machines and not on others)."""

    def __init__(self, *args: Any, rate: float = 0.25, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rate = rate
        self.rng = np.random.default_rng(seed)

    def _detect_boxes(self, gray: np.ndarray, region: Region) -> list[FaceBox]:
        boxes = super()._detect_boxes(gray, region)
        covers = region.x0 <= PHANTOM.left and PHANTOM.right <= region.x1 and region.y0 <= PHANTOM.top \
            and PHANTOM.bottom <= region.y1
        if covers and self.rng.random() < self.rate:
            boxes.append(PHANTOM)
        return boxes


def real_faces(gray: np.ndarray) -> list[FaceBox]:
    """The faces dlib finds in the whole frame with a score of 0.5 or more."""
    rects, scores, _ = dlib.get_frontal_face_detector().run(gray, 0, 0.5)
    return [FaceBox(r.left(), r.top(), r.right(), r.bottom(), float(s), "detector") for r, s in zip(rects, scores)]


def node_tracker(params: Mapping[str, Any], phantom_rate: float = 0.0) -> FaceTracker:
    """The tracker a classifier node builds from its parameters (plus the added false detection, if asked)."""
    detector = FaceDetector(params["upsample"], min_size=1, whole_image_fallback=False)
    tracker = PhantomTracker(detector, LandmarkPredictor(), rate=phantom_rate) if phantom_rate \
        else FaceTracker(detector, LandmarkPredictor())
    tracker.apply_params(params)
    return tracker


def count_phantoms(frames: list[np.ndarray], count: int, params: Mapping[str, Any], model: Classifier,
                   hold: int = 1, phantom_rate: float = 0.0, noise: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Run `count` frames (each of `frames` held for `hold` frames, in a loop, with Gaussian camera noise of
    `noise` grey levels) through the node's step: ids published, phantom ids, and frames with a real face shown."""
    from emotion_perception.core.pipeline import classify_camera_frame

    rng = np.random.default_rng(seed)
    truth = [real_faces(frame) for frame in frames]
    tracker = node_tracker(params, phantom_rate)
    ids: set[int] = set()
    phantom_ids: set[int] = set()
    shown = phantom_frames = 0
    for i in range(count):
        k = (i // hold) % len(frames)
        gray = frames[k]
        if noise:
            gray = np.clip(gray + rng.normal(0, noise, gray.shape), 0, 255).astype(np.uint8)
        face_ids, predictions, _ = classify_camera_frame(tracker, model, gray, params["max_processing_width"])
        ids.update(face_ids)
        phantoms = [f for f, p in zip(face_ids, predictions) if all(iou(p.box, t) < 0.3 for t in truth[k])]
        phantom_ids.update(phantoms)
        phantom_frames += bool(phantoms)
        shown += len(face_ids) > len(phantoms)
    return {"frames": count, "ids": len(ids), "phantom_ids": len(phantom_ids), "frames_with_a_phantom": phantom_frames,
            "frames_with_a_real_face_published": shown,
            "frames_showing_a_real_face": sum(bool(truth[(i // hold) % len(frames)]) for i in range(count))}
