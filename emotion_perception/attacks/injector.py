"""The adversarial injector's logic without ROS: its parameters, which frames are attacked, and the attack of
one decoded camera frame with the size of the change. `nodes/adversarial_injector_node.py` is the ROS shell."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from emotion_perception.attacks import registry
from emotion_perception.attacks.gradient import pixel_model
from emotion_perception.attacks.pixels import change_size
from emotion_perception.attacks.registry import ATTACK_PARAMS, AttackInputs
from emotion_perception.core.errors import FrameError, ImageError, InjectorSetupError, ModelFileError
from emotion_perception.core.faces import FaceDetector
from emotion_perception.core.frames import decode_frame
from emotion_perception.core.images import read_bgr, to_gray_u8
from emotion_perception.core.landmarks import LandmarkPredictor
from emotion_perception.core.params import ParamSpec
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.models.crops import CropSpec

INFO_VERSION = 1
NODE_ATTACKS = ("none", *registry.NAMES)
EIGHT_BIT = ("mono8", "8UC1", "bgr8", "8UC3", "rgb8", "bgra8", "rgba8")

# The attacker's parameters; the injector node adds its own (ros.params.INJECTOR_PARAMS).
ATTACKER_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("attack", "none", "attack applied to the frames; none passes them through bit-exact",
              choices=NODE_ATTACKS, tunable=True),
    ParamSpec("fraction", 1.0, "fraction of frames attacked (drawn per frame from the seed)", 0.0, 1.0,
              tunable=True),
    ParamSpec("seed", 0, "seed of the frame draw and of the random parts of the attacks", 0, 2**31 - 1,
              tunable=True),
    *ATTACK_PARAMS,
    ParamSpec("model_path", "", "CNN weights (.pt) for fgsm/pgd; empty: the CNN shipped with the package",
              must_exist=True, tunable=True),
    ParamSpec("upsample", 0, "face detector up-sampling steps for the landmark and white-box attacks", 0, 3,
              tunable=True),
    ParamSpec("min_face_size", 40, "smallest face side the attacks look for, in pixels", 8, 4096, tunable=True),
    ParamSpec("max_image_pixels", 16_777_216, "frames with more pixels are rejected as bad frames", 1,
              268_435_456, tunable=True),
)


@dataclass
class Resources:
    """What the attacks load from files, shared between settings that use the same files."""

    analyzer: FaceAnalyzer | None = None
    model: torch.nn.Module | None = None
    model_header: dict[str, Any] = field(default_factory=dict)
    model_path: str | None = None
    target: np.ndarray | None = None  # BGR or grey as read
    target_path: str | None = None


@dataclass
class FrameResult:
    """The attacked pixels (None: publish the frame as it came) and the facts for attack/info."""

    pixels: np.ndarray | None
    applied: bool
    reason: str
    linf: float = 0.0
    l2: float = 0.0
    faces: int | None = None


def frame_seed(seed: int, index: int) -> int:
    """An independent, reproducible seed for frame number `index`."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def attack_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that matter for the selected attack (for attack/info)."""
    name = values["attack"]
    if name == "none":
        return {}
    return {**{key: values[key] for key in registry.get(name).params}, "fraction": values["fraction"],
            "seed": values["seed"]}


