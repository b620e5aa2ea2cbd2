"""Robustness trials (Shehu et al. 2020, Tables I-V) for the landmark forest and the CNN, without ROS.

Per repeat, one train/test split (`split_indices(protocol, ..., folds, seed + repeat)`, fold 0: with 5 folds a
subject-wise 80/20 split for subject-kfold, an image-wise stratified 80/20 split for the paper's protocol);
then, on that split:

  clean     fresh model on clean training images, tested on clean test images
  type_a    training-time poisoning: eye boxes on every training image of one class (each class in turn),
            tested on clean images (Table III: the accuracy of the poisoned class)
  type_a_screened  Type A with the training images screened by the tamper check first (`data.screening`; run
            whenever type_a is, as its second row):
            forests keep the faces it finds covered with the covered region's features taken from unflagged
            training faces and leave out those with pixel artefacts; CNNs leave out every flagged image
  type_b    the clean model on test images whose jaw is covered
  mask      the clean model on test images with a synthetic surgical mask over nose, mouth and chin
  fgsm/pgd  CNN: white-box on this repeat's CNN. Forest: transferred from surrogate CNNs, as the paper did;
            cross-fitted by default (5 subject-wise folds, each image attacked by the surrogate that never saw
            its subject), so the attacked images do not depend on the repeat
  scaling   Xiao et al.'s image-scaling camouflage: the camera image is the test image at `scaling_factor`x,
            the victim shrinks it back with cv2.resize (linear) and sees an image of another class
  scaling_defended  the same camera image, shrunk as this package's pipeline shrinks images (area averaging,
            which the camouflage cannot steer)
  noise     Gaussian noise of each sigma
  adaptive  black-box Square attack on each model's own full pipeline (detector, landmarks/crop, model),
            on a seeded subset of the test images, for each epsilon

Beside the accuracies, the tamper check (`models.tamper`) is run on every image of each attack that changes test
images (on the camera image for the scaling attack): its true-positive rate per attack and its false-positive rate
on the clean images go to the report (`tamper_detection`).

Attacked images are re-read by dlib (landmarks cached by image content in the landmark cache); attacks that do
not depend on the repeat are computed once and their feature rows reused by every repeat. Every (protocol,
model, attack, repeat) result is stored as JSON under `out/cells/<settings fingerprint>/` so that a re-run
skips finished work (the fingerprint covers the data and the settings that can change that model's results).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from emotion_perception import attacks, features
from emotion_perception.attacks import EYE_MARGIN, JAW_MARGIN
from emotion_perception.attacks.black_box import square_attack
from emotion_perception.core import occlusion
from emotion_perception.core.atomic import write_text_atomic
from emotion_perception.core.errors import TrialError
from emotion_perception.core.faces import FaceBox
from emotion_perception.core.images import read_gray
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.core.types import Face
from emotion_perception.data.datasets import FaceDataset
from emotion_perception.data.face_data import FeatureRows, feature_rows_of
from emotion_perception.data.landmark_cache import (
    LandmarkCache,
    LandmarkView,
    extract_dataset,
    landmarks_of_images,
    settings_digest,
)
from emotion_perception.data.model_cache import CnnCache, training_key
from emotion_perception.data.screening import Screening, training_rows
from emotion_perception.experiments.evaluation import metrics, predicted_labels, split_indices
from emotion_perception.experiments.executor import Executor, ExecutorSettings, InProcess, Task
from emotion_perception.features import DEFAULT_FEATURE_SET
from emotion_perception.models.cnn import ARCHS, CnnClassifier, load_cnn
from emotion_perception.models.cnn_training import TrainSettings, train_cnn
from emotion_perception.models.crops import DEFAULT_MARGIN, CropSpec, crop_face, crop_square, landmarks_in_crop
from emotion_perception.models.landmark_model import ForestSettings
from emotion_perception.models.tamper import Assessment, TamperCheck

ATTACKS = ("clean", "type_a", "type_a_screened", "type_b", "mask", "fgsm", "pgd", "scaling", "scaling_defended",
           "noise", "adaptive")
# attack -> the image set its test images come from (attacks that change test images)
# The image sets the covered-face forest trains on: the training faces under each lower-face occluder.
COVERED_TRAINING_SETS = tuple(f"lower_occluders@{k}" for k in range(len(occlusion.LOWER_KINDS)))
TEST_SETS = {"clean": "clean", "type_b": "jaw_box", "mask": "mask", "scaling": "scaling",
             "scaling_defended": "scaling_defended"}
PAPER_ATTACKS = ("clean", "type_a", "type_b", "fgsm")
POISONING = ("type_a", "type_a_screened")  # training-time attacks: each trains its own models
MODEL_KINDS = ("forest", "cnn")
TRIAL_PROTOCOLS = ("subject-kfold", "paper")
EPSILON_ATTACKS = ("fgsm", "pgd", "adaptive")  # attacks run at every epsilon of `epsilons`
CELL_VERSION = 1



@dataclass(frozen=True)
class ModelSpec:
    """One row of the tables: a forest on a feature set, or the CNN."""

    key: str
    kind: str
    feature_set: str | None = None


def model_specs(models: Sequence[str], feature_sets: Sequence[str]) -> list[ModelSpec]:
    """Forest rows are named by feature set: "forest" for the default set, "forest_<set>" for others."""
    specs = []
    for kind in models:
        if kind == "forest":
            specs += [ModelSpec("forest" if fs == DEFAULT_FEATURE_SET else f"forest_{fs}", "forest", fs)
                      for fs in feature_sets]
        else:
            specs.append(ModelSpec("cnn", "cnn"))
    return specs


@dataclass
class TrialSettings:
    """Everything a trial run depends on. Fields marked in RUN_ONLY do not change any single result."""

    models: tuple[str, ...] = ("forest",)
    attacks: tuple[str, ...] = PAPER_ATTACKS
    feature_sets: tuple[str, ...] = (DEFAULT_FEATURE_SET, "centroid")
    protocols: tuple[str, ...] = ("subject-kfold",)
    repeats: int = 30
    cnn_repeats: int = 3
    adaptive_repeats: int = 3
    seed: int = 0
    folds: int = 5
    n_estimators: int = 100
    max_features: float | str = "sqrt"
    mirror: bool = True
    threads: int = 1
    cnn_arch: str = "small_resnet"
    cnn_input_size: int = 48
    cnn_epochs: int = 15
    cnn_occlusion: float = TrainSettings.occlusion  # as `train cnn`: occluders drawn from the clean landmarks
    cnn_device: str = "cpu"
    eye_margin: float = EYE_MARGIN
    jaw_margin: float = JAW_MARGIN
    box_fill: str = "black"
    epsilons: tuple[float, ...] = (0.01, 0.03, 0.06)
    pgd_steps: int = 10
    noise_sigmas: tuple[float, ...] = (0.05, 0.02, 0.1)
    adaptive_images: int = 30
    adaptive_queries: int = 100
    scaling_factor: int = 4
    scaling_interpolation: str = "linear"
    surrogate: str | None = None
    surrogate_folds: int = 5
    surrogate_epochs: int = 15
    visibility_model: str | None = None
    covered_forest: bool = True

    RUN_ONLY = ("models", "attacks", "feature_sets", "protocols", "repeats", "cnn_repeats", "adaptive_repeats",
                "threads")
    CNN_ONLY = ("cnn_epochs", "cnn_occlusion", "cnn_device")
    FOREST_ONLY = ("n_estimators", "max_features", "mirror", "surrogate", "surrogate_folds", "surrogate_epochs",
                   "covered_forest")

    def __post_init__(self) -> None:
        # Type A comes with its screened second row: the poisoned class with and without screening side by side.
        attacks = tuple(self.attacks)
        if "type_a" in attacks and "type_a_screened" not in attacks:
            at = attacks.index("type_a") + 1
            attacks = (*attacks[:at], "type_a_screened", *attacks[at:])
        self.attacks = attacks

    def check(self) -> None:
        """Raise TrialError naming the first bad value."""
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown or not self.attacks:
            raise TrialError(f"unknown attack(s) {unknown or '(none)'}; choose from {', '.join(ATTACKS)}")
        bad_models = [m for m in self.models if m not in MODEL_KINDS]
        if bad_models or not self.models:
            raise TrialError(f"unknown model(s) {bad_models or '(none)'}; choose from {', '.join(MODEL_KINDS)}")
        bad_sets = [f for f in self.feature_sets if f not in features.FEATURE_SETS]
        if bad_sets or not self.feature_sets:
            raise TrialError(f"unknown feature set(s) {bad_sets or '(none)'}; "
                             f"choose from {', '.join(features.FEATURE_SETS)}")
        bad_protocols = [p for p in self.protocols if p not in TRIAL_PROTOCOLS]
        if bad_protocols or not self.protocols:
            raise TrialError(f"unknown protocol(s) {bad_protocols or '(none)'}; "
                             f"choose from {', '.join(TRIAL_PROTOCOLS)}")
        for name in ("repeats", "cnn_repeats", "adaptive_repeats", "n_estimators", "threads", "cnn_epochs",
                     "pgd_steps", "adaptive_images", "adaptive_queries", "surrogate_epochs"):
            if getattr(self, name) < 1:
                raise TrialError(f"{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.folds < 2 or self.surrogate_folds < 2:
            raise TrialError(f"folds must be >= 2, got {self.folds} and {self.surrogate_folds}")
        if not 0 <= self.cnn_occlusion <= 1:
            raise TrialError(f"cnn occlusion must be a probability, got {self.cnn_occlusion}")
        if self.cnn_device not in ("cpu", "cuda"):
            raise TrialError(f"cnn device must be cpu or cuda, got {self.cnn_device!r}")
        if self.cnn_arch not in ARCHS or self.cnn_arch == "multitask":
            raise TrialError(f"cnn arch must be one of {', '.join(a for a in ARCHS if a != 'multitask')}")
        for name in ("epsilons", "noise_sigmas"):
            values = getattr(self, name)
            if not values or any(not 0 < v <= 1 for v in values):
                raise TrialError(f"{name.replace('_', '-')} must be values in (0, 1], got {list(values)}")
        if self.scaling_factor < 2:
            raise TrialError(f"scaling factor must be >= 2, got {self.scaling_factor}")
        if self.scaling_interpolation not in attacks.INTERPOLATIONS:
            raise TrialError(f"scaling interpolation must be one of {', '.join(attacks.INTERPOLATIONS)}")
        if self.box_fill not in attacks.FILLS:
            raise TrialError(f"box fill must be one of {', '.join(attacks.FILLS)}")
        for name in ("surrogate", "visibility_model"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise TrialError(f"--{name.replace('_', '-')} {path}: no such file")

    def attack_values(self, **overrides: Any) -> dict[str, Any]:
        """The registry's parameter values of these settings (`attacks.apply`), with `overrides`."""
        return {"eye_margin": self.eye_margin, "jaw_margin": self.jaw_margin, "box_fill": self.box_fill,
                "steps": self.pgd_steps, "scale_interpolation": self.scaling_interpolation, **overrides}

    def repeats_for(self, spec: ModelSpec, attack: str) -> int:
        base = self.repeats if spec.kind == "forest" else self.cnn_repeats
        return min(base, self.adaptive_repeats) if attack == "adaptive" else base

    def fingerprint(self, dataset: FaceDataset, analyzer: FaceAnalyzer, kind: str) -> str:
        """Digest of the data, the landmark extractor and every setting that can change a result of a model of
        `kind` (the forest's results do not depend on the CNN's epochs, nor the CNN's on the forest's trees)."""
        ignored = {*self.RUN_ONLY, *(self.CNN_ONLY if kind == "forest" else self.FOREST_ONLY)}
        payload = {k: v for k, v in asdict(self).items() if k not in ignored}
        payload["kind"] = kind
        for name in ("surrogate", "visibility_model"):
            if payload.get(name):
                payload[name] = hashlib.sha256(Path(payload[name]).read_bytes()).hexdigest()
        payload["data"] = [[str(p), str(label)] for p, label in zip(dataset.paths, dataset.labels)]
        payload["groups"] = [str(g) for g in dataset.groups()]
        payload["analyzer"] = settings_digest(analyzer)
        payload["cell_version"] = CELL_VERSION
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------ images


