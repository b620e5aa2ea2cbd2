"""Training the visibility and tamper checks (`models.visibility`, `models.tamper`) on clean faces of labelled
folders and the same faces with synthetic occluders drawn from their landmarks (`core.occlusion`): a forest over
the regions' statistics learns which of the upper and lower regions are covered, from occluders drawn on the
aligned crop and from occluders drawn on the image, re-read by dlib and cropped where it then finds the face (as
the nodes see a covered face); the thresholds are set on clean faces held out of training, so that
`false_positive_rate` of them are flagged per region check and `noise_false_positive_rate` by the impulse-noise
check; the lattice check's threshold is `LATTICE_MARGIN` times the largest held-out clean value (its positives, the
scaling camouflage, score ten times that and more, and clean posed faces reach above the web faces' quantiles)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from emotion_perception.core import occlusion
from emotion_perception.core.images import read_gray
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.core.types import Face
from emotion_perception.data.face_data import CropData, LandmarkData, aligned_crop_data
from emotion_perception.data.landmark_cache import LandmarkCache, landmarks_of_images
from emotion_perception.models.forest import FlatForest
from emotion_perception.models.tamper import pixel_statistics
from emotion_perception.models.visibility import CLASSES, CROP, REGIONS, WINDOWS, VisibilityModel, region_statistics

LATTICE_MARGIN = 2.0


def occlude_regions(image: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """`image` with an occluder over the face's upper part, its lower part or both (a third each; a random kind
    and fill), and which of those it is."""
    which = CLASSES[1 + int(rng.integers(3))]
    if which in ("upper", "both"):
        kind = occlusion.UPPER_KINDS[int(rng.integers(len(occlusion.UPPER_KINDS)))]
        image = occlusion.occlude(image, points, kind, rng)
    if which in ("lower", "both"):
        image = occlusion.occlude_lower(image, points, rng)
    return image, which


def occluded_examples(crops: np.ndarray, landmarks: np.ndarray, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Region statistics and classes of each crop as it is (none) and with an occluder drawn on the crop
    (`occlude_regions`); landmarks in 0..1 of the crop."""
    rows, classes = [], []
    for crop, points in zip(crops, landmarks * CROP.size):
        covered, which = occlude_regions(crop, points, rng)
        rows += [region_statistics(crop), region_statistics(covered)]
        classes += ["none", which]
    return np.array(rows), np.array(classes, dtype=object)


def reread_examples(data: LandmarkData, index: np.ndarray, rng: np.random.Generator, analyzer: FaceAnalyzer,
                    cache: LandmarkCache | None) -> tuple[np.ndarray, np.ndarray]:
    """Region statistics and classes of the faces at `index` with an occluder drawn on the whole image
    (`occlude_regions`), cropped on the landmarks dlib reads under it, as at run time (a mask pulls the jaw line
    up, which moves the crop); faces dlib loses under the occluder are left out."""
    images, classes = [], []
    for i in index:
        covered, which = occlude_regions(read_gray(data.dataset.paths[i]), data.extracted.landmarks[i], rng)
        images.append(covered)
        classes.append(which)
    view = landmarks_of_images(images, analyzer, cache)
    found = np.flatnonzero(view.found)
    rows = [region_statistics(CROP.crop(images[k], Face.from_landmarks(view.landmarks[k]))) for k in found]
    return np.array(rows).reshape(len(found), -1), np.array(classes, dtype=object)[found]


def fit_visibility(data: list[LandmarkData], false_positive_rate: float = 0.005,
                   noise_false_positive_rate: float = 0.001, trees: int = 60, depth: int = 12, seed: int = 0,
                   header: dict | None = None, analyzer: FaceAnalyzer | None = None,
                   cache: LandmarkCache | None = None) -> VisibilityModel:
    """Train on `data` (every dataset's found faces; a fifth of each held out for the thresholds): each training
    face clean, with an occluder drawn on its crop, and with another drawn on its image and re-read by dlib."""
    rng = np.random.default_rng(seed)
    analyzer = analyzer or FaceAnalyzer()
    train_rows, train_classes, held_crops, held_artefacts = [], [], [], []
    for part in data:
        crops: CropData = aligned_crop_data(part.dataset, part.extracted, CROP, progress=False)
        index = np.flatnonzero(crops.found)
        held = rng.random(len(index)) < 0.2
        for rows, classes in (occluded_examples(crops.crops[index[~held]], crops.landmarks[index[~held]], rng),
                              reread_examples(part, index[~held], rng, analyzer, cache)):
            train_rows.append(rows)
            train_classes.append(classes)
        held_crops.append(crops.crops[index[held]])
        held_artefacts += [pixel_statistics(read_gray(part.dataset.paths[i]),
                                            Face.from_landmarks(part.extracted.landmarks[i])) for i in index[held]]
    forest = RandomForestClassifier(trees, max_depth=depth, random_state=seed, n_jobs=1)
    forest.fit(np.vstack(train_rows), np.concatenate(train_classes).astype(str))
    model = VisibilityModel(FlatForest.from_sklearn(forest), {"thresholds": dict.fromkeys(REGIONS, 1.0)})
    clean = model.scores(np.concatenate(held_crops))
    thresholds = {region: float(np.quantile(clean[:, k], 1 - false_positive_rate)) for k, region in enumerate(REGIONS)}
    model.header = {
        **(header or {}), "thresholds": thresholds,
        "artefact_thresholds": {
            "noise": float(np.quantile([a["noise"] for a in held_artefacts], 1 - noise_false_positive_rate)),
            "lattice": LATTICE_MARGIN * max(a["lattice"] for a in held_artefacts)},
        "false_positive_rate": false_positive_rate, "noise_false_positive_rate": noise_false_positive_rate,
        "lattice_margin": LATTICE_MARGIN, "n_train_examples": int(sum(len(r) for r in train_rows)),
        "n_clean_held_out": len(clean), "trees": trees, "max_depth": depth, "seed": seed,
        "windows": {name: [[s.start, s.stop] for s in window] for name, window in WINDOWS.items()},
        "occluders": {"upper": list(occlusion.UPPER_KINDS), "lower": list(occlusion.LOWER_KINDS)},
        "examples": "each face clean, occluded on its crop, and occluded on its image and re-read by dlib",
    }
    model.thresholds = thresholds
    return model