class FrameAttacker:
    """Applies the configured attack to decoded frames. Build a new one for new settings with `configure`
    (which loads what the attack needs and raises InjectorSetupError when it cannot)."""

    def __init__(self, values: Mapping[str, Any], resources: Resources | None = None) -> None:
        self.values = dict(values)
        self.resources = resources or Resources()
        self.params = attack_params(self.values)
        self._prepare()

    def _prepare(self) -> None:
        v, r = self.values, self.resources
        name = v["attack"]
        needs = registry.get(name).needs if name != "none" else ""
        if needs in ("faces", "model"):
            if r.analyzer is None:
                r.analyzer = FaceAnalyzer(predictor=LandmarkPredictor())
            r.analyzer.detector = FaceDetector(int(v["upsample"]), int(v["min_face_size"]))
        if needs == "model" and (r.model is None or r.model_path != v["model_path"]):
            from emotion_perception.models.cnn import load_cnn

            try:
                model, header = load_cnn(v["model_path"] or None)
            except ModelFileError as error:
                raise InjectorSetupError(f"{name} needs a CNN: {error}") from None
            r.model, r.model_header, r.model_path = pixel_model(model, header), header, v["model_path"]
        if needs == "target":
            if not v["target_image"]:
                raise InjectorSetupError("scaling needs target_image (the image the victim should see)")
            if r.target is None or r.target_path != v["target_image"]:
                try:
                    r.target = read_bgr(v["target_image"])
                except ImageError as error:
                    raise InjectorSetupError(f"target_image: {error}") from None
                r.target_path = v["target_image"]

    def chosen(self, index: int) -> bool:
        """Whether frame number `index` is attacked (a seeded draw against `fraction`)."""
        fraction = float(self.values["fraction"])
        if fraction >= 1.0:
            return True
        return bool(np.random.default_rng([int(self.values["seed"]), index, 1]).random() < fraction)

    def attack_frame(self, encoding: str, height: int, width: int, step: int, data: Any, is_bigendian: bool,
                     index: int) -> FrameResult:
        """Attack one frame (sensor_msgs/Image fields); FrameError for frames that cannot be decoded."""
        name = self.values["attack"]
        if name == "none":
            return FrameResult(None, False, "attack is none")
        if not self.chosen(index):
            return FrameResult(None, False, "frame not drawn (fraction)")
        pixels, order = decode_frame(encoding, height, width, step, data, is_bigendian,
                                     int(self.values["max_image_pixels"]))
        if encoding not in EIGHT_BIT:
            return FrameResult(None, False, f"{encoding} frames are passed through: attacks work on 8-bit frames")
        colour = pixels[:, :, :3] if pixels.ndim == 3 else pixels
        attacked, faces = self._attack(np.ascontiguousarray(colour), order, frame_seed(int(self.values["seed"]),
                                                                                      index))
        if attacked is None:
            return FrameResult(None, False, "no face found", faces=0)
        out = pixels.copy()
        if pixels.ndim == 3:
            out[:, :, :3] = attacked
        else:
            out = attacked
        size = change_size(pixels, out)
        return FrameResult(out, True, "", size["linf"], size["l2"], faces)

    def _attack(self, image: np.ndarray, order: str, seed: int) -> tuple[np.ndarray | None, int | None]:
        """(attacked colour/grey pixels or None when there is no face, faces found or None if not searched)."""
        v, r = self.values, self.resources
        name = v["attack"]
        needs = registry.get(name).needs
        inputs = AttackInputs(order=order)
        faces: int | None = None
        if needs == "target":
            inputs.target = self._scaling_target(image, order)
        elif needs:
            assert r.analyzer is not None
            inputs.faces = r.analyzer.analyze(to_gray_u8(image, order=order))
            faces = len(inputs.faces)
            if needs == "model":
                inputs.model, inputs.crop = r.model, CropSpec.from_header(r.model_header)
            if not faces:
                return None, 0
        return registry.apply(name, image, v, inputs, seed), faces

    def _scaling_target(self, image: np.ndarray, order: str) -> np.ndarray:
        """The target image at the victim's resize, in the frame's channels."""
        import cv2

        v, target = self.values, self.resources.target
        assert target is not None
        size = (int(v["scale_width"]), int(v["scale_height"]))
        if size[0] > image.shape[1] or size[1] > image.shape[0]:
            raise FrameError(f"frame {image.shape[1]}x{image.shape[0]} is smaller than the victim's resize "
                             f"{size[0]}x{size[1]}")
        if image.ndim == 2:
            target = cv2.cvtColor(target, cv2.COLOR_BGR2GRAY)
        elif order == "rgb":
            target = target[:, :, ::-1]
        return cv2.resize(target, size, interpolation=cv2.INTER_AREA)


def info_record(values: Mapping[str, Any], stamp: tuple[int, int], frame_id: str, index: int,
                result: FrameResult, started: float) -> dict[str, Any]:
    """The attack/info JSON object of one frame."""
    return {
        "version": INFO_VERSION, "attack": values["attack"], "params": attack_params(values),
        "stamp": {"sec": stamp[0], "nanosec": stamp[1]}, "frame_id": frame_id, "frame": index,
        "applied": result.applied, "reason": result.reason, "linf": round(result.linf, 6),
        "l2": round(result.l2, 6), "faces": result.faces,
        "processing_ms": round((time.perf_counter() - started) * 1000, 2),
    }