@dataclass
class ImageSet:
    """Every dataset image as one attack leaves it; `applied[i]` false where the attack could not act
    (no face found on the clean image) and the image is the clean one."""

    grays: list[np.ndarray]
    applied: np.ndarray
    info: dict[str, float] = field(default_factory=dict)
    camera: list[np.ndarray] | None = None  # the scaling attack's full-size camera images, before any resize


@dataclass
class CropView:
    crops: np.ndarray  # (n, s, s) uint8
    found: np.ndarray
    landmarks: np.ndarray  # (n, 68, 2) clean landmarks in crop coordinates 0..1; NaN where not known


def merge_rows(base: FeatureRows, other: FeatureRows, mask: np.ndarray) -> FeatureRows:
    """`base` with the rows where `mask` is true taken from `other` (Type A: the poisoned class)."""
    x = base.x.copy()
    x[mask] = other.x[mask]
    mirrored = None
    if base.x_mirrored is not None:
        mirrored = base.x_mirrored.copy()
        mirrored[mask] = other.x_mirrored[mask]
    return FeatureRows(x, mirrored)


# ------------------------------------------------------------------------------------------ data


def train_surrogate(shared: tuple[np.ndarray, np.ndarray, np.ndarray, list[str]],
                    job: tuple[int, np.ndarray, TrainSettings]) -> tuple[Any, dict]:
    """The executor's task function for one surrogate CNN: (model, header) trained on the crops at `train`."""
    crops, labels, groups, classes = shared
    _, train, settings = job
    result = train_cnn(crops[train], labels[train], settings, classes, groups[train])
    return result.classifier.model.cpu(), result.classifier.header


