"""How steady the labels are on video: a replayed sequence from a labelled folder (each image held for a few
seconds, as a person holding an expression in front of a camera that shakes a little, with light flicker and
sensor noise), run through a classifier node's own per-frame step (tracker at the node's defaults), then through
the score smoother at several time constants. Per time constant: label flips per minute while an expression is
held, the accuracy over all frames, and the delay after an expression changes until the new label shows."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.images import read_gray
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.params import FRAME_STEP_PARAMS, defaults
from emotion_perception.core.pipeline import classify_camera_frame
from emotion_perception.core.smoothing import ScoreSmoother
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.core.types import Classifier, FacePrediction
from emotion_perception.data.datasets import FaceDataset


@dataclass
class Replay:
    """The per-frame step's predictions of a held-image sequence: per frame its time, the held image's label, the
    primary face's id and prediction (None: no face), and where each hold starts."""

    times: np.ndarray
    truth: np.ndarray
    ids: list[int | None]
    predictions: list[FacePrediction | None]
    hold_starts: np.ndarray


def camera_frame(gray: np.ndarray, rng: np.random.Generator, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """The image placed in a camera frame as a hand-held camera sees it: a shift of a few pixels, a 2 % change of
    scale, light flicker and sensor noise."""
    width, height = size
    scale = min(0.8 * height / gray.shape[0], 0.8 * width / gray.shape[1]) * rng.uniform(0.98, 1.02)
    matrix = np.array([[scale, 0, (width - scale * gray.shape[1]) / 2 + rng.normal(0, 2)],
                       [0, scale, (height - scale * gray.shape[0]) / 2 + rng.normal(0, 2)]])
    frame = cv2.warpAffine(gray, matrix, size, flags=cv2.INTER_LINEAR, borderValue=110)
    frame = frame.astype(np.float64) * rng.uniform(0.95, 1.05) + rng.normal(0, 3, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def replay(dataset: FaceDataset, classifier: Classifier, hold: float = 3.0, fps: float = 15.0,
           seed: int = 0) -> Replay:
    """Each image of `dataset` (in order) held for `hold` seconds at `fps`, through the node's per-frame step."""
    params = defaults(FRAME_STEP_PARAMS)
    tracker = FaceTracker(FaceDetector(params["upsample"], min_size=1, whole_image_fallback=False),
                          LandmarkPredictor())
    tracker.apply_params(params)
    rng = np.random.default_rng(seed)
    per_hold = max(1, round(hold * fps))
    times, truth, ids, predictions, starts = [], [], [], [], []
    for path, label in zip(dataset.paths, dataset.labels.astype(str)):
        gray = read_gray(path)
        starts.append(len(times))
        for _ in range(per_hold):
            frame_ids, faces, _ = classify_camera_frame(tracker, classifier, camera_frame(gray, rng),
                                                        params["max_processing_width"])
            times.append(len(times) / fps)
            truth.append(label)
            ids.append(frame_ids[0] if faces else None)
            predictions.append(faces[0] if faces else None)
    return Replay(np.array(times), np.array(truth), ids, predictions, np.array(starts))


def steadiness(run: Replay, time_constant: float, hysteresis: float = 0.0) -> dict[str, float]:
    """Flips per minute within holds, accuracy over the frames, and the median delay (s) after a change of
    expression until the label first shows the new expression (holds it never shows are left out)."""
    smoother = ScoreSmoother(time_constant, hysteresis)
    labels = []
    for t, face_id, prediction in zip(run.times, run.ids, run.predictions):
        labels.append(None if prediction is None else smoother.update(float(t), [face_id], [prediction])[0].label)
    hold_of = np.searchsorted(run.hold_starts, np.arange(len(labels)), side="right") - 1
    flips = sum(a is not None and b is not None and a != b and hold_of[i] == hold_of[i + 1]
                for i, (a, b) in enumerate(itertools.pairwise(labels)))
    held_minutes = len(labels) / (1 / np.diff(run.times[:2])[0]) / 60
    delays = []
    for k, start in enumerate(run.hold_starts[1:], start=1):
        end = run.hold_starts[k + 1] if k + 1 < len(run.hold_starts) else len(labels)
        if run.truth[start] == run.truth[start - 1]:
            continue
        hits = [i for i in range(start, end) if labels[i] == run.truth[start]]
        if hits:
            delays.append(run.times[hits[0]] - run.times[start])
    correct = [label == truth for label, truth in zip(labels, run.truth)]
    return {"time_constant": time_constant, "hysteresis": hysteresis, "flips_per_minute": flips / held_minutes,
            "accuracy": float(np.mean(correct)), "median_delay_s": float(np.median(delays)) if delays else None,
            "no_face_frames": int(sum(label is None for label in labels))}
