"""Every attack by name: the function that applies it, what it needs besides the image, and the specs of its
parameters. The adversarial injector, the robustness trials and the `attack` command all apply attacks through
`apply`, so a name, a parameter spelling and a default exist once.

  eye_boxes    Type A: boxes over both eyes (from the landmarks)
  jaw_box      Type B: a box over the lower jaw and chin (from the landmarks)
  mask         a surgical mask over nose, mouth and chin (from the landmarks)
  fgsm, pgd    white-box gradient attacks on a CNN, through the crops of the faces' boxes
  scaling      image-scaling camouflage: after the victim's resize the image shows `target`
  gaussian     Gaussian noise
  salt_pepper  salt-and-pepper noise
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emotion_perception.attacks.gradient import PixelModel, add_gray_change, attack_faces
from emotion_perception.attacks.noise import gaussian_noise, salt_and_pepper
from emotion_perception.attacks.occlusion import (
    EYE_MARGIN,
    FILLS,
    JAW_MARGIN,
    eye_rectangles,
    fill_boxes,
    jaw_rectangle,
)
from emotion_perception.attacks.scaling import INTERPOLATIONS, scaling_attack
from emotion_perception.core import occlusion
from emotion_perception.core.images import to_gray_u8
from emotion_perception.core.params import ParamSpec, specs_by_name
from emotion_perception.core.types import Face
from emotion_perception.models.crops import CropSpec

MASK_FILLS = ("folds", "white", "black", "noise")
# Every attack parameter, one spelling each; all may change at run time in the injector.
ATTACK_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("epsilon", 0.01, "fgsm/pgd: L-inf bound of the change on [0,1] pixels", 0.0, 1.0, tunable=True),
    ParamSpec("steps", 10, "pgd: iterations", 1, 1000, tunable=True),
    ParamSpec("step_size", 0.0, "pgd: step on [0,1] pixels; 0: 2.5 * epsilon / steps", 0.0, 1.0, tunable=True),
    ParamSpec("random_start", True, "pgd: start at a random point of the epsilon ball", tunable=True),
    ParamSpec("eye_margin", EYE_MARGIN, "eye_boxes: growth of each box around an eye, in eye widths", 0.0, 5.0,
              tunable=True),
    ParamSpec("jaw_margin", JAW_MARGIN, "jaw_box: growth of the box around the lower jaw, in jaw widths", 0.0, 5.0,
              tunable=True),
    ParamSpec("box_fill", "black", "colour of the boxes", choices=FILLS, tunable=True),
    ParamSpec("mask_height", 0.35, "mask: how far up the nose the mask's top edge reaches, from the nose tip (0) to "
              "the eyes (1)", 0.0, 1.0, tunable=True),
    ParamSpec("mask_fill", "folds", "mask: a light cloth with pleats, or a plain colour", choices=MASK_FILLS,
              tunable=True),
    ParamSpec("noise_sigma", 0.05, "gaussian: standard deviation on [0,1] pixels", 0.0, 1.0, tunable=True),
    ParamSpec("noise_amount", 0.05, "salt_pepper: fraction of pixels set black or white", 0.0, 1.0,
              tunable=True),
    ParamSpec("target_image", "", "scaling: the image the victim should see after its resize",
              must_exist=True, tunable=True),
    ParamSpec("scale_width", 64, "scaling: width of the victim's resize", 1, 4096, tunable=True),
    ParamSpec("scale_height", 48, "scaling: height of the victim's resize", 1, 4096, tunable=True),
    ParamSpec("scale_interpolation", "linear", "scaling: the victim's cv2.resize interpolation",
              choices=tuple(INTERPOLATIONS), tunable=True),
)
DEFAULTS: dict[str, Any] = {spec.name: spec.default for spec in ATTACK_PARAMS}


@dataclass
class AttackInputs:
    """What an attack reads besides the image; a caller fills in what the attack `needs`.

    faces: the faces (box and 68 landmarks, image pixels) the occluders cover and the gradient attacks go
    through. model, crop: the CNN (on [0, 1] pixels) of the gradient attacks and how it crops faces; labels: the
    faces' true class indices in the model's labels (None: the model's own answers). target: what the victim
    should see, at the size of its resize (scaling). order: channel order of colour images ("bgr" or "rgb")."""

    faces: Sequence[Face] = ()
    model: PixelModel | None = None
    crop: CropSpec = field(default_factory=CropSpec)
    labels: Sequence[int] | None = None
    target: np.ndarray | None = None
    order: str = "bgr"


Runner = Callable[[np.ndarray, Mapping[str, Any], AttackInputs, int], np.ndarray]


@dataclass(frozen=True)
class Attack:
    """One attack: `run(image, values, inputs, seed)` and the names of the parameters it reads."""

    name: str
    needs: str  # "faces", "model" (and faces), "target" or "" (the image alone)
    params: tuple[str, ...]
    run: Runner = field(repr=False)


def _boxes(kind: str) -> Runner:
    def run(image: np.ndarray, v: Mapping[str, Any], inputs: AttackInputs, seed: int) -> np.ndarray:
        boxes = []
        for face in inputs.faces:
            if kind == "eye_boxes":
                boxes += eye_rectangles(face.landmarks, image.shape, float(v["eye_margin"]))
            else:
                boxes.append(jaw_rectangle(face.landmarks, image.shape, float(v["jaw_margin"])))
        return fill_boxes(image, boxes, str(v["box_fill"]), seed)
    return run


def _mask(image: np.ndarray, v: Mapping[str, Any], inputs: AttackInputs, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fill = {"folds": "folds", "white": 235, "black": 0, "noise": "noise"}[str(v["mask_fill"])]
    polygons = [occlusion.surgical_mask(face.landmarks, float(v["mask_height"])) for face in inputs.faces]
    return occlusion.draw(image, polygons, fill, rng)


def _gradient(kind: str) -> Runner:
    def run(image: np.ndarray, v: Mapping[str, Any], inputs: AttackInputs, seed: int) -> np.ndarray:
        if inputs.model is None:
            raise ValueError(f"{kind} needs a CNN")
        gray = to_gray_u8(image, order=inputs.order)
        attacked = attack_faces(gray, list(inputs.faces), inputs.model, inputs.crop, kind, float(v["epsilon"]),
                                inputs.labels, int(v["steps"]), float(v["step_size"]) or None, bool(v["random_start"]),
                                seed)
        return add_gray_change(image, gray, attacked)
    return run


def _scaling(image: np.ndarray, v: Mapping[str, Any], inputs: AttackInputs, seed: int) -> np.ndarray:
    if inputs.target is None:
        raise ValueError("scaling needs a target image")
    return scaling_attack(image, inputs.target, str(v["scale_interpolation"]))


ATTACKS: dict[str, Attack] = {attack.name: attack for attack in (
    Attack("eye_boxes", "faces", ("eye_margin", "box_fill"), _boxes("eye_boxes")),
    Attack("jaw_box", "faces", ("jaw_margin", "box_fill"), _boxes("jaw_box")),
    Attack("mask", "faces", ("mask_height", "mask_fill"), _mask),
    Attack("fgsm", "model", ("epsilon",), _gradient("fgsm")),
    Attack("pgd", "model", ("epsilon", "steps", "step_size", "random_start"), _gradient("pgd")),
    Attack("scaling", "target", ("target_image", "scale_width", "scale_height", "scale_interpolation"), _scaling),
    Attack("gaussian", "", ("noise_sigma",), lambda image, v, _, seed: gaussian_noise(image, float(v["noise_sigma"]),
                                                                                      seed)),
    Attack("salt_pepper", "", ("noise_amount",),
           lambda image, v, _, seed: salt_and_pepper(image, float(v["noise_amount"]), seed)),
)}
NAMES: tuple[str, ...] = tuple(ATTACKS)


def get(name: str) -> Attack:
    """The attack called `name`; ValueError lists the known names."""
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose from {', '.join(NAMES)}")
    return ATTACKS[name]


def param_specs(name: str) -> tuple[ParamSpec, ...]:
    """The specs of the parameters attack `name` reads."""
    known = specs_by_name(ATTACK_PARAMS)
    return tuple(known[key] for key in get(name).params)


def apply(name: str, image: np.ndarray, values: Mapping[str, Any] | None = None,
          inputs: AttackInputs | None = None, seed: int = 0) -> np.ndarray:
    """Attack `image` (uint8 grey or colour) with `name`; `values` override the parameters' defaults."""
    return get(name).run(image, {**DEFAULTS, **(values or {})}, inputs or AttackInputs(), seed)
