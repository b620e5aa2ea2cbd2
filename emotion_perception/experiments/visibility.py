"""Training the visibility and tamper checks (`models.visibility`, `models.tamper`) on clean faces of labelled
folders and the same faces with synthetic occluders drawn from their landmarks (`core.occlusion`): a forest over
the regions' statistics learns which of the upper and lower regions are covered, from occluders drawn on the
aligned crop and from occluders drawn on the image, re-read by dlib and cropped where it then finds the face (as
the nodes see a covered face). The thresholds come from faces held out of training: the whole check (any region, or
the pixel artefacts) flags at most `false_positive_rate` of them clean and as many as it can of them attacked."""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from emotion_perception import attacks
from emotion_perception.attacks.scaling import scaling_camouflage
from emotion_perception.core import occlusion
from emotion_perception.core.images import read_gray
from emotion_perception.core.pipeline import FaceAnalyzer
from emotion_perception.core.types import Face
from emotion_perception.data.face_data import CropData, LandmarkData, aligned_crop_data
from emotion_perception.data.landmark_cache import LandmarkCache, landmarks_of_images
from emotion_perception.models.forest import FlatForest
from emotion_perception.models.tamper import artefact_ratio
from emotion_perception.models.visibility import CLASSES, CROP, REGIONS, WINDOWS, VisibilityModel, region_statistics

SCALING_FACTOR = 4  # the camera's size over the victim's in the scaling examples (as the trials)
FACE_ATTACKS = ("eye_boxes", "jaw_box", "mask")  # the injector's attacks on faces the thresholds are chosen for


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


def scaling_examples(data: LandmarkData, index: np.ndarray, rng: np.random.Generator,
                     factor: int = SCALING_FACTOR) -> list[tuple[np.ndarray, Face]]:
    """The faces at `index` as a camera `factor`x their size sees them under the image-scaling camouflage (a
    victim shrinking with linear interpolation sees another of these faces), with their landmarks scaled."""
    out = []
    for i in index:
        target = read_gray(data.dataset.paths[int(rng.choice(index))])
        camera = scaling_camouflage(read_gray(data.dataset.paths[i]), target, factor, "linear")[1]
        out.append((camera, Face.from_landmarks(data.extracted.landmarks[i] * factor)))
    return out


def check_statistics(model: VisibilityModel, seen: list[tuple[np.ndarray, Face]]) -> np.ndarray:
    """(n, 3) what the tamper check compares with its thresholds, per (image, face): the upper and lower
    covered-probabilities and the artefact ratio."""
    if not seen:
        return np.zeros((0, 3))
    scores = model.scores(np.stack([CROP.crop(image, face) for image, face in seen]))
    return np.column_stack([scores, [artefact_ratio(image, face) for image, face in seen]])


def whole_check_thresholds(clean: np.ndarray, attacked: dict[str, np.ndarray], false_positive_rate: float,
                           steps: int = 20) -> np.ndarray:
    """Thresholds for the columns of (n, checks) statistics: each at a quantile of the `clean` faces' column, the
    quantiles chosen on a grid (0 to `false_positive_rate` in `steps`) so that a face at or above any threshold
    (the whole check's flag) is at most `false_positive_rate` of the clean faces, and the worst true-positive rate
    over the `attacked` sets of statistics (then their mean) is highest."""
    rates = np.linspace(0.0, false_positive_rate, steps + 1)
    thresholds = np.array([[np.inf if rate == 0 else np.quantile(column, 1 - rate) for rate in rates]
                           for column in clean.T])  # (checks, grid)

    def flags(stats: np.ndarray) -> list[np.ndarray]:  # per check: (grid, n) flags at each threshold
        return [stats[:, c][None, :] >= thresholds[c][:, None] for c in range(len(thresholds))]

    clean_flags, attacked_flags = flags(clean), [flags(stats) for stats in attacked.values()]
    best, best_score = thresholds[:, -1], (-1.0, -1.0)
    for combo in itertools.product(range(steps + 1), repeat=len(thresholds)):
        if np.logical_or.reduce([f[k] for f, k in zip(clean_flags, combo)]).mean() > false_positive_rate:
            continue
        found = [np.logical_or.reduce([f[k] for f, k in zip(set_flags, combo)]).mean() for set_flags in attacked_flags]
        score = (min(found, default=0.0), float(np.mean(found)) if found else 0.0)
        if score > best_score:
            best, best_score = thresholds[np.arange(len(thresholds)), combo], score
    return best


