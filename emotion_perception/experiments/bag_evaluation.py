"""`bag evaluate` without ROS: landmark_emotion_node's per-frame step over every frame of a bag, as fast
as the machine allows, with an optional attack in between (the adversarial injector's frame logic).

Which code path: the node's own (`pipeline.classify_camera_frame`: its FaceTracker with its detector
settings and parameter defaults, its downscaling of wide frames, `classify_faces` on the grey frame),
with `detect_every` = 1 and `detect_tiles` = 1, i.e. a whole-frame face detection on every frame and no
tracking between frames. Dataset
frames are independent images of different people, so tracking across them means nothing, and with
tracking a frame's answer would depend on which earlier frames a live node happened to drop. Run the
live node with `detect_every:=1 detect_tiles:=1` to compare its answers with this offline run frame by frame.
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotion_perception.core.detail import detail_json, face_entries
from emotion_perception.core.errors import BagError, FrameError
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.frames import frame_to_gray
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.params import FRAME_STEP_PARAMS, defaults
from emotion_perception.core.pipeline import classify_camera_frame
from emotion_perception.core.tracking import FaceTracker
from emotion_perception.core.types import Classifier, FacePrediction
from emotion_perception.data.bags import (
    DETAIL_TOPIC,
    EMOTION_TOPIC,
    GROUND_TRUTH_TOPIC,
    BagFrame,
    BagReader,
    BagWriter,
    string_message,
)
from emotion_perception.experiments.scoring import Scoreboard
from emotion_perception.models.shipped import detail_name
from emotion_perception.models.tamper import TamperCheck

RESULTS_BAG = "results_bag"


class FrameClassifier:
    """A classifier node's per-frame step with its default parameters and `detect_every` = `detect_tiles` = 1,
    with any `Classifier` (the landmark forest, the CNN), and the nodes' tamper check of each face (`tamper`;
    None: off)."""

    def __init__(self, classifier: Classifier, landmark_model: str | None = None,
                 params: dict[str, Any] | None = None, tamper: TamperCheck | None = None) -> None:
        self.params = per_frame_params(params)
        self.classifier = classifier
        self.tamper = tamper
        detector = FaceDetector(self.params["upsample"], min_size=1, whole_image_fallback=False)  # as the node's
        self.tracker = FaceTracker(detector, LandmarkPredictor(landmark_model))
        self.tracker.apply_params(self.params)
        self.name = detail_name(classifier)

    def fresh(self) -> FrameClassifier:
        """The same step with a new tracker (face ids from 1 again), so that a bag's answers never depend on the
        bags evaluated before it by the same process."""
        other = copy.copy(self)
        other.tracker = FaceTracker(self.tracker.detector, self.tracker.predictor)
        other.tracker.apply_params(self.params)
        return other

    def classify(self, encoding: str, height: int, width: int, step: int, data: Any,
                 is_bigendian: bool) -> tuple[list[int], list[FacePrediction], list[dict[str, Any]] | None]:
        """(face ids, predictions, each face's tamper check entries or None) of one frame given as
        sensor_msgs/Image fields; FrameError if bad."""
        gray = frame_to_gray(encoding, height, width, step, data, is_bigendian, self.params["max_image_pixels"])
        ids, predictions, checks = classify_camera_frame(self.tracker, self.classifier, gray,
                                                         self.params["max_processing_width"], self.tamper)
        return ids, predictions, None if checks is None else [check.to_json() for check in checks]


def per_frame_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """The node defaults with `params` over them, detecting on every frame and following nothing."""
    return {**defaults(FRAME_STEP_PARAMS), **(params or {}), "detect_every": 1, "detect_tiles": 1}


@dataclass
class AttackSettings:
    """The injector's attack, strength and seed, plus any other injector parameters (name -> value)."""

    name: str = "none"
    epsilon: float = 0.01
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)


def make_attacker(settings: AttackSettings) -> Any:
    """The injector's FrameAttacker for these settings (None for no attack); BagError if it cannot load."""
    if settings.name == "none":
        return None
    from emotion_perception.attacks.injector import ATTACKER_PARAMS, FrameAttacker
    from emotion_perception.core.errors import InjectorSetupError

    values = {**defaults(ATTACKER_PARAMS), **settings.params, "attack": settings.name,
              "epsilon": float(settings.epsilon), "seed": int(settings.seed)}
    try:
        return FrameAttacker(values)
    except InjectorSetupError as error:
        raise BagError(f"attack {settings.name}: {error}") from None


@dataclass
class EvaluationRun:
    """The outcome of `evaluate_bag`: the results document and counts."""

    results: dict[str, Any]
    frames: int
    bad_frames: int
    seconds: float


