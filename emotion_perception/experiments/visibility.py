"""Training the visibility and tamper checks (`models.visibility`, `models.tamper`) on clean faces of labelled
folders and the same faces with synthetic occluders drawn from their landmarks (`core.occlusion`): a forest over
the regions' statistics learns which of the upper and lower regions are covered; the thresholds are set on clean
faces held out of training, so that `false_positive_rate` of them (per check) are flagged."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from tqdm import tqdm

from emotion_perception.core import occlusion
from emotion_perception.core.images import read_gray
from emotion_perception.core.types import Face
from emotion_perception.data.face_data import CropData, LandmarkData, aligned_crop_data
from emotion_perception.models.forest import FlatForest
from emotion_perception.models.tamper import TamperCheck, artefact_ratio
from emotion_perception.models.visibility import CLASSES, CROP, REGIONS, WINDOWS, VisibilityModel, region_statistics

UPPER_KINDS = ("glasses", "eye_boxes")
LOWER_KINDS = ("surgical_mask", "lower_box", "hand")


def occluded_examples(crops: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Region statistics and classes of each crop as it is (none) and with an occluder over its upper part, its
    lower part or both (a third each), of a random kind and fill; landmarks in 0..1 of the crop."""
    rows, classes = [], []
    for crop, points in zip(crops, landmarks * CROP.size):
        rows.append(region_statistics(crop))
        classes.append("none")
        which = CLASSES[1 + int(rng.integers(3))]
        covered = crop
        if which in ("upper", "both"):
            covered = occlusion.occlude(covered, points, UPPER_KINDS[int(rng.integers(len(UPPER_KINDS)))], rng)
        if which in ("lower", "both"):
            covered = occlusion.occlude(covered, points, LOWER_KINDS[int(rng.integers(len(LOWER_KINDS)))], rng)
        rows.append(region_statistics(covered))
        classes.append(which)
    return np.array(rows), np.array(classes, dtype=object)


def flag_tampered(data: LandmarkData, check: TamperCheck, progress: bool = True) -> np.ndarray:
    """Per image of `data`: whether the tamper check flags its face (covered eyes or mouth, pixel artefacts);
    False where no face was found."""
    flags = np.zeros(len(data.dataset), bool)
    found = np.flatnonzero(data.extracted.found)
    for i in tqdm(found, desc=f"tamper check {data.dataset.name}", disable=not progress, leave=False):
        face = Face.from_landmarks(data.extracted.landmarks[i])
        flags[i] = check.assess(read_gray(data.dataset.paths[i]), [face])[0].flagged
    return flags


def fit_visibility(data: list[LandmarkData], false_positive_rate: float = 0.005, trees: int = 60,
                   depth: int = 12, seed: int = 0, header: dict | None = None) -> VisibilityModel:
    """Train on `data` (every dataset's found faces; a fifth of each held out for the thresholds)."""
    rng = np.random.default_rng(seed)
    train_rows, train_classes, held_crops, held_artefacts = [], [], [], []
    for part in data:
        crops: CropData = aligned_crop_data(part.dataset, part.extracted, CROP, progress=False)
        index = np.flatnonzero(crops.found)
        held = rng.random(len(index)) < 0.2
        rows, classes = occluded_examples(crops.crops[index[~held]], crops.landmarks[index[~held]], rng)
        train_rows.append(rows)
        train_classes.append(classes)
        held_crops.append(crops.crops[index[held]])
        held_artefacts += [artefact_ratio(read_gray(part.dataset.paths[i]),
                                          Face.from_landmarks(part.extracted.landmarks[i])) for i in index[held]]
    forest = RandomForestClassifier(trees, max_depth=depth, random_state=seed, n_jobs=1)
    forest.fit(np.vstack(train_rows), np.concatenate(train_classes).astype(str))
    model = VisibilityModel(FlatForest.from_sklearn(forest), {"thresholds": dict.fromkeys(REGIONS, 1.0)})
    clean = model.scores(np.concatenate(held_crops))
    thresholds = {region: float(np.quantile(clean[:, k], 1 - false_positive_rate)) for k, region in enumerate(REGIONS)}
    model.header = {
        **(header or {}), "thresholds": thresholds,
        "artefact_threshold": float(np.quantile(held_artefacts, 1 - false_positive_rate)),
        "false_positive_rate": false_positive_rate, "n_train_examples": int(sum(len(r) for r in train_rows)),
        "n_clean_held_out": len(clean), "trees": trees, "max_depth": depth, "seed": seed,
        "windows": {name: [[s.start, s.stop] for s in window] for name, window in WINDOWS.items()},
        "occluders": {"upper": list(UPPER_KINDS), "lower": list(LOWER_KINDS)},
    }
    model.thresholds = thresholds
    return model