class TrialData:
    """The dataset's images, their attacked versions, landmarks, feature rows and crops, each computed on first
    use and kept (attacks that do not depend on the repeat are computed once per run)."""

    def __init__(
        self, dataset: FaceDataset, analyzer: FaceAnalyzer, cache: LandmarkCache | None, settings: TrialSettings,
        cnn_cache: Path | None = None, progress: bool = True,
    ) -> None:
        self.dataset, self.analyzer, self.cache, self.settings = dataset, analyzer, cache, settings
        self.cnn_cache, self.progress = cnn_cache, progress
        self.pool: Executor | None = None  # where the surrogate CNNs train (set while a run has one)
        self.surrogate_origin: dict[str, Any] = {}
        self.labels = dataset.labels.astype(str)
        self.classes = sorted(set(self.labels))
        self.grays = [read_gray(p) for p in dataset.paths]
        self.precompute_seconds: dict[str, float] = {}
        self._sets: dict[str, ImageSet] = {}
        self._views: dict[str, LandmarkView] = {}
        self._rows: dict[tuple[str, str], FeatureRows] = {}
        self._crops: dict[tuple[str, int, float], CropView] = {}
        self._boxes: list[FaceBox | None] | None = None
        self._surrogates: list[tuple[attacks.PixelModel, dict, np.ndarray]] | None = None
        self._screenings: dict[str, Screening] = {}
        self._covered: dict[str, np.ndarray] = {}
        self.tamper = TamperCheck.load(settings.visibility_model)

    def __len__(self) -> int:
        return len(self.grays)

    def __getstate__(self) -> dict[str, Any]:
        """What a worker receives: the prepared arrays, without the landmark cache, the executor, the surrogates
        and the tamper check (whose results are prepared) and without the attacked images' pixels (their feature
        rows and crops are prepared); the clean images stay (white-box and adaptive attacks start from them)."""
        state = self.__dict__.copy()
        state.update(cache=None, pool=None, _surrogates=None, tamper=None)
        state["_sets"] = {key: images if key == "clean" else ImageSet([], images.applied, images.info)
                          for key, images in self._sets.items()}
        return state

    def _timed(self, key: str, make: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = make()
        self.precompute_seconds[key] = round(self.precompute_seconds.get(key, 0.0) + time.perf_counter() - started, 2)
        return value

    # -- clean image facts

    def boxes(self) -> list[FaceBox | None]:
        """The CNN path's face box (largest detection) of every clean image."""
        if self._boxes is None:
            def detect() -> list[FaceBox | None]:
                return [next(iter(self.analyzer.detector.detect(g)), None)
                        for g in tqdm(self.grays, desc="face boxes", disable=not self.progress, leave=False)]
            self._boxes = self._timed("boxes", detect)
        return self._boxes

    # -- attacked image sets

    def image_set(self, key: str) -> ImageSet:
        """"clean", "eye_boxes", "jaw_box", "mask", "noise@SIGMA", "scaling", "scaling_defended", "fgsm@EPS",
        "pgd@EPS"."""
        if key not in self._sets:
            name = key.partition("@")[0]
            if name in ("eye_boxes", "jaw_box", "mask", "lower_occluders"):
                self.landmarks("clean")  # dependencies first, so that each step's time is its own
            if name in ("fgsm", "pgd"):
                self.boxes()
                self.surrogates()
            self._sets[key] = self._timed(f"images {key}", lambda: self._make_set(key))
        return self._sets[key]

    def _make_set(self, key: str) -> ImageSet:
        s, n = self.settings, len(self.grays)
        name, _, value = key.partition("@")
        if name == "clean":
            return ImageSet(self.grays, np.zeros(n, bool))
        if name in ("eye_boxes", "jaw_box", "mask"):
            clean = self.landmarks("clean")
            out, applied = list(self.grays), clean.found.copy()
            for i in np.flatnonzero(applied):
                out[i] = attacks.apply(name, self.grays[i], s.attack_values(),
                                       attacks.AttackInputs(faces=[Face.from_landmarks(clean.landmarks[i])]),
                                       s.seed + i)
            return ImageSet(out, applied)
        if name == "lower_occluders":  # what the covered-face forest trains on (not a test set): one kind each
            clean, k = self.landmarks("clean"), int(value)
            out = list(self.grays)
            for i in np.flatnonzero(clean.found):
                out[i] = occlusion.occlude(self.grays[i], clean.landmarks[i], occlusion.LOWER_KINDS[k],
                                           np.random.default_rng([s.seed, i, k]))
            return ImageSet(out, clean.found.copy())
        if name == "noise":
            sigma = float(value)
            values = s.attack_values(noise_sigma=sigma)
            return ImageSet([attacks.apply("gaussian", g, values, seed=s.seed + i) for i, g in enumerate(self.grays)],
                            np.ones(n, bool))
        if name == "scaling":
            return self._scaling_set()
        if name == "scaling_defended":
            camera = self.image_set("scaling").camera
            return ImageSet([cv2.resize(big, g.shape[::-1], interpolation=cv2.INTER_AREA)
                             for big, g in zip(camera, self.grays)], np.ones(n, bool), camera=camera)
        if name in ("fgsm", "pgd"):
            return self._transfer_set(name, float(value))
        raise ValueError(f"unknown image set {key!r}")

    def _scaling_set(self) -> ImageSet:
        s = self.settings
        rng = np.random.default_rng(s.seed)
        if len(self.classes) < 2:
            raise TrialError("the scaling attack needs at least two classes (its target shows another class)")
        out, camera, psnr, linf = [], [], [], []
        for i, gray in enumerate(tqdm(self.grays, desc="scaling attack", disable=not self.progress, leave=False)):
            target = self.grays[int(rng.choice(np.flatnonzero(self.labels != self.labels[i])))]
            view, big, quality = attacks.scaling_camouflage(gray, target, s.scaling_factor, s.scaling_interpolation)
            out.append(view)
            camera.append(big)
            psnr.append(quality["source_psnr"])
            linf.append(quality["target_linf"])
        info = {"mean_source_psnr_db": float(np.mean(psnr)), "max_target_error_grey_levels": float(np.max(linf))}
        return ImageSet(out, np.ones(len(out), bool), info, camera)

    def surrogates(self) -> list[tuple[attacks.PixelModel, dict, np.ndarray]]:
        """(pixel model, header, indices it attacks): one given CNN for all images, or cross-fitted CNNs."""
        if self._surrogates is None:
            if not self.settings.surrogate:
                self.crops("clean", self.settings.cnn_input_size, DEFAULT_MARGIN)
            self._surrogates = self._timed("surrogate CNNs", self._make_surrogates)
        return self._surrogates

    def _make_surrogates(self) -> list[tuple[attacks.PixelModel, dict, np.ndarray]]:
        """Cross-fitted surrogate CNNs: read from the CNN cache where the same training was done before, the others
        trained on the executor (in parallel where it has several workers) and cached."""
        s = self.settings
        if s.surrogate:
            model, header = load_cnn(s.surrogate)
            return [(attacks.pixel_model(model, header), header, np.arange(len(self)))]
        folds = min(s.surrogate_folds, len(set(self.dataset.groups())))
        if folds < 2:
            raise TrialError("cross-fitted surrogate CNNs need at least two subjects; pass --surrogate FILE.pt")
        crops, groups = self.crops("clean", s.cnn_input_size, DEFAULT_MARGIN), self.dataset.groups()
        cache = CnnCache(self.cnn_cache) if self.cnn_cache else None
        splits = list(split_indices("subject-kfold", self.dataset, folds, s.seed + 7919))
        models: dict[int, tuple[Any, dict]] = {}
        tasks, keys = [], {}
        for k, (train, _) in enumerate(splits):
            train = train[crops.found[train]]
            settings = TrainSettings(arch=s.cnn_arch, input_size=s.cnn_input_size, crop="box",
                                     epochs=s.surrogate_epochs, seed=s.seed + k, progress=False, device="cpu")
            keys[k] = training_key(crops.crops[train], self.labels[train], groups[train], self.classes, settings,
                                   threads=s.threads, role="surrogate")
            cached = cache.load(keys[k]) if cache else None
            if cached is not None:
                models[k] = cached
            else:
                tasks.append(Task(f"surrogate-cnn-{k}", (k, train, settings)))
        shared = (crops.crops, self.labels, groups, self.classes)
        pool = self.pool or InProcess(s.threads)
        for outcome in tqdm(pool.run(train_surrogate, shared, tasks), total=len(tasks), desc="surrogate CNNs",
                            disable=not self.progress or not tasks, leave=False):
            k = outcome.task.args[0]
            if outcome.error is not None:
                raise TrialError(f"surrogate CNN {k}: {outcome.error}")
            models[k] = outcome.value
            if cache:
                cache.save(keys[k], *outcome.value)
        self.surrogate_origin = {"cached": len(splits) - len(tasks), "trained": len(tasks),
                                 "cache": str(self.cnn_cache) if self.cnn_cache else None}
        return [(attacks.pixel_model(*models[k]), models[k][1], test) for k, (_, test) in enumerate(splits)]

    def _transfer_set(self, attack: str, epsilon: float) -> ImageSet:
        s = self.settings
        out, applied = list(self.grays), np.zeros(len(self), bool)
        boxes = self.boxes()
        points = self.landmarks("clean").landmarks
        for model, header, index in self.surrogates():
            labels, crop = list(header["labels"]), CropSpec.from_header(header)
            for i in tqdm(index, desc=f"{attack} eps={epsilon}", disable=not self.progress, leave=False):
                if boxes[i] is None:
                    continue
                target = [labels.index(self.labels[i])] if self.labels[i] in labels else None
                inputs = attacks.AttackInputs(faces=[Face(boxes[i], points[i])], model=model, crop=crop,
                                              labels=target)
                out[i] = attacks.apply(attack, self.grays[i], s.attack_values(epsilon=epsilon), inputs,
                                       s.seed + int(i))
                applied[i] = True
        return ImageSet(out, applied)

    # -- what each model reads

    def landmarks(self, key: str) -> LandmarkView:
        if key not in self._views:
            if key != "clean":
                self.image_set(key)
                self.landmarks("clean")
            self._views[key] = self._timed(f"landmarks {key}", lambda: self._make_landmarks(key))
        return self._views[key]

    def _make_landmarks(self, key: str) -> LandmarkView:
        if key == "clean":
            extracted = extract_dataset(self.dataset, self.analyzer, self.cache, progress=self.progress)
            return LandmarkView(extracted.landmarks, extracted.found)
        images = self.image_set(key)
        clean = self.landmarks("clean")
        view = landmarks_of_images(images.grays, self.analyzer, self.cache, ~images.applied, self.progress,
                                   f"landmarks {key}")
        view.landmarks[~images.applied] = clean.landmarks[~images.applied]
        view.found[~images.applied] = clean.found[~images.applied]
        return view

    def rows(self, key: str, feature_set: str) -> FeatureRows:
        if (key, feature_set) not in self._rows:
            view = self.landmarks(key)
            self.image_set(key)
            self._rows[key, feature_set] = self._timed(
                f"features {key} {feature_set}",
                lambda: feature_rows_of(feature_set, view, self.image_set(key).grays, self.settings.mirror))
        return self._rows[key, feature_set]

    def poison_mask(self, target: str) -> np.ndarray:
        """Type A: the images of class `target` that carry eye boxes (those where a face was found)."""
        return (self.labels == target) & self.image_set("eye_boxes").applied

    def flagged(self, key: str) -> np.ndarray:
        """Which images of an image set the tamper check flags."""
        return self.screening(key).flagged

    def screening(self, key: str) -> Screening:
        """The tamper check's verdicts on an image set (on the camera image for the scaling attack, with the clean
        landmarks scaled to it; on the image itself, with its own landmarks, otherwise)."""
        if key not in self._screenings:
            self._screenings[key] = self._timed(f"tamper check {key}", lambda: self._make_screening(key))
        return self._screenings[key]

    def _make_screening(self, key: str) -> Screening:
        images = self.image_set(key)
        if images.camera is not None:
            view, grays, scale = self.landmarks("clean"), images.camera, float(self.settings.scaling_factor)
        else:
            view, grays, scale = self.landmarks(key), images.grays, 1.0
        assessments: list[Assessment | None] = [None] * len(grays)
        for i in np.flatnonzero(view.found):
            assessments[i] = self.tamper.assess(grays[i], [Face.from_landmarks(view.landmarks[i] * scale)])[0]
        return Screening.of(assessments)

    def covered(self, key: str) -> np.ndarray:
        """Per image of an image set, whether the visibility check finds the lower face covered (on the image the
        models read, with its own landmarks): which faces a forest with a covered-face part routes to it."""
        if key not in self._covered:
            self._covered[key] = self._timed(f"visibility {key}", lambda: self._make_covered(key))
        return self._covered[key]

    def _make_covered(self, key: str) -> np.ndarray:
        view, grays, visibility = self.landmarks(key), self.image_set(key).grays, self.tamper.visibility
        covered = np.zeros(len(grays), bool)
        for i in np.flatnonzero(view.found):
            assessment = visibility.assess(grays[i], [Face.from_landmarks(view.landmarks[i])])[0]
            covered[i] = "lower" in visibility.occluded(assessment)
        return covered

    def tamper_detection(self, keys: Sequence[str]) -> dict[str, Any]:
        """The tamper check's true-positive rate on the attacked images of each set (those the attack changed and
        whose face was found), and its false-positive rate on the clean images."""
        clean_found = self.landmarks("clean").found
        tpr = {}
        for key in keys:
            images = self.image_set(key)
            counted = images.applied & clean_found
            tpr[key] = float(self.flagged(key)[counted].mean()) if counted.any() else None
        return {"tpr": tpr, "fpr": float(self.flagged("clean")[clean_found].mean()), "n_clean": int(clean_found.sum()),
                "check": self.tamper.visibility.header.get("recipe", "the shipped visibility model")}

    def poisoned_rows(self, feature_set: str, target: str) -> FeatureRows:
        """Clean feature rows, except the eye-boxed rows of class `target` (the caller picks the training part)."""
        return merge_rows(self.rows("clean", feature_set), self.rows("eye_boxes", feature_set),
                          self.poison_mask(target))

    def training_screening(self, target: str) -> Screening:
        """The tamper check's verdicts on Type A's training images: the poisoned ones on their eye-boxed version,
        the others on their clean image."""
        return self.screening("clean").where(self.poison_mask(target), self.screening("eye_boxes"))

    def poisoned_crops(self, target: str) -> CropView:
        """Clean CNN crops, except the eye-boxed crops of class `target`."""
        size = self.settings.cnn_input_size
        clean, boxed = self.crops("clean", size, DEFAULT_MARGIN), self.crops("eye_boxes", size, DEFAULT_MARGIN)
        mask = self.poison_mask(target)
        crops, found, points = clean.crops.copy(), clean.found.copy(), clean.landmarks.copy()
        crops[mask], found[mask], points[mask] = boxed.crops[mask], boxed.found[mask], boxed.landmarks[mask]
        return CropView(crops, found, points)

    def crops(self, key: str, size: int, margin: float) -> CropView:
        """The CNN path's crops: the face box detected on each (attacked) image, cut and resized."""
        if (key, size, margin) not in self._crops:
            self.image_set(key)
            self.boxes()
            self._crops[key, size, margin] = self._timed(f"crops {key}", lambda: self._make_crops(key, size, margin))
        return self._crops[key, size, margin]

    def _make_crops(self, key: str, size: int, margin: float) -> CropView:
        """Crops of the attacked images, with the clean landmarks placed in the crops of unattacked images (the
        CNN's training draws its occluders from them)."""
        images, clean = self.image_set(key), self.landmarks("clean")
        crops = np.zeros((len(self), size, size), np.uint8)
        found = np.zeros(len(self), bool)
        points = np.full((len(self), 68, 2), np.nan, np.float32)
        clean_boxes = self.boxes()
        for i, gray in enumerate(images.grays):
            box = clean_boxes[i] if not images.applied[i] else next(iter(self.analyzer.detector.detect(gray)), None)
            if box is not None:
                crops[i], found[i] = crop_face(gray, box, size, margin), True
                if not images.applied[i] and clean.found[i]:
                    points[i] = landmarks_in_crop(clean.landmarks[i], box, margin)
        return CropView(crops, found, points)


# ------------------------------------------------------------------------------------------ results


class CellStore:
    """One JSON file per (protocol, model, attack, repeat) under `root/<fingerprint of the model kind>/`;
    unreadable files count as missing."""

    def __init__(self, root: Path, fingerprints: dict[str, str]) -> None:
        self.root, self.fingerprints = root, fingerprints

    def path(self, protocol: str, spec: ModelSpec, attack: str, repeat: int) -> Path:
        return self.root / self.fingerprints[spec.kind] / protocol / spec.key / attack / f"r{repeat:03d}.json"

    def load(self, protocol: str, spec: ModelSpec, attack: str, repeat: int) -> dict | None:
        path = self.path(protocol, spec, attack, repeat)
        try:
            cell = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cell if isinstance(cell, dict) and cell.get("version") == CELL_VERSION else None

    def save(self, protocol: str, spec: ModelSpec, attack: str, repeat: int, cell: dict) -> None:
        path = self.path(protocol, spec, attack, repeat)
        write_text_atomic(path, json.dumps({**cell, "version": CELL_VERSION}, sort_keys=True))


def score_predictions(labels: np.ndarray, predictions: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """The per-repeat numbers kept for one variant of a cell."""
    result = metrics(labels, predictions, classes)
    return {k: result[k] for k in ("accuracy", "per_class_recall", "confusion", "n", "n_no_face")}


def attack_region(gray: np.ndarray, box: FaceBox | None) -> tuple[int, int, int, int]:
    """Where the black-box attack may change pixels: the CNN's crop square of the face (the whole image for
    face crops and where no face was found)."""
    h, w = gray.shape
    if box is None:
        return 0, 0, w, h
    left, top, side = crop_square(box, DEFAULT_MARGIN)
    x0, y0 = max(0, int(np.floor(left))), max(0, int(np.floor(top)))
    x1, y1 = min(w, int(np.ceil(left + side))), min(h, int(np.ceil(top + side)))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else (0, 0, w, h)


@dataclass(frozen=True)
class CellJob:
    """What one task computes: the cells of `attacks` for one model and repeat on its split (test-time attacks
    share one clean model, so they travel together; each poisoning attack trains its own models)."""

    protocol: str
    spec: ModelSpec
    repeat: int
    attacks: tuple[str, ...]
    train: np.ndarray
    test: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.protocol}/{self.spec.key}/r{self.repeat:03d}/{'+'.join(self.attacks)}"


def job_groups(attacks: Sequence[str]) -> list[tuple[str, ...]]:
    """The tasks of one (model, repeat): each poisoning attack alone, the test-time attacks together."""
    poisoning = [(a,) for a in attacks if a in POISONING]
    rest = tuple(a for a in attacks if a not in POISONING)
    return poisoning + ([rest] if rest else [])


def compute_job(runner: CellRunner, job: CellJob) -> dict[str, dict]:
    """The executor's task function: the cells of `job`, each with the wall seconds it took here."""
    torch.set_num_threads(runner.settings.threads)
    return runner.compute(job)


@dataclass
class TrialRun:
    """The cells of a run (cells[protocol][model][attack] = per-repeat cells, repeat 0 first) and how they went."""

    cells: dict[str, dict[str, dict[str, list[dict]]]]
    computed: int = 0
    reused: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    executor: str = "this process"
    workers: int = 1


class Trials:
    """Runs the cells of a trial on an executor, reading finished ones from the store and saving each new one as it
    comes back (only this process writes `cells/`, so a worker lost mid-cell leaves nothing there)."""

    def __init__(self, data: TrialData, settings: TrialSettings, store: CellStore, progress: bool = True) -> None:
        self.data, self.settings, self.store, self.progress = data, settings, store, progress
        self.specs = model_specs(settings.models, settings.feature_sets)
        self.runner = CellRunner(data, settings)

    def split(self, protocol: str, repeat: int) -> tuple[np.ndarray, np.ndarray]:
        """Fold 0 of `folds` stratified (group) folds shuffled with seed + repeat: one train/test split."""
        try:
            return next(split_indices(protocol, self.data.dataset, self.settings.folds, self.settings.seed + repeat))
        except ValueError as error:
            raise TrialError(str(error)) from None

    def plan(self) -> tuple[dict[tuple[str, str, str, int], dict], list[CellJob], int]:
        """(cells found in the store, jobs for the missing ones, number of cells in all)."""
        s = self.settings
        found: dict[tuple[str, str, str, int], dict] = {}
        jobs: list[CellJob] = []
        total = 0
        for protocol in s.protocols:
            for spec in self.specs:
                for repeat in range(max(s.repeats_for(spec, a) for a in s.attacks)):
                    missing = []
                    for attack in (a for a in s.attacks if repeat < s.repeats_for(spec, a)):
                        total += 1
                        cell = self.store.load(protocol, spec, attack, repeat)
                        if cell is None:
                            missing.append(attack)
                        else:
                            found[protocol, spec.key, attack, repeat] = cell
                    if missing:
                        train, test = self.split(protocol, repeat)
                        jobs += [CellJob(protocol, spec, repeat, group, train, test) for group in job_groups(missing)]
        return found, jobs, total

    def run(self, executor: ExecutorSettings | None = None) -> TrialRun:
        executor = executor or ExecutorSettings()
        cells, jobs, total = self.plan()
        run = TrialRun({}, reused=len(cells))
        if jobs:
            with executor.make(self.settings.threads, len(jobs)) as pool:
                run.executor, run.workers = pool.description, pool.workers
                self.data.pool = pool
                try:
                    self._compute_jobs(pool, jobs, cells, total, run)
                finally:
                    self.data.pool = None
        for protocol in self.settings.protocols:
            for spec in self.specs:
                for attack in self.settings.attacks:
                    repeats = [cells[k] for r in range(self.settings.repeats_for(spec, attack))
                               if (k := (protocol, spec.key, attack, r)) in cells]
                    run.cells.setdefault(protocol, {}).setdefault(spec.key, {})[attack] = repeats
        return run

    def _compute_jobs(self, pool: Executor, jobs: list[CellJob], cells: dict, total: int, run: TrialRun) -> None:
        for job in jobs:  # everything the cells read, computed here once (and cached where it can be)
            for attack in job.attacks:
                self.runner.prepare(job.spec, attack)
        jobs = sorted(jobs, key=lambda job: -job_cost(job))  # the longest first: the last task to end is short
        gpu = self.settings.cnn_device == "cuda"
        tasks = [Task(job.name, job, gpu=gpu and job.spec.kind == "cnn") for job in jobs]
        workers = f"{pool.workers} worker{'s' if pool.workers > 1 else ''}"
        with tqdm(total=total, initial=len(cells), desc=f"trials ({workers})", unit="cell",
                  disable=not self.progress) as bar:
            for outcome in pool.run(compute_job, self.runner, tasks):
                job = outcome.task.args
                bar.update(len(job.attacks))
                if outcome.error is not None:
                    run.failed += [{"cell": f"{job.protocol}/{job.spec.key}/{attack}/r{job.repeat:03d}",
                                    "error": outcome.error} for attack in job.attacks]
                    bar.set_postfix(failed=len(run.failed))
                    continue
                for attack, cell in outcome.value.items():
                    cell["worker"] = outcome.worker
                    self.store.save(job.protocol, job.spec, attack, job.repeat, cell)
                    cells[job.protocol, job.spec.key, attack, job.repeat] = cell
                    run.computed += 1


def job_cost(job: CellJob) -> float:
    """A rough relative cost, for ordering: trainings (a poisoning attack trains one model per class) and CNNs."""
    trainings = 7 if job.attacks[0] in POISONING else 1
    return trainings * (20 if job.spec.kind == "cnn" else 1) + 0.1 * len(job.attacks)


class CellRunner:
    """Computes cells from prepared trial data (in this process or, pickled once, in a worker)."""

    def __init__(self, data: TrialData, settings: TrialSettings) -> None:
        self.data, self.settings = data, settings

    def prepare(self, spec: ModelSpec, attack: str) -> None:
        """Compute everything a cell of `attack` reads before any cell runs (attacked images, their landmarks,
        feature rows or crops, the tamper check's flags), so that a cell's time is its own and a worker needs
        nothing but the prepared data."""
        data, size = self.data, self.settings.cnn_input_size
        if spec.kind == "forest" and self.settings.covered_forest:
            for key in COVERED_TRAINING_SETS:
                data.rows(key, spec.feature_set)
            data.covered("clean")
        if attack in POISONING:
            for key in ("clean", "eye_boxes"):
                data.rows(key, spec.feature_set) if spec.kind == "forest" else data.crops(key, size, DEFAULT_MARGIN)
            if attack == "type_a_screened":
                data.screening("eye_boxes")
                data.screening("clean")
            return
        self._prepare(spec, "clean")
        self._prepare(spec, attack)

    def compute(self, job: CellJob) -> dict[str, dict]:
        """The cells of `job`; each holds its wall seconds (`seconds`, with the clean model's training where this
        cell paid for it)."""
        clean_model: list[Any] = []  # fitted on first need, shared by the test-time attacks of this repeat
        out = {}
        for attack in job.attacks:
            started = time.perf_counter()
            cell = self._compute(job.spec, attack, job.repeat, job.train, job.test, clean_model)
            out[attack] = {**cell, "seconds": round(time.perf_counter() - started, 3)}
        return out

    # -- one cell

    def _compute(self, spec: ModelSpec, attack: str, repeat: int, train: np.ndarray, test: np.ndarray,
                 clean_model: list[Any]) -> dict:
        seed = self.settings.seed + repeat
        cell: dict[str, Any] = {"train_seconds": 0.0, "test_seconds": 0.0, "attack_seconds": 0.0, "variants": {}}
        if attack in ("type_a", "type_a_screened"):
            screen = attack == "type_a_screened"
            if spec.kind == "forest":
                self.data.rows("eye_boxes", spec.feature_set)
                self.data.rows("clean", spec.feature_set)
            else:
                self.data.crops("eye_boxes", self.settings.cnn_input_size, DEFAULT_MARGIN)
            for target in self.data.classes:
                started = time.perf_counter()
                screening = self.data.training_screening(target) if screen else None
                repairs = screening is not None and spec.kind == "forest"
                kept = train if screening is None else train[~screening.left_out(repairs)[train]]
                cell.setdefault("screened_out", {})[target] = int(len(train) - len(kept))
                if repairs:
                    cell.setdefault("repaired", {})[target] = int(screening.repaired[kept].sum())
                model = self._fit(spec, kept, seed, poison=target, screening=screening if repairs else None)
                fitted = time.perf_counter()
                cell["variants"][target] = self._score(spec, model, "clean", test)
                cell["train_seconds"] += fitted - started
                cell["test_seconds"] += time.perf_counter() - fitted
            return cell
        if not clean_model:
            self._prepare(spec, "clean")
            started = time.perf_counter()
            clean_model.append(self._fit(spec, train, seed))
            if attack == "clean":
                cell["train_seconds"] = time.perf_counter() - started
        model = clean_model[0]
        self._prepare(spec, attack)
        started = time.perf_counter()
        if attack in TEST_SETS:
            cell["variants"]["all"] = self._score(spec, model, TEST_SETS[attack], test)
        elif attack == "noise":
            for sigma in self.settings.noise_sigmas:
                cell["variants"][f"sigma={sigma:g}"] = self._score(spec, model, f"noise@{sigma:g}", test)
        elif attack in ("fgsm", "pgd") and spec.kind == "forest":
            for eps in self.settings.epsilons:
                cell["variants"][f"eps={eps:g}"] = self._score(spec, model, f"{attack}@{eps:g}", test)
        elif attack in ("fgsm", "pgd"):
            for eps in self.settings.epsilons:
                cell["variants"][f"eps={eps:g}"] = self._white_box(model, attack, eps, test, seed)
        elif attack == "adaptive":
            cell["variants"] = self._adaptive(spec, model, test, seed)
        else:
            raise ValueError(f"unknown attack {attack!r}")
        cell["test_seconds"] = time.perf_counter() - started
        return cell

    def _prepare(self, spec: ModelSpec, attack: str) -> None:
        """Compute the attacked images and what the model reads of them, so that cell times are test times."""
        s = self.settings
        keys = [TEST_SETS[attack]] if attack in TEST_SETS else [
            f"noise@{sigma:g}" for sigma in s.noise_sigmas] if attack == "noise" else []
        if attack in ("fgsm", "pgd") and spec.kind == "forest":
            keys = [f"{attack}@{eps:g}" for eps in s.epsilons]
        for key in keys:
            if spec.kind == "forest":
                self.data.rows(key, spec.feature_set)
                if s.covered_forest:
                    self.data.covered(key)
            else:
                self.data.crops(key, s.cnn_input_size, DEFAULT_MARGIN)
        self.data.boxes()

    def _fit(self, spec: ModelSpec, train: np.ndarray, seed: int, poison: str | None = None,
             screening: Screening | None = None) -> Any:
        """A fresh model on the images at `train` (clean, or with class `poison`'s carrying eye boxes); a forest
        with a `screening` repairs the faces it finds covered (`data.screening`)."""
        s, data = self.settings, self.data
        if spec.kind == "forest":
            fs = spec.feature_set
            rows = data.rows("clean", fs) if poison is None else data.poisoned_rows(fs, poison)
            index = train[rows.found[train]]
            forest = ForestSettings(spec.feature_set, s.n_estimators, s.max_features, s.mirror, s.threads,
                                    covered=s.covered_forest)
            occluded = []
            for k, key in enumerate(COVERED_TRAINING_SETS if s.covered_forest else ()):
                covered = data.rows(key, fs)
                kept = index[covered.found[index]]
                occluded.append((*training_rows(covered, kept, screening, fs, seed + 1 + k), data.labels[kept], None))
            return forest.fit(*training_rows(rows, index, screening, fs, seed), data.labels[index], seed,
                              occluded=occluded)
        view = data.crops("clean", s.cnn_input_size, DEFAULT_MARGIN) if poison is None else data.poisoned_crops(poison)
        index = train[view.found[train]]
        settings = TrainSettings(arch=s.cnn_arch, input_size=s.cnn_input_size, crop="box", epochs=s.cnn_epochs,
                                 occlusion=s.cnn_occlusion, seed=seed, progress=False, device=s.cnn_device)
        return train_cnn(view.crops[index], data.labels[index], settings, data.classes,
                         data.dataset.groups()[index], view.landmarks[index]).classifier

    def _score(self, spec: ModelSpec, model: Any, key: str, test: np.ndarray) -> dict:
        data = self.data
        if spec.kind == "forest":
            rows = data.rows(key, spec.feature_set)
            covered = data.covered(key) if model.covered is not None else None
            predictions = predicted_labels(model.labels, rows.found, test, lambda index: model.predict_features(
                *rows.at(index), covered=None if covered is None else covered[index]))
        else:
            view = data.crops(key, self.settings.cnn_input_size, DEFAULT_MARGIN)
            predictions = predicted_labels(model.labels, view.found, test, lambda index: model.predict_crops(
                view.crops[index]))
        return score_predictions(data.labels[test], predictions, data.classes)

    def _white_box(self, classifier: CnnClassifier, attack: str, eps: float, test: np.ndarray, seed: int) -> dict:
        """FGSM/PGD crafted on this repeat's CNN through its crop geometry, scored by the CNN pipeline."""
        data, s = self.data, self.settings
        boxes, pixel = data.boxes(), attacks.pixel_model(classifier.model, classifier.header)
        labels = classifier.labels
        predictions = np.full(len(test), None, dtype=object)
        for k, i in enumerate(test):
            if boxes[i] is None:
                continue
            target = [labels.index(data.labels[i])] if data.labels[i] in labels else None
            inputs = attacks.AttackInputs(faces=[Face(boxes[i], np.full((68, 2), np.nan))], model=pixel,
                                          crop=classifier.crop, labels=target)
            attacked = attacks.apply(attack, data.grays[i], s.attack_values(epsilon=eps), inputs,
                                     seed * 100003 + int(i))
            box = next(iter(data.analyzer.detector.detect(attacked)), None)
            if box is not None:
                proba = classifier.predict_crops(crop_face(attacked, box, s.cnn_input_size, DEFAULT_MARGIN)[None])
                predictions[k] = labels[int(proba[0].argmax())]
        return score_predictions(data.labels[test], predictions, data.classes)

    def scorer(self, spec: ModelSpec, model: Any) -> Callable[[np.ndarray], np.ndarray | None]:
        """The model's whole pipeline as a black box: grey image -> class probabilities (None: no face)."""
        analyzer, size = self.data.analyzer, self.settings.cnn_input_size
        if spec.kind == "forest":
            def forest_score(gray: np.ndarray) -> np.ndarray | None:
                faces = analyzer.analyze(gray)
                return model.predict_proba(gray, faces[:1])[0] if faces else None
            return forest_score

        def cnn_score(gray: np.ndarray) -> np.ndarray | None:
            box = next(iter(analyzer.detector.detect(gray)), None)
            return None if box is None else model.predict_crops(crop_face(gray, box, size, DEFAULT_MARGIN)[None])[0]
        return cnn_score

    def _adaptive(self, spec: ModelSpec, model: Any, test: np.ndarray, seed: int) -> dict[str, dict]:
        """Square attack on a seeded subset of the test images at every epsilon (eps=0: the subset, clean)."""
        s, data = self.settings, self.data
        subset = np.sort(np.random.default_rng(seed).permutation(test)[: s.adaptive_images])
        score, labels = self.scorer(spec, model), list(model.labels)
        variants: dict[str, dict] = {}
        for eps in (0.0, *s.epsilons):
            predictions = np.full(len(subset), None, dtype=object)
            queries = []
            for k, i in enumerate(subset):
                if data.labels[i] not in labels:
                    continue
                result = square_attack(score, data.grays[i], labels.index(data.labels[i]), eps, s.adaptive_queries,
                                       seed * 100003 + int(i), attack_region(data.grays[i], data.boxes()[i]))
                if result.proba is not None:
                    predictions[k] = labels[int(np.argmax(result.proba))]
                queries.append(result.queries)
            variants[f"eps={eps:g}"] = {**score_predictions(data.labels[subset], predictions, data.classes),
                                        "mean_queries": float(np.mean(queries)) if queries else 0.0}
        return variants


def run_trials(
    dataset: FaceDataset, settings: TrialSettings, out: str | Path, analyzer: FaceAnalyzer | None = None,
    cache: LandmarkCache | None = None, progress: bool = True, executor: ExecutorSettings | None = None,
) -> dict[str, Any]:
    """Run (or resume) every cell on `executor` (default: this process); returns {"cells": ..., "meta": ...} for
    `trials_report`. Cells whose worker was lost too often are listed in meta["failed_cells"] and left out."""
    settings.check()
    torch.set_num_threads(settings.threads)
    analyzer = analyzer or FaceAnalyzer()
    out = Path(out)
    fingerprints = {kind: settings.fingerprint(dataset, analyzer, kind) for kind in MODEL_KINDS}
    started = time.perf_counter()
    data = TrialData(dataset, analyzer, cache, settings, cache.path.parent / "cnn" if cache else None, progress)
    trials = Trials(data, settings, CellStore(out / "cells", fingerprints), progress)
    run = trials.run(executor)
    cells = run.cells
    info = {key: image_set.info for key, image_set in data._sets.items() if image_set.info}
    tampered = [TEST_SETS[a] for a in settings.attacks if a in TEST_SETS and a != "clean"]
    tampered += ["eye_boxes"] if {"type_a", "type_a_screened"} & set(settings.attacks) else []
    tampered += [f"noise@{sigma:g}" for sigma in settings.noise_sigmas] if "noise" in settings.attacks else []
    meta = {
        "data": str(dataset.root), "dataset": dataset.name, "n_images": len(dataset), "classes": data.classes,
        "class_counts": {c: int((data.labels == c).sum()) for c in data.classes},
        "subjects": len(set(dataset.groups())) if dataset.subjects is not None else None,
        "faces_found": float(data.landmarks("clean").found.mean()) if "clean" in data._views else None,
        "settings": {k: v for k, v in asdict(settings).items()}, "fingerprints": fingerprints,
        "models": [asdict(spec) for spec in trials.specs],
        "cells_computed": run.computed, "cells_reused": run.reused, "failed_cells": run.failed,
        "executor": run.executor, "workers": run.workers, "surrogates": data.surrogate_origin,
        "precompute_seconds": data.precompute_seconds, "attack_info": info,
        "tamper_detection": data.tamper_detection(tampered),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "torch_threads": torch.get_num_threads(),
    }
    return {"cells": cells, "meta": meta}