def fit_visibility(data: list[LandmarkData], false_positive_rate: float = 0.008, trees: int = 60,
                   depth: int = 12, seed: int = 0, header: dict | None = None, analyzer: FaceAnalyzer | None = None,
                   cache: LandmarkCache | None = None) -> VisibilityModel:
    """Train on `data` (every dataset's found faces; a fifth of each held out for the thresholds): each training
    face clean, with an occluder drawn on its crop, and with another drawn on its image and re-read by dlib. The
    thresholds (`whole_check_thresholds`) come from the held-out faces, clean and attacked
    (`held_out_statistics`)."""
    rng = np.random.default_rng(seed)
    analyzer = analyzer or FaceAnalyzer()
    train_rows, train_classes, held_out = [], [], []
    for part in data:
        crops: CropData = aligned_crop_data(part.dataset, part.extracted, CROP, progress=False)
        index = np.flatnonzero(crops.found)
        held = rng.random(len(index)) < 0.2
        for rows, classes in (occluded_examples(crops.crops[index[~held]], crops.landmarks[index[~held]], rng),
                              reread_examples(part, index[~held], rng, analyzer, cache)):
            train_rows.append(rows)
            train_classes.append(classes)
        held_out.append((part, index[held]))
    forest = RandomForestClassifier(trees, max_depth=depth, random_state=seed, n_jobs=1)
    forest.fit(np.vstack(train_rows), np.concatenate(train_classes).astype(str))
    model = VisibilityModel(FlatForest.from_sklearn(forest), {"thresholds": dict.fromkeys(REGIONS, 1.0)})
    clean, attacked = held_out_statistics(model, held_out, np.random.default_rng([seed, 1]), analyzer, cache)
    *region_thresholds, artefact_threshold = whole_check_thresholds(clean, attacked, false_positive_rate)
    thresholds = dict(zip(REGIONS, map(float, region_thresholds)))
    limits = np.array([*region_thresholds, artefact_threshold])
    model.header = {
        **(header or {}), "thresholds": thresholds, "artefact_threshold": float(artefact_threshold),
        "false_positive_rate": false_positive_rate, "false_positive_rate_of": "the whole check",
        "held_out_flagged": {"clean": float((clean >= limits).any(axis=1).mean()),
                             **{name: float((stats >= limits).any(axis=1).mean()) for name, stats in attacked.items()}},
        "n_train_examples": int(sum(len(r) for r in train_rows)),
        "n_clean_held_out": len(clean), "trees": trees, "max_depth": depth, "seed": seed,
        "windows": {name: [[s.start, s.stop] for s in window] for name, window in WINDOWS.items()},
        "occluders": {"upper": list(occlusion.UPPER_KINDS), "lower": list(occlusion.LOWER_KINDS)},
        "examples": "each face clean, occluded on its crop, and occluded on its image and re-read by dlib",
    }
    model.thresholds = thresholds
    return model


def held_out_statistics(model: VisibilityModel, held_out: list[tuple[LandmarkData, np.ndarray]],
                        rng: np.random.Generator, analyzer: FaceAnalyzer, cache: LandmarkCache | None
                        ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`check_statistics` of the held-out faces: clean, and under each attack of the injector the check is for
    (eye boxes, jaw box, drawn mask: re-read by dlib, faces it loses left out; the image-scaling camouflage)."""
    clean, attacked = [], {name: [] for name in (*FACE_ATTACKS, "scaling")}
    for part, index in held_out:
        grays = [read_gray(part.dataset.paths[i]) for i in index]
        faces = [Face.from_landmarks(part.extracted.landmarks[i]) for i in index]
        clean.append(check_statistics(model, list(zip(grays, faces))))
        for name in FACE_ATTACKS:
            images = [attacks.apply(name, gray, None, attacks.AttackInputs(faces=[face]), int(rng.integers(2**31)))
                      for gray, face in zip(grays, faces)]
            view = landmarks_of_images(images, analyzer, cache)
            attacked[name].append(check_statistics(model, [(images[k], Face.from_landmarks(view.landmarks[k]))
                                                           for k in np.flatnonzero(view.found)]))
        attacked["scaling"].append(check_statistics(model, scaling_examples(part, index, rng)))
    return np.vstack(clean), {name: np.vstack(parts) for name, parts in attacked.items()}