def evaluate_bag(
    bag: str | Path, results_bag: Path, classifier: FrameClassifier, attack: AttackSettings,
    image_topic: str, progress: Callable[[int], None] | None = None,
) -> EvaluationRun:
    """Classify every frame of `bag`, write `/emotion`, `/emotion/detail` and the ground truth (same stamps)
    into `results_bag` (a new path), and score the answers against the bag's ground truth."""
    attacker = make_attacker(attack)
    board = Scoreboard([DETAIL_TOPIC.lstrip("/")])
    started = time.perf_counter()
    frames = bad = 0
    with BagReader(bag, image_topic) as reader:
        if reader.truth_connection is None:
            raise BagError(f"{bag}: no {GROUND_TRUTH_TOPIC} topic, nothing to score against")
        storage = reader.storage
        with BagWriter(results_bag, storage) as writer:
            for index, frame in enumerate(reader.frames()):
                frames += 1
                if frame.truth is not None:
                    writer.write(GROUND_TRUTH_TOPIC, string_message(json.dumps(frame.truth)), frame.stamp_ns)
                    with contextlib.suppress(ValueError):  # a label that is no emotion: counted as ignored
                        board.add_truth(frame.truth)
                detail = _process(frame, index, classifier, attacker)
                if detail is None:
                    bad += 1
                else:
                    document, label = detail
                    if label is not None:
                        writer.write(EMOTION_TOPIC, string_message(label), frame.stamp_ns)
                    writer.write(DETAIL_TOPIC, string_message(document), frame.stamp_ns)
                    board.add_detail(DETAIL_TOPIC.lstrip("/"), json.loads(document))
                if progress is not None:
                    progress(frames)
    seconds = time.perf_counter() - started
    settings = {"image topic": image_topic, "attack": attack.name, "frames": frames,
                "bad frames (skipped, as the node does)": bad, "seconds": round(seconds, 2),
                "frames per second": round(frames / seconds, 1) if seconds > 0 else None,
                "pipeline": "landmark_emotion_node per-frame step, detect_every=1",
                "tamper check": "on" if classifier.tamper is not None else "off"}
    if attack.name != "none":
        settings.update(epsilon=attack.epsilon, seed=attack.seed)
    results = board.results("bag evaluate", str(bag), {
        "settings": settings, "attack": {"name": attack.name, "epsilon": attack.epsilon, "seed": attack.seed,
                                          **({"params": attack.params} if attack.params else {})},
        "seconds": round(seconds, 3), "frames": frames, "bad_frames": bad})
    return EvaluationRun(results, frames, bad, seconds)


@dataclass
class BagWork:
    """What every bag of a `bag evaluate` run shares (sent once to each worker): the per-frame step, the attack, the
    image topic, and whether to show a progress bar over each bag's frames (only where it runs in this process)."""

    classifier: FrameClassifier
    attack: AttackSettings
    image_topic: str
    frame_bars: bool = False


def evaluate_bag_task(work: BagWork, bag: str) -> tuple[EvaluationRun, dict[str, bytes]]:
    """The executor's task function for one bag: its evaluation, and the files of its results bag (written to a
    temporary folder where it runs, so that the worker needs no access to the report folder)."""
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="bag-evaluate-") as folder, \
            tqdm(desc=f"frames {Path(bag).name}", unit="frame", disable=not work.frame_bars, leave=False) as bar:
        run = evaluate_bag(bag, Path(folder) / RESULTS_BAG, work.classifier.fresh(), work.attack, work.image_topic,
                           lambda n: bar.update(1))
        files = {str(path.relative_to(folder)): path.read_bytes() for path in sorted(Path(folder).rglob("*"))
                 if path.is_file()}
    return run, files


def _process(frame: BagFrame, index: int, classifier: FrameClassifier,
             attacker: Any) -> tuple[str, str | None] | None:
    """(detail document, primary label or None) of one frame; None for a frame that cannot be decoded."""
    start = time.perf_counter()
    fields = (frame.encoding, frame.height, frame.width, frame.step, frame.data, frame.is_bigendian)
    try:
        if attacker is not None:
            attacked = attacker.attack_frame(*fields, index)
            if attacked.pixels is not None:
                fields = (frame.encoding, frame.height, frame.width, attacked.pixels.strides[0],
                          attacked.pixels.tobytes(), frame.is_bigendian)
        ids, predictions, checks = classifier.classify(*fields)
    except FrameError:
        return None
    entries = face_entries(ids, predictions, checks=checks)
    document = detail_json(frame.header, classifier.name, (frame.width, frame.height), entries, None,
                           (time.perf_counter() - start) * 1000)
    return document, (predictions[0].label if predictions else None)

